// The controller's metrics built from its parts (controller_metrics.h): over
// real parts (an Admission, an applier on the simulated NIC in memory, a
// FailureBook, VdpaDevices, Claims, a TrafficSweep, a StateStore) and
// counters set by hand. Each figure is the part's; the control socket's and
// the learned routes' appear only when given.
#include "nicoffload/daemon/controller_metrics.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "nicoffload/flowrules/planner.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/simnic/sim_eswitch.h"
#include "port_json.h"
#include "support/temp_dirs.h"

namespace nicoffload::daemon {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

struct Fixture {
  std::string dir = testing::makeTempDir("nfo-metrics");
  model::HostConfig host;
  model::HwProfile profile;
  Clock::time_point now{std::chrono::hours(1)};
  std::unique_ptr<flowrules::OwnerPlanner> planner;
  std::unique_ptr<flowrules::HwApplier> applier;
  std::unique_ptr<Admission> admission;
  std::unique_ptr<FailureBook> failures;
  std::unique_ptr<VdpaDevices> vdpa;
  std::unique_ptr<Claims> claims;
  std::unique_ptr<TrafficSweep> traffic;
  std::unique_ptr<StateStore> store;
  ControllerCounters counters;

  Fixture() {
    auto h =
        model::loadHostConfig(std::string(NICOFFLOAD_SOURCE_DIR) + "/examples/host-routed.json");
    EXPECT_TRUE(h.ok());
    host = *h;
    host.state_dir = dir + "/state";
    host.vdpa_backend = model::VdpaKind::kNone;
    host.traffic_interval_ms = 0;
    auto p = model::loadHwProfile(std::string(NICOFFLOAD_SOURCE_DIR) + "/hw-profiles/sim.json");
    EXPECT_TRUE(p.ok());
    profile = *p;
    planner = std::make_unique<flowrules::OwnerPlanner>(host, profile);
    auto nic = simnic::SimEswitch::create(profile, host.vf_count);
    EXPECT_TRUE(nic.ok());
    applier = std::make_unique<flowrules::HwApplier>(std::move(nic).value());
    failures = std::make_unique<FailureBook>(milliseconds(100), milliseconds(800));
    vdpa = std::make_unique<VdpaDevices>(host, nullptr, *failures, [this] { return now; });
    admission = std::make_unique<Admission>(
        host, Admission::Seams{
                  .port_plans = [this](const model::Port& p) -> Status {
                    if (auto r = planner->portRules(p); !r) return r.error();
                    return Status::success();
                  },
                  .pool_ready = [](const model::Port&) -> const std::set<std::uint16_t>* {
                    return nullptr;
                  },
                  .claim_clock_ms = [this] { return claims->clockMs(); },
                  .note_claim = [this](std::int64_t until) { claims->note(until); },
                  .underlay_use = [](const IpAddr&) { return std::string(); },
              });
    claims = std::make_unique<Claims>(
        admission->intent(), [this] { return now; },
        [] { return std::chrono::system_clock::time_point{std::chrono::hours(24 * 365 * 56)}; },
        now, milliseconds(100), [](std::vector<control::Request>) { return std::vector<json>(); });
    traffic = std::make_unique<TrafficSweep>(
        host, admission->intent(), nullptr,
        TrafficSweep::Seams{
            .port_rules = [this](const model::Port& p) { return planner->portRules(p); },
            .query = [this](flowrules::RuleId id) { return applier->query(id); },
            .now = [this] { return now; },
        },
        TrafficSweep::Options{.slice_budget = milliseconds(10), .background = false}, now);
    store = std::make_unique<StateStore>(host.state_dir);
  }

  std::string render(const control::ServerCounters* server = nullptr) const {
    return controllerMetricsText({
        .host = host,
        .admission = *admission,
        .applier = *applier,
        .flow_backend = "sim",
        .failures = *failures,
        .vdpa = *vdpa,
        .claims = *claims,
        .store = *store,
        .traffic = *traffic,
        .counters = counters,
        .learned = nullptr,
        .watcher = {},
        .server = server,
    });
  }
};

bool has(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(ControllerMetrics, EachFigureIsThePartsOwn) {
  Fixture f;
  ASSERT_TRUE(f.admission->portAdd({{"port", test_support::portJson(1)}}).ok());
  ASSERT_TRUE(f.admission->portAdd({{"port", test_support::portJson(2)}}).ok());
  ASSERT_TRUE(f.admission->remoteAdd({{"remote", {{"address", "10.70.0.1/32"}}}}).ok());
  f.failures->failed(FailureBook::Kind::kKernel, "route 10.0.1.1/32",
                     makeError(ErrorCode::kIo, "route", "", "refused"), f.now);
  f.failures->failed(FailureBook::Kind::kDevice, "vf 3",
                     makeError(ErrorCode::kIo, "vf", "", "busy"), f.now);
  f.counters.state_saves = 7;
  f.counters.state_save_failures = 2;
  f.counters.reconcile_passes = 11;
  f.counters.full_passes = 3;
  f.counters.internal_errors = 1;
  f.counters.sw_ops = 5;

  const std::string text = f.render();
  EXPECT_TRUE(has(text, "nicoffload_ports 2")) << text;
  EXPECT_TRUE(has(text, "nicoffload_remotes 1"));
  EXPECT_TRUE(has(text, "nicoffload_state_saves_total{result=\"ok\"} 7"));
  EXPECT_TRUE(has(text, "nicoffload_state_saves_total{result=\"failed\"} 2"));
  EXPECT_TRUE(has(text, "nicoffload_reconcile_passes_total{kind=\"any\"} 11"));
  EXPECT_TRUE(has(text, "nicoffload_reconcile_passes_total{kind=\"full\"} 3"));
  EXPECT_TRUE(has(text, "nicoffload_internal_errors_total 1"));
  EXPECT_TRUE(has(text, "nicoffload_software_path_operations_total 5"));
  EXPECT_TRUE(has(text, "nicoffload_software_path_objects_failed 1"));
  EXPECT_TRUE(has(text, "nicoffload_failing_objects{kind=\"kernel\"} 1"));
  EXPECT_TRUE(has(text, "nicoffload_failing_objects{kind=\"device\"} 1"));
  EXPECT_TRUE(has(text, "nicoffload_flow_operations_total{backend=\"sim\",op=\"create\"} 0"));
  EXPECT_TRUE(has(text, "nicoffload_ports_tentative 0"));
  EXPECT_TRUE(has(text, "nicoffload_vdpa_pool_size 0"));
  EXPECT_TRUE(has(text, "# TYPE nicoffload_state_saves_total counter"));
  // Neither the control socket's nor the learned routes' without them.
  EXPECT_EQ(text.find("nicoffload_control_requests_total"), std::string::npos);
  EXPECT_EQ(text.find("nicoffload_learned_remotes"), std::string::npos);
}

TEST(ControllerMetrics, TheControlSocketsCountersWhenGiven) {
  Fixture f;
  f.counters.requests_refused = 4;
  control::ServerCounters server;
  server.requests = 42;
  server.malformed = 3;
  server.timed_out = 1;
  const std::string text = f.render(&server);
  EXPECT_TRUE(has(text, "nicoffload_control_requests_total{outcome=\"served\"} 42")) << text;
  EXPECT_TRUE(has(text, "nicoffload_control_requests_total{outcome=\"malformed\"} 3"));
  EXPECT_TRUE(has(text, "nicoffload_control_requests_total{outcome=\"refused\"} 4"));
  EXPECT_TRUE(has(text, "nicoffload_control_requests_total{outcome=\"timed_out\"} 1"));
}

}  // namespace
}  // namespace nicoffload::daemon
