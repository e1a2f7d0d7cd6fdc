// VdpaBackend: creates, removes and reads back the vDPA devices that back the
// ports' virtio NICs, and gives libvirt the <interface> element for each.
//
// Pure interface. Implementations, each its own CMake target:
//   nicoffload_vdpa_kernel  the Linux `vdpa` generic netlink family + vhost_vdpa
//                           binding in sysfs -> /dev/vhost-vdpa-N
//   nicoffload_vdpa_dpdk    DPDK vhost-user socket + mlx5 vDPA device (class=vdpa)
//   nicoffload_vdpa_sim     the kernel flow over the simulated NIC
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/common/net_types.h"
#include "nicoffload/model/intent.h"
#include "nicoffload/model/vdpa_device.h"

namespace nicoffload::vdpa {

// A vDPA device as created or read back.
struct VdpaDevice {
  std::string name;  // deviceName(port): "nfo" + 12 hex
  model::VdpaKind kind = model::VdpaKind::kNone;
  std::optional<std::uint16_t> vf;   // VF index on the PF; unset when read back from a foreign VF
  std::string vf_pci;                // PCI address of the VF the device sits on
  std::string vhost_vdpa_path;       // kernel / sim: "/dev/vhost-vdpa-N" (N read from sysfs)
  std::string socket_path;           // dpdk: the vhost-user socket
  std::optional<MacAddr> mac;        // virtio-net config MAC
  std::optional<std::uint16_t> mtu;  // bytes
  std::optional<std::uint16_t> max_vqp;  // virtqueue pairs
  bool operator==(const VdpaDevice&) const = default;
};

class VdpaBackend {
 public:
  virtual ~VdpaBackend() = default;

  // The kind of devices this backend makes (kKernel, kDpdk or kSim).
  virtual model::VdpaKind kind() const = 0;

  // Creates the device `spec` describes on VF spec.vf of the backend's PF and
  // makes it usable by QEMU. Idempotent: an existing device of that name on
  // that VF with that config is returned as it is; one on another VF or with
  // another config (the port moved or changed) is replaced. On failure
  // nothing is left behind.
  // Errors: kUnsupported (no vDPA here: the profile has none, the kernel has
  // no `vdpa` family, vhost_vdpa is not loaded), kNotFound (no such VF, no
  // vDPA management / DPDK device on the VF), kBusy (the VF already backs
  // another device), kInvalidValue (MTU, queues), kIo.
  virtual Result<VdpaDevice> create(const VdpaDeviceSpec& spec) = 0;

  // Removes device `name`. Deleting what is gone succeeds.
  virtual Status destroy(const std::string& name) = 0;

  // Gives device `name` another virtio-net config MAC: how a pool device is
  // claimed by a port (its MAC) and scrubbed when the port goes (the zero
  // MAC). The MTU and queue count of a device cannot change.
  // Errors: kNotFound (no such device), kUnsupported (the kernel or driver
  // cannot: the caller recreates the device instead), kIo.
  virtual Status setMac(const std::string& name, const MacAddr& mac) = 0;

  // Every vDPA device this backend can see (kernel: all of the host's; dpdk:
  // the sockets this process serves; sim: the simulated NIC's).
  virtual Result<std::vector<VdpaDevice>> list() = 0;

  // The libvirt <interface> element for `port` backed by `device`:
  // type='vdpa' with the /dev/vhost-vdpa-N path, or type='vhostuser' with the
  // socket. Errors: kInvalidValue when the device lacks its path.
  virtual Result<std::string> interfaceXml(const VdpaDevice& device,
                                           const model::Port& port) const = 0;
};

}  // namespace nicoffload::vdpa
