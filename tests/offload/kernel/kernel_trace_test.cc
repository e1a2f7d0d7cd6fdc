// The kernel as `nicoffloadctl trace` asks it (offload/kernel_trace.h),
// against the real kernel in a namespace of the test's own: input route
// lookups (forwarding, local addresses, no route, strict reverse-path
// filter), proxy_arp, neighbours, a VXLAN device's FDB, and the errors for
// what does not exist.
#include "nicoffload/offload/kernel_trace.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>

#include "support/test_netns.h"

namespace nicoffload::offload {
namespace {

using trace::KernelRoute;

Ipv4Addr ip(const char* s) { return *Ipv4Addr::parse(s); }
IpAddr ip6(const char* s) { return *IpAddr::parse(s); }

class KernelTraceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    ns_ = std::make_unique<test::TestNetns>(
        "nfo-ktr",
        std::initializer_list<const char*>{
            "link set lo up", "link add d0 type veth peer name d1",
            "link set d0 address 02:00:00:00:00:d0", "link set d0 up", "link set d1 up",
            "addr add 10.1.0.1/24 dev d0", "route add 10.9.9.9/32 dev d1",
            "neigh add 10.9.9.9 lladdr 52:54:00:00:00:09 dev d1 nud permanent",
            "link add nfo-vx100 type vxlan id 100 local 10.1.0.1 dstport 4789 nolearning",
            "link set nfo-vx100 up"});
    ASSERT_TRUE(ns_->ok());
    ASSERT_TRUE(sysctl("net.ipv4.ip_forward=1"));
    ASSERT_TRUE(
        test::TestNetns::sh("ip netns exec " + ns_->name() +
                            " bridge fdb append 02:00:c0:00:02:02 dev nfo-vx100 dst 192.0.2.2"));
    auto v = openKernelTraceView(ns_->name());
    ASSERT_TRUE(v) << v.error().describe();
    view_ = std::move(v).value();
  }
  bool ipCmd(const std::string& args) const {
    return test::TestNetns::sh("ip -n " + ns_->name() + " " + args);
  }
  bool sysctl(const std::string& setting) const {
    return test::TestNetns::sh("ip netns exec " + ns_->name() + " sysctl -qw " + setting);
  }
  std::unique_ptr<test::TestNetns> ns_;
  std::unique_ptr<trace::KernelView> view_;
};

TEST(KernelTraceView, NamespaceThatDoesNotExistIsNotFound) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto v = openKernelTraceView("nfo-no-such-namespace");
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(v.error().field, "netns");
}

TEST_F(KernelTraceTest, RoutesAsForAPacketReceivedOnTheDevice) {
  auto r = view_->routeInput(ip("10.9.9.9"), ip("10.1.0.2"), "d0");
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->error, 0);
  EXPECT_EQ(r->type, KernelRoute::Type::kUnicast);
  EXPECT_EQ(r->dev, "d1");
  EXPECT_FALSE(r->gateway);

  auto local = view_->routeInput(ip("10.1.0.1"), ip("10.1.0.2"), "d0");
  ASSERT_TRUE(local);
  EXPECT_EQ(local->type, KernelRoute::Type::kLocal);

  auto none = view_->routeInput(ip("203.0.113.1"), ip("10.1.0.2"), "d0");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->error, ENETUNREACH);

  // Strict reverse-path filtering: a source not routed back through d0.
  ASSERT_TRUE(sysctl("net.ipv4.conf.d0.rp_filter=1"));
  ASSERT_TRUE(sysctl("net.ipv4.conf.all.rp_filter=1"));
  auto spoofed = view_->routeInput(ip("10.9.9.9"), ip("10.9.9.9"), "d0");
  ASSERT_TRUE(spoofed);
  // EXDEV, or EINVAL on kernels since the drop-reason rework (6.13).
  EXPECT_TRUE(spoofed->error == EXDEV || spoofed->error == EINVAL) << spoofed->error;
  auto legit = view_->routeInput(ip("10.9.9.9"), ip("10.1.0.2"), "d0");
  ASSERT_TRUE(legit);
  EXPECT_EQ(legit->dev, "d1");

  // Forwarding off: the kernel routes nothing through.
  ASSERT_TRUE(sysctl("net.ipv4.conf.d0.forwarding=0"));
  auto off = view_->routeInput(ip("10.9.9.9"), ip("10.1.0.2"), "d0");
  ASSERT_TRUE(off);
  EXPECT_NE(off->error, 0);

  auto unknown = view_->routeInput(ip("10.9.9.9"), ip("10.1.0.2"), "nosuch0");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(unknown.error().value, "nosuch0");
}

TEST_F(KernelTraceTest, ProxyArpNeighboursFdbAndLinks) {
  auto p = view_->proxyArp("d0");
  ASSERT_TRUE(p) << p.error().describe();
  EXPECT_FALSE(*p);
  ASSERT_TRUE(sysctl("net.ipv4.conf.d0.proxy_arp=1"));
  EXPECT_TRUE(*view_->proxyArp("d0"));
  ASSERT_TRUE(sysctl("net.ipv4.conf.all.proxy_arp=1"));
  EXPECT_TRUE(*view_->proxyArp("d1"));  // all OR dev, as the kernel reads it
  EXPECT_FALSE(view_->proxyArp("nosuch0"));

  auto n = view_->neighbour("d1", ip("10.9.9.9"));
  ASSERT_TRUE(n) << n.error().describe();
  ASSERT_TRUE(*n);
  EXPECT_EQ((*n)->mac.str(), "52:54:00:00:00:09");
  EXPECT_EQ((*n)->state, "permanent");
  auto none = view_->neighbour("d1", ip("10.9.9.8"));
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  auto other_dev = view_->neighbour("d0", ip("10.9.9.9"));
  ASSERT_TRUE(other_dev);
  EXPECT_FALSE(*other_dev);

  auto fdb = view_->fdb("nfo-vx100", *MacAddr::parse("02:00:c0:00:02:02"));
  ASSERT_TRUE(fdb) << fdb.error().describe();
  ASSERT_EQ(fdb->size(), 1u);
  EXPECT_EQ((*fdb)[0].str(), "192.0.2.2");
  auto no_fdb = view_->fdb("nfo-vx100", *MacAddr::parse("02:00:c0:00:02:03"));
  ASSERT_TRUE(no_fdb);
  EXPECT_TRUE(no_fdb->empty());

  auto mac = view_->linkMac("d0");
  ASSERT_TRUE(mac);
  ASSERT_TRUE(*mac);
  EXPECT_EQ((*mac)->str(), "02:00:00:00:00:d0");
  auto gone = view_->linkMac("nosuch0");
  ASSERT_TRUE(gone);
  EXPECT_FALSE(*gone);
}

// IPv6 as the kernel path programs it: a VM's /128 on its representor, a
// remote's /128 through an IPv6 gateway, the source check as policy rules
// (the VM's /128 on to main, anything else from the representor into a
// blackhole), and an IPv4 /32 through an IPv6 next hop (RFC 5549).
// VXLAN over an IPv6 underlay (issue 23): the FDB of a device with an IPv6
// local VTEP names IPv6 VTEPs (NDA_DST of 16 bytes).
TEST_F(KernelTraceTest, FdbOfAnIpv6VxlanDevice) {
  ASSERT_TRUE(ipCmd("-6 addr add 2001:db8:ff::1/64 dev d0 nodad"));
  ASSERT_TRUE(
      ipCmd("link add nfo-vx200 type vxlan id 200 local 2001:db8:ff::1 dstport 4789 "
            "nolearning udp6zerocsumrx"));
  ASSERT_TRUE(ipCmd("link set nfo-vx200 up"));
  ASSERT_TRUE(test::TestNetns::sh("ip netns exec " + ns_->name() +
                                  " bridge fdb append 02:00:00:00:00:02 dev nfo-vx200 dst "
                                  "2001:db8:ff::2"));
  auto fdb = view_->fdb("nfo-vx200", *MacAddr::parse("02:00:00:00:00:02"));
  ASSERT_TRUE(fdb) << fdb.error().describe();
  ASSERT_EQ(fdb->size(), 1u);
  EXPECT_EQ((*fdb)[0].str(), "2001:db8:ff::2");
  // The IPv4 device's entry is still read as IPv4.
  auto v4 = view_->fdb("nfo-vx100", *MacAddr::parse("02:00:c0:00:02:02"));
  ASSERT_TRUE(v4);
  ASSERT_EQ(v4->size(), 1u);
  EXPECT_EQ((*v4)[0].str(), "192.0.2.2");
  // This host's IPv6 VTEP is local: where a VXLAN packet from the underlay
  // is decapsulated.
  auto local = view_->routeInput(ip6("2001:db8:ff::1"), ip6("2001:db8:ff::2"), "d0");
  ASSERT_TRUE(local) << local.error().describe();
  EXPECT_EQ(local->type, KernelRoute::Type::kLocal);
}

TEST_F(KernelTraceTest, Ipv6RoutesSourceCheckAndNeighbours) {
  ASSERT_TRUE(sysctl("net.ipv6.conf.all.forwarding=1"));
  ASSERT_TRUE(ipCmd("-6 addr add 2001:db8:1::1/64 dev d0 nodad"));
  ASSERT_TRUE(ipCmd("-6 route add 2001:db8:9::9/128 dev d1"));
  ASSERT_TRUE(ipCmd("-6 route add 2001:db8:7::7/128 via fe80::77 dev d1"));
  ASSERT_TRUE(ipCmd("-6 neigh add fe80::77 lladdr 52:54:00:00:00:77 dev d1 nud permanent"));
  ASSERT_TRUE(ipCmd("route add 10.7.7.7/32 via inet6 fe80::77 dev d1"));

  auto direct = view_->routeInput(ip6("2001:db8:9::9"), ip6("2001:db8:1::2"), "d0");
  ASSERT_TRUE(direct) << direct.error().describe();
  EXPECT_EQ(direct->error, 0);
  EXPECT_EQ(direct->type, KernelRoute::Type::kUnicast);
  EXPECT_EQ(direct->dev, "d1");
  EXPECT_FALSE(direct->gateway);

  auto via = view_->routeInput(ip6("2001:db8:7::7"), ip6("2001:db8:1::2"), "d0");
  ASSERT_TRUE(via) << via.error().describe();
  EXPECT_EQ(via->dev, "d1");
  ASSERT_TRUE(via->gateway);
  EXPECT_EQ(via->gateway->str(), "fe80::77");

  auto local = view_->routeInput(ip6("2001:db8:1::1"), ip6("2001:db8:1::2"), "d0");
  ASSERT_TRUE(local);
  EXPECT_EQ(local->type, KernelRoute::Type::kLocal);

  auto none = view_->routeInput(ip6("2001:db8:5::5"), ip6("2001:db8:1::2"), "d0");
  ASSERT_TRUE(none);
  EXPECT_NE(none->error, 0);

  auto rfc5549 = view_->routeInput(ip("10.7.7.7"), ip("10.1.0.2"), "d0");
  ASSERT_TRUE(rfc5549) << rfc5549.error().describe();
  EXPECT_EQ(rfc5549->dev, "d1");
  ASSERT_TRUE(rfc5549->gateway);
  EXPECT_EQ(rfc5549->gateway->str(), "fe80::77");

  // The source check: from the VM's /128 on, from anything else dropped.
  ASSERT_TRUE(ipCmd("-6 rule add iif d0 from 2001:db8:1::2/128 lookup main priority 20000"));
  ASSERT_TRUE(ipCmd("-6 rule add iif d0 blackhole priority 20001"));
  auto allowed = view_->routeInput(ip6("2001:db8:9::9"), ip6("2001:db8:1::2"), "d0");
  ASSERT_TRUE(allowed);
  EXPECT_EQ(allowed->error, 0);
  EXPECT_EQ(allowed->dev, "d1");
  auto spoofed = view_->routeInput(ip6("2001:db8:9::9"), ip6("2001:db8:1::3"), "d0");
  ASSERT_TRUE(spoofed);
  EXPECT_TRUE(spoofed->error != 0 || spoofed->type == KernelRoute::Type::kBlackhole)
      << spoofed->error;

  auto mixed = view_->routeInput(ip6("2001:db8:9::9"), ip("10.1.0.2"), "d0");
  ASSERT_FALSE(mixed);
  EXPECT_EQ(mixed.error().code, ErrorCode::kInvalidValue);

  auto n = view_->neighbour("d1", ip6("fe80::77"));
  ASSERT_TRUE(n) << n.error().describe();
  ASSERT_TRUE(*n);
  EXPECT_EQ((*n)->mac.str(), "52:54:00:00:00:77");
  EXPECT_EQ((*n)->state, "permanent");
  auto none6 = view_->neighbour("d1", ip6("fe80::78"));
  ASSERT_TRUE(none6);
  EXPECT_FALSE(*none6);
  // Families are kept apart: an IPv4 lookup does not see the IPv6 entry.
  auto v4 = view_->neighbour("d1", ip("10.9.9.9"));
  ASSERT_TRUE(v4 && *v4);
  EXPECT_EQ((*v4)->mac.str(), "52:54:00:00:00:09");
}

}  // namespace
}  // namespace nicoffload::offload
