// The netlink messages of the NIC backend, built and parsed apart from any
// socket so that tests can check them attribute by attribute.
//
// devlink (include/uapi/linux/devlink.h, family "devlink", version 1):
//   ESWITCH_GET / ESWITCH_SET: DEVLINK_ATTR_BUS_NAME (string "pci"),
//   DEVLINK_ATTR_DEV_NAME (string, the PF's PCI address),
//   DEVLINK_ATTR_ESWITCH_MODE (u16, SET only; DEVLINK_ESWITCH_MODE_LEGACY = 0,
//   DEVLINK_ESWITCH_MODE_SWITCHDEV = 1).
// rtnetlink (include/uapi/linux/if_link.h):
//   RTM_SETLINK on the PF's ifindex with IFLA_VFINFO_LIST { IFLA_VF_INFO {
//   IFLA_VF_MAC (struct ifla_vf_mac), IFLA_VF_SPOOFCHK (struct
//   ifla_vf_spoofchk), IFLA_VF_TRUST (struct ifla_vf_trust) } }
//   RTM_GETLINK on the PF's ifindex with IFLA_EXT_MASK = RTEXT_FILTER_VF.
#pragma once

#include <string_view>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/offload/nl_channel.h"
#include "nicoffload/offload/sysfs_nic_backend.h"

namespace nicoffload::offload::msg {

// DEVLINK_CMD_ESWITCH_SET for devlink handle <bus>/<dev> (e.g. pci/0000:03:00.0).
nl::MsgPtr devlinkEswitchSet(int family, std::string_view bus, std::string_view dev,
                             model::EswitchMode mode);
// DEVLINK_CMD_ESWITCH_GET for <bus>/<dev>.
nl::MsgPtr devlinkEswitchGet(int family, std::string_view bus, std::string_view dev);
// The mode in an ESWITCH_GET reply. kInvalidValue when absent or unknown.
Result<model::EswitchMode> parseDevlinkEswitchMode(const nlmsghdr* reply);

// RTM_SETLINK of one VF's settings on the PF `ifindex`.
nl::MsgPtr rtnlSetVf(int ifindex, const VfSettings& settings);
// RTM_GETLINK of `ifindex` asking for the VF list.
nl::MsgPtr rtnlGetLinkVfs(int ifindex);
// The VFs in an RTM_NEWLINK (reply) message; empty when it has no VF list.
Result<std::vector<VfLinkInfo>> parseVfInfoList(const nlmsghdr* reply);

}  // namespace nicoffload::offload::msg
