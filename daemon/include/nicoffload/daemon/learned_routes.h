// LearnedRoutes: the remotes and next-hop MACs learned from the kernel
// (kernel.learn_routes, issue 13).
//
// The RouteWatcher reports the /32 routes (and, with gateway.ipv6, the /128
// routes) a routing daemon installed and the uplink's neighbours; a next hop
// may be of either family (an IPv4 route through an IPv6 link-local one,
// RFC 5549). apply() turns them into remote endpoints of origin
// "kernel:<protocol>" and next-hop MACs, through Admission's primitives (the
// same undo log and touched owners as a batch of requests); the caller then
// reconciles what they touched, and never journals them: the kernel is
// their source, and on start the watcher's first dump brings them back.
//
// Rules:
//   - a remote of another origin (remote.add, remote.sync) wins over a
//     learned one at the same address; the learned route comes back when
//     that remote is removed (reinstate());
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
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/daemon/admission.h"
#include "nicoffload/daemon/metrics.h"
#include "nicoffload/model/intent.h"
#include "nicoffload/offload/route_watcher.h"

namespace nicoffload::daemon {

class LearnedRoutes {
 public:
  using Clock = std::chrono::steady_clock;
  // `host`: the static next hops (overrides), learn_prefixes, the default
  // next hop and the uplink; `now`: the daemon's clock.
  LearnedRoutes(const model::HostConfig& host, std::function<Clock::time_point()> now);

  // Called with every next hop and its MAC (static first, then the
  // kernel's, sorted by address) when a next hop's MAC changed: the planner
  // is rebuilt from them before the remotes through it are touched.
  using NextHopsChanged = std::function<void(std::vector<model::UnderlayNextHop>)>;
  struct Applied {
    std::size_t route_changes = 0;
    std::size_t hops_moved = 0;  // next hops whose MAC changed
  };
  // Counts the events (rates, resyncs); apply() then applies them.
  void count(const offload::RouteEvents& events);
  // Applies route and neighbour changes into `admission` (its log, begun
  // by the caller). Never fails: a route that may not be followed is
  // refused, with its reason.
  Applied apply(const offload::RouteEvents& events, Admission& admission,
                const NextHopsChanged& next_hops_changed);
  // The learned routes of `addresses`, which a remote of another origin hid
  // and which no remote holds now (a batch removed it): followed again.
  void reinstate(const std::vector<IpAddr>& addresses, Admission& admission);
  bool empty() const { return routes_.empty(); }
  std::size_t size() const { return routes_.size(); }
  bool routed(const IpAddr& address) const { return routes_.count(address) > 0; }

  // The uplink a next hop is on (0 the first, 1 the second): the static
  // next hop's underlay.next_hops[].uplink, else where the kernel's routes
  // list it.
  std::uint8_t uplinkOf(const IpAddr& hop) const;

  // Why `a` is an address of the underlay (a next hop, a neighbour on the
  // uplink, the uplink's own address or subnet), or empty.
  std::string underlayUse(const IpAddr& a) const;

  // status.routes; fresh = false (metrics, published every loop turn): at
  // most 1 s old, so that a loop turn does not walk 100 000 remotes.
  nlohmann::json statusJson(const Admission& admission,
                            const offload::RouteWatcherCounters& watcher, bool fresh = true) const;
  void metrics(MetricsRegistry& m, const Admission& admission,
               const offload::RouteWatcherCounters& watcher) const;
  // explain of an address: the kernel's route and whether it is followed;
  // null: not a learned route.
  nlohmann::json explain(const IpAddr& address, const model::RemoteEndpoint* current) const;
  // remote.list {"refused": true[, "offset", "limit"]}: the learned routes
  // not followed, with why. Errors: the request's fields.
  Result<nlohmann::json> refusedList(const nlohmann::json& request) const;

 private:
  // The learned route of `address` (or its absence) into the intent.
  void follow(const IpAddr& address, Admission& admission);
  // The MAC of an underlay next hop: the static override, else the kernel's.
  std::optional<MacAddr> macOf(const IpAddr& hop) const;
  // The next hop a route's remote goes through (ECMP: see above).
  IpAddr choose(const offload::LearnedRoute& route) const;
  void noteEvents(Clock::time_point now, std::size_t n);
  double eventsPerSecond(Clock::time_point now) const;

  model::HostConfig host_;
  std::function<Clock::time_point()> now_;
  std::vector<model::UnderlayNextHop> static_hops_;  // underlay.next_hops: overrides
  std::unordered_map<IpAddr, offload::LearnedRoute> routes_;  // as the kernel holds them
  std::unordered_map<IpAddr, MacAddr> neighbours_;            // resolved uplink neighbours
  std::unordered_map<IpAddr, std::string> refused_;           // learned, not followed: why
  // The uplink's addresses (the subnets it is on), from the watcher.
  std::vector<Ipv4Prefix> uplink_prefixes_;
  // Every next hop of every learned route (ECMP: all of them, not only the
  // chosen one), with the number of routes listing it: the underlay's
  // addresses, never remotes themselves, whatever the order they arrived in.
  std::unordered_map<IpAddr, std::uint32_t> hop_refs_;
  // Of those, the ones the routes list on the second uplink, with their
  // count: the planner sends their remotes out of it.
  std::unordered_map<IpAddr, std::uint32_t> uplink2_refs_;
  std::uint64_t route_events_ = 0;
  std::uint64_t neighbour_events_ = 0;
  std::uint64_t resyncs_ = 0;
  std::string last_resync_reason_;
  Clock::time_point last_resync_{};
  std::chrono::system_clock::time_point last_resync_wall_{};
  static constexpr std::chrono::seconds kRateWindow{10};
  std::deque<std::pair<Clock::time_point, std::size_t>> window_;  // events per poll
  mutable nlohmann::json status_cache_;  // statusJson(false): the last one computed, and when
  mutable Clock::time_point status_cached_at_{};
};

}  // namespace nicoffload::daemon
