// Incremental planning: what a batch that touched a few owners (ports,
// remotes) changes in the plan, without planning the whole intent.
//
// plan() derives some objects from many owners at once: the decap rule of a
// VNI that local ports use, the VXLAN device of a VNI in use, the FDB entry
// and neighbour of a remote VTEP. DerivedRefs keeps them as counts of users,
// so that a batch learns which of them appear (first user) or vanish (last
// user) in O(change). planTouched() re-plans the touched owners before and
// after, and returns the rules to upsert and remove and the kernel objects
// before and after; the daemon applies them (daemon/src/reconciler.cc).
//
// Pure: no I/O. Whether plan() couples owners (so that a batch must plan the
// whole intent) is CouplingCounts' question (coupling.h); planTouched()
// keeps those counts up to date as it goes.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/flowrules/coupling.h"
#include "nicoffload/flowrules/hw_apply.h"
#include "nicoffload/flowrules/planner.h"
#include "nicoffload/flowrules/rule.h"
#include "nicoffload/flowrules/sw_objects.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::flowrules {

// A remote VTEP within a VNI (VXLAN underlay): one FDB entry and one
// neighbour on that VNI's device.
struct VtepKey {
  std::uint32_t vni = 0;
  IpAddr vtep;
  auto operator<=>(const VtepKey& o) const = default;
};

// The users a batch added (+1) or removed (-1), per derived object.
struct DerivedDelta {
  std::map<std::uint32_t, int> port_vnis;  // local ports per VNI (decap rules)
  std::map<std::uint32_t, int> vnis;       // ports + remotes per VNI (VXLAN devices)
  std::map<VtepKey, int> vteps;            // remotes per (VNI, VTEP) (FDB + neighbour)

  void port(std::uint32_t vni, int sign) {
    port_vnis[vni] += sign;
    vnis[vni] += sign;
  }
  void remote(std::uint32_t vni, const IpAddr& vtep, int sign) {
    vnis[vni] += sign;
    vteps[VtepKey{vni, vtep}] += sign;
  }
};

// What appeared (first user) or vanished (last user), each list in
// ascending order.
struct DerivedChanges {
  std::vector<std::uint32_t> decap_added, decap_removed;  // VNIs local ports use
  std::vector<std::uint32_t> vni_added, vni_removed;      // VNIs in use
  std::vector<VtepKey> vtep_added, vtep_removed;          // remote VTEPs
  bool any() const {
    return !decap_added.empty() || !decap_removed.empty() || !vni_added.empty() ||
           !vni_removed.empty() || !vtep_added.empty() || !vtep_removed.empty();
  }
};

class DerivedRefs {
 public:
  // A user counted at start (a whole intent).
  void addPort(std::uint32_t vni);
  void addRemote(std::uint32_t vni, const IpAddr& vtep);
  // Applies a batch's delta; what appeared or vanished. A count never goes
  // below zero (a user removed twice is a caller's bug, counted as gone).
  DerivedChanges apply(const DerivedDelta& delta);

  std::uint32_t portsIn(std::uint32_t vni) const { return get(port_vnis_, vni); }
  std::uint32_t usersOf(std::uint32_t vni) const { return get(vnis_, vni); }
  std::uint32_t usersOf(VtepKey key) const { return get(vteps_, key); }
  // The VNIs local ports use, ascending.
  std::vector<std::uint32_t> portVnis() const;
  bool operator==(const DerivedRefs&) const = default;

 private:
  template <class Map, class Key>
  static std::uint32_t get(const Map& m, const Key& k) {
    const auto it = m.find(k);
    return it == m.end() ? 0 : it->second;
  }
  std::map<std::uint32_t, std::uint32_t> port_vnis_;
  std::map<std::uint32_t, std::uint32_t> vnis_;
  std::map<VtepKey, std::uint32_t> vteps_;
};

// The ids of `before`'s rules that `after` does not hold: what one owner's
// re-plan removes (the rest of `after` is upserted).
std::vector<RuleId> vanishedRules(std::span<const FlowRule> before,
                                  std::span<const FlowRule> after);

// One touched owner: as it was before the batch and as it is now (null:
// absent then / now).
template <class Owner>
struct Touched {
  const Owner* before = nullptr;
  const Owner* now = nullptr;
};

struct TouchedPlan {
  std::vector<FlowRule> upsert;
  std::vector<RuleId> remove;
  std::vector<RuleDependency> dependencies;
  SoftwarePathState sw_before, sw_after;  // kernel objects of the touched owners, unsorted
  bool derived = false;                   // a VNI or a remote VTEP appeared or vanished
};

// Re-plans the touched owners with `planner` (remotes' rules before the
// batch with `before_planner`, which differs when a next hop's MAC
// changed). Updates `coupling` and, in a VXLAN underlay, `refs`.
// Errors: a port of `ports[i].now` that does not plan (an admitted port:
// a bug), with the planner's error; `coupling` then holds the owners
// counted before it.
Result<TouchedPlan> planTouched(const OwnerPlanner& planner, const OwnerPlanner& before_planner,
                                std::span<const Touched<model::Port>> ports,
                                std::span<const Touched<model::RemoteEndpoint>> remotes,
                                CouplingCounts& coupling, DerivedRefs& refs);

}  // namespace nicoffload::flowrules
