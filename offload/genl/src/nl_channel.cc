#include "nicoffload/offload/nl_channel.h"

#include <linux/netlink.h>
#include <netlink/attr.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "nicoffload/offload/sysfs_io.h"

namespace nicoffload::offload::nl {

void MsgDeleter::operator()(nl_msg* msg) const {
  if (msg) nlmsg_free(msg);
}

MsgPtr newGenlMsg(int family, std::uint8_t cmd, std::uint8_t version) {
  MsgPtr msg(nlmsg_alloc());
  if (!msg) return msg;
  if (!genlmsg_put(msg.get(), NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, 0, cmd, version))
    return nullptr;
  return msg;
}

Channel::Channel(SockPtr sock) : sock_(std::move(sock)) {}
Channel::Channel(Channel&& other) noexcept = default;
Channel& Channel::operator=(Channel&& other) noexcept = default;
Channel::~Channel() = default;

Result<Channel> Channel::open(int protocol) {
  SocketOptions options;
  options.extended_ack = true;
  options.capped_ack = true;
  options.msg_peek = true;
  auto sock = openSocket(protocol, options);
  if (!sock) return sock.error();
  return Channel(std::move(sock).value());
}

Result<int> Channel::resolveFamily(const std::string& name, const std::string& hint) {
  const int id = genl_ctrl_resolve(sock_.get(), name.c_str());
  if (id >= 0) return id;
  if (id == -NLE_OBJ_NOTFOUND || id == -NLE_NOATTR || id == -NLE_INVAL)
    return makeError(ErrorCode::kUnsupported, "genl family", name,
                     "generic netlink family '" + name + "' not found: " + hint);
  return makeError(ErrorCode::kIo, "genl family", name,
                   "looking up generic netlink family '" + name + "' failed: " + nl_geterror(id));
}

namespace {

std::string extAck(const nlmsghdr* hdr) {
  if (!(hdr->nlmsg_flags & NLM_F_ACK_TLVS)) return {};
  const auto* err = static_cast<const nlmsgerr*>(nlmsg_data(hdr));
  // With NETLINK_CAP_ACK only the request's header is echoed, then the TLVs;
  // without it (NLM_F_CAPPED unset) the whole request is.
  std::size_t echoed = sizeof(nlmsghdr);
  if (!(hdr->nlmsg_flags & NLM_F_CAPPED)) echoed = NLMSG_ALIGN(err->msg.nlmsg_len);
  const auto* attrs =
      reinterpret_cast<const nlattr*>(reinterpret_cast<const char*>(err) + sizeof(int) + echoed);
  const int len = static_cast<int>(hdr->nlmsg_len) - NLMSG_HDRLEN - static_cast<int>(sizeof(int)) -
                  static_cast<int>(echoed);
  if (len <= 0) return {};
  const nlattr* msg = nla_find(attrs, len, NLMSGERR_ATTR_MSG);
  if (!msg) return {};
  const auto* text = static_cast<const char*>(nla_data(msg));
  return std::string(text, strnlen(text, static_cast<std::size_t>(nla_len(msg))));
}

Error kernelError(int err, const std::string& ext_ack, const std::string& what) {
  std::string message = what + ": " + std::strerror(err);
  if (!ext_ack.empty()) message += " (kernel: " + ext_ack + ")";
  return makeError(errorCodeForErrno(err), what, "", std::move(message));
}

}  // namespace

Status Channel::transact(nl_msg* msg, bool dump, const std::function<void(nlmsghdr*)>& on_reply,
                         const std::string& what) {
  nlmsghdr* req = nlmsg_hdr(msg);
  req->nlmsg_flags |= NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK);
  req->nlmsg_seq = ++seq_;
  req->nlmsg_pid = 0;
  if (nl_sendto(sock_.get(), req, req->nlmsg_len) < 0)
    return makeError(ErrorCode::kIo, what, "", what + ": cannot send the netlink request");
  for (;;) {
    sockaddr_nl peer{};
    unsigned char* data = nullptr;
    const int n = nl_recv(sock_.get(), &peer, &data, nullptr);
    if (n <= 0) {
      std::free(data);
      return makeError(ErrorCode::kIo, what, "",
                       what + ": no answer from the kernel (" + nl_geterror(n) + ")");
    }
    int remaining = n;
    for (auto* hdr = reinterpret_cast<nlmsghdr*>(data); nlmsg_ok(hdr, remaining);
         hdr = nlmsg_next(hdr, &remaining)) {
      if (hdr->nlmsg_seq != req->nlmsg_seq) continue;
      if (hdr->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(nlmsg_data(hdr));
        const int err = -e->error;
        const std::string ack = err ? extAck(hdr) : std::string();
        std::free(data);
        if (err == 0) return Status::success();
        return kernelError(err, ack, what);
      }
      if (hdr->nlmsg_type == NLMSG_DONE) {
        int err = 0;
        if (hdr->nlmsg_len >= NLMSG_HDRLEN + sizeof(int))
          std::memcpy(&err, nlmsg_data(hdr), sizeof err);
        std::free(data);
        if (err < 0) return kernelError(-err, {}, what);
        return Status::success();
      }
      if (hdr->nlmsg_type == NLMSG_NOOP || hdr->nlmsg_type == NLMSG_OVERRUN) continue;
      on_reply(hdr);
    }
    std::free(data);
  }
}

}  // namespace nicoffload::offload::nl
