#include "nicoffload/offload/route_watcher.h"

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/nexthop.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/msg.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "netlink_dump.h"
#include "rtnl_socket.h"
#include "nicoffload/offload/netns.h"

namespace nicoffload::offload {
namespace {

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

using detail::dumpRequest;

// linux/if.h IFF_LOWER_UP (carrier), which glibc's net/if.h does not define.
constexpr unsigned kIffLowerUp = 1u << 16;

Ipv4Addr addrOf(const rtattr* a) {
  std::uint32_t be = 0;
  std::memcpy(&be, RTA_DATA(a), sizeof be);
  return Ipv4Addr{ntohl(be)};
}

// An address attribute of `family` (RTA_DST, RTA_GATEWAY, NDA_DST).
std::optional<IpAddr> ipOf(const rtattr* a, int family) {
  if (family == AF_INET && RTA_PAYLOAD(a) >= 4) return IpAddr(addrOf(a));
  if (family == AF_INET6 && RTA_PAYLOAD(a) >= 16) {
    Ipv6Addr v6;
    std::memcpy(v6.bytes.data(), RTA_DATA(a), 16);
    return IpAddr(v6);
  }
  return std::nullopt;
}

std::optional<IpAddr> viaOf(const rtattr* a) {
  return detail::viaAddr(RTA_DATA(a), RTA_PAYLOAD(a));
}

std::uint32_t u32Of(const rtattr* a) {
  std::uint32_t v = 0;
  std::memcpy(&v, RTA_DATA(a), sizeof v);
  return v;
}

// A route message taken apart: what the watcher needs of it.
struct ParsedRoute {
  bool relevant = false;  // an IPv4 /32 (or, with ipv6, an IPv6 /128) unicast in the table
  IpAddr address;
  std::uint8_t protocol = 0;
  std::uint32_t metric = 0;
  std::vector<IpAddr> next_hops;   // on an uplink, with a gateway, alive
  std::vector<IpAddr> on_uplink2;  // those on the second uplink
  bool ipv6 = false;
};

ParsedRoute parseRoute(const nlmsghdr* h, std::uint32_t table, int uplink, int uplink2, bool ipv6) {
  ParsedRoute out;
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return out;
  const auto* rtm = static_cast<const rtmsg*>(NLMSG_DATA(h));
  const int family = rtm->rtm_family;
  if (!(family == AF_INET && rtm->rtm_dst_len == 32) &&
      !(ipv6 && family == AF_INET6 && rtm->rtm_dst_len == 128))
    return out;
  std::uint32_t rt_table = rtm->rtm_table;
  std::optional<IpAddr> dst;
  int oif = 0;
  std::optional<IpAddr> gateway;
  const rtattr* multipath = nullptr;
  int len = static_cast<int>(RTM_PAYLOAD(h));
  for (const rtattr* a = RTM_RTA(rtm); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    const auto payload = RTA_PAYLOAD(a);
    switch (a->rta_type) {
      case RTA_TABLE: if (payload >= 4) rt_table = u32Of(a); break;
      case RTA_DST:
        dst = ipOf(a, family);
        break;
      case RTA_OIF: if (payload >= 4) oif = static_cast<int>(u32Of(a)); break;
      case RTA_GATEWAY:
        gateway = ipOf(a, family);
        break;
      case RTA_VIA:
        gateway = viaOf(a);
        break;
      case RTA_PRIORITY: if (payload >= 4) out.metric = u32Of(a); break;
      case RTA_MULTIPATH: multipath = a; break;
      default: break;
    }
  }
  if (rt_table != table || !dst || rtm->rtm_type != RTN_UNICAST) return out;
  out.relevant = true;
  out.address = *dst;
  out.ipv6 = family == AF_INET6;
  out.protocol = rtm->rtm_protocol;
  const unsigned dead = RTNH_F_DEAD | RTNH_F_LINKDOWN;
  if (multipath) {
    int left = static_cast<int>(RTA_PAYLOAD(multipath));
    for (auto* nh = static_cast<const rtnexthop*>(RTA_DATA(multipath)); RTNH_OK(nh, left);
         left -= NLMSG_ALIGN(nh->rtnh_len), nh = RTNH_NEXT(nh)) {
      const bool second = uplink2 != 0 && nh->rtnh_ifindex == uplink2;
      if ((nh->rtnh_ifindex != uplink && !second) || (nh->rtnh_flags & dead)) continue;
      int alen = static_cast<int>(nh->rtnh_len) - static_cast<int>(sizeof(rtnexthop));
      for (const rtattr* a = RTNH_DATA(nh); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
        std::optional<IpAddr> hop;
        if (a->rta_type == RTA_GATEWAY) hop = ipOf(a, family);
        if (a->rta_type == RTA_VIA) hop = viaOf(a);
        if (hop) out.next_hops.push_back(*hop);
        if (hop && second) out.on_uplink2.push_back(*hop);
      }
    }
  } else if ((oif == uplink || (uplink2 != 0 && oif == uplink2)) && gateway &&
             !(rtm->rtm_flags & dead)) {
    out.next_hops.push_back(*gateway);
    if (oif == uplink2) out.on_uplink2.push_back(*gateway);
  }
  std::sort(out.on_uplink2.begin(), out.on_uplink2.end());
  out.on_uplink2.erase(std::unique(out.on_uplink2.begin(), out.on_uplink2.end()),
                       out.on_uplink2.end());
  std::sort(out.next_hops.begin(), out.next_hops.end());
  out.next_hops.erase(std::unique(out.next_hops.begin(), out.next_hops.end()),
                      out.next_hops.end());
  return out;
}

bool usable(std::uint16_t state) {
  return state & (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP);
}

}  // namespace

std::string routeProtocolName(std::uint8_t protocol) {
  switch (protocol) {
    case 3: return "boot";
    case 4: return "static";
    case 11: return "zebra";
    case 12: return "bird";
    case 16: return "dhcp";
    case 42: return "babel";
    case 186: return "bgp";
    case 187: return "isis";
    case 188: return "ospf";
    case 189: return "rip";
    case 192: return "eigrp";
    default: return std::to_string(protocol);
  }
}

Result<std::unique_ptr<RouteWatcher>> RouteWatcher::open(RouteWatcherOptions options) {
  if (options.uplink.empty())
    return makeError(ErrorCode::kInvalidValue, "uplink.netdev", "",
                     "the route watcher follows routes through the uplink: name its netdev");
  std::unique_ptr<RouteWatcher> w(new RouteWatcher(std::move(options)));
  {
    NetnsGuard in(w->options_.netns);
    if (!in.ok()) return in.error();
    const unsigned index = if_nametoindex(w->options_.uplink.c_str());
    if (index == 0)
      return makeError(ErrorCode::kNotFound, "uplink.netdev", w->options_.uplink,
                       "no netdev '" + w->options_.uplink + "'" +
                           (w->options_.netns.empty() ? "" : " in namespace " + w->options_.netns) +
                           ": routes through it cannot be followed");
    w->uplink_index_ = static_cast<int>(index);
    if (!w->options_.uplink2.empty()) {
      const unsigned index2 = if_nametoindex(w->options_.uplink2.c_str());
      if (index2 == 0)
        return makeError(
            ErrorCode::kNotFound, "uplinks[1].netdev", w->options_.uplink2,
            "no netdev '" + w->options_.uplink2 + "'" +
                (w->options_.netns.empty() ? "" : " in namespace " + w->options_.netns) +
                ": routes through it cannot be followed");
      w->uplink2_index_ = static_cast<int>(index2);
    }
    detail::RtnlSocketOptions o;
    o.nonblocking = true;
    o.receive_buffer_bytes = w->options_.receive_buffer_bytes;
    o.groups = {RTNLGRP_IPV4_ROUTE, RTNLGRP_NEIGH, RTNLGRP_LINK, RTNLGRP_NEXTHOP, RTNLGRP_IPV4_IFADDR};
    if (w->options_.ipv6) o.groups.push_back(RTNLGRP_IPV6_ROUTE);
    auto fd = detail::openRtnlSocket(o);
    if (!fd) return fd.error();
    w->fd_ = *fd;
  }
  w->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  w->epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (w->wake_fd_ < 0 || w->epoll_fd_ < 0)
    return makeError(ErrorCode::kIo, "netlink", "",
                     std::string("cannot make the watcher's wake-up descriptors: ") +
                         std::strerror(errno));
  for (const int fd : {w->fd_, w->wake_fd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(w->epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0)
      return makeError(ErrorCode::kIo, "netlink", "",
                       std::string("epoll_ctl: ") + std::strerror(errno));
  }
  // Notifications are small; a recvmsg takes as many as fit.
  w->buffer_.resize(256 * 1024);
  // Subscribed first, dumped second: nothing that changes in between is lost
  // (a change then shows in both, and its notification is read after the
  // dump, which it repeats or supersedes).
  ++w->counters_.resyncs;
  auto t = dumpTables(w->options_, w->uplink_index_);
  if (!t) {
    ++w->counters_.resync_failures;
    return t.error();
  }
  w->merge(std::move(t).value());
  w->resync_reason_ = "start";  // reported by the first poll()
  return w;
}

RouteWatcher::~RouteWatcher() {
  if (worker_thread_.joinable()) worker_thread_.join();  // it writes to wake_fd_
  for (const int fd : {epoll_fd_, wake_fd_, fd_})
    if (fd >= 0) ::close(fd);
}


namespace {

bool countsProtocol(const RouteWatcherOptions& o, std::uint8_t protocol) {
  if (protocol == o.own_protocol) return false;
  if (o.protocols.empty()) return protocol > RTPROT_KERNEL;
  return std::find(o.protocols.begin(), o.protocols.end(), protocol) != o.protocols.end();
}

// What one message changed in a Tables.
struct Change {
  enum class Kind : std::uint8_t { kNone, kRoute, kNeigh, kPrefixes } kind = Kind::kNone;
  IpAddr key;
};

// Applies a route, neighbour or address message to `t` (the live set or a
// dump's); other types change nothing.
// NHA_ID of a RTM_*NEXTHOP message.
std::optional<std::uint32_t> nexthopId(const nlmsghdr* h) {
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nhmsg))) return std::nullopt;
  const auto* nh = static_cast<const nhmsg*>(NLMSG_DATA(h));
  int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(nhmsg)));
  for (auto* a = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(nh) +
                                                 NLMSG_ALIGN(sizeof(nhmsg)));
       RTA_OK(a, len); a = RTA_NEXT(a, len))
    if (a->rta_type == NHA_ID && RTA_PAYLOAD(a) >= 4) return u32Of(a);
  return std::nullopt;
}

Change applyTo(RouteWatcher::Tables& t, const nlmsghdr* h, const RouteWatcherOptions& o) {
  switch (h->nlmsg_type) {
    case RTM_NEWROUTE:
    case RTM_DELROUTE: {
      const ParsedRoute r = parseRoute(h, o.table, t.uplink_index, t.uplink2_index, o.ipv6);
      if (!r.relevant) {
        ++t.ignored_routes;
        return {};
      }
      auto& list = t.candidates[r.address];
      auto it = std::find_if(list.begin(), list.end(),
                             [&](const auto& c) { return c.metric == r.metric; });
      const bool learn =
          h->nlmsg_type == RTM_NEWROUTE && countsProtocol(o, r.protocol) && !r.next_hops.empty();
      if (!learn) ++t.ignored_routes;
      if (learn) {
        RouteWatcher::Candidate c{r.metric, r.protocol, r.next_hops, r.on_uplink2};
        if (it != list.end()) {
          *it = std::move(c);
        } else {
          list.push_back(std::move(c));
        }
      } else if (it != list.end() && r.ipv6 && h->nlmsg_type == RTM_DELROUTE &&
                 !r.next_hops.empty() &&
                 std::any_of(it->next_hops.begin(), it->next_hops.end(), [&](const IpAddr& hop) {
                   return std::find(r.next_hops.begin(), r.next_hops.end(), hop) ==
                          r.next_hops.end();
                 })) {
        // IPv6 multipath is a set of sibling routes: deleting one notifies
        // that sibling alone, and the others stay.
        const auto gone = [&](const IpAddr& hop) {
          return std::find(r.next_hops.begin(), r.next_hops.end(), hop) != r.next_hops.end();
        };
        std::erase_if(it->next_hops, gone);
        std::erase_if(it->on_uplink2, gone);
      } else if (it != list.end()) {
        // Withdrawn, or replaced by a route that does not count (another
        // protocol, no next hop on the uplink): the kernel's route at that
        // metric is no longer a learned one.
        list.erase(it);
      } else {
        if (list.empty()) t.candidates.erase(r.address);
        return {};
      }
      if (list.empty()) t.candidates.erase(r.address);
      return {Change::Kind::kRoute, r.address};
    }
    case RTM_NEWNEIGH:
    case RTM_DELNEIGH: {
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg))) return {};
      const auto* nd = static_cast<const ndmsg*>(NLMSG_DATA(h));
      if (!(nd->ndm_family == AF_INET || (o.ipv6 && nd->ndm_family == AF_INET6)) ||
          (nd->ndm_ifindex != t.uplink_index &&
           (t.uplink2_index == 0 || nd->ndm_ifindex != t.uplink2_index)) ||
          (nd->ndm_flags & NTF_PROXY))
        return {};
      std::optional<IpAddr> dst;
      std::optional<MacAddr> mac;
      int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(ndmsg)));
      for (auto* a = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(nd) +
                                                     NLMSG_ALIGN(sizeof(ndmsg)));
           RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == NDA_DST) dst = ipOf(a, nd->ndm_family);
        if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6) {
          MacAddr m;
          std::memcpy(m.bytes.data(), RTA_DATA(a), 6);
          if (!m.isZero()) mac = m;
        }
      }
      if (!dst) return {};
      const bool resolved = h->nlmsg_type == RTM_NEWNEIGH && usable(nd->ndm_state) && mac;
      auto it = t.neigh.find(*dst);
      if (resolved) {
        if (it != t.neigh.end() && it->second == *mac) return {};
        t.neigh[*dst] = *mac;
      } else {
        if (it == t.neigh.end()) return {};
        t.neigh.erase(it);
      }
      return {Change::Kind::kNeigh, *dst};
    }
    case RTM_NEWADDR:
    case RTM_DELADDR: {
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return {};
      const auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
      const int index = static_cast<int>(ifa->ifa_index);
      if (ifa->ifa_family != AF_INET ||
          (index != t.uplink_index && (t.uplink2_index == 0 || index != t.uplink2_index)))
        return {};
      std::optional<Ipv4Addr> local, address;
      int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(ifaddrmsg)));
      for (auto* a = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(ifa) +
                                                     NLMSG_ALIGN(sizeof(ifaddrmsg)));
           RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == IFA_LOCAL && RTA_PAYLOAD(a) >= 4) local = addrOf(a);
        if (a->rta_type == IFA_ADDRESS && RTA_PAYLOAD(a) >= 4) address = addrOf(a);
      }
      // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's
      // on a point-to-point link).
      const auto own = local ? local : address;
      if (!own || ifa->ifa_prefixlen > 32) return {};
      const Ipv4Prefix p{*own, ifa->ifa_prefixlen};
      auto it = std::lower_bound(t.prefixes.begin(), t.prefixes.end(), p);
      const bool present = it != t.prefixes.end() && *it == p;
      if (h->nlmsg_type == RTM_NEWADDR) {
        if (present) return {};
        t.prefixes.insert(it, p);
      } else {
        if (!present) return {};
        t.prefixes.erase(it);
      }
      return {Change::Kind::kPrefixes, {}};
    }
    default:
      return {};
  }
}

}  // namespace

void RouteWatcher::applyMessage(const void* bytes) {
  const auto* h = static_cast<const nlmsghdr*>(bytes);
  switch (h->nlmsg_type) {
    case RTM_NEWROUTE:
    case RTM_DELROUTE:
      ++counters_.route_messages;
      break;
    case RTM_NEWNEIGH:
    case RTM_DELNEIGH:
      ++counters_.neigh_messages;
      break;
    case RTM_NEWADDR:
    case RTM_DELADDR:
      ++counters_.address_messages;
      // An address gone from the uplink takes its routes along, silently.
      if (h->nlmsg_type == RTM_DELADDR && h->nlmsg_len >= NLMSG_LENGTH(sizeof(ifaddrmsg)) &&
          static_cast<const ifaddrmsg*>(NLMSG_DATA(h))->ifa_family == AF_INET) {
        const int index = static_cast<int>(static_cast<const ifaddrmsg*>(NLMSG_DATA(h))->ifa_index);
        if (index == uplink_index_) requestResync("an address left " + options_.uplink);
        if (uplink2_index_ != 0 && index == uplink2_index_)
          requestResync("an address left " + options_.uplink2);
      }
      break;
    case RTM_NEWLINK:
    case RTM_DELLINK: {
      ++counters_.link_messages;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return;
      const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
      std::string name;
      int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(ifinfomsg)));
      for (auto* a = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(ifi) +
                                                     NLMSG_ALIGN(sizeof(ifinfomsg)));
           RTA_OK(a, len); a = RTA_NEXT(a, len))
        if (a->rta_type == IFLA_IFNAME && RTA_PAYLOAD(a) > 0)
          name.assign(static_cast<const char*>(RTA_DATA(a)),
                      strnlen(static_cast<const char*>(RTA_DATA(a)), RTA_PAYLOAD(a)));
      // Either uplink: 1 the first, 2 the second.
      int which = 0;
      if (ifi->ifi_index == uplink_index_ || name == options_.uplink) which = 1;
      if (!options_.uplink2.empty() &&
          ((uplink2_index_ != 0 && ifi->ifi_index == uplink2_index_) || name == options_.uplink2))
        which = 2;
      if (which == 0) return;
      const std::string& uplink_name = which == 1 ? options_.uplink : options_.uplink2;
      int& index = which == 1 ? uplink_index_ : uplink2_index_;
      std::optional<unsigned>& held = which == 1 ? uplink_flags_ : uplink2_flags_;
      if (h->nlmsg_type == RTM_DELLINK) {
        held.reset();
        dropUplinkHops(which);
        requestResync("uplink " + uplink_name + " deleted");
        return;
      }
      const unsigned flags = ifi->ifi_flags & (IFF_UP | IFF_RUNNING | kIffLowerUp);
      const bool up = (flags & IFF_UP) && (flags & kIffLowerUp);
      if (ifi->ifi_index != index) {
        requestResync("uplink " + uplink_name + " re-created");
      } else if (held != flags) {
        // Down or carrier lost: the kernel flushes or marks the routes
        // through it without a notification; up again: they may be back.
        // Down: its next hops leave the routes now (failover), the dump
        // confirms.
        if (!up) dropUplinkHops(which);
        requestResync("uplink " + uplink_name + (up ? " up" : " down"));
      }
      held = flags;
      return;
    }
    case RTM_NEWNEXTHOP:
    case RTM_DELNEXTHOP: {
      // Deleting or replacing a nexthop object changes the routes that use
      // it, without a route notification on every kernel. A new object
      // changes no route (routing daemons make one per next-hop set).
      ++counters_.nexthop_messages;
      const auto id = nexthopId(h);
      if (!id) return;
      if (h->nlmsg_type == RTM_NEWNEXTHOP) {
        if (live_.nexthop_ids.insert(*id).second) return;
        requestResync("nexthop object " + std::to_string(*id) + " replaced");
      } else {
        live_.nexthop_ids.erase(*id);
        requestResync("nexthop object " + std::to_string(*id) + " deleted");
      }
      return;
    }
    default:
      return;
  }
  const std::uint64_t ignored = live_.ignored_routes;
  const Change c = applyTo(live_, h, options_);
  counters_.ignored_routes += live_.ignored_routes - ignored;
  switch (c.kind) {
    case Change::Kind::kRoute:
      dirty_routes_.insert(c.key);
      if (worker_.valid()) touched_routes_.insert(c.key);
      break;
    case Change::Kind::kNeigh:
      dirty_neigh_.insert(c.key);
      if (worker_.valid()) touched_neigh_.insert(c.key);
      break;
    case Change::Kind::kPrefixes:
      dirty_prefixes_ = true;
      if (worker_.valid()) touched_prefixes_ = true;
      break;
    case Change::Kind::kNone:
      break;
  }
}

Result<RouteWatcher::Tables> RouteWatcher::dumpTables(const RouteWatcherOptions& options,
                                                      int uplink_index) {
  Tables t;
  t.uplink_index = uplink_index;
  std::unique_ptr<detail::DumpSocket> sock;
  {
    NetnsGuard in(options.netns);
    if (!in.ok()) return in.error();
    // The uplink may have been re-created (a new ifindex).
    if (const unsigned index = if_nametoindex(options.uplink.c_str()))
      t.uplink_index = static_cast<int>(index);
    if (!options.uplink2.empty())
      t.uplink2_index = static_cast<int>(if_nametoindex(options.uplink2.c_str()));
    auto s = detail::DumpSocket::open();
    if (!s) return s.error();
    sock = std::move(s).value();
  }
  const auto each = [&](const nlmsghdr* h) {
    const auto type = h->nlmsg_type;
    if (type == RTM_NEWROUTE || type == RTM_NEWNEIGH || type == RTM_NEWADDR)
      (void)applyTo(t, h, options);
  };
  for (const int family : {AF_INET, AF_INET6}) {
    if (family == AF_INET6 && !options.ipv6) continue;
    rtmsg rtm{};
    rtm.rtm_family = static_cast<unsigned char>(family);
    rtm.rtm_table =
        static_cast<unsigned char>(options.table < 256 ? options.table : RT_TABLE_UNSPEC);
    auto req = dumpRequest(RTM_GETROUTE, rtm);
    if (!req || nla_put_u32(req.get(), RTA_TABLE, options.table) < 0)
      return makeError(ErrorCode::kIo, "netlink", "", "cannot build a route dump request");
    // A dump run again drops what its family's previous run gathered.
    const auto restart = [&] {
      std::erase_if(t.candidates,
                    [&](const auto& c) { return c.first.isV4() == (family == AF_INET); });
    };
    if (const int err = sock->dump(req.get(), each, restart);
        err && !(family == AF_INET6 && err == EAFNOSUPPORT))
      return makeError(ErrorCode::kIo, "netlink", "",
                       std::string(family == AF_INET ? "cannot dump the routing table: "
                                                     : "cannot dump the IPv6 routing table: ") +
                           std::strerror(err));
  }
  ndmsg ndm{};
  ndm.ndm_family = options.ipv6 ? AF_UNSPEC : AF_INET;
  // Strict checking wants ndm_ifindex 0 and the filter as NDA_IFINDEX
  // (net/core/neighbour.c neigh_valid_dump_req); applyTo filters too.
  auto nreq = dumpRequest(RTM_GETNEIGH, ndm);
  // Two uplinks: every device's (applyTo keeps the uplinks').
  if (nreq && t.uplink2_index == 0 &&
      nla_put_u32(nreq.get(), NDA_IFINDEX, static_cast<std::uint32_t>(t.uplink_index)) < 0)
    nreq.reset();
  if (!nreq) return makeError(ErrorCode::kIo, "netlink", "", "cannot build a neighbour dump request");
  if (const int err = sock->dump(nreq.get(), each, [&] { t.neigh.clear(); }))
    return makeError(ErrorCode::kIo, "netlink", "",
                     std::string("cannot dump the neighbour table: ") + std::strerror(err));
  // The nexthop objects, so that a new one (no route uses it yet) asks for
  // no resync, and a replaced or deleted one does.
  nhmsg nhm{};
  nhm.nh_family = AF_UNSPEC;
  auto hreq = dumpRequest(RTM_GETNEXTHOP, nhm);
  if (!hreq) return makeError(ErrorCode::kIo, "netlink", "", "cannot build a nexthop dump request");
  const auto nexthop = [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWNEXTHOP) return;
    if (const auto id = nexthopId(h)) t.nexthop_ids.insert(*id);
  };
  // Kernels without nexthop objects (before 5.3) answer EOPNOTSUPP: none.
  if (const int err = sock->dump(hreq.get(), nexthop, [&] { t.nexthop_ids.clear(); });
      err && err != EOPNOTSUPP && err != EINVAL)
    return makeError(ErrorCode::kIo, "netlink", "",
                     std::string("cannot dump the nexthop objects: ") + std::strerror(err));
  // The uplink's state, so that only a change of it asks for a resync.
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  auto lreq = dumpRequest(RTM_GETLINK, ifi);
  if (!lreq) return makeError(ErrorCode::kIo, "netlink", "", "cannot build a link dump request");
  const auto link = [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return;
    const auto* m = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
    if (m->ifi_index == t.uplink_index)
      t.uplink_flags = m->ifi_flags & (IFF_UP | IFF_RUNNING | kIffLowerUp);
    if (t.uplink2_index != 0 && m->ifi_index == t.uplink2_index)
      t.uplink2_flags = m->ifi_flags & (IFF_UP | IFF_RUNNING | kIffLowerUp);
  };
  if (const int err = sock->dump(lreq.get(), link))
    return makeError(ErrorCode::kIo, "netlink", "",
                     std::string("cannot dump the links: ") + std::strerror(err));
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  // Strict checking filters on it; two uplinks: every device's (applyTo
  // keeps the uplinks').
  ifa.ifa_index = t.uplink2_index == 0 ? static_cast<std::uint32_t>(t.uplink_index) : 0;
  auto areq = dumpRequest(RTM_GETADDR, ifa);
  if (!areq) return makeError(ErrorCode::kIo, "netlink", "", "cannot build an address dump request");
  if (const int err = sock->dump(areq.get(), each, [&] { t.prefixes.clear(); }))
    return makeError(ErrorCode::kIo, "netlink", "",
                     std::string("cannot dump the uplink's addresses: ") + std::strerror(err));
  return t;
}

void RouteWatcher::merge(Tables dumped) {
  // Every key on either side is compared at the next report, so that
  // exactly what differs is reported; a key a notification changed after
  // the dump started keeps the notification's state (newer).
  for (auto it = live_.candidates.begin(); it != live_.candidates.end();) {
    if (touched_routes_.count(it->first) || dumped.candidates.count(it->first)) {
      ++it;
      continue;
    }
    dirty_routes_.insert(it->first);
    it = live_.candidates.erase(it);
  }
  for (auto& [a, list] : dumped.candidates) {
    if (touched_routes_.count(a)) continue;
    auto& held = live_.candidates[a];
    if (held == list) continue;  // the usual case: only what differs is reported
    dirty_routes_.insert(a);
    held = std::move(list);
  }
  for (auto it = live_.neigh.begin(); it != live_.neigh.end();) {
    if (touched_neigh_.count(it->first) || dumped.neigh.count(it->first)) {
      ++it;
      continue;
    }
    dirty_neigh_.insert(it->first);
    it = live_.neigh.erase(it);
  }
  for (const auto& [a, mac] : dumped.neigh) {
    if (touched_neigh_.count(a)) continue;
    auto [it, fresh] = live_.neigh.try_emplace(a, mac);
    if (!fresh && it->second == mac) continue;
    it->second = mac;
    dirty_neigh_.insert(a);
  }
  if (!touched_prefixes_ && live_.prefixes != dumped.prefixes) {
    live_.prefixes = std::move(dumped.prefixes);
    dirty_prefixes_ = true;
  }
  uplink_index_ = dumped.uplink_index;
  uplink_flags_ = dumped.uplink_flags;
  uplink2_index_ = dumped.uplink2_index;
  uplink2_flags_ = dumped.uplink2_flags;
  // Objects made or deleted meanwhile were notified after the dump began:
  // the union errs towards "known" (a replace then resyncs, a new object
  // that is in fact unknown would only cost one more dump).
  live_.nexthop_ids.insert(dumped.nexthop_ids.begin(), dumped.nexthop_ids.end());
  live_.uplink_index = uplink_index_;
  live_.uplink2_index = uplink2_index_;
  counters_.ignored_routes += dumped.ignored_routes;
  touched_routes_.clear();
  touched_neigh_.clear();
  touched_prefixes_ = false;
}

void RouteWatcher::dropUplinkHops(int which) {
  std::size_t routes = 0;
  for (auto it = live_.candidates.begin(); it != live_.candidates.end();) {
    bool changed = false;
    for (auto c = it->second.begin(); c != it->second.end();) {
      const auto before = c->next_hops.size();
      if (which == 2) {
        std::erase_if(c->next_hops, [&](const IpAddr& hop) {
          return std::binary_search(c->on_uplink2.begin(), c->on_uplink2.end(), hop);
        });
        c->on_uplink2.clear();
      } else {
        std::erase_if(c->next_hops, [&](const IpAddr& hop) {
          return !std::binary_search(c->on_uplink2.begin(), c->on_uplink2.end(), hop);
        });
      }
      changed = changed || c->next_hops.size() != before;
      c = c->next_hops.empty() ? it->second.erase(c) : std::next(c);
    }
    if (changed) {
      ++routes;
      dirty_routes_.insert(it->first);
      if (worker_.valid()) touched_routes_.insert(it->first);
    }
    it = it->second.empty() ? live_.candidates.erase(it) : std::next(it);
  }
  counters_.uplink_down_routes += routes;
}

void RouteWatcher::wake() {
  const std::uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
}

void RouteWatcher::drainWake() {
  std::uint64_t n = 0;
  if (wake_fd_ >= 0) (void)!::read(wake_fd_, &n, sizeof n);
}

void RouteWatcher::requestResync(std::string reason) {
  if (!resync_reason_) {
    resync_reason_ = std::move(reason);
  } else if (resync_reason_->find(reason) == std::string::npos && resync_reason_->size() < 200) {
    *resync_reason_ += "; " + reason;
  }
  wake();
}

void RouteWatcher::startWorker() {
  ++counters_.resyncs;
  worker_reason_ = std::move(*resync_reason_);
  resync_reason_.reset();
  touched_routes_.clear();
  touched_neigh_.clear();
  touched_prefixes_ = false;
  const int wake_fd = wake_fd_;
  // A thread of its own rather than std::async: the promise is set before
  // the wake-up is written, so that the poll() it wakes finds the result.
  std::promise<Result<Tables>> done;
  worker_ = done.get_future();
  worker_thread_ = std::thread([this, done = std::move(done), options = options_,
                                index = uplink_index_, wake_fd]() mutable {
    const auto start = std::chrono::steady_clock::now();
    auto t = dumpTables(options, index);
    // Read by the loop's thread only after get() (the future synchronises).
    worker_dump_ms_ =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    done.set_value(std::move(t));
    const std::uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);
  });
}

Result<RouteEvents> RouteWatcher::resyncNow(std::string reason) {
  RouteEvents out;
  std::optional<Error> failure;
  if (worker_.valid()) {  // a background dump first: its result is older than ours
    auto t = worker_.get();
    if (worker_thread_.joinable()) worker_thread_.join();
    if (t) merge(std::move(t).value());
  }
  // What is queued is applied first: the dump below is newer.
  for (;;) {
    std::size_t read = 0;
    if (readQueued(1u << 16, read, failure) || failure) break;
  }
  if (failure) return *failure;
  ++counters_.resyncs;
  const auto start = std::chrono::steady_clock::now();
  auto t = dumpTables(options_, uplink_index_);
  if (!t) {
    ++counters_.resync_failures;
    return t.error();
  }
  const auto dumped = std::chrono::steady_clock::now();
  touched_routes_.clear();
  touched_neigh_.clear();
  touched_prefixes_ = false;
  merge(std::move(t).value());
  counters_.last_dump_ms = std::chrono::duration<double, std::milli>(dumped - start).count();
  counters_.last_merge_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - dumped).count();
  if (resync_reason_) {  // what was asked for is done by this dump
    reason += "; " + *resync_reason_;
    resync_reason_.reset();
  }
  out.resynced = true;
  out.resync_reason = std::move(reason);
  collect(out);
  return out;
}

void RouteWatcher::collect(RouteEvents& out) {
  out.routes.reserve(dirty_routes_.size());
  for (const auto a : dirty_routes_) {
    std::optional<LearnedRoute> now;
    if (auto it = live_.candidates.find(a); it != live_.candidates.end() && !it->second.empty()) {
      const auto best = std::min_element(
          it->second.begin(), it->second.end(),
          [](const Candidate& x, const Candidate& y) { return x.metric < y.metric; });
      now = LearnedRoute{a, best->protocol, best->metric, best->next_hops, best->on_uplink2};
    }
    auto rep = reported_routes_.find(a);
    if (now) {
      if (rep != reported_routes_.end() && rep->second == *now) continue;
      reported_routes_[a] = *now;
    } else {
      if (rep == reported_routes_.end()) continue;
      reported_routes_.erase(rep);
    }
    out.routes.emplace_back(a, std::move(now));
  }
  dirty_routes_.clear();
  for (const auto a : dirty_neigh_) {
    std::optional<MacAddr> now;
    if (auto it = live_.neigh.find(a); it != live_.neigh.end()) now = it->second;
    auto rep = reported_neigh_.find(a);
    if (now) {
      if (rep != reported_neigh_.end() && rep->second == *now) continue;
      reported_neigh_[a] = *now;
    } else {
      if (rep == reported_neigh_.end()) continue;
      reported_neigh_.erase(rep);
    }
    out.neighbours.emplace_back(a, now);
  }
  dirty_neigh_.clear();
  if (dirty_prefixes_) {
    dirty_prefixes_ = false;
    if (live_.prefixes != reported_prefixes_ || out.resync_reason == "start") {
      reported_prefixes_ = live_.prefixes;
      out.uplink_prefixes = reported_prefixes_;
    }
  }
  // A stable order for the caller (and its logs): by address.
  std::sort(out.routes.begin(), out.routes.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  std::sort(out.neighbours.begin(), out.neighbours.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
}

void RouteWatcher::discardQueued() {
  for (;;) {
    const ssize_t n = ::recv(fd_, buffer_.data(), buffer_.size(), MSG_DONTWAIT);
    if (n > 0) continue;
    if (n < 0 && (errno == EINTR || errno == ENOBUFS)) {
      if (errno == ENOBUFS) ++counters_.overruns;
      continue;
    }
    return;  // EAGAIN: empty
  }
}

bool RouteWatcher::readQueued(std::size_t max_messages, std::size_t& read,
                              std::optional<Error>& failure) {
  while (read < max_messages) {
    iovec iov{buffer_.data(), buffer_.size()};
    sockaddr_nl peer{};
    msghdr mh{};
    mh.msg_name = &peer;
    mh.msg_namelen = sizeof peer;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    const ssize_t n = ::recvmsg(fd_, &mh, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      if (errno == ENOBUFS) {
        // The kernel dropped notifications. What is still queued is older
        // than what was dropped: applied after the dump, it could bring
        // back a state the dropped ones had replaced. So the queue is
        // emptied first, then the set is rebuilt from a dump; whatever
        // happens from here on is both in the dump and queued after it,
        // in order.
        ++counters_.overruns;
        discardQueued();
        requestResync("overrun (ENOBUFS)");
        return true;
      }
      failure = makeError(ErrorCode::kIo, "netlink", "",
                          std::string("route watcher: recvmsg: ") + std::strerror(errno));
      return false;
    }
    if (n == 0) return true;
    if (peer.nl_pid != 0) continue;  // not from the kernel
    int remaining = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buffer_.data()); nlmsg_ok(h, remaining);
         h = nlmsg_next(h, &remaining)) {
      ++counters_.messages;
      ++read;
      applyMessage(h);
    }
  }
  return false;  // more may wait
}

Result<RouteEvents> RouteWatcher::poll(std::size_t max_messages) {
  RouteEvents out;
  std::optional<Error> failure;
  std::size_t read = 0;
  drainWake();
  const bool drained = readQueued(max_messages, read, failure);
  // A background dump that is done: merged, reported as a resync.
  if (worker_.valid() &&
      worker_.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
    auto t = worker_.get();
    if (worker_thread_.joinable()) worker_thread_.join();
    if (t) {
      const auto start = std::chrono::steady_clock::now();
      merge(std::move(t).value());
      counters_.last_merge_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      counters_.last_dump_ms = worker_dump_ms_;
      out.resynced = true;
      out.resync_reason = worker_reason_;
    } else {
      ++counters_.resync_failures;
      touched_routes_.clear();
      touched_neigh_.clear();
      touched_prefixes_ = false;
      // Asked again: the next poll (a notification, the next full pass)
      // tries once more.
      if (!resync_reason_) resync_reason_ = worker_reason_;
      failure = t.error();
    }
  }
  if (resync_reason_ && resync_reason_->rfind("start", 0) == 0) {  // open() has just dumped
    // What was asked for since (a link change...) still gets a dump of its own.
    const auto rest = resync_reason_->size() > 7 ? resync_reason_->substr(7) : std::string();
    resync_reason_.reset();
    if (!rest.empty()) resync_reason_ = rest;
    out.resynced = true;
    out.resync_reason = "start";
  }
  // A new dump starts once the queue is empty (what is queued is older than
  // the dump) and no other runs.
  if (resync_reason_ && !worker_.valid() && drained && !failure) startWorker();
  if (!drained && !failure) wake();  // more queued: the owner calls again
  collect(out);
  if (failure && out.empty() && !out.resynced) return *failure;
  return out;
}

}  // namespace nicoffload::offload
