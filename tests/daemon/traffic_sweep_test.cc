// TrafficSweep, the controller's part for per-port traffic counters, on its
// own: a real planner (the routed example host, the simulated NIC's
// profile), the hardware counters from a table, the representors' from a
// software path in memory whose dump can be held at a gate. A sweep falls
// due at its interval, reads each port's counting rules and its
// representor, runs in slices while the dump is out, and forgets a port
// removed meanwhile.
#include "nicoffload/daemon/traffic_sweep.h"

#include <gtest/gtest.h>

#include <future>
#include <map>
#include <mutex>

#include "nicoffload/flowrules/planner.h"
#include "nicoffload/model/parse.h"

namespace nicoffload::daemon {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = TrafficSweep::Clock;

// A software path that keeps nothing but the representors' counters; its
// dump (run on the sweep's worker) may be held until release().
class LinkCounters final : public offload::SoftwarePath {
 public:
  offload::SwApplyReport apply(const flowrules::SoftwarePathState&) override { return {}; }
  offload::SwApplyReport remove(const flowrules::SoftwarePathState&) override { return {}; }
  Result<flowrules::SoftwarePathState> readBack(const flowrules::SoftwarePathState&,
                                                const offload::ReadBackScope&) override {
    return flowrules::SoftwarePathState{};
  }
  Result<std::unordered_map<std::string, flowrules::LinkTraffic>> linkTraffic() override {
    if (held_) gate_.wait();
    const std::lock_guard lock(mutex_);
    ++dumps;
    if (error) return *error;
    return links;
  }
  void hold() {
    held_ = true;
    gate_ = release_.get_future().share();
  }
  void release() { release_.set_value(); }

  std::unordered_map<std::string, flowrules::LinkTraffic> links;
  std::optional<Error> error;
  int dumps = 0;

 private:
  std::mutex mutex_;
  bool held_ = false;
  std::promise<void> release_;
  std::shared_future<void> gate_;
};

struct Fixture {
  model::HostConfig host;
  std::unique_ptr<flowrules::OwnerPlanner> planner;
  model::Intent intent;
  LinkCounters path;
  // The device's counters by rule; a rule missing is kNotFound (not in
  // hardware); one in `refuse` fails to read.
  std::map<flowrules::RuleId, flowrules::FlowCounters> counters;
  std::map<flowrules::RuleId, ErrorCode> refuse;
  Clock::time_point now{};
  std::unique_ptr<TrafficSweep> sweep;

  Fixture() {
    auto h =
        model::loadHostConfig(std::string(NICOFFLOAD_SOURCE_DIR) + "/examples/host-routed.json");
    EXPECT_TRUE(h.ok());
    host = *h;
    host.traffic_interval_ms = 1000;
    auto p = model::loadHwProfile(std::string(NICOFFLOAD_SOURCE_DIR) + "/hw-profiles/sim.json");
    EXPECT_TRUE(p.ok());
    planner = std::make_unique<flowrules::OwnerPlanner>(host, *p);
  }

  void start(bool background = false, bool with_path = true) {
    sweep = std::make_unique<TrafficSweep>(
        host, intent, with_path ? &path : nullptr,
        TrafficSweep::Seams{
            .port_rules = [this](const model::Port& port) { return planner->portRules(port); },
            .query = [this](flowrules::RuleId id) -> Result<flowrules::FlowCounters> {
              if (auto r = refuse.find(id); r != refuse.end())
                return makeError(r->second, "rule", std::to_string(id),
                                 "the device refused the query");
              auto it = counters.find(id);
              if (it == counters.end())
                return makeError(ErrorCode::kNotFound, "rule", std::to_string(id), "");
              return it->second;
            },
            .now = [this] { return now; },
        },
        TrafficSweep::Options{.slice_budget = milliseconds(10), .background = background}, now);
  }

  // Port i: vm ...0i, NIC 0, representor rep<i>; its counting rules get
  // `rx` packets on delivery, `tx` on the allow rule, `dropped` on each drop.
  const model::Port& addPort(int i, std::uint64_t rx = 0, std::uint64_t tx = 0,
                             std::uint64_t dropped = 0) {
    const json doc = {{"vm", "00000000-0000-4000-8000-00000000000" + std::to_string(i)},
                      {"nic", 0},
                      {"mac", "52:54:00:00:00:0" + std::to_string(i)},
                      {"addresses", {"10.0." + std::to_string(i) + ".1/32"}},
                      {"vf", i},
                      {"representor", "rep" + std::to_string(i)}};
    auto port = model::parsePort(doc);
    EXPECT_TRUE(port.ok()) << port.error().describe();
    intent.ports.push_back(*port);
    setCounters(intent.ports.back(), rx, tx, dropped);
    return intent.ports.back();
  }
  void setCounters(const model::Port& port, std::uint64_t rx, std::uint64_t tx,
                   std::uint64_t dropped) {
    auto rules = planner->portRules(port);
    ASSERT_TRUE(rules.ok());
    for (const auto& r : *rules) {
      const auto role = flowrules::trafficRole(r);
      if (!role) continue;
      const std::uint64_t n = *role == flowrules::TrafficRole::kRx   ? rx
                              : *role == flowrules::TrafficRole::kTx ? tx
                                                                     : dropped;
      counters[r.id] = {n, n * 100};
    }
  }
  std::vector<flowrules::RuleId> roleRules(const model::Port& port,
                                           flowrules::TrafficRole role) const {
    std::vector<flowrules::RuleId> out;
    auto rules = planner->portRules(port);
    EXPECT_TRUE(rules.ok());
    if (!rules) return out;
    for (const auto& r : *rules)
      if (flowrules::trafficRole(r) == role) out.push_back(r.id);
    return out;
  }
};

TEST(TrafficSweep, FallsDueAtItsIntervalAndReadsEachPortsCountingRules) {
  Fixture f;
  f.addPort(1, 5, 7, 1);
  f.start();
  EXPECT_EQ(f.sweep->nextWork(), f.now + milliseconds(1000));
  EXPECT_EQ(f.sweep->ageMs(), -1) << "never read";
  EXPECT_TRUE(f.sweep->portJson(f.intent.ports[0]).is_null()) << "not read before the first sweep";
  EXPECT_EQ(f.sweep->metricsText(), "");

  f.now += milliseconds(999);
  f.sweep->step(f.now);
  EXPECT_EQ(f.sweep->stats().sweeps, 0u) << "not due yet";

  f.now += milliseconds(1);
  f.sweep->step(f.now);
  EXPECT_FALSE(f.sweep->inFlight()) << "background off: a due sweep runs whole";
  EXPECT_EQ(f.sweep->stats().sweeps, 1u);
  EXPECT_EQ(f.sweep->nextWork(), f.now + milliseconds(1000));
  const json t = f.sweep->portJson(f.intent.ports[0]);
  ASSERT_TRUE(t.is_object());
  EXPECT_EQ(t["rx"]["hw"]["packets"], 5);
  EXPECT_EQ(t["rx"]["hw"]["bytes"], 500);
  EXPECT_EQ(t["tx"]["hw"]["packets"], 7);
  EXPECT_EQ(t["tx_dropped"]["packets"], 2) << "two drop rules (source address, MAC)";
  EXPECT_EQ(t["hw_rules_read"], 4) << "allow, two drops, delivery; not the ARP trap";
  EXPECT_EQ(t["representor_read"], false) << "no rep1 in the dump";
  EXPECT_EQ(t["age_ms"], 0);
  EXPECT_EQ(f.sweep->stats().last_rule_reads, 4u);
  EXPECT_NE(f.sweep->metricsText().find("nicoffload_port_rx_packets_total{vm=\"" +
                                        f.intent.ports[0].key.vm + "\",nic=\"0\",path=\"hw\"} 5"),
            std::string::npos)
      << f.sweep->metricsText();

  // The next sweep: the totals follow the device; the age is since the last.
  f.setCounters(f.intent.ports[0], 9, 7, 1);
  f.now += milliseconds(400);
  EXPECT_EQ(f.sweep->portJson(f.intent.ports[0])["age_ms"], 400);
  f.now += milliseconds(600);
  f.sweep->step(f.now);
  EXPECT_EQ(f.sweep->stats().sweeps, 2u);
  EXPECT_EQ(f.sweep->portJson(f.intent.ports[0])["rx"]["hw"]["packets"], 9);
  const json st = f.sweep->statusJson();
  EXPECT_EQ(st["interval_ms"], 1000);
  EXPECT_EQ(st["sweeps"], 2);
  EXPECT_EQ(st["rule_reads"], 8);
  EXPECT_EQ(st["last_error"], "");
}

TEST(TrafficSweep, OffMeansNoSweepButRunNowStillReads) {
  Fixture f;
  f.host.traffic_interval_ms = 0;
  f.addPort(1, 3);
  f.start();
  EXPECT_EQ(f.sweep->nextWork(), Clock::time_point::max());
  f.now += milliseconds(3600 * 1000);
  f.sweep->step(f.now);
  EXPECT_EQ(f.sweep->stats().sweeps, 0u);
  f.sweep->runNow();
  EXPECT_EQ(f.sweep->stats().sweeps, 1u);
  EXPECT_EQ(f.sweep->portJson(f.intent.ports[0])["rx"]["packets"], 3);
}

TEST(TrafficSweep, RepresentorCountersComeFromThePathsDump) {
  Fixture f;
  f.addPort(1, 5);
  f.addPort(2);
  f.path.links["rep1"] = {.rx_packets = 11, .rx_bytes = 1100, .tx_packets = 2, .tx_bytes = 200};
  f.start();
  f.sweep->runNow();
  const json t = f.sweep->portJson(f.intent.ports[0]);
  EXPECT_EQ(t["representor_read"], true);
  EXPECT_EQ(t["tx"]["sw"]["packets"], 11) << "the representor's rx: what the VF sent to the kernel";
  EXPECT_EQ(t["rx"]["sw"]["packets"], 2) << "the representor's tx: what the kernel delivered";
  EXPECT_EQ(t["rx"]["packets"], 7) << "hw + sw";
  EXPECT_EQ(f.sweep->portJson(f.intent.ports[1])["representor_read"], false)
      << "no rep2 in the dump";
  EXPECT_EQ(f.sweep->stats().link_failures, 0u);

  // A path that keeps no netdev counters is no failure; a failed dump is,
  // and the hardware figures are still read.
  f.path.error = makeError(ErrorCode::kUnsupported, "software_path", "", "none kept");
  f.sweep->runNow();
  EXPECT_EQ(f.sweep->stats().link_failures, 0u);
  EXPECT_EQ(f.sweep->stats().last_error, "");
  f.path.error = makeError(ErrorCode::kIo, "netlink", "", "dump failed");
  f.sweep->runNow();
  EXPECT_EQ(f.sweep->stats().link_failures, 1u);
  EXPECT_EQ(f.sweep->stats().last_error.rfind("representor counters: ", 0), 0u)
      << f.sweep->stats().last_error;
  EXPECT_EQ(f.sweep->portJson(f.intent.ports[0])["rx"]["hw"]["packets"], 5);
  EXPECT_EQ(f.path.dumps, 3);

  // No software path: no dump, no failure.
  Fixture g;
  g.addPort(1, 5);
  g.start(false, false);
  g.sweep->runNow();
  EXPECT_EQ(g.path.dumps, 0);
  EXPECT_EQ(g.sweep->stats().last_error, "");
  EXPECT_EQ(g.sweep->portJson(g.intent.ports[0])["representor_read"], false);
}

TEST(TrafficSweep, ARuleNotInHardwareIsSkippedAndARefusedReadIsCountedAndShown) {
  Fixture f;
  const model::Port& port = f.addPort(1, 5, 7, 1);
  const auto delivery = f.roleRules(port, flowrules::TrafficRole::kRx);
  const auto drops = f.roleRules(port, flowrules::TrafficRole::kTxDropped);
  ASSERT_EQ(delivery.size(), 1u);
  ASSERT_EQ(drops.size(), 2u);
  f.counters.erase(delivery[0]);          // in software: no counter of its own
  f.refuse[drops[0]] = ErrorCode::kBusy;  // the device would not say
  f.start();
  f.sweep->runNow();
  const auto& st = f.sweep->stats();
  EXPECT_EQ(st.last_rule_reads, 3u) << "allow and both drops; the delivery rule is not in hardware";
  EXPECT_EQ(st.read_failures, 1u);
  EXPECT_NE(st.last_error.find("1 counter reads failed; the first: "), std::string::npos)
      << st.last_error;
  const json t = f.sweep->portJson(f.intent.ports[0]);
  EXPECT_EQ(t["hw_rules_read"], 2);
  EXPECT_EQ(t["rx"]["hw"]["packets"], 0);
  EXPECT_EQ(t["tx_dropped"]["packets"], 1);
  EXPECT_NE(f.sweep->metricsText().find("nicoffload_traffic_read_failures_total{kind=\"rule\"} 1"),
            std::string::npos)
      << f.sweep->metricsText();
}

// In the background, the sweep stays in flight until the representors'
// dump is in; a port removed meanwhile is not recorded, and its figures go.
TEST(TrafficSweep, InTheBackgroundItWaitsForTheDumpAndForgetsAPortRemovedMeanwhile) {
  Fixture f;
  f.addPort(1, 5);
  f.addPort(2, 6);
  f.start(true);
  f.sweep->runNow();  // both ports recorded once
  const auto gone = flowrules::portOwner(f.intent.ports[1].key);
  ASSERT_NE(f.sweep->book().find(gone), nullptr);

  f.path.hold();
  f.now += milliseconds(1000);
  f.sweep->step(f.now);
  EXPECT_TRUE(f.sweep->inFlight()) << "the dump is held";
  EXPECT_EQ(f.sweep->nextWork(), Clock::time_point::min());
  f.intent.ports.pop_back();  // port 2 removed while the sweep runs
  f.sweep->step(f.now);
  EXPECT_TRUE(f.sweep->inFlight());
  EXPECT_EQ(f.sweep->stats().sweeps, 1u);

  f.path.release();
  for (int i = 0; i < 1000 && f.sweep->inFlight(); ++i) {
    std::this_thread::sleep_for(milliseconds(1));
    f.sweep->step(f.now);
  }
  ASSERT_FALSE(f.sweep->inFlight());
  EXPECT_EQ(f.sweep->stats().sweeps, 2u);
  EXPECT_EQ(f.sweep->stats().last_ports, 2u) << "both were read";
  EXPECT_EQ(f.sweep->book().find(gone), nullptr) << "the removed port's figures went";
  EXPECT_EQ(f.sweep->book().size(), 1u);
  EXPECT_EQ(f.sweep->metricsText().find(std::string("00000000-0000-4000-8000-000000000002")),
            std::string::npos);
}

}  // namespace
}  // namespace nicoffload::daemon
