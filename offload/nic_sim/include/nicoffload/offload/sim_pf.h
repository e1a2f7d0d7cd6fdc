// The simulated NIC: one PF of a ConnectX-class NIC, its SR-IOV VFs, their
// representors and the vDPA devices on them, played by a simulated kernel
// that keeps a sysfs-shaped tree in a directory.
//
// The tree has the layout of /sys (devices/pci0000:00/<pf>/virtfnN,
// bus/pci/devices/*, bus/pci/drivers/*/bind|unbind, class/net/*/phys_port_name
// and phys_switch_id, bus/vdpa/devices/*, ...) plus <dir>/dev/vhost-vdpa-N
// stand-ins, so the production code reads it exactly as it reads /sys. Writes
// go through the simulated kernel, which reacts as Linux and mlx5 do:
//  - sriov_numvfs creates / removes VFs (only from and to 0; at most the
//    profile's max_vfs, which is also sriov_totalvfs); new VFs are bound to
//    mlx5_core unless sriov_drivers_autoprobe is 0;
//  - drivers/<drv>/bind|unbind bind and unbind VFs (vfio-pci only through
//    driver_override, as on Linux);
//  - the devlink eswitch mode changes only with every VF unbound (NVIDIA:
//    "Before changing the mode, make sure that all VFs are unbound") and only
//    to a mode the profile lists; switchdev creates a representor netdev per
//    VF named pf<F>vf<N> (F = the PF's PCI function), phys_port_name the same;
//  - the mlx5_vdpa management device exists on each VF bound to mlx5_core
//    when the profile has vDPA; one vDPA net device per VF; a new device binds
//    to virtio_vdpa; binding it to vhost_vdpa (driver_override) creates
//    vhost-vdpa-N with the lowest free N.
// The state survives a restart of the controller: it is kept in
// <dir>/nicoffload-sim/ (state.json, a snapshot, and the journal segments
// state.journal.<seq>, a record per operation since; common/journal.h), and
// SimPf::open() on the same directory picks it up, as real hardware keeps
// its state when the daemon restarts. A state.json + state.journal of an
// older nicoffload is read and rewritten in the new form.
//
// Fault injection: failNext(op, errno) makes the next such operation fail as
// the kernel would.
#pragma once

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
#include "nicoffload/offload/sysfs_nic_backend.h"

namespace nicoffload::offload {

struct SimPfOptions {
  std::string dir;                      // root of the simulated tree; created when absent
  model::HwProfile profile;             // max_vfs, eswitch modes, vDPA support
  std::string pf_pci = "0000:03:00.0";  // the PF's PCI address
  std::string pf_netdev = "simpf0";     // the PF's uplink netdev
};

// A vDPA device of the simulated kernel (the `vdpa` netlink family's view).
struct SimVdpaDevice {
  std::string name;
  std::string mgmt_dev;  // the VF's PCI address (management device pci/<vf>)
  MacAddr mac;
  std::uint16_t mtu = 1500;
  std::uint16_t max_vqp = 1;
  bool operator==(const SimVdpaDevice&) const = default;
};

class SimKernel;  // sim_pf.cc

class SimPf {
 public:
  // Creates the tree (or picks up the state of an earlier SimPf on `dir`).
  // Errors: kInvalidValue (PF address), kIo (the directory).
  static Result<std::unique_ptr<SimPf>> open(SimPfOptions options);
  ~SimPf();
  // Copies share the same simulated NIC.
  SimPf(const SimPf&) = default;
  SimPf& operator=(const SimPf&) = default;

  const std::string& root() const;
  std::string devDir() const;  // <root>/dev: where vhost-vdpa-N appear
  const std::string& pfPci() const;
  const model::HwProfile& profile() const;

  // A NicBackend over this NIC: SysfsNicBackend driven by the simulated
  // kernel (no wait for representors: they appear at once). The backends
  // share the simulated kernel with this object and may outlive it.
  std::unique_ptr<NicBackend> makeBackend() const;

  // This NIC's sysfs (reads from the tree, writes through the kernel).
  std::unique_ptr<SysfsIo> sysfs() const;

  // This NIC's devlink eswitch control (what the backend uses).
  std::unique_ptr<EswitchControl> eswitch() const;

  // The `vdpa` generic netlink family of the simulated kernel. Errors are
  // those of the kernel: kNotFound (ENODEV: no such device / management
  // device), kDuplicate (EEXIST), kBusy (EBUSY: the VF has a device),
  // kUnsupported (the profile has no vDPA), kInvalidValue (MTU < 68, 0 vqp).
  std::vector<std::string> vdpaMgmtDevs() const;  // VF PCI addresses
  Status vdpaDevNew(const SimVdpaDevice& device);
  Status vdpaDevDel(const std::string& name);
  // VDPA_CMD_DEV_ATTR_SET with a MAC (Linux 6.12, mlx5_vdpa).
  Status vdpaDevSetMac(const std::string& name, const MacAddr& mac);
  std::vector<SimVdpaDevice> vdpaDevs() const;

  // The next operation `op` fails with `err` (an errno) and kernel text
  // `text`. Ops: "sriov_numvfs", "bind", "unbind", "eswitch", "vf-set",
  // "vdpa-new", "vdpa-del", "vdpa-set".
  void failNext(const std::string& op, int err, const std::string& text = {});

 private:
  explicit SimPf(std::shared_ptr<SimKernel> kernel);
  std::shared_ptr<SimKernel> kernel_;
};

}  // namespace nicoffload::offload
