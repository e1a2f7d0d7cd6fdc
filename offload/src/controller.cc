#include "nicoffload/offload/controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <set>

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

model::Port* findPort(model::Intent& intent, const model::PortKey& key) {
  for (auto& p : intent.ports)
    if (p.key == key) return &p;
  return nullptr;
}

std::string ruleId(const flowrules::FlowRule& r) { return flowrules::formatRuleId(r.cls, r.id); }

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
  // The ports carry their VFs; the pool is rebuilt from them (the copy in
  // the state file is for operators and tools).
  if (auto synced = c->vf_pool_.sync(c->intent_.ports); !synced) {
    Error e = synced.error();
    e.field = c->store_.path() + ": " + e.field;
    return e;
  }
  spdlog::info("state loaded from {}: {} ports, {} remotes", c->store_.path(),
               c->intent_.ports.size(), c->intent_.remotes.size());
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
  const auto pass = c->reconcile(true, false);
  c->scheduleRetry(pass.failures > 0);
  return c;
}

Status Controller::persist(const model::Intent& intent, const vdpa::VfPool& pool) {
  PersistedState s;
  s.ports = intent.ports;
  s.remotes = intent.remotes;
  s.extra["vf_pool"] = pool.toJson();
  auto st = store_.save(s);
  if (st) {
    ++counters_.state_saves;
  } else {
    ++counters_.state_save_failures;
    spdlog::error("state: {}", st.error().describe());
  }
  return st;
}

// --- admission ---

Result<json> Controller::admitPortAdd(const json& request, model::Intent& working,
                                      model::IntentIndex& index, vdpa::VfPool& pool,
                                      std::vector<std::string>& changed) {
  if (auto s = onlyKeys(request, {"port"}); !s) return s.error();
  if (!request.contains("port"))
    return requestError(ErrorCode::kMissingField, "port", "", "required field is missing");
  auto parsed = model::parsePort(request["port"], "port");
  if (!parsed) return parsed.error();
  model::Port port = std::move(parsed).value();
  model::Port* existing = findPort(working, port.key);
  // The VF: the one the port names, else the one it holds, else the lowest
  // free one (vdpa::VfPool). Checked on a copy: the pool changes only with
  // the rest of the admission.
  vdpa::VfPool trial = pool;
  auto vf = trial.assign(port.key, port.vf);
  if (!vf) {
    Error e = vf.error();
    e.field = "port.vf";
    return e;
  }
  port.vf = *vf;
  if (auto s = index.checkPort(port); !s) return s.error();
  if (auto rules = flowrules::planPortRules(host_, profile_, port); !rules) return rules.error();
  if (existing && model::toJson(*existing) == model::toJson(port))
    return json{{"port", model::toJson(port)}, {"changed", false}};
  pool = std::move(trial);
  index.upsertPort(port);
  if (existing) {
    *existing = port;
  } else {
    working.ports.push_back(port);
  }
  changed.push_back((existing ? "port update " : "port add ") + port.key.str() + " mac " +
                    port.mac.str() + " vf " + std::to_string(*port.vf));
  return json{{"port", model::toJson(port)}, {"changed", true}};
}

Result<json> Controller::admitPortRemove(const json& request, model::Intent& working,
                                         model::IntentIndex& index, vdpa::VfPool& pool,
                                         std::vector<std::string>& changed) {
  if (auto s = onlyKeys(request, {"vm", "nic"}); !s) return s.error();
  auto key = portKeyOf(request);
  if (!key) return key.error();
  auto it = std::find_if(working.ports.begin(), working.ports.end(),
                         [&](const auto& p) { return p.key == *key; });
  if (it == working.ports.end())
    return json{{"removed", false}, {"port", key->str()}};  // idempotent
  index.removePort(*key);
  const auto released = pool.release(*key);
  working.ports.erase(it);
  changed.push_back("port remove " + key->str() +
                    (released ? " (VF " + std::to_string(*released) + " released)" : ""));
  return json{{"removed", true}, {"port", key->str()}};
}

Result<json> Controller::admitRemote(const json& request, bool add, model::Intent& working,
                                     model::IntentIndex& index, std::vector<std::string>& changed) {
  if (add) {
    if (auto s = onlyKeys(request, {"remote"}); !s) return s.error();
    if (!request.contains("remote"))
      return requestError(ErrorCode::kMissingField, "remote", "", "required field is missing");
    auto r = model::parseRemote(request["remote"], "remote");
    if (!r) return r.error();
    model::Intent probe;
    probe.host = working.host;
    probe.ports = working.ports;
    probe.remotes = {*r};
    if (auto s = model::validateIntent(probe); !s) {
      Error e = s.error();
      if (e.field.rfind("remotes[0]", 0) == 0) e.field = "remote" + e.field.substr(10);
      return e;
    }
    // Against the other remotes too: its /32 must not be their VTEP or next
    // hop, its VTEP or next hop not a VM's or a remote's /32.
    if (auto s = index.checkRemote(*r); !s) return s.error();
    auto it = std::find_if(working.remotes.begin(), working.remotes.end(),
                           [&](const auto& x) { return x.address == r->address; });
    if (it != working.remotes.end()) {
      if (model::toJson(*it) == model::toJson(*r))
        return json{{"remote", model::toJson(*r)}, {"changed", false}};
      *it = *r;
    } else {
      working.remotes.push_back(*r);
    }
    index = model::IntentIndex(working);
    changed.push_back("remote add " + r->address.str());
    return json{{"remote", model::toJson(*r)}, {"changed", true}};
  }
  if (auto s = onlyKeys(request, {"address"}); !s) return s.error();
  auto address = requiredString(request, "address", "the remote's IPv4 /32");
  if (!address) return address.error();
  auto p = Ipv4Prefix::parse(*address);
  if (!p || p->len != 32)
    return requestError(ErrorCode::kInvalidValue, "address", *address, "must be an IPv4 /32");
  auto it = std::find_if(working.remotes.begin(), working.remotes.end(),
                         [&](const auto& x) { return x.address == p->addr; });
  if (it == working.remotes.end()) return json{{"removed", false}};
  working.remotes.erase(it);
  index = model::IntentIndex(working);
  changed.push_back("remote remove " + p->addr.str());
  return json{{"removed", true}};
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
         name == "remote.remove";
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

  // Admission, on copies. A request whose admission throws may leave the
  // copies half-changed: it is answered with an internal error and the
  // admission starts over without it (rare; costs nothing otherwise).
  struct Admission {
    model::Intent working;
    model::IntentIndex index;
    vdpa::VfPool pool;
    std::vector<std::string> changed;
    std::vector<std::size_t> accepted;  // mutations admitted into `working`
    std::vector<json> accepted_results;
    std::uint64_t refused = 0;  // counted once admission is final
  };
  std::optional<Admission> adm;
  std::vector<bool> failed_internally(batch.size(), false);
  for (bool again = true; again;) {
    again = false;
    adm.emplace(Admission{intent_, *index_, vf_pool_, {}, {}, {}, 0});
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (failed_internally[i]) continue;
      replies[i] = json();
      const json& req = batch[i].body;
      const auto op_it = req.is_object() ? req.find("op") : req.end();
      // The server checks this; a caller of this API may not.
      if (op_it == req.end() || !op_it->is_string()) {
        replies[i] = control::errorReply(requestError(ErrorCode::kInvalidValue, "op", "",
                                                      "the request has no string field \"op\""));
        continue;
      }
      const std::string& op = op_it->get_ref<const std::string&>();
      Result<json> result = json();
      try {
        if (op == "port.add") {
          result = admitPortAdd(req, adm->working, adm->index, adm->pool, adm->changed);
        } else if (op == "port.remove") {
          result = admitPortRemove(req, adm->working, adm->index, adm->pool, adm->changed);
        } else if (op == "remote.add") {
          result = admitRemote(req, true, adm->working, adm->index, adm->changed);
        } else if (op == "remote.remove") {
          result = admitRemote(req, false, adm->working, adm->index, adm->changed);
        } else {
          continue;  // reads are answered after the mutations of this batch
        }
      } catch (...) {
        failed_internally[i] = true;
        replies[i] = internalErrorReply(req, describeCurrentException());
        again = true;
        break;
      }
      if (!result) {
        ++adm->refused;
        spdlog::warn("refused {}: {}", op, result.error().describe());
        replies[i] = control::errorReply(result.error());
        continue;
      }
      adm->accepted.push_back(i);
      adm->accepted_results.push_back(std::move(result).value());
    }
  }

  counters_.requests_refused += adm->refused;
  const auto t_admitted = SteadyClock::now();
  auto& changed = adm->changed;
  auto& accepted = adm->accepted;
  if (!changed.empty()) {
    const auto st = persist(adm->working, adm->pool);
    t_persisted = t_reconciled = SteadyClock::now();
    if (!st) {
      for (auto i : accepted) replies[i] = control::errorReply(st.error());
      accepted.clear();
    } else {
      intent_ = std::move(adm->working);
      index_ = std::make_unique<model::IntentIndex>(std::move(adm->index));
      vf_pool_ = std::move(adm->pool);
      for (const auto& c : changed) spdlog::info("{}", c);
      const auto pass = reconcile(false);
      scheduleRetry(pass.failures > 0);
      t_reconciled = SteadyClock::now();
    }
  }
  for (std::size_t k = 0; k < accepted.size(); ++k) {
    json result = std::move(adm->accepted_results[k]);
    if (result.contains("port") && result["port"].is_object()) {
      auto key = portKeyOf(result["port"]);
      if (key)
        if (const auto* p = findPort(intent_, *key)) result["status"] = portJson(*p);
    }
    replies[accepted[k]] = control::okReply(std::move(result));
  }
  answerReads(batch, replies);
  if (spdlog::should_log(spdlog::level::debug))
    spdlog::debug(
        "batch of {} requests ({} changes): admit {:.0f} us, persist {:.0f} us, reconcile {:.0f} "
        "us, "
        "replies {:.0f} us",
        batch.size(), changed.size(), Micros(t_admitted - t_start).count(),
        changed.empty() ? 0.0 : Micros(t_persisted - t_admitted).count(),
        changed.empty() ? 0.0 : Micros(t_reconciled - t_persisted).count(),
        Micros(SteadyClock::now() - (changed.empty() ? t_admitted : t_reconciled)).count());
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

std::vector<flowrules::FlowRule> Controller::plannedRules() const {
  flowrules::DesiredState plan;
  if (auto s = flowrules::planInto(intent_, profile_, {.skip_validation = true}, plan); !s)
    return {};
  return std::move(plan.rules);
}

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
          {"software_path", {{"objects", desired_.sw.size()}, {"failed", sw_failures_.size()}}},
          {"last_pass", last_pass_summary_},
          {"uptime_s", uptime},
          {"state_file", store_.path()}};
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
    const auto* p = findPort(intent_, *key);
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
    if (auto s = onlyKeys(req, {}); !s) return fail(s.error());
    json out = json::array();
    for (const auto& r : intent_.remotes) out.push_back(model::toJson(r));
    return out;
  }
  if (op == "rules") {
    if (auto s = onlyKeys(req, {"testpmd"}); !s) return fail(s.error());
    const auto testpmd = optionalBool(req, "testpmd", false);
    if (!testpmd) return fail(testpmd.error());
    const auto ports = flowrules::PortNumbering::fromHost(host_);
    json out = json::array();
    for (const auto& planned : plannedRules()) {
      const auto* a = applier_->find(planned.id);
      const auto r = a ? a->effective(planned) : planned;
      json j = flowrules::toJson(r, profile_);
      if (a) j["reason"] = flowrules::describeApplied(*a, profile_);
      if (*testpmd) j["testpmd"] = flowrules::renderTestpmd(r, ports);
      out.push_back(std::move(j));
    }
    return out;
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
    const auto planned = plannedRules();
    auto it =
        std::find_if(planned.begin(), planned.end(), [&](const auto& r) { return r.id == *id; });
    if (it == planned.end())
      return fail(requestError(ErrorCode::kNotFound, "rule", text, "no rule " + text));
    const auto eff = a->effective(*it);
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
          "' (ops: status, port.add, port.remove, port.get, port.list, "
          "remote.add, remote.remove, remote.list, rules, explain, counters, reconcile)"));
}

// --- reconciliation ---

Controller::PassResult Controller::reconcile(bool full, bool verify) {
  using Micros = std::chrono::duration<double, std::micro>;
  const auto t0 = SteadyClock::now();
  PassResult result;
  ++counters_.reconcile_passes;
  if (full) ++counters_.full_passes;
  if (auto s = flowrules::planInto(intent_, profile_, {.skip_validation = true}, desired_); !s) {
    // The intent was admitted port by port; a plan error here is a bug.
    spdlog::error("plan failed: {}", s.error().describe());
    result.failures = 1;
    last_pass_summary_ = "plan failed: " + s.error().describe();
    return result;
  }
  dependencies_ = flowrules::ruleDependencies(intent_, desired_.rules);
  if (full && verify) {
    const auto vanished = applier_->verifyInstalled();
    if (vanished)
      spdlog::warn("flow backend: {} rules vanished from the device; reinstalling", vanished);
  }
  const auto t_planned = SteadyClock::now();
  const auto hw = applier_->apply(desired_.rules, dependencies_);
  const auto t_flows = SteadyClock::now();
  // The applier keeps a summary of each rule; the full rules are re-planned
  // when shown. Releasing them keeps the controller's memory per rule low.
  std::vector<flowrules::FlowRule>().swap(desired_.rules);
  for (const auto& e : hw.failures) {
    ++result.failures;
    spdlog::error("flow: {}", e.describe());
  }
  if (hw.created || hw.destroyed || hw.refused)
    spdlog::info("flow: {} created, {} destroyed, {} refused by the device (now sw)", hw.created,
                 hw.destroyed, hw.refused);

  if (backends_.software_path) {
    auto& path = *backends_.software_path;
    const ReadBackScope scope{host_.route_table, host_.route_protocol};
    if (full) {
      auto rb = path.readBack(desired_.sw, scope);
      if (rb) {
        sw_installed_ = std::move(rb).value();
      } else {
        ++result.failures;
        spdlog::error("software path read-back: {}", rb.error().describe());
      }
    }
    const auto d = flowrules::diff(desired_.sw, sw_installed_);
    if (!d.empty()) {
      const auto changes = splitDiff(d);
      const auto removed = path.remove(changes.remove);
      const auto applied = path.apply(changes.apply);
      counters_.sw_ops +=
          removed.succeeded + applied.succeeded + removed.failures.size() + applied.failures.size();
      sw_failures_.clear();
      for (const auto* r : {&removed, &applied})
        for (const auto& f : r->failures) {
          ++counters_.sw_failures;
          ++result.failures;
          sw_failures_[f.object] = f.error;
          spdlog::error("software path: {}: {}", f.object, f.error.message);
        }
      spdlog::info("software path: {} objects changed ({} failed)", d.size(), sw_failures_.size());
      if (sw_failures_.empty()) {
        sw_installed_ = desired_.sw;
      } else if (auto rb = path.readBack(desired_.sw, scope)) {
        sw_installed_ = std::move(rb).value();  // know exactly what holds, for the retry
      }
    } else if (full) {
      sw_failures_.clear();
    }
  }
  const auto t_kernel = SteadyClock::now();
  reconcileDevices(result);
  if (spdlog::should_log(spdlog::level::debug))
    spdlog::debug("{} pass: plan {:.0f} us, flows {:.0f} us, kernel {:.0f} us, devices {:.0f} us",
                  full ? "full" : "incremental", Micros(t_planned - t0).count(),
                  Micros(t_flows - t_planned).count(), Micros(t_kernel - t_flows).count(),
                  Micros(SteadyClock::now() - t_kernel).count());
  const auto& c = applier_->counters();
  last_pass_summary_ = std::string(full ? "full" : "incremental") + " pass: rules hw " +
                       std::to_string(c.hw) + ", sw " + std::to_string(c.sw) + "; kernel objects " +
                       std::to_string(desired_.sw.size()) + ", failed " +
                       std::to_string(sw_failures_.size());
  return result;
}

// VF settings and vDPA devices: desired_.vfs / desired_.vdpa_devices
// against what the NIC and the vDPA backend hold.
void Controller::reconcileDevices(PassResult& result) {
  device_failures_.clear();
  auto failed = [&](const std::string& what, const Error& e, std::uint64_t& counter) {
    ++counter;
    ++result.failures;
    device_failures_[what] = e;
    spdlog::error("{}: {}", what, e.describe());
  };
  if (backends_.nic) {
    std::map<std::uint16_t, MacAddr> want;
    for (const auto& v : desired_.vfs) want[v.vf] = v.mac;
    for (const auto& [vf, mac] : want) {
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
    for (auto it = vf_macs_.begin(); it != vf_macs_.end();) {
      if (want.count(it->first)) {
        ++it;
        continue;
      }
      ++counters_.nic_ops;
      if (auto s = backends_.nic->releaseVf(it->first); !s) {
        failed("vf " + std::to_string(it->first), s.error(), counters_.nic_failures);
        ++it;
        continue;
      }
      spdlog::info("nic: vf {} released (MAC scrubbed)", it->first);
      it = vf_macs_.erase(it);
    }
  }
  if (backends_.vdpa) {
    std::map<std::string, const vdpa::VdpaDeviceSpec*> want;
    for (const auto& d : desired_.vdpa_devices) want[d.name] = &d;
    for (auto it = vdpa_devices_.begin(); it != vdpa_devices_.end();) {  // gone or changed first
      auto w = want.find(it->first);
      const bool keep = w != want.end() && it->second.vf == w->second->vf &&
                        (!it->second.mac || *it->second.mac == w->second->mac);
      if (keep) {
        ++it;
        continue;
      }
      ++counters_.vdpa_ops;
      if (auto s = backends_.vdpa->destroy(it->first); !s) {
        failed("vdpa " + it->first, s.error(), counters_.vdpa_failures);
        ++it;
        continue;
      }
      spdlog::info("vdpa: {} destroyed", it->first);
      it = vdpa_devices_.erase(it);
    }
    for (const auto& [name, spec] : want) {
      if (vdpa_devices_.count(name)) continue;
      if (spec->kind != backends_.vdpa->kind()) {
        failed("vdpa " + name,
               makeError(ErrorCode::kUnsupported, "port.vdpa", model::toString(spec->kind),
                         std::string("port ") + spec->port.str() + " asks for vDPA '" +
                             model::toString(spec->kind) + "' but this host runs the '" +
                             model::toString(backends_.vdpa->kind()) + "' backend"),
               counters_.vdpa_failures);
        continue;
      }
      ++counters_.vdpa_ops;
      auto dev = backends_.vdpa->create(*spec);
      if (!dev) {
        failed("vdpa " + name, dev.error(), counters_.vdpa_failures);
        continue;
      }
      spdlog::info("vdpa: {} created on vf {} ({})", name, spec->vf,
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
  if (now >= next_full_) {
    next_full_ = now + options_.reconcile_interval;
    const auto pass = reconcile(true);
    scheduleRetry(pass.failures > 0);
    return;
  }
  if (now >= next_retry_) {
    ++counters_.retries;
    const auto pass = reconcile(true);
    scheduleRetry(pass.failures > 0);
  }
}

std::chrono::milliseconds Controller::untilNextTick() const {
  const auto now = options_.now();
  const auto next = std::min(next_full_, next_retry_);
  if (next <= now) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(next - now);
}

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
  m.describe("nicoffload_state_saves_total", "counter", "State file writes by result.");
  m.set("nicoffload_state_saves_total", "result=\"ok\"",
        static_cast<double>(counters_.state_saves));
  m.set("nicoffload_state_saves_total", "result=\"failed\"",
        static_cast<double>(counters_.state_save_failures));
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
