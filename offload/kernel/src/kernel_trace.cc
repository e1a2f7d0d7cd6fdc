#include "nicoffload/offload/kernel_trace.h"

#include <arpa/inet.h>
#include <linux/if_arp.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>

#include "netlink_dump.h"
#include "rtnl_socket.h"
#include "nicoffload/offload/netns.h"

namespace nicoffload::offload {
namespace {

using trace::KernelNeighbour;
using trace::KernelRoute;

using detail::ipv4Of;
using detail::ipv6Of;
using detail::macOf;
using detail::parseAttrs;

std::string neighbourState(std::uint16_t state) {
  if (state & NUD_PERMANENT) return "permanent";
  if (state & NUD_NOARP) return "noarp";
  if (state & NUD_REACHABLE) return "reachable";
  if (state & NUD_STALE) return "stale";
  if (state & NUD_DELAY) return "delay";
  if (state & NUD_PROBE) return "probe";
  if (state & NUD_INCOMPLETE) return "incomplete";
  if (state & NUD_FAILED) return "failed";
  return "none";
}

KernelRoute::Type routeType(unsigned char type) {
  switch (type) {
    case RTN_UNICAST:
      return KernelRoute::Type::kUnicast;
    case RTN_LOCAL:
      return KernelRoute::Type::kLocal;
    case RTN_BROADCAST:
      return KernelRoute::Type::kBroadcast;
    case RTN_UNREACHABLE:
      return KernelRoute::Type::kUnreachable;
    case RTN_BLACKHOLE:
      return KernelRoute::Type::kBlackhole;
    case RTN_PROHIBIT:
      return KernelRoute::Type::kProhibit;
    default:
      return KernelRoute::Type::kOther;
  }
}

Error nlError(int err, const std::string& what) {
  return makeError(ErrorCode::kIo, "netlink", what, what + ": " + std::strerror(err));
}

class KernelTraceView final : public trace::KernelView {
 public:
  KernelTraceView(std::string netns, int fd, std::unique_ptr<detail::DumpSocket> dumps)
      : netns_(std::move(netns)), fd_(fd), dumps_(std::move(dumps)) {}
  ~KernelTraceView() override { ::close(fd_); }

  std::string where() const override {
    return netns_.empty() ? "the daemon's network namespace" : "network namespace " + netns_;
  }

  Result<KernelRoute> routeInput(IpAddr dst, IpAddr src, const std::string& iif) const override {
    if (dst.isV4() != src.isV4())
      return makeError(ErrorCode::kInvalidValue, "route", dst.str(),
                       "the source " + src.str() + " and the destination " + dst.str() +
                           " are of different families");
    auto index = ifindex(iif);
    if (!index) return index.error();
    const bool v4 = dst.isV4();
    rtmsg rtm{};
    rtm.rtm_family = v4 ? AF_INET : AF_INET6;
    rtm.rtm_dst_len = dst.hostLength();
    rtm.rtm_src_len = src.hostLength();
    detail::DumpRequestPtr msg(nlmsg_alloc_simple(RTM_GETROUTE, NLM_F_REQUEST));
    if (!msg || nlmsg_append(msg.get(), &rtm, sizeof rtm, NLMSG_ALIGNTO) < 0)
      return makeError(ErrorCode::kInternal, "route", dst.str(), "cannot build RTM_GETROUTE");
    if (v4) {
      const std::uint32_t d = htonl(dst.v4().value), s = htonl(src.v4().value);
      nla_put(msg.get(), RTA_DST, 4, &d);
      nla_put(msg.get(), RTA_SRC, 4, &s);
    } else {
      nla_put(msg.get(), RTA_DST, 16, dst.v6().bytes.data());
      nla_put(msg.get(), RTA_SRC, 16, src.v6().bytes.data());
    }
    nla_put_u32(msg.get(), RTA_IIF, static_cast<std::uint32_t>(*index));
    KernelRoute route;
    int oif = 0;
    const int err = request(msg.get(), [&](const nlmsghdr* h) {
      if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return;
      const auto* m = static_cast<const rtmsg*>(nlmsg_data(h));
      std::array<nlattr*, RTA_MAX + 1> tb{};
      if (!parseAttrs(h, sizeof(rtmsg), tb)) return;
      route.type = routeType(m->rtm_type);
      if (tb[RTA_OIF]) oif = static_cast<int>(nla_get_u32(tb[RTA_OIF]));
      if (tb[RTA_GATEWAY])
        route.gateway = v4 ? IpAddr(ipv4Of(tb[RTA_GATEWAY])) : IpAddr(ipv6Of(tb[RTA_GATEWAY]));
      if (tb[RTA_VIA])  // an IPv4 route via an IPv6 next hop (RFC 5549)
        route.gateway =
            detail::viaAddr(nla_data(tb[RTA_VIA]), static_cast<std::size_t>(nla_len(tb[RTA_VIA])));
    });
    if (err) {
      // The kernel refused the lookup (no route, reverse-path filter...):
      // that is the answer, not a failure of the trace.
      route.error = err;
      return route;
    }
    if (oif > 0 && route.type == KernelRoute::Type::kUnicast) {
      auto name = nameOf(oif);
      if (!name) return name.error();
      route.dev = *name;
    }
    return route;
  }

  Result<bool> proxyArp(const std::string& dev) const override {
    if (dev.empty() || dev.find('/') != std::string::npos || dev == "." || dev == "..")
      return makeError(ErrorCode::kInvalidValue, "dev", dev, "'" + dev + "' is not a device name");
    NetnsGuard ns(netns_);
    if (!ns.ok()) return ns.error();
    bool on = false;
    for (const std::string& d : {std::string("all"), dev}) {
      std::ifstream in("/proc/sys/net/ipv4/conf/" + d + "/proxy_arp");
      int v = 0;
      if (!(in >> v))
        return makeError(ErrorCode::kNotFound, "dev", d,
                         "cannot read net.ipv4.conf." + d + ".proxy_arp in " + where());
      on = on || v != 0;
    }
    return on;
  }

  Result<std::optional<KernelNeighbour>> neighbour(const std::string& dev,
                                                   IpAddr ip) const override {
    auto index = ifindex(dev);
    if (!index) return index.error();
    const int family = ip.isV4() ? AF_INET : AF_INET6;
    ndmsg ndm{};
    ndm.ndm_family =
        family;  // no ifindex in the header: strict checking refuses it (filtered below)
    auto req = detail::dumpRequest(RTM_GETNEIGH, ndm);
    if (!req)
      return makeError(ErrorCode::kInternal, "neighbour", ip.str(), "cannot build RTM_GETNEIGH");
    std::optional<KernelNeighbour> found;
    const int err = dumps_->dump(req.get(), [&](const nlmsghdr* h) {
      if (h->nlmsg_type != RTM_NEWNEIGH || h->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg))) return;
      const auto* m = static_cast<const ndmsg*>(nlmsg_data(h));
      if (m->ndm_ifindex != *index || m->ndm_family != family) return;
      std::array<nlattr*, NDA_MAX + 1> tb{};
      if (!parseAttrs(h, sizeof(ndmsg), tb) || !tb[NDA_DST]) return;
      const IpAddr dst =
          family == AF_INET ? IpAddr(ipv4Of(tb[NDA_DST])) : IpAddr(ipv6Of(tb[NDA_DST]));
      if (dst != ip) return;
      if (!tb[NDA_LLADDR] || (m->ndm_state & (NUD_INCOMPLETE | NUD_FAILED))) return;
      found = KernelNeighbour{macOf(tb[NDA_LLADDR]), neighbourState(m->ndm_state)};
    });
    if (err) return nlError(err, "neighbour dump of " + dev);
    return found;
  }

  Result<std::vector<IpAddr>> fdb(const std::string& dev, MacAddr mac) const override {
    auto index = ifindex(dev);
    if (!index) return index.error();
    ndmsg ndm{};
    ndm.ndm_family = AF_BRIDGE;  // filtered below, like the neighbours
    auto req = detail::dumpRequest(RTM_GETNEIGH, ndm);
    if (!req) return makeError(ErrorCode::kInternal, "fdb", dev, "cannot build the FDB dump");
    std::vector<IpAddr> out;
    const int err = dumps_->dump(
        req.get(),
        [&](const nlmsghdr* h) {
          if (h->nlmsg_type != RTM_NEWNEIGH || h->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg))) return;
          const auto* m = static_cast<const ndmsg*>(nlmsg_data(h));
          if (m->ndm_ifindex != *index || m->ndm_family != AF_BRIDGE) return;
          std::array<nlattr*, NDA_MAX + 1> tb{};
          if (!parseAttrs(h, sizeof(ndmsg), tb) || !tb[NDA_LLADDR] || !tb[NDA_DST]) return;
          if (macOf(tb[NDA_LLADDR]) != mac) return;
          if (nla_len(tb[NDA_DST]) == 4)
            out.push_back(ipv4Of(tb[NDA_DST]));
          else if (nla_len(tb[NDA_DST]) == 16)
            out.push_back(ipv6Of(tb[NDA_DST]));
        },
        [&] { out.clear(); });
    if (err) return nlError(err, "FDB dump of " + dev);
    return out;
  }

  Result<std::optional<MacAddr>> linkMac(const std::string& dev) const override {
    auto link = getLink(dev);
    if (!link) return link.error();
    if (!*link) return std::optional<MacAddr>();
    return std::optional<MacAddr>((*link)->second);
  }

 private:
  // RTM_GETLINK by name: (ifindex, MAC), or nullopt when there is no such device.
  Result<std::optional<std::pair<int, MacAddr>>> getLink(const std::string& dev) const {
    if (dev.empty() || dev.size() >= 16) return std::optional<std::pair<int, MacAddr>>();
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    detail::DumpRequestPtr msg(nlmsg_alloc_simple(RTM_GETLINK, NLM_F_REQUEST));
    if (!msg || nlmsg_append(msg.get(), &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0)
      return makeError(ErrorCode::kInternal, "link", dev, "cannot build RTM_GETLINK");
    nla_put_string(msg.get(), IFLA_IFNAME, dev.c_str());
    std::optional<std::pair<int, MacAddr>> out;
    const int err = request(msg.get(), [&](const nlmsghdr* h) {
      if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return;
      const auto* m = static_cast<const ifinfomsg*>(nlmsg_data(h));
      std::array<nlattr*, IFLA_MAX + 1> tb{};
      if (!parseAttrs(h, sizeof(ifinfomsg), tb)) return;
      out = std::pair{m->ifi_index, macOf(tb[IFLA_ADDRESS])};
    });
    if (err == ENODEV) return std::optional<std::pair<int, MacAddr>>();
    if (err) return nlError(err, "RTM_GETLINK " + dev);
    return out;
  }

  Result<int> ifindex(const std::string& dev) const {
    auto link = getLink(dev);
    if (!link) return link.error();
    if (!*link)
      return makeError(ErrorCode::kNotFound, "dev", dev, "no device " + dev + " in " + where());
    return (*link)->first;
  }

  Result<std::string> nameOf(int index) const {
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    ifi.ifi_index = index;
    detail::DumpRequestPtr msg(nlmsg_alloc_simple(RTM_GETLINK, NLM_F_REQUEST));
    if (!msg || nlmsg_append(msg.get(), &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0)
      return makeError(ErrorCode::kInternal, "link", std::to_string(index),
                       "cannot build RTM_GETLINK");
    std::string name;
    const int err = request(msg.get(), [&](const nlmsghdr* h) {
      if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return;
      std::array<nlattr*, IFLA_MAX + 1> tb{};
      if (parseAttrs(h, sizeof(ifinfomsg), tb) && tb[IFLA_IFNAME])
        name = static_cast<const char*>(nla_data(tb[IFLA_IFNAME]));
    });
    if (err) return nlError(err, "RTM_GETLINK index " + std::to_string(index));
    return name;
  }

  // One request, one answer (or an error): the errno the kernel answered, 0.
  int request(nl_msg* msg, const std::function<void(const nlmsghdr*)>& each) const {
    nlmsghdr* req = nlmsg_hdr(msg);
    req->nlmsg_flags |= NLM_F_REQUEST;
    req->nlmsg_seq = ++seq_;
    req->nlmsg_pid = 0;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    ssize_t sent;
    do {
      sent = ::sendto(fd_, req, req->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
                      sizeof kernel);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) return errno;
    std::vector<char> buffer(64 * 1024);
    for (;;) {
      const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      int remaining = static_cast<int>(n);
      for (auto* hdr = reinterpret_cast<nlmsghdr*>(buffer.data()); nlmsg_ok(hdr, remaining);
           hdr = nlmsg_next(hdr, &remaining)) {
        if (hdr->nlmsg_seq != req->nlmsg_seq) continue;
        if (hdr->nlmsg_type == NLMSG_ERROR) {
          const auto* e = static_cast<const nlmsgerr*>(nlmsg_data(hdr));
          return e->error < 0 ? -e->error : 0;
        }
        each(hdr);
        return 0;  // a non-dump request has one answer
      }
    }
  }

  std::string netns_;
  int fd_;
  std::unique_ptr<detail::DumpSocket> dumps_;
  mutable std::uint32_t seq_ = 0;
};

}  // namespace

Result<std::unique_ptr<trace::KernelView>> openKernelTraceView(const std::string& netns) {
  // Sockets opened inside the namespace stay bound to it.
  NetnsGuard ns(netns);
  if (!ns.ok()) return ns.error();
  detail::RtnlSocketOptions o;
  o.receive_timeout = std::chrono::seconds(2);  // a lookup never waits long: the kernel answers at once
  auto opened = detail::openRtnlSocket(o);
  if (!opened) return opened.error();
  const int fd = *opened;
  auto dumps = detail::DumpSocket::open();
  if (!dumps) {
    ::close(fd);
    return dumps.error();
  }
  return std::unique_ptr<trace::KernelView>(
      new KernelTraceView(netns, fd, std::move(dumps).value()));
}

}  // namespace nicoffload::offload
