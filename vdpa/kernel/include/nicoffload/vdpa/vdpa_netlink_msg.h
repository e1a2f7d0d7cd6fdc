// The `vdpa` generic netlink messages (include/uapi/linux/vdpa.h, family
// "vdpa", version 1), built and parsed apart from any socket so that tests can
// check them attribute by attribute.
//
//   MGMTDEV_GET (dump)  -> VDPA_ATTR_MGMTDEV_BUS_NAME (NUL string, optional),
//                          VDPA_ATTR_MGMTDEV_DEV_NAME (string)
//   DEV_NEW             VDPA_ATTR_DEV_NAME (string), VDPA_ATTR_MGMTDEV_BUS_NAME,
//                       VDPA_ATTR_MGMTDEV_DEV_NAME, VDPA_ATTR_DEV_NET_CFG_MACADDR
//                       (6 bytes), VDPA_ATTR_DEV_NET_CFG_MTU (u16, >= 68),
//                       VDPA_ATTR_DEV_NET_CFG_MAX_VQP (u16)
//   DEV_DEL             VDPA_ATTR_DEV_NAME
//   DEV_GET (dump)      -> VDPA_ATTR_DEV_NAME, VDPA_ATTR_MGMTDEV_BUS_NAME / _DEV_NAME
//   DEV_CONFIG_GET      -> VDPA_ATTR_DEV_NAME, VDPA_ATTR_DEV_NET_CFG_MACADDR,
//     (dump)               VDPA_ATTR_DEV_NET_CFG_MTU, VDPA_ATTR_DEV_NET_CFG_MAX_VQP
//   DEV_ATTR_SET        VDPA_ATTR_DEV_NAME, VDPA_ATTR_DEV_NET_CFG_MACADDR (Linux 6.12,
//                       "vdpa: support set mac address from vdpa tool"; the MAC
//                       only: the MTU cannot be changed on a device)
#pragma once

#include <string_view>

#include "nicoffload/common/error.h"
#include "nicoffload/offload/nl_channel.h"
#include "nicoffload/vdpa/kernel_vdpa_backend.h"

namespace nicoffload::vdpa::msg {

offload::nl::MsgPtr vdpaMgmtdevGet(int family);
offload::nl::MsgPtr vdpaDevNew(int family, const VdpaDevNewRequest& request);
offload::nl::MsgPtr vdpaDevDel(int family, std::string_view name);
offload::nl::MsgPtr vdpaDevGet(int family);
offload::nl::MsgPtr vdpaDevConfigGet(int family);
offload::nl::MsgPtr vdpaDevSetMac(int family, std::string_view name, const MacAddr& mac);

// VDPA_CMD_DEV_ATTR_SET: the command after VDPA_CMD_DEV_VSTATS_GET in
// include/uapi/linux/vdpa.h since Linux 6.12 (Debian 12's headers, 6.1,
// stop before it).
inline constexpr std::uint8_t kVdpaCmdDevAttrSet = 8;

// One MGMTDEV_GET reply. kInvalidValue without VDPA_ATTR_MGMTDEV_DEV_NAME.
Result<VdpaMgmtDev> parseVdpaMgmtdev(const nlmsghdr* reply);
// One DEV_GET or DEV_CONFIG_GET reply: the fields it carries are set.
// kInvalidValue without VDPA_ATTR_DEV_NAME.
Result<VdpaDevInfo> parseVdpaDev(const nlmsghdr* reply);

}  // namespace nicoffload::vdpa::msg
