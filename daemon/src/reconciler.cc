// Reconciler (reconciler.h): the touched pass over what a batch changed, the
// full pass, the safety net, and the retries.
#include "nicoffload/daemon/reconciler.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "nicoffload/flowrules/render.h"

namespace nicoffload::daemon {

using nlohmann::json;

// --- the full pass: the safety net ---
//
// Re-reads every backend and repairs whatever differs from a whole plan of
// the intent: rules that vanished from the device, refusals worth retrying,
// kernel objects someone changed. It must not stall requests at fleet scale
// (100 k rules), so it runs in three phases:
//   1. verify: the device is asked about each hardware rule, in slices of
//      Options::slice_budget per loop turn (the backend is not
//      thread-safe);
//   2. compute: on a worker thread, against a copy of the intent and of the
//      applier's digests: the whole plan, the kernel read back (its own
//      netlink socket), and both diffs;
//   3. repair (loop thread): what the worker found, minus what a batch
//      touched meanwhile (those owners were planned and applied by the
//      batch itself, from newer intent).
// With Options::background off (tests, start, the "reconcile" op, a table
// at its capacity) the same phases run at once, in order.

struct Reconciler::FullPassComputed {
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

struct Reconciler::FullPass {
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
  Clock::time_point started;
  std::uint64_t generation = 0;  // the reconciler's generation_ when the pass started
  bool force = false;            // SIGHUP, the reconcile op: never a quiet pass
};

Reconciler::Reconciler(const model::HostConfig& host, const model::HwProfile& profile,
                       Admission& admission, FailureBook& failures, VdpaDevices& vdpa,
                       std::unique_ptr<flowrules::FlowBackend> flow, Backends backends,
                       Options options, ControllerCounters& counters, Clock::time_point start)
    : host_(host),
      profile_(profile),
      admission_(admission),
      failures_(failures),
      vdpa_(vdpa),
      backends_(backends),
      options_(std::move(options)),
      counters_(counters),
      applier_(std::make_unique<flowrules::HwApplier>(std::move(flow))),
      planner_(std::make_unique<flowrules::OwnerPlanner>(host_, profile_)),
      next_full_(start + options_.reconcile_interval) {}

Reconciler::~Reconciler() { full_pass_.reset(); }  // before the backends its worker uses

void Reconciler::countDerived() {
  if (host_.underlay != model::UnderlayMode::kVxlan) return;
  for (const auto& p : admission_.intent().ports) derived_refs_.addPort(planner_->vniOf(p));
  for (const auto& r : admission_.intent().remotes)
    derived_refs_.addRemote(planner_->vniOf(r), *r.vtep);
}

void Reconciler::replacePlanner() {
  previous_planner_ = std::move(planner_);
  planner_ = std::make_unique<flowrules::OwnerPlanner>(host_, profile_);
}

void Reconciler::step(Clock::time_point now) {
  if (!full_pass_) {
    if (now >= next_full_) {
      next_full_ = now + options_.reconcile_interval;
      startFullPass(true);
    } else if (now >= failures_.nextRetry()) {
      ++counters_.retries;
      startFullPass(true);
    } else {
      return;
    }
  }
  if (auto pass = stepFullPass(!options_.background)) scheduleRetry(*pass, true);
}

Reconciler::Clock::time_point Reconciler::nextPass() const {
  return std::min(next_full_, failures_.nextRetry());
}

namespace {

// The netdev a sysctl path names: "ipv4/conf/<dev>/x", "ipv4/neigh/<dev>/x".
std::string_view sysctlDevice(std::string_view path) {
  for (std::string_view prefix : {"ipv4/conf/", "ipv4/neigh/", "ipv6/conf/", "ipv6/neigh/"}) {
    if (path.substr(0, prefix.size()) != prefix) continue;
    const auto rest = path.substr(prefix.size());
    return rest.substr(0, rest.find('/'));
  }
  return {};
}

bool isVxlanDevice(std::string_view dev) {
  return dev.substr(0, std::string_view(flowrules::kVxlanDevicePrefix).size()) ==
         flowrules::kVxlanDevicePrefix;
}

}  // namespace

// Removes, then applies, kernel objects; each failure is counted, kept for
// the port's status and logged. Returns how many failed.
std::size_t Reconciler::driveKernel(const offload::SwChanges& changes, PassResult& result) {
  auto& path = *backends_.software_path;
  const auto removed = path.remove(changes.remove);
  const auto applied = path.apply(changes.apply);
  counters_.sw_ops +=
      removed.succeeded + applied.succeeded + removed.failures.size() + applied.failures.size();
  std::size_t failed = 0;
  for (const auto* r : {&removed, &applied})
    for (const auto& f : r->failures) {
      ++counters_.sw_failures;
      ++result.failures;
      ++result.owned;
      ++failed;
      failures_.failed(FailureBook::Kind::kKernel, f.object, f.error, options_.now());
      spdlog::error("software path: {}: {}", f.object, f.error.message);
    }
  return failed;
}

void Reconciler::noteFlowReport(const flowrules::HwApplyReport& hw, PassResult& result) {
  for (const auto& e : hw.failures) {
    result.unowned(e);
    spdlog::error("flow: {}", e.describe());
  }
  if (hw.created || hw.destroyed || hw.refused)
    spdlog::info("flow: {} created, {} destroyed, {} refused by the device (now sw)", hw.created,
                 hw.destroyed, hw.refused);
}

Reconciler::FullPassComputed Reconciler::computeFullPass(
    const model::Intent& intent, const model::HwProfile& profile,
    const std::vector<flowrules::HwApplier::HeldRule>& held, offload::SoftwarePath* path,
    offload::ReadBackScope scope) {
  FullPassComputed out;
  flowrules::DesiredState plan;
  out.planned = flowrules::planInto(intent, profile, {.skip_validation = true}, plan);
  if (!out.planned) return out;
  out.rules = plan.rules.size();
  out.coupling.recount(plan.rules);
  out.sw_objects = plan.sw.size();
  std::unordered_map<flowrules::RuleId, const flowrules::HwApplier::HeldRule*> by_id;
  by_id.reserve(held.size());
  for (const auto& h : held) by_id.emplace(h.id, &h);
  std::unordered_set<flowrules::RuleId> upserted;
  for (auto& r : plan.rules) {
    const auto it = by_id.find(r.id);
    if (it != by_id.end() && !it->second->retry && it->second->owner == r.owner &&
        it->second->content == flowrules::contentHash(r)) {
      by_id.erase(it);
      continue;
    }
    if (it != by_id.end()) by_id.erase(it);
    upserted.insert(r.id);
    out.upsert.push_back(std::move(r));
  }
  for (const auto& [id, h] : by_id) out.remove.push_back(*h);  // held, not planned
  if (!out.upsert.empty()) {
    // Dependencies are derived from the rules: plan() again is not needed,
    // the ids suffice (the upserted ones are all that changes).
    for (const auto& d : flowrules::ruleDependencies(intent, out.upsert))
      if (upserted.count(d.follower)) out.dependencies.push_back(d);
  }
  if (path) {
    auto rb = path->readBack(plan.sw, scope);
    if (rb) {
      out.sw = offload::splitDiff(flowrules::diff(plan.sw, *rb));
    } else {
      out.read_back_error = rb.error();
    }
  }
  return out;
}

void Reconciler::startFullPass(bool verify) {
  if (full_pass_) return;
  full_pass_ = std::make_unique<FullPass>();
  full_pass_->verify = verify;
  full_pass_->started = Clock::now();
  full_pass_->generation = generation_;
  full_pass_->force = force_full_compute_;
  force_full_compute_ = false;
  if (verify) full_pass_->to_verify = applier_->hardwareRuleIds();
  // The kernel removes routes without a notification (an uplink down, a
  // nexthop object deleted): what was learned is compared with a fresh
  // dump, taken in the background; its differences arrive as route events.
  // (Not the first pass: start has just dumped.)
  if (backends_.routes && counters_.full_passes > 0) backends_.routes->requestResync("full pass");
}

// Runs the pass until it is done (inline) or its slice of this loop turn is
// used up (background). Returns the pass's result once it is over.
std::optional<Reconciler::PassResult> Reconciler::stepFullPass(bool inline_all) {
  auto& pass = *full_pass_;
  const auto deadline = Clock::now() + options_.slice_budget;
  if (pass.phase == FullPass::Phase::kVerify) {
    constexpr std::size_t kChunk = 256;
    while (pass.cursor < pass.to_verify.size()) {
      const auto n = std::min(kChunk, pass.to_verify.size() - pass.cursor);
      pass.vanished += applier_->verifyInstalled(
          std::span<const flowrules::RuleId>(pass.to_verify).subspan(pass.cursor, n));
      pass.cursor += n;
      if (!inline_all && Clock::now() >= deadline) return std::nullopt;
    }
    std::vector<flowrules::RuleId>().swap(pass.to_verify);
    if (pass.vanished)
      spdlog::warn("flow backend: {} rules vanished from the device; reinstalling", pass.vanished);
    // Nothing changed since the last clean pass: its plan and read-back
    // would find what it found. (The software path is asked every time, so
    // that what it reports covers the span since the previous pass.)
    offload::SoftwarePath* sw = backends_.software_path;
    const bool sw_changed = !sw || sw->changedSinceLastAsked();
    const char* why = pass.force                         ? "asked for"
                      : !pass.verify                     ? "the first after adoption"
                      : pass.vanished                    ? "rules vanished from the device"
                      : clean_generation_ != generation_ ? "no clean pass since the last change"
                      : pass.generation != generation_   ? "a batch during the pass"
                      : sw && sw_changed                 ? "the software path changed"
                      : quiet_in_a_row_ + 1 >= options_.full_compute_every
                          ? "every Nth pass computes in full"
                          : nullptr;
    if (!why) {
      ++quiet_in_a_row_;
      auto result = quietFullPass();
      full_pass_.reset();
      return result;
    }
    spdlog::debug("full pass: planning and reading back in full ({})", why);
    quiet_in_a_row_ = 0;
    pass.phase = FullPass::Phase::kCompute;
    pass.copied = true;
    failures_.beginSweep(FailureBook::Kind::kKernel);
    offload::SoftwarePath* path = backends_.software_path;
    const offload::ReadBackScope scope{host_.route_table, host_.route_protocol};
    if (inline_all || !options_.background) {
      std::promise<FullPassComputed> done;
      try {
        done.set_value(
            computeFullPass(admission_.intent(), profile_, applier_->heldRules(), path, scope));
      } catch (...) {
        done.set_exception(std::current_exception());  // rethrown below, as a worker's would be
      }
      pass.computed = done.get_future();
    } else {
      pass.computed =
          std::async(std::launch::async, [intent = admission_.intent(), profile = profile_,
                                          held = applier_->heldRules(), path, scope] {
            auto computed = computeFullPass(intent, profile, held, path, scope);
            // The whole plan and the read-back were transient: give their
            // pages back here, off the loop's thread.
            ::malloc_trim(0);
            return computed;
          });
    }
  }
  if (pass.phase == FullPass::Phase::kCompute) {
    if (!inline_all && pass.computed.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
      return std::nullopt;
    pass.phase = FullPass::Phase::kRepair;
  }
  std::optional<PassResult> result;
  try {
    result = repairFullPass(pass.computed.get());  // get() rethrows what the worker threw
  } catch (...) {
    full_pass_.reset();
    throw;
  }
  full_pass_.reset();
  return result;
}

// Records what a batch touched while a full pass's copy is out, so that the
// repair leaves it alone.
void Reconciler::noteTouchedDuringFullPass(const flowrules::SoftwarePathState& sw_old,
                                           const flowrules::SoftwarePathState& sw_new, bool derived,
                                           const PassResult& result) {
  if (!full_pass_ || !full_pass_->copied) return;
  auto& pass = *full_pass_;
  for (const auto& [key, before] : admission_.log().ports) {
    pass.owners.insert(flowrules::portOwner(key));
    for (const model::Port* p :
         {before ? &*before : nullptr, static_cast<const model::Port*>(findPort(key))}) {
      if (!p) continue;
      for (const auto a : p->addresses) pass.addresses.insert(a);
      pass.devices.insert(p->representorName());
    }
  }
  for (const auto& [address, before] : admission_.log().remotes) {
    pass.owners.insert(flowrules::remoteOwner(address));
    pass.addresses.insert(address);
  }
  for (const auto* s : {&sw_old, &sw_new})
    for (const auto& r : s->routes) pass.addresses.insert(r.dst.addr);
  pass.derived = pass.derived || derived;
  pass.batch_failures += result.failures - result.owned;
  if (!pass.batch_error && result.unowned_error) pass.batch_error = result.unowned_error;
}

Reconciler::PassResult Reconciler::quietFullPass() {
  PassResult result;
  ++counters_.reconcile_passes;
  ++counters_.full_passes;
  ++counters_.quiet_passes;
  applier_->fullPassDone();
  reconcileDevices(result, nullptr);
  const auto& c = applier_->counters();
  last_pass_summary_ = "full pass: nothing changed since the last one (device verified: rules hw " +
                       std::to_string(c.hw) + ", sw " + std::to_string(c.sw) + "); took " +
                       std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          Clock::now() - full_pass_->started)
                                          .count()) +
                       " ms";
  if (result.failures == 0)
    clean_generation_ = generation_;
  else
    clean_generation_.reset();
  return result;
}

Reconciler::PassResult Reconciler::repairFullPass(FullPassComputed computed) {
  PassResult result;
  ++counters_.reconcile_passes;
  ++counters_.full_passes;
  if (!computed.planned) {
    // The intent was admitted piece by piece; a plan error here is a bug.
    spdlog::error("plan failed: {}", computed.planned.error().describe());
    result.unowned(computed.planned.error());
    last_pass_summary_ = "plan failed: " + computed.planned.error().describe();
    return result;
  }
  auto& pass = *full_pass_;
  const bool quiet = pass.owners.empty() && !pass.derived;  // nothing changed meanwhile
  auto skipRule = [&](flowrules::OwnerId owner, flowrules::RuleClass cls) {
    return pass.owners.count(owner) ||
           (pass.derived && (cls == flowrules::RuleClass::kVxlanIngress));
  };
  std::vector<flowrules::FlowRule> upsert;
  std::unordered_set<flowrules::RuleId> kept;
  for (auto& r : computed.upsert)
    if (!skipRule(r.owner, r.cls)) {
      kept.insert(r.id);
      upsert.push_back(std::move(r));
    }
  std::vector<flowrules::RuleId> remove;
  for (const auto& h : computed.remove)
    if (!skipRule(h.owner, h.cls)) remove.push_back(h.id);
  std::vector<flowrules::RuleDependency> deps;
  for (const auto& d : computed.dependencies)
    if (kept.count(d.follower)) deps.push_back(d);
  const auto hw = applier_->applyDelta(upsert, remove, deps);
  applier_->fullPassDone();
  noteFlowReport(hw, result);
  if (quiet) {
    coupling_ = std::move(computed.coupling);
    sw_objects_ = computed.sw_objects;
  }

  if (computed.read_back_error) {
    result.unowned(*computed.read_back_error);
    spdlog::error("software path read-back: {}", computed.read_back_error->describe());
  } else if (computed.sw && backends_.software_path) {
    auto skipDev = [&](std::string_view dev) {
      return pass.devices.count(std::string(dev)) > 0 || (pass.derived && isVxlanDevice(dev));
    };
    auto keep = [&](flowrules::SoftwarePathState& s) {
      auto erase = [](auto& v, auto&& drop) { std::erase_if(v, drop); };
      erase(s.routes, [&](const auto& r) { return pass.addresses.count(r.dst.addr) > 0; });
      erase(s.neighbours,
            [&](const auto& n) { return pass.addresses.count(n.ip) > 0 || skipDev(n.dev); });
      erase(s.sysctls, [&](const auto& x) { return skipDev(sysctlDevice(x.path)); });
      erase(s.links, [&](const auto& x) { return skipDev(x.dev); });
      erase(s.vxlan_devices, [&](const auto&) { return pass.derived; });
      erase(s.fdb, [&](const auto&) { return pass.derived; });
      erase(s.routes6, [&](const auto& r) { return skipDev(r.dev); });
      erase(s.neighbours6, [&](const auto& n) { return skipDev(n.dev); });
      erase(s.rules6, [&](const auto& r) { return skipDev(r.iif); });
    };
    keep(computed.sw->apply);
    keep(computed.sw->remove);
    const std::size_t changes = computed.sw->apply.size() + computed.sw->remove.size();
    if (changes) {
      const auto failed = driveKernel(*computed.sw, result);
      spdlog::info("software path: {} objects repaired ({} failed)", changes, failed);
    }
    // The read-back covered every kernel object: what did not fail again
    // since the pass took its copy is in place.
    if (const auto gone = failures_.endSweep(FailureBook::Kind::kKernel))
      spdlog::info("software path: {} objects that had failed are in place now", gone);
  }
  result.failures += pass.batch_failures;  // keep their retry
  if (!result.unowned_error && pass.batch_error) result.unowned_error = pass.batch_error;
  reconcileDevices(result, nullptr);
  // Clean: nothing to repair, nothing failed, no batch meanwhile. The next
  // pass may then skip its plan (stepFullPass).
  const bool sw_clean =
      !computed.read_back_error &&
      (!computed.sw || (computed.sw->apply.size() + computed.sw->remove.size()) == 0);
  if (quiet && result.failures == 0 && computed.upsert.empty() && computed.remove.empty() &&
      sw_clean && pass.vanished == 0 && pass.generation == generation_)
    clean_generation_ = pass.generation;
  else
    clean_generation_.reset();
  const auto& c = applier_->counters();
  last_pass_summary_ =
      "full pass: rules hw " + std::to_string(c.hw) + ", sw " + std::to_string(c.sw) +
      "; kernel objects " + std::to_string(sw_objects_) + ", failed " +
      std::to_string(failures_.count(FailureBook::Kind::kKernel)) + "; took " +
      std::to_string(
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - pass.started)
              .count()) +
      " ms";
  return result;
}

Reconciler::PassResult Reconciler::reconcile(bool verify) {
  full_pass_.reset();  // a pass in flight is replaced (its worker is waited for)
  force_full_compute_ = true;
  startFullPass(verify);
  return *stepFullPass(true);
}

namespace {

template <class T>
void sortKind(std::vector<T>& v) {
  std::sort(v.begin(), v.end(), [](const T& a, const T& b) { return a.key() < b.key(); });
}

void sortState(flowrules::SoftwarePathState& s) {
  sortKind(s.sysctls);
  sortKind(s.links);
  sortKind(s.addresses);
  sortKind(s.vxlan_devices);
  sortKind(s.fdb);
  sortKind(s.neighbours);
  sortKind(s.routes);
  sortKind(s.neighbours6);
  sortKind(s.routes6);
  sortKind(s.rules6);
}

}  // namespace

bool Reconciler::coupled() const { return coupling_.coupled(profile_, host_.underlay); }

// Plans the owners the batch touched, before and after, and drives each
// backend with the difference only (flowrules::planTouched: what plan()
// derives from many owners is kept as counts in derived_refs_ and
// coupling_). When plan() would couple owners (a table over its capacity,
// a delivery rule in software with VXLAN) the whole intent is planned.
Reconciler::PassResult Reconciler::reconcileTouched() {
  ++generation_;  // something changed: the next full pass plans in full (stepFullPass)
  const bool was_coupled = coupled();
  const bool vxlan = host_.underlay == model::UnderlayMode::kVxlan;
  std::vector<flowrules::Touched<model::Port>> ports;
  ports.reserve(admission_.log().ports.size());
  for (const auto& [key, before] : admission_.log().ports)
    ports.push_back({before ? &*before : nullptr, findPort(key)});
  std::vector<flowrules::Touched<model::RemoteEndpoint>> remotes;
  remotes.reserve(admission_.log().remotes.size());
  for (const auto& [address, before] : admission_.log().remotes)
    remotes.push_back({before ? &*before : nullptr, findRemote(address)});
  // A next hop's MAC changed: the remotes' rules as they were planned before.
  auto planned =
      flowrules::planTouched(*planner_, previous_planner_ ? *previous_planner_ : *planner_, ports,
                             remotes, coupling_, derived_refs_);
  if (!planned) throw std::runtime_error(planned.error().describe());
  auto& [upsert, remove, deps, sw_old, sw_new, derived] = *planned;

  if (was_coupled || coupled()) {
    spdlog::info(
        "a hardware table is at its capacity{}: planning the whole intent",
        vxlan && coupling_.deliveryInSoftware() ? " or a delivery rule is in software" : "");
    return reconcile(false);
  }

  PassResult result;
  ++counters_.reconcile_passes;
  const auto hw = applier_->applyDelta(upsert, remove, deps);
  noteFlowReport(hw, result);

  if (backends_.software_path && host_.software_path == model::SoftwarePathKind::kKernel) {
    sortState(sw_old);
    sortState(sw_new);
    sw_objects_ += sw_new.size();
    sw_objects_ -= std::min(sw_objects_, sw_old.size());
    const auto d = flowrules::diff(sw_new, sw_old);
    if (!d.empty()) {
      const auto failed = driveKernel(offload::splitDiff(d), result);
      spdlog::info("software path: {} objects changed ({} failed)", d.size(), failed);
    }
  }
  reconcileDevices(result, &admission_.log().ports);
  noteTouchedDuringFullPass(sw_old, sw_new, derived, result);
  const auto& c = applier_->counters();
  last_pass_summary_ = "incremental pass: rules hw " + std::to_string(c.hw) + ", sw " +
                       std::to_string(c.sw) + "; kernel objects " + std::to_string(sw_objects_) +
                       ", failed " + std::to_string(failures_.count(FailureBook::Kind::kKernel));
  return result;
}

// VF settings and vDPA devices against what the NIC and the vDPA backend
// hold: all of them (a full pass), or, with `touched` ports, only the VFs
// and devices those ports held or hold (a batch: O(change)).
void Reconciler::reconcileDevices(PassResult& result, const TouchedPorts* touched) {
  std::map<std::uint16_t, MacAddr> want_vfs;
  std::map<std::string, vdpa::VdpaDeviceSpec> want_devices;
  std::set<std::uint16_t> vf_scope;  // with `touched`: the VFs looked at
  if (touched) {
    for (const auto& [key, before] : *touched) {
      if (before && before->vf) vf_scope.insert(*before->vf);
      const model::Port* now = findPort(key);
      if (!now) continue;
      vf_scope.insert(*now->vf);
      want_vfs[*now->vf] = now->mac;
      if (auto spec = flowrules::planVdpaDevice(host_, *now)) want_devices[spec->name] = *spec;
    }
  } else {
    flowrules::DesiredState devices;
    flowrules::planDevices(admission_.intent(), devices);
    for (const auto& v : devices.vfs) want_vfs[v.vf] = v.mac;
    for (auto& d : devices.vdpa_devices) want_devices[d.name] = std::move(d);
    vdpa_.fullPassBegins();
  }
  vdpa_.mayRefill();  // VFs may have freed up: the pool may refill
  // The VFs and devices looked at: what does not fail again is in place.
  failures_.beginSweep(FailureBook::Kind::kDevice);
  const FailFn failed = [&](const std::string& what, const Error& e, std::uint64_t& counter) {
    ++counter;
    ++result.failures;
    ++result.owned;
    failures_.failed(FailureBook::Kind::kDevice, what, e, options_.now());
    spdlog::error("{}: {}", what, e.describe());
  };
  if (backends_.nic) {
    for (const auto& [vf, mac] : want_vfs) {
      auto it = vf_macs_.find(vf);
      if (it != vf_macs_.end() && it->second == mac) continue;
      ++counters_.nic_ops;
      if (auto s = backends_.nic->setVfMac(vf, mac); !s) {
        failed("vf " + std::to_string(vf), s.error(), counters_.nic_failures);
        continue;
      }
      spdlog::info("nic: vf {} mac {}", vf, mac.str());
      vf_macs_[vf] = mac;
    }
    std::vector<std::uint16_t> unwanted;
    if (touched) {
      for (const auto vf : vf_scope)
        if (!want_vfs.count(vf) && vf_macs_.count(vf)) unwanted.push_back(vf);
    } else {
      for (const auto& [vf, mac] : vf_macs_)
        if (!want_vfs.count(vf)) unwanted.push_back(vf);
    }
    for (const auto vf : unwanted) {
      ++counters_.nic_ops;
      if (auto s = backends_.nic->releaseVf(vf); !s) {
        failed("vf " + std::to_string(vf), s.error(), counters_.nic_failures);
        continue;
      }
      spdlog::info("nic: vf {} released (MAC scrubbed)", vf);
      vf_macs_.erase(vf);
    }
  }
  if (backends_.vdpa) {
    vdpa_.reconcile(want_devices, touched ? &vf_scope : nullptr, admission_.vfPool(), failed);
    // Links of ports that are gone (in scope) go with them.
    if (touched)
      for (const auto& [key, before] : *touched)
        if (!findPort(key)) vdpa_.removeLink(key);
  }
  if (!touched) {
    failures_.endSweep(FailureBook::Kind::kDevice);
    return;
  }
  std::set<std::string> looked_at;
  for (const auto vf : vf_scope) {
    looked_at.insert("vf " + std::to_string(vf));
    looked_at.insert("vdpa vf " + std::to_string(vf));
  }
  failures_.endSweep(FailureBook::Kind::kDevice,
                     [&](const std::string& object) { return looked_at.count(object) > 0; });
}

void Reconciler::scheduleRetry(const PassResult& pass, bool full) {
  const auto now = options_.now();
  const std::string pass_object(FailureBook::kPassObject);
  if (pass.failures > pass.owned) {
    failures_.failed(
        FailureBook::Kind::kPass, pass_object,
        pass.unowned_error.value_or(makeError(ErrorCode::kInternal, "", "", "a pass failed")), now);
  } else if (full) {
    failures_.cleared(pass_object);  // a full pass tried everything again
  }
  if (full) failures_.postponeDue(now);
  if (pass.failures == 0) return;
  const auto next = failures_.nextRetry();
  spdlog::warn("reconcile left {} failures; {} objects failing; next retry in {} ms", pass.failures,
               failures_.size(),
               next == Clock::time_point::max()
                   ? -1
                   : std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count());
}

void Reconciler::requestFullPass() {
  next_full_ = options_.now();
  force_full_compute_ = true;  // asked for: plan and read back in full
}

json Reconciler::reconcileAll() {
  const auto pass = reconcile(true);
  scheduleRetry(pass, true);
  next_full_ = options_.now() + options_.reconcile_interval;
  return {{"failures", pass.failures}, {"summary", last_pass_summary_}};
}

}  // namespace nicoffload::daemon
