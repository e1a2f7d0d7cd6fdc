// LearnedRoutes on its own, over a real Admission with fake seams: kernel
// routes become remotes of origin kernel:<protocol>, another origin wins and
// the route comes back when it lets go, the underlay's addresses are refused
// whatever the order, and a next hop's new MAC re-plans the remotes through it.
#include "nicoffload/daemon/learned_routes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace nicoffload::daemon {
namespace {

using nlohmann::json;

Ipv4Addr ip(const char* text) { return *Ipv4Addr::parse(text); }

model::HostConfig host() {
  model::HostConfig h;
  h.name = "hv-test";
  h.uplink_pci = "0000:03:00.0";
  h.uplink_netdev = "uplink0";
  h.vf_count = 4;
  h.gateway_ipv4 = ip("169.254.1.1");
  h.gateway_mac = *MacAddr::parse("ee:ee:ee:ee:ee:ee");
  h.uplink_mac = *MacAddr::parse("0c:42:a1:00:00:01");
  h.learn_routes = true;
  h.learn_deny.push_back(*Ipv4Prefix::parse("10.99.0.0/16"));
  return h;
}

offload::LearnedRoute route(const char* address, std::vector<const char*> hops) {
  offload::LearnedRoute r;
  r.address = *IpAddr::parse(address);
  r.protocol = 186;  // bgp
  for (auto h : hops) r.next_hops.push_back(*IpAddr::parse(h));
  return r;
}

struct Fixture {
  Fixture() = default;
  explicit Fixture(model::HostConfig h) : cfg(std::move(h)) {}
  model::HostConfig cfg = host();
  LearnedRoutes learned{cfg, [] { return std::chrono::steady_clock::time_point{}; }};
  Admission admission{
      cfg, Admission::Seams{
               .port_plans = [](const model::Port&) { return Status::success(); },
               .pool_ready = [](const model::Port&) -> const std::set<std::uint16_t>* {
                 return nullptr;
               },
               .claim_clock_ms = [] { return std::int64_t{0}; },
               .note_claim = [](std::int64_t) {},
               .underlay_use = [this](const IpAddr& a) { return learned.underlayUse(a); },
           }};
  std::vector<std::vector<model::UnderlayNextHop>> hop_changes;

  LearnedRoutes::Applied apply(offload::RouteEvents ev) {
    admission.beginBatch();
    learned.count(ev);
    return learned.apply(ev, admission, [this](std::vector<model::UnderlayNextHop> hops) {
      hop_changes.push_back(std::move(hops));
    });
  }
  const model::RemoteEndpoint* remote(const char* a) const { return admission.findRemote(ip(a)); }
};

TEST(LearnedRoutes, ARouteBecomesARemoteOfItsProtocolsOrigin) {
  Fixture f;
  offload::RouteEvents ev;
  ev.neighbours.push_back({ip("192.0.2.254"), MacAddr::parse("0c:42:a1:ff:ff:fe")});
  ev.routes.push_back({ip("10.20.0.1"), route("10.20.0.1", {"192.0.2.254"})});
  const auto applied = f.apply(ev);
  EXPECT_EQ(applied.route_changes, 1u);
  ASSERT_NE(f.remote("10.20.0.1"), nullptr);
  EXPECT_EQ(f.remote("10.20.0.1")->origin, "kernel:bgp");
  EXPECT_EQ(f.remote("10.20.0.1")->next_hop, ip("192.0.2.254"));
  EXPECT_EQ(f.admission.log().remotes.count(ip("10.20.0.1")), 1u) << "touched: to be reconciled";
  EXPECT_EQ(f.learned.size(), 1u);

  // Withdrawn: the remote goes.
  offload::RouteEvents gone;
  gone.routes.push_back({ip("10.20.0.1"), std::nullopt});
  f.apply(gone);
  EXPECT_EQ(f.remote("10.20.0.1"), nullptr);
  EXPECT_TRUE(f.learned.empty());
}

// IPv6 (gateway.ipv6 set): a /128 through a link-local next hop becomes a
// remote, the next hop's MAC comes from the uplink's IPv6 neighbours; an
// IPv4 route through an IPv6 next hop (RFC 5549) is followed too. A
// link-local /128 is refused, and so is any /128 on a host without IPv6.
TEST(LearnedRoutes, Ipv6RoutesAndIpv6NextHops) {
  const auto a = [](const char* t) { return *IpAddr::parse(t); };
  model::HostConfig h = host();
  h.gateway_ipv6 = *Ipv6Addr::parse("fe80::1");
  Fixture f(h);
  offload::RouteEvents ev;
  ev.neighbours.push_back({a("fe80::2"), MacAddr::parse("0c:42:a1:00:00:62")});
  ev.routes.push_back({a("2001:db8:9::5"), route("2001:db8:9::5", {"fe80::2"})});
  ev.routes.push_back({a("10.20.0.9"), route("10.20.0.9", {"fe80::2"})});
  ev.routes.push_back({a("fe80::99"), route("fe80::99", {"fe80::2"})});
  f.apply(ev);
  const auto* v6 = f.admission.findRemote(a("2001:db8:9::5"));
  ASSERT_NE(v6, nullptr);
  EXPECT_EQ(v6->origin, "kernel:bgp");
  EXPECT_EQ(v6->next_hop, a("fe80::2"));
  const auto* rfc5549 = f.admission.findRemote(a("10.20.0.9"));
  ASSERT_NE(rfc5549, nullptr);
  EXPECT_EQ(rfc5549->next_hop, a("fe80::2"));
  EXPECT_EQ(f.admission.findRemote(a("fe80::99")), nullptr);
  auto refused = f.learned.refusedList({{"refused", true}});
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->dump().find("fe80::99/128"), std::string::npos) << refused->dump();
  // The planner learns the next hop's MAC.
  ASSERT_FALSE(f.hop_changes.empty());
  const auto& hops = f.hop_changes.back();
  EXPECT_TRUE(std::any_of(hops.begin(), hops.end(), [&](const auto& hop) {
    return hop.address == a("fe80::2") && hop.mac == *MacAddr::parse("0c:42:a1:00:00:62");
  }));
  EXPECT_NE(f.learned.underlayUse(a("fe80::2")), "") << "a next hop is the underlay's";

  Fixture off;  // no gateway.ipv6
  offload::RouteEvents ev4;
  ev4.routes.push_back({a("2001:db8:9::5"), route("2001:db8:9::5", {"fe80::2"})});
  off.apply(ev4);
  EXPECT_EQ(off.admission.findRemote(a("2001:db8:9::5")), nullptr);
  auto why = off.learned.refusedList({{"refused", true}});
  ASSERT_TRUE(why);
  EXPECT_NE(why->dump().find("gateway.ipv6"), std::string::npos) << why->dump();
}

TEST(LearnedRoutes, AnotherOriginWinsAndTheRouteComesBackWhenItLetsGo) {
  Fixture f;
  ASSERT_TRUE(f.admission.remoteAdd({{"remote", {{"address", "10.20.0.1/32"}, {"next_hop", "192.0.2.9"}}}}));
  offload::RouteEvents ev;
  ev.routes.push_back({ip("10.20.0.1"), route("10.20.0.1", {"192.0.2.254"})});
  f.apply(ev);
  EXPECT_EQ(f.remote("10.20.0.1")->origin, "api") << "the operator's remote wins";
  const json why = f.learned.explain(ip("10.20.0.1"), f.remote("10.20.0.1"));
  EXPECT_EQ(why["followed"], false);

  f.admission.beginBatch();
  ASSERT_TRUE(f.admission.remoteRemove({{"address", "10.20.0.1"}}));
  EXPECT_EQ(f.remote("10.20.0.1"), nullptr);
  ASSERT_TRUE(f.learned.routed(ip("10.20.0.1")));
  f.learned.reinstate({ip("10.20.0.1")}, f.admission);
  ASSERT_NE(f.remote("10.20.0.1"), nullptr);
  EXPECT_EQ(f.remote("10.20.0.1")->origin, "kernel:bgp");
}

TEST(LearnedRoutes, TheUnderlaysAddressesAreRefusedWhateverTheOrder) {
  // A router's own /32 first, then a route through it: the /32 goes.
  Fixture f;
  offload::RouteEvents first;
  first.routes.push_back({ip("192.0.2.7"), route("192.0.2.7", {"192.0.2.254"})});
  f.apply(first);
  ASSERT_NE(f.remote("192.0.2.7"), nullptr);
  offload::RouteEvents second;
  second.routes.push_back({ip("10.20.0.5"), route("10.20.0.5", {"192.0.2.7"})});
  second.routes.push_back({ip("10.99.1.1"), route("10.99.1.1", {"192.0.2.254"})});
  f.apply(second);
  EXPECT_EQ(f.remote("192.0.2.7"), nullptr) << "a next hop is the underlay's";
  EXPECT_NE(f.remote("10.20.0.5"), nullptr);
  EXPECT_EQ(f.remote("10.99.1.1"), nullptr) << "kernel.learn_prefixes.deny";
  EXPECT_NE(f.learned.underlayUse(ip("192.0.2.7")), "");

  auto list = f.learned.refusedList({{"refused", true}});
  ASSERT_TRUE(list) << list.error().describe();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0]["address"], "10.99.1.1/32");
  EXPECT_NE((*list)[0]["reason"].get<std::string>().find("deny"), std::string::npos);
  EXPECT_EQ((*list)[1]["address"], "192.0.2.7/32");
  EXPECT_FALSE(f.learned.refusedList({{"refused", false}})) << "refused: false is not a list";
}

TEST(LearnedRoutes, ANextHopsNewMacReplansExactlyTheRemotesThroughIt) {
  Fixture f;
  offload::RouteEvents ev;
  ev.neighbours.push_back({ip("192.0.2.254"), MacAddr::parse("0c:42:a1:ff:ff:fe")});
  ev.routes.push_back({ip("10.20.0.1"), route("10.20.0.1", {"192.0.2.254"})});
  ev.routes.push_back({ip("10.20.0.2"), route("10.20.0.2", {"192.0.2.253"})});
  f.apply(ev);
  ASSERT_EQ(f.hop_changes.size(), 1u) << "the first MAC of a hop is a change";

  offload::RouteEvents moved;
  moved.neighbours.push_back({ip("192.0.2.254"), MacAddr::parse("0c:42:a1:ff:ff:01")});
  const auto applied = f.apply(moved);
  EXPECT_EQ(applied.hops_moved, 1u);
  ASSERT_EQ(f.hop_changes.size(), 2u);
  ASSERT_EQ(f.hop_changes.back().size(), 1u);
  EXPECT_EQ(f.hop_changes.back()[0].mac, *MacAddr::parse("0c:42:a1:ff:ff:01"));
  const auto& touched = f.admission.log().remotes;
  EXPECT_EQ(touched.size(), 1u);
  EXPECT_EQ(touched.count(ip("10.20.0.1")), 1u) << "only the remote through the moved hop";

  const json status = f.learned.statusJson(f.admission, {});
  EXPECT_EQ(status["learned"], 2);
  EXPECT_EQ(status["route_events"], 2);
  EXPECT_EQ(status["neighbour_events"], 2);
}

// Two uplinks (issue 23): a route over both ToRs spreads its remotes by
// destination (the same choice every time); the hops the route lists on the
// second uplink are published with uplink 1, and a hop that comes to the
// second uplink later is published again, re-planning exactly its remotes.
// One uplink's next hop withdrawn (its link or session lost): every remote
// through it moves to the other, and status counts remotes per uplink.
TEST(LearnedRoutes, TwoUplinksSpreadByDestinationAndFailOver) {
  model::HostConfig h = host();
  h.uplink2 =
      model::SecondUplink{"0000:03:00.1", "uplink1", *MacAddr::parse("0c:42:a1:00:00:02"), 9};
  Fixture f(h);
  offload::RouteEvents ev;
  ev.neighbours.push_back({ip("192.0.2.254"), MacAddr::parse("0c:42:a1:ff:ff:fe")});
  ev.neighbours.push_back({ip("198.51.100.1"), MacAddr::parse("0c:42:a1:ff:ff:01")});
  const auto both = [](const char* a) {
    auto r = route(a, {"192.0.2.254", "198.51.100.1"});
    r.on_uplink2 = {*IpAddr::parse("198.51.100.1")};
    return r;
  };
  std::vector<std::string> addresses;
  for (int i = 1; i <= 64; ++i) addresses.push_back("10.30.0." + std::to_string(i));
  for (const auto& a : addresses) ev.routes.push_back({ip(a.c_str()), both(a.c_str())});
  f.apply(ev);
  ASSERT_FALSE(f.hop_changes.empty());
  for (const auto& hop : f.hop_changes.back())
    EXPECT_EQ(hop.uplink, hop.address == IpAddr(ip("198.51.100.1")) ? 1 : 0) << hop.address.str();
  std::map<std::string, IpAddr> chosen;
  std::size_t on_second = 0;
  for (const auto& a : addresses) {
    ASSERT_NE(f.remote(a.c_str()), nullptr) << a;
    chosen[a] = *f.remote(a.c_str())->next_hop;
    if (chosen[a] == IpAddr(ip("198.51.100.1"))) ++on_second;
  }
  EXPECT_GT(on_second, 16u) << "both uplinks carry remotes";
  EXPECT_LT(on_second, 48u) << "both uplinks carry remotes";
  json status = f.learned.statusJson(f.admission, {});
  ASSERT_EQ(status["uplinks"].size(), 2u) << status.dump();
  EXPECT_EQ(status["uplinks"][1]["netdev"], "uplink1");
  EXPECT_EQ(status["uplinks"][1]["remotes"], on_second);
  EXPECT_EQ(status["uplinks"][0]["remotes"], addresses.size() - on_second);

  // The same routes again, in another order: the same choices.
  Fixture g(h);
  offload::RouteEvents reversed = ev;
  std::reverse(reversed.routes.begin(), reversed.routes.end());
  g.apply(reversed);
  for (const auto& a : addresses) EXPECT_EQ(*g.remote(a.c_str())->next_hop, chosen[a]) << a;

  // The second uplink lost (the watcher drops its hops): every remote
  // through it moves to the first, the others stay untouched.
  offload::RouteEvents lost;
  for (const auto& a : addresses)
    lost.routes.push_back({ip(a.c_str()), route(a.c_str(), {"192.0.2.254"})});
  f.apply(lost);
  for (const auto& a : addresses)
    EXPECT_EQ(*f.remote(a.c_str())->next_hop, IpAddr(ip("192.0.2.254"))) << a;
  EXPECT_EQ(f.admission.log().remotes.size(), on_second) << "exactly the remotes that moved";
  status = f.learned.statusJson(f.admission, {});
  EXPECT_EQ(status["uplinks"][1]["remotes"], 0);

  // A hop first seen on the first uplink, later listed on the second: it is
  // published again with uplink 1, and its remotes are re-planned.
  Fixture k(h);
  offload::RouteEvents one;
  one.neighbours.push_back({ip("198.51.100.9"), MacAddr::parse("0c:42:a1:ff:ff:09")});
  one.routes.push_back({ip("10.31.0.1"), route("10.31.0.1", {"198.51.100.9"})});
  k.apply(one);
  ASSERT_EQ(k.hop_changes.size(), 1u);
  EXPECT_EQ(k.hop_changes.back()[0].uplink, 0);
  offload::RouteEvents rehomed;
  auto r = route("10.31.0.1", {"198.51.100.9"});
  r.on_uplink2 = {*IpAddr::parse("198.51.100.9")};
  rehomed.routes.push_back({ip("10.31.0.1"), r});
  k.apply(rehomed);
  ASSERT_EQ(k.hop_changes.size(), 2u);
  EXPECT_EQ(k.hop_changes.back()[0].uplink, 1);
  EXPECT_EQ(k.admission.log().remotes.count(ip("10.31.0.1")), 1u);
}

}  // namespace
}  // namespace nicoffload::daemon
