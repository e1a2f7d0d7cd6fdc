#include "nicoffload/offload/nl_socket.h"

#include <linux/netlink.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <climits>
#include <string>

namespace nicoffload::offload::nl {

// SOL_NETLINK options (linux/netlink.h) older libc headers may lack.
#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

void SockDeleter::operator()(nl_sock* sock) const {
  if (sock) nl_socket_free(sock);
}

const char* protocolName(int protocol) {
  switch (protocol) {
    case NETLINK_ROUTE:
      return "rtnetlink";
    case NETLINK_GENERIC:
      return "generic netlink";
    default:
      return nullptr;
  }
}

namespace {

std::string nameOf(int protocol) {
  if (const char* name = protocolName(protocol)) return name;
  return "netlink protocol " + std::to_string(protocol);
}

}  // namespace

Result<SockPtr> openSocket(int protocol, const SocketOptions& options) {
  const std::string name = nameOf(protocol);
  SockPtr sock(nl_socket_alloc());
  if (!sock) return makeError(ErrorCode::kIo, "netlink", name, "cannot allocate a " + name + " socket");
  if (const int err = nl_connect(sock.get(), protocol); err < 0)
    return makeError(ErrorCode::kIo, "netlink", name,
                     "cannot open a " + name + " socket: " + nl_geterror(err));
  if (options.msg_peek) nl_socket_enable_msg_peek(sock.get());
  const int fd = nl_socket_get_fd(sock.get());
  int one = 1;
  if (options.extended_ack) (void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  if (options.capped_ack) (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  if (options.receive_buffer_bytes > 0) {
    int bytes = options.receive_buffer_bytes > INT_MAX ? INT_MAX
                                                       : static_cast<int>(options.receive_buffer_bytes);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0)
      (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }
  return sock;
}

}  // namespace nicoffload::offload::nl
