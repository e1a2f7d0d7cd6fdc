// What the subcommands of nicoffloadctl share: the exit statuses, the error
// line, the options and calls of the commands that talk to nicoffloadd, and
// the shape in which each subcommand hands itself to run() (Command).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "nicoffload/common/error.h"

namespace CLI {
class App;
}

namespace nicoffload::cli {

constexpr int kExitOk = 0;
constexpr int kExitInput = 2;  // bad input: config, ports, profile
constexpr int kExitNotFound = 3;
constexpr int kExitPartial = 4;     // some objects failed; the others are in place
constexpr int kExitNotRunning = 5;  // nicoffloadd is not running
constexpr int kExitDevice = 4;      // the flow backend cannot be opened, or the device failed
constexpr int kExitInternal = 6;  // an unexpected reply from nicoffloadd, or a bug: never an abort

// The longest error line printed (bytes): a field and a message, each cut
// by makeError, plus the file name put in front of the field.
constexpr std::size_t kMaxErrorLineBytes = 4 * kMaxErrorMessageBytes;

// Errors are printed through printable() whatever built them (a file name
// put in front of a field, an Error decoded from a reply of nicoffloadd):
// cut, control bytes and invalid UTF-8 escaped.
std::string printableError(const Error& e);

// Prints "nicoffloadctl: error: ..." and returns kExitInput.
int fail(const Error& e);

// Where named hardware profiles are read from when no --profile-dir is given.
std::string defaultProfileDir();

// A leaf subcommand as run() dispatches it: the CLI11 subcommand its options
// were added to, and what runs it when the command line chose it. The
// options' values live in what `run` holds, so they outlive the parse.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};
using Commands = std::vector<Command>;

// --- talking to nicoffloadd ---

struct DaemonOptions {
  std::string socket;
  std::string config;  // host config to take the socket path from
  int timeout_ms = 10000;
  bool json = false;
};

// --socket, --config, --timeout and --json.
void addDaemonOptions(CLI::App* cmd, DaemonOptions& daemon);

// Sends one request; prints the error, sets `rc` and returns nullopt on failure.
std::optional<nlohmann::json> callDaemon(const DaemonOptions& d, const nlohmann::json& request,
                                         int& rc);

// A large read, page by page on one connection (the daemon serves other
// clients between pages): `request` with "offset"/"limit", each item of the
// reply's `key` list handed to `each` as it arrives.
bool callDaemonPaged(const DaemonOptions& d, nlohmann::json request, const char* key,
                     const std::function<void(const nlohmann::json&)>& each, int& rc);

// The reply as JSON with --json, else as `text` prints it; kExitOk.
int printReply(const DaemonOptions& d, const nlohmann::json& reply,
               const std::function<void()>& text);

// --- the subcommands, in the order --help lists them ---

// plan, explain, device-check, profile-check, apply, remove, readback
// (commands_plan.cc).
void addPlanCommands(CLI::App& app, Commands& commands);
// status, port, remote, rules, counters, reconcile, trace, top, sim
// (commands_daemon.cc).
void addDaemonCommands(CLI::App& app, Commands& commands);
// nic status, domain-xml (commands_host.cc).
void addHostCommands(CLI::App& app, Commands& commands);

}  // namespace nicoffload::cli
