// The planner: intent + hardware profile -> rules (placed hw/sw with a
// reason), software-path objects and vDPA devices.
#include "nicoffload/flowrules/planner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <regex>
#include <set>
#include <tuple>

#include "nicoffload/flowrules/render.h"
#include "nicoffload/model/vdpa_device.h"
#include "support/test_support.h"

namespace nicoffload {
namespace {

using flowrules::DesiredState;
using flowrules::FlowRule;
using flowrules::Placement;
using flowrules::PlacementReason;
using flowrules::RuleClass;
using model::ActionType;
using model::HwProfile;
using model::Intent;
using model::UnderlayMode;
using Code = PlacementReason::Code;
using test::Example;

// --- helpers over a plan ---

std::map<RuleClass, std::size_t> countByClass(const std::vector<FlowRule>& rules) {
  std::map<RuleClass, std::size_t> n;
  for (const auto& r : rules) ++n[r.cls];
  return n;
}

std::map<Code, std::size_t> swByReason(const std::vector<FlowRule>& rules) {
  std::map<Code, std::size_t> n;
  for (const auto& r : rules)
    if (r.placement == Placement::kSw) ++n[r.reason.code];
  return n;
}

std::vector<const FlowRule*> ownedBy(const DesiredState& s, flowrules::OwnerId owner) {
  std::vector<const FlowRule*> out;
  for (const auto& r : s.rules)
    if (r.owner == owner) out.push_back(&r);
  return out;
}

bool hasAction(const FlowRule& r, ActionType t) {
  return std::any_of(r.actions.begin(), r.actions.end(),
                     [&](const auto& a) { return flowrules::actionType(a) == t; });
}

const FlowRule* findRule(const DesiredState& s, flowrules::RuleId id) {
  for (const auto& r : s.rules)
    if (r.id == id) return &r;
  return nullptr;
}

bool isAllow(const FlowRule& r) { return r.cls == RuleClass::kAntiSpoofing && r.attr.priority == 0; }
bool isDrop(const FlowRule& r) { return r.cls == RuleClass::kAntiSpoofing && r.attr.priority == 1; }
std::uint16_t dropEtherType(const FlowRule& r) {
  return std::get<flowrules::EthItem>(r.pattern[1]).ether_type;
}
Ipv4Addr ipv4Dst(const FlowRule& r) {
  for (const auto& item : r.pattern)
    if (const auto* ip = std::get_if<flowrules::Ipv4Item>(&item)) return ip->dst;
  return {};
}

std::uint32_t portVni(const Intent& intent, const model::Port& p) {
  return p.vni ? *p.vni : intent.host.default_vni.value_or(0);
}

// --- the example intents against every shipped profile ---

enum class Scenario { kVxlan, kVxlan8472, kRouted };

const char* toString(Scenario s) {
  switch (s) {
    case Scenario::kVxlan: return "vxlan";
    case Scenario::kVxlan8472: return "vxlan-8472";
    case Scenario::kRouted: return "routed";
  }
  return "?";
}

// The example intent of a scenario, in the form `profile` can plan: without
// vDPA on a profile that has none.
Intent scenarioIntent(Scenario s, const HwProfile& profile) {
  Intent intent = test::exampleIntent(s == Scenario::kRouted ? Example::kRouted : Example::kVxlan);
  if (s == Scenario::kVxlan8472) intent.host.vxlan_udp_port = 8472;
  if (!profile.vdpa_kernel && !profile.vdpa_dpdk) test::dropVdpa(intent);
  return intent;
}

// IPv6 (gateway.ipv6 set): per port with /128s two ND traps, an allow and a
// delivery per /128, and an IPv6 drop; a port without /128s the drop alone;
// the routed uplink an IPv6 entry. With IPv6 off, no rule matches IPv6.
TEST(Planner, Ipv6RulesPerPortAndHost) {
  Intent intent = test::exampleIntent(Example::kRouted);
  const HwProfile profile = test::loadProfile("connectx-6dx");
  test::dropVdpa(intent);
  const auto off = test::planOrThrow(intent, profile);
  for (const auto& r : off.rules)
    for (const auto& item : r.pattern)
      EXPECT_FALSE(std::holds_alternative<flowrules::Ipv6Item>(item)) << flowrules::explainRule(r, profile);

  intent.host.gateway_ipv6 = *Ipv6Addr::parse("fe80::1");
  intent.ports[0].addresses6 = {*Ipv6Addr::parse("2001:db8:1::10"), *Ipv6Addr::parse("2001:db8:1::11")};
  const auto on = test::planOrThrow(intent, profile);
  EXPECT_EQ(on.rules.size(), off.rules.size() + 2 + 2 + 1 + 2 + 1 + 1)
      << "port 0: 2 traps, 2 allows, a drop, 2 deliveries; port 1: a drop; the uplink's entry";
  const auto count = [&](const model::Port& port) {
    std::map<RuleClass, std::size_t> n;
    for (const auto* r : ownedBy(on, flowrules::portOwner(port.key))) ++n[r->cls];
    return n;
  };
  const std::size_t v4 = intent.ports[0].addresses.size();
  EXPECT_EQ(count(intent.ports[0]), (std::map<RuleClass, std::size_t>{{RuleClass::kArpTrap, 1},
                                                                     {RuleClass::kNdTrap, 2},
                                                                     {RuleClass::kAntiSpoofing, 2 + v4 + 2 + 1},
                                                                     {RuleClass::kLocalDelivery, v4 + 2}}));
  const std::size_t v4b = intent.ports[1].addresses.size();
  EXPECT_EQ(count(intent.ports[1]), (std::map<RuleClass, std::size_t>{{RuleClass::kArpTrap, 1},
                                                                     {RuleClass::kAntiSpoofing, 2 + v4b + 1},
                                                                     {RuleClass::kLocalDelivery, v4b}}));
  EXPECT_EQ(ownedBy(on, flowrules::hostOwner()).size(), 2u) << "IPv4 and IPv6 uplink entries";
  // Everything in hardware on ConnectX-6 Dx; each IPv6 rule matches one address.
  EXPECT_EQ(on.counts.sw, off.counts.sw) << "the IPv6 rules all in hardware";
  for (const auto& r : on.rules) {
    std::size_t v6 = 0;
    for (const auto& item : r.pattern) v6 += std::holds_alternative<flowrules::Ipv6Item>(item);
    EXPECT_LE(v6, 1u);
    if (r.cls == RuleClass::kNdTrap) {
      EXPECT_EQ(r.attr.group, flowrules::kRootGroup);
      EXPECT_TRUE(hasAction(r, ActionType::kPortRepresentor));
    }
  }
  // Ids are the same on a re-plan, distinct, and parse back with the "nd-" prefix.
  EXPECT_EQ(test::planOrThrow(intent, profile).rules.size(), on.rules.size());
  for (std::size_t i = 0; i < on.rules.size(); ++i) {
    EXPECT_EQ(test::planOrThrow(intent, profile).rules[i].id, on.rules[i].id);
    const auto text = flowrules::formatRuleId(on.rules[i].cls, on.rules[i].id);
    EXPECT_EQ(flowrules::parseRuleId(text), on.rules[i].id) << text;
  }
}

// An IPv6 remote: one egress rule matching its /128 (the ipv6 item), the
// next hop's MAC from an IPv6 next hop; its kernel route through that
// gateway. On VXLAN: encap to the VTEP, and the kernel route through the
// VTEP's link-local stand-in, which a neighbour entry resolves.
TEST(Planner, Ipv6RemoteRoutedAndVxlan) {
  const HwProfile profile = test::loadProfile("connectx-6dx");
  const auto v6 = [](const char* t) { return *Ipv6Addr::parse(t); };
  const MacAddr tor6 = test::mac("0c:42:a1:00:00:66");
  {
    Intent intent = test::exampleIntent(Example::kRouted);
    test::dropVdpa(intent);
    intent.host.gateway_ipv6 = v6("fe80::1");
    intent.host.next_hops.push_back({IpAddr(v6("fe80::6")), tor6});
    model::RemoteEndpoint r;
    r.address = v6("2001:db8:9::5");
    r.next_hop = IpAddr(v6("fe80::6"));
    intent.remotes.push_back(r);
    model::RemoteEndpoint unresolved = r;
    unresolved.address = v6("2001:db8:9::6");
    unresolved.next_hop = IpAddr(v6("fe80::7"));  // no MAC known
    intent.remotes.push_back(unresolved);
    const auto st = test::planOrThrow(intent, profile);
    const auto mine = ownedBy(st, flowrules::remoteOwner(r.address));
    ASSERT_EQ(mine.size(), 1u);
    const FlowRule& rule = *mine[0];
    EXPECT_EQ(rule.cls, RuleClass::kRoutedEgress);
    EXPECT_EQ(rule.placement, Placement::kHw) << flowrules::explainRule(rule, profile);
    const auto& item = std::get<flowrules::Ipv6Item>(rule.pattern[1]);
    EXPECT_EQ(item.field, flowrules::Ipv6Item::Field::kDst);
    EXPECT_EQ(item.len, 128);
    EXPECT_EQ(item.addr, r.address.v6());
    for (const auto& a : rule.actions) {
      if (const auto* d = std::get_if<flowrules::SetMacDstAction>(&a)) {
        EXPECT_EQ(d->mac, tor6);
      }
    }
    EXPECT_TRUE(hasAction(rule, ActionType::kDecTtl));
    // An IPv4 remote's owner is what it always was; an IPv6 one differs.
    EXPECT_NE(flowrules::remoteOwner(r.address),
              flowrules::remoteOwner(IpAddr(Ipv4Addr{0x20010db8})));

    const auto other = ownedBy(st, flowrules::remoteOwner(unresolved.address));
    ASSERT_EQ(other.size(), 1u);
    EXPECT_EQ(other[0]->placement, Placement::kSw);
    EXPECT_EQ(other[0]->reason.code, Code::kNextHopUnresolved);
    EXPECT_EQ(other[0]->reason.address, IpAddr(v6("fe80::7")));
    EXPECT_NE(flowrules::explainRule(*other[0], profile).find("fe80::7"), std::string::npos);

    std::vector<flowrules::Route6Entry> routes;
    for (const auto& route : st.sw.routes6)
      if (route.owner == flowrules::remoteOwner(r.address)) routes.push_back(route);
    ASSERT_EQ(routes.size(), 1u);
    EXPECT_EQ(routes[0].dst, (Ipv6Prefix{r.address.v6(), 128}));
    EXPECT_EQ(routes[0].via, v6("fe80::6"));
    EXPECT_EQ(routes[0].dev, intent.host.uplink_netdev);
    EXPECT_FALSE(routes[0].onlink);
  }
  {
    Intent intent = test::exampleIntent(Example::kVxlan);
    test::dropVdpa(intent);
    intent.host.gateway_ipv6 = v6("fe80::1");
    model::RemoteEndpoint r;
    r.address = v6("2001:db8:9::5");
    r.vtep = *Ipv4Addr::parse("10.99.0.2");
    r.vni = 4242;
    intent.remotes.push_back(r);
    const auto st = test::planOrThrow(intent, profile);
    const auto mine = ownedBy(st, flowrules::remoteOwner(r.address));
    ASSERT_EQ(mine.size(), 1u);
    EXPECT_EQ(mine[0]->cls, RuleClass::kVxlanEgress);
    EXPECT_EQ(std::get<flowrules::Ipv6Item>(mine[0]->pattern[1]).addr, r.address.v6());
    ASSERT_TRUE(mine[0]->encap);
    EXPECT_EQ(mine[0]->encap->dst, *r.vtep);
    EXPECT_EQ(mine[0]->encap->vni, 4242u);
    const auto gw = flowrules::vtepGateway6(*r.vtep);
    EXPECT_EQ(gw.str(), "fe80::a63:2");
    std::size_t routes = 0, neighbours = 0;
    for (const auto& route : st.sw.routes6)
      if (route.owner == flowrules::remoteOwner(r.address)) {
        ++routes;
        EXPECT_EQ(route.via, gw);
        EXPECT_TRUE(route.onlink);
        EXPECT_EQ(route.dev, flowrules::vxlanDeviceName(4242));
      }
    for (const auto& n : st.sw.neighbours6)
      if (n.ip == gw) {
        ++neighbours;
        EXPECT_EQ(n.dev, flowrules::vxlanDeviceName(4242));
        EXPECT_EQ(n.mac, flowrules::routerMacForVtep(*r.vtep));
        EXPECT_FALSE(n.proxy);
      }
    EXPECT_EQ(routes, 1u);
    EXPECT_EQ(neighbours, 1u);
  }
}

// A device without the ipv6 item: the allow rules and ND traps go to
// software, and the IPv6 drop follows them there (a hardware drop would
// catch the VM's traffic first); IPv4 stays in hardware.
TEST(Planner, Ipv6DropFollowsItsLeadersToSoftware) {
  Intent intent = test::exampleIntent(Example::kRouted);
  HwProfile profile = test::loadProfile("sim");
  profile.items[static_cast<std::size_t>(model::ItemType::kIpv6)].supported = false;
  intent.host.gateway_ipv6 = *Ipv6Addr::parse("fe80::1");
  intent.ports[0].addresses6 = {*Ipv6Addr::parse("2001:db8:1::10")};
  const auto st = test::planOrThrow(intent, profile);
  const auto mine = ownedBy(st, flowrules::portOwner(intent.ports[0].key));
  std::size_t follows = 0, unsupported = 0, hw = 0;
  for (const auto* r : mine) {
    if (r->placement == Placement::kHw) ++hw;
    if (r->reason.code == Code::kItemUnsupported) ++unsupported;
    if (r->reason.code == Code::kFollows) {
      ++follows;
      const auto* leader = findRule(st, r->reason.rule);
      ASSERT_NE(leader, nullptr);
      EXPECT_TRUE(leader->cls == RuleClass::kNdTrap || leader->cls == RuleClass::kAntiSpoofing);
    }
  }
  EXPECT_EQ(unsupported, 4u) << "2 ND traps, 1 allow, 1 delivery";
  EXPECT_EQ(follows, 1u) << "the IPv6 drop";
  EXPECT_EQ(hw, mine.size() - 5) << "ARP trap, IPv4 allows, drops and deliveries stay in hardware";
  // The port without /128s: its IPv6 drop leads nothing, stays in hardware.
  for (const auto* r : ownedBy(st, flowrules::portOwner(intent.ports[1].key)))
    EXPECT_EQ(r->placement, Placement::kHw) << flowrules::explainRule(*r, profile);
}

TEST(Planner, EveryRuleClassWithTheExpectedCount) {
  // vxlan example: ports with 1, 2, 1, 1 addresses, 3 remotes, VNIs 100 and 200.
  //   arp-trap 4; anti-spoofing 4*2 + 5; local-delivery 5; vxlan-egress 3; vxlan-ingress 2.
  // routed example: ports with 1, 2 addresses, 2 remotes.
  //   arp-trap 2; anti-spoofing 2*2 + 3; local-delivery 3 + 1 uplink entry; routed-egress 2.
  const std::map<RuleClass, std::size_t> vxlan = {
      {RuleClass::kArpTrap, 4},       {RuleClass::kAntiSpoofing, 13}, {RuleClass::kLocalDelivery, 5},
      {RuleClass::kVxlanEgress, 3},   {RuleClass::kVxlanIngress, 2}};
  const std::map<RuleClass, std::size_t> routed = {{RuleClass::kArpTrap, 2},
                                                   {RuleClass::kAntiSpoofing, 7},
                                                   {RuleClass::kLocalDelivery, 4},
                                                   {RuleClass::kRoutedEgress, 2}};
  for (const auto& name : test::shippedProfiles()) {
    const HwProfile profile = test::loadProfile(name);
    for (auto s : {Scenario::kVxlan, Scenario::kVxlan8472, Scenario::kRouted}) {
      SCOPED_TRACE(name + " / " + toString(s));
      const Intent intent = scenarioIntent(s, profile);
      const DesiredState st = test::planOrThrow(intent, profile);
      EXPECT_EQ(countByClass(st.rules), s == Scenario::kRouted ? routed : vxlan);
      EXPECT_EQ(st.counts.total(), st.rules.size());
      std::size_t by_reason = 0;
      for (auto n : st.counts.sw_by_reason) by_reason += n;
      EXPECT_EQ(by_reason, st.counts.sw);
      EXPECT_TRUE(std::is_sorted(st.rules.begin(), st.rules.end(),
                                 [](const auto& a, const auto& b) { return a.id < b.id; }));

      // Per owner: each port owns 1 + (2 + N) + N rules, each remote one.
      for (const auto& port : intent.ports) {
        const auto mine = ownedBy(st, flowrules::portOwner(port.key));
        std::map<RuleClass, std::size_t> n;
        for (const auto* r : mine) ++n[r->cls];
        const std::size_t addrs = port.addresses.size();
        EXPECT_EQ(n, (std::map<RuleClass, std::size_t>{{RuleClass::kArpTrap, 1},
                                                       {RuleClass::kAntiSpoofing, 2 + addrs},
                                                       {RuleClass::kLocalDelivery, addrs}}))
            << port.key.str();
      }
      for (const auto& remote : intent.remotes) {
        const auto mine = ownedBy(st, flowrules::remoteOwner(remote.address));
        ASSERT_EQ(mine.size(), 1u) << remote.address.str();
        EXPECT_EQ(mine[0]->cls, s == Scenario::kRouted ? RuleClass::kRoutedEgress
                                                      : RuleClass::kVxlanEgress);
        EXPECT_EQ(ipv4Dst(*mine[0]), remote.address);
      }
      if (s == Scenario::kRouted) {
        const auto host_rules = ownedBy(st, flowrules::hostOwner());
        ASSERT_EQ(host_rules.size(), 1u);
        EXPECT_EQ(host_rules[0]->cls, RuleClass::kLocalDelivery);
        EXPECT_EQ(host_rules[0]->attr.group, flowrules::kRootGroup);
      } else {
        for (std::uint32_t vni : {100u, 200u}) {
          const auto mine = ownedBy(st, flowrules::vniOwner(vni));
          ASSERT_EQ(mine.size(), 1u) << vni;
          EXPECT_EQ(mine[0]->cls, RuleClass::kVxlanIngress);
        }
      }
    }
  }
}

TEST(Planner, PlacementPerProfile) {
  struct Row {
    const char* profile;
    Scenario scenario;
    std::map<Code, std::size_t> sw;  // sw rules by reason; everything else hw
  };
  const std::map<Code, std::size_t> none;
  // The routed example has a remote whose next hop (192.0.2.253) has no MAC.
  const std::map<Code, std::size_t> unresolved = {{Code::kNextHopUnresolved, 1}};
  // ConnectX-5 does VXLAN on UDP 4789 only: 3 egress + 2 ingress rules.
  const std::map<Code, std::size_t> udp_port = {{Code::kUdpPortUnsupported, 5}};
  const Row rows[] = {
      {"sim", Scenario::kVxlan, none},           {"sim", Scenario::kVxlan8472, none},
      {"sim", Scenario::kRouted, unresolved},
      {"connectx-5", Scenario::kVxlan, none},    {"connectx-5", Scenario::kVxlan8472, udp_port},
      {"connectx-5", Scenario::kRouted, unresolved},
      {"connectx-6lx", Scenario::kVxlan, none},  {"connectx-6lx", Scenario::kVxlan8472, none},
      {"connectx-6lx", Scenario::kRouted, unresolved},
      {"connectx-6dx", Scenario::kVxlan, none},  {"connectx-6dx", Scenario::kVxlan8472, none},
      {"connectx-6dx", Scenario::kRouted, unresolved},
      {"connectx-7", Scenario::kVxlan, none},    {"connectx-7", Scenario::kVxlan8472, none},
      {"connectx-7", Scenario::kRouted, unresolved},
      {"bluefield-2", Scenario::kVxlan, none},   {"bluefield-2", Scenario::kVxlan8472, none},
      {"bluefield-2", Scenario::kRouted, unresolved},
      {"bluefield-3", Scenario::kVxlan, none},   {"bluefield-3", Scenario::kVxlan8472, none},
      {"bluefield-3", Scenario::kRouted, unresolved},
  };
  std::set<std::string> covered;
  for (const auto& row : rows) {
    SCOPED_TRACE(std::string(row.profile) + " / " + toString(row.scenario));
    covered.insert(row.profile);
    const HwProfile profile = test::loadProfile(row.profile);
    const DesiredState st = test::planOrThrow(scenarioIntent(row.scenario, profile), profile);
    EXPECT_EQ(swByReason(st.rules), row.sw);
    for (const auto& r : st.rules)
      if (r.placement == Placement::kHw) {
        EXPECT_EQ(r.reason.code, Code::kNone);
      }
  }
  EXPECT_EQ(covered.size(), test::shippedProfiles().size());
}

TEST(Planner, ConnectX5VxlanOnOtherUdpPortGoesToSoftware) {
  const HwProfile cx5 = test::loadProfile("connectx-5");
  const DesiredState st = test::planOrThrow(scenarioIntent(Scenario::kVxlan8472, cx5), cx5);
  std::size_t egress = 0, ingress = 0;
  for (const auto& r : st.rules) {
    if (r.cls != RuleClass::kVxlanEgress && r.cls != RuleClass::kVxlanIngress) {
      EXPECT_EQ(r.placement, Placement::kHw) << flowrules::explainRule(r, cx5);
      continue;
    }
    SCOPED_TRACE(flowrules::explainRule(r, cx5));
    EXPECT_EQ(r.placement, Placement::kSw);
    EXPECT_EQ(r.reason.code, Code::kUdpPortUnsupported);
    EXPECT_EQ(r.reason.port, 8472);
    if (r.cls == RuleClass::kVxlanEgress) {
      ++egress;
      EXPECT_TRUE(r.reason.on_action);  // the encap action is what cannot do 8472
      EXPECT_EQ(r.reason.detail, static_cast<std::uint8_t>(ActionType::kVxlanEncap));
      ASSERT_TRUE(r.encap);
      EXPECT_EQ(r.encap->udp_dst, 8472);
    } else {
      ++ingress;
      EXPECT_FALSE(r.reason.on_action);  // the vxlan item (after udp dst 8472)
      EXPECT_EQ(r.reason.detail, static_cast<std::uint8_t>(model::ItemType::kVxlan));
    }
    const std::string why = flowrules::describeReason(r.reason, cx5);
    EXPECT_NE(why.find("4789"), std::string::npos) << why;
    EXPECT_NE(why.find("8472"), std::string::npos) << why;
    EXPECT_NE(why.find("connectx-5"), std::string::npos) << why;
  }
  EXPECT_EQ(egress, 3u);
  EXPECT_EQ(ingress, 2u);
}

// --- vDPA support ---

TEST(Planner, VdpaTheProfileLacksIsRefused) {
  struct Row {
    const char* name;
    const char* profile;
    std::optional<model::VdpaKind> host;               // host backends.vdpa (unset: keep)
    std::optional<std::pair<std::size_t, model::VdpaKind>> port;  // one port's vdpa
    const char* field;                                 // expected error field; null = plans
    const char* value;
  };
  using K = model::VdpaKind;
  const Row rows[] = {
      {"cx5, host kernel", "connectx-5", K::kKernel, std::nullopt, "ports[0].vdpa", "kernel"},
      {"cx5, host dpdk", "connectx-5", K::kDpdk, std::nullopt, "ports[0].vdpa", "dpdk"},
      {"cx5, host sim", "connectx-5", K::kSim, std::nullopt, "ports[0].vdpa", "sim"},
      {"cx5, port kernel", "connectx-5", K::kNone, std::pair{std::size_t{2}, K::kKernel},
       "ports[2].vdpa", "kernel"},
      {"cx5, no vdpa", "connectx-5", K::kNone, std::nullopt, nullptr, nullptr},
      {"bf3, port dpdk", "bluefield-3", K::kNone, std::pair{std::size_t{1}, K::kDpdk},
       "ports[1].vdpa", "dpdk"},
      {"bf3, host dpdk", "bluefield-3", K::kDpdk, std::nullopt, "ports[0].vdpa", "dpdk"},
      {"bf3, port kernel", "bluefield-3", K::kNone, std::pair{std::size_t{1}, K::kKernel},
       nullptr, nullptr},
      {"bf3, host kernel", "bluefield-3", K::kKernel, std::nullopt, nullptr, nullptr},
      {"cx6dx, host dpdk", "connectx-6dx", K::kDpdk, std::nullopt, nullptr, nullptr},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    const HwProfile profile = test::loadProfile(row.profile);
    Intent intent = test::exampleIntent(Example::kVxlan);  // ports[3] says vdpa "none"
    if (row.host) intent.host.vdpa_backend = *row.host;
    if (row.port) intent.ports[row.port->first].vdpa = row.port->second;
    const auto st = flowrules::plan(intent, profile);
    if (!row.field) {
      ASSERT_TRUE(st.ok()) << st.error().describe();
      continue;
    }
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::kUnsupported) << st.error().describe();
    EXPECT_EQ(st.error().field, row.field);
    EXPECT_EQ(st.error().value, row.value);
    EXPECT_NE(st.error().message.find(row.profile), std::string::npos) << st.error().message;
  }
}

TEST(Planner, VdpaDevicesOnePerPortWithVdpa) {
  const HwProfile sim = test::loadProfile("sim");
  const Intent intent = test::exampleIntent(Example::kVxlan);  // host sim; ports[3] none
  const DesiredState st = test::planOrThrow(intent, sim);

  ASSERT_EQ(st.vdpa_devices.size(), 3u);
  std::set<std::string> names;
  static const std::regex kName("^nfo[0-9a-f]{12}$");
  for (const auto& d : st.vdpa_devices) {
    const auto it = std::find_if(intent.ports.begin(), intent.ports.end(),
                                 [&](const auto& p) { return p.key == d.port; });
    ASSERT_NE(it, intent.ports.end());
    EXPECT_NE(it->vdpa, std::optional<model::VdpaKind>(model::VdpaKind::kNone));
    EXPECT_EQ(d.name, vdpa::deviceName(d.port));
    EXPECT_TRUE(std::regex_match(d.name, kName)) << d.name;
    EXPECT_LE(d.name.size(), 15u);  // fits IFNAMSIZ and vdpa's name field
    names.insert(d.name);
    EXPECT_EQ(d.kind, model::VdpaKind::kSim);
    EXPECT_EQ(d.vf, *it->vf);
    EXPECT_EQ(d.mac, it->mac);
    EXPECT_EQ(d.mtu, it->mtu);
    EXPECT_EQ(d.max_vqp, it->queues);
  }
  EXPECT_EQ(names.size(), 3u) << "device names must be unique";
  EXPECT_TRUE(std::is_sorted(st.vdpa_devices.begin(), st.vdpa_devices.end(),
                             [](const auto& a, const auto& b) { return a.port < b.port; }));

  // Every port gets its VF, vDPA or not, sorted by VF.
  ASSERT_EQ(st.vfs.size(), 4u);
  for (std::size_t i = 0; i < st.vfs.size(); ++i) {
    EXPECT_EQ(st.vfs[i].vf, i);
    EXPECT_EQ(st.vfs[i].port, intent.ports[i].key);
    EXPECT_EQ(st.vfs[i].mac, intent.ports[i].mac);
  }

  // Stable: the same names on a re-plan; different for another NIC of a VM.
  const DesiredState again = test::planOrThrow(intent, sim);
  EXPECT_EQ(again.vdpa_devices, st.vdpa_devices);
  model::PortKey k = intent.ports[0].key;
  const auto n0 = vdpa::deviceName(k);
  k.nic = 1;
  EXPECT_NE(vdpa::deviceName(k), n0);
  EXPECT_EQ(vdpa::deviceName(intent.ports[1].key), vdpa::deviceName(k));  // ports[1] is that NIC
}

TEST(Planner, VdpaKindPerPortOverridesTheHost) {
  const HwProfile bf3 = test::loadProfile("bluefield-3");
  Intent intent = test::exampleIntent(Example::kVxlan);
  intent.host.vdpa_backend = model::VdpaKind::kNone;
  intent.ports[1].vdpa = model::VdpaKind::kKernel;
  const DesiredState st = test::planOrThrow(intent, bf3);
  ASSERT_EQ(st.vdpa_devices.size(), 1u);
  EXPECT_EQ(st.vdpa_devices[0].port, intent.ports[1].key);
  EXPECT_EQ(st.vdpa_devices[0].kind, model::VdpaKind::kKernel);
  EXPECT_EQ(vdpa::effectiveKind(intent.host, intent.ports[1]), model::VdpaKind::kKernel);
  EXPECT_EQ(vdpa::effectiveKind(intent.host, intent.ports[0]), model::VdpaKind::kNone);
}

// --- host and port checks ---

TEST(Planner, VfCountBeyondTheProfile) {
  struct Row { const char* profile; std::uint16_t vf_count; bool ok; };
  const Row rows[] = {{"sim", 64, true},         {"sim", 65, false},
                      {"connectx-5", 127, true}, {"connectx-5", 128, false},
                      {"bluefield-3", 1024, false}};
  for (const auto& row : rows) {
    SCOPED_TRACE(std::string(row.profile) + " " + std::to_string(row.vf_count));
    const HwProfile profile = test::loadProfile(row.profile);
    Intent intent = scenarioIntent(Scenario::kVxlan, profile);
    intent.host.vf_count = row.vf_count;
    const auto st = flowrules::plan(intent, profile);
    ASSERT_EQ(st.ok(), row.ok) << (st.ok() ? "" : st.error().describe());
    if (row.ok) continue;
    EXPECT_EQ(st.error().code, ErrorCode::kUnsupported);
    EXPECT_EQ(st.error().field, "uplink.vf_count");
    EXPECT_EQ(st.error().value, std::to_string(row.vf_count));
  }
}

TEST(Planner, PortWithoutVfIsRefused) {
  const HwProfile sim = test::loadProfile("sim");
  for (std::size_t i : {0u, 2u}) {
    Intent intent = test::exampleIntent(Example::kVxlan);
    intent.ports[i].vf.reset();
    intent.ports[i].representor.clear();
    const auto st = flowrules::plan(intent, sim);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::kMissingField);
    EXPECT_EQ(st.error().field, "ports[" + std::to_string(i) + "].vf");
    EXPECT_NE(st.error().message.find(intent.ports[i].key.str()), std::string::npos);
  }
}

TEST(Planner, InvalidIntentIsRefused) {
  const HwProfile sim = test::loadProfile("sim");
  Intent intent = test::exampleIntent(Example::kVxlan);
  intent.ports[1].addresses[0] = intent.ports[0].addresses[0];
  const auto st = flowrules::plan(intent, sim);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kDuplicate);
  EXPECT_EQ(st.error().field, "ports[1].addresses[0]");
}

TEST(Planner, ProfileWithoutSwitchdevIsRefused) {
  HwProfile legacy = test::loadProfile("sim");
  legacy.eswitch_modes = {model::EswitchMode::kLegacy};
  const auto st = flowrules::plan(test::exampleIntent(Example::kVxlan), legacy);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(st.error().field, "hw_profile");
}

// --- next hops ---

TEST(Planner, RoutedNextHopWithoutMacGoesToSoftware) {
  const HwProfile dx = test::loadProfile("connectx-6dx");
  Intent intent;
  intent.host = test::makeHost(UnderlayMode::kRouted);
  intent.ports = {test::makePort(0, {"10.0.0.1"})};
  intent.remotes = {test::routedRemote("10.20.0.1"),                 // default: MAC known
                    test::routedRemote("10.20.0.2", "192.0.2.77")};  // no MAC for .77
  const DesiredState st = test::planOrThrow(intent, dx);
  for (const auto& r : st.rules) {
    if (r.cls != RuleClass::kRoutedEgress) {
      EXPECT_EQ(r.placement, Placement::kHw);
      continue;
    }
    const auto mac_dst = std::get<flowrules::SetMacDstAction>(r.actions[1]).mac;
    if (ipv4Dst(r) == test::ip("10.20.0.1")) {
      EXPECT_EQ(r.placement, Placement::kHw);
      EXPECT_EQ(mac_dst, test::mac("0c:42:a1:ff:ff:fe"));
    } else {
      EXPECT_EQ(r.placement, Placement::kSw);
      EXPECT_EQ(r.reason.code, Code::kNextHopUnresolved);
      EXPECT_EQ(r.reason.address, test::ip("192.0.2.77"));
      const auto why = flowrules::describeReason(r.reason, dx);
      EXPECT_NE(why.find("192.0.2.77"), std::string::npos) << why;
    }
  }
}

TEST(Planner, VxlanEncapNextHop) {
  // The outer destination MAC is the VTEP's own when it is a listed
  // neighbour, else the default next hop's; with neither known the rule goes
  // to software.
  const HwProfile sim = test::loadProfile("sim");
  Intent intent;
  intent.host = test::makeHost(UnderlayMode::kVxlan);
  intent.host.next_hops.push_back({test::ip("192.0.2.3"), test::mac("0c:42:a1:00:00:03")});
  intent.ports = {test::makePort(0, {"10.0.0.1"})};
  intent.remotes = {test::vxlanRemote("10.20.0.1", "192.0.2.2"),
                    test::vxlanRemote("10.20.0.2", "192.0.2.3")};
  DesiredState st = test::planOrThrow(intent, sim);
  for (const auto& r : st.rules) {
    if (r.cls != RuleClass::kVxlanEgress) continue;
    ASSERT_TRUE(r.encap);
    EXPECT_EQ(r.placement, Placement::kHw);
    EXPECT_EQ(r.encap->eth_dst, r.encap->dst == test::ip("192.0.2.3")
                                    ? test::mac("0c:42:a1:00:00:03")
                                    : test::mac("0c:42:a1:ff:ff:fe"));
    EXPECT_EQ(r.encap->eth_src, intent.host.uplink_mac);
    EXPECT_EQ(r.encap->src, test::ip("192.0.2.1"));
    EXPECT_EQ(r.encap->vni, 100u);
    EXPECT_EQ(r.encap->udp_dst, 4789);
    EXPECT_GE(r.encap->udp_src, 49152);
  }

  intent.host.next_hops.clear();
  st = test::planOrThrow(intent, sim);
  EXPECT_EQ(swByReason(st.rules), (std::map<Code, std::size_t>{{Code::kNextHopUnresolved, 2}}));
}

// --- table capacity and the coupling of rules that must move together ---

// A bigger vxlan intent: 6 ports of 2 addresses on VNIs 100, 200, 300; 4
// remotes. Root group: 6 * (1 + 2 + 2) + 3 decaps = 33 rules; FIB: 12 + 4.
Intent capacityIntent() {
  Intent intent;
  intent.host = test::makeHost(UnderlayMode::kVxlan);
  const std::optional<std::uint32_t> vnis[] = {std::nullopt, std::nullopt, 200, 200, 300, 100};
  for (int i = 0; i < 6; ++i) {
    const std::string a = "10.0." + std::to_string(i) + ".1";
    const std::string b = "10.0." + std::to_string(i) + ".2";
    intent.ports.push_back(test::makePort(i, {a, b}, vnis[i]));
  }
  for (int i = 0; i < 4; ++i)
    intent.remotes.push_back(
        test::vxlanRemote("10.20.0." + std::to_string(i + 1), "192.0.2." + std::to_string(2 + i % 2)));
  return intent;
}

// The invariants every plan must hold, whatever the table sizes.
void checkCouplingInvariants(const Intent& intent, const HwProfile& profile, const DesiredState& st) {
  // No group holds more hw rules than it can.
  std::map<std::uint32_t, std::uint32_t> hw_in_group;
  for (const auto& r : st.rules)
    if (r.placement == Placement::kHw) ++hw_in_group[r.attr.group];
  for (const auto& [group, n] : hw_in_group) EXPECT_LE(n, profile.groupCapacity(group)) << group;

  // Anti-spoofing: when an allow rule of a port is in software, that port's
  // IPv4 drop is too; when its ARP trap is, its ARP drop is too. (A drop left
  // in hardware would eat the traffic the software rule is meant to pass.)
  for (const auto& port : intent.ports) {
    const auto mine = ownedBy(st, flowrules::portOwner(port.key));
    const bool allow_sw = std::any_of(mine.begin(), mine.end(), [](const FlowRule* r) {
      return isAllow(*r) && r->placement == Placement::kSw;
    });
    const bool trap_sw = std::any_of(mine.begin(), mine.end(), [](const FlowRule* r) {
      return r->cls == RuleClass::kArpTrap && r->placement == Placement::kSw;
    });
    for (const FlowRule* r : mine) {
      if (!isDrop(*r)) continue;
      const bool arp = dropEtherType(*r) == flowrules::kEtherTypeArp;
      if ((arp && trap_sw) || (!arp && allow_sw)) {
        EXPECT_EQ(r->placement, Placement::kSw)
            << port.key.str() << (arp ? " ARP" : " IPv4") << " drop stayed in hw";
      }
    }
  }

  // VXLAN: a VNI whose delivery rule is in software decaps in software too.
  if (intent.host.underlay == UnderlayMode::kVxlan) {
    std::set<std::uint32_t> sw_vnis;
    for (const auto& port : intent.ports)
      for (const FlowRule* r : ownedBy(st, flowrules::portOwner(port.key)))
        if (r->cls == RuleClass::kLocalDelivery && r->placement == Placement::kSw)
          sw_vnis.insert(portVni(intent, port));
    for (const auto vni : sw_vnis) {
      const auto decap = ownedBy(st, flowrules::vniOwner(vni));
      ASSERT_EQ(decap.size(), 1u);
      EXPECT_EQ(decap[0]->placement, Placement::kSw) << "VNI " << vni;
    }
  }

  // A rule that follows another names a rule that exists and is in software.
  for (const auto& r : st.rules) {
    if (r.reason.code != Code::kFollows) continue;
    EXPECT_EQ(r.placement, Placement::kSw);
    const FlowRule* leader = findRule(st, r.reason.rule);
    ASSERT_NE(leader, nullptr) << flowrules::explainRule(r, profile);
    EXPECT_EQ(leader->placement, Placement::kSw);
    if (r.cls == RuleClass::kAntiSpoofing) {
      EXPECT_EQ(leader->owner, r.owner);
    } else {
      EXPECT_EQ(r.cls, RuleClass::kVxlanIngress);
      EXPECT_EQ(leader->cls, RuleClass::kLocalDelivery);
    }
  }
}

TEST(Planner, SmallRootTableSpillsToSoftwareConsistently) {
  const Intent intent = capacityIntent();
  HwProfile tiny = test::loadProfile("sim");
  tiny.name = "tiny";
  std::size_t table_full = 0, follows = 0;
  for (std::uint32_t cap = 0; cap <= 34; ++cap) {
    SCOPED_TRACE("root_table_rules " + std::to_string(cap));
    tiny.root_table_rules = cap;
    const DesiredState st = test::planOrThrow(intent, tiny);
    const auto sw = swByReason(st.rules);
    const std::size_t full = sw.count(Code::kTableFull) ? sw.at(Code::kTableFull) : 0;
    if (cap < 33) {
      EXPECT_GT(full, 0u);
    } else {
      EXPECT_EQ(st.counts.sw, 0u);
    }
    for (const auto& r : st.rules)
      if (r.reason.code == Code::kTableFull) {
        EXPECT_EQ(r.reason.group, flowrules::kRootGroup);
        EXPECT_EQ(r.reason.capacity, cap);
        const auto why = flowrules::describeReason(r.reason, tiny);
        EXPECT_NE(why.find("group 0 holds at most " + std::to_string(cap)), std::string::npos) << why;
      }
    table_full += full;
    follows += sw.count(Code::kFollows) ? sw.at(Code::kFollows) : 0;
    checkCouplingInvariants(intent, tiny, st);
  }
  EXPECT_GT(table_full, 0u);
  EXPECT_GT(follows, 0u) << "no capacity made a drop follow its allow/trap rule";
}

TEST(Planner, SmallFibTableSpillsToSoftwareConsistently) {
  const Intent intent = capacityIntent();
  HwProfile tiny = test::loadProfile("sim");
  tiny.name = "tiny";
  std::size_t decap_follows = 0;
  for (std::uint32_t cap = 0; cap <= 17; ++cap) {
    SCOPED_TRACE("rules_per_group " + std::to_string(cap));
    tiny.rules_per_group = cap;
    const DesiredState st = test::planOrThrow(intent, tiny);
    // Local delivery is kept in hardware before egress.
    std::size_t ld_hw = 0, egress_hw = 0;
    for (const auto& r : st.rules) {
      if (r.cls == RuleClass::kLocalDelivery && r.placement == Placement::kHw) ++ld_hw;
      if (r.cls == RuleClass::kVxlanEgress && r.placement == Placement::kHw) ++egress_hw;
      if (r.cls == RuleClass::kVxlanIngress && r.reason.code == Code::kFollows) ++decap_follows;
    }
    EXPECT_EQ(ld_hw, std::min<std::size_t>(cap, 12));
    EXPECT_EQ(egress_hw, cap > 12 ? std::min<std::size_t>(cap - 12, 4) : 0);
    checkCouplingInvariants(intent, tiny, st);
  }
  EXPECT_GT(decap_follows, 0u);
}

TEST(Planner, GroupsBeyondMaxGroupsHoldNothing) {
  HwProfile one_group = test::loadProfile("sim");
  one_group.max_groups = 1;  // only the root table: the FIB (group 1) is not there
  const Intent intent = capacityIntent();
  const DesiredState st = test::planOrThrow(intent, one_group);
  for (const auto& r : st.rules)
    if (r.attr.group == flowrules::kFibGroup) {
      EXPECT_EQ(r.placement, Placement::kSw);
      EXPECT_EQ(r.reason.code, Code::kTableFull);
      EXPECT_EQ(r.reason.capacity, 0u);
    }
  checkCouplingInvariants(intent, one_group, st);
}

// A device without COUNT: the rules go to hardware uncounted, not to
// software for want of a counter (the traffic figures then come from the
// representors alone).
TEST(Planner, ProfileWithoutCount) {
  HwProfile no_count = test::loadProfile("sim");
  no_count.name = "no-count";
  no_count.actions[static_cast<std::size_t>(ActionType::kCount)].supported = false;
  Intent vxlan = capacityIntent();
  Intent routed;
  routed.host = test::makeHost(UnderlayMode::kRouted);
  routed.ports = {test::makePort(0, {"10.0.0.1"}), test::makePort(1, {"10.0.1.1", "10.0.1.2"})};
  routed.remotes = {test::routedRemote("10.20.0.1")};
  for (const Intent* intent : {&vxlan, &routed}) {
    SCOPED_TRACE(model::toString(intent->host.underlay));
    const DesiredState counted = test::planOrThrow(*intent, test::loadProfile("sim"));
    const DesiredState st = test::planOrThrow(*intent, no_count);
    ASSERT_EQ(st.rules.size(), counted.rules.size());
    for (std::size_t i = 0; i < st.rules.size(); ++i) {
      SCOPED_TRACE(flowrules::explainRule(st.rules[i], no_count));
      EXPECT_FALSE(hasAction(st.rules[i], ActionType::kCount));
      EXPECT_TRUE(hasAction(counted.rules[i], ActionType::kCount));
      EXPECT_EQ(st.rules[i].placement, counted.rules[i].placement);
      EXPECT_EQ(st.rules[i].id, counted.rules[i].id) << "the same rule, counted or not";
    }
  }
}

TEST(Planner, ProfileWithoutDecTtl) {
  HwProfile no_ttl = test::loadProfile("sim");
  no_ttl.name = "no-dec-ttl";
  no_ttl.actions[static_cast<std::size_t>(ActionType::kDecTtl)].supported = false;

  Intent vxlan = capacityIntent();
  Intent routed;
  routed.host = test::makeHost(UnderlayMode::kRouted);
  routed.ports = {test::makePort(0, {"10.0.0.1"}), test::makePort(1, {"10.0.1.1", "10.0.1.2"})};
  routed.remotes = {test::routedRemote("10.20.0.1"), test::routedRemote("10.20.0.2")};

  for (const Intent* intent : {&vxlan, &routed}) {
    SCOPED_TRACE(model::toString(intent->host.underlay));
    const DesiredState st = test::planOrThrow(*intent, no_ttl);
    std::size_t with_ttl = 0;
    for (const auto& r : st.rules) {
      SCOPED_TRACE(flowrules::explainRule(r, no_ttl));
      if (hasAction(r, ActionType::kDecTtl)) {
        ++with_ttl;
        EXPECT_EQ(r.placement, Placement::kSw);
        EXPECT_EQ(r.reason.code, Code::kActionUnsupported);
        EXPECT_EQ(r.reason.detail, static_cast<std::uint8_t>(ActionType::kDecTtl));
        EXPECT_NE(flowrules::describeReason(r.reason, no_ttl).find("dec_ttl"), std::string::npos);
      } else if (r.cls == RuleClass::kVxlanIngress) {
        // Every delivery rule is in software, so every decap follows.
        EXPECT_EQ(r.placement, Placement::kSw);
        EXPECT_EQ(r.reason.code, Code::kFollows);
      } else {
        EXPECT_EQ(r.placement, Placement::kHw);
      }
    }
    // local delivery of every address + every egress
    std::size_t expected = intent->remotes.size();
    for (const auto& p : intent->ports) expected += p.addresses.size();
    EXPECT_EQ(with_ttl, expected);
    checkCouplingInvariants(*intent, no_ttl, st);
  }
}

TEST(Planner, ProfileWithoutAnItem) {
  // Without the represented_port item nothing that matches on the ingress port
  // can be offloaded: ARP traps, anti-spoofing and the uplink entry go to sw.
  HwProfile p = test::loadProfile("sim");
  p.items[static_cast<std::size_t>(model::ItemType::kRepresentedPort)].supported = false;
  const Intent intent = test::exampleIntent(Example::kRouted);
  const DesiredState st = test::planOrThrow(intent, p);
  for (const auto& r : st.rules) {
    const bool from_port = std::holds_alternative<flowrules::PortItem>(r.pattern[0]);
    if (from_port) {
      EXPECT_EQ(r.placement, Placement::kSw);
      EXPECT_EQ(r.reason.code, Code::kItemUnsupported);
      EXPECT_NE(flowrules::describeReason(r.reason, p).find("represented_port"), std::string::npos);
    }
  }
  checkCouplingInvariants(intent, p, st);
}

TEST(Planner, PlanPortRulesMatchesTheFullPlan) {
  for (const auto& name : test::shippedProfiles()) {
    const HwProfile profile = test::loadProfile(name);
    for (auto s : {Scenario::kVxlan8472, Scenario::kRouted}) {
      SCOPED_TRACE(name + " / " + toString(s));
      const Intent intent = scenarioIntent(s, profile);
      const DesiredState st = test::planOrThrow(intent, profile);
      for (const auto& port : intent.ports) {
        const auto mine = ownedBy(st, flowrules::portOwner(port.key));
        const auto alone = test::unwrap(flowrules::planPortRules(intent.host, profile, port), "planPortRules");
        ASSERT_EQ(alone.size(), mine.size());
        for (std::size_t i = 0; i < alone.size(); ++i) {
          EXPECT_EQ(alone[i].id, mine[i]->id);
          EXPECT_TRUE(alone[i].sameContent(*mine[i])) << flowrules::explainRule(alone[i], profile);
        }
      }
    }
  }
}

TEST(Planner, RuleShapes) {
  // The table layout of planner.h: root group for what enters from a port,
  // the FIB (group 1) for destinations.
  const HwProfile sim = test::loadProfile("sim");
  for (auto e : {Example::kVxlan, Example::kRouted}) {
    const DesiredState st = test::planOrThrow(test::exampleIntent(e), sim);
    for (const auto& r : st.rules) {
      SCOPED_TRACE(flowrules::explainRule(r, sim));
      EXPECT_TRUE(r.attr.transfer);
      EXPECT_FALSE(r.attr.ingress);
      EXPECT_EQ(flowrules::actionType(r.actions[r.actions.size() - 1]), ActionType::kCount);
      EXPECT_EQ(r.encap.has_value(), hasAction(r, ActionType::kVxlanEncap));
      switch (r.cls) {
        case RuleClass::kArpTrap:
        case RuleClass::kNdTrap:
          EXPECT_EQ(r.attr.group, 0u);
          EXPECT_TRUE(hasAction(r, ActionType::kPortRepresentor));
          break;
        case RuleClass::kAntiSpoofing:
          EXPECT_EQ(r.attr.group, 0u);
          EXPECT_EQ(hasAction(r, ActionType::kDrop), r.attr.priority == 1);
          EXPECT_EQ(hasAction(r, ActionType::kJump), r.attr.priority == 0);
          break;
        case RuleClass::kLocalDelivery:
          if (r.owner == flowrules::hostOwner()) {
            EXPECT_EQ(r.attr.group, 0u);
            EXPECT_TRUE(hasAction(r, ActionType::kJump));
          } else {
            EXPECT_EQ(r.attr.group, 1u);
            EXPECT_EQ(std::get<flowrules::SetMacSrcAction>(r.actions[0]).mac,
                      test::mac("ee:ee:ee:ee:ee:ee"));
          }
          break;
        case RuleClass::kVxlanIngress:
          EXPECT_EQ(r.attr.group, 0u);
          EXPECT_TRUE(hasAction(r, ActionType::kVxlanDecap));
          break;
        case RuleClass::kVxlanEgress:
        case RuleClass::kRoutedEgress:
          EXPECT_EQ(r.attr.group, 1u);
          EXPECT_EQ(std::get<flowrules::RepresentedPortAction>(r.actions[r.actions.size() - 2]).port,
                    flowrules::PortRef::uplink());
          break;
      }
    }
  }
}

TEST(Planner, ExplainRuleSaysWhereAndWhy) {
  const HwProfile sim = test::loadProfile("sim");
  const DesiredState st = test::planOrThrow(test::exampleIntent(Example::kRouted), sim);
  for (const auto& r : st.rules) {
    const auto text = flowrules::explainRule(r, sim);
    EXPECT_EQ(text.rfind(flowrules::formatRuleId(r.cls, r.id) + ": ", 0), 0u) << text;
    EXPECT_NE(text.find(flowrules::toString(r.cls)), std::string::npos) << text;
    EXPECT_NE(text.find(std::string("placed ") + flowrules::toString(r.placement)), std::string::npos);
    if (r.cls == RuleClass::kArpTrap) {
      EXPECT_NE(text.find("ARP replies"), std::string::npos) << text;
    }
  }
}

// --- software path ---

template <class T, class Pred>
std::vector<T> select(const std::vector<T>& v, Pred pred) {
  std::vector<T> out;
  std::copy_if(v.begin(), v.end(), std::back_inserter(out), pred);
  return out;
}

template <class T>
bool sortedByKey(const std::vector<T>& v) {
  return std::is_sorted(v.begin(), v.end(), [](const T& a, const T& b) { return a.key() < b.key(); });
}

// Two ports (one with a named representor and two addresses) and a host with
// its own route protocol and table.
Intent softwarePathIntent(UnderlayMode mode) {
  Intent intent;
  intent.host = test::makeHost(mode);
  intent.host.route_protocol = 77;
  intent.host.route_table = 100;
  const bool vxlan = mode == UnderlayMode::kVxlan;
  intent.ports = {test::makePort(0, {"10.0.0.1"}),
                  test::makePort(1, {"10.0.1.1", "10.0.1.2"},
                                 vxlan ? std::optional<std::uint32_t>(200) : std::nullopt)};
  intent.ports[1].representor = "rep-one";
  if (vxlan) {
    intent.remotes = {test::vxlanRemote("10.20.0.1", "192.0.2.2"),       // default VNI 100
                      test::vxlanRemote("10.20.0.2", "192.0.2.2", 100),  // same VTEP and VNI
                      test::vxlanRemote("10.20.0.3", "192.0.2.3", 300)};  // a VNI no port uses
  } else {
    intent.remotes = {test::routedRemote("10.20.0.1"), test::routedRemote("10.20.0.2", "192.0.2.253")};
  }
  return intent;
}

void checkPortObjects(const Intent& intent, const flowrules::SoftwarePathState& sw) {
  const auto& host = intent.host;
  EXPECT_TRUE(sortedByKey(sw.sysctls));
  EXPECT_TRUE(sortedByKey(sw.links));
  EXPECT_TRUE(sortedByKey(sw.routes));
  EXPECT_TRUE(sortedByKey(sw.neighbours));
  EXPECT_TRUE(sortedByKey(sw.vxlan_devices));
  EXPECT_TRUE(sortedByKey(sw.fdb));

  // Host-wide: forwarding, and the gateway address on lo.
  EXPECT_EQ(select(sw.sysctls, [](const auto& s) { return s.path == "ipv4/ip_forward"; }),
            (std::vector<flowrules::SysctlSetting>{{"ipv4/ip_forward", "1", flowrules::hostOwner()}}));
  ASSERT_EQ(sw.addresses.size(), 1u);
  EXPECT_EQ(sw.addresses[0].dev, "lo");
  EXPECT_EQ(sw.addresses[0].prefix.str(), "169.254.1.1/32");

  ASSERT_EQ(sw.sysctls.size(), 1 + 4 * intent.ports.size());
  ASSERT_EQ(sw.links.size(), intent.ports.size());
  for (const auto& port : intent.ports) {
    const std::string rep = port.representorName();
    SCOPED_TRACE(rep);
    const auto owner = flowrules::portOwner(port.key);
    const std::map<std::string, std::string> want = {
        {"ipv4/conf/" + rep + "/forwarding", "1"},
        {"ipv4/conf/" + rep + "/proxy_arp", "1"},
        {"ipv4/conf/" + rep + "/rp_filter", "1"},
        {"ipv4/neigh/" + rep + "/proxy_delay", "0"}};
    std::map<std::string, std::string> got;
    for (const auto& s : sw.sysctls)
      if (s.owner == owner) got[s.path] = s.value;
    EXPECT_EQ(got, want);

    const auto links = select(sw.links, [&](const auto& l) { return l.dev == rep; });
    ASSERT_EQ(links.size(), 1u);
    EXPECT_EQ(links[0].mac, host.gateway_mac);  // proxy-ARP answers carry the gateway MAC
    EXPECT_TRUE(links[0].up);

    // One /32 route and one permanent neighbour per VM address, on the representor.
    const auto routes = select(sw.routes, [&](const auto& r) { return r.owner == owner; });
    const auto neighs = select(sw.neighbours, [&](const auto& n) { return n.owner == owner; });
    ASSERT_EQ(routes.size(), port.addresses.size());
    ASSERT_EQ(neighs.size(), port.addresses.size());
    for (const auto a : port.addresses) {
      EXPECT_EQ(std::count_if(routes.begin(), routes.end(),
                              [&](const auto& r) {
                                return r.dst == Ipv4Prefix{a, 32} && r.dev == rep && !r.via &&
                                       !r.onlink && r.table == 100 && r.protocol == 77;
                              }),
                1)
          << a.str();
      EXPECT_EQ(std::count_if(neighs.begin(), neighs.end(),
                              [&](const auto& n) { return n.ip == a && n.dev == rep && n.mac == port.mac; }),
                1)
          << a.str();
    }
  }
}

TEST(Planner, SoftwarePathVxlan) {
  const HwProfile sim = test::loadProfile("sim");
  Intent intent = softwarePathIntent(UnderlayMode::kVxlan);
  intent.host.vxlan_udp_port = 8472;
  const auto sw = test::planOrThrow(intent, sim).sw;
  checkPortObjects(intent, sw);

  // One VXLAN device per VNI in use, by ports (100, 200) or remotes (100, 300).
  ASSERT_EQ(sw.vxlan_devices.size(), 3u);
  const std::uint32_t vnis[] = {100, 200, 300};
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& d = sw.vxlan_devices[i];
    EXPECT_EQ(d.name, flowrules::vxlanDeviceName(vnis[i]));
    EXPECT_EQ(d.vni, vnis[i]);
    EXPECT_EQ(d.local, test::ip("192.0.2.1"));
    EXPECT_EQ(d.dst_port, 8472);
    EXPECT_EQ(d.mac, test::mac("02:00:c0:00:02:01"));  // router MAC of the local VTEP
    EXPECT_EQ(d.underlay_dev, "uplink0");
    EXPECT_EQ(d.owner, flowrules::vniOwner(vnis[i]));
  }

  // Per (VNI, remote VTEP): one FDB entry and one neighbour for the VTEP's router MAC.
  using flowrules::FdbEntry;
  using flowrules::NeighbourEntry;
  std::vector<std::tuple<std::string, std::string, std::string>> fdb, vtep_neighs;
  for (const auto& f : sw.fdb) fdb.emplace_back(f.dev, f.mac.str(), f.dst.str());
  for (const auto& n : sw.neighbours)
    if (n.dev.rfind(flowrules::kVxlanDevicePrefix, 0) == 0) vtep_neighs.emplace_back(n.dev, n.mac.str(), n.ip.str());
  const std::vector<std::tuple<std::string, std::string, std::string>> want = {
      {"nfo-vx100", "02:00:c0:00:02:02", "192.0.2.2"}, {"nfo-vx300", "02:00:c0:00:02:03", "192.0.2.3"}};
  EXPECT_EQ(fdb, want);
  EXPECT_EQ(vtep_neighs, want);
  EXPECT_EQ(sw.neighbours.size(), 3u + 2u);

  // Remote /32s via their VTEP, onlink, on the VNI's device.
  for (const auto& remote : intent.remotes) {
    const auto routes = select(sw.routes, [&](const auto& r) {
      return r.owner == flowrules::remoteOwner(remote.address);
    });
    ASSERT_EQ(routes.size(), 1u);
    const auto& r = routes[0];
    EXPECT_EQ(r.dst, (Ipv4Prefix{remote.address.v4(), 32}));
    EXPECT_EQ(r.via, remote.vtep);
    EXPECT_TRUE(r.onlink);
    EXPECT_EQ(r.dev, flowrules::vxlanDeviceName(remote.vni.value_or(100)));
    EXPECT_EQ(r.table, 100u);
    EXPECT_EQ(r.protocol, 77);
  }
  EXPECT_EQ(sw.routes.size(), 3u + 3u);
}

// VXLAN over an IPv6 underlay (issue 23): the hardware rules carry IPv6
// outer headers (encapsulation to the remote VTEP from ours; the decap rule
// matches our VTEP as the outer IPv6 destination), and the kernel path gets
// VXLAN devices with an IPv6 local address, FDB entries to IPv6 VTEPs, and
// the remote /32s routed through each VTEP's link-local stand-in (an IPv6
// gateway of an IPv4 route), which a permanent neighbour resolves to the
// VTEP's router MAC.
TEST(Planner, VxlanOverAnIpv6Underlay) {
  const HwProfile sim = test::loadProfile("sim");
  Intent intent = softwarePathIntent(UnderlayMode::kVxlan);
  auto& host = intent.host;
  const auto v6 = [](const char* t) { return *Ipv6Addr::parse(t); };
  host.vtep = v6("2001:db8:ff::1");
  host.next_hops = {{v6("2001:db8:ff::fe"), test::mac("0c:42:a1:ff:ff:fd"), 0}};
  host.default_next_hop = v6("2001:db8:ff::fe");
  intent.remotes[0].vtep = v6("2001:db8:ff::a:2");
  intent.remotes[1].vtep = v6("2001:db8:ff::a:2");
  intent.remotes[2].vtep = v6("2001:db8:ff::b:3");
  ASSERT_TRUE(model::validateIntent(intent)) << model::validateIntent(intent).error().describe();
  const auto plan = test::planOrThrow(intent, sim);

  std::size_t egress = 0, decap = 0;
  for (const auto& r : plan.rules) {
    SCOPED_TRACE(flowrules::explainRule(r, sim));
    if (r.cls == RuleClass::kVxlanEgress) {
      ++egress;
      EXPECT_EQ(r.placement, Placement::kHw);
      ASSERT_TRUE(r.encap);
      EXPECT_TRUE(r.encap->ipv6());
      EXPECT_EQ(r.encap->src, IpAddr(v6("2001:db8:ff::1")));
      EXPECT_EQ(r.encap->eth_dst, test::mac("0c:42:a1:ff:ff:fd")) << "the IPv6 default next hop";
      const auto* remote = &intent.remotes[0];
      for (const auto& x : intent.remotes)
        if (r.owner == flowrules::remoteOwner(x.address)) remote = &x;
      EXPECT_EQ(r.encap->dst, *remote->vtep);
      EXPECT_EQ(std::get<flowrules::SetMacSrcAction>(r.actions[0]).mac,
                test::mac("02:00:00:00:00:01"));
      EXPECT_EQ(std::get<flowrules::SetMacDstAction>(r.actions[1]).mac,
                flowrules::routerMacForVtep(*remote->vtep));
    }
    if (r.cls == RuleClass::kVxlanIngress) {
      ++decap;
      EXPECT_EQ(r.placement, Placement::kHw);
      ASSERT_GE(r.pattern.size(), 3u);
      const auto* outer = std::get_if<flowrules::Ipv6Item>(&r.pattern[2]);
      ASSERT_NE(outer, nullptr) << "the outer destination is IPv6";
      EXPECT_EQ(outer->field, flowrules::Ipv6Item::Field::kDst);
      EXPECT_EQ(outer->addr, v6("2001:db8:ff::1"));
      EXPECT_EQ(outer->len, 128);
    }
  }
  EXPECT_EQ(egress, 3u);
  EXPECT_EQ(decap, 2u);

  const auto& sw = plan.sw;
  ASSERT_EQ(sw.vxlan_devices.size(), 3u);
  for (const auto& d : sw.vxlan_devices) {
    EXPECT_EQ(d.local, IpAddr(v6("2001:db8:ff::1")));
    EXPECT_EQ(d.mac, test::mac("02:00:00:00:00:01"));
  }
  std::vector<std::pair<std::string, std::string>> fdb;
  for (const auto& f : sw.fdb) fdb.emplace_back(f.dev + " " + f.mac.str(), f.dst.str());
  const std::vector<std::pair<std::string, std::string>> want_fdb = {
      {"nfo-vx100 02:00:00:0a:00:02", "2001:db8:ff::a:2"},
      {"nfo-vx300 02:00:00:0b:00:03", "2001:db8:ff::b:3"}};
  EXPECT_EQ(fdb, want_fdb);
  // No IPv4 neighbour for an IPv6 VTEP; the stand-in's IPv6 neighbour.
  for (const auto& n : sw.neighbours) EXPECT_NE(n.dev.rfind("nfo-vx", 0), 0u) << n.dev;
  std::vector<std::string> stand_ins;
  for (const auto& n : sw.neighbours6)
    stand_ins.push_back(n.dev + " " + n.ip.str() + " " + n.mac.str());
  EXPECT_EQ(stand_ins, (std::vector<std::string>{"nfo-vx100 fe80::a:2 02:00:00:0a:00:02",
                                                 "nfo-vx300 fe80::b:3 02:00:00:0b:00:03"}));
  for (const auto& remote : intent.remotes) {
    const auto routes = select(sw.routes, [&](const auto& r) {
      return r.owner == flowrules::remoteOwner(remote.address);
    });
    ASSERT_EQ(routes.size(), 1u);
    ASSERT_TRUE(routes[0].via);
    EXPECT_EQ(*routes[0].via, IpAddr(flowrules::vtepGateway6(*remote.vtep)));
    EXPECT_FALSE(routes[0].via->isV4()) << "an IPv6 gateway (RTA_VIA)";
    EXPECT_FALSE(routes[0].onlink) << "a link-local gateway needs no onlink";
    EXPECT_EQ(routes[0].dev, flowrules::vxlanDeviceName(remote.vni.value_or(100)));
  }

  // Rendered for testpmd with IPv6 outer headers.
  for (const auto& r : plan.rules) {
    if (r.cls != RuleClass::kVxlanEgress) continue;
    const auto lines = flowrules::renderTestpmd(r, flowrules::PortNumbering{});
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_NE(lines[0].find("set vxlan-tos-ttl ip-version ipv6 "), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find(" ip-src 2001:db8:ff::1 "), std::string::npos) << lines[0];
    const auto j = flowrules::toJson(r, sim);
    bool found = false;
    for (const auto& a : j["actions"])
      if (a["type"] == "vxlan_encap") {
        found = true;
        EXPECT_EQ(a["ipv6_dst"], r.encap->dst.str());
        EXPECT_EQ(a["ipv6_src"], "2001:db8:ff::1");
      }
    EXPECT_TRUE(found) << j.dump();
    break;
  }
}

// Two uplinks (issue 23): a remote whose next hop is on the second uplink
// leaves through it, from its MAC, in hardware where one eswitch spans both
// PFs (sim) and in the kernel where each PF has its own (ConnectX-6 Dx);
// its kernel route goes out of the second uplink's netdev. The second
// uplink gets entry rules only where its eswitch is the VFs'.
TEST(Planner, TwoUplinksEgressByTheNextHopsUplink) {
  Intent intent;
  intent.host = test::makeHost(UnderlayMode::kRouted);
  intent.host.uplink2 =
      model::SecondUplink{"0000:03:00.1", "uplink1", test::mac("0c:42:a1:00:00:02"), 9};
  intent.host.next_hops.push_back({test::ip("198.51.100.1"), test::mac("0c:42:a1:ff:ff:01"), 1});
  intent.ports = {test::makePort(0, {"10.0.0.1"})};
  intent.remotes = {test::routedRemote("10.20.0.1"),                   // first uplink
                    test::routedRemote("10.20.0.2", "198.51.100.1")};  // second uplink
  const auto egress = [](const DesiredState& st, const char* dst) {
    for (const auto& r : st.rules)
      if (r.cls == RuleClass::kRoutedEgress && ipv4Dst(r) == test::ip(dst)) return r;
    ADD_FAILURE() << "no egress rule for " << dst;
    return FlowRule{};
  };
  const auto port = [](const FlowRule& r) {
    for (const auto& a : r.actions)
      if (const auto* p = std::get_if<flowrules::RepresentedPortAction>(&a)) return p->port;
    return flowrules::PortRef::vfPort(999);
  };
  const auto entries = [](const DesiredState& st) {
    std::set<std::string> out;
    for (const auto& r : st.rules)
      for (const auto& item : r.pattern)
        if (const auto* p = std::get_if<flowrules::PortItem>(&item);
            p && p->port.kind == flowrules::PortRef::Kind::kUplink)
          out.insert(p->port.str());
    return out;
  };

  const HwProfile sim = test::loadProfile("sim");
  const DesiredState st = test::planOrThrow(intent, sim);
  const FlowRule first = egress(st, "10.20.0.1"), second = egress(st, "10.20.0.2");
  EXPECT_EQ(port(first), flowrules::PortRef::uplink(0));
  EXPECT_EQ(std::get<flowrules::SetMacSrcAction>(first.actions[0]).mac, intent.host.uplink_mac);
  EXPECT_EQ(second.placement, Placement::kHw);
  EXPECT_EQ(port(second), flowrules::PortRef::uplink(1));
  EXPECT_EQ(port(second).str(), "uplink1");
  EXPECT_EQ(std::get<flowrules::SetMacSrcAction>(second.actions[0]).mac,
            test::mac("0c:42:a1:00:00:02"));
  EXPECT_EQ(std::get<flowrules::SetMacDstAction>(second.actions[1]).mac,
            test::mac("0c:42:a1:ff:ff:01"));
  EXPECT_EQ(entries(st), (std::set<std::string>{"uplink", "uplink1"}));
  // The rule id does not depend on the uplink: a failover replaces it in place.
  Intent moved = intent;
  moved.host.next_hops.back().uplink = 0;
  const FlowRule back = egress(test::planOrThrow(moved, sim), "10.20.0.2");
  EXPECT_EQ(back.id, second.id);
  EXPECT_EQ(port(back), flowrules::PortRef::uplink(0));
  const auto routes = select(st.sw.routes, [&](const auto& r) {
    return r.owner == flowrules::remoteOwner(test::ip("10.20.0.2"));
  });
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(routes[0].dev, "uplink1");
  EXPECT_EQ(routes[0].via, std::optional<Ipv4Addr>(test::ip("198.51.100.1")));

  const HwProfile dx = test::loadProfile("connectx-6dx");
  const DesiredState st_dx = test::planOrThrow(intent, dx);
  EXPECT_EQ(egress(st_dx, "10.20.0.1").placement, Placement::kHw);
  const FlowRule other = egress(st_dx, "10.20.0.2");
  EXPECT_EQ(other.placement, Placement::kSw);
  EXPECT_EQ(other.reason.code, Code::kUplinkOtherEswitch);
  EXPECT_EQ(other.reason.detail, 1);
  EXPECT_EQ(std::string(flowrules::reasonCodeName(static_cast<std::size_t>(other.reason.code))),
            "uplink-other-eswitch");
  const auto why = flowrules::describeReason(other.reason, dx);
  EXPECT_NE(why.find("198.51.100.1"), std::string::npos) << why;
  EXPECT_NE(why.find("multiport"), std::string::npos) << why;
  EXPECT_NE(why.find("dedicated E-Switch"), std::string::npos) << why;
  EXPECT_EQ(entries(st_dx), (std::set<std::string>{"uplink"}));
}

TEST(Planner, SoftwarePathRouted) {
  const HwProfile sim = test::loadProfile("sim");
  const Intent intent = softwarePathIntent(UnderlayMode::kRouted);
  const auto sw = test::planOrThrow(intent, sim).sw;
  checkPortObjects(intent, sw);
  EXPECT_TRUE(sw.vxlan_devices.empty());
  EXPECT_TRUE(sw.fdb.empty());
  EXPECT_EQ(sw.neighbours.size(), 3u);
  const std::pair<const char*, const char*> remotes[] = {{"10.20.0.1", "192.0.2.254"},
                                                         {"10.20.0.2", "192.0.2.253"}};
  for (const auto& [address, via] : remotes) {
    const auto routes = select(sw.routes, [&](const auto& r) {
      return r.owner == flowrules::remoteOwner(test::ip(address));
    });
    ASSERT_EQ(routes.size(), 1u) << address;
    EXPECT_EQ(routes[0].dst.str(), std::string(address) + "/32");
    EXPECT_EQ(routes[0].via, std::optional<Ipv4Addr>(test::ip(via)));
    EXPECT_EQ(routes[0].dev, "uplink0");
    EXPECT_FALSE(routes[0].onlink);
    EXPECT_EQ(routes[0].protocol, 77);
    EXPECT_EQ(routes[0].table, 100u);
  }
  EXPECT_EQ(sw.routes.size(), 3u + 2u);
}

TEST(Planner, NoSoftwarePathBackendMeansNoKernelObjects) {
  const HwProfile sim = test::loadProfile("sim");
  Intent intent = test::exampleIntent(Example::kVxlan);
  intent.host.software_path = model::SoftwarePathKind::kNone;
  const DesiredState st = test::planOrThrow(intent, sim);
  EXPECT_EQ(st.sw.size(), 0u);
  EXPECT_EQ(st.rules.size(), 27u);
}

TEST(Planner, RouterMacForVtep) {
  EXPECT_EQ(flowrules::routerMacForVtep(test::ip("192.0.2.1")).str(), "02:00:c0:00:02:01");
  EXPECT_EQ(flowrules::routerMacForVtep(test::ip("10.255.0.7")).str(), "02:00:0a:ff:00:07");
  EXPECT_FALSE(flowrules::routerMacForVtep(test::ip("255.1.1.1")).isMulticast());
  // IPv6: the last 32 bits.
  EXPECT_EQ(flowrules::routerMacForVtep(*Ipv6Addr::parse("2001:db8:ff::c0a8:1")).str(),
            "02:00:c0:a8:00:01");
  EXPECT_EQ(flowrules::vtepGateway6(*Ipv6Addr::parse("2001:db8:ff::c0a8:1")).str(), "fe80::c0a8:1");
  EXPECT_EQ(flowrules::vtepGateway6(test::ip("192.0.2.2")).str(), "fe80::c000:202");
}

}  // namespace
}  // namespace nicoffload
