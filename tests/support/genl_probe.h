// Test support: does the running kernel have generic netlink family `name`?
// Asked with a hand-built CTRL_CMD_GETFAMILY on a raw socket, independently of
// the libnl code under test, so that the family-lookup tests assert the right
// outcome on any kernel. Header-only.
#pragma once

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <string>

namespace nicoffload::test {

inline bool kernelHasGenlFamily(const std::string& name) {
  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (fd < 0) throw std::runtime_error("cannot open a generic netlink socket");
  alignas(4) char buf[256] = {};
  auto* nlh = reinterpret_cast<nlmsghdr*>(buf);
  auto* genl = reinterpret_cast<genlmsghdr*>(buf + NLMSG_HDRLEN);
  genl->cmd = CTRL_CMD_GETFAMILY;
  genl->version = 1;
  auto* attr = reinterpret_cast<nlattr*>(buf + NLMSG_HDRLEN + GENL_HDRLEN);
  attr->nla_type = CTRL_ATTR_FAMILY_NAME;
  attr->nla_len = static_cast<unsigned short>(NLA_HDRLEN + name.size() + 1);
  std::memcpy(buf + NLMSG_HDRLEN + GENL_HDRLEN + NLA_HDRLEN, name.c_str(), name.size() + 1);
  nlh->nlmsg_len = NLMSG_HDRLEN + GENL_HDRLEN + NLA_ALIGN(attr->nla_len);
  nlh->nlmsg_type = GENL_ID_CTRL;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = 1;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, buf, nlh->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    close(fd);
    throw std::runtime_error("cannot send CTRL_CMD_GETFAMILY");
  }
  alignas(4) char reply[8192];
  const ssize_t n = recv(fd, reply, sizeof reply, 0);
  close(fd);
  if (n < static_cast<ssize_t>(NLMSG_HDRLEN))
    throw std::runtime_error("no CTRL_CMD_GETFAMILY reply");
  const auto* r = reinterpret_cast<const nlmsghdr*>(reply);
  if (r->nlmsg_type == NLMSG_ERROR) {
    const auto* e = reinterpret_cast<const nlmsgerr*>(reply + NLMSG_HDRLEN);
    if (e->error == 0) throw std::runtime_error("unexpected ACK to CTRL_CMD_GETFAMILY");
    return false;
  }
  return r->nlmsg_type == GENL_ID_CTRL;
}

}  // namespace nicoffload::test
