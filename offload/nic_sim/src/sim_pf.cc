#include "nicoffload/offload/sim_pf.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <unordered_map>

#include "nicoffload/common/journal.h"
#include "nicoffload/common/stable_hash.h"
#include "nicoffload/offload/sysfs_nic_backend.h"

namespace nicoffload::offload {

namespace fs = std::filesystem;
using model::EswitchMode;

namespace {

constexpr const char* kNicDriver = "mlx5_core";
constexpr const char* kVfioDriver = "vfio-pci";
constexpr const char* kVirtioVdpa = "virtio_vdpa";
constexpr const char* kVhostVdpa = "vhost_vdpa";
constexpr unsigned kFirstVfOffset = 2;  // sriov_offset of a ConnectX PF
constexpr unsigned kVfStride = 1;       // sriov_stride

Error kernelError(int err, const std::string& what, const std::string& text) {
  std::string message = what + ": " + std::strerror(err);
  if (!text.empty()) message += " (sim kernel: " + text + ")";
  return makeError(errorCodeForErrno(err), what, "", std::move(message));
}

std::string trim(std::string_view v) {
  while (!v.empty() && (v.back() == '\n' || v.back() == ' ' || v.back() == '\t'))
    v.remove_suffix(1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  return std::string(v);
}

std::vector<std::string> split(const std::string& rel) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= rel.size()) {
    const std::size_t end = rel.find('/', start);
    const std::string part =
        rel.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!part.empty()) out.push_back(part);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

// "DDDD:BB:DD.F" of VF `i` of `pf`: routing ID = PF's + offset + i * stride.
std::string vfAddress(const std::string& pf, unsigned i) {
  unsigned domain = 0, bus = 0, dev = 0, fn = 0;
  std::sscanf(pf.c_str(), "%x:%x:%x.%x", &domain, &bus, &dev, &fn);
  const unsigned rid = (bus << 8 | dev << 3 | fn) + kFirstVfOffset + i * kVfStride;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%x", domain, (rid >> 8) & 0xFF, (rid >> 3) & 0x1F,
                rid & 7);
  return buf;
}

struct SimVf {
  std::string driver;    // bound driver; empty = unbound
  std::string override;  // driver_override; empty = none
  MacAddr mac;
  bool trust = false;
  bool spoofchk = false;  // mlx5 VFs start with spoof checking off
  bool operator==(const SimVf&) const = default;
};

struct SimVdpa {
  SimVdpaDevice dev;
  std::uint16_t vf = 0;
  std::string driver;  // virtio_vdpa, vhost_vdpa, or empty
  std::string override;
  std::optional<unsigned> minor;  // vhost-vdpa-<minor> when bound to vhost_vdpa
  bool operator==(const SimVdpa&) const = default;
};

// The state as persisted: what a snapshot holds and a journal record changes.
struct SimState {
  EswitchMode mode = EswitchMode::kLegacy;
  bool autoprobe = true;
  std::vector<SimVf> vfs;
  std::map<std::string, SimVdpa> vdpa;
};

nlohmann::json vfJson(const SimVf& v) {
  return {{"driver", v.driver},
          {"override", v.override},
          {"mac", v.mac.str()},
          {"trust", v.trust},
          {"spoofchk", v.spoofchk}};
}

SimVf vfFromJson(const nlohmann::json& j) {
  SimVf v;
  v.driver = j.at("driver").get<std::string>();
  v.override = j.at("override").get<std::string>();
  v.mac = MacAddr::parse(j.at("mac").get<std::string>()).value_or(MacAddr{});
  v.trust = j.at("trust").get<bool>();
  v.spoofchk = j.at("spoofchk").get<bool>();
  return v;
}

nlohmann::json vdpaJson(const std::string& name, const SimVdpa& v) {
  nlohmann::json j = {{"name", name},
                      {"vf", v.vf},
                      {"mac", v.dev.mac.str()},
                      {"mtu", v.dev.mtu},
                      {"max_vqp", v.dev.max_vqp},
                      {"driver", v.driver},
                      {"override", v.override}};
  if (v.minor) j["minor"] = *v.minor;
  return j;
}

SimVdpa vdpaFromJson(const nlohmann::json& j, const std::string& pf) {
  SimVdpa v;
  v.vf = j.at("vf").get<std::uint16_t>();
  v.dev.name = j.at("name").get<std::string>();
  v.dev.mgmt_dev = vfAddress(pf, v.vf);
  v.dev.mac = MacAddr::parse(j.at("mac").get<std::string>()).value_or(MacAddr{});
  v.dev.mtu = j.at("mtu").get<std::uint16_t>();
  v.dev.max_vqp = j.at("max_vqp").get<std::uint16_t>();
  v.driver = j.at("driver").get<std::string>();
  v.override = j.at("override").get<std::string>();
  if (j.contains("minor")) v.minor = j.at("minor").get<unsigned>();
  return v;
}

// Applies one journal record (absolute values, so replaying is exact).
void applyRecord(const nlohmann::json& r, SimState& st, const std::string& pf) {
  if (r.contains("mode"))
    st.mode = r["mode"].get<std::string>() == "switchdev" ? EswitchMode::kSwitchdev
                                                          : EswitchMode::kLegacy;
  if (r.contains("autoprobe")) st.autoprobe = r["autoprobe"].get<bool>();
  if (r.contains("numvfs")) st.vfs.resize(r["numvfs"].get<std::size_t>());
  if (r.contains("vfs"))
    for (const auto& [index, vf] : r["vfs"].items()) {
      const auto i = static_cast<std::size_t>(std::stoul(index));
      if (i >= st.vfs.size()) st.vfs.resize(i + 1);
      st.vfs[i] = vfFromJson(vf);
    }
  if (r.contains("vdpa_del"))
    for (const auto& name : r["vdpa_del"]) st.vdpa.erase(name.get<std::string>());
  if (r.contains("vdpa"))
    for (const auto& j : r["vdpa"]) {
      auto v = vdpaFromJson(j, pf);
      st.vdpa[v.dev.name] = std::move(v);
    }
}

// Journal records between snapshots; past this many, the next commit writes a
// snapshot and empties the journal.
constexpr std::size_t kJournalCompactAfter = 4096;

}  // namespace

// The simulated kernel. Every public operation locks; the tree on disk and
// the persisted state are updated before the operation returns.
//
// Persistence (common/journal.h, Durability::kProcessCrash: like a real
// device, the sim loses its state with the host, not with the controller):
// state.json is a snapshot naming the first journal segment it does not
// hold (journal_seq); the segments state.journal.<seq> hold one record per
// operation since, with the new values of what the operation changed (a
// record cut short by a killed controller is cut off on open). Opening
// replays the segments after the snapshot. An operation costs a record, not
// a rewrite of every VF.
class SimKernel {
 public:
  explicit SimKernel(SimPfOptions opt)
      : opt_(std::move(opt)),
        fs_(opt_.dir),
        journal_(Journal::Options{stateDir().string(), "state.journal.", "state.json", 0,
                                  Durability::kProcessCrash}) {
    pfn_ = *sysfs::pciFunction(opt_.pf_pci);
    for (unsigned i = 0; i < opt_.profile.max_vfs; ++i) {
      vf_addresses_.push_back(vfAddress(opt_.pf_pci, i));
      vf_by_address_.emplace(vf_addresses_.back(), i);
    }
    const auto h = StableHasher().str("sim-switch").str(opt_.pf_pci).finish();
    char buf[20];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    switch_id_ = buf;
  }

  Status init() {
    std::lock_guard lock(mu_);
    std::error_code ec;
    fs::create_directories(opt_.dir, ec);
    if (ec)
      return makeError(ErrorCode::kIo, opt_.dir, "",
                       "cannot create the sim NIC directory: " + ec.message());
    if (fs::exists(statePath())) {
      if (auto s = load(); !s) return s;
    }
    force_snapshot_ = true;  // compacts the journal replayed by load()
    return renderAll();
  }

  // --- accessors
  const SimPfOptions& opt() const { return opt_; }
  FsSysfsIo& fsio() { return fs_; }
  std::mutex& mu() { return mu_; }

  // --- sysfs writes
  Status write(const std::string& rel, std::string_view raw) {
    std::lock_guard lock(mu_);
    const std::string value = trim(raw);
    const auto p = split(rel);
    auto is = [&](std::initializer_list<const char*> prefix) {
      if (p.size() != prefix.size()) return false;
      std::size_t i = 0;
      for (const char* s : prefix) {
        if (s && p[i] != s) return false;
        ++i;
      }
      return true;
    };
    Status s;
    if (is({"bus", "pci", "devices", nullptr, "sriov_numvfs"}) && p[3] == opt_.pf_pci)
      s = setNumVfs(value);
    else if (is({"bus", "pci", "devices", nullptr, "sriov_drivers_autoprobe"}) &&
             p[3] == opt_.pf_pci) {
      autoprobe_ = value != "0";
      file(pciDir(opt_.pf_pci) + "/sriov_drivers_autoprobe", autoprobe_ ? "1" : "0");
    } else if (is({"bus", "pci", "devices", nullptr, "driver_override"}) && vfIndex(p[3])) {
      touchVf(*vfIndex(p[3]));
      auto& vf = vfs_[*vfIndex(p[3])];
      vf.override = value == "(null)" ? std::string() : value;
      file(pciDir(p[3]) + "/driver_override", vf.override.empty() ? "(null)" : vf.override);
    } else if (is({"bus", "pci", "drivers", nullptr, "bind"}))
      s = bindVf(p[3], value);
    else if (is({"bus", "pci", "drivers", nullptr, "unbind"}))
      s = unbindVf(p[3], value);
    else if (is({"bus", "vdpa", "devices", nullptr, "driver_override"}) && vdpa_.count(p[3])) {
      touchVdpa(p[3]);
      vdpa_[p[3]].override = value;
      file(vdpaDir(vdpa_[p[3]]) + "/driver_override", value.empty() ? "(null)" : value);
    } else if (is({"bus", "vdpa", "drivers", nullptr, "bind"}))
      s = bindVdpa(p[3], value);
    else if (is({"bus", "vdpa", "drivers", nullptr, "unbind"}))
      s = unbindVdpa(p[3], value);
    else
      return fs_.write(rel, raw);  // any other attribute: a plain file
    if (!s) return s;
    return commit();
  }

  // --- devlink
  Result<EswitchMode> mode(const std::string& pf) {
    std::lock_guard lock(mu_);
    if (pf != opt_.pf_pci)
      return kernelError(ENODEV, "devlink eswitch get pci/" + pf, "no devlink instance");
    return mode_;
  }

  Status setMode(const std::string& pf, EswitchMode mode) {
    std::lock_guard lock(mu_);
    const std::string what = std::string("devlink eswitch set pci/") + pf + " mode " +
                             (mode == EswitchMode::kSwitchdev ? "switchdev" : "legacy");
    if (pf != opt_.pf_pci) return kernelError(ENODEV, what, "no devlink instance");
    if (auto f = fault("eswitch")) return kernelError(f->first, what, f->second);
    const auto& modes = opt_.profile.eswitch_modes;
    if (std::find(modes.begin(), modes.end(), mode) == modes.end())
      return kernelError(EOPNOTSUPP, what,
                         "profile " + opt_.profile.name + " has no such eswitch mode");
    if (mode == mode_) return Status::success();
    for (std::size_t i = 0; i < vfs_.size(); ++i)
      if (!vfs_[i].driver.empty())
        return kernelError(EBUSY, what,
                           "VF " + std::to_string(i) + " (" + vfAddr(i) + ") is bound to " +
                               vfs_[i].driver +
                               "; unbind the VFs before changing the eswitch mode");
    mode_ = mode;
    for (std::size_t i = 0; i < vfs_.size(); ++i)
      mode_ == EswitchMode::kSwitchdev ? renderRep(i) : removeRep(i);
    renderPfNetdev();
    return commit();
  }

  // --- rtnetlink VF settings
  Result<std::vector<VfLinkInfo>> vfLinks(const std::string& netdev) {
    std::lock_guard lock(mu_);
    if (netdev != opt_.pf_netdev)
      return kernelError(ENODEV, "rtnetlink get VFs of " + netdev, "no such netdev");
    std::vector<VfLinkInfo> out;
    for (std::size_t i = 0; i < vfs_.size(); ++i)
      out.push_back({static_cast<std::uint32_t>(i), vfs_[i].mac, vfs_[i].trust, vfs_[i].spoofchk});
    return out;
  }

  Status setVf(const std::string& netdev, const VfSettings& s) {
    std::lock_guard lock(mu_);
    const std::string what = "rtnetlink set VF " + std::to_string(s.vf) + " of " + netdev;
    if (netdev != opt_.pf_netdev) return kernelError(ENODEV, what, "no such netdev");
    if (auto f = fault("vf-set")) return kernelError(f->first, what, f->second);
    if (s.vf >= vfs_.size()) return kernelError(EINVAL, what, "no VF " + std::to_string(s.vf));
    touchVf(s.vf);
    auto& vf = vfs_[s.vf];
    if (s.mac) {
      if (s.mac->isMulticast()) return kernelError(EINVAL, what, "multicast MAC");
      vf.mac = *s.mac;
    }
    if (s.trust) vf.trust = *s.trust;
    if (s.spoofchk) vf.spoofchk = *s.spoofchk;
    return commit();
  }

  // --- vdpa netlink
  std::vector<std::string> vdpaMgmtDevs() {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    if (!hasVdpa()) return out;
    for (std::size_t i = 0; i < vfs_.size(); ++i)
      if (vfs_[i].driver == kNicDriver) out.push_back(vfAddr(i));
    return out;
  }

  Status vdpaDevNew(const SimVdpaDevice& d) {
    std::lock_guard lock(mu_);
    const std::string what = "vdpa dev add name " + d.name + " mgmtdev pci/" + d.mgmt_dev;
    if (auto f = fault("vdpa-new")) return kernelError(f->first, what, f->second);
    if (!hasVdpa())
      return kernelError(EOPNOTSUPP, what,
                         "profile " + opt_.profile.name + " (" + opt_.profile.model +
                             ") has no vDPA: " + opt_.profile.vdpa_source);
    const auto vf = vfIndex(d.mgmt_dev);
    if (!vf || vfs_[*vf].driver != kNicDriver)
      return kernelError(ENODEV, what, "Fail to find the specified management device");
    if (d.name.empty() || d.name.size() > 31 || d.name.find('/') != std::string::npos)
      return kernelError(EINVAL, what, "bad device name");
    if (vdpa_.count(d.name)) return kernelError(EEXIST, what, "device name in use");
    for (const auto& [name, v] : vdpa_)
      if (v.vf == *vf) return kernelError(EBUSY, what, "VF already has vDPA device " + name);
    if (d.mtu < 68) return kernelError(EINVAL, what, "MTU below 68");
    if (d.max_vqp == 0) return kernelError(EINVAL, what, "max_vqp must be at least 1");
    SimVdpa v{d,
              static_cast<std::uint16_t>(*vf),
              kVirtioVdpa,
              {},
              std::nullopt};  // the first vDPA bus driver loaded
    touchVdpa(d.name);
    vdpa_[d.name] = v;
    renderVdpa(d.name);
    return commit();
  }

  Status vdpaDevDel(const std::string& name) {
    std::lock_guard lock(mu_);
    const std::string what = "vdpa dev del " + name;
    if (auto f = fault("vdpa-del")) return kernelError(f->first, what, f->second);
    if (!vdpa_.count(name)) return kernelError(ENODEV, what, "device not found");
    removeVdpa(name);
    touchVdpa(name);
    vdpa_.erase(name);
    return commit();
  }

  Status vdpaDevSetMac(const std::string& name, const MacAddr& mac) {
    std::lock_guard lock(mu_);
    const std::string what = "vdpa dev set " + name + " mac " + mac.str();
    if (auto f = fault("vdpa-set")) return kernelError(f->first, what, f->second);
    const auto it = vdpa_.find(name);
    if (it == vdpa_.end()) return kernelError(ENODEV, what, "device not found");
    if (it->second.dev.mac == mac) return Status::success();
    touchVdpa(name);
    it->second.dev.mac = mac;  // the config MAC shows in netlink only, not in sysfs: no render
    return commit();
  }

  std::vector<SimVdpaDevice> vdpaDevs() {
    std::lock_guard lock(mu_);
    std::vector<SimVdpaDevice> out;
    for (const auto& [name, v] : vdpa_) out.push_back(v.dev);
    return out;
  }

  void failNext(const std::string& op, int err, const std::string& text) {
    std::lock_guard lock(mu_);
    faults_[op] = {err, text};
  }

 private:
  // --- paths
  std::string pciDir(const std::string& pci) const { return "devices/pci0000:00/" + pci; }
  fs::path abs(const std::string& rel) const { return fs::path(opt_.dir) / rel; }
  fs::path stateDir() const { return abs("nicoffload-sim"); }
  fs::path statePath() const { return abs("nicoffload-sim/state.json"); }
  // The single journal file of nicoffload before common/journal.h: read
  // once (load()), then deleted by the snapshot that follows.
  fs::path oldJournalPath() const { return abs("nicoffload-sim/state.journal"); }
  std::string repName(std::size_t vf) const {
    return "pf" + std::to_string(pfn_) + "vf" + std::to_string(vf);
  }
  std::string vfNetdev(std::size_t vf) const { return opt_.pf_netdev + "v" + std::to_string(vf); }

  // The VFs' PCI addresses, computed once for every VF the profile allows
  // (an operation looks VFs up by address; formatting them each time was
  // most of a port operation's cost on a PF with 500 VFs).
  const std::string& vfAddr(std::size_t i) const { return vf_addresses_.at(i); }
  std::optional<std::size_t> vfIndex(const std::string& pci) const {
    const auto it = vf_by_address_.find(pci);
    if (it == vf_by_address_.end() || it->second >= vfs_.size()) return std::nullopt;
    return it->second;
  }
  bool hasVdpa() const { return opt_.profile.vdpa_kernel || opt_.profile.vdpa_dpdk; }

  std::optional<std::pair<int, std::string>> fault(const std::string& op) {
    const auto it = faults_.find(op);
    if (it == faults_.end()) return std::nullopt;
    auto f = it->second;
    faults_.erase(it);
    return f;
  }

  // --- tree primitives (errors collected in io_error_)
  // Directories known to exist (the tree is the simulated kernel's own: only
  // remove() takes directories away), so that a file costs one open().
  void ensureDir(const fs::path& dir) {
    if (dirs_.count(dir.string())) return;
    std::error_code ec;
    fs::create_directories(dir, ec);
    dirs_.insert(dir.string());
  }
  void file(const std::string& rel, const std::string& content) {
    ensureDir(abs(rel).parent_path());
    if (holds(rel, content + '\n')) return;  // re-rendering in place: unchanged
    std::ofstream out(abs(rel), std::ios::trunc);
    out << content << '\n';
    if (!out) io_error_ = "cannot write " + abs(rel).string();
  }
  // Whether the file `rel` exists with exactly `content`.
  bool holds(const std::string& rel, const std::string& content) const {
    const int fd = ::open(abs(rel).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    std::string now(content.size() + 1, '\0');
    const ssize_t n = ::read(fd, now.data(), now.size());
    ::close(fd);
    return n == static_cast<ssize_t>(content.size()) &&
           now.compare(0, content.size(), content) == 0;
  }
  void link(const std::string& rel, const std::string& target) {
    ensureDir(abs(rel).parent_path());
    const std::string path = abs(rel).string();
    if (::symlink(target.c_str(), path.c_str()) == 0) return;
    // Already there: kept when it points where it should (a restart
    // re-renders the tree in place without churning inodes).
    char now[4096];
    const ssize_t n = ::readlink(path.c_str(), now, sizeof now);
    if (n >= 0 && std::string_view(now, static_cast<std::size_t>(n)) == target) return;
    std::error_code ec;
    fs::remove(path, ec);
    fs::create_symlink(target, path, ec);
    if (ec) io_error_ = "cannot link " + path + ": " + ec.message();
  }
  void remove(const std::string& rel) {
    std::error_code ec;
    if (fs::remove_all(abs(rel), ec) > 0) {
      // Forget the known directories at and below it.
      const std::string gone = abs(rel).string();
      for (auto it = dirs_.lower_bound(gone);
           it != dirs_.end() && it->compare(0, gone.size(), gone) == 0;)
        it = dirs_.erase(it);
    }
  }
  // "../" repeated for the depth of `rel`'s directory, to reach the root.
  static std::string up(const std::string& rel) {
    std::string out;
    for (std::size_t i = 1; i < split(rel).size(); ++i) out += "../";
    return out;
  }

  // --- rendering
  void renderPfNetdev() {
    const std::string n = pciDir(opt_.pf_pci) + "/net/" + opt_.pf_netdev;
    file(n + "/address", "0c:42:a1:00:00:01");
    const bool sw = mode_ == EswitchMode::kSwitchdev;
    file(n + "/phys_port_name", sw ? "p" + std::to_string(pfn_) : "");
    file(n + "/phys_switch_id", sw ? switch_id_ : "");
    link("class/net/" + opt_.pf_netdev, up("class/net/x") + n);
  }

  void renderPf() {
    const std::string d = pciDir(opt_.pf_pci);
    file(d + "/vendor", "0x15b3");
    if (!opt_.profile.pci_ids.empty()) {
      const auto& id = opt_.profile.pci_ids.front();
      file(d + "/device", "0x" + id.substr(id.find(':') + 1));
    }
    file(d + "/sriov_totalvfs", std::to_string(opt_.profile.max_vfs));
    file(d + "/sriov_numvfs", std::to_string(vfs_.size()));
    file(d + "/sriov_drivers_autoprobe", autoprobe_ ? "1" : "0");
    file(d + "/sriov_offset", std::to_string(kFirstVfOffset));
    file(d + "/sriov_stride", std::to_string(kVfStride));
    link(d + "/driver", up(d + "/x") + "bus/pci/drivers/" + kNicDriver);
    link("bus/pci/devices/" + opt_.pf_pci, up("bus/pci/devices/x") + d);
    for (const char* drv : {kNicDriver, kVfioDriver})
      for (const char* f : {"bind", "unbind"})
        file(std::string("bus/pci/drivers/") + drv + "/" + f, "");
    for (const char* drv : {kVirtioVdpa, kVhostVdpa})
      for (const char* f : {"bind", "unbind"})
        file(std::string("bus/vdpa/drivers/") + drv + "/" + f, "");
    std::error_code ec;
    fs::create_directories(abs("bus/vdpa/devices"), ec);
    fs::create_directories(abs("dev"), ec);
    renderPfNetdev();
  }

  void renderVf(std::size_t i) {
    const std::string pci = vfAddr(i);
    const std::string d = pciDir(pci);
    const auto& vf = vfs_[i];
    file(d + "/vendor", "0x15b3");
    file(d + "/driver_override", vf.override.empty() ? "(null)" : vf.override);
    link(d + "/physfn", "../" + opt_.pf_pci);
    link(pciDir(opt_.pf_pci) + "/virtfn" + std::to_string(i), "../" + pci);
    link("bus/pci/devices/" + pci, up("bus/pci/devices/x") + d);
    // In place: the driver link and the netdev follow the binding.
    if (vf.driver.empty())
      remove(d + "/driver");
    else
      link(d + "/driver", up(d + "/x") + "bus/pci/drivers/" + vf.driver);
    if (vf.driver == kNicDriver) {
      file(d + "/net/" + vfNetdev(i) + "/address", vf.mac.str());
      link("class/net/" + vfNetdev(i), up("class/net/x") + d + "/net/" + vfNetdev(i));
    } else {
      remove(d + "/net");
      remove("class/net/" + vfNetdev(i));
    }
  }

  void removeVf(std::size_t i) {
    const std::string pci = vfAddr(i);
    remove(pciDir(pci));
    remove(pciDir(opt_.pf_pci) + "/virtfn" + std::to_string(i));
    remove("bus/pci/devices/" + pci);
    remove("class/net/" + vfNetdev(i));
    removeRep(i);
  }

  void renderRep(std::size_t i) {
    const std::string n = pciDir(opt_.pf_pci) + "/net/" + repName(i);
    file(n + "/phys_port_name", repName(i));
    file(n + "/phys_switch_id", switch_id_);
    link("class/net/" + repName(i), up("class/net/x") + n);
  }

  void removeRep(std::size_t i) {
    remove(pciDir(opt_.pf_pci) + "/net/" + repName(i));
    remove("class/net/" + repName(i));
  }

  std::string vdpaDir(const SimVdpa& v) const {
    return pciDir(vfAddr(v.vf)) + "/mlx5_core.vnet." + std::to_string(v.vf) + "/" + v.dev.name;
  }

  void renderVdpa(const std::string& name) {
    const auto& v = vdpa_.at(name);
    const std::string d = vdpaDir(v);
    // Updated in place: the driver link and the vhost-vdpa-N node follow the
    // binding; the rest stays.
    const std::string node_now = v.minor ? "vhost-vdpa-" + std::to_string(*v.minor) : std::string();
    std::error_code ec;
    for (fs::directory_iterator it(abs(d), ec), end; !ec && it != end; it.increment(ec)) {
      const std::string entry = it->path().filename().string();
      if (entry.rfind("vhost-vdpa-", 0) == 0 && entry != node_now) remove(d + "/" + entry);
    }
    file(d + "/driver_override", v.override.empty() ? "(null)" : v.override);
    link("bus/vdpa/devices/" + name, up("bus/vdpa/devices/x") + d);
    fs::remove(abs(d + "/driver"), ec);
    if (!v.driver.empty()) link(d + "/driver", up(d + "/x") + "bus/vdpa/drivers/" + v.driver);
    if (v.minor) {
      const std::string node = "vhost-vdpa-" + std::to_string(*v.minor);
      file(d + "/" + node + "/dev", "508:" + std::to_string(*v.minor));
      file("dev/" + node, "");
    }
  }

  void removeVdpa(const std::string& name) {
    const auto& v = vdpa_.at(name);
    if (v.minor) remove("dev/vhost-vdpa-" + std::to_string(*v.minor));
    remove(pciDir(vfAddr(v.vf)) + "/mlx5_core.vnet." + std::to_string(v.vf));
    remove("bus/vdpa/devices/" + name);
  }

  // The whole tree from the state, in place: what is right is kept, what
  // the state no longer has is pruned. (It used to be deleted and written
  // anew: on ext4 the mass delete + create made reopening a NIC with 500 VFs
  // and 500 vDPA devices take 15-22 s, in inode allocation.)
  Status renderAll() {
    renderPf();
    for (std::size_t i = 0; i < vfs_.size(); ++i) {
      renderVf(i);
      mode_ == EswitchMode::kSwitchdev ? renderRep(i) : removeRep(i);
    }
    // VFs beyond the count (and their representors).
    const std::string pf_dir = pciDir(opt_.pf_pci);
    for (const auto& e : fs_.list(pf_dir)) {
      if (e.rfind("virtfn", 0) != 0) continue;
      const auto i = std::strtoul(e.c_str() + 6, nullptr, 10);
      if (i >= vfs_.size()) removeVf(i);
    }
    const std::string rep_prefix = "pf" + std::to_string(pfn_) + "vf";
    for (const auto& e : fs_.list(pf_dir + "/net"))
      if (e.rfind(rep_prefix, 0) == 0) {
        const auto i = std::strtoul(e.c_str() + rep_prefix.size(), nullptr, 10);
        if (i >= vfs_.size()) removeRep(i);
      }
    // vDPA devices the state does not have, and their vhost-vdpa nodes.
    std::set<std::string> nodes;
    for (const auto& [name, v] : vdpa_)
      if (v.minor) nodes.insert("vhost-vdpa-" + std::to_string(*v.minor));
    for (const auto& name : fs_.list("bus/vdpa/devices")) {
      if (vdpa_.count(name)) continue;
      if (auto dir = fs_.canonical("bus/vdpa/devices/" + name)) {
        std::error_code ec;
        fs::remove_all(*dir, ec);
        dirs_.clear();  // a cache of directories known to exist: start it again
      }
      remove("bus/vdpa/devices/" + name);
    }
    for (const auto& e : fs_.list("dev"))
      if (e.rfind("vhost-vdpa-", 0) == 0 && !nodes.count(e)) remove("dev/" + e);
    for (const auto& [name, v] : vdpa_) renderVdpa(name);
    return commit();
  }

  // --- kernel reactions
  Status setNumVfs(const std::string& value) {
    const std::string what = "writing '" + value + "' to " + opt_.dir + "/bus/pci/devices/" +
                             opt_.pf_pci + "/sriov_numvfs";
    unsigned n = 0;
    const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || p != value.data() + value.size())
      return kernelError(EINVAL, what, "not a number");
    if (auto f = fault("sriov_numvfs")) return kernelError(f->first, what, f->second);
    if (n > opt_.profile.max_vfs)
      return kernelError(
          ERANGE, what,
          std::to_string(n) + " VFs exceed sriov_totalvfs " + std::to_string(opt_.profile.max_vfs));
    if (n == vfs_.size()) return Status::success();
    if (n != 0 && !vfs_.empty())
      return kernelError(EBUSY, what,
                         std::to_string(vfs_.size()) +
                             " VFs already enabled. Disable before enabling " + std::to_string(n) +
                             " VFs");
    dirty_all_ = true;  // every VF and device changes: the record compares all
    if (n == 0) {
      for (auto it = vdpa_.begin(); it != vdpa_.end();) {
        removeVdpa(it->first);
        it = vdpa_.erase(it);
      }
      for (std::size_t i = 0; i < vfs_.size(); ++i) removeVf(i);
      vfs_.clear();
    } else {
      vfs_.assign(n, SimVf{});
      for (std::size_t i = 0; i < n; ++i) {
        if (autoprobe_) vfs_[i].driver = kNicDriver;
        renderVf(i);
        if (mode_ == EswitchMode::kSwitchdev) renderRep(i);
      }
    }
    file(pciDir(opt_.pf_pci) + "/sriov_numvfs", std::to_string(vfs_.size()));
    return Status::success();
  }

  Status bindVf(const std::string& driver, const std::string& pci) {
    const std::string what =
        "writing '" + pci + "' to " + opt_.dir + "/bus/pci/drivers/" + driver + "/bind";
    if (driver != kNicDriver && driver != kVfioDriver)
      return kernelError(ENOENT, what, "no such driver");
    if (auto f = fault("bind")) return kernelError(f->first, what, f->second);
    const auto i = vfIndex(pci);
    if (!i) return kernelError(ENODEV, what, "no such device");
    auto& vf = vfs_[*i];
    if (!vf.driver.empty()) return kernelError(EBUSY, what, "already bound to " + vf.driver);
    touchVf(*i);
    if (!vf.override.empty() ? vf.override != driver : driver != kNicDriver)
      return kernelError(
          ENODEV, what, "driver does not match the device (driver_override '" + vf.override + "')");
    vf.driver = driver;
    renderVf(*i);
    return Status::success();
  }

  Status unbindVf(const std::string& driver, const std::string& pci) {
    const std::string what =
        "writing '" + pci + "' to " + opt_.dir + "/bus/pci/drivers/" + driver + "/unbind";
    if (auto f = fault("unbind")) return kernelError(f->first, what, f->second);
    const auto i = vfIndex(pci);
    if (!i || vfs_[*i].driver != driver)
      return kernelError(ENODEV, what, "device not bound to " + driver);
    // The NIC driver's auxiliary devices go with it, and the vDPA devices on them.
    for (auto it = vdpa_.begin(); it != vdpa_.end();) {
      if (it->second.vf == *i) {
        removeVdpa(it->first);
        touchVdpa(it->first);
        it = vdpa_.erase(it);
      } else {
        ++it;
      }
    }
    touchVf(*i);
    vfs_[*i].driver.clear();
    renderVf(*i);
    return Status::success();
  }

  Status bindVdpa(const std::string& driver, const std::string& name) {
    const std::string what =
        "writing '" + name + "' to " + opt_.dir + "/bus/vdpa/drivers/" + driver + "/bind";
    if (driver != kVirtioVdpa && driver != kVhostVdpa)
      return kernelError(ENOENT, what, "no such driver");
    if (auto f = fault("bind")) return kernelError(f->first, what, f->second);
    const auto it = vdpa_.find(name);
    if (it == vdpa_.end()) return kernelError(ENODEV, what, "no such device");
    auto& v = it->second;
    if (!v.driver.empty()) return kernelError(EBUSY, what, "already bound to " + v.driver);
    touchVdpa(name);
    if (!v.override.empty() && v.override != driver)
      return kernelError(ENODEV, what, "driver_override is '" + v.override + "'");
    v.driver = driver;
    if (driver == kVhostVdpa) {
      std::set<unsigned> used;
      for (const auto& [n, o] : vdpa_)
        if (o.minor) used.insert(*o.minor);
      unsigned minor = 0;
      while (used.count(minor)) ++minor;
      v.minor = minor;
    }
    renderVdpa(name);
    return Status::success();
  }

  Status unbindVdpa(const std::string& driver, const std::string& name) {
    const std::string what =
        "writing '" + name + "' to " + opt_.dir + "/bus/vdpa/drivers/" + driver + "/unbind";
    const auto it = vdpa_.find(name);
    if (it == vdpa_.end() || it->second.driver != driver)
      return kernelError(ENODEV, what, "device not bound to " + driver);
    touchVdpa(name);
    if (it->second.minor) remove("dev/vhost-vdpa-" + std::to_string(*it->second.minor));
    it->second.driver.clear();
    it->second.minor.reset();
    renderVdpa(name);
    return Status::success();
  }

  // --- persistence
  SimState current() const { return {mode_, autoprobe_, vfs_, vdpa_}; }

  // Marks what an operation is about to change: the next record compares
  // (and persisted_ follows) only these, so an operation costs its own
  // VFs and devices, not all of them.
  void touchVf(std::size_t i) { dirty_vfs_.insert(i); }
  void touchVdpa(const std::string& name) { dirty_vdpa_.insert(name); }

  // The changes since the last commit, as one journal record (empty: none).
  nlohmann::json delta() const {
    nlohmann::json r = nlohmann::json::object();
    if (mode_ != persisted_.mode)
      r["mode"] = mode_ == EswitchMode::kSwitchdev ? "switchdev" : "legacy";
    if (autoprobe_ != persisted_.autoprobe) r["autoprobe"] = autoprobe_;
    if (vfs_.size() != persisted_.vfs.size()) r["numvfs"] = vfs_.size();
    nlohmann::json vfs = nlohmann::json::object();
    auto vfChanged = [&](std::size_t i) {
      return i < vfs_.size() && (i >= persisted_.vfs.size() || !(vfs_[i] == persisted_.vfs[i]));
    };
    nlohmann::json del = nlohmann::json::array(), upd = nlohmann::json::array();
    auto vdpaChanged = [&](const std::string& name) {
      const auto now = vdpa_.find(name);
      const auto was = persisted_.vdpa.find(name);
      if (now == vdpa_.end()) {
        if (was != persisted_.vdpa.end()) del.push_back(name);
      } else if (was == persisted_.vdpa.end() || !(was->second == now->second)) {
        upd.push_back(vdpaJson(name, now->second));
      }
    };
    if (dirty_all_) {
      for (std::size_t i = 0; i < vfs_.size(); ++i)
        if (vfChanged(i)) vfs[std::to_string(i)] = vfJson(vfs_[i]);
      for (const auto& [name, v] : persisted_.vdpa)
        if (!vdpa_.count(name)) del.push_back(name);
      for (const auto& [name, v] : vdpa_) vdpaChanged(name);
    } else {
      for (const auto i : dirty_vfs_)
        if (vfChanged(i)) vfs[std::to_string(i)] = vfJson(vfs_[i]);
      for (const auto& name : dirty_vdpa_) vdpaChanged(name);
    }
    if (!vfs.empty()) r["vfs"] = std::move(vfs);
    if (!del.empty()) r["vdpa_del"] = std::move(del);
    if (!upd.empty()) r["vdpa"] = std::move(upd);
    return r;
  }

  // persisted_ catches up with what the last record wrote.
  void persisted() {
    if (dirty_all_) {
      persisted_ = current();
    } else {
      persisted_.mode = mode_;
      persisted_.autoprobe = autoprobe_;
      for (const auto i : dirty_vfs_)
        if (i < vfs_.size()) {
          if (i >= persisted_.vfs.size()) persisted_.vfs.resize(i + 1);
          persisted_.vfs[i] = vfs_[i];
        }
      for (const auto& name : dirty_vdpa_) {
        const auto now = vdpa_.find(name);
        if (now == vdpa_.end())
          persisted_.vdpa.erase(name);
        else
          persisted_.vdpa[name] = now->second;
      }
    }
    dirty_all_ = false;
    dirty_vfs_.clear();
    dirty_vdpa_.clear();
  }

  // Persists the state; the tree was updated by the operation itself.
  Status commit() {
    if (io_error_.empty()) {
      if (force_snapshot_ || !journal_.ready() || journal_records_ >= kJournalCompactAfter) {
        snapshot();
      } else {
        const nlohmann::json r = delta();
        if (!r.empty()) {
          if (auto s = journal_.append(r.dump()); !s) {
            io_error_ = s.error().describe();
          } else {
            ++journal_records_;
            persisted();
          }
        } else {
          persisted();  // nothing changed: forget what was touched
        }
      }
    }
    if (!io_error_.empty()) {
      std::string e;
      std::swap(e, io_error_);
      return makeError(ErrorCode::kIo, opt_.dir, "", "sim NIC: " + e);
    }
    return Status::success();
  }

  // state.json (atomically, by rename) naming a new journal segment, then
  // the older segments go.
  void snapshot() {
    // Never loaded (a new directory): any segment here is older.
    std::uint64_t seq = 1;
    if (journal_.ready())
      seq = journal_.nextSnapshotSeq();
    else if (auto segs = journal_.listSegments(); segs && !segs->empty())
      seq = segs->back() + 1;
    nlohmann::json vfs = nlohmann::json::array();
    for (const auto& v : vfs_) vfs.push_back(vfJson(v));
    nlohmann::json vdpa = nlohmann::json::array();
    for (const auto& [name, v] : vdpa_) vdpa.push_back(vdpaJson(name, v));
    const nlohmann::json doc = {
        {"pf", opt_.pf_pci},
        {"journal_seq", seq},
        {"eswitch_mode", mode_ == EswitchMode::kSwitchdev ? "switchdev" : "legacy"},
        {"autoprobe", autoprobe_},
        {"vfs", std::move(vfs)},
        {"vdpa", std::move(vdpa)}};
    if (auto s = writeFileAtomically(stateDir().string(), "state.json", doc.dump(1) + "\n",
                                     Durability::kProcessCrash);
        !s) {
      io_error_ = s.error().describe();
      return;
    }
    journal_.restartAt(seq);
    // Segments that survive a kill here are older than journal_seq: the
    // next open deletes them without replaying them.
    (void)journal_.deleteSegmentsBelow(seq);  // best effort: the next open retries
    std::error_code ec;
    fs::remove(oldJournalPath(), ec);
    journal_records_ = 0;
    force_snapshot_ = false;
    persisted_ = current();
    dirty_all_ = false;
    dirty_vfs_.clear();
    dirty_vdpa_.clear();
  }

  Status load() {
    SimState st;
    std::uint64_t journal_seq = 0;
    std::optional<std::uint64_t> old_generation;  // state.json of before journal_seq
    try {
      std::ifstream in(statePath());
      const auto doc = nlohmann::json::parse(in);
      if (doc.at("pf").get<std::string>() != opt_.pf_pci)
        return makeError(ErrorCode::kConflict, statePath().string(),
                         doc.at("pf").get<std::string>(),
                         "the sim NIC in " + opt_.dir + " is PF " +
                             doc.at("pf").get<std::string>() + ", not " + opt_.pf_pci);
      if (doc.contains("journal_seq"))
        journal_seq = doc.at("journal_seq").get<std::uint64_t>();
      else
        old_generation = doc.value("generation", std::uint64_t{0});
      st.mode = doc.at("eswitch_mode").get<std::string>() == "switchdev" ? EswitchMode::kSwitchdev
                                                                         : EswitchMode::kLegacy;
      st.autoprobe = doc.at("autoprobe").get<bool>();
      for (const auto& j : doc.at("vfs")) st.vfs.push_back(vfFromJson(j));
      for (const auto& j : doc.at("vdpa")) {
        auto v = vdpaFromJson(j, opt_.pf_pci);
        st.vdpa[v.dev.name] = std::move(v);
      }
    } catch (const std::exception& e) {
      return makeError(ErrorCode::kIo, statePath().string(), "",
                       std::string("the sim NIC state cannot be read: ") + e.what());
    }
    if (old_generation) {
      // Written before the journal had segments: its journal is the single
      // file of JSON lines, each with a generation; the lines newer than the
      // snapshot are replayed, up to one cut short by a kill. The snapshot
      // init() writes next moves the state to the new files.
      std::ifstream old(oldJournalPath());
      std::string line;
      while (std::getline(old, line)) {
        const auto r = nlohmann::json::parse(line, nullptr, false);
        if (r.is_discarded() || !r.is_object()) break;                      // cut short by a kill
        if (r.value("gen", std::uint64_t{0}) <= *old_generation) continue;  // in the snapshot
        try {
          applyRecord(r, st, opt_.pf_pci);
        } catch (const std::exception& e) {
          return makeError(ErrorCode::kIo, oldJournalPath().string(), "",
                           std::string("the sim NIC journal cannot be replayed: ") + e.what());
        }
      }
      // Any segment here is older than this snapshot.
      journal_seq = 1;
      if (auto segs = journal_.listSegments(); segs && !segs->empty())
        journal_seq = segs->back() + 1;
    }
    auto replayed = journal_.replay(journal_seq, [&](std::string_view payload) -> Status {
      const auto r = nlohmann::json::parse(payload, nullptr, false);
      if (r.is_discarded() || !r.is_object())
        return makeError(ErrorCode::kInvalidValue, "", "", "not a JSON object");
      try {
        applyRecord(r, st, opt_.pf_pci);
      } catch (const std::exception& e) {
        return makeError(ErrorCode::kInvalidValue, "", "",
                         std::string("the sim NIC journal cannot be replayed: ") + e.what());
      }
      return Status::success();
    });
    if (!replayed) return replayed.error();
    mode_ = st.mode;
    autoprobe_ = st.autoprobe;
    vfs_ = std::move(st.vfs);
    vdpa_ = std::move(st.vdpa);
    return Status::success();
  }

  SimPfOptions opt_;
  FsSysfsIo fs_;
  unsigned pfn_ = 0;
  std::string switch_id_;
  std::mutex mu_;
  EswitchMode mode_ = EswitchMode::kLegacy;
  bool autoprobe_ = true;
  std::vector<SimVf> vfs_;
  std::map<std::string, SimVdpa> vdpa_;
  std::vector<std::string> vf_addresses_;                       // by VF index
  std::unordered_map<std::string, std::size_t> vf_by_address_;  // the reverse
  std::map<std::string, std::pair<int, std::string>> faults_;
  std::string io_error_;
  std::set<std::string> dirs_;        // ensureDir()
  SimState persisted_;                // what state.json + state.journal hold
  bool dirty_all_ = false;            // since the last record: the VF count changed
  std::set<std::size_t> dirty_vfs_;   // ... these VFs may have changed
  std::set<std::string> dirty_vdpa_;  // ... these vDPA devices may have changed
  Journal journal_;                   // state.journal.<seq>, after state.json
  std::size_t journal_records_ = 0;
  bool force_snapshot_ = true;
};

namespace {

// Reads from the tree; writes through the simulated kernel.
class SimSysfsIo : public SysfsIo {
 public:
  explicit SimSysfsIo(std::shared_ptr<SimKernel> k) : k_(std::move(k)) {}
  const std::string& root() const override { return k_->fsio().root(); }
  Result<std::string> read(const std::string& rel) override { return k_->fsio().read(rel); }
  Status write(const std::string& rel, std::string_view value) override {
    return k_->write(rel, value);
  }
  Result<std::string> linkName(const std::string& rel) override { return k_->fsio().linkName(rel); }
  Result<std::string> canonical(const std::string& rel) override {
    return k_->fsio().canonical(rel);
  }
  std::vector<std::string> list(const std::string& rel) override { return k_->fsio().list(rel); }
  bool exists(const std::string& rel) override { return k_->fsio().exists(rel); }

 private:
  std::shared_ptr<SimKernel> k_;
};

class SimEswitch : public EswitchControl {
 public:
  explicit SimEswitch(std::shared_ptr<SimKernel> k) : k_(std::move(k)) {}
  Result<EswitchMode> mode(const std::string& pf) override { return k_->mode(pf); }
  Status setMode(const std::string& pf, EswitchMode m) override { return k_->setMode(pf, m); }

 private:
  std::shared_ptr<SimKernel> k_;
};

class SimVfLink : public VfLinkControl {
 public:
  explicit SimVfLink(std::shared_ptr<SimKernel> k) : k_(std::move(k)) {}
  Result<std::vector<VfLinkInfo>> vfs(const std::string& netdev) override {
    return k_->vfLinks(netdev);
  }
  Status setVf(const std::string& netdev, const VfSettings& s) override {
    return k_->setVf(netdev, s);
  }

 private:
  std::shared_ptr<SimKernel> k_;
};

}  // namespace

Result<std::unique_ptr<SimPf>> SimPf::open(SimPfOptions options) {
  if (!sysfs::isPciAddress(options.pf_pci))
    return makeError(ErrorCode::kInvalidValue, "uplink.pci", options.pf_pci,
                     "'" + options.pf_pci + "' is not a PCI address (expected DDDD:BB:DD.F)");
  if (options.dir.empty())
    return makeError(ErrorCode::kInvalidValue, "sim.dir", "", "the sim NIC needs a directory");
  if (options.pf_netdev.empty())
    return makeError(ErrorCode::kInvalidValue, "uplink.netdev", "",
                     "the sim NIC needs a PF netdev name");
  auto kernel = std::make_shared<SimKernel>(std::move(options));
  if (auto s = kernel->init(); !s) return s.error();
  return std::unique_ptr<SimPf>(new SimPf(std::move(kernel)));
}

SimPf::SimPf(std::shared_ptr<SimKernel> kernel) : kernel_(std::move(kernel)) {}
SimPf::~SimPf() = default;

const std::string& SimPf::root() const { return kernel_->fsio().root(); }
std::string SimPf::devDir() const { return root() + "/dev"; }
const std::string& SimPf::pfPci() const { return kernel_->opt().pf_pci; }
const model::HwProfile& SimPf::profile() const { return kernel_->opt().profile; }

std::unique_ptr<NicBackend> SimPf::makeBackend() const {
  SysfsNicOptions o;
  o.pf_pci = kernel_->opt().pf_pci;
  o.pf_netdev = kernel_->opt().pf_netdev;
  o.profile = kernel_->opt().profile;
  o.representor_wait = std::chrono::milliseconds(0);
  return std::make_unique<SysfsNicBackend>(std::move(o), std::make_unique<SimSysfsIo>(kernel_),
                                           std::make_unique<SimEswitch>(kernel_),
                                           std::make_unique<SimVfLink>(kernel_), "sim");
}

std::unique_ptr<SysfsIo> SimPf::sysfs() const { return std::make_unique<SimSysfsIo>(kernel_); }
std::unique_ptr<EswitchControl> SimPf::eswitch() const {
  return std::make_unique<SimEswitch>(kernel_);
}

std::vector<std::string> SimPf::vdpaMgmtDevs() const { return kernel_->vdpaMgmtDevs(); }
Status SimPf::vdpaDevNew(const SimVdpaDevice& device) { return kernel_->vdpaDevNew(device); }
Status SimPf::vdpaDevDel(const std::string& name) { return kernel_->vdpaDevDel(name); }
Status SimPf::vdpaDevSetMac(const std::string& name, const MacAddr& mac) {
  return kernel_->vdpaDevSetMac(name, mac);
}
std::vector<SimVdpaDevice> SimPf::vdpaDevs() const { return kernel_->vdpaDevs(); }
void SimPf::failNext(const std::string& op, int err, const std::string& text) {
  kernel_->failNext(op, err, text);
}

}  // namespace nicoffload::offload
