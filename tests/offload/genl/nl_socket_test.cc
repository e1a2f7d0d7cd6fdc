// The libnl socket factory against the real kernel: the options a caller asks
// for are on the socket, the ones it does not ask for are not, and a protocol
// the kernel does not have is an error that names it.
#include <linux/netlink.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "nicoffload/offload/nl_socket.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

namespace nicoffload::offload {
namespace {

using ::testing::HasSubstr;

int intOption(nl_sock* sock, int level, int name) {
  int value = -1;
  socklen_t len = sizeof value;
  if (getsockopt(nl_socket_get_fd(sock), level, name, &value, &len) != 0) return -1;
  return value;
}

TEST(NlSocket, OpensConnectedWithLibnlDefaults) {
  auto sock = nl::openSocket(NETLINK_ROUTE);
  ASSERT_TRUE(sock.ok()) << sock.error().describe();
  ASSERT_TRUE(*sock);
  EXPECT_GE(nl_socket_get_fd(sock->get()), 0);
  EXPECT_NE(nl_socket_get_local_port(sock->get()), 0u) << "bound: the kernel gave it a port id";
  EXPECT_EQ(intOption(sock->get(), SOL_NETLINK, NETLINK_EXT_ACK), 0);
  EXPECT_EQ(intOption(sock->get(), SOL_NETLINK, NETLINK_CAP_ACK), 0);
  // nl_connect()'s 32 KiB, which the kernel reports doubled.
  EXPECT_EQ(intOption(sock->get(), SOL_SOCKET, SO_RCVBUF), 2 * 32768);
}

TEST(NlSocket, SetsTheOptionsAskedFor) {
  nl::SocketOptions options;
  options.extended_ack = true;
  options.capped_ack = true;
  options.msg_peek = true;
  options.receive_buffer_bytes = 1 << 20;
  auto sock = nl::openSocket(NETLINK_GENERIC, options);
  ASSERT_TRUE(sock.ok()) << sock.error().describe();
  EXPECT_EQ(intOption(sock->get(), SOL_NETLINK, NETLINK_EXT_ACK), 1);
  EXPECT_EQ(intOption(sock->get(), SOL_NETLINK, NETLINK_CAP_ACK), 1);
  // SO_RCVBUFFORCE as root; without CAP_NET_ADMIN SO_RCVBUF, capped by
  // net.core.rmem_max but never below what nl_connect() set.
  const int rcvbuf = intOption(sock->get(), SOL_SOCKET, SO_RCVBUF);
  if (geteuid() == 0)
    EXPECT_EQ(rcvbuf, 2 << 20);
  else
    EXPECT_GE(rcvbuf, 2 * 32768);
}

TEST(NlSocket, TwoSocketsHaveTheirOwnPorts) {
  auto a = nl::openSocket(NETLINK_ROUTE);
  auto b = nl::openSocket(NETLINK_ROUTE);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(nl_socket_get_local_port(a->get()), nl_socket_get_local_port(b->get()));
}

TEST(NlSocket, AProtocolTheKernelLacksIsAnErrorNamingIt) {
  // 30: no netlink protocol has that number (linux/netlink.h stops at 22).
  auto sock = nl::openSocket(30);
  ASSERT_FALSE(sock.ok());
  EXPECT_EQ(sock.error().code, ErrorCode::kIo);
  EXPECT_EQ(sock.error().field, "netlink");
  EXPECT_EQ(sock.error().value, "netlink protocol 30");
  EXPECT_THAT(sock.error().message, HasSubstr("cannot open a netlink protocol 30 socket: "));
}

TEST(NlSocket, ProtocolNames) {
  EXPECT_STREQ(nl::protocolName(NETLINK_ROUTE), "rtnetlink");
  EXPECT_STREQ(nl::protocolName(NETLINK_GENERIC), "generic netlink");
  EXPECT_EQ(nl::protocolName(30), nullptr);
}

}  // namespace
}  // namespace nicoffload::offload
