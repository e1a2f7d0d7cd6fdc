// A small synchronous netlink request/reply channel over libnl-3, shared by
// the devlink (generic netlink), vdpa (generic netlink) and VF settings
// (rtnetlink) code. One request at a time: send, then read replies until the
// ACK (or NLMSG_DONE of a dump), matched by sequence number; the kernel's
// extended ACK text is kept for the error message.
//
// Message building is separate and done by the callers' build* functions, so
// that tests can build a message and parse it back without a socket.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "nicoffload/common/error.h"
#include "nicoffload/offload/nl_socket.h"

struct nl_msg;
struct nl_sock;
struct nlmsghdr;

namespace nicoffload::offload::nl {

struct MsgDeleter {
  void operator()(nl_msg* msg) const;
};
using MsgPtr = std::unique_ptr<nl_msg, MsgDeleter>;

// A generic netlink message for `family` with command `cmd`, no flags (the
// channel sets them). Returns nullptr only when out of memory.
MsgPtr newGenlMsg(int family, std::uint8_t cmd, std::uint8_t version);

class Channel {
 public:
  // Opens and connects a netlink socket of `protocol` (NETLINK_GENERIC,
  // NETLINK_ROUTE) with extended and capped ACKs (openSocket()). Errors: kIo,
  // as openSocket().
  static Result<Channel> open(int protocol);

  Channel(Channel&&) noexcept;
  Channel& operator=(Channel&&) noexcept;
  ~Channel();

  // The id of generic netlink family `name`. When the kernel has no such
  // family: kUnsupported, "generic netlink family '<name>' not found: <hint>".
  Result<int> resolveFamily(const std::string& name, const std::string& hint);

  // Sends `msg` as a request (NLM_F_REQUEST; NLM_F_ACK, or NLM_F_DUMP when
  // `dump`) and hands every reply message to `on_reply` until the kernel's
  // ACK / NLMSG_DONE. A kernel error becomes an Error whose code follows the
  // errno (errorCodeForErrno) and whose message is "<what>: <strerror>" plus
  // the kernel's extended ACK text when it gave one. `what` names the
  // operation and its object ("devlink eswitch set pci/0000:03:00.0").
  Status transact(nl_msg* msg, bool dump, const std::function<void(nlmsghdr*)>& on_reply,
                  const std::string& what);

 private:
  explicit Channel(SockPtr sock);
  SockPtr sock_;
  unsigned seq_ = 0;
};

}  // namespace nicoffload::offload::nl
