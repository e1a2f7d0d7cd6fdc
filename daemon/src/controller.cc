// Controller: start-up, requests and batches (handle/handleBatch), the timer (tick).
// Admission, reconciliation, the read ops, bulk requests and the metrics: admission.cc,
// reconciler.cc, queries.cc, bulk.cc, controller_metrics.cc; the op table: ops.cc; the helpers
// they share: request_fields.h.
#include "nicoffload/daemon/controller.h"

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <future>
#include <limits>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_set>

#include "nicoffload/daemon/controller_metrics.h"
#include "ops.h"
#include "request_fields.h"

namespace nicoffload::daemon {

Controller::Controller(model::HostConfig host, model::HwProfile profile, Backends backends,
                       StateStore store, ControllerOptions options)
    : host_(std::move(host)),
      profile_(std::move(profile)),
      backends_(std::move(backends)),
      store_(std::move(store)),
      options_(std::move(options)),
      admission_(host_,
                 Admission::Seams{
                     .port_plans = [this](const model::Port& port) -> Status {
                       if (auto r = reconciler_.planner()->portRules(port); !r) return r.error();
                       return Status::success();
                     },
                     .pool_ready = [this](const model::Port& port) { return vdpa_.readyFor(port); },
                     .claim_clock_ms = [this] { return claims_.clockMs(); },
                     .note_claim = [this](std::int64_t until_ms) { claims_.note(until_ms); },
                     // Why a remote may not take an address: the underlay uses it.
                     .underlay_use =
                         [this](const IpAddr& a) {
                           return learned_ ? learned_->underlayUse(a) : std::string();
                         },
                 }),
      started_(options_.now()),
      failures_(options_.retry_min, options_.retry_max),
      vdpa_(host_, backends_.vdpa.get(), failures_, [this] { return options_.now(); }),
      reconciler_(host_, profile_, admission_, failures_, vdpa_, std::move(backends_.flow),
                  Reconciler::Backends{
                      .software_path = backends_.software_path.get(),
                      .nic = backends_.nic.get(),
                      .vdpa = backends_.vdpa != nullptr,
                      .routes = backends_.routes.get(),
                  },
                  Reconciler::Options{
                      .reconcile_interval = options_.reconcile_interval,
                      .background = options_.background_full_pass,
                      .slice_budget = options_.slice_budget,
                      .full_compute_every = options_.full_compute_every,
                      .now = [this] { return options_.now(); },
                  },
                  counters_, started_),
      traffic_(
          host_, admission_.intent(), backends_.software_path.get(),
          TrafficSweep::Seams{
              .port_rules =
                  [this](const model::Port& port) {
                    return reconciler_.planner()->portRules(port);
                  },
              .query = [this](flowrules::RuleId id) { return reconciler_.applier().query(id); },
              .now = [this] { return options_.now(); },
          },
          TrafficSweep::Options{.slice_budget = options_.slice_budget,
                                .background = options_.background_full_pass},
          started_),
      claims_(
          admission_.intent(), [this] { return options_.now(); }, options_.wall_now, started_,
          options_.retry_min,
          [this](std::vector<control::Request> batch) { return handle(std::move(batch)); }),
      queries_(Queries::Sources{
          .host = host_,
          .profile = profile_,
          .admission = admission_,
          .failures = failures_,
          .vdpa = vdpa_,
          .claims = claims_,
          .traffic = traffic_,
          .store = store_,
          .derived_refs = reconciler_.derivedRefs(),
          .planner = reconciler_.planner(),
          .applier = reconciler_.applierPtr(),
          .learned = learned_,
          .software_path = backends_.software_path.get(),
          .nic = backends_.nic.get(),
          .vdpa_backend = backends_.vdpa.get(),
          .routes = backends_.routes.get(),
          .counters = counters_,
          .vf_macs = reconciler_.vfMacs(),
          .sw_objects = reconciler_.swObjects(),
          .last_pass_summary = reconciler_.lastPassSummary(),
          .full_pass_running = [this] { return reconciler_.fullPassRunning(); },
          .now = [this] { return options_.now(); },
          .started = started_,
      }),
      bulk_(
          BulkRequests::Parts{.host = host_,
                              .profile = profile_,
                              .admission = admission_,
                              .reconciler = reconciler_,
                              .store = store_,
                              .counters = counters_},
          BulkRequests::Seams{
              .answer_now = [this](const std::vector<control::Request>& b) { return handleNow(b); },
              .waits_for_sync =
                  [](const json& request) {
                    const Op* op = findOp(request);
                    return op && op->waits_for_sync;
                  },
              .internal_error =
                  [this](const json& request, const std::string& what) {
                    return internalErrorReply(request, what);
                  },
              .planned_rules = [this] { return queries_.plannedRuleCount(); },
              .port_vnis = [this] { return queries_.portVnis(); },
              .compact_state = [this] { compactState(); },
              .reinstate_learned = [this] { reinstateLearned(); },
          },
          BulkRequests::Options{.threshold = options_.bulk_threshold,
                                .items_per_slice = options_.bulk_items_per_slice,
                                .slice_budget = options_.slice_budget}) {}

std::vector<json> Controller::handle(std::vector<control::Request> batch) {
  return bulk_.handle(std::move(batch));
}

bool Controller::bulkPending() const { return bulk_.pending(); }

std::vector<Controller::LateReply> Controller::stepBulk() { return bulk_.step(); }

Result<std::unique_ptr<Controller>> Controller::start(model::HostConfig host,
                                                      model::HwProfile profile, Backends backends,
                                                      StateStore store, ControllerOptions options,
                                                      std::optional<PersistedState> preloaded) {
  if (!backends.flow)
    return makeError(ErrorCode::kInternal, "backends.flow", "", "a flow backend is required");
  std::unique_ptr<Controller> c(new Controller(std::move(host), std::move(profile),
                                               std::move(backends), std::move(store),
                                               std::move(options)));
  Result<PersistedState> state =
      preloaded ? Result<PersistedState>(std::move(*preloaded)) : c->store_.load();
  if (!state) return state.error();
  // Validated, indexed, the VF pool rebuilt from the ports' VFs (the copy
  // in the state file is for operators and tools).
  if (auto s = c->admission_.load(std::move(state->ports), std::move(state->remotes)); !s) {
    Error e = s.error();
    e.field = c->store_.path() + ": " + e.field;
    return e;
  }
  if (c->host_.learn_routes || c->backends_.routes) {
    c->learned_ = std::make_unique<LearnedRoutes>(c->host_, c->options_.now);
  }
  if (c->backends_.routes) {
    // The kernel's routes before the first pass: what the device holds for
    // them is adopted, not removed and created again.
    auto first = c->backends_.routes->poll(std::numeric_limits<std::size_t>::max());
    if (!first) return first.error();
    c->applyRouteEvents(*first, false);
  }
  c->reconciler_.countDerived();
  const auto loaded = c->store_.stats();
  spdlog::info(
      "state loaded from {}: {} ports, {} remotes ({} changes replayed from the journal{})",
      c->store_.path(), c->admission_.intent().ports.size(), c->admission_.intent().remotes.size(), loaded.replayed_records,
      loaded.torn_records_ignored ? ", a torn last record ignored" : "");
  if (c->store_.compactionDue()) c->compactState();
  // The NIC: switchdev with the configured VFs (idempotent: a PF already so
  // is not touched); the VF MACs it holds are adopted.
  if (c->backends_.nic) {
    auto sw = c->backends_.nic->ensureSwitchdev(c->host_.vf_count);
    if (!sw) {
      Error e = sw.error();
      e.message = "NIC " + c->host_.uplink_pci + ": " + e.message;
      return e;
    }
    for (const auto& step : sw->steps) spdlog::info("nic: {}", step);
    if (auto st = c->backends_.nic->status())
      for (const auto& vf : st->vfs)
        if (vf.mac && !vf.mac->isZero()) c->reconciler_.adoptVfMac(vf.index, *vf.mac);
  }
  if (c->backends_.vdpa) {
    if (auto held = c->backends_.vdpa->list())
      for (auto& d : *held)
        if (d.name.rfind("nfo", 0) == 0) c->vdpa_.adopt(d);
  }
  // What the devices already hold (a restart): adopt it, so that nothing is
  // installed twice and nothing unchanged is touched.
  const auto adopted = c->reconciler_.applier().adoptInstalled();
  if (adopted.adopted || adopted.destroyed)
    spdlog::info("flow backend: adopted {} rules the device already held, removed {} stale ones",
                 adopted.adopted, adopted.destroyed);
  // Just adopted from the device: no need to ask it again rule by rule.
  const auto pass = c->reconciler_.reconcile(false);
  c->reconciler_.scheduleRetry(pass, true);
  // A fresh pool fills to its size; one adopted from a run before follows
  // the low-water rule, so that a restart with nothing changed makes no
  // device operation.
  c->vdpa_.startDone();
  // Tentative ports held across the restart: the first tick() looks at them.
  c->claims_.startDone();
  return c;
}

// The batch's changes, appended to the journal with one fdatasync (the
// batch is the group that shares it); a snapshot is written in the
// background once the journal has grown enough.
void Controller::compactState() {
  PersistedState s;
  s.ports = admission_.intent().ports;
  s.remotes.reserve(admission_.intent().remotes.size());
  for (const auto& r : admission_.intent().remotes)
    if (!r.learned()) s.remotes.push_back(r);  // the kernel is their source
  s.extra["vf_pool"] = admission_.vfPool().toJson();
  store_.compactInBackground(std::move(s));
}

std::vector<json> Controller::handleNow(const std::vector<control::Request>& batch) {
  // The request boundary: whatever throws below (a bug, a library, a
  // backend) becomes an internal error reply for each request it left
  // unanswered; the daemon carries on.
  std::vector<json> replies(batch.size());
  try {
    handleBatch(batch, replies);
    reinstateLearned();
  } catch (...) {
    // Past admission (persisting, reconciling): the mutations not yet
    // answered share the failure; the reads are still answered.
    const std::string what = describeCurrentException();
    for (std::size_t i = 0; i < batch.size(); ++i)
      if (replies[i].is_null() && isMutation(batch[i].body))
        replies[i] = internalErrorReply(batch[i].body, what);
    answerReads(batch, replies);
  }
  return replies;
}

void Controller::answerReads(const std::vector<control::Request>& batch,
                             std::vector<json>& replies) {
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!replies[i].is_null()) continue;
    try {
      auto result = read(batch[i].body);
      replies[i] = result ? control::okReply(std::move(result).value())
                          : control::errorReply(result.error());
    } catch (...) {
      replies[i] = internalErrorReply(batch[i].body, describeCurrentException());
    }
  }
}

json Controller::internalErrorReply(const json& request, const std::string& what) {
  ++counters_.internal_errors;
  const auto op = request.is_object() ? request.find("op") : request.end();
  const std::string name = op != request.end() && op->is_string() ? op->get<std::string>() : "";
  Error e = makeError(ErrorCode::kInternal, "op", name,
                      "nicoffloadd failed on this request and carries on: " + what);
  spdlog::error("internal error in {}: {}", name.empty() ? "a request" : printable(name),
                e.message);
  // Whatever it interrupted (a pass half-way, say): check every backend again soon.
  Reconciler::PassResult interrupted;
  interrupted.unowned(e);
  reconciler_.scheduleRetry(interrupted, false);
  return control::errorReply(e);
}

void Controller::handleBatch(const std::vector<control::Request>& batch,
                             std::vector<json>& replies) {
  using Micros = std::chrono::duration<double, std::micro>;
  const auto t_start = SteadyClock::now();
  auto t_persisted = t_start, t_reconciled = t_start;
  admission_.beginBatch();

  // Admission, in place: each request is admitted against the intent as the
  // ones before it left it; a refused one (or one whose admission threw)
  // leaves nothing behind (rollback to its mark).
  std::vector<std::size_t> accepted;  // mutations admitted
  std::vector<json> accepted_results;
  std::uint64_t refused = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const json& req = batch[i].body;
    const auto op_it = req.is_object() ? req.find("op") : req.end();
    // The server checks this; a caller of this API may not.
    if (op_it == req.end() || !op_it->is_string()) {
      replies[i] = control::errorReply(requestError(ErrorCode::kInvalidValue, "op", "",
                                                    "the request has no string field \"op\""));
      continue;
    }
    if (!isMutation(req)) continue;  // reads are answered after the mutations of this batch
    const std::string& op = op_it->get_ref<const std::string&>();
    const Admission::Marks mark = admission_.marks();
    Result<json> result = json();
    try {
      result = admit(req);
    } catch (...) {
      admission_.rollback(mark);
      replies[i] = internalErrorReply(req, describeCurrentException());
      continue;
    }
    if (!result) {
      admission_.rollback(mark);
      ++refused;
      spdlog::warn("refused {}: {}", op, result.error().describe());
      replies[i] = control::errorReply(result.error());
      continue;
    }
    accepted.push_back(i);
    accepted_results.push_back(std::move(result).value());
  }

  counters_.requests_refused += refused;
  const auto t_admitted = SteadyClock::now();
  const bool changed = !admission_.log().undo.empty();
  if (changed) {
    // The batch's journal record is written and fdatasync'ed on a worker
    // while this thread programs the devices: the wait for the disk (most of
    // a state write) overlaps the device work instead of adding to it. No
    // reply leaves before both are done, so nothing is acknowledged that is
    // not durable. If the write fails, the intent is rolled back and a full
    // pass at once removes what the devices got for it (as after a crash
    // between the two, where the restart's full pass does it).
    // Reconciling touches neither store_ nor admission_.log().journal.
    auto saving = std::async(std::launch::async, [this] { return store_.append(admission_.log().journal); });
    for (const auto& c : admission_.log().mutations) spdlog::info("{}", c);
    std::optional<Reconciler::PassResult> pass;
    std::exception_ptr reconcile_error;
    try {
      pass = reconciler_.reconcileTouched();
    } catch (...) {
      reconcile_error = std::current_exception();
    }
    t_reconciled = SteadyClock::now();
    Status st = Status::success();
    try {
      st = saving.get();
    } catch (...) {
      admission_.rollback({});  // nothing acknowledged: the intent stays as it was
      requestFullPass();
      throw;
    }
    t_persisted = SteadyClock::now();
    if (!st) {
      ++counters_.state_save_failures;
      spdlog::error("state: {}; the batch is refused and its device changes undone",
                    st.error().describe());
      admission_.rollback({});
      requestFullPass();
      for (auto i : accepted) replies[i] = control::errorReply(st.error());
      accepted.clear();
    } else {
      ++counters_.state_saves;
      if (store_.compactionDue()) compactState();
    }
    if (reconcile_error) std::rethrow_exception(reconcile_error);
    if (pass) reconciler_.scheduleRetry(*pass, false);
  }
  admission_.log().undo.clear();
  // A large batch (a remote.sync of 100 k) leaves megabytes of parsed
  // requests and plans freed: give them back to the system, so that the
  // process's size follows what it holds.
  if (admission_.log().journal.size() >= kLargeBatch) ::malloc_trim(0);
  for (std::size_t k = 0; k < accepted.size(); ++k) {
    json result = std::move(accepted_results[k]);
    if (result.contains("port") && result["port"].is_object()) {
      auto key = portKeyOf(result["port"]);
      if (key)
        if (const auto* p = admission_.findPort(*key)) {
          const bool brief = result.contains("brief") && result["brief"] == true;
          result["status"] = queries_.portJson(*p, !brief);
        }
    }
    replies[accepted[k]] = control::okReply(std::move(result));
  }
  answerReads(batch, replies);
  if (spdlog::should_log(spdlog::level::debug))
    spdlog::debug(
        "batch of {} requests ({} changes): admit {:.0f} us, persist {:.0f} us, reconcile {:.0f} "
        "us, replies {:.0f} us",
        batch.size(), admission_.log().mutations.size(), Micros(t_admitted - t_start).count(),
        // persist: the wait for the state write beyond the device work it
        // overlaps; reconcile: the device work.
        changed ? Micros(t_persisted - t_reconciled).count() : 0.0,
        changed ? Micros(t_reconciled - t_admitted).count() : 0.0,
        Micros(SteadyClock::now() - (changed ? t_persisted : t_admitted)).count());
}

Controller::Counters Controller::counters() const {
  Counters c = counters_;
  const auto& v = vdpa_.counters();
  c.vdpa_ops = v.ops;
  c.vdpa_failures = v.failures;
  c.vdpa_pool_claims = v.pool_claims;
  c.vdpa_pool_misses = v.pool_misses;
  c.vdpa_pool_refills = v.pool_refills;
  c.tentative_expired = claims_.expired();
  return c;
}

Controller::~Controller() = default;  // the Reconciler waits for its full pass's worker

void Controller::tick() {
  // A bulk remote.sync changes the intent over several turns: a full pass
  // neither starts nor takes its copy of the intent meanwhile (bulk.cc).
  if (bulk_.changesIntent()) return;
  const auto now = options_.now();
  if (now >= claims_.next()) claims_.expire();
  traffic_.step(now);
  // The warm vDPA pool refills between requests, a few devices per turn.
  if (!reconciler_.fullPassRunning() && vdpa_.wantsWork())
    vdpa_.refill(kPoolCreatesPerTick, admission_.vfPool());
  reconciler_.step(now);
}

std::chrono::milliseconds Controller::untilNextTick() const {
  if (bulkPending()) return std::chrono::milliseconds(0);  // its next slice
  if (reconciler_.fullPassRunning())
    return std::chrono::milliseconds(1);  // its next slice, or its worker's result
  if (vdpa_.wantsWork()) return std::chrono::milliseconds(0);
  if (traffic_.inFlight())
    return std::chrono::milliseconds(1);  // its next slice, or its worker's dump
  const auto now = options_.now();
  const auto next = std::min({reconciler_.nextPass(), claims_.next(), traffic_.nextWork()});
  if (next <= now) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(next - now);
}

std::string Controller::metricsText(const control::ServerCounters* server) const {
  return controllerMetricsText({
      .host = host_,
      .admission = admission_,
      .applier = reconciler_.applier(),
      .flow_backend = reconciler_.applierPtr()->backend().capabilities().backend,
      .failures = failures_,
      .vdpa = vdpa_,
      .claims = claims_,
      .store = store_,
      .traffic = traffic_,
      .counters = counters_,
      .learned = learned_.get(),
      .watcher = learned_ ? queries_.watcherCounters() : offload::RouteWatcherCounters{},
      .server = server,
  });
}

// --- routes learned from the kernel: the route watcher's events into the
// intent (LearnedRoutes), then reconciled like a batch ---

int Controller::routeWatcherFd() const {
  return backends_.routes ? backends_.routes->fd() : -1;
}

void Controller::pollRoutes() {
  if (!backends_.routes) return;
  auto ev = backends_.routes->poll(kRouteMessagesPerTurn);
  if (!ev) {
    spdlog::warn("route watcher: {}", ev.error().describe());
    return;
  }
  applyRouteEvents(*ev);
}

void Controller::applyRouteEvents(const offload::RouteEvents& events, bool reconcile_now) {
  if (!learned_) return;
  learned_->count(events);
  if (events.empty()) return;
  admission_.beginBatch();
  const auto applied =
      learned_->apply(events, admission_, [this](std::vector<model::UnderlayNextHop> hops) {
        // The planner writes next-hop MACs from the host's next_hops.
        host_.next_hops = hops;
        admission_.setNextHops(std::move(hops));
        reconciler_.replacePlanner();
      });
  finishInternalBatch(reconcile_now);
  if (applied.route_changes + applied.hops_moved > 0)
    spdlog::info("routes: {} route changes, {} next hops moved; {} remotes learned",
                 applied.route_changes, applied.hops_moved, learned_->size());
}

void Controller::finishInternalBatch(bool reconcile_now) {
  admission_.log().journal.clear();  // never persisted: the kernel is the source
  if (!admission_.log().remotes.empty() && reconcile_now) {
    const auto pass = reconciler_.reconcileTouched();
    reconciler_.scheduleRetry(pass, false);
  }
  reconciler_.forgetPreviousPlanner();
  admission_.log().undo.clear();
}

void Controller::reinstateLearned() {
  if (!learned_ || learned_->empty()) return;
  std::vector<IpAddr> back;
  for (const auto& [address, before] : admission_.log().remotes)
    if (learned_->routed(address) && !admission_.findRemote(address)) back.push_back(address);
  if (back.empty()) return;
  admission_.beginBatch();
  learned_->reinstate(back, admission_);
  finishInternalBatch(true);
}

// --- full passes asked for ---

void Controller::requestFullPass() { reconciler_.requestFullPass(); }

bool Controller::fullPassRunning() const { return reconciler_.fullPassRunning(); }

json Controller::reconcileAll() {
  // Asked for by an operator: the learned routes are compared with a fresh
  // dump first, inline, so that the answer covers them.
  if (backends_.routes) {
    if (auto ev = backends_.routes->resyncNow("reconcile")) {
      applyRouteEvents(*ev);
    } else {
      spdlog::warn("reconcile: the routing table could not be read: {}", ev.error().describe());
    }
  }
  return reconciler_.reconcileAll();
}

}  // namespace nicoffload::daemon
