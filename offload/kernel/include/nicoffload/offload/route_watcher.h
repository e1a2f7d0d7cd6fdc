// RouteWatcher: the remote /32s a routing daemon (FRR, BIRD, ...) installs
// in the kernel, and the MACs of the underlay next hops they go through,
// followed over rtnetlink (issue 13).
//
// One NETLINK_ROUTE socket subscribed to RTNLGRP_IPV4_ROUTE, RTNLGRP_NEIGH,
// RTNLGRP_LINK, RTNLGRP_NEXTHOP and RTNLGRP_IPV4_IFADDR, read without
// blocking from the daemon's loop. A full dump (RTM_GETROUTE of the table,
// RTM_GETNEIGH and RTM_GETADDR of the uplink) on a socket of its own runs:
//   - at open(), inline;
//   - whenever the kernel may have changed routes without a RTM_DELROUTE:
//     the uplink's state changed (down, carrier lost, re-created), a nexthop
//     object was replaced or went (`ip nexthop del` flushes the routes using
//     it; a new object changes no route), an address left the uplink; the kernel removes or marks
//     such routes without notifying them (net/ipv4/fib_semantics.c fib_sync_down_dev);
//   - whenever the subscription overran (recvmsg ENOBUFS: the kernel dropped
//     notifications);
//   - when the owner asks (requestResync(): the daemon's periodic full pass
//     compares what it learned with a fresh dump; resyncNow(): inline).
// Except at open() and resyncNow(), the dump runs on a worker thread so that
// the loop keeps turning behind 100 000 routes; notifications read meanwhile
// are newer than the dump for their keys and win over it, and every other
// key takes the dump's state; what changed is reported, exactly.
// NETLINK_NO_ENOBUFS is not set, on purpose: an overrun must be known.
//
// What counts as a learned route (everything else is ignored, counted):
//   - IPv4, destination length 32 (with `ipv6`, also IPv6 length 128; then
//     the subscription adds RTNLGRP_IPV6_ROUTE), type unicast, in the
//     configured table;
//   - rtm_protocol in the configured set (default: any but the kernel's own
//     0-2 and ours, which never counts: we do not learn back what we install);
//   - at least one next hop on the uplink with a gateway (RTA_GATEWAY,
//     RTA_VIA of either family, or RTA_MULTIPATH; dead and linkdown next
//     hops are left out). Routes
//     through nexthop objects (RTA_NH_ID) are read through the kernel's
//     compatibility attributes (sysctl net.ipv4.nexthop_compat_mode = 1,
//     the default).
// Several routes to one /32 in the table (different metrics): the lowest
// metric wins, as in the kernel's FIB.
//
// Neighbours: IPv4 (with `ipv6`, also IPv6) entries on the uplink; an entry with a link-layer
// address in a usable state (REACHABLE, STALE, DELAY, PROBE, PERMANENT,
// NOARP) is resolved; INCOMPLETE, FAILED, a deleted entry or none is not.
//
// Not thread-safe: one thread polls (the daemon's loop).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/common/net_types.h"

namespace nicoffload::offload {

// One learned route, as the kernel holds it.
struct LearnedRoute {
  IpAddr address;                   // the remote /32 or /128
  std::uint8_t protocol = 0;        // rtm_protocol (186 = bgp, rtnetlink.h RTPROT_BGP)
  std::uint32_t metric = 0;         // RTA_PRIORITY
  // Gateways on the uplink, sorted, unique (ECMP: several). Either family:
  // an IPv4 route may go through an IPv6 link-local one (RTA_VIA, RFC 5549).
  std::vector<IpAddr> next_hops;
  // Those of next_hops on the second uplink (RouteWatcherOptions::uplink2),
  // sorted; empty on a single-homed host.
  std::vector<IpAddr> on_uplink2;
  bool operator==(const LearnedRoute&) const = default;
  bool onUplink2(const IpAddr& hop) const {
    return std::binary_search(on_uplink2.begin(), on_uplink2.end(), hop);
  }
};

// "bgp", "ospf", ... for the protocols routing daemons use, else the number.
std::string routeProtocolName(std::uint8_t protocol);

struct RouteWatcherOptions {
  std::string netns;                    // /run/netns name; empty = the caller's namespace
  std::string uplink;                   // the uplink netdev (required)
  // A second uplink's netdev (a dual-homed host), or empty. Its next hops,
  // neighbours and addresses count as the first's; LearnedRoute::on_uplink2
  // says which hops are on it. When either uplink goes down, its next hops
  // leave every route at once (before the resync's dump confirms it).
  std::string uplink2;
  std::uint32_t table = 254;            // routing table (254 = main)
  std::uint8_t own_protocol = 240;      // our rtm_protocol: never learned
  std::vector<std::uint8_t> protocols;  // empty = any but 0-2 and own_protocol
  // Also IPv6: /128 routes (RTNLGRP_IPV6_ROUTE) and the uplink's IPv6
  // neighbours (a host with gateway.ipv6 set).
  bool ipv6 = false;
  // SO_RCVBUF(FORCE) of the subscription. A burst larger than this (about
  // 1 KiB per notification, skb overhead included) overruns it; the watcher
  // then resynchronises from a dump. Tests shrink it to provoke an overrun.
  int receive_buffer_bytes = 32 << 20;
};

// What changed since the previous poll(), coalesced per key: the state
// now, not every step (a route added and withdrawn in between is absent).
struct RouteEvents {
  std::vector<std::pair<IpAddr, std::optional<LearnedRoute>>> routes;  // nullopt: withdrawn
  std::vector<std::pair<IpAddr, std::optional<MacAddr>>> neighbours;   // nullopt: unresolved
  // The uplink's IPv4 addresses with their prefix lengths (the subnets it
  // is on), sorted; set when they changed (and always after the start dump).
  std::optional<std::vector<Ipv4Prefix>> uplink_prefixes;
  bool resynced = false;    // a full dump ran during this poll
  std::string resync_reason;  // "start", "overrun (ENOBUFS)", "uplink up0 down", ...
  bool empty() const { return routes.empty() && neighbours.empty() && !uplink_prefixes; }
};

struct RouteWatcherCounters {
  std::uint64_t messages = 0;        // notifications read
  std::uint64_t route_messages = 0;  // RTM_NEWROUTE / RTM_DELROUTE read (any route)
  std::uint64_t neigh_messages = 0;  // RTM_NEWNEIGH / RTM_DELNEIGH read (any neighbour)
  std::uint64_t link_messages = 0;     // RTM_NEWLINK / RTM_DELLINK read (any link)
  std::uint64_t nexthop_messages = 0;  // RTM_NEWNEXTHOP / RTM_DELNEXTHOP read
  std::uint64_t address_messages = 0;  // RTM_NEWADDR / RTM_DELADDR read (IPv4, any link)
  std::uint64_t ignored_routes = 0;  // not learned: not /32, other table, protocol, no uplink hop
  std::uint64_t overruns = 0;        // recvmsg ENOBUFS
  std::uint64_t resyncs = 0;         // full dumps (start included)
  std::uint64_t resync_failures = 0;
  // Routes that lost next hops at once because their uplink went down
  // (failover ahead of the resync's dump).
  std::uint64_t uplink_down_routes = 0;
  // The last resync's cost: the dump (a worker thread's, but for open() and
  // resyncNow()) and its merge into the live set (the caller's thread).
  double last_dump_ms = 0;
  double last_merge_ms = 0;
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

  // Readable when notifications wait or a background dump is done (an
  // epoll descriptor: poll/epoll it, then call poll()).
  int fd() const { return epoll_fd_; }

  // Reads every notification waiting (never blocks), resynchronises after
  // an overrun, and returns what changed since the previous call. At most
  // `max_messages` notifications are read per call, so that the caller's
  // loop keeps turning during a flood; call again while fd() is readable.
  // Errors: kIo when the socket fails otherwise, or a resync's dump fails
  // (it is retried at the next poll).
  Result<RouteEvents> poll(std::size_t max_messages = 1u << 20);

  // Marks the set for a full dump, started by the next poll() on a worker
  // thread (fd() becomes readable so that the owner's loop calls poll()).
  // Several requests before it starts make one dump; a request while one
  // runs makes another after it.
  void requestResync(std::string reason);
  // A full dump now, inline (what notifications queued is applied first):
  // what changed since the previous report. The reconcile op uses it.
  // Errors: kIo (the dump).
  Result<RouteEvents> resyncNow(std::string reason);
  // A background dump is running.
  bool resyncRunning() const { return worker_.valid(); }

  // The learned routes and resolved neighbours as last reported by poll().
  const std::unordered_map<IpAddr, LearnedRoute>& routes() const { return reported_routes_; }
  const std::unordered_map<IpAddr, MacAddr>& neighbours() const { return reported_neigh_; }
  const std::vector<Ipv4Prefix>& uplinkPrefixes() const { return reported_prefixes_; }
  const RouteWatcherCounters& counters() const { return counters_; }
  const RouteWatcherOptions& options() const { return options_; }
  int uplinkIndex() const { return uplink_index_; }

  // Internal, public for the parser's tests: applies one rtnetlink message
  // (RTM_NEWROUTE, RTM_DELROUTE, RTM_NEWNEIGH, RTM_DELNEIGH, RTM_NEWADDR,
  // RTM_DELADDR; RTM_NEWLINK, RTM_DELLINK and RTM_*NEXTHOP ask for a resync)
  // to the set.
  void applyMessage(const void* nlmsghdr_bytes);

  // The kernel's state as read (internal; public for the dump's helpers).
  struct Candidate {
    std::uint32_t metric = 0;
    std::uint8_t protocol = 0;
    std::vector<IpAddr> next_hops;
    std::vector<IpAddr> on_uplink2;  // sorted subset of next_hops
    bool operator==(const Candidate&) const = default;
  };
  struct Tables {
    std::unordered_map<IpAddr, std::vector<Candidate>> candidates;  // one per metric
    std::unordered_map<IpAddr, MacAddr> neigh;
    std::vector<Ipv4Prefix> prefixes;  // the uplink's addresses, sorted
    int uplink_index = 0;
    std::optional<unsigned> uplink_flags;  // IFF_UP | IFF_RUNNING | IFF_LOWER_UP, from the link dump
    int uplink2_index = 0;                 // 0: no second uplink
    std::optional<unsigned> uplink2_flags;
    std::unordered_set<std::uint32_t> nexthop_ids;  // nexthop objects (NHA_ID) known
    std::uint64_t ignored_routes = 0;
  };

 private:
  explicit RouteWatcher(RouteWatcherOptions options) : options_(std::move(options)) {}
  // A dump of the three tables into a fresh Tables, in the configured
  // namespace; safe on any thread (its own socket, no member touched).
  static Result<Tables> dumpTables(const RouteWatcherOptions& options, int uplink_index);
  // Takes `dumped` as the kernel's state, except for the keys a
  // notification changed since the dump started (touched_*: newer).
  void merge(Tables dumped);
  void startWorker();
  void wake();        // makes fd() readable
  void drainWake();
  void discardQueued();  // after an overrun: the queue holds only stale news
  // Reads what the socket holds, at most `max_messages`; false when the
  // socket failed (failure set) or more messages wait.
  bool readQueued(std::size_t max_messages, std::size_t& read, std::optional<Error>& failure);
  void collect(RouteEvents& out);

  RouteWatcherOptions options_;
  int fd_ = -1;        // the subscription
  int wake_fd_ = -1;   // eventfd: a dump finished, a resync was requested
  int epoll_fd_ = -1;  // both, for the owner
  int uplink_index_ = 0;
  std::optional<unsigned> uplink_flags_;  // IFF_UP | IFF_RUNNING | IFF_LOWER_UP as last seen
  int uplink2_index_ = 0;
  std::optional<unsigned> uplink2_flags_;
  // An uplink (1: the first, 2: the second) went down: its next hops leave
  // every route now, ahead of the resync.
  void dropUplinkHops(int which);
  std::vector<char> buffer_;
  std::optional<std::string> resync_reason_;
  // The background dump, its reason, and the keys notifications changed
  // since it started.
  std::future<Result<Tables>> worker_;
  std::thread worker_thread_;
  std::string worker_reason_;
  double worker_dump_ms_ = 0;  // written by the worker before get() returns
  std::unordered_set<IpAddr> touched_routes_;
  std::unordered_set<IpAddr> touched_neigh_;
  bool touched_prefixes_ = false;
  Tables live_;
  // Keys changed since the last report, and the state last reported.
  std::unordered_set<IpAddr> dirty_routes_;
  std::unordered_set<IpAddr> dirty_neigh_;
  bool dirty_prefixes_ = false;
  std::unordered_map<IpAddr, LearnedRoute> reported_routes_;
  std::unordered_map<IpAddr, MacAddr> reported_neigh_;
  std::vector<Ipv4Prefix> reported_prefixes_;
  RouteWatcherCounters counters_;
};

}  // namespace nicoffload::offload
