// The `vdpa` generic netlink family: messages and the real VdpaNetlink.
#include <linux/netlink.h>
#include <linux/vdpa.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include <cstring>
#include <map>

#include "nicoffload/vdpa/vdpa_netlink_msg.h"

namespace nicoffload::vdpa {

using offload::nl::MsgPtr;
using offload::nl::newGenlMsg;

namespace msg {

namespace {
MsgPtr plain(int family, std::uint8_t cmd) { return newGenlMsg(family, cmd, VDPA_GENL_VERSION); }

std::string str(const nlattr* a) {
  const auto* p = static_cast<const char*>(nla_data(a));
  return std::string(p, strnlen(p, static_cast<std::size_t>(nla_len(a))));
}
}  // namespace

MsgPtr vdpaMgmtdevGet(int family) { return plain(family, VDPA_CMD_MGMTDEV_GET); }
MsgPtr vdpaDevGet(int family) { return plain(family, VDPA_CMD_DEV_GET); }
MsgPtr vdpaDevConfigGet(int family) { return plain(family, VDPA_CMD_DEV_CONFIG_GET); }

MsgPtr vdpaDevNew(int family, const VdpaDevNewRequest& r) {
  MsgPtr m = plain(family, VDPA_CMD_DEV_NEW);
  if (!m) return m;
  if (nla_put_string(m.get(), VDPA_ATTR_DEV_NAME, r.name.c_str()) < 0) return nullptr;
  if (!r.mgmt.bus.empty() &&
      nla_put_string(m.get(), VDPA_ATTR_MGMTDEV_BUS_NAME, r.mgmt.bus.c_str()) < 0)
    return nullptr;
  if (nla_put_string(m.get(), VDPA_ATTR_MGMTDEV_DEV_NAME, r.mgmt.dev.c_str()) < 0) return nullptr;
  if (r.mac && nla_put(m.get(), VDPA_ATTR_DEV_NET_CFG_MACADDR, 6, r.mac->bytes.data()) < 0)
    return nullptr;
  if (r.mtu && nla_put_u16(m.get(), VDPA_ATTR_DEV_NET_CFG_MTU, *r.mtu) < 0) return nullptr;
  if (r.max_vqp && nla_put_u16(m.get(), VDPA_ATTR_DEV_NET_CFG_MAX_VQP, *r.max_vqp) < 0)
    return nullptr;
  return m;
}

static_assert(VDPA_CMD_DEV_VSTATS_GET + 1 == kVdpaCmdDevAttrSet,
              "VDPA_CMD_DEV_ATTR_SET follows VDPA_CMD_DEV_VSTATS_GET");

MsgPtr vdpaDevSetMac(int family, std::string_view name, const MacAddr& mac) {
  MsgPtr m = plain(family, kVdpaCmdDevAttrSet);
  const std::string n(name);
  if (!m || nla_put_string(m.get(), VDPA_ATTR_DEV_NAME, n.c_str()) < 0 ||
      nla_put(m.get(), VDPA_ATTR_DEV_NET_CFG_MACADDR, 6, mac.bytes.data()) < 0)
    return nullptr;
  return m;
}

MsgPtr vdpaDevDel(int family, std::string_view name) {
  MsgPtr m = plain(family, VDPA_CMD_DEV_DEL);
  const std::string n(name);
  if (m && nla_put_string(m.get(), VDPA_ATTR_DEV_NAME, n.c_str()) < 0) return nullptr;
  return m;
}

Result<VdpaMgmtDev> parseVdpaMgmtdev(const nlmsghdr* reply) {
  nlattr* tb[VDPA_ATTR_MAX + 1] = {};
  if (genlmsg_parse(const_cast<nlmsghdr*>(reply), 0, tb, VDPA_ATTR_MAX, nullptr) < 0 ||
      !tb[VDPA_ATTR_MGMTDEV_DEV_NAME])
    return makeError(ErrorCode::kInvalidValue, "vdpa reply", "",
                     "vdpa management device reply without VDPA_ATTR_MGMTDEV_DEV_NAME");
  VdpaMgmtDev d;
  if (tb[VDPA_ATTR_MGMTDEV_BUS_NAME]) d.bus = str(tb[VDPA_ATTR_MGMTDEV_BUS_NAME]);
  d.dev = str(tb[VDPA_ATTR_MGMTDEV_DEV_NAME]);
  return d;
}

Result<VdpaDevInfo> parseVdpaDev(const nlmsghdr* reply) {
  nlattr* tb[VDPA_ATTR_MAX + 1] = {};
  if (genlmsg_parse(const_cast<nlmsghdr*>(reply), 0, tb, VDPA_ATTR_MAX, nullptr) < 0 ||
      !tb[VDPA_ATTR_DEV_NAME])
    return makeError(ErrorCode::kInvalidValue, "vdpa reply", "",
                     "vdpa device reply without VDPA_ATTR_DEV_NAME");
  VdpaDevInfo d;
  d.name = str(tb[VDPA_ATTR_DEV_NAME]);
  if (tb[VDPA_ATTR_MGMTDEV_BUS_NAME]) d.mgmt.bus = str(tb[VDPA_ATTR_MGMTDEV_BUS_NAME]);
  if (tb[VDPA_ATTR_MGMTDEV_DEV_NAME]) d.mgmt.dev = str(tb[VDPA_ATTR_MGMTDEV_DEV_NAME]);
  if (const nlattr* a = tb[VDPA_ATTR_DEV_NET_CFG_MACADDR]; a && nla_len(a) == 6) {
    MacAddr mac;
    std::memcpy(mac.bytes.data(), nla_data(a), 6);
    d.mac = mac;
  }
  if (const nlattr* a = tb[VDPA_ATTR_DEV_NET_CFG_MTU]; a && nla_len(a) >= 2)
    d.mtu = nla_get_u16(const_cast<nlattr*>(a));
  if (const nlattr* a = tb[VDPA_ATTR_DEV_NET_CFG_MAX_VQP]; a && nla_len(a) >= 2)
    d.max_vqp = nla_get_u16(const_cast<nlattr*>(a));
  return d;
}

}  // namespace msg

namespace {

constexpr const char* kVdpaHint =
    "this kernel has no vdpa support (modprobe vdpa, mlx5_vdpa; and vhost_vdpa for QEMU)";

Error outOfMemory(const std::string& what) {
  return makeError(ErrorCode::kInternal, what, "", what + ": cannot build the netlink message");
}

class GenlVdpaNetlink : public VdpaNetlink {
 public:
  Result<std::vector<VdpaMgmtDev>> mgmtdevs() override {
    auto fam = ensure();
    if (!fam) return fam.error();
    const std::string what = "vdpa mgmtdev show";
    MsgPtr m = msg::vdpaMgmtdevGet(*fam);
    if (!m) return outOfMemory(what);
    std::vector<VdpaMgmtDev> out;
    std::optional<Error> bad;
    auto s = ch_->transact(
        m.get(), true,
        [&](nlmsghdr* h) {
          if (auto d = msg::parseVdpaMgmtdev(h))
            out.push_back(*d);
          else
            bad = d.error();
        },
        what);
    if (!s) return s.error();
    if (bad) return *bad;
    return out;
  }

  Status devNew(const VdpaDevNewRequest& r) override {
    auto fam = ensure();
    if (!fam) return fam.error();
    const std::string what = "vdpa dev add name " + r.name + " mgmtdev " +
                             (r.mgmt.bus.empty() ? "" : r.mgmt.bus + "/") + r.mgmt.dev;
    MsgPtr m = msg::vdpaDevNew(*fam, r);
    if (!m) return outOfMemory(what);
    return ch_->transact(
        m.get(), false, [](nlmsghdr*) {}, what);
  }

  Status devDel(const std::string& name) override {
    auto fam = ensure();
    if (!fam) return fam.error();
    const std::string what = "vdpa dev del " + name;
    MsgPtr m = msg::vdpaDevDel(*fam, name);
    if (!m) return outOfMemory(what);
    return ch_->transact(
        m.get(), false, [](nlmsghdr*) {}, what);
  }

  Status devSetMac(const std::string& name, const MacAddr& mac) override {
    auto fam = ensure();
    if (!fam) return fam.error();
    const std::string what = "vdpa dev set " + name + " mac " + mac.str();
    MsgPtr m = msg::vdpaDevSetMac(*fam, name, mac);
    if (!m) return outOfMemory(what);
    auto s = ch_->transact(
        m.get(), false, [](nlmsghdr*) {}, what);
    // A kernel before 6.12 does not know the command (EOPNOTSUPP); one whose
    // parent driver has no dev_set_attr answers EOPNOTSUPP too.
    if (!s && s.error().code == ErrorCode::kUnsupported) {
      Error e = s.error();
      e.message += " (changing a vDPA device's MAC needs Linux 6.12 or newer and a parent driver "
                   "that supports it, as mlx5_vdpa does)";
      return e;
    }
    return s;
  }

  Result<std::vector<VdpaDevInfo>> devs() override {
    auto fam = ensure();
    if (!fam) return fam.error();
    std::map<std::string, VdpaDevInfo> by_name;
    std::optional<Error> bad;
    MsgPtr get = msg::vdpaDevGet(*fam);
    if (!get) return outOfMemory("vdpa dev show");
    auto s = ch_->transact(
        get.get(), true,
        [&](nlmsghdr* h) {
          if (auto d = msg::parseVdpaDev(h))
            by_name[d->name] = *d;
          else
            bad = d.error();
        },
        "vdpa dev show");
    if (!s) return s.error();
    MsgPtr cfg = msg::vdpaDevConfigGet(*fam);
    if (!cfg) return outOfMemory("vdpa dev config show");
    s = ch_->transact(
        cfg.get(), true,
        [&](nlmsghdr* h) {
          auto d = msg::parseVdpaDev(h);
          if (!d) {
            bad = d.error();
            return;
          }
          auto& e = by_name[d->name];
          e.name = d->name;
          e.mac = d->mac;
          e.mtu = d->mtu;
          e.max_vqp = d->max_vqp;
        },
        "vdpa dev config show");
    if (!s) return s.error();
    if (bad) return *bad;
    std::vector<VdpaDevInfo> out;
    for (auto& [_, d] : by_name) out.push_back(std::move(d));
    return out;
  }

 private:
  Result<int> ensure() {
    if (!ch_) {
      auto ch = offload::nl::Channel::open(NETLINK_GENERIC);
      if (!ch) return ch.error();
      ch_.emplace(std::move(*ch));
    }
    if (!family_) {
      auto id = ch_->resolveFamily(VDPA_GENL_NAME, kVdpaHint);
      if (!id) return id.error();
      family_ = *id;
    }
    return *family_;
  }
  std::optional<offload::nl::Channel> ch_;
  std::optional<int> family_;
};

}  // namespace

std::unique_ptr<VdpaNetlink> makeGenlVdpaNetlink() { return std::make_unique<GenlVdpaNetlink>(); }

}  // namespace nicoffload::vdpa
