// Controller: remotes and next hops learned from the kernel (issue 13).
//
// The RouteWatcher reports the /32 routes a routing daemon installed and the
// uplink's neighbours. Here they become remote endpoints of origin
// "kernel:<protocol>" and next-hop MACs, applied like a batch of requests
// (the same undo log, the same incremental pass over what they touched) but
// never journaled: the kernel is their source, and on start the watcher's
// first dump brings them back before the first pass.
//
// Rules:
//   - a remote of another origin (remote.add, remote.sync) wins over a
//     learned one at the same address; the learned route comes back when
//     that remote is removed;
//   - a learned route is refused (not followed, kept with its reason for
//     `remote list --refused`, status and metrics) when its address is not a
//     usable host address (0.0.0.0, multicast, broadcast, loopback), when
//     kernel.learn_prefixes excludes it, or when the underlay uses it: a
//     next hop of any learned route, a neighbour on the uplink, the
//     uplink's own address or subnet, a static next hop. The underlay wins
//     whatever the order: a router's /32 learned first is dropped when a
//     route through that router arrives, and comes back when none does;
//   - ECMP: the next hop is chosen among those whose MAC is known (a
//     static next_hops[].mac or the kernel's neighbour table), by a hash of
//     the destination, so that remotes spread over the top-of-rack switches
//     and the choice is the same on every run; with none resolved, among
//     all (the rule then stays in software, reason next_hop_unresolved);
//   - a next hop's MAC change re-plans exactly the remotes through it (and
//     re-chooses the ECMP routes that list it).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "controller_types.h"
#include "nicoffload/daemon/controller.h"
#include "request_fields.h"

namespace nicoffload::daemon {
namespace {

// Deterministic spread of destinations over next hops (Knuth's multiplicative
// hash of the address).
std::size_t spread(Ipv4Addr address, std::size_t n) {
  const std::uint64_t h = std::uint64_t{address.value} * 2654435761u;
  return static_cast<std::size_t>((h >> 16) % n);
}

}  // namespace

std::string Controller::Learned::underlayUse(Ipv4Addr a, const model::HostConfig& host) const {
  if (auto it = hop_refs.find(a); it != hop_refs.end())
    return "a next hop of " + std::to_string(it->second) +
           (it->second == 1 ? " learned route" : " learned routes") + " (the underlay)";
  for (const auto& s : static_hops)
    if (s.ipv4 == a) return "an underlay next hop (underlay.next_hops)";
  if (host.default_next_hop && *host.default_next_hop == a)
    return "the underlay's default next hop (underlay.default_next_hop)";
  for (const auto& p : uplink_prefixes) {
    if (p.addr == a) return "this host's own address on the uplink (" + p.str() + ")";
    if (p.len < 32 && p.contains(a))
      return "on the uplink's subnet " + Ipv4Prefix{Ipv4Addr{a.value & ~(~std::uint32_t{0} >> p.len)}, p.len}.str() +
             " (the underlay)";
  }
  if (neighbours.count(a)) return "a neighbour on the uplink (the underlay)";
  return {};
}

std::string Controller::learnedUnderlayUse(Ipv4Addr address) const {
  if (!learned_) return {};
  return learned_->underlayUse(address, host_);
}

std::optional<MacAddr> Controller::Learned::macOf(Ipv4Addr hop) const {
  for (const auto& s : static_hops)
    if (s.ipv4 == hop) return s.mac;
  if (auto it = neighbours.find(hop); it != neighbours.end()) return it->second;
  return std::nullopt;
}

Ipv4Addr Controller::Learned::choose(const offload::LearnedRoute& route) const {
  std::vector<Ipv4Addr> resolved;
  for (const auto hop : route.next_hops)
    if (macOf(hop)) resolved.push_back(hop);
  const auto& pool = resolved.empty() ? route.next_hops : resolved;
  return pool[spread(route.address, pool.size())];
}

void Controller::Learned::noteEvents(SteadyClock::time_point now, std::size_t n) {
  if (n == 0) return;
  window.emplace_back(now, n);
  while (!window.empty() && now - window.front().first > kRateWindow) window.pop_front();
}

double Controller::Learned::eventsPerSecond(SteadyClock::time_point now) const {
  std::size_t n = 0;
  for (const auto& [t, k] : window)
    if (now - t <= kRateWindow) n += k;
  return static_cast<double>(n) / std::chrono::duration<double>(kRateWindow).count();
}

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

void Controller::beginInternalBatch() {
  admission_.beginBatch();
}

// The learned route of `address` (or its absence) into the intent.
void Controller::applyLearned(Ipv4Addr address) {
  auto& l = *learned_;
  const model::RemoteEndpoint* current = findRemote(address);
  const auto route = l.routes.find(address);
  if (route == l.routes.end() || route->second.next_hops.empty()) {
    l.refused.erase(address);
    if (current && current->learned()) admission_.eraseRemote(address);
    return;
  }
  if (current && !current->learned()) {  // remote.add / remote.sync win
    l.refused.erase(address);
    return;
  }
  const auto refuse = [&](std::string why) {
    auto [it, first] = l.refused.try_emplace(address);
    if (first || it->second != why)
      spdlog::warn("learned route {} ({}) not followed: {}", address.str(),
                   offload::routeProtocolName(route->second.protocol), why);
    it->second = std::move(why);
    if (current) admission_.eraseRemote(address);
  };
  // The checks remote.add applies, the operator's filter, then the underlay.
  if (auto why = model::unusableHostAddress(address)) return refuse(*why);
  for (const auto& p : host_.learn_deny)
    if (p.contains(address)) return refuse("excluded by kernel.learn_prefixes.deny " + p.str());
  if (!host_.learn_allow.empty() &&
      std::none_of(host_.learn_allow.begin(), host_.learn_allow.end(),
                   [&](const Ipv4Prefix& p) { return p.contains(address); }))
    return refuse("not in kernel.learn_prefixes.allow");
  if (auto use = l.underlayUse(address, host_); !use.empty())
    return refuse(address.str() + " is " + use + ", never a remote /32");
  model::RemoteEndpoint r;
  r.address = address;
  r.next_hop = l.choose(route->second);
  r.origin = std::string(model::RemoteEndpoint::kKernelOriginPrefix) +
             offload::routeProtocolName(route->second.protocol);
  if (current && current->next_hop == r.next_hop && current->origin == r.origin) return;
  if (auto checked = admission_.checkRemoteReplacing(r, true); !checked) {
    // An address of a local port, the gateway, an underlay neighbour: the
    // route stays in the kernel, not in hardware.
    return refuse(checked.error().message);
  }
  l.refused.erase(address);
  admission_.putRemote(std::move(r));
}

void Controller::applyRouteEvents(const offload::RouteEvents& events, bool reconcile_now) {
  if (!learned_) return;
  auto& l = *learned_;
  const auto now = options_.now();
  if (events.resynced) {
    ++l.resyncs;
    l.last_resync = now;
    l.last_resync_wall = std::chrono::system_clock::now();
    l.last_resync_reason = events.resync_reason;
    spdlog::info("routes: resynchronised from the kernel ({}): {} routes, {} neighbours changed",
                 events.resync_reason, events.routes.size(), events.neighbours.size());
  }
  l.route_events += events.routes.size();
  l.neighbour_events += events.neighbours.size();
  l.noteEvents(now, events.routes.size() + events.neighbours.size());
  if (events.empty()) return;
  beginInternalBatch();
  std::unordered_set<Ipv4Addr> recheck;

  // Next hops first: the routes below choose among the resolved ones.
  std::unordered_set<Ipv4Addr> moved;  // hops whose effective MAC changed
  for (const auto& [hop, mac] : events.neighbours) {
    const auto before = l.macOf(hop);
    if (mac) {
      l.neighbours[hop] = *mac;
    } else {
      l.neighbours.erase(hop);
    }
    const auto after = l.macOf(hop);
    if (before.has_value() != after.has_value()) recheck.insert(hop);  // an underlay neighbour or not
    if (before != after) {
      moved.insert(hop);
      spdlog::info("next hop {}: {}", hop.str(),
                   after ? "MAC " + after->str() : std::string("unresolved"));
    }
  }
  if (!moved.empty()) {
    // The planner writes next-hop MACs from the host's next_hops: the static
    // ones (overrides) and the kernel's.
    std::vector<model::UnderlayNextHop> hops = l.static_hops;
    for (const auto& [address, mac] : l.neighbours) {
      const Ipv4Addr ip = address;  // a structured binding is not captured before C++20
      if (std::none_of(hops.begin(), hops.end(), [&](const auto& s) { return s.ipv4 == ip; }))
        hops.push_back({ip, mac});
    }
    std::sort(hops.begin(), hops.end(),
              [](const auto& a, const auto& b) { return a.ipv4 < b.ipv4; });
    host_.next_hops = hops;
    admission_.setNextHops(std::move(hops));
    previous_planner_ = std::move(planner_);
    planner_ = std::make_unique<flowrules::OwnerPlanner>(host_, profile_);
    // Exactly the remotes through a moved hop are re-planned, and every
    // ECMP route that lists one chooses again.
    for (const auto& r : admission_.intent().remotes) {
      const Ipv4Addr via = r.next_hop ? *r.next_hop
                                      : host_.default_next_hop.value_or(Ipv4Addr{});
      if (moved.count(via)) admission_.touchRemote(r.address);
    }
    for (const auto& [a, route] : l.routes)
      if (route.next_hops.size() > 1 &&
          std::any_of(route.next_hops.begin(), route.next_hops.end(),
                      [&](Ipv4Addr h) { return moved.count(h) > 0; }))
        recheck.insert(a);
  }
  // Next hops counted over every route: an address that becomes (or stops
  // being) one is checked again, wherever it is in the events.
  std::unordered_set<Ipv4Addr> released;  // no longer a next hop: checked last
  const auto countHops = [&](const offload::LearnedRoute& r, int delta) {
    for (const auto hop : r.next_hops) {
      auto& n = l.hop_refs[hop];
      if (delta > 0 && n++ == 0) recheck.insert(hop);
      if (delta < 0 && --n == 0) {
        l.hop_refs.erase(hop);
        recheck.insert(hop);
        released.insert(hop);
      }
    }
  };
  for (const auto& [address, route] : events.routes) {
    if (auto it = l.routes.find(address); it != l.routes.end()) countHops(it->second, -1);
    if (route) {
      l.routes[address] = *route;
      countHops(*route, +1);
    } else {
      l.routes.erase(address);
    }
    recheck.insert(address);
  }
  if (events.uplink_prefixes && *events.uplink_prefixes != l.uplink_prefixes) {
    l.uplink_prefixes = *events.uplink_prefixes;
    std::string list;
    for (const auto& p : l.uplink_prefixes) list += (list.empty() ? "" : ", ") + p.str();
    spdlog::info("uplink {} addresses: {}", host_.uplink_netdev, list.empty() ? "none" : list);
    for (const auto& [a, _] : l.routes) recheck.insert(a);
  }
  // Underlay addresses first: their remotes go before a route through them
  // is checked; addresses that stopped being next hops last, once the
  // routes through them are gone or moved. So the result does not depend on
  // the order of arrival.
  for (const auto& [hop, n] : l.hop_refs) released.erase(hop);  // counted again since
  std::vector<Ipv4Addr> later, last;
  later.reserve(recheck.size());
  for (const auto a : recheck) {
    if (!l.underlayUse(a, host_).empty()) {
      applyLearned(a);
    } else if (released.count(a)) {
      last.push_back(a);
    } else {
      later.push_back(a);
    }
  }
  for (const auto a : later) applyLearned(a);
  for (const auto a : last) applyLearned(a);
  admission_.log().journal.clear();  // never persisted: the kernel is the source
  if (!admission_.log().remotes.empty() && reconcile_now) {
    const auto pass = reconcileTouched();
    scheduleRetry(pass, false);
  }
  previous_planner_.reset();
  admission_.log().undo.clear();
  if (events.routes.size() + moved.size() > 0)
    spdlog::info("routes: {} route changes, {} next hops moved; {} remotes learned",
                 events.routes.size(), moved.size(), l.routes.size());
}

// After a batch of requests: a learned route that a removed remote of
// another origin had hidden comes back.
void Controller::reinstateLearned() {
  if (!learned_ || learned_->routes.empty()) return;
  std::vector<Ipv4Addr> back;
  for (const auto& [address, before] : admission_.log().remotes) {
    if (!learned_->routes.count(address)) continue;
    const auto* now = findRemote(address);
    if (!now) back.push_back(address);
  }
  if (back.empty()) return;
  beginInternalBatch();
  for (const auto a : back) applyLearned(a);
  admission_.log().journal.clear();
  if (!admission_.log().remotes.empty()) {
    const auto pass = reconcileTouched();
    scheduleRetry(pass, false);
  }
  admission_.log().undo.clear();
}

json Controller::learnedStatusJson(bool fresh) const {
  if (!learned_) return json{{"enabled", false}};
  const auto& l = *learned_;
  if (!fresh && !l.status_cache.is_null() &&
      options_.now() - l.status_cached_at < std::chrono::seconds(1))
    return l.status_cache;
  std::map<std::string, std::size_t> by_origin;
  std::map<Ipv4Addr, std::size_t> hop_use;  // remotes per next hop
  std::size_t learned = 0;
  for (const auto& r : admission_.intent().remotes) {
    if (r.learned()) {
      ++learned;
      ++by_origin[r.origin.substr(std::char_traits<char>::length(
          model::RemoteEndpoint::kKernelOriginPrefix))];
    }
    if (host_.underlay == model::UnderlayMode::kRouted) {
      const auto via = r.next_hop ? r.next_hop : host_.default_next_hop;
      if (via) ++hop_use[*via];
    }
  }
  std::size_t shadowed = 0;
  for (const auto& [address, route] : l.routes)
    if (const auto* r = findRemote(address); r && !r->learned()) ++shadowed;
  json protocols = json::object();
  for (const auto& [p, n] : by_origin) protocols[p] = n;
  json hops = json::array(), unresolved = json::array();
  for (const auto& [address, n] : hop_use) {
    const Ipv4Addr hop = address;  // a structured binding is not captured before C++20
    const auto mac = l.macOf(hop);
    const bool fixed = std::any_of(l.static_hops.begin(), l.static_hops.end(),
                                   [&](const auto& s) { return s.ipv4 == hop; });
    hops.push_back({{"address", hop.str()},
                    {"mac", mac ? json(mac->str()) : json(nullptr)},
                    {"source", mac ? (fixed ? "static" : "kernel") : "unresolved"},
                    {"remotes", n}});
    if (!mac) unresolved.push_back(hop.str());
  }
  const auto now = options_.now();
  const auto& wc = backends_.routes ? backends_.routes->counters() : offload::RouteWatcherCounters{};
  json last = nullptr;
  if (l.resyncs)
    last = {{"reason", l.last_resync_reason},
            {"dump_ms", wc.last_dump_ms},
            {"merge_ms", wc.last_merge_ms},
            {"seconds_ago",
             std::chrono::duration_cast<std::chrono::milliseconds>(now - l.last_resync).count() /
                 1000.0},
            {"unix_time", std::chrono::duration_cast<std::chrono::seconds>(
                              l.last_resync_wall.time_since_epoch())
                              .count()}};
  json out{{"enabled", true},
          {"learned", learned},
          {"by_protocol", protocols},
          {"routes_in_kernel", l.routes.size()},
          {"shadowed", shadowed},
          {"refused", l.refused.size()},
          {"next_hops", hops},
          {"unresolved_next_hops", unresolved},
          {"last_resync", last},
          {"resyncs", l.resyncs},
          {"overruns", wc.overruns},
          {"route_events", l.route_events},
          {"neighbour_events", l.neighbour_events},
          {"events_per_second", l.eventsPerSecond(now)}};
  l.status_cache = out;
  l.status_cached_at = now;
  return out;
}

void Controller::learnedMetrics(MetricsRegistry& m) const {
  if (!learned_) return;
  const json s = learnedStatusJson(false);
  m.describe("nicoffload_learned_remotes", "gauge",
             "Remotes learned from the kernel's routing table, by route protocol.");
  for (const auto& [p, n] : s["by_protocol"].items())
    m.set("nicoffload_learned_remotes", "protocol=\"" + p + "\"", n.get<double>());
  m.describe("nicoffload_learned_routes_not_followed", "gauge",
             "Learned routes not in the intent: shadowed by a remote of another origin, or "
             "refused (an address this host uses).");
  m.set("nicoffload_learned_routes_not_followed", "why=\"shadowed\"",
        s["shadowed"].get<double>());
  m.set("nicoffload_learned_routes_not_followed", "why=\"refused\"", s["refused"].get<double>());
  m.describe("nicoffload_next_hops_unresolved", "gauge",
             "Underlay next hops in use without a known MAC (their rules stay in software).");
  m.set("nicoffload_next_hops_unresolved", "",
        static_cast<double>(s["unresolved_next_hops"].size()));
  m.describe("nicoffload_route_events_total", "counter",
             "Route and neighbour changes read from the kernel, by kind.");
  m.set("nicoffload_route_events_total", "kind=\"route\"", s["route_events"].get<double>());
  m.set("nicoffload_route_events_total", "kind=\"neighbour\"",
        s["neighbour_events"].get<double>());
  m.describe("nicoffload_route_events_per_second", "gauge",
             "Route and neighbour changes per second over the last 10 s.");
  m.set("nicoffload_route_events_per_second", "", s["events_per_second"].get<double>());
  m.describe("nicoffload_route_resyncs_total", "counter",
             "Full dumps of the routing and neighbour tables (start, overruns).");
  m.set("nicoffload_route_resyncs_total", "", s["resyncs"].get<double>());
  m.describe("nicoffload_route_overruns_total", "counter",
             "Route watcher subscription overruns (ENOBUFS), each followed by a resync.");
  m.set("nicoffload_route_overruns_total", "", s["overruns"].get<double>());
  if (!s["last_resync"].is_null()) {
    m.describe("nicoffload_route_last_resync_timestamp_seconds", "gauge",
               "Unix time of the last full resync from the kernel.");
    m.set("nicoffload_route_last_resync_timestamp_seconds", "",
          s["last_resync"]["unix_time"].get<double>());
  }
}

json Controller::learnedExplain(Ipv4Addr address) const {
  if (!learned_) return nullptr;
  const auto& l = *learned_;
  const auto it = l.routes.find(address);
  if (it == l.routes.end()) return nullptr;
  const auto& route = it->second;
  json hops = json::array();
  for (const auto hop : route.next_hops) {
    const auto mac = l.macOf(hop);
    hops.push_back({{"address", hop.str()}, {"mac", mac ? json(mac->str()) : json(nullptr)}});
  }
  const auto* current = findRemote(address);
  json out{{"protocol", offload::routeProtocolName(route.protocol)},
           {"metric", route.metric},
           {"next_hops", hops}};
  if (current && !current->learned()) {
    out["followed"] = false;
    out["why"] = "a remote of origin '" + current->origin + "' holds " + address.str() +
                 " and wins over the kernel's route";
  } else if (auto r = l.refused.find(address); r != l.refused.end()) {
    out["followed"] = false;
    out["why"] = r->second;
  } else if (current) {
    out["followed"] = true;
    out["chosen"] = current->next_hop ? current->next_hop->str() : "";
    out["why"] =
        route.next_hops.size() == 1
            ? "the route's only next hop on the uplink"
            : "ECMP: one of " + std::to_string(route.next_hops.size()) +
                  " next hops, chosen by a hash of the destination among those with a known MAC "
                  "(all of them when none is known)";
  }
  return out;
}

}  // namespace nicoffload::daemon

namespace nicoffload::daemon {

// remote.list {"refused": true[, "offset", "limit"]}: every learned route
// not followed, by address, with the reason; paged like remote.list.
Result<json> Controller::refusedRoutes(const json& req) const {
  if (auto s = onlyKeys(req, {"refused", "offset", "limit"}); !s) return s.error();
  const auto refused = optionalBool(req, "refused", false);
  if (!refused) return refused.error();
  if (!*refused) {
    return requestError(ErrorCode::kInvalidValue, "refused", "false",
                        "refused: true lists the learned routes not followed; the remotes "
                        "themselves are remote.list without the key");
  }
  auto page = pageOf(req);
  if (!page) return page.error();
  std::vector<Ipv4Addr> addresses;
  if (learned_) {
    addresses.reserve(learned_->refused.size());
    for (const auto& [a, _] : learned_->refused) addresses.push_back(a);
  }
  std::sort(addresses.begin(), addresses.end());
  json list = json::array();
  for (std::size_t i = page->offset; i < addresses.size() && list.size() < page->limit; ++i) {
    const auto a = addresses[i];
    json entry{{"address", a.str() + "/32"}, {"reason", learned_->refused.at(a)}};
    if (auto it = learned_->routes.find(a); it != learned_->routes.end()) {
      entry["origin"] = std::string(model::RemoteEndpoint::kKernelOriginPrefix) +
                        offload::routeProtocolName(it->second.protocol);
      json hops = json::array();
      for (const auto hop : it->second.next_hops) hops.push_back(hop.str());
      entry["next_hops"] = std::move(hops);
    }
    list.push_back(std::move(entry));
  }
  if (!page->paged) return list;
  const std::size_t next = page->offset + list.size();
  return json{{"refused", std::move(list)},
              {"next", next < addresses.size() ? json(next) : json()},
              {"total", addresses.size()}};
}

}  // namespace nicoffload::daemon
