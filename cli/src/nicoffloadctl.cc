// nicoffloadctl: the operator's command line.
//
// It plans offline: host config + ports file + hardware profile -> rules
// (testpmd syntax or JSON), software-path objects, vDPA devices, and the
// counts per placement; `explain` says why a rule sits in hw or sw;
// `device-check` runs the plan through the host's flow backend (the simulated
// NIC, or rte_flow on the real PF) and reports what the device accepted. It
// talks to nicoffloadd (status, port, remote, rules, trace, top, ...) and
// reads the host (nic status, host-check).
//
// Each subcommand is set up and run by its own function: commands_plan.cc
// (the offline plan and the software path), commands_daemon.cc (the requests
// to nicoffloadd), commands_host.cc (nic status, domain-xml), host_check.cc.
// run() builds the app from them, parses, and runs the one chosen.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>

#include "cli_common.h"
#include "host_check.h"

namespace {

using namespace nicoffload;
using namespace nicoffload::cli;

// Command-line usage errors keep CLI11's codes for the kinds the footer
// names (105 ValidationError ... 110 ConfigError); every other parse error
// (a missing or unconvertible option value: ArgumentMismatch 114,
// ConversionError 104, ...) is 105, the "bad option value" code.
constexpr int kExitUsageFirst = 105;
constexpr int kExitUsageLast = 110;
constexpr int kExitUsageValue = 105;

// A CLI11 parse error as the documented exit status: --help and --version
// print and exit 0; a usage error is one error line naming the option.
int usageExit(const CLI::App& app, const CLI::ParseError& e) {
  if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
  std::fprintf(stderr,
               "nicoffloadctl: error: command line: %s\n"
               "  (run 'nicoffloadctl --help', or '<command> --help', for the options)\n",
               printable(e.what(), kMaxErrorLineBytes).c_str());
  const int code = e.get_exit_code();
  return code >= kExitUsageFirst && code <= kExitUsageLast ? code : kExitUsageValue;
}

void addHostCheck(CLI::App& app, Commands& commands) {
  auto args = std::make_shared<HostCheckArgs>();
  auto* cmd = addHostCheckCommand(app, *args);
  commands.push_back({cmd, [args] { return runHostCheckCommand(*args, defaultProfileDir()); }});
}

int run(int argc, char** argv) {
  CLI::App app{"nicoffloadctl: control the nicoffload SmartNIC / vDPA offload controller"};
  app.set_version_flag("--version", std::string("nicoffloadctl ") + NICOFFLOAD_VERSION);
  app.require_subcommand(1);

  // The order here is the order --help lists the subcommands in.
  Commands commands;
  addPlanCommands(app, commands);
  addDaemonCommands(app, commands);
  addHostCommands(app, commands);
  addHostCheck(app, commands);

  // Set last: CLI11 copies a parent's footer into each subcommand added
  // after it, and the long footer belongs to the top-level --help only.
  app.footer(
      "Exit status: 0 success; 2 bad input (config, ports, profile: the message names\n"
      "the file and field); 3 not found (rule, port); 4 some objects failed: kernel\n"
      "objects (each is named, the others are in place), or the flow backend/device\n"
      "(device-check); 5 nicoffloadd is not running; host-check: 1 a required line is not ok; 6 "
      "internal error (an unexpected\n"
      "reply from nicoffloadd, or a bug); 105-110 command-line usage errors: 105 an option\n"
      "value that is missing or invalid (also a file that does not exist), 106 a required option\n"
      "is missing, 107/108 options that need/exclude each other, 109 an unexpected argument.\n"
      "Errors are printed as \"nicoffloadctl: error: <field>: <message>\".\n"
      "Commands that talk to nicoffloadd use --socket, else $NICOFFLOAD_SOCKET, else the\n"
      "socket of /etc/nicoffload/host.json, else /run/nicoffload/nicoffloadd.sock.\n"
      "Named profiles are read from --profile-dir, $NICOFFLOAD_PROFILE_DIR "
      "or\n" NICOFFLOAD_PROFILE_INSTALL_DIR ".");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return usageExit(app, e);
  }

  // Exactly one leaf was chosen (require_subcommand(1) at every level).
  for (const auto& command : commands)
    if (command.app->parsed()) return command.run();
  return kExitOk;
}

}  // namespace

// The command edge: whatever a command meets (a reply of an unexpected shape
// from nicoffloadd, a library exception, a bug) becomes the documented error
// line and exit status, never an abort.
int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nicoffloadctl: error: %s\n",
                 printable(std::string("internal: ") + e.what()).c_str());
  } catch (...) {
    std::fprintf(stderr, "nicoffloadctl: error: internal: unknown exception\n");
  }
  return kExitInternal;
}
