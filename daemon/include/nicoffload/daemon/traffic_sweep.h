// A part of the controller: the per-port traffic counters (issue 23, part
// 3). Every daemon.traffic_interval_ms a sweep reads the COUNT of each
// port's hardware rules (through the `query` seam: HwApplier::query, so the
// flow backend's rte_flow_query or the simulated NIC's own counters) in
// slices of the loop turn, while a worker dumps the representors' netdev
// counters (SoftwarePath::linkTraffic, a socket of its own); then
// flowrules::PortTrafficBook turns the readings into totals that only grow.
// The controller shows them in port.get and the `traffic` op, and exports
// them in /metrics (metricsText()).
//
// The part reads the intent (which ports there are) and the planner (which
// rules a port has) but changes neither; it owns only the sweep in flight,
// the totals and the sweep's statistics.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/flowrules/flow_backend.h"
#include "nicoffload/flowrules/port_traffic.h"
#include "nicoffload/flowrules/rule.h"
#include "nicoffload/model/intent.h"
#include "nicoffload/offload/software_path.h"

namespace nicoffload::daemon {

class TrafficSweep {
 public:
  using Clock = std::chrono::steady_clock;

  struct Seams {
    // The rules planned for a port (OwnerPlanner::portRules); those with a
    // traffic role (flowrules::trafficRole) are read. An error: the port is
    // read without rules.
    std::function<Result<std::vector<flowrules::FlowRule>>(const model::Port&)> port_rules;
    // One rule's hardware counter (HwApplier::query). kNotFound: a rule not
    // applied or not in hardware (no counter of its own), or gone from the
    // device; skipped. Any other error is counted as a failed read.
    std::function<Result<flowrules::FlowCounters>(flowrules::RuleId)> query;
    // The daemon's clock (ControllerOptions::now): when a sweep falls due,
    // and the figures' age. The loop-thread time a sweep takes is measured
    // on the steady clock itself.
    std::function<Clock::time_point()> now;
  };
  struct Options {
    // Loop time per turn of a sweep is at most min(slice_budget, kSlice).
    std::chrono::milliseconds slice_budget{10};
    // Off (tests): a due sweep runs whole, at once, in step().
    bool background = true;
  };

  // `host` (daemon.traffic_interval_ms, 0: no periodic sweep) and `intent`
  // outlive the part and are read at each step. `path`: the representors'
  // counters, read on a worker thread while the loop reads the rules; null
  // without a software path. The first sweep falls due one interval after
  // `start`.
  TrafficSweep(const model::HostConfig& host, const model::Intent& intent,
               offload::SoftwarePath* path, Seams seams, Options options, Clock::time_point start);
  ~TrafficSweep();  // waits for the worker of a sweep in flight
  TrafficSweep(const TrafficSweep&) = delete;
  TrafficSweep& operator=(const TrafficSweep&) = delete;

  // tick()'s share: starts a sweep when one is due (`now`, the daemon's
  // clock), then runs a slice of the one in flight (all of it when
  // Options::background is off).
  void step(Clock::time_point now);
  // A whole sweep now (the `traffic` op's "refresh"): the one in flight is
  // finished, else a new one runs; waits for the representors' dump.
  void runNow();
  // A sweep is in flight: step() has work at the next loop turn.
  bool inFlight() const { return sweep_ != nullptr; }
  // When step() has work next: time_point::min() while a sweep is in
  // flight, max() when none is ever due.
  Clock::time_point nextWork() const;

  // One port's figures: {"rx", "tx", "tx_dropped", "hw_rules_read",
  // "representor_read", "age_ms"}; null when no sweep has read it yet.
  nlohmann::json portJson(const model::Port& port) const;
  // The `traffic` op's "sweep": the interval and the sweeps' statistics.
  nlohmann::json statusJson() const;
  // Milliseconds since the last sweep ended (the daemon's clock); -1: never.
  std::int64_t ageMs() const;
  // The /metrics text of the last sweep (each port's families and the
  // sweeps' own); empty before the first.
  const std::string& metricsText() const { return metrics_; }

  struct Stats {
    std::uint64_t sweeps = 0;
    std::uint64_t rule_reads = 0;
    std::uint64_t read_failures = 0;  // counter reads the device refused
    std::uint64_t link_failures = 0;  // representor counter dumps that failed
    std::size_t last_ports = 0;
    std::size_t last_rule_reads = 0;
    double last_busy_ms = 0;  // loop-thread time of the last sweep
    double last_wall_ms = 0;  // from its start to its end
    Clock::time_point last_at;
    std::string last_error;
    std::string logged_error;  // logged once until it changes
  };
  const Stats& stats() const { return stats_; }
  const flowrules::PortTrafficBook& book() const { return book_; }

  // Loop time per turn of a sweep (at most; slice_budget if shorter).
  static constexpr std::chrono::milliseconds kSlice{2};

 private:
  struct Sweep;  // the one in flight (traffic_sweep.cc)
  void start();
  bool stepSweep(bool inline_all);  // true when the sweep is over
  const model::Port* sweptPort(const Sweep& sweep, std::size_t index) const;
  void renderMetrics();

  const model::HostConfig& host_;
  const model::Intent& intent_;
  offload::SoftwarePath* path_;
  Seams seams_;
  Options options_;
  std::unique_ptr<Sweep> sweep_;
  flowrules::PortTrafficBook book_;
  Stats stats_;
  std::string metrics_;
  Clock::time_point next_;
};

}  // namespace nicoffload::daemon
