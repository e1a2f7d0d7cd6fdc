#include "rtnl_socket.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

namespace nicoffload::offload::detail {

Result<int> openRtnlSocket(const RtnlSocketOptions& o) {
  const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | (o.nonblocking ? SOCK_NONBLOCK : 0),
                          NETLINK_ROUTE);
  if (fd < 0)
    return makeError(ErrorCode::kIo, "netlink", "",
                     std::string("cannot open a rtnetlink socket: ") + std::strerror(errno));
  auto fail = [fd](const std::string& what, const std::string& value) {
    const int err = errno;
    ::close(fd);
    return makeError(ErrorCode::kIo, "netlink", value, what + ": " + std::strerror(err));
  };
  if (o.receive_buffer_bytes > 0) {
    int bytes = o.receive_buffer_bytes;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0)
      (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;  // nl_pid 0: the kernel picks the port id
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0)
    return fail("cannot bind a rtnetlink socket", "");
  int one = 1;
  if (o.strict_check) (void)setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof one);
  if (o.extended_ack) (void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  if (o.receive_timeout.count() > 0) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(o.receive_timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>(o.receive_timeout.count() % 1000 * 1000);
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  for (int group : o.groups)
    if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) != 0)
      return fail("cannot join rtnetlink group", std::to_string(group));
  return fd;
}

}  // namespace nicoffload::offload::detail
