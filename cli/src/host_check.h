// nicoffloadctl host-check: a preflight report of what the host config needs
// from this host, before nicoffloadd runs on it.
//
// Each line is ok, missing or wrong, with what was found and, when not ok, the
// fix. Which lines are required follows the host config's backends: the
// hardware lines (mlx5 modules, devlink, the PF's PCI id, SR-IOV, IOMMU) when
// the NIC, the flow or the vDPA backend is real; vhost_vdpa, mlx5_vdpa, the
// vdpa genl family and libvirt >= 6.9 / QEMU >= 5.1 for kernel vDPA;
// hugepages for DPDK (flow or vDPA); the `ip rule` of the route table for the
// kernel software path; the state directory always. FRR is reported, never
// required (nothing in the host config says that routes are learned).
//
// Files are read under injectable roots (sysfs, procfs, FRR's directory) and
// everything else (generic netlink, the libvirt and QEMU versions, the FIB
// rules) goes through HostProbe, so every line is unit-tested against a fake
// host; makeSystemHostProbe() asks the real one.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/model/intent.h"

namespace CLI {
class App;
}

namespace nicoffload::cli {

enum class CheckStatus : std::uint8_t { kOk, kMissing, kWrong };
const char* toString(CheckStatus s);

struct CheckLine {
  std::string id;     // stable key for scripts, e.g. "module.mlx5_core", "genl.devlink"
  std::string check;  // what is checked, e.g. "kernel module mlx5_core"
  CheckStatus status = CheckStatus::kOk;
  bool required = true;  // a required line that is not ok fails the check
  std::string found;     // what the host has, e.g. "loaded", "15b3:1017", "not in this kernel"
  std::string fix;       // what to do; empty when ok
};

// What host-check asks the host beyond files. Errors are the probe's own
// failure (cannot open a netlink socket...), reported on the line.
class HostProbe {
 public:
  virtual ~HostProbe() = default;
  // Does the kernel have generic netlink family `name` (genl_ctrl_resolve)?
  virtual Result<bool> hasGenlFamily(const std::string& name) = 0;
  // The libvirt daemon's version, e.g. "9.0.0". kNotFound: not installed.
  virtual Result<std::string> libvirtVersion() = 0;
  // QEMU's version, e.g. "7.2.19". kNotFound: not installed.
  virtual Result<std::string> qemuVersion() = 0;
  // The tables the IPv4 policy rules of namespace `netns` ("" = this one)
  // look up (what `ip rule` lists as "lookup N").
  virtual Result<std::vector<std::uint32_t>> ipv4RuleTables(const std::string& netns) = 0;
};

// The real host: libnl genl and rtnetlink, and the libvirt and QEMU binaries
// run with an argument vector (`--version`), never through a shell.
std::unique_ptr<HostProbe> makeSystemHostProbe();

// Where host-check reads files; tests point these at a fake tree.
struct HostRoots {
  std::string sys = "/sys";
  std::string proc = "/proc";
  std::string frr_dir = "/usr/lib/frr";  // zebra and bgpd (Debian's frr package)
};

// Every line for `host`. `profile` is null when the host's hw_profile could
// not be loaded (e.g. "auto"): the PCI id is then not compared.
std::vector<CheckLine> runHostChecks(const model::HostConfig& host, const model::HwProfile* profile,
                                     const HostRoots& roots, HostProbe& probe);

// True when every required line is ok.
bool hostReady(const std::vector<CheckLine>& lines);

nlohmann::json toJson(const std::vector<CheckLine>& lines, const std::string& config_path);
std::string renderText(const std::vector<CheckLine>& lines);

// "9.0.0" >= "6.9": numeric, component by component. False when `version`
// holds no number.
bool versionAtLeast(const std::string& version, int major, int minor);
// The first "N.N[.N]" in a program's --version output, or "".
std::string extractVersion(const std::string& text);

// The `host-check` subcommand of nicoffloadctl.
struct HostCheckArgs {
  std::string config = "/etc/nicoffload/host.json";
  std::string profile_dir;  // default: the binary's profile directory
  bool json = false;
  HostRoots roots;
};
CLI::App* addHostCheckCommand(CLI::App& app, HostCheckArgs& args);
// Exit status: 0 ready; 1 a required line is missing or wrong; 2 the config
// or its profile cannot be read.
int runHostCheckCommand(const HostCheckArgs& args, const std::string& default_profile_dir);

}  // namespace nicoffload::cli
