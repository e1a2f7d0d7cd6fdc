// Pipelined rtnetlink requests: messages built by libnl are packed many to a
// send() (the kernel processes every message of one datagram in turn) with
// up to `window` awaiting their ACK, and each ACK is matched to its request
// by sequence number, so every object gets its own verdict (errno and the
// kernel's extended-ACK text). Private to the kernel software path.
#pragma once

#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace nicoffload::offload::detail {

struct NetlinkOutcome {
  int err = 0;          // positive errno; 0 = success
  std::string ext_ack;  // NLMSGERR_ATTR_MSG, when the kernel gave one
};

class NetlinkBatch {
 public:
  // `sock` must have NETLINK_EXT_ACK and NETLINK_CAP_ACK set and a receive
  // buffer large enough for `window` ACKs (nl::openSocket() with
  // ackBufferBytes(), then ackWindow()).
  NetlinkBatch(nl_sock* sock, std::size_t batch_messages, std::size_t window);

  // Queues a request (its bytes are copied; the caller frees msg). `tag`
  // comes back with the outcome.
  void add(nl_msg* msg, std::size_t tag);

  // Sends what is queued and waits for every ACK. Returns false when the
  // socket failed; then every unanswered request carries that error.
  bool finish();

  // Outcomes of all requests since construction, by tag.
  const std::unordered_map<std::size_t, NetlinkOutcome>& outcomes() const { return outcomes_; }

 private:
  void sendBuffered();
  bool receive(std::size_t max_pending);
  void failPending(int err);

  nl_sock* sock_;
  std::size_t batch_messages_;
  std::size_t window_;
  std::vector<char> buffer_;
  std::size_t buffered_ = 0;
  std::uint32_t next_seq_ = 1;
  std::unordered_map<std::uint32_t, std::size_t> pending_;  // seq -> tag
  std::unordered_map<std::size_t, NetlinkOutcome> outcomes_;
  bool broken_ = false;
};

// The receive buffer, in bytes, that `window` ACKs in flight need: what to
// ask nl::openSocket() for (with extended and capped ACKs).
std::size_t ackBufferBytes(std::size_t window);

// The window the socket's receive buffer allows: at most `wanted_window`, at
// least 16 (64 when the buffer size cannot be read).
std::size_t ackWindow(nl_sock* sock, std::size_t wanted_window);

}  // namespace nicoffload::offload::detail
