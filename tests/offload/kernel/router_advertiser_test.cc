// Router advertisements (offload/router_advertiser.h) against the real
// kernel: a hypervisor namespace with a representor (a veth) whose peer is
// a VM's NIC in a namespace of its own. The VM's kernel, as any Linux guest
// does (accept_ra), takes the default route and the gateway's MAC from the
// advertisement; it loses the route when the proxy entry goes; its router
// solicitation is answered.
#include "nicoffload/offload/router_advertiser.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "support/test_netns.h"

namespace nicoffload::offload {
namespace {

using namespace std::chrono_literals;

// The output of one of the test's own fixed commands.
std::string output(const std::string& cmd) {
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen((cmd + " 2>&1").c_str(), "r"), ::pclose);
  if (!p) return out;
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), buf.size(), p.get())) out += buf.data();
  return out;
}

template <class F>
bool waitFor(F&& f, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (f()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return f();
}

class RouterAdvertiserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    vm_ = std::make_unique<test::TestNetns>("nfo-ravm", std::initializer_list<const char*>{
                                                            "link set lo up"});
    ASSERT_TRUE(vm_->ok());
    hv_ = std::make_unique<test::TestNetns>("nfo-rahv", std::initializer_list<const char*>{
                                                            "link set lo up"});
    ASSERT_TRUE(hv_->ok());
    ASSERT_TRUE(sh("ip netns exec " + hv_->name() + " sysctl -qw net.ipv6.conf.all.forwarding=1"));
    ASSERT_TRUE(hv_->run("link add rep1 type veth peer name eth0 netns " + vm_->name()));
    // The VM: a guest that takes advertisements (Linux's default).
    ASSERT_TRUE(sh("ip netns exec " + vm_->name() +
                   " sysctl -qw net.ipv6.conf.default.accept_ra=1 net.ipv6.conf.eth0.accept_ra=1"));
    ASSERT_TRUE(vm_->run("link set eth0 up"));
    ASSERT_TRUE(hv_->run("link set rep1 up"));
    ASSERT_TRUE(hv_->run("-6 neigh add proxy fe80::1 dev rep1"));
    // The VM's link-local address must be past DAD before its kernel
    // takes an advertisement.
    ASSERT_TRUE(waitFor(
        [&] {
          const auto a = output(vm_->ip("-6 addr show dev eth0 scope link"));
          return a.find("fe80::") != std::string::npos && a.find("tentative") == std::string::npos;
        },
        5s));
  }
  static bool sh(const std::string& cmd) { return test::TestNetns::sh(cmd); }
  std::string vmDefault() const { return output(vm_->ip("-6 route show default")); }

  RouterAdvertiserOptions options() const {
    RouterAdvertiserOptions o;
    o.netns = hv_->name();
    o.gateway = *Ipv6Addr::parse("fe80::1");
    o.gateway_mac = *MacAddr::parse("ee:ee:ee:ee:ee:ee");
    o.interval = 30s;
    o.router_lifetime = 1800s;
    o.rescan = 100ms;
    return o;
  }

  std::unique_ptr<test::TestNetns> vm_, hv_;
};

TEST_F(RouterAdvertiserTest, TheVmTakesItsDefaultRouteAndLosesItWhenThePortGoes) {
  auto ra = RouterAdvertiser::start(options());
  ASSERT_TRUE(ra) << ra.error().describe();
  ASSERT_TRUE(waitFor([&] { return vmDefault().find("via fe80::1 dev eth0") != std::string::npos; },
                      5s))
      << vmDefault();
  EXPECT_NE(vmDefault().find("proto ra"), std::string::npos) << vmDefault();
  // The gateway's MAC came with it (the source link-layer option).
  EXPECT_NE(output(vm_->ip("-6 neigh show fe80::1 dev eth0")).find("ee:ee:ee:ee:ee:ee"),
            std::string::npos);
  const auto c = (*ra)->counters();
  EXPECT_EQ(c.devices, 1u);
  EXPECT_GE(c.sent, 1u);
  EXPECT_EQ(c.send_errors, 0u);

  // A solicitation (the VM's NIC down and up: Linux solicits) is answered.
  const auto sent = (*ra)->counters().sent;
  ASSERT_TRUE(vm_->run("link set eth0 down"));
  ASSERT_TRUE(vm_->run("link set eth0 up"));
  EXPECT_TRUE(waitFor([&] { return (*ra)->counters().solicited >= 1; }, 10s));
  EXPECT_TRUE(waitFor([&] { return (*ra)->counters().sent > sent; }, 5s));
  EXPECT_TRUE(waitFor([&] { return vmDefault().find("via fe80::1") != std::string::npos; }, 5s))
      << vmDefault();

  // The port goes (its proxy entry with it): a last advertisement with
  // lifetime 0 takes the VM's default route away.
  ASSERT_TRUE(hv_->run("-6 neigh del proxy fe80::1 dev rep1"));
  EXPECT_TRUE(waitFor([&] { return vmDefault().find("via fe80::1") == std::string::npos; }, 5s))
      << vmDefault();
  EXPECT_TRUE(waitFor([&] { return (*ra)->counters().devices == 0; }, 2s));
}

TEST_F(RouterAdvertiserTest, OnlyWhereTheGatewayHasAProxyEntry) {
  ASSERT_TRUE(hv_->run("-6 neigh del proxy fe80::1 dev rep1"));
  ASSERT_TRUE(hv_->run("-6 neigh add proxy fe80::2 dev rep1"));  // another address
  auto ra = RouterAdvertiser::start(options());
  ASSERT_TRUE(ra) << ra.error().describe();
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ((*ra)->counters().devices, 0u);
  EXPECT_EQ((*ra)->counters().sent, 0u);
  EXPECT_EQ(vmDefault().find("via fe80::1"), std::string::npos) << vmDefault();
}

TEST(RouterAdvertiser, RefusesWhatRfc4861Forbids) {
  RouterAdvertiserOptions o;
  o.gateway = *Ipv6Addr::parse("2001:db8::1");
  o.gateway_mac = *MacAddr::parse("ee:ee:ee:ee:ee:ee");
  auto bad = RouterAdvertiser::start(o);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "gateway.ipv6");
  o.gateway = *Ipv6Addr::parse("fe80::1");
  o.interval = 2s;
  bad = RouterAdvertiser::start(o);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "router_advertisements.interval_s");
  o.interval = 600s;
  o.router_lifetime = 300s;
  bad = RouterAdvertiser::start(o);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "router_advertisements.lifetime_s");
  o.router_lifetime = 9001s;
  EXPECT_FALSE(RouterAdvertiser::start(o));
}

}  // namespace
}  // namespace nicoffload::offload
