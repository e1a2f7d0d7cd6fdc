// RouteWatcher: the remote /32s a routing daemon (FRR, BIRD, ...) installs
// in the kernel, and the MACs of the underlay next hops they go through,
// followed over rtnetlink (issue 13).
//
// One NETLINK_ROUTE socket subscribed to RTNLGRP_IPV4_ROUTE and
// RTNLGRP_NEIGH, read without blocking from the daemon's loop; a full dump
// (RTM_GETROUTE of the table, RTM_GETNEIGH of the uplink) on a socket of its
// own at open() and whenever the subscription overran (recvmsg ENOBUFS: the
// kernel dropped notifications, so the set is rebuilt from the tables
// themselves, and what changed is reported, exactly). NETLINK_NO_ENOBUFS is
// not set, on purpose: an overrun must be known.
//
// What counts as a learned route (everything else is ignored, counted):
//   - IPv4, destination length 32, type unicast, in the configured table;
//   - rtm_protocol in the configured set (default: any but the kernel's own
//     0-2 and ours, which never counts: we do not learn back what we install);
//   - at least one next hop on the uplink with a gateway (RTA_GATEWAY or
//     RTA_MULTIPATH; dead and linkdown next hops are left out). Routes
//     through nexthop objects (RTA_NH_ID) are read through the kernel's
//     compatibility attributes (sysctl net.ipv4.nexthop_compat_mode = 1,
//     the default).
// Several routes to one /32 in the table (different metrics): the lowest
// metric wins, as in the kernel's FIB.
//
// Neighbours: IPv4 entries on the uplink; an entry with a link-layer
// address in a usable state (REACHABLE, STALE, DELAY, PROBE, PERMANENT,
// NOARP) is resolved; INCOMPLETE, FAILED, a deleted entry or none is not.
//
// Not thread-safe: one thread polls (the daemon's loop).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/common/net_types.h"

namespace nicoffload::offload {

// One learned route, as the kernel holds it.
struct LearnedRoute {
  Ipv4Addr address;                 // the remote /32
  std::uint8_t protocol = 0;        // rtm_protocol (186 = bgp, rtnetlink.h RTPROT_BGP)
  std::uint32_t metric = 0;         // RTA_PRIORITY
  std::vector<Ipv4Addr> next_hops;  // gateways on the uplink, sorted, unique (ECMP: several)
  bool operator==(const LearnedRoute&) const = default;
};

// "bgp", "ospf", ... for the protocols routing daemons use, else the number.
std::string routeProtocolName(std::uint8_t protocol);

struct RouteWatcherOptions {
  std::string netns;                    // /run/netns name; empty = the caller's namespace
  std::string uplink;                   // the uplink netdev (required)
  std::uint32_t table = 254;            // routing table (254 = main)
  std::uint8_t own_protocol = 240;      // our rtm_protocol: never learned
  std::vector<std::uint8_t> protocols;  // empty = any but 0-2 and own_protocol
  // SO_RCVBUF(FORCE) of the subscription. A burst larger than this (about
  // 1 KiB per notification, skb overhead included) overruns it; the watcher
  // then resynchronises from a dump. Tests shrink it to provoke an overrun.
  int receive_buffer_bytes = 32 << 20;
};

// What changed since the previous poll(), coalesced per key: the state
// now, not every step (a route added and withdrawn in between is absent).
struct RouteEvents {
  std::vector<std::pair<Ipv4Addr, std::optional<LearnedRoute>>> routes;  // nullopt: withdrawn
  std::vector<std::pair<Ipv4Addr, std::optional<MacAddr>>> neighbours;   // nullopt: unresolved
  bool resynced = false;    // a full dump ran during this poll
  std::string resync_reason;  // "start", "overrun (ENOBUFS)", ...
  bool empty() const { return routes.empty() && neighbours.empty(); }
};

struct RouteWatcherCounters {
  std::uint64_t messages = 0;        // notifications read
  std::uint64_t route_messages = 0;  // RTM_NEWROUTE / RTM_DELROUTE read (any route)
  std::uint64_t neigh_messages = 0;  // RTM_NEWNEIGH / RTM_DELNEIGH read (any neighbour)
  std::uint64_t ignored_routes = 0;  // not learned: not /32, other table, protocol, no uplink hop
  std::uint64_t overruns = 0;        // recvmsg ENOBUFS
  std::uint64_t resyncs = 0;         // full dumps (start included)
  std::uint64_t resync_failures = 0;
};

class RouteWatcher {
 public:
  // Subscribes, then dumps the table and the uplink's neighbours; the first
  // poll() reports that whole set (resynced = true, reason "start").
  // Errors: kInvalidValue (no uplink name), kNotFound (no such uplink in the
  // namespace), kIo (socket, bind, namespace, the dump).
  static Result<std::unique_ptr<RouteWatcher>> open(RouteWatcherOptions options);
  ~RouteWatcher();
  RouteWatcher(const RouteWatcher&) = delete;
  RouteWatcher& operator=(const RouteWatcher&) = delete;

  // Readable when notifications wait (poll/epoll it, then call poll()).
  int fd() const { return fd_; }

  // Reads every notification waiting (never blocks), resynchronises after
  // an overrun, and returns what changed since the previous call. At most
  // `max_messages` notifications are read per call, so that the caller's
  // loop keeps turning during a flood; call again while fd() is readable.
  // Errors: kIo when the socket fails otherwise, or a resync's dump fails
  // (it is retried at the next poll).
  Result<RouteEvents> poll(std::size_t max_messages = 1u << 20);

  // Marks the set for a full dump at the next poll() (also: SIGHUP).
  void requestResync(std::string reason) { resync_reason_ = std::move(reason); }

  // The learned routes and resolved neighbours as last reported by poll().
  const std::unordered_map<Ipv4Addr, LearnedRoute>& routes() const { return reported_routes_; }
  const std::unordered_map<Ipv4Addr, MacAddr>& neighbours() const { return reported_neigh_; }
  const RouteWatcherCounters& counters() const { return counters_; }
  const RouteWatcherOptions& options() const { return options_; }
  int uplinkIndex() const { return uplink_index_; }

  // Internal, public for the parser's tests: applies one rtnetlink message
  // (RTM_NEWROUTE, RTM_DELROUTE, RTM_NEWNEIGH, RTM_DELNEIGH) to the set.
  void applyMessage(const void* nlmsghdr_bytes);

 private:
  explicit RouteWatcher(RouteWatcherOptions options) : options_(std::move(options)) {}
  Status resync();
  void discardQueued();  // after an overrun: the queue holds only stale news
  bool counts(std::uint8_t protocol) const;
  void collect(RouteEvents& out);

  struct Candidate {
    std::uint32_t metric = 0;
    std::uint8_t protocol = 0;
    std::vector<Ipv4Addr> next_hops;
  };
  RouteWatcherOptions options_;
  int fd_ = -1;
  int uplink_index_ = 0;
  std::vector<char> buffer_;
  std::optional<std::string> resync_reason_;
  // The kernel's state as read: routes per address (one per metric), neighbours.
  std::unordered_map<Ipv4Addr, std::vector<Candidate>> candidates_;
  std::unordered_map<Ipv4Addr, MacAddr> neigh_;
  // Keys changed since the last report, and the state last reported.
  std::unordered_set<Ipv4Addr> dirty_routes_;
  std::unordered_set<Ipv4Addr> dirty_neigh_;
  std::unordered_map<Ipv4Addr, LearnedRoute> reported_routes_;
  std::unordered_map<Ipv4Addr, MacAddr> reported_neigh_;
  RouteWatcherCounters counters_;
};

}  // namespace nicoffload::offload
