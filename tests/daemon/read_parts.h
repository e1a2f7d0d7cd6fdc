// The real parts the controller's reads and metrics look at, for the tests
// of Queries and of the metrics text: the routed example host without vDPA
// or a traffic sweep, the sim profile, a planner and an applier on the
// simulated NIC in memory, a FailureBook, VdpaDevices without a backend, an
// Admission whose port plans come from the planner, Claims, a TrafficSweep
// and a StateStore in a temp dir, with an injected clock. Nothing applied.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "nicoffload/daemon/admission.h"
#include "nicoffload/daemon/claims.h"
#include "nicoffload/daemon/controller_counters.h"
#include "nicoffload/daemon/failure_book.h"
#include "nicoffload/daemon/state_store.h"
#include "nicoffload/daemon/traffic_sweep.h"
#include "nicoffload/daemon/vdpa_devices.h"
#include "nicoffload/flowrules/hw_apply.h"
#include "nicoffload/flowrules/planner.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/simnic/sim_eswitch.h"
#include "support/temp_dirs.h"

namespace nicoffload::daemon::test_support {

struct ReadParts {
  using Clock = std::chrono::steady_clock;
  std::string dir;
  model::HostConfig host;
  model::HwProfile profile;
  Clock::time_point now{std::chrono::hours(1)};
  Clock::time_point started = now;
  std::unique_ptr<flowrules::OwnerPlanner> planner;
  std::unique_ptr<flowrules::HwApplier> applier;
  std::unique_ptr<Admission> admission;
  std::unique_ptr<FailureBook> failures;
  std::unique_ptr<VdpaDevices> vdpa;
  std::unique_ptr<Claims> claims;
  std::unique_ptr<TrafficSweep> traffic;
  std::unique_ptr<StateStore> store;
  ControllerCounters counters;

  explicit ReadParts(const char* temp_prefix) : dir(testing::makeTempDir(temp_prefix)) {
    using std::chrono::milliseconds;
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
        started, milliseconds(100),
        [](std::vector<control::Request>) { return std::vector<nlohmann::json>(); });
    traffic = std::make_unique<TrafficSweep>(
        host, admission->intent(), nullptr,
        TrafficSweep::Seams{
            .port_rules = [this](const model::Port& p) { return planner->portRules(p); },
            .query = [this](flowrules::RuleId id) { return applier->query(id); },
            .now = [this] { return now; },
        },
        TrafficSweep::Options{.slice_budget = milliseconds(10), .background = false}, started);
    store = std::make_unique<StateStore>(host.state_dir);
  }
  ReadParts(const ReadParts&) = delete;
  ReadParts& operator=(const ReadParts&) = delete;
};

}  // namespace nicoffload::daemon::test_support
