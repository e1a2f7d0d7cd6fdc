#include "nicoffload/flowrules/rule.h"

#include <cstdio>

#include "nicoffload/flowrules/sw_objects.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::flowrules {

ItemType itemType(const FlowItem& item) {
  static constexpr ItemType kTypes[] = {ItemType::kRepresentedPort, ItemType::kEth, ItemType::kIpv4,
                                        ItemType::kUdp, ItemType::kVxlan, ItemType::kIpv6};
  static_assert(std::variant_size_v<FlowItem> == std::size(kTypes));
  return kTypes[item.index()];
}

ActionType actionType(const FlowAction& action) {
  static constexpr ActionType kTypes[] = {
      ActionType::kSetMacSrc,       ActionType::kSetMacDst,
      ActionType::kDecTtl,          ActionType::kRepresentedPort,
      ActionType::kPortRepresentor, ActionType::kVxlanEncap,
      ActionType::kVxlanDecap,      ActionType::kJump,
      ActionType::kCount,           ActionType::kDrop};
  return kTypes[action.index()];
}

const char* toString(RuleClass c) {
  switch (c) {
    case RuleClass::kLocalDelivery:
      return "local-delivery";
    case RuleClass::kRoutedEgress:
      return "routed-egress";
    case RuleClass::kVxlanEgress:
      return "vxlan-egress";
    case RuleClass::kVxlanIngress:
      return "vxlan-ingress";
    case RuleClass::kArpTrap:
      return "arp-trap";
    case RuleClass::kAntiSpoofing:
      return "anti-spoofing";
    case RuleClass::kNdTrap:
      return "nd-trap";
  }
  return "?";
}

const char* idPrefix(RuleClass c) {
  switch (c) {
    case RuleClass::kLocalDelivery:
      return "ld";
    case RuleClass::kRoutedEgress:
      return "re";
    case RuleClass::kVxlanEgress:
      return "ve";
    case RuleClass::kVxlanIngress:
      return "vi";
    case RuleClass::kArpTrap:
      return "arp";
    case RuleClass::kAntiSpoofing:
      return "as";
    case RuleClass::kNdTrap:
      return "nd";
  }
  return "?";
}

const char* toString(Placement p) { return p == Placement::kHw ? "hw" : "sw"; }

const char* reasonCodeName(std::size_t code) {
  static constexpr const char* kNames[kPlacementReasonCodeCount] = {"none",
                                                                    "item-unsupported",
                                                                    "action-unsupported",
                                                                    "udp-port-unsupported",
                                                                    "next-hop-unresolved",
                                                                    "table-full",
                                                                    "follows",
                                                                    "device-refused",
                                                                    "uplink-other-eswitch",
                                                                    "ipv6-underlay-unsupported"};
  return code < kPlacementReasonCodeCount ? kNames[code] : "unknown";
}

std::string formatRuleId(RuleClass cls, RuleId id) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%s-%016llx", idPrefix(cls), static_cast<unsigned long long>(id));
  return buf;
}

std::optional<RuleId> parseRuleId(std::string_view text) {
  if (auto dash = text.find('-'); dash != std::string_view::npos) {
    // Only a class prefix may precede the dash ("ld-", "arp-", ...).
    const auto prefix = text.substr(0, dash);
    bool known = false;
    for (auto c : {RuleClass::kLocalDelivery, RuleClass::kRoutedEgress, RuleClass::kVxlanEgress,
                   RuleClass::kVxlanIngress, RuleClass::kArpTrap, RuleClass::kAntiSpoofing,
                   RuleClass::kNdTrap})
      known = known || prefix == idPrefix(c);
    if (!known) return std::nullopt;
    text = text.substr(dash + 1);
  }
  if (text.size() != 16) return std::nullopt;
  RuleId id = 0;
  for (char c : text) {
    int v;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else
      return std::nullopt;
    id = (id << 4) | static_cast<RuleId>(v);
  }
  return id;
}

namespace {

struct Digest {
  std::uint64_t h = 0x9e3779b97f4a7c15ULL;
  void add(std::uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
  }
  void mac(const MacAddr& m) {
    std::uint64_t v = 0;
    for (auto b : m.bytes) v = (v << 8) | b;
    add(v);
  }
  void port(const PortRef& p) { add((static_cast<std::uint64_t>(p.kind) << 16) | p.vf); }
};

struct ItemDigest {
  Digest& d;
  void operator()(const PortItem& i) const { d.port(i.port); }
  void operator()(const EthItem& i) const {
    d.add(i.fields);
    d.mac(i.src);
    d.mac(i.dst);
    d.add(i.ether_type);
  }
  void operator()(const Ipv4Item& i) const {
    d.add(i.fields);
    d.add((static_cast<std::uint64_t>(i.src.value) << 32) | i.dst.value);
  }
  void operator()(const Ipv6Item& i) const {
    d.add((static_cast<std::uint64_t>(i.field) << 8) | i.len);
    std::uint64_t hi = 0, lo = 0;
    for (std::size_t k = 0; k < 8; ++k) hi = (hi << 8) | i.addr.bytes[k];
    for (std::size_t k = 8; k < 16; ++k) lo = (lo << 8) | i.addr.bytes[k];
    d.add(hi);
    d.add(lo);
  }
  void operator()(const UdpItem& i) const {
    d.add((static_cast<std::uint64_t>(i.fields) << 16) | i.dst_port);
  }
  void operator()(const VxlanItem& i) const { d.add(i.vni); }
};

struct ActionDigest {
  Digest& d;
  void operator()(const SetMacSrcAction& a) const { d.mac(a.mac); }
  void operator()(const SetMacDstAction& a) const { d.mac(a.mac); }
  void operator()(const DecTtlAction&) const {}
  void operator()(const RepresentedPortAction& a) const { d.port(a.port); }
  void operator()(const PortRepresentorAction& a) const { d.port(a.port); }
  void operator()(const VxlanEncapAction&) const {}
  void operator()(const VxlanDecapAction&) const {}
  void operator()(const JumpAction& a) const { d.add(a.group); }
  void operator()(const CountAction&) const {}
  void operator()(const DropAction&) const {}
};

}  // namespace

std::uint64_t contentHash(const FlowRule& r) {
  Digest d;
  d.add(r.owner);
  d.add((static_cast<std::uint64_t>(r.cls) << 8) | static_cast<std::uint64_t>(r.placement));
  d.add((static_cast<std::uint64_t>(r.attr.group) << 32) | r.attr.priority);
  d.add((r.attr.ingress ? 1u : 0u) | (r.attr.transfer ? 2u : 0u));
  const auto& why = r.reason;
  d.add((static_cast<std::uint64_t>(why.code) << 40) |
        (static_cast<std::uint64_t>(why.on_action) << 32) |
        (static_cast<std::uint64_t>(why.detail) << 16) | why.port);
  d.add((static_cast<std::uint64_t>(why.group) << 32) | why.capacity);
  // IPv4 as before (digests stay what they were); IPv6 by its hash.
  d.add(why.address.isV4() ? why.address.v4().value : std::hash<IpAddr>{}(why.address));
  d.add(why.rule);
  d.add(r.pattern.size());
  for (const auto& item : r.pattern) {
    d.add(item.index());
    std::visit(ItemDigest{d}, item);
  }
  d.add(r.actions.size());
  for (const auto& action : r.actions) {
    d.add(action.index());
    std::visit(ActionDigest{d}, action);
  }
  if (r.encap) {
    const auto& e = *r.encap;
    d.mac(e.eth_src);
    d.mac(e.eth_dst);
    d.add(std::hash<IpAddr>{}(e.src));
    d.add(std::hash<IpAddr>{}(e.dst));
    d.add((static_cast<std::uint64_t>(e.udp_src) << 48) |
          (static_cast<std::uint64_t>(e.udp_dst) << 32) | e.vni);
  } else {
    d.add(0xE9CA95ULL);
  }
  return d.h;
}

MacAddr routerMacForVtep(const IpAddr& vtep) { return model::routerMac(vtep); }

}  // namespace nicoffload::flowrules
