// The one way the kernel software path, the route watcher and the packet
// trace open a raw NETLINK_ROUTE socket: in the calling thread's network
// namespace (a socket stays bound to the namespace it was made in), bound to
// a port id the kernel picks, with the options each use asks for. Private to
// the kernel backend.
#pragma once

#include <chrono>
#include <initializer_list>
#include <vector>

#include "nicoffload/common/error.h"

namespace nicoffload::offload::detail {

struct RtnlSocketOptions {
  bool nonblocking = false;
  // SO_RCVBUFFORCE (root), else SO_RCVBUF; 0 leaves the kernel's default.
  int receive_buffer_bytes = 0;
  // NETLINK_GET_STRICT_CHK: the kernel applies a dump request's filters
  // (Linux >= 4.20; older kernels ignore it, so callers filter again).
  bool strict_check = false;
  bool extended_ack = false;                      // NETLINK_EXT_ACK: the kernel's error text
  std::chrono::milliseconds receive_timeout{0};   // SO_RCVTIMEO; 0: none
  std::vector<int> groups;                        // RTNLGRP_* joined (NETLINK_ADD_MEMBERSHIP)
};

// A socket descriptor (the caller closes it). Errors: kIo naming what the
// kernel refused (socket, bind, a group), with its errno text; the value is
// the group number when joining one failed.
Result<int> openRtnlSocket(const RtnlSocketOptions& options);

}  // namespace nicoffload::offload::detail
