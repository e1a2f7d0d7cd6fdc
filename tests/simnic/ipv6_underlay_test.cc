// VXLAN over an IPv6 underlay (issue 23): the two-hypervisor example with
// IPv6 VTEPs (hv1 2001:db8:ff::1, hv2 2001:db8:ff::2, a third 2001:db8:ff::3)
// and an IPv6 underlay router. Packets built by the test go through the
// planned rules of both simulated NICs: out of hv1 encapsulated in
// Ethernet/IPv6/UDP/VXLAN, into hv2 decapsulated and delivered; and on a
// profile that does not claim IPv6 outer headers, to the kernel.
#include <gtest/gtest.h>

#include "nicoffload/flowrules/planner.h"
#include "nicoffload/simnic/sim_eswitch.h"
#include "support/sim_support.h"

namespace nicoffload::simnic {
namespace {

using flowrules::Placement;
using flowrules::PlacementReason;
using flowrules::PortRef;
using flowrules::RuleClass;
using test::ip;
using test::mac;
using test::SimHost;
using Kind = Delivery::Kind;

Ipv6Addr ip6(std::string_view text) { return *Ipv6Addr::parse(text); }

const MacAddr kRouterMac = mac("0c:42:a1:ff:ff:fd");

// The VTEPs of the IPv4 example, moved to the IPv6 underlay.
IpAddr vtep6(const IpAddr& v4) {
  if (v4 == IpAddr(ip("192.0.2.1"))) return ip6("2001:db8:ff::1");
  if (v4 == IpAddr(ip("192.0.2.2"))) return ip6("2001:db8:ff::2");
  if (v4 == IpAddr(ip("192.0.2.3"))) return ip6("2001:db8:ff::3");
  throw std::invalid_argument("no IPv6 VTEP for " + v4.str());
}

// `intent` over the IPv6 underlay: its VTEP and its remotes' moved, the
// underlay router 2001:db8:ff::fe the default next hop, IPv6 on (fe80::1),
// and every port with an IPv6 /128 as well.
model::Intent overIpv6(model::Intent intent) {
  auto& host = intent.host;
  host.vtep = vtep6(*host.vtep);
  host.next_hops = {{ip6("2001:db8:ff::fe"), kRouterMac, 0}};
  host.default_next_hop = ip6("2001:db8:ff::fe");
  host.gateway_ipv6 = ip6("fe80::1");
  for (auto& r : intent.remotes) r.vtep = vtep6(*r.vtep);
  return intent;
}

class Ipv6Underlay : public testing::Test {
 protected:
  void SetUp() override {
    auto i1 = overIpv6(test::hv1Intent());
    auto i2 = overIpv6(test::hv2Intent());
    // One IPv6 VM each way: hv1's 10.10.1.1 port also has 2001:db8:10::1,
    // hv2's 10.20.1.1 port 2001:db8:20::1; each is the other's remote.
    i1.ports[0].addresses6 = {ip6("2001:db8:10::1")};
    i2.ports[0].addresses6 = {ip6("2001:db8:20::1")};
    model::RemoteEndpoint to2, to1;
    to2.address = ip6("2001:db8:20::1");
    to2.vtep = ip6("2001:db8:ff::2");
    to2.vni = 100;
    to1.address = ip6("2001:db8:10::1");
    to1.vtep = ip6("2001:db8:ff::1");
    to1.vni = 100;
    i1.remotes.push_back(to2);
    i2.remotes.push_back(to1);
    ASSERT_TRUE(model::validateIntent(i1)) << model::validateIntent(i1).error().describe();
    ASSERT_TRUE(model::validateIntent(i2)) << model::validateIntent(i2).error().describe();
    hv1 = SimHost::start(i1, test::loadProfile("sim"));
    hv2 = SimHost::start(i2, test::loadProfile("sim"));
    ASSERT_EQ(hv1->report.refused + hv2->report.refused, 0u);
  }

  Delivery vmSends(SimHost& h, const char* src, const char* dst) {
    const auto& port = h.portWith(ip(src));
    return h.send(test::fromVm(port, ip(src), ip(dst), h.intent.host), PortRef::vfPort(*port.vf));
  }

  // The underlay: what leaves one host's uplink enters the host whose VTEP
  // is the outer IPv6 destination.
  Delivery wire(const Delivery& out) {
    EXPECT_EQ(out.kind, Kind::kPort);
    EXPECT_EQ(out.port, PortRef::uplink());
    const auto* outer = out.packet.at<Ipv6Header>(1);
    if (!outer)
      throw std::runtime_error("not an IPv6-encapsulated packet: " + describe(out.packet));
    SimHost& to = IpAddr(outer->dst) == *hv1->intent.host.vtep ? *hv1 : *hv2;
    return to.send(out.packet, PortRef::uplink());
  }

  std::unique_ptr<SimHost> hv1, hv2;
};

TEST_F(Ipv6Underlay, EgressIsEncapsulatedInIpv6TowardsTheRightVtep) {
  struct Row {
    const char* dst;
    const char* vtep;
    std::uint32_t vni;
  };
  for (const Row row :
       {Row{"10.20.1.1", "2001:db8:ff::2", 100}, Row{"10.20.2.1", "2001:db8:ff::3", 200}}) {
    SCOPED_TRACE(row.dst);
    const auto d = vmSends(*hv1, "10.10.1.1", row.dst);
    ASSERT_EQ(d.kind, Kind::kPort) << d.str();
    EXPECT_FALSE(d.miss) << "carried by the hardware";
    EXPECT_EQ(d.port, PortRef::uplink());
    const Packet& p = d.packet;
    ASSERT_EQ(p.headers.size(), 7u) << describe(p);
    EXPECT_EQ(p.at<EthHeader>(0)->src, hv1->intent.host.uplink_mac);
    EXPECT_EQ(p.at<EthHeader>(0)->dst, kRouterMac) << "the IPv6 underlay router";
    EXPECT_EQ(p.at<EthHeader>(0)->ether_type, kEtherTypeIpv6);
    const auto* outer = p.at<Ipv6Header>(1);
    ASSERT_NE(outer, nullptr);
    EXPECT_EQ(outer->src, ip6("2001:db8:ff::1"));
    EXPECT_EQ(outer->dst, ip6(row.vtep));
    EXPECT_EQ(outer->next_header, kIpProtoUdp);
    EXPECT_EQ(outer->hop_limit, flowrules::kVxlanEncapTtl);
    EXPECT_EQ(outer->payload_length, p.size() - EthHeader::kSize - Ipv6Header::kSize);
    const auto* udp = p.at<UdpHeader>(2);
    ASSERT_NE(udp, nullptr);
    EXPECT_EQ(udp->dst_port, kVxlanPort);
    EXPECT_EQ(udp->checksum, 0) << "zero, as a ConnectX's encapsulation leaves it";
    EXPECT_EQ(p.at<VxlanHeader>(3)->vni, row.vni);
    // Inner: the router MACs are 02:00 + the VTEPs' last 32 bits.
    EXPECT_EQ(p.at<EthHeader>(4)->src, mac("02:00:00:00:00:01"));
    EXPECT_EQ(p.at<EthHeader>(4)->dst, flowrules::routerMacForVtep(ip6(row.vtep)));
    EXPECT_EQ(p.at<Ipv4Header>(5)->ttl, 63);
    EXPECT_EQ(p.at<Ipv4Header>(5)->dst, ip(row.dst));
  }
}

TEST_F(Ipv6Underlay, DecapsulatedAndDeliveredOnTheOtherHostBothWays) {
  const auto in = wire(vmSends(*hv1, "10.10.1.1", "10.20.1.1"));
  SCOPED_TRACE(in.str() + ": " + describe(in.packet));
  ASSERT_EQ(in.kind, Kind::kPort);
  EXPECT_FALSE(in.miss);
  EXPECT_EQ(in.port, PortRef::vfPort(*hv2->portWith(ip("10.20.1.1")).vf));
  ASSERT_EQ(in.packet.headers.size(), 3u) << "no tunnel header left";
  EXPECT_EQ(in.packet.at<EthHeader>(0)->src, hv2->intent.host.gateway_mac);
  EXPECT_EQ(in.packet.at<Ipv4Header>(1)->ttl, 62);
  EXPECT_EQ(in.path.size(), 2u) << "decap (outer IPv6 destination) in group 0, delivery in group 1";

  const auto back = wire(vmSends(*hv2, "10.20.1.1", "10.10.1.1"));
  ASSERT_EQ(back.kind, Kind::kPort) << back.str();
  EXPECT_EQ(back.port, PortRef::vfPort(*hv1->portWith(ip("10.10.1.1")).vf));
}

TEST_F(Ipv6Underlay, Ipv6InsideTheIpv6Underlay) {
  const auto& port = hv1->portWith(ip("10.10.1.1"));
  const auto p = PacketBuilder()
                     .eth(port.mac, hv1->intent.host.gateway_mac)
                     .ipv6(ip6("2001:db8:10::1"), ip6("2001:db8:20::1"), 64)
                     .udp(40000, 5001)
                     .build();
  const auto out = hv1->send(p, PortRef::vfPort(*port.vf));
  ASSERT_EQ(out.kind, Kind::kPort) << out.str();
  ASSERT_NE(out.packet.at<Ipv6Header>(1), nullptr);
  EXPECT_EQ(out.packet.at<Ipv6Header>(1)->dst, ip6("2001:db8:ff::2"));
  ASSERT_NE(out.packet.at<Ipv6Header>(5), nullptr) << describe(out.packet);
  const auto in = wire(out);
  SCOPED_TRACE(in.str() + ": " + describe(in.packet));
  ASSERT_EQ(in.kind, Kind::kPort);
  EXPECT_EQ(in.port, PortRef::vfPort(*hv2->portWith(ip("10.20.1.1")).vf));
  ASSERT_NE(in.packet.at<Ipv6Header>(1), nullptr);
  EXPECT_EQ(in.packet.at<Ipv6Header>(1)->dst, ip6("2001:db8:20::1"));
  EXPECT_EQ(in.packet.at<Ipv6Header>(1)->hop_limit, 62);
}

// VXLAN to an IPv6 address that is not this host's VTEP, or over IPv4, is
// not decapsulated by the hardware: it misses to the kernel.
TEST_F(Ipv6Underlay, OnlyThisHostsIpv6VtepIsDecapsulated) {
  const auto inner = test::fromVm(hv2->portWith(ip("10.20.1.1")), ip("10.10.1.1"), ip("10.20.1.1"),
                                  hv2->intent.host);
  for (const IpAddr outer_dst : {IpAddr(ip6("2001:db8:ff::9")), IpAddr(ip("192.0.2.2"))}) {
    SCOPED_TRACE(outer_dst.str());
    const IpAddr outer_src =
        outer_dst.isV4() ? IpAddr(ip("192.0.2.1")) : IpAddr(ip6("2001:db8:ff::1"));
    const Packet p = vxlanEncapsulated(inner, kRouterMac, hv2->intent.host.uplink_mac, outer_src,
                                       outer_dst, 100);
    const auto d = hv2->send(p, PortRef::uplink());
    EXPECT_TRUE(d.miss) << d.str();
    EXPECT_EQ(d.kind, Kind::kRepresentor) << d.str();
    EXPECT_EQ(d.port, PortRef::uplink()) << "to the uplink representor, i.e. the kernel";
    EXPECT_EQ(d.packet, p) << "still encapsulated for the kernel's vxlan device";
  }
}

// A profile without the ipv6_underlay claims: the VXLAN rules go to
// software, naming the reason; the routed-to-VM rules stay in hardware.
TEST(Ipv6UnderlayProfile, WithoutTheClaimTheVxlanRulesGoToSoftware) {
  auto profile = test::loadProfile("sim");
  profile.actions[static_cast<std::size_t>(model::ActionType::kVxlanEncap)].ipv6_underlay = false;
  profile.actions[static_cast<std::size_t>(model::ActionType::kVxlanDecap)].ipv6_underlay = false;
  const auto intent = overIpv6(test::hv1Intent());
  const auto plan = test::unwrap(flowrules::plan(intent, profile), "plan");
  std::size_t egress = 0, decap = 0;
  for (const auto& r : plan.rules) {
    if (r.cls == RuleClass::kVxlanEgress || r.cls == RuleClass::kVxlanIngress) {
      SCOPED_TRACE(flowrules::explainRule(r, profile));
      (r.cls == RuleClass::kVxlanEgress ? egress : decap)++;
      EXPECT_EQ(r.placement, Placement::kSw);
      EXPECT_EQ(r.reason.code, PlacementReason::Code::kIpv6UnderlayUnsupported);
      EXPECT_NE(flowrules::explainRule(r, profile).find("IPv6 outer headers"), std::string::npos);
    }
    if (r.cls == RuleClass::kLocalDelivery) {
      EXPECT_EQ(r.placement, Placement::kHw);
    }
  }
  EXPECT_EQ(egress, intent.remotes.size());
  EXPECT_EQ(decap, 2u) << "one per local VNI (100, 200)";
  EXPECT_STREQ(flowrules::reasonCodeName(
                   static_cast<std::size_t>(PlacementReason::Code::kIpv6UnderlayUnsupported)),
               "ipv6-underlay-unsupported");

  // Out of a VM, the packet misses to the kernel (the representor).
  auto h = SimHost::start(intent, profile);
  const auto& port = h->portWith(ip("10.10.1.1"));
  const auto d = h->send(test::fromVm(port, ip("10.10.1.1"), ip("10.20.1.1"), intent.host),
                         PortRef::vfPort(*port.vf));
  EXPECT_TRUE(d.miss) << d.str();
  EXPECT_EQ(d.kind, Kind::kRepresentor) << d.str();
}

}  // namespace
}  // namespace nicoffload::simnic
