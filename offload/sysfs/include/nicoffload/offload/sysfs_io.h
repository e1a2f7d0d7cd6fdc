// Access to a sysfs-shaped tree under a configurable root, and the PCI /
// netdev / vDPA layout facts nicoffload reads from it.
//
// SysfsIo is the seam: FsSysfsIo reads and writes the files under a root
// directory ("/sys" on a hypervisor, a temp dir in tests); the simulated NIC
// wraps it to play the kernel's part (a write to sriov_numvfs creates the
// VFs). Paths are relative to the root, in sysfs form:
// "bus/pci/devices/0000:03:00.0/sriov_numvfs".
//
// Writes never create files: an attribute that does not exist is an error
// (on a real /sys that means the driver or the feature is missing).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nicoffload/common/error.h"

namespace nicoffload::offload {

class SysfsIo {
 public:
  virtual ~SysfsIo() = default;

  virtual const std::string& root() const = 0;

  // The file's content without its trailing newline.
  // Errors: kNotFound (no such file), kUnsupported (EOPNOTSUPP, as sysfs
  // answers for phys_switch_id of a netdev outside a switch), kIo.
  virtual Result<std::string> read(const std::string& rel) = 0;

  // Writes `value` (one write, as `echo -n`). Errors map the errno: kNotFound
  // (ENOENT/ENODEV), kBusy (EBUSY), kInvalidValue (EINVAL/ERANGE),
  // kUnsupported (EOPNOTSUPP), kIo otherwise; the message has the path.
  virtual Status write(const std::string& rel, std::string_view value) = 0;

  // The last component of a symlink's target ("virtfn3" -> "0000:03:00.5",
  // "driver" -> "mlx5_core"). kNotFound when there is no such link.
  virtual Result<std::string> linkName(const std::string& rel) = 0;

  // The canonical absolute path (symlinks resolved). kNotFound when absent.
  virtual Result<std::string> canonical(const std::string& rel) = 0;

  // Entry names of a directory, sorted; an absent directory lists empty.
  virtual std::vector<std::string> list(const std::string& rel) = 0;

  virtual bool exists(const std::string& rel) = 0;
};

// SysfsIo over the real filesystem under `root` (default "/sys").
class FsSysfsIo : public SysfsIo {
 public:
  explicit FsSysfsIo(std::string root = "/sys");
  const std::string& root() const override { return root_; }
  Result<std::string> read(const std::string& rel) override;
  Status write(const std::string& rel, std::string_view value) override;
  Result<std::string> linkName(const std::string& rel) override;
  Result<std::string> canonical(const std::string& rel) override;
  std::vector<std::string> list(const std::string& rel) override;
  bool exists(const std::string& rel) override;

  std::string path(const std::string& rel) const { return root_ + "/" + rel; }

 private:
  std::string root_;
};

// Maps an errno of a sysfs or netlink operation to the error catalogue.
ErrorCode errorCodeForErrno(int err);

namespace sysfs {

// "DDDD:BB:DD.F" with hex digits, as the kernel names PCI functions.
bool isPciAddress(std::string_view text);

// The function number F of "DDDD:BB:DD.F" (the mlx5 PF number in
// phys_port_name), or nullopt for a malformed address.
std::optional<unsigned> pciFunction(std::string_view pci);

inline std::string pciDevice(const std::string& pci) { return "bus/pci/devices/" + pci; }
inline std::string pciDriver(const std::string& driver) { return "bus/pci/drivers/" + driver; }
inline std::string vdpaDevice(const std::string& name) { return "bus/vdpa/devices/" + name; }
inline std::string vdpaDriver(const std::string& driver) { return "bus/vdpa/drivers/" + driver; }

// The PCI addresses of the PF's VFs, by VF index (from the virtfn<N> links).
// An index without a link leaves a gap: the result's size is 1 + the highest
// index found.
std::vector<std::string> vfPcis(SysfsIo& io, const std::string& pf_pci);

// The PCI address of VF `vf` of the PF. kNotFound names the PF, the VF and
// sriov_numvfs.
Result<std::string> vfPci(SysfsIo& io, const std::string& pf_pci, std::uint16_t vf);

// The driver a PCI function is bound to; empty when unbound.
std::string driverOf(SysfsIo& io, const std::string& pci);

// The netdevs whose parent is the PCI function (its net/ directory).
std::vector<std::string> netdevsOf(SysfsIo& io, const std::string& pci);

// The vDPA devices (bus/vdpa/devices/*) whose device path runs through the
// PCI function, i.e. whose parent (directly, or through an auxiliary device
// such as mlx5_core.vnet.N) is that function.
std::vector<std::string> vdpaDevicesOn(SysfsIo& io, const std::string& pci);

// vdpaDevicesOn for many PCI functions at once: the vDPA bus is listed once
// and each device's and each function's path resolved once (N + M
// canonical paths, not N x M), so that listing the vDPA devices of every VF
// of a PF costs one pass. The result is indexed like `pcis`; an empty entry
// of `pcis` gets an empty list. Names are sorted, as vdpaDevicesOn gives them.
std::vector<std::vector<std::string>> vdpaDevicesOnEach(SysfsIo& io,
                                                       const std::vector<std::string>& pcis);

// A switchdev port name (phys_port_name). mlx5 forms: "p0" (uplink),
// "pf0vf3" (VF representor), "pf0sf88" (SF), "c1pf0vf3" (with controller),
// "pf0" (host PF on a SmartNIC).
struct PhysPortName {
  std::optional<unsigned> controller;  // c<N>
  std::optional<unsigned> pf;          // pf<N>
  std::optional<unsigned> vf;          // vf<N>
  std::optional<unsigned> sf;          // sf<N>
  std::optional<unsigned> uplink;      // p<N>
  bool operator==(const PhysPortName&) const = default;
};
std::optional<PhysPortName> parsePhysPortName(std::string_view text);

}  // namespace sysfs
}  // namespace nicoffload::offload
