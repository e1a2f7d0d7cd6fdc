// The real parts a Reconciler runs over, for the tests of the Reconciler and
// of what sits on it (BulkRequests): the routed example host without vDPA,
// the sim profile, a FailureBook, VdpaDevices without a backend, an
// Admission whose port plans come from the reconciler's planner, the
// simulated NIC in memory and the in-memory software path, with an injected
// clock. Made as at start: the host's own rules and objects in place (a
// first pass ran).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "memory_software_path.h"
#include "nicoffload/daemon/admission.h"
#include "nicoffload/daemon/controller_counters.h"
#include "nicoffload/daemon/failure_book.h"
#include "nicoffload/daemon/reconciler.h"
#include "nicoffload/daemon/vdpa_devices.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/simnic/sim_eswitch.h"

namespace nicoffload::daemon::test_support {

struct ReconcilerParts {
  model::HostConfig host;
  model::HwProfile profile;
  Reconciler::Clock::time_point now{std::chrono::hours(1)};
  simnic::SimEswitch* nic = nullptr;  // owned by the reconciler's applier
  MemorySoftwarePath sw;
  ControllerCounters counters;
  std::unique_ptr<Admission> admission;
  std::unique_ptr<FailureBook> failures;
  std::unique_ptr<VdpaDevices> vdpa;
  std::unique_ptr<Reconciler> reconciler;

  // `adjust` changes the host config before the parts are made.
  explicit ReconcilerParts(const std::function<void(model::HostConfig&)>& adjust = {}) {
    using std::chrono::milliseconds;
    auto h =
        model::loadHostConfig(std::string(NICOFFLOAD_SOURCE_DIR) + "/examples/host-routed.json");
    EXPECT_TRUE(h.ok());
    host = *h;
    host.vdpa_backend = model::VdpaKind::kNone;
    if (adjust) adjust(host);
    auto p = model::loadHwProfile(std::string(NICOFFLOAD_SOURCE_DIR) + "/hw-profiles/sim.json");
    EXPECT_TRUE(p.ok());
    profile = *p;
    failures = std::make_unique<FailureBook>(milliseconds(100), milliseconds(800));
    vdpa = std::make_unique<VdpaDevices>(host, nullptr, *failures, [this] { return now; });
    admission = std::make_unique<Admission>(
        host, Admission::Seams{
                  .port_plans = [this](const model::Port& p) -> Status {
                    if (auto r = reconciler->planner()->portRules(p); !r) return r.error();
                    return Status::success();
                  },
                  .pool_ready = [](const model::Port&) -> const std::set<std::uint16_t>* {
                    return nullptr;
                  },
                  .claim_clock_ms = [] { return std::int64_t{0}; },
                  .note_claim = [](std::int64_t) {},
                  .underlay_use = [](const IpAddr&) { return std::string(); },
              });
    auto n = simnic::SimEswitch::create(profile, host.vf_count);
    EXPECT_TRUE(n.ok());
    nic = n->get();
    reconciler = std::make_unique<Reconciler>(
        host, profile, *admission, *failures, *vdpa, std::move(n).value(),
        Reconciler::Backends{.software_path = &sw},
        Reconciler::Options{.reconcile_interval = milliseconds(60000),
                            .background = false,
                            .slice_budget = milliseconds(10),
                            .full_compute_every = 10,
                            .now = [this] { return now; }},
        counters, now);
    const auto first = reconciler->reconcile(false);
    EXPECT_EQ(first.failures, 0u);
    reconciler->scheduleRetry(first, true);
  }
  ReconcilerParts(const ReconcilerParts&) = delete;
  ReconcilerParts& operator=(const ReconcilerParts&) = delete;
};

}  // namespace nicoffload::daemon::test_support
