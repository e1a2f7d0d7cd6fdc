// Packets built by the test go through the planned rules of a two-hypervisor
// example (examples/host.json + ports.json as hv1, tests/simnic/fixtures as
// hv2, VXLAN between them; plus the routed example): where does each packet
// end up, and how was it rewritten?
#include <gtest/gtest.h>

#include "nicoffload/flowrules/planner.h"
#include "nicoffload/simnic/sim_eswitch.h"
#include "support/sim_support.h"

namespace nicoffload::simnic {
namespace {

using flowrules::PortRef;
using flowrules::RuleClass;
using test::ip;
using test::mac;
using test::SimHost;
using Kind = Delivery::Kind;

class TwoHypervisors : public testing::Test {
 protected:
  void SetUp() override {
    hv1 = SimHost::start(test::hv1Intent(), test::loadProfile("sim"));
    hv2 = SimHost::start(test::hv2Intent(), test::loadProfile("sim"));
    ASSERT_EQ(hv1->report.refused + hv2->report.refused, 0u);
  }

  // A VM on `h` with `src` sends a UDP packet to `dst`.
  Delivery vmSends(SimHost& h, const char* src, const char* dst, std::uint8_t ttl = 64) {
    const auto& port = h.portWith(ip(src));
    return h.send(test::fromVm(port, ip(src), ip(dst), h.intent.host, ttl),
                  PortRef::vfPort(*port.vf));
  }

  // The underlay: what leaves one host's uplink enters the host whose VTEP
  // is the outer destination.
  Delivery wire(const Delivery& out) {
    EXPECT_EQ(out.kind, Kind::kPort);
    EXPECT_EQ(out.port, PortRef::uplink());
    const auto* outer = out.packet.at<Ipv4Header>(1);
    if (!outer) throw std::runtime_error("not an encapsulated packet: " + describe(out.packet));
    SimHost& to = outer->dst == *hv1->intent.host.vtep ? *hv1 : *hv2;
    return to.send(out.packet, PortRef::uplink());
  }

  std::unique_ptr<SimHost> hv1, hv2;
};

void expectDeliveredToVm(const Delivery& d, const SimHost& h, const char* dst, std::uint8_t ttl) {
  const auto& port = h.portWith(ip(dst));
  SCOPED_TRACE(d.str() + ": " + describe(d.packet));
  ASSERT_EQ(d.kind, Kind::kPort);
  EXPECT_EQ(d.port, PortRef::vfPort(*port.vf));
  EXPECT_FALSE(d.miss);
  ASSERT_EQ(d.packet.headers.size(), 3u) << "no tunnel header left";
  const auto* eth = d.packet.at<EthHeader>(0);
  EXPECT_EQ(eth->src, h.intent.host.gateway_mac) << "the gateway is the source";
  EXPECT_EQ(eth->dst, port.mac);
  const auto* ip4 = d.packet.at<Ipv4Header>(1);
  EXPECT_EQ(ip4->dst, ip(dst));
  EXPECT_EQ(ip4->ttl, ttl);
  EXPECT_TRUE(ipv4ChecksumOk(*ip4)) << "DEC_TTL must keep the checksum right";
}

TEST_F(TwoHypervisors, LocalDeliveryToAnotherVfOfTheSameHost) {
  const auto d = vmSends(*hv1, "10.10.1.1", "10.10.1.2");
  expectDeliveredToVm(d, *hv1, "10.10.1.2", 63);
  EXPECT_EQ(d.packet.at<Ipv4Header>(1)->src, ip("10.10.1.1"));
  EXPECT_EQ(d.path.size(), 2u) << "anti-spoofing allow in group 0, delivery in group 1";
  // The second address of a port is delivered the same way, to the same VF.
  expectDeliveredToVm(vmSends(*hv1, "10.10.2.1", "10.10.1.3", 10), *hv1, "10.10.1.3", 9);
}

TEST_F(TwoHypervisors, EgressIsEncapsulatedTowardsTheRightVtepWithTheRightVni) {
  struct Row {
    const char* dst;
    const char* vtep;
    std::uint32_t vni;
  };
  for (const Row row : {Row{"10.20.1.1", "192.0.2.2", 100}, Row{"10.20.1.2", "192.0.2.2", 100},
                        Row{"10.20.2.1", "192.0.2.3", 200}}) {
    SCOPED_TRACE(row.dst);
    const auto d = vmSends(*hv1, "10.10.1.1", row.dst);
    ASSERT_EQ(d.kind, Kind::kPort) << d.str();
    EXPECT_EQ(d.port, PortRef::uplink());
    const Packet& p = d.packet;
    ASSERT_EQ(p.headers.size(), 7u) << describe(p);
    const auto& host = hv1->intent.host;
    EXPECT_EQ(p.at<EthHeader>(0)->src, host.uplink_mac);
    EXPECT_EQ(p.at<EthHeader>(0)->dst, mac("0c:42:a1:ff:ff:fe")) << "the underlay next hop";
    EXPECT_EQ(p.at<EthHeader>(0)->ether_type, kEtherTypeIpv4);
    const auto* outer = p.at<Ipv4Header>(1);
    EXPECT_EQ(outer->src, ip("192.0.2.1"));
    EXPECT_EQ(outer->dst, ip(row.vtep));
    EXPECT_EQ(outer->protocol, kIpProtoUdp);
    EXPECT_EQ(outer->ttl, flowrules::kVxlanEncapTtl);
    EXPECT_EQ(outer->total_length, p.size() - EthHeader::kSize);
    EXPECT_TRUE(ipv4ChecksumOk(*outer));
    EXPECT_EQ(p.at<UdpHeader>(2)->dst_port, kVxlanPort);
    EXPECT_GE(p.at<UdpHeader>(2)->src_port, 49152);
    EXPECT_EQ(p.at<VxlanHeader>(3)->vni, row.vni);
    // Inner: routed, so router MACs of the two VTEPs and TTL - 1.
    EXPECT_EQ(p.at<EthHeader>(4)->src, flowrules::routerMacForVtep(ip("192.0.2.1")));
    EXPECT_EQ(p.at<EthHeader>(4)->dst, flowrules::routerMacForVtep(ip(row.vtep)));
    EXPECT_EQ(p.at<Ipv4Header>(5)->ttl, 63);
    EXPECT_EQ(p.at<Ipv4Header>(5)->dst, ip(row.dst));
    EXPECT_TRUE(ipv4ChecksumOk(*p.at<Ipv4Header>(5)));
  }
}

TEST_F(TwoHypervisors, DecapsulatedAndDeliveredOnTheOtherHost) {
  const auto out = vmSends(*hv1, "10.10.1.1", "10.20.1.1");
  const auto in = wire(out);
  expectDeliveredToVm(in, *hv2, "10.20.1.1", 62);
  EXPECT_EQ(in.packet.at<Ipv4Header>(1)->src, ip("10.10.1.1"));
  EXPECT_EQ(in.path.size(), 2u) << "decap in group 0, delivery in group 1";

  // And back, for both VNIs of hv1.
  expectDeliveredToVm(wire(vmSends(*hv2, "10.20.1.1", "10.10.1.1")), *hv1, "10.10.1.1", 62);
  expectDeliveredToVm(wire(vmSends(*hv2, "10.20.1.2", "10.10.2.1")), *hv1, "10.10.2.1", 62);

  // hv2's decap rule counted the encapsulated packet as it arrived.
  for (const auto& r : hv2->plan.rules) {
    if (r.cls != RuleClass::kVxlanIngress) continue;
    const auto c = test::unwrap(hv2->applier->query(r.id), "query decap");
    EXPECT_EQ(c.hits, 1u);
    EXPECT_EQ(c.bytes, out.packet.size());
  }
}

TEST_F(TwoHypervisors, ArpGoesToTheRepresentorUnchanged) {
  const auto& port = hv1->portWith(ip("10.10.1.2"));
  const Packet arp = arpRequest(port.mac, ip("10.10.1.2"), hv1->intent.host.gateway_ipv4);
  const auto d = hv1->send(arp, PortRef::vfPort(*port.vf));
  EXPECT_EQ(d.kind, Kind::kRepresentor) << d.str();
  EXPECT_EQ(d.port, PortRef::vfPort(*port.vf));
  EXPECT_FALSE(d.miss) << "trapped by the ARP rule, not a miss";
  EXPECT_EQ(d.packet, arp);
}

TEST_F(TwoHypervisors, SpoofedSourcesAreDropped) {
  const auto& port = hv1->portWith(ip("10.10.1.1"));
  const auto& host = hv1->intent.host;
  const PortRef vf = PortRef::vfPort(*port.vf);
  struct Row {
    const char* what;
    Packet packet;
  };
  const Row rows[] = {
      {"an address nobody owns",
       udpPacket(port.mac, host.gateway_mac, ip("10.10.1.99"), ip("10.10.1.2"))},
      {"another VM's address",
       udpPacket(port.mac, host.gateway_mac, ip("10.10.1.2"), ip("10.20.1.1"))},
      {"another MAC",
       udpPacket(mac("52:54:00:99:99:99"), host.gateway_mac, ip("10.10.1.1"), ip("10.10.1.2"))},
      {"ARP from another MAC",
       arpRequest(mac("52:54:00:99:99:99"), ip("10.10.1.1"), host.gateway_ipv4)},
  };
  for (const auto& row : rows) {
    const auto d = hv1->send(row.packet, vf);
    EXPECT_EQ(d.kind, Kind::kDrop) << row.what << ": " << d.str();
  }
}

TEST_F(TwoHypervisors, MissesGoToTheRepresentorOfTheSourcePort) {
  const auto unknown = vmSends(*hv1, "10.10.1.1", "198.51.100.1");
  EXPECT_EQ(unknown.kind, Kind::kRepresentor);
  EXPECT_EQ(unknown.port, PortRef::vfPort(0));
  EXPECT_TRUE(unknown.miss);
  EXPECT_EQ(unknown.packet.at<Ipv4Header>(1)->ttl, 64) << "nothing rewritten on a miss";

  // From the wire: a VNI this host does not serve, or another VTEP.
  const Packet inner = udpPacket(mac("02:00:c0:00:02:02"), mac("02:00:c0:00:02:01"),
                                 ip("10.20.1.1"), ip("10.10.1.1"));
  for (auto [vni, vtep] : {std::pair{999u, "192.0.2.1"}, std::pair{100u, "192.0.2.77"}}) {
    const Packet p = vxlanEncapsulated(inner, mac("0c:42:a1:ff:ff:fe"), mac("0c:42:a1:00:00:01"),
                                       ip("192.0.2.2"), ip(vtep), vni);
    const auto d = hv1->send(p, PortRef::uplink());
    EXPECT_EQ(d.kind, Kind::kRepresentor) << vni << " " << vtep;
    EXPECT_EQ(d.port, PortRef::uplink());
    EXPECT_TRUE(d.miss);
    EXPECT_EQ(d.packet, p) << "still encapsulated for the kernel's vxlan device";
  }
}

TEST(RoutedHypervisor, EgressRewritesToTheNextHopAndIngressIsDelivered) {
  auto h = SimHost::start(test::exampleIntent(test::Example::kRouted), test::loadProfile("sim"));
  const auto& host = h->intent.host;
  const auto& port = h->portWith(ip("10.10.1.1"));
  const auto out = h->send(test::fromVm(port, ip("10.10.1.1"), ip("10.20.1.1"), host),
                           PortRef::vfPort(*port.vf));
  ASSERT_EQ(out.kind, Kind::kPort) << out.str();
  EXPECT_EQ(out.port, PortRef::uplink());
  ASSERT_EQ(out.packet.headers.size(), 3u);
  EXPECT_EQ(out.packet.at<EthHeader>(0)->src, host.uplink_mac);
  EXPECT_EQ(out.packet.at<EthHeader>(0)->dst, mac("0c:42:a1:ff:ff:fe"));
  EXPECT_EQ(out.packet.at<Ipv4Header>(1)->ttl, 63);
  EXPECT_TRUE(ipv4ChecksumOk(*out.packet.at<Ipv4Header>(1)));

  // 10.20.1.2's next hop has no known MAC: its rule is in software, the
  // packet reaches the kernel through the VF's representor.
  const auto unresolved = h->send(test::fromVm(port, ip("10.10.1.1"), ip("10.20.1.2"), host),
                                  PortRef::vfPort(*port.vf));
  EXPECT_EQ(unresolved.kind, Kind::kRepresentor);
  EXPECT_TRUE(unresolved.miss);

  // From the wire, to a local VM.
  const Packet in =
      udpPacket(mac("0c:42:a1:ff:ff:fe"), host.uplink_mac, ip("10.20.1.1"), ip("10.10.2.2"));
  expectDeliveredToVm(h->send(in, PortRef::uplink()), *h, "10.10.2.2", 63);
}

}  // namespace
}  // namespace nicoffload::simnic
