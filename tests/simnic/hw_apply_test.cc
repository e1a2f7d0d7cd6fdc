// Apply-time placement (HwApplier) over the simulated NIC, with the sim's
// fault injection: refusals go to sw with the device's reason, installed
// state follows the device, counters add up, dependencies hold.
#include "nicoffload/flowrules/hw_apply.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>

#include "nicoffload/flowrules/planner.h"
#include "nicoffload/simnic/sim_eswitch.h"
#include "support/sim_support.h"

namespace nicoffload::flowrules {
namespace {

using simnic::SimEswitch;
using test::ip;
using test::SimHost;
using Code = PlacementReason::Code;

std::size_t hwPlanned(const DesiredState& plan) {
  return static_cast<std::size_t>(
      std::count_if(plan.rules.begin(), plan.rules.end(),
                    [](const FlowRule& r) { return r.placement == Placement::kHw; }));
}

bool hasAction(const FlowRule& r, model::ActionType t) {
  return std::any_of(r.actions.begin(), r.actions.end(),
                     [t](const FlowAction& a) { return actionType(a) == t; });
}

// Counters must always match the rules the applier holds and the NIC holds.
void expectConsistent(SimHost& h) {
  const auto& c = h.applier->counters();
  std::size_t hw = 0, sw = 0, refused = 0;
  for (const auto& r : h.applier->effectiveRules()) {
    (r.placement == Placement::kHw ? hw : sw)++;
    if (r.reason.code == Code::kDeviceRefused) ++refused;
  }
  EXPECT_EQ(c.hw, hw);
  EXPECT_EQ(c.sw, sw);
  EXPECT_EQ(c.refused(), refused);
  EXPECT_EQ(c.sw_by_reason[static_cast<std::size_t>(Code::kDeviceRefused)], refused);
  EXPECT_EQ(h.nic->size(), hw) << "the NIC holds exactly the rules counted as hw";
  for (const auto& f : h.nic->flows()) {
    const AppliedRule* a = h.applier->find(f.rule.id);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->handle, f.handle);
    EXPECT_EQ(a->placement, Placement::kHw);
  }
}

TEST(HwApply, EveryPlannedHwRuleLandsOnTheNic) {
  auto h = SimHost::start(test::hv1Intent(), test::loadProfile("sim"));
  const std::size_t planned = hwPlanned(h->plan);
  ASSERT_GT(planned, 10u);
  EXPECT_EQ(h->report.created, planned);
  EXPECT_EQ(h->report.refused, 0u);
  EXPECT_TRUE(h->report.clean());
  EXPECT_EQ(h->applier->counters().hw, planned);
  EXPECT_EQ(h->applier->counters().validations, planned) << "validate before every create";
  EXPECT_EQ(h->applier->counters().creations, planned);
  expectConsistent(*h);
}

TEST(HwApply, ReapplyingTheSamePlanTouchesNothing) {
  auto h = SimHost::start(test::hv1Intent(), test::loadProfile("sim"));
  const auto ops = h->nic->operations();
  const auto report = h->applier->apply(h->plan.rules, ruleDependencies(h->intent, h->plan.rules));
  EXPECT_EQ(report.created + report.destroyed + report.refused, 0u);
  EXPECT_EQ(h->nic->operations(), ops) << "zero churn: no device operation at all";
}

TEST(HwApply, RemovedAndChangedRulesAreDestroyedThenRecreated) {
  auto h = SimHost::start(test::hv1Intent(), test::loadProfile("sim"));
  const std::size_t before = h->nic->size();
  auto intent = h->intent;
  // Port 0 goes away; port 1 changes its MAC (its rules change content).
  const auto gone = portOwner(intent.ports[0].key);
  intent.ports.erase(intent.ports.begin());
  intent.ports[0].mac = test::mac("52:54:00:00:0a:0a");
  const auto changed = portOwner(intent.ports[0].key);
  const auto plan = test::unwrap(flowrules::plan(intent, h->profile), "plan");
  const auto report = h->applier->apply(plan.rules, ruleDependencies(intent, plan.rules));
  EXPECT_TRUE(report.clean());
  std::size_t gone_rules = 0, changed_rules = 0;
  for (const auto& r : h->plan.rules) {
    gone_rules += r.owner == gone && r.placement == Placement::kHw;
    changed_rules += r.owner == changed && r.placement == Placement::kHw;
  }
  ASSERT_GT(gone_rules, 0u);
  // Rules whose content changed: the ARP trap and allow rules match the MAC,
  // delivery rewrites to it; the drops do not mention it.
  std::size_t mac_rules = 0;
  for (const auto& r : plan.rules)
    if (r.owner == changed && r.placement == Placement::kHw &&
        !hasAction(r, model::ActionType::kDrop))
      ++mac_rules;
  EXPECT_EQ(report.destroyed, gone_rules + mac_rules);
  EXPECT_EQ(report.created, mac_rules);
  EXPECT_EQ(h->nic->size(), before - gone_rules);
  for (const auto& f : h->nic->flows()) EXPECT_NE(f.rule.owner, gone);
  EXPECT_EQ(h->applier->size(), plan.rules.size());
  expectConsistent(*h);
}

TEST(HwApply, RefusedRulesGoToSoftwareWithTheDevicesReason) {
  // The device refuses every VXLAN_ENCAP: the VXLAN egress rules go sw.
  auto h = SimHost::start(test::hv1Intent(), test::loadProfile("sim"), [](SimEswitch& nic) {
    nic.failAction(model::ActionType::kVxlanEncap, ErrorCode::kUnsupported);
  });
  std::size_t egress = 0;
  for (const auto& r : h->plan.rules) {
    if (r.cls != RuleClass::kVxlanEgress) continue;
    ++egress;
    const AppliedRule* a = h->applier->find(r.id);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(r.placement, Placement::kHw) << "the planner placed it hw";
    EXPECT_EQ(a->placement, Placement::kSw);
    EXPECT_EQ(a->reason.code, Code::kDeviceRefused);
    EXPECT_EQ(a->handle, kNoHandle);
    ASSERT_NE(a->device_error, nullptr);
    EXPECT_EQ(a->device_error->code, ErrorCode::kUnsupported);
    EXPECT_EQ(a->device_error->value, "vxlan_encap");
    EXPECT_EQ(a->device_error->field, formatRuleId(r.cls, r.id) + ".actions[3]");
    const std::string why = describeApplied(*a, h->profile);
    EXPECT_NE(why.find("injected fault: every rule with vxlan_encap fails"), std::string::npos)
        << why;
    EXPECT_NE(why.find("unsupported"), std::string::npos) << why;
    EXPECT_NE(describeReason(a->effective().reason, h->profile).find("refused"), std::string::npos);
  }
  ASSERT_EQ(egress, 3u);
  EXPECT_EQ(h->report.refused, egress);
  const auto& c = h->applier->counters();
  EXPECT_EQ(c.refused_by_code[static_cast<std::size_t>(ErrorCode::kUnsupported)], egress);
  EXPECT_EQ(c.refusals, egress);
  EXPECT_EQ(c.hw, hwPlanned(h->plan) - egress);
  expectConsistent(*h);

  // Refused as unsupported: not retried while the rule is unchanged.
  h->nic->clearFaults();
  auto again = h->applier->apply(h->plan.rules, ruleDependencies(h->intent, h->plan.rules));
  EXPECT_EQ(again.created, 0u);
}

TEST(HwApply, BusyRefusalsAreRetriedOnTheNextPass) {
  auto h = SimHost::start(test::hv1Intent(), test::loadProfile("sim"), [](SimEswitch& nic) {
    nic.failNthOperation(
        1, makeError(ErrorCode::kBusy, "device", "", "EBUSY: firmware command in flight"));
  });
  ASSERT_EQ(h->report.refused, 1u);
  const auto& c = h->applier->counters();
  EXPECT_EQ(c.refused_by_code[static_cast<std::size_t>(ErrorCode::kBusy)], 1u);
  const auto report = h->applier->apply(h->plan.rules, ruleDependencies(h->intent, h->plan.rules));
  EXPECT_EQ(report.created, 1u + h->report.followed) << "the refused rule and its followers";
  EXPECT_EQ(h->applier->counters().hw, hwPlanned(h->plan));
  EXPECT_EQ(h->applier->counters().refused(), 0u);
  expectConsistent(*h);
}

TEST(HwApply, TableFullRefusalsAreRetriedOnceRoomIsFreed) {
  auto h = SimHost::start(test::hv1Intent(), test::loadProfile("sim"),
                          [](SimEswitch& nic) { nic.setFull(true); });
  EXPECT_EQ(h->applier->counters().hw, 0u);
  EXPECT_EQ(h->applier->counters().refused_by_code[static_cast<std::size_t>(ErrorCode::kTableFull)],
            hwPlanned(h->plan) - h->report.followed);
  EXPECT_EQ(h->nic->size(), 0u);
  h->nic->setFull(false);
  // Nothing left the device: no retry yet (a full table stays full).
  auto quiet = h->applier->apply(h->plan.rules, ruleDependencies(h->intent, h->plan.rules));
  EXPECT_EQ(quiet.created, 0u);
  // A flush frees room: the next pass installs everything.
  ASSERT_TRUE(h->applier->flush().ok());
  auto full = h->applier->apply(h->plan.rules, ruleDependencies(h->intent, h->plan.rules));
  EXPECT_EQ(full.created, hwPlanned(h->plan));
  expectConsistent(*h);
}

TEST(HwApply, NthOperationFailureHitsExactlyOneRule) {
  for (std::uint64_t n : {1u, 2u, 7u, 20u}) {
    SCOPED_TRACE("operation " + std::to_string(n));
    auto h = SimHost::start(test::hv1Intent(), test::loadProfile("sim"), [n](SimEswitch& nic) {
      nic.failNthOperation(n, makeError(ErrorCode::kInvalidValue, "x", "", "injected"));
    });
    EXPECT_EQ(h->report.refused, 1u);
    EXPECT_EQ(
        h->applier->counters().refused_by_code[static_cast<std::size_t>(ErrorCode::kInvalidValue)],
        1u);
    EXPECT_EQ(h->applier->counters().hw + 1 + h->report.followed, hwPlanned(h->plan));
    expectConsistent(*h);
  }
}

TEST(HwApply, DestroyFailureKeepsTheRuleInstalledAndIsRetried) {
  auto h = SimHost::start(test::hv1Intent(), test::loadProfile("sim"));
  auto intent = h->intent;
  intent.remotes.pop_back();  // one VXLAN egress rule to remove
  const auto plan = test::unwrap(flowrules::plan(intent, h->profile), "plan");
  h->nic->failNthOperation(1, makeError(ErrorCode::kBusy, "device", "", "EBUSY"));
  const auto before = h->nic->size();
  auto report = h->applier->apply(plan.rules, ruleDependencies(intent, plan.rules));
  ASSERT_EQ(report.failures.size(), 1u);
  EXPECT_EQ(report.failures[0].code, ErrorCode::kBusy);
  EXPECT_NE(report.failures[0].message.find("stays on the device"), std::string::npos);
  EXPECT_EQ(h->nic->size(), before) << "still on the NIC";
  EXPECT_EQ(h->applier->counters().destroy_failures, 1u);
  expectConsistent(*h);  // ...and still counted as hw
  report = h->applier->apply(plan.rules, ruleDependencies(intent, plan.rules));
  EXPECT_TRUE(report.clean());
  EXPECT_EQ(report.destroyed, 1u);
  EXPECT_EQ(h->nic->size(), before - 1);
  expectConsistent(*h);
}

TEST(HwApply, DropsFollowTheirAllowRulesIntoSoftware) {
  // The device refuses JUMP: every allow rule (and the decaps) go sw; the
  // IPv4 drops must not stay in hardware, or they would drop the VMs'
  // legitimate traffic. The ARP drops stay: their ARP trap is in hardware.
  auto h = SimHost::start(test::hv1Intent(), test::loadProfile("sim"),
                          [](SimEswitch& nic) { nic.failAction(model::ActionType::kJump); });
  std::size_t ipv4_drops = 0, arp_drops = 0;
  for (const auto& r : h->plan.rules) {
    if (r.cls != RuleClass::kAntiSpoofing || !hasAction(r, model::ActionType::kDrop)) continue;
    const AppliedRule* a = h->applier->find(r.id);
    const auto type = std::get<EthItem>(r.pattern[1]).ether_type;
    if (type == kEtherTypeIpv4) {
      ++ipv4_drops;
      EXPECT_EQ(a->placement, Placement::kSw);
      EXPECT_EQ(a->reason.code, Code::kFollows);
    } else {
      ++arp_drops;
      EXPECT_EQ(a->placement, Placement::kHw);
    }
  }
  EXPECT_EQ(ipv4_drops, h->intent.ports.size());
  EXPECT_EQ(arp_drops, h->intent.ports.size());
  EXPECT_EQ(h->report.followed, ipv4_drops);
  expectConsistent(*h);

  // Legitimate traffic is not dropped: it misses and reaches the kernel.
  const auto& port = h->intent.ports[0];
  const auto d = h->send(test::fromVm(port, port.addresses[0], ip("10.10.1.2"), h->intent.host),
                         PortRef::vfPort(*port.vf));
  EXPECT_EQ(d.kind, simnic::Delivery::Kind::kRepresentor) << d.str();
  EXPECT_TRUE(d.miss);

  // Once JUMP works again the allows and then the drops return to hardware.
  h->nic->clearFaults();
  // Refused as unsupported is not retried by itself; a changed plan is. Re-plan
  // after a flush, as the daemon's periodic full pass does.
  ASSERT_TRUE(h->applier->flush().ok());
  h->applier->apply(h->plan.rules, ruleDependencies(h->intent, h->plan.rules));
  EXPECT_EQ(h->applier->counters().hw, hwPlanned(h->plan));
  expectConsistent(*h);
}

TEST(HwApply, AFollowerInHardwareLeavesWhenItsLeaderIsRefusedLater) {
  auto h = SimHost::start(test::hv1Intent(), test::loadProfile("sim"));
  // Port 0's address list changes: its allow rule is re-created and the
  // device refuses it (busy); the port's IPv4 drop must leave the hardware.
  auto intent = h->intent;
  intent.ports[0].addresses = {ip("10.10.1.9")};
  const auto plan = test::unwrap(flowrules::plan(intent, h->profile), "plan");
  h->nic->failAction(model::ActionType::kJump, ErrorCode::kBusy);
  const auto deps = ruleDependencies(intent, plan.rules);
  auto report = h->applier->apply(plan.rules, deps);
  EXPECT_TRUE(report.clean());
  const auto owner = portOwner(intent.ports[0].key);
  for (const auto& r : plan.rules) {
    if (r.owner != owner || r.cls != RuleClass::kAntiSpoofing) continue;
    const AppliedRule* a = h->applier->find(r.id);
    if (hasAction(r, model::ActionType::kJump)) {
      EXPECT_EQ(a->reason.code, Code::kDeviceRefused);
    } else if (std::get<EthItem>(r.pattern[1]).ether_type == kEtherTypeIpv4) {
      EXPECT_EQ(a->placement, Placement::kSw);
      EXPECT_EQ(a->reason.code, Code::kFollows);
    }
  }
  expectConsistent(*h);
  // Busy clears: the allow and its drop come back without any plan change.
  h->nic->clearFaults();
  report = h->applier->apply(plan.rules, deps);
  EXPECT_EQ(h->applier->counters().hw, hwPlanned(plan));
  expectConsistent(*h);
}

TEST(HwApply, EveryDecapLeavesTheHardwareWhenADeliveryRuleIsRefusedLater) {
  auto h = SimHost::start(test::hv1Intent(), test::loadProfile("sim"));
  std::vector<RuleId> decaps;
  for (const auto& r : h->plan.rules)
    if (r.cls == RuleClass::kVxlanIngress) decaps.push_back(r.id);
  ASSERT_EQ(decaps.size(), 2u);
  for (auto id : decaps) ASSERT_EQ(h->applier->find(id)->placement, Placement::kHw);
  // Port 2 (VNI 200) changes its MAC: its delivery rule is re-created, and
  // the device refuses it. Both decaps (VNI 100 too) must leave the hardware.
  auto intent = h->intent;
  intent.ports[2].mac = test::mac("52:54:00:00:0b:0b");
  const auto plan = test::unwrap(flowrules::plan(intent, h->profile), "plan");
  h->nic->failAction(model::ActionType::kDecTtl, ErrorCode::kBusy);
  const auto report = h->applier->apply(plan.rules, ruleDependencies(intent, plan.rules));
  EXPECT_TRUE(report.clean());
  for (auto id : decaps) {
    const AppliedRule* a = h->applier->find(id);
    EXPECT_EQ(a->placement, Placement::kSw);
    EXPECT_EQ(a->reason.code, Code::kFollows);
    EXPECT_EQ(h->applier->find(a->reason.rule)->rule.cls, RuleClass::kLocalDelivery);
  }
  expectConsistent(*h);
  h->nic->clearFaults();
  h->applier->apply(plan.rules, ruleDependencies(intent, plan.rules));
  for (auto id : decaps) EXPECT_EQ(h->applier->find(id)->placement, Placement::kHw);
  expectConsistent(*h);
}

TEST(HwApply, DependenciesFromTheIntent) {
  const auto intent = test::hv1Intent();
  const auto plan = test::unwrap(flowrules::plan(intent, test::loadProfile("sim")), "plan");
  const auto deps = ruleDependencies(intent, plan.rules);
  std::map<RuleId, const FlowRule*> by_id;
  for (const auto& r : plan.rules) by_id[r.id] = &r;
  std::size_t drop_deps = 0, decap_deps = 0;
  for (const auto& d : deps) {
    const FlowRule& f = *by_id.at(d.follower);
    if (f.cls == RuleClass::kVxlanIngress) {
      ++decap_deps;
      EXPECT_EQ(d.leader_class, RuleClass::kLocalDelivery);
    } else {
      ++drop_deps;
      const FlowRule& l = *by_id.at(d.leader);
      EXPECT_FALSE(d.leader_class.has_value());
      EXPECT_TRUE(hasAction(f, model::ActionType::kDrop));
      EXPECT_EQ(f.owner, l.owner);
    }
  }
  // Per port: the IPv4 drop follows each allow (one per address), the ARP
  // drop follows the trap. Every decap (one per local VNI) follows the class
  // of delivery rules: the FIB is shared by the VNIs.
  std::size_t addresses = 0;
  for (const auto& p : intent.ports) addresses += p.addresses.size();
  EXPECT_EQ(drop_deps, addresses + intent.ports.size());
  EXPECT_EQ(decap_deps, 2u) << "hv1 serves VNIs 100 and 200";
}

TEST(HwApply, QueryReadsTheDeviceCountersOfARule) {
  auto h = SimHost::start(test::hv1Intent(), test::loadProfile("sim"));
  const auto& src = h->intent.ports[0];
  const auto& dst = h->portWith(ip("10.10.1.2"));
  for (int i = 0; i < 3; ++i)
    h->send(test::fromVm(src, src.addresses[0], ip("10.10.1.2"), h->intent.host),
            PortRef::vfPort(*src.vf));
  std::optional<FlowCounters> counters;
  for (const auto& r : h->plan.rules)
    if (r.cls == RuleClass::kLocalDelivery && r.owner == portOwner(dst.key) &&
        std::get<Ipv4Item>(r.pattern[1]).dst == ip("10.10.1.2"))
      counters = test::unwrap(h->applier->query(r.id), "query");
  ASSERT_TRUE(counters);
  EXPECT_EQ(counters->hits, 3u);
  EXPECT_EQ(counters->bytes, 3u * (14 + 20 + 8 + 64));
  EXPECT_EQ(h->applier->query(12345).error().code, ErrorCode::kNotFound);
}

TEST(HwApply, FlushEmptiesTheDeviceAndTheInstalledState) {
  auto h = SimHost::start(test::hv1Intent(), test::loadProfile("sim"));
  h->nic->failNthOperation(1, makeError(ErrorCode::kBusy, "device", "", "EBUSY"));
  EXPECT_FALSE(h->applier->flush().ok());
  EXPECT_EQ(h->applier->counters().flush_failures, 1u);
  expectConsistent(*h);  // a failed flush changes nothing
  ASSERT_TRUE(h->applier->flush().ok());
  EXPECT_EQ(h->nic->size(), 0u);
  EXPECT_EQ(h->applier->size(), 0u);
  EXPECT_EQ(h->applier->counters().hw, 0u);
  EXPECT_EQ(h->applier->counters().creations, hwPlanned(h->plan)) << "operation counters survive";
}

}  // namespace
}  // namespace nicoffload::flowrules
