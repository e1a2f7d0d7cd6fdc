// devlink eswitch control over generic netlink and VF settings over
// rtnetlink: the message builders/parsers and the two real seams.
#include <linux/devlink.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "nicoffload/offload/nic_netlink_msg.h"

namespace nicoffload::offload {
namespace msg {

namespace {
std::uint16_t devlinkMode(model::EswitchMode mode) {
  return mode == model::EswitchMode::kSwitchdev ? DEVLINK_ESWITCH_MODE_SWITCHDEV
                                                : DEVLINK_ESWITCH_MODE_LEGACY;
}

nl::MsgPtr devlinkHandleMsg(int family, std::uint8_t cmd, std::string_view bus,
                            std::string_view dev) {
  nl::MsgPtr m = nl::newGenlMsg(family, cmd, DEVLINK_GENL_VERSION);
  if (!m) return m;
  const std::string b(bus), d(dev);
  if (nla_put_string(m.get(), DEVLINK_ATTR_BUS_NAME, b.c_str()) < 0 ||
      nla_put_string(m.get(), DEVLINK_ATTR_DEV_NAME, d.c_str()) < 0)
    return nullptr;
  return m;
}
}  // namespace

nl::MsgPtr devlinkEswitchSet(int family, std::string_view bus, std::string_view dev,
                             model::EswitchMode mode) {
  nl::MsgPtr m = devlinkHandleMsg(family, DEVLINK_CMD_ESWITCH_SET, bus, dev);
  if (m && nla_put_u16(m.get(), DEVLINK_ATTR_ESWITCH_MODE, devlinkMode(mode)) < 0) return nullptr;
  return m;
}

nl::MsgPtr devlinkEswitchGet(int family, std::string_view bus, std::string_view dev) {
  return devlinkHandleMsg(family, DEVLINK_CMD_ESWITCH_GET, bus, dev);
}

Result<model::EswitchMode> parseDevlinkEswitchMode(const nlmsghdr* reply) {
  nlattr* tb[DEVLINK_ATTR_MAX + 1] = {};
  if (genlmsg_parse(const_cast<nlmsghdr*>(reply), 0, tb, DEVLINK_ATTR_MAX, nullptr) < 0)
    return makeError(ErrorCode::kInvalidValue, "devlink reply", "",
                     "malformed devlink eswitch reply");
  if (!tb[DEVLINK_ATTR_ESWITCH_MODE])
    return makeError(ErrorCode::kInvalidValue, "devlink reply", "",
                     "devlink eswitch reply without DEVLINK_ATTR_ESWITCH_MODE");
  switch (nla_get_u16(tb[DEVLINK_ATTR_ESWITCH_MODE])) {
    case DEVLINK_ESWITCH_MODE_LEGACY:
      return model::EswitchMode::kLegacy;
    case DEVLINK_ESWITCH_MODE_SWITCHDEV:
      return model::EswitchMode::kSwitchdev;
    default: {
      const auto v = nla_get_u16(tb[DEVLINK_ATTR_ESWITCH_MODE]);
      return makeError(ErrorCode::kInvalidValue, "devlink reply", std::to_string(v),
                       "unknown eswitch mode " + std::to_string(v) + " (switchdev_inactive?)");
    }
  }
}

nl::MsgPtr rtnlSetVf(int ifindex, const VfSettings& s) {
  nl::MsgPtr m(nlmsg_alloc_simple(RTM_SETLINK, 0));
  if (!m) return m;
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  if (nlmsg_append(m.get(), &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0) return nullptr;
  nlattr* list = nla_nest_start(m.get(), IFLA_VFINFO_LIST);
  nlattr* info = list ? nla_nest_start(m.get(), IFLA_VF_INFO) : nullptr;
  if (!info) return nullptr;
  if (s.mac) {
    ifla_vf_mac v{};
    v.vf = s.vf;
    std::memcpy(v.mac, s.mac->bytes.data(), 6);
    if (nla_put(m.get(), IFLA_VF_MAC, sizeof v, &v) < 0) return nullptr;
  }
  if (s.spoofchk) {
    ifla_vf_spoofchk v{};
    v.vf = s.vf;
    v.setting = *s.spoofchk ? 1 : 0;
    if (nla_put(m.get(), IFLA_VF_SPOOFCHK, sizeof v, &v) < 0) return nullptr;
  }
  if (s.trust) {
    ifla_vf_trust v{};
    v.vf = s.vf;
    v.setting = *s.trust ? 1 : 0;
    if (nla_put(m.get(), IFLA_VF_TRUST, sizeof v, &v) < 0) return nullptr;
  }
  nla_nest_end(m.get(), info);
  nla_nest_end(m.get(), list);
  return m;
}

nl::MsgPtr rtnlGetLinkVfs(int ifindex) {
  nl::MsgPtr m(nlmsg_alloc_simple(RTM_GETLINK, 0));
  if (!m) return m;
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  if (nlmsg_append(m.get(), &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0 ||
      nla_put_u32(m.get(), IFLA_EXT_MASK, RTEXT_FILTER_VF) < 0)
    return nullptr;
  return m;
}

Result<std::vector<VfLinkInfo>> parseVfInfoList(const nlmsghdr* reply) {
  nlattr* tb[IFLA_MAX + 1] = {};
  if (nlmsg_parse(const_cast<nlmsghdr*>(reply), sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0)
    return makeError(ErrorCode::kInvalidValue, "rtnetlink reply", "",
                     "malformed RTM_NEWLINK reply");
  std::vector<VfLinkInfo> out;
  if (!tb[IFLA_VFINFO_LIST]) return out;
  nlattr* info = nullptr;
  int rem = 0;
  nla_for_each_nested(info, tb[IFLA_VFINFO_LIST], rem) {
    if (nla_type(info) != IFLA_VF_INFO) continue;
    nlattr* vf[IFLA_VF_MAX + 1] = {};
    if (nla_parse_nested(vf, IFLA_VF_MAX, info, nullptr) < 0 || !vf[IFLA_VF_MAC] ||
        nla_len(vf[IFLA_VF_MAC]) < static_cast<int>(sizeof(ifla_vf_mac)))
      return makeError(ErrorCode::kInvalidValue, "rtnetlink reply", "",
                       "IFLA_VF_INFO without a well-formed IFLA_VF_MAC");
    VfLinkInfo v;
    ifla_vf_mac mac{};
    std::memcpy(&mac, nla_data(vf[IFLA_VF_MAC]), sizeof mac);
    v.vf = mac.vf;
    std::memcpy(v.mac.bytes.data(), mac.mac, 6);
    // The kernel reports -1 (all ones) when the driver does not say.
    if (vf[IFLA_VF_SPOOFCHK] &&
        nla_len(vf[IFLA_VF_SPOOFCHK]) >= static_cast<int>(sizeof(ifla_vf_spoofchk))) {
      ifla_vf_spoofchk s{};
      std::memcpy(&s, nla_data(vf[IFLA_VF_SPOOFCHK]), sizeof s);
      if (s.setting != 0xFFFFFFFFu) v.spoofchk = s.setting != 0;
    }
    if (vf[IFLA_VF_TRUST] &&
        nla_len(vf[IFLA_VF_TRUST]) >= static_cast<int>(sizeof(ifla_vf_trust))) {
      ifla_vf_trust t{};
      std::memcpy(&t, nla_data(vf[IFLA_VF_TRUST]), sizeof t);
      if (t.setting != 0xFFFFFFFFu) v.trust = t.setting != 0;
    }
    out.push_back(v);
  }
  return out;
}

}  // namespace msg

namespace {

constexpr const char* kDevlinkHint =
    "this kernel has no devlink support (it needs CONFIG_NET_DEVLINK and the NIC driver, "
    "mlx5_core; modprobe mlx5_core)";

Error outOfMemory(const std::string& what) {
  return makeError(ErrorCode::kInternal, what, "", what + ": cannot build the netlink message");
}

class DevlinkEswitchControl : public EswitchControl {
 public:
  Result<model::EswitchMode> mode(const std::string& pf_pci) override {
    auto family = ensure();
    if (!family) return family.error();
    const std::string what = "devlink eswitch get pci/" + pf_pci;
    nl::MsgPtr m = msg::devlinkEswitchGet(*family, "pci", pf_pci);
    if (!m) return outOfMemory(what);
    std::optional<Result<model::EswitchMode>> got;
    auto s = channel_->transact(
        m.get(), false, [&](nlmsghdr* h) { got = msg::parseDevlinkEswitchMode(h); }, what);
    if (!s) return s.error();
    if (!got) return makeError(ErrorCode::kIo, what, "", what + ": the kernel sent no reply");
    return *got;
  }

  Status setMode(const std::string& pf_pci, model::EswitchMode mode) override {
    auto family = ensure();
    if (!family) return family.error();
    const std::string what = std::string("devlink eswitch set pci/") + pf_pci + " mode " +
                             (mode == model::EswitchMode::kSwitchdev ? "switchdev" : "legacy");
    nl::MsgPtr m = msg::devlinkEswitchSet(*family, "pci", pf_pci, mode);
    if (!m) return outOfMemory(what);
    return channel_->transact(
        m.get(), false, [](nlmsghdr*) {}, what);
  }

 private:
  Result<int> ensure() {
    if (!channel_) {
      auto ch = nl::Channel::open(NETLINK_GENERIC);
      if (!ch) return ch.error();
      channel_.emplace(std::move(*ch));
    }
    if (!family_) {
      auto id = channel_->resolveFamily(DEVLINK_GENL_NAME, kDevlinkHint);
      if (!id) return id.error();
      family_ = *id;
    }
    return *family_;
  }
  std::optional<nl::Channel> channel_;
  std::optional<int> family_;
};

class RtnlVfLinkControl : public VfLinkControl {
 public:
  Result<std::vector<VfLinkInfo>> vfs(const std::string& pf_netdev) override {
    auto ifindex = index(pf_netdev);
    if (!ifindex) return ifindex.error();
    if (auto s = open(); !s) return s.error();
    const std::string what = "rtnetlink get VFs of " + pf_netdev;
    nl::MsgPtr m = msg::rtnlGetLinkVfs(*ifindex);
    if (!m) return outOfMemory(what);
    std::optional<Result<std::vector<VfLinkInfo>>> got;
    auto s = channel_->transact(
        m.get(), false,
        [&](nlmsghdr* h) {
          if (h->nlmsg_type == RTM_NEWLINK) got = msg::parseVfInfoList(h);
        },
        what);
    if (!s) return s.error();
    if (!got) return std::vector<VfLinkInfo>{};
    return *got;
  }

  Status setVf(const std::string& pf_netdev, const VfSettings& settings) override {
    auto ifindex = index(pf_netdev);
    if (!ifindex) return ifindex.error();
    if (auto s = open(); !s) return s;
    const std::string what = "rtnetlink set VF " + std::to_string(settings.vf) + " of " + pf_netdev;
    nl::MsgPtr m = msg::rtnlSetVf(*ifindex, settings);
    if (!m) return outOfMemory(what);
    return channel_->transact(
        m.get(), false, [](nlmsghdr*) {}, what);
  }

 private:
  static Result<int> index(const std::string& netdev) {
    const unsigned i = if_nametoindex(netdev.c_str());
    if (i == 0)
      return makeError(ErrorCode::kNotFound, "netdev", netdev,
                       "network device '" + netdev + "' does not exist");
    return static_cast<int>(i);
  }
  Status open() {
    if (channel_) return Status::success();
    auto ch = nl::Channel::open(NETLINK_ROUTE);
    if (!ch) return ch.error();
    channel_.emplace(std::move(*ch));
    return Status::success();
  }
  std::optional<nl::Channel> channel_;
};

}  // namespace

std::unique_ptr<EswitchControl> makeDevlinkEswitchControl() {
  return std::make_unique<DevlinkEswitchControl>();
}

std::unique_ptr<VfLinkControl> makeRtnlVfLinkControl() {
  return std::make_unique<RtnlVfLinkControl>();
}

}  // namespace nicoffload::offload
