#include "nicoffload/flowrules/hw_apply.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <tuple>
#include <unordered_set>

#include "nicoffload/flowrules/planner.h"

namespace nicoffload::flowrules {
namespace {

using Code = PlacementReason::Code;

PlacementReason follows(RuleId leader) {
  PlacementReason r;
  r.code = Code::kFollows;
  r.rule = leader;
  return r;
}

PlacementReason refused(ErrorCode code) {
  PlacementReason r;
  r.code = Code::kDeviceRefused;
  r.detail = static_cast<std::uint8_t>(code);
  return r;
}

// The ethertype an anti-spoofing drop matches (0 when it matches none).
std::uint16_t matchedEtherType(const FlowRule& r) {
  for (const auto& item : r.pattern)
    if (const auto* eth = std::get_if<EthItem>(&item); eth && (eth->fields & EthItem::kType))
      return eth->ether_type;
  return 0;
}

bool isIpv6(const FlowRule& r) {
  return std::any_of(r.pattern.begin(), r.pattern.end(),
                     [](const FlowItem& i) { return std::holds_alternative<Ipv6Item>(i); });
}

bool isAllow(const FlowRule& r) {
  return r.cls == RuleClass::kAntiSpoofing &&
         std::any_of(r.actions.begin(), r.actions.end(),
                     [](const FlowAction& a) { return std::holds_alternative<JumpAction>(a); });
}

bool isDrop(const FlowRule& r) {
  return r.cls == RuleClass::kAntiSpoofing &&
         std::any_of(r.actions.begin(), r.actions.end(),
                     [](const FlowAction& a) { return std::holds_alternative<DropAction>(a); });
}

// Destroy order: group 0 first; within a group the highest priority value
// (drops) first.
template <class R>
bool destroyBefore(const R& a, const R& b) {
  if (a.attr.group != b.attr.group) return a.attr.group < b.attr.group;
  if (a.attr.priority != b.attr.priority) return a.attr.priority > b.attr.priority;
  return a.id < b.id;
}

// Create order: the reverse: the FIB first, then within a group the lowest
// priority value (allow rules and traps, the leaders) first.
template <class R>
bool createBefore(const R& a, const R& b) {
  if (a.attr.group != b.attr.group) return a.attr.group > b.attr.group;
  if (a.attr.priority != b.attr.priority) return a.attr.priority < b.attr.priority;
  return a.id < b.id;
}

std::string hexId(RuleId id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

}  // namespace

namespace {

// Appends the dependencies among the rules of one port.
template <class Rules>
void appendPortDependencies(const Rules& own, std::vector<RuleDependency>& deps) {
  for (const FlowRule* drop : own) {
    if (!isDrop(*drop)) continue;
    const std::uint16_t type = matchedEtherType(*drop);
    for (const FlowRule* leader : own) {
      bool leads = false;
      if (type == kEtherTypeArp) leads = leader->cls == RuleClass::kArpTrap;
      if (type == kEtherTypeIpv4) leads = isAllow(*leader) && !isIpv6(*leader);
      if (type == kEtherTypeIpv6)
        leads = (isAllow(*leader) || leader->cls == RuleClass::kNdTrap) && isIpv6(*leader);
      if (leads) deps.push_back({drop->id, leader->id, std::nullopt});
    }
  }
}

void sortUnique(std::vector<RuleDependency>& deps) {
  std::sort(deps.begin(), deps.end(), [](const RuleDependency& a, const RuleDependency& b) {
    return std::tie(a.follower, a.leader, a.leader_class) <
           std::tie(b.follower, b.leader, b.leader_class);
  });
  deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
}

}  // namespace

std::vector<RuleDependency> portRuleDependencies(std::span<const FlowRule> port_rules) {
  std::vector<const FlowRule*> own;
  own.reserve(port_rules.size());
  for (const auto& r : port_rules) own.push_back(&r);
  std::vector<RuleDependency> deps;
  appendPortDependencies(own, deps);
  sortUnique(deps);
  return deps;
}

RuleDependency decapDependency(const FlowRule& decap) {
  return {decap.id, 0, RuleClass::kLocalDelivery};
}

std::vector<RuleDependency> ruleDependencies(const model::Intent& intent,
                                             std::span<const FlowRule> rules) {
  std::unordered_map<OwnerId, std::vector<const FlowRule*>> by_owner;
  for (const auto& r : rules) by_owner[r.owner].push_back(&r);
  std::vector<RuleDependency> deps;
  for (const auto& port : intent.ports) {
    auto it = by_owner.find(portOwner(port.key));
    if (it != by_owner.end()) appendPortDependencies(it->second, deps);
  }
  // The FIB (group 1) is shared by every VNI: a decapsulated packet of any
  // VNI may be for any local VM, so each decap follows every delivery rule.
  if (intent.host.underlay == model::UnderlayMode::kVxlan)
    for (const auto& r : rules)
      if (r.cls == RuleClass::kVxlanIngress) deps.push_back(decapDependency(r));
  sortUnique(deps);
  return deps;
}

HwApplier::HwApplier(std::unique_ptr<FlowBackend> backend) : backend_(std::move(backend)) {}

void HwApplier::count(const AppliedRule& e, int sign) {
  const auto add = [sign](std::size_t& n) { n = sign > 0 ? n + 1 : n - 1; };
  if (e.placement == Placement::kHw) {
    add(counters_.hw);
    return;
  }
  add(counters_.sw);
  add(counters_.sw_by_reason[static_cast<std::size_t>(e.reason.code)]);
  auto& by_class = sw_by_class_[static_cast<std::size_t>(e.rule.cls)];
  if (sign > 0) {
    by_class.insert(e.rule.id);
  } else {
    by_class.erase(e.rule.id);
  }
  if (e.reason.code == Code::kDeviceRefused && e.device_error)
    add(counters_.refused_by_code[static_cast<std::size_t>(e.device_error->code)]);
}

void HwApplier::setState(AppliedRule& e, Placement placement, const PlacementReason& reason,
                         std::unique_ptr<const Error> error) {
  count(e, -1);
  e.placement = placement;
  e.reason = reason;
  e.device_error = std::move(error);
  if (placement != Placement::kHw) e.handle = kNoHandle;
  count(e, +1);
}

bool HwApplier::retryable(const AppliedRule& e) const {
  if (e.rule.placement != Placement::kHw || e.placement == Placement::kHw) return false;
  if (e.reason.code == Code::kFollows) return true;  // the leader may be in hardware now
  if (e.reason.code != Code::kDeviceRefused || !e.device_error) return false;
  return e.device_error->code == ErrorCode::kBusy ||
         (e.device_error->code == ErrorCode::kTableFull && room_freed_);
}

Status HwApplier::destroyOnDevice(AppliedRule& e) {
  ++counters_.destructions;
  Status s = backend_->destroy(e.handle);
  if (!s &&
      s.error().code != ErrorCode::kNotFound) {  // kNotFound: already gone, which is what we want
    ++counters_.destroy_failures;
    Error err = s.error();
    err.message = "destroying " + formatRuleId(e.rule.cls, e.rule.id) +
                  " failed, it stays on the device: " + err.message;
    return err;
  }
  room_freed_ = true;
  return Status::success();
}

void HwApplier::place(const FlowRule& rule, HwApplyReport& report) {
  auto [it, fresh] = installed_.try_emplace(rule.id);
  AppliedRule& e = it->second;
  if (fresh) {
    e.rule = RuleSummary::of(rule);
    e.placement = Placement::kSw;  // counted as sw until the device confirms
    e.reason = rule.reason;
    count(e, +1);
  } else {
    count(e, -1);
    e.rule = RuleSummary::of(rule);
    count(e, +1);
  }
  if (rule.placement != Placement::kHw) {
    setState(e, Placement::kSw, rule.reason, nullptr);
    return;
  }
  if (auto leader = leaderInSoftware(rule.id)) {
    setState(e, Placement::kSw, follows(*leader), nullptr);
    ++report.followed;
    return;
  }
  ++counters_.validations;
  if (Status v = backend_->validate(rule); !v) {
    ++counters_.refusals;
    ++report.refused;
    setState(e, Placement::kSw, refused(v.error().code), std::make_unique<const Error>(v.error()));
    return;
  }
  ++counters_.creations;
  auto handle = backend_->create(rule);
  if (!handle) {
    ++counters_.refusals;
    ++report.refused;
    setState(e, Placement::kSw, refused(handle.error().code),
             std::make_unique<const Error>(handle.error()));
    return;
  }
  setState(e, Placement::kHw, rule.reason, nullptr);
  e.handle = *handle;
  ++report.created;
}

void HwApplier::cascade(HwApplyReport& report, const std::vector<RuleId>* candidates) {
  // Followers in hardware whose leader ended in software (refused, or a
  // changed leader the device no longer takes). One pass: leaders never
  // follow anything. `candidates`: only these followers (applyDelta: the
  // rules it placed, and the followers of a class), else every one.
  std::vector<AppliedRule*> todo;
  auto consider = [&](RuleId follower) {
    auto f = installed_.find(follower);
    if (f == installed_.end() || f->second.placement != Placement::kHw) return;
    todo.push_back(&f->second);
  };
  if (candidates) {
    for (const RuleId id : *candidates)
      if (leaders_.count(id)) consider(id);
  } else {
    for (const auto& [follower, leaders] : leaders_) consider(follower);
  }
  std::sort(todo.begin(), todo.end());
  todo.erase(std::unique(todo.begin(), todo.end()), todo.end());
  std::sort(todo.begin(), todo.end(), [](const AppliedRule* a, const AppliedRule* b) {
    return destroyBefore(a->rule, b->rule);
  });
  for (AppliedRule* e : todo) {
    const auto leader = leaderInSoftware(e->rule.id);
    if (!leader) continue;
    if (Status s = destroyOnDevice(*e); !s) {
      report.failures.push_back(s.error());
    } else {
      ++report.destroyed;
      ++report.followed;
      setState(*e, Placement::kSw, follows(*leader), nullptr);
    }
  }
}

std::optional<RuleId> HwApplier::leaderInSoftware(RuleId follower) const {
  auto l = leaders_.find(follower);
  if (l == leaders_.end()) return std::nullopt;
  for (const auto& d : l->second) {
    if (d.leader_class) {
      const auto& sw = sw_by_class_[static_cast<std::size_t>(*d.leader_class)];
      if (!sw.empty()) return *std::min_element(sw.begin(), sw.end());  // the same one each time
      continue;
    }
    auto li = installed_.find(d.leader);
    if (li != installed_.end() && li->second.placement != Placement::kHw) return d.leader;
  }
  return std::nullopt;
}

// Destroys `to_destroy` (hardware rules) in safe order, then forgets the
// rules in `to_erase` and the destroyed ones no longer `wanted`; a wanted one
// stays, in software until it is created again. Returns the rules whose
// destroy failed (their old content stays on the device).
std::unordered_set<RuleId> HwApplier::destroyAndErase(std::vector<AppliedRule*>& to_destroy,
                                                      std::vector<RuleId> to_erase,
                                                      const std::function<bool(RuleId)>& wanted,
                                                      HwApplyReport& report) {
  std::sort(to_destroy.begin(), to_destroy.end(), [](const AppliedRule* a, const AppliedRule* b) {
    return destroyBefore(a->rule, b->rule);
  });
  std::unordered_set<RuleId> stuck;
  for (AppliedRule* e : to_destroy) {
    if (Status s = destroyOnDevice(*e); !s) {
      report.failures.push_back(s.error());
      stuck.insert(e->rule.id);
      continue;
    }
    ++report.destroyed;
    if (!wanted(e->rule.id)) {
      to_erase.push_back(e->rule.id);
    } else {
      setState(*e, Placement::kSw, e->rule.reason, nullptr);  // re-created by the caller
    }
  }
  for (const RuleId id : to_erase) {
    auto it = installed_.find(id);
    count(it->second, -1);
    installed_.erase(it);
  }
  return stuck;
}

HwApplyReport HwApplier::apply(std::span<const FlowRule> desired,
                               std::span<const RuleDependency> dependencies) {
  HwApplyReport report;
  leaders_.clear();
  class_followers_.clear();
  for (const auto& d : dependencies) {
    leaders_[d.follower].push_back(d);
    if (d.leader_class) class_followers_.insert(d.follower);
  }

  std::unordered_map<RuleId, const FlowRule*> want;
  want.reserve(desired.size());
  for (const auto& r : desired) want.emplace(r.id, &r);

  // 1. Destroy what is no longer wanted, or wanted with other content.
  std::vector<AppliedRule*> to_destroy;
  std::vector<RuleId> to_erase;
  for (auto& [id, e] : installed_) {
    auto w = want.find(id);
    const bool gone = w == want.end();
    if (!gone && e.rule.sameContent(*w->second)) continue;
    if (e.placement == Placement::kHw) {
      to_destroy.push_back(&e);
    } else if (gone) {
      to_erase.push_back(id);
    }
  }
  const auto stuck = destroyAndErase(to_destroy, std::move(to_erase),
                                     [&](RuleId id) { return want.count(id) > 0; }, report);

  // 2. Create the new, changed and retryable rules, leaders first.
  std::vector<const FlowRule*> queue;
  for (const auto& r : desired) {
    auto it = installed_.find(r.id);
    if (it == installed_.end()) {
      queue.push_back(&r);
    } else if (stuck.count(r.id)) {
      continue;
    } else if (!it->second.rule.sameContent(r) || retryable(it->second)) {
      queue.push_back(&r);
    }
  }
  std::sort(queue.begin(), queue.end(),
            [](const FlowRule* a, const FlowRule* b) { return createBefore(*a, *b); });
  for (const FlowRule* r : queue) place(*r, report);
  room_freed_ = false;

  // 3. Followers whose leader is in software leave the hardware.
  cascade(report, nullptr);
  return report;
}

HwApplyReport HwApplier::applyDelta(std::span<const FlowRule> upsert,
                                     std::span<const RuleId> remove,
                                     std::span<const RuleDependency> dependencies) {
  HwApplyReport report;
  installed_.reserve(installed_.size() + upsert.size());  // one rehash for a 100 k sync
  for (const auto& r : upsert) {
    leaders_.erase(r.id);
    class_followers_.erase(r.id);
  }
  for (const RuleId id : remove) {
    leaders_.erase(id);
    class_followers_.erase(id);
  }
  for (const auto& d : dependencies) {
    leaders_[d.follower].push_back(d);
    if (d.leader_class) class_followers_.insert(d.follower);
  }

  // 1. Destroy what goes away, and the hardware rules whose content changes.
  std::vector<AppliedRule*> to_destroy;
  std::vector<RuleId> to_erase;
  std::unordered_set<RuleId> removed(remove.begin(), remove.end());
  for (const RuleId id : remove) {
    auto it = installed_.find(id);
    if (it == installed_.end()) continue;
    if (it->second.placement == Placement::kHw) {
      to_destroy.push_back(&it->second);
    } else {
      to_erase.push_back(id);
    }
  }
  for (const auto& r : upsert) {
    auto it = installed_.find(r.id);
    if (it != installed_.end() && it->second.placement == Placement::kHw &&
        !it->second.rule.sameContent(r) && !removed.count(r.id))
      to_destroy.push_back(&it->second);
  }
  const auto stuck = destroyAndErase(to_destroy, std::move(to_erase),
                                     [&](RuleId id) { return removed.count(id) == 0; }, report);

  // 2. Create, leaders first.
  std::vector<const FlowRule*> queue;
  for (const auto& r : upsert) {
    if (removed.count(r.id) || stuck.count(r.id)) continue;
    auto it = installed_.find(r.id);
    if (it == installed_.end() || !it->second.rule.sameContent(r) || retryable(it->second))
      queue.push_back(&r);
  }
  std::sort(queue.begin(), queue.end(),
            [](const FlowRule* a, const FlowRule* b) { return createBefore(*a, *b); });
  for (const FlowRule* r : queue) place(*r, report);

  // 3. Followers whose leader is in software leave the hardware: those
  // placed here, and the followers of a whole class (a decap follows every
  // delivery rule), which any change may concern. O(change + VNIs).
  std::vector<RuleId> candidates;
  candidates.reserve(upsert.size() + class_followers_.size());
  for (const auto& r : upsert) candidates.push_back(r.id);
  candidates.insert(candidates.end(), class_followers_.begin(), class_followers_.end());
  cascade(report, &candidates);
  return report;
}

bool HwApplier::wantsRetry(RuleId id) const {
  auto it = installed_.find(id);
  return it != installed_.end() && retryable(it->second);
}

HwApplier::AdoptReport HwApplier::adoptInstalled() {
  AdoptReport report;
  for (auto& held : backend_->installed()) {
    auto it = installed_.find(held.rule.id);
    if (it != installed_.end()) {
      if (it->second.handle == held.handle) continue;  // already ours
      // The same rule twice on the device: keep the first, destroy this one.
      if (Status s = backend_->destroy(held.handle); s) {
        ++report.destroyed;
        ++counters_.destructions;
      } else {
        report.failures.push_back(s.error());
        ++counters_.destroy_failures;
      }
      continue;
    }
    AppliedRule e;
    e.rule = RuleSummary::of(held.rule);
    e.placement = Placement::kHw;
    e.reason = held.rule.reason;
    e.handle = held.handle;
    count(e, +1);
    installed_.emplace(held.rule.id, std::move(e));
    ++report.adopted;
  }
  return report;
}

std::size_t HwApplier::verifyInstalled() {
  std::vector<RuleId> vanished;
  for (auto& [id, e] : installed_) {
    if (e.placement != Placement::kHw) continue;
    auto q = backend_->query(e.handle);
    if (!q && q.error().code == ErrorCode::kNotFound) vanished.push_back(id);
  }
  for (const RuleId id : vanished) {
    auto it = installed_.find(id);
    count(it->second, -1);
    installed_.erase(it);
  }
  return vanished.size();
}

std::size_t HwApplier::verifyInstalled(std::span<const RuleId> ids) {
  std::size_t vanished = 0;
  for (const RuleId id : ids) {
    auto it = installed_.find(id);
    if (it == installed_.end() || it->second.placement != Placement::kHw) continue;
    auto q = backend_->query(it->second.handle);
    if (q || q.error().code != ErrorCode::kNotFound) continue;
    count(it->second, -1);
    installed_.erase(it);
    ++vanished;
  }
  return vanished;
}

std::vector<RuleId> HwApplier::hardwareRuleIds() const {
  std::vector<RuleId> out;
  out.reserve(counters_.hw);
  for (const auto& [id, e] : installed_)
    if (e.placement == Placement::kHw) out.push_back(id);
  return out;
}

std::vector<HwApplier::HeldRule> HwApplier::heldRules() const {
  std::vector<HeldRule> out;
  out.reserve(installed_.size());
  for (const auto& [id, e] : installed_)
    out.push_back({id, e.rule.owner, e.rule.content, e.rule.cls, retryable(e)});
  return out;
}

Status HwApplier::flush() {
  ++counters_.flushes;
  Status s = backend_->flush();
  if (!s) {
    ++counters_.flush_failures;
    return s;
  }
  installed_.clear();
  for (auto& c : sw_by_class_) c.clear();
  const auto ops = counters_;
  counters_ = HwApplyCounters{};
  counters_.validations = ops.validations;
  counters_.creations = ops.creations;
  counters_.destructions = ops.destructions;
  counters_.refusals = ops.refusals;
  counters_.destroy_failures = ops.destroy_failures;
  counters_.flushes = ops.flushes;
  counters_.flush_failures = ops.flush_failures;
  room_freed_ = true;
  return Status::success();
}

Result<FlowCounters> HwApplier::query(RuleId id) {
  auto it = installed_.find(id);
  if (it == installed_.end())
    return makeError(ErrorCode::kNotFound, hexId(id), "", "no such rule is installed");
  const AppliedRule& e = it->second;
  if (e.placement != Placement::kHw)
    return makeError(ErrorCode::kNotFound, formatRuleId(e.rule.cls, id), "sw",
                     "the rule is not in hardware; the software path carries it");
  return backend_->query(e.handle);
}

const AppliedRule* HwApplier::find(RuleId id) const {
  auto it = installed_.find(id);
  return it == installed_.end() ? nullptr : &it->second;
}

std::vector<RuleSummary> HwApplier::effectiveRules() const {
  std::vector<RuleSummary> out;
  out.reserve(installed_.size());
  for (const auto& [id, e] : installed_) out.push_back(e.effective());
  std::sort(out.begin(), out.end(),
            [](const RuleSummary& a, const RuleSummary& b) { return a.id < b.id; });
  return out;
}

std::string describeApplied(const AppliedRule& rule, const model::HwProfile& profile) {
  if (rule.reason.code == Code::kDeviceRefused && rule.device_error) {
    const auto& err = *rule.device_error;
    return "the device refused the rule at install time (" + std::string(errorInfo(err.code).name) +
           "): " + err.describe() + "; the software path carries it";
  }
  return describeReason(rule.reason, profile);
}

}  // namespace nicoffload::flowrules
