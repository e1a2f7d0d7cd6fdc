// FlowBackend: the one seam between the controller and a device that holds
// flow rules (STYLE.md points 2 and 3). Shaped like rte_flow: validate apart
// from create, create returns a handle, destroy(handle), query(handle) for
// the COUNT action, flush, and the device's capabilities.
//
// Implementations: simnic::SimEswitch (the simulated ConnectX eswitch, a
// first-class backend that enforces a hardware profile and evaluates
// packets) and dpdk::DpdkFlowBackend (rte_flow on the real device).
//
// Errors are values. Every call returns an Error whose code says what kind
// of refusal it is, and whose field/value name the offending part of the
// rule when the device names one (rte_flow_error.cause):
//   kInvalidValue  the rule is malformed for the device (EINVAL)
//   kUnsupported   the device cannot do an item, action or attribute
//                  (ENOTSUP, ENOSYS)
//   kTableFull     no room left in a table (ENOSPC, ENOMEM)
//   kBusy          the device is busy; the same call may succeed later
//                  (EBUSY, EAGAIN)
//   kNotFound      the handle is unknown to the backend
//   kInternal      anything else the device answered
// Error::field is "<rule id>.pattern[i]", "<rule id>.actions[i]" or
// "<rule id>.attr" (see itemField/actionField/attrField) and Error::value the
// item or action name ("vxlan_encap"); Error::message carries the device's
// own message verbatim, with the call that produced it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/flowrules/rule.h"

namespace nicoffload::flowrules {

// A rule created on a device, as the backend numbers it. Never 0.
using FlowHandle = std::uint64_t;
inline constexpr FlowHandle kNoHandle = 0;

// TTL of the outer IPv4 header a VXLAN_ENCAP writes (RFC 7348 §5 leaves it
// to the VTEP; 64 is the Linux default, net.ipv4.ip_default_ttl). Every
// backend writes the same value so that the sim and the device agree.
inline constexpr std::uint8_t kVxlanEncapTtl = 64;

// Readings of a rule's COUNT action (rte_flow_query_count).
struct FlowCounters {
  std::uint64_t hits = 0;   // packets that matched the rule
  std::uint64_t bytes = 0;  // bytes of those packets, as matched (L2 header included, no FCS)
  bool operator==(const FlowCounters&) const = default;
};

// What a backend says it can do. For the sim these are the limits it
// enforces; for DPDK they are the hardware profile's claims, and
// rte_flow_validate() on the device decides last (rte_flow has no
// capability query).
struct FlowBackendCapabilities {
  std::string backend;  // "sim" or "dpdk"
  std::string device;   // the profile the sim enforces, or the PF devargs / port of DPDK
  std::array<bool, model::kItemTypeCount> items{};
  std::array<bool, model::kActionTypeCount> actions{};
  std::uint32_t max_groups = 0;        // groups 0..max_groups-1
  std::uint32_t root_table_rules = 0;  // rules group 0 holds
  std::uint32_t rules_per_group = 0;   // rules every other group holds
  std::uint16_t vf_count = 0;          // VF ports rules may name: vf0..vf<vf_count-1>
  bool enforced = false;               // true: the backend itself refuses what lies beyond these

  // The profile's claims: items, actions and table sizes (backend, device,
  // vf_count and enforced are the caller's to set).
  static FlowBackendCapabilities fromProfile(const model::HwProfile& profile) {
    FlowBackendCapabilities c;
    for (std::size_t i = 0; i < model::kItemTypeCount; ++i) c.items[i] = profile.items[i].supported;
    for (std::size_t i = 0; i < model::kActionTypeCount; ++i) c.actions[i] = profile.actions[i].supported;
    c.max_groups = profile.max_groups;
    c.root_table_rules = profile.root_table_rules;
    c.rules_per_group = profile.rules_per_group;
    return c;
  }

  bool supports(ItemType t) const { return items[static_cast<std::size_t>(t)]; }
  bool supports(ActionType t) const { return actions[static_cast<std::size_t>(t)]; }
};

// The field names errors use to point into a rule.
std::string attrField(const FlowRule& rule);                       // "ld-….attr"
std::string itemField(const FlowRule& rule, std::size_t index);    // "ld-….pattern[2]"
std::string actionField(const FlowRule& rule, std::size_t index);  // "ld-….actions[3]"

// An error about item `index` of `rule`: field itemField(), value the item name.
Error itemError(ErrorCode code, const FlowRule& rule, std::size_t index, std::string message);
// An error about action `index` of `rule`: field actionField(), value the action name.
Error actionError(ErrorCode code, const FlowRule& rule, std::size_t index, std::string message);
// An error about the attributes (group, priority, transfer) of `rule`.
Error attrError(ErrorCode code, const FlowRule& rule, std::string value, std::string message);

// A rule as the device holds it (see FlowBackend::installed()).
struct HeldRule {
  FlowHandle handle = kNoHandle;
  FlowRule rule;
};

class FlowBackend {
 public:
  virtual ~FlowBackend() = default;

  // The rules the device holds that this backend can name, oldest first:
  // what a restarted controller adopts instead of installing again. The
  // simulated NIC keeps its rules across controller restarts (as a device
  // does); rte_flow rules live as long as the DPDK process that made them, so
  // the DPDK backend lists only what it created itself. Never fails.
  virtual std::vector<HeldRule> installed() const = 0;

  // What the device can do (see FlowBackendCapabilities). Never fails.
  virtual const FlowBackendCapabilities& capabilities() const = 0;

  // Would the device accept `rule` now? Changes nothing on the device.
  // Errors: kInvalidValue, kUnsupported, kTableFull, kBusy (see above).
  virtual Status validate(const FlowRule& rule) = 0;

  // Creates `rule` on the device and returns its handle. The caller
  // validates first (HwApplier does); create() may still refuse with the
  // same errors as validate().
  virtual Result<FlowHandle> create(const FlowRule& rule) = 0;

  // Removes the rule behind `handle`. Errors: kNotFound for a handle the
  // backend does not hold (already destroyed, flushed, or never created);
  // kBusy; kInternal when the device fails. On error the rule stays.
  virtual Status destroy(FlowHandle handle) = 0;

  // The COUNT readings of the rule behind `handle`. Errors: kNotFound;
  // kUnsupported when the rule has no COUNT action or the device cannot
  // count.
  virtual Result<FlowCounters> query(FlowHandle handle) = 0;

  // Removes every rule this backend created. Every handle becomes unknown
  // on success; on error nothing is known to be removed.
  virtual Status flush() = 0;
};

}  // namespace nicoffload::flowrules
