// IPv6 through the simulated NIC (issue 23): a host with gateway.ipv6, two
// ports with /128s and one without. Where does each IPv6 packet go, and how
// is it rewritten? Anti-spoofing, neighbour discovery to the kernel, local
// delivery and the uplink's way in.
#include <gtest/gtest.h>

#include "nicoffload/flowrules/planner.h"
#include "nicoffload/simnic/sim_eswitch.h"
#include "support/sim_support.h"

namespace nicoffload::simnic {
namespace {

using flowrules::PortRef;
using flowrules::RuleClass;
using Kind = Delivery::Kind;

Ipv6Addr ip6(const char* text) { return *Ipv6Addr::parse(text); }

class Ipv6Host : public testing::Test {
 protected:
  void SetUp() override {
    auto intent = test::exampleIntent(test::Example::kRouted);
    intent.host.gateway_ipv6 = ip6("fe80::1");
    intent.ports[0].addresses6 = {ip6("2001:db8:1::10")};
    intent.ports[1].addresses6 = {ip6("2001:db8:1::20"), ip6("2001:db8:1::21")};
    host = test::SimHost::start(intent, test::loadProfile("sim"));
    ASSERT_EQ(host->report.refused, 0u);
  }

  const model::Port& port(std::size_t i) const { return host->intent.ports[i]; }
  PortRef vfOf(std::size_t i) const { return PortRef::vfPort(*port(i).vf); }

  // An ICMPv6 echo from port i's VM (its MAC, to the gateway MAC).
  Delivery vmSends(std::size_t i, const char* src, const char* dst, std::uint8_t hops = 64,
                   std::optional<MacAddr> src_mac = {}) {
    const auto p = PacketBuilder()
                       .eth(src_mac.value_or(port(i).mac), host->intent.host.gateway_mac)
                       .ipv6(ip6(src), ip6(dst), hops)
                       .icmp6()
                       .payload(56)
                       .build();
    return host->send(p, vfOf(i));
  }

  std::unique_ptr<test::SimHost> host;
};

TEST_F(Ipv6Host, VmToVmOnTheSameHostIsDeliveredInHardware) {
  const auto d = vmSends(0, "2001:db8:1::10", "2001:db8:1::21", 64);
  SCOPED_TRACE(d.str() + ": " + describe(d.packet));
  ASSERT_EQ(d.kind, Kind::kPort);
  EXPECT_EQ(d.port, vfOf(1));
  EXPECT_FALSE(d.miss);
  EXPECT_EQ(d.path.size(), 2u) << "anti-spoofing allow in group 0, delivery in group 1";
  const auto* eth = d.packet.at<EthHeader>(0);
  EXPECT_EQ(eth->src, host->intent.host.gateway_mac);
  EXPECT_EQ(eth->dst, port(1).mac);
  EXPECT_EQ(eth->ether_type, kEtherTypeIpv6);
  EXPECT_EQ(d.packet.at<Ipv6Header>(1)->hop_limit, 63);
}

TEST_F(Ipv6Host, SpoofedSourcesAreDropped) {
  // Another port's /128, an address nobody has, and the right source from the wrong MAC.
  EXPECT_EQ(vmSends(0, "2001:db8:1::20", "2001:db8:1::21").kind, Kind::kDrop);
  EXPECT_EQ(vmSends(0, "2001:db8:ffff::1", "2001:db8:1::21").kind, Kind::kDrop);
  EXPECT_EQ(vmSends(0, "2001:db8:1::10", "2001:db8:1::21", 64, test::mac("52:54:00:99:99:99")).kind,
            Kind::kDrop);
  // A port without IPv6 addresses sends no IPv6 at all.
  auto intent = host->intent;
  intent.ports[0].addresses6.clear();
  auto no_v6 = test::SimHost::start(intent, test::loadProfile("sim"));
  const auto p = PacketBuilder()
                     .eth(intent.ports[0].mac, intent.host.gateway_mac)
                     .ipv6(ip6("fe80::5054:ff:fe00:101"), ip6("ff02::2"))
                     .icmp6(133)
                     .build();
  EXPECT_EQ(no_v6->send(p, vfOf(0)).kind, Kind::kDrop);
}

TEST_F(Ipv6Host, NeighbourDiscoveryAndLinkLocalGoToTheKernel) {
  // DAD and address resolution of the gateway (solicited-node multicast),
  // from the VM's link-local address, then unicast to the gateway's fe80::1.
  for (const auto& [src, dst] : {std::pair{"::", "ff02::1:ff00:1"},
                                 std::pair{"fe80::5054:ff:fe00:101", "ff02::1:ff00:1"},
                                 std::pair{"fe80::5054:ff:fe00:101", "fe80::1"},
                                 std::pair{"2001:db8:1::10", "fe80::1"}}) {
    const auto p = PacketBuilder()
                       .eth(port(0).mac, host->intent.host.gateway_mac)
                       .ipv6(ip6(src), ip6(dst), 255)
                       .icmp6(Icmp6Header::kNeighbourSolicitation)
                       .payload(16)
                       .build();
    const auto d = host->send(p, vfOf(0));
    SCOPED_TRACE(std::string(src) + " > " + dst + ": " + d.str());
    EXPECT_EQ(d.kind, Kind::kRepresentor);
    EXPECT_EQ(d.port, vfOf(0));
    // From the VM's own /128 the allow rule matches as well (same priority):
    // whichever wins, the packet reaches the kernel, through the trap or as
    // a FIB miss (no FIB rule matches a link-local destination).
    if (std::string(src).rfind("2001:", 0) != 0) {
      EXPECT_FALSE(d.miss) << "an ND trap rule, not the miss path";
    }
    EXPECT_EQ(d.packet, p) << "untouched: the kernel answers";
  }
  // Link-scoped traffic with a foreign MAC is still dropped.
  const auto spoofed = PacketBuilder()
                           .eth(test::mac("52:54:00:99:99:99"), host->intent.host.gateway_mac)
                           .ipv6(ip6("fe80::99"), ip6("ff02::1:ff00:1"), 255)
                           .icmp6(Icmp6Header::kNeighbourSolicitation)
                           .build();
  EXPECT_EQ(host->send(spoofed, vfOf(0)).kind, Kind::kDrop);
}

TEST_F(Ipv6Host, FromTheUplinkToAVmAndToAnUnknownAddress) {
  const auto to = [&](const char* dst) {
    return host->send(PacketBuilder()
                          .eth(test::mac("0c:42:a1:ff:ff:fe"), host->intent.host.uplink_mac)
                          .ipv6(ip6("2001:db8:99::1"), ip6(dst), 60)
                          .udp(40000, 5001)
                          .build(),
                      PortRef::uplink());
  };
  const auto d = to("2001:db8:1::20");
  ASSERT_EQ(d.kind, Kind::kPort);
  EXPECT_EQ(d.port, vfOf(1));
  EXPECT_EQ(d.packet.at<Ipv6Header>(1)->hop_limit, 59);
  EXPECT_EQ(d.packet.at<EthHeader>(0)->dst, port(1).mac);
  // Nobody's address: the FIB misses, the uplink representor (the kernel) takes it.
  const auto miss = to("2001:db8:1::99");
  EXPECT_EQ(miss.kind, Kind::kRepresentor);
  EXPECT_EQ(miss.port, PortRef::uplink());
}

// A remote /128 (issue 23): routed, out of the uplink to the IPv6 next
// hop's MAC, hop limit decremented, in hardware.
TEST_F(Ipv6Host, ToARemoteThroughItsIpv6NextHop) {
  auto intent = host->intent;
  const MacAddr tor = test::mac("0c:42:a1:00:00:66");
  intent.host.next_hops.push_back({IpAddr(ip6("fe80::6")), tor});
  model::RemoteEndpoint r;
  r.address = ip6("2001:db8:9::5");
  r.next_hop = IpAddr(ip6("fe80::6"));
  intent.remotes.push_back(r);
  auto h = test::SimHost::start(intent, test::loadProfile("sim"));
  ASSERT_EQ(h->report.refused, 0u);
  const auto p = PacketBuilder()
                     .eth(port(0).mac, intent.host.gateway_mac)
                     .ipv6(ip6("2001:db8:1::10"), ip6("2001:db8:9::5"), 64)
                     .icmp6()
                     .payload(56)
                     .build();
  const auto d = h->send(p, vfOf(0));
  SCOPED_TRACE(d.str() + ": " + describe(d.packet));
  ASSERT_EQ(d.kind, Kind::kPort);
  EXPECT_EQ(d.port, PortRef::uplink());
  EXPECT_FALSE(d.miss);
  EXPECT_EQ(d.packet.at<EthHeader>(0)->dst, tor);
  EXPECT_EQ(d.packet.at<EthHeader>(0)->src, intent.host.uplink_mac);
  EXPECT_EQ(d.packet.at<Ipv6Header>(1)->hop_limit, 63);
  EXPECT_EQ(d.packet.at<Ipv6Header>(1)->dst, ip6("2001:db8:9::5"));
}

// On VXLAN, the same remote is encapsulated to its VTEP: IPv6 inside an
// IPv4 underlay.
TEST(Ipv6Vxlan, ToARemoteBehindAVtep) {
  auto intent = test::exampleIntent(test::Example::kVxlan);
  intent.host.gateway_ipv6 = ip6("fe80::1");
  intent.ports[0].addresses6 = {ip6("2001:db8:1::10")};
  model::RemoteEndpoint r;
  r.address = ip6("2001:db8:9::5");
  r.vtep = test::ip("10.99.0.2");
  r.vni = 4242;
  intent.remotes.push_back(r);
  auto h = test::SimHost::start(intent, test::loadProfile("sim"));
  ASSERT_EQ(h->report.refused, 0u);
  const auto& port = intent.ports[0];
  const auto p = PacketBuilder()
                     .eth(port.mac, intent.host.gateway_mac)
                     .ipv6(ip6("2001:db8:1::10"), ip6("2001:db8:9::5"), 64)
                     .udp(40000, 5001)
                     .build();
  const auto d = h->send(p, PortRef::vfPort(*port.vf));
  SCOPED_TRACE(d.str() + ": " + describe(d.packet));
  ASSERT_EQ(d.kind, Kind::kPort);
  EXPECT_EQ(d.port, PortRef::uplink());
  EXPECT_FALSE(d.miss);
  const auto* outer = d.packet.at<Ipv4Header>(1);
  ASSERT_NE(outer, nullptr);
  EXPECT_EQ(outer->dst, test::ip("10.99.0.2"));
  EXPECT_EQ(outer->src, *intent.host.vtep);
  ASSERT_NE(d.packet.at<VxlanHeader>(3), nullptr);
  EXPECT_EQ(d.packet.at<VxlanHeader>(3)->vni, 4242u);
  EXPECT_EQ(d.packet.at<EthHeader>(4)->dst, flowrules::routerMacForVtep(test::ip("10.99.0.2")));
  ASSERT_NE(d.packet.at<Ipv6Header>(5), nullptr);
  EXPECT_EQ(d.packet.at<Ipv6Header>(5)->hop_limit, 63);
  EXPECT_EQ(d.packet.at<Ipv6Header>(5)->dst, ip6("2001:db8:9::5"));
}

// IPv4 is unchanged by IPv6 being on: the same example traffic still flows.
TEST_F(Ipv6Host, Ipv4StillFlows) {
  const auto& from = port(0);
  const auto& to = port(1);
  const auto d = host->send(test::fromVm(from, from.addresses[0], to.addresses[0], host->intent.host),
                            vfOf(0));
  ASSERT_EQ(d.kind, Kind::kPort);
  EXPECT_EQ(d.port, vfOf(1));
}

}  // namespace
}  // namespace nicoffload::simnic
