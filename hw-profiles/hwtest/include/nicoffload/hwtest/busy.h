// Whether a real PF carries VMs, read from sysfs: the suite refuses such a
// PF unless --allow-busy (its rules would share the eswitch with live
// traffic, and a table fill would crowd the VMs' rules out).
#pragma once

#include <string>
#include <vector>

namespace nicoffload::hwtest {

// One sentence per reason PF `pf` ("0000:03:00.0") is busy, read under
// `sysfs_root` ("/sys" on a host): a VF (bus/pci/devices/<pf>/virtfnN) bound
// to a driver other than mlx5_core (vfio-pci: passed through to a VM), or a
// VF that is the parent of a vDPA device (a "vdpaN" directory under it:
// backing a VM's virtio NIC). Empty when the PF is idle or unknown.
std::vector<std::string> pfBusyReasons(const std::string& sysfs_root, const std::string& pf);

}  // namespace nicoffload::hwtest
