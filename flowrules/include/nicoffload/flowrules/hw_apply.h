// Placement at apply time. The planner places each rule hw or sw from the
// hardware profile; the device decides last. HwApplier takes the planned
// rules and a FlowBackend, validates and creates the hw ones, keeps the
// handle of each rule the device accepted, and moves every rule the device
// refuses (validate or create fails: invalid, unsupported, table full, busy)
// to sw with PlacementReason::kDeviceRefused and the device's message. The
// software path then carries that traffic: a packet that misses in hardware
// reaches the representor of its source port.
//
// Installed state follows the hardware (STYLE.md point 6): a rule counts as
// hw only after the backend confirmed create(); a rule leaves hw only after
// destroy() succeeded (or the backend says the handle is already gone).
// Pure: no I/O besides the injected backend.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/flowrules/flow_backend.h"
#include "nicoffload/flowrules/rule.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::flowrules {

inline constexpr std::size_t kPlacementReasonCount = kPlacementReasonCodeCount;
// ErrorCode values: the catalogue's count, so a new code can never index past
// refused_by_code (it was a copy, 12, while ErrorCode had 13).
inline constexpr std::size_t kErrorCodeCount = nicoffload::kErrorCodeCount;

// `follower` may sit in hardware only while `leader` does, or, when
// `leader_class` is set, only while every rule of that class does. A
// hardware follower without its leader would shadow or strand traffic: an
// anti-spoofing drop would catch the legitimate packets its allow rule (in
// software) should pass; a VXLAN decap would hand the kernel a decapsulated
// packet it cannot deliver when a delivery rule is in software.
struct RuleDependency {
  RuleId follower = 0;
  RuleId leader = 0;                      // unused when leader_class is set
  std::optional<RuleClass> leader_class;  // every rule of this class leads
  bool operator==(const RuleDependency&) const = default;
};

// The dependencies among the planned rules of `intent`: per port, the IPv4
// drop follows each anti-spoofing allow rule and the ARP drop follows the ARP
// trap; in a VXLAN underlay every decap rule follows the class of local
// delivery rules (the FIB is shared by all VNIs: one delivery rule in
// software sends every decap to software). Linear in the rules. Pure; sorted
// by follower.
std::vector<RuleDependency> ruleDependencies(const model::Intent& intent,
                                             std::span<const FlowRule> rules);

// The dependencies among one port's rules (as portRules() emits them), as
// ruleDependencies() gives them for that port; and the dependency of a VXLAN
// decap rule on the class of local delivery rules.
std::vector<RuleDependency> portRuleDependencies(std::span<const FlowRule> port_rules);
RuleDependency decapDependency(const FlowRule& decap);

// One rule as the applier holds it.
struct AppliedRule {
  RuleSummary rule;                      // as planned: placement and reason are the planner's;
                                         // the content only as a digest (memory: 100 k+ rules)
  Placement placement = Placement::kSw;  // in effect: kHw only while the device holds it
  PlacementReason reason;                // in effect
  FlowHandle handle = kNoHandle;         // the device's handle; set iff placement == kHw
  // The device's last refusal of this rule (null when none; held apart so
  // that the common case, a rule the device took, costs 8 bytes).
  std::unique_ptr<const Error> device_error;

  // The rule's summary with the placement and reason in effect.
  RuleSummary effective() const {
    RuleSummary r = rule;
    r.placement = placement;
    r.reason = reason;
    return r;
  }
  // `planned` (the full rule, from the planner) with the placement and
  // reason in effect, for rendering and explain.
  FlowRule effective(const FlowRule& planned) const {
    FlowRule r = planned;
    r.placement = placement;
    r.reason = reason;
    return r;
  }
};

struct HwApplyCounters {
  // Rules in effect now.
  std::size_t hw = 0;
  std::size_t sw = 0;
  std::array<std::size_t, kPlacementReasonCount> sw_by_reason{};  // index: PlacementReason::Code
  std::array<std::size_t, kErrorCodeCount>
      refused_by_code{};  // sw because the device refused; index: ErrorCode
  // Device operations since construction.
  std::uint64_t validations = 0;
  std::uint64_t creations = 0;
  std::uint64_t destructions = 0;
  std::uint64_t refusals = 0;          // validate/create refused: the rule went to sw
  std::uint64_t destroy_failures = 0;  // the rule stayed on the device
  std::uint64_t flushes = 0;
  std::uint64_t flush_failures = 0;

  std::size_t total() const { return hw + sw; }
  std::size_t refused() const {
    std::size_t n = 0;
    for (auto c : refused_by_code) n += c;
    return n;
  }
};

// What one apply() pass did.
struct HwApplyReport {
  std::size_t created = 0;      // rules the device accepted in this pass
  std::size_t destroyed = 0;    // rules removed from the device in this pass
  std::size_t refused = 0;      // rules the device refused in this pass (now sw, kDeviceRefused)
  std::size_t followed = 0;     // hw-planned rules kept in sw because a leader is in sw
  std::vector<Error> failures;  // destroy failures: those rules stay on the device as they were
  bool clean() const { return failures.empty(); }
};

class HwApplier {
 public:
  explicit HwApplier(std::unique_ptr<FlowBackend> backend);

  // Brings the device to `desired` (the planner's rules, unique ids):
  //  1. destroys the hardware rules that are no longer desired or whose
  //     content changed (group 0 first, within a group the highest priority
  //     value first, so that drops go before the allows they back);
  //  2. creates the new and changed hw-planned rules, FIB (group 1) first and
  //     within a group the lowest priority value first, so that a leader is
  //     in place before its followers: validate(), then create();
  //     a refusal places the rule sw with kDeviceRefused, the Error kept in
  //     AppliedRule::device_error;
  //  3. moves to sw (destroying them if needed) the hw rules whose leader
  //     (per `dependencies`) is in sw, with kFollows.
  // Rules refused as kBusy are retried on every pass, kTableFull ones after a
  // rule left the device; refusals for invalid or unsupported rules are not
  // retried until the rule changes. sw-planned rules never reach the device.
  HwApplyReport apply(std::span<const FlowRule> desired,
                      std::span<const RuleDependency> dependencies = {});

  // The same for only the rules a change touched: `upsert` holds new and
  // changed rules (and rules to retry), `remove` the ids no longer desired.
  // `dependencies` gives the leaders of the followers among `upsert` (they
  // replace what was known for those rules); removed rules lose theirs.
  // Same order and placement rules as apply(); rules not named are left as
  // they are, except hardware followers whose leader is now in software.
  // O(rules named + dependencies held).
  HwApplyReport applyDelta(std::span<const FlowRule> upsert, std::span<const RuleId> remove,
                           std::span<const RuleDependency> dependencies);

  // Whether apply() would place `id` again (a refusal worth retrying, or a
  // follower whose leader may be back): for a full pass computed elsewhere.
  bool wantsRetry(RuleId id) const;

  // Takes over the rules the device already holds (FlowBackend::installed(),
  // e.g. after a restart of the controller), before the first apply(): each
  // becomes a hardware rule with its handle, so that apply() keeps the ones
  // still desired (no churn) and destroys the others. A second copy of the
  // same rule id on the device is destroyed at once.
  struct AdoptReport {
    std::size_t adopted = 0;
    std::size_t destroyed = 0;      // duplicates
    std::vector<Error> failures;    // duplicates the device would not destroy
  };
  AdoptReport adoptInstalled();

  // Checks that every hardware rule is still on the device (query of its
  // COUNT): a port restart loses them. Each one that vanished is forgotten, so
  // that the next apply() installs it again. Returns how many vanished.
  std::size_t verifyInstalled();

  // The same for the rules named (those no longer in hardware are skipped),
  // so that a caller can check a large device in slices.
  std::size_t verifyInstalled(std::span<const RuleId> ids);
  std::vector<RuleId> hardwareRuleIds() const;

  // What a full pass computed elsewhere (another thread) needs to know of
  // each rule held: its digest, and whether apply() would place it again.
  struct HeldRule {
    RuleId id = 0;
    OwnerId owner = 0;
    std::uint64_t content = 0;
    RuleClass cls = RuleClass::kLocalDelivery;
    bool retry = false;
  };
  std::vector<HeldRule> heldRules() const;
  // A full pass through applyDelta() is over: refusals for a full table wait
  // again for a rule to leave the device (apply() does this itself).
  void fullPassDone() { room_freed_ = false; }

  // FlowBackend::flush(). On success nothing is installed any more (the
  // next apply() installs everything again); on error nothing changes.
  Status flush();

  // The COUNT readings of a rule in hardware. Errors: kNotFound when the
  // rule is unknown or not in hardware; the backend's errors.
  Result<FlowCounters> query(RuleId id);

  const AppliedRule* find(RuleId id) const;
  std::size_t size() const { return installed_.size(); }
  // Every rule with the placement in effect, sorted by id.
  std::vector<RuleSummary> effectiveRules() const;
  const HwApplyCounters& counters() const { return counters_; }
  FlowBackend& backend() { return *backend_; }

 private:
  void count(const AppliedRule& e, int sign);
  void setState(AppliedRule& e, Placement placement, const PlacementReason& reason,
                std::unique_ptr<const Error> error);
  bool retryable(const AppliedRule& e) const;
  void place(const FlowRule& rule, HwApplyReport& report);
  Status destroyOnDevice(AppliedRule& e);
  void cascade(HwApplyReport& report, const std::vector<RuleId>* candidates);
  std::unordered_set<RuleId> destroyAndErase(std::vector<AppliedRule*>& to_destroy,
                                             std::vector<RuleId> to_erase,
                                             const std::function<bool(RuleId)>& wanted,
                                             HwApplyReport& report);
  // A leader of `follower` that is not in hardware now, if any.
  std::optional<RuleId> leaderInSoftware(RuleId follower) const;

  std::unique_ptr<FlowBackend> backend_;
  std::unordered_map<RuleId, AppliedRule> installed_;
  std::unordered_map<RuleId, std::vector<RuleDependency>> leaders_;  // by follower
  std::unordered_set<RuleId> class_followers_;  // followers of a whole class (decap rules)
  std::array<std::unordered_set<RuleId>, kRuleClassCount> sw_by_class_;  // rules in effect sw, per RuleClass
  HwApplyCounters counters_;
  bool room_freed_ =
      false;  // a rule left the device since the last pass: retry kTableFull refusals
};

// Why a rule sits where it does, including the device's own message when
// the device refused it.
std::string describeApplied(const AppliedRule& rule, const model::HwProfile& profile);

}  // namespace nicoffload::flowrules
