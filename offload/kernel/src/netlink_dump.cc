#include "netlink_dump.h"

#include "rtnl_socket.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nicoffload::offload::detail {
namespace {
#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif
constexpr int kMaxRuns = 4;
}  // namespace

Result<std::unique_ptr<DumpSocket>> DumpSocket::open() {
  RtnlSocketOptions o;
  // Kernels before 4.20 lack strict checking: they ignore the filters, and
  // the caller filters again in any case.
  o.strict_check = true;
  o.extended_ack = true;
  o.receive_buffer_bytes = 1 << 20;  // several dump messages queued while one is parsed
  auto fd = openRtnlSocket(o);
  if (!fd) return fd.error();
  return std::unique_ptr<DumpSocket>(new DumpSocket(*fd));
}

DumpSocket::~DumpSocket() { ::close(fd_); }

int DumpSocket::dump(nl_msg* request, const std::function<void(const nlmsghdr*)>& each,
                     const std::function<void()>& restart) {
  for (int run = 1;; ++run) {
    bool interrupted = false;
    const int err = runOnce(request, each, interrupted);
    if (err || !interrupted || run == kMaxRuns) return err;
    if (restart) restart();
  }
}

int DumpSocket::runOnce(nl_msg* request, const std::function<void(const nlmsghdr*)>& each,
                        bool& interrupted) {
  nlmsghdr* req = nlmsg_hdr(request);
  req->nlmsg_flags |= NLM_F_REQUEST | NLM_F_DUMP;
  req->nlmsg_seq = seq_++;
  req->nlmsg_pid = 0;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do {
    sent = ::sendto(fd_, req, req->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return errno;
  for (;;) {
    iovec iov{buffer_.data(), buffer_.size()};
    sockaddr_nl peer{};
    msghdr mh{};
    mh.msg_name = &peer;
    mh.msg_namelen = sizeof peer;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    const ssize_t n = ::recvmsg(fd_, &mh, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;  // ENOBUFS: the receive queue overflowed; the dump is lost
    }
    if (mh.msg_flags & MSG_TRUNC) return EMSGSIZE;
    if (peer.nl_pid != 0) continue;  // not from the kernel
    int remaining = static_cast<int>(n);
    for (auto* hdr = reinterpret_cast<const nlmsghdr*>(buffer_.data()); nlmsg_ok(hdr, remaining);
         hdr = nlmsg_next(const_cast<nlmsghdr*>(hdr), &remaining)) {
      if (hdr->nlmsg_seq != req->nlmsg_seq) continue;  // a late answer to an earlier request
      if (hdr->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
      if (hdr->nlmsg_type == NLMSG_DONE) {
        // A dump that failed midway ends with the error in NLMSG_DONE.
        int status = 0;
        if (hdr->nlmsg_len >= NLMSG_LENGTH(sizeof status))
          std::memcpy(&status, nlmsg_data(hdr), sizeof status);
        return status < 0 ? -status : 0;
      }
      if (hdr->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(nlmsg_data(hdr));
        if (e->error == 0) continue;  // an ACK
        return -e->error;
      }
      if (hdr->nlmsg_type == NLMSG_NOOP || hdr->nlmsg_type == NLMSG_OVERRUN) continue;
      each(hdr);
    }
  }
}

}  // namespace nicoffload::offload::detail
