// Crash-safe persistence of the daemon's intent (ports, remotes, and the
// extra state backends keep, such as VF assignments): a snapshot plus a
// journal of the changes admitted since.
//
// Files, all in `dir`:
//   intent.json        the snapshot: {"version":1,"journal_seq":S,"ports":[...],
//                      "remotes":[...],"extra":{...}}. S is the first journal
//                      segment the snapshot does NOT include. An intent.json
//                      without "journal_seq" (written before the journal
//                      existed) is loaded as the whole state and rewritten
//                      with the field on load (a one-time migration).
//   journal.<seq>      journal segments, seq a 16-digit decimal, increasing.
//                      One line per append() (one batch):
//                        <payload bytes> <crc32 of payload, 8 hex> <payload>\n
//                      payload = JSON array of mutations:
//                        {"op":"port.put","port":{...}}   (model::toJson(Port))
//                        {"op":"port.remove","vm":"<uuid>","nic":0}
//                        {"op":"remote.put","remote":{...}} (model::toJson(RemoteEndpoint))
//                        {"op":"remote.remove","address":"10.0.0.1"}
//   intent.json.tmp    a snapshot being written; never read. A failed snapshot
//                      removes it, and load() removes one a crash left.
//
// The segments, their framing, the torn-tail and missing-segment handling and
// the atomic snapshot write are common/journal.h's (Journal,
// writeFileAtomically, Durability::kPowerLoss); this store owns the payloads.
//
// Start (load) = snapshot + replay of segments S, S+1, ... in order. Every
// step keeps a kill -9 at any moment recoverable to exactly the acknowledged
// changes:
//   - append() writes a batch as one record and returns success only after
//     fdatasync; a record cut short by a crash is the last one of the last
//     segment, and load() ignores it (Stats::torn_records_ignored) and cuts it
//     off, so the next append does not follow garbage.
//   - the snapshot is replaced atomically (tmp, fsync, rename, fsync dir);
//     segments older than the snapshot's journal_seq are deleted afterwards,
//     and load() deletes any left behind by a crash.
//   - a record that is corrupt but not at the tail (or a missing segment) is
//     refused with kInvalidValue naming the file and the byte offset: never a
//     silent partial state.
//
// Threads: load(), append(), save(), compactInBackground() and
// waitForCompaction() are called from one thread (the daemon's loop); the
// compaction thread only writes the snapshot and deletes old segments, which
// the loop's thread does not touch meanwhile. stats(), compacting() and
// compactionDue() may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::daemon {

struct PersistedState {
  std::vector<model::Port> ports;
  std::vector<model::RemoteEndpoint> remotes;
  // Backend state (e.g. "vf_pool"). Kept in the snapshot only: after a
  // replay it is as of the last snapshot (the journal does not carry it).
  nlohmann::json extra = nlohmann::json::object();
};

// One admitted change, as the journal records it.
//
// Replay order (load()): ports keyed by PortKey, remotes by address; a put of
// a new key appends, a put of a known key replaces in place, a remove erases
// (removing an absent key is a no-op, as the admission is idempotent). So the
// vectors keep first-insertion order, deterministically.
struct Mutation {
  enum class Kind : std::uint8_t { kPortPut, kPortRemove, kRemotePut, kRemoteRemove };
  Kind kind = Kind::kPortPut;
  model::Port port;              // kPortPut (the whole port as admitted)
  model::PortKey key;            // kPortRemove
  model::RemoteEndpoint remote;  // kRemotePut
  IpAddr address;                // kRemoteRemove

  static Mutation portPut(model::Port p);
  static Mutation portRemove(model::PortKey k);
  static Mutation remotePut(model::RemoteEndpoint r);
  static Mutation remoteRemove(const IpAddr& a);
};

// Applies `m` to `state` with the replay rules above (linear search: for
// tools and tests; load() replays through hash maps).
void applyMutation(PersistedState& state, const Mutation& m);

struct StateStoreOptions {
  // Journal size (bytes, all live segments) at which compactionDue() turns true.
  std::uint64_t compact_journal_bytes = 64ull << 20;
};

class StateStore {
 public:
  // `dir` is created (mode 0700) when something is first written.
  explicit StateStore(std::string dir, StateStoreOptions options = {});
  ~StateStore();  // waits for a running compaction
  StateStore(StateStore&&) noexcept;
  StateStore& operator=(StateStore&&) noexcept;
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  const std::string& dir() const;
  std::string path() const;  // dir/intent.json (the snapshot)
  // dir/journal.<seq, 16 digits>.
  std::string segmentPath(std::uint64_t seq) const;

  // The snapshot plus the replay of the journal segments written after it;
  // an empty state when nothing was saved yet. Cuts off a torn last record
  // (counted in Stats::torn_records_ignored), deletes segments the snapshot
  // already covers, migrates an intent.json without "journal_seq", and
  // prepares the journal for append(). Waits for a running compaction first.
  // Errors: kIo (unreadable file, or the torn tail cannot be cut off; names
  // the path), kInvalidValue (the snapshot does not parse: names the field;
  // a corrupt journal record or a missing segment: names the file and the
  // byte offset and says what the operator can do). Never a partial state.
  Result<PersistedState> load();

  // Appends `batch` as one journal record: ONE write and ONE fdatasync.
  // Success means the batch survives a crash. An empty batch writes nothing.
  // Errors: kIo naming the segment and the failing step; then nothing of the
  // batch counts as persisted: the segment is cut back to its previous size.
  // If the cut fails too, the store refuses every later append (kIo) until
  // it is loaded again (restart) or save() succeeds, because the journal's
  // tail is then unknown (a compaction retries the cut before rotating, and
  // does not start when it fails again). kInternal: a field JSON cannot hold
  // (invalid UTF-8); nothing is written.
  // Calls load() first (and discards its result) when neither load() nor
  // save() was called on this object.
  Status append(std::span<const Mutation> batch);

  // True when no compaction is running and the live journal reached
  // StateStoreOptions::compact_journal_bytes, or half the snapshot's size
  // (at least 1 MiB: a start replays at most half of what it loads).
  bool compactionDue() const;

  // Rotates the journal to a new segment on the calling thread (later
  // appends go there; no rotation when the current segment is still empty),
  // then writes `state` (= everything appended so far) as the new snapshot on
  // a background thread: tmp file, fsync, rename over intent.json, fsync dir,
  // then deletes the older segments. One compaction at a time: a call while
  // one runs first waits for it (compactionDue() is false while one runs, so
  // a caller that only compacts when due never waits). A failure is logged
  // and counted (Stats::compaction_failures) and loses nothing: the old
  // snapshot and every segment stay.
  void compactInBackground(PersistedState state);
  bool compacting() const;
  // Joins the compaction thread, if any (shutdown, tests; the destructor).
  void waitForCompaction();

  // Synchronous snapshot of `state` (which must be everything appended so
  // far); drops every older journal segment. Waits for a running compaction
  // first. Errors: kIo with the failing step and path; the previous snapshot
  // and journal then stay valid.
  Status save(const PersistedState& state);

  struct Stats {
    std::uint64_t journal_bytes = 0;    // bytes in the live segments
    std::uint64_t appends = 0;          // successful append() calls (= records written)
    std::uint64_t records = 0;          // mutations in those appends
    std::uint64_t append_failures = 0;  // append() calls that returned an error
    std::uint64_t compactions = 0;      // snapshots written by compactInBackground()
    std::uint64_t compaction_failures = 0;
    std::uint64_t replayed_records = 0;      // mutations replayed by the last load()
    std::uint64_t torn_records_ignored = 0;  // torn tail records cut off by load()
    double last_compaction_ms = 0;           // wall time of the last background snapshot
  };
  Stats stats() const;  // thread-safe

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nicoffload::daemon
