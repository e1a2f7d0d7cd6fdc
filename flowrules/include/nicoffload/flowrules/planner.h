// The planner: intent + hardware profile -> desired state. Pure: no I/O, no
// clock, no randomness; the same input gives the same output, rule ids
// included, so a re-plan of unchanged intent diffs to nothing.
//
// Table layout (transfer domain):
//   group 0 (root)  per VF:  ARP trap (prio 0), anti-spoofing allow -> jump 1
//                            (prio 0, one per address), anti-spoofing drops (prio 1)
//                   uplink:  routed: IPv4 -> jump 1; vxlan: decap per VNI -> jump 1
//   group 1 (FIB)   IPv4 dst /32: local delivery (to VF) or egress (to uplink,
//                   rewritten or VXLAN-encapsulated)
// A packet that misses goes to the representor of the port it came from,
// where the kernel (software path) handles it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/flowrules/rule.h"
#include "nicoffload/flowrules/sw_objects.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/model/intent.h"
#include "nicoffload/vdpa/vdpa_device.h"

namespace nicoffload::flowrules {

inline constexpr std::uint32_t kRootGroup = 0;
inline constexpr std::uint32_t kFibGroup = 1;
inline constexpr std::uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr std::uint16_t kEtherTypeArp = 0x0806;

// Owner ids: which piece of intent a rule or object belongs to.
OwnerId portOwner(const model::PortKey& key);
OwnerId remoteOwner(Ipv4Addr address);
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

// Emits the rules one port owns (ARP trap, anti-spoofing, local delivery),
// placed by capability only (no table-capacity pass), sorted by id. Used for
// incremental re-planning after a port change: diff the result against the
// installed rules of portOwner(port.key).
Result<std::vector<FlowRule>> planPortRules(const model::HostConfig& host,
                                            const model::HwProfile& profile,
                                            const model::Port& port);

// Human text for a placement reason, e.g. "connectx-5: vxlan_encap only on UDP
// ports 4789, rule needs 8472 (dpdk-mlx5-guide: ...)".
std::string describeReason(const PlacementReason& reason, const model::HwProfile& profile);

// Full explanation of one rule: class, owner, placement and reason.
std::string explainRule(const FlowRule& rule, const model::HwProfile& profile);

}  // namespace nicoffload::flowrules
