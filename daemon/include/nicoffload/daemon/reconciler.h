// A part of the controller: reconciliation, the plan against what each
// backend holds (issue 24). Hardware rules go through HwApplier (validate
// before create; refusals placed in software with the device's reason; safe
// order); the kernel software path is diffed against what was last read
// back; VF settings and vDPA devices (VdpaDevices) against what the NIC and
// the vDPA backend hold. Failures go to the FailureBook, each object retried
// with its own backoff.
//
// Two passes:
//   - the touched pass (reconcileTouched): after a batch, only the owners
//     Admission's log says it touched, planned before and after
//     (flowrules::planTouched) and applied as a delta: O(change);
//   - the full pass, the safety net: re-reads every backend, reinstalls what
//     vanished, removes what nobody asked for. Periodic and after failures
//     (step()), in three phases (verify in slices, compute on a worker,
//     repair: reconciler.cc), or inline (reconcile(), reconcileAll()).
//
// The part owns the planner, the applier and the bookkeeping that keeps a
// batch's pass O(change) (coupling counts, DerivedRefs, the kernel objects
// desired, the VF MACs the NIC holds), the full pass in flight and when the
// next one is due. It reads the intent and the batch's log (Admission) and
// changes neither.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "nicoffload/common/error.h"
#include "nicoffload/daemon/admission.h"
#include "nicoffload/daemon/controller_counters.h"
#include "nicoffload/daemon/failure_book.h"
#include "nicoffload/daemon/vdpa_devices.h"
#include "nicoffload/flowrules/coupling.h"
#include "nicoffload/flowrules/flow_backend.h"
#include "nicoffload/flowrules/hw_apply.h"
#include "nicoffload/flowrules/incremental.h"
#include "nicoffload/flowrules/planner.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/model/intent.h"
#include "nicoffload/offload/nic_backend.h"
#include "nicoffload/offload/route_watcher.h"
#include "nicoffload/offload/software_path.h"

namespace nicoffload::daemon {

class Reconciler {
 public:
  using Clock = std::chrono::steady_clock;

  // What a pass left failing.
  struct PassResult {
    std::size_t failures = 0;
    std::size_t owned = 0;  // of `failures`: kept in the FailureBook under their object
    std::optional<Error> unowned_error;  // the first failure no object owns
    void unowned(const Error& e) {
      ++failures;
      if (!unowned_error) unowned_error = e;
    }
  };

  // The backends it drives; null: none (the flow backend is given apart,
  // the applier owns it). Each outlives the part.
  struct Backends {
    offload::SoftwarePath* software_path = nullptr;
    offload::NicBackend* nic = nullptr;
    bool vdpa = false;  // a vDPA backend (VdpaDevices drives it)
    // A full pass asks it to compare the learned routes with a fresh dump.
    offload::RouteWatcher* routes = nullptr;
  };
  struct Options {
    std::chrono::milliseconds reconcile_interval{30000};  // periodic full pass
    // ControllerOptions::background_full_pass, slice_budget and
    // full_compute_every: a full pass's slices and when it may be quiet.
    bool background = true;
    std::chrono::milliseconds slice_budget{10};
    unsigned full_compute_every = 10;
    std::function<Clock::time_point()> now;  // the daemon's clock
  };

  // `host` (its next_hops may change: replacePlanner()), `profile`,
  // `admission`, `failures`, `vdpa` and `counters` outlive the part;
  // `counters`: the pass counters it bumps (reconcile_passes, full_passes,
  // quiet_passes, retries, sw_ops, sw_failures, nic_ops, nic_failures).
  // The first periodic full pass falls due one interval after `start`.
  Reconciler(const model::HostConfig& host, const model::HwProfile& profile, Admission& admission,
             FailureBook& failures, VdpaDevices& vdpa, std::unique_ptr<flowrules::FlowBackend> flow,
             Backends backends, Options options, ControllerCounters& counters,
             Clock::time_point start);
  ~Reconciler();  // waits for a full pass's worker, if one runs
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  // --- start ---
  // The intent as loaded: what plan() derives from many owners (VXLAN's
  // VNIs and remote VTEPs) is counted.
  void countDerived();
  // A VF MAC the NIC already holds (a restart): not set again.
  void adoptVfMac(std::uint16_t vf, MacAddr mac) { vf_macs_[vf] = mac; }

  // --- the passes ---
  // Plans and applies only what Admission's log says the batch touched
  // (flowrules::planTouched); the whole intent (an inline full pass) when
  // plan() would couple owners. Throws when the touched owners cannot be
  // planned (admitted owners always can: a bug).
  PassResult reconcileTouched();
  // A full pass, inline (a pass in flight is replaced); verify: check first
  // that the device still holds every hardware rule.
  PassResult reconcile(bool verify);
  // After a pass (full: a full pass, which tried every failed object):
  // failures no object owns go to FailureBook::kPassObject (a full pass
  // without any clears it), and the next retry pass is due at the
  // earliest object's retry time.
  void scheduleRetry(const PassResult& pass, bool full);
  // A verifying full pass now, inline, its retry scheduled; the next
  // periodic one an interval from now. {"failures", "summary"}.
  nlohmann::json reconcileAll();
  // tick()'s share: starts the periodic full pass or a retry pass when one
  // is due (`now`, the daemon's clock), then runs a slice of the one in
  // flight (all of it with Options::background off).
  void step(Clock::time_point now);
  // A full pass at the next step(), planned and read back in full (SIGHUP,
  // a failed state write).
  void requestFullPass();
  bool fullPassRunning() const { return full_pass_ != nullptr; }
  // When step() starts a pass next: the periodic one or the earliest retry.
  Clock::time_point nextPass() const;
  // Whether plan() couples owners now (a table at its capacity, a delivery
  // rule in software with VXLAN): a touched pass then plans the whole intent.
  bool coupled() const;

  // --- the planner: replaced when a next hop's MAC changes ---
  // A new planner from the host as it is now; the old one is kept, for the
  // rules as they were, until forgetPreviousPlanner().
  void replacePlanner();
  void forgetPreviousPlanner() { previous_planner_.reset(); }

  // --- what the other parts read ---
  // The owners of the planner and the applier (Queries holds these: the
  // planner is replaced, see above).
  const std::unique_ptr<flowrules::OwnerPlanner>& planner() const { return planner_; }
  const std::unique_ptr<flowrules::HwApplier>& applierPtr() const { return applier_; }
  flowrules::HwApplier& applier() { return *applier_; }
  const flowrules::HwApplier& applier() const { return *applier_; }
  const flowrules::DerivedRefs& derivedRefs() const { return derived_refs_; }
  const std::map<std::uint16_t, MacAddr>& vfMacs() const { return vf_macs_; }
  const std::size_t& swObjects() const { return sw_objects_; }  // kernel objects desired
  const std::string& lastPassSummary() const { return last_pass_summary_; }

 private:
  struct FullPassComputed;
  struct FullPass;
  using TouchedPorts = Admission::TouchedPorts;
  using FailFn = VdpaDevices::FailFn;
  static FullPassComputed computeFullPass(const model::Intent& intent,
                                          const model::HwProfile& profile,
                                          const std::vector<flowrules::HwApplier::HeldRule>& held,
                                          offload::SoftwarePath* path,
                                          offload::ReadBackScope scope);
  void startFullPass(bool verify);
  std::optional<PassResult> stepFullPass(bool inline_all);
  PassResult repairFullPass(FullPassComputed computed);
  PassResult quietFullPass();
  void noteTouchedDuringFullPass(const flowrules::SoftwarePathState& sw_old,
                                 const flowrules::SoftwarePathState& sw_new, bool derived,
                                 const PassResult& result);
  std::size_t driveKernel(const offload::SwChanges& changes, PassResult& result);
  void noteFlowReport(const flowrules::HwApplyReport& hw, PassResult& result);
  // VF settings and vDPA devices: all (a full pass) or the touched ports'.
  void reconcileDevices(PassResult& result, const TouchedPorts* touched);
  const model::Port* findPort(const model::PortKey& key) const { return admission_.findPort(key); }
  const model::RemoteEndpoint* findRemote(const IpAddr& address) const {
    return admission_.findRemote(address);
  }

  const model::HostConfig& host_;
  const model::HwProfile& profile_;
  Admission& admission_;
  FailureBook& failures_;
  VdpaDevices& vdpa_;
  Backends backends_;
  Options options_;
  ControllerCounters& counters_;

  std::unique_ptr<flowrules::HwApplier> applier_;
  std::unique_ptr<flowrules::OwnerPlanner> planner_;
  // The planner before a next hop's MAC changed, for the rules as they were.
  std::unique_ptr<flowrules::OwnerPlanner> previous_planner_;
  // Kept per change, so that a batch is planned in O(change):
  flowrules::CouplingCounts coupling_;        // when plan() couples owners (flowrules/coupling.h)
  flowrules::DerivedRefs derived_refs_;       // VXLAN: users of each VNI and remote VTEP
  std::size_t sw_objects_ = 0;                // kernel objects desired
  std::map<std::uint16_t, MacAddr> vf_macs_;  // VF MACs the NIC holds (set by us or read back)

  std::unique_ptr<FullPass> full_pass_;
  Clock::time_point next_full_;
  // Bumped by every batch that changed the intent; a full pass that found
  // nothing to repair records the generation it saw (clean_generation_).
  std::uint64_t generation_ = 0;
  std::optional<std::uint64_t> clean_generation_;
  unsigned quiet_in_a_row_ = 0;
  bool force_full_compute_ = false;  // requestFullPass(), reconcile(): the next pass in full
  std::string last_pass_summary_;
};

}  // namespace nicoffload::daemon
