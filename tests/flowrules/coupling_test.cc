// CouplingCounts: when plan() couples owners (a table over capacity; a
// delivery rule in software under VXLAN), counted from a whole plan or
// owner by owner, table-driven over profiles and underlays.
#include <gtest/gtest.h>

#include "nicoffload/flowrules/coupling.h"
#include "nicoffload/flowrules/planner.h"
#include "support/test_support.h"

namespace nicoffload {
namespace {

using flowrules::CouplingCounts;
using model::ActionType;
using model::UnderlayMode;

model::Intent intentOf(UnderlayMode mode, int ports) {
  model::Intent intent;
  intent.host = test::makeHost(mode);
  for (int i = 0; i < ports; ++i) {
    const std::string a = "10.0." + std::to_string(i) + ".1";
    intent.ports.push_back(test::makePort(i, {a}, mode == UnderlayMode::kVxlan
                                                      ? std::optional<std::uint32_t>(100)
                                                      : std::nullopt));
  }
  intent.remotes.push_back(mode == UnderlayMode::kVxlan ? test::vxlanRemote("10.20.0.1", "192.0.2.2")
                                                         : test::routedRemote("10.20.0.1"));
  return intent;
}

struct Case {
  const char* what;
  UnderlayMode mode;
  int ports;
  std::uint32_t root_table_rules;  // 0: the profile's own
  bool no_dec_ttl;                 // delivery rules go to software by capability
  bool coupled;
};

TEST(CouplingCounts, WholePlanAndOwnerByOwnerAgree) {
  const std::vector<Case> cases = {
      {"routed, room to spare", UnderlayMode::kRouted, 4, 0, false, false},
      {"vxlan, room to spare", UnderlayMode::kVxlan, 4, 0, false, false},
      {"routed, root table exactly full", UnderlayMode::kRouted, 4, 4 * 4 + 1, false, false},
      {"routed, root table one short", UnderlayMode::kRouted, 4, 4 * 4, false, true},
      {"routed, delivery in software: no coupling", UnderlayMode::kRouted, 4, 0, true, false},
      {"vxlan, delivery in software: every decap follows", UnderlayMode::kVxlan, 4, 0, true, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    auto profile = test::loadProfile("sim");
    if (c.root_table_rules) profile.root_table_rules = c.root_table_rules;
    if (c.no_dec_ttl) profile.actions[static_cast<std::size_t>(ActionType::kDecTtl)].supported = false;
    const auto intent = intentOf(c.mode, c.ports);
    const auto plan = test::planOrThrow(intent, profile);

    CouplingCounts whole;
    whole.recount(plan.rules);
    EXPECT_EQ(whole.coupled(profile, c.mode), c.coupled);
    EXPECT_EQ(whole.deliveryInSoftware(), c.no_dec_ttl);

    // Owner by owner, as a batch counts: each owner's rules planned alone
    // (the planner's per-owner calls, placed by capability only).
    flowrules::OwnerPlanner owners(intent.host, profile);
    CouplingCounts each;
    for (const auto& p : intent.ports)
      for (const auto& r : test::unwrap(owners.portRules(p), "portRules")) each.add(r);
    const std::vector<std::uint32_t> vnis = {100};
    for (const auto& r : owners.hostRules(c.mode == UnderlayMode::kVxlan ? vnis : std::vector<std::uint32_t>{}))
      each.add(r);
    for (const auto& r : intent.remotes) each.add(owners.remoteRule(r));
    EXPECT_EQ(each.coupled(profile, c.mode), c.coupled);
    // Every port's rules leave again: nothing of them stays counted.
    for (const auto& p : intent.ports)
      for (const auto& r : test::unwrap(owners.portRules(p), "portRules")) each.remove(r);
    EXPECT_EQ(each.swDeliveryRules(), 0u);
    EXPECT_FALSE(each.coupled(profile, c.mode)) << "the host's and the remote's rules alone fit";
  }
}

TEST(CouplingCounts, ARuleInSoftwareForWantOfRoomStillCountsTowardsItsTable) {
  auto profile = test::loadProfile("sim");
  profile.root_table_rules = 3;
  const auto intent = intentOf(UnderlayMode::kRouted, 2);
  const auto plan = test::planOrThrow(intent, profile);
  CouplingCounts counts;
  counts.recount(plan.rules);
  std::uint32_t in_hw = 0, waiting = 0;
  for (const auto& r : plan.rules) {
    if (r.attr.group != 0) continue;
    in_hw += r.placement == flowrules::Placement::kHw;
    waiting += r.reason.code == flowrules::PlacementReason::Code::kTableFull ||
               r.reason.code == flowrules::PlacementReason::Code::kFollows;
  }
  ASSERT_GT(waiting, 0u);
  EXPECT_LE(in_hw, 3u) << "the table holds 3";
  EXPECT_EQ(counts.hwPlaceable(0), in_hw + waiting)
      << "table-full rules and their followers count: with room they would be hw";
  EXPECT_TRUE(counts.coupled(profile, UnderlayMode::kRouted));
  CouplingCounts empty;
  for (const auto& r : plan.rules) counts.remove(r);
  EXPECT_EQ(counts, empty);
}

}  // namespace
}  // namespace nicoffload
