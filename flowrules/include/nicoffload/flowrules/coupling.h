// What plan() derives from all owners at once, kept as counts, so that the
// daemon can plan a batch owner by owner (O(change)) and know when it may
// not. plan() couples owners in two cases:
//   - a table (group) whose hardware-placeable rules exceed its capacity:
//     plan() then places rules by the table's order, not per owner;
//   - in a VXLAN underlay, a local-delivery rule of the FIB in software (by
//     capability): every decap rule follows the whole class
//     (ruleDependencies), so one owner's rule moves every VNI's decap.
// Pure: counts only.
#pragma once

#include <cstdint>
#include <map>
#include <span>

#include "nicoffload/flowrules/rule.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::flowrules {

class CouplingCounts {
 public:
  // The counts of a whole plan (plan()'s rules, placed): what was counted
  // before is dropped.
  void recount(std::span<const FlowRule> rules);
  // One owner's rule, planned alone (portRules, remoteRule, ...), enters or
  // leaves the plan.
  void add(const FlowRule& rule) { count(rule, +1); }
  void remove(const FlowRule& rule) { count(rule, -1); }

  // Whether plan() couples owners now, on this profile and underlay.
  bool coupled(const model::HwProfile& profile, model::UnderlayMode underlay) const;
  // Whether a local-delivery rule is in software (the VXLAN coupling's cause).
  bool deliveryInSoftware() const { return sw_delivery_rules_ > 0; }

  // Rules plan() would put in hardware in `group` if it had room.
  std::uint32_t hwPlaceable(std::uint32_t group) const;
  std::size_t swDeliveryRules() const { return sw_delivery_rules_; }
  bool operator==(const CouplingCounts&) const = default;

 private:
  void count(const FlowRule& rule, int sign);
  std::map<std::uint32_t, std::uint32_t> hw_placeable_by_group_;
  std::size_t sw_delivery_rules_ = 0;
};

}  // namespace nicoffload::flowrules
