// The controller's reconciler with the simulated NIC (fault injection), an
// in-memory software path that can fail on command, and an injected clock.
#include "nicoffload/daemon/controller.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <csignal>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <mutex>
#include <random>
#include <tuple>
#include <stdexcept>
#include <utility>

#include "nicoffload/model/parse.h"
#include "nicoffload/offload/sim_pf.h"
#include "nicoffload/simnic/sim_eswitch.h"
#include "nicoffload/vdpa/sim_vdpa_backend.h"
#include "memory_software_path.h"
#include "support/temp_dirs.h"

namespace nicoffload::daemon {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

using test_support::MemorySoftwarePath;

struct Fixture {
  std::string dir = testing::makeTempDir("nfo-ctrl");
  model::HostConfig host;
  model::HwProfile profile;
  simnic::SimEswitch* nic = nullptr;     // owned by the controller
  MemorySoftwarePath* sw = nullptr;  // owned by the controller
  SteadyClock::time_point now{};
  // The wall clock; tests of tentative ports move it with `now` (advance()).
  std::chrono::system_clock::time_point wall{std::chrono::hours(24 * 365 * 56)};
  std::unique_ptr<Controller> ctl;
  bool background_full_pass = false;  // tick() runs a due full pass at once
  bool in_memory_flow = false;        // the simulated NIC keeps no files (RLIMIT_FSIZE tests)
  ControllerOptions defaults;         // bulk_threshold, bulk_items_per_slice as given here

  Fixture() {
    auto h =
        model::loadHostConfig(std::string(NICOFFLOAD_SOURCE_DIR) + "/examples/host-routed.json");
    EXPECT_TRUE(h.ok());
    host = *h;
    host.state_dir = dir + "/state";
    host.sim_device_dir = dir + "/simnic";
    host.socket_path = dir + "/ctl.sock";  // the vDPA links go beside it
    host.vdpa_backend = model::VdpaKind::kNone;
    // No periodic traffic sweep: the tests of the loop's timing count on
    // knowing what is due; the traffic tests turn it on.
    host.traffic_interval_ms = 0;
    auto p = model::loadHwProfile(std::string(NICOFFLOAD_SOURCE_DIR) + "/hw-profiles/sim.json");
    EXPECT_TRUE(p.ok());
    profile = *p;
  }

  std::unique_ptr<offload::SimPf>
      nic_mgmt;  // SR-IOV / eswitch / vDPA simulation, when devices = true

  void start(bool with_sw = true, bool devices = false) {
    auto n = in_memory_flow ? simnic::SimEswitch::create(profile, host.vf_count)
                            : simnic::SimEswitch::open(profile, host.vf_count, host.sim_device_dir);
    ASSERT_TRUE(n.ok()) << n.error().describe();
    nic = n->get();
    Backends b;
    b.flow = std::move(n).value();
    if (with_sw) {
      auto s = std::make_unique<MemorySoftwarePath>();
      sw = s.get();
      b.software_path = std::move(s);
    }
    if (devices) {
      if (!nic_mgmt) {
        auto m = offload::SimPf::open({dir + "/nicmgmt", profile, host.uplink_pci, "simpf0"});
        ASSERT_TRUE(m.ok()) << m.error().describe();
        nic_mgmt = std::move(m).value();
      }
      b.nic = nic_mgmt->makeBackend();
      b.vdpa = vdpa::makeSimVdpaBackend(*nic_mgmt);
    }
    ControllerOptions o;
    o.retry_min = milliseconds(100);
    o.retry_max = milliseconds(800);
    o.reconcile_interval = milliseconds(60000);
    o.now = [this] { return now; };
    o.wall_now = [this] { return wall; };
    o.background_full_pass = background_full_pass;
    o.bulk_threshold = defaults.bulk_threshold;
    o.bulk_items_per_slice = defaults.bulk_items_per_slice;
    auto c = Controller::start(host, profile, std::move(b), StateStore(host.state_dir), o);
    ASSERT_TRUE(c.ok()) << c.error().describe();
    ctl = std::move(c).value();
  }

  void useHostFile(const std::string& name) {
    auto h = model::loadHostConfig(std::string(NICOFFLOAD_SOURCE_DIR) + "/examples/" + name);
    ASSERT_TRUE(h.ok());
    host = *h;
    host.state_dir = dir + "/state";
    host.sim_device_dir = dir + "/simnic";
    host.socket_path = dir + "/ctl.sock";
    host.vdpa_backend = model::VdpaKind::kNone;
    host.traffic_interval_ms = 0;
  }

  json call(json req) {
    std::vector<control::Request> batch{{1, std::move(req), 0}};
    return ctl->handle(batch)[0];
  }

  // Time goes by, on both clocks.
  void advance(milliseconds d) {
    now += d;
    wall += d;
  }
  std::int64_t nowMs() const {
    return std::chrono::duration_cast<milliseconds>(now.time_since_epoch()).count();
  }

  static json port(int i, json extra = json::object()) {
    json p = {{"vm", "00000000-0000-4000-8000-00000000000" + std::to_string(i)},
              {"nic", 0},
              {"mac", "52:54:00:00:00:0" + std::to_string(i)},
              {"addresses", {"10.0." + std::to_string(i) + ".1/32"}},
              {"representor", "rep" + std::to_string(i)}};
    for (auto it = extra.begin(); it != extra.end(); ++it) p[it.key()] = it.value();
    return p;
  }
};

TEST(Controller, PortAddInstallsRulesOnTheDeviceInSafeOrder) {
  Fixture f;
  f.start();
  const auto before = f.nic->size();
  auto r = f.call({{"op", "port.add"}, {"port", Fixture::port(1)}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["status"]["state"], "installed");
  EXPECT_EQ(f.nic->size(), before + 5u) << "arp trap, allow, 2 drops, delivery";
  // Ordering: the FIB rule (jump target) before the allow that jumps to it,
  // the allow before the drops that back it.
  std::map<std::string, std::uint64_t> seq;
  for (const auto& fl : f.nic->flows()) {
    if (fl.rule.owner != flowrules::portOwner({Fixture::port(1)["vm"], 0})) continue;
    const std::string k =
        std::string(flowrules::toString(fl.rule.cls)) + "/" + std::to_string(fl.rule.attr.priority);
    seq.emplace(k, fl.sequence);
  }
  ASSERT_EQ(seq.count("local-delivery/0"), 1u);
  EXPECT_LT(seq["local-delivery/0"], seq["anti-spoofing/0"]);
  EXPECT_LT(seq["anti-spoofing/0"], seq["anti-spoofing/1"]);
  EXPECT_TRUE(f.sw->hasRoute("10.0.1.1/32", "rep1"));
}

TEST(Controller, AnIpv6PortGetsItsRulesAndKernelObjectsAndIsRefusedWithIpv6Off) {
  Fixture f;
  f.start();
  json v6 = Fixture::port(1);
  v6["addresses"].push_back("2001:db8:1::1");
  auto off = f.call({{"op", "port.add"}, {"port", v6}});
  ASSERT_FALSE(off["ok"]) << off.dump();
  EXPECT_EQ(off["error"]["field"], "port.addresses");
  EXPECT_EQ(off["error"]["value"], "2001:db8:1::1");
  EXPECT_NE(off["error"]["message"].get<std::string>().find("gateway.ipv6"), std::string::npos);
  EXPECT_TRUE(f.ctl->intent().ports.empty()) << "nothing admitted";

  Fixture g;
  g.host.gateway_ipv6 = *Ipv6Addr::parse("fe80::1");
  g.start();
  const auto before = g.nic->size();
  auto r = g.call({{"op", "port.add"}, {"port", v6}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["status"]["state"], "installed");
  EXPECT_EQ(g.nic->size(), before + 5u + 5u) << "IPv4's five; 2 ND traps, allow, drop, delivery";
  const auto& held = g.sw->held();
  ASSERT_EQ(held.routes6.size(), 1u);
  EXPECT_EQ(held.routes6[0].dst.str(), "2001:db8:1::1/128");
  EXPECT_EQ(held.routes6[0].dev, "rep1");
  ASSERT_EQ(held.neighbours6.size(), 2u) << "the VM's neighbour and the gateway's proxy entry";
  auto got = g.call({{"op", "port.get"}, {"vm", v6["vm"]}, {"nic", 0}});
  ASSERT_TRUE(got["ok"]) << got.dump();
  EXPECT_EQ(got["result"]["port"]["addresses"], json({"10.0.1.1/32", "2001:db8:1::1/128"}));
  // Removing the port removes its IPv6 objects too.
  ASSERT_TRUE(g.call({{"op", "port.remove"}, {"vm", v6["vm"]}, {"nic", 0}})["ok"]);
  EXPECT_TRUE(g.sw->held().routes6.empty());
  EXPECT_TRUE(g.sw->held().neighbours6.empty());
  EXPECT_EQ(g.nic->size(), before);
}

// A remote /128 (issue 23) through the daemon: refused with IPv6 off or
// without its IPv6 next hop, naming the field; admitted, it gets a hardware
// egress rule (its next hop's MAC from underlay.next_hops) and a kernel
// route through that gateway; it survives a restart (journal), without
// device churn; remote.remove takes it away.
TEST(Controller, AnIpv6RemoteGetsItsRuleAndRouteAndSurvivesARestart) {
  const json remote6{{"address", "2001:db8:9::5/128"}, {"next_hop", "fe80::6"}};
  Fixture f;
  f.start();
  auto off = f.call({{"op", "remote.add"}, {"remote", remote6}});
  ASSERT_FALSE(off["ok"]) << off.dump();
  EXPECT_EQ(off["error"]["field"], "remote.address");
  EXPECT_NE(off["error"]["message"].get<std::string>().find("gateway.ipv6"), std::string::npos);

  Fixture g;
  g.host.gateway_ipv6 = *Ipv6Addr::parse("fe80::1");
  g.host.next_hops.push_back(
      {IpAddr(*Ipv6Addr::parse("fe80::6")), *MacAddr::parse("0c:42:a1:00:00:66")});
  g.start();
  auto no_hop = g.call({{"op", "remote.add"}, {"remote", {{"address", "2001:db8:9::5"}}}});
  ASSERT_FALSE(no_hop["ok"]) << no_hop.dump();
  EXPECT_EQ(no_hop["error"]["code"], "missing-field");
  EXPECT_EQ(no_hop["error"]["field"], "remote.next_hop");
  const auto before = g.nic->size();
  auto r = g.call({{"op", "remote.add"}, {"remote", remote6}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["remote"], remote6);
  EXPECT_EQ(g.nic->size(), before + 1) << "one egress rule";
  const auto owner = flowrules::remoteOwner(*IpAddr::parse("2001:db8:9::5"));
  std::size_t hw = 0;
  for (const auto& fl : g.nic->flows()) {
    if (fl.rule.owner != owner) continue;
    ++hw;
    EXPECT_EQ(fl.rule.cls, flowrules::RuleClass::kRoutedEgress);
  }
  EXPECT_EQ(hw, 1u);
  const auto& held = g.sw->held();
  ASSERT_EQ(held.routes6.size(), 1u);
  EXPECT_EQ(held.routes6[0].dst.str(), "2001:db8:9::5/128");
  EXPECT_EQ(held.routes6[0].via, *Ipv6Addr::parse("fe80::6"));
  EXPECT_EQ(held.routes6[0].dev, g.host.uplink_netdev);
  auto list = g.call({{"op", "remote.list"}});
  ASSERT_TRUE(list["ok"]) << list.dump();
  EXPECT_NE(list["result"].dump().find("2001:db8:9::5/128"), std::string::npos) << list.dump();

  const auto held_rules = g.nic->size();
  g.ctl.reset();
  g.start();
  EXPECT_EQ(g.ctl->intent().remotes.size(), 1u);
  EXPECT_EQ(g.ctl->intent().remotes[0].address, *IpAddr::parse("2001:db8:9::5"));
  EXPECT_EQ(g.ctl->applier().counters().creations, 0u);
  EXPECT_EQ(g.nic->size(), held_rules);

  auto gone = g.call({{"op", "remote.remove"}, {"address", "2001:db8:9::5"}});
  ASSERT_TRUE(gone["ok"]) << gone.dump();
  EXPECT_EQ(gone["result"]["removed"], true);
  EXPECT_EQ(g.nic->size(), before);
  EXPECT_TRUE(g.sw->held().routes6.empty());
  auto bad = g.call({{"op", "remote.remove"}, {"address", "2001:db8:9::5/64"}});
  ASSERT_FALSE(bad["ok"]);
  EXPECT_EQ(bad["error"]["field"], "address");
}

TEST(Controller, FailingCreateLeavesTheRuleOutOfHardwareAndARetrySucceedsLater) {
  Fixture f;
  f.start();
  // The device is busy for every rule that jumps: they must not be counted hw.
  f.nic->failAction(model::ActionType::kJump, ErrorCode::kBusy);
  auto r = f.call({{"op", "port.add"}, {"port", Fixture::port(2)}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  std::size_t refused = 0;
  for (const auto& rule : r["result"]["status"]["rules"]["list"])
    if (rule["class"] == "anti-spoofing" && rule["placement"] == "sw") ++refused;
  EXPECT_GE(refused, 1u) << r.dump(1);
  const auto hw_before = f.ctl->applier().counters().hw;
  EXPECT_EQ(f.nic->size(), hw_before) << "installed state follows the device";
  // The device recovers; a retry (the periodic pass here) installs them.
  f.nic->clearFaults();
  f.now += milliseconds(60001);
  f.ctl->tick();
  EXPECT_GT(f.ctl->applier().counters().hw, hw_before);
  EXPECT_EQ(f.nic->size(), f.ctl->applier().counters().hw);
}

TEST(Controller, KernelFailureRetriesWithExponentialBackoff) {
  Fixture f;
  f.start();
  f.sw->failNext("rep3", 14);  // 7 objects name rep3: the first pass and one retry fail
  auto r = f.call({{"op", "port.add"}, {"port", Fixture::port(3)}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["status"]["state"], "degraded");
  EXPECT_EQ(f.ctl->untilNextTick(), milliseconds(100));
  f.now += milliseconds(100);
  f.ctl->tick();  // retry 1: still failing
  EXPECT_EQ(f.ctl->untilNextTick(), milliseconds(200)) << "backoff doubles";
  f.now += milliseconds(200);
  f.ctl->tick();  // retry 2: the kernel takes them now
  EXPECT_GE(f.ctl->counters().retries, 2u);
  auto g = f.call({{"op", "port.get"}, {"vm", Fixture::port(3)["vm"]}, {"nic", 0}});
  EXPECT_EQ(g["result"]["state"], "installed") << g.dump(1);
  EXPECT_TRUE(f.sw->hasRoute("10.0.3.1/32", "rep3"));
}

// A backoff per object: a port whose kernel objects have failed for a while
// does not delay the retry of one that failed a moment ago; port.get and
// status show each object's attempts and retry time.
TEST(Controller, EachFailingObjectKeepsItsOwnBackoff) {
  Fixture f;
  f.start();
  f.sw->failNext("rep3", 1000);  // port 3's 7 objects fail on every attempt
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(3)}})["ok"]);
  for (const auto step : {100, 200, 400}) {
    ASSERT_EQ(f.ctl->untilNextTick(), milliseconds(step));
    f.now += milliseconds(step);
    f.ctl->tick();
  }
  EXPECT_EQ(f.ctl->untilNextTick(), milliseconds(800)) << "port 3's objects: at the ceiling";
  f.sw->failNext("rep4", 7);  // port 4's objects fail once
  auto r = f.call({{"op", "port.add"}, {"port", Fixture::port(4)}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["status"]["state"], "degraded");
  EXPECT_EQ(f.ctl->untilNextTick(), milliseconds(100))
      << "a fresh failure is retried after retry_min, whatever port 3 waits for";
  auto g3 = f.call({{"op", "port.get"}, {"vm", Fixture::port(3)["vm"]}, {"nic", 0}});
  const auto& failing3 = g3["result"]["software_path_failures"];
  ASSERT_EQ(failing3.size(), 7u) << g3.dump(1);
  for (const auto& o : failing3) {
    EXPECT_EQ(o["attempts"], 4) << o.dump();
    EXPECT_EQ(o["retry_in_ms"], 800) << o.dump();
    EXPECT_EQ(o["failing_for_ms"], 700) << o.dump();
    EXPECT_NE(o["object"].get<std::string>().find("rep3"), std::string::npos) << o.dump();
  }
  auto g4 = f.call({{"op", "port.get"}, {"vm", Fixture::port(4)["vm"]}, {"nic", 0}});
  ASSERT_EQ(g4["result"]["software_path_failures"].size(), 7u) << g4.dump(1);
  EXPECT_EQ(g4["result"]["software_path_failures"][0]["attempts"], 1);
  EXPECT_EQ(g4["result"]["software_path_failures"][0]["retry_in_ms"], 100);
  auto st = f.call({{"op", "status"}});
  EXPECT_EQ(st["result"]["failures"]["objects"], 14) << st["result"]["failures"].dump(1);
  EXPECT_EQ(st["result"]["failures"]["kernel"], 14);
  EXPECT_EQ(st["result"]["failures"]["next_retry_in_ms"], 100);
  EXPECT_EQ(st["result"]["failures"]["oldest"][0]["object"].get<std::string>().find("rep3") !=
                std::string::npos,
            true)
      << "the longest failing first";
  // The retry pass tries every failed object; the kernel takes them all now.
  f.now += milliseconds(100);
  f.ctl->tick();
  for (const int i : {3, 4}) {
    auto g = f.call({{"op", "port.get"}, {"vm", Fixture::port(i)["vm"]}, {"nic", 0}});
    EXPECT_EQ(g["result"]["state"], "installed") << g.dump(1);
  }
  st = f.call({{"op", "status"}});
  EXPECT_EQ(st["result"]["failures"]["objects"], 0) << st.dump(1);
  EXPECT_TRUE(st["result"]["failures"]["next_retry_in_ms"].is_null());
  EXPECT_EQ(f.ctl->untilNextTick(), milliseconds(60000 - 800)) << "only the periodic pass is due";
}

TEST(Controller, DeleteOfWhatIsGoneSucceeds) {
  Fixture f;
  f.start();
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(4)}})["ok"]);
  // Someone flushed the device behind our back (a port restart does that).
  ASSERT_TRUE(f.nic->flush().ok());
  auto r = f.call({{"op", "port.remove"}, {"vm", Fixture::port(4)["vm"]}, {"nic", 0}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_TRUE(r["result"]["removed"]);
  r = f.call({{"op", "port.remove"}, {"vm", Fixture::port(4)["vm"]}, {"nic", 0}});
  ASSERT_TRUE(r["ok"]);
  EXPECT_FALSE(r["result"]["removed"]) << "idempotent";
}

TEST(Controller, PeriodicPassReinstallsWhatVanished) {
  Fixture f;
  f.start();
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(5)}})["ok"]);
  const auto hw = f.ctl->applier().counters().hw;
  ASSERT_TRUE(f.nic->flush().ok());
  EXPECT_EQ(f.nic->size(), 0u);
  f.now += milliseconds(60001);
  f.ctl->tick();
  EXPECT_EQ(f.nic->size(), hw) << "every hw rule is back";
}

// A periodic pass that finds nothing changed since the last clean one only
// verifies the device: no plan, no read-back. Whatever changed makes the
// next pass compute in full: a batch, a rule gone from the device, a
// notified kernel change, SIGHUP; an unnotified drift waits for every
// full_compute_every-th pass.
TEST(Controller, AnIdleFullPassOnlyVerifiesUnlessSomethingChanged) {
  Fixture f;
  f.start();
  f.sw->reports_changes = true;
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(5)}})["ok"]);
  const auto hw = f.ctl->applier().counters().hw;
  auto pass = [&] {
    const int before = f.sw->read_backs;
    f.now += milliseconds(60001);
    f.ctl->tick();
    return f.sw->read_backs > before ? "full" : "quiet";
  };
  EXPECT_STREQ(pass(), "full") << "the first pass after a batch";
  EXPECT_STREQ(pass(), "quiet");
  EXPECT_STREQ(pass(), "quiet");
  EXPECT_EQ(f.ctl->counters().quiet_passes, 2u);

  ASSERT_TRUE(f.nic->flush().ok());
  EXPECT_STREQ(pass(), "full") << "rules vanished from the device";
  EXPECT_EQ(f.nic->size(), hw);
  EXPECT_STREQ(pass(), "full") << "the repair's own changes";
  EXPECT_STREQ(pass(), "quiet");

  f.sw->drift(true);
  EXPECT_FALSE(f.sw->hasRoute("10.0.5.1/32", "rep5"));
  EXPECT_STREQ(pass(), "full") << "a notified kernel change";
  EXPECT_TRUE(f.sw->hasRoute("10.0.5.1/32", "rep5"));
  EXPECT_STREQ(pass(), "full") << "the repair's own changes";

  f.ctl->requestFullPass();
  f.ctl->tick();
  EXPECT_STREQ(pass(), "quiet") << "a quiet one";
  f.ctl->requestFullPass();
  int before = f.sw->read_backs;
  f.ctl->tick();
  EXPECT_GT(f.sw->read_backs, before) << "SIGHUP computes in full";

  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(6)}})["ok"]);
  EXPECT_STREQ(pass(), "full") << "a batch";

  f.sw->drift(false);
  int passes = 0;
  while (!f.sw->hasRoute("10.0.5.1/32", "rep5") && passes < 20) {
    pass();
    ++passes;
  }
  EXPECT_TRUE(f.sw->hasRoute("10.0.5.1/32", "rep5")) << "repaired by the every-Nth pass";
  EXPECT_LE(passes, 10) << "full_compute_every = 10";
  EXPECT_GE(passes, 2) << "the unnotified drift is not seen by a quiet pass";
}

TEST(Controller, RestartAdoptsWithoutChurnAndKeepsThePorts) {
  Fixture f;
  f.start();
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(6)}})["ok"]);
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(7)}})["ok"]);
  const auto held = f.nic->size();
  f.ctl.reset();  // stop
  f.start();
  EXPECT_EQ(f.ctl->intent().ports.size(), 2u);
  EXPECT_EQ(f.ctl->applier().counters().creations, 0u);
  EXPECT_EQ(f.ctl->applier().counters().destructions, 0u);
  EXPECT_EQ(f.nic->size(), held);
}

TEST(Controller, RefusedMutationChangesNothingAndIsNotPersisted) {
  Fixture f;
  f.start();
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(8)}})["ok"]);
  const auto held = f.nic->size();
  auto r =
      f.call({{"op", "port.add"}, {"port", Fixture::port(9, {{"addresses", {"10.0.8.1/32"}}})}});
  ASSERT_FALSE(r["ok"]);
  EXPECT_EQ(r["error"]["code"], "duplicate");
  EXPECT_EQ(r["error"]["field"], "port.addresses[0]");
  EXPECT_EQ(f.nic->size(), held);
  auto state = StateStore(f.host.state_dir).load();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->ports.size(), 1u);
  // A batch: the good request lands even though its neighbour is refused.
  std::vector<control::Request> batch{
      {1, {{"op", "port.add"}, {"port", Fixture::port(9, {{"mac", "zz"}})}}, 0},
      {2, {{"op", "port.add"}, {"port", Fixture::port(9)}}, 0}};
  auto replies = f.ctl->handle(batch);
  EXPECT_FALSE(replies[0]["ok"]);
  EXPECT_EQ(replies[0]["error"]["field"], "port.mac");
  EXPECT_TRUE(replies[1]["ok"]) << replies[1].dump();
  EXPECT_EQ(StateStore(f.host.state_dir).load()->ports.size(), 2u);
}

TEST(Controller, VfExhaustionNamesThePfAndItsVfCount) {
  Fixture f;
  f.host.vf_count = 1;
  f.start();
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(1)}})["ok"]);
  auto r = f.call({{"op", "port.add"}, {"port", Fixture::port(2)}});
  ASSERT_FALSE(r["ok"]);
  EXPECT_EQ(r["error"]["code"], "exhausted");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("no free VF on PF 0000:03:00.0: all 1 VFs"),
            std::string::npos)
      << r.dump();
}

TEST(Controller, VfPoolAssignsReleasesAndIsPersisted) {
  Fixture f;
  f.start();
  auto a = f.call({{"op", "port.add"}, {"port", Fixture::port(1)}});
  auto b = f.call({{"op", "port.add"}, {"port", Fixture::port(2)}});
  ASSERT_TRUE(a["ok"] && b["ok"]);
  EXPECT_EQ(a["result"]["port"]["vf"], 0);
  EXPECT_EQ(b["result"]["port"]["vf"], 1);
  // A port naming a VF another port holds is refused, naming the field.
  auto c = f.call({{"op", "port.add"}, {"port", Fixture::port(3, {{"vf", 1}})}});
  ASSERT_FALSE(c["ok"]);
  EXPECT_EQ(c["error"]["field"], "port.vf");
  EXPECT_EQ(c["error"]["code"], "duplicate");
  // Removing port 1 releases VF 0; the next port gets it.
  ASSERT_TRUE(f.call({{"op", "port.remove"}, {"vm", Fixture::port(1)["vm"]}, {"nic", 0}})["ok"]);
  auto d = f.call({{"op", "port.add"}, {"port", Fixture::port(3)}});
  ASSERT_TRUE(d["ok"]) << d.dump();
  EXPECT_EQ(d["result"]["port"]["vf"], 0);
  // Updating a port keeps its VF.
  auto e = f.call({{"op", "port.add"}, {"port", Fixture::port(2, {{"mtu", 9000}})}});
  ASSERT_TRUE(e["ok"]);
  EXPECT_EQ(e["result"]["port"]["vf"], 1);
  // Persisted with the ports (the journal); the pool is rebuilt from them at
  // start, and a snapshot carries a copy for operators.
  auto state = StateStore(f.host.state_dir).load();
  ASSERT_TRUE(state.ok());
  std::map<std::string, int> vf_of;
  for (const auto& p : state->ports) vf_of[p.key.vm] = p.vf.value_or(-1);
  EXPECT_EQ(vf_of, (std::map<std::string, int>{{Fixture::port(2)["vm"], 1},
                                               {Fixture::port(3)["vm"], 0}}));
  f.ctl.reset();
  f.start();
  auto again = f.call({{"op", "port.add"}, {"port", Fixture::port(4)}});
  ASSERT_TRUE(again["ok"]) << again.dump();
  EXPECT_EQ(again["result"]["port"]["vf"], 2) << "VFs 0 and 1 are still held after the restart";
}

TEST(Controller, DrivesTheNicAndVdpaBackends) {
  Fixture f;
  f.host.vdpa_backend = model::VdpaKind::kSim;
  f.start(true, true);
  // Start put the simulated PF in switchdev with the configured VFs.
  auto st = f.nic_mgmt->makeBackend()->status();
  ASSERT_TRUE(st.ok()) << st.error().describe();
  ASSERT_TRUE(st->eswitch_mode.has_value());
  EXPECT_EQ(*st->eswitch_mode, model::EswitchMode::kSwitchdev);
  EXPECT_EQ(st->num_vfs, f.host.vf_count);

  auto r = f.call({{"op", "port.add"}, {"port", Fixture::port(1)}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["status"]["state"], "installed") << r.dump(1);
  const auto vf = r["result"]["port"]["vf"].get<int>();
  st = f.nic_mgmt->makeBackend()->status();
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(st->vfs.at(vf).mac.has_value());
  EXPECT_EQ(st->vfs.at(vf).mac->str(), "52:54:00:00:00:01") << "the VF carries the guest MAC";
  const auto name = vdpa::deviceName({Fixture::port(1)["vm"], 0});
  EXPECT_EQ(r["result"]["status"]["devices"]["vdpa"]["name"], name);
  EXPECT_NE(r["result"]["status"]["devices"]["vdpa"]["path"].get<std::string>().find("vhost-vdpa-"),
            std::string::npos);
  ASSERT_EQ(f.nic_mgmt->vdpaDevs().size(), 1u);
  EXPECT_EQ(f.nic_mgmt->vdpaDevs()[0].name, name);

  // A restart adopts the device and the VF MAC: nothing created again.
  f.ctl.reset();
  f.start(true, true);
  EXPECT_EQ(f.ctl->counters().vdpa_ops, 0u);
  EXPECT_EQ(f.ctl->counters().nic_ops, 0u);

  // Removal destroys the vDPA device and scrubs the VF.
  ASSERT_TRUE(f.call({{"op", "port.remove"}, {"vm", Fixture::port(1)["vm"]}, {"nic", 0}})["ok"]);
  EXPECT_TRUE(f.nic_mgmt->vdpaDevs().empty());
  st = f.nic_mgmt->makeBackend()->status();
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(!st->vfs.at(vf).mac || st->vfs.at(vf).mac->isZero()) << "MAC scrubbed";
}

// Issue 14: the state write runs while the devices are programmed. When it
// fails (a full disk: RLIMIT_FSIZE makes the append fail with EFBIG, root
// included), the batch is refused, the intent is as before, and the next
// tick's full pass takes back what the devices got for it.
TEST(Controller, AFailedStateWriteRefusesTheBatchAndUndoesItsDeviceChanges) {
  Fixture f;
  f.in_memory_flow = true;
  f.start();
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(1)}})["ok"]);
  const auto rules_before = f.nic->size();
  std::uintmax_t largest = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(f.host.state_dir))
    if (e.is_regular_file()) largest = std::max<std::uintmax_t>(largest, e.file_size());
  ASSERT_GT(largest, 0u);

  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit old_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  rlimit limit = old_limit;
  limit.rlim_cur = largest;  // no state file may grow
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  const auto r = f.call({{"op", "port.add"}, {"port", Fixture::port(2)}});
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  std::signal(SIGXFSZ, old_handler);

  ASSERT_FALSE(r["ok"]) << r.dump();
  EXPECT_EQ(r["error"]["code"], "io") << r.dump();
  EXPECT_EQ(f.ctl->counters().state_save_failures, 1u);
  EXPECT_EQ(f.ctl->intent().ports.size(), 1u) << "the intent is as it was";
  EXPECT_GT(f.nic->size(), rules_before) << "the devices got the port while the write ran";
  // The full pass the failure asked for takes it back.
  EXPECT_EQ(f.ctl->untilNextTick().count(), 0);
  f.ctl->tick();
  EXPECT_EQ(f.nic->size(), rules_before);
  EXPECT_FALSE(f.sw->hasRoute("10.0.2.1/32", "rep2"));
  EXPECT_TRUE(f.sw->hasRoute("10.0.1.1/32", "rep1"));
  // And the same request succeeds once the disk has room.
  auto ok = f.call({{"op", "port.add"}, {"port", Fixture::port(2)}});
  ASSERT_TRUE(ok["ok"]) << ok.dump();
  EXPECT_TRUE(f.sw->hasRoute("10.0.2.1/32", "rep2"));
}

// Issue 14: the warm vDPA pool. Devices are made ahead on free VFs (in
// tick(), between requests); a new port claims one (only its MAC is set: no
// device is created on the request's path); a removed port's device is
// scrubbed back into the pool, or destroyed above the pool's size; a restart
// adopts the pool; an empty pool degrades to create-on-demand and says so.
TEST(ControllerVdpaPool, PortsClaimWarmDevicesAndGiveThemBack) {
  Fixture f;
  f.host.vdpa_backend = model::VdpaKind::kSim;
  f.host.vdpa_pool_size = 3;
  f.host.vdpa_pool_low_water = 1;
  f.start(true, true);
  auto names = [&] {
    std::map<std::string, offload::SimVdpaDevice> out;
    for (const auto& d : f.nic_mgmt->vdpaDevs()) out[d.name] = d;
    return out;
  };
  EXPECT_TRUE(names().empty()) << "start does not wait for the pool";
  for (int i = 0; i < 10 && f.ctl->untilNextTick().count() == 0; ++i) f.ctl->tick();
  auto pool = f.call({{"op", "status"}})["result"]["vdpa_pool"];
  EXPECT_EQ(pool["ready"], 3) << pool.dump();
  EXPECT_EQ(pool["state"], "ready") << pool.dump();
  ASSERT_EQ(names().size(), 3u);
  for (const auto* n : {"nfovf0", "nfovf1", "nfovf2"}) {
    ASSERT_EQ(names().count(n), 1u) << n;
    EXPECT_TRUE(names()[n].mac.isZero()) << n << " is made without a MAC";
  }
  EXPECT_EQ(f.ctl->untilNextTick().count() > 0, true) << "a full pool asks for no work";

  // A port claims a pool device: one MAC change, no device created.
  const auto ops = f.ctl->counters().vdpa_ops;
  auto r = f.call({{"op", "port.add"}, {"port", Fixture::port(1)}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["status"]["state"], "installed") << r.dump(1);
  const auto& dev = r["result"]["status"]["devices"]["vdpa"];
  EXPECT_EQ(dev["name"], "nfovf0") << dev.dump();
  EXPECT_EQ(r["result"]["port"]["vf"], 0);
  EXPECT_EQ(f.ctl->counters().vdpa_ops, ops + 1) << "the MAC set only";
  EXPECT_EQ(names()["nfovf0"].mac.str(), "52:54:00:00:00:01");
  EXPECT_EQ(f.ctl->counters().vdpa_pool_claims, 1u);
  // The stable link beside the socket points at the device's node.
  const std::string link = dev["link"];
  EXPECT_EQ(link, f.dir + "/vdpa/" + vdpa::deviceName({Fixture::port(1)["vm"], 0}));
  EXPECT_EQ(std::filesystem::read_symlink(link).string(), dev["path"].get<std::string>());
  // 2 ready, not below low_water 1: no refill.
  EXPECT_GT(f.ctl->untilNextTick().count(), 0);

  // Idempotent: the same port again changes nothing.
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(1)}})["ok"]);
  EXPECT_EQ(f.ctl->counters().vdpa_ops, ops + 1);

  // Removed: scrubbed (zero MAC) and back in the pool, the link gone.
  ASSERT_TRUE(f.call({{"op", "port.remove"}, {"vm", Fixture::port(1)["vm"]}, {"nic", 0}})["ok"]);
  EXPECT_TRUE(names()["nfovf0"].mac.isZero());
  EXPECT_EQ(names().size(), 3u);
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(link)));
  EXPECT_EQ(f.call({{"op", "status"}})["result"]["vdpa_pool"]["ready"], 3);

  // Four ports at once: three claim, one is created on demand (counted),
  // and the empty pool refills in the background up to its size.
  std::vector<control::Request> batch;
  for (int i = 1; i <= 4; ++i)
    batch.push_back({static_cast<std::uint64_t>(i), {{"op", "port.add"}, {"port", Fixture::port(i)}}, 0});
  for (const auto& reply : f.ctl->handle(batch)) ASSERT_TRUE(reply["ok"]) << reply.dump();
  EXPECT_EQ(f.ctl->counters().vdpa_pool_claims, 4u);
  EXPECT_EQ(f.ctl->counters().vdpa_pool_misses, 1u);
  pool = f.call({{"op", "status"}})["result"]["vdpa_pool"];
  EXPECT_EQ(pool["ready"], 0);
  EXPECT_EQ(pool["state"], "empty, refilling") << pool.dump();
  EXPECT_EQ(f.ctl->untilNextTick().count(), 0);
  for (int i = 0; i < 10 && f.ctl->untilNextTick().count() == 0; ++i) f.ctl->tick();
  pool = f.call({{"op", "status"}})["result"]["vdpa_pool"];
  EXPECT_EQ(pool["ready"], 3) << pool.dump();
  EXPECT_EQ(pool["vfs"], json({4, 5, 6})) << pool.dump();
  EXPECT_EQ(names().size(), 7u);

  // Above the pool's size, a removed port's device is destroyed.
  ASSERT_TRUE(f.call({{"op", "port.remove"}, {"vm", Fixture::port(4)["vm"]}, {"nic", 0}})["ok"]);
  EXPECT_EQ(names().size(), 6u);

  // A port that the pool's devices do not fit (MTU) gets its own device.
  r = f.call({{"op", "port.add"}, {"port", Fixture::port(5, {{"mtu", 9000}})}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["status"]["state"], "installed") << r.dump(1);
  EXPECT_EQ(r["result"]["status"]["devices"]["vdpa"]["name"],
            vdpa::deviceName({Fixture::port(5)["vm"], 0}));
  EXPECT_EQ(f.call({{"op", "status"}})["result"]["vdpa_pool"]["ready"], 3);

  // A restart adopts the pool and the ports' devices: no device operation.
  f.ctl.reset();
  f.start(true, true);
  EXPECT_EQ(f.ctl->counters().vdpa_ops, 0u);
  EXPECT_GT(f.ctl->untilNextTick().count(), 0) << "the adopted pool is full";
  EXPECT_EQ(f.call({{"op", "status"}})["result"]["vdpa_pool"]["ready"], 3);
  r = f.call({{"op", "port.get"}, {"vm", Fixture::port(2)["vm"]}, {"nic", 0}});
  EXPECT_EQ(r["result"]["devices"]["vdpa"]["name"], "nfovf1") << r.dump();
}

// A backend that cannot change a device's MAC (a kernel before 6.12) turns
// the pool off, says so in status, and every port still gets its device.
TEST(ControllerVdpaPool, BackendWithoutSetMacFallsBackToCreateOnDemand) {
  Fixture f;
  f.host.vdpa_backend = model::VdpaKind::kSim;
  f.host.vdpa_pool_size = 2;
  f.host.vdpa_pool_low_water = 1;
  f.start(true, true);
  for (int i = 0; i < 10 && f.ctl->untilNextTick().count() == 0; ++i) f.ctl->tick();
  ASSERT_EQ(f.nic_mgmt->vdpaDevs().size(), 2u);
  f.nic_mgmt->failNext("vdpa-set", EOPNOTSUPP, "Operation not supported");
  auto r = f.call({{"op", "port.add"}, {"port", Fixture::port(1)}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["status"]["state"], "installed") << r.dump(1);
  // The pool device on its VF was replaced by one made with the port's MAC.
  bool found = false;
  for (const auto& d : f.nic_mgmt->vdpaDevs())
    if (d.name == r["result"]["status"]["devices"]["vdpa"]["name"]) {
      found = true;
      EXPECT_EQ(d.mac.str(), "52:54:00:00:00:01");
    }
  EXPECT_TRUE(found);
  auto pool = f.call({{"op", "status"}})["result"]["vdpa_pool"];
  EXPECT_EQ(pool["state"], "unsupported") << pool.dump();
  // The rest of the pool is not handed out any more: a full pass removes it.
  ASSERT_TRUE(f.call({{"op", "reconcile"}})["ok"]);
  EXPECT_EQ(f.nic_mgmt->vdpaDevs().size(), 1u);
}

// Issue 11: `{"op":"rules","testpmd":1}` threw nlohmann::type_error out of
// the daemon. Every optional field of the wrong type is refused, naming it.
TEST(Controller, WrongTypedFieldsAreRefusedNamingTheField) {
  Fixture f;
  f.start();
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(1)}})["ok"]);
  const struct {
    json request;
    std::string code;
    std::string field;
  } cases[] = {
      {{{"op", "rules"}, {"testpmd", 1}}, "wrong-type", "testpmd"},
      {{{"op", "rules"}, {"testpmd", "yes"}}, "wrong-type", "testpmd"},
      {{{"op", "explain"}, {"rule", 7}}, "wrong-type", "rule"},
      {{{"op", "explain"}}, "missing-field", "rule"},
      {{{"op", "remote.remove"}, {"address", {1, 2}}}, "wrong-type", "address"},
      {{{"op", "port.list"}, {"vm", json::object()}}, "wrong-type", "vm"},
      {{{"op", "port.get"}, {"vm", "x"}, {"nic", "0"}}, "wrong-type", "nic"},
      {{{"op", "port.get"}, {"vm", "x"}, {"nic", 18446744073709551615u}}, "invalid-value", "nic"},
      {{{"op", "port.remove"}, {"vm", true}, {"nic", 0}}, "wrong-type", "vm"},
  };
  for (const auto& c : cases) {
    json r;
    ASSERT_NO_THROW(r = f.call(c.request)) << c.request.dump();
    EXPECT_FALSE(r["ok"]) << c.request.dump();
    EXPECT_EQ(r["error"]["code"], c.code) << c.request.dump() << " -> " << r.dump();
    EXPECT_EQ(r["error"]["field"], c.field) << c.request.dump() << " -> " << r.dump();
  }
  auto ok = f.call({{"op", "rules"}, {"testpmd", true}});
  ASSERT_TRUE(ok["ok"]) << ok.dump();
  EXPECT_TRUE(ok["result"][0].contains("testpmd"));
}

// Issue 11: a `port.remove` whose `vm` was deeply nested arrays was dumped
// whole into the error (and overflowed the stack). Echoed values are bounded.
TEST(Controller, LargeOrNestedValuesAreEchoedInBoundedSize) {
  Fixture f;
  f.start();
  json nested = json::array();
  for (int i = 0; i < 60; ++i) nested = json::array({nested, std::string(1000, 'x')});
  json wide = json::array();
  for (int i = 0; i < 100000; ++i) wide.push_back(i);
  for (const auto& req : {json{{"op", "port.remove"}, {"vm", nested}, {"nic", 0}},
                          json{{"op", "port.get"}, {"vm", "x"}, {"nic", wide}},
                          json{{"op", "port.list"}, {"vm", wide}}}) {
    const auto r = f.call(req);
    ASSERT_FALSE(r["ok"]);
    EXPECT_EQ(r["error"]["code"], "wrong-type");
    EXPECT_LE(r["error"]["value"].get<std::string>().size(), 90u) << r["error"]["value"];
    // Described by its shape, not dumped: the cost does not grow with it.
    EXPECT_NE(r["error"]["value"].get<std::string>().find("(an array of "), std::string::npos)
        << r["error"]["value"];
  }
  // A long non-ASCII value, refused: the reply is serialisable (the value is
  // cut at a character boundary).
  std::string vm;
  for (int i = 0; i < 60; ++i) vm += "\xc3\xa9";
  const auto r = f.call({{"op", "port.add"}, {"port", Fixture::port(1, {{"vm", vm}})}});
  ASSERT_FALSE(r["ok"]);
  EXPECT_NO_THROW((void)r.dump()) << "a refusal must serialise";
}

// The request boundary: an exception while handling a request is answered
// as an internal error, counted, and the controller keeps serving.
TEST(Controller, ExceptionsBecomeInternalErrorRepliesAndTheControllerCarriesOn) {
  Fixture f;
  f.start();
  // A mutation whose reconcile throws, in a batch with a read.
  f.sw->throwOnApply();
  std::vector<control::Request> batch{{1, {{"op", "port.add"}, {"port", Fixture::port(1)}}, 0},
                                      {2, {{"op", "status"}}, 0}};
  std::vector<json> replies;
  ASSERT_NO_THROW(replies = f.ctl->handle(batch));
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_FALSE(replies[0]["ok"]);
  EXPECT_EQ(replies[0]["error"]["code"], "internal");
  EXPECT_EQ(replies[0]["error"]["value"], "port.add");
  EXPECT_NE(replies[0]["error"]["message"].get<std::string>().find("injected: apply threw"),
            std::string::npos)
      << replies[0].dump();
  EXPECT_FALSE(replies[1].is_null()) << "every request gets a reply";
  // A read whose work throws.
  f.sw->throwOnReadBack();
  auto r = f.call({{"op", "reconcile"}});
  EXPECT_EQ(r["error"]["code"], "internal") << r.dump();
  EXPECT_NE(r["error"]["message"].get<std::string>().find("injected: readBack threw"),
            std::string::npos);
  // A request that is not an object with an "op" (the server checks; the
  // controller does not rely on it).
  r = f.call(json::array({1, 2}));
  EXPECT_EQ(r["error"]["field"], "op") << r.dump();
  EXPECT_EQ(f.ctl->counters().internal_errors, 2u);
  EXPECT_NE(f.ctl->metricsText(nullptr).find("nicoffload_internal_errors_total 2"),
            std::string::npos);
  // Still serving; the retry scheduled after the failure converges.
  EXPECT_TRUE(f.call({{"op", "status"}})["ok"]);
  f.now += milliseconds(200);
  f.ctl->tick();
  auto g = f.call({{"op", "port.get"}, {"vm", Fixture::port(1)["vm"]}, {"nic", 0}});
  ASSERT_TRUE(g["ok"]) << g.dump();
  EXPECT_EQ(g["result"]["state"], "installed") << g.dump(1);
  EXPECT_TRUE(f.sw->hasRoute("10.0.1.1/32", "rep1"));
}

// --- incremental planning: every batch plans only what it touched, and
// what the devices and the kernel then hold is exactly what a whole plan of
// the resulting intent asks for. ---

// Checks the flow backend and the kernel against plan(intent).
void expectMatchesWholePlan(const Fixture& f, const std::string& when) {
  SCOPED_TRACE(when);
  model::Intent intent = f.ctl->intent();
  auto plan = flowrules::plan(intent, f.profile, {.skip_validation = true});
  ASSERT_TRUE(plan.ok()) << plan.error().describe();
  const auto held = f.ctl->applier().effectiveRules();
  ASSERT_EQ(held.size(), plan->rules.size());
  for (std::size_t i = 0; i < held.size(); ++i) {
    const auto& want = plan->rules[i];
    ASSERT_EQ(held[i].id, want.id) << flowrules::formatRuleId(want.cls, want.id);
    EXPECT_TRUE(held[i].sameContent(want)) << flowrules::formatRuleId(want.cls, want.id);
    EXPECT_EQ(held[i].placement, want.placement) << flowrules::formatRuleId(want.cls, want.id);
  }
  EXPECT_EQ(f.nic->size(), plan->counts.hw) << "the device holds every hw rule, nothing else";
  const auto& sw = f.sw->held();
  EXPECT_EQ(sw.sysctls, plan->sw.sysctls);
  EXPECT_EQ(sw.links, plan->sw.links);
  EXPECT_EQ(sw.addresses, plan->sw.addresses);
  EXPECT_EQ(sw.vxlan_devices, plan->sw.vxlan_devices);
  EXPECT_EQ(sw.fdb, plan->sw.fdb);
  EXPECT_EQ(sw.neighbours, plan->sw.neighbours);
  EXPECT_EQ(sw.routes.size(), plan->sw.routes.size());
  EXPECT_TRUE(sw.routes == plan->sw.routes);
  EXPECT_EQ(sw.neighbours6, plan->sw.neighbours6);
  EXPECT_EQ(sw.routes6, plan->sw.routes6);
  EXPECT_EQ(sw.rules6, plan->sw.rules6);
}

class IncrementalPlanning : public ::testing::TestWithParam<const char*> {};

TEST_P(IncrementalPlanning, RandomBatchesLeaveExactlyWhatAWholePlanAsks) {
  Fixture f;
  // "<host file>+ipv6": the same with gateway.ipv6 set, ports with /128s too.
  std::string file = GetParam();
  const bool ipv6 = file.size() > 5 && file.substr(file.size() - 5) == "+ipv6";
  if (ipv6) file.resize(file.size() - 5);
  f.useHostFile(file);
  if (ipv6) f.host.gateway_ipv6 = *Ipv6Addr::parse("fe80::1");
  f.start();
  const bool vxlan = f.host.underlay == model::UnderlayMode::kVxlan;
  std::mt19937 rng(12345);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  auto remote = [&](int i) {
    json r = {{"address", "10.20." + std::to_string(i / 200) + "." + std::to_string(i % 200 + 1) +
                              "/32"}};
    if (vxlan) {
      r["vtep"] = "192.0.2." + std::to_string(10 + pick(4));
      if (pick(2)) r["vni"] = 100 + pick(3);
    } else if (pick(2)) {
      r["next_hop"] = pick(2) ? "192.0.2.254" : "192.0.2.77";  // the second has no MAC: sw
    }
    return r;
  };
  auto portReq = [&](int i) {
    json p = Fixture::port(i);
    json addresses = json::array();
    for (int a = 0, n = 1 + pick(3); a < n; ++a)
      addresses.push_back("10.0." + std::to_string(i) + "." + std::to_string(1 + pick(5)) + "/32");
    if (ipv6)
      for (int a = 0, n = pick(3); a < n; ++a)
        addresses.push_back("2001:db8:" + std::to_string(i) + "::" + std::to_string(1 + pick(5)));
    p["addresses"] = addresses;
    if (vxlan && pick(2)) p["vni"] = 100 + pick(3);
    return p;
  };
  std::size_t accepted = 0;
  for (int round = 0; round < 120; ++round) {
    std::vector<control::Request> batch;
    for (int k = 0, n = 1 + pick(6); k < n; ++k) {
      json req;
      switch (pick(6)) {
        case 0: req = {{"op", "port.add"}, {"port", portReq(1 + pick(6))}}; break;
        case 1: req = {{"op", "port.remove"}, {"vm", Fixture::port(1 + pick(6))["vm"]}, {"nic", 0}}; break;
        case 2:
        case 3: req = {{"op", "remote.add"}, {"remote", remote(pick(60))}}; break;
        case 4:
          req = {{"op", "remote.remove"}, {"address", remote(pick(60))["address"]}};
          break;
        default: {
          json list = json::array();
          for (int i = 0, n = pick(20); i < n; ++i) list.push_back(remote(60 + pick(40)));
          req = {{"op", "remote.sync"}, {"origin", "ctl"}, {"remotes", list}};
        }
      }
      batch.push_back({static_cast<std::uint64_t>(k), req, 0});
    }
    for (const auto& reply : f.ctl->handle(batch)) accepted += reply["ok"] ? 1 : 0;
    expectMatchesWholePlan(f, "round " + std::to_string(round));
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(accepted, 200u) << "the sequence must mostly be accepted to test anything";
  EXPECT_GT(f.ctl->intent().remotes.size(), 10u);
  // The periodic full pass finds nothing to change.
  const auto ops = f.ctl->applier().counters();
  f.now += milliseconds(60001);
  f.ctl->tick();
  EXPECT_EQ(f.ctl->applier().counters().creations, ops.creations);
  EXPECT_EQ(f.ctl->applier().counters().destructions, ops.destructions);
  expectMatchesWholePlan(f, "after a full pass");
}

INSTANTIATE_TEST_SUITE_P(Underlays, IncrementalPlanning,
                         ::testing::Values("host-routed.json", "host.json", "host-routed.json+ipv6",
                                           "host.json+ipv6"));

// A table at its capacity couples owners (plan() cuts by class rank): the
// batch is planned as a whole, and the result is still exactly plan()'s.
TEST(Controller, ATableAtItsCapacityIsPlannedAsAWhole) {
  Fixture f;
  f.profile.rules_per_group = 6;  // the FIB: delivery and egress rules
  f.start();
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(1)}})["ok"]);
  for (int i = 1; i <= 8; ++i)
    ASSERT_TRUE(f.call({{"op", "remote.add"},
                        {"remote", {{"address", "10.30.0." + std::to_string(i) + "/32"}}}})["ok"]);
  expectMatchesWholePlan(f, "over capacity");
  EXPECT_GT(f.ctl->applier().counters().sw_by_reason[static_cast<std::size_t>(
                flowrules::PlacementReason::Code::kTableFull)],
            0u);
  for (int i = 1; i <= 8; ++i)
    ASSERT_TRUE(f.call({{"op", "remote.remove"},
                        {"address", "10.30.0." + std::to_string(i) + "/32"}})["ok"]);
  expectMatchesWholePlan(f, "back under capacity");
}

TEST(Controller, RemoteSyncReplacesTheSetOfItsOriginOnly) {
  Fixture f;
  f.start();
  auto r = f.call({{"op", "remote.add"}, {"remote", {{"address", "10.40.0.1/32"}}}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  auto sync = [&](json list) {
    return f.call({{"op", "remote.sync"}, {"origin", "bgp-ctl"}, {"remotes", list}});
  };
  r = sync({{{"address", "10.40.1.1/32"}}, {{"address", "10.40.1.2/32"}}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["added"], 2);
  r = sync({{{"address", "10.40.1.2/32"}, {"next_hop", "192.0.2.77"}}, {{"address", "10.40.1.3/32"}}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["added"], 1);
  EXPECT_EQ(r["result"]["updated"], 1);
  EXPECT_EQ(r["result"]["removed"], 1);
  EXPECT_EQ(r["result"]["unchanged"], 0);
  r = sync({{{"address", "10.40.1.2/32"}, {"next_hop", "192.0.2.77"}}, {{"address", "10.40.1.3/32"}}});
  EXPECT_EQ(r["result"]["unchanged"], 2);
  EXPECT_FALSE(r["result"]["changed"]);
  expectMatchesWholePlan(f, "after syncs");
  // The origin is kept and shown; the manual remote is untouched.
  auto list = f.call({{"op", "remote.list"}});
  ASSERT_EQ(list["result"].size(), 3u) << list.dump();
  std::map<std::string, std::string> origin;
  for (const auto& x : list["result"]) origin[x["address"]] = x["origin"];
  EXPECT_EQ(origin["10.40.0.1/32"], "api");
  EXPECT_EQ(origin["10.40.1.3/32"], "bgp-ctl");
  // Malformed input is all or nothing: a duplicate, a bad entry: refused,
  // naming the entry, and nothing changes. (Overlaps with what others hold
  // are per entry: RemoteSyncAppliesAllButItsConflicts.)
  const auto before = f.ctl->intent().remotes.size();
  const auto ops = f.ctl->applier().counters().creations;
  for (const auto& [list_json, field, code] :
       {std::tuple{json{{{"address", "10.40.1.9/32"}}, {{"address", "10.40.1.9/32"}}},
                   "remotes[1].address", "duplicate"},
        std::tuple{json{{{"address", "10.40.1.9/32"}}, {{"address", "nope"}}},
                   "remotes[1].address", "invalid-value"}}) {
    r = sync(list_json);
    ASSERT_FALSE(r["ok"]) << r.dump();
    EXPECT_EQ(r["error"]["field"], field) << r.dump();
    EXPECT_EQ(r["error"]["code"], code) << r.dump();
    EXPECT_EQ(f.ctl->intent().remotes.size(), before);
    EXPECT_EQ(f.ctl->applier().counters().creations, ops);
  }
  r = f.call({{"op", "remote.sync"}, {"origin", "Bad Name"}, {"remotes", json::array()}});
  EXPECT_EQ(r["error"]["field"], "origin") << r.dump();
  // An empty set removes the origin's remotes.
  r = sync(json::array());
  EXPECT_EQ(r["result"]["removed"], 2);
  EXPECT_EQ(f.ctl->intent().remotes.size(), 1u);
  expectMatchesWholePlan(f, "after the empty sync");
  // Persisted with its origin.
  auto state = StateStore(f.host.state_dir).load();
  ASSERT_TRUE(state.ok());
  ASSERT_EQ(state->remotes.size(), 1u);
  EXPECT_EQ(state->remotes[0].origin, "api");
}

TEST(Controller, BatchIsAllOrNothingAndNamesTheRefusedOp) {
  Fixture f;
  f.start();
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(1)}})["ok"]);
  ASSERT_TRUE(f.call({{"op", "remote.add"}, {"remote", {{"address", "10.50.0.1/32"}}}})["ok"]);
  const model::Intent before = f.ctl->intent();
  const auto vfs = f.ctl->intent().ports[0].vf;
  // Several changes, then a refusal: everything before it is undone.
  auto r = f.call({{"op", "batch"},
                   {"ops",
                    {{{"op", "port.remove"}, {"vm", Fixture::port(1)["vm"]}, {"nic", 0}},
                     {{"op", "port.add"}, {"port", Fixture::port(2)}},
                     {{"op", "remote.remove"}, {"address", "10.50.0.1/32"}},
                     {{"op", "remote.add"}, {"remote", {{"address", "10.50.0.2/32"}}}},
                     {{"op", "port.add"}, {"port", Fixture::port(3, {{"mac", "nope"}})}}}}});
  ASSERT_FALSE(r["ok"]) << r.dump();
  EXPECT_EQ(r["error"]["field"], "ops[4].port.mac") << r.dump();
  EXPECT_NE(r["error"]["message"].get<std::string>().find("nothing of the batch was applied"),
            std::string::npos);
  EXPECT_EQ(model::toJson(f.ctl->intent().ports[0]), model::toJson(before.ports[0]));
  EXPECT_EQ(f.ctl->intent().ports.size(), 1u);
  EXPECT_EQ(f.ctl->intent().ports[0].vf, vfs);
  ASSERT_EQ(f.ctl->intent().remotes.size(), 1u);
  EXPECT_EQ(f.ctl->intent().remotes[0].address.str(), "10.50.0.1");
  expectMatchesWholePlan(f, "after the refused batch");
  // Reads and nested batches are not batch ops.
  r = f.call({{"op", "batch"}, {"ops", {{{"op", "status"}}}}});
  EXPECT_EQ(r["error"]["field"], "ops[0].op") << r.dump();
  // The same changes without the bad one land together.
  r = f.call({{"op", "batch"},
              {"ops",
               {{{"op", "port.remove"}, {"vm", Fixture::port(1)["vm"]}, {"nic", 0}},
                {{"op", "port.add"}, {"port", Fixture::port(2)}},
                {{"op", "remote.remove"}, {"address", "10.50.0.1/32"}},
                {{"op", "remote.add"}, {"remote", {{"address", "10.50.0.2/32"}}}}}}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["results"].size(), 4u);
  EXPECT_EQ(f.ctl->intent().ports.size(), 1u);
  EXPECT_EQ(f.ctl->intent().ports[0].vf, vfs) << "port 1's VF went free, port 2 took it";
  expectMatchesWholePlan(f, "after the batch");
}

TEST(Controller, LargeReadsArePaginated) {
  Fixture f;
  f.start();
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(1)}})["ok"]);
  json list = json::array();
  for (int i = 1; i <= 25; ++i) list.push_back({{"address", "10.60.0." + std::to_string(i) + "/32"}});
  ASSERT_TRUE(f.call({{"op", "remote.sync"}, {"origin", "x"}, {"remotes", list}})["ok"]);
  const auto all = f.call({{"op", "rules"}})["result"];
  ASSERT_TRUE(all.is_array());
  std::vector<std::string> paged;
  json next = 0;
  std::size_t pages = 0;
  while (!next.is_null()) {
    auto r = f.call({{"op", "rules"}, {"offset", next}, {"limit", 7}});
    ASSERT_TRUE(r["ok"]) << r.dump();
    EXPECT_EQ(r["result"]["total"], all.size());
    EXPECT_LE(r["result"]["rules"].size(), 7u);
    for (const auto& x : r["result"]["rules"]) paged.push_back(x["id"]);
    next = r["result"]["next"];
    ASSERT_LT(++pages, 100u);
  }
  ASSERT_EQ(paged.size(), all.size());
  for (std::size_t i = 0; i < paged.size(); ++i) EXPECT_EQ(paged[i], all[i]["id"]);
  EXPECT_EQ(all.size(), f.ctl->applier().size());
  auto r = f.call({{"op", "remote.list"}, {"offset", 20}, {"limit", 10}});
  EXPECT_EQ(r["result"]["remotes"].size(), 5u);
  EXPECT_TRUE(r["result"]["next"].is_null());
  r = f.call({{"op", "remote.list"}, {"offset", 10}, {"limit", 4}});
  EXPECT_EQ(r["result"]["remotes"].size(), 4u);
  EXPECT_EQ(r["result"]["next"], 14) << r.dump();
  EXPECT_EQ(r["result"]["total"], 25);
  r = f.call({{"op", "remote.list"}, {"origin", "x"}, {"offset", 0}, {"limit", 10}});
  EXPECT_EQ(r["result"]["next"], 10) << r.dump();
  r = f.call({{"op", "rules"}, {"limit", 0}});
  EXPECT_EQ(r["error"]["field"], "limit");
  r = f.call({{"op", "rules"}, {"offset", -1}});
  EXPECT_EQ(r["error"]["field"], "offset");
  // explain finds a remote's rule through its owner.
  const std::string id = all.back()["id"];
  r = f.call({{"op", "explain"}, {"rule", id}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["rule"]["id"], id);
}

TEST(Controller, RemoteListOfOneOriginPagesWithItsTotal) {
  // Paging through one origin's remotes: "total" is that origin's count (it
  // was null), and "next" ends with its last remote even when remotes of
  // other origins follow it.
  Fixture f;
  f.start();
  auto addApi = [&](int i) {
    const json r = {{"address", "10.61.0." + std::to_string(i) + "/32"}};
    ASSERT_TRUE(f.call({{"op", "remote.add"}, {"remote", r}})["ok"]);
  };
  addApi(1);
  addApi(2);
  json list = json::array();
  for (int i = 1; i <= 25; ++i)
    list.push_back({{"address", "10.60.0." + std::to_string(i) + "/32"}});
  ASSERT_TRUE(f.call({{"op", "remote.sync"}, {"origin", "x"}, {"remotes", list}})["ok"]);
  addApi(3);

  std::vector<std::string> seen;
  json next = 0;
  std::size_t pages = 0;
  while (!next.is_null()) {
    auto r = f.call({{"op", "remote.list"}, {"origin", "x"}, {"offset", next}, {"limit", 7}});
    ASSERT_TRUE(r["ok"]) << r.dump();
    EXPECT_EQ(r["result"]["total"], 25) << r.dump();
    EXPECT_FALSE(r["result"]["remotes"].empty()) << "no empty last page: " << r.dump();
    for (const auto& x : r["result"]["remotes"]) {
      EXPECT_EQ(x["origin"], "x");
      seen.push_back(x["address"]);
    }
    next = r["result"]["next"];
    ASSERT_LT(++pages, 10u);
  }
  EXPECT_EQ(pages, 4u);
  ASSERT_EQ(seen.size(), 25u);
  EXPECT_EQ(seen.front(), "10.60.0.1/32");
  EXPECT_EQ(seen.back(), "10.60.0.25/32");

  auto api = f.call({{"op", "remote.list"}, {"origin", "api"}, {"offset", 1}, {"limit", 1}});
  EXPECT_EQ(api["result"]["total"], 3) << api.dump();
  EXPECT_EQ(api["result"]["remotes"][0]["address"], "10.61.0.2/32");
  EXPECT_EQ(api["result"]["next"], 2);
  auto none = f.call({{"op", "remote.list"}, {"origin", "nobody"}, {"offset", 0}, {"limit", 5}});
  EXPECT_EQ(none["result"]["total"], 0) << none.dump();
  EXPECT_TRUE(none["result"]["next"].is_null());
  EXPECT_TRUE(none["result"]["remotes"].empty());
  auto all = f.call({{"op", "remote.list"}, {"offset", 26}, {"limit", 5}});
  EXPECT_EQ(all["result"]["total"], 28) << all.dump();
  EXPECT_EQ(all["result"]["remotes"].size(), 2u);
  EXPECT_TRUE(all["result"]["next"].is_null());
}

// A full pass in the background: the device is checked in slices, the plan
// and the kernel read-back are computed on a worker thread, and batches
// served meanwhile are neither undone nor redone by its repairs.
TEST(Controller, BackgroundFullPassRepairsWithoutUndoingBatchesServedMeanwhile) {
  Fixture f;
  f.background_full_pass = true;
  f.start();
  for (int i = 1; i <= 4; ++i)
    ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(i)}})["ok"]);
  json list = json::array();
  for (int i = 1; i <= 50; ++i) list.push_back({{"address", "10.70.0." + std::to_string(i) + "/32"}});
  ASSERT_TRUE(f.call({{"op", "remote.sync"}, {"origin", "x"}, {"remotes", list}})["ok"]);
  // Damage to repair: the device lost its rules.
  ASSERT_TRUE(f.nic->flush().ok());
  // The pass's worker waits at its read-back until the batches below are in
  // (however fast this machine, the pass is in flight meanwhile).
  std::promise<void> gate;
  f.sw->read_back_gate = gate.get_future().share();
  struct Release {
    std::promise<void>& gate;
    bool done = false;
    void operator()() {
      if (!std::exchange(done, true)) gate.set_value();
    }
    ~Release() { (*this)(); }
  } release{gate};
  f.now += milliseconds(60001);
  f.ctl->tick();
  ASSERT_TRUE(f.ctl->fullPassRunning());
  // Batches while the pass runs: a port goes, a port comes, remotes change.
  ASSERT_TRUE(f.call({{"op", "port.remove"}, {"vm", Fixture::port(2)["vm"]}, {"nic", 0}})["ok"]);
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(5)}})["ok"]);
  json fewer = list;
  fewer.erase(2);  // 10.70.0.3 leaves its origin's set (remote.remove cannot touch it)
  ASSERT_TRUE(f.call({{"op", "remote.sync"}, {"origin", "x"}, {"remotes", fewer}})["ok"]);
  ASSERT_TRUE(f.call({{"op", "remote.add"}, {"remote", {{"address", "10.70.1.1/32"}}}})["ok"]);
  release();
  for (int turn = 0; f.ctl->fullPassRunning(); ++turn) {
    ASSERT_LT(turn, 100000) << "the pass must end";
    f.ctl->tick();
    if (turn % 3 == 0) {  // and more batches between its slices
      ASSERT_TRUE(f.call({{"op", "remote.add"},
                          {"remote", {{"address", "10.70.2." + std::to_string(turn % 250 + 1) +
                                                      "/32"}}}})["ok"]);
    }
  }
  EXPECT_EQ(f.ctl->counters().full_passes, 2u) << "the one at start, this one";
  expectMatchesWholePlan(f, "after the background pass");
}

// --- origins (issue 22): who holds an address, and what each op may do ---

TEST(ControllerOrigins, RemoteSyncAppliesAllButItsConflicts) {
  Fixture f;
  f.start();
  ASSERT_TRUE(f.call({{"op", "remote.add"}, {"remote", {{"address", "10.41.0.1/32"}}}})["ok"]);
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(1)}})["ok"]);
  // One address the operator holds, one a local VM's, one the gateway's:
  // those three are listed as conflicts, the other two are applied.
  auto r = f.call({{"op", "remote.sync"},
                   {"origin", "ctl"},
                   {"remotes",
                    {{{"address", "10.41.1.1/32"}},
                     {{"address", "10.41.0.1/32"}},
                     {{"address", "10.0.1.1/32"}},
                     {{"address", f.host.gateway_ipv4.str() + "/32"}},
                     {{"address", "10.41.1.2/32"}}}}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["added"], 2) << r.dump();
  EXPECT_EQ(r["result"]["conflict_count"], 3) << r.dump();
  ASSERT_EQ(r["result"]["conflicts"].size(), 3u);
  EXPECT_EQ(r["result"]["conflicts"][0]["field"], "remotes[1].address");
  EXPECT_EQ(r["result"]["conflicts"][0]["held_by"], "api");
  EXPECT_EQ(r["result"]["conflicts"][1]["field"], "remotes[2].address");
  EXPECT_EQ(r["result"]["conflicts"][2]["field"], "remotes[3].address");
  std::map<std::string, std::string> origin;
  const auto listed = f.call({{"op", "remote.list"}});
  for (const auto& x : listed["result"]) origin[x["address"]] = x["origin"];
  EXPECT_EQ(origin["10.41.0.1/32"], "api") << "the first holder keeps it";
  EXPECT_EQ(origin["10.41.1.1/32"], "ctl");
  EXPECT_EQ(origin["10.41.1.2/32"], "ctl");
  // The operator lets go: the origin's next sync takes it.
  ASSERT_TRUE(f.call({{"op", "remote.remove"}, {"address", "10.41.0.1/32"}})["result"]["removed"]);
  r = f.call({{"op", "remote.sync"},
              {"origin", "ctl"},
              {"remotes", {{{"address", "10.41.1.1/32"}}, {{"address", "10.41.0.1/32"}}}}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["conflict_count"], 0) << r.dump();
  EXPECT_EQ(r["result"]["added"], 1);
  EXPECT_EQ(r["result"]["removed"], 1);
}

TEST(ControllerOrigins, RemoteAddAndRemoveNeverTouchAnotherOriginsRemotes) {
  Fixture f;
  f.start();
  ASSERT_TRUE(f.call({{"op", "remote.sync"},
                      {"origin", "ctl"},
                      {"remotes", {{{"address", "10.42.0.1/32"}}, {{"address", "10.42.0.2/32"}}}}})
                  ["ok"]);
  // remote.add cannot name another origin.
  auto r = f.call({{"op", "remote.add"},
                   {"remote", {{"address", "10.42.0.9/32"}, {"origin", "ctl"}}}});
  ASSERT_FALSE(r["ok"]) << r.dump();
  EXPECT_EQ(r["error"]["field"], "remote.origin");
  EXPECT_EQ(r["error"]["value"], "ctl");
  // Nor take over, nor delete, what the sync holds.
  r = f.call({{"op", "remote.add"},
              {"remote", {{"address", "10.42.0.1/32"}, {"next_hop", "192.0.2.77"}}}});
  ASSERT_FALSE(r["ok"]) << r.dump();
  EXPECT_EQ(r["error"]["code"], "conflict");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("'ctl'"), std::string::npos);
  r = f.call({{"op", "remote.remove"}, {"address", "10.42.0.2/32"}});
  ASSERT_FALSE(r["ok"]) << r.dump();
  EXPECT_EQ(r["error"]["code"], "conflict");
  auto list = f.call({{"op", "remote.list"}, {"origin", "ctl"}})["result"];
  ASSERT_EQ(list.size(), 2u) << list.dump();
  for (const auto& x : list) EXPECT_FALSE(x.contains("next_hop")) << x.dump();
  // The origin's own next sync is not refused because of the attempts.
  r = f.call({{"op", "remote.sync"}, {"origin", "ctl"}, {"remotes", {{{"address", "10.42.0.1/32"}}}}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["removed"], 1);
}

// --- routes learned from the kernel (issue 13), events injected as the
// RouteWatcher reports them ---

offload::LearnedRoute learnedRoute(const char* address, std::vector<const char*> hops,
                          std::uint8_t protocol = 186) {
  offload::LearnedRoute r;
  r.address = *Ipv4Addr::parse(address);
  r.protocol = protocol;
  for (const auto* h : hops) r.next_hops.push_back(*Ipv4Addr::parse(h));
  std::sort(r.next_hops.begin(), r.next_hops.end());
  return r;
}

offload::RouteEvents routeEvent(const char* address, std::optional<offload::LearnedRoute> route) {
  offload::RouteEvents ev;
  ev.routes.emplace_back(*Ipv4Addr::parse(address), std::move(route));
  return ev;
}

offload::RouteEvents neighEvent(const char* address, const char* mac) {
  offload::RouteEvents ev;
  ev.neighbours.emplace_back(*Ipv4Addr::parse(address),
                             mac ? MacAddr::parse(mac) : std::optional<MacAddr>());
  return ev;
}

// The egress rule of a remote on the device, if it holds one.
std::optional<flowrules::FlowRule> egressOnDevice(const Fixture& f, const char* address) {
  const auto owner = flowrules::remoteOwner(*Ipv4Addr::parse(address));
  for (const auto& fl : f.nic->flows())
    if (fl.rule.owner == owner) return fl.rule;
  return std::nullopt;
}

std::string dstMac(const flowrules::FlowRule& r) {
  for (const auto& a : r.actions)
    if (const auto* m = std::get_if<flowrules::SetMacDstAction>(&a)) return m->mac.str();
  return "";
}

void learningHost(Fixture& f) {
  f.host.learn_routes = true;
  f.host.next_hops.clear();  // MACs from the kernel's neighbour table
  f.host.default_next_hop.reset();
}

TEST(ControllerLearned, RouteThroughAResolvedNextHopGoesToHardwareNotToTheJournal) {
  Fixture f;
  learningHost(f);
  f.start();
  f.ctl->applyRouteEvents(neighEvent("192.0.2.1", "02:00:00:00:00:01"));
  f.ctl->applyRouteEvents(routeEvent("10.8.0.1", learnedRoute("10.8.0.1", {"192.0.2.1"})));
  const auto rule = egressOnDevice(f, "10.8.0.1");
  ASSERT_TRUE(rule);
  EXPECT_EQ(dstMac(*rule), "02:00:00:00:00:01");
  const auto list = f.call({{"op", "remote.list"}});
  ASSERT_EQ(list["result"].size(), 1u) << list.dump();
  EXPECT_EQ(list["result"][0]["origin"], "kernel:bgp");
  EXPECT_EQ(list["result"][0]["next_hop"], "192.0.2.1");
  // No kernel route of ours for it: the routing daemon's is there.
  EXPECT_FALSE(f.sw->hasRoute("10.8.0.1/32", "uplink0"));
  // Not persisted: a restart without the route has no such remote.
  f.ctl.reset();
  f.start();
  EXPECT_EQ(f.call({{"op", "remote.list"}})["result"].size(), 0u);
  EXPECT_FALSE(egressOnDevice(f, "10.8.0.1")) << "removed by the first pass: nobody asks for it";
}

TEST(ControllerLearned, UnresolvedNextHopKeepsTheRuleInSoftwareUntilItResolves) {
  Fixture f;
  learningHost(f);
  f.start();
  f.ctl->applyRouteEvents(routeEvent("10.8.0.2", learnedRoute("10.8.0.2", {"192.0.2.1"})));
  EXPECT_FALSE(egressOnDevice(f, "10.8.0.2"));
  auto rules = f.call({{"op", "rules"}});
  bool sw = false;
  for (const auto& r : rules["result"])
    if (r["class"] == "routed-egress") {
      sw = r["placement"] == "sw";
      EXPECT_NE(r.dump().find("unresolved"), std::string::npos) << r.dump();
    }
  EXPECT_TRUE(sw) << rules.dump();
  auto st = f.call({{"op", "status"}})["result"]["routes"];
  EXPECT_EQ(st["unresolved_next_hops"], json::array({"192.0.2.1"})) << st.dump();
  EXPECT_EQ(st["by_protocol"]["bgp"], 1);
  // It resolves: the rule moves to hardware; its MAC changes: rewritten.
  f.ctl->applyRouteEvents(neighEvent("192.0.2.1", "02:00:00:00:00:01"));
  ASSERT_TRUE(egressOnDevice(f, "10.8.0.2"));
  f.ctl->applyRouteEvents(neighEvent("192.0.2.1", "02:00:00:00:00:77"));
  ASSERT_TRUE(egressOnDevice(f, "10.8.0.2"));
  EXPECT_EQ(dstMac(*egressOnDevice(f, "10.8.0.2")), "02:00:00:00:00:77");
  EXPECT_EQ(f.ctl->applier().counters().hw, f.nic->size());
  // Lost again: back to software, off the device.
  f.ctl->applyRouteEvents(neighEvent("192.0.2.1", nullptr));
  EXPECT_FALSE(egressOnDevice(f, "10.8.0.2"));
  EXPECT_EQ(f.ctl->applier().counters().hw, f.nic->size());
}

TEST(ControllerLearned, AMacChangeRewritesOnlyTheRulesThroughThatHop) {
  Fixture f;
  learningHost(f);
  f.start();
  offload::RouteEvents ev;
  ev.neighbours.emplace_back(*Ipv4Addr::parse("192.0.2.1"), MacAddr::parse("02:00:00:00:00:01"));
  ev.neighbours.emplace_back(*Ipv4Addr::parse("192.0.2.2"), MacAddr::parse("02:00:00:00:00:02"));
  for (int i = 1; i <= 20; ++i) {
    const std::string a = "10.8.1." + std::to_string(i);
    const char* hop = i % 2 ? "192.0.2.1" : "192.0.2.2";
    ev.routes.emplace_back(*Ipv4Addr::parse(a), learnedRoute(a.c_str(), {hop}));
  }
  f.ctl->applyRouteEvents(ev);
  EXPECT_EQ(f.ctl->intent().remotes.size(), 20u);
  const auto creations = f.ctl->applier().counters().creations;
  const auto destructions = f.ctl->applier().counters().destructions;
  f.ctl->applyRouteEvents(neighEvent("192.0.2.2", "02:00:00:00:00:22"));
  const auto& c = f.ctl->applier().counters();
  // Ten rules rewritten (the sim rewrites as destroy + create), none else.
  EXPECT_EQ(c.creations - creations, 10u);
  EXPECT_EQ(c.destructions - destructions, 10u);
  for (int i = 1; i <= 20; ++i) {
    const std::string a = "10.8.1." + std::to_string(i);
    const auto rule = egressOnDevice(f, a.c_str());
    ASSERT_TRUE(rule);
    EXPECT_EQ(dstMac(*rule), i % 2 ? "02:00:00:00:00:01" : "02:00:00:00:00:22");
  }
}

TEST(ControllerLearned, EcmpChoiceIsDeterministicExplainedAndFollowsTheLossOfAHop) {
  Fixture f;
  learningHost(f);
  f.start();
  offload::RouteEvents ev;
  ev.neighbours.emplace_back(*Ipv4Addr::parse("192.0.2.1"), MacAddr::parse("02:00:00:00:00:01"));
  ev.neighbours.emplace_back(*Ipv4Addr::parse("192.0.2.2"), MacAddr::parse("02:00:00:00:00:02"));
  std::map<std::string, int> per_hop;
  for (int i = 1; i <= 40; ++i) {
    const std::string a = "10.8.2." + std::to_string(i);
    ev.routes.emplace_back(*Ipv4Addr::parse(a),
                           learnedRoute(a.c_str(), {"192.0.2.1", "192.0.2.2"}));
  }
  f.ctl->applyRouteEvents(ev);
  std::map<std::string, std::string> chosen;
  for (const auto& r : f.ctl->intent().remotes) {
    chosen[r.address.str()] = r.next_hop->str();
    ++per_hop[r.next_hop->str()];
  }
  EXPECT_EQ(per_hop.size(), 2u) << "spread over both top-of-rack switches";
  // The same choice again from scratch (a restart).
  f.ctl.reset();
  f.start();
  f.ctl->applyRouteEvents(ev);
  for (const auto& r : f.ctl->intent().remotes)
    EXPECT_EQ(chosen[r.address.str()], r.next_hop->str());
  // explain says which and why.
  const auto rule = egressOnDevice(f, "10.8.2.1");
  ASSERT_TRUE(rule);
  const auto ex = f.call({{"op", "explain"}, {"rule", flowrules::formatRuleId(rule->cls, rule->id)}});
  ASSERT_TRUE(ex["ok"]) << ex.dump();
  EXPECT_EQ(ex["result"]["route"]["chosen"], chosen["10.8.2.1"]);
  EXPECT_EQ(ex["result"]["route"]["next_hops"].size(), 2u);
  EXPECT_NE(ex["result"]["route"]["why"].get<std::string>().find("ECMP"), std::string::npos);
  // 192.0.2.1 is lost (unresolved): every route moves to 192.0.2.2.
  f.ctl->applyRouteEvents(neighEvent("192.0.2.1", nullptr));
  for (const auto& r : f.ctl->intent().remotes) EXPECT_EQ(r.next_hop->str(), "192.0.2.2");
  for (int i = 1; i <= 40; ++i) {
    const std::string a = "10.8.2." + std::to_string(i);
    const auto on = egressOnDevice(f, a.c_str());
    ASSERT_TRUE(on) << a;
    EXPECT_EQ(dstMac(*on), "02:00:00:00:00:02");
  }
  // The routing daemon drops 192.0.2.2 from the routes: they follow.
  offload::RouteEvents loss;
  for (int i = 1; i <= 40; ++i) {
    const std::string a = "10.8.2." + std::to_string(i);
    loss.routes.emplace_back(*Ipv4Addr::parse(a), learnedRoute(a.c_str(), {"192.0.2.1"}));
  }
  f.ctl->applyRouteEvents(loss);
  for (const auto& r : f.ctl->intent().remotes) EXPECT_EQ(r.next_hop->str(), "192.0.2.1");
}

TEST(ControllerLearned, ManualRemoteWinsAndTheLearnedOneComesBackWhenItGoes) {
  Fixture f;
  learningHost(f);
  f.start();
  f.ctl->applyRouteEvents(neighEvent("192.0.2.1", "02:00:00:00:00:01"));
  f.ctl->applyRouteEvents(neighEvent("192.0.2.9", "02:00:00:00:00:09"));
  f.ctl->applyRouteEvents(routeEvent("10.8.3.1", learnedRoute("10.8.3.1", {"192.0.2.1"})));
  // A learned remote cannot be removed through the API.
  auto r = f.call({{"op", "remote.remove"}, {"address", "10.8.3.1/32"}});
  EXPECT_FALSE(r["ok"]) << r.dump();
  r = f.call({{"op", "remote.add"}, {"remote", {{"address", "10.8.3.1/32"}, {"next_hop", "192.0.2.9"}}}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(dstMac(*egressOnDevice(f, "10.8.3.1")), "02:00:00:00:00:09");
  // A route change under it does not take it over.
  f.ctl->applyRouteEvents(routeEvent("10.8.3.1", learnedRoute("10.8.3.1", {"192.0.2.1"}, 188)));
  EXPECT_EQ(f.call({{"op", "remote.list"}})["result"][0]["next_hop"], "192.0.2.9");
  EXPECT_EQ(f.call({{"op", "status"}})["result"]["routes"]["shadowed"], 1);
  r = f.call({{"op", "remote.remove"}, {"address", "10.8.3.1/32"}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  const auto list = f.call({{"op", "remote.list"}})["result"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["origin"], "kernel:ospf");
  EXPECT_EQ(dstMac(*egressOnDevice(f, "10.8.3.1")), "02:00:00:00:00:01");
  // Withdrawn: gone from the intent and the device.
  f.ctl->applyRouteEvents(routeEvent("10.8.3.1", std::nullopt));
  EXPECT_EQ(f.call({{"op", "remote.list"}})["result"].size(), 0u);
  EXPECT_FALSE(egressOnDevice(f, "10.8.3.1"));
}

TEST(ControllerLearned, ARouteToALocalAddressIsNotFollowed) {
  Fixture f;
  learningHost(f);
  f.start();
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(1)}})["ok"]);
  f.ctl->applyRouteEvents(neighEvent("192.0.2.1", "02:00:00:00:00:01"));
  f.ctl->applyRouteEvents(routeEvent("10.0.1.1", learnedRoute("10.0.1.1", {"192.0.2.1"})));
  EXPECT_EQ(f.call({{"op", "remote.list"}})["result"].size(), 0u);
  const auto st = f.call({{"op", "status"}})["result"]["routes"];
  EXPECT_EQ(st["refused"], 1) << st.dump();
  const auto metrics = f.ctl->metricsText(nullptr);
  EXPECT_NE(metrics.find("nicoffload_learned_routes_not_followed{why=\"refused\"} 1"),
            std::string::npos)
      << metrics;
}

// issue 22: a sync of an address the kernel taught takes it over (it was
// "unchanged" and stayed the kernel's): persisted with its origin, it
// survives the route's withdrawal and a restart.
TEST(ControllerLearned, ASyncTakesOverALearnedAddressAndKeepsItWhenTheRouteGoes) {
  Fixture f;
  learningHost(f);
  f.start();
  f.ctl->applyRouteEvents(neighEvent("192.0.2.1", "02:00:00:00:00:01"));
  f.ctl->applyRouteEvents(routeEvent("10.8.5.1", learnedRoute("10.8.5.1", {"192.0.2.1"})));
  auto r = f.call({{"op", "remote.sync"},
                   {"origin", "ctl"},
                   {"remotes", {{{"address", "10.8.5.1/32"}, {"next_hop", "192.0.2.1"}}}}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["unchanged"], 0) << r.dump();
  EXPECT_EQ(r["result"]["taken_over"], 1) << r.dump();
  EXPECT_TRUE(r["result"]["changed"]);
  EXPECT_EQ(f.call({{"op", "remote.list"}})["result"][0]["origin"], "ctl");
  f.ctl->applyRouteEvents(routeEvent("10.8.5.1", std::nullopt));
  auto list = f.call({{"op", "remote.list"}})["result"];
  ASSERT_EQ(list.size(), 1u) << list.dump();
  EXPECT_EQ(list[0]["origin"], "ctl");
  ASSERT_TRUE(egressOnDevice(f, "10.8.5.1"));
  f.ctl.reset();
  f.start();
  list = f.call({{"op", "remote.list"}})["result"];
  ASSERT_EQ(list.size(), 1u) << list.dump();
  EXPECT_EQ(list[0]["origin"], "ctl");
  // An operator's remote.add over a learned one says what it replaces.
  f.ctl->applyRouteEvents(routeEvent("10.8.5.2", learnedRoute("10.8.5.2", {"192.0.2.1"})));
  r = f.call({{"op", "remote.add"}, {"remote", {{"address", "10.8.5.2/32"}, {"next_hop", "192.0.2.1"}}}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["replaces"], "kernel:bgp");
}

// issue 22: learned routes get the checks remote.add applies, and the
// host's own uplink address and subnet are never remotes.
TEST(ControllerLearned, UnusableAndUplinkAddressesAreRefusedAndListedWithTheirReason) {
  Fixture f;
  learningHost(f);
  f.start();
  offload::RouteEvents ev;
  ev.uplink_prefixes = std::vector<Ipv4Prefix>{*Ipv4Prefix::parse("192.0.2.10/24")};
  ev.neighbours.emplace_back(*Ipv4Addr::parse("192.0.2.1"), MacAddr::parse("02:00:00:00:00:01"));
  for (const char* a : {"224.1.1.1", "255.255.255.255", "0.0.0.0", "127.0.0.2", "192.0.2.10",
                        "192.0.2.77", "10.8.6.1"})
    ev.routes.emplace_back(*Ipv4Addr::parse(a), learnedRoute(a, {"192.0.2.1"}));
  f.ctl->applyRouteEvents(ev);
  auto list = f.call({{"op", "remote.list"}})["result"];
  ASSERT_EQ(list.size(), 1u) << list.dump();
  EXPECT_EQ(list[0]["address"], "10.8.6.1/32");
  for (const auto& fl : f.nic->flows())
    for (const char* a : {"224.1.1.1", "255.255.255.255", "0.0.0.0", "127.0.0.2", "192.0.2.10"})
      EXPECT_NE(fl.rule.owner, flowrules::remoteOwner(*Ipv4Addr::parse(a))) << a;
  const auto refused = f.call({{"op", "remote.list"}, {"refused", true}});
  ASSERT_TRUE(refused["ok"]) << refused.dump();
  std::map<std::string, std::string> why;
  for (const auto& x : refused["result"]) why[x["address"]] = x["reason"];
  ASSERT_EQ(why.size(), 6u) << refused.dump();
  EXPECT_NE(why["224.1.1.1/32"].find("multicast"), std::string::npos) << why["224.1.1.1/32"];
  EXPECT_NE(why["255.255.255.255/32"].find("broadcast"), std::string::npos);
  EXPECT_NE(why["0.0.0.0/32"].find("0.0.0.0"), std::string::npos);
  EXPECT_NE(why["127.0.0.2/32"].find("loopback"), std::string::npos);
  EXPECT_NE(why["192.0.2.10/32"].find("own address"), std::string::npos) << why["192.0.2.10/32"];
  EXPECT_NE(why["192.0.2.77/32"].find("subnet 192.0.2.0/24"), std::string::npos)
      << why["192.0.2.77/32"];
  EXPECT_EQ(refused["result"][0]["origin"], "kernel:bgp");
  // Paged: total and next.
  const auto page = f.call({{"op", "remote.list"}, {"refused", true}, {"limit", 2}});
  EXPECT_EQ(page["result"]["total"], 6) << page.dump();
  EXPECT_EQ(page["result"]["next"], 2);
  EXPECT_EQ(f.call({{"op", "status"}})["result"]["routes"]["refused"], 6);
  // The uplink leaves the subnet: 192.0.2.77 is a remote again.
  offload::RouteEvents moved;
  moved.uplink_prefixes = std::vector<Ipv4Prefix>{*Ipv4Prefix::parse("198.51.100.10/24")};
  f.ctl->applyRouteEvents(moved);
  list = f.call({{"op", "remote.list"}})["result"];
  EXPECT_EQ(list.size(), 3u) << list.dump() << " (10.8.6.1, 192.0.2.77, 192.0.2.10)";
}

// issue 22: an underlay loopback (a switch's /32 in the same BGP session)
// is kept out by kernel.learn_prefixes; a next hop is never a remote,
// whatever the order the routes arrive in.
TEST(ControllerLearned, PrefixFilterAndTheUnderlayWinWhateverTheOrder) {
  for (const bool router_first : {true, false}) {
    SCOPED_TRACE(router_first ? "the router's /32 first" : "the routes through it first");
    Fixture f;
    learningHost(f);
    f.host.learn_deny = {*Ipv4Prefix::parse("10.255.0.0/16")};
    f.host.learn_allow = {*Ipv4Prefix::parse("10.0.0.0/8")};
    f.start();
    f.ctl->applyRouteEvents(neighEvent("192.0.2.1", "02:00:00:00:00:01"));
    // 10.9.0.254 is a router's /32, learned through the switch; then routes
    // through it (a second tier).
    const auto router = routeEvent("10.9.0.254", learnedRoute("10.9.0.254", {"192.0.2.1"}));
    offload::RouteEvents through;
    for (int i = 1; i <= 5; ++i) {
      const std::string a = "10.9.1." + std::to_string(i);
      through.routes.emplace_back(*Ipv4Addr::parse(a), learnedRoute(a.c_str(), {"10.9.0.254"}));
    }
    if (router_first) {
      f.ctl->applyRouteEvents(router);
      EXPECT_EQ(f.ctl->intent().remotes.size(), 1u);
      f.ctl->applyRouteEvents(through);
    } else {
      f.ctl->applyRouteEvents(through);
      f.ctl->applyRouteEvents(router);
    }
    std::set<std::string> remotes;
    for (const auto& r : f.ctl->intent().remotes) remotes.insert(r.address.str());
    EXPECT_EQ(remotes, (std::set<std::string>{"10.9.1.1", "10.9.1.2", "10.9.1.3", "10.9.1.4",
                                              "10.9.1.5"}));
    const auto why = f.call({{"op", "remote.list"}, {"refused", true}})["result"];
    ASSERT_EQ(why.size(), 1u) << why.dump();
    EXPECT_NE(why[0]["reason"].get<std::string>().find("next hop of 5 learned routes"),
              std::string::npos)
        << why.dump();
    // Filtered: a switch loopback, an address outside the allow list.
    offload::RouteEvents filtered;
    filtered.routes.emplace_back(*Ipv4Addr::parse("10.255.0.1"),
                                 learnedRoute("10.255.0.1", {"192.0.2.1"}));
    filtered.routes.emplace_back(*Ipv4Addr::parse("172.16.0.1"),
                                 learnedRoute("172.16.0.1", {"192.0.2.1"}));
    f.ctl->applyRouteEvents(filtered);
    EXPECT_EQ(f.ctl->intent().remotes.size(), 5u);
    std::map<std::string, std::string> reasons;
    const auto refused = f.call({{"op", "remote.list"}, {"refused", true}});
    for (const auto& x : refused["result"]) reasons[x["address"]] = x["reason"];
    EXPECT_NE(reasons["10.255.0.1/32"].find("learn_prefixes.deny 10.255.0.0/16"),
              std::string::npos);
    EXPECT_NE(reasons["172.16.0.1/32"].find("learn_prefixes.allow"), std::string::npos);
    // An operator cannot add the router's /32 either.
    auto r = f.call({{"op", "remote.add"}, {"remote", {{"address", "10.9.0.254/32"}}}});
    EXPECT_FALSE(r["ok"]) << r.dump();
    EXPECT_EQ(r["error"]["field"], "remote.address");
    // The routes through it go: the router's /32 is a remote again.
    offload::RouteEvents gone;
    for (int i = 1; i <= 5; ++i)
      gone.routes.emplace_back(*Ipv4Addr::parse("10.9.1." + std::to_string(i)), std::nullopt);
    f.ctl->applyRouteEvents(gone);
    ASSERT_EQ(f.ctl->intent().remotes.size(), 1u);
    EXPECT_EQ(f.ctl->intent().remotes[0].address.str(), "10.9.0.254");
  }
}

}  // namespace
}  // namespace nicoffload::daemon

namespace nicoffload::daemon {
namespace {

// Issue 22: a request whose client gave up (the hook's timeout) while it
// waited in the queue of a stalled daemon is refused when the controller
// comes to it, not applied: a ghost port nobody would ever remove.
TEST(ControllerDeadline, ARequestHandledPastItsDeadlineIsRefusedAndChangesNothing) {
  Fixture f;
  f.now += std::chrono::hours(1);  // CLOCK_MONOTONIC is well past 0 on a real host
  f.start();
  const auto rules = f.nic->size();
  // Sent with 3 s left; the daemon stalls 5 s before it handles it.
  json add = {{"op", "port.add"}, {"port", Fixture::port(1)}, {"deadline_ms", f.nowMs() + 3000}};
  f.now += milliseconds(5000);
  auto r = f.call(add);
  ASSERT_FALSE(r["ok"]) << r.dump();
  EXPECT_EQ(r["error"]["code"], "deadline-exceeded") << r.dump();
  EXPECT_EQ(r["error"]["field"], "deadline_ms");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("2000 ms"), std::string::npos) << r.dump();
  EXPECT_TRUE(f.ctl->intent().ports.empty());
  EXPECT_EQ(f.nic->size(), rules);
  EXPECT_FALSE(f.sw->hasRoute("10.0.1.1/32", "rep1"));
  EXPECT_EQ(f.ctl->counters().requests_refused, 1u);
  // A batch past its deadline is refused whole; so is an op of a batch.
  r = f.call({{"op", "batch"},
              {"ops", {{{"op", "port.add"}, {"port", Fixture::port(2)}}}},
              {"deadline_ms", f.nowMs() - 1}});
  EXPECT_EQ(r["error"]["code"], "deadline-exceeded") << r.dump();
  r = f.call({{"op", "batch"},
              {"ops",
               {{{"op", "port.add"}, {"port", Fixture::port(2)}},
                {{"op", "port.add"}, {"port", Fixture::port(3)}, {"deadline_ms", f.nowMs() - 1}}}}});
  EXPECT_EQ(r["error"]["code"], "deadline-exceeded") << r.dump();
  EXPECT_EQ(r["error"]["field"], "ops[1].deadline_ms") << r.dump();
  EXPECT_TRUE(f.ctl->intent().ports.empty());
  // Not persisted either: a restart finds no port.
  f.ctl.reset();
  f.start();
  EXPECT_TRUE(f.ctl->intent().ports.empty());
  // Handled in time (the deadline itself included): applied.
  add["deadline_ms"] = f.nowMs() + 3000;
  f.now += milliseconds(3000);
  r = f.call(add);
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(f.ctl->intent().ports.size(), 1u);
  EXPECT_TRUE(f.sw->hasRoute("10.0.1.1/32", "rep1"));
}

TEST(ControllerDeadline, EveryOpTakesTheFieldAndItIsValidated) {
  Fixture f;
  f.now += std::chrono::hours(1);
  f.start();
  const json later = f.nowMs() + 1000;
  const std::string vm = Fixture::port(1)["vm"];
  for (json req : std::vector<json>{
           {{"op", "port.add"}, {"port", Fixture::port(1)}, {"brief", true}},
           {{"op", "port.get"}, {"vm", vm}, {"nic", 0}},
           {{"op", "port.list"}, {"vm", vm}},
           {{"op", "remote.add"}, {"remote", {{"address", "10.9.0.1/32"}}}},
           {{"op", "remote.list"}, {"limit", 10}},
           {{"op", "remote.sync"}, {"origin", "bgp"}, {"remotes", json::array()}},
           {{"op", "remote.remove"}, {"address", "10.9.0.1/32"}},
           {{"op", "batch"}, {"ops", json::array()}},
           {{"op", "rules"}, {"limit", 5}},
           {{"op", "counters"}},
           {{"op", "status"}},
           {{"op", "reconcile"}},
           {{"op", "trace"},
            {"packet", {{"in", "uplink"}, {"src_ip", "10.9.9.9"}, {"dst_ip", "10.0.1.1"}}}},
           {{"op", "port.remove"}, {"vm", vm}, {"nic", 0}},
       }) {
    req["deadline_ms"] = later;
    auto r = f.call(req);
    EXPECT_TRUE(r["ok"]) << req.dump() << " -> " << r.dump();
  }
  // A read past its deadline is refused too (its client is gone).
  f.now += milliseconds(1001);
  auto r = f.call({{"op", "status"}, {"deadline_ms", later}});
  EXPECT_EQ(r["error"]["code"], "deadline-exceeded") << r.dump();
  // Type and range, the field named.
  for (const auto& [value, code] : std::vector<std::pair<json, std::string>>{
           {"soon", "wrong-type"},
           {1.5, "wrong-type"},
           {json::array(), "wrong-type"},
           {-1, "invalid-value"},
           {std::uint64_t{1} << 60, "invalid-value"}}) {
    for (const char* op : {"port.add", "status"}) {
      json req = {{"op", op}, {"deadline_ms", value}};
      if (std::string(op) == "port.add") req["port"] = Fixture::port(2);
      r = f.call(req);
      EXPECT_EQ(r["error"]["code"], code) << req.dump() << " -> " << r.dump();
      EXPECT_EQ(r["error"]["field"], "deadline_ms") << r.dump();
    }
  }
  EXPECT_EQ(f.ctl->intent().ports.size(), 0u);
}

// Issue 22: the ports of an incoming migration that libvirt abandons before
// QEMU starts (no stopped/release ever comes) must not leak: the hook's
// migrate claims them tentatively, and an unconfirmed claim expires.
// Per-port traffic (traffic.cc): a sweep falls due every
// daemon.traffic_interval_ms, reads the hardware counters of each port's
// rules, and the figures show in port.get and the traffic op; a removed
// port's figures go.
TEST(ControllerTraffic, SweepsAtItsIntervalAndShowsEachPortsCounters) {
  Fixture f;
  f.host.traffic_interval_ms = 1000;
  f.start();
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(1)}})["ok"]);
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(2)}})["ok"]);
  const std::string vm1 = Fixture::port(1)["vm"], vm2 = Fixture::port(2)["vm"];
  auto r = f.call({{"op", "port.get"}, {"vm", vm2}, {"nic", 0}});
  EXPECT_TRUE(r["result"]["traffic"].is_null()) << "not read before the first sweep";
  r = f.call({{"op", "sim.send"}, {"packet", {{"in", vm1 + "/0"}, {"dst_ip", "10.0.2.1"}}}, {"count", 5}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_LE(f.ctl->untilNextTick(), milliseconds(1000));

  f.advance(milliseconds(1000));
  f.ctl->tick();
  r = f.call({{"op", "port.get"}, {"vm", vm2}, {"nic", 0}});
  ASSERT_TRUE(r["result"]["traffic"].is_object()) << r.dump(1);
  EXPECT_EQ(r["result"]["traffic"]["rx"]["hw"]["packets"], 5);
  EXPECT_EQ(r["result"]["traffic"]["representor_read"], false) << "the test's path keeps no netdevs";
  auto t = f.call({{"op", "traffic"}})["result"];
  EXPECT_EQ(t["sweep"]["sweeps"], 1);
  EXPECT_EQ(t["sweep"]["last_error"], "") << "a path without netdev counters is no failure";
  EXPECT_EQ(t["sweep"]["representor_failures"], 0);
  EXPECT_EQ(t["ports"].size(), 2u);
  EXPECT_EQ(t["ports"][0]["traffic"]["tx"]["hw"]["packets"], 5);
  EXPECT_GT(f.ctl->untilNextTick(), milliseconds(900)) << "the next sweep, a second later";
  EXPECT_NE(f.ctl->metricsText(nullptr).find(
                "nicoffload_port_rx_packets_total{vm=\"" + vm2 + "\",nic=\"0\",path=\"hw\"} 5"),
            std::string::npos);

  // Half an interval: no sweep; the figures stay as read.
  f.call({{"op", "sim.send"}, {"packet", {{"in", vm1 + "/0"}, {"dst_ip", "10.0.2.1"}}}, {"count", 2}});
  f.advance(milliseconds(500));
  f.ctl->tick();
  EXPECT_EQ(f.call({{"op", "traffic"}})["result"]["sweep"]["sweeps"], 1);
  // "refresh" reads now.
  t = f.call({{"op", "traffic"}, {"refresh", true}, {"vm", vm2}})["result"];
  EXPECT_EQ(t["sweep"]["sweeps"], 2);
  ASSERT_EQ(t["ports"].size(), 1u);
  EXPECT_EQ(t["ports"][0]["traffic"]["rx"]["hw"]["packets"], 7);

  ASSERT_TRUE(f.call({{"op", "port.remove"}, {"vm", vm2}, {"nic", 0}})["ok"]);
  f.advance(milliseconds(1000));
  f.ctl->tick();
  EXPECT_EQ(f.ctl->metricsText(nullptr).find(vm2), std::string::npos) << "its series went with it";
}

TEST(ControllerTraffic, OffMeansNoSweepButRefreshStillReads) {
  Fixture f;  // traffic_interval_ms = 0
  f.start();
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(1)}})["ok"]);
  f.advance(milliseconds(3600 * 1000));
  f.ctl->tick();
  EXPECT_EQ(f.call({{"op", "traffic"}})["result"]["sweep"]["sweeps"], 0);
  const auto t = f.call({{"op", "traffic"}, {"refresh", true}})["result"];
  EXPECT_EQ(t["sweep"]["sweeps"], 1);
  EXPECT_EQ(t["ports"][0]["traffic"]["hw_rules_read"], 4) << "allow, two drops, delivery";
}

TEST(ControllerClaims, AnUnconfirmedTentativePortExpiresAndGivesEverythingBack) {
  Fixture f;
  f.host.tentative_ttl_ms = 10000;
  f.host.vdpa_backend = model::VdpaKind::kSim;
  f.host.vdpa_pool_size = 2;
  f.host.vdpa_pool_low_water = 1;
  f.start(true, true);
  for (int i = 0; i < 10 && f.ctl->untilNextTick().count() == 0; ++i) f.ctl->tick();
  ASSERT_EQ(f.call({{"op", "status"}})["result"]["vdpa_pool"]["ready"], 2);
  const auto rules = f.nic->size();
  const std::string vm = Fixture::port(1)["vm"];

  auto r = f.call({{"op", "port.add"}, {"port", Fixture::port(1)}, {"tentative", true}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["status"]["tentative"]["expires_in_s"], 10.0) << r.dump(1);
  EXPECT_EQ(r["result"]["status"]["devices"]["vdpa"]["name"], "nfovf0");
  EXPECT_GT(f.nic->size(), rules);
  EXPECT_TRUE(f.sw->hasRoute("10.0.1.1/32", "rep1"));
  auto status = f.call({{"op", "status"}})["result"];
  EXPECT_EQ(status["ports_tentative"]["held"], 1) << status.dump();
  EXPECT_EQ(status["vdpa_pool"]["ready"], 1);
  EXPECT_LE(f.ctl->untilNextTick(), milliseconds(10000));

  f.advance(milliseconds(4000));
  auto g = f.call({{"op", "port.list"}, {"vm", vm}});
  ASSERT_EQ(g["result"].size(), 1u);
  EXPECT_EQ(g["result"][0]["tentative"]["expires_in_s"], 6.0) << g.dump();
  f.advance(milliseconds(5999));
  f.ctl->tick();
  EXPECT_EQ(f.ctl->intent().ports.size(), 1u) << "not yet";
  EXPECT_EQ(f.ctl->untilNextTick(), milliseconds(1));

  f.advance(milliseconds(2));
  f.ctl->tick();
  EXPECT_TRUE(f.ctl->intent().ports.empty());
  EXPECT_EQ(f.ctl->counters().tentative_expired, 1u);
  EXPECT_EQ(f.nic->size(), rules) << "its rules are gone";
  EXPECT_FALSE(f.sw->hasRoute("10.0.1.1/32", "rep1"));
  status = f.call({{"op", "status"}})["result"];
  EXPECT_EQ(status["ports_tentative"]["held"], 0);
  EXPECT_EQ(status["ports_tentative"]["expired"], 1);
  EXPECT_EQ(status["vfs"]["assigned"], 0) << "the VF is free";
  EXPECT_EQ(status["vdpa_pool"]["ready"], 2) << "the device is back in the pool";
  EXPECT_EQ(f.call({{"op", "counters"}})["result"]["controller"]["tentative_ports_expired"], 1);
  EXPECT_NE(f.ctl->metricsText(nullptr).find("nicoffload_tentative_ports_expired_total 1"),
            std::string::npos);
  EXPECT_GT(f.ctl->untilNextTick(), milliseconds(10000)) << "nothing left to expire";
  // For good: a restart does not bring it back.
  f.ctl.reset();
  f.start(true, true);
  EXPECT_TRUE(f.ctl->intent().ports.empty());
}

TEST(ControllerClaims, AConfirmKeepsThePortAndARestartKeepsTheExpiry) {
  Fixture f;
  f.host.tentative_ttl_ms = 10000;
  f.start();
  for (int i : {1, 2, 3})
    ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(i)}, {"tentative", true}})["ok"]);
  // The confirm (the hook's prepare/start/started: no "tentative").
  f.advance(milliseconds(1000));
  auto r = f.call({{"op", "port.add"}, {"port", Fixture::port(1)}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["changed"], true);
  EXPECT_FALSE(r["result"]["status"].contains("tentative")) << r.dump(1);
  // Confirmed stays confirmed: a tentative claim on it changes nothing.
  r = f.call({{"op", "port.add"}, {"port", Fixture::port(1)}, {"tentative", true}});
  EXPECT_EQ(r["result"]["changed"], false) << r.dump();
  // A repeated claim renews it (port 3: until 13 s from the start).
  f.advance(milliseconds(2000));
  ASSERT_TRUE(f.call({{"op", "port.add"}, {"port", Fixture::port(3)}, {"tentative", true}})["ok"]);

  // kill -9 and restart 4 s later (both clocks moved on): the expiries hold.
  f.ctl.reset();
  f.advance(milliseconds(4000));  // t = 7 s
  f.start();
  auto held = f.call({{"op", "port.get"}, {"vm", Fixture::port(2)["vm"]}, {"nic", 0}});
  EXPECT_EQ(held["result"]["tentative"]["expires_in_s"], 3.0) << held.dump(1);
  f.advance(milliseconds(2999));  // t = 9.999 s
  f.ctl->tick();
  EXPECT_EQ(f.ctl->intent().ports.size(), 3u);
  f.advance(milliseconds(2));  // t = 10.001 s: port 2 expires
  f.ctl->tick();
  EXPECT_EQ(f.ctl->intent().ports.size(), 2u);
  EXPECT_EQ(f.ctl->counters().tentative_expired, 1u);

  // Down past port 3's expiry (13 s): the first tick after the start removes it.
  f.ctl.reset();
  f.advance(milliseconds(60000));
  f.start();
  EXPECT_EQ(f.ctl->untilNextTick(), milliseconds(0));
  f.ctl->tick();
  ASSERT_EQ(f.ctl->intent().ports.size(), 1u);
  EXPECT_EQ(f.ctl->intent().ports[0].key.vm, Fixture::port(1)["vm"]) << "the confirmed one stays";
  EXPECT_FALSE(f.ctl->intent().ports[0].tentative_until_ms);
  EXPECT_TRUE(f.sw->hasRoute("10.0.1.1/32", "rep1"));
  EXPECT_FALSE(f.sw->hasRoute("10.0.3.1/32", "rep3"));
}

TEST(ControllerClaims, TheFieldsAreValidatedAndTheExpiryIsNotARequestField) {
  Fixture f;
  f.start();
  auto r = f.call({{"op", "port.add"}, {"port", Fixture::port(1)}, {"tentative", "yes"}});
  EXPECT_EQ(r["error"]["code"], "wrong-type") << r.dump();
  EXPECT_EQ(r["error"]["field"], "tentative");
  r = f.call({{"op", "port.add"}, {"port", Fixture::port(1, {{"tentative_until_ms", 1}})}});
  EXPECT_EQ(r["error"]["code"], "unknown-field") << r.dump();
  EXPECT_EQ(r["error"]["field"], "port.tentative_until_ms");
  r = f.call({{"op", "port.remove"}, {"vm", Fixture::port(1)["vm"]}, {"nic", 0}, {"tentative", true}});
  EXPECT_EQ(r["error"]["code"], "unknown-field") << r.dump();
  EXPECT_TRUE(f.ctl->intent().ports.empty());
}

}  // namespace
}  // namespace nicoffload::daemon

namespace nicoffload::daemon {
namespace {

// Issue 22: a bulk request is served in slices; what other clients send
// meanwhile is answered between two slices, not after it.
struct BulkFixture : Fixture {
  BulkFixture() {
    defaults.bulk_threshold = 16;
    defaults.bulk_items_per_slice = 8;  // a sync of 100: more than 10 slices
  }
  static json remotes(int n, int bad_at = -1) {
    json list = json::array();
    for (int i = 1; i <= n; ++i)
      list.push_back({{"address", i - 1 == bad_at ? std::string("10.0.1.1/32")  // port 1's
                                                  : "10.70." + std::to_string(i / 250) + "." +
                                                        std::to_string(i % 250 + 1) + "/32"}});
    return list;
  }
  // Steps the bulk work until nothing is pending; the late replies in order.
  std::vector<Controller::LateReply> drain(std::size_t& steps) {
    std::vector<Controller::LateReply> all;
    for (steps = 0; ctl->bulkPending() && steps < 10000; ++steps)
      for (auto& r : ctl->stepBulk()) all.push_back(std::move(r));
    return all;
  }
};

json request(const std::string& op, json fields = json::object()) {
  fields["op"] = op;
  return fields;
}

TEST(ControllerBulk, APortAddSentAfterAHugeSyncIsAnsweredBeforeTheSyncsReply) {
  BulkFixture f;
  f.start();
  const std::size_t rules_before = f.ctl->applier().size();
  std::vector<control::Request> batch{
      {1, request("remote.sync", {{"origin", "bgp-ctl"}, {"remotes", BulkFixture::remotes(100)}}), 0},
      {2, request("port.add", {{"port", Fixture::port(1)}}), 0},
      {3, request("status"), 0},
      {4, request("remote.add", {{"remote", {{"address", "10.71.0.1/32"}}}}), 0},
      {4, request("status"), 0},  // behind its own connection's held request
  };
  auto replies = f.ctl->handle(batch);
  ASSERT_EQ(replies.size(), 5u);
  EXPECT_TRUE(replies[0].is_null());  // the sync: in flight
  ASSERT_TRUE(replies[1]["ok"]) << replies[1].dump();
  EXPECT_EQ(replies[1]["result"]["changed"], true);
  ASSERT_TRUE(replies[2]["ok"]) << replies[2].dump();
  EXPECT_EQ(replies[2]["result"]["ports"], 1);
  EXPECT_TRUE(replies[3].is_null());  // a remote mutation waits for the sync
  EXPECT_TRUE(replies[4].is_null());  // and so does what its connection sent after it
  EXPECT_TRUE(f.ctl->bulkPending());

  // One slice, then a second port.add from another client: answered at
  // once, while the sync is still in flight.
  auto first = f.ctl->stepBulk();
  EXPECT_TRUE(first.empty());
  auto more = f.ctl->handle({{5, request("port.add", {{"port", Fixture::port(2)}}), 0}});
  ASSERT_TRUE(more[0]["ok"]) << more[0].dump();
  EXPECT_TRUE(f.ctl->bulkPending());

  std::size_t steps = 0;
  const auto late = f.drain(steps);
  EXPECT_GT(steps, 10u);  // sliced, not done in one go
  ASSERT_EQ(late.size(), 3u);
  EXPECT_EQ(late[0].connection, 1u);  // the sync, then what waited behind it, in order
  ASSERT_TRUE(late[0].body["ok"]) << late[0].body.dump();
  EXPECT_EQ(late[0].body["result"]["added"], 100);
  EXPECT_EQ(late[1].connection, 4u);
  EXPECT_TRUE(late[1].body["ok"]) << late[1].body.dump();
  EXPECT_EQ(late[2].connection, 4u);
  EXPECT_EQ(late[2].body["result"]["remotes"], 101);
  // Every remote and both ports are on the device, as a sync at once leaves them.
  EXPECT_EQ(f.ctl->intent().remotes.size(), 101u);
  const auto page = f.call(request("rules", {{"offset", 0}, {"limit", 1}}));
  EXPECT_EQ(page["result"]["total"], f.ctl->applier().size());
  EXPECT_GT(f.ctl->applier().size(), rules_before + 101);
}

TEST(ControllerBulk, ARefusedHugeSyncLeavesNothingAndPortsServedMeanwhileStay) {
  BulkFixture f;
  f.start();
  ASSERT_TRUE(f.call(request("port.add", {{"port", Fixture::port(1)}}))["ok"]);
  const std::size_t rules_before = f.ctl->applier().size();
  // The 90th remote is malformed: refused, after 89 were admitted. (An
  // overlap, such as port 1's address, is a per-entry conflict instead.)
  json list = BulkFixture::remotes(100);
  list[89]["address"] = "10.99.0.300/32";
  auto replies =
      f.ctl->handle({{1, request("remote.sync", {{"origin", "bgp-ctl"}, {"remotes", list}}), 0}});
  EXPECT_TRUE(replies[0].is_null());
  for (int i = 0; i < 3; ++i) f.ctl->stepBulk();
  auto port = f.ctl->handle({{2, request("port.add", {{"port", Fixture::port(2)}}), 0}});
  ASSERT_TRUE(port[0]["ok"]) << port[0].dump();
  std::size_t steps = 0;
  const auto late = f.drain(steps);
  ASSERT_EQ(late.size(), 1u);
  EXPECT_FALSE(late[0].body["ok"]);
  EXPECT_EQ(late[0].body["error"]["field"], "remotes[89].address") << late[0].body.dump();
  EXPECT_EQ(f.ctl->intent().remotes.size(), 0u);  // all or nothing
  EXPECT_EQ(f.ctl->intent().ports.size(), 2u);
  EXPECT_GT(f.ctl->applier().size(), rules_before);  // port 2's rules, none of the sync's
  const auto page = f.call(request("rules", {{"offset", 0}, {"limit", 1}}));
  EXPECT_EQ(page["result"]["total"], f.ctl->applier().size());
  // Nothing of it was persisted either: a restart finds the two ports only.
  f.ctl.reset();
  f.start();
  EXPECT_EQ(f.ctl->intent().remotes.size(), 0u);
  EXPECT_EQ(f.ctl->intent().ports.size(), 2u);
}

TEST(ControllerBulk, AHugeRulesReadIsBuiltInSlicesWhileAPortAddIsServed) {
  BulkFixture f;
  f.start();
  ASSERT_TRUE(f.call(request("port.add", {{"port", Fixture::port(1)}}))["ok"]);
  json list = BulkFixture::remotes(60);
  std::size_t steps = 0;
  ASSERT_TRUE(f.ctl->handle({{1, request("remote.sync", {{"origin", "x"}, {"remotes", list}}), 0}})[0]
                  .is_null());
  f.drain(steps);
  // The listing as it stands, page by page (pages up to the threshold are not bulk).
  std::vector<json> expected;
  for (json next = 0; !next.is_null();) {
    auto page = f.call(request("rules", {{"offset", next}, {"limit", 16}}));
    ASSERT_TRUE(page["ok"]) << page.dump();
    for (auto& r : page["result"]["rules"]) expected.push_back(r["id"]);
    next = page["result"]["next"];
  }
  auto replies = f.ctl->handle({{1, request("rules"), 0},
                                {2, request("port.add", {{"port", Fixture::port(2)}}), 0}});
  EXPECT_TRUE(replies[0].is_null());
  ASSERT_TRUE(replies[1]["ok"]) << replies[1].dump();
  const auto late = f.drain(steps);
  EXPECT_GT(steps, 5u);
  ASSERT_EQ(late.size(), 1u);
  ASSERT_FALSE(late[0].text.empty());
  EXPECT_EQ(late[0].text.back(), '\n');
  const json reply = json::parse(late[0].text);
  ASSERT_TRUE(reply["ok"]);
  // The rules as they were when the read arrived: port 2 came after it.
  ASSERT_EQ(reply["result"].size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(reply["result"][i]["id"], expected[i]);
}

}  // namespace
}  // namespace nicoffload::daemon
