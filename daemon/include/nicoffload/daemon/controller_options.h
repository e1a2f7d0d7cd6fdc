// How the controller is built: its options (timers, slices, bulk requests)
// and the backends it drives. Controller::start takes both (controller.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "nicoffload/flowrules/flow_backend.h"
#include "nicoffload/offload/nic_backend.h"
#include "nicoffload/offload/route_watcher.h"
#include "nicoffload/offload/software_path.h"
#include "nicoffload/vdpa/vdpa_backend.h"

namespace nicoffload::daemon {

using SteadyClock = std::chrono::steady_clock;

struct ControllerOptions {
  std::chrono::milliseconds reconcile_interval{30000};  // periodic full pass
  std::chrono::milliseconds retry_min{100};             // first retry after a failure
  std::chrono::milliseconds retry_max{30000};           // backoff ceiling
  std::function<SteadyClock::time_point()> now = [] { return SteadyClock::now(); };
  // The wall clock, read once at start: a tentative port's expiry is kept
  // (and persisted) as wall time, Port::tentative_until_ms, so that it holds
  // across a restart; while the daemon runs, time goes by `now` from there,
  // so a step of the wall clock neither expires nor prolongs a claim.
  std::function<std::chrono::system_clock::time_point()> wall_now = [] {
    return std::chrono::system_clock::now();
  };
  // Full passes (periodic, retries) run their heavy part on a worker thread
  // and check the device in slices of slice_budget per loop turn, so that
  // requests never wait behind them; off = each runs at once (tests).
  bool background_full_pass = true;
  std::chrono::milliseconds slice_budget{10};
  // A periodic full pass that finds nothing changed since the last clean one
  // (no batch, no vanished rule, no failure, the software path unchanged)
  // only verifies the device: the plan of an unchanged intent is the same.
  // Every full_compute_every-th pass plans and reads back in full anyway
  // (0: every pass does).
  unsigned full_compute_every = 10;
  // Bulk requests: a remote.sync listing more than bulk_threshold remotes,
  // and a `rules` read of more than bulk_threshold rules (unpaginated, or a
  // page that large), are served in slices of slice_budget per loop turn
  // (stepBulk()), other requests in between; 0: every request at once.
  std::size_t bulk_threshold = 4096;
  // At most this many items (remotes, rules) per slice as well (0: the time
  // budget only); tests use it to make the interleaving deterministic.
  std::size_t bulk_items_per_slice = 0;
};

struct Backends {
  std::unique_ptr<flowrules::FlowBackend> flow;  // sim or dpdk; required
  std::unique_ptr<offload::SoftwarePath>
      software_path;                         // kernel, or null when backends.software_path is none
  std::unique_ptr<offload::NicBackend> nic;  // SR-IOV, eswitch, VF settings; null = not managed
  std::unique_ptr<vdpa::VdpaBackend> vdpa;   // vDPA devices; null = none
  // kernel.learn_routes: the kernel's routes and the uplink's neighbours
  // (learned_routes.cc); null = off.
  std::unique_ptr<offload::RouteWatcher> routes;
};

// Status of one port, as the API shows it.
enum class PortState : std::uint8_t {
  kInstalled,  // every rule placed, every kernel object in place
  kDegraded,   // some objects failed; retried with backoff; traffic may take the software path
};

}  // namespace nicoffload::daemon
