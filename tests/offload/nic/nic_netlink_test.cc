// The NIC backend's netlink messages, built and parsed back attribute by
// attribute; the devlink family lookup on this kernel; rtnetlink VF settings
// against a real netdev without VFs (lo).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/devlink.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include <cstring>
#include <set>

#include "nicoffload/offload/nic_netlink_msg.h"
#include "support/genl_probe.h"

namespace nicoffload::offload {
namespace {

using ::testing::HasSubstr;

constexpr int kFamily = 0x1a;  // any id: the builders take the resolved one

// Every attribute type present at the top level of a genl message.
std::set<int> genlAttrTypes(nlmsghdr* h) {
  std::set<int> out;
  nlattr* a = nullptr;
  int rem = 0;
  nla_for_each_attr(a, genlmsg_attrdata(static_cast<genlmsghdr*>(nlmsg_data(h)), 0),
                    genlmsg_attrlen(static_cast<genlmsghdr*>(nlmsg_data(h)), 0), rem) {
    out.insert(nla_type(a));
  }
  return out;
}

std::string nulString(const nlattr* a) {
  // The kernel's policy wants NUL-terminated strings: check the NUL is there.
  const auto* p = static_cast<const char*>(nla_data(a));
  EXPECT_EQ(p[nla_len(a) - 1], '\0');
  return std::string(p, static_cast<std::size_t>(nla_len(a) - 1));
}

TEST(DevlinkMsg, EswitchSetCarriesHandleAndMode) {
  for (auto [mode, wire] :
       {std::pair{model::EswitchMode::kSwitchdev, 1}, std::pair{model::EswitchMode::kLegacy, 0}}) {
    auto m = msg::devlinkEswitchSet(kFamily, "pci", "0000:03:00.0", mode);
    ASSERT_TRUE(m);
    nlmsghdr* h = nlmsg_hdr(m.get());
    EXPECT_EQ(h->nlmsg_type, kFamily);
    const auto* g = static_cast<genlmsghdr*>(nlmsg_data(h));
    EXPECT_EQ(g->cmd, DEVLINK_CMD_ESWITCH_SET);
    EXPECT_EQ(g->cmd, 30) << "uapi devlink.h: DEVLINK_CMD_ESWITCH_SET is command 30";
    EXPECT_EQ(g->version, DEVLINK_GENL_VERSION);
    nlattr* tb[DEVLINK_ATTR_MAX + 1] = {};
    ASSERT_EQ(genlmsg_parse(h, 0, tb, DEVLINK_ATTR_MAX, nullptr), 0);
    ASSERT_TRUE(tb[DEVLINK_ATTR_BUS_NAME]);
    ASSERT_TRUE(tb[DEVLINK_ATTR_DEV_NAME]);
    ASSERT_TRUE(tb[DEVLINK_ATTR_ESWITCH_MODE]);
    EXPECT_EQ(nulString(tb[DEVLINK_ATTR_BUS_NAME]), "pci");
    EXPECT_EQ(nulString(tb[DEVLINK_ATTR_DEV_NAME]), "0000:03:00.0");
    EXPECT_EQ(nla_len(tb[DEVLINK_ATTR_ESWITCH_MODE]), 2) << "u16";
    EXPECT_EQ(nla_get_u16(tb[DEVLINK_ATTR_ESWITCH_MODE]), wire);
    EXPECT_EQ(genlAttrTypes(h), (std::set<int>{DEVLINK_ATTR_BUS_NAME, DEVLINK_ATTR_DEV_NAME,
                                               DEVLINK_ATTR_ESWITCH_MODE}));
    EXPECT_EQ(DEVLINK_ATTR_BUS_NAME, 1);
    EXPECT_EQ(DEVLINK_ATTR_DEV_NAME, 2);
    EXPECT_EQ(DEVLINK_ATTR_ESWITCH_MODE, 25);
  }
}

TEST(DevlinkMsg, EswitchGetHasOnlyTheHandle) {
  auto m = msg::devlinkEswitchGet(kFamily, "pci", "0000:81:00.1");
  ASSERT_TRUE(m);
  nlmsghdr* h = nlmsg_hdr(m.get());
  EXPECT_EQ(static_cast<genlmsghdr*>(nlmsg_data(h))->cmd, DEVLINK_CMD_ESWITCH_GET);
  EXPECT_EQ(genlAttrTypes(h), (std::set<int>{DEVLINK_ATTR_BUS_NAME, DEVLINK_ATTR_DEV_NAME}));
}

TEST(DevlinkMsg, EswitchReplyParses) {
  auto reply = [](std::optional<std::uint16_t> mode) {
    auto m = nl::newGenlMsg(kFamily, DEVLINK_CMD_ESWITCH_GET, DEVLINK_GENL_VERSION);
    nla_put_string(m.get(), DEVLINK_ATTR_BUS_NAME, "pci");
    nla_put_string(m.get(), DEVLINK_ATTR_DEV_NAME, "0000:03:00.0");
    if (mode) nla_put_u16(m.get(), DEVLINK_ATTR_ESWITCH_MODE, *mode);
    nla_put_u8(m.get(), DEVLINK_ATTR_ESWITCH_INLINE_MODE, 0);
    return m;
  };
  auto sw = msg::parseDevlinkEswitchMode(nlmsg_hdr(reply(1).get()));
  ASSERT_TRUE(sw.ok());
  EXPECT_EQ(*sw, model::EswitchMode::kSwitchdev);
  auto legacy = msg::parseDevlinkEswitchMode(nlmsg_hdr(reply(0).get()));
  ASSERT_TRUE(legacy.ok());
  EXPECT_EQ(*legacy, model::EswitchMode::kLegacy);
  auto none = msg::parseDevlinkEswitchMode(nlmsg_hdr(reply(std::nullopt).get()));
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(none.error().message, HasSubstr("without DEVLINK_ATTR_ESWITCH_MODE"));
  auto odd = msg::parseDevlinkEswitchMode(nlmsg_hdr(reply(7).get()));
  ASSERT_FALSE(odd.ok());
  EXPECT_THAT(odd.error().message, HasSubstr("unknown eswitch mode 7"));
}

TEST(DevlinkFamily, LookupOnThisKernelAgreesWithTheKernel) {
  const bool has = test::kernelHasGenlFamily("devlink");
  auto eswitch = makeDevlinkEswitchControl();
  auto mode = eswitch->mode("0000:03:00.0");
  ASSERT_FALSE(mode.ok()) << "no PF 0000:03:00.0 here, so no eswitch mode either";
  if (!has) {
    EXPECT_EQ(mode.error().code, ErrorCode::kUnsupported);
    EXPECT_THAT(
        mode.error().message,
        HasSubstr(
            "generic netlink family 'devlink' not found: this kernel has no devlink support"));
    auto set = eswitch->setMode("0000:03:00.0", model::EswitchMode::kSwitchdev);
    ASSERT_FALSE(set.ok());
    EXPECT_EQ(set.error().code, ErrorCode::kUnsupported);
  } else {
    EXPECT_NE(mode.error().code, ErrorCode::kUnsupported) << mode.error().describe();
    EXPECT_THAT(mode.error().message, HasSubstr("devlink eswitch get pci/0000:03:00.0"));
  }
}

// --- rtnetlink

struct ParsedSetVf {
  ifinfomsg ifi{};
  std::optional<ifla_vf_mac> mac;
  std::optional<ifla_vf_spoofchk> spoofchk;
  std::optional<ifla_vf_trust> trust;
  int infos = 0;
};

ParsedSetVf parseSetVf(nl_msg* m) {
  ParsedSetVf out;
  nlmsghdr* h = nlmsg_hdr(m);
  EXPECT_EQ(h->nlmsg_type, RTM_SETLINK);
  std::memcpy(&out.ifi, nlmsg_data(h), sizeof out.ifi);
  nlattr* tb[IFLA_MAX + 1] = {};
  EXPECT_EQ(nlmsg_parse(h, sizeof(ifinfomsg), tb, IFLA_MAX, nullptr), 0);
  EXPECT_TRUE(tb[IFLA_VFINFO_LIST]);
  if (!tb[IFLA_VFINFO_LIST]) return out;
  nlattr* info = nullptr;
  int rem = 0;
  nla_for_each_nested(info, tb[IFLA_VFINFO_LIST], rem) {
    EXPECT_EQ(nla_type(info), IFLA_VF_INFO);
    ++out.infos;
    nlattr* vf[IFLA_VF_MAX + 1] = {};
    EXPECT_EQ(nla_parse_nested(vf, IFLA_VF_MAX, info, nullptr), 0);
    if (vf[IFLA_VF_MAC]) {
      EXPECT_EQ(nla_len(vf[IFLA_VF_MAC]), static_cast<int>(sizeof(ifla_vf_mac)));
      out.mac.emplace();
      std::memcpy(&*out.mac, nla_data(vf[IFLA_VF_MAC]), sizeof(ifla_vf_mac));
    }
    if (vf[IFLA_VF_SPOOFCHK]) {
      out.spoofchk.emplace();
      std::memcpy(&*out.spoofchk, nla_data(vf[IFLA_VF_SPOOFCHK]), sizeof(ifla_vf_spoofchk));
    }
    if (vf[IFLA_VF_TRUST]) {
      out.trust.emplace();
      std::memcpy(&*out.trust, nla_data(vf[IFLA_VF_TRUST]), sizeof(ifla_vf_trust));
    }
  }
  return out;
}

TEST(RtnlVfMsg, SetVfCarriesOnlyWhatIsSet) {
  VfSettings all{3, *MacAddr::parse("52:54:00:ab:cd:ef"), true, false};
  auto m = msg::rtnlSetVf(42, all);
  ASSERT_TRUE(m);
  auto p = parseSetVf(m.get());
  EXPECT_EQ(p.ifi.ifi_index, 42);
  EXPECT_EQ(p.infos, 1);
  ASSERT_TRUE(p.mac);
  EXPECT_EQ(p.mac->vf, 3u);
  const unsigned char want[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};
  EXPECT_EQ(std::memcmp(p.mac->mac, want, 6), 0);
  for (int i = 6; i < 32; ++i) EXPECT_EQ(p.mac->mac[i], 0) << "byte " << i;
  ASSERT_TRUE(p.trust);
  EXPECT_EQ(p.trust->vf, 3u);
  EXPECT_EQ(p.trust->setting, 1u);
  ASSERT_TRUE(p.spoofchk);
  EXPECT_EQ(p.spoofchk->vf, 3u);
  EXPECT_EQ(p.spoofchk->setting, 0u);

  auto only_trust = parseSetVf(msg::rtnlSetVf(7, {5, std::nullopt, false, std::nullopt}).get());
  EXPECT_FALSE(only_trust.mac);
  EXPECT_FALSE(only_trust.spoofchk);
  ASSERT_TRUE(only_trust.trust);
  EXPECT_EQ(only_trust.trust->vf, 5u);
  EXPECT_EQ(only_trust.trust->setting, 0u);
}

TEST(RtnlVfMsg, GetLinkAsksForTheVfList) {
  auto m = msg::rtnlGetLinkVfs(9);
  ASSERT_TRUE(m);
  nlmsghdr* h = nlmsg_hdr(m.get());
  EXPECT_EQ(h->nlmsg_type, RTM_GETLINK);
  EXPECT_EQ(static_cast<ifinfomsg*>(nlmsg_data(h))->ifi_index, 9);
  nlattr* tb[IFLA_MAX + 1] = {};
  ASSERT_EQ(nlmsg_parse(h, sizeof(ifinfomsg), tb, IFLA_MAX, nullptr), 0);
  ASSERT_TRUE(tb[IFLA_EXT_MASK]);
  EXPECT_EQ(nla_get_u32(tb[IFLA_EXT_MASK]), static_cast<std::uint32_t>(RTEXT_FILTER_VF));
}

TEST(RtnlVfMsg, VfInfoListParses) {
  nl::MsgPtr m(nlmsg_alloc_simple(RTM_NEWLINK, 0));
  ifinfomsg ifi{};
  ifi.ifi_index = 4;
  nlmsg_append(m.get(), &ifi, sizeof ifi, NLMSG_ALIGNTO);
  nla_put_string(m.get(), IFLA_IFNAME, "enp3s0f0np0");
  nlattr* list = nla_nest_start(m.get(), IFLA_VFINFO_LIST);
  for (std::uint32_t vf = 0; vf < 2; ++vf) {
    nlattr* info = nla_nest_start(m.get(), IFLA_VF_INFO);
    ifla_vf_mac mac{};
    mac.vf = vf;
    mac.mac[0] = 0x52;
    mac.mac[5] = static_cast<unsigned char>(vf + 1);
    nla_put(m.get(), IFLA_VF_MAC, sizeof mac, &mac);
    ifla_vf_spoofchk sc{vf, vf == 0 ? 1u : 0xFFFFFFFFu};  // VF 1: the driver does not say
    nla_put(m.get(), IFLA_VF_SPOOFCHK, sizeof sc, &sc);
    ifla_vf_trust tr{vf, 0};
    nla_put(m.get(), IFLA_VF_TRUST, sizeof tr, &tr);
    nla_nest_end(m.get(), info);
  }
  nla_nest_end(m.get(), list);
  auto vfs = msg::parseVfInfoList(nlmsg_hdr(m.get()));
  ASSERT_TRUE(vfs.ok()) << vfs.error().describe();
  ASSERT_EQ(vfs->size(), 2u);
  EXPECT_EQ((*vfs)[0], (VfLinkInfo{0, *MacAddr::parse("52:00:00:00:00:01"), false, true}));
  EXPECT_EQ((*vfs)[1], (VfLinkInfo{1, *MacAddr::parse("52:00:00:00:00:02"), false, std::nullopt}));
}

TEST(RtnlVfLink, RealKernelAnswersForANetdevWithoutVfs) {
  auto link = makeRtnlVfLinkControl();
  auto vfs = link->vfs("lo");
  ASSERT_TRUE(vfs.ok()) << vfs.error().describe();
  EXPECT_TRUE(vfs->empty());
  auto set =
      link->setVf("lo", {0, *MacAddr::parse("52:54:00:00:00:01"), std::nullopt, std::nullopt});
  ASSERT_FALSE(set.ok()) << "lo has no VFs: the kernel must refuse";
  EXPECT_THAT(set.error().message, HasSubstr("rtnetlink set VF 0 of lo"));
  // EOPNOTSUPP: lo has no ndo_set_vf_mac (the tests run as root, so not EPERM).
  EXPECT_EQ(set.error().code, ErrorCode::kUnsupported) << set.error().describe();
  EXPECT_THAT(set.error().message, HasSubstr("Operation not supported"));
  auto missing = link->vfs("nfo-no-such0");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("'nfo-no-such0' does not exist"));
}

}  // namespace
}  // namespace nicoffload::offload
