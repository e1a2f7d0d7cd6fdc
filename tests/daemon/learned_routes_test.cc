// LearnedRoutes on its own, over a real Admission with fake seams: kernel
// routes become remotes of origin kernel:<protocol>, another origin wins and
// the route comes back when it lets go, the underlay's addresses are refused
// whatever the order, and a next hop's new MAC re-plans the remotes through it.
#include "nicoffload/daemon/learned_routes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
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

}  // namespace
}  // namespace nicoffload::daemon
