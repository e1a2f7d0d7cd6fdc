// Admission: the intent changed in place, undone when a request is refused (admission.h).
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <future>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_set>

#include "nicoffload/daemon/admission.h"
#include "request_fields.h"

namespace nicoffload::daemon {

Admission::Admission(model::HostConfig host, Seams seams)
    : host_(std::move(host)),
      seams_(std::move(seams)),
      vf_pool_(host_.uplink_pci, host_.vf_count) {
  intent_.host = host_;
  index_ = std::make_unique<model::IntentIndex>(intent_);
}

Status Admission::load(std::vector<model::Port> ports, std::vector<model::RemoteEndpoint> remotes) {
  intent_.ports = std::move(ports);
  intent_.remotes = std::move(remotes);
  if (auto s = model::validateIntent(intent_); !s) return s.error();
  index_ = std::make_unique<model::IntentIndex>(intent_);
  // The ports carry their VFs; the pool is rebuilt from them (the copy in
  // the state file is for operators and tools).
  if (auto synced = vf_pool_.sync(intent_.ports); !synced) return synced.error();
  return Status::success();
}

model::Port* Admission::mutablePort(const model::PortKey& key) {
  for (auto& p : intent_.ports)
    if (p.key == key) return &p;
  return nullptr;
}

const model::Port* Admission::findPort(const model::PortKey& key) const {
  for (const auto& p : intent_.ports)
    if (p.key == key) return &p;
  return nullptr;
}

const model::RemoteEndpoint* Admission::findRemote(const IpAddr& address) const {
  const auto pos = index_->findRemote(address);
  return pos ? &intent_.remotes[*pos] : nullptr;
}

void Admission::beginBatch() {
  log_.undo.clear();
  log_.mutations.clear();
  log_.journal.clear();
  log_.ports.clear();
  log_.remotes.clear();
}

void Admission::touchPort(const model::PortKey& key) {
  if (log_.ports.count(key)) return;
  const auto* p = findPort(key);
  log_.ports.emplace(key, p ? std::optional<model::Port>(*p) : std::nullopt);
}

void Admission::touchRemote(const IpAddr& address) {
  if (log_.remotes.count(address)) return;
  const auto* r = findRemote(address);
  log_.remotes.emplace(address, r ? std::optional<model::RemoteEndpoint>(*r) : std::nullopt);
}

// The primitives: each logs its undo first. The VF pool follows the ports
// (a port's VF is in Port::vf), so undoing a port undoes its VF too.
void Admission::putPort(model::Port port) {
  touchPort(port.key);
  model::Port* existing = mutablePort(port.key);
  Undo u;
  u.kind = Undo::Kind::kPortPut;
  u.key = port.key;
  if (existing) u.port = *existing;
  log_.undo.push_back(std::move(u));
  index_->upsertPort(port);
  log_.journal.push_back(Mutation::portPut(port));
  if (existing) {
    *existing = std::move(port);
  } else {
    intent_.ports.push_back(std::move(port));
  }
}

void Admission::erasePort(const model::PortKey& key) {
  auto it = std::find_if(intent_.ports.begin(), intent_.ports.end(),
                         [&](const auto& p) { return p.key == key; });
  if (it == intent_.ports.end()) return;
  touchPort(key);
  Undo u;
  u.kind = Undo::Kind::kPortErase;
  u.port = *it;
  u.position = static_cast<std::size_t>(it - intent_.ports.begin());
  log_.undo.push_back(std::move(u));
  index_->removePort(key);
  vf_pool_.release(key);
  intent_.ports.erase(it);
  log_.journal.push_back(Mutation::portRemove(key));
}

void Admission::putRemote(model::RemoteEndpoint remote) {
  touchRemote(remote.address);
  Undo u;
  u.kind = Undo::Kind::kRemotePut;
  u.address = remote.address;
  if (const auto pos = index_->findRemote(remote.address)) {
    auto& slot = intent_.remotes[*pos];
    u.remote = slot;
    index_->removeRemote(slot);
    index_->addRemote(remote, *pos);
    slot = std::move(remote);
  } else {
    index_->addRemote(remote, intent_.remotes.size());
    intent_.remotes.push_back(std::move(remote));
  }
  log_.journal.push_back(Mutation::remotePut(intent_.remotes[*index_->findRemote(u.address)]));
  log_.undo.push_back(std::move(u));
}

// Removal swaps the last remote into the hole: O(1), the order of the list
// is not part of the intent.
void Admission::eraseRemote(const IpAddr& address) {
  const auto pos = index_->findRemote(address);
  if (!pos) return;
  touchRemote(address);
  Undo u;
  u.kind = Undo::Kind::kRemoteErase;
  u.position = *pos;
  u.remote = intent_.remotes[*pos];
  log_.undo.push_back(std::move(u));
  index_->removeRemote(intent_.remotes[*pos]);
  if (*pos + 1 != intent_.remotes.size()) {
    intent_.remotes[*pos] = std::move(intent_.remotes.back());
    index_->moveRemote(intent_.remotes[*pos].address, *pos);
  }
  intent_.remotes.pop_back();
  log_.journal.push_back(Mutation::remoteRemove(address));
}

void Admission::rollback(const Marks& to) {
  while (log_.undo.size() > to.undo) {
    Undo u = std::move(log_.undo.back());
    log_.undo.pop_back();
    switch (u.kind) {
      case Undo::Kind::kPortPut: {
        vf_pool_.release(u.key);
        if (u.port) {
          index_->upsertPort(*u.port);
          if (u.port->vf) (void)vf_pool_.assign(u.key, u.port->vf);
          *mutablePort(u.key) = std::move(*u.port);
        } else {
          index_->removePort(u.key);
          intent_.ports.pop_back();  // it was appended: the undo runs in reverse order
        }
        break;
      }
      case Undo::Kind::kPortErase: {
        index_->upsertPort(*u.port);
        if (u.port->vf) (void)vf_pool_.assign(u.port->key, u.port->vf);
        intent_.ports.insert(intent_.ports.begin() + static_cast<std::ptrdiff_t>(u.position),
                             std::move(*u.port));
        break;
      }
      case Undo::Kind::kRemotePut: {
        const auto pos = *index_->findRemote(u.address);
        index_->removeRemote(intent_.remotes[pos]);
        if (u.remote) {
          index_->addRemote(*u.remote, pos);
          intent_.remotes[pos] = std::move(*u.remote);
        } else {
          intent_.remotes.pop_back();  // it was appended
        }
        break;
      }
      case Undo::Kind::kRemoteErase: {
        if (u.position < intent_.remotes.size()) {  // the one swapped in goes back to the end
          intent_.remotes.push_back(std::move(intent_.remotes[u.position]));
          index_->moveRemote(intent_.remotes.back().address, intent_.remotes.size() - 1);
          index_->addRemote(*u.remote, u.position);
          intent_.remotes[u.position] = std::move(*u.remote);
        } else {
          index_->addRemote(*u.remote, intent_.remotes.size());
          intent_.remotes.push_back(std::move(*u.remote));
        }
        break;
      }
    }
  }
  log_.mutations.resize(std::min(log_.mutations.size(), to.mutations));
  log_.journal.resize(std::min(log_.journal.size(), to.journal));
}

Result<json> Admission::portAdd(const json& request) {
  if (auto s = onlyKeys(request, {"port", "brief", "tentative"}); !s) return s.error();
  // brief: the reply's status carries the rule counts, not every rule (what
  // the libvirt hook asks for: it reads the VF, representor and device).
  auto brief = optionalBool(request, "brief", false);
  if (!brief) return brief.error();
  // tentative: a claim that expires (Claims: claims.h) unless confirmed.
  auto tentative = optionalBool(request, "tentative", false);
  if (!tentative) return tentative.error();
  if (!request.contains("port"))
    return requestError(ErrorCode::kMissingField, "port", "", "required field is missing");
  if (const json& p = request["port"]; p.is_object() && p.contains("tentative_until_ms"))
    return requestError(ErrorCode::kUnknownField, "port.tentative_until_ms",
                        echoOf(p["tentative_until_ms"]),
                        "is set by nicoffloadd, not by a request: ask for a tentative port with "
                        "\"tentative\": true");
  auto parsed = model::parsePort(request["port"], "port");
  if (!parsed) return parsed.error();
  model::Port port = std::move(parsed).value();
  const model::Port* existing = findPort(port.key);
  // The VF: the one the port names, else the one it holds, else the lowest
  // free one (vdpa::VfPool). Given back if the port is refused.
  const auto held = vf_pool_.vfOf(port.key);
  // A port whose device the pool can give (its vDPA kind, the pool's MTU,
  // one queue pair) takes a VF that has a ready device.
  auto vf = vf_pool_.assign(port.key, port.vf, seams_.pool_ready(port));
  if (!vf) {
    Error e = vf.error();
    e.field = "port.vf";
    return e;
  }
  auto give_back = [&] {
    vf_pool_.release(port.key);
    if (held) (void)vf_pool_.assign(port.key, held);
  };
  port.vf = *vf;
  // A tentative claim lasts daemon.tentative_ttl_ms; a repeated one renews
  // it; a port.add without "tentative" confirms the port (clears it). A
  // confirmed port stays confirmed: a running VM's port never expires.
  if (*tentative && (!existing || existing->tentative_until_ms))
    port.tentative_until_ms = seams_.claim_clock_ms() + static_cast<std::int64_t>(host_.tentative_ttl_ms);
  const auto claim = port.tentative_until_ms;
  json port_json = model::toJson(port);
  // Unchanged (a hook's confirm at start, a repeated call): nothing to
  // check or plan again; the VF is the one it holds.
  if (existing && model::toJson(*existing) == port_json) {
    json out{{"port", std::move(port_json)}, {"changed", false}};
    if (*brief) out["brief"] = true;
    return out;
  }
  if (auto s = index_->checkPort(port); !s) {
    give_back();
    return s.error();
  }
  if (auto plans = seams_.port_plans(port); !plans) {
    give_back();
    return plans.error();
  }
  note(
      (existing ? "port update " : "port add ") + port.key.str() + " mac " + port.mac.str() +
      " vf " + std::to_string(*port.vf) +
      (claim ? " (tentative for " + std::to_string(host_.tentative_ttl_ms / 1000) + " s)"
             : existing && existing->tentative_until_ms ? " (confirmed)" : ""));
  putPort(std::move(port));
  if (claim) seams_.note_claim(*claim);
  json out{{"port", std::move(port_json)}, {"changed", true}};
  if (*brief) out["brief"] = true;
  return out;
}

Result<json> Admission::portRemove(const json& request) {
  if (auto s = onlyKeys(request, {"vm", "nic"}); !s) return s.error();
  auto key = portKeyOf(request);
  if (!key) return key.error();
  const model::Port* p = findPort(*key);
  if (!p) return json{{"removed", false}, {"port", key->str()}};  // idempotent
  note("port remove " + key->str() +
                       (p->vf ? " (VF " + std::to_string(*p->vf) + " released)" : ""));
  erasePort(*key);
  return json{{"removed", true}, {"port", key->str()}};
}

// IntentIndex::checkRemote against everything but the version `remote`
// replaces (the index is left as it was).
Status Admission::checkRemoteReplacing(const model::RemoteEndpoint& remote, bool learned) {
  const auto pos = index_->findRemote(remote.address);
  if (!pos) return index_->checkRemote(remote, learned);
  const model::RemoteEndpoint& existing = intent_.remotes[*pos];
  index_->removeRemote(existing);
  Status checked = index_->checkRemote(remote, learned);
  index_->addRemote(existing, *pos);
  return checked;
}

Result<json> Admission::remoteAdd(const json& request) {
  if (auto s = onlyKeys(request, {"remote"}); !s) return s.error();
  if (!request.contains("remote"))
    return requestError(ErrorCode::kMissingField, "remote", "", "required field is missing");
  auto r = model::parseRemote(request["remote"], "remote");
  if (!r) return r.error();
  // remote.add speaks for the operator: origin "api". A named origin's set
  // changes through remote.sync only, as a whole.
  if (r->origin != model::RemoteEndpoint::kDefaultRemoteOrigin)
    return requestError(ErrorCode::kConflict, "remote.origin", r->origin,
                        "remote.add adds remotes of origin 'api'; the set of origin '" +
                            r->origin + "' changes through remote.sync");
  const model::RemoteEndpoint* existing = findRemote(r->address);
  if (existing && model::toJson(*existing) == model::toJson(*r) && existing->origin == r->origin)
    return json{{"remote", model::toJson(*r)}, {"changed", false}};
  // Precedence: api and the remote.sync origins hold what they claimed
  // first (never taken over in silence); both win over a learned route,
  // which comes back when they let go.
  if (existing && !existing->learned() && existing->origin != r->origin)
    return requestError(ErrorCode::kConflict, "remote.address", r->address.str(),
                        r->address.str() + " is held by origin '" + existing->origin +
                            "'; a sync of that origin without it releases it");
  if (auto use = seams_.underlay_use(r->address); !use.empty())
    return requestError(ErrorCode::kConflict, "remote.address", r->address.str(),
                        r->address.str() + " is " + use + ", never a remote host address");
  if (auto checked = checkRemoteReplacing(*r); !checked) return checked.error();
  note("remote add " + r->address.str());
  json out{{"remote", model::toJson(*r)}, {"changed", true}};
  if (existing && existing->learned()) out["replaces"] = existing->origin;
  putRemote(std::move(r).value());
  return out;
}

Result<json> Admission::remoteRemove(const json& request) {
  if (auto s = onlyKeys(request, {"address"}); !s) return s.error();
  auto address = requiredString(request, "address", "the remote's IPv4 /32 or IPv6 /128");
  if (!address) return address.error();
  const auto a = IpAddr::parseHost(*address);
  if (!a)
    return requestError(ErrorCode::kInvalidValue, "address", *address,
                        "must be an IPv4 /32 or an IPv6 /128 (e.g. 192.0.2.5 or 2001:db8::5)");
  const model::RemoteEndpoint* existing = findRemote(*a);
  if (!existing) return json{{"removed", false}};
  if (!existing->learned() && existing->origin != model::RemoteEndpoint::kDefaultRemoteOrigin)
    return requestError(ErrorCode::kConflict, "address", a->str(),
                        a->str() + " is held by origin '" + existing->origin +
                            "' (remote.sync); a sync of that origin without it removes it");
  if (existing->learned())
    return requestError(ErrorCode::kConflict, "address", a->str(),
                        a->str() + " was learned from the kernel's routing table (origin " +
                            existing->origin +
                            "); withdraw it in the routing daemon, or add a remote of your own "
                            "that wins over it");
  note("remote remove " + a->str());
  eraseRemote(*a);
  return json{{"removed", true}};
}

// The whole set of remotes of one origin: what the list holds is added or
// updated, what the origin held and the list does not is removed. Malformed
// input refuses the whole sync (nothing applied). An entry that overlaps
// what someone else holds is not applied and is listed in `conflicts`,
// the rest is: an address of another origin (api, another sync: the first
// holder keeps it, so that two controllers never fight over a route in
// silence), a local VM's address, an address the underlay uses. A learned
// route's address is taken over (the origin wins over the kernel; the
// learned route comes back when the origin lets go).
// In three steps, so that a large sync can be admitted over several loop
// turns (bulk.cc): its fields, its remotes (in slices), its removals.
Result<json> Admission::remoteSync(const json& request) {
  auto sync = beginRemoteSync(request);
  if (!sync) return sync.error();
  const Marks mark = marks();
  if (auto s = admitSyncedRemotes(*sync, sync->list->size()); !s) {
    rollback(mark);
    return s.error();
  }
  listGone(*sync);
  removeGone(*sync, sync->gone.size());
  return finishRemoteSync(*sync);
}

Result<Admission::SyncAdmission> Admission::beginRemoteSync(const json& request) const {
  if (auto s = onlyKeys(request, {"origin", "remotes"}); !s) return s.error();
  auto origin = requiredString(request, "origin", "the name of the set, e.g. \"bgp-ctl\"");
  if (!origin) return origin.error();
  if (auto s = model::checkOriginName(*origin, "origin"); !s) return s.error();
  const auto remotes = requiredArray(request, "remotes", "the origin's whole set; [] removes it");
  if (!remotes) return remotes.error();
  SyncAdmission sync;
  sync.origin = std::move(origin).value();
  sync.list = *remotes;
  sync.listed.reserve(sync.list->size());
  return sync;
}

// Admits the listed remotes [sync.next, end); a refusal leaves the caller to
// roll back to its mark.
Status Admission::admitSyncedRemotes(SyncAdmission& sync, std::size_t end) {
  const json* list = sync.list;
  const std::string* origin = &sync.origin;
  auto& [added, updated, unchanged, removed_later] = sync.counts;
  auto& listed = sync.listed;
  auto& taken_over = sync.taken_over;
  const auto conflict = [&](const std::string& path, const IpAddr& address, const std::string& why,
                            const std::string& held_by) {
    ++sync.conflict_count;
    if (sync.conflicts.size() < SyncAdmission::kConflictsListed) {
      json c{{"field", path + ".address"}, {"address", address.str()}, {"reason", why}};
      if (!held_by.empty()) c["held_by"] = held_by;
      sync.conflicts.push_back(std::move(c));
    }
  };
  auto refuse = [](Error e) { return e; };  // the caller rolls back
  for (std::size_t i = sync.next; i < end; ++i, sync.next = i) {
    const std::string path = "remotes[" + std::to_string(i) + "]";
    auto r = model::parseRemote((*list)[i], path);
    if (!r) return refuse(r.error());
    if ((*list)[i].contains("origin") && r->origin != *origin)
      return refuse(
          requestError(ErrorCode::kConflict, path + ".origin", r->origin,
                       "a remote in the sync of origin '" + *origin + "' names another origin"));
    r->origin = *origin;
    if (!listed.insert(r->address).second)
      return refuse(requestError(ErrorCode::kDuplicate, path + ".address", r->address.str(),
                                 r->address.str() + " is listed twice"));
    const model::RemoteEndpoint* existing = findRemote(r->address);
    if (existing && existing->origin != *origin && !existing->learned()) {
      conflict(path, r->address,
               r->address.str() + " is held by origin '" + existing->origin + "'",
               existing->origin);
      continue;
    }
    if (existing && existing->origin == *origin && existing->next_hop == r->next_hop &&
        existing->vtep == r->vtep && existing->vni == r->vni) {
      ++unchanged;
      continue;
    }
    if (auto use = seams_.underlay_use(r->address); !use.empty()) {
      conflict(path, r->address, r->address.str() + " is " + use + ", never a remote /32", "");
      continue;
    }
    if (auto checked = checkRemoteReplacing(*r); !checked) {
      Error e = checked.error();
      if (e.field.rfind("remote", 0) == 0) e.field = path + e.field.substr(6);
      // An overlap (a VM's address, the underlay's): this entry only.
      if (e.code == ErrorCode::kConflict || e.code == ErrorCode::kDuplicate) {
        conflict(path, r->address, e.message, "");
        continue;
      }
      return refuse(e);
    }
    if (existing && existing->learned()) ++taken_over;
    ++(existing ? updated : added);
    putRemote(std::move(r).value());
  }
  return Status::success();
}

void Admission::listGone(SyncAdmission& sync) const {
  const std::string* origin = &sync.origin;
  const auto& listed = sync.listed;
  std::vector<IpAddr>& gone = sync.gone;
  for (const auto& r : intent_.remotes)
    if (r.origin == *origin && !listed.count(r.address)) gone.push_back(r.address);
}

void Admission::removeGone(SyncAdmission& sync, std::size_t end) {
  for (; sync.gone_next < end; ++sync.gone_next) eraseRemote(sync.gone[sync.gone_next]);
}

json Admission::finishRemoteSync(SyncAdmission& sync) {
  const std::string* origin = &sync.origin;
  auto& [added, updated, unchanged, removed] = sync.counts;
  const auto taken_over = sync.taken_over;
  const auto conflict_count = sync.conflict_count;
  json& conflicts = sync.conflicts;
  removed = sync.gone.size();
  if (added || updated || removed)
    note("remote sync " + *origin + ": " + std::to_string(added) + " added, " +
                         std::to_string(updated) + " updated (" + std::to_string(taken_over) +
                         " from the kernel), " + std::to_string(removed) + " removed, " +
                         std::to_string(conflict_count) + " in conflict");
  if (conflict_count)
    spdlog::warn("remote sync {}: {} entries not applied (held elsewhere); first: {}", *origin,
                 conflict_count, conflicts[0]["reason"].get<std::string>());
  return json{{"origin", *origin},
              {"added", added},
              {"updated", updated},
              {"taken_over", taken_over},
              {"removed", removed},
              {"unchanged", unchanged},
              {"conflicts", std::move(conflicts)},
              {"conflict_count", conflict_count},
              {"changed", added + updated + removed > 0}};
}

}  // namespace nicoffload::daemon
