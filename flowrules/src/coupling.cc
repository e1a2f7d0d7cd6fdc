#include "nicoffload/flowrules/coupling.h"

#include "nicoffload/flowrules/planner.h"

namespace nicoffload::flowrules {

void CouplingCounts::recount(std::span<const FlowRule> rules) {
  hw_placeable_by_group_.clear();
  sw_delivery_rules_ = 0;
  for (const auto& r : rules) add(r);
}

void CouplingCounts::count(const FlowRule& r, int sign) {
  using Code = PlacementReason::Code;
  auto step = [sign](auto& n) { n = sign > 0 ? n + 1 : (n > 0 ? n - 1 : 0); };
  // A rule in software only because its table is full would be in hardware
  // with room: it counts towards its table. So does a follower: its leader
  // may be in software for want of room too (an anti-spoofing drop behind
  // its allow), and counting one that could never be in hardware only makes
  // a batch plan the whole intent (slower, never wrong), where leaving it
  // out would let a batch plan owner by owner past a full table.
  if (r.placement == Placement::kHw || r.reason.code == Code::kTableFull ||
      r.reason.code == Code::kFollows) {
    auto it = hw_placeable_by_group_.try_emplace(r.attr.group, 0).first;
    step(it->second);
    if (it->second == 0) hw_placeable_by_group_.erase(it);
  } else if (r.cls == RuleClass::kLocalDelivery && r.attr.group == kFibGroup &&
             r.reason.code != Code::kFollows) {
    step(sw_delivery_rules_);
  }
}

bool CouplingCounts::coupled(const model::HwProfile& profile, model::UnderlayMode underlay) const {
  for (const auto& [group, n] : hw_placeable_by_group_) {
    const std::uint32_t cap = group >= profile.max_groups ? 0 : profile.groupCapacity(group);
    if (n > cap) return true;
  }
  return underlay == model::UnderlayMode::kVxlan && sw_delivery_rules_ > 0;
}

std::uint32_t CouplingCounts::hwPlaceable(std::uint32_t group) const {
  const auto it = hw_placeable_by_group_.find(group);
  return it == hw_placeable_by_group_.end() ? 0 : it->second;
}

}  // namespace nicoffload::flowrules
