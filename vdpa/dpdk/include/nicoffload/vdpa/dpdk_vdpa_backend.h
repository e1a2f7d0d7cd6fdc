// DpdkVdpaBackend: vDPA through DPDK. Each port gets a vhost-user socket
// served by this process (rte_vhost_driver_register -> _attach_vdpa_device
// -> _start) whose datapath is the VF's mlx5 vDPA device: the VF is probed
// by DPDK's mlx5 vDPA driver (EAL "-a <VF PCI>,class=vdpa"), and the DPDK
// vDPA device is named by the VF's PCI address. QEMU connects to the socket
// (libvirt type='vhostuser', mode='client').
//
// The EAL must be initialised by the process before any call; rte_vhost is
// used from the calling thread. Sockets live in the runtime directory as
// <device name>.sock. The DPDK headers stay out of this header.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "nicoffload/model/hw_profile.h"
#include "nicoffload/vdpa/vdpa_backend.h"

namespace nicoffload::vdpa {

struct DpdkVdpaOptions {
  std::string pf_pci;                                 // the PF whose VFs carry the devices
  std::string runtime_dir = "/run/nicoffload/vhost";  // where the sockets are made
  std::string sysfs_root = "/sys";                    // to read the VFs' PCI addresses
  std::uint64_t vhost_flags = 0;                      // RTE_VHOST_USER_*; 0 = server socket
  std::optional<model::HwProfile> profile;            // when set: checkSupport(profile, kDpdk)
};

// rte_vhost calls as values. Errors name the socket path.
namespace vhost {
// rte_vhost_driver_register. kBusy when rte_vhost refuses the path.
Status registerSocket(const std::string& path, std::uint64_t flags);
// rte_vdpa_find_device_by_name + rte_vhost_driver_attach_vdpa_device.
// kNotFound when DPDK has no vDPA device of that name (the VF was not probed
// with class=vdpa), kIo when the attach is refused.
Status attachVdpaDevice(const std::string& path, const std::string& vdpa_device);
// The DPDK vDPA device of a VF (named by its PCI address): found, or
// hot-plugged with rte_dev_probe("<VF>,class=vdpa") (the mlx5 vDPA driver).
// kNotFound, with the EAL's reason, when there is none.
Status probeVdpaDevice(const std::string& vf_pci);
// rte_vhost_driver_start: a server socket starts listening.
Status start(const std::string& path);
// rte_vhost_driver_unregister, then removes a leftover socket file.
// Unregistering what is not registered succeeds.
Status unregisterSocket(const std::string& path);
}  // namespace vhost

class DpdkVdpaBackend : public VdpaBackend {
 public:
  explicit DpdkVdpaBackend(DpdkVdpaOptions options);
  ~DpdkVdpaBackend() override;  // unregisters every socket it made

  model::VdpaKind kind() const override { return model::VdpaKind::kDpdk; }
  Result<VdpaDevice> create(const VdpaDeviceSpec& spec) override;
  Status destroy(const std::string& name) override;
  // Records the MAC only: with vhost-user the guest's MAC is QEMU's (the
  // domain's <mac>); the VF's own MAC is the NIC backend's.
  Status setMac(const std::string& name, const MacAddr& mac) override;
  Result<std::vector<VdpaDevice>> list() override;
  Result<std::string> interfaceXml(const VdpaDevice& device,
                                   const model::Port& port) const override;

  std::string socketPath(const std::string& name) const;

 private:
  Status destroyLocked(const std::string& name);

  DpdkVdpaOptions opt_;
  std::mutex mu_;
  std::map<std::string, VdpaDevice> devices_;  // by name: the sockets this process serves
};

}  // namespace nicoffload::vdpa
