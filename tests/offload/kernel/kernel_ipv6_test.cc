// The kernel path's IPv6 objects against the real kernel (issue 23): a VM's
// /128 route and neighbour on its representor, proxy NDP for the gateway's
// fe80::1, and the device settings, applied, read back, converged, removed;
// then a real ping6 between a "VM" namespace and the hypervisor's namespace
// through them. Each test makes its own namespaces and deletes them; no
// packet leaves them. Needs root (skipped else).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "nicoffload/flowrules/diff.h"
#include "nicoffload/flowrules/planner.h"
#include "nicoffload/offload/software_path.h"
#include "support/test_netns.h"
#include "support/test_support.h"

namespace nicoffload::offload {
namespace {

using flowrules::Neighbour6Entry;
using flowrules::Route6Entry;
using flowrules::SoftwarePathState;
using flowrules::SysctlSetting;

constexpr std::uint32_t kTable = 254;
constexpr std::uint8_t kProto = 240;

Ipv6Addr ip6(const char* text) { return *Ipv6Addr::parse(text); }

std::string firstFailure(const SwApplyReport& r) {
  return r.failures.empty() ? std::string() : r.failures.front().object + ": " + r.failures.front().error.describe();
}

// The objects of one IPv6 VM on representor d0, as the planner emits them.
SoftwarePathState vmObjects() {
  SoftwarePathState s;
  s.sysctls = {{"ipv6/conf/d0/proxy_ndp", "1", 0}, {"ipv6/neigh/d0/proxy_delay", "0", 0}};
  s.neighbours6 = {{"d0", ip6("2001:db8:1::10"), test::mac("52:54:00:00:01:01"), false, 0},
                   {"d0", ip6("fe80::1"), MacAddr{}, true, 0}};
  s.routes6 = {
      {Ipv6Prefix{ip6("2001:db8:1::10"), 128}, "d0", kTable, kProto, 0, std::nullopt, false}};
  s.rules6 = {
      {"d0", flowrules::kRule6AllowPriority, std::nullopt, Ipv6Prefix{ip6("fe80::"), 10}, false, kTable, kProto, 0},
      {"d0", flowrules::kRule6AllowPriority, Ipv6Prefix{ip6("2001:db8:1::10"), 128}, std::nullopt, false, kTable,
       kProto, 0},
      {"d0", flowrules::kRule6BlackholePriority, std::nullopt, std::nullopt, true, 0, kProto, 0}};
  std::sort(s.rules6.begin(), s.rules6.end(), [](const auto& a, const auto& b) { return a.key() < b.key(); });
  return s;
}

class KernelIpv6Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    ns_ = std::make_unique<test::TestNetns>(
        "nfo-v6", std::initializer_list<const char*>{"link set lo up", "link add d0 type veth peer name d1",
                                                     "link set d0 up", "link set d1 up"});
    ASSERT_TRUE(ns_->ok()) << "cannot make namespace " << ns_->name();
    auto p = openKernelSoftwarePath({.netns = ns_->name()});
    ASSERT_TRUE(p) << p.error().describe();
    path_ = std::move(p).value();
  }
  void TearDown() override {
    path_.reset();
    ns_.reset();
  }
  std::unique_ptr<test::TestNetns> ns_;
  std::unique_ptr<SoftwarePath> path_;
};

TEST_F(KernelIpv6Test, AppliesReadsBackConvergesAndRemoves) {
  const auto want = vmObjects();
  const auto applied = path_->apply(want);
  ASSERT_TRUE(applied.ok()) << firstFailure(applied);
  EXPECT_EQ(applied.succeeded, want.size());
  auto rb = path_->readBack(want, {kTable, kProto});
  ASSERT_TRUE(rb) << rb.error().describe();
  EXPECT_EQ(rb->routes6, want.routes6);
  EXPECT_EQ(rb->neighbours6, want.neighbours6);
  EXPECT_EQ(rb->rules6, want.rules6);
  const auto d = flowrules::diff(want, *rb);
  EXPECT_TRUE(d.routes6.empty() && d.neighbours6.empty() && d.rules6.empty());
  // (The IPv4 settings of d0 are read back too: this plan leaves them out.)
  EXPECT_TRUE(d.sysctls.add.empty() && d.sysctls.modify.empty())
      << d.sysctls.add.size() << " added, " << d.sysctls.modify.size() << " changed";
  // Applying again changes nothing and succeeds (idempotent).
  EXPECT_TRUE(path_->apply(want).ok());

  // Someone else's route to another /128, in our table, and someone else's
  // rule: never read as ours.
  ASSERT_TRUE(ns_->run("-6 route add 2001:db8:1::99/128 dev d0 proto static"));
  ASSERT_TRUE(ns_->run("-6 rule add iif d0 from 2001:db8:1::99 lookup main pref 20000"));
  rb = path_->readBack(want, {kTable, kProto});
  ASSERT_TRUE(rb);
  EXPECT_EQ(rb->routes6, want.routes6);
  EXPECT_EQ(rb->rules6, want.rules6);

  // Removal: routes, neighbours and the proxy entry gone, the settings back
  // to the namespace's defaults.
  const auto removed = path_->remove(want);
  ASSERT_TRUE(removed.ok()) << firstFailure(removed);
  rb = path_->readBack(want, {kTable, kProto});
  ASSERT_TRUE(rb);
  EXPECT_TRUE(rb->routes6.empty());
  EXPECT_TRUE(rb->neighbours6.empty());
  EXPECT_TRUE(rb->rules6.empty());
  EXPECT_TRUE(ns_->run("-6 rule show pref 20000 | grep -q 2001:db8:1::99")) << "the operator's rule stays";
  for (const auto& s : rb->sysctls) {
    if (s.path == "ipv6/conf/d0/proxy_ndp") {
      EXPECT_EQ(s.value, "0");
    }
  }
  // Removing what is gone succeeds.
  EXPECT_TRUE(path_->remove(want).ok());
}

// A remote's /128 (issue 23): through an IPv6 gateway on the uplink, and,
// as on VXLAN, through a link-local stand-in, onlink, which a permanent
// neighbour resolves. Applied, read back equal, removed.
TEST_F(KernelIpv6Test, RemoteRoutesThroughAnIpv6Gateway) {
  SoftwarePathState want;
  want.routes6 = {
      {Ipv6Prefix{ip6("2001:db8:9::5"), 128}, "d0", kTable, kProto, 0, ip6("fe80::2"), false},
      {Ipv6Prefix{ip6("2001:db8:9::6"), 128}, "d0", kTable, kProto, 0,
       flowrules::vtepGateway6(test::ip("10.99.0.2")), true}};
  want.neighbours6 = {{"d0", flowrules::vtepGateway6(test::ip("10.99.0.2")),
                       test::mac("02:00:0a:63:00:02"), false, 0}};
  const auto applied = path_->apply(want);
  ASSERT_TRUE(applied.ok()) << firstFailure(applied);
  auto rb = path_->readBack(want, {kTable, kProto});
  ASSERT_TRUE(rb) << rb.error().describe();
  EXPECT_EQ(rb->routes6, want.routes6);
  EXPECT_EQ(rb->neighbours6, want.neighbours6);
  EXPECT_TRUE(ns_->run("-6 route show 2001:db8:9::5 | grep -q 'via fe80::2 dev d0'"));
  EXPECT_TRUE(ns_->run("-6 route show 2001:db8:9::6 | grep -q 'via fe80::a63:2 dev d0'"));
  // A changed gateway is a change the diff sees, and apply makes.
  auto moved = want;
  moved.routes6[0].via = ip6("fe80::3");
  EXPECT_FALSE(flowrules::diff(moved, *rb).routes6.empty());
  ASSERT_TRUE(path_->apply(moved).ok());
  rb = path_->readBack(moved, {kTable, kProto});
  ASSERT_TRUE(rb);
  EXPECT_EQ(rb->routes6, moved.routes6);
  ASSERT_TRUE(path_->remove(moved).ok());
  rb = path_->readBack(moved, {kTable, kProto});
  ASSERT_TRUE(rb);
  EXPECT_TRUE(rb->routes6.empty());
  EXPECT_TRUE(rb->neighbours6.empty());
}

TEST_F(KernelIpv6Test, AnotherOwnersRouteIsAConflictNotReplaced) {
  ASSERT_TRUE(ns_->run("-6 route add 2001:db8:1::10/128 dev d1 proto static"));
  const auto r = path_->apply(vmObjects());
  ASSERT_EQ(r.failures.size(), 1u) << firstFailure(r);
  EXPECT_EQ(r.failures[0].error.code, ErrorCode::kConflict);
  EXPECT_NE(r.failures[0].error.message.find("someone else"), std::string::npos);
  // Ours is replaced: the same /128 made by us earlier on another device.
  ASSERT_TRUE(ns_->run("-6 route del 2001:db8:1::10/128"));
  auto moved = vmObjects();
  moved.routes6[0].dev = "d1";
  ASSERT_TRUE(path_->apply(moved).ok());
  const auto again = path_->apply(vmObjects());
  EXPECT_TRUE(again.ok()) << firstFailure(again);
  auto rb = path_->readBack(vmObjects(), {kTable, kProto});
  ASSERT_TRUE(rb);
  ASSERT_EQ(rb->routes6.size(), 1u);
  EXPECT_EQ(rb->routes6[0].dev, "d0");
}

// A "VM" in a namespace of its own, its NIC the peer of representor d0: it
// has 2001:db8:1::10/128 and a default route via fe80::1, nothing else. The
// hypervisor's namespace has the planner's objects for it, plus an address
// of its own on lo to ping from. A ping6 in both directions: the VM resolves
// fe80::1 by proxy NDP, the host reaches the VM by its /128 route.
TEST_F(KernelIpv6Test, PingBetweenAVmAndTheHostThroughThePlannedObjects) {
  test::TestNetns vm("nfo-v6vm", {"link set lo up"});
  ASSERT_TRUE(vm.ok());
  ASSERT_TRUE(ns_->run("link set d1 netns " + vm.name()));
  for (const char* cmd : {"link set d1 address 52:54:00:00:01:01", "link set d1 up",
                          "-6 addr add 2001:db8:1::10/128 dev d1 nodad",
                          "-6 route add default via fe80::1 dev d1"})
    ASSERT_TRUE(vm.run(cmd)) << cmd;
  ASSERT_TRUE(ns_->run("-6 addr add 2001:db8:ff::1/128 dev lo"));

  // The planner's objects for such a port and host (gateway.ipv6 fe80::1).
  auto intent = test::exampleIntent(test::Example::kRouted);
  intent.host.gateway_ipv6 = ip6("fe80::1");
  auto& port = intent.ports[0];
  port.representor = "d0";
  port.mac = test::mac("52:54:00:00:01:01");
  port.addresses6 = {ip6("2001:db8:1::10")};
  flowrules::OwnerPlanner planner(intent.host, test::loadProfile("sim"));
  SoftwarePathState s;
  planner.hostObjects(s);
  planner.portObjects(port, s);
  // The IPv4 side of the example is not under test here.
  s.addresses.clear();
  s.routes.clear();
  s.neighbours.clear();
  std::erase_if(s.sysctls, [](const SysctlSetting& x) { return x.path.rfind("ipv6/", 0) != 0; });
  ASSERT_EQ(s.routes6.size(), 1u);
  const auto applied = path_->apply(s);
  ASSERT_TRUE(applied.ok()) << firstFailure(applied);

  EXPECT_TRUE(test::TestNetns::sh("ip netns exec " + vm.name() +
                                  " ping -6 -c 2 -i 0.2 -W 2 -I 2001:db8:1::10 2001:db8:ff::1"))
      << "VM -> host";
  EXPECT_TRUE(test::TestNetns::sh("ip netns exec " + ns_->name() +
                                  " ping -6 -c 2 -i 0.2 -W 2 -I 2001:db8:ff::1 2001:db8:1::10"))
      << "host -> VM";
  // The source check: the VM with an address that is not its own gets
  // nowhere; its own still passes.
  ASSERT_TRUE(vm.run("-6 addr add 2001:db8:1::66/128 dev d1 nodad"));
  EXPECT_FALSE(test::TestNetns::sh("ip netns exec " + vm.name() +
                                   " ping -6 -c 1 -W 1 -I 2001:db8:1::66 2001:db8:ff::1"))
      << "a spoofed source must be dropped";
  EXPECT_TRUE(test::TestNetns::sh("ip netns exec " + vm.name() +
                                  " ping -6 -c 1 -W 2 -I 2001:db8:1::10 2001:db8:ff::1"));
  // The VM learned the gateway from the proxy: its MAC is d0's.
  EXPECT_TRUE(test::TestNetns::sh("ip -n " + vm.name() + " -6 neigh show fe80::1 dev d1 | grep -q lladdr"));
}

}  // namespace
}  // namespace nicoffload::offload
