// The one way nicoffload opens a libnl-3 netlink socket (nl::Channel, the
// kernel software path, host-check): allocated and connected in the calling
// thread's network namespace (a socket stays bound to the namespace it was
// made in), owned by a unique_ptr, with the options the caller asks for.
// Raw netlink sockets without libnl (dumps, change notifications) are the
// kernel backend's openRtnlSocket() (offload/kernel/src/rtnl_socket.h).
#pragma once

#include <cstddef>
#include <memory>

#include "nicoffload/common/error.h"

struct nl_sock;

namespace nicoffload::offload::nl {

struct SockDeleter {
  void operator()(nl_sock* sock) const;
};
using SockPtr = std::unique_ptr<nl_sock, SockDeleter>;

struct SocketOptions {
  // NETLINK_EXT_ACK: the kernel's error text comes with a refusal.
  bool extended_ack = false;
  // NETLINK_CAP_ACK: an error ACK echoes only the request's header.
  bool capped_ack = false;
  // nl_socket_enable_msg_peek(): nl_recv() sizes its buffer to the message.
  bool msg_peek = false;
  // Receive buffer in bytes: SO_RCVBUFFORCE (root), else SO_RCVBUF (capped by
  // net.core.rmem_max); 0 keeps what nl_connect() set (libnl's 32 KiB).
  std::size_t receive_buffer_bytes = 0;
};

// A connected socket of netlink `protocol` (NETLINK_ROUTE, NETLINK_GENERIC).
// The options are best effort, as their kernel support varies (extended
// ACKs since Linux 4.12): a refused option is not an error.
// Errors: kIo, field "netlink", value the protocol's name, when the socket
// cannot be allocated ("cannot allocate a <protocol> socket") or connected
// ("cannot open a <protocol> socket: <libnl's reason>").
Result<SockPtr> openSocket(int protocol, const SocketOptions& options = {});

// "rtnetlink", "generic netlink", or "netlink protocol <n>": for messages.
const char* protocolName(int protocol);

}  // namespace nicoffload::offload::nl
