// LearnedRoutes: remotes and next hops learned from the kernel (issue 13); the rules
// are in learned_routes.h.
#include "nicoffload/daemon/learned_routes.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <unordered_set>

#include "request_fields.h"

namespace nicoffload::daemon {
namespace {

// Deterministic spread of destinations over next hops (Knuth's multiplicative
// hash of the address).
std::size_t spread(const IpAddr& address, std::size_t n) {
  const std::uint64_t key = address.isV4() ? address.v4().value : std::hash<IpAddr>{}(address);
  const std::uint64_t h = key * 2654435761u;
  return static_cast<std::size_t>((h >> 16) % n);
}

}  // namespace

LearnedRoutes::LearnedRoutes(const model::HostConfig& host, std::function<Clock::time_point()> now)
    : host_(host), now_(std::move(now)), static_hops_(host.next_hops) {}

std::string LearnedRoutes::underlayUse(const IpAddr& a) const {
  if (auto it = hop_refs_.find(a); it != hop_refs_.end())
    return "a next hop of " + std::to_string(it->second) +
           (it->second == 1 ? " learned route" : " learned routes") + " (the underlay)";
  for (const auto& s : static_hops_)
    if (s.address == a) return "an underlay next hop (underlay.next_hops)";
  if (host_.default_next_hop && *host_.default_next_hop == a)
    return "the underlay's default next hop (underlay.default_next_hop)";
  for (const auto& p : uplink_prefixes_) {
    if (!a.isV4()) break;  // the uplink's IPv4 subnets
    if (p.addr == a.v4()) return "this host's own address on the uplink (" + p.str() + ")";
    if (p.len < 32 && p.contains(a.v4()))
      return "on the uplink's subnet " +
             Ipv4Prefix{Ipv4Addr{a.v4().value & ~(~std::uint32_t{0} >> p.len)}, p.len}.str() +
             " (the underlay)";
  }
  if (neighbours_.count(a)) return "a neighbour on the uplink (the underlay)";
  return {};
}

std::uint8_t LearnedRoutes::uplinkOf(const IpAddr& hop) const {
  for (const auto& s : static_hops_)
    if (s.address == hop) return s.uplink;
  return uplink2_refs_.count(hop) ? 1 : 0;
}

std::optional<MacAddr> LearnedRoutes::macOf(const IpAddr& hop) const {
  for (const auto& s : static_hops_)
    if (s.address == hop) return s.mac;
  if (auto it = neighbours_.find(hop); it != neighbours_.end()) return it->second;
  return std::nullopt;
}

IpAddr LearnedRoutes::choose(const offload::LearnedRoute& route) const {
  std::vector<IpAddr> resolved;
  for (const auto& hop : route.next_hops)
    if (macOf(hop)) resolved.push_back(hop);
  const auto& pool = resolved.empty() ? route.next_hops : resolved;
  return pool[spread(route.address, pool.size())];
}

void LearnedRoutes::noteEvents(Clock::time_point now, std::size_t n) {
  if (n == 0) return;
  window_.emplace_back(now, n);
  while (!window_.empty() && now - window_.front().first > kRateWindow) window_.pop_front();
}

double LearnedRoutes::eventsPerSecond(Clock::time_point now) const {
  std::size_t n = 0;
  for (const auto& [t, k] : window_)
    if (now - t <= kRateWindow) n += k;
  return static_cast<double>(n) / std::chrono::duration<double>(kRateWindow).count();
}

// The learned route of `address` (or its absence) into the intent.
void LearnedRoutes::follow(const IpAddr& address, Admission& admission) {
  const model::RemoteEndpoint* current = admission.findRemote(address);
  const auto route = routes_.find(address);
  if (route == routes_.end() || route->second.next_hops.empty()) {
    refused_.erase(address);
    if (current && current->learned()) admission.eraseRemote(address);
    return;
  }
  if (current && !current->learned()) {  // remote.add / remote.sync win
    refused_.erase(address);
    return;
  }
  const auto refuse = [&](std::string why) {
    auto [it, first] = refused_.try_emplace(address);
    if (first || it->second != why)
      spdlog::warn("learned route {} ({}) not followed: {}", address.str(),
                   offload::routeProtocolName(route->second.protocol), why);
    it->second = std::move(why);
    if (current) admission.eraseRemote(address);
  };
  // The checks remote.add applies, the operator's filter, then the underlay.
  if (auto why = address.isV4() ? model::unusableHostAddress(address.v4())
                                : model::unusableHostAddress(address.v6()))
    return refuse(*why);
  if (address.isV4()) {
    for (const auto& p : host_.learn_deny)
      if (p.contains(address.v4()))
        return refuse("excluded by kernel.learn_prefixes.deny " + p.str());
    if (!host_.learn_allow.empty() &&
        std::none_of(host_.learn_allow.begin(), host_.learn_allow.end(),
                     [&](const Ipv4Prefix& p) { return p.contains(address.v4()); }))
      return refuse("not in kernel.learn_prefixes.allow");
  } else if (!host_.learn_allow.empty()) {
    // The filter lists IPv4 prefixes: an allow list admits no /128.
    return refuse("not in kernel.learn_prefixes.allow (which lists IPv4 prefixes only)");
  }
  if (auto use = underlayUse(address); !use.empty())
    return refuse(address.str() + " is " + use + ", never a remote host address");
  model::RemoteEndpoint r;
  r.address = address;
  r.next_hop = choose(route->second);
  r.origin = std::string(model::RemoteEndpoint::kKernelOriginPrefix) +
             offload::routeProtocolName(route->second.protocol);
  if (current && current->next_hop == r.next_hop && current->origin == r.origin) return;
  if (auto checked = admission.checkRemoteReplacing(r, true); !checked) {
    // An address of a local port, the gateway, an underlay neighbour: the
    // route stays in the kernel, not in hardware.
    return refuse(checked.error().message);
  }
  refused_.erase(address);
  admission.putRemote(std::move(r));
}

void LearnedRoutes::count(const offload::RouteEvents& events) {
  const auto now = now_();
  if (events.resynced) {
    ++resyncs_;
    last_resync_ = now;
    last_resync_wall_ = std::chrono::system_clock::now();
    last_resync_reason_ = events.resync_reason;
    spdlog::info("routes: resynchronised from the kernel ({}): {} routes, {} neighbours changed",
                 events.resync_reason, events.routes.size(), events.neighbours.size());
  }
  route_events_ += events.routes.size();
  neighbour_events_ += events.neighbours.size();
  noteEvents(now, events.routes.size() + events.neighbours.size());
}

LearnedRoutes::Applied LearnedRoutes::apply(const offload::RouteEvents& events, Admission& admission,
                                            const NextHopsChanged& next_hops_changed) {
  std::unordered_set<IpAddr> recheck;

  // Next hops first: the routes below choose among the resolved ones.
  std::unordered_set<IpAddr> moved;  // hops whose effective MAC changed
  for (const auto& [hop, mac] : events.neighbours) {
    const auto before = macOf(hop);
    if (mac) {
      neighbours_[hop] = *mac;
    } else {
      neighbours_.erase(hop);
    }
    const auto after = macOf(hop);
    if (before.has_value() != after.has_value()) recheck.insert(hop);  // an underlay neighbour or not
    if (before != after) {
      moved.insert(hop);
      spdlog::info("next hop {}: {}", hop.str(),
                   after ? "MAC " + after->str() : std::string("unresolved"));
    }
  }
  // The planner writes next-hop MACs (and uplinks) from the host's
  // next_hops: the static ones (overrides) and the kernel's.
  const auto publish = [&](const std::unordered_set<IpAddr>& changed) {
    std::vector<model::UnderlayNextHop> hops = static_hops_;
    for (const auto& [address, mac] : neighbours_) {
      const IpAddr ip = address;  // a structured binding is not captured before C++20
      if (std::none_of(hops.begin(), hops.end(), [&](const auto& s) { return s.address == ip; }))
        hops.push_back({ip, mac, static_cast<std::uint8_t>(uplink2_refs_.count(ip) ? 1 : 0)});
    }
    std::sort(hops.begin(), hops.end(),
              [](const auto& a, const auto& b) { return a.address < b.address; });
    next_hops_changed(std::move(hops));
    // Exactly the remotes through a changed hop are re-planned.
    for (const auto& r : admission.intent().remotes) {
      const IpAddr via = r.next_hop ? *r.next_hop : host_.default_next_hop.value_or(IpAddr{});
      if (changed.count(via)) admission.touchRemote(r.address);
    }
  };
  if (!moved.empty()) {
    publish(moved);
    // Every ECMP route that lists a moved hop chooses again.
    for (const auto& [a, route] : routes_)
      if (route.next_hops.size() > 1 &&
          std::any_of(route.next_hops.begin(), route.next_hops.end(),
                      [&](const IpAddr& h) { return moved.count(h) > 0; }))
        recheck.insert(a);
  }
  // Next hops counted over every route: an address that becomes (or stops
  // being) one is checked again, wherever it is in the events.
  std::unordered_set<IpAddr> released;  // no longer a next hop: checked last
  // Hops listed on the second uplink, and whether they were before.
  std::unordered_map<IpAddr, bool> was_on_uplink2;
  const auto countHops = [&](const offload::LearnedRoute& r, int delta) {
    for (const auto hop : r.on_uplink2) {
      was_on_uplink2.try_emplace(hop, uplink2_refs_.count(hop) > 0);
      auto& n = uplink2_refs_[hop];
      n = delta > 0 ? n + 1 : n - 1;
      if (n == 0) uplink2_refs_.erase(hop);
    }
    for (const auto hop : r.next_hops) {
      auto& n = hop_refs_[hop];
      if (delta > 0 && n++ == 0) recheck.insert(hop);
      if (delta < 0 && --n == 0) {
        hop_refs_.erase(hop);
        recheck.insert(hop);
        released.insert(hop);
      }
    }
  };
  for (const auto& [address, route] : events.routes) {
    if (auto it = routes_.find(address); it != routes_.end()) countHops(it->second, -1);
    if (route) {
      routes_[address] = *route;
      countHops(*route, +1);
    } else {
      routes_.erase(address);
    }
    recheck.insert(address);
  }
  // A hop's uplink is where the routes list it: one that moved between the
  // uplinks is published again (its rules leave through the other).
  std::unordered_set<IpAddr> rehomed;
  for (const auto& [hop, was] : was_on_uplink2)
    if (was != (uplink2_refs_.count(hop) > 0)) rehomed.insert(hop);
  if (!rehomed.empty()) publish(rehomed);
  if (events.uplink_prefixes && *events.uplink_prefixes != uplink_prefixes_) {
    uplink_prefixes_ = *events.uplink_prefixes;
    std::string list;
    for (const auto& p : uplink_prefixes_) list += (list.empty() ? "" : ", ") + p.str();
    spdlog::info("uplink {} addresses: {}", host_.uplink_netdev, list.empty() ? "none" : list);
    for (const auto& [a, _] : routes_) recheck.insert(a);
  }
  // Underlay addresses first: their remotes go before a route through them
  // is checked; addresses that stopped being next hops last, once the
  // routes through them are gone or moved. So the result does not depend on
  // the order of arrival.
  for (const auto& [hop, n] : hop_refs_) released.erase(hop);  // counted again since
  std::vector<IpAddr> later, last;
  later.reserve(recheck.size());
  for (const auto a : recheck) {
    if (!underlayUse(a).empty()) {
      follow(a, admission);
    } else if (released.count(a)) {
      last.push_back(a);
    } else {
      later.push_back(a);
    }
  }
  for (const auto a : later) follow(a, admission);
  for (const auto a : last) follow(a, admission);
  return {events.routes.size(), moved.size()};
}

void LearnedRoutes::reinstate(const std::vector<IpAddr>& addresses, Admission& admission) {
  for (const auto a : addresses) follow(a, admission);
}

json LearnedRoutes::statusJson(const Admission& admission, const offload::RouteWatcherCounters& wc,
                               bool fresh) const {
  if (!fresh && !status_cache_.is_null() &&
      now_() - status_cached_at_ < std::chrono::seconds(1))
    return status_cache_;
  std::map<std::string, std::size_t> by_origin;
  std::map<IpAddr, std::size_t> hop_use;  // remotes per next hop
  std::size_t learned = 0;
  for (const auto& r : admission.intent().remotes) {
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
  for (const auto& [address, route] : routes_)
    if (const auto* r = admission.findRemote(address); r && !r->learned()) ++shadowed;
  json protocols = json::object();
  for (const auto& [p, n] : by_origin) protocols[p] = n;
  json hops = json::array(), unresolved = json::array();
  std::vector<std::size_t> per_uplink(host_.uplinkCount(), 0);
  for (const auto& [address, n] : hop_use) {
    const IpAddr hop = address;  // a structured binding is not captured before C++20
    const auto mac = macOf(hop);
    const bool fixed = std::any_of(static_hops_.begin(), static_hops_.end(),
                                   [&](const auto& s) { return s.address == hop; });
    const std::size_t uplink = std::min<std::size_t>(uplinkOf(hop), per_uplink.size() - 1);
    per_uplink[uplink] += n;
    hops.push_back({{"address", hop.str()},
                    {"mac", mac ? json(mac->str()) : json(nullptr)},
                    {"source", mac ? (fixed ? "static" : "kernel") : "unresolved"},
                    {"uplink", host_.uplinkNetdev(uplink)},
                    {"remotes", n}});
    if (!mac) unresolved.push_back(hop.str());
  }
  // Remotes per uplink (by their chosen next hop's): where the egress goes.
  json uplinks = json::array();
  for (std::size_t i = 0; i < per_uplink.size(); ++i)
    uplinks.push_back({{"netdev", host_.uplinkNetdev(i)}, {"remotes", per_uplink[i]}});
  const auto now = now_();
  json last = nullptr;
  if (resyncs_)
    last = {{"reason", last_resync_reason_},
            {"dump_ms", wc.last_dump_ms},
            {"merge_ms", wc.last_merge_ms},
            {"seconds_ago",
             std::chrono::duration_cast<std::chrono::milliseconds>(now - last_resync_).count() /
                 1000.0},
            {"unix_time", std::chrono::duration_cast<std::chrono::seconds>(
                              last_resync_wall_.time_since_epoch())
                              .count()}};
  json out{{"enabled", true},
           {"learned", learned},
           {"by_protocol", protocols},
           {"routes_in_kernel", routes_.size()},
           {"shadowed", shadowed},
           {"refused", refused_.size()},
           {"next_hops", hops},
           {"uplinks", uplinks},
           {"unresolved_next_hops", unresolved},
           {"last_resync", last},
           {"resyncs", resyncs_},
           {"overruns", wc.overruns},
           {"route_events", route_events_},
           {"neighbour_events", neighbour_events_},
           {"events_per_second", eventsPerSecond(now)}};
  status_cache_ = out;
  status_cached_at_ = now;
  return out;
}

void LearnedRoutes::metrics(MetricsRegistry& m, const Admission& admission,
                            const offload::RouteWatcherCounters& watcher) const {
  const json s = statusJson(admission, watcher, false);
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

json LearnedRoutes::explain(const IpAddr& address, const model::RemoteEndpoint* current) const {
  const auto it = routes_.find(address);
  if (it == routes_.end()) return nullptr;
  const auto& route = it->second;
  json hops = json::array();
  for (const auto hop : route.next_hops) {
    const auto mac = macOf(hop);
    hops.push_back({{"address", hop.str()}, {"mac", mac ? json(mac->str()) : json(nullptr)}});
  }
  json out{{"protocol", offload::routeProtocolName(route.protocol)},
           {"metric", route.metric},
           {"next_hops", hops}};
  if (current && !current->learned()) {
    out["followed"] = false;
    out["why"] = "a remote of origin '" + current->origin + "' holds " + address.str() +
                 " and wins over the kernel's route";
  } else if (auto r = refused_.find(address); r != refused_.end()) {
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

// remote.list {"refused": true[, "offset", "limit"]}: every learned route
// not followed, by address, with the reason; paged like remote.list.
Result<json> LearnedRoutes::refusedList(const json& req) const {
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
  std::vector<IpAddr> addresses;
  addresses.reserve(refused_.size());
  for (const auto& [a, _] : refused_) addresses.push_back(a);
  std::sort(addresses.begin(), addresses.end());
  json list = json::array();
  for (std::size_t i = page->offset; i < addresses.size() && list.size() < page->limit; ++i) {
    const auto a = addresses[i];
    json entry{{"address", a.str() + "/" + std::to_string(a.hostLength())},
               {"reason", refused_.at(a)}};
    if (auto it = routes_.find(a); it != routes_.end()) {
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
