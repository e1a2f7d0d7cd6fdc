// The flow-rule IR: close to rte_flow (attributes, pattern items, actions),
// compact (inline storage, no heap per rule) because a host holds 100 k+ of
// them, and comparable, so diff can tell changed rules from unchanged ones.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>

#include "nicoffload/common/net_types.h"
#include "nicoffload/model/hw_profile.h"

namespace nicoffload::flowrules {

using model::ActionType;
using model::ItemType;

// Fixed-capacity vector with inline storage. The capacities (FlowRule's
// pattern and actions) are the largest rule kinds' needs: a push beyond them
// is a bug in whoever builds the rule, and it throws instead of writing past
// the storage.
template <class T, std::size_t N>
class InlineVec {
  static_assert(N <= UINT8_MAX, "size_ is a uint8_t");

 public:
  // Throws std::length_error when the vector is full (size() == capacity()):
  // a check in every build type, not an assert. The vector is unchanged.
  void push_back(const T& v) {
    if (size_ >= N)
      throw std::length_error("flow rule: more than " + std::to_string(N) +
                              " pattern items or actions (the InlineVec's capacity); the rule "
                              "kind needs a larger capacity");
    data_[size_++] = v;
  }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const T* begin() const { return data_.data(); }
  const T* end() const { return data_.data() + size_; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  static constexpr std::size_t capacity() { return N; }
  // The element at i as alternative U of a variant element type.
  template <class U>
  U& at(std::size_t i) { return std::get<U>(data_[i]); }
  bool operator==(const InlineVec& o) const {
    if (size_ != o.size_) return false;
    for (std::size_t i = 0; i < size_; ++i)
      if (!(data_[i] == o.data_[i])) return false;
    return true;
  }

 private:
  std::array<T, N> data_{};
  std::uint8_t size_ = 0;
};

// A port of the embedded switch: an uplink (PF / wire side) or a VF.
struct PortRef {
  enum class Kind : std::uint8_t { kUplink, kVf };
  Kind kind = Kind::kUplink;
  // Which uplink, for kUplink: 0 the first (the VFs' PF), 1 the second PF
  // of a dual-homed host (model::HostConfig::uplink2). Fills what was
  // padding: sizeof(PortRef) stays 4.
  std::uint8_t uplink_index = 0;
  std::uint16_t vf = 0;  // VF index; only for kVf

  static PortRef uplink(std::uint8_t index = 0) { return {Kind::kUplink, index, 0}; }
  static PortRef vfPort(std::uint16_t index) { return {Kind::kVf, 0, index}; }
  // "uplink", "uplink1", "vf3".
  std::string str() const {
    if (kind == Kind::kVf) return "vf" + std::to_string(vf);
    return uplink_index == 0 ? "uplink" : "uplink" + std::to_string(uplink_index);
  }
  bool operator==(const PortRef&) const = default;
};
static_assert(sizeof(PortRef) == 4);

// --- pattern items (each field is matched exactly when its bit is set) ---
struct PortItem {           // REPRESENTED_PORT: packet entered the switch from this port
  PortRef port;
  bool operator==(const PortItem&) const = default;
};
struct EthItem {            // ETH (IEEE 802.3)
  static constexpr std::uint8_t kSrc = 1, kDst = 2, kType = 4;
  std::uint8_t fields = 0;
  MacAddr src, dst;
  std::uint16_t ether_type = 0;  // 0x0800 IPv4, 0x0806 ARP (IEEE registry)
  bool operator==(const EthItem&) const = default;
};
struct Ipv4Item {           // IPV4 (RFC 791)
  static constexpr std::uint8_t kSrc = 1, kDst = 2;
  std::uint8_t fields = 0;
  Ipv4Addr src, dst;
  bool operator==(const Ipv4Item&) const = default;
};
// IPV6 (RFC 8200): one address, the source or the destination, under a
// prefix length (128 = the host; 10 = fe80::/10). One per rule: ConnectX-6
// Dx and 7 match the IPv6 source or the destination in one rule, not both
// (profile items.ipv6), and no rule of the planner needs both: anti-spoofing
// (group 0) matches sources, the FIB (group 1) destinations.
struct Ipv6Item {
  enum class Field : std::uint8_t { kNone, kSrc, kDst };
  Field field = Field::kNone;  // kNone: any IPv6 packet
  std::uint8_t len = 128;
  Ipv6Addr addr;
  bool operator==(const Ipv6Item&) const = default;
  // Whether `a` matches (for kSrc, `a` is the packet's source).
  bool matches(const Ipv6Addr& a) const {
    return field == Field::kNone || Ipv6Prefix{addr, len}.contains(a);
  }
};
struct UdpItem {            // UDP (RFC 768)
  static constexpr std::uint8_t kDst = 1;
  std::uint8_t fields = 0;
  std::uint16_t dst_port = 0;
  bool operator==(const UdpItem&) const = default;
};
struct VxlanItem {          // VXLAN (RFC 7348)
  std::uint32_t vni = 0;    // 24 bits, always matched
  bool operator==(const VxlanItem&) const = default;
};

using FlowItem = std::variant<PortItem, EthItem, Ipv4Item, UdpItem, VxlanItem, Ipv6Item>;
ItemType itemType(const FlowItem& item);

// --- actions ---
struct SetMacSrcAction { MacAddr mac; bool operator==(const SetMacSrcAction&) const = default; };
struct SetMacDstAction { MacAddr mac; bool operator==(const SetMacDstAction&) const = default; };
struct DecTtlAction { bool operator==(const DecTtlAction&) const = default; };
// Send out of the port (to the VF's guest, or to the wire for the uplink).
struct RepresentedPortAction { PortRef port; bool operator==(const RepresentedPortAction&) const = default; };
// Send to the port's representor netdev (the kernel, i.e. the software path).
struct PortRepresentorAction { PortRef port; bool operator==(const PortRepresentorAction&) const = default; };
// VXLAN encapsulation; the outer headers are FlowRule::encap.
struct VxlanEncapAction { bool operator==(const VxlanEncapAction&) const = default; };
struct VxlanDecapAction { bool operator==(const VxlanDecapAction&) const = default; };
struct JumpAction { std::uint32_t group = 0; bool operator==(const JumpAction&) const = default; };
struct CountAction { bool operator==(const CountAction&) const = default; };
struct DropAction { bool operator==(const DropAction&) const = default; };

using FlowAction =
    std::variant<SetMacSrcAction, SetMacDstAction, DecTtlAction, RepresentedPortAction,
                 PortRepresentorAction, VxlanEncapAction, VxlanDecapAction, JumpAction,
                 CountAction, DropAction>;
ActionType actionType(const FlowAction& action);

// Outer headers of a VXLAN encapsulation (RFC 7348 §5): Ethernet, IPv4 or
// IPv6 (both VTEPs of one family: underlay.vtep's), UDP, VXLAN.
struct VxlanEncap {
  MacAddr eth_src;            // this host's uplink MAC
  MacAddr eth_dst;            // underlay next hop towards the remote VTEP
  IpAddr src;                 // local VTEP
  IpAddr dst;                 // remote VTEP
  bool ipv6() const { return !src.isV4(); }
  std::uint16_t udp_src = 0;  // fixed per destination, for ECMP entropy (49152..65535)
  std::uint16_t udp_dst = 4789;
  std::uint32_t vni = 0;      // 24 bits
  bool operator==(const VxlanEncap&) const = default;
};

struct FlowAttr {
  std::uint32_t group = 0;     // 0 = root table
  std::uint32_t priority = 0;  // lower value = matched first
  bool ingress = false;
  bool transfer = true;        // eswitch (FDB) domain
  bool operator==(const FlowAttr&) const = default;
};

// The rule classes of docs/design.md ("What the planner emits").
enum class RuleClass : std::uint8_t {
  kLocalDelivery,
  kRoutedEgress,
  kVxlanEgress,
  kVxlanIngress,
  kArpTrap,
  kAntiSpoofing,
  kNdTrap,  // IPv6 neighbour discovery (and link-scoped traffic) to the kernel
};
inline constexpr std::size_t kRuleClassCount = 7;
const char* toString(RuleClass c);
const char* idPrefix(RuleClass c);  // "ld", "re", "ve", "vi", "arp", "as", "nd"

enum class Placement : std::uint8_t { kHw, kSw };
const char* toString(Placement p);

// Why a rule sits where it does. Compact and comparable; text is rendered
// with describeReason() against the profile that decided.
struct PlacementReason {
  enum class Code : std::uint8_t {
    kNone,                // placed hw: the profile supports every item and action
    kItemUnsupported,     // detail = ItemType
    kActionUnsupported,   // detail = ActionType
    kUdpPortUnsupported,  // detail = ItemType/ActionType carrying it (see on_action), port =
                          // requested
    kNextHopUnresolved,   // no MAC known for the underlay next hop `address`
    kTableFull,           // group `group` holds at most `capacity` rules
    kFollows,             // must follow rule `rule` (placed sw) or it would shadow/strand it
    kDeviceRefused,       // the device refused it at apply time (message kept by the backend)
    // Its next hop is on uplink `detail` (> 0), a PF whose eswitch is not the
    // VFs' (the profile has no multiport eswitch): the kernel sends it.
    kUplinkOtherEswitch,
    // VXLAN over an IPv6 underlay: the profile does not claim action
    // `detail` (vxlan_encap / vxlan_decap) with IPv6 outer headers.
    kIpv6UnderlayUnsupported,
  };
  Code code = Code::kNone;
  bool on_action = false;       // for kUdpPortUnsupported: detail is an ActionType
  std::uint8_t detail = 0;
  std::uint16_t port = 0;
  std::uint32_t group = 0;
  std::uint32_t capacity = 0;
  IpAddr address;
  std::uint64_t rule = 0;
  bool operator==(const PlacementReason&) const = default;
};
inline constexpr std::size_t kPlacementReasonCodeCount = 10;
// The stable name of a reason code ("next-hop-unresolved"): JSON keys,
// metric labels and CLI counts use it. Index: PlacementReason::Code.
const char* reasonCodeName(std::size_t code);

using RuleId = std::uint64_t;
using OwnerId = std::uint64_t;

struct FlowRule {
  RuleId id = 0;       // stable: derived from the intent that produced the rule
  OwnerId owner = 0;   // the port / remote / VNI / host the rule belongs to
  RuleClass cls = RuleClass::kLocalDelivery;
  Placement placement = Placement::kHw;
  PlacementReason reason;
  FlowAttr attr;
  // Capacities: the largest rule kinds fill them. VXLAN ingress matches
  // port, eth, ipv4, udp, vxlan (5 items); routed / VXLAN egress acts
  // set_mac_src, set_mac_dst, dec_ttl, [vxlan_encap,] represented_port,
  // count (6 actions). Raising one changes sizeof(FlowRule): the memory per
  // rule, and the simulated NIC's journal format.
  static constexpr std::size_t kMaxPatternItems = 5;
  static constexpr std::size_t kMaxActions = 6;
  InlineVec<FlowItem, kMaxPatternItems> pattern;
  InlineVec<FlowAction, kMaxActions> actions;
  std::optional<VxlanEncap> encap;  // set iff actions hold VxlanEncapAction

  // Everything but the id (diff uses it to find modified rules).
  bool sameContent(const FlowRule& o) const {
    return owner == o.owner && cls == o.cls && placement == o.placement && reason == o.reason &&
           attr == o.attr && pattern == o.pattern && actions == o.actions && encap == o.encap;
  }
};

// A 64-bit digest of everything in a rule but its id (pattern, actions,
// encap, attributes, class, owner, planned placement and reason). Equal rules
// have equal digests; different ones differ but with negligible probability.
// For one process only: not stable across builds, never persisted.
std::uint64_t contentHash(const FlowRule& rule);

// What a holder of installed rules keeps of each (HwApplier): the identity,
// ordering attributes and planned placement of a rule, and the digest of its
// content in place of the content (~70 bytes instead of ~280). The full rule
// is re-planned when it must be shown: the planner is deterministic.
struct RuleSummary {
  RuleId id = 0;
  OwnerId owner = 0;
  std::uint64_t content = 0;  // contentHash()
  FlowAttr attr;
  PlacementReason reason;     // as planned
  RuleClass cls = RuleClass::kLocalDelivery;
  Placement placement = Placement::kHw;  // as planned

  static RuleSummary of(const FlowRule& r) {
    return {r.id, r.owner, contentHash(r), r.attr, r.reason, r.cls, r.placement};
  }
  bool sameContent(const FlowRule& r) const { return owner == r.owner && content == contentHash(r); }
};

// "ld-00c0ffee12345678": class prefix + 16 hex digits.
std::string formatRuleId(RuleClass cls, RuleId id);
// Accepts "ld-<16 hex>" or "<16 hex>"; nullopt otherwise.
std::optional<RuleId> parseRuleId(std::string_view text);

}  // namespace nicoffload::flowrules
