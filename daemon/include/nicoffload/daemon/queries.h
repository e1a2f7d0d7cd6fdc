// A part of the controller: the read ops (status, port.get, port.list,
// remote.list, rules, explain, counters, trace) and the port status that
// mutation replies carry. Answered from memory: the intent (Admission), the
// plan (OwnerPlanner, re-planned on demand: the applier keeps summaries
// only), the placements in effect (HwApplier), the failures (FailureBook),
// the vDPA devices, the claims, the traffic figures, the learned routes,
// the state store and what the controller's passes keep.
//
// Const access only: this part changes nothing it reads. (`traffic` with
// "refresh" and `reconcile` run work first: the controller keeps them.)
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/daemon/admission.h"
#include "nicoffload/daemon/claims.h"
#include "nicoffload/daemon/controller_counters.h"
#include "nicoffload/daemon/failure_book.h"
#include "nicoffload/daemon/learned_routes.h"
#include "nicoffload/daemon/state_store.h"
#include "nicoffload/daemon/traffic_sweep.h"
#include "nicoffload/daemon/vdpa_devices.h"
#include "nicoffload/flowrules/hw_apply.h"
#include "nicoffload/flowrules/incremental.h"
#include "nicoffload/flowrules/planner.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/model/intent.h"
#include "nicoffload/offload/nic_backend.h"
#include "nicoffload/offload/route_watcher.h"
#include "nicoffload/offload/software_path.h"
#include "nicoffload/vdpa/vdpa_backend.h"

namespace nicoffload::daemon {

class Queries {
 public:
  using Clock = std::chrono::steady_clock;

  // What the reads read. Every reference outlives the part.
  struct Sources {
    const model::HostConfig& host;
    const model::HwProfile& profile;
    const Admission& admission;
    const FailureBook& failures;
    const VdpaDevices& vdpa;
    const Claims& claims;
    const TrafficSweep& traffic;
    const StateStore& store;
    const flowrules::DerivedRefs& derived_refs;  // VXLAN: the VNIs local ports use
    // Reached through their owner: the planner is replaced when a next
    // hop's MAC changes, the applier is made in the controller's
    // constructor, the learned routes at its start (null: off).
    const std::unique_ptr<flowrules::OwnerPlanner>& planner;
    const std::unique_ptr<flowrules::HwApplier>& applier;
    const std::unique_ptr<LearnedRoutes>& learned;
    // The backends, for what status and counters say of them; null: none.
    const offload::SoftwarePath* software_path;
    const offload::NicBackend* nic;
    const vdpa::VdpaBackend* vdpa_backend;
    const offload::RouteWatcher* routes;
    // What the controller's passes keep.
    const ControllerCounters& counters;
    const std::map<std::uint16_t, MacAddr>& vf_macs;  // VF MACs the NIC holds
    const std::size_t& sw_objects;                    // kernel objects desired
    const std::string& last_pass_summary;
    std::function<bool()> full_pass_running;
    std::function<Clock::time_point()> now;  // the daemon's clock
    Clock::time_point started;               // the daemon's start, on `now`
  };
  explicit Queries(Sources sources);

  // The read ops' handlers (the op table, ops.cc, names them). Errors: the
  // request's fields (kInvalidValue, kWrongType, kUnknownField, ...);
  // kNotFound for a port or rule that is not there.
  Result<nlohmann::json> readStatus(const nlohmann::json& request) const;
  Result<nlohmann::json> readPortGet(const nlohmann::json& request) const;
  Result<nlohmann::json> readPortList(const nlohmann::json& request) const;
  Result<nlohmann::json> readRemoteList(const nlohmann::json& request) const;
  Result<nlohmann::json> readRules(const nlohmann::json& request) const;
  Result<nlohmann::json> readExplain(const nlohmann::json& request) const;
  Result<nlohmann::json> readCounters(const nlohmann::json& request) const;
  // The "trace" op (trace.cc).
  Result<nlohmann::json> readTrace(const nlohmann::json& request) const;

  // The port's status; `rule_list` adds every rule with its placement and
  // reason (port.get, port.add replies), else only the counts (port.list).
  nlohmann::json portJson(const model::Port& port, bool rule_list = true) const;
  nlohmann::json statusJson() const;
  // The rules as planned, in a stable order (ports in intent order, the
  // host's rules, remotes in intent order), `offset` first, at most `limit`;
  // re-planned on demand from the owners (the applier keeps summaries only).
  std::vector<flowrules::FlowRule> plannedRules(std::size_t offset, std::size_t limit) const;
  std::size_t plannedRuleCount() const;
  // The planned rule with this id, found through its owner.
  std::optional<flowrules::FlowRule> plannedRule(flowrules::RuleId id) const;
  std::vector<std::uint32_t> portVnis() const;  // VNIs local ports use (VXLAN), sorted
  offload::RouteWatcherCounters watcherCounters() const;

  static constexpr std::size_t kFailuresListed = 20;  // status: the oldest failures shown

 private:
  // The failures of `port` (its representor's kernel objects, its VF and
  // vDPA device), as port.get lists them.
  nlohmann::json portFailuresJson(const model::Port& port) const;
  const model::Port* findPort(const model::PortKey& key) const { return admission_.findPort(key); }
  const model::RemoteEndpoint* findRemote(const IpAddr& address) const {
    return admission_.findRemote(address);
  }

  const model::HostConfig& host_;
  const model::HwProfile& profile_;
  const Admission& admission_;
  const FailureBook& failures_;
  const VdpaDevices& vdpa_;
  const Claims& claims_;
  const TrafficSweep& traffic_;
  const StateStore& store_;
  const flowrules::DerivedRefs& derived_refs_;
  const std::unique_ptr<flowrules::OwnerPlanner>& planner_;
  const std::unique_ptr<flowrules::HwApplier>& applier_;
  const std::unique_ptr<LearnedRoutes>& learned_;
  const offload::SoftwarePath* software_path_;
  const offload::NicBackend* nic_;
  const vdpa::VdpaBackend* vdpa_backend_;
  const offload::RouteWatcher* routes_;
  const ControllerCounters& counters_;
  const std::map<std::uint16_t, MacAddr>& vf_macs_;
  const std::size_t& sw_objects_;
  const std::string& last_pass_summary_;
  std::function<bool()> full_pass_running_;
  std::function<Clock::time_point()> now_;
  Clock::time_point started_;
};

}  // namespace nicoffload::daemon
