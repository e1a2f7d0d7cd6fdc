#include "nicoffload/daemon/state_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "nicoffload/common/file_read.h"
#include "nicoffload/common/journal.h"
#include "nicoffload/model/parse.h"

namespace nicoffload::daemon {
namespace {

using nlohmann::json;

constexpr int kVersion = 1;
constexpr std::string_view kSegmentPrefix = "journal.";
constexpr std::string_view kSnapshotName = "intent.json";

Error ioError(const std::string& what, const std::string& path, int err) {
  return makeError(ErrorCode::kIo, path, "", what + ": " + std::strerror(err));
}

json encode(const Mutation& m) {
  switch (m.kind) {
    case Mutation::Kind::kPortPut:
      return {{"op", "port.put"}, {"port", model::toJson(m.port)}};
    case Mutation::Kind::kPortRemove:
      return {{"op", "port.remove"}, {"vm", m.key.vm}, {"nic", m.key.nic}};
    case Mutation::Kind::kRemotePut:
      return {{"op", "remote.put"}, {"remote", model::toJson(m.remote)}};
    case Mutation::Kind::kRemoteRemove:
      return {{"op", "remote.remove"}, {"address", m.address.str()}};
  }
  return {};
}

// One mutation of a record's payload; errors name `path` (e.g. "[3]").
Result<Mutation> decode(const json& j, const std::string& path) {
  auto bad = [&](const std::string& field, const std::string& msg) {
    return makeError(ErrorCode::kInvalidValue, path + field, "", msg);
  };
  if (!j.is_object() || !j.contains("op") || !j["op"].is_string())
    return bad(".op", "not a journal mutation (no \"op\")");
  const auto& op = j["op"].get_ref<const std::string&>();
  if (op == "port.put") {
    if (!j.contains("port")) return bad(".port", "missing");
    auto p = model::parsePort(j["port"], path + ".port");
    if (!p) return p.error();
    return Mutation::portPut(std::move(*p));
  }
  if (op == "port.remove") {
    if (!j.contains("vm") || !j["vm"].is_string()) return bad(".vm", "missing or not a string");
    if (!j.contains("nic") || !j["nic"].is_number_unsigned() ||
        j["nic"].get<std::uint64_t>() > 0xFFFF)
      return bad(".nic", "missing or not a NIC index");
    return Mutation::portRemove(
        model::PortKey{j["vm"].get<std::string>(), j["nic"].get<std::uint16_t>()});
  }
  if (op == "remote.put") {
    if (!j.contains("remote")) return bad(".remote", "missing");
    auto r = model::parseRemote(j["remote"], path + ".remote");
    if (!r) return r.error();
    return Mutation::remotePut(std::move(*r));
  }
  if (op == "remote.remove") {
    std::optional<IpAddr> a;
    if (j.contains("address") && j["address"].is_string())
      a = IpAddr::parse(j["address"].get_ref<const std::string&>());
    if (!a) return bad(".address", "missing or not an IP address");
    return Mutation::remoteRemove(*a);
  }
  return bad(".op", "unknown journal operation '" + op + "'");
}

// The snapshot document.
std::string snapshotText(const PersistedState& state, std::uint64_t journal_seq) {
  json j;
  j["version"] = kVersion;
  j["journal_seq"] = journal_seq;
  j["ports"] = json::array();
  for (const auto& p : state.ports) j["ports"].push_back(model::toJson(p));
  j["remotes"] = json::array();
  for (const auto& r : state.remotes) j["remotes"].push_back(model::toJson(r));
  j["extra"] = state.extra;
  return j.dump(1) + "\n";
}

// The snapshot being written, renamed over intent.json once it is whole.
std::string snapshotTmpPath(const std::string& dir) { return dir + "/intent.json.tmp"; }

// Atomically replaces dir/intent.json (writeFileAtomically: tmp file, fsync,
// rename, fsync dir; a failed attempt removes its tmp file).
Status writeSnapshot(const std::string& dir, const PersistedState& state,
                     std::uint64_t journal_seq) {
  std::string text;
  try {
    text = snapshotText(state, journal_seq);
  } catch (const std::exception& e) {  // nlohmann: e.g. invalid UTF-8 in `extra`
    return makeError(ErrorCode::kInternal, dir + "/intent.json", "",
                     std::string("cannot serialise the state: ") + e.what());
  }
  return writeFileAtomically(dir, std::string(kSnapshotName), text);
}

void logWarnings(const std::vector<std::string>& warnings) {
  for (const auto& w : warnings) spdlog::warn("state: {}", w);
}

// Replays mutations onto a state in O(1) each: keys map to slots; a removed
// slot is emptied and squeezed out by finish(), so the order is the
// first-insertion order of the surviving keys.
class Replayer {
 public:
  explicit Replayer(PersistedState base) : extra_(std::move(base.extra)) {
    remote_at_.reserve(base.remotes.size());
    for (auto& p : base.ports) apply(Mutation::portPut(std::move(p)));
    for (auto& r : base.remotes) apply(Mutation::remotePut(std::move(r)));
  }

  void apply(Mutation&& m) {
    switch (m.kind) {
      case Mutation::Kind::kPortPut: {
        auto [it, added] = port_at_.try_emplace(m.port.key, ports_.size());
        if (added) {
          ports_.emplace_back(std::move(m.port));
        } else {
          ports_[it->second] = std::move(m.port);
        }
        break;
      }
      case Mutation::Kind::kPortRemove:
        if (auto it = port_at_.find(m.key); it != port_at_.end()) {
          ports_[it->second].reset();
          port_at_.erase(it);
        }
        break;
      case Mutation::Kind::kRemotePut: {
        auto [it, added] = remote_at_.try_emplace(m.remote.address, remotes_.size());
        if (added) {
          remotes_.emplace_back(std::move(m.remote));
        } else {
          remotes_[it->second] = std::move(m.remote);
        }
        break;
      }
      case Mutation::Kind::kRemoteRemove:
        if (auto it = remote_at_.find(m.address); it != remote_at_.end()) {
          remotes_[it->second].reset();
          remote_at_.erase(it);
        }
        break;
    }
  }

  PersistedState finish() && {
    PersistedState s;
    s.extra = std::move(extra_);
    s.ports.reserve(port_at_.size());
    for (auto& p : ports_)
      if (p) s.ports.push_back(std::move(*p));
    s.remotes.reserve(remote_at_.size());
    for (auto& r : remotes_)
      if (r) s.remotes.push_back(std::move(*r));
    return s;
  }

 private:
  json extra_;
  std::vector<std::optional<model::Port>> ports_;
  std::map<model::PortKey, std::size_t> port_at_;
  std::vector<std::optional<model::RemoteEndpoint>> remotes_;
  std::unordered_map<IpAddr, std::size_t> remote_at_;
};

}  // namespace

Mutation Mutation::portPut(model::Port p) {
  Mutation m;
  m.kind = Kind::kPortPut;
  m.port = std::move(p);
  return m;
}
Mutation Mutation::portRemove(model::PortKey k) {
  Mutation m;
  m.kind = Kind::kPortRemove;
  m.key = std::move(k);
  return m;
}
Mutation Mutation::remotePut(model::RemoteEndpoint r) {
  Mutation m;
  m.kind = Kind::kRemotePut;
  m.remote = std::move(r);
  return m;
}
Mutation Mutation::remoteRemove(const IpAddr& a) {
  Mutation m;
  m.kind = Kind::kRemoteRemove;
  m.address = a;
  return m;
}

void applyMutation(PersistedState& state, const Mutation& m) {
  switch (m.kind) {
    case Mutation::Kind::kPortPut:
      for (auto& p : state.ports)
        if (p.key == m.port.key) {
          p = m.port;
          return;
        }
      state.ports.push_back(m.port);
      return;
    case Mutation::Kind::kPortRemove:
      std::erase_if(state.ports, [&](const model::Port& p) { return p.key == m.key; });
      return;
    case Mutation::Kind::kRemotePut:
      for (auto& r : state.remotes)
        if (r.address == m.remote.address) {
          r = m.remote;
          return;
        }
      state.remotes.push_back(m.remote);
      return;
    case Mutation::Kind::kRemoteRemove:
      std::erase_if(state.remotes,
                    [&](const model::RemoteEndpoint& r) { return r.address == m.address; });
      return;
  }
}

struct StateStore::Impl {
  std::string dir;
  StateStoreOptions options;

  // The loop's thread only (the compaction thread calls only
  // writeSnapshot() and journal.deleteSegmentsBelow(), which touch the
  // snapshot and segments older than the current one).
  Journal journal;
  std::thread compactor;

  std::atomic<bool> compacting{false};
  mutable std::mutex mu;
  Stats stats;  // under mu
  // Under mu: mutations in the live journal segments (replayed at load plus
  // appended since), and the ports + remotes the snapshot holds.
  std::uint64_t journal_mutations = 0;
  std::uint64_t snapshot_objects = 0;

  Impl(std::string d, StateStoreOptions o)
      : dir(d),
        options(o),
        journal(Journal::Options{d, std::string(kSegmentPrefix), std::string(kSnapshotName)}) {}
};

StateStore::StateStore(std::string dir, StateStoreOptions options)
    : impl_(std::make_unique<Impl>(std::move(dir), options)) {}

StateStore::~StateStore() {
  if (!impl_) return;
  waitForCompaction();
}

StateStore::StateStore(StateStore&&) noexcept = default;

StateStore& StateStore::operator=(StateStore&& other) noexcept {
  if (this != &other) {
    if (impl_) {
      waitForCompaction();
    }
    impl_ = std::move(other.impl_);
  }
  return *this;
}

const std::string& StateStore::dir() const { return impl_->dir; }
std::string StateStore::path() const { return impl_->dir + "/intent.json"; }
std::string StateStore::segmentPath(std::uint64_t seq) const {
  return impl_->journal.segmentPath(seq);
}

Result<PersistedState> StateStore::load() {
  Impl& im = *impl_;
  waitForCompaction();
  im.journal.close();

  // A snapshot a crash interrupted: never part of the state (load() reads
  // intent.json only), and on a full disk the space it holds is what the
  // next snapshot needs.
  if (const std::string tmp = snapshotTmpPath(im.dir); ::unlink(tmp.c_str()) == 0)
    spdlog::info("state: removed {}, a snapshot a crash left unfinished", tmp);
  else if (errno != ENOENT && errno != ENOTDIR)
    spdlog::warn("state: cannot remove {}: {}", tmp, std::strerror(errno));

  PersistedState base;
  std::uint64_t snapshot_seq = 1;
  bool old_format = false;
  const std::string snap = path();
  if (::access(snap.c_str(), F_OK) == 0) {
    auto doc = model::readJsonFile(snap, kMaxStateFileBytes);
    if (!doc) return doc.error();
    auto& j = *doc;
    auto bad = [&](const std::string& field, const std::string& msg) {
      return makeError(ErrorCode::kInvalidValue, snap + ": " + field, "", msg);
    };
    if (!j.is_object() || !j.contains("version") || j["version"] != kVersion)
      return bad("version", "not a nicoffload state file of version " + std::to_string(kVersion));
    // Moved, not copied: 100 k remotes are tens of MB of JSON nodes.
    json lists = json::object();
    lists["ports"] = j.contains("ports") ? std::move(j["ports"]) : json::array();
    lists["remotes"] = j.contains("remotes") ? std::move(j["remotes"]) : json::array();
    model::Intent scratch;
    if (auto s = model::parsePortsFile(lists, scratch); !s) {
      Error e = s.error();
      e.field = snap + ": " + e.field;
      return e;
    }
    base.ports = std::move(scratch.ports);
    base.remotes = std::move(scratch.remotes);
    if (j.contains("extra")) base.extra = j["extra"];
    if (!j.contains("journal_seq")) {
      old_format = true;
    } else if (!j["journal_seq"].is_number_unsigned() ||
               j["journal_seq"].get<std::uint64_t>() < 1) {
      return bad("journal_seq", "not a journal segment number (an integer >= 1)");
    } else {
      snapshot_seq = j["journal_seq"].get<std::uint64_t>();
    }
  } else if (errno != ENOENT) {
    return ioError("cannot access", snap, errno);
  }

  if (old_format) {
    // Written before the journal existed: the whole state. Any segment here
    // is older than it; name the next one in a rewritten snapshot, or the
    // next start could not tell new segments from old ones.
    auto segs = im.journal.listSegments();
    if (!segs) return segs.error();
    snapshot_seq = segs->empty() ? 1 : segs->back() + 1;
    if (auto s = writeSnapshot(im.dir, base, snapshot_seq); !s) return s.error();
    logWarnings(im.journal.deleteSegmentsBelow(snapshot_seq));
    spdlog::info(
        "state: {} had no journal_seq (written before the journal): rewritten with "
        "journal_seq {}",
        snap, snapshot_seq);
  }

  const std::uint64_t snapshot_objects = base.ports.size() + base.remotes.size();
  Replayer replayer(std::move(base));
  std::uint64_t replayed = 0;
  auto replay = im.journal.replay(snapshot_seq, [&](std::string_view payload) -> Status {
    auto doc = json::parse(payload.begin(), payload.end(), nullptr, false);
    if (doc.is_discarded() || !doc.is_array())
      return makeError(ErrorCode::kInvalidValue, "", "",
                       "its CRC-32 matches but its payload is not a JSON array");
    for (std::size_t k = 0; k < doc.size(); ++k) {
      auto m = decode(doc[k], "[" + std::to_string(k) + "]");
      if (!m) return makeError(ErrorCode::kInvalidValue, "", "", m.error().describe());
      replayer.apply(std::move(*m));
      ++replayed;
    }
    return Status::success();
  });
  if (!replay) return replay.error();
  if (replay->stale_deleted > 0)
    // A crash between the snapshot's rename and the deletion of the
    // segments it includes.
    spdlog::info("state: deleted {} journal segment(s) already in the snapshot",
                 replay->stale_deleted);
  logWarnings(replay->warnings);
  if (replay->torn)
    spdlog::warn(
        "state: {}: ignoring a torn record at byte {} ({} bytes; a crash during an "
        "append that was never acknowledged); cutting it off",
        replay->torn_path, replay->torn_offset, replay->torn_bytes);

  {
    std::lock_guard<std::mutex> lock(im.mu);
    im.stats.journal_bytes = replay->bytes;
    im.stats.replayed_records = replayed;
    im.journal_mutations = replayed;
    im.snapshot_objects = snapshot_objects;
    im.stats.torn_records_ignored += replay->torn ? 1 : 0;
  }
  if (replay->segments > 0)
    spdlog::info("state: replayed {} journal change(s) from {} segment(s) after {}", replayed,
                 replay->segments, snap);
  return std::move(replayer).finish();
}

Status StateStore::append(std::span<const Mutation> batch) {
  Impl& im = *impl_;
  auto fail = [&](Error e) -> Status {
    std::lock_guard<std::mutex> lock(im.mu);
    ++im.stats.append_failures;
    return e;
  };
  if (!im.journal.ready()) {
    if (auto l = load(); !l) return fail(l.error());
  }
  const std::string p = im.journal.segmentPath(im.journal.currentSeq());
  if (im.journal.broken())
    return fail(makeError(ErrorCode::kIo, p, "",
                          "an earlier append failed and could not be cut back: the journal's "
                          "tail is unknown; restart the daemon (the next start cuts it off)"));
  if (batch.empty()) return Status::success();

  std::string text;
  try {
    // The payload is a JSON array; each element is dumped as it is encoded,
    // so a 100 k batch never holds a tree of 100 k objects.
    text = "[";
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (i) text += ',';
      text += encode(batch[i]).dump();
    }
    text += ']';
  } catch (const std::exception& e) {  // nlohmann: invalid UTF-8 in a field
    return fail(makeError(ErrorCode::kInternal, p, "",
                          std::string("cannot serialise the batch: ") + e.what()));
  }

  const std::uint64_t before = im.journal.currentBytes();
  if (auto s = im.journal.append(text); !s) {
    if (im.journal.broken()) spdlog::error("state: {}", s.error().describe());
    return fail(s.error());
  }
  const std::uint64_t written = im.journal.currentBytes() - before;
  std::lock_guard<std::mutex> lock(im.mu);
  im.stats.journal_bytes += written;
  ++im.stats.appends;
  im.stats.records += batch.size();
  im.journal_mutations += batch.size();
  return Status::success();
}

bool StateStore::compactionDue() const {
  if (impl_->compacting.load()) return false;
  std::uint64_t journal = 0, mutations = 0, objects = 0;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    journal = impl_->stats.journal_bytes;
    mutations = impl_->journal_mutations;
    objects = impl_->snapshot_objects;
  }
  if (journal >= impl_->options.compact_journal_bytes) return true;
  // Or once the journal holds as many changes as half the snapshot's objects
  // (and 10 000): removals are small records, yet a start would load every
  // object they removed and then replay each removal.
  constexpr std::uint64_t kMinMutations = 10000;
  if (mutations >= kMinMutations && mutations >= objects / 2) return true;
  // Also once the journal reaches half the snapshot (and 1 MiB): a start then
  // replays at most half of what it loads, whatever the size of the state.
  constexpr std::uint64_t kMinRelative = 1 << 20;
  if (journal < kMinRelative) return false;
  struct stat st {};
  const std::string snapshot = impl_->dir + "/intent.json";
  const std::uint64_t snapshot_bytes =
      ::stat(snapshot.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  return journal >= snapshot_bytes / 2;
}

bool StateStore::compacting() const { return impl_->compacting.load(); }

void StateStore::waitForCompaction() {
  if (impl_->compactor.joinable()) impl_->compactor.join();
}

void StateStore::compactInBackground(PersistedState state) {
  Impl& im = *impl_;
  waitForCompaction();
  auto failed = [&](const Error& e) {
    spdlog::warn("state: compaction not started: {}", e.describe());
    std::lock_guard<std::mutex> lock(im.mu);
    ++im.stats.compaction_failures;
  };
  if (!im.journal.ready()) {
    if (auto l = load(); !l) return failed(l.error());
  }
  auto seq = im.journal.rotate();
  if (!seq) return failed(seq.error());
  std::uint64_t covered = 0;            // every byte so far is in segments < *seq
  std::uint64_t covered_mutations = 0;  // ... and every mutation
  {
    std::lock_guard<std::mutex> lock(im.mu);
    covered = im.stats.journal_bytes;
    covered_mutations = im.journal_mutations;
  }
  im.compacting.store(true);
  im.compactor = std::thread([&im, state = std::move(state), seq = *seq, covered,
                              covered_mutations] {
    const auto t0 = std::chrono::steady_clock::now();
    Status s = writeSnapshot(im.dir, state, seq);
    if (s) logWarnings(im.journal.deleteSegmentsBelow(seq));
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    {
      std::lock_guard<std::mutex> lock(im.mu);
      if (s) {
        ++im.stats.compactions;
        im.stats.journal_bytes -= std::min(covered, im.stats.journal_bytes);
        im.journal_mutations -= std::min(covered_mutations, im.journal_mutations);
        im.snapshot_objects = state.ports.size() + state.remotes.size();
        im.stats.last_compaction_ms = ms;
      } else {
        ++im.stats.compaction_failures;
      }
    }
    if (s) {
      spdlog::info(
          "state: compacted {} ports, {} remotes into {}/intent.json in {:.1f} ms "
          "(journal from segment {})",
          state.ports.size(), state.remotes.size(), im.dir, ms, seq);
    } else {
      spdlog::warn("state: compaction failed (the journal keeps every change): {}",
                   s.error().describe());
    }
    im.compacting.store(false);
  });
}

Status StateStore::save(const PersistedState& state) {
  Impl& im = *impl_;
  waitForCompaction();
  std::uint64_t seq = 0;
  if (im.journal.ready()) {
    seq = im.journal.nextSnapshotSeq();
  } else {
    // Never loaded (tools): whatever segments exist are older than `state`.
    auto segs = im.journal.listSegments();
    if (!segs) return segs.error();
    seq = segs->empty() ? 1 : segs->back() + 1;
  }
  if (auto s = writeSnapshot(im.dir, state, seq); !s) return s;
  if (!im.journal.ready() || seq != im.journal.currentSeq()) im.journal.restartAt(seq);
  logWarnings(im.journal.deleteSegmentsBelow(seq));
  std::lock_guard<std::mutex> lock(im.mu);
  im.stats.journal_bytes = im.journal.currentBytes();
  im.journal_mutations = 0;
  im.snapshot_objects = state.ports.size() + state.remotes.size();
  return Status::success();
}

StateStore::Stats StateStore::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

}  // namespace nicoffload::daemon
