// NicBackend: the uplink PF of a ConnectX-class NIC as nicoffload manages it —
// SR-IOV VFs, the eswitch mode, the VF representors and the per-VF settings
// that the PF holds for each VF (MAC, trust, spoof-check).
//
// Pure interface (no libnl, no sysfs code here). Implementations:
//   nicoffload_nic_sysfs  SysfsNicBackend: sysfs under a configurable root,
//                         devlink over generic netlink, VF settings over rtnetlink
//   nicoffload_nic_sim    SimPf: the same SysfsNicBackend driven over a
//                         simulated kernel that keeps a sysfs-shaped tree in a
//                         directory and enforces a hardware profile
//
// Every call is synchronous and every error is a value that names the PF (PCI
// address), and the VF (index and PCI address) when one is involved.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/common/net_types.h"
#include "nicoffload/model/hw_profile.h"

namespace nicoffload::offload {

// One SR-IOV virtual function of the PF, as read back.
struct VfStatus {
  std::uint16_t index = 0;       // VF number: virtfn<index> of the PF
  std::string pci;               // PCI address "DDDD:BB:DD.F"
  std::string driver;            // bound PCI driver ("mlx5_core", "vfio-pci"); empty = unbound
  std::string netdev;            // the VF's own netdev when bound to the NIC driver; may be empty
  std::string representor;       // representor netdev (switchdev); empty when not found
  std::optional<MacAddr> mac;    // administrative MAC the PF holds for the VF (IFLA_VF_MAC)
  std::optional<bool> trust;     // IFLA_VF_TRUST
  std::optional<bool> spoofchk;  // IFLA_VF_SPOOFCHK
  std::vector<std::string> vdpa_devices;  // vDPA devices whose parent is this VF
};

// The PF as read back.
struct PfStatus {
  std::string pci;     // PCI address of the PF
  std::string netdev;  // the PF's uplink netdev; may be empty when unknown
  std::optional<model::EswitchMode> eswitch_mode;  // unset when it could not be read (see warnings)
  std::uint16_t total_vfs = 0;                     // sriov_totalvfs
  std::uint16_t num_vfs = 0;                       // sriov_numvfs
  bool drivers_autoprobe = true;                   // sriov_drivers_autoprobe
  std::string switch_id;              // phys_switch_id of the uplink (hex); empty in legacy mode
  std::vector<VfStatus> vfs;          // in index order
  std::vector<std::string> warnings;  // what could not be read, one sentence each
};

// What ensureSwitchdev() did, in order ("sriov_numvfs=8", "unbind 0000:03:00.2
// from mlx5_core", "devlink eswitch mode switchdev", ...). Empty when the PF
// was already as asked.
struct SwitchdevReport {
  bool changed = false;
  std::vector<std::string> steps;
};

class NicBackend {
 public:
  virtual ~NicBackend() = default;

  // "sysfs" or "sim".
  virtual std::string_view name() const = 0;

  // The PCI address of the PF this backend manages.
  virtual const std::string& pfPci() const = 0;

  // Reads the PF back. Fails (kNotFound) only when the PF itself is absent;
  // what cannot be read (eswitch mode, VF settings) is left unset and named
  // in `warnings`.
  virtual Result<PfStatus> status() = 0;

  // Brings the PF to switchdev mode with exactly `vf_count` VFs, every VF
  // bound to the NIC driver and every representor present. The mlx5 sequence
  // operators use: (legacy) -> sriov_numvfs -> unbind VFs -> devlink eswitch
  // mode switchdev -> bind VFs. Idempotent: a PF already in that state is not
  // touched (report.changed == false).
  // Errors: kInvalidValue (vf_count above sriov_totalvfs or the profile's
  // max_vfs), kUnsupported (no switchdev: profile, kernel without devlink),
  // kBusy (a VF is in use: bound to another driver such as vfio-pci, or
  // backing a vDPA device; or the kernel refused the mode change), kNotFound
  // (a VF or representor did not appear), kIo (a sysfs write failed).
  // On failure after VFs were unbound, they are bound again (best effort).
  virtual Result<SwitchdevReport> ensureSwitchdev(std::uint16_t vf_count) = 0;

  // The representor netdev of VF `vf`: the netdev with the PF's
  // phys_switch_id and phys_port_name "pf<N>vf<vf>" (or "c<C>pf<N>vf<vf>").
  // Errors: kNotFound (no such VF, or no representor: legacy mode?).
  virtual Result<std::string> representorOf(std::uint16_t vf) = 0;

  // Per-VF settings held by the PF (rtnetlink IFLA_VF_*).
  // Errors: kNotFound (no such VF), kUnsupported (the driver refuses), kIo.
  virtual Status setVfMac(std::uint16_t vf, const MacAddr& mac) = 0;
  virtual Status setVfTrust(std::uint16_t vf, bool on) = 0;
  virtual Status setVfSpoofCheck(std::uint16_t vf, bool on) = 0;

  // Returns VF `vf` to the pool: MAC scrubbed to 00:00:00:00:00:00, trust
  // off, spoof-check on. Idempotent.
  virtual Status releaseVf(std::uint16_t vf) = 0;
};

}  // namespace nicoffload::offload
