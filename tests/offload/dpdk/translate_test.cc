// IR -> rte_flow translation at the struct level: every item's spec and
// mask, every action's conf, in network byte order, for every rule class the
// planner emits; the error mapping (errno, cause -> item/action); the EAL
// arguments from the host config. No EAL needed.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <rte_byteorder.h>

#include <cerrno>
#include <cstring>

#include "nicoffload/dpdk/eal.h"
#include "nicoffload/dpdk/rte_flow_translate.h"
#include "nicoffload/flowrules/flow_backend.h"
#include "nicoffload/flowrules/planner.h"
#include "support/test_support.h"

namespace nicoffload::dpdk {
namespace {

using namespace flowrules;  // NOLINT: the rule IR, in a test
using test::ip;
using test::mac;

// PF = port 0, VF n = port 10 + n (not 1 + n: an off-by-one would show).
SwitchPorts testPorts(std::uint16_t vfs = 8) {
  SwitchPorts p;
  p.proxy = 0;
  p.uplink = 0;
  for (std::uint16_t n = 0; n < vfs; ++n) p.vf.push_back(static_cast<std::uint16_t>(10 + n));
  return p;
}

bool macIs(const rte_ether_addr& a, const MacAddr& m) {
  return std::memcmp(a.addr_bytes, m.bytes.data(), 6) == 0;
}
bool allFf(const rte_ether_addr& a) {
  for (auto b : a.addr_bytes)
    if (b != 0xff) return false;
  return true;
}
bool allZero(const void* p, std::size_t n) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  for (std::size_t i = 0; i < n; ++i)
    if (b[i]) return false;
  return true;
}

// Checks one translated item against the IR item it came from.
void expectItem(const rte_flow_item& got, const FlowItem& want, const SwitchPorts& ports) {
  EXPECT_EQ(got.last, nullptr);
  if (const auto* p = std::get_if<PortItem>(&want)) {
    ASSERT_EQ(got.type, RTE_FLOW_ITEM_TYPE_REPRESENTED_PORT);
    EXPECT_EQ(static_cast<const rte_flow_item_ethdev*>(got.spec)->port_id, *ports.portOf(p->port));
    EXPECT_EQ(static_cast<const rte_flow_item_ethdev*>(got.mask)->port_id, 0xffff);
  } else if (const auto* e = std::get_if<EthItem>(&want)) {
    ASSERT_EQ(got.type, RTE_FLOW_ITEM_TYPE_ETH);
    if (e->fields == 0) {
      EXPECT_EQ(got.spec, nullptr);
      EXPECT_EQ(got.mask, nullptr);
      return;
    }
    const auto* spec = static_cast<const rte_flow_item_eth*>(got.spec);
    const auto* mask = static_cast<const rte_flow_item_eth*>(got.mask);
    EXPECT_EQ(allFf(mask->hdr.src_addr), (e->fields & EthItem::kSrc) != 0);
    EXPECT_EQ(allFf(mask->hdr.dst_addr), (e->fields & EthItem::kDst) != 0);
    if (e->fields & EthItem::kSrc) {
      EXPECT_TRUE(macIs(spec->hdr.src_addr, e->src));
    }
    if (e->fields & EthItem::kType) {
      EXPECT_EQ(rte_be_to_cpu_16(spec->hdr.ether_type), e->ether_type);
      EXPECT_EQ(mask->hdr.ether_type, 0xffff);
    } else {
      EXPECT_EQ(mask->hdr.ether_type, 0);
    }
    EXPECT_EQ(spec->has_vlan, 0u);
    EXPECT_EQ(mask->has_vlan, 0u);
  } else if (const auto* i = std::get_if<Ipv4Item>(&want)) {
    ASSERT_EQ(got.type, RTE_FLOW_ITEM_TYPE_IPV4);
    const auto* spec = static_cast<const rte_flow_item_ipv4*>(got.spec);
    const auto* mask = static_cast<const rte_flow_item_ipv4*>(got.mask);
    EXPECT_EQ(mask->hdr.src_addr, (i->fields & Ipv4Item::kSrc) ? 0xffffffffu : 0u);
    EXPECT_EQ(mask->hdr.dst_addr, (i->fields & Ipv4Item::kDst) ? 0xffffffffu : 0u);
    if (i->fields & Ipv4Item::kSrc) {
      EXPECT_EQ(rte_be_to_cpu_32(spec->hdr.src_addr), i->src.value);
    }
    if (i->fields & Ipv4Item::kDst) {
      EXPECT_EQ(rte_be_to_cpu_32(spec->hdr.dst_addr), i->dst.value);
    }
    EXPECT_EQ(mask->hdr.time_to_live, 0) << "only the addresses are matched";
  } else if (const auto* i6 = std::get_if<Ipv6Item>(&want)) {
    ASSERT_EQ(got.type, RTE_FLOW_ITEM_TYPE_IPV6);
    const auto* spec = static_cast<const rte_flow_item_ipv6*>(got.spec);
    const auto* mask = static_cast<const rte_flow_item_ipv6*>(got.mask);
    const bool src = i6->field == Ipv6Item::Field::kSrc;
    const std::uint8_t* value = src ? spec->hdr.src_addr : spec->hdr.dst_addr;
    const std::uint8_t* bits = src ? mask->hdr.src_addr : mask->hdr.dst_addr;
    const std::uint8_t* other = src ? mask->hdr.dst_addr : mask->hdr.src_addr;
    EXPECT_TRUE(allZero(other, 16)) << "one address per rule";
    int ones = 0;
    for (std::size_t k = 0; k < 16; ++k) {
      ones += __builtin_popcount(bits[k]);
      EXPECT_EQ(value[k], i6->addr.bytes[k] & bits[k]);
    }
    EXPECT_EQ(ones, i6->len);
    EXPECT_EQ(mask->hdr.hop_limits, 0) << "only the address is matched";
  } else if (const auto* u = std::get_if<UdpItem>(&want)) {
    ASSERT_EQ(got.type, RTE_FLOW_ITEM_TYPE_UDP);
    const auto* spec = static_cast<const rte_flow_item_udp*>(got.spec);
    const auto* mask = static_cast<const rte_flow_item_udp*>(got.mask);
    EXPECT_EQ(rte_be_to_cpu_16(spec->hdr.dst_port), u->dst_port);
    EXPECT_EQ(mask->hdr.dst_port, 0xffff);
    EXPECT_EQ(mask->hdr.src_port, 0);
  } else if (const auto* v = std::get_if<VxlanItem>(&want)) {
    ASSERT_EQ(got.type, RTE_FLOW_ITEM_TYPE_VXLAN);
    const auto* spec = static_cast<const rte_flow_item_vxlan*>(got.spec);
    const auto* mask = static_cast<const rte_flow_item_vxlan*>(got.mask);
    // VNI on the wire: three bytes, most significant first.
    const auto* vni = reinterpret_cast<const std::uint8_t*>(&spec->hdr.vx_vni);
    EXPECT_EQ((std::uint32_t{vni[0]} << 16) | (std::uint32_t{vni[1]} << 8) | vni[2], v->vni);
    EXPECT_EQ(vni[3], 0);
    EXPECT_EQ(rte_be_to_cpu_32(mask->hdr.vx_vni), 0xffffff00u);
  }
}

void expectAction(const rte_flow_action& got, const FlowAction& want, const FlowRule& rule,
                  const SwitchPorts& ports) {
  if (const auto* m = std::get_if<SetMacSrcAction>(&want)) {
    ASSERT_EQ(got.type, RTE_FLOW_ACTION_TYPE_SET_MAC_SRC);
    EXPECT_EQ(std::memcmp(static_cast<const rte_flow_action_set_mac*>(got.conf)->mac_addr,
                          m->mac.bytes.data(), 6),
              0);
  } else if (const auto* m = std::get_if<SetMacDstAction>(&want)) {
    ASSERT_EQ(got.type, RTE_FLOW_ACTION_TYPE_SET_MAC_DST);
    EXPECT_EQ(std::memcmp(static_cast<const rte_flow_action_set_mac*>(got.conf)->mac_addr,
                          m->mac.bytes.data(), 6),
              0);
  } else if (std::holds_alternative<DecTtlAction>(want)) {
    EXPECT_EQ(got.type, RTE_FLOW_ACTION_TYPE_DEC_TTL);
    EXPECT_EQ(got.conf, nullptr);
  } else if (const auto* p = std::get_if<RepresentedPortAction>(&want)) {
    ASSERT_EQ(got.type, RTE_FLOW_ACTION_TYPE_REPRESENTED_PORT);
    EXPECT_EQ(static_cast<const rte_flow_action_ethdev*>(got.conf)->port_id,
              *ports.portOf(p->port));
  } else if (const auto* p = std::get_if<PortRepresentorAction>(&want)) {
    ASSERT_EQ(got.type, RTE_FLOW_ACTION_TYPE_PORT_REPRESENTOR);
    EXPECT_EQ(static_cast<const rte_flow_action_ethdev*>(got.conf)->port_id,
              *ports.portOf(p->port));
  } else if (std::holds_alternative<VxlanEncapAction>(want)) {
    ASSERT_EQ(got.type, RTE_FLOW_ACTION_TYPE_VXLAN_ENCAP);
    const auto& e = *rule.encap;
    const rte_flow_item* def =
        static_cast<const rte_flow_action_vxlan_encap*>(got.conf)->definition;
    ASSERT_NE(def, nullptr);
    ASSERT_EQ(def[0].type, RTE_FLOW_ITEM_TYPE_ETH);
    const auto* eth = static_cast<const rte_flow_item_eth*>(def[0].spec);
    EXPECT_TRUE(macIs(eth->hdr.src_addr, e.eth_src));
    EXPECT_TRUE(macIs(eth->hdr.dst_addr, e.eth_dst));
    if (!e.ipv6()) {
      EXPECT_EQ(rte_be_to_cpu_16(eth->hdr.ether_type), 0x0800);
      ASSERT_EQ(def[1].type, RTE_FLOW_ITEM_TYPE_IPV4);
      const auto* ip4 = static_cast<const rte_flow_item_ipv4*>(def[1].spec);
      EXPECT_EQ(ip4->hdr.version_ihl, 0x45);
      EXPECT_EQ(ip4->hdr.time_to_live, kVxlanEncapTtl);
      EXPECT_EQ(ip4->hdr.next_proto_id, IPPROTO_UDP);
      EXPECT_EQ(rte_be_to_cpu_32(ip4->hdr.src_addr), e.src.v4().value);
      EXPECT_EQ(rte_be_to_cpu_32(ip4->hdr.dst_addr), e.dst.v4().value);
    } else {
      EXPECT_EQ(rte_be_to_cpu_16(eth->hdr.ether_type), 0x86DD);
      ASSERT_EQ(def[1].type, RTE_FLOW_ITEM_TYPE_IPV6);
      const auto* ip6 = static_cast<const rte_flow_item_ipv6*>(def[1].spec);
      const auto* mask6 = static_cast<const rte_flow_item_ipv6*>(def[1].mask);
      EXPECT_EQ(rte_be_to_cpu_32(ip6->hdr.vtc_flow) >> 28, 6u) << "version 6";
      EXPECT_EQ(ip6->hdr.hop_limits, kVxlanEncapTtl);
      EXPECT_EQ(ip6->hdr.proto, IPPROTO_UDP);
      EXPECT_EQ(std::memcmp(ip6->hdr.src_addr, e.src.v6().bytes.data(), 16), 0);
      EXPECT_EQ(std::memcmp(ip6->hdr.dst_addr, e.dst.v6().bytes.data(), 16), 0);
      EXPECT_EQ(mask6->hdr.dst_addr[15], 0xff);
      EXPECT_EQ(mask6->hdr.proto, 0xff);
    }
    ASSERT_EQ(def[2].type, RTE_FLOW_ITEM_TYPE_UDP);
    const auto* udp = static_cast<const rte_flow_item_udp*>(def[2].spec);
    EXPECT_EQ(rte_be_to_cpu_16(udp->hdr.src_port), e.udp_src);
    EXPECT_EQ(rte_be_to_cpu_16(udp->hdr.dst_port), e.udp_dst);
    ASSERT_EQ(def[3].type, RTE_FLOW_ITEM_TYPE_VXLAN);
    const auto* vx = static_cast<const rte_flow_item_vxlan*>(def[3].spec);
    EXPECT_EQ(rte_be_to_cpu_32(vx->hdr.vx_vni) >> 8, e.vni);
    EXPECT_EQ(rte_be_to_cpu_32(vx->hdr.vx_flags), 0x08000000u) << "I flag (RFC 7348)";
    EXPECT_EQ(def[4].type, RTE_FLOW_ITEM_TYPE_END);
    for (int i = 0; i < 4; ++i) EXPECT_NE(def[i].mask, nullptr);
  } else if (std::holds_alternative<VxlanDecapAction>(want)) {
    EXPECT_EQ(got.type, RTE_FLOW_ACTION_TYPE_VXLAN_DECAP);
  } else if (const auto* j = std::get_if<JumpAction>(&want)) {
    ASSERT_EQ(got.type, RTE_FLOW_ACTION_TYPE_JUMP);
    EXPECT_EQ(static_cast<const rte_flow_action_jump*>(got.conf)->group, j->group);
  } else if (std::holds_alternative<CountAction>(want)) {
    ASSERT_EQ(got.type, RTE_FLOW_ACTION_TYPE_COUNT);
    ASSERT_NE(got.conf, nullptr);
    EXPECT_EQ(static_cast<const rte_flow_action_count*>(got.conf)->id, 0u);
  } else if (std::holds_alternative<DropAction>(want)) {
    EXPECT_EQ(got.type, RTE_FLOW_ACTION_TYPE_DROP);
  }
}

void expectTranslation(const FlowRule& r, const RteFlowRule& t, const SwitchPorts& ports) {
  SCOPED_TRACE(formatRuleId(r.cls, r.id));
  EXPECT_EQ(t.attr().group, r.attr.group);
  EXPECT_EQ(t.attr().priority, r.attr.priority);
  EXPECT_EQ(t.attr().transfer, 1u);
  EXPECT_EQ(t.attr().ingress, 0u);
  EXPECT_EQ(t.attr().egress, 0u);
  ASSERT_EQ(t.patternSize(), r.pattern.size());
  ASSERT_EQ(t.actionsSize(), r.actions.size());
  EXPECT_EQ(t.pattern()[t.patternSize()].type, RTE_FLOW_ITEM_TYPE_END);
  EXPECT_EQ(t.actions()[t.actionsSize()].type, RTE_FLOW_ACTION_TYPE_END);
  for (std::size_t i = 0; i < r.pattern.size(); ++i)
    expectItem(t.pattern()[i], r.pattern[i], ports);
  for (std::size_t i = 0; i < r.actions.size(); ++i)
    expectAction(t.actions()[i], r.actions[i], r, ports);
}

TEST(Translate, EveryRuleClassOfBothExamples) {
  const auto ports = testPorts();
  std::set<RuleClass> seen;
  for (auto e : {test::Example::kVxlan, test::Example::kRouted}) {
    const auto plan = test::planOrThrow(test::exampleIntent(e), test::loadProfile("sim"));
    for (const auto& r : plan.rules) {
      auto t = translate(r, ports);
      ASSERT_TRUE(t.ok()) << t.error().describe();
      expectTranslation(r, *t, ports);
      seen.insert(r.cls);
    }
  }
  EXPECT_EQ(seen.size(), 6u)
      << "local delivery, routed and VXLAN egress, VXLAN ingress, ARP, anti-spoofing";
}

TEST(Translate, Ipv6RulesOfAPortAndTheUplink) {
  auto intent = test::exampleIntent(test::Example::kRouted);
  intent.host.gateway_ipv6 = *Ipv6Addr::parse("fe80::1");
  intent.ports[0].addresses6.push_back(*Ipv6Addr::parse("2001:db8:1::10"));
  const auto plan = test::planOrThrow(intent, test::loadProfile("sim"));
  const auto ports = testPorts();
  std::set<RuleClass> v6_classes;
  std::size_t v6_items = 0;
  for (const auto& r : plan.rules) {
    auto t = translate(r, ports);
    ASSERT_TRUE(t.ok()) << t.error().describe();
    expectTranslation(r, *t, ports);
    for (const auto& item : r.pattern)
      if (std::holds_alternative<Ipv6Item>(item)) {
        ++v6_items;
        v6_classes.insert(r.cls);
      }
  }
  // Two ND traps (ff02::/16, fe80::/10), an allow and a delivery rule.
  EXPECT_EQ(v6_items, 4u);
  EXPECT_EQ(v6_classes, (std::set<RuleClass>{RuleClass::kNdTrap, RuleClass::kAntiSpoofing,
                                             RuleClass::kLocalDelivery}));
}

// VXLAN over an IPv6 underlay (issue 23): the encapsulation's definition is
// ETH / IPV6 / UDP / VXLAN / END, and the decap rule matches the outer IPv6
// destination.
TEST(Translate, VxlanOverAnIpv6Underlay) {
  auto intent = test::exampleIntent(test::Example::kVxlan);
  intent.host.vtep = *Ipv6Addr::parse("2001:db8:ff::1");
  intent.host.next_hops = {
      {*Ipv6Addr::parse("2001:db8:ff::fe"), test::mac("0c:42:a1:ff:ff:fd"), 0}};
  intent.host.default_next_hop = *Ipv6Addr::parse("2001:db8:ff::fe");
  for (auto& r : intent.remotes)
    r.vtep = r.vtep->v4() == test::ip("192.0.2.2") ? *Ipv6Addr::parse("2001:db8:ff::2")
                                                   : *Ipv6Addr::parse("2001:db8:ff::3");
  const auto plan = test::planOrThrow(intent, test::loadProfile("sim"));
  const auto ports = testPorts();
  std::size_t encaps = 0, decaps = 0;
  for (const auto& r : plan.rules) {
    auto t = translate(r, ports);
    ASSERT_TRUE(t.ok()) << t.error().describe();
    expectTranslation(r, *t, ports);
    if (r.encap) {
      ++encaps;
      EXPECT_TRUE(r.encap->ipv6());
    }
    if (r.cls == RuleClass::kVxlanIngress) {
      ++decaps;
      EXPECT_EQ(t->pattern()[2].type, RTE_FLOW_ITEM_TYPE_IPV6);
    }
  }
  EXPECT_EQ(encaps, intent.remotes.size());
  EXPECT_GT(decaps, 0u);
}

TEST(Translate, ByteOrderOfAKnownRule) {
  // VXLAN ingress on VNI 0x123456 to VTEP 192.0.2.1:4789, from the uplink.
  FlowRule r;
  r.id = 1;
  r.cls = RuleClass::kVxlanIngress;
  r.pattern.push_back(PortItem{PortRef::uplink()});
  r.pattern.push_back(EthItem{});
  Ipv4Item i;
  i.fields = Ipv4Item::kDst;
  i.dst = ip("192.0.2.1");
  r.pattern.push_back(i);
  UdpItem u;
  u.fields = UdpItem::kDst;
  u.dst_port = 4789;
  r.pattern.push_back(u);
  r.pattern.push_back(VxlanItem{0x123456});
  r.actions.push_back(VxlanDecapAction{});
  r.actions.push_back(JumpAction{1});
  auto t = translate(r, testPorts());
  ASSERT_TRUE(t.ok());
  const auto* ip4 =
      static_cast<const std::uint8_t*>(t->pattern()[2].spec) + offsetof(rte_ipv4_hdr, dst_addr);
  EXPECT_EQ(ip4[0], 192);
  EXPECT_EQ(ip4[3], 1);
  const auto* port = reinterpret_cast<const std::uint8_t*>(
      &static_cast<const rte_flow_item_udp*>(t->pattern()[3].spec)->hdr.dst_port);
  EXPECT_EQ(port[0], 0x12);  // 4789 = 0x12b5
  EXPECT_EQ(port[1], 0xb5);
  const auto* vni = reinterpret_cast<const std::uint8_t*>(
      &static_cast<const rte_flow_item_vxlan*>(t->pattern()[4].spec)->hdr.vx_vni);
  EXPECT_EQ(vni[0], 0x12);
  EXPECT_EQ(vni[1], 0x34);
  EXPECT_EQ(vni[2], 0x56);
  EXPECT_TRUE(
      allZero(&static_cast<const rte_flow_item_vxlan*>(t->pattern()[4].mask)->hdr.vx_flags, 4))
      << "flags are not matched";
}

TEST(Translate, StorageSurvivesAMove) {
  const auto plan =
      test::planOrThrow(test::exampleIntent(test::Example::kVxlan), test::loadProfile("sim"));
  const FlowRule* egress = nullptr;
  for (const auto& r : plan.rules)
    if (r.cls == RuleClass::kVxlanEgress) egress = &r;
  ASSERT_NE(egress, nullptr);
  auto t = translate(*egress, testPorts());
  ASSERT_TRUE(t.ok());
  const rte_flow_item* pattern = t->pattern();
  RteFlowRule moved = std::move(t).value();
  std::vector<RteFlowRule> many;
  for (int i = 0; i < 50; ++i)
    many.push_back(test::unwrap(translate(*egress, testPorts()), "translate"));
  EXPECT_EQ(moved.pattern(), pattern) << "the arrays do not move with the object";
  expectTranslation(*egress, moved, testPorts());
  for (const auto& m : many) expectTranslation(*egress, m, testPorts());
  ASSERT_NE(moved.countAction(), nullptr);
  EXPECT_EQ(moved.countAction()->type, RTE_FLOW_ACTION_TYPE_COUNT);
}

TEST(Translate, AVfWithoutARepresentorPortIsRefusedNamingTheItemOrAction) {
  const auto plan =
      test::planOrThrow(test::exampleIntent(test::Example::kVxlan), test::loadProfile("sim"));
  const auto ports = testPorts(2);  // representors of vf0 and vf1 only
  std::size_t refused = 0;
  for (const auto& r : plan.rules) {
    auto t = translate(r, ports);
    if (t.ok()) continue;
    ++refused;
    EXPECT_EQ(t.error().code, ErrorCode::kInvalidValue);
    EXPECT_TRUE(t.error().value == "represented_port" || t.error().value == "port_representor")
        << t.error().describe();
    EXPECT_NE(t.error().message.find("has no representor port"), std::string::npos);
    EXPECT_TRUE(t.error().field.find(".pattern[0]") != std::string::npos ||
                t.error().field.find(".actions[") != std::string::npos);
  }
  EXPECT_GT(refused, 0u);
}

TEST(Translate, EncapWithoutItsDefinitionIsRefused) {
  FlowRule r;
  r.cls = RuleClass::kVxlanEgress;
  r.pattern.push_back(EthItem{});
  r.actions.push_back(VxlanEncapAction{});
  r.actions.push_back(RepresentedPortAction{PortRef::uplink()});
  auto t = translate(r, testPorts());
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(t.error().field.ends_with(".actions[0]"));
  EXPECT_EQ(t.error().value, "vxlan_encap");
}

TEST(Translate, ErrnoToErrorCode) {
  EXPECT_EQ(errorCodeFromErrno(EINVAL), ErrorCode::kInvalidValue);
  EXPECT_EQ(errorCodeFromErrno(ENOTSUP), ErrorCode::kUnsupported);
  EXPECT_EQ(errorCodeFromErrno(ENOSYS), ErrorCode::kUnsupported);
  EXPECT_EQ(errorCodeFromErrno(ENOSPC), ErrorCode::kTableFull);
  EXPECT_EQ(errorCodeFromErrno(ENOMEM), ErrorCode::kTableFull);
  EXPECT_EQ(errorCodeFromErrno(EBUSY), ErrorCode::kBusy);
  EXPECT_EQ(errorCodeFromErrno(EAGAIN), ErrorCode::kBusy);
  EXPECT_EQ(errorCodeFromErrno(ENOENT), ErrorCode::kNotFound);
  EXPECT_EQ(errorCodeFromErrno(EEXIST), ErrorCode::kConflict);
  EXPECT_EQ(errorCodeFromErrno(EIO), ErrorCode::kInternal);
}

TEST(Translate, RteFlowErrorCauseNamesTheItemOrAction) {
  const auto plan =
      test::planOrThrow(test::exampleIntent(test::Example::kVxlan), test::loadProfile("sim"));
  const FlowRule* egress = nullptr;
  for (const auto& r : plan.rules)
    if (r.cls == RuleClass::kVxlanEgress) egress = &r;
  ASSERT_NE(egress, nullptr);
  auto t = test::unwrap(translate(*egress, testPorts()), "translate");
  const std::string id = formatRuleId(egress->cls, egress->id);

  rte_flow_error e{};
  e.type = RTE_FLOW_ERROR_TYPE_ITEM_SPEC;
  e.cause = t.pattern()[1].spec;  // the IPv4 spec
  e.message = "unsupported ipv4 field";
  Error err = flowError(-ENOTSUP, e, *egress, &t, "rte_flow_validate", 3);
  EXPECT_EQ(err.code, ErrorCode::kUnsupported);
  EXPECT_EQ(err.field, id + ".pattern[1]");
  EXPECT_EQ(err.value, "ipv4");
  EXPECT_EQ(err.message, "unsupported ipv4 field (rte_flow_validate on port 3: ENOTSUP)");

  // A cause inside the VXLAN_ENCAP definition names the encap action.
  const auto* conf = static_cast<const rte_flow_action_vxlan_encap*>(t.actions()[3].conf);
  e.type = RTE_FLOW_ERROR_TYPE_ACTION_CONF;
  e.cause = conf->definition[1].spec;
  e.message = "bad outer ipv4";
  err = flowError(-EINVAL, e, *egress, &t, "rte_flow_create", 0);
  EXPECT_EQ(err.code, ErrorCode::kInvalidValue);
  EXPECT_EQ(err.field, id + ".actions[3]");
  EXPECT_EQ(err.value, "vxlan_encap");

  // The transfer attribute, as net_tap answers it.
  e = {};
  e.type = RTE_FLOW_ERROR_TYPE_ATTR_TRANSFER;
  e.message = "transfer is not supported";
  err = flowError(-ENOTSUP, e, *egress, &t, "rte_flow_validate", 4);
  EXPECT_EQ(err.field, id + ".attr");
  EXPECT_EQ(err.value, "transfer");

  // No message and no cause, as a PMD without flow ops answers.
  e = {};
  e.type = RTE_FLOW_ERROR_TYPE_UNSPECIFIED;
  err = flowError(-ENOSYS, e, *egress, &t, "rte_flow_validate", 0);
  EXPECT_EQ(err.code, ErrorCode::kUnsupported);
  EXPECT_EQ(err.field, id);
  EXPECT_EQ(err.message, "Function not implemented (rte_flow_validate on port 0: ENOSYS)");
}

TEST(Translate, LocateMapsEveryPointerOfTheArrays) {
  const auto plan =
      test::planOrThrow(test::exampleIntent(test::Example::kVxlan), test::loadProfile("sim"));
  for (const auto& r : plan.rules) {
    auto t = test::unwrap(translate(r, testPorts()), "translate");
    for (std::size_t i = 0; i < t.patternSize(); ++i) {
      auto c = t.locate(&t.pattern()[i]);
      EXPECT_EQ(c.kind, RteFlowRule::Cause::Kind::kItem);
      EXPECT_EQ(c.index, i);
      if (t.pattern()[i].mask) {
        EXPECT_EQ(t.locate(t.pattern()[i].mask).index, i);
      }
    }
    for (std::size_t i = 0; i < t.actionsSize(); ++i) {
      auto c = t.locate(&t.actions()[i]);
      EXPECT_EQ(c.kind, RteFlowRule::Cause::Kind::kAction);
      EXPECT_EQ(c.index, i);
    }
    EXPECT_EQ(t.locate(nullptr).kind, RteFlowRule::Cause::Kind::kUnknown);
    EXPECT_EQ(t.locate(&r).kind, RteFlowRule::Cause::Kind::kUnknown);
  }
}

TEST(EalArguments, FromTheHostConfig) {
  model::HostConfig host;
  EXPECT_EQ(ealArguments(host), std::vector<std::string>{"nicoffloadd"});
  host.dpdk_eal_args = {"-l", "0", "--file-prefix", "nicoffload"};
  host.dpdk_pf_devargs = "0000:03:00.0,representor=vf[0-15],dv_flow_en=1";
  EXPECT_EQ(ealArguments(host, "x"),
            (std::vector<std::string>{"x", "-l", "0", "--file-prefix", "nicoffload", "-a",
                                      "0000:03:00.0,representor=vf[0-15],dv_flow_en=1"}));
}

}  // namespace
}  // namespace nicoffload::dpdk
