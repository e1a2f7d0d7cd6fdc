#include "nicoffload/flowrules/incremental.h"

#include <algorithm>

namespace nicoffload::flowrules {

void DerivedRefs::addPort(std::uint32_t vni) {
  ++port_vnis_[vni];
  ++vnis_[vni];
}

void DerivedRefs::addRemote(std::uint32_t vni, const IpAddr& vtep) {
  ++vnis_[vni];
  ++vteps_[VtepKey{vni, vtep}];
}

namespace {

// Applies `delta` to each count; `appear` / `vanish` get the keys whose
// count left or reached zero.
template <class Key>
void applyCounts(std::map<Key, std::uint32_t>& counts, const std::map<Key, int>& delta,
                 std::vector<Key>& appear, std::vector<Key>& vanish) {
  for (const auto& [key, d] : delta) {
    if (d == 0) continue;
    const auto it = counts.find(key);
    const std::int64_t before = it == counts.end() ? 0 : it->second;
    const std::int64_t after = before + d;
    if (after <= 0) {
      if (it != counts.end()) counts.erase(it);
    } else {
      counts[key] = static_cast<std::uint32_t>(after);
    }
    if (before == 0 && after > 0) appear.push_back(key);
    if (before > 0 && after <= 0) vanish.push_back(key);
  }
}

}  // namespace

DerivedChanges DerivedRefs::apply(const DerivedDelta& delta) {
  DerivedChanges out;
  applyCounts(port_vnis_, delta.port_vnis, out.decap_added, out.decap_removed);
  applyCounts(vnis_, delta.vnis, out.vni_added, out.vni_removed);
  applyCounts(vteps_, delta.vteps, out.vtep_added, out.vtep_removed);
  return out;
}

std::vector<std::uint32_t> DerivedRefs::portVnis() const {
  std::vector<std::uint32_t> out;
  out.reserve(port_vnis_.size());
  for (const auto& [vni, n] : port_vnis_) out.push_back(vni);
  return out;
}

std::vector<RuleId> vanishedRules(std::span<const FlowRule> before,
                                  std::span<const FlowRule> after) {
  std::vector<RuleId> out;
  for (const auto& r : before)
    if (std::none_of(after.begin(), after.end(), [&](const FlowRule& n) { return n.id == r.id; }))
      out.push_back(r.id);
  return out;
}

Result<TouchedPlan> planTouched(const OwnerPlanner& planner, const OwnerPlanner& before_planner,
                                std::span<const Touched<model::Port>> ports,
                                std::span<const Touched<model::RemoteEndpoint>> remotes,
                                CouplingCounts& coupling, DerivedRefs& refs) {
  const bool vxlan = planner.host().underlay == model::UnderlayMode::kVxlan;
  TouchedPlan out;
  DerivedDelta delta;
  auto change = [&](std::vector<FlowRule> old_rules, std::vector<FlowRule> new_rules) {
    for (const auto& r : old_rules) coupling.remove(r);
    for (const auto& r : new_rules) coupling.add(r);
    for (const auto id : vanishedRules(old_rules, new_rules)) out.remove.push_back(id);
    for (auto& r : new_rules) out.upsert.push_back(std::move(r));
  };

  for (const auto& t : ports) {
    std::vector<FlowRule> old_rules, new_rules;
    if (t.before) {
      if (auto r = planner.portRules(*t.before)) old_rules = std::move(r).value();
      planner.portObjects(*t.before, out.sw_before);
      if (vxlan) delta.port(planner.vniOf(*t.before), -1);
    }
    if (t.now) {
      auto r = planner.portRules(*t.now);
      if (!r) {
        Error e = r.error();
        e.message = "planning admitted port " + t.now->key.str() + ": " + e.message;
        return e;
      }
      new_rules = std::move(r).value();
      for (auto& d : portRuleDependencies(new_rules)) out.dependencies.push_back(d);
      planner.portObjects(*t.now, out.sw_after);
      if (vxlan) delta.port(planner.vniOf(*t.now), +1);
    }
    change(std::move(old_rules), std::move(new_rules));
  }
  for (const auto& t : remotes) {
    std::vector<FlowRule> old_rules, new_rules;
    if (t.before) {
      old_rules.push_back(before_planner.remoteRule(*t.before));
      planner.remoteObjects(*t.before, out.sw_before);
      if (vxlan) delta.remote(planner.vniOf(*t.before), *t.before->vtep, -1);
    }
    if (t.now) {
      new_rules.push_back(planner.remoteRule(*t.now));
      planner.remoteObjects(*t.now, out.sw_after);
      if (vxlan) delta.remote(planner.vniOf(*t.now), *t.now->vtep, +1);
    }
    change(std::move(old_rules), std::move(new_rules));
  }

  // What appears or disappears with the first or last user of a VNI / VTEP.
  const auto derived = refs.apply(delta);
  out.derived = derived.any();
  for (const auto vni : derived.decap_added) {
    auto r = planner.decapRule(vni);
    coupling.add(r);
    out.dependencies.push_back(decapDependency(r));
    out.upsert.push_back(std::move(r));
  }
  for (const auto vni : derived.decap_removed) {
    const auto r = planner.decapRule(vni);
    coupling.remove(r);
    out.remove.push_back(r.id);
  }
  for (const auto vni : derived.vni_added) planner.vniObjects(vni, out.sw_after);
  for (const auto vni : derived.vni_removed) planner.vniObjects(vni, out.sw_before);
  for (const auto& k : derived.vtep_added) planner.vtepObjects(k.vni, k.vtep, out.sw_after);
  for (const auto& k : derived.vtep_removed) planner.vtepObjects(k.vni, k.vtep, out.sw_before);
  return out;
}

}  // namespace nicoffload::flowrules
