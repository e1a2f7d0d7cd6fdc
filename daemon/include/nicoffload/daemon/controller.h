// The controller behind nicoffloadd: the intent (ports, remotes), its
// persistence, and the reconciliation of every backend with the plan.
//
// Requests arrive in batches (all that came in since the last loop turn).
// Mutations are admitted one by one against the intent as it stands, then
// persisted once, then reconciled once, then answered: a port is acknowledged
// only after it is on disk and the backends were driven. Reads are answered
// from memory.
//
// The controller coordinates parts that each have one job (each its own
// header): Admission (the intent and its undo log), Reconciler (the plan
// against every backend: the touched pass after a batch, the full pass in
// the background, the retries), LearnedRoutes (remotes from the kernel's
// routes), FailureBook (failures and their backoff), VdpaDevices (vDPA
// devices and the warm pool), TrafficSweep (per-port traffic counters),
// Claims (tentative ports), Queries (the read ops), BulkRequests (bulk
// requests in slices, and the requests held behind them). It keeps the
// request flow (batches; the op table: ops.h), start-up, the state store
// and the timer; its metrics are built in controller_metrics.h.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/daemon/admission.h"
#include "nicoffload/daemon/bulk_requests.h"
#include "nicoffload/daemon/claims.h"
#include "nicoffload/daemon/control.h"
#include "nicoffload/daemon/controller_counters.h"
#include "nicoffload/daemon/controller_options.h"
#include "nicoffload/daemon/failure_book.h"
#include "nicoffload/daemon/learned_routes.h"
#include "nicoffload/daemon/queries.h"
#include "nicoffload/daemon/reconciler.h"
#include "nicoffload/daemon/state_store.h"
#include "nicoffload/daemon/traffic_sweep.h"
#include "nicoffload/daemon/vdpa_devices.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/model/intent.h"
#include "nicoffload/offload/route_watcher.h"

namespace nicoffload::daemon {

class Controller {
 public:
  // Loads the persisted intent (errors name the state file), adopts what the
  // backends already hold, and runs a first full reconciliation. `loaded`:
  // what store.load() already returned (nicoffloadd loads the state while it
  // opens the backends); otherwise start() loads it.
  static Result<std::unique_ptr<Controller>> start(model::HostConfig host, model::HwProfile profile,
                                                   Backends backends, StateStore store,
                                                   ControllerOptions options = {},
                                                   std::optional<PersistedState> loaded = {});

  // Answers a batch of requests, one reply per request, in order. Never
  // throws: an exception while handling a request (a bug) is answered with
  // kInternal naming the op, counted (Counters::internal_errors), and the
  // rest of the batch is answered as usual.
  //
  // A null reply: the request is not answered yet; its reply comes from
  // stepBulk(). That is a bulk request (ControllerOptions::bulk_threshold),
  // and a request held back behind one: every later request of the same
  // connection (replies go out in request order), and, while a bulk
  // remote.sync is in flight, every mutation of remotes (remote.add,
  // remote.remove, remote.sync, batch) and `reconcile`. Port requests and
  // reads are never held behind another connection's bulk request.
  std::vector<nlohmann::json> handle(std::vector<control::Request> batch);

  // A reply handle() left null, now ready: give them to the server in this
  // order (BulkRequests::LateReply: `text`, a large read's line, or `body`).
  using LateReply = BulkRequests::LateReply;
  // Bulk work in flight, or requests held back behind it: call stepBulk()
  // every loop turn (untilNextTick() is 0 meanwhile).
  bool bulkPending() const;
  // Runs one slice (about slice_budget) of the bulk request in flight, then
  // the requests held back once nothing holds them any more. Never throws.
  std::vector<LateReply> stepBulk();

  // Runs what is due: retries, the periodic full pass.
  void tick();
  // How long the loop may sleep before tick() has work.
  std::chrono::milliseconds untilNextTick() const;

  // A full pass now, answered when it is over (the "reconcile" op).
  nlohmann::json reconcileAll();
  // A full pass at the next tick(), in the background (SIGHUP).
  void requestFullPass();
  bool fullPassRunning() const;

  ~Controller();  // waits for a full pass's worker, if one runs
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // --- routes learned from the kernel (LearnedRoutes: learned_routes.h) ---
  // The route watcher's descriptor (-1 without one): when it is readable,
  // call pollRoutes().
  int routeWatcherFd() const;
  // Reads what the watcher has and applies it (at most
  // kRouteMessagesPerTurn notifications: call again while readable).
  void pollRoutes();
  // Applies route and neighbour changes: learned remotes (origin
  // "kernel:<protocol>", never persisted) and next-hop MACs; reconcile_now
  // false only on start, before the first pass.
  void applyRouteEvents(const offload::RouteEvents& events, bool reconcile_now = true);
  static constexpr std::size_t kRouteMessagesPerTurn = 1u << 17;
  // Pool devices made per tick(): a request arriving meanwhile waits behind
  // at most this many creations.
  static constexpr std::size_t kPoolCreatesPerTick = 2;

  const model::Intent& intent() const { return admission_.intent(); }
  const flowrules::HwApplier& applier() const { return reconciler_.applier(); }
  std::string metricsText(const control::ServerCounters* server) const;

  // Counters (also exported as metrics): controller_counters.h.
  using Counters = ControllerCounters;
  Counters counters() const;

 private:
  friend struct OpTable;  // ops.cc: the op table's handlers call the parts
  Controller(model::HostConfig host, model::HwProfile profile, Backends backends, StateStore store,
             ControllerOptions options);

  // --- the request flow (controller.cc) ---
  // Requests nothing holds back (BulkRequests' answer_now): admitted one by
  // one, persisted and reconciled once, answered; one reply each. Never throws.
  std::vector<nlohmann::json> handleNow(const std::vector<control::Request>& batch);
  // handleNow() without its exception boundary; fills `replies` as it goes.
  void handleBatch(const std::vector<control::Request>& batch,
                   std::vector<nlohmann::json>& replies);
  // Answers each request of `batch` not answered yet as a read.
  void answerReads(const std::vector<control::Request>& batch,
                   std::vector<nlohmann::json>& replies);
  // Counts and logs an exception caught for `request`, schedules a retry
  // pass; the reply to send.
  nlohmann::json internalErrorReply(const nlohmann::json& request, const std::string& what);
  // One mutation, a `batch` of them (all or nothing), one read: the op's
  // handler (ops.cc), the request's deadline checked first.
  Result<nlohmann::json> admit(const nlohmann::json& request);
  Result<nlohmann::json> admitBatch(const nlohmann::json& request);
  Result<nlohmann::json> read(const nlohmann::json& request);
  // What route events (or reinstated routes) changed: never journaled,
  // reconciled unless `reconcile_now` is false (start).
  void finishInternalBatch(bool reconcile_now);
  // After a batch: a learned route that a removed remote of another origin
  // had hidden comes back.
  void reinstateLearned();
  void compactState();  // a snapshot of the intent, written in the background

  // The parts (each its own header). learned_: null without route learning.
  std::unique_ptr<LearnedRoutes> learned_;
  model::HostConfig host_;
  model::HwProfile profile_;
  Backends backends_;
  StateStore store_;
  ControllerOptions options_;
  Admission admission_;  // the intent, its index, the VF pool, the batch's undo log
  SteadyClock::time_point started_;
  Counters counters_;      // the passes' counters are kept by reconciler_
  FailureBook failures_;   // every failed object, its error, attempts and retry time
  VdpaDevices vdpa_;       // the vDPA devices (ports' and the warm pool's)
  Reconciler reconciler_;  // the planner, the applier and the passes
  // A sweep's worker uses backends_.software_path: declared after it.
  TrafficSweep traffic_;
  Claims claims_;      // tentative ports and when they expire
  Queries queries_;    // the read ops, over all of the above (const access)
  BulkRequests bulk_;  // bulk requests in flight and those held behind them: last
};

}  // namespace nicoffload::daemon
