// KernelSoftwarePath against the real kernel: read-back of what apply made,
// what read-back leaves out (other tables and protocols), a count at 20 000
// routes, and read-back on a worker thread while the main thread applies and
// removes routes on the same object. Each test makes its own network
// namespace and deletes it; nothing leaves it. Needs root (skipped else).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>

#include "nicoffload/flowrules/diff.h"
#include "nicoffload/offload/software_path.h"
#include "support/test_netns.h"

namespace nicoffload::offload {
namespace {

using flowrules::RouteEntry;
using flowrules::SoftwarePathState;

constexpr std::uint32_t kTable = 254;
constexpr std::uint8_t kProto = 240;

// A network namespace of the test's own, with a veth pair d0/d1 (up).
class Namespace : public test::TestNetns {
 public:
  Namespace()
      : TestNetns("nfo-swt", {"link set lo up", "link add d0 type veth peer name d1",
                              "link set d0 up", "link set d1 up"}) {}
};

Ipv4Addr nth(std::size_t i) { return Ipv4Addr{0x0A000000u + static_cast<std::uint32_t>(i) + 1}; }

RouteEntry route(std::size_t i) {
  return {Ipv4Prefix{nth(i), 32}, "d0", std::nullopt, false, kTable, kProto, 0};
}

SoftwarePathState routes(std::size_t from, std::size_t to) {
  SoftwarePathState s;
  for (std::size_t i = from; i < to; ++i) s.routes.push_back(route(i));
  return s;
}

std::string firstFailure(const SwApplyReport& r) {
  return r.failures.empty() ? std::string() : r.failures.front().error.describe();
}

class KernelSoftwarePathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    ns_ = std::make_unique<Namespace>();
    ASSERT_TRUE(ns_->ok()) << "cannot make namespace " << ns_->name();
    auto p = openKernelSoftwarePath({.netns = ns_->name()});
    ASSERT_TRUE(p) << p.error().describe();
    path_ = std::move(p).value();
  }
  void TearDown() override {
    path_.reset();
    ns_.reset();
  }
  std::unique_ptr<Namespace> ns_;
  std::unique_ptr<SoftwarePath> path_;
};

TEST_F(KernelSoftwarePathTest, ReadsBackOnlyRoutesOfOurProtocolInOurTable) {
  const auto ours = routes(0, 3);
  const auto applied = path_->apply(ours);
  ASSERT_TRUE(applied.ok()) << firstFailure(applied);
  // Someone else's routes: another protocol in our table, our protocol in
  // other tables (one above 255, carried in RTA_TABLE only), a gateway route.
  for (const char* cmd : {"route add 10.9.0.1/32 dev d0 proto static",
                          "route add 10.9.0.2/32 dev d0 proto 241",
                          "route add 10.9.0.3/32 dev d0 proto boot",
                          "route add 10.9.0.4/32 dev d0 proto 240 table 100",
                          "route add 10.9.0.5/32 dev d0 proto 240 table 1000",
                          "route add 10.9.0.6/32 dev d0 proto 241 table 100",
                          "addr add 192.0.2.1/24 dev d0",
                          "route add 10.9.0.7/32 via 192.0.2.2 proto static"})
    ASSERT_TRUE(Namespace::sh(ns_->ip(cmd))) << cmd;

  auto rb = path_->readBack(ours, {kTable, kProto});
  ASSERT_TRUE(rb) << rb.error().describe();
  EXPECT_EQ(rb->routes, ours.routes);

  // The same namespace seen with the other table as ours: only its route.
  auto other = path_->readBack({}, {100, kProto});
  ASSERT_TRUE(other) << other.error().describe();
  ASSERT_EQ(other->routes.size(), 1u);
  EXPECT_EQ(other->routes[0].dst.str(), "10.9.0.4/32");
  EXPECT_EQ(other->routes[0].table, 100u);
  // A table above 255 (RTA_TABLE).
  auto big = path_->readBack({}, {1000, kProto});
  ASSERT_TRUE(big) << big.error().describe();
  ASSERT_EQ(big->routes.size(), 1u);
  EXPECT_EQ(big->routes[0].dst.str(), "10.9.0.5/32");
  // A table that does not exist holds none of ours (not an error).
  auto none = path_->readBack({}, {4242, kProto});
  ASSERT_TRUE(none) << none.error().describe();
  EXPECT_TRUE(none->routes.empty());
}

// The namespace's notifications tell an idle full pass whether anything
// changed: our own changes, anyone else's (route, neighbour, link, address),
// and a flood that overflows the socket (ENOBUFS) all count; a quiet
// namespace does not.
TEST_F(KernelSoftwarePathTest, ChangesInTheNamespaceAreNoticedAndQuietIsQuiet) {
  (void)path_->changedSinceLastAsked();  // whatever the setup did
  EXPECT_FALSE(path_->changedSinceLastAsked()) << "nothing happened";
  ASSERT_TRUE(path_->apply(routes(0, 2)).ok());
  EXPECT_TRUE(path_->changedSinceLastAsked()) << "our own routes";
  EXPECT_FALSE(path_->changedSinceLastAsked()) << "drained";
  for (const char* cmd : {"route add 10.9.0.1/32 dev d0 proto static",
                          "neigh add 10.9.0.2 lladdr 02:00:00:00:00:02 dev d0",
                          "addr add 192.0.2.1/24 dev d0", "link set d1 mtu 1400",
                          "route del 10.0.0.1/32 dev d0 proto 240"}) {
    ASSERT_TRUE(Namespace::sh(ns_->ip(cmd))) << cmd;
    EXPECT_TRUE(path_->changedSinceLastAsked()) << cmd;
    EXPECT_FALSE(path_->changedSinceLastAsked()) << "drained after " << cmd;
  }
  // The kernel's own neighbour entries (not permanent; any IPv6 one) come and
  // go all the time; read-back ignores them, and so does this.
  for (const char* cmd : {"neigh add 10.9.0.3 lladdr 02:00:00:00:00:03 dev d0 nud stale",
                          "neigh del 10.9.0.3 dev d0",
                          "neigh add 2001:db8::3 lladdr 02:00:00:00:00:03 dev d0 nud permanent"}) {
    ASSERT_TRUE(Namespace::sh(ns_->ip(cmd))) << cmd;
    EXPECT_FALSE(path_->changedSinceLastAsked()) << cmd;
  }
  // More notifications than the socket holds: some are lost, which is a change.
  ASSERT_TRUE(path_->apply(routes(100, 20100)).ok());
  EXPECT_TRUE(path_->changedSinceLastAsked());
  EXPECT_FALSE(path_->changedSinceLastAsked());
}

TEST_F(KernelSoftwarePathTest, ReadsBackTwentyThousandRoutesExactly) {
  const auto want = routes(0, 20000);
  const auto applied = path_->apply(want);
  ASSERT_TRUE(applied.ok()) << firstFailure(applied);
  ASSERT_TRUE(Namespace::sh(ns_->ip("route add 10.200.0.1/32 dev d0 proto static")));
  auto rb = path_->readBack(want, {kTable, kProto});
  ASSERT_TRUE(rb) << rb.error().describe();
  ASSERT_EQ(rb->routes.size(), 20000u);
  EXPECT_TRUE(rb->routes == want.routes);
  const auto removed = path_->remove(want);
  ASSERT_TRUE(removed.ok()) << firstFailure(removed);
  rb = path_->readBack(want, {kTable, kProto});
  ASSERT_TRUE(rb) << rb.error().describe();
  EXPECT_EQ(rb->routes.size(), 0u);
}

// A /32 already in the table: ours (our protocol) is replaced, someone
// else's is refused as a conflict and left as it is.
TEST_F(KernelSoftwarePathTest, ExistingRouteOursReplacedOthersRefused) {
  ASSERT_TRUE(Namespace::sh(ns_->ip("addr add 192.0.2.1/24 dev d1")));
  ASSERT_TRUE(Namespace::sh(ns_->ip("route add 10.0.0.2/32 dev d1 proto static")));
  auto first = path_->apply(routes(0, 1));
  ASSERT_TRUE(first.ok()) << firstFailure(first);
  SoftwarePathState moved;
  moved.routes = {{Ipv4Prefix{nth(0), 32}, "d1", *Ipv4Addr::parse("192.0.2.2"), false, kTable, kProto, 0},
                  route(1)};  // 10.0.0.2: the operator's
  const auto rep = path_->apply(moved);
  EXPECT_EQ(rep.succeeded, 1u);
  ASSERT_EQ(rep.failures.size(), 1u);
  EXPECT_EQ(rep.failures[0].error.code, ErrorCode::kConflict);
  EXPECT_NE(rep.failures[0].error.message.find("dev d1 proto 4"), std::string::npos)
      << rep.failures[0].error.message;
  auto rb = path_->readBack(moved, {kTable, kProto});
  ASSERT_TRUE(rb) << rb.error().describe();
  ASSERT_EQ(rb->routes.size(), 1u);
  EXPECT_EQ(rb->routes[0], moved.routes[0]);
}

// Every kind of object the plan makes, applied and read back unchanged.
TEST_F(KernelSoftwarePathTest, ReadBackOfEveryKindMatchesWhatWasApplied) {
  ASSERT_TRUE(Namespace::sh(ns_->ip("addr add 192.0.2.1/24 dev d1")));
  SoftwarePathState s;
  const MacAddr gw_mac = *MacAddr::parse("ee:ee:ee:ee:ee:ee");
  s.sysctls = {{"ipv4/conf/d0/forwarding", "1", 0},
               {"ipv4/conf/d0/proxy_arp", "1", 0},
               {"ipv4/conf/d0/rp_filter", "0", 0},
               {"ipv4/neigh/d0/proxy_delay", "0", 0},
               {"ipv4/ip_forward", "1", 0}};
  s.links = {{"d0", gw_mac, true, 0}};
  s.addresses = {{"lo", *Ipv4Prefix::parse("169.254.1.1/32"), 0}};
  flowrules::VxlanDevice vx;
  vx.name = "nfo-vx100";
  vx.vni = 100;
  vx.local = *Ipv4Addr::parse("192.0.2.1");
  vx.mac = *MacAddr::parse("02:00:c0:00:02:01");
  vx.underlay_dev = "d1";
  s.vxlan_devices = {vx};
  s.fdb = {{"nfo-vx100", *MacAddr::parse("02:00:c0:00:02:02"), *Ipv4Addr::parse("192.0.2.2"), 0}};
  s.neighbours = {{"d0", *Ipv4Addr::parse("10.1.1.1"), *MacAddr::parse("52:54:00:01:01:01"), 0}};
  s.routes = {route(0), {Ipv4Prefix{*Ipv4Addr::parse("10.3.0.1"), 32}, "nfo-vx100",
                         *Ipv4Addr::parse("192.0.2.2"), true, kTable, kProto, 0}};
  std::sort(s.sysctls.begin(), s.sysctls.end(), [](auto& a, auto& b) { return a.key() < b.key(); });
  const auto applied = path_->apply(s);
  ASSERT_TRUE(applied.ok()) << firstFailure(applied);
  // An operator's VXLAN device (not our prefix) and a non-permanent neighbour
  // are not ours.
  ASSERT_TRUE(Namespace::sh(ns_->ip("link add opvx type vxlan id 7 local 192.0.2.1 dstport 4789")));
  auto rb = path_->readBack(s, {kTable, kProto});
  ASSERT_TRUE(rb) << rb.error().describe();
  const auto d = flowrules::diff(s, *rb);
  EXPECT_TRUE(d.empty()) << d.size() << " objects differ";
  EXPECT_EQ(rb->vxlan_devices, s.vxlan_devices);
  EXPECT_EQ(rb->fdb, s.fdb);
  EXPECT_EQ(rb->neighbours, s.neighbours);
  EXPECT_EQ(rb->links, s.links);
  EXPECT_EQ(rb->addresses, s.addresses);
  EXPECT_EQ(rb->sysctls, s.sysctls);
  EXPECT_EQ(rb->routes, s.routes);
}

// readBack on a worker thread, in a loop, while the main thread applies and
// removes routes on the same object (software_path.h: "Threads").
TEST_F(KernelSoftwarePathTest, ReadBackOnAnotherThreadWhileApplyingAndRemoving) {
  constexpr std::size_t kBatch = 2000, kRounds = 10;
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> reads{0}, failures{0}, foreign{0};
  std::string first_error;
  std::thread reader([&] {
    std::set<std::uint32_t> known;
    for (std::size_t i = 0; i < kBatch * 2; ++i) known.insert(nth(i).value);
    while (!stop.load()) {
      auto rb = path_->readBack({}, {kTable, kProto});
      if (!rb) {
        if (failures++ == 0) first_error = rb.error().describe();
        continue;
      }
      for (const auto& r : rb->routes)
        if (!known.count(r.dst.addr.value) || r.dev != "d0") ++foreign;
      ++reads;
    }
  });
  for (std::size_t round = 0; round < kRounds; ++round) {
    const auto a = routes((round % 2) * kBatch, (round % 2 + 1) * kBatch);
    const auto applied = path_->apply(a);
    EXPECT_TRUE(applied.ok()) << firstFailure(applied);
    const auto removed = path_->remove(a);
    EXPECT_TRUE(removed.ok()) << firstFailure(removed);
  }
  const auto last = routes(0, kBatch);
  const auto applied = path_->apply(last);
  EXPECT_TRUE(applied.ok()) << firstFailure(applied);
  // Let the reader see the final state at least once more.
  const std::size_t seen = reads.load();
  while (reads.load() < seen + 2) std::this_thread::yield();
  stop = true;
  reader.join();
  EXPECT_EQ(failures.load(), 0u) << first_error;
  EXPECT_EQ(foreign.load(), 0u);
  EXPECT_GT(reads.load(), 2u);
  auto rb = path_->readBack(last, {kTable, kProto});
  ASSERT_TRUE(rb) << rb.error().describe();
  EXPECT_TRUE(rb->routes == last.routes);
}

}  // namespace
}  // namespace nicoffload::offload
