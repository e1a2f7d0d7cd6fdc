// The planner: intent + hardware profile -> desired state. Pure: no I/O, no
// clock, no randomness; the same input gives the same output, rule ids
// included, so a re-plan of unchanged intent diffs to nothing.
//
// Table layout (transfer domain):
//   group 0 (root)  per VF:  ARP trap (prio 0), anti-spoofing allow -> jump 1
//                            (prio 0, one per address), anti-spoofing drops (prio 1);
//                            IPv6 (gateway.ipv6 set): ND traps (link-scoped
//                            destinations, prio 0), allow per /128, IPv6 drop
//                   uplink:  routed: IPv4 (and IPv6) -> jump 1; vxlan: decap per VNI -> jump 1
//   group 1 (FIB)   IPv4 dst /32, IPv6 dst /128: local delivery (to VF) or
//                   egress (to uplink, rewritten or VXLAN-encapsulated)
// A packet that misses goes to the representor of the port it came from,
// where the kernel (software path) handles it.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <span>
#include <cstdint>
#include <string>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/flowrules/rule.h"
#include "nicoffload/flowrules/sw_objects.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/model/intent.h"
#include "nicoffload/model/vdpa_device.h"

namespace nicoffload::flowrules {

inline constexpr std::uint32_t kRootGroup = 0;
inline constexpr std::uint32_t kFibGroup = 1;
inline constexpr std::uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr std::uint16_t kEtherTypeArp = 0x0806;
inline constexpr std::uint16_t kEtherTypeIpv6 = 0x86DD;

// Owner ids: which piece of intent a rule or object belongs to.
OwnerId portOwner(const model::PortKey& key);
OwnerId remoteOwner(const IpAddr& address);
OwnerId vniOwner(std::uint32_t vni);
OwnerId hostOwner();

struct PlacementCounts {
  std::size_t hw = 0;
  std::size_t sw = 0;
  // sw rules per PlacementReason::Code (index = code).
  std::array<std::size_t, kPlacementReasonCodeCount> sw_by_reason{};
  std::size_t total() const { return hw + sw; }
};

struct DesiredState {
  std::vector<FlowRule> rules;  // sorted by id
  SoftwarePathState sw;         // each kind sorted by key
  std::vector<vdpa::VdpaDeviceSpec> vdpa_devices;  // sorted by port
  std::vector<vdpa::VfAssignment> vfs;             // sorted by VF
  PlacementCounts counts;
};

struct PlanOptions {
  // Skip validateIntent() when the caller already validated (the daemon
  // admits ports one by one).
  bool skip_validation = false;
};

// Plans the whole intent. Errors: anything validateIntent() reports, a port
// without a VF, vf_count beyond the profile's max_vfs, vDPA the profile lacks
// (kUnsupported), a profile without switchdev.
Result<DesiredState> plan(const model::Intent& intent, const model::HwProfile& profile,
                          const PlanOptions& options = {});

// The same, planning into `out` and reusing its buffers (the daemon re-plans
// continuously: 100 k rules are ~28 MB that need not be fresh pages each
// time). `out` is overwritten; on error its content is unspecified.
Status planInto(const model::Intent& intent, const model::HwProfile& profile,
                const PlanOptions& options, DesiredState& out);

// The VF assignments and vDPA devices of the intent's ports, sorted
// (DesiredState::vfs, vdpa_devices): a part of plan(), O(ports).
void planDevices(const model::Intent& intent, DesiredState& out);
// The vDPA device of one port, when its vDPA kind is not none.
std::optional<vdpa::VdpaDeviceSpec> planVdpaDevice(const model::HostConfig& host,
                                                   const model::Port& port);

// Emits the rules one port owns (ARP trap, anti-spoofing, local delivery),
// placed by capability only (no table-capacity pass), sorted by id. Used for
// incremental re-planning after a port change: diff the result against the
// installed rules of portOwner(port.key).
Result<std::vector<FlowRule>> planPortRules(const model::HostConfig& host,
                                            const model::HwProfile& profile,
                                            const model::Port& port);

// Incremental planning: the rules and kernel objects of one piece of intent,
// exactly as plan() emits them for it, so that the daemon re-plans only what
// a batch touched. Two things in plan() couple owners, and the caller must
// re-plan the whole intent when either applies (OwnerPlanner::coupled()):
// a group whose hardware-placeable rules exceed its capacity (plan() cuts by
// class rank), and, in a VXLAN underlay, a local delivery rule in software
// (every decap rule then follows it).
class OwnerPlanner {
 public:
  OwnerPlanner(model::HostConfig host, model::HwProfile profile);
  ~OwnerPlanner();
  OwnerPlanner(const OwnerPlanner&) = delete;
  OwnerPlanner& operator=(const OwnerPlanner&) = delete;

  // planPortRules().
  Result<std::vector<FlowRule>> portRules(const model::Port& port) const;
  // The egress rule of one remote (routed or VXLAN by the host's underlay).
  FlowRule remoteRule(const model::RemoteEndpoint& remote) const;
  // VXLAN: the decap rule of a VNI local ports use. Routed: the uplink's entry rule.
  FlowRule decapRule(std::uint32_t vni) const;
  FlowRule uplinkEntryRule() const;
  // The host's own rules for `port_vnis` (the VNIs local ports use): the
  // uplink entry (routed) or one decap rule per VNI (VXLAN).
  std::vector<FlowRule> hostRules(std::span<const std::uint32_t> port_vnis) const;
  // The VNI a port or a remote is in (VXLAN underlay).
  std::uint32_t vniOf(const model::Port& port) const;
  std::uint32_t vniOf(const model::RemoteEndpoint& remote) const;

  // Kernel objects (software_path kernel), appended to `out` unsorted:
  void hostObjects(SoftwarePathState& out) const;  // ip_forward, the gateway /32 on lo
  void portObjects(const model::Port& port, SoftwarePathState& out) const;
  void remoteObjects(const model::RemoteEndpoint& remote, SoftwarePathState& out) const;
  void vniObjects(std::uint32_t vni, SoftwarePathState& out) const;  // the VXLAN device
  void vtepObjects(std::uint32_t vni, const IpAddr& vtep,
                   SoftwarePathState& out) const;  // FDB entry + neighbour of a remote VTEP

  const model::HostConfig& host() const;
  const model::HwProfile& profile() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Human text for a placement reason, e.g. "connectx-5: vxlan_encap only on UDP
// ports 4789, rule needs 8472 (dpdk-mlx5-guide: ...)".
std::string describeReason(const PlacementReason& reason, const model::HwProfile& profile);

// Full explanation of one rule: class, owner, placement and reason.
std::string explainRule(const FlowRule& rule, const model::HwProfile& profile);

}  // namespace nicoffload::flowrules
