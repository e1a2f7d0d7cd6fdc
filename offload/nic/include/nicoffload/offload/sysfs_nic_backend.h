// SysfsNicBackend: the NicBackend of a real hypervisor.
//
//   SR-IOV       sysfs under a configurable root (sriov_totalvfs, sriov_numvfs,
//                sriov_drivers_autoprobe, virtfn<N>, drivers/<drv>/bind|unbind)
//   eswitch      devlink generic netlink (DEVLINK_CMD_ESWITCH_GET/SET), through
//                the EswitchControl seam
//   representors class/net/*/phys_switch_id + phys_port_name ("pf0vf3")
//   VF settings  rtnetlink IFLA_VFINFO_LIST on the PF netdev (MAC, trust,
//                spoof-check), through the VfLinkControl seam
//
// No `ip`, `devlink` or `echo` is ever run. The simulated NIC (sim_pf.h)
// drives this same class over a simulated kernel.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/common/net_types.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/offload/nic_backend.h"
#include "nicoffload/offload/sysfs_io.h"

namespace nicoffload::offload {

// The eswitch mode of a PF (devlink dev eswitch).
class EswitchControl {
 public:
  virtual ~EswitchControl() = default;
  // Errors: kUnsupported (no devlink in this kernel, or the driver has no
  // eswitch), kNotFound (no devlink instance pci/<pf_pci>), kIo.
  virtual Result<model::EswitchMode> mode(const std::string& pf_pci) = 0;
  // Errors as mode(), plus kBusy when the kernel refuses (VFs bound, ...);
  // the message carries the kernel's extended ACK text.
  virtual Status setMode(const std::string& pf_pci, model::EswitchMode mode) = 0;
};

// Per-VF settings held by the PF, as rtnetlink reports them.
struct VfLinkInfo {
  std::uint32_t vf = 0;
  MacAddr mac;
  std::optional<bool> trust;
  std::optional<bool> spoofchk;
  bool operator==(const VfLinkInfo&) const = default;
};

// What to change on one VF; unset fields are left as they are.
struct VfSettings {
  std::uint32_t vf = 0;
  std::optional<MacAddr> mac;
  std::optional<bool> trust;
  std::optional<bool> spoofchk;
};

// VF settings through the PF netdev (rtnetlink).
class VfLinkControl {
 public:
  virtual ~VfLinkControl() = default;
  // Errors: kNotFound (no such netdev), kIo.
  virtual Result<std::vector<VfLinkInfo>> vfs(const std::string& pf_netdev) = 0;
  // Errors: kNotFound, kInvalidValue (no such VF), kUnsupported (the driver
  // has no VF settings: EOPNOTSUPP), kIo.
  virtual Status setVf(const std::string& pf_netdev, const VfSettings& settings) = 0;
};

struct SysfsNicOptions {
  std::string pf_pci;                       // the uplink PF, "0000:03:00.0"
  std::string pf_netdev;                    // empty: found under the PF's net/ in sysfs
  std::string vf_driver = "mlx5_core";      // the NIC driver VFs are bound to
  std::optional<model::HwProfile> profile;  // when set: max_vfs and eswitch modes enforced
  std::optional<unsigned> controller;       // representors named c<N>pf..vf..; unset: none
  // How long to wait for representors to appear (udev renames them right
  // after the mode change).
  std::chrono::milliseconds representor_wait{3000};
};

// Not thread-safe: one caller at a time (the daemon's reconciler).
class SysfsNicBackend : public NicBackend {
 public:
  SysfsNicBackend(SysfsNicOptions options, std::unique_ptr<SysfsIo> io,
                  std::unique_ptr<EswitchControl> eswitch, std::unique_ptr<VfLinkControl> vf_link,
                  std::string backend_name = "sysfs");

  std::string_view name() const override { return name_; }
  const std::string& pfPci() const override { return opt_.pf_pci; }
  Result<PfStatus> status() override;
  Result<SwitchdevReport> ensureSwitchdev(std::uint16_t vf_count) override;
  Result<std::string> representorOf(std::uint16_t vf) override;
  Status setVfMac(std::uint16_t vf, const MacAddr& mac) override;
  Status setVfTrust(std::uint16_t vf, bool on) override;
  Status setVfSpoofCheck(std::uint16_t vf, bool on) override;
  Status releaseVf(std::uint16_t vf) override;

 private:
  Status checkPf();
  Result<std::string> pfNetdev();
  std::string switchId();
  // switchId of a PF netdev already known (status() finds it once).
  std::string switchIdOf(const std::string& pf_netdev);
  // VF index -> representor netdev, from one scan of class/net.
  std::vector<std::string> scanRepresentors(std::size_t vf_count);
  // scanRepresentors with the switch ID already read.
  std::vector<std::string> scanRepresentors(std::size_t vf_count, const std::string& switch_id);
  Status waitForRepresentors(std::size_t vf_count);
  Status setVf(const VfSettings& settings, const char* what);
  Status bindVfs(const std::vector<std::string>& pcis, SwitchdevReport& report);

  SysfsNicOptions opt_;
  std::unique_ptr<SysfsIo> io_;
  std::unique_ptr<EswitchControl> eswitch_;
  std::unique_ptr<VfLinkControl> vf_link_;
  std::string name_;
};

// The real seams: devlink over generic netlink, VF settings over rtnetlink
// (in the caller's network namespace). Both open their socket on first use.
std::unique_ptr<EswitchControl> makeDevlinkEswitchControl();
std::unique_ptr<VfLinkControl> makeRtnlVfLinkControl();

// A SysfsNicBackend over /sys (or `sysfs_root`) with the real seams.
std::unique_ptr<NicBackend> makeSysfsNicBackend(SysfsNicOptions options,
                                                const std::string& sysfs_root = "/sys");

}  // namespace nicoffload::offload
