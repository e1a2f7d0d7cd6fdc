// Desired vDPA devices and VF assignments as data (pure): part of the model,
// so that the planner emits them without reaching into vdpa/ (namespace
// nicoffload::vdpa kept). The VdpaBackend implementations that create them
// (kernel, DPDK, sim) are in vdpa/.
#pragma once

#include <cstdint>
#include <string>

#include "nicoffload/common/error.h"
#include "nicoffload/common/net_types.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::vdpa {

// A VF handed to a port: its MAC is set on the VF (IFLA_VF_MAC), spoof-check
// on, trust off.
struct VfAssignment {
  std::uint16_t vf = 0;
  model::PortKey port;
  MacAddr mac;
  bool operator==(const VfAssignment&) const = default;
};

// One vDPA device backing a port's virtio NIC.
struct VdpaDeviceSpec {
  std::string name;            // derived from the port: deviceName()
  model::PortKey port;
  model::VdpaKind kind = model::VdpaKind::kNone;
  std::uint16_t vf = 0;        // the VF the device sits on
  MacAddr mac;
  std::uint16_t mtu = 1500;    // bytes
  std::uint16_t max_vqp = 1;   // virtqueue pairs
  bool operator==(const VdpaDeviceSpec&) const = default;
};

// "nfo" + 12 hex digits of a stable hash of (VM UUID, NIC index): unique per
// port, the same on every run, and short enough for any name field.
std::string deviceName(const model::PortKey& port);

// "nfovf" + the VF index: the name of a device made ahead on a free VF for
// the warm pool (vdpa.pool), which keeps that name when a port claims it.
// One device per VF, so the name is unique on the PF.
std::string poolDeviceName(std::uint16_t vf);

// The vDPA flavour a port gets: its own setting, else the host default.
model::VdpaKind effectiveKind(const model::HostConfig& host, const model::Port& port);

// kUnsupported with the profile's source when the profile cannot back the
// port with vDPA of that kind (e.g. any vDPA on ConnectX-5). The sim kind
// needs either kind of vDPA in the profile. `field` names the port in errors.
Status checkSupport(const model::HwProfile& profile, model::VdpaKind kind, const std::string& field);

}  // namespace nicoffload::vdpa
