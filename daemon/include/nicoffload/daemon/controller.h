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
// Claims (tentative ports), Queries (the read ops). It keeps the request
// flow (batches, bulk requests, the op table: ops.cc), start-up, the state
// store and the timer.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/daemon/admission.h"
#include "nicoffload/daemon/claims.h"
#include "nicoffload/daemon/control.h"
#include "nicoffload/daemon/controller_counters.h"
#include "nicoffload/daemon/failure_book.h"
#include "nicoffload/daemon/learned_routes.h"
#include "nicoffload/daemon/metrics.h"
#include "nicoffload/daemon/queries.h"
#include "nicoffload/daemon/reconciler.h"
#include "nicoffload/daemon/state_store.h"
#include "nicoffload/daemon/traffic_sweep.h"
#include "nicoffload/daemon/vdpa_devices.h"
#include "nicoffload/flowrules/flow_backend.h"
#include "nicoffload/flowrules/hw_apply.h"
#include "nicoffload/flowrules/planner.h"
#include "nicoffload/flowrules/port_traffic.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/model/intent.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/model/vf_pool.h"
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
      software_path;                        // kernel, or null when backends.software_path is none
  std::unique_ptr<offload::NicBackend> nic;          // SR-IOV, eswitch, VF settings; null = not managed
  std::unique_ptr<vdpa::VdpaBackend> vdpa;  // vDPA devices; null = none
  // kernel.learn_routes: the kernel's routes and the uplink's neighbours
  // (learned_routes.cc); null = off.
  std::unique_ptr<offload::RouteWatcher> routes;
};

// Status of one port, as the API shows it.
enum class PortState : std::uint8_t {
  kInstalled,  // every rule placed, every kernel object in place
  kDegraded,   // some objects failed; retried with backoff; traffic may take the software path
};

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
  // order. `text` is the serialised line (a large read, built in slices),
  // else `body` is the reply.
  struct LateReply {
    std::uint64_t connection = 0;
    nlohmann::json body;
    std::string text;
  };
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
  Controller(model::HostConfig host, model::HwProfile profile, Backends backends, StateStore store,
             ControllerOptions options);

  // handle() for requests nothing holds back: one reply each.
  std::vector<nlohmann::json> handleNow(const std::vector<control::Request>& batch);
  // --- bulk requests (bulk.cc) ---
  struct BulkJob;
  std::unique_ptr<BulkJob> bulk_;         // the one in flight
  std::deque<control::Request> held_;     // held back behind it, in arrival order
  std::vector<LateReply> late_;           // ready before stepBulk() was called (a refused read)
  enum class Route : std::uint8_t { kNow, kHold, kBulk };
  // Where `request` goes; `waiting`: the connections with a request held or
  // in flight (updated).
  Route route(const control::Request& request, std::unordered_set<std::uint64_t>& waiting) const;
  bool isBulk(const nlohmann::json& request) const;
  // Sorts `batch` (moved from): bulk requests start (or wait), held ones
  // wait; the rest is answered now, into `replies` at their positions.
  void dispatch(std::vector<control::Request>& batch, std::vector<nlohmann::json>& replies);
  // dispatch(), and every request it neither answered nor took answered as
  // an internal error when it threw (a bug): none is left without a reply.
  void dispatchOrAnswer(std::vector<control::Request>& batch, std::vector<nlohmann::json>& replies);
  void startBulk(control::Request request);
  // One slice of the job; true when it is over (its reply in `out`).
  bool stepSync(BulkJob& job, SteadyClock::time_point deadline, std::vector<LateReply>& out);
  bool stepRules(BulkJob& job, SteadyClock::time_point deadline, std::vector<LateReply>& out);
  bool sliceOver(const BulkJob& job, SteadyClock::time_point deadline) const;
  bool bulkChangesIntent() const;  // the job in flight is a remote.sync

  // handle() without its exception boundary; fills `replies` as it goes.
  void handleBatch(const std::vector<control::Request>& batch,
                   std::vector<nlohmann::json>& replies);
  // Answers each request of `batch` not answered yet as a read.
  void answerReads(const std::vector<control::Request>& batch,
                   std::vector<nlohmann::json>& replies);
  static bool isMutation(const nlohmann::json& request);
  // Counts and logs an exception caught for `request`, schedules a retry
  // pass; the reply to send.
  nlohmann::json internalErrorReply(const nlohmann::json& request, const std::string& what);
  // The message of the exception being handled (call inside a catch).
  static std::string describeCurrentException();

  // Admission of one mutation request (ops.cc: the op's handler, its
  // deadline checked first); a `batch` of them, all or nothing.
  Result<nlohmann::json> admit(const nlohmann::json& request);
  Result<nlohmann::json> admitBatch(const nlohmann::json& request);
  const model::Port* findPort(const model::PortKey& key) const { return admission_.findPort(key); }
  const model::RemoteEndpoint* findRemote(const IpAddr& address) const {
    return admission_.findRemote(address);
  }
  // Why a remote of any origin may not take `address`: an address the
  // underlay uses as the kernel shows it (learned next hops, uplink
  // neighbours, the uplink's subnets); empty when it may. Cheap: called per
  // remote of a sync.
  std::string learnedUnderlayUse(const IpAddr& address) const;

  // --- the ops: one table (ops.cc) ---
  enum class OpKind : std::uint8_t { kRead, kMutation };
  struct Op {
    std::string_view name;
    OpKind kind = OpKind::kRead;
    bool in_batch = false;        // may be one of a `batch`'s ops
    bool waits_for_sync = false;  // held while a bulk remote.sync changes the intent (bulk.cc)
    Result<nlohmann::json> (*handler)(Controller& c, const nlohmann::json& request) = nullptr;
  };
  static std::span<const Op> ops();
  // The op a request names; null when it names none (or no string "op").
  static const Op* findOp(const nlohmann::json& request);
  // "status, port.add, ...": every op, or those a batch may hold.
  static std::string opNames(bool batch_only = false);
  // A read op, answered: its deadline checked, then its handler. An unknown
  // op is kInvalidValue on "op", listing the ops.
  Result<nlohmann::json> read(const nlohmann::json& request);
  // The read ops that run work first (the others: Queries, queries.h):
  // "reconcile" (controller.cc: the learned routes, then the Reconciler's
  // full pass), and traffic's "refresh" (traffic.cc).
  Result<nlohmann::json> runReconcile(const nlohmann::json& request);

  // --- routes learned from the kernel (learned_routes.h); null: no route watcher ---
  std::unique_ptr<LearnedRoutes> learned_;
  // What a batch of route events (or reinstated routes) changed: never
  // journaled, reconciled unless `reconcile_now` is false (start).
  void finishInternalBatch(bool reconcile_now);
  // After a batch of requests: a learned route that a removed remote of
  // another origin had hidden comes back.
  void reinstateLearned();

  using PassResult = Reconciler::PassResult;
  void compactState();  // a snapshot of the intent, written in the background

  model::HostConfig host_;
  model::HwProfile profile_;
  Backends backends_;
  StateStore store_;
  ControllerOptions options_;

  // The intent, its index and the VF pool, with the batch's undo log and
  // touched owners (admission.h).
  Admission admission_;
  using TouchedPorts = Admission::TouchedPorts;

  // --- per-port traffic counters (traffic_sweep.h; the ops: traffic.cc) ---
  Result<nlohmann::json> readTraffic(const nlohmann::json& request);
  Result<nlohmann::json> simSend(const nlohmann::json& request);

  SteadyClock::time_point started_;
  Counters counters_;  // the passes' counters are kept by reconciler_
  // Every object that failed, with its error, attempts and retry time: the
  // kernel path's objects, VFs, vDPA devices (failure_book.h).
  FailureBook failures_;
  // The vDPA devices (ports' and the warm pool's) and the ports' links.
  VdpaDevices vdpa_;
  // The planner, the applier and the passes (reconciler.h).
  Reconciler reconciler_;
  // Every port's traffic counters, read in sweeps (a sweep's worker uses
  // backends_.software_path: declared after backends_, so gone before it).
  TrafficSweep traffic_;
  // Tentative ports (the hook's migrate) and when they expire.
  Claims claims_;
  // The read ops, over all of the above (const access): declared last.
  Queries queries_;
};

}  // namespace nicoffload::daemon
