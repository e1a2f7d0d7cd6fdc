// diff(desired, installed) -> the minimal delta. Pure.
#pragma once

#include <span>
#include <unordered_map>
#include <vector>

#include "nicoffload/flowrules/rule.h"
#include "nicoffload/flowrules/sw_objects.h"

namespace nicoffload::flowrules {

struct RuleDiff {
  std::vector<FlowRule> add;     // desired, not installed
  std::vector<RuleId> remove;    // installed, not desired
  std::vector<FlowRule> modify;  // same id, different content (new content)
  bool empty() const { return add.empty() && remove.empty() && modify.empty(); }
  std::size_t size() const { return add.size() + remove.size() + modify.size(); }
};

// Both inputs sorted by id (as plan() and RuleIndex::sorted() return them).
RuleDiff diff(std::span<const FlowRule> desired, std::span<const FlowRule> installed);

// Installed rules indexed by id and by owner, for incremental diffs.
class RuleIndex {
 public:
  explicit RuleIndex(std::span<const FlowRule> rules = {});

  std::size_t size() const { return by_id_.size(); }
  const FlowRule* find(RuleId id) const;

  // Diff of one owner's desired rules (sorted by id) against what this index
  // holds for that owner. O(rules of the owner).
  RuleDiff diffOwner(OwnerId owner, std::span<const FlowRule> desired) const;

  // Applies a diff as if every operation succeeded.
  void apply(const RuleDiff& d);

  std::vector<FlowRule> sorted() const;

 private:
  void insert(const FlowRule& r);
  void erase(RuleId id);

  std::unordered_map<RuleId, FlowRule> by_id_;
  std::unordered_map<OwnerId, std::vector<RuleId>> by_owner_;
};

// Diff of one kind of software-path object; both sides sorted by key().
template <class T>
struct ObjectDiff {
  std::vector<T> add;
  std::vector<T> remove;
  std::vector<T> modify;
  bool empty() const { return add.empty() && remove.empty() && modify.empty(); }
  std::size_t size() const { return add.size() + remove.size() + modify.size(); }
};

template <class T>
ObjectDiff<T> diffObjects(std::span<const T> desired, std::span<const T> installed) {
  ObjectDiff<T> d;
  std::size_t i = 0, j = 0;
  while (i < desired.size() || j < installed.size()) {
    if (j == installed.size() || (i < desired.size() && desired[i].key() < installed[j].key())) {
      d.add.push_back(desired[i++]);
    } else if (i == desired.size() || installed[j].key() < desired[i].key()) {
      d.remove.push_back(installed[j++]);
    } else {
      if (!(desired[i] == installed[j])) d.modify.push_back(desired[i]);
      ++i;
      ++j;
    }
  }
  return d;
}

struct SoftwarePathDiff {
  ObjectDiff<SysctlSetting> sysctls;
  ObjectDiff<LinkSetting> links;
  ObjectDiff<AddressEntry> addresses;
  ObjectDiff<VxlanDevice> vxlan_devices;
  ObjectDiff<FdbEntry> fdb;
  ObjectDiff<NeighbourEntry> neighbours;
  ObjectDiff<RouteEntry> routes;
  ObjectDiff<Neighbour6Entry> neighbours6;
  ObjectDiff<Route6Entry> routes6;
  ObjectDiff<Rule6Entry> rules6;
  bool empty() const { return size() == 0; }
  std::size_t size() const {
    return sysctls.size() + links.size() + addresses.size() + vxlan_devices.size() + fdb.size() +
           neighbours.size() + routes.size() + neighbours6.size() + routes6.size() + rules6.size();
  }
};

SoftwarePathDiff diff(const SoftwarePathState& desired, const SoftwarePathState& installed);

}  // namespace nicoffload::flowrules
