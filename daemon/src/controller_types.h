// Controller: its nested types defined out of line (a bulk job's state).
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
