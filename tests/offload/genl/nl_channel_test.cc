// The netlink channel against the real kernel: a generic netlink dump
// (nlctrl's family list), a family that exists and one that does not, and a
// refused rtnetlink request whose extended ACK text must come through.
#include <linux/genetlink.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <sys/socket.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "nicoffload/offload/nl_channel.h"

namespace nicoffload::offload {
namespace {

using ::testing::HasSubstr;

TEST(NlChannel, GenericNetlinkDumpAndLookup) {
  auto ch = nl::Channel::open(NETLINK_GENERIC);
  ASSERT_TRUE(ch.ok()) << ch.error().describe();
  auto id = ch->resolveFamily("nlctrl", "");
  ASSERT_TRUE(id.ok()) << id.error().describe();
  EXPECT_EQ(*id, GENL_ID_CTRL);
  auto missing = ch->resolveFamily("nfo-no-such-family", "it was never there");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(missing.error().message, "generic netlink family 'nfo-no-such-family' not found: it was never there");

  auto m = nl::newGenlMsg(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1);
  ASSERT_TRUE(m);
  std::set<std::string> names;
  auto s = ch->transact(m.get(), true,
                        [&](nlmsghdr* h) {
                          nlattr* tb[CTRL_ATTR_MAX + 1] = {};
                          if (genlmsg_parse(h, 0, tb, CTRL_ATTR_MAX, nullptr) == 0 && tb[CTRL_ATTR_FAMILY_NAME])
                            names.insert(nla_get_string(tb[CTRL_ATTR_FAMILY_NAME]));
                        },
                        "genl ctrl dump");
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_TRUE(names.count("nlctrl")) << "the dump ran to NLMSG_DONE and saw every family";
  EXPECT_GT(names.size(), 1u);
  // The channel is reusable after a dump.
  EXPECT_TRUE(ch->resolveFamily("nlctrl", "").ok());
}

TEST(NlChannel, KernelRefusalCarriesTheExtendedAck) {
  auto ch = nl::Channel::open(NETLINK_ROUTE);
  ASSERT_TRUE(ch.ok());
  nl::MsgPtr m(nlmsg_alloc_simple(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL));
  ifinfomsg ifi{};
  nlmsg_append(m.get(), &ifi, sizeof ifi, NLMSG_ALIGNTO);
  nla_put_string(m.get(), IFLA_IFNAME, "nfo-bogus0");
  nlattr* info = nla_nest_start(m.get(), IFLA_LINKINFO);
  nla_put_string(m.get(), IFLA_INFO_KIND, "nfo-no-such-kind");
  nla_nest_end(m.get(), info);
  auto s = ch->transact(m.get(), false, [](nlmsghdr*) {}, "create nfo-bogus0");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kUnsupported) << s.error().describe();
  EXPECT_THAT(s.error().message, HasSubstr("create nfo-bogus0: Operation not supported"));
  EXPECT_THAT(s.error().message, HasSubstr("(kernel: Unknown device type)"));
}

}  // namespace
}  // namespace nicoffload::offload
