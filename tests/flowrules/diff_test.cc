// Stable ids and minimal diffs: an unchanged intent re-plans to a zero diff,
// and a change touches only the rules and objects of what changed.
#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "nicoffload/flowrules/diff.h"
#include "nicoffload/flowrules/planner.h"
#include "support/test_support.h"

namespace nicoffload {
namespace {

using flowrules::DesiredState;
using flowrules::FlowRule;
using flowrules::OwnerId;
using flowrules::RuleClass;
using flowrules::RuleDiff;
using flowrules::RuleId;
using flowrules::RuleIndex;
using model::HwProfile;
using model::Intent;
using test::Example;

std::vector<RuleId> ids(const std::vector<FlowRule>& rules) {
  std::vector<RuleId> out;
  for (const auto& r : rules) out.push_back(r.id);
  return out;
}

std::set<RuleId> idsOwnedBy(const std::vector<FlowRule>& rules, OwnerId owner) {
  std::set<RuleId> out;
  for (const auto& r : rules)
    if (r.owner == owner) out.insert(r.id);
  return out;
}

void expectSameRules(const std::vector<FlowRule>& a, const std::vector<FlowRule>& b) {
  ASSERT_EQ(ids(a), ids(b));
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(a[i].sameContent(b[i])) << flowrules::formatRuleId(a[i].cls, a[i].id);
}

// Every object of one kind of a software-path diff belongs to `owner`.
template <class T>
void expectOnlyOwner(const flowrules::ObjectDiff<T>& d, OwnerId owner) {
  for (const auto* list : {&d.add, &d.remove, &d.modify})
    for (const auto& o : *list) EXPECT_EQ(o.owner, owner);
}

void expectSwDiffOnlyOwner(const flowrules::SoftwarePathDiff& d, OwnerId owner) {
  expectOnlyOwner(d.sysctls, owner);
  expectOnlyOwner(d.links, owner);
  expectOnlyOwner(d.addresses, owner);
  expectOnlyOwner(d.vxlan_devices, owner);
  expectOnlyOwner(d.fdb, owner);
  expectOnlyOwner(d.neighbours, owner);
  expectOnlyOwner(d.routes, owner);
}

struct Case {
  const char* profile;
  Example example;
};
const Case kCases[] = {{"sim", Example::kVxlan},
                       {"sim", Example::kRouted},
                       {"connectx-5", Example::kVxlan},
                       {"connectx-6dx", Example::kRouted}};

Intent caseIntent(const Case& c) {
  Intent intent = test::exampleIntent(c.example);
  if (std::string(c.profile) == "connectx-5") test::dropVdpa(intent);
  return intent;
}

std::string caseName(const Case& c) { return std::string(c.profile) + " / " + test::toString(c.example); }

TEST(Diff, PlanTwiceDiffsToNothing) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(caseName(c));
    const HwProfile profile = test::loadProfile(c.profile);
    const Intent intent = caseIntent(c);
    const DesiredState a = test::planOrThrow(intent, profile);
    const DesiredState b = test::planOrThrow(intent, profile);
    ASSERT_FALSE(a.rules.empty());
    expectSameRules(a.rules, b.rules);
    EXPECT_TRUE(flowrules::diff(a.rules, b.rules).empty());
    EXPECT_TRUE(flowrules::diff(a.sw, b.sw).empty());
    EXPECT_GT(a.sw.size(), 0u);
    EXPECT_EQ(a.vdpa_devices, b.vdpa_devices);
    EXPECT_EQ(a.vfs, b.vfs);
  }
}

TEST(Diff, IdsAreUnique) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(caseName(c));
    const DesiredState s = test::planOrThrow(caseIntent(c), test::loadProfile(c.profile));
    const auto v = ids(s.rules);
    EXPECT_EQ(std::set<RuleId>(v.begin(), v.end()).size(), v.size());
  }
}

TEST(Diff, OrderOfPortsAndRemotesDoesNotMatter) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(caseName(c));
    const HwProfile profile = test::loadProfile(c.profile);
    const Intent intent = caseIntent(c);
    Intent reordered = intent;
    std::reverse(reordered.ports.begin(), reordered.ports.end());
    std::rotate(reordered.remotes.begin(), reordered.remotes.begin() + 1, reordered.remotes.end());
    const DesiredState a = test::planOrThrow(intent, profile);
    const DesiredState b = test::planOrThrow(reordered, profile);
    expectSameRules(a.rules, b.rules);
    EXPECT_TRUE(flowrules::diff(b.sw, a.sw).empty());
    EXPECT_EQ(a.vdpa_devices, b.vdpa_devices);
    EXPECT_EQ(a.vfs, b.vfs);
  }
}

TEST(Diff, RemovingAPortRemovesExactlyItsRules) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(caseName(c));
    const HwProfile profile = test::loadProfile(c.profile);
    const Intent before = caseIntent(c);
    // ports[1]: in the vxlan example it shares VNI 100 with ports[0], so no
    // VNI-wide rule goes with it.
    Intent after = before;
    const model::PortKey gone = after.ports[1].key;
    after.ports.erase(after.ports.begin() + 1);

    const DesiredState old_state = test::planOrThrow(before, profile);
    const DesiredState new_state = test::planOrThrow(after, profile);
    const RuleDiff d = flowrules::diff(new_state.rules, old_state.rules);
    EXPECT_TRUE(d.add.empty());
    EXPECT_TRUE(d.modify.empty());
    const std::set<RuleId> removed(d.remove.begin(), d.remove.end());
    EXPECT_EQ(removed, idsOwnedBy(old_state.rules, flowrules::portOwner(gone)));
    EXPECT_EQ(removed.size(), 1 + 2 + 2 * before.ports[1].addresses.size());

    const auto sw = flowrules::diff(new_state.sw, old_state.sw);
    EXPECT_GT(sw.size(), 0u);
    expectSwDiffOnlyOwner(sw, flowrules::portOwner(gone));
    EXPECT_EQ(sw.size(), sw.sysctls.remove.size() + sw.links.remove.size() +
                             sw.neighbours.remove.size() + sw.routes.remove.size());
  }
}

TEST(Diff, RemovingTheLastPortOfAVniRemovesItsDecap) {
  const HwProfile sim = test::loadProfile("sim");
  const Intent before = test::exampleIntent(Example::kVxlan);
  Intent after = before;
  after.ports.erase(after.ports.begin() + 2);  // the only port on VNI 200
  const DesiredState old_state = test::planOrThrow(before, sim);
  const RuleDiff d = flowrules::diff(test::planOrThrow(after, sim).rules, old_state.rules);
  EXPECT_TRUE(d.add.empty());
  EXPECT_TRUE(d.modify.empty());
  std::set<RuleId> want = idsOwnedBy(old_state.rules, flowrules::portOwner(before.ports[2].key));
  const auto decap = idsOwnedBy(old_state.rules, flowrules::vniOwner(200));
  ASSERT_EQ(decap.size(), 1u);
  want.insert(decap.begin(), decap.end());
  EXPECT_EQ(std::set<RuleId>(d.remove.begin(), d.remove.end()), want);
}

TEST(Diff, ChangingAPortsMacTouchesOnlyThatPort) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(caseName(c));
    const HwProfile profile = test::loadProfile(c.profile);
    const Intent before = caseIntent(c);
    Intent after = before;
    after.ports[0].mac = test::mac("52:54:00:aa:bb:cc");
    const OwnerId owner = flowrules::portOwner(after.ports[0].key);

    const DesiredState old_state = test::planOrThrow(before, profile);
    const DesiredState new_state = test::planOrThrow(after, profile);
    const RuleDiff d = flowrules::diff(new_state.rules, old_state.rules);
    // Same ids (they derive from the port key and addresses, not the MAC):
    // the rules that carry the MAC are modified in place.
    EXPECT_TRUE(d.add.empty());
    EXPECT_TRUE(d.remove.empty());
    const std::size_t n = before.ports[0].addresses.size();
    EXPECT_EQ(d.modify.size(), 1 + n + n);  // ARP trap, allows, local deliveries; not the drops
    for (const auto& r : d.modify) {
      EXPECT_EQ(r.owner, owner);
      EXPECT_NE(r.attr.priority, 1u) << "a drop rule does not carry the MAC";
    }

    const auto sw = flowrules::diff(new_state.sw, old_state.sw);
    expectSwDiffOnlyOwner(sw, owner);
    EXPECT_EQ(sw.neighbours.modify.size(), n);  // the permanent neighbours of the VM
    EXPECT_EQ(sw.size(), n);
  }
}

TEST(Diff, ChangingAnAddressReplacesItsRules) {
  const HwProfile sim = test::loadProfile("sim");
  const Intent before = test::exampleIntent(Example::kVxlan);
  Intent after = before;
  after.ports[1].addresses[1] = test::ip("10.10.1.9");
  const OwnerId owner = flowrules::portOwner(after.ports[1].key);
  const RuleDiff d =
      flowrules::diff(test::planOrThrow(after, sim).rules, test::planOrThrow(before, sim).rules);
  EXPECT_EQ(d.add.size(), 2u);     // allow + local delivery of the new address
  EXPECT_EQ(d.remove.size(), 2u);  // ...and of the old one
  EXPECT_TRUE(d.modify.empty());
  for (const auto& r : d.add) EXPECT_EQ(r.owner, owner);
}

TEST(Diff, AddingARemoteAddsOneRule) {
  const HwProfile sim = test::loadProfile("sim");
  for (auto e : {Example::kVxlan, Example::kRouted}) {
    SCOPED_TRACE(test::toString(e));
    const Intent before = test::exampleIntent(e);
    Intent after = before;
    after.remotes.push_back(e == Example::kVxlan ? test::vxlanRemote("10.20.9.9", "192.0.2.9", 300)
                                                 : test::routedRemote("10.20.9.9"));
    const RuleDiff d =
        flowrules::diff(test::planOrThrow(after, sim).rules, test::planOrThrow(before, sim).rules);
    ASSERT_EQ(d.size(), 1u);
    ASSERT_EQ(d.add.size(), 1u);
    EXPECT_EQ(d.add[0].owner, flowrules::remoteOwner(test::ip("10.20.9.9")));
    EXPECT_EQ(d.add[0].cls, e == Example::kVxlan ? RuleClass::kVxlanEgress : RuleClass::kRoutedEgress);
  }
}

TEST(Diff, ReplacementIsAModifyWithTheSameId) {
  // The same intent on a profile without dec_ttl: the rules that move to
  // software keep their ids and show up as modifications.
  const HwProfile sim = test::loadProfile("sim");
  HwProfile no_ttl = sim;
  no_ttl.actions[static_cast<std::size_t>(model::ActionType::kDecTtl)].supported = false;
  const Intent intent = test::exampleIntent(Example::kRouted);
  const DesiredState a = test::planOrThrow(intent, sim);
  const DesiredState b = test::planOrThrow(intent, no_ttl);
  const RuleDiff d = flowrules::diff(b.rules, a.rules);
  EXPECT_TRUE(d.add.empty());
  EXPECT_TRUE(d.remove.empty());
  // Every rule with dec_ttl that was in hardware is modified (3 local
  // deliveries, 1 routed egress); the other egress was in software already
  // (its next hop has no MAC) and is modified only if its reason changed.
  std::set<RuleId> moved;
  for (const auto& r : a.rules)
    if (r.placement == flowrules::Placement::kHw &&
        std::any_of(r.actions.begin(), r.actions.end(), [](const auto& x) {
          return flowrules::actionType(x) == model::ActionType::kDecTtl;
        }))
      moved.insert(r.id);
  EXPECT_EQ(moved.size(), 4u);
  std::set<RuleId> modified;
  for (const auto& r : d.modify) {
    modified.insert(r.id);
    EXPECT_EQ(r.placement, flowrules::Placement::kSw) << flowrules::explainRule(r, no_ttl);
    EXPECT_EQ(r.cls == RuleClass::kRoutedEgress || r.cls == RuleClass::kLocalDelivery, true);
  }
  EXPECT_TRUE(std::includes(modified.begin(), modified.end(), moved.begin(), moved.end()));
  EXPECT_LE(modified.size(), moved.size() + 1);
}

// --- incremental: RuleIndex ---

TEST(Diff, DiffOwnerEqualsTheOwnersSliceOfTheFullDiff) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(caseName(c));
    const HwProfile profile = test::loadProfile(c.profile);
    const Intent before = caseIntent(c);
    Intent after = before;
    auto& port = after.ports[0];
    port.mac = test::mac("52:54:00:aa:bb:cc");
    port.addresses.push_back(test::ip("10.10.9.9"));
    const OwnerId owner = flowrules::portOwner(port.key);

    const DesiredState old_state = test::planOrThrow(before, profile);
    const DesiredState new_state = test::planOrThrow(after, profile);
    const RuleDiff full = flowrules::diff(new_state.rules, old_state.rules);

    const RuleIndex index(old_state.rules);
    EXPECT_EQ(index.size(), old_state.rules.size());
    const auto desired = test::unwrap(flowrules::planPortRules(after.host, profile, port), "planPortRules");
    const RuleDiff mine = index.diffOwner(owner, desired);

    // Everything in the full diff belongs to that port...
    for (const auto& r : full.add) EXPECT_EQ(r.owner, owner);
    for (const auto& r : full.modify) EXPECT_EQ(r.owner, owner);
    // ...and the incremental diff is the same diff.
    expectSameRules(mine.add, full.add);
    expectSameRules(mine.modify, full.modify);
    EXPECT_EQ(mine.remove, full.remove);
    EXPECT_EQ(mine.add.size(), 2u);     // allow + delivery of 10.10.9.9
    EXPECT_EQ(mine.modify.size(), 1u + 2 * before.ports[0].addresses.size());

    // Applying it brings the index to the new plan.
    RuleIndex applied(old_state.rules);
    applied.apply(mine);
    EXPECT_TRUE(flowrules::diff(new_state.rules, applied.sorted()).empty());
    EXPECT_EQ(applied.size(), new_state.rules.size());
  }
}

TEST(Diff, DiffOwnerForANewPortAddsAllItsRules) {
  const HwProfile sim = test::loadProfile("sim");
  const Intent intent = test::exampleIntent(Example::kVxlan);
  const RuleIndex index(test::planOrThrow(intent, sim).rules);
  model::Port fresh = test::makePort(6, {"10.10.6.1", "10.10.6.2"});
  const auto desired = test::unwrap(flowrules::planPortRules(intent.host, sim, fresh), "planPortRules");
  const RuleDiff d = index.diffOwner(flowrules::portOwner(fresh.key), desired);
  EXPECT_EQ(d.add.size(), 1u + 4u + 2u);
  EXPECT_TRUE(d.remove.empty());
  EXPECT_TRUE(d.modify.empty());
  // And an empty desired set for an existing port removes all of its rules.
  const auto& p0 = intent.ports[0];
  const RuleDiff gone = index.diffOwner(flowrules::portOwner(p0.key), {});
  EXPECT_EQ(gone.remove.size(), 1u + 3u + 1u);
  EXPECT_TRUE(gone.add.empty());
}

TEST(Diff, ApplyThenDiffIsEmpty) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(caseName(c));
    const HwProfile profile = test::loadProfile(c.profile);
    const Intent before = caseIntent(c);
    Intent after = before;
    after.ports.erase(after.ports.begin());
    after.ports.back().mac = test::mac("52:54:00:aa:bb:cd");
    after.remotes.pop_back();
    const DesiredState old_state = test::planOrThrow(before, profile);
    const DesiredState new_state = test::planOrThrow(after, profile);

    RuleIndex index(old_state.rules);
    const RuleDiff d = flowrules::diff(new_state.rules, index.sorted());
    EXPECT_FALSE(d.empty());
    index.apply(d);
    EXPECT_TRUE(flowrules::diff(new_state.rules, index.sorted()).empty());
    EXPECT_EQ(index.size(), new_state.rules.size());
    for (const auto& r : new_state.rules) {
      const FlowRule* found = index.find(r.id);
      ASSERT_NE(found, nullptr);
      EXPECT_TRUE(found->sameContent(r));
    }
    for (auto id : d.remove) EXPECT_EQ(index.find(id), nullptr);
    // The per-owner view followed the changes: the removed port owns nothing.
    EXPECT_TRUE(index.diffOwner(flowrules::portOwner(before.ports[0].key), {}).empty());
  }
}

TEST(Diff, RuleDiffOfHandMadeLists) {
  auto rule = [](RuleId id, std::uint32_t prio) {
    FlowRule r;
    r.id = id;
    r.attr.priority = prio;
    return r;
  };
  const std::vector<FlowRule> desired = {rule(1, 0), rule(3, 5), rule(4, 0), rule(7, 0)};
  const std::vector<FlowRule> installed = {rule(2, 0), rule(3, 0), rule(4, 0), rule(9, 0)};
  const RuleDiff d = flowrules::diff(desired, installed);
  EXPECT_EQ(ids(d.add), (std::vector<RuleId>{1, 7}));
  EXPECT_EQ(d.remove, (std::vector<RuleId>{2, 9}));
  EXPECT_EQ(ids(d.modify), (std::vector<RuleId>{3}));
  EXPECT_EQ(d.size(), 5u);
  EXPECT_TRUE(flowrules::diff(std::span<const FlowRule>{}, std::span<const FlowRule>{}).empty());
}

TEST(Diff, ObjectDiffOfHandMadeLists) {
  using flowrules::SysctlSetting;
  const std::vector<SysctlSetting> desired = {{"a", "1", 0}, {"b", "1", 0}, {"d", "0", 0}};
  const std::vector<SysctlSetting> installed = {{"b", "0", 0}, {"c", "1", 0}, {"d", "0", 0}};
  const auto d = flowrules::diffObjects<SysctlSetting>(desired, installed);
  ASSERT_EQ(d.add.size(), 1u);
  EXPECT_EQ(d.add[0].path, "a");
  ASSERT_EQ(d.remove.size(), 1u);
  EXPECT_EQ(d.remove[0].path, "c");
  ASSERT_EQ(d.modify.size(), 1u);
  EXPECT_EQ(d.modify[0].value, "1");
}

// --- rule ids ---

TEST(RuleId, FormatAndParseRoundTrip) {
  const RuleClass classes[] = {RuleClass::kLocalDelivery, RuleClass::kRoutedEgress,
                               RuleClass::kVxlanEgress,   RuleClass::kVxlanIngress,
                               RuleClass::kArpTrap,       RuleClass::kAntiSpoofing};
  const RuleId values[] = {0, 1, 0x00c0ffee12345678ULL, 0xFFFFFFFFFFFFFFFFULL, 0x8000000000000000ULL};
  for (auto cls : classes)
    for (auto id : values) {
      const std::string text = flowrules::formatRuleId(cls, id);
      EXPECT_EQ(text.rfind(std::string(flowrules::idPrefix(cls)) + "-", 0), 0u) << text;
      EXPECT_EQ(flowrules::parseRuleId(text), std::optional<RuleId>(id)) << text;
    }
  EXPECT_EQ(flowrules::formatRuleId(RuleClass::kLocalDelivery, 0x00c0ffee12345678ULL),
            "ld-00c0ffee12345678");
  EXPECT_EQ(flowrules::formatRuleId(RuleClass::kArpTrap, 255), "arp-00000000000000ff");
  // The bare hex form and upper case are accepted too.
  EXPECT_EQ(flowrules::parseRuleId("00c0ffee12345678"), std::optional<RuleId>(0x00c0ffee12345678ULL));
  EXPECT_EQ(flowrules::parseRuleId("as-00C0FFEE12345678"),
            std::optional<RuleId>(0x00c0ffee12345678ULL));

  // Every id of a real plan round-trips.
  const DesiredState s = test::planOrThrow(test::exampleIntent(Example::kVxlan), test::loadProfile("sim"));
  for (const auto& r : s.rules)
    EXPECT_EQ(flowrules::parseRuleId(flowrules::formatRuleId(r.cls, r.id)), std::optional<RuleId>(r.id));
}

TEST(RuleId, BadIdsAreRejected) {
  const char* bad[] = {
      "",
      "ld-",
      "ld-123",                    // too short
      "ld-00c0ffee123456789",      // too long
      "ld-00c0ffee1234567g",       // not hex
      "ld-+0c0ffee12345678",
      "ld- 00c0ffee1234567",
      "00c0ffee1234567",           // 15 digits
      "ld_00c0ffee12345678",
      "xx-00c0ffee12345678",       // unknown class prefix
      "-00c0ffee12345678",         // empty prefix
      "ld-ld-00c0ffee1234567",
      "0x00c0ffee123456",
  };
  for (const char* text : bad) EXPECT_EQ(flowrules::parseRuleId(text), std::nullopt) << "'" << text << "'";
}

}  // namespace
}  // namespace nicoffload
