// The `vdpa` generic netlink messages, built and parsed back attribute by
// attribute, and the family lookup on this kernel.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/vdpa.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include <cstring>
#include <set>

#include "nicoffload/vdpa/vdpa_netlink_msg.h"
#include "support/fake_sysfs.h"
#include "support/genl_probe.h"

namespace nicoffload::vdpa {
namespace {

using ::testing::HasSubstr;

constexpr int kFamily = 0x22;

std::set<int> attrTypes(nlmsghdr* h) {
  std::set<int> out;
  auto* g = static_cast<genlmsghdr*>(nlmsg_data(h));
  nlattr* a = nullptr;
  int rem = 0;
  nla_for_each_attr(a, genlmsg_attrdata(g, 0), genlmsg_attrlen(g, 0), rem) {
    out.insert(nla_type(a));
  }
  return out;
}

std::string nulString(const nlattr* a) {
  const auto* p = static_cast<const char*>(nla_data(a));
  EXPECT_EQ(p[nla_len(a) - 1], '\0')
      << "NUL-terminated (VDPA_ATTR_MGMTDEV_BUS_NAME is NLA_NUL_STRING)";
  return std::string(p, static_cast<std::size_t>(nla_len(a) - 1));
}

TEST(VdpaMsg, UapiNumbers) {
  // include/uapi/linux/vdpa.h: commands and attributes are positional enums;
  // the wire values are what the kernel parses.
  EXPECT_EQ(VDPA_CMD_MGMTDEV_GET, 2);
  EXPECT_EQ(VDPA_CMD_DEV_NEW, 3);
  EXPECT_EQ(VDPA_CMD_DEV_DEL, 4);
  EXPECT_EQ(VDPA_CMD_DEV_GET, 5);
  EXPECT_EQ(VDPA_CMD_DEV_CONFIG_GET, 6);
  EXPECT_EQ(VDPA_ATTR_MGMTDEV_BUS_NAME, 1);
  EXPECT_EQ(VDPA_ATTR_MGMTDEV_DEV_NAME, 2);
  EXPECT_EQ(VDPA_ATTR_DEV_NAME, 4);
  EXPECT_EQ(VDPA_ATTR_DEV_NET_CFG_MACADDR, 10);
  EXPECT_EQ(VDPA_ATTR_DEV_NET_CFG_MAX_VQP, 12);
  EXPECT_EQ(VDPA_ATTR_DEV_NET_CFG_MTU, 13);
}

TEST(VdpaMsg, DevNewCarriesEveryField) {
  VdpaDevNewRequest r{
      "nfo0123456789ab", {"pci", "0000:03:00.2"}, *MacAddr::parse("52:54:00:0a:0b:0c"), 9000, 4};
  auto m = msg::vdpaDevNew(kFamily, r);
  ASSERT_TRUE(m);
  nlmsghdr* h = nlmsg_hdr(m.get());
  EXPECT_EQ(h->nlmsg_type, kFamily);
  const auto* g = static_cast<genlmsghdr*>(nlmsg_data(h));
  EXPECT_EQ(g->cmd, VDPA_CMD_DEV_NEW);
  EXPECT_EQ(g->version, VDPA_GENL_VERSION);
  nlattr* tb[VDPA_ATTR_MAX + 1] = {};
  ASSERT_EQ(genlmsg_parse(h, 0, tb, VDPA_ATTR_MAX, nullptr), 0);
  ASSERT_TRUE(tb[VDPA_ATTR_DEV_NAME] && tb[VDPA_ATTR_MGMTDEV_BUS_NAME] &&
              tb[VDPA_ATTR_MGMTDEV_DEV_NAME] && tb[VDPA_ATTR_DEV_NET_CFG_MACADDR] &&
              tb[VDPA_ATTR_DEV_NET_CFG_MTU] && tb[VDPA_ATTR_DEV_NET_CFG_MAX_VQP]);
  EXPECT_EQ(nulString(tb[VDPA_ATTR_DEV_NAME]), "nfo0123456789ab");
  EXPECT_EQ(nulString(tb[VDPA_ATTR_MGMTDEV_BUS_NAME]), "pci");
  EXPECT_EQ(nulString(tb[VDPA_ATTR_MGMTDEV_DEV_NAME]), "0000:03:00.2");
  ASSERT_EQ(nla_len(tb[VDPA_ATTR_DEV_NET_CFG_MACADDR]), 6)
      << "NLA_POLICY_ETH_ADDR wants exactly 6 bytes";
  const unsigned char mac[6] = {0x52, 0x54, 0x00, 0x0a, 0x0b, 0x0c};
  EXPECT_EQ(std::memcmp(nla_data(tb[VDPA_ATTR_DEV_NET_CFG_MACADDR]), mac, 6), 0);
  EXPECT_EQ(nla_len(tb[VDPA_ATTR_DEV_NET_CFG_MTU]), 2);
  EXPECT_EQ(nla_get_u16(tb[VDPA_ATTR_DEV_NET_CFG_MTU]), 9000);
  EXPECT_EQ(nla_len(tb[VDPA_ATTR_DEV_NET_CFG_MAX_VQP]), 2);
  EXPECT_EQ(nla_get_u16(tb[VDPA_ATTR_DEV_NET_CFG_MAX_VQP]), 4);
  EXPECT_EQ(attrTypes(h),
            (std::set<int>{VDPA_ATTR_DEV_NAME, VDPA_ATTR_MGMTDEV_BUS_NAME,
                           VDPA_ATTR_MGMTDEV_DEV_NAME, VDPA_ATTR_DEV_NET_CFG_MACADDR,
                           VDPA_ATTR_DEV_NET_CFG_MTU, VDPA_ATTR_DEV_NET_CFG_MAX_VQP}));
}

TEST(VdpaMsg, DevNewLeavesOutWhatIsUnset) {
  VdpaDevNewRequest r{"d1", {"", "vdpasim_net"}, std::nullopt, std::nullopt, std::nullopt};
  auto m = msg::vdpaDevNew(kFamily, r);
  ASSERT_TRUE(m);
  EXPECT_EQ(attrTypes(nlmsg_hdr(m.get())),
            (std::set<int>{VDPA_ATTR_DEV_NAME, VDPA_ATTR_MGMTDEV_DEV_NAME}));
}

// VDPA_CMD_DEV_ATTR_SET (Linux 6.12): the device's name and the MAC only.
TEST(VdpaMsg, DevSetMacCarriesNameAndMac) {
  auto m = msg::vdpaDevSetMac(kFamily, "nfovf3", *MacAddr::parse("52:54:00:0a:0b:0c"));
  ASSERT_TRUE(m);
  nlmsghdr* h = nlmsg_hdr(m.get());
  EXPECT_EQ(h->nlmsg_type, kFamily);
  const auto* g = static_cast<genlmsghdr*>(nlmsg_data(h));
  EXPECT_EQ(g->cmd, 8) << "VDPA_CMD_DEV_ATTR_SET follows VDPA_CMD_DEV_VSTATS_GET (7)";
  EXPECT_EQ(g->version, VDPA_GENL_VERSION);
  EXPECT_EQ(attrTypes(h),
            (std::set<int>{VDPA_ATTR_DEV_NAME, VDPA_ATTR_DEV_NET_CFG_MACADDR}));
  nlattr* tb[VDPA_ATTR_MAX + 1] = {};
  ASSERT_EQ(genlmsg_parse(h, 0, tb, VDPA_ATTR_MAX, nullptr), 0);
  EXPECT_EQ(nulString(tb[VDPA_ATTR_DEV_NAME]), "nfovf3");
  ASSERT_EQ(nla_len(tb[VDPA_ATTR_DEV_NET_CFG_MACADDR]), 6);
  const unsigned char mac[6] = {0x52, 0x54, 0x00, 0x0a, 0x0b, 0x0c};
  EXPECT_EQ(std::memcmp(nla_data(tb[VDPA_ATTR_DEV_NET_CFG_MACADDR]), mac, 6), 0);
}

TEST(VdpaMsg, DevDelAndDumps) {
  auto del = msg::vdpaDevDel(kFamily, "nfo0123456789ab");
  ASSERT_TRUE(del);
  nlmsghdr* h = nlmsg_hdr(del.get());
  EXPECT_EQ(static_cast<genlmsghdr*>(nlmsg_data(h))->cmd, VDPA_CMD_DEV_DEL);
  EXPECT_EQ(attrTypes(h), (std::set<int>{VDPA_ATTR_DEV_NAME}));
  nlattr* tb[VDPA_ATTR_MAX + 1] = {};
  ASSERT_EQ(genlmsg_parse(h, 0, tb, VDPA_ATTR_MAX, nullptr), 0);
  EXPECT_EQ(nulString(tb[VDPA_ATTR_DEV_NAME]), "nfo0123456789ab");
  const std::pair<offload::nl::MsgPtr (*)(int), int> dumps[] = {
      {msg::vdpaMgmtdevGet, VDPA_CMD_MGMTDEV_GET},
      {msg::vdpaDevGet, VDPA_CMD_DEV_GET},
      {msg::vdpaDevConfigGet, VDPA_CMD_DEV_CONFIG_GET}};
  for (const auto& [build, cmd] : dumps) {
    auto m = build(kFamily);
    ASSERT_TRUE(m);
    EXPECT_EQ(static_cast<genlmsghdr*>(nlmsg_data(nlmsg_hdr(m.get())))->cmd, cmd);
    EXPECT_TRUE(attrTypes(nlmsg_hdr(m.get())).empty()) << "a dump of everything carries no filter";
  }
}

TEST(VdpaMsg, RepliesParse) {
  auto mgmt = offload::nl::newGenlMsg(kFamily, VDPA_CMD_MGMTDEV_NEW, VDPA_GENL_VERSION);
  nla_put_string(mgmt.get(), VDPA_ATTR_MGMTDEV_BUS_NAME, "pci");
  nla_put_string(mgmt.get(), VDPA_ATTR_MGMTDEV_DEV_NAME, "0000:03:00.3");
  nla_put_u64(mgmt.get(), VDPA_ATTR_MGMTDEV_SUPPORTED_CLASSES, 2);
  auto md = msg::parseVdpaMgmtdev(nlmsg_hdr(mgmt.get()));
  ASSERT_TRUE(md.ok()) << md.error().describe();
  EXPECT_EQ(*md, (VdpaMgmtDev{"pci", "0000:03:00.3"}));

  auto cfg = offload::nl::newGenlMsg(kFamily, VDPA_CMD_DEV_CONFIG_GET, VDPA_GENL_VERSION);
  nla_put_string(cfg.get(), VDPA_ATTR_DEV_NAME, "nfo0123456789ab");
  const unsigned char mac[6] = {0x52, 0x54, 0, 0, 0, 9};
  nla_put(cfg.get(), VDPA_ATTR_DEV_NET_CFG_MACADDR, 6, mac);
  nla_put_u16(cfg.get(), VDPA_ATTR_DEV_NET_CFG_MTU, 1500);
  nla_put_u8(cfg.get(), VDPA_ATTR_DEV_NET_STATUS, 1);
  auto d = msg::parseVdpaDev(nlmsg_hdr(cfg.get()));
  ASSERT_TRUE(d.ok()) << d.error().describe();
  EXPECT_EQ(d->name, "nfo0123456789ab");
  EXPECT_EQ(d->mac, MacAddr::parse("52:54:00:00:00:09"));
  EXPECT_EQ(d->mtu, 1500);
  EXPECT_FALSE(d->max_vqp.has_value());
  EXPECT_TRUE(d->mgmt.dev.empty());

  auto nameless = offload::nl::newGenlMsg(kFamily, VDPA_CMD_DEV_GET, VDPA_GENL_VERSION);
  nla_put_u32(nameless.get(), VDPA_ATTR_DEV_ID, 1);
  auto bad = msg::parseVdpaDev(nlmsg_hdr(nameless.get()));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().message, HasSubstr("without VDPA_ATTR_DEV_NAME"));
}

TEST(VdpaFamily, LookupOnThisKernelAgreesWithTheKernel) {
  const bool has = test::kernelHasGenlFamily("vdpa");
  auto nl = makeGenlVdpaNetlink();
  auto mgmt = nl->mgmtdevs();
  if (!has) {
    ASSERT_FALSE(mgmt.ok());
    EXPECT_EQ(mgmt.error().code, ErrorCode::kUnsupported);
    EXPECT_THAT(
        mgmt.error().message,
        HasSubstr("generic netlink family 'vdpa' not found: this kernel has no vdpa support "
                  "(modprobe vdpa, mlx5_vdpa"));
    auto del = nl->devDel("nfo0123456789ab");
    ASSERT_FALSE(del.ok());
    EXPECT_EQ(del.error().code, ErrorCode::kUnsupported);
    // Through the backend: the same clear answer, for create and for list.
    test::TempDir dir("nfo-vdpa");
    test::FakeSysfs tree(dir.path());
    tree.pf("0000:03:00.0", "enp3s0f0np0", 8, 1);
    tree.vf("0000:03:00.0", 0, "0000:03:00.2", "mlx5_core");
    KernelVdpaOptions o;
    o.pf_pci = "0000:03:00.0";
    auto backend = makeKernelVdpaBackend(o, dir.path());
    auto list = backend->list();
    ASSERT_FALSE(list.ok());
    EXPECT_EQ(list.error().code, ErrorCode::kUnsupported);
    VdpaDeviceSpec spec;
    spec.name = "nfo0123456789ab";
    spec.vf = 0;
    auto created = backend->create(spec);
    ASSERT_FALSE(created.ok());
    EXPECT_EQ(created.error().code, ErrorCode::kUnsupported);
    EXPECT_THAT(created.error().message, HasSubstr("'vdpa' not found"));
  } else {
    ASSERT_TRUE(mgmt.ok()) << mgmt.error().describe();
  }
}

}  // namespace
}  // namespace nicoffload::vdpa
