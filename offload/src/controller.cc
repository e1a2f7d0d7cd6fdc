#include "nicoffload/offload/controller.h"

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

#include <algorithm>
#include <future>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_set>

#include "nicoffload/flowrules/render.h"

namespace nicoffload::offload {
namespace {

using nlohmann::json;

Error requestError(ErrorCode code, const std::string& field, const std::string& value,
                   std::string msg) {
  return makeError(code, field, value, std::move(msg));
}

// A request value as an error echoes it, in time and space bounded whatever
// it holds: a string as written (makeError cuts it), a scalar as JSON, an
// array or object by its size only (dumping one would cost its whole size,
// and nested deep enough, the stack).
std::string echoOf(const json& v) {
  if (v.is_string()) return v.get_ref<const std::string&>();
  if (v.is_array()) return "[...] (an array of " + std::to_string(v.size()) + ")";
  if (v.is_object()) return "{...} (an object of " + std::to_string(v.size()) + " keys)";
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The optional boolean `key` of a request: `fallback` when absent, a
// wrong-type error naming the field when it is not a boolean.
Result<bool> optionalBool(const json& request, const char* key, bool fallback) {
  const auto it = request.find(key);
  if (it == request.end()) return fallback;
  if (!it->is_boolean())
    return requestError(ErrorCode::kWrongType, key, echoOf(*it),
                        std::string("must be true or false, got ") + it->type_name());
  return it->get<bool>();
}

// The required string `key` of a request: missing-field or wrong-type errors
// name the field; `what` says what the string is.
Result<std::string> requiredString(const json& request, const char* key, const std::string& what) {
  const auto it = request.find(key);
  if (it == request.end())
    return requestError(ErrorCode::kMissingField, key, "",
                        "required field is missing (" + what + ")");
  if (!it->is_string())
    return requestError(ErrorCode::kWrongType, key, echoOf(*it),
                        "must be a string (" + what + "), got " + std::string(it->type_name()));
  return it->get<std::string>();
}

// Refuses request keys the op does not know (typos must not pass silently).
Status onlyKeys(const json& request, std::initializer_list<const char*> keys) {
  for (auto it = request.begin(); it != request.end(); ++it) {
    if (it.key() == "op") continue;
    if (std::none_of(keys.begin(), keys.end(), [&](const char* k) { return it.key() == k; })) {
      std::string known;
      for (const char* k : keys) known += (known.empty() ? "" : ", ") + std::string(k);
      return requestError(ErrorCode::kUnknownField, it.key(), it.key(),
                          "unknown field '" + it.key() + "' for op '" +
                              request["op"].get<std::string>() +
                              "' (known: " + (known.empty() ? "none" : known) + ")");
    }
  }
  return Status::success();
}

// Pagination of a large read: "offset" and "limit" (both optional; with
// neither, the whole list as an array, as before pages existed).
struct Page {
  std::size_t offset = 0;
  std::size_t limit = SIZE_MAX;
  bool paged = false;
};
inline constexpr std::size_t kMaxPageSize = 100000;

Result<Page> pageOf(const json& request) {
  Page page;
  for (const auto& [key, max] : {std::pair{"offset", std::size_t{UINT32_MAX}},
                                 std::pair{"limit", kMaxPageSize}}) {
    const auto it = request.find(key);
    if (it == request.end()) continue;
    page.paged = true;
    const bool limit = std::string_view(key) == "limit";
    if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<std::int64_t>() >= 0))
      return requestError(ErrorCode::kWrongType, key, echoOf(*it),
                          "must be an integer 0.." + std::to_string(max));
    const auto v = it->get<std::uint64_t>();
    if (v > max || (limit && v == 0))
      return requestError(ErrorCode::kInvalidValue, key, echoOf(*it),
                          std::string("must be ") + (limit ? "1" : "0") + ".." +
                              std::to_string(max));
    (limit ? page.limit : page.offset) = static_cast<std::size_t>(v);
  }
  if (page.paged && page.limit == SIZE_MAX) page.limit = 1000;
  return page;
}

Result<model::PortKey> portKeyOf(const json& request) {
  const json* vm = request.contains("vm") ? &request["vm"] : nullptr;
  const json* nic = request.contains("nic") ? &request["nic"] : nullptr;
  if (!vm)
    return requestError(ErrorCode::kMissingField, "vm", "",
                        "required field is missing (the VM UUID)");
  if (!vm->is_string())
    return requestError(ErrorCode::kWrongType, "vm", echoOf(*vm), "must be a string");
  if (!nic)
    return requestError(ErrorCode::kMissingField, "nic", "",
                        "required field is missing (the NIC index)");
  if (!nic->is_number_integer())
    return requestError(ErrorCode::kWrongType, "nic", echoOf(*nic), "must be an integer 0..65535");
  if (nic->is_number_unsigned()
          ? nic->get<std::uint64_t>() > 65535
          : (nic->get<std::int64_t>() < 0 || nic->get<std::int64_t>() > 65535))
    return requestError(ErrorCode::kInvalidValue, "nic", echoOf(*nic), "must be 0..65535");
  const auto n = nic->get<std::int64_t>();
  model::PortKey key{vm->get<std::string>(), static_cast<std::uint16_t>(n)};
  std::transform(key.vm.begin(), key.vm.end(), key.vm.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return key;
}

std::string ruleId(const flowrules::FlowRule& r) { return flowrules::formatRuleId(r.cls, r.id); }

// Changes in one batch beyond which its transient memory is given back.
constexpr std::size_t kLargeBatch = 1000;

}  // namespace

Controller::Controller(model::HostConfig host, model::HwProfile profile, Backends backends,
                       StateStore store, ControllerOptions options)
    : host_(std::move(host)),
      profile_(std::move(profile)),
      backends_(std::move(backends)),
      store_(std::move(store)),
      options_(std::move(options)),
      vf_pool_(host_.uplink_pci, host_.vf_count) {
  applier_ = std::make_unique<flowrules::HwApplier>(std::move(backends_.flow));
  planner_ = std::make_unique<flowrules::OwnerPlanner>(host_, profile_);
  intent_.host = host_;
  started_ = options_.now();
  next_full_ = started_ + options_.reconcile_interval;
}

Result<std::unique_ptr<Controller>> Controller::start(model::HostConfig host,
                                                      model::HwProfile profile, Backends backends,
                                                      StateStore store, ControllerOptions options) {
  if (!backends.flow)
    return makeError(ErrorCode::kInternal, "backends.flow", "", "a flow backend is required");
  std::unique_ptr<Controller> c(new Controller(std::move(host), std::move(profile),
                                               std::move(backends), std::move(store),
                                               std::move(options)));
  auto state = c->store_.load();
  if (!state) return state.error();
  c->intent_.ports = std::move(state->ports);
  c->intent_.remotes = std::move(state->remotes);
  if (auto s = model::validateIntent(c->intent_); !s) {
    Error e = s.error();
    e.field = c->store_.path() + ": " + e.field;
    return e;
  }
  c->index_ = std::make_unique<model::IntentIndex>(c->intent_);
  if (c->host_.underlay == model::UnderlayMode::kVxlan) {
    for (const auto& p : c->intent_.ports) {
      ++c->port_vni_refs_[c->planner_->vniOf(p)];
      ++c->vni_refs_[c->planner_->vniOf(p)];
    }
    for (const auto& r : c->intent_.remotes) {
      const auto vni = c->planner_->vniOf(r);
      ++c->vni_refs_[vni];
      ++c->vtep_refs_[(std::uint64_t{vni} << 32) | r.vtep->value];
    }
  }
  // The ports carry their VFs; the pool is rebuilt from them (the copy in
  // the state file is for operators and tools).
  if (auto synced = c->vf_pool_.sync(c->intent_.ports); !synced) {
    Error e = synced.error();
    e.field = c->store_.path() + ": " + e.field;
    return e;
  }
  const auto loaded = c->store_.stats();
  spdlog::info("state loaded from {}: {} ports, {} remotes ({} changes replayed from the journal{})",
               c->store_.path(), c->intent_.ports.size(), c->intent_.remotes.size(),
               loaded.replayed_records,
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
        if (vf.mac && !vf.mac->isZero()) c->vf_macs_[vf.index] = *vf.mac;
  }
  if (c->backends_.vdpa) {
    if (auto held = c->backends_.vdpa->list())
      for (auto& d : *held)
        if (d.name.rfind("nfo", 0) == 0) c->vdpa_devices_[d.name] = d;
  }
  // What the devices already hold (a restart): adopt it, so that nothing is
  // installed twice and nothing unchanged is touched.
  const auto adopted = c->applier_->adoptInstalled();
  if (adopted.adopted || adopted.destroyed)
    spdlog::info("flow backend: adopted {} rules the device already held, removed {} stale ones",
                 adopted.adopted, adopted.destroyed);
  // Just adopted from the device: no need to ask it again rule by rule.
  const auto pass = c->reconcile(false);
  c->scheduleRetry(pass.failures > 0);
  return c;
}

// The batch's changes, appended to the journal with one fdatasync (the
// batch is the group that shares it); a snapshot is written in the
// background once the journal has grown enough.
Status Controller::persist() {
  auto st = store_.append(journal_);
  if (!st) {
    ++counters_.state_save_failures;
    spdlog::error("state: {}", st.error().describe());
    return st;
  }
  ++counters_.state_saves;
  if (store_.compactionDue()) compactState();
  return st;
}

void Controller::compactState() {
  PersistedState s;
  s.ports = intent_.ports;
  s.remotes = intent_.remotes;
  s.extra["vf_pool"] = vf_pool_.toJson();
  store_.compactInBackground(std::move(s));
}

// --- admission ---

model::Port* Controller::findPort(const model::PortKey& key) {
  for (auto& p : intent_.ports)
    if (p.key == key) return &p;
  return nullptr;
}

const model::Port* Controller::findPort(const model::PortKey& key) const {
  for (const auto& p : intent_.ports)
    if (p.key == key) return &p;
  return nullptr;
}

const model::RemoteEndpoint* Controller::findRemote(Ipv4Addr address) const {
  const auto pos = index_->findRemote(address);
  return pos ? &intent_.remotes[*pos] : nullptr;
}

void Controller::touchPort(const model::PortKey& key) {
  if (touched_ports_.count(key)) return;
  const auto* p = findPort(key);
  touched_ports_.emplace(key, p ? std::optional<model::Port>(*p) : std::nullopt);
}

void Controller::touchRemote(Ipv4Addr address) {
  if (touched_remotes_.count(address)) return;
  const auto* r = findRemote(address);
  touched_remotes_.emplace(address,
                           r ? std::optional<model::RemoteEndpoint>(*r) : std::nullopt);
}

// The primitives: each logs its undo first. The VF pool follows the ports
// (a port's VF is in Port::vf), so undoing a port undoes its VF too.
void Controller::putPort(model::Port port) {
  touchPort(port.key);
  model::Port* existing = findPort(port.key);
  Undo u;
  u.kind = Undo::Kind::kPortPut;
  u.key = port.key;
  if (existing) u.port = *existing;
  undo_.push_back(std::move(u));
  index_->upsertPort(port);
  journal_.push_back(Mutation::portPut(port));
  if (existing) {
    *existing = std::move(port);
  } else {
    intent_.ports.push_back(std::move(port));
  }
}

void Controller::erasePort(const model::PortKey& key) {
  auto it = std::find_if(intent_.ports.begin(), intent_.ports.end(),
                         [&](const auto& p) { return p.key == key; });
  if (it == intent_.ports.end()) return;
  touchPort(key);
  Undo u;
  u.kind = Undo::Kind::kPortErase;
  u.port = *it;
  u.position = static_cast<std::size_t>(it - intent_.ports.begin());
  undo_.push_back(std::move(u));
  index_->removePort(key);
  vf_pool_.release(key);
  intent_.ports.erase(it);
  journal_.push_back(Mutation::portRemove(key));
}

void Controller::putRemote(model::RemoteEndpoint remote) {
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
  journal_.push_back(Mutation::remotePut(intent_.remotes[*index_->findRemote(u.address)]));
  undo_.push_back(std::move(u));
}

// Removal swaps the last remote into the hole: O(1), the order of the list
// is not part of the intent.
void Controller::eraseRemote(Ipv4Addr address) {
  const auto pos = index_->findRemote(address);
  if (!pos) return;
  touchRemote(address);
  Undo u;
  u.kind = Undo::Kind::kRemoteErase;
  u.position = *pos;
  u.remote = intent_.remotes[*pos];
  undo_.push_back(std::move(u));
  index_->removeRemote(intent_.remotes[*pos]);
  if (*pos + 1 != intent_.remotes.size()) {
    intent_.remotes[*pos] = std::move(intent_.remotes.back());
    index_->moveRemote(intent_.remotes[*pos].address, *pos);
  }
  intent_.remotes.pop_back();
  journal_.push_back(Mutation::remoteRemove(address));
}

void Controller::rollback(const Marks& to) {
  while (undo_.size() > to.undo) {
    Undo u = std::move(undo_.back());
    undo_.pop_back();
    switch (u.kind) {
      case Undo::Kind::kPortPut: {
        vf_pool_.release(u.key);
        if (u.port) {
          index_->upsertPort(*u.port);
          if (u.port->vf) (void)vf_pool_.assign(u.key, u.port->vf);
          *findPort(u.key) = std::move(*u.port);
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
  mutations_.resize(std::min(mutations_.size(), to.mutations));
  journal_.resize(std::min(journal_.size(), to.journal));
}

Result<json> Controller::admit(const json& request) {
  const std::string& op = request["op"].get_ref<const std::string&>();
  if (op == "port.add") return admitPortAdd(request);
  if (op == "port.remove") return admitPortRemove(request);
  if (op == "remote.add") return admitRemoteAdd(request);
  if (op == "remote.remove") return admitRemoteRemove(request);
  if (op == "remote.sync") return admitRemoteSync(request);
  if (op == "batch") return admitBatch(request);
  return makeError(ErrorCode::kInternal, "op", op, "not a mutation");
}

Result<json> Controller::admitPortAdd(const json& request) {
  if (auto s = onlyKeys(request, {"port"}); !s) return s.error();
  if (!request.contains("port"))
    return requestError(ErrorCode::kMissingField, "port", "", "required field is missing");
  auto parsed = model::parsePort(request["port"], "port");
  if (!parsed) return parsed.error();
  model::Port port = std::move(parsed).value();
  const model::Port* existing = findPort(port.key);
  // The VF: the one the port names, else the one it holds, else the lowest
  // free one (vdpa::VfPool). Given back if the port is refused.
  const auto held = vf_pool_.vfOf(port.key);
  auto vf = vf_pool_.assign(port.key, port.vf);
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
  if (auto s = index_->checkPort(port); !s) {
    give_back();
    return s.error();
  }
  if (auto rules = planner_->portRules(port); !rules) {
    give_back();
    return rules.error();
  }
  json port_json = model::toJson(port);
  if (existing && model::toJson(*existing) == port_json)
    return json{{"port", std::move(port_json)}, {"changed", false}};
  mutations_.push_back((existing ? "port update " : "port add ") + port.key.str() + " mac " +
                       port.mac.str() + " vf " + std::to_string(*port.vf));
  putPort(std::move(port));
  return json{{"port", std::move(port_json)}, {"changed", true}};
}

Result<json> Controller::admitPortRemove(const json& request) {
  if (auto s = onlyKeys(request, {"vm", "nic"}); !s) return s.error();
  auto key = portKeyOf(request);
  if (!key) return key.error();
  const model::Port* p = findPort(*key);
  if (!p) return json{{"removed", false}, {"port", key->str()}};  // idempotent
  mutations_.push_back("port remove " + key->str() +
                       (p->vf ? " (VF " + std::to_string(*p->vf) + " released)" : ""));
  erasePort(*key);
  return json{{"removed", true}, {"port", key->str()}};
}

Result<json> Controller::admitRemoteAdd(const json& request) {
  if (auto s = onlyKeys(request, {"remote"}); !s) return s.error();
  if (!request.contains("remote"))
    return requestError(ErrorCode::kMissingField, "remote", "", "required field is missing");
  auto r = model::parseRemote(request["remote"], "remote");
  if (!r) return r.error();
  const model::RemoteEndpoint* existing = findRemote(r->address);
  if (existing && model::toJson(*existing) == model::toJson(*r))
    return json{{"remote", model::toJson(*r)}, {"changed", false}};
  // Checked against everything but the version it replaces.
  const auto pos = index_->findRemote(r->address);
  if (pos) index_->removeRemote(*existing);
  const Status checked = index_->checkRemote(*r);
  if (pos) index_->addRemote(*existing, *pos);
  if (!checked) return checked.error();
  mutations_.push_back("remote add " + r->address.str());
  json out{{"remote", model::toJson(*r)}, {"changed", true}};
  putRemote(std::move(r).value());
  return out;
}

Result<json> Controller::admitRemoteRemove(const json& request) {
  if (auto s = onlyKeys(request, {"address"}); !s) return s.error();
  auto address = requiredString(request, "address", "the remote's IPv4 /32");
  if (!address) return address.error();
  auto p = Ipv4Prefix::parse(*address);
  if (!p || p->len != 32)
    return requestError(ErrorCode::kInvalidValue, "address", *address, "must be an IPv4 /32");
  if (!findRemote(p->addr)) return json{{"removed", false}};
  mutations_.push_back("remote remove " + p->addr.str());
  eraseRemote(p->addr);
  return json{{"removed", true}};
}

// The whole set of remotes of one origin: what the list holds is added or
// updated, what the origin held and the list does not is removed. All or
// nothing; an address another origin holds is refused (remove it there
// first), so that two controllers never fight over a route in silence.
Result<json> Controller::admitRemoteSync(const json& request) {
  if (auto s = onlyKeys(request, {"origin", "remotes"}); !s) return s.error();
  auto origin = requiredString(request, "origin", "the name of the set, e.g. \"bgp-ctl\"");
  if (!origin) return origin.error();
  if (auto s = model::checkOriginName(*origin, "origin"); !s) return s.error();
  const auto list = request.find("remotes");
  if (list == request.end())
    return requestError(ErrorCode::kMissingField, "remotes", "",
                        "required field is missing (the origin's whole set; [] removes it)");
  if (!list->is_array())
    return requestError(ErrorCode::kWrongType, "remotes", echoOf(*list),
                        std::string("must be an array of remotes, got ") + list->type_name());
  std::size_t added = 0, updated = 0, unchanged = 0, removed = 0;
  std::unordered_set<Ipv4Addr> listed;
  listed.reserve(list->size());
  const Marks mark = marks();
  auto refuse = [&](Error e) {
    rollback(mark);
    return e;
  };
  for (std::size_t i = 0; i < list->size(); ++i) {
    const std::string path = "remotes[" + std::to_string(i) + "]";
    auto r = model::parseRemote((*list)[i], path);
    if (!r) return refuse(r.error());
    if ((*list)[i].contains("origin") && r->origin != *origin)
      return refuse(requestError(ErrorCode::kConflict, path + ".origin", r->origin,
                                 "a remote in the sync of origin '" + *origin +
                                     "' names another origin"));
    r->origin = *origin;
    if (!listed.insert(r->address).second)
      return refuse(requestError(ErrorCode::kDuplicate, path + ".address", r->address.str(),
                                 r->address.str() + " is listed twice"));
    const model::RemoteEndpoint* existing = findRemote(r->address);
    if (existing && existing->origin != *origin)
      return refuse(requestError(
          ErrorCode::kConflict, path + ".address", r->address.str(),
          r->address.str() + " is held by origin '" + existing->origin +
              "'; remove it there first (remote.remove, or a sync of that origin without it)"));
    if (existing && existing->next_hop == r->next_hop && existing->vtep == r->vtep &&
        existing->vni == r->vni) {
      ++unchanged;
      continue;
    }
    const auto pos = index_->findRemote(r->address);
    if (pos) index_->removeRemote(*existing);
    Status checked = index_->checkRemote(*r);
    if (pos) index_->addRemote(*existing, *pos);
    if (!checked) {
      Error e = checked.error();
      if (e.field.rfind("remote", 0) == 0) e.field = path + e.field.substr(6);
      return refuse(e);
    }
    ++(existing ? updated : added);
    putRemote(std::move(r).value());
  }
  std::vector<Ipv4Addr> gone;
  for (const auto& r : intent_.remotes)
    if (r.origin == *origin && !listed.count(r.address)) gone.push_back(r.address);
  for (const auto a : gone) eraseRemote(a);
  removed = gone.size();
  if (added || updated || removed)
    mutations_.push_back("remote sync " + *origin + ": " + std::to_string(added) + " added, " +
                         std::to_string(updated) + " updated, " + std::to_string(removed) +
                         " removed");
  return json{{"origin", *origin},     {"added", added},
              {"updated", updated},    {"removed", removed},
              {"unchanged", unchanged}, {"changed", added + updated + removed > 0}};
}

// Several mutations in one request, all or nothing: the first refusal
// undoes the ones before it and names its position.
Result<json> Controller::admitBatch(const json& request) {
  if (auto s = onlyKeys(request, {"ops"}); !s) return s.error();
  const auto ops = request.find("ops");
  if (ops == request.end())
    return requestError(ErrorCode::kMissingField, "ops", "",
                        "required field is missing (an array of mutation requests)");
  if (!ops->is_array())
    return requestError(ErrorCode::kWrongType, "ops", echoOf(*ops),
                        std::string("must be an array of requests, got ") + ops->type_name());
  const Marks mark = marks();
  json results = json::array();
  for (std::size_t i = 0; i < ops->size(); ++i) {
    const json& op = (*ops)[i];
    const std::string path = "ops[" + std::to_string(i) + "]";
    const auto name = op.is_object() ? op.find("op") : op.end();
    static const std::set<std::string> kAllowed = {"port.add", "port.remove", "remote.add",
                                                   "remote.remove", "remote.sync"};
    if (name == op.end() || !name->is_string() ||
        !kAllowed.count(name->get_ref<const std::string&>())) {
      rollback(mark);
      return requestError(ErrorCode::kInvalidValue, path + ".op",
                          name != op.end() ? echoOf(*name) : "",
                          "each op of a batch is a mutation: port.add, port.remove, remote.add, "
                          "remote.remove or remote.sync");
    }
    auto r = admit(op);
    if (!r) {
      rollback(mark);
      Error e = r.error();
      e.field = path + "." + e.field;
      e.message = path + " (" + name->get<std::string>() + "): " + e.message +
                  "; nothing of the batch was applied";
      return e;
    }
    results.push_back(std::move(r).value());
  }
  return json{{"results", std::move(results)}};
}

// --- requests ---

std::vector<json> Controller::handle(const std::vector<control::Request>& batch) {
  // The request boundary: whatever throws below (a bug, a library, a
  // backend) becomes an internal error reply for each request it left
  // unanswered; the daemon carries on.
  std::vector<json> replies(batch.size());
  try {
    handleBatch(batch, replies);
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

bool Controller::isMutation(const json& request) {
  const auto op = request.is_object() ? request.find("op") : request.end();
  if (op == request.end() || !op->is_string()) return false;
  const auto& name = op->get_ref<const std::string&>();
  return name == "port.add" || name == "port.remove" || name == "remote.add" ||
         name == "remote.remove" || name == "remote.sync" || name == "batch";
}

void Controller::answerReads(const std::vector<control::Request>& batch,
                             std::vector<json>& replies) {
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!replies[i].is_null()) continue;
    try {
      Error error;
      json result = read(batch[i].body, error);
      replies[i] =
          result.is_null() ? control::errorReply(error) : control::okReply(std::move(result));
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
  scheduleRetry(true);
  return control::errorReply(e);
}

std::string Controller::describeCurrentException() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception of unknown type";
  }
}

void Controller::handleBatch(const std::vector<control::Request>& batch,
                             std::vector<json>& replies) {
  using Micros = std::chrono::duration<double, std::micro>;
  const auto t_start = SteadyClock::now();
  auto t_persisted = t_start, t_reconciled = t_start;
  undo_.clear();
  mutations_.clear();
  journal_.clear();
  touched_ports_.clear();
  touched_remotes_.clear();

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
    const Marks mark = marks();
    Result<json> result = json();
    try {
      result = admit(req);
    } catch (...) {
      rollback(mark);
      replies[i] = internalErrorReply(req, describeCurrentException());
      continue;
    }
    if (!result) {
      rollback(mark);
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
  const bool changed = !undo_.empty();
  if (changed) {
    Status st = Status::success();
    try {
      st = persist();
    } catch (...) {
      rollback({});  // nothing reached the disk: the intent stays as it was
      throw;
    }
    t_persisted = t_reconciled = SteadyClock::now();
    if (!st) {
      rollback({});
      for (auto i : accepted) replies[i] = control::errorReply(st.error());
      accepted.clear();
    } else {
      for (const auto& c : mutations_) spdlog::info("{}", c);
      const auto pass = reconcileTouched();
      scheduleRetry(pass.failures > 0);
      t_reconciled = SteadyClock::now();
    }
  }
  undo_.clear();
  // A large batch (a remote.sync of 100 k) leaves megabytes of parsed
  // requests and plans freed: give them back to the system, so that the
  // process's size follows what it holds.
  if (journal_.size() >= kLargeBatch) ::malloc_trim(0);
  for (std::size_t k = 0; k < accepted.size(); ++k) {
    json result = std::move(accepted_results[k]);
    if (result.contains("port") && result["port"].is_object()) {
      auto key = portKeyOf(result["port"]);
      if (key)
        if (const auto* p = findPort(*key)) result["status"] = portJson(*p);
    }
    replies[accepted[k]] = control::okReply(std::move(result));
  }
  answerReads(batch, replies);
  if (spdlog::should_log(spdlog::level::debug))
    spdlog::debug(
        "batch of {} requests ({} changes): admit {:.0f} us, persist {:.0f} us, reconcile {:.0f} "
        "us, replies {:.0f} us",
        batch.size(), mutations_.size(), Micros(t_admitted - t_start).count(),
        changed ? Micros(t_persisted - t_admitted).count() : 0.0,
        changed ? Micros(t_reconciled - t_persisted).count() : 0.0,
        Micros(SteadyClock::now() - (changed ? t_reconciled : t_admitted)).count());
}

json Controller::portJson(const model::Port& port, bool rule_list) const {
  // The port's rules re-planned (cheap: a handful), joined with the device.
  json rules = json::array();
  std::size_t hw = 0, sw = 0, errors = 0;
  if (auto planned = flowrules::planPortRules(host_, profile_, port)) {
    for (const auto& r : *planned) {
      const auto* applied = applier_->find(r.id);
      const auto placement = applied ? applied->placement : r.placement;
      (placement == flowrules::Placement::kHw ? hw : sw) += 1;
      if (applied && applied->device_error) ++errors;
      if (!rule_list) continue;
      rules.push_back({{"id", ruleId(r)},
                       {"class", flowrules::toString(r.cls)},
                       {"placement", flowrules::toString(placement)},
                       {"reason", applied ? flowrules::describeApplied(*applied, profile_)
                                          : flowrules::describeReason(r.reason, profile_)}});
    }
  }
  json sw_objects = json::array();
  std::size_t sw_failed = 0;
  const std::string rep = port.representorName();
  for (const auto& [object, error] : sw_failures_) {
    if (object.find(" " + rep) == std::string::npos &&
        object.find("/" + rep + "/") == std::string::npos)
      continue;
    ++sw_failed;
    sw_objects.push_back({{"object", object}, {"error", control::errorJson(error)}});
  }
  json devices = json::object();
  const std::string vdpa_name = vdpa::deviceName(port.key);
  if (auto it = vdpa_devices_.find(vdpa_name); it != vdpa_devices_.end())
    devices["vdpa"] = {{"name", vdpa_name},
                       {"path", it->second.vhost_vdpa_path.empty() ? it->second.socket_path
                                                                   : it->second.vhost_vdpa_path}};
  for (const auto& what :
       {"vdpa " + vdpa_name, port.vf ? "vf " + std::to_string(*port.vf) : std::string()}) {
    if (auto it = device_failures_.find(what); !what.empty() && it != device_failures_.end()) {
      ++sw_failed;
      sw_objects.push_back({{"object", what}, {"error", control::errorJson(it->second)}});
    }
  }
  const bool degraded = sw_failed > 0;
  return {{"port", model::toJson(port)},
          {"state", degraded ? "degraded" : "installed"},
          {"devices", devices},
          {"rules", rule_list
                        ? json{{"hw", hw}, {"sw", sw}, {"device_refusals", errors}, {"list", rules}}
                        : json{{"hw", hw}, {"sw", sw}, {"device_refusals", errors}}},
          {"software_path_failures", sw_objects}};
}

std::vector<std::uint32_t> Controller::portVnis() const {
  std::vector<std::uint32_t> out;
  for (const auto& [vni, n] : port_vni_refs_) out.push_back(vni);
  return out;
}

std::size_t Controller::plannedRuleCount() const {
  std::size_t n = planner_->hostRules(portVnis()).size() + intent_.remotes.size();
  for (const auto& p : intent_.ports)
    if (auto r = planner_->portRules(p)) n += r->size();
  return n;
}

std::vector<flowrules::FlowRule> Controller::plannedRules(std::size_t offset,
                                                          std::size_t limit) const {
  std::vector<flowrules::FlowRule> out;
  auto take = [&](std::vector<flowrules::FlowRule>& rules) {
    for (auto& r : rules) {
      if (out.size() >= limit) return;
      if (offset > 0) {
        --offset;
        continue;
      }
      out.push_back(std::move(r));
    }
  };
  for (const auto& p : intent_.ports) {
    if (out.size() >= limit) return out;
    if (auto r = planner_->portRules(p)) {
      if (offset >= r->size()) {
        offset -= r->size();
        continue;
      }
      take(*r);
    }
  }
  auto host = planner_->hostRules(portVnis());
  take(host);
  if (offset >= intent_.remotes.size()) return out;
  for (std::size_t i = offset; i < intent_.remotes.size() && out.size() < limit; ++i)
    out.push_back(planner_->remoteRule(intent_.remotes[i]));
  return out;
}

std::optional<flowrules::FlowRule> Controller::plannedRule(flowrules::RuleId id) const {
  const auto* applied = applier_->find(id);
  if (!applied) return std::nullopt;
  const auto owner = applied->rule.owner;
  for (const auto& p : intent_.ports)
    if (flowrules::portOwner(p.key) == owner)
      if (auto rules = planner_->portRules(p))
        for (auto& r : *rules)
          if (r.id == id) return std::move(r);
  for (auto& r : planner_->hostRules(portVnis()))
    if (r.id == id) return std::move(r);
  for (const auto& remote : intent_.remotes)
    if (flowrules::remoteOwner(remote.address) == owner) {
      auto r = planner_->remoteRule(remote);
      if (r.id == id) return r;
    }
  return std::nullopt;
}

namespace {

// The process's memory: resident set (/proc/self/statm) and the heap in
// use (glibc's mallinfo2: the controller's own state, the simulated
// devices' when they run in-process).
json memoryJson() {
  json out = json::object();
  std::FILE* f = std::fopen("/proc/self/statm", "re");
  if (f) {
    unsigned long size = 0, resident = 0;
    if (std::fscanf(f, "%lu %lu", &size, &resident) == 2)
      out["rss_bytes"] = static_cast<std::uint64_t>(resident) *
                         static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    std::fclose(f);
  }
  const struct mallinfo2 mi = ::mallinfo2();
  out["heap_bytes"] = static_cast<std::uint64_t>(mi.uordblks + mi.hblkhd);
  return out;
}

}  // namespace

json Controller::statusJson() const {
  const auto& c = applier_->counters();
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(options_.now() - started_).count();
  std::size_t degraded = 0;
  for (const auto& p : intent_.ports)
    if (portJson(p, false)["state"] == "degraded") ++degraded;
  return {{"host", host_.name},
          {"profile", profile_.name},
          {"underlay", model::toString(host_.underlay)},
          {"backends",
           {{"flow", applier_->backend().capabilities().backend},
            {"software_path", backends_.software_path ? "kernel" : "none"}}},
          {"ports", intent_.ports.size()},
          {"ports_degraded", degraded},
          {"remotes", intent_.remotes.size()},
          {"vfs",
           {{"pf", vf_pool_.pfPci()},
            {"assigned", vf_pool_.assignedCount()},
            {"free", vf_pool_.freeCount()}}},
          {"rules", {{"hw", c.hw}, {"sw", c.sw}, {"refused", c.refused()}}},
          {"software_path", {{"objects", sw_objects_}, {"failed", sw_failures_.size()}}},
          {"last_pass", last_pass_summary_},
          {"full_pass_running", full_pass_ != nullptr},
          {"memory", memoryJson()},
          {"uptime_s", uptime},
          {"state_file", store_.path()},
          {"state_journal",
           {{"bytes", store_.stats().journal_bytes},
            {"compactions", store_.stats().compactions},
            {"compaction_failures", store_.stats().compaction_failures},
            {"last_compaction_ms", store_.stats().last_compaction_ms}}}};
}

json Controller::read(const json& req, Error& error) {
  const std::string op = req["op"].get<std::string>();
  auto fail = [&](Error e) {
    error = std::move(e);
    return json();
  };
  if (op == "status") {
    if (auto s = onlyKeys(req, {}); !s) return fail(s.error());
    return statusJson();
  }
  if (op == "port.get") {
    if (auto s = onlyKeys(req, {"vm", "nic"}); !s) return fail(s.error());
    auto key = portKeyOf(req);
    if (!key) return fail(key.error());
    const auto* p = findPort(*key);
    if (!p)
      return fail(requestError(ErrorCode::kNotFound, "port", key->str(), "no port " + key->str()));
    return portJson(*p);
  }
  if (op == "port.list") {
    // Optional "vm": only that domain's ports (the hook's release path).
    if (auto s = onlyKeys(req, {"vm"}); !s) return fail(s.error());
    std::optional<std::string> vm;
    if (req.contains("vm")) {
      auto uuid = requiredString(req, "vm", "a domain UUID");
      if (!uuid) return fail(uuid.error());
      vm = std::move(uuid).value();
    }
    json out = json::array();
    for (const auto& p : intent_.ports)
      if (!vm || p.key.vm == *vm) out.push_back(portJson(p, false));
    return out;
  }
  if (op == "remote.list") {
    if (auto s = onlyKeys(req, {"offset", "limit", "origin"}); !s) return fail(s.error());
    auto page = pageOf(req);
    if (!page) return fail(page.error());
    std::optional<std::string> origin;
    if (req.contains("origin")) {
      auto o = requiredString(req, "origin", "an origin name");
      if (!o) return fail(o.error());
      origin = std::move(o).value();
    }
    json list = json::array();
    std::size_t skipped = 0, i = 0;
    for (; i < intent_.remotes.size() && list.size() < page->limit; ++i) {
      const auto& r = intent_.remotes[i];
      if (origin && r.origin != *origin) continue;
      if (skipped < page->offset) {
        ++skipped;
        continue;
      }
      json j = model::toJson(r);
      j["origin"] = r.origin;
      list.push_back(std::move(j));
    }
    if (!page->paged) return list;
    const bool more = origin ? i < intent_.remotes.size() : page->offset + list.size() < intent_.remotes.size();
    return {{"remotes", std::move(list)},
            {"next", more ? json(page->offset + list.size()) : json()},
            {"total", origin ? json() : json(intent_.remotes.size())}};
  }
  if (op == "rules") {
    if (auto s = onlyKeys(req, {"testpmd", "offset", "limit"}); !s) return fail(s.error());
    const auto testpmd = optionalBool(req, "testpmd", false);
    if (!testpmd) return fail(testpmd.error());
    auto page = pageOf(req);
    if (!page) return fail(page.error());
    const auto ports = flowrules::PortNumbering::fromHost(host_);
    json list = json::array();
    for (const auto& planned : plannedRules(page->offset, page->limit)) {
      const auto* a = applier_->find(planned.id);
      const auto r = a ? a->effective(planned) : planned;
      json j = flowrules::toJson(r, profile_);
      if (a) j["reason"] = flowrules::describeApplied(*a, profile_);
      if (*testpmd) j["testpmd"] = flowrules::renderTestpmd(r, ports);
      list.push_back(std::move(j));
    }
    if (!page->paged) return list;
    const std::size_t total = plannedRuleCount();
    const std::size_t next = page->offset + list.size();
    return {{"rules", std::move(list)},
            {"next", next < total ? json(next) : json()},
            {"total", total}};
  }
  if (op == "explain") {
    if (auto s = onlyKeys(req, {"rule"}); !s) return fail(s.error());
    auto rule = requiredString(req, "rule", "a rule id");
    if (!rule) return fail(rule.error());
    const std::string text = std::move(rule).value();
    auto id = flowrules::parseRuleId(text);
    if (!id)
      return fail(
          requestError(ErrorCode::kInvalidValue, "rule", text, "'" + text + "' is not a rule id"));
    const auto* a = applier_->find(*id);
    if (!a) return fail(requestError(ErrorCode::kNotFound, "rule", text, "no rule " + text));
    const auto planned = plannedRule(*id);
    if (!planned) return fail(requestError(ErrorCode::kNotFound, "rule", text, "no rule " + text));
    const auto eff = a->effective(*planned);
    return {{"rule", flowrules::toJson(eff, profile_)},
            {"explanation", flowrules::explainRule(eff, profile_)},
            {"reason", flowrules::describeApplied(*a, profile_)},
            {"testpmd", flowrules::renderTestpmd(eff, flowrules::PortNumbering::fromHost(host_))}};
  }
  if (op == "counters") {
    if (auto s = onlyKeys(req, {}); !s) return fail(s.error());
    const auto& c = applier_->counters();
    json by_reason = json::object();
    for (std::size_t i = 1; i < c.sw_by_reason.size(); ++i)
      by_reason[flowrules::reasonCodeName(i)] = c.sw_by_reason[i];
    return {{"flow",
             {{"backend", applier_->backend().capabilities().backend},
              {"rules_hw", c.hw},
              {"rules_sw", c.sw},
              {"sw_by_reason", by_reason},
              {"validations", c.validations},
              {"creations", c.creations},
              {"destructions", c.destructions},
              {"refusals", c.refusals},
              {"destroy_failures", c.destroy_failures}}},
            {"software_path",
             {{"operations", counters_.sw_ops},
              {"failures", counters_.sw_failures},
              {"objects_failed_now", sw_failures_.size()}}},
            {"nic",
             {{"managed", backends_.nic != nullptr},
              {"operations", counters_.nic_ops},
              {"failures", counters_.nic_failures},
              {"vf_macs_set", vf_macs_.size()}}},
            {"vdpa",
             {{"backend", backends_.vdpa ? model::toString(backends_.vdpa->kind()) : "none"},
              {"operations", counters_.vdpa_ops},
              {"failures", counters_.vdpa_failures},
              {"devices", vdpa_devices_.size()}}},
            {"controller",
             {{"reconcile_passes", counters_.reconcile_passes},
              {"full_passes", counters_.full_passes},
              {"retries", counters_.retries},
              {"state_saves", counters_.state_saves},
              {"state_save_failures", counters_.state_save_failures},
              {"requests_refused", counters_.requests_refused},
              {"internal_errors", counters_.internal_errors}}}};
  }
  if (op == "reconcile") {
    if (auto s = onlyKeys(req, {}); !s) return fail(s.error());
    return reconcileAll();
  }
  return fail(requestError(
      ErrorCode::kInvalidValue, "op", op,
      "unknown op '" + op +
          "' (ops: status, port.add, port.remove, port.get, port.list, remote.add, remote.remove, "
          "remote.sync, remote.list, batch, rules, explain, counters, reconcile)"));
}

// --- reconciliation ---

// --- the full pass: the safety net ---
//
// Re-reads every backend and repairs whatever differs from a whole plan of
// the intent: rules that vanished from the device, refusals worth retrying,
// kernel objects someone changed. It must not stall requests at fleet scale
// (100 k rules), so it runs in three phases:
//   1. verify: the device is asked about each hardware rule, in slices of
//      ControllerOptions::slice_budget per loop turn (the backend is not
//      thread-safe);
//   2. compute: on a worker thread, against a copy of the intent and of the
//      applier's digests: the whole plan, the kernel read back (its own
//      netlink socket), and both diffs;
//   3. repair (loop thread): what the worker found, minus what a batch
//      touched meanwhile (those owners were planned and applied by the
//      batch itself, from newer intent).
// With background_full_pass off (tests, start, the "reconcile" op, a table
// at its capacity) the same phases run at once, in order.

struct Controller::FullPassComputed {
  Status planned = Status::success();
  std::vector<flowrules::FlowRule> upsert;
  std::vector<flowrules::HwApplier::HeldRule> remove;
  std::vector<flowrules::RuleDependency> dependencies;
  std::optional<SwChanges> sw;  // null: no software path, or the read-back failed
  std::optional<Error> read_back_error;
  std::map<std::uint32_t, std::uint32_t> hw_placeable_by_group;
  std::size_t sw_delivery_rules = 0;
  std::size_t sw_objects = 0;
  std::size_t rules = 0;
};

struct Controller::FullPass {
  enum class Phase : std::uint8_t { kVerify, kCompute, kRepair };
  Phase phase = Phase::kVerify;
  bool verify = true;
  std::vector<flowrules::RuleId> to_verify;
  std::size_t cursor = 0;
  std::size_t vanished = 0;
  std::future<FullPassComputed> computed;
  // Touched by batches since the worker's copy was taken.
  std::unordered_set<flowrules::OwnerId> owners;
  std::unordered_set<Ipv4Addr> addresses;
  std::unordered_set<std::string> devices;
  bool derived = false;  // a VNI or a remote VTEP appeared or vanished
  std::size_t batch_failures = 0;
  bool copied = false;  // the worker's copy was taken: record what batches touch
  SteadyClock::time_point started;
};

namespace {

// The netdev a sysctl path names: "ipv4/conf/<dev>/x", "ipv4/neigh/<dev>/x".
std::string_view sysctlDevice(std::string_view path) {
  for (std::string_view prefix : {"ipv4/conf/", "ipv4/neigh/"}) {
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

Controller::FullPassComputed Controller::computeFullPass(
    const model::Intent& intent, const model::HwProfile& profile,
    const std::vector<flowrules::HwApplier::HeldRule>& held, SoftwarePath* path,
    ReadBackScope scope) {
  using Code = flowrules::PlacementReason::Code;
  FullPassComputed out;
  flowrules::DesiredState plan;
  out.planned = flowrules::planInto(intent, profile, {.skip_validation = true}, plan);
  if (!out.planned) return out;
  out.rules = plan.rules.size();
  for (const auto& r : plan.rules) {
    if (r.placement == flowrules::Placement::kHw || r.reason.code == Code::kTableFull)
      ++out.hw_placeable_by_group[r.attr.group];
    else if (r.cls == flowrules::RuleClass::kLocalDelivery &&
             r.attr.group == flowrules::kFibGroup && r.reason.code != Code::kFollows)
      ++out.sw_delivery_rules;
  }
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
      out.sw = splitDiff(flowrules::diff(plan.sw, *rb));
    } else {
      out.read_back_error = rb.error();
    }
  }
  return out;
}

Controller::~Controller() { full_pass_.reset(); }  // before the backends its worker uses

bool Controller::fullPassRunning() const { return full_pass_ != nullptr; }

void Controller::startFullPass(bool verify) {
  if (full_pass_) return;
  full_pass_ = std::make_unique<FullPass>();
  full_pass_->verify = verify;
  full_pass_->started = SteadyClock::now();
  if (verify) full_pass_->to_verify = applier_->hardwareRuleIds();
}

// Runs the pass until it is done (inline) or its slice of this loop turn is
// used up (background). Returns the pass's result once it is over.
std::optional<Controller::PassResult> Controller::stepFullPass(bool inline_all) {
  auto& pass = *full_pass_;
  const auto deadline = SteadyClock::now() + options_.slice_budget;
  if (pass.phase == FullPass::Phase::kVerify) {
    constexpr std::size_t kChunk = 256;
    while (pass.cursor < pass.to_verify.size()) {
      const auto n = std::min(kChunk, pass.to_verify.size() - pass.cursor);
      pass.vanished += applier_->verifyInstalled(
          std::span<const flowrules::RuleId>(pass.to_verify).subspan(pass.cursor, n));
      pass.cursor += n;
      if (!inline_all && SteadyClock::now() >= deadline) return std::nullopt;
    }
    std::vector<flowrules::RuleId>().swap(pass.to_verify);
    if (pass.vanished)
      spdlog::warn("flow backend: {} rules vanished from the device; reinstalling", pass.vanished);
    pass.phase = FullPass::Phase::kCompute;
    pass.copied = true;
    SoftwarePath* path = backends_.software_path.get();
    const ReadBackScope scope{host_.route_table, host_.route_protocol};
    if (inline_all || !options_.background_full_pass) {
      std::promise<FullPassComputed> done;
      try {
        done.set_value(computeFullPass(intent_, profile_, applier_->heldRules(), path, scope));
      } catch (...) {
        done.set_exception(std::current_exception());  // rethrown below, as a worker's would be
      }
      pass.computed = done.get_future();
    } else {
      pass.computed = std::async(
          std::launch::async,
          [intent = intent_, profile = profile_, held = applier_->heldRules(), path, scope] {
            return computeFullPass(intent, profile, held, path, scope);
          });
    }
  }
  if (pass.phase == FullPass::Phase::kCompute) {
    if (!inline_all &&
        pass.computed.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
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
void Controller::noteTouchedDuringFullPass(const flowrules::SoftwarePathState& sw_old,
                                           const flowrules::SoftwarePathState& sw_new,
                                           bool derived, std::size_t failures) {
  if (!full_pass_ || !full_pass_->copied) return;
  auto& pass = *full_pass_;
  for (const auto& [key, before] : touched_ports_) {
    pass.owners.insert(flowrules::portOwner(key));
    for (const model::Port* p : {before ? &*before : nullptr, static_cast<const model::Port*>(findPort(key))}) {
      if (!p) continue;
      for (const auto a : p->addresses) pass.addresses.insert(a);
      pass.devices.insert(p->representorName());
    }
  }
  for (const auto& [address, before] : touched_remotes_) {
    pass.owners.insert(flowrules::remoteOwner(address));
    pass.addresses.insert(address);
  }
  for (const auto* s : {&sw_old, &sw_new})
    for (const auto& r : s->routes) pass.addresses.insert(r.dst.addr);
  pass.derived = pass.derived || derived;
  pass.batch_failures += failures;
}

Controller::PassResult Controller::repairFullPass(FullPassComputed computed) {
  PassResult result;
  ++counters_.reconcile_passes;
  ++counters_.full_passes;
  if (!computed.planned) {
    // The intent was admitted piece by piece; a plan error here is a bug.
    spdlog::error("plan failed: {}", computed.planned.error().describe());
    result.failures = 1;
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
  for (const auto& e : hw.failures) {
    ++result.failures;
    spdlog::error("flow: {}", e.describe());
  }
  if (hw.created || hw.destroyed || hw.refused)
    spdlog::info("flow: {} created, {} destroyed, {} refused by the device (now sw)", hw.created,
                 hw.destroyed, hw.refused);
  if (quiet) {
    hw_placeable_by_group_ = std::move(computed.hw_placeable_by_group);
    sw_delivery_rules_ = computed.sw_delivery_rules;
    sw_objects_ = computed.sw_objects;
  }

  if (computed.read_back_error) {
    ++result.failures;
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
    };
    keep(computed.sw->apply);
    keep(computed.sw->remove);
    sw_failures_.clear();
    const std::size_t changes = computed.sw->apply.size() + computed.sw->remove.size();
    if (changes) {
      auto& path = *backends_.software_path;
      const auto removed = path.remove(computed.sw->remove);
      const auto applied = path.apply(computed.sw->apply);
      counters_.sw_ops +=
          removed.succeeded + applied.succeeded + removed.failures.size() + applied.failures.size();
      for (const auto* r : {&removed, &applied})
        for (const auto& f : r->failures) {
          ++counters_.sw_failures;
          ++result.failures;
          sw_failures_[f.object] = f.error;
          spdlog::error("software path: {}: {}", f.object, f.error.message);
        }
      spdlog::info("software path: {} objects repaired ({} failed)", changes,
                   sw_failures_.size());
    }
  }
  result.failures += pass.batch_failures;  // keep their retry
  ::malloc_trim(0);  // the whole plan and the read-back were transient
  reconcileDevices(result, nullptr);
  const auto& c = applier_->counters();
  last_pass_summary_ =
      "full pass: rules hw " + std::to_string(c.hw) + ", sw " + std::to_string(c.sw) +
      "; kernel objects " + std::to_string(sw_objects_) + ", failed " +
      std::to_string(sw_failures_.size()) + "; took " +
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() -
                                                                         pass.started)
                         .count()) +
      " ms";
  return result;
}

Controller::PassResult Controller::reconcile(bool verify) {
  full_pass_.reset();  // a pass in flight is replaced (its worker is waited for)
  startFullPass(verify);
  return *stepFullPass(true);
}

// --- incremental reconciliation ---

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
}

std::uint64_t vtepKey(std::uint32_t vni, Ipv4Addr vtep) {
  return (std::uint64_t{vni} << 32) | vtep.value;
}

}  // namespace

bool Controller::coupled() const {
  for (const auto& [group, n] : hw_placeable_by_group_) {
    const std::uint32_t cap = group >= profile_.max_groups ? 0 : profile_.groupCapacity(group);
    if (n > cap) return true;
  }
  return host_.underlay == model::UnderlayMode::kVxlan && sw_delivery_rules_ > 0;
}

void Controller::recount(const flowrules::DesiredState& plan) {
  using Code = flowrules::PlacementReason::Code;
  hw_placeable_by_group_.clear();
  sw_delivery_rules_ = 0;
  for (const auto& r : plan.rules) {
    if (r.placement == flowrules::Placement::kHw || r.reason.code == Code::kTableFull)
      ++hw_placeable_by_group_[r.attr.group];
    else if (r.cls == flowrules::RuleClass::kLocalDelivery && r.attr.group == flowrules::kFibGroup &&
             r.reason.code != Code::kFollows)
      ++sw_delivery_rules_;
  }
  sw_objects_ = plan.sw.size();
}

// Plans the owners the batch touched, before and after, and drives each
// backend with the difference only. What plan() derives from many owners is
// kept as counts: the VNIs local ports use (decap rules), the VNIs in use
// and the remote VTEPs (VXLAN devices, FDB entries), the rules each table
// would hold. When plan() would couple owners (a table over its capacity,
// a delivery rule in software with VXLAN) the whole intent is planned.
Controller::PassResult Controller::reconcileTouched() {
  using flowrules::FlowRule;
  using flowrules::Placement;
  using Code = flowrules::PlacementReason::Code;
  const bool was_coupled = coupled();
  const bool vxlan = host_.underlay == model::UnderlayMode::kVxlan;
  std::vector<FlowRule> upsert;
  std::vector<flowrules::RuleId> remove;
  std::vector<flowrules::RuleDependency> deps;
  flowrules::SoftwarePathState sw_old, sw_new;  // kernel objects of the touched owners

  auto count = [&](const FlowRule& r, int sign) {
    const auto add = [sign](auto& n) { n = sign > 0 ? n + 1 : n - 1; };
    if (r.placement == Placement::kHw) {
      add(hw_placeable_by_group_[r.attr.group]);
    } else if (r.cls == flowrules::RuleClass::kLocalDelivery &&
               r.attr.group == flowrules::kFibGroup && r.reason.code != Code::kFollows) {
      add(sw_delivery_rules_);
    }
  };
  auto change = [&](std::vector<FlowRule> old_rules, std::vector<FlowRule> new_rules) {
    for (const auto& r : old_rules) count(r, -1);
    for (const auto& r : new_rules) count(r, +1);
    for (const auto& r : old_rules)
      if (std::none_of(new_rules.begin(), new_rules.end(),
                       [&](const FlowRule& n) { return n.id == r.id; }))
        remove.push_back(r.id);
    for (auto& r : new_rules) upsert.push_back(std::move(r));
  };
  std::map<std::uint32_t, int> port_vni_delta, vni_delta;
  std::unordered_map<std::uint64_t, int> vtep_delta;

  for (const auto& [key, before] : touched_ports_) {
    const model::Port* now = findPort(key);
    std::vector<FlowRule> old_rules, new_rules;
    if (before) {
      if (auto r = planner_->portRules(*before)) old_rules = std::move(r).value();
      planner_->portObjects(*before, sw_old);
      if (vxlan) {
        --port_vni_delta[planner_->vniOf(*before)];
        --vni_delta[planner_->vniOf(*before)];
      }
    }
    if (now) {
      auto r = planner_->portRules(*now);
      if (!r) throw std::runtime_error("planning admitted port " + key.str() + ": " +
                                       r.error().describe());
      new_rules = std::move(r).value();
      for (auto& d : flowrules::portRuleDependencies(new_rules)) deps.push_back(d);
      planner_->portObjects(*now, sw_new);
      if (vxlan) {
        ++port_vni_delta[planner_->vniOf(*now)];
        ++vni_delta[planner_->vniOf(*now)];
      }
    }
    change(std::move(old_rules), std::move(new_rules));
  }
  for (const auto& [address, before] : touched_remotes_) {
    const model::RemoteEndpoint* now = findRemote(address);
    std::vector<FlowRule> old_rules, new_rules;
    if (before) {
      old_rules.push_back(planner_->remoteRule(*before));
      planner_->remoteObjects(*before, sw_old);
      if (vxlan) {
        --vni_delta[planner_->vniOf(*before)];
        --vtep_delta[vtepKey(planner_->vniOf(*before), *before->vtep)];
      }
    }
    if (now) {
      new_rules.push_back(planner_->remoteRule(*now));
      planner_->remoteObjects(*now, sw_new);
      if (vxlan) {
        ++vni_delta[planner_->vniOf(*now)];
        ++vtep_delta[vtepKey(planner_->vniOf(*now), *now->vtep)];
      }
    }
    change(std::move(old_rules), std::move(new_rules));
  }
  // What appears or disappears with the first or last user of a VNI / VTEP.
  bool derived = false;  // a VNI or a remote VTEP appeared or vanished
  auto refs = [&derived](auto& map, auto key, int delta, auto&& appear, auto&& vanish) {
    if (delta == 0) return;
    const std::int64_t before = map.count(key) ? map[key] : 0;
    const std::int64_t after = before + delta;
    if (after <= 0) {
      map.erase(key);
    } else {
      map[key] = static_cast<std::uint32_t>(after);
    }
    if (before == 0 && after > 0) {
      derived = true;
      appear();
    }
    if (before > 0 && after <= 0) {
      derived = true;
      vanish();
    }
  };
  for (const auto& [vni, delta] : port_vni_delta)
    refs(
        port_vni_refs_, vni, delta,
        [&, vni = vni] {
          auto r = planner_->decapRule(vni);
          count(r, +1);
          deps.push_back(flowrules::decapDependency(r));
          upsert.push_back(std::move(r));
        },
        [&, vni = vni] {
          auto r = planner_->decapRule(vni);
          count(r, -1);
          remove.push_back(r.id);
        });
  for (const auto& [vni, delta] : vni_delta)
    refs(
        vni_refs_, vni, delta, [&, vni = vni] { planner_->vniObjects(vni, sw_new); },
        [&, vni = vni] { planner_->vniObjects(vni, sw_old); });
  for (const auto& [key, delta] : vtep_delta) {
    const auto vni = static_cast<std::uint32_t>(key >> 32);
    const Ipv4Addr vtep{static_cast<std::uint32_t>(key)};
    refs(
        vtep_refs_, key, delta, [&] { planner_->vtepObjects(vni, vtep, sw_new); },
        [&] { planner_->vtepObjects(vni, vtep, sw_old); });
  }

  if (was_coupled || coupled()) {
    spdlog::info("a hardware table is at its capacity{}: planning the whole intent",
                 vxlan && sw_delivery_rules_ ? " or a delivery rule is in software" : "");
    return reconcile(false);
  }

  PassResult result;
  ++counters_.reconcile_passes;
  const auto hw = applier_->applyDelta(upsert, remove, deps);
  for (const auto& e : hw.failures) {
    ++result.failures;
    spdlog::error("flow: {}", e.describe());
  }
  if (hw.created || hw.destroyed || hw.refused)
    spdlog::info("flow: {} created, {} destroyed, {} refused by the device (now sw)", hw.created,
                 hw.destroyed, hw.refused);

  if (backends_.software_path && host_.software_path == model::SoftwarePathKind::kKernel) {
    sortState(sw_old);
    sortState(sw_new);
    sw_objects_ += sw_new.size();
    sw_objects_ -= std::min(sw_objects_, sw_old.size());
    const auto d = flowrules::diff(sw_new, sw_old);
    if (!d.empty()) {
      auto& path = *backends_.software_path;
      const auto changes = splitDiff(d);
      const auto removed = path.remove(changes.remove);
      const auto applied = path.apply(changes.apply);
      counters_.sw_ops +=
          removed.succeeded + applied.succeeded + removed.failures.size() + applied.failures.size();
      for (const auto* r : {&removed, &applied})
        for (const auto& f : r->failures) {
          ++counters_.sw_failures;
          ++result.failures;
          sw_failures_[f.object] = f.error;
          spdlog::error("software path: {}: {}", f.object, f.error.message);
        }
      spdlog::info("software path: {} objects changed ({} failed)", d.size(),
                   result.failures - hw.failures.size());
    }
  }
  reconcileDevices(result, &touched_ports_);
  noteTouchedDuringFullPass(sw_old, sw_new, derived, result.failures);
  const auto& c = applier_->counters();
  last_pass_summary_ = "incremental pass: rules hw " + std::to_string(c.hw) + ", sw " +
                       std::to_string(c.sw) + "; kernel objects " + std::to_string(sw_objects_) +
                       ", failed " + std::to_string(sw_failures_.size());
  return result;
}

// VF settings and vDPA devices against what the NIC and the vDPA backend
// hold: all of them (a full pass), or, with `touched` ports, only the VFs
// and devices those ports held or hold (a batch: O(change)).
void Controller::reconcileDevices(PassResult& result, const TouchedPorts* touched) {
  std::map<std::uint16_t, MacAddr> want_vfs;
  std::map<std::string, vdpa::VdpaDeviceSpec> want_devices;
  std::set<std::uint16_t> vf_scope;    // with `touched`: the VFs looked at
  std::set<std::string> device_scope;  // with `touched`: the devices looked at
  if (touched) {
    for (const auto& [key, before] : *touched) {
      if (before && before->vf) vf_scope.insert(*before->vf);
      device_scope.insert(vdpa::deviceName(key));
      const model::Port* now = findPort(key);
      if (!now) continue;
      vf_scope.insert(*now->vf);
      want_vfs[*now->vf] = now->mac;
      if (auto spec = flowrules::planVdpaDevice(host_, *now)) want_devices[spec->name] = *spec;
    }
    for (const auto vf : vf_scope) device_failures_.erase("vf " + std::to_string(vf));
    for (const auto& name : device_scope) device_failures_.erase("vdpa " + name);
  } else {
    flowrules::DesiredState devices;
    flowrules::planDevices(intent_, devices);
    for (const auto& v : devices.vfs) want_vfs[v.vf] = v.mac;
    for (auto& d : devices.vdpa_devices) want_devices[d.name] = std::move(d);
    device_failures_.clear();
  }
  auto failed = [&](const std::string& what, const Error& e, std::uint64_t& counter) {
    ++counter;
    ++result.failures;
    device_failures_[what] = e;
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
    std::vector<std::string> names;  // held, in scope
    if (touched) {
      for (const auto& name : device_scope)
        if (vdpa_devices_.count(name)) names.push_back(name);
    } else {
      for (const auto& [name, dev] : vdpa_devices_) names.push_back(name);
    }
    for (const auto& name : names) {  // gone or changed first
      const auto& held = vdpa_devices_.at(name);
      auto w = want_devices.find(name);
      const bool keep = w != want_devices.end() && held.vf == w->second.vf &&
                        (!held.mac || *held.mac == w->second.mac);
      if (keep) continue;
      ++counters_.vdpa_ops;
      if (auto s = backends_.vdpa->destroy(name); !s) {
        failed("vdpa " + name, s.error(), counters_.vdpa_failures);
        continue;
      }
      spdlog::info("vdpa: {} destroyed", name);
      vdpa_devices_.erase(name);
    }
    for (const auto& [name, spec] : want_devices) {
      if (vdpa_devices_.count(name)) continue;
      if (spec.kind != backends_.vdpa->kind()) {
        failed("vdpa " + name,
               makeError(ErrorCode::kUnsupported, "port.vdpa", model::toString(spec.kind),
                         std::string("port ") + spec.port.str() + " asks for vDPA '" +
                             model::toString(spec.kind) + "' but this host runs the '" +
                             model::toString(backends_.vdpa->kind()) + "' backend"),
               counters_.vdpa_failures);
        continue;
      }
      ++counters_.vdpa_ops;
      auto dev = backends_.vdpa->create(spec);
      if (!dev) {
        failed("vdpa " + name, dev.error(), counters_.vdpa_failures);
        continue;
      }
      spdlog::info("vdpa: {} created on vf {} ({})", name, spec.vf,
                   dev->vhost_vdpa_path.empty() ? dev->socket_path : dev->vhost_vdpa_path);
      vdpa_devices_[name] = std::move(dev).value();
    }
  }
}

void Controller::scheduleRetry(bool failed) {
  if (!failed) {
    consecutive_failures_ = 0;
    backoff_ = std::chrono::milliseconds(0);
    next_retry_ = SteadyClock::time_point::max();
    return;
  }
  ++consecutive_failures_;
  backoff_ =
      backoff_.count() == 0 ? options_.retry_min : std::min(backoff_ * 2, options_.retry_max);
  next_retry_ = options_.now() + backoff_;
  spdlog::warn("reconcile left failures; retry #{} in {} ms", consecutive_failures_,
               backoff_.count());
}

void Controller::tick() {
  const auto now = options_.now();
  if (!full_pass_) {
    if (now >= next_full_) {
      next_full_ = now + options_.reconcile_interval;
      startFullPass(true);
    } else if (now >= next_retry_) {
      ++counters_.retries;
      next_retry_ = SteadyClock::time_point::max();
      startFullPass(true);
    } else {
      return;
    }
  }
  if (auto pass = stepFullPass(!options_.background_full_pass)) scheduleRetry(pass->failures > 0);
}

std::chrono::milliseconds Controller::untilNextTick() const {
  if (full_pass_) return std::chrono::milliseconds(1);  // its next slice, or its worker's result
  const auto now = options_.now();
  const auto next = std::min(next_full_, next_retry_);
  if (next <= now) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(next - now);
}

void Controller::requestFullPass() { next_full_ = options_.now(); }

json Controller::reconcileAll() {
  const auto pass = reconcile(true);
  scheduleRetry(pass.failures > 0);
  next_full_ = options_.now() + options_.reconcile_interval;
  return {{"failures", pass.failures}, {"summary", last_pass_summary_}};
}

std::string Controller::metricsText(const control::ServerCounters* server) const {
  MetricsRegistry m;
  const auto& c = applier_->counters();
  m.describe("nicoffload_ports", "gauge", "Ports (VM NICs) in the intent.");
  m.set("nicoffload_ports", "", static_cast<double>(intent_.ports.size()));
  m.describe("nicoffload_remotes", "gauge", "Remote endpoints in the intent.");
  m.set("nicoffload_remotes", "", static_cast<double>(intent_.remotes.size()));
  m.describe("nicoffload_rules", "gauge", "Flow rules in effect by placement.");
  m.set("nicoffload_rules", "placement=\"hw\"", static_cast<double>(c.hw));
  m.set("nicoffload_rules", "placement=\"sw\"", static_cast<double>(c.sw));
  m.describe("nicoffload_rules_sw", "gauge", "Flow rules in the software path by reason.");
  for (std::size_t i = 1; i < c.sw_by_reason.size(); ++i)
    m.set("nicoffload_rules_sw", std::string("reason=\"") + flowrules::reasonCodeName(i) + "\"",
          static_cast<double>(c.sw_by_reason[i]));
  const std::string be = "backend=\"" + applier_->backend().capabilities().backend + "\"";
  m.describe("nicoffload_flow_operations_total", "counter", "Flow backend operations.");
  m.set("nicoffload_flow_operations_total", be + ",op=\"validate\"",
        static_cast<double>(c.validations));
  m.set("nicoffload_flow_operations_total", be + ",op=\"create\"",
        static_cast<double>(c.creations));
  m.set("nicoffload_flow_operations_total", be + ",op=\"destroy\"",
        static_cast<double>(c.destructions));
  m.describe("nicoffload_flow_failures_total", "counter", "Flow backend refusals and failures.");
  m.set("nicoffload_flow_failures_total", be + ",kind=\"refused\"",
        static_cast<double>(c.refusals));
  m.set("nicoffload_flow_failures_total", be + ",kind=\"destroy\"",
        static_cast<double>(c.destroy_failures));
  m.describe("nicoffload_software_path_operations_total", "counter",
             "Kernel objects programmed or removed.");
  m.set("nicoffload_software_path_operations_total", "", static_cast<double>(counters_.sw_ops));
  m.describe("nicoffload_software_path_failures_total", "counter",
             "Kernel objects the kernel refused.");
  m.set("nicoffload_software_path_failures_total", "", static_cast<double>(counters_.sw_failures));
  m.describe("nicoffload_software_path_objects_failed", "gauge",
             "Kernel objects failing now (retried).");
  m.set("nicoffload_software_path_objects_failed", "", static_cast<double>(sw_failures_.size()));
  m.describe("nicoffload_device_operations_total", "counter",
             "NIC (VF settings) and vDPA operations.");
  m.set("nicoffload_device_operations_total", "backend=\"nic\"",
        static_cast<double>(counters_.nic_ops));
  m.set("nicoffload_device_operations_total", "backend=\"vdpa\"",
        static_cast<double>(counters_.vdpa_ops));
  m.describe("nicoffload_device_failures_total", "counter", "NIC and vDPA operations that failed.");
  m.set("nicoffload_device_failures_total", "backend=\"nic\"",
        static_cast<double>(counters_.nic_failures));
  m.set("nicoffload_device_failures_total", "backend=\"vdpa\"",
        static_cast<double>(counters_.vdpa_failures));
  m.describe("nicoffload_vdpa_devices", "gauge", "vDPA devices backing ports.");
  m.set("nicoffload_vdpa_devices", "", static_cast<double>(vdpa_devices_.size()));
  m.describe("nicoffload_reconcile_passes_total", "counter", "Reconcile passes by kind.");
  m.set("nicoffload_reconcile_passes_total", "kind=\"any\"",
        static_cast<double>(counters_.reconcile_passes));
  m.set("nicoffload_reconcile_passes_total", "kind=\"full\"",
        static_cast<double>(counters_.full_passes));
  m.describe("nicoffload_retries_total", "counter", "Reconcile retries after failures.");
  m.set("nicoffload_retries_total", "", static_cast<double>(counters_.retries));
  m.describe("nicoffload_state_saves_total", "counter",
             "Batches appended to the state journal (one fdatasync each), by result.");
  m.set("nicoffload_state_saves_total", "result=\"ok\"",
        static_cast<double>(counters_.state_saves));
  m.set("nicoffload_state_saves_total", "result=\"failed\"",
        static_cast<double>(counters_.state_save_failures));
  const auto journal = store_.stats();
  m.describe("nicoffload_state_journal_bytes", "gauge",
             "Bytes of journal since the last snapshot of the state.");
  m.set("nicoffload_state_journal_bytes", "", static_cast<double>(journal.journal_bytes));
  m.describe("nicoffload_state_compactions_total", "counter",
             "Snapshots of the state written in the background, by result.");
  m.set("nicoffload_state_compactions_total", "result=\"ok\"",
        static_cast<double>(journal.compactions));
  m.set("nicoffload_state_compactions_total", "result=\"failed\"",
        static_cast<double>(journal.compaction_failures));
  m.describe("nicoffload_internal_errors_total", "counter",
             "Requests answered with an internal error (an exception caught at the request "
             "boundary: a bug).");
  m.set("nicoffload_internal_errors_total", "", static_cast<double>(counters_.internal_errors));
  if (server) {
    m.describe("nicoffload_control_requests_total", "counter",
               "Control socket requests by outcome.");
    m.set("nicoffload_control_requests_total", "outcome=\"served\"",
          static_cast<double>(server->requests));
    m.set("nicoffload_control_requests_total", "outcome=\"malformed\"",
          static_cast<double>(server->malformed));
    m.set("nicoffload_control_requests_total", "outcome=\"oversized\"",
          static_cast<double>(server->oversized));
    m.set("nicoffload_control_requests_total", "outcome=\"peer_refused\"",
          static_cast<double>(server->refused_peers));
    m.set("nicoffload_control_requests_total", "outcome=\"refused\"",
          static_cast<double>(counters_.requests_refused));
    m.set("nicoffload_control_requests_total", "outcome=\"timed_out\"",
          static_cast<double>(server->timed_out));
  }
  return m.render();
}

}  // namespace nicoffload::offload
