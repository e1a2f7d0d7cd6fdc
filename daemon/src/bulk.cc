// BulkRequests (bulk_requests.h): bulk requests served in slices, so that
// no request waits behind one (issue 22, docs/design.md: "no request waits
// more than 50 ms behind a full pass or a large read").
//
// A bulk request is a remote.sync listing more than Options::threshold
// remotes (or whose origin holds more), or a `rules` read of more than that
// many rules. handle() does not answer it: it becomes the job in flight, and
// step(), once per loop turn, runs a slice of it (slice_budget), so that the
// loop serves every other client between two slices.
//
// remote.sync keeps its meaning (malformed input refuses the whole sync,
// overlaps are per-entry conflicts: admission.cc), and the reply only once all
// of it is done.
//   1. admit: the listed remotes are checked and put into the intent in
//      slices, exactly as admitRemoteSync does at once (the same code:
//      admitSyncedRemotes), then the origin's unlisted remotes are removed.
//      A refusal anywhere rolls back every slice (the job's own undo log) and
//      is the reply: nothing of the sync was persisted or programmed.
//   2. apply: the changed remotes are persisted (a journal record per slice,
//      written on a worker while the slice's rules and kernel objects are
//      programmed) and reconciled in slices. The reply comes after the last.
//      A crash meanwhile leaves the slices persisted so far (the client got
//      no reply; a retry of the sync, idempotent, converges); a failed state
//      write keeps the slices before it, puts the rest back, and is the reply.
// Meanwhile the intent holds the sync partly admitted (1) or wholly (2):
// reads show it as it stands, and a port.add is checked against it (an
// address the sync gave a remote is refused as at any time). So that the
// sync's undo log stays valid and nothing decides against a half-admitted
// sync, these wait until it is over (held, in arrival order): every mutation
// of remotes (remote.add, remote.remove, remote.sync, batch), `reconcile`, a
// full pass (not started, not stepped: tick()) and the learned routes (the
// daemon's loop does not poll them). Port requests and reads are not held.
//
// A `rules` read works on the owners (ports, remotes) as they were when it
// arrived (a copy), joined slice by slice with the device's placements as
// they are then; the reply's text is built in slices as well.
//
// One bulk request runs at a time; a second waits (held) for the first. Every
// later request of a connection with a request held or in flight waits too:
// replies go out in request order.
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>

#include "nicoffload/daemon/bulk_requests.h"
#include "nicoffload/flowrules/render.h"
#include "request_fields.h"

namespace nicoffload::daemon {

namespace {

const std::string* opOf(const json& body) {
  const auto it = body.is_object() ? body.find("op") : body.end();
  if (it == body.end() || !it->is_string()) return nullptr;
  return &it->get_ref<const std::string&>();
}

// Checked every this many items: a clock read per remote would cost more
// than the remote.
constexpr std::size_t kItemsPerClockRead = 256;

// The job's admission log stands in for the controller's while it runs.
class LogSwap {
 public:
  LogSwap(Admission& a, Admission::Log& log) : a_(a), log_(log) { std::swap(a_.log(), log_); }
  ~LogSwap() { std::swap(a_.log(), log_); }
  LogSwap(const LogSwap&) = delete;
  LogSwap& operator=(const LogSwap&) = delete;

 private:
  Admission& a_;
  Admission::Log& log_;
};

}  // namespace

// A bulk request served in slices.
struct BulkRequests::Job {
  enum class Kind : std::uint8_t { kSync, kRules };
  Kind kind = Kind::kSync;
  control::Request request;
  Clock::time_point started;

  // --- a remote.sync: admitted in slices (the intent changes in place, with
  // the job's own undo log, swapped with the controller's while a slice
  // runs), then persisted and applied in slices (a journal record each).
  enum class Phase : std::uint8_t { kAdmit, kRemoveGone, kApply };
  Phase phase = Phase::kAdmit;
  std::optional<Admission::SyncAdmission> sync;
  nlohmann::json result;
  Admission::Log log;            // its touched ports stay empty: a sync touches remotes only
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

BulkRequests::BulkRequests(Parts parts, Seams seams, Options options)
    : parts_(parts), seams_(std::move(seams)), options_(options) {}

BulkRequests::~BulkRequests() = default;

bool BulkRequests::pending() const { return job_ != nullptr || !held_.empty() || !late_.empty(); }

bool BulkRequests::changesIntent() const { return job_ && job_->kind == Job::Kind::kSync; }

std::size_t BulkRequests::perSlice() const {
  return options_.items_per_slice ? options_.items_per_slice : SIZE_MAX;
}

bool BulkRequests::isBulk(const json& request) const {
  if (options_.threshold == 0) return false;
  const std::string* op = opOf(request);
  if (!op) return false;
  const auto& intent = parts_.admission.intent();
  if (*op == "remote.sync") {
    const auto it = request.find("remotes");
    if (it == request.end() || !it->is_array()) return false;
    if (it->size() > options_.threshold) return true;
    // A short list may still remove many: the origin's remotes it omits
    // (a sync to empty of 100 k). Counted up to the threshold only.
    const auto origin = request.find("origin");
    if (origin == request.end() || !origin->is_string()) return false;
    const auto& name = origin->get_ref<const std::string&>();
    std::size_t held = 0;
    for (const auto& r : intent.remotes)
      if (r.origin == name && ++held > options_.threshold) return true;
    return false;
  }
  if (*op == "rules") {
    // A page up to the threshold is answered at once; so is a small table.
    const auto limit = request.find("limit");
    if (limit != request.end() && limit->is_number_integer() && limit->get<std::int64_t>() >= 0 &&
        limit->get<std::uint64_t>() <= options_.threshold)
      return false;
    if (limit == request.end() && request.contains("offset")) return false;  // a page of 1000
    return intent.remotes.size() + intent.ports.size() > options_.threshold / 8 &&
           seams_.planned_rules() > options_.threshold;
  }
  return false;
}

BulkRequests::Route BulkRequests::where(const control::Request& request,
                                        std::unordered_set<std::uint64_t>& waiting) const {
  auto hold = [&] {
    waiting.insert(request.connection);
    return Route::kHold;
  };
  if (waiting.count(request.connection)) return hold();
  if (isBulk(request.body)) {
    if (job_) return hold();
    waiting.insert(request.connection);
    return Route::kBulk;
  }
  if (changesIntent() && seams_.waits_for_sync(request.body)) return hold();
  return Route::kNow;
}

void BulkRequests::dispatch(std::vector<control::Request>& batch, std::vector<json>& replies) {
  std::unordered_set<std::uint64_t> waiting;
  if (job_) waiting.insert(job_->request.connection);
  for (const auto& r : held_) waiting.insert(r.connection);
  std::vector<control::Request> now;
  std::vector<std::size_t> positions;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    switch (where(batch[i], waiting)) {
      case Route::kNow:
        now.push_back(std::move(batch[i]));
        positions.push_back(i);
        break;
      case Route::kHold:
        held_.push_back(std::move(batch[i]));
        break;
      case Route::kBulk:
        start(std::move(batch[i]));
        break;
    }
  }
  if (now.empty()) return;
  auto answered = seams_.answer_now(now);
  for (std::size_t k = 0; k < positions.size(); ++k) replies[positions[k]] = std::move(answered[k]);
}

std::vector<json> BulkRequests::handle(std::vector<control::Request> batch) {
  if (!pending() && options_.threshold == 0) return seams_.answer_now(batch);
  bool plain = !pending();
  try {
    for (std::size_t i = 0; plain && i < batch.size(); ++i) plain = !isBulk(batch[i].body);
  } catch (...) {
    plain = false;  // a bug: dispatch() meets it again, and it is answered there
  }
  if (plain) return seams_.answer_now(batch);
  std::vector<json> replies(batch.size());
  route(batch, replies);
  return replies;
}

void BulkRequests::route(std::vector<control::Request>& batch, std::vector<json>& replies) {
  try {
    dispatch(batch, replies);
  } catch (...) {
    // Sorting threw (a bug): what was not answered or taken is answered as an
    // internal error, so that no request is left without its reply.
    const std::string what = describeCurrentException();
    for (std::size_t i = 0; i < batch.size(); ++i)
      if (replies[i].is_null() && !batch[i].body.is_null())
        replies[i] = seams_.internal_error(batch[i].body, what);
  }
}

void BulkRequests::start(control::Request request) {
  job_ = std::make_unique<Job>();
  job_->request = std::move(request);
  job_->started = Clock::now();
  job_->kind = *opOf(job_->request.body) == "rules" ? Job::Kind::kRules : Job::Kind::kSync;
  // A read lists the rules as they are when it arrives: its copy of the
  // owners is taken now, before the requests after it in this batch.
  if (job_->kind == Job::Kind::kRules && stepRules(*job_, Clock::time_point::max(), late_))
    job_.reset();  // refused (a bad field): the reply is in late_
}

std::vector<BulkRequests::LateReply> BulkRequests::step() {
  std::vector<LateReply> out = std::move(late_);
  late_.clear();
  const auto deadline = Clock::now() + options_.slice_budget;
  if (job_) {
    bool over = true;
    try {
      over = job_->kind == Job::Kind::kSync ? stepSync(*job_, deadline, out)
                                            : stepRules(*job_, deadline, out);
    } catch (...) {
      out.push_back({job_->request.connection,
                     seams_.internal_error(job_->request.body, describeCurrentException()),
                     {}});
      if (job_->kind == Job::Kind::kSync) {
        // Whatever the sync left half-done: its undo log puts the intent
        // back if it was not committed; the devices are checked again.
        if (job_->phase != Job::Phase::kApply) {
          LogSwap swapped(parts_.admission, job_->log);
          parts_.admission.rollback({});
        }
        parts_.reconciler.requestFullPass();
      }
    }
    if (over) {
      if (job_->kind == Job::Kind::kSync)
        spdlog::info(
            "remote.sync of {} remotes served in slices over {} ms",
            job_->sync ? job_->sync->list->size() : 0,
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - job_->started)
                .count());
      const bool large = job_->kind == Job::Kind::kSync;
      job_.reset();
      // The parsed request and the job's logs were megabytes: give them back.
      if (large) ::malloc_trim(0);
    }
  }
  if (!job_ && !held_.empty()) {
    // What waited behind it, in arrival order: answered now, or the next
    // bulk request and what waits behind that.
    std::vector<control::Request> batch(std::make_move_iterator(held_.begin()),
                                        std::make_move_iterator(held_.end()));
    held_.clear();
    std::vector<json> replies(batch.size());
    std::vector<std::uint64_t> connections;
    connections.reserve(batch.size());
    for (const auto& r : batch) connections.push_back(r.connection);
    route(batch, replies);
    for (std::size_t i = 0; i < batch.size(); ++i)
      if (!replies[i].is_null()) out.push_back({connections[i], std::move(replies[i]), {}});
  }
  return out;
}

// --- remote.sync ---

bool BulkRequests::stepSync(Job& job, Clock::time_point deadline, std::vector<LateReply>& out) {
  Admission& admission = parts_.admission;
  Reconciler& reconciler = parts_.reconciler;
  ControllerCounters& counters = parts_.counters;
  const std::size_t per_slice = perSlice();
  const std::size_t chunk = std::min(per_slice, kItemsPerClockRead);
  auto reply = [&](json body) {
    out.push_back({job.request.connection, std::move(body), {}});
    return true;
  };
  auto sliceOver = [&] { return Clock::now() >= deadline; };

  if (job.phase == Job::Phase::kAdmit || job.phase == Job::Phase::kRemoveGone) {
    LogSwap swapped(admission, job.log);
    if (!job.sync) {
      auto begun = admission.beginRemoteSync(job.request.body);
      if (!begun) {
        ++counters.requests_refused;
        spdlog::warn("refused remote.sync: {}", begun.error().describe());
        return reply(control::errorReply(begun.error()));
      }
      job.sync = std::move(begun).value();
    }
    auto& sync = *job.sync;
    std::size_t done = 0;
    while (job.phase == Job::Phase::kAdmit && sync.next < sync.list->size()) {
      const std::size_t end =
          std::min(sync.list->size(), sync.next + std::min(chunk, per_slice - done));
      const std::size_t from = sync.next;
      if (auto s = admission.admitSyncedRemotes(sync, end); !s) {
        admission.rollback({});  // every slice of the sync: nothing of it was persisted or applied
        ++counters.requests_refused;
        spdlog::warn("refused remote.sync: {}", s.error().describe());
        return reply(control::errorReply(s.error()));
      }
      done += end - from;
      if (done >= per_slice || sliceOver()) return false;
    }
    if (job.phase == Job::Phase::kAdmit) {
      admission.listGone(sync);
      job.phase = Job::Phase::kRemoveGone;
    }
    while (sync.gone_next < sync.gone.size()) {
      const std::size_t from = sync.gone_next;
      admission.removeGone(sync,
                           std::min(sync.gone.size(), from + std::min(chunk, per_slice - done)));
      done += sync.gone_next - from;
      if (sync.gone_next < sync.gone.size() && (done >= per_slice || sliceOver())) return false;
    }
    job.result = admission.finishRemoteSync(sync);
    if (admission.log().undo.empty())
      return reply(control::okReply(std::move(job.result)));  // nothing changed
    // Admitted as a whole: from here on it is persisted and applied in
    // slices, and answered after the last.
    for (const auto& m : admission.log().mutations) spdlog::info("{}", m);
    job.to_apply.reserve(admission.log().remotes.size());
    for (const auto& [address, before] : admission.log().remotes) job.to_apply.push_back(address);
    job.phase = Job::Phase::kApply;
  }

  // Apply: the touched remotes, a slice at a time, through the incremental
  // pass (reconcileTouched plans and applies exactly what it is given), each
  // slice's journal record written on a worker meanwhile (a record of the
  // whole sync would hold the loop for its write: 100 k remotes, 0.2-0.8 s).
  std::size_t done = 0;
  while (job.applied < job.to_apply.size()) {
    // When plan() couples owners a slice plans the whole intent anyway: one.
    const std::size_t n =
        reconciler.coupled()
            ? job.to_apply.size() - job.applied
            : std::min({job.to_apply.size() - job.applied, chunk * 4, per_slice - done});
    Admission::TouchedRemotes part;
    part.reserve(n);
    std::vector<Mutation> record;
    record.reserve(n);
    for (std::size_t k = job.applied; k < job.applied + n; ++k) {
      const IpAddr address = job.to_apply[k];
      const auto* now = admission.findRemote(address);
      record.push_back(now ? Mutation::remotePut(*now) : Mutation::remoteRemove(address));
      part.insert(job.log.remotes.extract(address));
    }
    auto saving =
        std::async(std::launch::async, [this, &record] { return parts_.store.append(record); });
    Admission::TouchedPorts no_ports;
    std::swap(admission.log().ports, no_ports);
    std::swap(admission.log().remotes, part);
    std::optional<Reconciler::PassResult> pass;
    std::exception_ptr error;
    try {
      pass = reconciler.reconcileTouched();
    } catch (...) {
      error = std::current_exception();
    }
    std::swap(admission.log().ports, no_ports);
    std::swap(admission.log().remotes, part);
    for (auto& entry : part) job.log.remotes.insert(std::move(entry));
    const Status st = saving.get();
    if (error) std::rethrow_exception(error);
    if (!st) {
      // The slices before this one are persisted and applied; this one and
      // the rest go back to what they were (the devices follow at the next
      // full pass). The client is told, and a retry of the sync converges.
      ++counters.state_save_failures;
      const std::size_t persisted = job.applied;
      admission.beginBatch();
      for (std::size_t k = job.applied; k < job.to_apply.size(); ++k) {
        const auto& before = job.log.remotes.at(job.to_apply[k]);
        if (before) {
          admission.putRemote(*before);
        } else {
          admission.eraseRemote(job.to_apply[k]);
        }
      }
      admission.beginBatch();
      reconciler.requestFullPass();
      Error e = st.error();
      e.message += "; remote.sync: " + std::to_string(persisted) + " of its " +
                   std::to_string(job.to_apply.size()) +
                   " changes were persisted and applied, the rest not; retry the sync";
      spdlog::error("state: {}", e.describe());
      return reply(control::errorReply(e));
    }
    ++counters.state_saves;
    // Each slice's failures are in the failure book (or the pass entry) now.
    reconciler.scheduleRetry(*pass, false);
    job.applied += n;
    done += n;
    if (done >= per_slice || sliceOver()) break;
  }
  if (parts_.store.compactionDue()) seams_.compact_state();
  if (job.applied < job.to_apply.size()) return false;
  // A removed remote whose address the kernel routes comes back as learned.
  std::swap(admission.log().remotes, job.log.remotes);
  seams_.reinstate_learned();
  std::swap(admission.log().remotes, job.log.remotes);
  return reply(control::okReply(std::move(job.result)));
}

// --- rules ---

bool BulkRequests::stepRules(Job& job, Clock::time_point deadline, std::vector<LateReply>& out) {
  const auto& reconciler = parts_.reconciler;
  const std::size_t per_slice = perSlice();
  if (job.suffix.empty()) {
    const json& req = job.request.body;
    auto fail = [&](Error e) {
      out.push_back({job.request.connection, control::errorReply(e), {}});
      return true;
    };
    if (auto s = onlyKeys(req, {"testpmd", "offset", "limit"}); !s) return fail(s.error());
    const auto testpmd = optionalBool(req, "testpmd", false);
    if (!testpmd) return fail(testpmd.error());
    auto page = pageOf(req);
    if (!page) return fail(page.error());
    job.testpmd = *testpmd;
    // The owners as they stand now: later changes do not move the listing.
    job.ports = parts_.admission.intent().ports;
    job.host_rules = reconciler.planner()->hostRules(seams_.port_vnis());
    job.remotes = parts_.admission.intent().remotes;
    job.skip = page->offset;
    job.left = page->limit;
    const std::size_t total = seams_.planned_rules();
    if (page->paged) {
      const std::size_t count =
          total > page->offset ? std::min(page->limit, total - page->offset) : 0;
      const std::size_t next = page->offset + count;
      job.text = std::string(R"({"ok":true,"result":{"next":)") +
                 (next < total ? std::to_string(next) : "null") + R"(,"rules":[)";
      job.suffix = R"(],"total":)" + std::to_string(total) + "}}\n";
    } else {
      job.text = R"({"ok":true,"result":[)";
      job.suffix = "]}\n";
    }
    // Room for the whole reply at once (about 620 bytes a rule, testpmd
    // lines about as many again): growing a 100 MB string by doubling copies
    // tens of MB inside one slice. Reserved, not touched: the pages are
    // faulted in slice by slice as the text is written.
    const std::size_t rules = std::min(page->limit, total);
    job.text.reserve(job.text.size() + rules * (job.testpmd ? 2048 : 1024) + job.suffix.size());
    return false;  // the copy was this turn's work
  }
  const auto numbering = flowrules::PortNumbering::fromHost(parts_.host);
  std::size_t done = 0;
  auto give = [&](const flowrules::FlowRule& planned) {
    if (job.skip > 0) {
      --job.skip;
      return;
    }
    if (job.left == 0) return;
    --job.left;
    const auto* a = reconciler.applier().find(planned.id);
    const auto r = a ? a->effective(planned) : planned;
    json j = flowrules::toJson(r, parts_.profile);
    if (a) j["reason"] = flowrules::describeApplied(*a, parts_.profile);
    if (job.testpmd) j["testpmd"] = flowrules::renderTestpmd(r, numbering);
    if (job.given++) job.text += ',';
    job.text += j.dump(-1, ' ', false, json::error_handler_t::replace);
    ++done;
  };
  const std::size_t n_ports = job.ports.size();
  const std::size_t n_owners = n_ports + 1 + job.remotes.size();
  while (job.owner < n_owners && job.left > 0) {
    const std::size_t o = job.owner++;
    if (o < n_ports) {
      if (auto rules = reconciler.planner()->portRules(job.ports[o]))
        for (const auto& r : *rules) give(r);
    } else if (o == n_ports) {
      for (const auto& r : job.host_rules) give(r);
    } else {
      // Whole pages of remotes skipped at once (one rule each).
      const std::size_t i = o - n_ports - 1;
      if (job.skip > 0) {
        const std::size_t jump = std::min(job.skip, job.remotes.size() - i);
        job.skip -= jump;
        job.owner = o + jump;
        continue;
      }
      give(reconciler.planner()->remoteRule(job.remotes[i]));
    }
    if (done >= per_slice) return false;
    if (done % 64 == 0 && Clock::now() >= deadline) return false;
  }
  job.text += job.suffix;
  out.push_back({job.request.connection, {}, std::move(job.text)});
  return true;
}

}  // namespace nicoffload::daemon
