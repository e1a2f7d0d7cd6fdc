// nicoffloadctl host-check (host_check.h): the checks, the real HostProbe,
// and the subcommand.
#include "host_check.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <netlink/netlink.h>
#include <netlink/route/rule.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "nicoffload/common/file_read.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/offload/netns.h"
#include "nicoffload/offload/nl_channel.h"
#include "nicoffload/offload/nl_socket.h"

extern char** environ;

namespace nicoffload::cli {

namespace {

// Figures the lines rest on (issue 16: "vDPA interfaces need libvirt >= 6.9
// and QEMU >= 5.1"). libvirt's <interface type='vdpa'> came with "conf: Add
// support for vDPA network devices" (libvir-list, 2020-09, released in 6.9);
// QEMU's vhost-vdpa net backend (-netdev type=vhost-vdpa) with the
// "vhost-vdpa" series (qemu-devel, 2020-04, released in 5.1).
constexpr int kLibvirtVdpaMajor = 6, kLibvirtVdpaMinor = 9;
constexpr int kQemuVdpaMajor = 5, kQemuVdpaMinor = 1;
constexpr std::uint32_t kMainTable = 254;  // RT_TABLE_MAIN
constexpr int kVersionTimeoutMs = 5000;    // a --version run that hangs is "cannot run"

// Files under --sysfs-root / --proc-root: read bounded (a FIFO or a device
// planted there must not hang or fill the check).
constexpr std::size_t kMaxProbeFileBytes = 1u << 20;

std::string readFirstLine(const std::string& path) {
  auto text = readRegularFile(path, kMaxProbeFileBytes);
  if (!text) return {};
  std::string line = text->substr(0, text->find('\n'));
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r' || line.back() == ' '))
    line.pop_back();
  return line;
}

bool isDir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool isExecutable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// "0x15b3" -> "15b3".
std::string pciIdPart(const std::string& raw) {
  std::string s = raw;
  if (s.rfind("0x", 0) == 0 || s.rfind("0X", 0) == 0) s = s.substr(2);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// A value from /proc/meminfo ("HugePages_Total:      16"), or -1.
long long meminfoValue(const std::string& proc_root, const std::string& key) {
  auto text = readRegularFile(proc_root + "/meminfo", kMaxProbeFileBytes);
  if (!text) return -1;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) != 0) continue;
    std::istringstream rest(line.substr(key.size() + 1));
    long long v = -1;
    rest >> v;
    return rest ? v : -1;
  }
  return -1;
}

// Can a file be made in `dir`? Asked by making one: access() says yes to root
// even on a read-only file system.
Status probeWritable(const std::string& dir) {
  std::string tmpl = dir + "/.nicoffload-host-check.XXXXXX";
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return makeError(ErrorCode::kIo, "state_dir", dir, std::strerror(errno));
  ::close(fd);
  ::unlink(tmpl.c_str());
  return {};
}

struct Lines {
  std::vector<CheckLine> v;
  void add(std::string id, std::string check, CheckStatus status, bool required, std::string found,
           std::string fix = {}) {
    if (status == CheckStatus::kOk) fix.clear();
    v.push_back(
        {std::move(id), std::move(check), status, required, std::move(found), std::move(fix)});
  }
};

void checkModule(Lines& out, const HostRoots& roots, const std::string& module,
                 const std::string& why, const std::string& fix) {
  const bool loaded = isDir(roots.sys + "/module/" + module);
  out.add("module." + module, "kernel module " + module + " (" + why + ")",
          loaded ? CheckStatus::kOk : CheckStatus::kMissing, true, loaded ? "loaded" : "not loaded",
          fix);
}

void checkGenl(Lines& out, HostProbe& probe, const std::string& family, const std::string& why,
               const std::string& fix) {
  auto has = probe.hasGenlFamily(family);
  const std::string check = "generic netlink family " + family + " (" + why + ")";
  if (!has) {
    out.add("genl." + family, check, CheckStatus::kMissing, true,
            "cannot ask the kernel: " + has.error().describe(), fix);
    return;
  }
  out.add("genl." + family, check, *has ? CheckStatus::kOk : CheckStatus::kMissing, true,
          *has ? "present" : "not in this kernel", fix);
}

void checkVersion(Lines& out, const std::string& id, const std::string& name,
                  Result<std::string> version, bool need_vdpa, int major, int minor,
                  const std::string& install_fix) {
  const std::string min = std::to_string(major) + "." + std::to_string(minor);
  const std::string check =
      name + (need_vdpa ? " >= " + min + " (vDPA interfaces)" : " (the libvirt hook)");
  if (!version) {
    const bool absent = version.error().code == ErrorCode::kNotFound;
    out.add(id, check, CheckStatus::kMissing, need_vdpa,
            absent ? "not installed" : "cannot read its version: " + version.error().message,
            install_fix);
    return;
  }
  if (need_vdpa && !versionAtLeast(*version, major, minor)) {
    out.add(id, check, CheckStatus::kWrong, true, *version,
            "upgrade " + name + " to " + min +
                " or later, or set backends.vdpa "
                "to dpdk or none");
    return;
  }
  out.add(id, check, CheckStatus::kOk, need_vdpa, *version);
}

}  // namespace

const char* toString(CheckStatus s) {
  switch (s) {
    case CheckStatus::kOk:
      return "ok";
    case CheckStatus::kMissing:
      return "missing";
    case CheckStatus::kWrong:
      return "wrong";
  }
  return "?";
}

std::string extractVersion(const std::string& text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) continue;
    if (i > 0 && (std::isalnum(static_cast<unsigned char>(text[i - 1])) || text[i - 1] == '.'))
      continue;
    std::size_t j = i;
    int dots = 0;
    while (j < text.size() && (std::isdigit(static_cast<unsigned char>(text[j])) ||
                               (text[j] == '.' && j + 1 < text.size() &&
                                std::isdigit(static_cast<unsigned char>(text[j + 1]))))) {
      if (text[j] == '.') ++dots;
      ++j;
    }
    if (dots >= 1) return text.substr(i, j - i);
  }
  return {};
}

bool versionAtLeast(const std::string& version, int major, int minor) {
  int ma = -1, mi = 0;
  if (std::sscanf(version.c_str(), "%d.%d", &ma, &mi) < 1 || ma < 0) return false;
  return ma > major || (ma == major && mi >= minor);
}

std::vector<CheckLine> runHostChecks(const model::HostConfig& host, const model::HwProfile* profile,
                                     const HostRoots& roots, HostProbe& probe) {
  using model::FlowBackendKind;
  using model::NicBackendKind;
  using model::SoftwarePathKind;
  using model::VdpaKind;
  Lines out;
  const bool real_nic = host.nic_backend == NicBackendKind::kSysfs;
  const bool dpdk_flow = host.flow_backend == FlowBackendKind::kDpdk;
  const bool kernel_vdpa = host.vdpa_backend == VdpaKind::kKernel;
  const bool dpdk_vdpa = host.vdpa_backend == VdpaKind::kDpdk;
  const bool hardware = real_nic || dpdk_flow || kernel_vdpa || dpdk_vdpa;
  const std::string pf = host.uplink_pci;
  const std::string pf_dir = roots.sys + "/bus/pci/devices/" + pf;

  if (hardware) {
    checkModule(out, roots, "mlx5_core", "the ConnectX PF and its VFs",
                "modprobe mlx5_core (CONFIG_MLX5_CORE); list it in /etc/modules-load.d/ "
                "to load it at boot");
  }
  if (kernel_vdpa) {
    checkModule(out, roots, "mlx5_vdpa", "vDPA devices on the VFs, backends.vdpa = kernel",
                "modprobe mlx5_vdpa (CONFIG_MLX5_VDPA_NET; ConnectX-6 Dx and newer)");
    checkModule(out, roots, "vhost_vdpa", "/dev/vhost-vdpa-N for QEMU, backends.vdpa = kernel",
                "modprobe vhost_vdpa");
  }
  if (dpdk_vdpa) {
    out.add("vhost_user", "vhost-user sockets (backends.vdpa = dpdk: DPDK's mlx5 vDPA driver)",
            CheckStatus::kOk, true, "no kernel module needed; QEMU connects to the socket");
  }
  if (real_nic) {
    checkGenl(out, probe, "devlink", "eswitch switchdev mode, backends.nic = sysfs",
              "a kernel with devlink (CONFIG_NET_DEVLINK), and mlx5_core loaded");
  }
  if (kernel_vdpa) {
    checkGenl(out, probe, "vdpa", "vDPA device management, backends.vdpa = kernel",
              "modprobe vdpa (CONFIG_VDPA) and mlx5_vdpa");
  }

  if (real_nic || dpdk_flow) {
    const std::string check = "uplink PF " + pf + " (uplink.pci)";
    if (!isDir(pf_dir)) {
      out.add("pf.pci", check, CheckStatus::kMissing, true, "no such PCI device",
              "set uplink.pci to the ConnectX PF (lspci -D -d 15b3:) and load mlx5_core");
    } else {
      const std::string id = pciIdPart(readFirstLine(pf_dir + "/vendor")) + ":" +
                             pciIdPart(readFirstLine(pf_dir + "/device"));
      if (!profile) {
        out.add("pf.pci", check, CheckStatus::kOk, true, id + " (not compared: no profile loaded)");
      } else if (std::find(profile->pci_ids.begin(), profile->pci_ids.end(), id) ==
                 profile->pci_ids.end()) {
        std::string ids;
        for (const auto& p : profile->pci_ids) ids += (ids.empty() ? "" : ", ") + p;
        out.add(
            "pf.pci", check, CheckStatus::kWrong, true,
            id + ", but profile " + profile->name + " is for " + (ids.empty() ? "no PCI id" : ids),
            "set hw_profile to the profile of this NIC (hw-profiles/*.json, pci_ids), or "
            "uplink.pci "
            "to the NIC profile " +
                profile->name + " describes");
      } else {
        out.add("pf.pci", check, CheckStatus::kOk, true, id + " (" + profile->model + ")");
      }
    }
  }
  if (real_nic) {
    const std::string check =
        "SR-IOV on " + pf + " (uplink.vf_count = " + std::to_string(host.vf_count) + ")";
    const std::string total = readFirstLine(pf_dir + "/sriov_totalvfs");
    if (total.empty()) {
      out.add("pf.sriov", check, CheckStatus::kMissing, true, "no sriov_totalvfs",
              "enable SR-IOV in the BIOS and the NIC firmware (mlxconfig -d " + pf +
                  " set SRIOV_EN=1 NUM_OF_VFS=" + std::to_string(host.vf_count) +
                  ", then a cold reboot)");
    } else if (std::strtoul(total.c_str(), nullptr, 10) < host.vf_count) {
      out.add("pf.sriov", check, CheckStatus::kWrong, true, "sriov_totalvfs = " + total,
              "raise NUM_OF_VFS in the firmware (mlxconfig -d " + pf + " set NUM_OF_VFS=" +
                  std::to_string(host.vf_count) + ") or lower uplink.vf_count to " + total);
    } else {
      out.add("pf.sriov", check, CheckStatus::kOk, true, "sriov_totalvfs = " + total);
    }
  }
  if (hardware) {
    std::vector<std::string> units;
    if (isDir(roots.sys + "/class/iommu")) {
      for (const auto& e : std::filesystem::directory_iterator(roots.sys + "/class/iommu")) {
        units.push_back(e.path().filename().string());
      }
    }
    std::sort(units.begin(), units.end());
    std::string found = units.empty() ? "no IOMMU in /sys/class/iommu" : "enabled (";
    for (std::size_t i = 0; i < units.size() && i < 3; ++i) found += (i ? ", " : "") + units[i];
    if (!units.empty()) found += units.size() > 3 ? ", ...)" : ")";
    out.add("iommu", "IOMMU (VFs and vDPA devices DMA through it)",
            units.empty() ? CheckStatus::kMissing : CheckStatus::kOk, true, found,
            "enable VT-d / AMD-Vi in the BIOS and boot with intel_iommu=on iommu=pt (Intel) or "
            "iommu=pt (AMD)");
  }
  if (dpdk_flow || dpdk_vdpa) {
    const bool no_huge = std::find(host.dpdk_eal_args.begin(), host.dpdk_eal_args.end(),
                                   "--no-huge") != host.dpdk_eal_args.end();
    const std::string check =
        "hugepages (DPDK, backends." + std::string(dpdk_flow ? "flow" : "vdpa") + " = dpdk)";
    const long long total = meminfoValue(roots.proc, "HugePages_Total");
    const long long free = meminfoValue(roots.proc, "HugePages_Free");
    if (no_huge && !dpdk_vdpa) {
      out.add("hugepages", check, CheckStatus::kOk, true,
              "not needed: dpdk.eal_args has --no-huge");
    } else if (total <= 0) {
      out.add("hugepages", check, CheckStatus::kMissing, true,
              total < 0 ? "no HugePages_Total in /proc/meminfo" : "HugePages_Total = 0",
              "reserve them: hugepagesz=1G hugepages=N on the kernel command line, or "
              "echo N > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages; hugetlbfs on "
              "/dev/hugepages");
    } else if (free <= 0) {
      out.add("hugepages", check, CheckStatus::kWrong, true,
              "HugePages_Total = " + std::to_string(total) + ", none free",
              "reserve more hugepages, or stop what holds them");
    } else {
      out.add("hugepages", check, CheckStatus::kOk, true,
              "HugePages_Total = " + std::to_string(total) + ", free " + std::to_string(free));
    }
  }

  checkVersion(out, "libvirt", "libvirt", probe.libvirtVersion(), kernel_vdpa, kLibvirtVdpaMajor,
               kLibvirtVdpaMinor, "apt-get install libvirt-daemon-system");
  checkVersion(out, "qemu", "QEMU", probe.qemuVersion(), kernel_vdpa, kQemuVdpaMajor,
               kQemuVdpaMinor,
               "apt-get install qemu-system-x86 (or your architecture's qemu-system package)");

  {
    const bool zebra = isExecutable(roots.frr_dir + "/zebra");
    const bool bgpd = isExecutable(roots.frr_dir + "/bgpd");
    std::string found = zebra && bgpd ? "zebra and bgpd in " + roots.frr_dir
                                      : std::string("no ") +
                                            (zebra  ? "bgpd"
                                             : bgpd ? "zebra"
                                                    : "zebra, bgpd") +
                                            " in " + roots.frr_dir;
    // Required when the host learns routes from the kernel (kernel.learn_routes):
    // FRR is what installs and announces them (packaging/frr/frr.conf). Another
    // routing daemon would do too, which the fix says.
    out.add("frr", "FRR (required with kernel.learn_routes: bgpd learns the other hosts' /32s, "
                   "zebra installs them and announces ours)",
            zebra && bgpd ? CheckStatus::kOk : CheckStatus::kMissing, host.learn_routes, found,
            "apt-get install frr, enable bgpd in /etc/frr/daemons and install "
            "/usr/share/nicoffload/packaging/frr/frr.conf (or run the routing daemon you use "
            "instead, and ignore this line)");
  }

  if (host.software_path == SoftwarePathKind::kKernel) {
    const std::string table = std::to_string(host.route_table);
    const std::string where = host.kernel_netns.empty() ? "" : " in namespace " + host.kernel_netns;
    const std::string check = "ip rule for kernel.route_table " + table + where;
    auto tables = probe.ipv4RuleTables(host.kernel_netns);
    if (!tables) {
      out.add("ip_rule", check, CheckStatus::kMissing, true,
              "cannot read the rules: " + tables.error().describe(),
              host.kernel_netns.empty()
                  ? "run host-check as root"
                  : "create the namespace: ip netns add " + host.kernel_netns);
    } else if (std::find(tables->begin(), tables->end(), host.route_table) != tables->end()) {
      out.add("ip_rule", check, CheckStatus::kOk, true, "a rule looks up table " + table);
    } else {
      out.add("ip_rule", check, CheckStatus::kMissing, true, "no rule looks up table " + table,
              host.route_table == kMainTable
                  ? "restore the default rule: ip rule add priority 32766 lookup main"
                  : "ip rule add priority 1000 lookup " + table +
                        " (and make it persistent in your "
                        "network config), or set kernel.route_table to 254");
    }
  }

  {
    const std::string check = "state directory " + host.state_dir + " writable";
    struct stat st {};
    if (::stat(host.state_dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
      out.add("state_dir", check, CheckStatus::kWrong, true, "exists, but is not a directory",
              "remove it, or set state_dir to a directory");
    } else if (isDir(host.state_dir)) {
      auto w = probeWritable(host.state_dir);
      out.add("state_dir", check, w ? CheckStatus::kOk : CheckStatus::kWrong, true,
              w ? "writable" : "not writable: " + w.error().message,
              "make it writable for root (a read-only mount?), or set state_dir");
    } else {
      // systemd's StateDirectory= (the unit) makes /var/lib/nicoffload; the
      // daemon makes any other one when its parent is writable.
      const std::string parent = std::filesystem::path(host.state_dir).parent_path().string();
      auto w =
          isDir(parent)
              ? probeWritable(parent)
              : Status(makeError(ErrorCode::kNotFound, "state_dir", parent, "no such directory"));
      out.add("state_dir", check, w ? CheckStatus::kOk : CheckStatus::kMissing, true,
              w ? "absent; " + parent + " is writable, so it can be made"
                : "absent, and " + parent + " is not writable",
              "mkdir -p -m 0700 " + host.state_dir);
    }
  }
  return std::move(out.v);
}

bool hostReady(const std::vector<CheckLine>& lines) {
  return std::all_of(lines.begin(), lines.end(), [](const CheckLine& l) {
    return !l.required || l.status == CheckStatus::kOk;
  });
}

nlohmann::json toJson(const std::vector<CheckLine>& lines, const std::string& config_path) {
  nlohmann::json checks = nlohmann::json::array();
  for (const auto& l : lines) {
    nlohmann::json j = {{"id", l.id},
                        {"check", l.check},
                        {"status", toString(l.status)},
                        {"required", l.required},
                        {"found", l.found}};
    if (!l.fix.empty()) j["fix"] = l.fix;
    checks.push_back(std::move(j));
  }
  return {{"config", config_path}, {"ready", hostReady(lines)}, {"checks", std::move(checks)}};
}

std::string renderText(const std::vector<CheckLine>& lines) {
  std::string s;
  std::size_t counts[3] = {0, 0, 0};
  for (const auto& l : lines) {
    ++counts[static_cast<int>(l.status)];
    char head[16];
    std::snprintf(head, sizeof head, "%-8s", toString(l.status));
    s += head + l.check + ": " + l.found + (l.required ? "" : " (optional)") + "\n";
    if (!l.fix.empty()) s += "        fix: " + l.fix + "\n";
  }
  s += "host-check: " + std::to_string(counts[0]) + " ok, " + std::to_string(counts[1]) +
       " missing, " + std::to_string(counts[2]) + " wrong; " +
       (hostReady(lines) ? "ready" : "NOT ready (a required line is not ok)") + "\n";
  return s;
}

// --- the real host -------------------------------------------------------------

namespace {

// Runs `argv` (argv[0] an absolute path, no shell, no PATH search) with
// stdin and stderr on /dev/null and returns its stdout, at most 64 KiB, within
// kVersionTimeoutMs. kNotFound when argv[0] is not an executable file.
Result<std::string> runForOutput(const std::vector<std::string>& argv) {
  if (!isExecutable(argv.at(0)))
    return makeError(ErrorCode::kNotFound, "program", argv[0], "not installed");
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0)
    return makeError(ErrorCode::kIo, "program", argv[0], std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  char lang[] = "LC_ALL=C";
  char* env[] = {lang, nullptr};
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0].c_str(), &fa, nullptr, args.data(), env);
  posix_spawn_file_actions_destroy(&fa);
  ::close(pipefd[1]);
  if (rc != 0) {
    ::close(pipefd[0]);
    return makeError(ErrorCode::kIo, "program", argv[0],
                     std::string("cannot run: ") + std::strerror(rc));
  }
  std::string out;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kVersionTimeoutMs);
  bool timed_out = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{pipefd[0], POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      timed_out = n == 0;
      break;
    }
    char buf[4096];
    const ssize_t got = ::read(pipefd[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    if (out.size() < (64u << 10)) out.append(buf, static_cast<std::size_t>(got));
  }
  ::close(pipefd[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    return makeError(ErrorCode::kBusy, "program", argv[0], "no answer to --version in 5 s");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return makeError(ErrorCode::kIo, "program", argv[0], "--version failed");
  return out;
}

Result<std::string> firstVersionOf(const std::vector<std::string>& programs) {
  Result<std::string> last =
      makeError(ErrorCode::kNotFound, "program", programs.front(), "not installed");
  for (const auto& p : programs) {
    auto out = runForOutput({p, "--version"});
    if (!out) {
      if (out.error().code != ErrorCode::kNotFound) last = out;
      continue;
    }
    auto v = extractVersion(*out);
    if (v.empty())
      return makeError(ErrorCode::kInvalidValue, "program", p,
                       "no version in its --version output");
    return v;
  }
  return last;
}

class SystemHostProbe final : public HostProbe {
 public:
  Result<bool> hasGenlFamily(const std::string& name) override {
    auto ch = offload::nl::Channel::open(NETLINK_GENERIC);
    if (!ch) return ch.error();
    auto id = ch->resolveFamily(name, "");
    if (id) return true;
    if (id.error().code == ErrorCode::kUnsupported) return false;
    return id.error();
  }

  // libvirtd (monolithic) or virtqemud (modular daemons): the daemon that
  // starts QEMU is the one whose version matters.
  Result<std::string> libvirtVersion() override {
    return firstVersionOf({"/usr/sbin/libvirtd", "/usr/sbin/virtqemud"});
  }

  Result<std::string> qemuVersion() override {
    utsname u{};
    std::string machine = ::uname(&u) == 0 ? u.machine : "x86_64";
    return firstVersionOf(
        {"/usr/bin/qemu-system-" + machine, "/usr/libexec/qemu-kvm", "/usr/bin/kvm"});
  }

  Result<std::vector<std::uint32_t>> ipv4RuleTables(const std::string& netns) override {
    offload::NetnsGuard guard(netns);
    if (!guard.ok()) return guard.error();
    auto sock = offload::nl::openSocket(NETLINK_ROUTE);
    if (!sock)
      return makeError(ErrorCode::kIo, "ip rule", "", "FIB rule dump failed: " + sock.error().message);
    std::vector<std::uint32_t> tables;
    nl_cache* cache = nullptr;
    if (const int err = rtnl_rule_alloc_cache(sock->get(), AF_INET, &cache); err < 0)
      return makeError(ErrorCode::kIo, "ip rule", "",
                       std::string("FIB rule dump failed: ") + nl_geterror(err));
    for (nl_object* o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
      tables.push_back(rtnl_rule_get_table(reinterpret_cast<rtnl_rule*>(o)));
    }
    nl_cache_free(cache);
    return tables;
  }
};

}  // namespace

std::unique_ptr<HostProbe> makeSystemHostProbe() { return std::make_unique<SystemHostProbe>(); }

// --- the subcommand ------------------------------------------------------------

CLI::App* addHostCheckCommand(CLI::App& app, HostCheckArgs& args) {
  auto* cmd = app.add_subcommand("host-check",
                                 "preflight: does this host have what the host config needs "
                                 "(modules, devlink/vdpa, the PF, SR-IOV, "
                                 "IOMMU, hugepages, libvirt/QEMU, FRR, ip rule, state dir)? Exit 1 "
                                 "when a required line is not ok");
  cmd->add_option("--config", args.config, "host config (JSON)")->capture_default_str();
  cmd->add_option("--profile-dir", args.profile_dir, "directory of named hardware profiles");
  cmd->add_flag("--json", args.json, "print the report as JSON");
  cmd->add_option("--sysfs-root", args.roots.sys, "where sysfs is mounted")->capture_default_str();
  cmd->add_option("--proc-root", args.roots.proc, "where procfs is mounted")->capture_default_str();
  cmd->add_option("--frr-dir", args.roots.frr_dir, "where FRR's daemons are")
      ->capture_default_str();
  return cmd;
}

int runHostCheckCommand(const HostCheckArgs& args, const std::string& default_profile_dir) {
  auto host = model::loadHostConfig(args.config);
  if (!host) {
    std::fprintf(stderr, "nicoffloadctl: error: %s\n", host.error().describe().c_str());
    return 2;
  }
  std::optional<model::HwProfile> profile;
  if (host->hw_profile != "auto") {
    auto p =
        model::loadHostProfile(host->hw_profile, args.config,
                               args.profile_dir.empty() ? default_profile_dir : args.profile_dir);
    if (!p) {
      std::fprintf(stderr, "nicoffloadctl: error: %s\n", p.error().describe().c_str());
      return 2;
    }
    if (auto fits = model::checkHostForProfile(*host, *p); !fits) {
      Error e = fits.error();
      e.field = args.config + ": " + e.field;
      std::fprintf(stderr, "nicoffloadctl: error: %s\n", e.describe().c_str());
      return 2;
    }
    profile = std::move(p).value();
  }
  auto probe = makeSystemHostProbe();
  const auto lines = runHostChecks(*host, profile ? &*profile : nullptr, args.roots, *probe);
  if (args.json) {
    std::printf("%s\n", toJson(lines, args.config).dump(2).c_str());
  } else {
    std::printf("host %s (%s): flow %s, software path %s, vdpa %s, nic %s\n", host->name.c_str(),
                args.config.c_str(), model::toString(host->flow_backend),
                model::toString(host->software_path), model::toString(host->vdpa_backend),
                model::toString(host->nic_backend));
    std::printf("%s", renderText(lines).c_str());
  }
  return hostReady(lines) ? 0 : 1;
}

}  // namespace nicoffload::cli
