#include "nicoffload/offload/sysfs_nic_backend.h"

#include <algorithm>
#include <charconv>
#include <thread>

namespace nicoffload::offload {

namespace {

using model::EswitchMode;

Result<std::uint16_t> readU16(SysfsIo& io, const std::string& rel) {
  auto text = io.read(rel);
  if (!text) return text.error();
  unsigned v = 0;
  const auto [p, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || p != text->data() + text->size() || v > 0xFFFF)
    return makeError(ErrorCode::kInvalidValue, io.root() + "/" + rel, *text,
                     "'" + *text + "' is not a VF count");
  return static_cast<std::uint16_t>(v);
}

Error withContext(Error e, const std::string& prefix) {
  e.message = prefix + e.message;
  return e;
}

}  // namespace

SysfsNicBackend::SysfsNicBackend(SysfsNicOptions options, std::unique_ptr<SysfsIo> io,
                                 std::unique_ptr<EswitchControl> eswitch,
                                 std::unique_ptr<VfLinkControl> vf_link, std::string backend_name)
    : opt_(std::move(options)),
      io_(std::move(io)),
      eswitch_(std::move(eswitch)),
      vf_link_(std::move(vf_link)),
      name_(std::move(backend_name)) {}

Status SysfsNicBackend::checkPf() {
  if (!sysfs::isPciAddress(opt_.pf_pci))
    return makeError(ErrorCode::kInvalidValue, "uplink.pci", opt_.pf_pci,
                     "'" + opt_.pf_pci + "' is not a PCI address (expected DDDD:BB:DD.F)");
  if (!io_->exists(sysfs::pciDevice(opt_.pf_pci)))
    return makeError(ErrorCode::kNotFound, "uplink.pci", opt_.pf_pci,
                     "PF " + opt_.pf_pci + " not found: no " + io_->root() + "/" +
                         sysfs::pciDevice(opt_.pf_pci));
  return Status::success();
}

Result<std::string> SysfsNicBackend::pfNetdev() {
  if (!opt_.pf_netdev.empty()) return opt_.pf_netdev;
  const std::string net = sysfs::pciDevice(opt_.pf_pci) + "/net/";
  const auto names = sysfs::netdevsOf(*io_, opt_.pf_pci);
  // In switchdev mode the PF's net/ also holds the representors: the uplink
  // is the one named p<N>; in legacy mode the PF netdev has no port name.
  for (const auto& n : names)
    if (auto ppn = io_->read(net + n + "/phys_port_name"))
      if (auto parsed = sysfs::parsePhysPortName(*ppn); parsed && parsed->uplink) return n;
  for (const auto& n : names) {
    auto ppn = io_->read(net + n + "/phys_port_name");
    if (!ppn || ppn->empty()) return n;
    auto parsed = sysfs::parsePhysPortName(*ppn);
    if (!parsed || (!parsed->vf && !parsed->sf)) return n;
  }
  return makeError(ErrorCode::kNotFound, "uplink.netdev", opt_.pf_pci,
                   "PF " + opt_.pf_pci + " has no netdev under " + io_->root() + "/" + net +
                       " (is " + opt_.vf_driver + " bound to it?)");
}

std::string SysfsNicBackend::switchId() {
  auto nd = pfNetdev();
  return nd ? switchIdOf(*nd) : std::string();
}

std::string SysfsNicBackend::switchIdOf(const std::string& pf_netdev) {
  auto id = io_->read(sysfs::pciDevice(opt_.pf_pci) + "/net/" + pf_netdev + "/phys_switch_id");
  if (!id) id = io_->read("class/net/" + pf_netdev + "/phys_switch_id");
  return id ? *id : std::string();
}

std::vector<std::string> SysfsNicBackend::scanRepresentors(std::size_t vf_count) {
  return scanRepresentors(vf_count, switchId());
}

std::vector<std::string> SysfsNicBackend::scanRepresentors(std::size_t vf_count,
                                                           const std::string& sid) {
  std::vector<std::string> out(vf_count);
  const auto pfnum = sysfs::pciFunction(opt_.pf_pci);
  if (sid.empty() || !pfnum || vf_count == 0) return out;
  for (const auto& n : io_->list("class/net")) {
    auto id = io_->read("class/net/" + n + "/phys_switch_id");
    if (!id || *id != sid) continue;
    auto ppn = io_->read("class/net/" + n + "/phys_port_name");
    if (!ppn) continue;
    auto parsed = sysfs::parsePhysPortName(*ppn);
    if (!parsed || !parsed->vf || parsed->pf != pfnum || parsed->controller != opt_.controller)
      continue;
    if (*parsed->vf < vf_count) out[*parsed->vf] = n;
  }
  return out;
}

Status SysfsNicBackend::waitForRepresentors(std::size_t vf_count) {
  const auto deadline = std::chrono::steady_clock::now() + opt_.representor_wait;
  for (;;) {
    const auto reps = scanRepresentors(vf_count);
    const auto missing = std::find(reps.begin(), reps.end(), std::string());
    if (missing == reps.end()) return Status::success();
    if (std::chrono::steady_clock::now() >= deadline) {
      const auto vf = static_cast<std::uint16_t>(missing - reps.begin());
      auto pci = sysfs::vfPci(*io_, opt_.pf_pci, vf);
      const std::string sid = switchId();
      return makeError(
          ErrorCode::kNotFound, "vf " + std::to_string(vf), pci ? *pci : std::string(),
          "representor of VF " + std::to_string(vf) + " (" + (pci ? *pci : std::string("?")) +
              ") on PF " + opt_.pf_pci + " not found: no netdev in " + io_->root() +
              "/class/net with phys_switch_id " +
              (sid.empty() ? std::string("(PF has none)") : sid) + " and phys_port_name " +
              (opt_.controller ? "c" + std::to_string(*opt_.controller) : "") + "pf" +
              std::to_string(sysfs::pciFunction(opt_.pf_pci).value_or(0)) + "vf" +
              std::to_string(vf));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Result<std::string> SysfsNicBackend::representorOf(std::uint16_t vf) {
  if (auto s = checkPf(); !s) return s.error();
  auto pci = sysfs::vfPci(*io_, opt_.pf_pci, vf);
  if (!pci) return pci.error();
  auto reps = scanRepresentors(static_cast<std::size_t>(vf) + 1);
  if (!reps[vf].empty()) return reps[vf];
  const std::string sid = switchId();
  return makeError(
      ErrorCode::kNotFound, "vf " + std::to_string(vf), *pci,
      "representor of VF " + std::to_string(vf) + " (" + *pci + ") on PF " + opt_.pf_pci +
          " not found: no netdev in " + io_->root() + "/class/net with phys_switch_id " +
          (sid.empty() ? std::string("(the PF has none: legacy mode?)") : sid) +
          " and phys_port_name pf" + std::to_string(sysfs::pciFunction(opt_.pf_pci).value_or(0)) +
          "vf" + std::to_string(vf));
}

Result<PfStatus> SysfsNicBackend::status() {
  if (auto s = checkPf(); !s) return s.error();
  PfStatus st;
  st.pci = opt_.pf_pci;
  const std::string dev = sysfs::pciDevice(opt_.pf_pci);
  if (auto nd = pfNetdev())
    st.netdev = *nd;
  else
    st.warnings.push_back(nd.error().message);
  if (auto v = readU16(*io_, dev + "/sriov_totalvfs"))
    st.total_vfs = *v;
  else
    st.warnings.push_back("sriov_totalvfs: " + v.error().message);
  if (auto v = readU16(*io_, dev + "/sriov_numvfs"))
    st.num_vfs = *v;
  else
    st.warnings.push_back("sriov_numvfs: " + v.error().message);
  if (auto v = io_->read(dev + "/sriov_drivers_autoprobe")) st.drivers_autoprobe = *v != "0";
  if (auto m = eswitch_->mode(opt_.pf_pci))
    st.eswitch_mode = *m;
  else
    st.warnings.push_back(m.error().message);
  // The PF netdev was found once above: its switch ID and the
  // representors follow from it (each lookup of it reads the phys_port_name
  // of every representor).
  st.switch_id = st.netdev.empty() ? std::string() : switchIdOf(st.netdev);
  const auto pcis = sysfs::vfPcis(*io_, opt_.pf_pci);
  const auto reps = scanRepresentors(pcis.size(), st.switch_id);
  std::vector<VfLinkInfo> links;
  if (!st.netdev.empty() && !pcis.empty()) {
    if (auto l = vf_link_->vfs(st.netdev))
      links = std::move(*l);
    else
      st.warnings.push_back(l.error().message);
  }
  // One walk of the vDPA bus for all VFs (issue 12: a walk per VF made
  // status N x M realpaths, 5 s at 500 VFs and 500 devices).
  auto vdpa = sysfs::vdpaDevicesOnEach(*io_, pcis);
  std::vector<const VfLinkInfo*> link_of(pcis.size(), nullptr);
  for (const auto& l : links)
    if (l.vf < link_of.size() && !link_of[l.vf]) link_of[l.vf] = &l;
  for (std::size_t i = 0; i < pcis.size(); ++i) {
    if (pcis[i].empty()) {
      st.warnings.push_back("virtfn" + std::to_string(i) + " is missing");
      continue;
    }
    VfStatus vf;
    vf.index = static_cast<std::uint16_t>(i);
    vf.pci = pcis[i];
    vf.driver = sysfs::driverOf(*io_, vf.pci);
    if (auto nets = sysfs::netdevsOf(*io_, vf.pci); !nets.empty()) vf.netdev = nets.front();
    vf.representor = reps[i];
    if (const VfLinkInfo* l = link_of[i]) {
      vf.mac = l->mac;
      vf.trust = l->trust;
      vf.spoofchk = l->spoofchk;
    }
    vf.vdpa_devices = std::move(vdpa[i]);
    st.vfs.push_back(std::move(vf));
  }
  return st;
}

Status SysfsNicBackend::bindVfs(const std::vector<std::string>& pcis, SwitchdevReport& report) {
  const std::string bind = sysfs::pciDriver(opt_.vf_driver) + "/bind";
  for (const auto& pci : pcis) {
    if (auto s = io_->write(bind, pci); !s)
      return withContext(s.error(), "PF " + opt_.pf_pci + ": binding VF " + pci + " to " +
                                        opt_.vf_driver + " failed: ");
    report.steps.push_back("bind " + pci + " to " + opt_.vf_driver);
  }
  return Status::success();
}

Result<SwitchdevReport> SysfsNicBackend::ensureSwitchdev(std::uint16_t vf_count) {
  if (auto s = checkPf(); !s) return s.error();
  const std::string& pf = opt_.pf_pci;
  const std::string dev = sysfs::pciDevice(pf);
  const std::string field = "uplink.vf_count";
  if (opt_.profile) {
    const auto& p = *opt_.profile;
    if (std::find(p.eswitch_modes.begin(), p.eswitch_modes.end(), EswitchMode::kSwitchdev) ==
        p.eswitch_modes.end())
      return makeError(ErrorCode::kUnsupported, "hw_profile", p.name,
                       "profile " + p.name + " (" + p.model + ") has no switchdev eswitch mode (" +
                           p.eswitch_source + ")");
    if (vf_count > p.max_vfs)
      return makeError(ErrorCode::kInvalidValue, field, std::to_string(vf_count),
                       "PF " + pf + ": " + std::to_string(vf_count) + " VFs asked, but profile " +
                           p.name + " allows at most " + std::to_string(p.max_vfs) + " (" +
                           p.max_vfs_source + ")");
  }
  auto total = readU16(*io_, dev + "/sriov_totalvfs");
  if (!total)
    return makeError(ErrorCode::kUnsupported, field, pf,
                     "PF " + pf + " has no SR-IOV: " + total.error().message);
  if (vf_count > *total)
    return makeError(ErrorCode::kInvalidValue, field, std::to_string(vf_count),
                     "PF " + pf + " supports at most " + std::to_string(*total) +
                         " VFs (sriov_totalvfs), " + std::to_string(vf_count) + " asked");
  auto num = readU16(*io_, dev + "/sriov_numvfs");
  if (!num) return num.error();
  auto mode = eswitch_->mode(pf);
  if (!mode) return withContext(mode.error(), "PF " + pf + ": cannot read the eswitch mode: ");
  const std::string& drv = opt_.vf_driver;
  auto pcis = sysfs::vfPcis(*io_, pf);
  SwitchdevReport report;

  auto checkVfsPresent = [&](const char* after) -> Status {
    for (std::uint16_t i = 0; i < vf_count; ++i)
      if (i >= pcis.size() || pcis[i].empty())
        return makeError(ErrorCode::kNotFound, "vf " + std::to_string(i), "",
                         "PF " + pf + ": VF " + std::to_string(i) + " is missing " + after +
                             " (no " + io_->root() + "/" + dev + "/virtfn" + std::to_string(i) +
                             ")");
    return Status::success();
  };

  if (*mode == EswitchMode::kSwitchdev && *num == vf_count) {
    // Already as asked. Only VFs left unbound by an interrupted earlier run
    // are bound again; a VF bound to another driver (vfio-pci) is a VM's.
    if (auto s = checkVfsPresent("although sriov_numvfs says it exists"); !s) return s.error();
    std::vector<std::string> unbound;
    for (std::uint16_t i = 0; i < vf_count; ++i)
      if (sysfs::driverOf(*io_, pcis[i]).empty()) unbound.push_back(pcis[i]);
    if (auto s = bindVfs(unbound, report); !s) return s.error();
    if (auto s = waitForRepresentors(vf_count); !s) return s.error();
    report.changed = !report.steps.empty();
    return report;
  }

  // Something changes: refuse while a VF is in use by a VM.
  const auto vdpa_on = sysfs::vdpaDevicesOnEach(*io_, pcis);
  for (std::size_t i = 0; i < pcis.size(); ++i) {
    if (pcis[i].empty()) continue;
    const std::string d = sysfs::driverOf(*io_, pcis[i]);
    const std::string what = "VF " + std::to_string(i) + " (" + pcis[i] + ") of PF " + pf;
    if (!d.empty() && d != drv)
      return makeError(ErrorCode::kBusy, "vf " + std::to_string(i), pcis[i],
                       what + " is bound to " + d +
                           ": it is in use (by a VM?); the eswitch mode and VF count cannot change "
                           "until it is released (stop the VM, or unbind it from " +
                           d + ")");
    if (const auto& v = vdpa_on[i]; !v.empty())
      return makeError(ErrorCode::kBusy, "vf " + std::to_string(i), pcis[i],
                       what + " backs vDPA device " + v.front() +
                           ": remove the vDPA device (its VM's port) before changing the eswitch "
                           "mode or the VF count");
  }

  bool autoprobe_cleared = false;
  std::vector<std::string> unbound_by_us;
  auto rollback = [&](Error e) -> Error {
    const std::string bind = sysfs::pciDriver(drv) + "/bind";
    for (const auto& pci : unbound_by_us) (void)io_->write(bind, pci);
    if (autoprobe_cleared) (void)io_->write(dev + "/sriov_drivers_autoprobe", "1");
    if (!unbound_by_us.empty()) e.message += "; the VFs unbound before were bound again";
    return e;
  };

  if (*num != vf_count) {
    // VFs appear unbound (no probe), so nothing has to be unbound before the
    // mode change; autoprobe is restored at the end.
    if (auto a = io_->read(dev + "/sriov_drivers_autoprobe"); a && *a != "0") {
      if (auto s = io_->write(dev + "/sriov_drivers_autoprobe", "0"); !s) return s.error();
      autoprobe_cleared = true;
      report.steps.push_back("sriov_drivers_autoprobe=0");
    }
    if (*num != 0) {  // the kernel changes the VF count only from and to 0
      if (auto s = io_->write(dev + "/sriov_numvfs", "0"); !s) return rollback(s.error());
      report.steps.push_back("sriov_numvfs=0");
    }
    if (*mode == EswitchMode::kSwitchdev) {
      if (auto s = eswitch_->setMode(pf, EswitchMode::kLegacy); !s)
        return rollback(withContext(s.error(), "PF " + pf + ": "));
      report.steps.push_back("devlink eswitch mode legacy");
      mode = EswitchMode::kLegacy;
    }
    if (vf_count != 0) {
      if (auto s = io_->write(dev + "/sriov_numvfs", std::to_string(vf_count)); !s)
        return rollback(withContext(
            s.error(), "PF " + pf + ": creating " + std::to_string(vf_count) + " VFs failed: "));
      report.steps.push_back("sriov_numvfs=" + std::to_string(vf_count));
    }
    pcis = sysfs::vfPcis(*io_, pf);
    if (auto s = checkVfsPresent("after writing sriov_numvfs"); !s) return rollback(s.error());
  }

  // Unbind the VFs the NIC driver holds: the mode changes with all VFs unbound.
  std::vector<std::string> to_bind;
  const std::string unbind = sysfs::pciDriver(drv) + "/unbind";
  for (std::uint16_t i = 0; i < vf_count; ++i) {
    const std::string d = sysfs::driverOf(*io_, pcis[i]);
    if (d == drv) {
      if (auto s = io_->write(unbind, pcis[i]); !s)
        return rollback(withContext(s.error(), "PF " + pf + ": unbinding VF " + pcis[i] + ": "));
      unbound_by_us.push_back(pcis[i]);
      report.steps.push_back("unbind " + pcis[i] + " from " + drv);
    }
    if (d.empty() || d == drv) to_bind.push_back(pcis[i]);
  }

  if (*mode != EswitchMode::kSwitchdev) {
    if (auto s = eswitch_->setMode(pf, EswitchMode::kSwitchdev); !s)
      return rollback(withContext(s.error(), "PF " + pf +
                                                 ": switching the eswitch to switchdev "
                                                 "failed: "));
    report.steps.push_back("devlink eswitch mode switchdev");
  }
  unbound_by_us.clear();  // bound again below, in the new mode
  if (auto s = bindVfs(to_bind, report); !s) return s.error();
  if (autoprobe_cleared) {
    if (auto s = io_->write(dev + "/sriov_drivers_autoprobe", "1"); !s) return s.error();
    report.steps.push_back("sriov_drivers_autoprobe=1");
  }
  if (auto s = waitForRepresentors(vf_count); !s) return s.error();
  report.changed = true;
  return report;
}

Status SysfsNicBackend::setVf(const VfSettings& settings, const char* what) {
  if (auto s = checkPf(); !s) return s;
  const auto vf = static_cast<std::uint16_t>(settings.vf);
  auto pci = sysfs::vfPci(*io_, opt_.pf_pci, vf);
  if (!pci) return pci.error();
  auto nd = pfNetdev();
  if (!nd) return nd.error();
  if (auto s = vf_link_->setVf(*nd, settings); !s)
    return withContext(s.error(), "PF " + opt_.pf_pci + " VF " + std::to_string(vf) + " (" + *pci +
                                      "): setting " + what + " failed: ");
  return Status::success();
}

Status SysfsNicBackend::setVfMac(std::uint16_t vf, const MacAddr& mac) {
  return setVf({.vf = vf, .mac = mac, .trust = {}, .spoofchk = {}}, "the MAC");
}

Status SysfsNicBackend::setVfTrust(std::uint16_t vf, bool on) {
  return setVf({.vf = vf, .mac = {}, .trust = on, .spoofchk = {}}, "trust");
}

Status SysfsNicBackend::setVfSpoofCheck(std::uint16_t vf, bool on) {
  return setVf({.vf = vf, .mac = {}, .trust = {}, .spoofchk = on}, "spoof-check");
}

Status SysfsNicBackend::releaseVf(std::uint16_t vf) {
  if (auto s = checkPf(); !s) return s;
  if (!sysfs::vfPci(*io_, opt_.pf_pci, vf)) return Status::success();  // gone: nothing to scrub
  return setVf({.vf = vf, .mac = MacAddr{}, .trust = false, .spoofchk = true},
               "the scrubbed MAC, trust off and spoof-check on");
}

std::unique_ptr<NicBackend> makeSysfsNicBackend(SysfsNicOptions options,
                                                const std::string& sysfs_root) {
  return std::make_unique<SysfsNicBackend>(std::move(options),
                                           std::make_unique<FsSysfsIo>(sysfs_root),
                                           makeDevlinkEswitchControl(), makeRtnlVfLinkControl());
}

}  // namespace nicoffload::offload
