// The Linux kernel software path over rtnetlink, with libnl-3 route.
//
// Objects and how they are programmed:
//   VxlanDevice     RTM_NEWLINK kind vxlan (id, local, dstport, nolearning, MAC, up)
//   LinkSetting     RTM_NEWLINK change of an existing device (MAC, up)
//   SysctlSetting   ipv4/conf/<dev>/{forwarding,proxy_arp,rp_filter}: IFLA_INET_CONF
//                   ipv4/neigh/<dev>/proxy_delay: RTM_SETNEIGHTBL
//                   anything else (ipv4/ip_forward): /proc/sys/net/<path>, inside the namespace
//   AddressEntry    RTM_NEWADDR
//   FdbEntry        RTM_NEWNEIGH AF_BRIDGE, NTF_SELF, NUD_PERMANENT, NDA_DST = remote VTEP
//   NeighbourEntry  RTM_NEWNEIGH AF_INET, NUD_PERMANENT
//   RouteEntry      RTM_NEWROUTE with NLM_F_EXCL first; a /32 that exists is replaced
//                   only when it carries our protocol, else reported as a conflict
//   Neighbour6Entry RTM_NEWNEIGH AF_INET6, NUD_PERMANENT; a proxy entry with NTF_PROXY
//   Route6Entry     RTM_NEWROUTE AF_INET6, as RouteEntry (a /128 on a representor)
//   Rule6Entry      RTM_NEWRULE AF_INET6 with our protocol, NLM_F_EXCL (an equal rule
//                   exists: done)
//   SysctlSetting   ipv6/conf/<dev>/* and ipv6/neigh/<dev>/*: /proc/sys/net/<path>
//                   (the kernel takes no IPv6 devconf over netlink), restored from
//                   ipv6/{conf,neigh}/default on removal
// No `ip`, `bridge` or `sysctl` command is ever run.
//
// Read-back (and apply's check of routes already present) does not use
// libnl's caches: RTM_GET* dumps go out on sockets of their own
// (netlink_dump.h, NETLINK_GET_STRICT_CHK, so that the kernel filters routes
// by table and protocol) and each answer is parsed as it arrives straight
// into the objects. readBack() has its own socket and lock, and may run on
// another thread than apply() and remove() (software_path.h).
#include <fcntl.h>
#include <linux/fib_rules.h>
#include <linux/if_link.h>
#include <linux/ip.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <linux/filter.h>
#include <sys/socket.h>
#include <netlink/addr.h>
#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/inet.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/neightbl.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <netlink/route/rtnl.h>
#include <netlink/route/rule.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "netlink_batch.h"
#include "netlink_dump.h"
#include "rtnl_socket.h"
#include "nicoffload/offload/netns.h"
#include "nicoffload/offload/nl_socket.h"
#include "nicoffload/offload/software_path.h"

namespace nicoffload::offload {
namespace {

using namespace flowrules;
using detail::NetlinkBatch;
using detail::NetlinkOutcome;

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const {
    if (p) F(p);
  }
};
using SockPtr = nl::SockPtr;
using CachePtr = std::unique_ptr<nl_cache, Deleter<nl_cache, nl_cache_free>>;
using MsgPtr = std::unique_ptr<nl_msg, Deleter<nl_msg, nlmsg_free>>;
using AddrPtr = std::unique_ptr<nl_addr, Deleter<nl_addr, nl_addr_put>>;
using LinkPtr = std::unique_ptr<rtnl_link, Deleter<rtnl_link, rtnl_link_put>>;
using RoutePtr = std::unique_ptr<rtnl_route, Deleter<rtnl_route, rtnl_route_put>>;
using RulePtr = std::unique_ptr<rtnl_rule, Deleter<rtnl_rule, rtnl_rule_put>>;
using NeighPtr = std::unique_ptr<rtnl_neigh, Deleter<rtnl_neigh, rtnl_neigh_put>>;
using IfAddrPtr = std::unique_ptr<rtnl_addr, Deleter<rtnl_addr, rtnl_addr_put>>;

AddrPtr ipv4Addr(Ipv4Addr a, int prefix_len = 32) {
  const std::uint32_t be = htonl(a.value);
  AddrPtr addr(nl_addr_build(AF_INET, &be, sizeof be));
  nl_addr_set_prefixlen(addr.get(), prefix_len);
  return addr;
}
AddrPtr ipv6Addr(const Ipv6Addr& a, int prefix_len = 128) {
  AddrPtr addr(nl_addr_build(AF_INET6, a.bytes.data(), a.bytes.size()));
  nl_addr_set_prefixlen(addr.get(), prefix_len);
  return addr;
}
AddrPtr macAddr(const MacAddr& m) { return AddrPtr(nl_addr_build(AF_LLC, m.bytes.data(), 6)); }

// IPv4 bytes of an address. Length decides, not family: libnl labels the
// NDA_DST of a bridge FDB entry AF_BRIDGE.
Ipv4Addr fromNl(const nl_addr* a) {
  std::uint32_t be = 0;
  if (a && nl_addr_get_len(a) == 4)
    std::memcpy(&be, nl_addr_get_binary_addr(a), 4);
  return Ipv4Addr{ntohl(be)};
}
// Either family, by length (4: IPv4, 16: IPv6); 0.0.0.0 for anything else.
IpAddr ipFromNl(const nl_addr* a) {
  if (a && nl_addr_get_len(a) == 16) {
    Ipv6Addr v6;
    std::memcpy(v6.bytes.data(), nl_addr_get_binary_addr(a), 16);
    return v6;
  }
  return fromNl(a);
}
AddrPtr ipAddr(const IpAddr& a) { return a.isV4() ? ipv4Addr(a.v4()) : ipv6Addr(a.v6()); }
MacAddr macFromNl(const nl_addr* a) {
  MacAddr m;
  if (a && nl_addr_get_len(a) == 6) std::memcpy(m.bytes.data(), nl_addr_get_binary_addr(a), 6);
  return m;
}

ErrorCode codeOf(int err) {
  switch (err) {
    case ENODEV:
    case ENOENT:
    case ESRCH:
    case ENXIO: return ErrorCode::kNotFound;
    case EEXIST: return ErrorCode::kConflict;
    case EBUSY:
    case EAGAIN: return ErrorCode::kBusy;
    case EINVAL:
    case ERANGE:
    case EOPNOTSUPP:
    case EAFNOSUPPORT:
    case ENETUNREACH: return ErrorCode::kInvalidValue;
    default: return ErrorCode::kIo;
  }
}

Error kernelError(int err, const std::string& object, const std::string& ext_ack = {}) {
  std::string msg = "kernel: " + std::string(std::strerror(err));
  if (!ext_ack.empty()) msg += " (" + ext_ack + ")";
  return makeError(codeOf(err), object, "", msg);
}

// --- object names for reports ---
std::string describe(const RouteEntry& r) {
  std::string s = "route " + r.dst.str();
  if (r.via) s += " via " + r.via->str();
  if (!r.dev.empty()) s += " dev " + r.dev;
  return s + " table " + std::to_string(r.table);
}
std::string describe(const NeighbourEntry& n) { return "neigh " + n.ip.str() + " dev " + n.dev; }
std::string describe(const Neighbour6Entry& n) {
  return std::string(n.proxy ? "neigh6 proxy " : "neigh6 ") + n.ip.str() + " dev " + n.dev;
}
std::string describe(const Rule6Entry& r) { return describeRule6(r); }
std::string describe(const Route6Entry& r) {
  return "route6 " + r.dst.str() + (r.via ? " via " + r.via->str() : "") + " dev " + r.dev +
         " table " + std::to_string(r.table);
}
std::string describe(const FdbEntry& f) { return "fdb " + f.mac.str() + " dev " + f.dev + " dst " + f.dst.str(); }
std::string describe(const AddressEntry& a) { return "address " + a.prefix.str() + " dev " + a.dev; }
std::string describe(const VxlanDevice& v) { return "vxlan device " + v.name; }
std::string describe(const LinkSetting& l) { return "link " + l.dev; }
std::string describe(const SysctlSetting& s) { return "sysctl net/" + s.path; }

// A sysctl path we set over netlink: ipv4/conf/<dev>/<key> or
// ipv4/neigh/<dev>/proxy_delay; or a device's IPv6 setting, through /proc
// (kDevProc); or a global one (kProc).
struct DevSysctl {
  enum class Kind { kDevconf, kProxyDelay, kDevProc, kProc } kind = Kind::kProc;
  std::string dev;
  int devconf_id = 0;  // IPV4_DEVCONF_*
  std::string key;
};
DevSysctl classify(const std::string& path) {
  DevSysctl d;
  auto split = [&](const std::string& prefix) -> bool {
    if (path.rfind(prefix, 0) != 0) return false;
    const auto rest = path.substr(prefix.size());
    const auto slash = rest.find('/');
    if (slash == std::string::npos || slash == 0) return false;
    d.dev = rest.substr(0, slash);
    d.key = rest.substr(slash + 1);
    return d.dev != "all" && d.dev != "default";
  };
  if (split("ipv4/conf/")) {
    static const std::map<std::string, int> kIds = {{"forwarding", IPV4_DEVCONF_FORWARDING},
                                                    {"proxy_arp", IPV4_DEVCONF_PROXY_ARP},
                                                    {"rp_filter", IPV4_DEVCONF_RP_FILTER}};
    if (auto it = kIds.find(d.key); it != kIds.end()) {
      d.kind = DevSysctl::Kind::kDevconf;
      d.devconf_id = it->second;
      return d;
    }
  } else if (split("ipv4/neigh/") && d.key == "proxy_delay") {
    d.kind = DevSysctl::Kind::kProxyDelay;
    return d;
  } else if ((split("ipv6/conf/") || split("ipv6/neigh/")) && d.key.find('/') == std::string::npos) {
    d.kind = DevSysctl::Kind::kDevProc;
    return d;
  }
  d = DevSysctl{};
  return d;
}

// Where a device's IPv6 setting goes back to on removal: the namespace's
// default for new devices ("lo" carries the neighbour defaults in a
// namespace other than the first, which has no neigh/default).
std::vector<std::string> ipv6Defaults(const std::string& path, const DevSysctl& d) {
  const std::string table = path.rfind("ipv6/conf/", 0) == 0 ? "ipv6/conf/" : "ipv6/neigh/";
  return {table + "default/" + d.key, table + "lo/" + d.key};
}

bool safeSysctlPath(const std::string& path) {
  if (path.empty() || path.find("..") != std::string::npos || path[0] == '/') return false;
  for (char c : path)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

// --- read-back: dumps parsed straight into the objects (no libnl cache) ---

// What read-back keeps of a link: its name, flags, MAC, kind, VXLAN
// parameters and IPv4 devconf.
struct LinkInfo {
  std::string name;
  unsigned flags = 0;  // ifi_flags (IFF_UP)
  MacAddr mac;
  std::string kind;  // IFLA_INFO_KIND: "vxlan", "veth", ...
  std::optional<std::uint32_t> vxlan_id, vxlan_link;
  std::optional<IpAddr> vxlan_local;        // IFLA_VXLAN_LOCAL or IFLA_VXLAN_LOCAL6
  std::optional<std::uint16_t> vxlan_port;  // host order
  std::vector<std::uint32_t> inet_conf;     // IFLA_INET_CONF: [IPV4_DEVCONF_* - 1]
};

using detail::ipv4Of;
using detail::ipv6Of;
using detail::macOf;
using detail::parseAttrs;
template <std::size_t N>
bool parseNested(const nlattr* a, std::array<nlattr*, N>& tb) {
  return nla_parse_nested(tb.data(), static_cast<int>(N - 1), const_cast<nlattr*>(a), nullptr) == 0;
}

std::optional<std::pair<int, LinkInfo>> parseLink(const nlmsghdr* h) {
  if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return std::nullopt;
  const auto* ifi = static_cast<const ifinfomsg*>(nlmsg_data(h));
  std::array<nlattr*, IFLA_MAX + 1> tb{};
  if (!parseAttrs(h, sizeof(ifinfomsg), tb) || !tb[IFLA_IFNAME]) return std::nullopt;
  LinkInfo l;
  l.name.assign(static_cast<const char*>(nla_data(tb[IFLA_IFNAME])),
                strnlen(static_cast<const char*>(nla_data(tb[IFLA_IFNAME])), nla_len(tb[IFLA_IFNAME])));
  l.flags = ifi->ifi_flags;
  l.mac = macOf(tb[IFLA_ADDRESS]);
  if (tb[IFLA_LINKINFO]) {
    std::array<nlattr*, IFLA_INFO_MAX + 1> info{};
    if (parseNested(tb[IFLA_LINKINFO], info) && info[IFLA_INFO_KIND]) {
      l.kind.assign(static_cast<const char*>(nla_data(info[IFLA_INFO_KIND])),
                    strnlen(static_cast<const char*>(nla_data(info[IFLA_INFO_KIND])),
                            nla_len(info[IFLA_INFO_KIND])));
      std::array<nlattr*, IFLA_VXLAN_MAX + 1> vx{};
      if (l.kind == "vxlan" && info[IFLA_INFO_DATA] && parseNested(info[IFLA_INFO_DATA], vx)) {
        if (vx[IFLA_VXLAN_ID]) l.vxlan_id = nla_get_u32(vx[IFLA_VXLAN_ID]);
        if (vx[IFLA_VXLAN_LINK]) l.vxlan_link = nla_get_u32(vx[IFLA_VXLAN_LINK]);
        if (vx[IFLA_VXLAN_LOCAL]) l.vxlan_local = ipv4Of(vx[IFLA_VXLAN_LOCAL]);
        if (vx[IFLA_VXLAN_LOCAL6] && nla_len(vx[IFLA_VXLAN_LOCAL6]) == 16)
          l.vxlan_local = ipv6Of(vx[IFLA_VXLAN_LOCAL6]);
        if (vx[IFLA_VXLAN_PORT]) l.vxlan_port = ntohs(nla_get_u16(vx[IFLA_VXLAN_PORT]));
      }
    }
  }
  if (tb[IFLA_AF_SPEC]) {
    nlattr* af = nullptr;
    int rem = 0;
    nla_for_each_nested(af, tb[IFLA_AF_SPEC], rem) {
      if (nla_type(af) != AF_INET) continue;
      std::array<nlattr*, IFLA_INET_MAX + 1> in{};
      if (parseNested(af, in) && in[IFLA_INET_CONF]) {
        // The kernel writes the devconf array as it is (inet_fill_link_af).
        l.inet_conf.resize(static_cast<std::size_t>(nla_len(in[IFLA_INET_CONF])) / 4);
        std::memcpy(l.inet_conf.data(), nla_data(in[IFLA_INET_CONF]), l.inet_conf.size() * 4);
      }
    }
  }
  return std::pair{ifi->ifi_index, std::move(l)};
}

using detail::dumpRequest;

// One IPv4 route of a dump, with its first next hop (a multipath route's
// first, else the route's own).
struct RouteMsg {
  std::uint32_t table = 0;
  std::uint8_t protocol = 0;
  Ipv4Prefix dst;
  int oif = 0;
  std::optional<IpAddr> via;  // RTA_GATEWAY, or RTA_VIA (an IPv6 gateway)
  bool onlink = false;  // RTNH_F_ONLINK
};

std::optional<RouteMsg> parseRoute(const nlmsghdr* h) {
  if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return std::nullopt;
  const auto* m = static_cast<const rtmsg*>(nlmsg_data(h));
  if (m->rtm_family != AF_INET) return std::nullopt;
  std::array<nlattr*, RTA_MAX + 1> tb{};
  if (!parseAttrs(h, sizeof(rtmsg), tb)) return std::nullopt;
  RouteMsg r;
  r.table = tb[RTA_TABLE] ? nla_get_u32(tb[RTA_TABLE]) : m->rtm_table;
  r.protocol = m->rtm_protocol;
  r.dst = {ipv4Of(tb[RTA_DST]), m->rtm_dst_len};
  const nlattr* gw = nullptr;
  const nlattr* via = nullptr;
  unsigned nh_flags = m->rtm_flags;
  if (tb[RTA_MULTIPATH] && nla_len(tb[RTA_MULTIPATH]) >= static_cast<int>(sizeof(rtnexthop))) {
    const auto* nh = static_cast<const rtnexthop*>(nla_data(tb[RTA_MULTIPATH]));
    r.oif = nh->rtnh_ifindex;
    nh_flags = nh->rtnh_flags;
    const int attrs_len = std::min<int>(nh->rtnh_len, nla_len(tb[RTA_MULTIPATH])) - static_cast<int>(RTNH_LENGTH(0));
    if (attrs_len > 0) {
      const auto* attrs =
          reinterpret_cast<const nlattr*>(reinterpret_cast<const char*>(nh) + RTNH_LENGTH(0));
      gw = nla_find(attrs, attrs_len, RTA_GATEWAY);
      via = nla_find(attrs, attrs_len, RTA_VIA);
    }
  } else {
    if (tb[RTA_OIF]) r.oif = static_cast<int>(nla_get_u32(tb[RTA_OIF]));
    gw = tb[RTA_GATEWAY];
    via = tb[RTA_VIA];
  }
  if (gw && nla_len(gw) == 4) r.via = ipv4Of(gw);
  if (!r.via && via) r.via = detail::viaAddr(nla_data(via), static_cast<std::size_t>(nla_len(via)));
  r.onlink = (nh_flags & RTNH_F_ONLINK) != 0;
  return r;
}

// Dumps the routes of `family` in `table` (and of `protocol`, unless 0),
// filtered by the kernel where it can (strict checking) and here in any
// case, each parsed by `parse`. Returns 0, or a positive errno; ENOENT when
// the table does not exist.
template <class Msg>
int dumpRouteTable(detail::DumpSocket& sock, int family, std::uint32_t table, std::uint8_t protocol,
                   std::optional<Msg> (*parse)(const nlmsghdr*),
                   const std::function<void(const Msg&)>& each, const std::function<void()>& restart) {
  rtmsg rtm{};
  rtm.rtm_family = static_cast<unsigned char>(family);
  rtm.rtm_table = static_cast<unsigned char>(table < 256 ? table : static_cast<std::uint32_t>(RT_TABLE_UNSPEC));
  rtm.rtm_protocol = protocol;
  auto req = dumpRequest(RTM_GETROUTE, rtm);
  if (!req || nla_put_u32(req.get(), RTA_TABLE, table) < 0) return ENOMEM;
  return sock.dump(req.get(), [&](const nlmsghdr* h) {
    auto r = parse(h);
    if (r && r->table == table && (protocol == 0 || r->protocol == protocol)) each(*r);
  }, restart);
}

int dumpRoutes(detail::DumpSocket& sock, std::uint32_t table, std::uint8_t protocol,
               const std::function<void(const RouteMsg&)>& each, const std::function<void()>& restart) {
  return dumpRouteTable<RouteMsg>(sock, AF_INET, table, protocol, &parseRoute, each, restart);
}

// One IPv6 route of a dump: a single next hop (the /128s we make have one).
struct Route6Msg {
  std::uint32_t table = 0;
  std::uint8_t protocol = 0;
  Ipv6Prefix dst;
  int oif = 0;
  std::optional<Ipv6Addr> via;
  bool onlink = false;  // RTNH_F_ONLINK
};

std::optional<Route6Msg> parseRoute6(const nlmsghdr* h) {
  if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return std::nullopt;
  const auto* m = static_cast<const rtmsg*>(nlmsg_data(h));
  if (m->rtm_family != AF_INET6) return std::nullopt;
  std::array<nlattr*, RTA_MAX + 1> tb{};
  if (!parseAttrs(h, sizeof(rtmsg), tb)) return std::nullopt;
  Route6Msg r;
  r.table = tb[RTA_TABLE] ? nla_get_u32(tb[RTA_TABLE]) : m->rtm_table;
  r.protocol = m->rtm_protocol;
  r.dst = {ipv6Of(tb[RTA_DST]), m->rtm_dst_len};
  if (tb[RTA_OIF]) r.oif = static_cast<int>(nla_get_u32(tb[RTA_OIF]));
  if (tb[RTA_GATEWAY] && nla_len(tb[RTA_GATEWAY]) == 16) r.via = ipv6Of(tb[RTA_GATEWAY]);
  r.onlink = (m->rtm_flags & RTNH_F_ONLINK) != 0;
  return r;
}

int dumpRoutes6(detail::DumpSocket& sock, std::uint32_t table, std::uint8_t protocol,
                const std::function<void(const Route6Msg&)>& each, const std::function<void()>& restart) {
  return dumpRouteTable<Route6Msg>(sock, AF_INET6, table, protocol, &parseRoute6, each, restart);
}

Error dumpError(const char* what, int err) {
  return makeError(ErrorCode::kIo, what, "",
                   std::string("cannot dump ") + what + ": " + std::strerror(err));
}

class KernelSoftwarePath final : public SoftwarePath {
 public:
  KernelSoftwarePath(SockPtr sock, std::unique_ptr<detail::DumpSocket> check_sock,
                     std::unique_ptr<detail::DumpSocket> dump_sock, KernelSoftwarePathOptions options,
                     std::size_t window)
      : sock_(std::move(sock)), check_sock_(std::move(check_sock)), options_(std::move(options)),
        window_(window), dump_sock_(std::move(dump_sock)) {}

  ~KernelSoftwarePath() override {
    if (watch_fd_ >= 0) ::close(watch_fd_);
  }
  KernelSoftwarePath(const KernelSoftwarePath&) = delete;
  KernelSoftwarePath& operator=(const KernelSoftwarePath&) = delete;

  void setLookupSocket(SockPtr sock) { lookup_sock_ = std::move(sock); }
  void setWatchSocket(int fd) { watch_fd_ = fd; }

  // Whether a datagram of notifications holds one read-back would see. The
  // kernel makes and expires neighbour entries of its own all the time (NOARP
  // ones on the VXLAN devices, ARP and NDP entries): read-back keeps only
  // permanent IPv4 neighbours and FDB entries, so only those count.
  static bool relevant(const char* data, std::size_t len) {
    for (auto* h = reinterpret_cast<const nlmsghdr*>(data); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type == RTM_NEWNEIGH || h->nlmsg_type == RTM_DELNEIGH) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg))) return true;
        const auto* nd = static_cast<const ndmsg*>(NLMSG_DATA(h));
        if ((nd->ndm_family == AF_INET || nd->ndm_family == AF_BRIDGE) &&
            (nd->ndm_state & NUD_PERMANENT))
          return true;
        continue;
      }
      return true;  // links, IPv4 addresses, IPv4 routes
    }
    return false;
  }

  // Drains the notifications queued since the last call: a message about
  // what read-back would see, or a lost one (ENOBUFS), is a change. Without
  // the socket: always a change.
  bool changedSinceLastAsked() override {
    if (watch_fd_ < 0) return true;
    bool changed = false;
    alignas(nlmsghdr) std::array<char, 1 << 16> buf;
    for (;;) {
      const ssize_t n = ::recv(watch_fd_, buf.data(), buf.size(), MSG_DONTWAIT);
      if (n < 0 && errno == ENOBUFS) {
        changed = true;
        continue;
      }
      if (n > 0) {
        if (!changed) changed = relevant(buf.data(), static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return true;  // cannot tell
      return changed;
    }
  }
  SwApplyReport apply(const SoftwarePathState& objects) override;
  SwApplyReport remove(const SoftwarePathState& objects) override;
  Result<SoftwarePathState> readBack(const SoftwarePathState& desired,
                                     const ReadBackScope& scope) override;
  Result<std::unordered_map<std::string, flowrules::LinkTraffic>> linkTraffic() override;

  void setStatsSocket(std::unique_ptr<detail::DumpSocket> sock) { stats_sock_ = std::move(sock); }

 private:
  // One report line per object.
  struct Reporter {
    SwApplyReport& report;
    void ok() { ++report.succeeded; }
    void fail(const std::string& object, Error e) {
      e.field = object;
      report.failures.push_back({object, std::move(e)});
    }
  };

  // Links are looked up by name when an object names them (RTM_GETLINK of
  // that one device, on a socket of their own), and remembered until the
  // next refreshLinks(): a change costs what it names, not a dump of every
  // netdev (a hypervisor has a representor per VF, and more).
  Status refreshLinks() {
    link_by_name_.clear();
    return Status::success();
  }
  rtnl_link* linkByName(const std::string& name);  // borrowed; null when there is none
  LinkPtr linkRef(const std::string& name) {        // a reference of the caller's own
    rtnl_link* l = linkByName(name);
    if (l) nl_object_get(OBJ_CAST(l));
    return LinkPtr(l);
  }
  std::string linkName(int ifindex);
  int ifindex(const std::string& name) {
    rtnl_link* l = linkByName(name);
    return l ? rtnl_link_get_ifindex(l) : 0;
  }
  NetlinkBatch newBatch() { return NetlinkBatch(sock_.get(), options_.batch_messages, window_); }

  // Runs `build` for every object, sends them all in batches, and reports;
  // errors in `ignore` count as success (idempotent removal).
  template <class T>
  void runBatch(const std::vector<T>& objects, Reporter& rep,
                const std::function<Result<MsgPtr>(const T&)>& build,
                std::initializer_list<int> ignore = {},
                std::vector<std::size_t>* eexist = nullptr);

  void applyVxlan(const std::vector<VxlanDevice>& devs, Reporter& rep);
  void applyLinks(const std::vector<LinkSetting>& links, Reporter& rep);
  void applySysctls(const std::vector<SysctlSetting>& sysctls, Reporter& rep, bool restore);
  void applyRoutes(const std::vector<RouteEntry>& routes, Reporter& rep);
  void applyRoutes6(const std::vector<Route6Entry>& routes, Reporter& rep);
  template <class Entry, class Dump>
  void applyRouteKind(const std::vector<Entry>& routes, Reporter& rep,
                      const std::function<Result<MsgPtr>(const Entry&, int)>& build, const Dump& dump);

  Result<std::string> readProc(const std::string& path);
  // readProc for a caller already in the namespace (a NetnsGuard of its own).
  static Result<std::string> readProcHere(const std::string& path);
  Status writeProc(const std::string& path, const std::string& value);

  // apply() and remove(): one caller at a time (software_path.h).
  SockPtr sock_;
  std::unique_ptr<detail::DumpSocket> check_sock_;  // apply's dumps (routes already present)
  const KernelSoftwarePathOptions options_;
  const std::size_t window_;
  SockPtr lookup_sock_;  // link lookups by name or index, outside any batch
  int watch_fd_ = -1;    // rtnetlink notifications of the namespace (changedSinceLastAsked)
  std::map<std::string, LinkPtr> link_by_name_;  // null: no such device
  // readBack(): its own socket under its own lock, so that it may run on
  // another thread than apply() and remove(); it touches nothing above but
  // the constant options_.
  std::mutex dump_mu_;
  std::unique_ptr<detail::DumpSocket> dump_sock_;
  // linkTraffic(): the same, apart again, so that a counter sweep never
  // waits behind a read-back of 100 000 routes.
  std::mutex stats_mu_;
  std::unique_ptr<detail::DumpSocket> stats_sock_;
};

rtnl_link* KernelSoftwarePath::linkByName(const std::string& name) {
  auto it = link_by_name_.find(name);
  if (it == link_by_name_.end()) {
    rtnl_link* link = nullptr;
    if (name.empty() || name.size() >= IF_NAMESIZE ||
        rtnl_link_get_kernel(lookup_sock_.get(), 0, name.c_str(), &link) < 0)
      link = nullptr;
    it = link_by_name_.emplace(name, LinkPtr(link)).first;
  }
  return it->second.get();
}

std::string KernelSoftwarePath::linkName(int index) {
  rtnl_link* link = nullptr;
  if (index <= 0 || rtnl_link_get_kernel(lookup_sock_.get(), index, nullptr, &link) < 0)
    return {};
  LinkPtr held(link);
  const char* name = rtnl_link_get_name(held.get());
  return name ? name : "";
}

template <class T>
void KernelSoftwarePath::runBatch(const std::vector<T>& objects, Reporter& rep,
                                  const std::function<Result<MsgPtr>(const T&)>& build,
                                  std::initializer_list<int> ignore,
                                  std::vector<std::size_t>* eexist) {
  NetlinkBatch batch = newBatch();
  std::vector<bool> sent(objects.size(), false);
  for (std::size_t i = 0; i < objects.size(); ++i) {
    auto msg = build(objects[i]);
    if (!msg) {
      rep.fail(describe(objects[i]), msg.error());
      continue;
    }
    if (!*msg) {  // nothing to send: already as wanted
      rep.ok();
      continue;
    }
    batch.add(msg->get(), i);
    sent[i] = true;
  }
  batch.finish();
  for (std::size_t i = 0; i < objects.size(); ++i) {
    if (!sent[i]) continue;
    auto it = batch.outcomes().find(i);
    const NetlinkOutcome outcome = it == batch.outcomes().end() ? NetlinkOutcome{EIO, "no ACK"} : it->second;
    if (outcome.err == 0 || std::find(ignore.begin(), ignore.end(), outcome.err) != ignore.end()) {
      rep.ok();
    } else if (outcome.err == EEXIST && eexist) {
      eexist->push_back(i);
    } else {
      rep.fail(describe(objects[i]), kernelError(outcome.err, describe(objects[i]), outcome.ext_ack));
    }
  }
}

// libnl 3.7 takes a neighbour message's family from its destination address;
// an FDB entry of a VXLAN device must go out as AF_BRIDGE with an IPv4 (or
// IPv6) NDA_DST.
void forceBridgeFamily(nl_msg* msg) {
  auto* ndm = static_cast<ndmsg*>(nlmsg_data(nlmsg_hdr(msg)));
  ndm->ndm_family = AF_BRIDGE;
}

// An RTM_NEWNEIGH (add, NUD_PERMANENT, replacing) or RTM_DELNEIGH request:
// an IPv4 neighbour (AF_INET: ip -> mac) or a VXLAN FDB entry (AF_BRIDGE,
// NTF_SELF: mac -> remote VTEP ip). `mac` may be null for an AF_INET delete.
Result<MsgPtr> neighRequest(bool add, int family, int ifindex, const IpAddr& ip, const MacAddr* mac,
                            const std::string& what) {
  NeighPtr n(rtnl_neigh_alloc());
  // The destination first: libnl refuses it once the family is AF_BRIDGE.
  auto dst = ipAddr(ip);
  if (rtnl_neigh_set_dst(n.get(), dst.get()) < 0)
    return makeError(ErrorCode::kInternal, what, "", "libnl refused the destination");
  rtnl_neigh_set_family(n.get(), family);
  rtnl_neigh_set_ifindex(n.get(), ifindex);
  AddrPtr ll;
  if (mac) {
    ll = macAddr(*mac);
    rtnl_neigh_set_lladdr(n.get(), ll.get());
  }
  if (family == AF_BRIDGE) rtnl_neigh_set_flags(n.get(), NTF_SELF);
  nl_msg* msg = nullptr;
  int err = 0;
  if (add) {
    rtnl_neigh_set_state(n.get(), NUD_PERMANENT);
    err = rtnl_neigh_build_add_request(n.get(), NLM_F_CREATE | NLM_F_REPLACE, &msg);
  } else {
    err = rtnl_neigh_build_delete_request(n.get(), 0, &msg);
  }
  if (err < 0) return makeError(ErrorCode::kInternal, what, "", nl_geterror(err));
  if (family == AF_BRIDGE) forceBridgeFamily(msg);
  return MsgPtr(msg);
}

// An IPv6 neighbour (NUD_PERMANENT, replacing) or a proxy entry (NTF_PROXY),
// added or deleted.
Result<MsgPtr> neigh6Request(bool add, int ifindex, const Neighbour6Entry& e) {
  NeighPtr n(rtnl_neigh_alloc());
  auto dst = ipv6Addr(e.ip);
  if (rtnl_neigh_set_dst(n.get(), dst.get()) < 0)
    return makeError(ErrorCode::kInternal, describe(e), "", "libnl refused the destination");
  rtnl_neigh_set_family(n.get(), AF_INET6);
  rtnl_neigh_set_ifindex(n.get(), ifindex);
  AddrPtr ll;
  if (e.proxy) {
    rtnl_neigh_set_flags(n.get(), NTF_PROXY);
  } else if (add) {
    ll = macAddr(e.mac);
    rtnl_neigh_set_lladdr(n.get(), ll.get());
  }
  nl_msg* msg = nullptr;
  int err = 0;
  if (add) {
    rtnl_neigh_set_state(n.get(), NUD_PERMANENT);
    err = rtnl_neigh_build_add_request(n.get(), NLM_F_CREATE | NLM_F_REPLACE, &msg);
  } else {
    err = rtnl_neigh_build_delete_request(n.get(), 0, &msg);
  }
  if (err < 0) return makeError(ErrorCode::kInternal, describe(e), "", nl_geterror(err));
  return MsgPtr(msg);
}

// An IPv6 FIB rule (the source check), added or deleted.
Result<MsgPtr> rule6Request(bool add, const Rule6Entry& r) {
  RulePtr rule(rtnl_rule_alloc());
  rtnl_rule_set_family(rule.get(), AF_INET6);
  rtnl_rule_set_prio(rule.get(), r.priority);
  if (rtnl_rule_set_iif(rule.get(), r.iif.c_str()) < 0)
    return makeError(ErrorCode::kInvalidValue, describe(r), r.iif, "libnl refused the interface name");
  AddrPtr src, dst;
  if (r.src) {
    src = ipv6Addr(r.src->addr, r.src->len);
    rtnl_rule_set_src(rule.get(), src.get());
  }
  if (r.dst) {
    dst = ipv6Addr(r.dst->addr, r.dst->len);
    rtnl_rule_set_dst(rule.get(), dst.get());
  }
  rtnl_rule_set_action(rule.get(), r.blackhole ? FR_ACT_BLACKHOLE : FR_ACT_TO_TBL);
  if (!r.blackhole) rtnl_rule_set_table(rule.get(), r.table);
  rtnl_rule_set_protocol(rule.get(), r.protocol);
  nl_msg* msg = nullptr;
  const int err = add ? rtnl_rule_build_add_request(rule.get(), NLM_F_CREATE | NLM_F_EXCL, &msg)
                      : rtnl_rule_build_delete_request(rule.get(), 0, &msg);
  if (err < 0) return makeError(ErrorCode::kInternal, describe(r), "", nl_geterror(err));
  return MsgPtr(msg);
}

// RTM_DELLINK of a device by name.
Result<MsgPtr> linkDeleteRequest(const std::string& name) {
  LinkPtr link(rtnl_link_alloc());
  rtnl_link_set_name(link.get(), name.c_str());
  nl_msg* msg = nullptr;
  if (int err = rtnl_link_build_delete_request(link.get(), &msg); err < 0)
    return makeError(ErrorCode::kInternal, name, "", nl_geterror(err));
  return MsgPtr(msg);
}

Error unknownDevice(const std::string& dev) {
  return makeError(ErrorCode::kNotFound, "dev", dev,
                   "unknown interface '" + dev + "' (no such netdev in this namespace)");
}

void KernelSoftwarePath::applyVxlan(const std::vector<VxlanDevice>& devs, Reporter& rep) {
  // Existing devices that differ are deleted first, then created anew.
  std::vector<VxlanDevice> stale;
  for (const auto& d : devs) {
    LinkPtr link = linkRef(d.name);
    if (!link) continue;
    std::uint32_t vni = 0, port = 0;
    nl_addr* local = nullptr;
    const char* type = rtnl_link_get_type(link.get());
    const bool is_vxlan = type && std::strcmp(type, "vxlan") == 0;
    if (!is_vxlan || rtnl_link_vxlan_get_id(link.get(), &vni) < 0 || vni != d.vni ||
        rtnl_link_vxlan_get_port(link.get(), &port) < 0 || port != d.dst_port ||
        rtnl_link_vxlan_get_local(link.get(), &local) < 0 || ipFromNl(local) != d.local ||
        (!d.local.isV4() && rtnl_link_vxlan_get_udp_zero_csum6_rx(link.get()) != 1))
      stale.push_back(d);
    if (local) nl_addr_put(local);
  }
  SwApplyReport ignored;
  Reporter quiet{ignored};
  runBatch<VxlanDevice>(stale, quiet, [&](const VxlanDevice& d) -> Result<MsgPtr> {
    return linkDeleteRequest(d.name);
  }, {ENODEV});

  (void)refreshLinks();
  // Create the missing ones (EXCL: an existing, matching device is fine).
  runBatch<VxlanDevice>(devs, rep, [&](const VxlanDevice& d) -> Result<MsgPtr> {
    if (ifindex(d.name) > 0) return MsgPtr();  // exists and matches: settings below
    LinkPtr link(rtnl_link_vxlan_alloc());
    rtnl_link_set_name(link.get(), d.name.c_str());
    rtnl_link_vxlan_set_id(link.get(), d.vni);
    auto local = ipAddr(d.local);  // libnl: IFLA_VXLAN_LOCAL or IFLA_VXLAN_LOCAL6
    rtnl_link_vxlan_set_local(link.get(), local.get());
    // Over IPv6: take the hardware's zero-checksum encapsulation (sw_objects.h).
    if (!d.local.isV4()) rtnl_link_vxlan_set_udp_zero_csum6_rx(link.get(), 1);
    rtnl_link_vxlan_set_port(link.get(), d.dst_port);
    rtnl_link_vxlan_set_learning(link.get(), 0);
    auto mac = macAddr(d.mac);
    rtnl_link_set_addr(link.get(), mac.get());
    if (!d.underlay_dev.empty()) {
      const int lower = ifindex(d.underlay_dev);
      if (lower <= 0) return unknownDevice(d.underlay_dev);
      rtnl_link_vxlan_set_link(link.get(), static_cast<std::uint32_t>(lower));
    }
    nl_msg* msg = nullptr;
    if (int err = rtnl_link_build_add_request(link.get(), NLM_F_CREATE | NLM_F_EXCL, &msg); err < 0)
      return makeError(ErrorCode::kInternal, d.name, "", nl_geterror(err));
    return MsgPtr(msg);
  });
  (void)refreshLinks();
  // MAC and up, for new and existing devices alike.
  std::vector<LinkSetting> settings;
  for (const auto& d : devs) settings.push_back({d.name, d.mac, true, d.owner});
  SwApplyReport settings_report;
  Reporter settings_rep{settings_report};
  applyLinks(settings, settings_rep);
  for (auto& f : settings_report.failures) rep.report.failures.push_back(std::move(f));
}

void KernelSoftwarePath::applyLinks(const std::vector<LinkSetting>& links, Reporter& rep) {
  runBatch<LinkSetting>(links, rep, [&](const LinkSetting& l) -> Result<MsgPtr> {
    LinkPtr orig = linkRef(l.dev);
    if (!orig) return unknownDevice(l.dev);
    const bool mac_ok = macFromNl(rtnl_link_get_addr(orig.get())) == l.mac;
    const bool up_ok = ((rtnl_link_get_flags(orig.get()) & IFF_UP) != 0) == l.up;
    if (mac_ok && up_ok) return MsgPtr();
    LinkPtr change(rtnl_link_alloc());
    auto mac = macAddr(l.mac);
    if (!mac_ok) rtnl_link_set_addr(change.get(), mac.get());
    if (l.up)
      rtnl_link_set_flags(change.get(), IFF_UP);
    else
      rtnl_link_unset_flags(change.get(), IFF_UP);
    nl_msg* msg = nullptr;
    if (int err = rtnl_link_build_change_request(orig.get(), change.get(), 0, &msg); err < 0)
      return makeError(ErrorCode::kInternal, l.dev, "", nl_geterror(err));
    return MsgPtr(msg);
  });
}

Result<std::string> KernelSoftwarePath::readProc(const std::string& path) {
  NetnsGuard ns(options_.netns);
  if (!ns.ok()) return ns.error();
  return readProcHere(path);
}

Result<std::string> KernelSoftwarePath::readProcHere(const std::string& path) {
  std::ifstream in("/proc/sys/net/" + path);
  std::string value;
  if (!in || !(in >> value))
    return makeError(ErrorCode::kNotFound, "sysctl net/" + path, "", "cannot read /proc/sys/net/" + path);
  return value;
}

Status KernelSoftwarePath::writeProc(const std::string& path, const std::string& value) {
  if (!safeSysctlPath(path))
    return makeError(ErrorCode::kInvalidValue, "sysctl", path, "'" + path + "' is not a sysctl path under net/");
  for (char c : value)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-')
      return makeError(ErrorCode::kInvalidValue, "sysctl net/" + path, value, "value must be a word or number");
  NetnsGuard ns(options_.netns);
  if (!ns.ok()) return ns.error();
  const std::string file = "/proc/sys/net/" + path;
  const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return kernelError(errno, "sysctl net/" + path, "cannot open " + file);
  const std::string line = value + "\n";
  const ssize_t n = ::write(fd, line.data(), line.size());
  const int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(line.size())) return kernelError(err, "sysctl net/" + path, "writing " + file);
  return Status::success();
}

void KernelSoftwarePath::applySysctls(const std::vector<SysctlSetting>& sysctls, Reporter& rep,
                                      bool restore) {
  std::vector<SysctlSetting> netlink_ones;
  std::vector<std::string> values;  // value to set, per netlink_ones entry
  for (const auto& s : sysctls) {
    const auto d = classify(s.path);
    std::string value = s.value;
    if (restore) {
      if (d.kind == DevSysctl::Kind::kProc) {  // global settings (ip_forward) are left as they are
        rep.ok();
        continue;
      }
      if (d.kind == DevSysctl::Kind::kDevProc) {
        Result<std::string> def = makeError(ErrorCode::kNotFound, describe(s), "", "no default");
        for (const auto& from : ipv6Defaults(s.path, d))
          if ((def = readProc(from))) break;
        if (!def) {
          rep.fail(describe(s), def.error());
          continue;
        }
        if (auto st = writeProc(s.path, *def); st)
          rep.ok();
        else
          rep.fail(describe(s), st.error());
        continue;
      }
      // Back to the namespace's default for new devices. Namespaces other
      // than the first have no neigh/default: "lo" carries the default there.
      auto def = readProc(d.kind == DevSysctl::Kind::kDevconf ? "ipv4/conf/default/" + d.key
                                                              : "ipv4/neigh/default/proxy_delay");
      if (!def && d.kind == DevSysctl::Kind::kProxyDelay) def = readProc("ipv4/neigh/lo/proxy_delay");
      if (!def) {
        rep.fail(describe(s), def.error());
        continue;
      }
      value = *def;
      if (d.kind == DevSysctl::Kind::kProxyDelay) value = std::to_string(std::stoll(value) * 10);  // ticks -> ms
    }
    if (d.kind == DevSysctl::Kind::kProc || d.kind == DevSysctl::Kind::kDevProc) {
      if (auto st = writeProc(s.path, value); st)
        rep.ok();
      else
        rep.fail(describe(s), st.error());
      continue;
    }
    netlink_ones.push_back(s);
    values.push_back(value);
  }
  std::map<const SysctlSetting*, std::string> value_of;
  for (std::size_t i = 0; i < netlink_ones.size(); ++i) value_of[&netlink_ones[i]] = values[i];
  runBatch<SysctlSetting>(netlink_ones, rep, [&](const SysctlSetting& s) -> Result<MsgPtr> {
    const auto d = classify(s.path);
    const std::string& value = value_of.at(&s);
    long long v = 0;
    try {
      v = std::stoll(value);
    } catch (...) {
      return makeError(ErrorCode::kInvalidValue, describe(s), value, "value must be a number");
    }
    LinkPtr orig = linkRef(d.dev);
    if (!orig) return unknownDevice(d.dev);
    nl_msg* msg = nullptr;
    if (d.kind == DevSysctl::Kind::kDevconf) {
      std::uint32_t now = 0;
      if (rtnl_link_inet_get_conf(orig.get(), static_cast<unsigned>(d.devconf_id), &now) == 0 &&
          now == static_cast<std::uint32_t>(v))
        return MsgPtr();
      LinkPtr change(rtnl_link_alloc());
      if (rtnl_link_inet_set_conf(change.get(), static_cast<unsigned>(d.devconf_id),
                                  static_cast<std::uint32_t>(v)) < 0)
        return makeError(ErrorCode::kInternal, describe(s), "", "libnl refused the devconf id");
      if (int err = rtnl_link_build_change_request(orig.get(), change.get(), 0, &msg); err < 0)
        return makeError(ErrorCode::kInternal, describe(s), "", nl_geterror(err));
      return MsgPtr(msg);
    }
    // proxy_delay: neighbour table parameters of this device (milliseconds).
    std::unique_ptr<rtnl_neightbl, Deleter<rtnl_neightbl, rtnl_neightbl_put>> tbl(rtnl_neightbl_alloc());
    rtnl_neightbl_set_family(tbl.get(), AF_INET);
    rtnl_neightbl_set_name(tbl.get(), "arp_cache");
    rtnl_neightbl_set_dev(tbl.get(), rtnl_link_get_ifindex(orig.get()));
    rtnl_neightbl_set_proxy_delay(tbl.get(), static_cast<std::uint64_t>(v));
    if (int err = rtnl_neightbl_build_change_request(tbl.get(), tbl.get(), &msg); err < 0)
      return makeError(ErrorCode::kInternal, describe(s), "", nl_geterror(err));
    return MsgPtr(msg);
  }, restore ? std::initializer_list<int>{ENODEV} : std::initializer_list<int>{});
}

Result<MsgPtr> buildRoute(const RouteEntry& r, int ifindex, int flags, bool del) {
  RoutePtr route(rtnl_route_alloc());
  rtnl_route_set_family(route.get(), AF_INET);
  rtnl_route_set_table(route.get(), r.table);
  rtnl_route_set_protocol(route.get(), r.protocol);
  auto dst = ipv4Addr(r.dst.addr, r.dst.len);
  rtnl_route_set_dst(route.get(), dst.get());
  rtnl_route_set_type(route.get(), RTN_UNICAST);
  if (!del) {
    rtnl_route_set_scope(route.get(), r.via ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    if (ifindex > 0) rtnl_route_nh_set_ifindex(nh, ifindex);
    AddrPtr gw;
    if (r.via && r.via->isV4()) {
      gw = ipv4Addr(r.via->v4());
      rtnl_route_nh_set_gateway(nh, gw.get());
    } else if (r.via) {  // RTA_VIA: an IPv6 gateway of an IPv4 route (RFC 5549)
      gw = ipv6Addr(r.via->v6());
      rtnl_route_nh_set_via(nh, gw.get());
    }
    if (r.onlink) rtnl_route_nh_set_flags(nh, RTNH_F_ONLINK);
    rtnl_route_add_nexthop(route.get(), nh);  // route owns nh now
  } else {
    rtnl_route_set_scope(route.get(), RT_SCOPE_NOWHERE);  // wildcard for deletion
  }
  nl_msg* msg = nullptr;
  const int err = del ? rtnl_route_build_del_request(route.get(), flags, &msg)
                      : rtnl_route_build_add_request(route.get(), flags, &msg);
  if (err < 0) return makeError(ErrorCode::kInternal, describe(r), "", nl_geterror(err));
  return MsgPtr(msg);
}


Result<MsgPtr> buildRoute6(const Route6Entry& r, int ifindex, int flags, bool del) {
  RoutePtr route(rtnl_route_alloc());
  rtnl_route_set_family(route.get(), AF_INET6);
  rtnl_route_set_table(route.get(), r.table);
  rtnl_route_set_protocol(route.get(), r.protocol);
  auto dst = ipv6Addr(r.dst.addr, r.dst.len);
  rtnl_route_set_dst(route.get(), dst.get());
  rtnl_route_set_type(route.get(), RTN_UNICAST);
  if (!del) {
    rtnl_route_set_scope(route.get(), RT_SCOPE_UNIVERSE);
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    rtnl_route_nh_set_ifindex(nh, ifindex);
    AddrPtr gw;
    if (r.via) {
      gw = ipv6Addr(*r.via, 128);
      rtnl_route_nh_set_gateway(nh, gw.get());
    }
    if (r.onlink) rtnl_route_nh_set_flags(nh, RTNH_F_ONLINK);
    rtnl_route_add_nexthop(route.get(), nh);  // route owns nh now
  } else {
    rtnl_route_set_scope(route.get(), RT_SCOPE_NOWHERE);  // wildcard for deletion
  }
  nl_msg* msg = nullptr;
  const int err = del ? rtnl_route_build_del_request(route.get(), flags, &msg)
                      : rtnl_route_build_add_request(route.get(), flags, &msg);
  if (err < 0) return makeError(ErrorCode::kInternal, describe(r), "", nl_geterror(err));
  return MsgPtr(msg);
}

// Routes of either family, created with NLM_F_EXCL. A route already in the
// table (EEXIST) is replaced when it is ours (same protocol) and refused as
// a conflict when it is someone else's: nicoffload never takes over a route
// it did not make. The tables concerned are dumped on apply's own dump
// socket, the routes parsed as they come (no libnl cache: issue 12), only
// those asked kept. `dump(table, on_route, restart)` lists one table,
// calling on_route(table, dst, protocol, "dev X proto N" text) per route.
template <class Entry, class Dump>
void KernelSoftwarePath::applyRouteKind(const std::vector<Entry>& routes, Reporter& rep,
                                        const std::function<Result<MsgPtr>(const Entry&, int)>& build,
                                        const Dump& dump) {
  auto with = [&](int flags) {
    return std::function<Result<MsgPtr>(const Entry&)>(
        [&build, flags](const Entry& r) { return build(r, flags); });
  };
  std::vector<std::size_t> exists;
  runBatch<Entry>(routes, rep, with(NLM_F_CREATE | NLM_F_EXCL), {}, &exists);
  if (exists.empty()) return;
  using Key = std::pair<std::uint32_t, std::decay_t<decltype(routes[0].dst)>>;
  std::map<Key, std::pair<int, std::string>> present;  // -> protocol, text
  std::set<Key> asked;
  std::set<std::uint32_t> tables;
  for (auto i : exists) {
    asked.insert({routes[i].table, routes[i].dst});
    tables.insert(routes[i].table);
  }
  for (const auto table : tables) {
    const int err = dump(
        table,
        [&](std::uint32_t t, const auto& dst, int protocol, std::string text) {
          if (asked.count({t, dst})) present[{t, dst}] = {protocol, std::move(text)};
        },
        [&] { present.clear(); });
    if (err && err != ENOENT) {
      for (auto i : exists)
        rep.fail(describe(routes[i]), makeError(ErrorCode::kIo, describe(routes[i]), "",
                                                std::string("cannot dump routes: ") + std::strerror(err)));
      return;
    }
  }
  std::vector<Entry> replace;
  for (auto i : exists) {
    const auto& r = routes[i];
    auto it = present.find({r.table, r.dst});
    if (it != present.end() && it->second.first != r.protocol) {
      rep.fail(describe(r), makeError(ErrorCode::kConflict, describe(r), r.dst.str(),
                                      r.dst.str() + " is already routed (" + it->second.second +
                                          ") by someone else in table " + std::to_string(r.table) +
                                          "; nicoffload does not replace routes it did not make"));
      continue;
    }
    replace.push_back(r);
  }
  runBatch<Entry>(replace, rep, with(NLM_F_CREATE | NLM_F_REPLACE));
}

void KernelSoftwarePath::applyRoutes(const std::vector<RouteEntry>& routes, Reporter& rep) {
  applyRouteKind<RouteEntry>(
      routes, rep,
      [this](const RouteEntry& r, int flags) -> Result<MsgPtr> {
        int idx = 0;
        if (!r.dev.empty() && (idx = ifindex(r.dev)) <= 0) return unknownDevice(r.dev);
        return buildRoute(r, idx, flags, false);
      },
      [this](std::uint32_t table, const auto& on_route, const std::function<void()>& restart) {
        return dumpRoutes(*check_sock_, table, 0, [&](const RouteMsg& m) {
          std::string text = "proto " + std::to_string(m.protocol);
          if (m.oif)
            if (const auto name = linkName(m.oif); !name.empty()) text = "dev " + name + " " + text;
          if (m.via) text = "via " + m.via->str() + " " + text;
          on_route(m.table, m.dst, m.protocol, std::move(text));
        }, restart);
      });
}

void KernelSoftwarePath::applyRoutes6(const std::vector<Route6Entry>& routes, Reporter& rep) {
  applyRouteKind<Route6Entry>(
      routes, rep,
      [this](const Route6Entry& r, int flags) -> Result<MsgPtr> {
        const int idx = ifindex(r.dev);
        if (idx <= 0) return unknownDevice(r.dev);
        return buildRoute6(r, idx, flags, false);
      },
      [this](std::uint32_t table, const auto& on_route, const std::function<void()>& restart) {
        return dumpRoutes6(*check_sock_, table, 0, [&](const Route6Msg& m) {
          std::string text = "proto " + std::to_string(m.protocol);
          if (m.oif)
            if (const auto name = linkName(m.oif); !name.empty()) text = "dev " + name + " " + text;
          on_route(m.table, m.dst, m.protocol, std::move(text));
        }, restart);
      });
}

SwApplyReport KernelSoftwarePath::apply(const SoftwarePathState& o) {
  SwApplyReport report;
  Reporter rep{report};
  if (auto s = refreshLinks(); !s) {
    rep.fail("links", s.error());
    return report;
  }
  applyVxlan(o.vxlan_devices, rep);
  applyLinks(o.links, rep);
  (void)refreshLinks();
  applySysctls(o.sysctls, rep, false);
  runBatch<AddressEntry>(o.addresses, rep, [&](const AddressEntry& a) -> Result<MsgPtr> {
    const int idx = ifindex(a.dev);
    if (idx <= 0) return unknownDevice(a.dev);
    IfAddrPtr addr(rtnl_addr_alloc());
    rtnl_addr_set_ifindex(addr.get(), idx);
    auto local = ipv4Addr(a.prefix.addr, a.prefix.len);
    rtnl_addr_set_local(addr.get(), local.get());
    nl_msg* msg = nullptr;
    if (int err = rtnl_addr_build_add_request(addr.get(), NLM_F_CREATE | NLM_F_REPLACE, &msg); err < 0)
      return makeError(ErrorCode::kInternal, describe(a), "", nl_geterror(err));
    return MsgPtr(msg);
  });
  runBatch<FdbEntry>(o.fdb, rep, [&](const FdbEntry& f) -> Result<MsgPtr> {
    const int idx = ifindex(f.dev);
    if (idx <= 0) return unknownDevice(f.dev);
    return neighRequest(true, AF_BRIDGE, idx, f.dst, &f.mac, describe(f));
  });
  runBatch<NeighbourEntry>(o.neighbours, rep, [&](const NeighbourEntry& e) -> Result<MsgPtr> {
    const int idx = ifindex(e.dev);
    if (idx <= 0) return unknownDevice(e.dev);
    return neighRequest(true, AF_INET, idx, e.ip, &e.mac, describe(e));
  });
  runBatch<Neighbour6Entry>(o.neighbours6, rep, [&](const Neighbour6Entry& e) -> Result<MsgPtr> {
    const int idx = ifindex(e.dev);
    if (idx <= 0) return unknownDevice(e.dev);
    return neigh6Request(true, idx, e);
  });
  applyRoutes(o.routes, rep);
  applyRoutes6(o.routes6, rep);
  runBatch<Rule6Entry>(o.rules6, rep, [&](const Rule6Entry& r) { return rule6Request(true, r); },
                       {EEXIST});
  return report;
}

SwApplyReport KernelSoftwarePath::remove(const SoftwarePathState& o) {
  SwApplyReport report;
  Reporter rep{report};
  if (auto s = refreshLinks(); !s) {
    rep.fail("links", s.error());
    return report;
  }
  // Reverse dependency order. Whatever is gone already counts as removed.
  runBatch<Rule6Entry>(o.rules6, rep, [&](const Rule6Entry& r) { return rule6Request(false, r); },
                       {ENOENT, ESRCH});
  runBatch<Route6Entry>(o.routes6, rep, [&](const Route6Entry& r) -> Result<MsgPtr> {
    return buildRoute6(r, 0, 0, true);
  }, {ESRCH, ENOENT, ENODEV});
  runBatch<RouteEntry>(o.routes, rep, [&](const RouteEntry& r) -> Result<MsgPtr> {
    return buildRoute(r, 0, 0, true);
  }, {ESRCH, ENOENT, ENODEV});
  runBatch<Neighbour6Entry>(o.neighbours6, rep, [&](const Neighbour6Entry& e) -> Result<MsgPtr> {
    const int idx = ifindex(e.dev);
    if (idx <= 0) return MsgPtr();  // the device is gone, and its entries with it
    return neigh6Request(false, idx, e);
  }, {ENOENT, ENODEV});
  auto neighMsg = [&](int family, const std::string& dev, const IpAddr& ip, const MacAddr* mac,
                      const std::string& what) -> Result<MsgPtr> {
    const int idx = ifindex(dev);
    if (idx <= 0) return MsgPtr();  // the device is gone, and its entries with it
    return neighRequest(false, family, idx, ip, mac, what);
  };
  runBatch<NeighbourEntry>(o.neighbours, rep, [&](const NeighbourEntry& e) {
    return neighMsg(AF_INET, e.dev, e.ip, nullptr, describe(e));
  }, {ENOENT, ENODEV});
  runBatch<FdbEntry>(o.fdb, rep, [&](const FdbEntry& f) {
    return neighMsg(AF_BRIDGE, f.dev, f.dst, &f.mac, describe(f));
  }, {ENOENT, ENODEV});
  runBatch<AddressEntry>(o.addresses, rep, [&](const AddressEntry& a) -> Result<MsgPtr> {
    const int idx = ifindex(a.dev);
    if (idx <= 0) return MsgPtr();
    IfAddrPtr addr(rtnl_addr_alloc());
    rtnl_addr_set_ifindex(addr.get(), idx);
    auto local = ipv4Addr(a.prefix.addr, a.prefix.len);
    rtnl_addr_set_local(addr.get(), local.get());
    nl_msg* msg = nullptr;
    if (int err = rtnl_addr_build_delete_request(addr.get(), 0, &msg); err < 0)
      return makeError(ErrorCode::kInternal, describe(a), "", nl_geterror(err));
    return MsgPtr(msg);
  }, {EADDRNOTAVAIL, ENODEV, ENOENT});
  runBatch<VxlanDevice>(o.vxlan_devices, rep, [&](const VxlanDevice& d) -> Result<MsgPtr> {
    if (ifindex(d.name) <= 0) return MsgPtr();
    return linkDeleteRequest(d.name);
  }, {ENODEV});
  // Device settings go back to the namespace defaults; a device that is gone is fine.
  std::vector<SysctlSetting> present;
  for (const auto& s : o.sysctls) {
    const auto d = classify(s.path);
    if (d.kind != DevSysctl::Kind::kProc && ifindex(d.dev) <= 0) {
      rep.ok();
      continue;
    }
    present.push_back(s);
  }
  applySysctls(present, rep, true);
  // A device's MAC and state are not ours to undo (we do not know what they were).
  for (std::size_t i = 0; i < o.links.size(); ++i) rep.ok();
  return report;
}

Result<std::unordered_map<std::string, flowrules::LinkTraffic>> KernelSoftwarePath::linkTraffic() {
  std::lock_guard lock(stats_mu_);
  std::unordered_map<std::string, flowrules::LinkTraffic> out;
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  auto req = dumpRequest(RTM_GETLINK, ifi);
  if (!req) return makeError(ErrorCode::kInternal, "links", "", "cannot build the link dump request");
  const int err = stats_sock_->dump(
      req.get(),
      [&](const nlmsghdr* h) {
        if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return;
        std::array<nlattr*, IFLA_MAX + 1> tb{};
        if (!parseAttrs(h, sizeof(ifinfomsg), tb) || !tb[IFLA_IFNAME] || !tb[IFLA_STATS64]) return;
        rtnl_link_stats64 st{};
        // Older kernels send a shorter struct: what is there counts.
        std::memcpy(&st, nla_data(tb[IFLA_STATS64]),
                    std::min<std::size_t>(sizeof st, static_cast<std::size_t>(nla_len(tb[IFLA_STATS64]))));
        std::string name(static_cast<const char*>(nla_data(tb[IFLA_IFNAME])),
                         strnlen(static_cast<const char*>(nla_data(tb[IFLA_IFNAME])),
                                 nla_len(tb[IFLA_IFNAME])));
        out[std::move(name)] = {st.rx_packets, st.rx_bytes, st.tx_packets, st.tx_bytes};
      },
      [&] { out.clear(); });
  if (err) return dumpError("link counters", err);
  return out;
}

Result<SoftwarePathState> KernelSoftwarePath::readBack(const SoftwarePathState& desired,
                                                       const ReadBackScope& scope) {
  // Its own socket, under its own lock: never sock_ or the link lookups, which
  // apply() and remove() use (software_path.h: readBack may run on another
  // thread).
  std::lock_guard lock(dump_mu_);
  auto& sock = *dump_sock_;
  SoftwarePathState out;

  // Links, by index.
  std::unordered_map<int, LinkInfo> links;
  {
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    auto req = dumpRequest(RTM_GETLINK, ifi);
    if (!req) return makeError(ErrorCode::kInternal, "links", "", "cannot build the link dump request");
    if (int err = sock.dump(req.get(), [&](const nlmsghdr* h) {
          if (auto l = parseLink(h)) links[l->first] = std::move(l->second);
        }, [&] { links.clear(); }))
      return dumpError("links", err);
  }
  auto nameOf = [&](int idx) -> std::string {
    const auto it = links.find(idx);
    return it == links.end() ? std::string() : it->second.name;
  };

  std::set<std::string> devices;  // devices of interest
  for (const auto& l : desired.links) devices.insert(l.dev);
  for (const auto& n : desired.neighbours) devices.insert(n.dev);
  for (const auto& s : desired.sysctls)
    if (auto d = classify(s.path); d.kind != DevSysctl::Kind::kProc) devices.insert(d.dev);
  // Desired routes the plan left without a device, by table and
  // destination (hashed: 100 000 of them cost a tree dozens of ms).
  auto routeKey = [](std::uint32_t table, const Ipv4Prefix& p) {
    return (static_cast<std::uint64_t>(table) << 40) | (static_cast<std::uint64_t>(p.len) << 32) | p.addr.value;
  };
  std::unordered_set<std::uint64_t> deviceless_routes;
  for (const auto& r : desired.routes)
    if (r.dev.empty()) deviceless_routes.insert(routeKey(r.table, r.dst));

  // Routes: ours by table + protocol. The kernel filters on both (strict
  // dump checking); dumpRoutes tests them again for older kernels.
  {
    std::unordered_set<int> route_devs;  // by index: names once, after the dump
    const int err = dumpRoutes(sock, scope.route_table, scope.route_protocol, [&](const RouteMsg& m) {
      RouteEntry r;
      r.dst = m.dst;
      r.table = m.table;
      r.protocol = m.protocol;
      if (m.oif) r.dev = nameOf(m.oif);
      r.via = m.via;
      r.onlink = m.onlink;
      if (!r.via && !r.dev.empty()) route_devs.insert(m.oif);  // a device carrying a VM route is ours
      if (!deviceless_routes.empty() && deviceless_routes.count(routeKey(r.table, r.dst)))
        r.dev.clear();  // the plan left the device to the kernel
      out.routes.push_back(std::move(r));
    }, [&] {
      out.routes.clear();
      route_devs.clear();
    });
    // ENOENT: the table does not exist (yet), so it holds none of ours.
    if (err && err != ENOENT) return dumpError("routes", err);
    for (const int idx : route_devs) devices.insert(nameOf(idx));
  }

  // IPv6: our /128s, the same way; the devices that carry them, those the
  // plan gives IPv6 objects and settings, have their IPv6 settings and
  // neighbours read.
  std::set<std::string> devices6;
  for (const auto& n : desired.neighbours6) devices6.insert(n.dev);
  for (const auto& s : desired.sysctls)
    if (auto d = classify(s.path); d.kind == DevSysctl::Kind::kDevProc) devices6.insert(d.dev);
  {
    std::unordered_set<int> route_devs;
    const int err = dumpRoutes6(sock, scope.route_table, scope.route_protocol, [&](const Route6Msg& m) {
      Route6Entry r;
      r.dst = m.dst;
      r.table = m.table;
      r.protocol = m.protocol;
      r.via = m.via;
      r.onlink = m.onlink;
      if (m.oif) {
        r.dev = nameOf(m.oif);
        if (!r.via) route_devs.insert(m.oif);  // a device carrying a VM /128 is ours
      }
      out.routes6.push_back(std::move(r));
    }, [&] {
      out.routes6.clear();
      route_devs.clear();
    });
    if (err && err != ENOENT && err != EAFNOSUPPORT) return dumpError("IPv6 routes", err);
    for (const int idx : route_devs) devices6.insert(nameOf(idx));
  }
  // IPv6 source-check rules: ours by protocol.
  {
    fib_rule_hdr frh{};
    frh.family = AF_INET6;
    auto req = dumpRequest(RTM_GETRULE, frh);
    if (!req) return makeError(ErrorCode::kInternal, "rules6", "", "cannot build the rule dump request");
    if (int err = sock.dump(req.get(), [&](const nlmsghdr* h) {
          if (h->nlmsg_type != RTM_NEWRULE || h->nlmsg_len < NLMSG_LENGTH(sizeof(fib_rule_hdr))) return;
          const auto* m = static_cast<const fib_rule_hdr*>(nlmsg_data(h));
          if (m->family != AF_INET6) return;
          std::array<nlattr*, FRA_MAX + 1> tb{};
          if (!parseAttrs(h, sizeof(fib_rule_hdr), tb)) return;
          if (!tb[FRA_PROTOCOL] || nla_get_u8(tb[FRA_PROTOCOL]) != scope.route_protocol) return;
          Rule6Entry r;
          r.protocol = scope.route_protocol;
          if (tb[FRA_IIFNAME])
            r.iif.assign(static_cast<const char*>(nla_data(tb[FRA_IIFNAME])),
                         strnlen(static_cast<const char*>(nla_data(tb[FRA_IIFNAME])),
                                 static_cast<std::size_t>(nla_len(tb[FRA_IIFNAME]))));
          r.priority = tb[FRA_PRIORITY] ? nla_get_u32(tb[FRA_PRIORITY]) : 0;
          if (m->src_len || tb[FRA_SRC]) r.src = Ipv6Prefix{ipv6Of(tb[FRA_SRC]), m->src_len};
          if (m->dst_len || tb[FRA_DST]) r.dst = Ipv6Prefix{ipv6Of(tb[FRA_DST]), m->dst_len};
          r.blackhole = m->action == FR_ACT_BLACKHOLE;
          if (!r.blackhole) r.table = tb[FRA_TABLE] ? nla_get_u32(tb[FRA_TABLE]) : m->table;
          if (!r.iif.empty()) devices6.insert(r.iif);
          out.rules6.push_back(std::move(r));
        }, [&] { out.rules6.clear(); }))
      return dumpError("IPv6 rules", err);
  }
  for (const auto& dev : devices6) devices.insert(dev);

  // VXLAN devices: ours by name.
  std::set<std::string> vxlan_names;
  const std::size_t prefix_len = std::strlen(kVxlanDevicePrefix);
  for (const auto& [idx, l] : links) {
    if (l.kind != "vxlan" || l.name.compare(0, prefix_len, kVxlanDevicePrefix) != 0) continue;
    VxlanDevice d;
    d.name = l.name;
    if (l.vxlan_id) d.vni = *l.vxlan_id;
    if (l.vxlan_local) d.local = *l.vxlan_local;
    if (l.vxlan_port) d.dst_port = *l.vxlan_port;
    d.mac = l.mac;
    if (l.vxlan_link && *l.vxlan_link) d.underlay_dev = nameOf(static_cast<int>(*l.vxlan_link));
    vxlan_names.insert(d.name);
    out.vxlan_devices.push_back(std::move(d));
  }

  // Device settings of the devices of interest (VXLAN devices excluded: their
  // MAC and state belong to VxlanDevice).
  std::unordered_map<std::string, const LinkInfo*> by_name;
  by_name.reserve(links.size());
  for (const auto& [idx, l] : links) by_name.emplace(l.name, &l);
  {
    // One entry into the namespace for every /proc read, not one per file.
    NetnsGuard ns(options_.netns);
    if (!ns.ok()) return ns.error();
    for (const auto& dev : devices) {
      const auto it = by_name.find(dev);
      if (it == by_name.end() || vxlan_names.count(dev)) continue;
      const LinkInfo& l = *it->second;
      out.links.push_back({dev, l.mac, (l.flags & IFF_UP) != 0, 0});
      for (const auto& [key, id] : {std::pair{"forwarding", IPV4_DEVCONF_FORWARDING},
                                    std::pair{"proxy_arp", IPV4_DEVCONF_PROXY_ARP},
                                    std::pair{"rp_filter", IPV4_DEVCONF_RP_FILTER}})
        if (static_cast<std::size_t>(id) <= l.inet_conf.size())
          out.sysctls.push_back({"ipv4/conf/" + dev + "/" + key,
                                 std::to_string(l.inet_conf[static_cast<std::size_t>(id) - 1]), 0});
      if (auto ticks = readProcHere("ipv4/neigh/" + dev + "/proxy_delay"))
        out.sysctls.push_back({"ipv4/neigh/" + dev + "/proxy_delay", std::to_string(std::stoll(*ticks) * 10), 0});
    }
    for (const auto& s : desired.sysctls)
      if (classify(s.path).kind == DevSysctl::Kind::kProc)
        if (auto v = readProcHere(s.path)) out.sysctls.push_back({s.path, *v, 0});
    // The IPv6 settings nicoffload makes, on the devices with IPv6 objects
    // (settings of a device that has none are not read, so not undone).
    // Representors only: a VXLAN device of ours holds IPv6 neighbours (the
    // VTEPs' stand-ins) but never these settings.
    std::set<std::string> v6_paths;
    for (const auto& dev : devices6) {
      if (!by_name.count(dev) ||
          dev.compare(0, std::strlen(kVxlanDevicePrefix), kVxlanDevicePrefix) == 0)
        continue;
      v6_paths.insert("ipv6/conf/" + dev + "/proxy_ndp");
      v6_paths.insert("ipv6/neigh/" + dev + "/proxy_delay");
    }
    for (const auto& s : desired.sysctls)
      if (auto d = classify(s.path); d.kind == DevSysctl::Kind::kDevProc && by_name.count(d.dev))
        v6_paths.insert(s.path);
    for (const auto& path : v6_paths)
      if (auto v = readProcHere(path)) out.sysctls.push_back({path, *v, 0});
  }

  // Addresses: only those the plan names (an operator's own /32s are not ours).
  std::set<std::pair<std::string, Ipv4Prefix>> wanted_addrs;
  for (const auto& a : desired.addresses) wanted_addrs.insert({a.dev, a.prefix});
  if (!wanted_addrs.empty()) {
    ifaddrmsg ifa{};
    ifa.ifa_family = AF_INET;
    auto req = dumpRequest(RTM_GETADDR, ifa);
    if (!req) return makeError(ErrorCode::kInternal, "addresses", "", "cannot build the address dump request");
    if (int err = sock.dump(req.get(), [&](const nlmsghdr* h) {
          if (h->nlmsg_type != RTM_NEWADDR || h->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return;
          const auto* m = static_cast<const ifaddrmsg*>(nlmsg_data(h));
          if (m->ifa_family != AF_INET) return;
          std::array<nlattr*, IFA_MAX + 1> tb{};
          if (!parseAttrs(h, sizeof(ifaddrmsg), tb)) return;
          const nlattr* local = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
          AddressEntry e{nameOf(static_cast<int>(m->ifa_index)), {ipv4Of(local), m->ifa_prefixlen}, 0};
          if (wanted_addrs.count({e.dev, e.prefix})) out.addresses.push_back(std::move(e));
        }, [&] { out.addresses.clear(); }))
      return dumpError("addresses", err);
  }

  // Neighbours (permanent, IPv4) on devices of interest and our VXLAN
  // devices; FDB entries with a remote on our VXLAN devices.
  {
    ndmsg ndm{};
    ndm.ndm_family = AF_INET;
    auto req = dumpRequest(RTM_GETNEIGH, ndm);
    if (!req) return makeError(ErrorCode::kInternal, "neighbours", "", "cannot build the neighbour dump request");
    if (int err = sock.dump(req.get(), [&](const nlmsghdr* h) {
          if (h->nlmsg_type != RTM_NEWNEIGH || h->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg))) return;
          const auto* m = static_cast<const ndmsg*>(nlmsg_data(h));
          if (m->ndm_family != AF_INET || !(m->ndm_state & NUD_PERMANENT)) return;
          const std::string dev = nameOf(m->ndm_ifindex);
          if (!devices.count(dev) && !vxlan_names.count(dev)) return;
          std::array<nlattr*, NDA_MAX + 1> tb{};
          if (!parseAttrs(h, sizeof(ndmsg), tb)) return;
          out.neighbours.push_back({dev, ipv4Of(tb[NDA_DST]), macOf(tb[NDA_LLADDR]), 0});
        }, [&] { out.neighbours.clear(); }))
      return dumpError("neighbours", err);
  }
  // IPv6 neighbours: permanent ones and proxy entries (a dump of their own,
  // NTF_PROXY) on the devices of interest.
  if (!devices6.empty()) {
    for (const bool proxy : {false, true}) {
      ndmsg ndm{};
      ndm.ndm_family = AF_INET6;
      if (proxy) ndm.ndm_flags = NTF_PROXY;
      auto req = dumpRequest(RTM_GETNEIGH, ndm);
      if (!req) return makeError(ErrorCode::kInternal, "neighbours6", "", "cannot build the neighbour dump request");
      std::vector<Neighbour6Entry> got;
      if (int err = sock.dump(req.get(), [&](const nlmsghdr* h) {
            if (h->nlmsg_type != RTM_NEWNEIGH || h->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg))) return;
            const auto* m = static_cast<const ndmsg*>(nlmsg_data(h));
            if (m->ndm_family != AF_INET6) return;
            const bool is_proxy = (m->ndm_flags & NTF_PROXY) != 0;
            if (is_proxy != proxy || (!proxy && !(m->ndm_state & NUD_PERMANENT))) return;
            const std::string dev = nameOf(m->ndm_ifindex);
            if (!devices.count(dev)) return;
            std::array<nlattr*, NDA_MAX + 1> tb{};
            if (!parseAttrs(h, sizeof(ndmsg), tb) || !tb[NDA_DST]) return;
            got.push_back({dev, ipv6Of(tb[NDA_DST]), proxy ? MacAddr{} : macOf(tb[NDA_LLADDR]), proxy, 0});
          }, [&] { got.clear(); }))
        return dumpError("IPv6 neighbours", err);
      out.neighbours6.insert(out.neighbours6.end(), got.begin(), got.end());
    }
  }
  if (!vxlan_names.empty()) {
    ndmsg ndm{};
    ndm.ndm_family = AF_BRIDGE;  // bridge FDB entries only come with a per-family dump
    auto req = dumpRequest(RTM_GETNEIGH, ndm);
    if (!req) return makeError(ErrorCode::kInternal, "fdb", "", "cannot build the FDB dump request");
    if (int err = sock.dump(
            req.get(),
            [&](const nlmsghdr* h) {
              if (h->nlmsg_type != RTM_NEWNEIGH || h->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg)))
                return;
              const auto* m = static_cast<const ndmsg*>(nlmsg_data(h));
              if (m->ndm_family != AF_BRIDGE) return;
              const std::string dev = nameOf(m->ndm_ifindex);
              if (!vxlan_names.count(dev)) return;
              std::array<nlattr*, NDA_MAX + 1> tb{};
              if (!parseAttrs(h, sizeof(ndmsg), tb) || !tb[NDA_DST]) return;
              const int len = nla_len(tb[NDA_DST]);
              if (len != 4 && len != 16) return;
              const IpAddr dst =
                  len == 4 ? IpAddr(ipv4Of(tb[NDA_DST])) : IpAddr(ipv6Of(tb[NDA_DST]));
              const MacAddr mac = macOf(tb[NDA_LLADDR]);
              if (dst != IpAddr{} && !dst.v6().isUnspecified() && !mac.isZero())
                out.fdb.push_back({dev, mac, dst, 0});
            },
            [&] { out.fdb.clear(); }))
      return dumpError("fdb", err);
  }

  auto sortByKey = [](auto& v) {
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.key() < b.key(); });
  };
  sortByKey(out.sysctls);
  sortByKey(out.links);
  sortByKey(out.addresses);
  sortByKey(out.vxlan_devices);
  sortByKey(out.fdb);
  sortByKey(out.neighbours);
  sortByKey(out.routes);
  sortByKey(out.neighbours6);
  sortByKey(out.routes6);
  sortByKey(out.rules6);
  return out;
}

}  // namespace

SwChanges splitDiff(const flowrules::SoftwarePathDiff& d) {
  SwChanges c;
  auto take = [](auto& dst, const auto& od) {
    dst.insert(dst.end(), od.add.begin(), od.add.end());
    dst.insert(dst.end(), od.modify.begin(), od.modify.end());
  };
  take(c.apply.sysctls, d.sysctls);
  take(c.apply.links, d.links);
  take(c.apply.addresses, d.addresses);
  take(c.apply.vxlan_devices, d.vxlan_devices);
  take(c.apply.fdb, d.fdb);
  take(c.apply.neighbours, d.neighbours);
  take(c.apply.routes, d.routes);
  take(c.apply.neighbours6, d.neighbours6);
  take(c.apply.routes6, d.routes6);
  take(c.apply.rules6, d.rules6);
  c.remove.sysctls = d.sysctls.remove;
  c.remove.links = d.links.remove;
  c.remove.addresses = d.addresses.remove;
  c.remove.vxlan_devices = d.vxlan_devices.remove;
  c.remove.fdb = d.fdb.remove;
  c.remove.neighbours = d.neighbours.remove;
  c.remove.routes = d.routes.remove;
  c.remove.neighbours6 = d.neighbours6.remove;
  c.remove.routes6 = d.routes6.remove;
  c.remove.rules6 = d.rules6.remove;
  return c;
}

Result<ConvergeReport> converge(SoftwarePath& path, const SoftwarePathState& desired,
                                const ReadBackScope& scope) {
  auto installed = path.readBack(desired, scope);
  if (!installed) return installed.error();
  ConvergeReport report;
  report.diff = flowrules::diff(desired, *installed);
  const auto changes = splitDiff(report.diff);
  // Removal first: a route that moved must leave before it can come back.
  report.removed = path.remove(changes.remove);
  report.applied = path.apply(changes.apply);
  return report;
}

Result<std::unique_ptr<SoftwarePath>> openKernelSoftwarePath(const KernelSoftwarePathOptions& options) {
  NetnsGuard ns(options.netns);
  if (!ns.ok()) return ns.error();
  // Batched changes: extended and capped ACKs, and room for a window of them.
  nl::SocketOptions batch_options;
  batch_options.extended_ack = true;
  batch_options.capped_ack = true;
  batch_options.receive_buffer_bytes = detail::ackBufferBytes(options.window);
  auto sock = nl::openSocket(NETLINK_ROUTE, batch_options);
  if (!sock) return sock.error();
  const std::size_t window = detail::ackWindow(sock->get(), options.window);
  // Dump sockets, opened here so that they live in the namespace: one for
  // apply, one of read-back's own.
  auto check = detail::DumpSocket::open();
  if (!check) return check.error();
  auto dump = detail::DumpSocket::open();
  if (!dump) return dump.error();
  auto lookup = nl::openSocket(NETLINK_ROUTE);  // no options: lookups outside any batch
  if (!lookup) return lookup.error();
  auto path = std::unique_ptr<KernelSoftwarePath>(new KernelSoftwarePath(
      std::move(sock).value(), std::move(check).value(), std::move(dump).value(), options, window));
  path->setLookupSocket(std::move(lookup).value());
  auto stats = detail::DumpSocket::open();
  if (!stats) return stats.error();
  path->setStatsSocket(std::move(stats).value());
  // Change notifications of the namespace (links, addresses, neighbours and
  // FDB entries, IPv4 routes): an idle full pass reads the kernel back only
  // when something arrived. Without them every pass reads back.
  detail::RtnlSocketOptions wo;
  wo.nonblocking = true;
  wo.receive_buffer_bytes = 4 << 20;  // bursts of what counts (ours); an overflow is a change anyway
  wo.groups = {RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE};
  auto opened_watch = detail::openRtnlSocket(wo);
  const int watch = opened_watch ? *opened_watch : -1;  // none: changedSinceLastAsked() always says yes
  if (watch >= 0) {
    // The kernel's own neighbour entries churn (NOARP ones on the VXLAN
    // devices are made and expired in thousands): dropped in the kernel by a
    // socket filter, so that they neither wake nor overflow the socket
    // between two passes. Offsets for a little-endian host (nlmsg_type and
    // ndm_state are host-order; classic BPF loads bytes); elsewhere the
    // same test runs in relevant() only.
    if constexpr (std::endian::native == std::endian::little) {
      static sock_filter code[] = {
          BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 4),  // nlmsg_type (its low byte)
          BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, RTM_NEWNEIGH, 1, 0),
          BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, RTM_DELNEIGH, 0, 6),  // not a neighbour: keep
          BPF_STMT(BPF_LD | BPF_B | BPF_ABS, NLMSG_HDRLEN + offsetof(ndmsg, ndm_family)),
          BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET, 1, 0),
          BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_BRIDGE, 0, 2),  // another family: drop
          BPF_STMT(BPF_LD | BPF_B | BPF_ABS, NLMSG_HDRLEN + offsetof(ndmsg, ndm_state)),
          BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NUD_PERMANENT, 1, 0),
          BPF_STMT(BPF_RET | BPF_K, 0),           // drop
          BPF_STMT(BPF_RET | BPF_K, 0xFFFFFFFF),  // keep
      };
      const sock_fprog prog{static_cast<unsigned short>(std::size(code)), code};
      (void)::setsockopt(watch, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog);
    }
    path->setWatchSocket(watch);
  }
  return std::unique_ptr<SoftwarePath>(std::move(path));
}

}  // namespace nicoffload::offload
