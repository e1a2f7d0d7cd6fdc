#include "nicoffload/offload/route_watcher.h"

#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/msg.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "netlink_dump.h"
#include "nicoffload/offload/netns.h"

namespace nicoffload::offload {
namespace {

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

using detail::dumpRequest;

Ipv4Addr addrOf(const rtattr* a) {
  std::uint32_t be = 0;
  std::memcpy(&be, RTA_DATA(a), sizeof be);
  return Ipv4Addr{ntohl(be)};
}

std::uint32_t u32Of(const rtattr* a) {
  std::uint32_t v = 0;
  std::memcpy(&v, RTA_DATA(a), sizeof v);
  return v;
}

// A route message taken apart: what the watcher needs of it.
struct ParsedRoute {
  bool relevant = false;  // IPv4 /32 unicast in the table
  Ipv4Addr address;
  std::uint8_t protocol = 0;
  std::uint32_t metric = 0;
  std::vector<Ipv4Addr> next_hops;  // on the uplink, with a gateway, alive
};

ParsedRoute parseRoute(const nlmsghdr* h, std::uint32_t table, int uplink) {
  ParsedRoute out;
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return out;
  const auto* rtm = static_cast<const rtmsg*>(NLMSG_DATA(h));
  if (rtm->rtm_family != AF_INET || rtm->rtm_dst_len != 32) return out;
  std::uint32_t rt_table = rtm->rtm_table;
  std::optional<Ipv4Addr> dst;
  int oif = 0;
  std::optional<Ipv4Addr> gateway;
  const rtattr* multipath = nullptr;
  int len = static_cast<int>(RTM_PAYLOAD(h));
  for (const rtattr* a = RTM_RTA(rtm); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    const auto payload = RTA_PAYLOAD(a);
    switch (a->rta_type) {
      case RTA_TABLE: if (payload >= 4) rt_table = u32Of(a); break;
      case RTA_DST: if (payload >= 4) dst = addrOf(a); break;
      case RTA_OIF: if (payload >= 4) oif = static_cast<int>(u32Of(a)); break;
      case RTA_GATEWAY: if (payload >= 4) gateway = addrOf(a); break;
      case RTA_PRIORITY: if (payload >= 4) out.metric = u32Of(a); break;
      case RTA_MULTIPATH: multipath = a; break;
      default: break;
    }
  }
  if (rt_table != table || !dst || rtm->rtm_type != RTN_UNICAST) return out;
  out.relevant = true;
  out.address = *dst;
  out.protocol = rtm->rtm_protocol;
  const unsigned dead = RTNH_F_DEAD | RTNH_F_LINKDOWN;
  if (multipath) {
    int left = static_cast<int>(RTA_PAYLOAD(multipath));
    for (auto* nh = static_cast<const rtnexthop*>(RTA_DATA(multipath)); RTNH_OK(nh, left);
         left -= NLMSG_ALIGN(nh->rtnh_len), nh = RTNH_NEXT(nh)) {
      if (nh->rtnh_ifindex != uplink || (nh->rtnh_flags & dead)) continue;
      int alen = static_cast<int>(nh->rtnh_len) - static_cast<int>(sizeof(rtnexthop));
      for (const rtattr* a = RTNH_DATA(nh); RTA_OK(a, alen); a = RTA_NEXT(a, alen))
        if (a->rta_type == RTA_GATEWAY && RTA_PAYLOAD(a) >= 4) out.next_hops.push_back(addrOf(a));
    }
  } else if (oif == uplink && gateway && !(rtm->rtm_flags & dead)) {
    out.next_hops.push_back(*gateway);
  }
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
    w->fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (w->fd_ < 0)
      return makeError(ErrorCode::kIo, "netlink", "",
                       std::string("cannot open a rtnetlink socket: ") + std::strerror(errno));
  }
  int bytes = w->options_.receive_buffer_bytes;
  if (setsockopt(w->fd_, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0)
    (void)setsockopt(w->fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(w->fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0)
    return makeError(ErrorCode::kIo, "netlink", "",
                     std::string("cannot bind a rtnetlink socket: ") + std::strerror(errno));
  for (int group : {RTNLGRP_IPV4_ROUTE, RTNLGRP_NEIGH})
    if (setsockopt(w->fd_, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) != 0)
      return makeError(ErrorCode::kIo, "netlink", std::to_string(group),
                       std::string("cannot join rtnetlink group: ") + std::strerror(errno));
  // Notifications are small; a recvmsg takes as many as fit.
  w->buffer_.resize(256 * 1024);
  // Subscribed first, dumped second: nothing that changes in between is lost
  // (a change then shows in both, and its notification is read after the
  // dump, which it repeats or supersedes).
  if (auto s = w->resync(); !s) return s.error();
  w->resync_reason_ = "start";  // reported by the first poll()
  return w;
}

RouteWatcher::~RouteWatcher() {
  if (fd_ >= 0) ::close(fd_);
}

bool RouteWatcher::counts(std::uint8_t protocol) const {
  if (protocol == options_.own_protocol) return false;
  if (options_.protocols.empty()) return protocol > RTPROT_KERNEL;
  return std::find(options_.protocols.begin(), options_.protocols.end(), protocol) !=
         options_.protocols.end();
}

void RouteWatcher::applyMessage(const void* bytes) {
  const auto* h = static_cast<const nlmsghdr*>(bytes);
  switch (h->nlmsg_type) {
    case RTM_NEWROUTE:
    case RTM_DELROUTE: {
      ++counters_.route_messages;
      const ParsedRoute r = parseRoute(h, options_.table, uplink_index_);
      if (!r.relevant) {
        ++counters_.ignored_routes;
        return;
      }
      auto& list = candidates_[r.address];
      auto it = std::find_if(list.begin(), list.end(),
                             [&](const Candidate& c) { return c.metric == r.metric; });
      const bool learn = h->nlmsg_type == RTM_NEWROUTE && counts(r.protocol) && !r.next_hops.empty();
      if (!learn) ++counters_.ignored_routes;
      if (learn) {
        Candidate c{r.metric, r.protocol, r.next_hops};
        if (it != list.end()) {
          *it = std::move(c);
        } else {
          list.push_back(std::move(c));
        }
      } else if (it != list.end()) {
        // Withdrawn, or replaced by a route that does not count (another
        // protocol, no next hop on the uplink): the kernel's route at that
        // metric is no longer a learned one.
        list.erase(it);
      } else {
        if (list.empty()) candidates_.erase(r.address);
        return;
      }
      if (list.empty()) candidates_.erase(r.address);
      dirty_routes_.insert(r.address);
      return;
    }
    case RTM_NEWNEIGH:
    case RTM_DELNEIGH: {
      ++counters_.neigh_messages;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg))) return;
      const auto* nd = static_cast<const ndmsg*>(NLMSG_DATA(h));
      if (nd->ndm_family != AF_INET || nd->ndm_ifindex != uplink_index_ ||
          (nd->ndm_flags & NTF_PROXY))
        return;
      std::optional<Ipv4Addr> dst;
      std::optional<MacAddr> mac;
      int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(ndmsg)));
      for (auto* a = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(nd) +
                                                     NLMSG_ALIGN(sizeof(ndmsg)));
           RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == NDA_DST && RTA_PAYLOAD(a) >= 4) dst = addrOf(a);
        if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6) {
          MacAddr m;
          std::memcpy(m.bytes.data(), RTA_DATA(a), 6);
          if (!m.isZero()) mac = m;
        }
      }
      if (!dst) return;
      const bool resolved = h->nlmsg_type == RTM_NEWNEIGH && usable(nd->ndm_state) && mac;
      auto it = neigh_.find(*dst);
      if (resolved) {
        if (it != neigh_.end() && it->second == *mac) return;
        neigh_[*dst] = *mac;
      } else {
        if (it == neigh_.end()) return;
        neigh_.erase(it);
      }
      dirty_neigh_.insert(*dst);
      return;
    }
    default:
      return;
  }
}

Status RouteWatcher::resync() {
  ++counters_.resyncs;
  std::unique_ptr<detail::DumpSocket> sock;
  {
    NetnsGuard in(options_.netns);
    if (!in.ok()) return in.error();
    // The uplink may have been re-created (a new ifindex).
    if (const unsigned index = if_nametoindex(options_.uplink.c_str()))
      uplink_index_ = static_cast<int>(index);
    auto s = detail::DumpSocket::open();
    if (!s) return s.error();
    sock = std::move(s).value();
  }
  // The dump replaces what is held; every key on either side is compared
  // at the next report, so that exactly what differs is reported.
  for (const auto& [a, _] : candidates_) dirty_routes_.insert(a);
  for (const auto& [a, _] : neigh_) dirty_neigh_.insert(a);
  candidates_.clear();
  neigh_.clear();
  const auto each = [&](const nlmsghdr* h) {
    const auto type = h->nlmsg_type;
    if (type == RTM_NEWROUTE || type == RTM_NEWNEIGH) applyMessage(h);
  };
  rtmsg rtm{};
  rtm.rtm_family = AF_INET;
  rtm.rtm_table = static_cast<unsigned char>(options_.table < 256 ? options_.table : RT_TABLE_UNSPEC);
  auto req = dumpRequest(RTM_GETROUTE, rtm);
  if (!req || nla_put_u32(req.get(), RTA_TABLE, options_.table) < 0) {
    ++counters_.resync_failures;
    return makeError(ErrorCode::kIo, "netlink", "", "cannot build a route dump request");
  }
  const auto restart_routes = [&] {
    for (const auto& [a, _] : candidates_) dirty_routes_.insert(a);
    candidates_.clear();
  };
  if (const int err = sock->dump(req.get(), each, restart_routes)) {
    ++counters_.resync_failures;
    return makeError(ErrorCode::kIo, "netlink", "",
                     std::string("cannot dump the routing table: ") + std::strerror(err));
  }
  ndmsg ndm{};
  ndm.ndm_family = AF_INET;
  // Strict checking wants ndm_ifindex 0 and the filter as NDA_IFINDEX
  // (net/core/neighbour.c neigh_valid_dump_req); applyMessage filters too.
  auto nreq = dumpRequest(RTM_GETNEIGH, ndm);
  if (nreq && nla_put_u32(nreq.get(), NDA_IFINDEX, static_cast<std::uint32_t>(uplink_index_)) < 0)
    nreq.reset();
  const auto restart_neigh = [&] {
    for (const auto& [a, _] : neigh_) dirty_neigh_.insert(a);
    neigh_.clear();
  };
  if (!nreq) {
    ++counters_.resync_failures;
    return makeError(ErrorCode::kIo, "netlink", "", "cannot build a neighbour dump request");
  }
  if (const int err = sock->dump(nreq.get(), each, restart_neigh)) {
    ++counters_.resync_failures;
    return makeError(ErrorCode::kIo, "netlink", "",
                     std::string("cannot dump the neighbour table: ") + std::strerror(err));
  }
  return Status::success();
}

void RouteWatcher::collect(RouteEvents& out) {
  out.routes.reserve(dirty_routes_.size());
  for (const auto a : dirty_routes_) {
    std::optional<LearnedRoute> now;
    if (auto it = candidates_.find(a); it != candidates_.end() && !it->second.empty()) {
      const auto best = std::min_element(
          it->second.begin(), it->second.end(),
          [](const Candidate& x, const Candidate& y) { return x.metric < y.metric; });
      now = LearnedRoute{a, best->protocol, best->metric, best->next_hops};
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
    if (auto it = neigh_.find(a); it != neigh_.end()) now = it->second;
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

Result<RouteEvents> RouteWatcher::poll(std::size_t max_messages) {
  RouteEvents out;
  std::optional<Error> failure;
  std::size_t read = 0;
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
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == ENOBUFS) {
        // The kernel dropped notifications. What is still queued is older
        // than what was dropped: applied after the dump, it could bring
        // back a state the dropped ones had replaced. So the queue is
        // emptied first, then the set is rebuilt from a dump; whatever
        // happens from here on is both in the dump and queued after it,
        // in order.
        ++counters_.overruns;
        discardQueued();
        resync_reason_ = "overrun (ENOBUFS)";
        break;
      }
      failure = makeError(ErrorCode::kIo, "netlink", "",
                          std::string("route watcher: recvmsg: ") + std::strerror(errno));
      break;
    }
    if (n == 0) break;
    if (peer.nl_pid != 0) continue;  // not from the kernel
    int remaining = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buffer_.data()); nlmsg_ok(h, remaining);
         h = nlmsg_next(h, &remaining)) {
      ++counters_.messages;
      ++read;
      applyMessage(h);
    }
  }
  if (resync_reason_ && !failure) {
    std::string reason = std::move(*resync_reason_);
    resync_reason_.reset();
    if (reason != "start") {  // open() has just dumped
      if (auto s = resync(); !s) {
        resync_reason_ = reason;  // again at the next poll
        failure = s.error();
      }
    }
    if (!failure) {
      out.resynced = true;
      out.resync_reason = std::move(reason);
    }
  }
  collect(out);
  if (failure && out.empty()) return *failure;
  return out;
}

}  // namespace nicoffload::offload
