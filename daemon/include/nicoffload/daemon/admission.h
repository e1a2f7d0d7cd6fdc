// Admission: the intent (ports, remotes), its index and the VF pool, changed
// in place by each admitted request and undone when one is refused.
//
// Every change goes through four primitives (putPort, erasePort, putRemote,
// eraseRemote), each of which logs first how to undo it, the journal record
// the state store will append, and the state of the owner before the batch
// first touched it (what the incremental pass re-plans). A refused request
// (or a refused op of a `batch`, or a batch whose state write failed) rolls
// the log back to its mark: the intent, the index and the VF pool are as
// they were.
//
// The admit* calls check one mutation request against the intent as it
// stands and change it on success only. What they need from the rest of the
// daemon (the planner, the vDPA pool, the claims' clock, the underlay the
// kernel shows) comes through Admission::Seams.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/daemon/state_store.h"
#include "nicoffload/model/intent.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/model/vf_pool.h"

namespace nicoffload::daemon {

class Admission {
 public:
  // A port's or a remote's state before the batch first touched it (null:
  // it did not exist).
  using TouchedPorts = std::map<model::PortKey, std::optional<model::Port>>;
  using TouchedRemotes = std::unordered_map<IpAddr, std::optional<model::RemoteEndpoint>>;

  struct Undo {
    enum class Kind : std::uint8_t { kPortPut, kPortErase, kRemotePut, kRemoteErase };
    Kind kind = Kind::kPortPut;
    std::optional<model::Port> port;              // the port before (put), the erased port
    model::PortKey key;                           // kPortPut
    std::size_t position = 0;                     // kPortErase, kRemoteErase: where it stood
    std::optional<model::RemoteEndpoint> remote;  // the remote before (put), the erased remote
    IpAddr address;                               // kRemotePut
  };
  // What a batch changed: its undo log, its lines for the daemon's log, its
  // journal records and the owners it touched. A bulk remote.sync keeps a
  // log of its own and swaps it in while a slice runs (bulk.cc).
  struct Log {
    std::vector<Undo> undo;
    std::vector<std::string> mutations;
    std::vector<Mutation> journal;
    TouchedPorts ports;
    TouchedRemotes remotes;
  };
  struct Marks {
    std::size_t undo = 0;
    std::size_t mutations = 0;
    std::size_t journal = 0;
  };

  // What admission asks the rest of the daemon. Every one is required.
  struct Seams {
    // Whether a port plans on this host and profile (OwnerPlanner::portRules);
    // its error refuses the port.add.
    std::function<Status(const model::Port&)> port_plans;
    // The VFs whose pool device suits `port` (VdpaDevices::readyFor): null
    // when none does.
    std::function<const std::set<std::uint16_t>*(const model::Port&)> pool_ready;
    // The claims' clock (wall time at start + steady time since, ms) and the
    // expiry of a new tentative claim (Claims: claims.h).
    std::function<std::int64_t()> claim_clock_ms;
    std::function<void(std::int64_t until_ms)> note_claim;
    // Why an address is the underlay's as the kernel shows it (learned next
    // hops, uplink neighbours and subnets); empty when a remote may take it.
    std::function<std::string(const IpAddr&)> underlay_use;
  };

  Admission(model::HostConfig host, Seams seams);

  // The intent persisted (start): validated, indexed, the VF pool rebuilt
  // from the ports' VFs. Errors: model::validateIntent's, VfPool::sync's.
  Status load(std::vector<model::Port> ports, std::vector<model::RemoteEndpoint> remotes);
  // The next hops the planner uses (learned next-hop MACs).
  void setNextHops(std::vector<model::UnderlayNextHop> hops) {
    intent_.host.next_hops = std::move(hops);
  }

  const model::Intent& intent() const { return intent_; }
  const vdpa::VfPool& vfPool() const { return vf_pool_; }
  const model::Port* findPort(const model::PortKey& key) const;
  const model::RemoteEndpoint* findRemote(const IpAddr& address) const;

  // --- the batch's log ---
  Log& log() { return log_; }
  const Log& log() const { return log_; }
  // A new batch: the log emptied (what it held was persisted or undone);
  // its buffers are kept for the next batch.
  void beginBatch();
  Marks marks() const { return {log_.undo.size(), log_.mutations.size(), log_.journal.size()}; }
  // Undoes every change logged after `to`, newest first.
  void rollback(const Marks& to);
  // A line for the daemon's log, kept with the batch (dropped on rollback).
  void note(std::string line) { log_.mutations.push_back(std::move(line)); }

  // --- the primitives ---
  void putPort(model::Port port);
  void erasePort(const model::PortKey& key);
  void putRemote(model::RemoteEndpoint remote);
  // O(1): the last remote moves into the hole (the list's order is not part
  // of the intent).
  void eraseRemote(const IpAddr& address);
  // Records the state of a port / remote before this batch first touched it.
  void touchPort(const model::PortKey& key);
  void touchRemote(const IpAddr& address);

  // --- the mutation requests (the control API's fields: docs/control-api.md) ---
  // Each changes the intent on success only. Errors: the request's fields
  // (kMissingField, kWrongType, kInvalidValue, kUnknownField), the intent's
  // checks (kConflict, kDuplicate: model::IntentIndex), the VF pool
  // (port.vf), the planner's (port.add).
  Result<nlohmann::json> portAdd(const nlohmann::json& request);
  Result<nlohmann::json> portRemove(const nlohmann::json& request);
  Result<nlohmann::json> remoteAdd(const nlohmann::json& request);
  Result<nlohmann::json> remoteRemove(const nlohmann::json& request);
  // The whole set of one origin, at once (below: the same in steps).
  Result<nlohmann::json> remoteSync(const nlohmann::json& request);

  // remote.sync in steps, so that bulk.cc can spread a large one over
  // several loop turns: the request's fields; the listed remotes from
  // `next` to `end` (a refusal: the caller rolls back); the origin's remotes
  // the list does not hold (listGone, then removeGone in slices); the result.
  struct SyncAdmission {
    std::string origin;
    const nlohmann::json* list = nullptr;  // the request's "remotes"
    std::size_t next = 0;                  // the next listed remote to admit
    struct Counts {
      std::size_t added = 0, updated = 0, unchanged = 0, removed = 0;
    } counts;
    std::size_t taken_over = 0;  // of `updated`: addresses a learned route held
    // Entries not applied (held by another origin, a VM's, the underlay's):
    // the first kConflictsListed, all counted.
    nlohmann::json conflicts = nlohmann::json::array();
    std::size_t conflict_count = 0;
    static constexpr std::size_t kConflictsListed = 100;
    std::unordered_set<IpAddr> listed;
    std::vector<IpAddr> gone;  // listGone(): to remove
    std::size_t gone_next = 0;
  };
  Result<SyncAdmission> beginRemoteSync(const nlohmann::json& request) const;
  Status admitSyncedRemotes(SyncAdmission& sync, std::size_t end);
  void listGone(SyncAdmission& sync) const;
  void removeGone(SyncAdmission& sync, std::size_t end);
  nlohmann::json finishRemoteSync(SyncAdmission& sync);

  // IntentIndex::checkRemote against everything but the version `remote`
  // replaces (the index is left as it was). learned: a route from the
  // kernel (its next hops may be remotes' addresses: the underlay wins).
  Status checkRemoteReplacing(const model::RemoteEndpoint& remote, bool learned = false);

 private:
  model::Port* mutablePort(const model::PortKey& key);

  model::HostConfig host_;
  Seams seams_;
  model::Intent intent_;
  std::unique_ptr<model::IntentIndex> index_;
  vdpa::VfPool vf_pool_;  // which port holds which VF; persisted with the intent
  Log log_;
};

}  // namespace nicoffload::daemon
