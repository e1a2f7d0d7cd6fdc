// What a NIC model + firmware + DPDK version can do, as loaded from a
// hw-profiles/*.json file (schema: hw-profiles/README.md). The planner decides
// placement from it first; rte_flow_validate() on the real device decides last.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nicoffload::model {

// rte_flow pattern items the rule IR uses (names as in testpmd / rte_flow.h).
enum class ItemType : std::uint8_t {
  kRepresentedPort,  // RTE_FLOW_ITEM_TYPE_REPRESENTED_PORT: traffic entering from an ethdev
  kEth,              // RTE_FLOW_ITEM_TYPE_ETH
  kIpv4,             // RTE_FLOW_ITEM_TYPE_IPV4
  kUdp,              // RTE_FLOW_ITEM_TYPE_UDP
  kVxlan,            // RTE_FLOW_ITEM_TYPE_VXLAN
  kArpEthIpv4,       // RTE_FLOW_ITEM_TYPE_ARP_ETH_IPV4 (ARP fields beyond the ethertype)
  kIpv6,             // RTE_FLOW_ITEM_TYPE_IPV6 (one address per rule: source or destination)
};
inline constexpr std::size_t kItemTypeCount = 7;

// rte_flow actions the rule IR uses.
enum class ActionType : std::uint8_t {
  kSetMacSrc,        // RTE_FLOW_ACTION_TYPE_SET_MAC_SRC
  kSetMacDst,        // RTE_FLOW_ACTION_TYPE_SET_MAC_DST
  kDecTtl,           // RTE_FLOW_ACTION_TYPE_DEC_TTL
  kRepresentedPort,  // RTE_FLOW_ACTION_TYPE_REPRESENTED_PORT: out of the ethdev's wire/VF side
  kPortRepresentor,  // RTE_FLOW_ACTION_TYPE_PORT_REPRESENTOR: to the representor (software)
  kVxlanEncap,       // RTE_FLOW_ACTION_TYPE_VXLAN_ENCAP
  kVxlanDecap,       // RTE_FLOW_ACTION_TYPE_VXLAN_DECAP
  kJump,             // RTE_FLOW_ACTION_TYPE_JUMP
  kCount,            // RTE_FLOW_ACTION_TYPE_COUNT
  kDrop,             // RTE_FLOW_ACTION_TYPE_DROP
};
inline constexpr std::size_t kActionTypeCount = 10;

// Profile / JSON names: "represented_port", "eth", ... and "set_mac_src", ...
std::string_view itemName(ItemType type);
std::string_view actionName(ActionType type);
std::optional<ItemType> itemFromName(std::string_view name);
std::optional<ActionType> actionFromName(std::string_view name);

enum class EswitchMode : std::uint8_t { kLegacy, kSwitchdev };

// One capability and where the claim comes from.
struct Capability {
  bool supported = false;
  // Only for items/actions that carry a UDP destination port (vxlan item,
  // vxlan_encap, vxlan_decap): the ports the device handles. Empty = any.
  std::vector<std::uint16_t> udp_dst_ports;
  // Only for vxlan_encap and vxlan_decap ("ipv6_underlay": {"supported",
  // "source"}): the action works with IPv6 outer headers (VXLAN over an IPv6
  // underlay). Absent = not claimed: such rules take the kernel path.
  bool ipv6_underlay = false;
  std::string ipv6_underlay_source;
  std::string source;  // "<source-key>: <section / quote>", key from HwProfile::sources
  std::string note;    // optional operator-facing remark
};

struct HwProfile {
  std::string name;         // file stem, e.g. "connectx-6dx"
  std::string model;        // marketing name, e.g. "NVIDIA ConnectX-6 Dx"
  std::string description;
  std::vector<std::string> pci_ids;  // "15b3:101d" (PF device ids this profile is for)

  std::vector<EswitchMode> eswitch_modes;
  std::string eswitch_source;
  // One eswitch over both PFs (issue 23, two uplinks): a VF's egress rule
  // may send out of the second PF. Without it, each PF has its own eswitch
  // and switch domain, and a remote whose next hop is on the second uplink
  // takes the kernel path (reason uplink-other-eswitch).
  bool multiport_eswitch = false;
  std::string multiport_source;

  std::uint16_t max_vfs = 0;  // per PF (SR-IOV TotalVFs)
  std::string max_vfs_source;

  bool vdpa_kernel = false;   // Linux mlx5_vdpa + vhost_vdpa
  bool vdpa_dpdk = false;     // DPDK mlx5 vDPA driver (class=vdpa)
  std::string vdpa_source;

  bool sw_steering = false;   // DV flow engine (dv_flow_en=1)
  bool hw_steering = false;   // template API (dv_flow_en=2)
  std::string hw_steering_min_firmware;  // e.g. "xx.35.1012"; empty when unsupported
  std::string min_dpdk;                  // e.g. "22.11"
  std::string steering_source;

  std::array<Capability, kItemTypeCount> items;
  std::array<Capability, kActionTypeCount> actions;

  // Hardware table sizes the planner may fill, in rules. Group 0 is the root
  // table; every other group gets rules_per_group.
  std::uint32_t max_groups = 0;
  std::uint32_t root_table_rules = 0;
  std::uint32_t rules_per_group = 0;
  std::string tables_source;

  std::map<std::string, std::string> sources;  // key -> document (URL + version)

  const Capability& item(ItemType t) const { return items[static_cast<std::size_t>(t)]; }
  const Capability& action(ActionType t) const { return actions[static_cast<std::size_t>(t)]; }
  std::uint32_t groupCapacity(std::uint32_t group) const {
    return group == 0 ? root_table_rules : rules_per_group;
  }
  bool supportsVdpa(bool kernel) const { return kernel ? vdpa_kernel : vdpa_dpdk; }
};

}  // namespace nicoffload::model
