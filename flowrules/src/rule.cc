#include "nicoffload/flowrules/rule.h"

#include <cstdio>

#include "nicoffload/flowrules/sw_objects.h"

namespace nicoffload::flowrules {

ItemType itemType(const FlowItem& item) {
  static constexpr ItemType kTypes[] = {ItemType::kRepresentedPort, ItemType::kEth,
                                        ItemType::kIpv4, ItemType::kUdp, ItemType::kVxlan};
  return kTypes[item.index()];
}

ActionType actionType(const FlowAction& action) {
  static constexpr ActionType kTypes[] = {
      ActionType::kSetMacSrc,  ActionType::kSetMacDst,       ActionType::kDecTtl,
      ActionType::kRepresentedPort, ActionType::kPortRepresentor, ActionType::kVxlanEncap,
      ActionType::kVxlanDecap, ActionType::kJump,            ActionType::kCount,
      ActionType::kDrop};
  return kTypes[action.index()];
}

const char* toString(RuleClass c) {
  switch (c) {
    case RuleClass::kLocalDelivery: return "local-delivery";
    case RuleClass::kRoutedEgress: return "routed-egress";
    case RuleClass::kVxlanEgress: return "vxlan-egress";
    case RuleClass::kVxlanIngress: return "vxlan-ingress";
    case RuleClass::kArpTrap: return "arp-trap";
    case RuleClass::kAntiSpoofing: return "anti-spoofing";
  }
  return "?";
}

const char* idPrefix(RuleClass c) {
  switch (c) {
    case RuleClass::kLocalDelivery: return "ld";
    case RuleClass::kRoutedEgress: return "re";
    case RuleClass::kVxlanEgress: return "ve";
    case RuleClass::kVxlanIngress: return "vi";
    case RuleClass::kArpTrap: return "arp";
    case RuleClass::kAntiSpoofing: return "as";
  }
  return "?";
}

const char* toString(Placement p) { return p == Placement::kHw ? "hw" : "sw"; }

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
                   RuleClass::kVxlanIngress, RuleClass::kArpTrap, RuleClass::kAntiSpoofing})
      known = known || prefix == idPrefix(c);
    if (!known) return std::nullopt;
    text = text.substr(dash + 1);
  }
  if (text.size() != 16) return std::nullopt;
  RuleId id = 0;
  for (char c : text) {
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else return std::nullopt;
    id = (id << 4) | static_cast<RuleId>(v);
  }
  return id;
}

MacAddr routerMacForVtep(Ipv4Addr vtep) {
  MacAddr m;
  m.bytes = {0x02, 0x00, static_cast<std::uint8_t>(vtep.value >> 24),
             static_cast<std::uint8_t>(vtep.value >> 16), static_cast<std::uint8_t>(vtep.value >> 8),
             static_cast<std::uint8_t>(vtep.value)};
  return m;
}

}  // namespace nicoffload::flowrules
