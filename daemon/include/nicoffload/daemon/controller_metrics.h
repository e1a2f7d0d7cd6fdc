// The controller's metrics (Prometheus text, served by MetricsServer): what
// each part counts, read from the parts themselves, built in one place.
// Pure reading: no part is changed.
#pragma once

#include <string>

#include "nicoffload/daemon/admission.h"
#include "nicoffload/daemon/claims.h"
#include "nicoffload/daemon/control.h"
#include "nicoffload/daemon/controller_counters.h"
#include "nicoffload/daemon/failure_book.h"
#include "nicoffload/daemon/learned_routes.h"
#include "nicoffload/daemon/state_store.h"
#include "nicoffload/daemon/traffic_sweep.h"
#include "nicoffload/daemon/vdpa_devices.h"
#include "nicoffload/flowrules/hw_apply.h"
#include "nicoffload/model/intent.h"
#include "nicoffload/offload/route_watcher.h"

namespace nicoffload::daemon {

// Where the figures come from; each outlives the call.
struct ControllerMetricsSources {
  const model::HostConfig& host;        // vdpa_pool_size
  const Admission& admission;           // ports and remotes in the intent
  const flowrules::HwApplier& applier;  // rules by placement, flow backend operations
  std::string flow_backend;             // the flow backend's name (capabilities().backend)
  const FailureBook& failures;          // objects failing now, by kind
  const VdpaDevices& vdpa;              // vDPA devices and the warm pool
  const Claims& claims;                 // tentative ports
  const StateStore& store;              // the journal's size and compactions
  const TrafficSweep& traffic;          // per-port traffic (its own text, appended)
  const ControllerCounters& counters;   // passes, retries, state saves, refusals, internal errors
  const LearnedRoutes* learned = nullptr;  // null: kernel.learn_routes off (no route metrics)
  offload::RouteWatcherCounters watcher;   // the route watcher's counters (with `learned`)
  const control::ServerCounters* server = nullptr;  // null: no control request metrics
};

// Every metric, in the Prometheus text format 0.0.4.
std::string controllerMetricsText(const ControllerMetricsSources& sources);

}  // namespace nicoffload::daemon
