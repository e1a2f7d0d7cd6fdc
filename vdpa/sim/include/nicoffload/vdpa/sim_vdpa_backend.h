// The simulated vDPA backend: the kernel backend's own flow (management
// device check, dev new, vhost_vdpa binding through driver_override, the
// vhost-vdpa-N read from sysfs) run against the simulated NIC's `vdpa`
// family and sysfs tree. Devices report kind kSim; the profile decides
// whether the NIC has vDPA at all (ConnectX-5: no).
#pragma once

#include <memory>

#include "nicoffload/offload/sim_pf.h"
#include "nicoffload/vdpa/kernel_vdpa_backend.h"

namespace nicoffload::vdpa {

// The simulated kernel's `vdpa` family as a VdpaNetlink.
std::unique_ptr<VdpaNetlink> makeSimVdpaNetlink(const offload::SimPf& nic);

// A VdpaBackend over the simulated NIC; /dev/vhost-vdpa-N appear under
// nic.devDir(). The backend shares the NIC and may outlive `nic`.
std::unique_ptr<VdpaBackend> makeSimVdpaBackend(const offload::SimPf& nic);

}  // namespace nicoffload::vdpa
