// PfStatus as JSON, for nicoffloadctl and the daemon's status API.
//   {"pci", "netdev", "eswitch_mode": "switchdev"|"legacy"|null, "total_vfs",
//    "num_vfs", "drivers_autoprobe", "switch_id",
//    "vfs": [{"index", "pci", "driver", "netdev", "representor",
//             "mac", "trust", "spoofchk" (null when unknown), "vdpa_devices": [...]}],
//    "warnings": [...]}
#pragma once

#include <nlohmann/json.hpp>

#include "nicoffload/offload/nic_backend.h"

namespace nicoffload::offload {

nlohmann::json toJson(const PfStatus& status);

}  // namespace nicoffload::offload
