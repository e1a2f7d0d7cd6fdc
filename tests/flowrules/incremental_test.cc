// Incremental planning (flowrules/incremental.h): the counts of derived
// objects (decap rules, VXLAN devices, remote VTEPs) and planTouched(), whose
// delta applied to the plan of the intent before a batch must give the plan
// of the intent after it. Table-driven over underlays and batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "nicoffload/flowrules/incremental.h"
#include "nicoffload/flowrules/planner.h"
#include "support/test_support.h"

namespace nicoffload {
namespace {

using flowrules::DerivedChanges;
using flowrules::DerivedDelta;
using flowrules::DerivedRefs;
using flowrules::VtepKey;
using model::UnderlayMode;

struct RefsStep {
  const char* what;
  DerivedDelta delta;
  std::vector<std::uint32_t> decap_added, decap_removed, vni_added, vni_removed;
  std::vector<VtepKey> vtep_added, vtep_removed;
};

DerivedDelta ports(std::initializer_list<std::pair<std::uint32_t, int>> v) {
  DerivedDelta d;
  for (auto [vni, sign] : v) d.port(vni, sign);
  return d;
}

DerivedDelta remotes(std::initializer_list<std::tuple<std::uint32_t, const char*, int>> v) {
  DerivedDelta d;
  for (auto [vni, vtep, sign] : v) d.remote(vni, test::ip(vtep), sign);
  return d;
}

TEST(DerivedRefs, FirstAndLastUserOfEachDerivedObject) {
  const VtepKey a{100, test::ip("192.0.2.2")}, b{200, test::ip("192.0.2.3")};
  // One sequence of batches over the same counts, each step's expectation
  // following from the steps before.
  const std::vector<RefsStep> steps = {
      {"first port of VNI 100: its decap rule and its device", ports({{100, +1}}), {100}, {}, {100}, {}, {}, {}},
      {"a second port of VNI 100: nothing new", ports({{100, +1}}), {}, {}, {}, {}, {}, {}},
      {"a remote in VNI 100 behind a new VTEP: the VTEP only", remotes({{100, "192.0.2.2", +1}}), {}, {}, {}, {}, {a}, {}},
      {"a remote in VNI 200: its device and VTEP, no decap (no local port)", remotes({{200, "192.0.2.3", +1}}), {}, {}, {200}, {}, {b}, {}},
      {"both ports leave: the decap goes, the device stays (the remote uses it)", ports({{100, -1}, {100, -1}}), {}, {100}, {}, {}, {}, {}},
      {"a port moves from 100 to 200 and back in one batch: nothing", ports({{100, +1}, {100, -1}}), {}, {}, {}, {}, {}, {}},
      {"the last users leave: every device and VTEP goes", remotes({{100, "192.0.2.2", -1}, {200, "192.0.2.3", -1}}), {}, {}, {}, {100, 200}, {}, {a, b}},
      {"a removal of what is not counted: no count goes negative", ports({{300, -1}}), {}, {}, {}, {}, {}, {}},
  };
  DerivedRefs refs;
  for (const auto& s : steps) {
    SCOPED_TRACE(s.what);
    const DerivedChanges c = refs.apply(s.delta);
    EXPECT_EQ(c.decap_added, s.decap_added);
    EXPECT_EQ(c.decap_removed, s.decap_removed);
    EXPECT_EQ(c.vni_added, s.vni_added);
    EXPECT_EQ(c.vni_removed, s.vni_removed);
    EXPECT_EQ(c.vtep_added, s.vtep_added);
    EXPECT_EQ(c.vtep_removed, s.vtep_removed);
    EXPECT_EQ(c.any(), !(s.decap_added.empty() && s.decap_removed.empty() && s.vni_added.empty() &&
                         s.vni_removed.empty() && s.vtep_added.empty() && s.vtep_removed.empty()));
  }
  EXPECT_EQ(refs, DerivedRefs{}) << "every count back to nothing";
  EXPECT_EQ(refs.portsIn(300), 0u);
}

TEST(DerivedRefs, CountedAtStartLikeBatches) {
  DerivedRefs start, batches;
  start.addPort(100);
  start.addPort(100);
  start.addRemote(100, test::ip("192.0.2.2"));
  batches.apply(ports({{100, +1}, {100, +1}}));
  batches.apply(remotes({{100, "192.0.2.2", +1}}));
  EXPECT_EQ(start, batches);
  EXPECT_EQ(start.portsIn(100), 2u);
  EXPECT_EQ(start.usersOf(100u), 3u);
  EXPECT_EQ(start.usersOf(VtepKey{100, test::ip("192.0.2.2")}), 1u);
  EXPECT_EQ(start.portVnis(), std::vector<std::uint32_t>{100});
}

TEST(VanishedRules, OnlyIdsTheNewPlanDropped) {
  const auto host = test::makeHost(UnderlayMode::kRouted);
  flowrules::OwnerPlanner planner(host, test::loadProfile("sim"));
  const auto one = test::unwrap(planner.portRules(test::makePort(0, {"10.0.0.1"})), "one");
  const auto two = test::unwrap(planner.portRules(test::makePort(0, {"10.0.0.1", "10.0.0.2"})), "two");
  EXPECT_TRUE(flowrules::vanishedRules(one, two).empty()) << "an address added drops nothing";
  const auto gone = flowrules::vanishedRules(two, one);
  EXPECT_EQ(gone.size(), two.size() - one.size()) << "an address removed drops its own rules only";
  for (const auto id : gone)
    EXPECT_TRUE(std::none_of(one.begin(), one.end(), [&](const auto& r) { return r.id == id; }));
  EXPECT_EQ(flowrules::vanishedRules(one, {}).size(), one.size());
}

// --- planTouched: the incremental plan against two whole plans ---

struct Batch {
  const char* what;
  UnderlayMode mode;
  model::Intent before, after;
  bool derived;
};

model::Intent intentOf(UnderlayMode mode, std::vector<model::Port> ports,
                       std::vector<model::RemoteEndpoint> remotes) {
  model::Intent i;
  i.host = test::makeHost(mode);
  i.ports = std::move(ports);
  i.remotes = std::move(remotes);
  return i;
}

// `i` over an IPv6 underlay: this host's VTEP 2001:db8:ff::1, each remote's
// 192.0.2.x VTEP as 2001:db8:ff::x, the underlay router as the next hop.
model::Intent overIpv6(model::Intent i) {
  const auto v6 = [](const IpAddr& v4) {
    Ipv6Addr a = *Ipv6Addr::parse("2001:db8:ff::");
    a.bytes[15] = static_cast<std::uint8_t>(v4.v4().value & 0xff);
    return a;
  };
  i.host.vtep = *Ipv6Addr::parse("2001:db8:ff::1");
  i.host.next_hops = {{*Ipv6Addr::parse("2001:db8:ff::fe"), test::mac("0c:42:a1:ff:ff:fd"), 0}};
  i.host.default_next_hop = *Ipv6Addr::parse("2001:db8:ff::fe");
  for (auto& r : i.remotes) r.vtep = v6(*r.vtep);
  return i;
}

std::set<flowrules::RuleId> ids(const std::vector<flowrules::FlowRule>& rules) {
  std::set<flowrules::RuleId> out;
  for (const auto& r : rules) out.insert(r.id);
  return out;
}

template <class T, class Key>
std::vector<flowrules::Touched<T>> touched(const std::vector<T>& before, const std::vector<T>& after,
                                           Key key) {
  std::vector<flowrules::Touched<T>> out;
  for (const auto& b : before) {
    auto it = std::find_if(after.begin(), after.end(), [&](const T& a) { return key(a) == key(b); });
    out.push_back({&b, it == after.end() ? nullptr : &*it});
  }
  for (const auto& a : after)
    if (std::none_of(before.begin(), before.end(), [&](const T& b) { return key(a) == key(b); }))
      out.push_back({nullptr, &a});
  return out;
}

TEST(PlanTouched, DeltaOnThePlanBeforeGivesThePlanAfter) {
  using test::makePort;
  const auto r1 = test::routedRemote("10.20.0.1"), r2 = test::routedRemote("10.20.0.2");
  const auto v1 = test::vxlanRemote("10.20.0.1", "192.0.2.2"),
             v2 = test::vxlanRemote("10.20.0.2", "192.0.2.3", 200);
  const auto R = UnderlayMode::kRouted, V = UnderlayMode::kVxlan;
  const std::vector<Batch> batches = {
      {"routed: a port added", R, intentOf(R, {}, {r1}),
       intentOf(R, {makePort(0, {"10.0.0.1"})}, {r1}), false},
      {"routed: a port's address added", R, intentOf(R, {makePort(0, {"10.0.0.1"})}, {}),
       intentOf(R, {makePort(0, {"10.0.0.1", "10.0.0.2"})}, {}), false},
      {"routed: a port removed, a remote added", R, intentOf(R, {makePort(0, {"10.0.0.1"})}, {r1}),
       intentOf(R, {}, {r1, r2}), false},
      {"vxlan: the first port of VNI 100", V, intentOf(V, {}, {v1}),
       intentOf(V, {makePort(0, {"10.0.0.1"}, 100)}, {v1}), true},
      {"vxlan: a second port of VNI 100", V, intentOf(V, {makePort(0, {"10.0.0.1"}, 100)}, {v1}),
       intentOf(V, {makePort(0, {"10.0.0.1"}, 100), makePort(1, {"10.0.1.1"}, 100)}, {v1}), false},
      {"vxlan: a remote behind a new VTEP in a new VNI", V,
       intentOf(V, {makePort(0, {"10.0.0.1"}, 100)}, {v1}),
       intentOf(V, {makePort(0, {"10.0.0.1"}, 100)}, {v1, v2}), true},
      {"vxlan: everything goes", V, intentOf(V, {makePort(0, {"10.0.0.1"}, 100)}, {v1, v2}),
       intentOf(V, {}, {}), true},
      {"vxlan over IPv6: a remote behind a new VTEP in a new VNI", V,
       overIpv6(intentOf(V, {makePort(0, {"10.0.0.1"}, 100)}, {v1})),
       overIpv6(intentOf(V, {makePort(0, {"10.0.0.1"}, 100)}, {v1, v2})), true},
      {"vxlan over IPv6: everything goes", V,
       overIpv6(intentOf(V, {makePort(0, {"10.0.0.1"}, 100)}, {v1, v2})),
       overIpv6(intentOf(V, {}, {})), true},
  };
  const auto profile = test::loadProfile("sim");
  for (const auto& b : batches) {
    SCOPED_TRACE(b.what);
    const auto whole_before = test::planOrThrow(b.before, profile);
    const auto whole_after = test::planOrThrow(b.after, profile);
    flowrules::OwnerPlanner planner(b.before.host, profile);
    flowrules::CouplingCounts coupling;
    coupling.recount(whole_before.rules);
    DerivedRefs refs;
    if (b.mode == V) {
      for (const auto& p : b.before.ports) refs.addPort(planner.vniOf(p));
      for (const auto& r : b.before.remotes) refs.addRemote(planner.vniOf(r), *r.vtep);
    }
    const auto ports = touched(b.before.ports, b.after.ports, [](const auto& p) { return p.key; });
    const auto remotes =
        touched(b.before.remotes, b.after.remotes, [](const auto& r) { return r.address; });
    auto plan = test::unwrap(
        flowrules::planTouched(planner, planner, ports, remotes, coupling, refs), "planTouched");
    EXPECT_EQ(plan.derived, b.derived);

    auto now = ids(whole_before.rules);
    for (const auto id : plan.remove) EXPECT_EQ(now.erase(id), 1u) << "removes only what was planned";
    for (const auto& r : plan.upsert) now.insert(r.id);
    EXPECT_EQ(now, ids(whole_after.rules));
    EXPECT_EQ(whole_before.sw.size() - plan.sw_before.size() + plan.sw_after.size(),
              whole_after.sw.size());
    flowrules::CouplingCounts recounted;
    recounted.recount(whole_after.rules);
    EXPECT_EQ(coupling.coupled(profile, b.mode), recounted.coupled(profile, b.mode));
  }
}

TEST(PlanTouched, AnAdmittedPortThatDoesNotPlanIsAnErrorNamingIt) {
  const auto host = test::makeHost(UnderlayMode::kRouted);
  const auto profile = test::loadProfile("sim");
  flowrules::OwnerPlanner planner(host, profile);
  auto bad = test::makePort(3, {"10.0.0.1"});
  bad.vf.reset();  // no VF: nothing to deliver to
  const std::vector<flowrules::Touched<model::Port>> ports = {{nullptr, &bad}};
  flowrules::CouplingCounts coupling;
  DerivedRefs refs;
  auto plan = flowrules::planTouched(planner, planner, ports, {}, coupling, refs);
  ASSERT_FALSE(plan) << "a port without a VF does not plan";
  EXPECT_EQ(plan.error().field, "port.vf");
  EXPECT_NE(plan.error().message.find("planning admitted port " + bad.key.str()), std::string::npos)
      << plan.error().message;
}

}  // namespace
}  // namespace nicoffload
