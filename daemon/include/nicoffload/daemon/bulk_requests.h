// A part of the controller: bulk requests served in slices, so that no
// request waits behind one (issue 22, docs/design.md: "no request waits more
// than 50 ms behind a full pass or a large read"), and the requests held
// back behind them.
//
// A bulk request is a remote.sync listing more than Options::threshold
// remotes (or whose origin holds more), or a `rules` read of more than that
// many rules. route() does not answer it: it becomes the job in flight, and
// step(), once per loop turn, runs a slice of it (Options::slice_budget), so
// that the loop serves every other client between two slices.
//
// One bulk request runs at a time; a second waits (held) for the first. Every
// later request of a connection with a request held or in flight waits too:
// replies go out in request order. While a bulk remote.sync changes the
// intent, every op that waits for it (Seams::waits_for_sync: the op table's
// mutations of remotes and `reconcile`) is held as well. The rest is
// answered at once (Seams::answer_now). bulk.cc tells how a sync is
// admitted, persisted and applied in slices, and how a refusal rolls it back.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_set>
#include <vector>

#include "nicoffload/daemon/admission.h"
#include "nicoffload/daemon/control.h"
#include "nicoffload/daemon/controller_counters.h"
#include "nicoffload/daemon/reconciler.h"
#include "nicoffload/daemon/state_store.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::daemon {

class BulkRequests {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    // More remotes (a sync) or rules (a read) than this: bulk; 0: never.
    std::size_t threshold = 4096;
    // At most this many items (remotes, rules) per slice as well (0: the time
    // budget only); tests use it to make the interleaving deterministic.
    std::size_t items_per_slice = 0;
    std::chrono::milliseconds slice_budget{10};  // per step()
  };

  // The parts a job works on; each outlives this part. A sync changes the
  // intent through `admission` (its own undo log swapped in while a slice
  // runs), appends a journal record per slice to `store` and reconciles each
  // slice through `reconciler`; a `rules` read joins the planner's rules
  // with the applier's placements. `counters`: requests_refused,
  // state_saves, state_save_failures.
  struct Parts {
    const model::HostConfig& host;
    const model::HwProfile& profile;
    Admission& admission;
    Reconciler& reconciler;
    StateStore& store;
    ControllerCounters& counters;
  };

  // What it asks the controller. Every one is required.
  struct Seams {
    // Answers requests nothing holds back, one reply each, in order
    // (Controller: a batch admitted, persisted, reconciled and answered).
    // Never throws: the requests it was given are not answered otherwise.
    std::function<std::vector<nlohmann::json>(const std::vector<control::Request>&)> answer_now;
    // Whether a request's op waits while a bulk remote.sync is in flight.
    std::function<bool(const nlohmann::json& request)> waits_for_sync;
    // The reply to a request whose handling threw `what` (a bug): counted,
    // logged, a retry pass scheduled.
    std::function<nlohmann::json(const nlohmann::json& request, const std::string& what)>
        internal_error;
    // The rules the planner plans for the intent (Queries::plannedRuleCount)
    // and the VNIs local ports use, sorted (Queries::portVnis).
    std::function<std::size_t()> planned_rules;
    std::function<std::vector<std::uint32_t>()> port_vnis;
    // A snapshot of the intent written in the background (the journal grew).
    std::function<void()> compact_state;
    // A removed remote whose address the kernel routes comes back as learned
    // (the touched remotes: the admission's log).
    std::function<void()> reinstate_learned;
  };

  // A reply route() left null, now ready. `text` is the serialised line (a
  // large read, built in slices), else `body` is the reply.
  struct LateReply {
    std::uint64_t connection = 0;
    nlohmann::json body;
    std::string text;
  };

  BulkRequests(Parts parts, Seams seams, Options options);
  ~BulkRequests();
  BulkRequests(const BulkRequests&) = delete;
  BulkRequests& operator=(const BulkRequests&) = delete;

  // One reply per request of `batch`, in order; a null reply: the request
  // is not answered yet, its reply comes from step(). Bulk requests start
  // (or wait), held ones wait, the rest is answered now
  // (Seams::answer_now). When sorting throws (a bug), whatever was neither
  // answered nor taken is answered through Seams::internal_error: none is
  // left without a reply.
  std::vector<nlohmann::json> handle(std::vector<control::Request> batch);
  // Whether `request` would start a bulk job (Options::threshold).
  bool isBulk(const nlohmann::json& request) const;

  // A job in flight, requests held, or replies not given yet.
  bool pending() const;
  // The job in flight is a remote.sync: the intent changes over several
  // turns, so no full pass may start or take its copy meanwhile.
  bool changesIntent() const;
  // Runs one slice (about slice_budget) of the job in flight, then routes
  // the requests held back once nothing holds them any more; the replies
  // ready, in the order to give them. Never throws: a job that throws is
  // answered through Seams::internal_error (a sync's admitted slices rolled
  // back, a full pass requested).
  std::vector<LateReply> step();

 private:
  struct Job;
  enum class Route : std::uint8_t { kNow, kHold, kBulk };
  // Where `request` goes; `waiting`: the connections with a request held or
  // in flight (updated).
  Route where(const control::Request& request, std::unordered_set<std::uint64_t>& waiting) const;
  // Sorts `batch` (moved from), answering the requests for now into
  // `replies` at their positions; route(): the same, never throwing.
  void dispatch(std::vector<control::Request>& batch, std::vector<nlohmann::json>& replies);
  void route(std::vector<control::Request>& batch, std::vector<nlohmann::json>& replies);
  void start(control::Request request);
  // One slice of the job; true when it is over (its reply in `out`).
  bool stepSync(Job& job, Clock::time_point deadline, std::vector<LateReply>& out);
  bool stepRules(Job& job, Clock::time_point deadline, std::vector<LateReply>& out);
  std::size_t perSlice() const;

  Parts parts_;
  Seams seams_;
  Options options_;
  std::unique_ptr<Job> job_;           // the one in flight
  std::deque<control::Request> held_;  // held back behind it, in arrival order
  std::vector<LateReply> late_;        // ready before step() was called (a refused read)
};

}  // namespace nicoffload::daemon
