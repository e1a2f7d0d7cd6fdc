// nicoffload-simnic: look at the simulated NIC's device directory from the
// outside, the way one would ask a real NIC what it holds (tests use it to
// check the controller against the device, not against itself).
//
//   nicoffload-simnic dump DEVICE_DIR    # JSON: {"rules": [{"handle", "id", "class", "group", "priority"}]}
//   nicoffload-simnic dump DEVICE_DIR --verbose  # and each rule's match and actions
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "nicoffload/simnic/dump.h"
#include "nicoffload/simnic/sim_eswitch.h"

namespace {

using namespace nicoffload;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;  // the directory holds no simulated NIC, or it cannot be read
constexpr int kExitUsage = 2;
constexpr int kExitInternal = 6;

constexpr const char* kUsage =
    "usage: nicoffload-simnic dump DEVICE_DIR [--verbose]\n"
    "  prints, as JSON, the rules the simulated NIC in DEVICE_DIR holds:\n"
    "  {\"rules\": [{\"handle\", \"id\", \"class\", \"group\", \"priority\"}]}\n"
    "  --verbose, -v: each rule also with what it matches and does: \"pattern\" and\n"
    "  \"actions\" (the rule IR) and \"testpmd\" (its flow create line, ports numbered as\n"
    "  nicoffloadd's defaults: uplink port 0, vfN = port 1+N)\n"
    "  DEVICE_DIR is <daemon.sim_device_dir>/<uplink PCI address>, e.g.\n"
    "  /run/nicoffload/simnic/0000:03:00.0\n"
    "exit status: 0 success; 1 DEVICE_DIR holds no simulated NIC or cannot be read; 2 usage\n";

bool isDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// A device directory holds the snapshot the simulated NIC keeps, rules.journal
// (SimEswitch::open writes it at once, empty or not; its journal segments are
// rules.journal.<seq>). An empty list for a directory without it
// would read as "the NIC holds no rules" when no NIC is there at all.
int fail(const std::string& field, const std::string& message) {
  std::fprintf(stderr, "nicoffload-simnic: error: %s: %s\n", printable(field).c_str(),
               printable(message, kMaxErrorMessageBytes).c_str());
  return kExitError;
}

int dump(const std::string& dir, bool verbose) {
  if (!isDirectory(dir)) return fail(dir, "not a directory");
  if (::access((dir + "/rules.journal").c_str(), F_OK) != 0) {
    // The usual mistake is the parent, sim_device_dir: name the devices in it.
    std::string devices;
    if (DIR* d = ::opendir(dir.c_str())) {
      while (const dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        if (::access((dir + "/" + name + "/rules.journal").c_str(), F_OK) == 0)
          devices += (devices.empty() ? "" : ", ") + dir + "/" + name;
      }
      ::closedir(d);
    }
    return fail(dir,
                "holds no simulated NIC (no rules.journal)" +
                    (devices.empty()
                         ? std::string("; a device directory is <sim_device_dir>/<PF PCI address>")
                         : "; the device directories in it: " + devices));
  }
  auto flows = simnic::SimEswitch::readDevice(dir);
  if (!flows) return fail(flows.error().field, flows.error().message);
  std::cout << simnic::deviceRulesJson(*flows, verbose).dump() << "\n";
  return kExitOk;
}

int run(int argc, char** argv) {
  const auto isHelp = [](std::string_view a) { return a == "--help" || a == "-h"; };
  if (argc == 2 && isHelp(argv[1])) {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  if (argc < 3 || std::strcmp(argv[1], "dump") != 0) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  bool verbose = false;
  std::string dir;
  std::size_t dirs = 0;
  for (int i = 2; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (isHelp(a)) {
      std::fputs(kUsage, stdout);
      return kExitOk;
    }
    if (a == "--verbose" || a == "-v") {
      verbose = true;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "nicoffload-simnic: error: dump: unknown option '%s'\n%s",
                   printable(a).c_str(), kUsage);
      return kExitUsage;
    } else {
      dir = a;
      ++dirs;
    }
  }
  if (dirs != 1) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  return dump(dir, verbose);
}

}  // namespace

// The process edge: nothing escapes as an abort.
int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nicoffload-simnic: error: internal: %s\n",
                 nicoffload::printable(e.what()).c_str());
  } catch (...) {
    std::fprintf(stderr, "nicoffload-simnic: error: internal: unknown exception\n");
  }
  return kExitInternal;
}
