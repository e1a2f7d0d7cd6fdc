// Reads a PF's capabilities from the device through rdma-core: the mlx5
// provider's devx channel (mlx5dv_open_device with MLX5DV_CONTEXT_FLAGS_DEVX,
// then mlx5dv_devx_general_cmd QUERY_HCA_CAP) and ibv_query_device for the
// firmware version. Links libibverbs and libmlx5; the commands and the
// parsing are the pure caps.h.
#pragma once

#include <string>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/devx/caps.h"

namespace nicoffload::devx {

// An RDMA device of the mlx5 provider and the PCI function behind it.
struct Mlx5Device {
  std::string ibdev;   // "mlx5_0"
  std::string pci;     // "0000:03:00.0" (the basename of <ibdev_path>/device)
  std::string pci_id;  // "15b3:101d" (<ibdev_path>/device/vendor and device)
};

// Every RDMA device that the mlx5 provider drives (mlx5dv_is_supported).
// Empty when there is none, or no RDMA subsystem at all. Never fails.
std::vector<Mlx5Device> listMlx5Devices();

// Opens the mlx5 device of PCI function `pci` (empty: the first one found)
// and queries its capabilities. A capability query the firmware refuses is
// recorded in DeviceCaps::errors, not returned as an error.
// Errors: kNotFound when no mlx5 RDMA device exists (or none at `pci`);
// kUnsupported when the device cannot be opened with devx (no DEVX support
// in the kernel / firmware); kPermissionDenied when opening is refused
// (devx needs CAP_NET_RAW); kIo for other failures, with errno's text.
Result<DeviceCaps> probeDevice(const std::string& pci);

}  // namespace nicoffload::devx
