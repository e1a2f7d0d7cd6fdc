// RouteWatcher against the real kernel: routes a routing daemon would
// install (`ip route ... proto bgp`), added, changed, withdrawn; what is not
// learned (our protocol, the kernel's, other tables, prefixes, devices);
// ECMP; neighbour MACs on the uplink; and an overrun of the subscription
// (ENOBUFS) followed by an exact resync. Each test makes its own network
// namespace and deletes it; nothing leaves it. Needs root (skipped else).
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "nicoffload/offload/route_watcher.h"
#include "support/test_netns.h"

namespace nicoffload::offload {
namespace {

// A namespace with the uplink "up0" (a veth, 192.168.0.1/24, its peer in
// the same namespace, no address) and "other0" (a veth too, 192.168.5.1/24).
class Namespace : public test::TestNetns {
 public:
  Namespace()
      : TestNetns("nfo-rwt", {"link set lo up", "link add up0 type veth peer name up0p",
                              "link set up0 up", "link set up0p up",
                              "addr add 192.168.0.1/24 dev up0",
                              "link add other0 type veth peer name other0p",
                              "link set other0 up", "link set other0p up",
                              "addr add 192.168.5.1/24 dev other0"}) {}
};

IpAddr A(const char* s) { return *IpAddr::parse(s); }
MacAddr M(const char* s) { return *MacAddr::parse(s); }

class RouteWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    ns_ = std::make_unique<Namespace>();
    ASSERT_TRUE(ns_->ok()) << "cannot make namespace " << ns_->name();
  }
  void TearDown() override {
    watcher_.reset();
    ns_.reset();
  }
  void open(RouteWatcherOptions o = {}) {
    o.netns = ns_->name();
    o.uplink = "up0";
    auto w = RouteWatcher::open(o);
    ASSERT_TRUE(w) << w.error().describe();
    watcher_ = std::move(w).value();
  }
  // Everything waiting, merged (an `ip` command's notifications are queued
  // before it returns, so "nothing readable" means "caught up").
  RouteEvents drain() {
    RouteEvents all;
    if (!watcher_) {
      ADD_FAILURE() << "no watcher";
      return all;
    }
    for (;;) {
      auto ev = watcher_->poll(1000);
      EXPECT_TRUE(ev) << (ev ? "" : ev.error().describe());
      if (!ev) return all;
      all.resynced |= ev->resynced;
      if (ev->resynced) all.resync_reason = ev->resync_reason;
      for (auto& r : ev->routes) all.routes.push_back(std::move(r));
      for (auto& n : ev->neighbours) all.neighbours.push_back(n);
      if (ev->uplink_prefixes) all.uplink_prefixes = ev->uplink_prefixes;
      // A dump in the background: caught up once it is merged.
      pollfd p{watcher_->fd(), POLLIN, 0};
      if (::poll(&p, 1, watcher_->resyncRunning() ? 1000 : 0) == 0 && !watcher_->resyncRunning())
        return all;
    }
  }
  std::unique_ptr<Namespace> ns_;
  std::unique_ptr<RouteWatcher> watcher_;
};

TEST_F(RouteWatcherTest, StartDumpReportsWhatTheTableAlreadyHolds) {
  ASSERT_TRUE(ns_->run("route add 10.1.0.1/32 via 192.168.0.2 dev up0 proto bgp"));
  ASSERT_TRUE(ns_->run("neigh add 192.168.0.2 lladdr 02:00:00:00:00:02 dev up0 nud permanent"));
  ASSERT_NO_FATAL_FAILURE(open());
  const auto ev = drain();
  EXPECT_TRUE(ev.resynced);
  EXPECT_EQ(ev.resync_reason, "start");
  ASSERT_EQ(ev.routes.size(), 1u);
  EXPECT_EQ(ev.routes[0].first, A("10.1.0.1"));
  ASSERT_TRUE(ev.routes[0].second);
  EXPECT_EQ(ev.routes[0].second->protocol, 186);
  EXPECT_EQ(ev.routes[0].second->next_hops, std::vector<IpAddr>{A("192.168.0.2")});
  ASSERT_EQ(ev.neighbours.size(), 1u);
  EXPECT_EQ(ev.neighbours[0].second, M("02:00:00:00:00:02"));
  EXPECT_EQ(routeProtocolName(186), "bgp");
}

// With ipv6: /128 routes through a link-local or global gateway on the
// uplink, the uplink's IPv6 neighbours, and an IPv4 route through an IPv6
// next hop (RFC 5549, RTA_VIA). Without: none of them.
TEST_F(RouteWatcherTest, FollowsIpv6RoutesAndNeighboursWhenAsked) {
  ASSERT_TRUE(ns_->run("-6 addr add 2001:db8:ff::1/64 dev up0 nodad"));
  ASSERT_TRUE(ns_->run("-6 route add 2001:db8:9::5/128 via fe80::2 dev up0 proto bgp"));
  ASSERT_TRUE(ns_->run("-6 neigh add fe80::2 lladdr 02:00:00:00:00:62 dev up0 nud permanent"));
  ASSERT_TRUE(ns_->run("route add 10.9.0.5/32 via inet6 fe80::2 dev up0 proto bgp"));
  {
    ASSERT_NO_FATAL_FAILURE(open());
    const auto ev = drain();
    std::set<IpAddr> learned;
    for (const auto& [a, r] : ev.routes)
      if (r) learned.insert(a);
    EXPECT_EQ(learned, (std::set<IpAddr>{A("10.9.0.5")}))
        << "IPv4 only: the /128 is not followed, the RFC 5549 /32 is";
    EXPECT_EQ(watcher_->routes().at(A("10.9.0.5")).next_hops, std::vector<IpAddr>{A("fe80::2")});
    EXPECT_FALSE(watcher_->neighbours().count(A("fe80::2")));
    watcher_.reset();
  }
  RouteWatcherOptions o;
  o.ipv6 = true;
  ASSERT_NO_FATAL_FAILURE(open(o));
  auto ev = drain();
  EXPECT_TRUE(ev.resynced);
  ASSERT_TRUE(watcher_->routes().count(A("2001:db8:9::5")));
  const auto& r = watcher_->routes().at(A("2001:db8:9::5"));
  EXPECT_EQ(r.protocol, 186);
  EXPECT_EQ(r.next_hops, std::vector<IpAddr>{A("fe80::2")});
  ASSERT_TRUE(watcher_->neighbours().count(A("fe80::2")));
  EXPECT_EQ(watcher_->neighbours().at(A("fe80::2")), M("02:00:00:00:00:62"));

  // Followed live: a change of next hop (a global one), a /64 that is not
  // a host route (ignored), a withdrawal.
  ASSERT_TRUE(ns_->run("-6 route replace 2001:db8:9::5/128 via 2001:db8:ff::2 dev up0 proto bgp"));
  ASSERT_TRUE(ns_->run("-6 route add 2001:db8:77::/64 via fe80::2 dev up0 proto bgp"));
  ASSERT_TRUE(ns_->run("-6 route add 2001:db8:9::6/128 via fe80::3 dev up0 proto bgp"));
  ev = drain();
  EXPECT_EQ(watcher_->routes().at(A("2001:db8:9::5")).next_hops,
            std::vector<IpAddr>{A("2001:db8:ff::2")});
  EXPECT_TRUE(watcher_->routes().count(A("2001:db8:9::6")));
  EXPECT_EQ(watcher_->routes().size(), 3u) << "two /128s and the /32";
  ASSERT_TRUE(ns_->run("-6 route del 2001:db8:9::6/128 proto bgp"));
  ASSERT_TRUE(ns_->run("-6 neigh del fe80::2 dev up0"));
  ev = drain();
  EXPECT_FALSE(watcher_->routes().count(A("2001:db8:9::6")));
  EXPECT_FALSE(watcher_->neighbours().count(A("fe80::2")));
  bool withdrawn = false;
  for (const auto& [a, route] : ev.routes) withdrawn |= a == A("2001:db8:9::6") && !route;
  EXPECT_TRUE(withdrawn);
  // A resync reads both families back.
  auto again = watcher_->resyncNow("test");
  ASSERT_TRUE(again) << again.error().describe();
  EXPECT_EQ(watcher_->routes().size(), 2u);

  // IPv6 ECMP: appending a sibling notifies the whole set; deleting one
  // notifies that sibling alone, and the other stays followed.
  ASSERT_TRUE(ns_->run("-6 route add 2001:db8:9::7/128 via fe80::2 dev up0 proto bgp"));
  ASSERT_TRUE(ns_->run("-6 route append 2001:db8:9::7/128 via fe80::3 dev up0 proto bgp"));
  drain();
  EXPECT_EQ(watcher_->routes().at(A("2001:db8:9::7")).next_hops,
            (std::vector<IpAddr>{A("fe80::2"), A("fe80::3")}));
  ASSERT_TRUE(ns_->run("-6 route del 2001:db8:9::7/128 via fe80::2 dev up0 proto bgp"));
  drain();
  ASSERT_TRUE(watcher_->routes().count(A("2001:db8:9::7")));
  EXPECT_EQ(watcher_->routes().at(A("2001:db8:9::7")).next_hops, std::vector<IpAddr>{A("fe80::3")});
  ASSERT_TRUE(ns_->run("-6 route del 2001:db8:9::7/128 via fe80::3 dev up0 proto bgp"));
  drain();
  EXPECT_FALSE(watcher_->routes().count(A("2001:db8:9::7")));
}

TEST_F(RouteWatcherTest, FollowsAddChangeAndWithdraw) {
  ASSERT_NO_FATAL_FAILURE(open());
  EXPECT_TRUE(drain().routes.empty());
  ASSERT_TRUE(ns_->run("route add 10.1.0.1/32 via 192.168.0.2 dev up0 proto bgp"));
  auto ev = drain();
  ASSERT_EQ(ev.routes.size(), 1u);
  EXPECT_EQ(ev.routes[0].second->next_hops, std::vector<IpAddr>{A("192.168.0.2")});
  EXPECT_FALSE(ev.resynced);

  ASSERT_TRUE(ns_->run("route replace 10.1.0.1/32 via 192.168.0.3 dev up0 proto bgp"));
  ev = drain();
  ASSERT_EQ(ev.routes.size(), 1u);
  EXPECT_EQ(ev.routes[0].second->next_hops, std::vector<IpAddr>{A("192.168.0.3")});
  EXPECT_EQ(watcher_->routes().at(A("10.1.0.1")).next_hops, std::vector<IpAddr>{A("192.168.0.3")});

  ASSERT_TRUE(ns_->run("route del 10.1.0.1/32 proto bgp"));
  ev = drain();
  ASSERT_EQ(ev.routes.size(), 1u);
  EXPECT_FALSE(ev.routes[0].second);
  EXPECT_TRUE(watcher_->routes().empty());

  // Added and withdrawn between two polls: nothing to report.
  ASSERT_TRUE(ns_->run("route add 10.1.0.9/32 via 192.168.0.2 dev up0 proto bgp"));
  ASSERT_TRUE(ns_->run("route del 10.1.0.9/32 proto bgp"));
  EXPECT_TRUE(drain().routes.empty());
}

TEST_F(RouteWatcherTest, LearnsOnlyRoutingDaemonHostRoutesThroughTheUplink) {
  ASSERT_NO_FATAL_FAILURE(open());
  drain();
  // Not learned: our own protocol, the kernel's, a /24, another table,
  // another device, no gateway, a blackhole.
  ASSERT_TRUE(ns_->run("route add 10.2.0.1/32 via 192.168.0.2 dev up0 proto 240"));
  ASSERT_TRUE(ns_->run("route add 10.2.0.2/32 via 192.168.0.2 dev up0 proto kernel"));
  ASSERT_TRUE(ns_->run("route add 10.2.1.0/24 via 192.168.0.2 dev up0 proto bgp"));
  ASSERT_TRUE(ns_->run("route add 10.2.0.3/32 via 192.168.0.2 dev up0 proto bgp table 100"));
  ASSERT_TRUE(ns_->run("route add 10.2.0.4/32 via 192.168.5.2 dev other0 proto bgp"));
  ASSERT_TRUE(ns_->run("route add 10.2.0.5/32 dev up0 proto bgp"));
  ASSERT_TRUE(ns_->run("route add blackhole 10.2.0.6/32 proto bgp"));
  // Learned: any routing daemon's protocol by default (static, ospf).
  ASSERT_TRUE(ns_->run("route add 10.2.0.7/32 via 192.168.0.2 dev up0 proto static"));
  ASSERT_TRUE(ns_->run("route add 10.2.0.8/32 via 192.168.0.2 dev up0 proto ospf"));
  auto ev = drain();
  std::set<IpAddr> learned;
  for (const auto& [a, r] : ev.routes)
    if (r) learned.insert(a);
  EXPECT_EQ(learned, (std::set<IpAddr>{A("10.2.0.7"), A("10.2.0.8")}));
  EXPECT_GE(watcher_->counters().ignored_routes, 7u);

  // A route replaced by one that does not count (another device) is withdrawn.
  ASSERT_TRUE(ns_->run("route replace 10.2.0.7/32 via 192.168.5.2 dev other0 proto static"));
  ev = drain();
  ASSERT_EQ(ev.routes.size(), 1u);
  EXPECT_EQ(ev.routes[0].first, A("10.2.0.7"));
  EXPECT_FALSE(ev.routes[0].second);
}

TEST_F(RouteWatcherTest, ConfiguredProtocolsOnly) {
  RouteWatcherOptions o;
  o.protocols = {186};
  ASSERT_NO_FATAL_FAILURE(open(o));
  drain();
  ASSERT_TRUE(ns_->run("route add 10.3.0.1/32 via 192.168.0.2 dev up0 proto static"));
  ASSERT_TRUE(ns_->run("route add 10.3.0.2/32 via 192.168.0.2 dev up0 proto bgp"));
  const auto ev = drain();
  ASSERT_EQ(ev.routes.size(), 1u);
  EXPECT_EQ(ev.routes[0].first, A("10.3.0.2"));
}

TEST_F(RouteWatcherTest, LowestMetricWins) {
  ASSERT_NO_FATAL_FAILURE(open());
  drain();
  ASSERT_TRUE(ns_->run("route add 10.4.0.1/32 via 192.168.0.2 dev up0 proto bgp metric 20"));
  ASSERT_TRUE(ns_->run("route add 10.4.0.1/32 via 192.168.0.3 dev up0 proto ospf metric 10"));
  auto ev = drain();
  ASSERT_EQ(ev.routes.size(), 1u);
  EXPECT_EQ(ev.routes[0].second->protocol, 188);
  EXPECT_EQ(ev.routes[0].second->next_hops, std::vector<IpAddr>{A("192.168.0.3")});
  ASSERT_TRUE(ns_->run("route del 10.4.0.1/32 proto ospf metric 10"));
  ev = drain();
  ASSERT_EQ(ev.routes.size(), 1u);
  EXPECT_EQ(ev.routes[0].second->protocol, 186);
  EXPECT_EQ(ev.routes[0].second->next_hops, std::vector<IpAddr>{A("192.168.0.2")});
}

TEST_F(RouteWatcherTest, EcmpNextHopsAndTheLossOfOne) {
  ASSERT_NO_FATAL_FAILURE(open());
  drain();
  ASSERT_TRUE(ns_->run("route add 10.5.0.1/32 proto bgp nexthop via 192.168.0.3 dev up0 "
                       "nexthop via 192.168.0.2 dev up0 nexthop via 192.168.5.2 dev other0"));
  auto ev = drain();
  ASSERT_EQ(ev.routes.size(), 1u);
  // Sorted, and only those on the uplink.
  EXPECT_EQ(ev.routes[0].second->next_hops,
            (std::vector<IpAddr>{A("192.168.0.2"), A("192.168.0.3")}));
  // One top-of-rack lost: the routing daemon replaces the route.
  ASSERT_TRUE(ns_->run("route replace 10.5.0.1/32 proto bgp nexthop via 192.168.0.3 dev up0"));
  ev = drain();
  ASSERT_EQ(ev.routes.size(), 1u);
  EXPECT_EQ(ev.routes[0].second->next_hops, std::vector<IpAddr>{A("192.168.0.3")});
}

// Two uplinks (issue 23): up0 and other0. An ECMP route over both lists
// both next hops, and says which is on the second; neighbours on either
// count. The second uplink's carrier lost: its next hop leaves the route in
// the very poll that reads the link change (failover), before the resync's
// dump confirms it; the carrier back, the dump brings it back.
TEST_F(RouteWatcherTest, TwoUplinksEcmpAndFailoverWhenOneGoesDown) {
  RouteWatcherOptions o;
  o.uplink2 = "other0";
  ASSERT_NO_FATAL_FAILURE(open(o));
  drain();
  ASSERT_TRUE(
      ns_->run("route add 10.7.0.1/32 proto bgp nexthop via 192.168.0.2 dev up0 "
               "nexthop via 192.168.5.2 dev other0"));
  ASSERT_TRUE(ns_->run("route add 10.7.0.2/32 via 192.168.5.2 dev other0 proto bgp"));
  ASSERT_TRUE(ns_->run("neigh add 192.168.5.2 lladdr 02:00:00:00:05:02 dev other0 nud permanent"));
  auto ev = drain();
  ASSERT_EQ(watcher_->routes().size(), 2u);
  const auto& both = watcher_->routes().at(A("10.7.0.1"));
  EXPECT_EQ(both.next_hops, (std::vector<IpAddr>{A("192.168.0.2"), A("192.168.5.2")}));
  EXPECT_EQ(both.on_uplink2, std::vector<IpAddr>{A("192.168.5.2")});
  EXPECT_TRUE(both.onUplink2(A("192.168.5.2")));
  EXPECT_FALSE(both.onUplink2(A("192.168.0.2")));
  EXPECT_EQ(watcher_->routes().at(A("10.7.0.2")).on_uplink2, std::vector<IpAddr>{A("192.168.5.2")});
  EXPECT_EQ(watcher_->neighbours().count(A("192.168.5.2")), 1u);

  ASSERT_TRUE(ns_->run("link set other0p down"));
  auto first = watcher_->poll(1000);
  ASSERT_TRUE(first) << first.error().describe();
  std::map<IpAddr, std::optional<LearnedRoute>> changed(first->routes.begin(), first->routes.end());
  ASSERT_EQ(changed.count(A("10.7.0.1")), 1u) << "not in the first poll after the link change";
  ASSERT_TRUE(changed[A("10.7.0.1")]);
  EXPECT_EQ(changed[A("10.7.0.1")]->next_hops, std::vector<IpAddr>{A("192.168.0.2")});
  EXPECT_TRUE(changed[A("10.7.0.1")]->on_uplink2.empty());
  ASSERT_EQ(changed.count(A("10.7.0.2")), 1u);
  EXPECT_FALSE(changed[A("10.7.0.2")]) << "its only next hop was on the uplink that went down";
  EXPECT_EQ(watcher_->counters().uplink_down_routes, 2u);
  drain();  // the resync confirms: nothing more changes
  EXPECT_EQ(watcher_->routes().size(), 1u);
  EXPECT_EQ(watcher_->routes().at(A("10.7.0.1")).next_hops, std::vector<IpAddr>{A("192.168.0.2")});

  ASSERT_TRUE(ns_->run("link set other0p up"));
  drain();
  ASSERT_EQ(watcher_->routes().size(), 2u) << "the carrier back, both routes count again";
  EXPECT_EQ(watcher_->routes().at(A("10.7.0.1")).on_uplink2, std::vector<IpAddr>{A("192.168.5.2")});
}

TEST_F(RouteWatcherTest, NeighbourMacsOnTheUplink) {
  ASSERT_NO_FATAL_FAILURE(open());
  drain();
  ASSERT_TRUE(ns_->run("neigh add 192.168.0.2 lladdr 02:00:00:00:00:02 dev up0 nud reachable"));
  ASSERT_TRUE(ns_->run("neigh add 192.168.5.2 lladdr 02:00:00:00:05:02 dev other0 nud permanent"));
  auto ev = drain();
  ASSERT_EQ(ev.neighbours.size(), 1u);  // the other device's is not ours to follow
  EXPECT_EQ(ev.neighbours[0].first, A("192.168.0.2"));
  EXPECT_EQ(ev.neighbours[0].second, M("02:00:00:00:00:02"));

  ASSERT_TRUE(ns_->run("neigh replace 192.168.0.2 lladdr 02:00:00:00:00:99 dev up0 nud stale"));
  ev = drain();
  ASSERT_EQ(ev.neighbours.size(), 1u);
  EXPECT_EQ(ev.neighbours[0].second, M("02:00:00:00:00:99"));
  EXPECT_EQ(watcher_->neighbours().at(A("192.168.0.2")), M("02:00:00:00:00:99"));

  ASSERT_TRUE(ns_->run("neigh del 192.168.0.2 dev up0"));
  ev = drain();
  ASSERT_EQ(ev.neighbours.size(), 1u);
  EXPECT_FALSE(ev.neighbours[0].second);
  EXPECT_TRUE(watcher_->neighbours().empty());
}

// A flood the subscription cannot hold: the watcher sees ENOBUFS, drops
// what is queued, dumps, and ends with exactly the kernel's set, withdrawn
// routes and changed next hops included.
TEST_F(RouteWatcherTest, OverrunResynchronisesExactly) {
  ASSERT_TRUE(ns_->run("route add 10.9.255.1/32 via 192.168.0.2 dev up0 proto bgp"));
  RouteWatcherOptions o;
  o.receive_buffer_bytes = 4096;  // the kernel's minimum is about this
  ASSERT_NO_FATAL_FAILURE(open(o));
  drain();
  const std::string batch = "/tmp/nfo-rwt-" + std::to_string(::getpid()) + ".batch";
  std::map<IpAddr, IpAddr> expected;
  {
    std::ofstream f(batch);
    for (int i = 0; i < 3000; ++i) {
      const std::string a = "10.9." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
      f << "route add " << a << "/32 via 192.168.0.2 dev up0 proto bgp\n";
      expected[*IpAddr::parse(a)] = A("192.168.0.2");
    }
    // Then some withdrawn and some moved to the other next hop.
    for (int i = 0; i < 3000; i += 7) {
      const std::string a = "10.9." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
      if (i % 2) {
        f << "route del " << a << "/32 proto bgp\n";
        expected.erase(*IpAddr::parse(a));
      } else {
        f << "route replace " << a << "/32 via 192.168.0.3 dev up0 proto bgp\n";
        expected[*IpAddr::parse(a)] = A("192.168.0.3");
      }
    }
    f << "route del 10.9.255.1/32 proto bgp\n";
  }
  ASSERT_TRUE(Namespace::sh(ns_->ip("-batch " + batch)));
  std::remove(batch.c_str());
  const auto ev = drain();
  EXPECT_GE(watcher_->counters().overruns, 1u);
  EXPECT_TRUE(ev.resynced);
  EXPECT_EQ(ev.resync_reason, "overrun (ENOBUFS)");
  std::map<IpAddr, IpAddr> have;
  for (const auto& [a, r] : watcher_->routes()) {
    ASSERT_EQ(r.next_hops.size(), 1u);
    have[a] = r.next_hops[0];
  }
  EXPECT_EQ(have.size(), expected.size());
  EXPECT_TRUE(have == expected);
  // What was reported adds up to the same set: 10.9.255.1 withdrawn.
  bool withdrawn = false;
  for (const auto& [a, r] : ev.routes)
    if (a == A("10.9.255.1")) withdrawn = !r;
  EXPECT_TRUE(withdrawn);
}

// issue 22: the kernel removes the routes through a link that goes down
// without a RTM_DELROUTE; the watcher follows the link and resyncs.
TEST_F(RouteWatcherTest, UplinkDownWithdrawsItsRoutesThoughTheKernelSendsNoDelRoute) {
  ASSERT_NO_FATAL_FAILURE(open());
  ASSERT_TRUE(ns_->run("route add 10.6.0.1/32 via 192.168.0.2 dev up0 proto bgp"));
  ASSERT_TRUE(ns_->run("route add 10.6.0.2/32 via 192.168.0.3 dev up0 proto bgp"));
  drain();
  ASSERT_EQ(watcher_->routes().size(), 2u);
  ASSERT_TRUE(ns_->run("link set up0 down"));
  auto ev = drain();
  EXPECT_TRUE(ev.resynced);
  EXPECT_NE(ev.resync_reason.find("uplink up0 down"), std::string::npos) << ev.resync_reason;
  EXPECT_TRUE(watcher_->routes().empty());
  std::set<IpAddr> withdrawn;
  for (const auto& [a, r] : ev.routes)
    if (!r) withdrawn.insert(a);
  EXPECT_EQ(withdrawn, (std::set<IpAddr>{A("10.6.0.1"), A("10.6.0.2")}));
  // Up again, the routing daemon re-installs one; then the carrier goes (the
  // peer down): the route stays in the table, marked linkdown: not learned.
  ASSERT_TRUE(ns_->run("link set up0 up"));
  drain();
  ASSERT_TRUE(ns_->run("route add 10.6.0.1/32 via 192.168.0.2 dev up0 proto bgp"));
  drain();
  ASSERT_EQ(watcher_->routes().size(), 1u);
  ASSERT_TRUE(ns_->run("link set up0p down"));
  ev = drain();
  EXPECT_TRUE(ev.resynced);
  EXPECT_TRUE(watcher_->routes().empty()) << watcher_->routes().size();
  ASSERT_TRUE(ns_->run("link set up0p up"));
  ev = drain();
  EXPECT_EQ(watcher_->routes().size(), 1u) << "the carrier back, the route counts again";
  EXPECT_GE(watcher_->counters().link_messages, 2u);
}

// issue 22: `ip nexthop del` removes the routes using the object.
TEST_F(RouteWatcherTest, ANexthopObjectDeletedTakesItsRoutesAlong) {
  ASSERT_NO_FATAL_FAILURE(open());
  ASSERT_TRUE(ns_->run("nexthop add id 71 via 192.168.0.2 dev up0"));
  ASSERT_TRUE(ns_->run("route add 10.7.0.1/32 nhid 71 proto bgp"));
  ASSERT_TRUE(ns_->run("route add 10.7.0.2/32 nhid 71 proto bgp"));
  drain();
  ASSERT_EQ(watcher_->routes().size(), 2u);
  EXPECT_EQ(watcher_->routes().at(A("10.7.0.1")).next_hops, std::vector<IpAddr>{A("192.168.0.2")});
  ASSERT_TRUE(ns_->run("nexthop del id 71"));
  const auto ev = drain();
  EXPECT_TRUE(watcher_->routes().empty());
  std::size_t withdrawn = 0;
  for (const auto& [a, r] : ev.routes) withdrawn += !r;
  EXPECT_EQ(withdrawn, 2u);
  EXPECT_GE(watcher_->counters().nexthop_messages, 1u);
}

// issue 22: the uplink's addresses (its subnets: never remotes) are
// reported at start and when they change.
TEST_F(RouteWatcherTest, ReportsTheUplinksAddresses) {
  ASSERT_NO_FATAL_FAILURE(open());
  auto ev = drain();
  ASSERT_TRUE(ev.uplink_prefixes);
  EXPECT_EQ(*ev.uplink_prefixes, std::vector<Ipv4Prefix>{*Ipv4Prefix::parse("192.168.0.1/24")});
  ASSERT_TRUE(ns_->run("addr add 198.51.100.7/31 dev up0"));
  ev = drain();
  ASSERT_TRUE(ev.uplink_prefixes);
  EXPECT_EQ(ev.uplink_prefixes->size(), 2u);
  ASSERT_TRUE(ns_->run("addr del 192.168.0.1/24 dev up0"));
  ev = drain();
  ASSERT_TRUE(ev.uplink_prefixes);
  EXPECT_EQ(*ev.uplink_prefixes, std::vector<Ipv4Prefix>{*Ipv4Prefix::parse("198.51.100.7/31")});
  EXPECT_EQ(watcher_->uplinkPrefixes(), *ev.uplink_prefixes);
}

// issue 22: the daemon's full pass compares what was learned with a fresh
// dump (in the background), and the reconcile op does it inline.
TEST_F(RouteWatcherTest, ARequestedResyncRunsInTheBackgroundAndResyncNowInline) {
  ASSERT_TRUE(ns_->run("route add 10.8.0.1/32 via 192.168.0.2 dev up0 proto bgp"));
  ASSERT_NO_FATAL_FAILURE(open());
  drain();
  watcher_->requestResync("full pass");
  pollfd p{watcher_->fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 1000), 1) << "a request makes the descriptor readable";
  auto ev = drain();
  EXPECT_TRUE(ev.resynced);
  EXPECT_EQ(ev.resync_reason, "full pass");
  EXPECT_TRUE(ev.routes.empty()) << "nothing differs: nothing reported";
  ASSERT_TRUE(ns_->run("route add 10.8.0.2/32 via 192.168.0.2 dev up0 proto bgp"));
  auto now = watcher_->resyncNow("reconcile");
  ASSERT_TRUE(now) << now.error().describe();
  EXPECT_TRUE(now->resynced);
  EXPECT_EQ(now->resync_reason, "reconcile");
  ASSERT_EQ(now->routes.size(), 1u);
  EXPECT_EQ(now->routes[0].first, A("10.8.0.2"));
  EXPECT_EQ(watcher_->routes().size(), 2u);
}

TEST_F(RouteWatcherTest, RefusesAnUplinkThatDoesNotExist) {
  RouteWatcherOptions o;
  o.netns = ns_->name();
  o.uplink = "nosuch0";
  auto w = RouteWatcher::open(o);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace nicoffload::offload
