// rtnetlink dumps read straight off the socket: one request, every answer
// message handed to a callback as it arrives, no libnl cache (issue 12: the
// cache refill of 100 000 routes took 4.4 s, each route allocated as an
// object, hashed and sorted before the first one was looked at). Private to
// the kernel software path.
#pragma once

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/common/net_types.h"

namespace nicoffload::offload::detail {

struct NlMsgFree {
  void operator()(nl_msg* m) const {
    if (m) nlmsg_free(m);
  }
};
using DumpRequestPtr = std::unique_ptr<nl_msg, NlMsgFree>;

// An RTM_GET* dump request with its family header (zeroed but for what the
// caller sets); null when it cannot be allocated.
template <class Header>
DumpRequestPtr dumpRequest(int type, const Header& header) {
  DumpRequestPtr msg(nlmsg_alloc_simple(type, NLM_F_REQUEST | NLM_F_DUMP));
  if (msg && nlmsg_append(msg.get(), const_cast<Header*>(&header), sizeof header, NLMSG_ALIGNTO) < 0)
    msg.reset();
  return msg;
}

// A NETLINK_ROUTE socket for dumps only, opened in the calling thread's
// network namespace, with NETLINK_GET_STRICT_CHK set so that the kernel
// applies the filters a request carries (rtm_table/RTA_TABLE, rtm_protocol
// for routes). Not thread-safe: one dump at a time (the owner locks).
class DumpSocket {
 public:
  // Errors: kIo (socket, bind).
  static Result<std::unique_ptr<DumpSocket>> open();
  ~DumpSocket();
  DumpSocket(const DumpSocket&) = delete;
  DumpSocket& operator=(const DumpSocket&) = delete;

  // Sends `request` (an RTM_GET* with NLM_F_DUMP; the header of the type's
  // family and any attributes already in it) and calls `each` for every
  // answer until NLMSG_DONE. A dump the kernel marks interrupted
  // (NLM_F_DUMP_INTR: the table changed meanwhile) is run again, up to 4
  // times, `restart` being called before each new run so that the caller
  // drops what it gathered; the last run stands.
  // Returns 0, or the positive errno of the kernel's answer (ENOENT for a
  // routing table that does not exist) or of the socket.
  int dump(nl_msg* request, const std::function<void(const nlmsghdr*)>& each,
           const std::function<void()>& restart = {});

 private:
  explicit DumpSocket(int fd) : fd_(fd), buffer_(kBufferBytes) {}
  // One run; `interrupted` is set when a message carried NLM_F_DUMP_INTR.
  int runOnce(nl_msg* request, const std::function<void(const nlmsghdr*)>& each,
              bool& interrupted);

  // Dump messages are at most 32 KiB (the kernel sizes them by the largest
  // recvmsg, capped at 32 KiB: net/netlink/af_netlink.c netlink_recvmsg);
  // twice that leaves room.
  static constexpr std::size_t kBufferBytes = 64 * 1024;
  int fd_;
  std::uint32_t seq_ = 1;
  std::vector<char> buffer_;
};

// Attribute readers shared by the kernel path and the trace: an IPv4
// address (network order on the wire) and a MAC; absent or short: zero.
inline Ipv4Addr ipv4Of(const nlattr* a) {
  std::uint32_t be = 0;
  if (a && nla_len(a) == 4) std::memcpy(&be, nla_data(a), 4);
  return Ipv4Addr{ntohl(be)};
}
inline Ipv6Addr ipv6Of(const nlattr* a) {
  Ipv6Addr out;
  if (a && nla_len(a) == 16) std::memcpy(out.bytes.data(), nla_data(a), 16);
  return out;
}
// RTA_VIA's payload (struct rtvia): a gateway of either family, as an IPv4
// route through an IPv6 link-local next hop has (RFC 5549, BGP unnumbered).
inline std::optional<IpAddr> viaAddr(const void* payload, std::size_t len) {
  if (len < sizeof(rtvia)) return std::nullopt;
  const auto* via = static_cast<const rtvia*>(payload);
  const std::size_t alen = len - sizeof(rtvia);
  if (via->rtvia_family == AF_INET && alen >= 4) {
    std::uint32_t be = 0;
    std::memcpy(&be, via->rtvia_addr, 4);
    return IpAddr(Ipv4Addr{ntohl(be)});
  }
  if (via->rtvia_family == AF_INET6 && alen >= 16) {
    Ipv6Addr v6;
    std::memcpy(v6.bytes.data(), via->rtvia_addr, 16);
    return IpAddr(v6);
  }
  return std::nullopt;
}
inline MacAddr macOf(const nlattr* a) {
  MacAddr m;
  if (a && nla_len(a) == 6) std::memcpy(m.bytes.data(), nla_data(a), 6);
  return m;
}
// Attributes of a message after its family header, by type (types above
// N - 1 are ignored).
template <std::size_t N>
bool parseAttrs(const nlmsghdr* h, std::size_t hdrlen, std::array<nlattr*, N>& tb) {
  return nlmsg_parse(const_cast<nlmsghdr*>(h), static_cast<int>(hdrlen), tb.data(),
                     static_cast<int>(N - 1), nullptr) == 0;
}

}  // namespace nicoffload::offload::detail
