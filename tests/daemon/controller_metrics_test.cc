// The controller's metrics built from its parts (controller_metrics.h): over
// real parts (an Admission, an applier on the simulated NIC in memory, a
// FailureBook, VdpaDevices, Claims, a TrafficSweep, a StateStore) and
// counters set by hand. Each figure is the part's; the control socket's and
// the learned routes' appear only when given.
#include "nicoffload/daemon/controller_metrics.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "port_json.h"
#include "read_parts.h"

namespace nicoffload::daemon {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

struct Fixture : test_support::ReadParts {
  Fixture() : ReadParts("nfo-metrics") {}

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
