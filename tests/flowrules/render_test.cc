// Rendering: testpmd `flow create` lines (exact strings, one rule of each
// class), the JSON form of a rule, and the software-path description.
#include "nicoffload/flowrules/render.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/test_support.h"

namespace nicoffload {
namespace {

using flowrules::DesiredState;
using flowrules::FlowRule;
using flowrules::PortNumbering;
using flowrules::PortRef;
using flowrules::RuleClass;
using model::Intent;
using model::UnderlayMode;
using Lines = std::vector<std::string>;

// One port (vf0, 52:54:00:00:00:01, 10.0.0.1) and one remote (10.20.0.1); for
// vxlan the VTEPs are 192.0.2.1 (local) and 192.0.2.2, VNI 100.
Intent smallIntent(UnderlayMode mode) {
  Intent intent;
  intent.host = test::makeHost(mode);
  intent.ports = {test::makePort(0, {"10.0.0.1"})};
  intent.remotes = {mode == UnderlayMode::kVxlan ? test::vxlanRemote("10.20.0.1", "192.0.2.2")
                                                 : test::routedRemote("10.20.0.1")};
  return intent;
}

const FlowRule& theRule(const DesiredState& st, const std::function<bool(const FlowRule&)>& pred) {
  const auto n = std::count_if(st.rules.begin(), st.rules.end(), pred);
  if (n != 1) throw std::runtime_error("expected exactly one matching rule, got " + std::to_string(n));
  return *std::find_if(st.rules.begin(), st.rules.end(), pred);
}

std::function<bool(const FlowRule&)> classIs(RuleClass c) {
  return [c](const FlowRule& r) { return r.cls == c; };
}

std::function<bool(const FlowRule&)> antiSpoofing(std::uint32_t priority, std::uint16_t ether_type) {
  return [=](const FlowRule& r) {
    return r.cls == RuleClass::kAntiSpoofing && r.attr.priority == priority &&
           std::get<flowrules::EthItem>(r.pattern[1]).ether_type == ether_type;
  };
}

class RenderTestpmd : public ::testing::Test {
 protected:
  const model::HwProfile sim = test::loadProfile("sim");

  Lines render(UnderlayMode mode, const std::function<bool(const FlowRule&)>& pred) const {
    const Intent intent = smallIntent(mode);
    const DesiredState st = test::planOrThrow(intent, sim);
    return flowrules::renderTestpmd(theRule(st, pred), PortNumbering::fromHost(intent.host));
  }
};

TEST_F(RenderTestpmd, ArpTrap) {
  EXPECT_EQ(render(UnderlayMode::kVxlan, classIs(RuleClass::kArpTrap)),
            Lines{"flow create 0 transfer pattern represented_port ethdev_port_id is 1 / "
                  "eth src is 52:54:00:00:00:01 type is 0x0806 / end "
                  "actions port_representor port_id 1 / count / end"});
}

TEST_F(RenderTestpmd, AntiSpoofingAllow) {
  EXPECT_EQ(render(UnderlayMode::kVxlan, antiSpoofing(0, 0x0800)),
            Lines{"flow create 0 transfer pattern represented_port ethdev_port_id is 1 / "
                  "eth src is 52:54:00:00:00:01 type is 0x0800 / ipv4 src is 10.0.0.1 / end "
                  "actions jump group 1 / count / end"});
}

TEST_F(RenderTestpmd, AntiSpoofingDrops) {
  EXPECT_EQ(render(UnderlayMode::kVxlan, antiSpoofing(1, 0x0800)),
            Lines{"flow create 0 priority 1 transfer pattern represented_port ethdev_port_id is 1 / "
                  "eth type is 0x0800 / end actions drop / count / end"});
  EXPECT_EQ(render(UnderlayMode::kRouted, antiSpoofing(1, 0x0806)),
            Lines{"flow create 0 priority 1 transfer pattern represented_port ethdev_port_id is 1 / "
                  "eth type is 0x0806 / end actions drop / count / end"});
}

TEST_F(RenderTestpmd, LocalDelivery) {
  const auto to_vm = [](const FlowRule& r) {
    return r.cls == RuleClass::kLocalDelivery && r.attr.group == flowrules::kFibGroup;
  };
  const Lines want{"flow create 0 group 1 transfer pattern eth / ipv4 dst is 10.0.0.1 / end "
                   "actions set_mac_src mac_addr ee:ee:ee:ee:ee:ee / "
                   "set_mac_dst mac_addr 52:54:00:00:00:01 / dec_ttl / "
                   "represented_port ethdev_port_id 1 / count / end"};
  EXPECT_EQ(render(UnderlayMode::kVxlan, to_vm), want);
  EXPECT_EQ(render(UnderlayMode::kRouted, to_vm), want);  // the same in both underlays
}

TEST_F(RenderTestpmd, UplinkEntry) {
  const auto entry = [](const FlowRule& r) {
    return r.cls == RuleClass::kLocalDelivery && r.attr.group == flowrules::kRootGroup;
  };
  EXPECT_EQ(render(UnderlayMode::kRouted, entry),
            Lines{"flow create 0 priority 1 transfer pattern represented_port ethdev_port_id is 0 / "
                  "eth type is 0x0800 / end actions jump group 1 / count / end"});
}

TEST_F(RenderTestpmd, RoutedEgress) {
  EXPECT_EQ(render(UnderlayMode::kRouted, classIs(RuleClass::kRoutedEgress)),
            Lines{"flow create 0 group 1 transfer pattern eth / ipv4 dst is 10.20.0.1 / end "
                  "actions set_mac_src mac_addr 0c:42:a1:00:00:01 / "
                  "set_mac_dst mac_addr 0c:42:a1:ff:ff:fe / dec_ttl / "
                  "represented_port ethdev_port_id 0 / count / end"});
}

TEST_F(RenderTestpmd, VxlanIngress) {
  EXPECT_EQ(render(UnderlayMode::kVxlan, classIs(RuleClass::kVxlanIngress)),
            Lines{"flow create 0 transfer pattern represented_port ethdev_port_id is 0 / eth / "
                  "ipv4 dst is 192.0.2.1 / udp dst is 4789 / vxlan vni is 100 / end "
                  "actions vxlan_decap / jump group 1 / count / end"});
}

TEST_F(RenderTestpmd, VxlanEgressSetsTheEncapFirst) {
  // udp-src is fixed per remote address by the stable hash (49152..65535), so
  // it is the same on every build.
  EXPECT_EQ(render(UnderlayMode::kVxlan, classIs(RuleClass::kVxlanEgress)),
            (Lines{"set vxlan-tos-ttl ip-version ipv4 vni 100 udp-src 64186 udp-dst 4789 ip-tos 0 ip-ttl 64 "
                   "ip-src 192.0.2.1 ip-dst 192.0.2.2 "
                   "eth-src 0c:42:a1:00:00:01 eth-dst 0c:42:a1:ff:ff:fe",
                   "flow create 0 group 1 transfer pattern eth / ipv4 dst is 10.20.0.1 / end "
                   "actions set_mac_src mac_addr 02:00:c0:00:02:01 / "
                   "set_mac_dst mac_addr 02:00:c0:00:02:02 / dec_ttl / vxlan_encap / "
                   "represented_port ethdev_port_id 0 / count / end"}));
}

TEST_F(RenderTestpmd, OnlyEncapRulesGetASetVxlanLine) {
  for (auto mode : {UnderlayMode::kVxlan, UnderlayMode::kRouted}) {
    const DesiredState st = test::planOrThrow(smallIntent(mode), sim);
    for (const auto& r : st.rules) {
      const Lines lines = flowrules::renderTestpmd(r, PortNumbering{});
      ASSERT_EQ(lines.size(), r.cls == RuleClass::kVxlanEgress ? 2u : 1u);
      EXPECT_TRUE(lines.back().starts_with("flow create 0 ")) << lines.back();
      EXPECT_TRUE(lines.back().ends_with(" / end")) << lines.back();
    }
  }
}

TEST(PortNumbering, VfNIsFirstRepresentorPlusN) {
  const PortNumbering n{3, 10};
  EXPECT_EQ(n.of(PortRef::uplink()), 3);
  EXPECT_EQ(n.of(PortRef::vfPort(0)), 10);
  EXPECT_EQ(n.of(PortRef::vfPort(5)), 15);

  model::HostConfig host = test::makeHost(UnderlayMode::kRouted);
  host.uplink_port_id = 3;
  host.first_representor_port_id = 10;
  const PortNumbering from = PortNumbering::fromHost(host);
  EXPECT_EQ(from.uplink, 3);
  EXPECT_EQ(from.first_representor, 10);
}

TEST(PortNumbering, RenderingUsesTheNumbering) {
  Intent intent = smallIntent(UnderlayMode::kRouted);
  intent.ports = {test::makePort(2, {"10.0.0.3"})};  // on vf2
  intent.host.uplink_port_id = 3;
  intent.host.first_representor_port_id = 10;
  const DesiredState st = test::planOrThrow(intent, test::loadProfile("sim"));
  const auto numbering = PortNumbering::fromHost(intent.host);
  EXPECT_EQ(flowrules::renderTestpmd(theRule(st, antiSpoofing(0, 0x0800)), numbering),
            Lines{"flow create 3 transfer pattern represented_port ethdev_port_id is 12 / "
                  "eth src is 52:54:00:00:00:03 type is 0x0800 / ipv4 src is 10.0.0.3 / end "
                  "actions jump group 1 / count / end"});
  EXPECT_EQ(flowrules::renderTestpmd(theRule(st, classIs(RuleClass::kArpTrap)), numbering),
            Lines{"flow create 3 transfer pattern represented_port ethdev_port_id is 12 / "
                  "eth src is 52:54:00:00:00:03 type is 0x0806 / end "
                  "actions port_representor port_id 12 / count / end"});
  const Lines egress = flowrules::renderTestpmd(theRule(st, classIs(RuleClass::kRoutedEgress)), numbering);
  ASSERT_EQ(egress.size(), 1u);
  EXPECT_TRUE(egress[0].starts_with("flow create 3 group 1 ")) << egress[0];
  EXPECT_TRUE(egress[0].ends_with("represented_port ethdev_port_id 3 / count / end")) << egress[0];
}

TEST(RenderJson, RuleFields) {
  const model::HwProfile cx5 = test::loadProfile("connectx-5");
  Intent intent = smallIntent(UnderlayMode::kVxlan);
  intent.host.vxlan_udp_port = 8472;
  const DesiredState st = test::planOrThrow(intent, cx5);
  const FlowRule& egress = theRule(st, classIs(RuleClass::kVxlanEgress));
  const nlohmann::json j = flowrules::toJson(egress, cx5);
  EXPECT_EQ(j["id"], flowrules::formatRuleId(egress.cls, egress.id));
  EXPECT_EQ(j["class"], "vxlan-egress");
  EXPECT_EQ(j["placement"], "sw");
  EXPECT_NE(j["reason"].get<std::string>().find("8472"), std::string::npos) << j["reason"];
  EXPECT_EQ(j["group"], 1);
  EXPECT_EQ(j["priority"], 0);
  EXPECT_EQ(j["transfer"], true);
  ASSERT_EQ(j["pattern"].size(), 2u);
  EXPECT_EQ(j["pattern"][1], (nlohmann::json{{"type", "ipv4"}, {"spec", {{"dst", "10.20.0.1"}}}}));
  ASSERT_EQ(j["actions"].size(), 6u);
  const auto& encap = j["actions"][3];
  EXPECT_EQ(encap["type"], "vxlan_encap");
  EXPECT_EQ(encap["udp_dst"], 8472);
  EXPECT_EQ(encap["vni"], 100);
  EXPECT_EQ(encap["ipv4_dst"], "192.0.2.2");
  EXPECT_EQ(encap["eth_dst"], "0c:42:a1:ff:ff:fe");
  EXPECT_EQ(j["actions"][4], (nlohmann::json{{"type", "represented_port"}, {"port", "uplink"}}));

  const FlowRule& trap = theRule(st, classIs(RuleClass::kArpTrap));
  const nlohmann::json t = flowrules::toJson(trap, cx5);
  EXPECT_EQ(t["placement"], "hw");
  EXPECT_EQ(t["pattern"][0], (nlohmann::json{{"type", "represented_port"},
                                             {"spec", {{"port", "vf"}, {"vf", 0}}}}));
  EXPECT_EQ(t["actions"][0], (nlohmann::json{{"type", "port_representor"}, {"port", "vf"}, {"vf", 0}}));
}

TEST(RenderJson, DesiredStateCounts) {
  const model::HwProfile sim = test::loadProfile("sim");
  const Intent intent = test::exampleIntent(test::Example::kRouted);
  const DesiredState st = test::planOrThrow(intent, sim);
  const nlohmann::json j = flowrules::toJson(st, sim, PortNumbering::fromHost(intent.host));
  EXPECT_EQ(j["profile"], "sim");
  EXPECT_EQ(j["counts"]["rules"], st.rules.size());
  EXPECT_EQ(j["counts"]["sw"], 1);
  EXPECT_EQ(j["counts"]["sw_by_reason"], (nlohmann::json{{"next-hop-unresolved", 1}}));
  EXPECT_EQ(j["counts"]["software_path_objects"], st.sw.size());
  ASSERT_EQ(j["rules"].size(), st.rules.size());
  for (std::size_t i = 0; i < st.rules.size(); ++i)
    EXPECT_EQ(j["rules"][i]["testpmd"],
              nlohmann::json(flowrules::renderTestpmd(st.rules[i], PortNumbering::fromHost(intent.host))));
  EXPECT_EQ(j["vfs"].size(), 2u);
  EXPECT_EQ(j["vdpa_devices"].size(), 2u);
  EXPECT_EQ(j["vdpa_devices"][0]["kind"], "sim");
}

// writeJson streams the very document toJson builds (issue 11: one document
// of 100 k remotes took 1.3 GB).
TEST(RenderJson, StreamedPlanEqualsTheDocument) {
  for (auto e : {test::Example::kRouted, test::Example::kVxlan}) {
    SCOPED_TRACE(test::toString(e));
    const model::HwProfile sim = test::loadProfile("sim");
    const Intent intent = test::exampleIntent(e);
    const DesiredState st = test::planOrThrow(intent, sim);
    const auto ports = PortNumbering::fromHost(intent.host);
    std::ostringstream out;
    flowrules::writeJson(out, st, sim, ports);
    const auto streamed = nlohmann::json::parse(out.str());
    EXPECT_EQ(streamed, flowrules::toJson(st, sim, ports));
  }
  std::ostringstream empty;
  flowrules::writeJson(empty, DesiredState{}, test::loadProfile("sim"), PortNumbering{});
  EXPECT_EQ(nlohmann::json::parse(empty.str())["rules"], nlohmann::json::array());
  EXPECT_EQ(nlohmann::json::parse(empty.str())["software_path"]["routes"], nlohmann::json::array());
}

// For pasting into testpmd: a sw rule (here the routed example's remote
// whose next hop has no MAC: set_mac_dst 00:00:00:00:00:00) comes out
// commented, after its reason; hw rules as they are.
TEST(RenderTestpmdForPaste, SwRulesAreCommentedWithTheirReason) {
  const model::HwProfile sim = test::loadProfile("sim");
  const Intent intent = test::exampleIntent(test::Example::kRouted);
  const DesiredState st = test::planOrThrow(intent, sim);
  const auto ports = PortNumbering::fromHost(intent.host);
  std::size_t sw = 0;
  for (const auto& rule : st.rules) {
    const Lines lines = flowrules::renderTestpmdForPaste(rule, ports, sim);
    const Lines plain = flowrules::renderTestpmd(rule, ports);
    if (rule.placement == flowrules::Placement::kHw) {
      EXPECT_EQ(lines, plain);
      continue;
    }
    ++sw;
    ASSERT_EQ(lines.size(), plain.size() + 1);
    EXPECT_EQ(lines[0],
              "# sw, not for the hardware: " + flowrules::describeReason(rule.reason, sim));
    EXPECT_NE(lines[0].find("192.0.2.253"), std::string::npos) << lines[0];
    for (std::size_t i = 0; i < plain.size(); ++i) EXPECT_EQ(lines[i + 1], "# " + plain[i]);
    EXPECT_NE(lines.back().find("set_mac_dst mac_addr 00:00:00:00:00:00"), std::string::npos)
        << lines.back();
  }
  EXPECT_EQ(sw, 1u);
}

TEST(DescribeSoftwarePath, ReadableLines) {
  const Intent intent = smallIntent(UnderlayMode::kVxlan);
  const DesiredState st = test::planOrThrow(intent, test::loadProfile("sim"));
  const Lines lines = flowrules::describeSoftwarePath(st.sw);
  EXPECT_EQ(lines.size(), st.sw.size());
  for (const char* want : {
           "sysctl net/ipv4/ip_forward = 1",
           "sysctl net/ipv4/conf/pf0vf0/proxy_arp = 1",
           "sysctl net/ipv4/conf/pf0vf0/rp_filter = 1",
           "sysctl net/ipv4/neigh/pf0vf0/proxy_delay = 0",
           "link pf0vf0 address ee:ee:ee:ee:ee:ee up",
           "address 169.254.1.1/32 dev lo",
           "vxlan nfo-vx100 id 100 local 192.0.2.1 dstport 4789 nolearning address 02:00:c0:00:02:01 dev uplink0",
           "fdb 02:00:c0:00:02:02 dev nfo-vx100 dst 192.0.2.2",
           "neigh 10.0.0.1 lladdr 52:54:00:00:00:01 dev pf0vf0 permanent",
           "neigh 192.0.2.2 lladdr 02:00:c0:00:02:02 dev nfo-vx100 permanent",
           "route 10.0.0.1/32 dev pf0vf0 table 254 proto 240",
           "route 10.20.0.1/32 via 192.0.2.2 dev nfo-vx100 onlink table 254 proto 240",
       })
    EXPECT_NE(std::find(lines.begin(), lines.end(), want), lines.end()) << want;
}

}  // namespace
}  // namespace nicoffload
