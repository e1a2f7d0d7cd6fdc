#include "nicoffload/flowrules/diff.h"

#include <algorithm>

namespace nicoffload::flowrules {

RuleDiff diff(std::span<const FlowRule> desired, std::span<const FlowRule> installed) {
  RuleDiff d;
  std::size_t i = 0, j = 0;
  while (i < desired.size() || j < installed.size()) {
    if (j == installed.size() || (i < desired.size() && desired[i].id < installed[j].id)) {
      d.add.push_back(desired[i++]);
    } else if (i == desired.size() || installed[j].id < desired[i].id) {
      d.remove.push_back(installed[j++].id);
    } else {
      if (!desired[i].sameContent(installed[j])) d.modify.push_back(desired[i]);
      ++i;
      ++j;
    }
  }
  return d;
}

RuleIndex::RuleIndex(std::span<const FlowRule> rules) {
  by_id_.reserve(rules.size());
  for (const auto& r : rules) insert(r);
}

const FlowRule* RuleIndex::find(RuleId id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

void RuleIndex::insert(const FlowRule& r) {
  auto [it, fresh] = by_id_.insert_or_assign(r.id, r);
  (void)it;
  if (fresh) by_owner_[r.owner].push_back(r.id);
}

void RuleIndex::erase(RuleId id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  auto owner_it = by_owner_.find(it->second.owner);
  if (owner_it != by_owner_.end()) {
    auto& ids = owner_it->second;
    ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
    if (ids.empty()) by_owner_.erase(owner_it);
  }
  by_id_.erase(it);
}

RuleDiff RuleIndex::diffOwner(OwnerId owner, std::span<const FlowRule> desired) const {
  std::vector<FlowRule> installed;
  if (auto it = by_owner_.find(owner); it != by_owner_.end()) {
    installed.reserve(it->second.size());
    for (auto id : it->second) installed.push_back(by_id_.at(id));
    std::sort(installed.begin(), installed.end(),
              [](const FlowRule& a, const FlowRule& b) { return a.id < b.id; });
  }
  return diff(desired, installed);
}

void RuleIndex::apply(const RuleDiff& d) {
  for (auto id : d.remove) erase(id);
  for (const auto& r : d.add) insert(r);
  for (const auto& r : d.modify) {
    if (auto* old = find(r.id); old && old->owner != r.owner) erase(r.id);
    insert(r);
  }
}

std::vector<FlowRule> RuleIndex::sorted() const {
  std::vector<FlowRule> out;
  out.reserve(by_id_.size());
  for (const auto& [id, r] : by_id_) out.push_back(r);
  std::sort(out.begin(), out.end(), [](const FlowRule& a, const FlowRule& b) { return a.id < b.id; });
  return out;
}

SoftwarePathDiff diff(const SoftwarePathState& desired, const SoftwarePathState& installed) {
  SoftwarePathDiff d;
  d.sysctls = diffObjects<SysctlSetting>(desired.sysctls, installed.sysctls);
  d.links = diffObjects<LinkSetting>(desired.links, installed.links);
  d.addresses = diffObjects<AddressEntry>(desired.addresses, installed.addresses);
  d.vxlan_devices = diffObjects<VxlanDevice>(desired.vxlan_devices, installed.vxlan_devices);
  d.fdb = diffObjects<FdbEntry>(desired.fdb, installed.fdb);
  d.neighbours = diffObjects<NeighbourEntry>(desired.neighbours, installed.neighbours);
  d.routes = diffObjects<RouteEntry>(desired.routes, installed.routes);
  d.neighbours6 = diffObjects<Neighbour6Entry>(desired.neighbours6, installed.neighbours6);
  d.routes6 = diffObjects<Route6Entry>(desired.routes6, installed.routes6);
  d.rules6 = diffObjects<Rule6Entry>(desired.rules6, installed.rules6);
  return d;
}

}  // namespace nicoffload::flowrules
