// Per-port traffic: which rule counts what (trafficRole over the planner's
// own port rules), and totals that only grow across counter resets, rules
// that leave and representors made again (PortTrafficBook).
#include <gtest/gtest.h>

#include <map>

#include "nicoffload/flowrules/planner.h"
#include "nicoffload/flowrules/port_traffic.h"
#include "support/test_support.h"

namespace nicoffload {
namespace {

using flowrules::FlowCounters;
using flowrules::LinkTraffic;
using flowrules::PortTraffic;
using flowrules::PortTrafficBook;
using flowrules::PortTrafficReading;
using flowrules::RuleClass;
using flowrules::TrafficCount;
using flowrules::TrafficRole;

TEST(TrafficRole, EachPortRuleOfThePlannerHasTheExpectedRole) {
  for (const auto mode : {model::UnderlayMode::kRouted, model::UnderlayMode::kVxlan}) {
    model::Intent intent;
    intent.host = test::makeHost(mode);
    intent.ports.push_back(test::makePort(0, {"10.0.0.1", "10.0.0.2"},
                                          mode == model::UnderlayMode::kVxlan
                                              ? std::optional<std::uint32_t>(100)
                                              : std::nullopt));
    const auto plan = test::planOrThrow(intent, test::loadProfile("connectx-6dx"));
    std::map<std::string, std::size_t> roles;  // role (or "none") -> rules
    std::size_t port_rules = 0;
    for (const auto& r : plan.rules) {
      if (r.owner != flowrules::portOwner(intent.ports[0].key)) {
        EXPECT_FALSE(flowrules::trafficRole(r) && r.cls != RuleClass::kLocalDelivery &&
                     r.cls != RuleClass::kAntiSpoofing)
            << flowrules::formatRuleId(r.cls, r.id);
        // The uplink's entry rule is a local-delivery rule of the host's: no port's.
        if (r.cls == RuleClass::kLocalDelivery) {
          EXPECT_FALSE(flowrules::trafficRole(r));
        }
        continue;
      }
      ++port_rules;
      const auto role = flowrules::trafficRole(r);
      ++roles[role ? flowrules::toString(*role) : "none"];
      if (r.cls == RuleClass::kArpTrap) {
        EXPECT_FALSE(role) << "the ARP trap's packets reach the representor";
      }
    }
    EXPECT_EQ(port_rules, 7u);
    EXPECT_EQ(roles["rx"], 2u) << "one local delivery per address";
    EXPECT_EQ(roles["tx"], 2u) << "one anti-spoofing allow per address";
    EXPECT_EQ(roles["tx_dropped"], 2u) << "the IPv4 and ARP drops";
    EXPECT_EQ(roles["none"], 1u) << "the ARP trap";
  }
}

TEST(TrafficRole, NoCountActionNoRole) {
  model::Intent intent;
  intent.host = test::makeHost(model::UnderlayMode::kRouted);
  intent.ports.push_back(test::makePort(0, {"10.0.0.1"}));
  auto profile = test::loadProfile("sim");
  profile.actions[static_cast<std::size_t>(model::ActionType::kCount)].supported = false;
  const auto plan = test::planOrThrow(intent, profile);
  ASSERT_FALSE(plan.rules.empty());
  for (const auto& r : plan.rules) EXPECT_FALSE(flowrules::trafficRole(r)) << flowrules::formatRuleId(r.cls, r.id);
}

PortTrafficReading reading(std::initializer_list<std::tuple<flowrules::RuleId, TrafficRole, std::uint64_t>> rules,
                           std::optional<LinkTraffic> rep = std::nullopt) {
  PortTrafficReading r;
  for (const auto& [id, role, hits] : rules) r.rules.push_back({id, role, FlowCounters{hits, hits * 100}});
  r.representor = rep;
  return r;
}

TEST(PortTrafficBook, SumsRulesByRoleAndTakesTheRepresentorFromTheKernelSide) {
  PortTrafficBook book;
  book.record(7, reading({{1, TrafficRole::kRx, 10}, {2, TrafficRole::kRx, 5},
                          {3, TrafficRole::kTx, 4}, {4, TrafficRole::kTxDropped, 2}},
                         LinkTraffic{3, 300, 8, 800}));
  const PortTraffic* t = book.find(7);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->rx_hw, (TrafficCount{15, 1500}));
  EXPECT_EQ(t->tx_hw, (TrafficCount{4, 400}));
  EXPECT_EQ(t->tx_dropped, (TrafficCount{2, 200}));
  EXPECT_EQ(t->rx_sw, (TrafficCount{8, 800})) << "the representor's tx went to the VM";
  EXPECT_EQ(t->tx_sw, (TrafficCount{3, 300})) << "the representor's rx came from the VM";
  EXPECT_EQ(t->rx(), (TrafficCount{23, 2300}));
  EXPECT_EQ(t->rules_read, 4u);
  EXPECT_TRUE(t->representor_read);
  EXPECT_EQ(book.find(8), nullptr);
}

TEST(PortTrafficBook, TotalsNeverGoBack) {
  struct Step {
    const char* what;
    PortTrafficReading reading;
  };
  const std::vector<Step> steps = {
      {"first reading", reading({{1, TrafficRole::kRx, 10}}, LinkTraffic{5, 500, 0, 0})},
      {"both grow", reading({{1, TrafficRole::kRx, 12}}, LinkTraffic{6, 600, 0, 0})},
      {"the rule made again: its counter restarts", reading({{1, TrafficRole::kRx, 3}}, LinkTraffic{6, 600, 0, 0})},
      {"a second rule appears", reading({{1, TrafficRole::kRx, 3}, {2, TrafficRole::kRx, 7}}, LinkTraffic{6, 600, 0, 0})},
      {"the first rule leaves (an address removed, or moved to sw)", reading({{2, TrafficRole::kRx, 8}}, LinkTraffic{6, 600, 0, 0})},
      {"the representor made again", reading({{2, TrafficRole::kRx, 8}}, LinkTraffic{1, 100, 0, 0})},
      {"the representor not found: its last figures stay", reading({{2, TrafficRole::kRx, 8}})},
      {"no hardware rule left", reading({})},
  };
  PortTrafficBook book;
  std::uint64_t previous_rx = 0, previous_tx = 0;
  for (const auto& s : steps) {
    book.record(1, s.reading);
    const auto* t = book.find(1);
    ASSERT_NE(t, nullptr) << s.what;
    EXPECT_GE(t->rx_hw.packets, previous_rx) << s.what;
    EXPECT_GE(t->tx_sw.packets, previous_tx) << s.what;
    previous_rx = t->rx_hw.packets;
    previous_tx = t->tx_sw.packets;
  }
  // 10 -> 12, reset (+12 kept) -> 3, +7 on a new rule, rule 1 leaves (3 kept),
  // rule 2 to 8: 12 + 3 + 8 = 23 packets.
  EXPECT_EQ(book.find(1)->rx_hw, (TrafficCount{23, 2300}));
  // 6 counted, then made again at 1: 6 + 1.
  EXPECT_EQ(book.find(1)->tx_sw, (TrafficCount{7, 700}));
  EXPECT_FALSE(book.find(1)->representor_read);
  EXPECT_EQ(book.find(1)->rules_read, 0u);
}

TEST(PortTrafficBook, ARuleIdInAnotherRoleIsANewRule) {
  PortTrafficBook book;
  book.record(1, reading({{9, TrafficRole::kTx, 4}}));
  book.record(1, reading({{9, TrafficRole::kTxDropped, 1}}));
  EXPECT_EQ(book.find(1)->tx_hw, (TrafficCount{4, 400}));
  EXPECT_EQ(book.find(1)->tx_dropped, (TrafficCount{1, 100}));
}

TEST(PortTrafficBook, ForgetsPortsThatAreGone) {
  PortTrafficBook book;
  for (flowrules::OwnerId p : {1, 2, 3}) book.record(p, reading({{p, TrafficRole::kRx, 1}}));
  const std::vector<flowrules::OwnerId> keep = {3, 1};
  book.retainOnly(keep);
  EXPECT_EQ(book.size(), 2u);
  EXPECT_EQ(book.find(2), nullptr);
  book.forget(3);
  EXPECT_EQ(book.find(3), nullptr);
  ASSERT_NE(book.find(1), nullptr);
  EXPECT_EQ(book.find(1)->rx_hw.packets, 1u);
}

}  // namespace
}  // namespace nicoffload
