#include "nicoffload/offload/router_advertiser.h"

#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "netlink_dump.h"
#include "nicoffload/offload/netns.h"

namespace nicoffload::offload {
namespace {

using Clock = std::chrono::steady_clock;

// RFC 4861 10: MIN_DELAY_BETWEEN_RAS.
constexpr auto kMinDelayBetweenRas = std::chrono::seconds(3);

Error ioError(const std::string& what, int err) {
  return makeError(ErrorCode::kIo, "router_advertisements", what,
                   what + ": " + std::strerror(err));
}

// The advertisement: the ICMPv6 header and body, and the source link-layer
// address option. The kernel fills the checksum (raw ICMPv6 socket).
std::vector<std::uint8_t> advertisement(const MacAddr& mac, std::uint16_t lifetime_s) {
  std::vector<std::uint8_t> out(sizeof(nd_router_advert) + 8, 0);
  nd_router_advert ra{};
  ra.nd_ra_type = ND_ROUTER_ADVERT;
  ra.nd_ra_code = 0;
  ra.nd_ra_curhoplimit = 64;
  ra.nd_ra_flags_reserved = 0;  // M and O clear: no DHCPv6 is offered
  ra.nd_ra_router_lifetime = htons(lifetime_s);
  ra.nd_ra_reachable = 0;  // unspecified: the VM keeps its own
  ra.nd_ra_retransmit = 0;
  std::memcpy(out.data(), &ra, sizeof ra);
  std::uint8_t* opt = out.data() + sizeof ra;
  opt[0] = ND_OPT_SOURCE_LINKADDR;
  opt[1] = 1;  // in units of 8 bytes
  std::memcpy(opt + 2, mac.bytes.data(), 6);
  return out;
}

}  // namespace

class RouterAdvertiser::Impl {
 public:
  Impl(RouterAdvertiserOptions o, int icmp_fd, int stop_fd,
       std::unique_ptr<detail::DumpSocket> dumps)
      : options_(std::move(o)), icmp_fd_(icmp_fd), stop_fd_(stop_fd), dumps_(std::move(dumps)) {
    thread_ = std::thread([this] { run(); });
  }
  ~Impl() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(stop_fd_, &one, sizeof one);
    if (thread_.joinable()) thread_.join();
    ::close(icmp_fd_);
    ::close(stop_fd_);
  }

  RouterAdvertiserCounters counters() const {
    std::lock_guard<std::mutex> lock(mu_);
    return counters_;
  }

 private:
  struct Device {
    Clock::time_point next;  // the next unsolicited advertisement
    Clock::time_point last;  // the last one sent
  };

  void run() {
    auto next_scan = Clock::now();
    for (;;) {
      const auto now = Clock::now();
      if (now >= next_scan) {
        scan(now);
        next_scan = now + options_.rescan;
      }
      auto wake = next_scan;
      for (auto& [index, d] : devices_) {
        if (d.next <= now) {
          send(index, lifetime(), now);
          d.next = now + options_.interval;
        }
        wake = std::min(wake, d.next);
      }
      const auto wait =
          std::chrono::duration_cast<std::chrono::milliseconds>(wake - Clock::now()).count();
      std::array<pollfd, 2> fds{pollfd{stop_fd_, POLLIN, 0}, pollfd{icmp_fd_, POLLIN, 0}};
      const int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long>(wait, 0)));
      if (n < 0 && errno != EINTR) {
        spdlog::error("router advertisements: poll: {}; stopped", std::strerror(errno));
        return;
      }
      if (fds[0].revents) return;
      if (fds[1].revents & POLLIN) receive();
    }
  }

  std::uint16_t lifetime() const {
    return static_cast<std::uint16_t>(options_.router_lifetime.count());
  }

  // The devices with a proxy NDP entry for the gateway: new ones are
  // advertised on at once, gone ones get a lifetime-0 advertisement.
  void scan(Clock::time_point now) {
    ndmsg ndm{};
    ndm.ndm_family = AF_INET6;
    ndm.ndm_flags = NTF_PROXY;
    auto req = detail::dumpRequest(RTM_GETNEIGH, ndm);
    std::set<int> seen;
    const int err = req ? dumps_->dump(
                              req.get(),
                              [&](const nlmsghdr* h) {
                                if (h->nlmsg_type != RTM_NEWNEIGH ||
                                    h->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg)))
                                  return;
                                const auto* m = static_cast<const ndmsg*>(nlmsg_data(h));
                                if (m->ndm_family != AF_INET6 || !(m->ndm_flags & NTF_PROXY)) return;
                                std::array<nlattr*, NDA_MAX + 1> tb{};
                                if (!detail::parseAttrs(h, sizeof(ndmsg), tb) || !tb[NDA_DST]) return;
                                if (detail::ipv6Of(tb[NDA_DST]) == options_.gateway)
                                  seen.insert(m->ndm_ifindex);
                              },
                              [&] { seen.clear(); })
                        : ENOMEM;
    if (err) {
      std::lock_guard<std::mutex> lock(mu_);
      if (counters_.scan_errors++ == 0)
        spdlog::warn("router advertisements: cannot read the proxy NDP entries: {}",
                     std::strerror(err));
      return;
    }
    for (auto it = devices_.begin(); it != devices_.end();) {
      if (seen.count(it->first)) {
        ++it;
        continue;
      }
      send(it->first, 0, now);  // withdrawn: the VM drops its default route
      it = devices_.erase(it);
    }
    for (const int index : seen)
      if (devices_.try_emplace(index, Device{now, Clock::time_point{}}).second)
        spdlog::debug("router advertisements: device {} added", index);
    std::lock_guard<std::mutex> lock(mu_);
    counters_.devices = devices_.size();
  }

  // A router solicitation (the socket's filter passes nothing else): an
  // advertisement on its device, unless one went out in the last 3 s.
  void receive() {
    for (;;) {
      std::array<std::uint8_t, 1500> buf{};
      sockaddr_in6 from{};
      alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(in6_pktinfo))> control{};
      iovec iov{buf.data(), buf.size()};
      msghdr msg{};
      msg.msg_name = &from;
      msg.msg_namelen = sizeof from;
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      const ssize_t n = ::recvmsg(icmp_fd_, &msg, MSG_DONTWAIT);
      if (n < 0) return;  // EAGAIN: drained
      int index = 0;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
          in6_pktinfo info{};
          std::memcpy(&info, CMSG_DATA(c), sizeof info);
          index = static_cast<int>(info.ipi6_ifindex);
        }
      if (n < static_cast<ssize_t>(sizeof(nd_router_solicit)) || buf[0] != ND_ROUTER_SOLICIT)
        continue;
      auto it = devices_.find(index);
      if (it == devices_.end()) continue;  // not a device of ours
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++counters_.solicited;
      }
      const auto now = Clock::now();
      if (now - it->second.last < kMinDelayBetweenRas) {
        it->second.next = std::min(it->second.next, it->second.last + kMinDelayBetweenRas);
        continue;
      }
      send(index, lifetime(), now);
      it->second.next = now + options_.interval;
    }
  }

  void send(int index, std::uint16_t lifetime_s, Clock::time_point now) {
    const auto body = advertisement(options_.gateway_mac, lifetime_s);
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
    to.sin6_scope_id = static_cast<std::uint32_t>(index);
    in6_pktinfo info{};
    std::memcpy(&info.ipi6_addr, options_.gateway.bytes.data(), 16);
    info.ipi6_ifindex = static_cast<unsigned>(index);
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof info)> control{};
    iovec iov{const_cast<std::uint8_t*>(body.data()), body.size()};
    msghdr msg{};
    msg.msg_name = &to;
    msg.msg_namelen = sizeof to;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof info);
    std::memcpy(CMSG_DATA(c), &info, sizeof info);
    const ssize_t sent = ::sendmsg(icmp_fd_, &msg, 0);
    std::lock_guard<std::mutex> lock(mu_);
    if (sent < 0) {
      // A device that went away meanwhile is not a failure.
      if (errno != ENODEV && errno != ENXIO && errno != EADDRNOTAVAIL &&
          counters_.send_errors++ == 0)
        spdlog::warn("router advertisements: send on device {}: {}", index, std::strerror(errno));
      return;
    }
    ++counters_.sent;
    if (auto it = devices_.find(index); it != devices_.end()) it->second.last = now;
  }

  const RouterAdvertiserOptions options_;
  const int icmp_fd_;
  const int stop_fd_;
  std::unique_ptr<detail::DumpSocket> dumps_;
  std::map<int, Device> devices_;  // by ifindex; the thread's alone
  mutable std::mutex mu_;          // counters_
  RouterAdvertiserCounters counters_;
  std::thread thread_;
};

RouterAdvertiser::RouterAdvertiser(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RouterAdvertiser::~RouterAdvertiser() = default;

RouterAdvertiserCounters RouterAdvertiser::counters() const { return impl_->counters(); }

Result<std::unique_ptr<RouterAdvertiser>> RouterAdvertiser::start(
    const RouterAdvertiserOptions& o) {
  if (!o.gateway.isLinkLocal())
    return makeError(ErrorCode::kInvalidValue, "gateway.ipv6", o.gateway.str(),
                     "router advertisements come from a link-local address (fe80::/10)");
  if (o.interval < std::chrono::seconds(4) || o.interval > std::chrono::seconds(1800))
    return makeError(ErrorCode::kInvalidValue, "router_advertisements.interval_s",
                     std::to_string(o.interval.count()), "must be 4..1800 (RFC 4861 6.2.1)");
  if (o.router_lifetime > std::chrono::seconds(9000) ||
      (o.router_lifetime.count() != 0 && o.router_lifetime < o.interval))
    return makeError(ErrorCode::kInvalidValue, "router_advertisements.lifetime_s",
                     std::to_string(o.router_lifetime.count()),
                     "must be 0 or the interval..9000 (RFC 4861 6.2.1)");
  NetnsGuard ns(o.netns);
  if (!ns.ok()) return ns.error();
  const int fd = ::socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_ICMPV6);
  if (fd < 0) return ioError("raw ICMPv6 socket", errno);
  const auto fail = [&](const char* what) {
    const int err = errno;
    ::close(fd);
    return ioError(what, err);
  };
  icmp6_filter filter;
  ICMP6_FILTER_SETBLOCKALL(&filter);
  ICMP6_FILTER_SETPASS(ND_ROUTER_SOLICIT, &filter);
  const int on = 1, hops = 255;
  if (::setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter) < 0)
    return fail("ICMP6_FILTER");
  if (::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on) < 0)
    return fail("IPV6_RECVPKTINFO");
  // RFC 4861 6.1.2: a receiver drops an advertisement with a hop limit below 255.
  if (::setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) < 0)
    return fail("IPV6_MULTICAST_HOPS");
  if (::setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof hops) < 0)
    return fail("IPV6_UNICAST_HOPS");
  const int off = 0;
  if (::setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &off, sizeof off) < 0)
    return fail("IPV6_MULTICAST_LOOP");
  // The gateway's address is on no device (its proxy entries answer for
  // it): sending from it needs a non-local source.
  if (::setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &on, sizeof on) < 0)
    return fail("IPV6_FREEBIND");
  auto dumps = detail::DumpSocket::open();
  if (!dumps) {
    ::close(fd);
    return dumps.error();
  }
  const int stop = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop < 0) return fail("eventfd");
  return std::unique_ptr<RouterAdvertiser>(new RouterAdvertiser(
      std::make_unique<Impl>(o, fd, stop, std::move(dumps).value())));
}

}  // namespace nicoffload::offload
