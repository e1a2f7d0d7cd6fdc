// KernelVdpaBackend: vDPA devices made by the Linux kernel (mlx5_vdpa) on the
// PF's VFs, used by QEMU through vhost_vdpa.
//
// create(spec):
//   1. the VF's PCI address from sysfs (virtfn<N> of the PF; never guessed);
//   2. `vdpa` generic netlink: the management device pci/<VF> must exist
//      (VDPA_CMD_MGMTDEV_GET), then VDPA_CMD_DEV_NEW with the name, MAC, MTU
//      and max_vqp;
//   3. sysfs: driver_override = vhost_vdpa, unbind from the driver that took
//      it (virtio_vdpa), bind to vhost_vdpa;
//   4. the vhost-vdpa-N child of bus/vdpa/devices/<name> gives N (not stable
//      across boots or creation order: always read, never derived), and
//      /dev/vhost-vdpa-N must exist (udev may take a moment).
//   Any failure after step 2 deletes the new device again.
//
// VdpaNetlink is the seam between the backend and the `vdpa` family: the
// real one speaks generic netlink (vdpa_netlink_msg.h has its messages); the
// simulated NIC provides another (nicoffload_vdpa_sim).
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
#include "nicoffload/offload/sysfs_io.h"
#include "nicoffload/vdpa/vdpa_backend.h"

namespace nicoffload::vdpa {

// A vDPA management device (VDPA_ATTR_MGMTDEV_BUS_NAME / _DEV_NAME).
struct VdpaMgmtDev {
  std::string bus;  // "pci" (empty for bus-less ones such as vdpasim_net)
  std::string dev;  // "0000:03:00.2"
  bool operator==(const VdpaMgmtDev&) const = default;
};

// VDPA_CMD_DEV_NEW.
struct VdpaDevNewRequest {
  std::string name;                      // VDPA_ATTR_DEV_NAME
  VdpaMgmtDev mgmt;                      // VDPA_ATTR_MGMTDEV_BUS_NAME / _DEV_NAME
  std::optional<MacAddr> mac;            // VDPA_ATTR_DEV_NET_CFG_MACADDR
  std::optional<std::uint16_t> mtu;      // VDPA_ATTR_DEV_NET_CFG_MTU (bytes, >= 68)
  std::optional<std::uint16_t> max_vqp;  // VDPA_ATTR_DEV_NET_CFG_MAX_VQP
};

// A device as VDPA_CMD_DEV_GET and VDPA_CMD_DEV_CONFIG_GET report it.
struct VdpaDevInfo {
  std::string name;
  VdpaMgmtDev mgmt;
  std::optional<MacAddr> mac;
  std::optional<std::uint16_t> mtu;
  std::optional<std::uint16_t> max_vqp;
  bool operator==(const VdpaDevInfo&) const = default;
};

class VdpaNetlink {
 public:
  virtual ~VdpaNetlink() = default;
  // Errors of every call: kUnsupported when the kernel has no `vdpa` family.
  virtual Result<std::vector<VdpaMgmtDev>> mgmtdevs() = 0;
  // Kernel errors mapped by errno: kNotFound (ENODEV), kDuplicate (EEXIST),
  // kBusy, kInvalidValue, kUnsupported (EOPNOTSUPP).
  virtual Status devNew(const VdpaDevNewRequest& request) = 0;
  // kNotFound when there is no such device.
  virtual Status devDel(const std::string& name) = 0;
  // VDPA_CMD_DEV_ATTR_SET with the MAC. kNotFound (no such device),
  // kUnsupported (a kernel before 6.12, or a parent driver without it).
  virtual Status devSetMac(const std::string& name, const MacAddr& mac) {
    (void)mac;
    return makeError(ErrorCode::kUnsupported, name, "",
                     "this vdpa netlink cannot change a device's MAC");
  }
  // Every device with its config.
  virtual Result<std::vector<VdpaDevInfo>> devs() = 0;
};

// The real seam: the `vdpa` generic netlink family (socket opened on first use).
std::unique_ptr<VdpaNetlink> makeGenlVdpaNetlink();

struct KernelVdpaOptions {
  std::string pf_pci;                               // the PF whose VFs carry the devices
  std::string dev_dir = "/dev";                     // where vhost-vdpa-N appear
  std::chrono::milliseconds node_wait{2000};        // how long to wait for /dev/vhost-vdpa-N
  model::VdpaKind kind = model::VdpaKind::kKernel;  // reported kind (kSim over the sim NIC)
  // When set, create() first asks checkSupport(profile, kind): a NIC without
  // vDPA (ConnectX-5) is answered with the profile's source, not a kernel error.
  std::optional<model::HwProfile> profile;
};

// Not thread-safe: one caller at a time (the daemon's reconciler).
class KernelVdpaBackend : public VdpaBackend {
 public:
  KernelVdpaBackend(KernelVdpaOptions options, std::unique_ptr<VdpaNetlink> netlink,
                    std::unique_ptr<offload::SysfsIo> sysfs);

  model::VdpaKind kind() const override { return opt_.kind; }
  Result<VdpaDevice> create(const VdpaDeviceSpec& spec) override;
  Status destroy(const std::string& name) override;
  Status setMac(const std::string& name, const MacAddr& mac) override;
  Result<std::vector<VdpaDevice>> list() override;
  Result<std::string> interfaceXml(const VdpaDevice& device,
                                   const model::Port& port) const override;

 private:
  Status bindVhostVdpa(const std::string& name);
  Result<std::string> vhostPath(const std::string& name);
  // `vf_pcis`: the PF's VFs by index (sysfs::vfPcis), listed once by the
  // caller so that list() walks the PF's virtfn links once, not per device.
  VdpaDevice fromInfo(const VdpaDevInfo& info, const std::vector<std::string>& vf_pcis);

  KernelVdpaOptions opt_;
  std::unique_ptr<VdpaNetlink> nl_;
  std::unique_ptr<offload::SysfsIo> io_;
};

// A KernelVdpaBackend over /sys (or `sysfs_root`) and the `vdpa` family.
std::unique_ptr<VdpaBackend> makeKernelVdpaBackend(KernelVdpaOptions options,
                                                   const std::string& sysfs_root = "/sys");

}  // namespace nicoffload::vdpa
