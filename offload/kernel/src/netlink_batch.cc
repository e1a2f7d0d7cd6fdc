#include "netlink_batch.h"

#include <linux/netlink.h>
#include <netlink/attr.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace nicoffload::offload::detail {
namespace {
constexpr std::size_t kAckTruesize = 1024;  // bytes of receive buffer one ACK costs, rounded up
}  // namespace

std::size_t ackBufferBytes(std::size_t window) { return window * kAckTruesize; }

std::size_t ackWindow(nl_sock* sock, std::size_t wanted_window) {
  const int fd = nl_socket_get_fd(sock);
  int got = 0;
  socklen_t len = sizeof got;
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len) != 0 || got <= 0) return 64;
  // The kernel reports twice what it accounts for the payload; stay under.
  const std::size_t fits = static_cast<std::size_t>(got) / 2 / kAckTruesize;
  return std::max<std::size_t>(16, std::min(wanted_window, fits));
}

NetlinkBatch::NetlinkBatch(nl_sock* sock, std::size_t batch_messages, std::size_t window)
    : sock_(sock), batch_messages_(std::max<std::size_t>(1, batch_messages)),
      window_(std::max(window, batch_messages_)) {}

void NetlinkBatch::add(nl_msg* msg, std::size_t tag) {
  if (broken_) {
    outcomes_[tag] = {EIO, "netlink socket failed earlier"};
    return;
  }
  nlmsghdr* hdr = nlmsg_hdr(msg);
  hdr->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  hdr->nlmsg_seq = next_seq_++;
  hdr->nlmsg_pid = 0;
  const auto* bytes = reinterpret_cast<const char*>(hdr);
  buffer_.insert(buffer_.end(), bytes, bytes + NLMSG_ALIGN(hdr->nlmsg_len));
  pending_.emplace(hdr->nlmsg_seq, tag);
  if (++buffered_ >= batch_messages_) sendBuffered();
  if (pending_.size() >= window_) receive(window_ / 2);
}

void NetlinkBatch::sendBuffered() {
  if (buffer_.empty() || broken_) return;
  const int n = nl_sendto(sock_, buffer_.data(), buffer_.size());
  if (n < 0) {
    broken_ = true;
    failPending(EIO);
  }
  buffer_.clear();
  buffered_ = 0;
}

void NetlinkBatch::failPending(int err) {
  for (const auto& [seq, tag] : pending_) outcomes_[tag] = {err, "no answer from the kernel"};
  pending_.clear();
}

bool NetlinkBatch::receive(std::size_t max_pending) {
  while (!broken_ && pending_.size() > max_pending) {
    sockaddr_nl peer{};
    unsigned char* data = nullptr;
    const int n = nl_recv(sock_, &peer, &data, nullptr);
    if (n <= 0) {
      std::free(data);
      broken_ = true;
      failPending(n == -NLE_NOMEM ? ENOBUFS : EIO);
      return false;
    }
    int remaining = n;
    for (auto* hdr = reinterpret_cast<nlmsghdr*>(data); nlmsg_ok(hdr, remaining);
         hdr = nlmsg_next(hdr, &remaining)) {
      if (hdr->nlmsg_type != NLMSG_ERROR) continue;
      auto it = pending_.find(hdr->nlmsg_seq);
      if (it == pending_.end()) continue;
      const auto* err = static_cast<const nlmsgerr*>(nlmsg_data(hdr));
      NetlinkOutcome outcome{-err->error, {}};
      if (hdr->nlmsg_flags & NLM_F_ACK_TLVS) {
        // With NETLINK_CAP_ACK only the request's header is echoed, then TLVs.
        const auto* attrs = reinterpret_cast<const nlattr*>(reinterpret_cast<const char*>(err) + sizeof *err);
        const int attrs_len = static_cast<int>(hdr->nlmsg_len) - NLMSG_HDRLEN - static_cast<int>(sizeof *err);
        if (attrs_len > 0)
          if (const nlattr* msg = nla_find(attrs, attrs_len, NLMSGERR_ATTR_MSG))
            outcome.ext_ack.assign(static_cast<const char*>(nla_data(msg)),
                                   strnlen(static_cast<const char*>(nla_data(msg)), nla_len(msg)));
      }
      outcomes_[it->second] = std::move(outcome);
      pending_.erase(it);
    }
    std::free(data);
  }
  return !broken_;
}

bool NetlinkBatch::finish() {
  sendBuffered();
  return receive(0);
}

}  // namespace nicoffload::offload::detail
