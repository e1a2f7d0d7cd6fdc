// Queries: the read ops (queries.h): status, ports, planned rules, memory.
#include "nicoffload/daemon/queries.h"

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

#include "nicoffload/flowrules/render.h"
#include "request_fields.h"

namespace nicoffload::daemon {

Queries::Queries(Sources s)
    : host_(s.host),
      profile_(s.profile),
      admission_(s.admission),
      failures_(s.failures),
      vdpa_(s.vdpa),
      claims_(s.claims),
      traffic_(s.traffic),
      store_(s.store),
      derived_refs_(s.derived_refs),
      planner_(s.planner),
      applier_(s.applier),
      learned_(s.learned),
      software_path_(s.software_path),
      nic_(s.nic),
      vdpa_backend_(s.vdpa_backend),
      routes_(s.routes),
      counters_(s.counters),
      vf_macs_(s.vf_macs),
      sw_objects_(s.sw_objects),
      last_pass_summary_(s.last_pass_summary),
      full_pass_running_(std::move(s.full_pass_running)),
      now_(std::move(s.now)),
      started_(s.started) {}

offload::RouteWatcherCounters Queries::watcherCounters() const {
  return routes_ ? routes_->counters() : offload::RouteWatcherCounters{};
}

json Queries::portJson(const model::Port& port, bool rule_list) const {
  // The port's rules re-planned (cheap: a handful, with the planner's
  // context built once), joined with the device.
  json rules = json::array();
  std::size_t hw = 0, sw = 0, errors = 0;
  if (auto planned = planner_->portRules(port)) {
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
  json sw_objects = portFailuresJson(port);
  json devices = json::object();
  const vdpa::VdpaDevice* dev = port.vf ? vdpa_.onVf(*port.vf) : nullptr;
  if (dev && vdpa::effectiveKind(host_, port) != model::VdpaKind::kNone)
    devices["vdpa"] = {
        {"name", dev->name},
        {"path", dev->vhost_vdpa_path.empty() ? dev->socket_path : dev->vhost_vdpa_path},
        {"kind", dev->vhost_vdpa_path.empty() ? "vhostuser" : "vdpa"},
        {"link", vdpa_.linkPath(port.key)}};
  const bool degraded = !sw_objects.empty();
  json out = {
      {"port", model::toJson(port)},
      {"state", degraded ? "degraded" : "installed"},
      {"devices", devices},
      {"rules", rule_list
                    ? json{{"hw", hw}, {"sw", sw}, {"device_refusals", errors}, {"list", rules}}
                    : json{{"hw", hw}, {"sw", sw}, {"device_refusals", errors}}},
      {"software_path_failures", sw_objects}};
  if (port.tentative_until_ms) out["tentative"] = claims_.claimJson(port);
  return out;
}

namespace {

// Whether a kernel object's description names `dev`: "... dev rep3 ..." or
// "sysctl net/ipv4/conf/rep3/..." (never rep30 for rep3).
bool namesDevice(const std::string& object, const std::string& dev) {
  if (object.find("/" + dev + "/") != std::string::npos) return true;
  for (auto at = object.find(" " + dev); at != std::string::npos;
       at = object.find(" " + dev, at + 1)) {
    const auto end = at + 1 + dev.size();
    if (end == object.size() || object[end] == ' ') return true;
  }
  return false;
}

}  // namespace

// The kernel objects that name the port's representor ("... dev rep3 ...",
// "sysctl net/ipv4/conf/rep3/..."), its VF and its vDPA device.
json Queries::portFailuresJson(const model::Port& port) const {
  json out = json::array();
  const auto now = now_();
  const std::string rep = port.representorName();
  for (const auto& [object, entry] : failures_.entries()) {
    if (entry.kind != FailureBook::Kind::kKernel) continue;
    if (namesDevice(object, rep)) out.push_back(FailureBook::toJson(object, entry, now));
  }
  if (port.vf) {
    const std::string vf = std::to_string(*port.vf);
    for (const auto& object : {"vdpa vf " + vf, "vf " + vf})
      if (const auto* entry = failures_.find(object))
        out.push_back(FailureBook::toJson(object, *entry, now));
  }
  return out;
}

std::vector<std::uint32_t> Queries::portVnis() const { return derived_refs_.portVnis(); }

std::size_t Queries::plannedRuleCount() const {
  std::size_t n = planner_->hostRules(portVnis()).size() + admission_.intent().remotes.size();
  for (const auto& p : admission_.intent().ports)
    if (auto r = planner_->portRules(p)) n += r->size();
  return n;
}

std::vector<flowrules::FlowRule> Queries::plannedRules(std::size_t offset,
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
  for (const auto& p : admission_.intent().ports) {
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
  if (offset >= admission_.intent().remotes.size()) return out;
  for (std::size_t i = offset; i < admission_.intent().remotes.size() && out.size() < limit; ++i)
    out.push_back(planner_->remoteRule(admission_.intent().remotes[i]));
  return out;
}

std::optional<flowrules::FlowRule> Queries::plannedRule(flowrules::RuleId id) const {
  const auto* applied = applier_->find(id);
  if (!applied) return std::nullopt;
  const auto owner = applied->rule.owner;
  for (const auto& p : admission_.intent().ports)
    if (flowrules::portOwner(p.key) == owner)
      if (auto rules = planner_->portRules(p))
        for (auto& r : *rules)
          if (r.id == id) return std::move(r);
  for (auto& r : planner_->hostRules(portVnis()))
    if (r.id == id) return std::move(r);
  for (const auto& remote : admission_.intent().remotes)
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

json Queries::statusJson() const {
  const auto& c = applier_->counters();
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(now_() - started_).count();
  std::size_t degraded = 0;
  for (const auto& p : admission_.intent().ports)
    if (portJson(p, false)["state"] == "degraded") ++degraded;
  return {{"host", host_.name},
          {"profile", profile_.name},
          {"underlay", model::toString(host_.underlay)},
          {"backends",
           {{"flow", applier_->backend().capabilities().backend},
            {"software_path", software_path_ ? "kernel" : "none"}}},
          {"ports", admission_.intent().ports.size()},
          {"ports_degraded", degraded},
          {"ports_tentative",
           {{"held", claims_.tentativeCount()},
            {"ttl_s", host_.tentative_ttl_ms / 1000.0},
            {"expired", claims_.expired()}}},
          {"remotes", admission_.intent().remotes.size()},
          {"vfs",
           {{"pf", admission_.vfPool().pfPci()},
            {"assigned", admission_.vfPool().assignedCount()},
            {"free", admission_.vfPool().freeCount()}}},
          {"vdpa_pool", vdpa_.poolJson()},
          {"rules", {{"hw", c.hw}, {"sw", c.sw}, {"refused", c.refused()}}},
          {"software_path",
           {{"objects", sw_objects_}, {"failed", failures_.count(FailureBook::Kind::kKernel)}}},
          {"failures", failures_.summaryJson(now_(), kFailuresListed)},
          {"last_pass", last_pass_summary_},
          {"routes", learned_ ? learned_->statusJson(admission_, watcherCounters())
                              : json{{"enabled", false}}},
          {"full_pass_running", full_pass_running_()},
          {"memory", memoryJson()},
          {"uptime_s", uptime},
          {"state_file", store_.path()},
          {"state_journal",
           {{"bytes", store_.stats().journal_bytes},
            {"compactions", store_.stats().compactions},
            {"compaction_failures", store_.stats().compaction_failures},
            {"last_compaction_ms", store_.stats().last_compaction_ms}}}};
}

// Read ops (ops.cc has the table): each answers from memory.
// The "status" op.
Result<json> Queries::readStatus(const json& req) const {
  auto fail = [](Error e) { return e; };
  if (auto s = onlyKeys(req, {}); !s) return fail(s.error());
  return statusJson();
}

// The "port.get" op.
Result<json> Queries::readPortGet(const json& req) const {
  auto fail = [](Error e) { return e; };
  if (auto s = onlyKeys(req, {"vm", "nic"}); !s) return fail(s.error());
  auto key = portKeyOf(req);
  if (!key) return fail(key.error());
  const auto* p = findPort(*key);
  if (!p)
    return fail(requestError(ErrorCode::kNotFound, "port", key->str(), "no port " + key->str()));
  json out = portJson(*p);
  out["traffic"] = traffic_.portJson(*p);  // null until the first sweep read it
  return out;
}

// The "port.list" op.
Result<json> Queries::readPortList(const json& req) const {
  auto fail = [](Error e) { return e; };
  // Optional "vm": only that domain's ports (the hook's release path).
  if (auto s = onlyKeys(req, {"vm"}); !s) return fail(s.error());
  std::optional<std::string> vm;
  if (req.contains("vm")) {
    auto uuid = requiredString(req, "vm", "a domain UUID");
    if (!uuid) return fail(uuid.error());
    vm = std::move(uuid).value();
  }
  json out = json::array();
  for (const auto& p : admission_.intent().ports)
    if (!vm || p.key.vm == *vm) out.push_back(portJson(p, false));
  return out;
}

// The "remote.list" op.
Result<json> Queries::readRemoteList(const json& req) const {
  auto fail = [](Error e) { return e; };
  if (req.contains("refused")) {  // learned routes not followed (none without a watcher)
    if (learned_) return learned_->refusedList(req);
    return LearnedRoutes(host_, now_).refusedList(req);
  }
  if (auto s = onlyKeys(req, {"offset", "limit", "origin"}); !s) return fail(s.error());
  auto page = pageOf(req);
  if (!page) return fail(page.error());
  std::optional<std::string> origin;
  if (req.contains("origin")) {
    auto o = requiredString(req, "origin", "an origin name");
    if (!o) return fail(o.error());
    origin = std::move(o).value();
  }
  // With an origin, "offset" and "total" count that origin's remotes: the
  // scan goes past the page to count them (no per-origin index is kept).
  json list = json::array();
  auto push = [&](const model::RemoteEndpoint& r) {
    json j = model::toJson(r);
    j["origin"] = r.origin;
    list.push_back(std::move(j));
  };
  std::size_t total = 0;
  if (!origin) {
    total = admission_.intent().remotes.size();
    for (std::size_t i = page->offset; i < total && list.size() < page->limit; ++i)
      push(admission_.intent().remotes[i]);
  } else {
    for (const auto& r : admission_.intent().remotes) {
      if (r.origin != *origin) continue;
      if (total++ >= page->offset && list.size() < page->limit) push(r);
    }
  }
  if (!page->paged) return list;
  const std::size_t next = page->offset + list.size();  // before `list` is moved below
  return json{
      {"remotes", std::move(list)}, {"next", next < total ? json(next) : json()}, {"total", total}};
}

// The "rules" op.
Result<json> Queries::readRules(const json& req) const {
  auto fail = [](Error e) { return e; };
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
  return json{
      {"rules", std::move(list)}, {"next", next < total ? json(next) : json()}, {"total", total}};
}

// The "explain" op.
Result<json> Queries::readExplain(const json& req) const {
  auto fail = [](Error e) { return e; };
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
  json out{{"rule", flowrules::toJson(eff, profile_)},
           {"explanation", flowrules::explainRule(eff, profile_)},
           {"reason", flowrules::describeApplied(*a, profile_)},
           {"testpmd", flowrules::renderTestpmd(eff, flowrules::PortNumbering::fromHost(host_))}};
  // A remote's egress rule: where its route came from and which next hop.
  if (eff.cls == flowrules::RuleClass::kRoutedEgress && eff.pattern.size() > 1 && learned_) {
    std::optional<IpAddr> dst;
    if (const auto* ip = std::get_if<flowrules::Ipv4Item>(&eff.pattern[1])) dst = ip->dst;
    if (const auto* ip6 = std::get_if<flowrules::Ipv6Item>(&eff.pattern[1])) dst = ip6->addr;
    if (dst)
      if (json route = learned_->explain(*dst, findRemote(*dst)); !route.is_null())
        out["route"] = std::move(route);
  }
  return out;
}

// The "counters" op.
Result<json> Queries::readCounters(const json& req) const {
  auto fail = [](Error e) { return e; };
  if (auto s = onlyKeys(req, {}); !s) return fail(s.error());
  const auto& c = applier_->counters();
  json by_reason = json::object();
  for (std::size_t i = 1; i < c.sw_by_reason.size(); ++i)
    by_reason[flowrules::reasonCodeName(i)] = c.sw_by_reason[i];
  return json{{"flow",
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
                {"objects_failed_now", failures_.count(FailureBook::Kind::kKernel)}}},
              {"nic",
               {{"managed", nic_ != nullptr},
                {"operations", counters_.nic_ops},
                {"failures", counters_.nic_failures},
                {"vf_macs_set", vf_macs_.size()}}},
              {"vdpa",
               {{"backend", vdpa_backend_ ? model::toString(vdpa_backend_->kind()) : "none"},
                {"operations", vdpa_.counters().ops},
                {"failures", vdpa_.counters().failures},
                {"devices", vdpa_.size()},
                {"pool", vdpa_.poolJson()}}},
              {"controller",
               {{"reconcile_passes", counters_.reconcile_passes},
                {"full_passes", counters_.full_passes},
                {"quiet_full_passes", counters_.quiet_passes},
                {"retries", counters_.retries},
                {"state_saves", counters_.state_saves},
                {"state_save_failures", counters_.state_save_failures},
                {"requests_refused", counters_.requests_refused},
                {"tentative_ports_expired", claims_.expired()},
                {"internal_errors", counters_.internal_errors}}}};
}

}  // namespace nicoffload::daemon
