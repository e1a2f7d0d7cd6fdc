// Controller: its nested types defined out of line (the full pass's state).
// Private to the daemon; every file of the Controller includes it, so that
// the unique_ptr members holding them can be created and destroyed anywhere.
#pragma once

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <cstdio>
#include <future>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_set>

#include "nicoffload/daemon/controller.h"

namespace nicoffload::daemon {

// --- the full pass: the safety net ---
//
// Re-reads every backend and repairs whatever differs from a whole plan of
// the intent: rules that vanished from the device, refusals worth retrying,
// kernel objects someone changed. It must not stall requests at fleet scale
// (100 k rules), so it runs in three phases:
//   1. verify: the device is asked about each hardware rule, in slices of
//      ControllerOptions::slice_budget per loop turn (the backend is not
//      thread-safe);
//   2. compute: on a worker thread, against a copy of the intent and of the
//      applier's digests: the whole plan, the kernel read back (its own
//      netlink socket), and both diffs;
//   3. repair (loop thread): what the worker found, minus what a batch
//      touched meanwhile (those owners were planned and applied by the
//      batch itself, from newer intent).
// With background_full_pass off (tests, start, the "reconcile" op, a table
// at its capacity) the same phases run at once, in order.

struct Controller::FullPassComputed {
  Status planned = Status::success();
  std::vector<flowrules::FlowRule> upsert;
  std::vector<flowrules::HwApplier::HeldRule> remove;
  std::vector<flowrules::RuleDependency> dependencies;
  std::optional<offload::SwChanges> sw;  // null: no software path, or the read-back failed
  std::optional<Error> read_back_error;
  flowrules::CouplingCounts coupling;
  std::size_t sw_objects = 0;
  std::size_t rules = 0;
};

struct Controller::FullPass {
  enum class Phase : std::uint8_t { kVerify, kCompute, kRepair };
  Phase phase = Phase::kVerify;
  bool verify = true;
  std::vector<flowrules::RuleId> to_verify;
  std::size_t cursor = 0;
  std::size_t vanished = 0;
  std::future<FullPassComputed> computed;
  // Touched by batches since the worker's copy was taken.
  std::unordered_set<flowrules::OwnerId> owners;
  std::unordered_set<IpAddr> addresses;
  std::unordered_set<std::string> devices;
  bool derived = false;  // a VNI or a remote VTEP appeared or vanished
  // Failures of those batches no object owns: carried into the pass's
  // result, so that their retry is kept.
  std::size_t batch_failures = 0;
  std::optional<Error> batch_error;
  bool copied = false;  // the worker's copy was taken: record what batches touch
  SteadyClock::time_point started;
  std::uint64_t generation = 0;  // the controller's generation_ when the pass started
  bool force = false;            // SIGHUP, the reconcile op: never a quiet pass
};

// A bulk request served in slices (bulk.cc).
struct Controller::BulkJob {
  enum class Kind : std::uint8_t { kSync, kRules };
  Kind kind = Kind::kSync;
  control::Request request;
  SteadyClock::time_point started;

  // --- a remote.sync: admitted in slices (the intent changes in place, with
  // the job's own undo log, swapped with the controller's while a slice
  // runs), then persisted and applied in slices (a journal record each).
  enum class Phase : std::uint8_t { kAdmit, kRemoveGone, kApply };
  Phase phase = Phase::kAdmit;
  std::optional<Admission::SyncAdmission> sync;
  nlohmann::json result;
  Admission::Log log;  // its touched ports stay empty: a sync touches remotes only
  std::vector<IpAddr> to_apply;  // touched_remotes' keys, reconciled in slices
  std::size_t applied = 0;

  // --- an unpaginated (or very large) `rules` read: the intent's owners as
  // they were when it arrived, rendered in slices into the reply's text.
  std::vector<model::Port> ports;
  std::vector<flowrules::FlowRule> host_rules;
  std::vector<model::RemoteEndpoint> remotes;
  bool testpmd = false;
  std::size_t skip = 0;   // rules still to skip (offset)
  std::size_t left = 0;   // rules still to give (limit)
  std::size_t owner = 0;  // next owner: ports, then the host's rules, then remotes
  std::size_t given = 0;
  std::string text;    // the reply so far
  std::string suffix;  // what closes it
};

}  // namespace nicoffload::daemon
