#include "nicoffload/flowrules/planner.h"

#include <algorithm>
#include <map>
#include <set>
#include <span>
#include <unordered_map>
#include <unordered_set>

#include "nicoffload/common/stable_hash.h"
#include "nicoffload/model/parse.h"

namespace nicoffload::flowrules {
namespace {

using model::HostConfig;
using model::HwProfile;
using model::Port;
using model::RemoteEndpoint;
using model::UnderlayMode;

// Sub-keys that tell the rules of one owner apart. Never renumber: they are
// part of every rule id, and ids must stay stable across releases.
enum Sub : std::uint8_t {
  kSubArpTrap = 1,
  kSubAllow = 2,
  kSubDropIpv4 = 3,
  kSubDropArp = 4,
  kSubDeliver = 5,
  kSubEgress = 6,
  kSubDecap = 7,
  kSubUplinkEntry = 8,
  kSubNdTrapMulticast = 9,   // IPv6 (gateway.ipv6 set), below
  kSubNdTrapLinkLocal = 10,
  kSubAllow6 = 11,
  kSubDropIpv6 = 12,
  kSubDeliver6 = 13,
  kSubUplinkEntry6 = 14,
};

// The `extra` of a rule per IPv6 address: a stable 32-bit digest (two
// addresses of one port share it with a chance of 1 in 2^32; plan() refuses
// a plan with two equal ids rather than install one rule for both).
std::uint32_t addressKey(const Ipv6Addr& a) {
  return static_cast<std::uint32_t>(StableHasher().bytes(a.bytes.data(), a.bytes.size()).finish());
}

const Ipv6Prefix kLinkLocalMulticast{*Ipv6Addr::parse("ff02::"), 16};  // RFC 4291 §2.7: scope 2
const Ipv6Prefix kLinkLocalUnicast{*Ipv6Addr::parse("fe80::"), 10};

// The owner id is already a stable 64-bit hash; for one owner, distinct
// (class, sub, extra) give distinct inputs, and the splitmix64 finaliser is a
// bijection, so the rules of one owner never collide.
RuleId makeId(RuleClass cls, OwnerId owner, Sub sub, std::uint32_t extra = 0) {
  std::uint64_t z = owner * 0x9e3779b97f4a7c15ULL +
                    ((std::uint64_t{static_cast<std::uint8_t>(cls)} << 40) |
                     (std::uint64_t{sub} << 32) | extra);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

FlowRule makeRule(RuleClass cls, OwnerId owner, Sub sub, std::uint32_t extra, std::uint32_t group,
                  std::uint32_t priority) {
  FlowRule r;
  r.cls = cls;
  r.owner = owner;
  r.id = makeId(cls, owner, sub, extra);
  r.attr.group = group;
  r.attr.priority = priority;
  r.attr.transfer = true;
  return r;
}

EthItem ethMatch(std::uint8_t fields, MacAddr src, std::uint16_t type) {
  EthItem e;
  e.fields = fields;
  e.src = src;
  e.ether_type = type;
  return e;
}

bool portAllowed(const std::vector<std::uint16_t>& allowed, std::uint16_t port) {
  return allowed.empty() || std::find(allowed.begin(), allowed.end(), port) != allowed.end();
}

// The profile's verdict on one rule: kNone when every item and action (and
// every UDP port limit) is supported.
PlacementReason capabilityReason(const FlowRule& r, const HwProfile& p) {
  PlacementReason reason;
  std::optional<std::uint16_t> udp_dst;
  for (const auto& item : r.pattern) {
    const ItemType t = itemType(item);
    if (!p.item(t).supported) {
      reason.code = PlacementReason::Code::kItemUnsupported;
      reason.detail = static_cast<std::uint8_t>(t);
      return reason;
    }
    if (const auto* udp = std::get_if<UdpItem>(&item); udp && (udp->fields & UdpItem::kDst))
      udp_dst = udp->dst_port;
    if (t == ItemType::kVxlan && udp_dst && !portAllowed(p.item(t).udp_dst_ports, *udp_dst)) {
      reason.code = PlacementReason::Code::kUdpPortUnsupported;
      reason.detail = static_cast<std::uint8_t>(t);
      reason.port = *udp_dst;
      return reason;
    }
  }
  for (const auto& action : r.actions) {
    const ActionType t = actionType(action);
    if (!p.action(t).supported) {
      reason.code = PlacementReason::Code::kActionUnsupported;
      reason.detail = static_cast<std::uint8_t>(t);
      return reason;
    }
    const bool outer6 = (t == ActionType::kVxlanEncap && r.encap && r.encap->ipv6()) ||
                        (t == ActionType::kVxlanDecap && r.pattern.size() > 2 &&
                         std::holds_alternative<Ipv6Item>(r.pattern[2]));
    if (outer6 && !p.action(t).ipv6_underlay) {
      reason.code = PlacementReason::Code::kIpv6UnderlayUnsupported;
      reason.detail = static_cast<std::uint8_t>(t);
      return reason;
    }
    std::optional<std::uint16_t> port;
    if (t == ActionType::kVxlanEncap && r.encap) port = r.encap->udp_dst;
    if (t == ActionType::kVxlanDecap) port = udp_dst;
    if (port && !portAllowed(p.action(t).udp_dst_ports, *port)) {
      reason.code = PlacementReason::Code::kUdpPortUnsupported;
      reason.on_action = true;
      reason.detail = static_cast<std::uint8_t>(t);
      reason.port = *port;
      return reason;
    }
  }
  return reason;
}

void placeByCapability(FlowRule& r, const HwProfile& p) {
  if (r.reason.code != PlacementReason::Code::kNone) {  // decided while building (next hop)
    r.placement = Placement::kSw;
    return;
  }
  r.reason = capabilityReason(r, p);
  r.placement = r.reason.code == PlacementReason::Code::kNone ? Placement::kHw : Placement::kSw;
}

void follow(FlowRule& r, const FlowRule& leader) {
  if (r.placement == Placement::kSw) return;
  r.placement = Placement::kSw;
  r.reason = PlacementReason{};
  r.reason.code = PlacementReason::Code::kFollows;
  r.reason.rule = leader.id;
}

bool isIpv6Rule(const FlowRule& r) {
  for (const auto& item : r.pattern) {
    if (std::holds_alternative<Ipv6Item>(item)) return true;
    if (const auto* e = std::get_if<EthItem>(&item); e && (e->fields & EthItem::kType))
      return e->ether_type == kEtherTypeIpv6;
  }
  return false;
}

// A drop must not stay in hardware when the allow/trap rule it backs went to
// software: the hardware drop would then catch the legitimate traffic first.
// The IPv4 drop follows the IPv4 allow rules, the ARP drop the ARP trap, the
// IPv6 drop the IPv6 allow rules and the ND traps.
void coupleAntiSpoofing(std::span<FlowRule> port_rules) {
  const FlowRule* sw_allow = nullptr;
  const FlowRule* sw_allow6 = nullptr;
  const FlowRule* sw_trap = nullptr;
  for (const auto& r : port_rules) {
    if (r.placement != Placement::kSw) continue;
    if (r.cls == RuleClass::kArpTrap) sw_trap = &r;
    const bool v6 = isIpv6Rule(r);
    if ((r.cls == RuleClass::kNdTrap || (r.cls == RuleClass::kAntiSpoofing && r.attr.priority == 0)) &&
        v6 && !sw_allow6)
      sw_allow6 = &r;
    if (r.cls == RuleClass::kAntiSpoofing && r.attr.priority == 0 && !v6 && !sw_allow) sw_allow = &r;
  }
  for (auto& r : port_rules) {
    if (r.cls != RuleClass::kAntiSpoofing || r.attr.priority == 0) continue;
    const auto type = std::get<EthItem>(r.pattern[1]).ether_type;
    if (type == kEtherTypeArp && sw_trap) follow(r, *sw_trap);
    if (type == kEtherTypeIpv4 && sw_allow) follow(r, *sw_allow);
    if (type == kEtherTypeIpv6 && sw_allow6) follow(r, *sw_allow6);
  }
}

struct Context {
  const HostConfig& host;
  const HwProfile& profile;
  struct Hop {
    MacAddr mac;
    std::uint8_t uplink = 0;
  };
  std::unordered_map<IpAddr, Hop> next_hop;

  Context(const HostConfig& h, const HwProfile& p) : host(h), profile(p) {
    for (const auto& nh : h.next_hops) next_hop.emplace(nh.address, Hop{nh.mac, nh.uplink});
  }
  std::optional<MacAddr> macOf(const IpAddr& nh) const {
    auto it = next_hop.find(nh);
    if (it == next_hop.end()) return std::nullopt;
    return it->second.mac;
  }
  // The uplink a next hop is on (0 when unknown: a hop without a MAC).
  std::uint8_t uplinkOf(const IpAddr& nh) const {
    auto it = next_hop.find(nh);
    return it == next_hop.end() || it->second.uplink >= host.uplinkCount() ? 0 : it->second.uplink;
  }
};

// COUNT, where the profile says the device has it (the per-port traffic
// figures read it): without, the rule goes to hardware uncounted rather than
// to software for want of a counter.
void addCount(const Context& ctx, FlowRule& r) {
  if (ctx.profile.action(ActionType::kCount).supported) r.actions.push_back(CountAction{});
}

// IPv6 rules of one port, on a host with IPv6 on (gateway.ipv6). In group 0:
// link-scoped traffic from the VM (neighbour discovery to ff02::/16 and to
// the gateway's fe80::/10) to the kernel, which answers for the gateway
// (proxy NDP) and never routes a link-local destination; the VM's /128
// sources to the FIB; every other IPv6 packet dropped. In the FIB: delivery
// to each /128. A port without IPv6 addresses gets the drop alone.
void emitPortRules6(const Context& ctx, const Port& port, OwnerId owner, PortRef vf,
                    std::vector<FlowRule>& out) {
  if (!port.addresses6.empty()) {
    for (const auto& [sub, scope] : {std::pair{kSubNdTrapMulticast, kLinkLocalMulticast},
                                     std::pair{kSubNdTrapLinkLocal, kLinkLocalUnicast}}) {
      auto r = makeRule(RuleClass::kNdTrap, owner, sub, 0, kRootGroup, 0);
      r.pattern.push_back(PortItem{vf});
      r.pattern.push_back(ethMatch(EthItem::kSrc | EthItem::kType, port.mac, kEtherTypeIpv6));
      r.pattern.push_back(Ipv6Item{Ipv6Item::Field::kDst, scope.len, scope.addr});
      r.actions.push_back(PortRepresentorAction{vf});
      addCount(ctx, r);
      out.push_back(r);
    }
  }
  for (const auto& a : port.addresses6) {  // anti-spoofing allow: right MAC and source -> FIB
    auto r = makeRule(RuleClass::kAntiSpoofing, owner, kSubAllow6, addressKey(a), kRootGroup, 0);
    r.pattern.push_back(PortItem{vf});
    r.pattern.push_back(ethMatch(EthItem::kSrc | EthItem::kType, port.mac, kEtherTypeIpv6));
    r.pattern.push_back(Ipv6Item{Ipv6Item::Field::kSrc, 128, a});
    r.actions.push_back(JumpAction{kFibGroup});
    addCount(ctx, r);
    out.push_back(r);
  }
  {
    auto r = makeRule(RuleClass::kAntiSpoofing, owner, kSubDropIpv6, 0, kRootGroup, 1);
    r.pattern.push_back(PortItem{vf});
    r.pattern.push_back(ethMatch(EthItem::kType, MacAddr{}, kEtherTypeIpv6));
    r.actions.push_back(DropAction{});
    addCount(ctx, r);
    out.push_back(r);
  }
  for (const auto& a : port.addresses6) {  // local delivery in the FIB
    auto r = makeRule(RuleClass::kLocalDelivery, owner, kSubDeliver6, addressKey(a), kFibGroup, 0);
    r.pattern.push_back(EthItem{});
    r.pattern.push_back(Ipv6Item{Ipv6Item::Field::kDst, 128, a});
    r.actions.push_back(SetMacSrcAction{ctx.host.gateway_mac});
    r.actions.push_back(SetMacDstAction{port.mac});
    r.actions.push_back(DecTtlAction{});  // the hop limit (rte_flow DEC_TTL covers both)
    r.actions.push_back(RepresentedPortAction{vf});
    addCount(ctx, r);
    out.push_back(r);
  }
}

// Rules owned by one port, in emission order; capability placement and
// anti-spoofing coupling applied.
void emitPortRules(const Context& ctx, const Port& port, std::vector<FlowRule>& out) {
  const std::size_t first = out.size();
  const OwnerId owner = portOwner(port.key);
  const PortRef vf = PortRef::vfPort(*port.vf);

  {  // ARP trap: the kernel's proxy ARP answers (no NIC rewrites ARP in hardware).
    auto r = makeRule(RuleClass::kArpTrap, owner, kSubArpTrap, 0, kRootGroup, 0);
    r.pattern.push_back(PortItem{vf});
    r.pattern.push_back(ethMatch(EthItem::kSrc | EthItem::kType, port.mac, kEtherTypeArp));
    r.actions.push_back(PortRepresentorAction{vf});
    addCount(ctx, r);
    out.push_back(r);
  }
  for (const auto a : port.addresses) {  // anti-spoofing allow: right MAC and source -> FIB
    auto r = makeRule(RuleClass::kAntiSpoofing, owner, kSubAllow, a.value, kRootGroup, 0);
    r.pattern.push_back(PortItem{vf});
    r.pattern.push_back(ethMatch(EthItem::kSrc | EthItem::kType, port.mac, kEtherTypeIpv4));
    Ipv4Item ip;
    ip.fields = Ipv4Item::kSrc;
    ip.src = a;
    r.pattern.push_back(ip);
    r.actions.push_back(JumpAction{kFibGroup});
    addCount(ctx, r);
    out.push_back(r);
  }
  for (const auto& [sub, type] : {std::pair{kSubDropIpv4, kEtherTypeIpv4}, std::pair{kSubDropArp, kEtherTypeArp}}) {
    // Anything else of that ethertype from the VF: spoofed source or MAC.
    auto r = makeRule(RuleClass::kAntiSpoofing, owner, sub, 0, kRootGroup, 1);
    r.pattern.push_back(PortItem{vf});
    r.pattern.push_back(ethMatch(EthItem::kType, MacAddr{}, type));
    r.actions.push_back(DropAction{});
    addCount(ctx, r);
    out.push_back(r);
  }
  for (const auto a : port.addresses) {  // local delivery in the FIB
    auto r = makeRule(RuleClass::kLocalDelivery, owner, kSubDeliver, a.value, kFibGroup, 0);
    r.pattern.push_back(EthItem{});
    Ipv4Item ip;
    ip.fields = Ipv4Item::kDst;
    ip.dst = a;
    r.pattern.push_back(ip);
    r.actions.push_back(SetMacSrcAction{ctx.host.gateway_mac});
    r.actions.push_back(SetMacDstAction{port.mac});
    r.actions.push_back(DecTtlAction{});
    r.actions.push_back(RepresentedPortAction{vf});
    addCount(ctx, r);
    out.push_back(r);
  }
  if (ctx.host.gateway_ipv6) emitPortRules6(ctx, port, owner, vf, out);
  for (std::size_t i = first; i < out.size(); ++i) placeByCapability(out[i], ctx.profile);
  coupleAntiSpoofing(std::span<FlowRule>(out).subspan(first));
}

// The egress rules of all remotes share one shape (items, actions, UDP
// port), so the profile's verdict is computed once, on a template.
struct RemoteTemplate {
  FlowRule rule;
  PlacementReason capability;
};
// One per family: an IPv6 remote's rule matches its /128 (ipv6 item).
struct RemoteTemplates {
  RemoteTemplate v4;
  RemoteTemplate v6;
  const RemoteTemplate& of(const IpAddr& a) const { return a.isV4() ? v4 : v6; }
};

RemoteTemplate remoteTemplate(const Context& ctx, bool ipv6) {
  const auto& host = ctx.host;
  const bool vxlan = host.underlay == UnderlayMode::kVxlan;
  RemoteTemplate t;
  auto& r = t.rule;
  r.cls = vxlan ? RuleClass::kVxlanEgress : RuleClass::kRoutedEgress;
  r.attr.group = kFibGroup;
  r.attr.transfer = true;
  r.pattern.push_back(EthItem{});
  if (ipv6) {
    r.pattern.push_back(Ipv6Item{Ipv6Item::Field::kDst, 128, {}});
  } else {
    Ipv4Item ip;
    ip.fields = Ipv4Item::kDst;
    r.pattern.push_back(ip);
  }
  r.actions.push_back(SetMacSrcAction{vxlan ? routerMacForVtep(*host.vtep) : host.uplink_mac});
  r.actions.push_back(SetMacDstAction{});
  r.actions.push_back(DecTtlAction{});
  if (vxlan) {
    r.actions.push_back(VxlanEncapAction{});
    VxlanEncap encap;
    encap.eth_src = host.uplink_mac;
    encap.src = *host.vtep;
    encap.udp_dst = host.vxlan_udp_port;
    r.encap = encap;
  }
  r.actions.push_back(RepresentedPortAction{PortRef::uplink()});
  addCount(ctx, r);
  t.capability = capabilityReason(r, ctx.profile);
  return t;
}

RemoteTemplates remoteTemplates(const Context& ctx) {
  return {remoteTemplate(ctx, false), remoteTemplate(ctx, true)};
}

void emitRemoteRule(const Context& ctx, const RemoteTemplates& templates,
                    const RemoteEndpoint& remote, OwnerId owner, std::vector<FlowRule>& out) {
  const auto& host = ctx.host;
  const bool vxlan = host.underlay == UnderlayMode::kVxlan;
  const RemoteTemplate& tmpl = templates.of(remote.address);
  FlowRule& r = out.emplace_back(tmpl.rule);
  r.owner = owner;
  r.id = makeId(r.cls, owner, kSubEgress, 0);
  if (remote.address.isV4())
    r.pattern.at<Ipv4Item>(1).dst = remote.address.v4();
  else
    r.pattern.at<Ipv6Item>(1).addr = remote.address.v6();

  // The underlay neighbour the packet goes to, and its MAC if configured.
  IpAddr hop;
  std::optional<MacAddr> hop_mac;
  if (vxlan) {
    hop = *remote.vtep;
    hop_mac = ctx.macOf(hop);
    if (!hop_mac && host.default_next_hop) {
      hop = *host.default_next_hop;
      hop_mac = ctx.macOf(hop);
    }
    r.actions.at<SetMacDstAction>(1).mac = routerMacForVtep(*remote.vtep);
    auto& encap = *r.encap;
    encap.eth_dst = hop_mac.value_or(MacAddr{});
    encap.dst = *remote.vtep;
    encap.udp_src = static_cast<std::uint16_t>(49152 + (owner >> 7) % 16384);  // stable, per destination
    encap.vni = remote.vni ? *remote.vni : *host.default_vni;
  } else {
    hop = remote.next_hop ? *remote.next_hop : *host.default_next_hop;
    hop_mac = ctx.macOf(hop);
    r.actions.at<SetMacDstAction>(1).mac = hop_mac.value_or(MacAddr{});
  }
  // Two uplinks: out of the one the next hop is on, from its MAC.
  const std::uint8_t uplink = vxlan ? 0 : ctx.uplinkOf(hop);
  if (uplink != 0) {
    r.actions.at<SetMacSrcAction>(0).mac = host.uplinkMac(uplink);
    r.actions.at<RepresentedPortAction>(3).port = PortRef::uplink(uplink);  // routed: 4th
  }
  if (tmpl.capability.code != PlacementReason::Code::kNone) {
    r.reason = tmpl.capability;
  } else if (!hop_mac) {
    r.reason.code = PlacementReason::Code::kNextHopUnresolved;
    r.reason.address = hop;
  } else if (uplink != 0 && !ctx.profile.multiport_eswitch) {
    r.reason.code = PlacementReason::Code::kUplinkOtherEswitch;
    r.reason.detail = uplink;
    r.reason.address = hop;
  }
  r.placement = r.reason.code == PlacementReason::Code::kNone ? Placement::kHw : Placement::kSw;
}

FlowRule uplinkEntryRule(const Context& ctx, bool ipv6 = false, std::uint8_t uplink = 0) {
  auto r = makeRule(RuleClass::kLocalDelivery, hostOwner(),
                    ipv6 ? kSubUplinkEntry6 : kSubUplinkEntry, uplink, kRootGroup, 1);
  r.pattern.push_back(PortItem{PortRef::uplink(uplink)});
  r.pattern.push_back(ethMatch(EthItem::kType, MacAddr{}, ipv6 ? kEtherTypeIpv6 : kEtherTypeIpv4));
  r.actions.push_back(JumpAction{kFibGroup});
  addCount(ctx, r);
  placeByCapability(r, ctx.profile);
  return r;
}

// The routed uplinks' entry rules: the first uplink's, and the second's
// where one eswitch spans both PFs (else the second PF's eswitch is not
// ours: its packets reach the VMs through the kernel).
void appendUplinkEntryRules(const Context& ctx, std::vector<FlowRule>& out) {
  const std::uint8_t uplinks = ctx.host.uplink2 && ctx.profile.multiport_eswitch ? 2 : 1;
  for (std::uint8_t u = 0; u < uplinks; ++u) {
    out.push_back(uplinkEntryRule(ctx, false, u));
    if (ctx.host.gateway_ipv6) out.push_back(uplinkEntryRule(ctx, true, u));
  }
}

FlowRule decapRule(const Context& ctx, std::uint32_t vni) {
  auto r = makeRule(RuleClass::kVxlanIngress, vniOwner(vni), kSubDecap, 0, kRootGroup, 0);
  r.pattern.push_back(PortItem{PortRef::uplink()});
  r.pattern.push_back(EthItem{});
  const IpAddr& vtep = *ctx.host.vtep;
  if (vtep.isV4()) {
    Ipv4Item ip;
    ip.fields = Ipv4Item::kDst;
    ip.dst = vtep.v4();
    r.pattern.push_back(ip);
  } else {
    r.pattern.push_back(Ipv6Item{Ipv6Item::Field::kDst, 128, vtep.v6()});
  }
  UdpItem udp;
  udp.fields = UdpItem::kDst;
  udp.dst_port = ctx.host.vxlan_udp_port;
  r.pattern.push_back(udp);
  r.pattern.push_back(VxlanItem{vni});
  r.actions.push_back(VxlanDecapAction{});
  r.actions.push_back(JumpAction{kFibGroup});
  addCount(ctx, r);
  placeByCapability(r, ctx.profile);
  return r;
}

int rank(RuleClass c) {
  switch (c) {
    case RuleClass::kLocalDelivery:
    case RuleClass::kVxlanIngress: return 0;
    case RuleClass::kArpTrap:
    case RuleClass::kNdTrap:
    case RuleClass::kAntiSpoofing: return 1;
    default: return 2;
  }
}

// Rules beyond a group's hardware capacity go to software, lowest rank last.
void applyCapacity(std::vector<FlowRule>& rules, const HwProfile& p) {
  std::map<std::uint32_t, std::vector<std::size_t>> hw_by_group;
  for (std::size_t i = 0; i < rules.size(); ++i)
    if (rules[i].placement == Placement::kHw) hw_by_group[rules[i].attr.group].push_back(i);
  for (auto& [group, idx] : hw_by_group) {
    const std::uint32_t cap = group >= p.max_groups ? 0 : p.groupCapacity(group);
    if (idx.size() <= cap) continue;
    std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
      const int ra = rank(rules[a].cls), rb = rank(rules[b].cls);
      return ra != rb ? ra < rb : rules[a].id < rules[b].id;
    });
    for (std::size_t k = cap; k < idx.size(); ++k) {
      auto& r = rules[idx[k]];
      r.placement = Placement::kSw;
      r.reason = PlacementReason{};
      r.reason.code = PlacementReason::Code::kTableFull;
      r.reason.group = group;
      r.reason.capacity = cap;
    }
  }
}

// LSD radix sort of (64-bit key, index) pairs on the key bits from `low_bit`
// up: passes of 16 bits, stable; a pass whose digit is the same for every
// element is skipped (e.g. the routing table number of all routes).
using KeyIndex = std::pair<std::uint64_t, std::uint32_t>;
void radixSort(std::vector<KeyIndex>& v, int low_bit = 0) {
  std::vector<KeyIndex> tmp(v.size());
  std::vector<std::uint32_t> count(1 << 16);
  for (int shift = low_bit; shift < 64; shift += 16) {
    std::fill(count.begin(), count.end(), 0);
    for (const auto& e : v) ++count[(e.first >> shift) & 0xFFFF];
    if (count[(v.empty() ? 0 : v[0].first >> shift) & 0xFFFF] == v.size()) continue;
    std::uint32_t sum = 0;
    for (auto& c : count) {
      const auto n = c;
      c = sum;
      sum += n;
    }
    for (const auto& e : v) tmp[count[(e.first >> shift) & 0xFFFF]++] = e;
    v.swap(tmp);
  }
}

// Sorts runs of equal (key >> low_bit) by the full key and then `less`.
template <class Less>
void fixRuns(std::vector<KeyIndex>& v, int low_bit, Less less) {
  for (std::size_t i = 0; i < v.size();) {
    std::size_t j = i + 1;
    while (j < v.size() && (v[j].first >> low_bit) == (v[i].first >> low_bit)) ++j;
    if (j - i > 1)
      std::sort(v.begin() + static_cast<std::ptrdiff_t>(i), v.begin() + static_cast<std::ptrdiff_t>(j),
                [&](const KeyIndex& a, const KeyIndex& b) {
                  return a.first != b.first ? a.first < b.first : less(a.second, b.second);
                });
    i = j;
  }
}

// Reorders items in place so that items[k] becomes the old items[order[k].second]
// (cycle following: no second copy of a large vector).
template <class T>
void permute(std::vector<T>& items, std::vector<KeyIndex>& order) {
  for (std::size_t k = 0; k < order.size(); ++k) {
    if (order[k].second == k || order[k].second == UINT32_MAX) continue;
    T held = std::move(items[k]);
    std::size_t dst = k;
    while (true) {
      const std::size_t src = order[dst].second;
      order[dst].second = UINT32_MAX;  // done
      if (src == k) {
        items[dst] = std::move(held);
        break;
      }
      items[dst] = std::move(items[src]);
      dst = src;
    }
  }
}

// Ids are uniform hashes: two radix passes on the top 32 bits order them
// but for (rare) equal top halves, which fixRuns settles.
void sortById(std::vector<FlowRule>& rules) {
  std::vector<KeyIndex> keys;
  keys.reserve(rules.size());
  for (std::uint32_t i = 0; i < rules.size(); ++i) keys.emplace_back(rules[i].id, i);
  radixSort(keys, 32);
  fixRuns(keys, 32, [](std::uint32_t, std::uint32_t) { return false; });
  permute(rules, keys);
}

// Routes by (table, dst): radix on (table, address), then prefix length.
void sortRoutes(std::vector<RouteEntry>& routes) {
  std::vector<KeyIndex> keys;
  keys.reserve(routes.size());
  for (std::uint32_t i = 0; i < routes.size(); ++i)
    keys.emplace_back((std::uint64_t{routes[i].table} << 32) | routes[i].dst.addr.value, i);
  radixSort(keys);
  fixRuns(keys, 0, [&](std::uint32_t a, std::uint32_t b) { return routes[a].dst.len < routes[b].dst.len; });
  permute(routes, keys);
}

template <class T>
void sortByKey(std::vector<T>& v) {
  std::sort(v.begin(), v.end(), [](const T& a, const T& b) { return a.key() < b.key(); });
}

std::uint32_t portVni(const HostConfig& host, const Port& port) {
  return port.vni ? *port.vni : host.default_vni.value_or(0);
}

void emitHostObjects(const HostConfig& host, SoftwarePathState& sw) {
  const OwnerId host_owner = hostOwner();
  sw.sysctls.push_back({"ipv4/ip_forward", "1", host_owner});
  // The gateway address is local, so the kernel answers ARP for it on every
  // representor (arp_ignore=0); proxy_arp answers for everything it routes.
  sw.addresses.push_back({"lo", Ipv4Prefix{host.gateway_ipv4, 32}, host_owner});
  // IPv6 on: forwarding for every device (it also stops the host from
  // taking router advertisements: docs/config.md, gateway.ipv6).
  if (host.gateway_ipv6) sw.sysctls.push_back({"ipv6/conf/all/forwarding", "1", host_owner});
}

void emitPortObjects(const HostConfig& host, const Port& port, SoftwarePathState& sw) {
  const OwnerId owner = portOwner(port.key);
  const std::string rep = port.representorName();
  const std::string conf = "ipv4/conf/" + rep + "/";
  sw.sysctls.push_back({conf + "forwarding", "1", owner});
  sw.sysctls.push_back({conf + "proxy_arp", "1", owner});
  sw.sysctls.push_back({conf + "rp_filter", "1", owner});  // strict (RFC 3704): anti-spoofing
  sw.sysctls.push_back({"ipv4/neigh/" + rep + "/proxy_delay", "0", owner});
  sw.links.push_back({rep, host.gateway_mac, true, owner});
  for (const auto a : port.addresses) {
    sw.routes.push_back({Ipv4Prefix{a, 32}, rep, std::nullopt, false, host.route_table,
                         host.route_protocol, owner});
    sw.neighbours.push_back({rep, a, port.mac, owner});
  }
  // IPv6: the gateway's link-local address answered by proxy NDP on the
  // representor (no delay), a /128 route and a permanent neighbour per
  // address. Nothing for a port without IPv6 addresses.
  if (!host.gateway_ipv6 || port.addresses6.empty()) return;
  sw.sysctls.push_back({"ipv6/conf/" + rep + "/proxy_ndp", "1", owner});
  sw.sysctls.push_back({"ipv6/neigh/" + rep + "/proxy_delay", "0", owner});
  sw.neighbours6.push_back({rep, *host.gateway_ipv6, MacAddr{}, true, owner});
  for (const auto& a : port.addresses6) {
    sw.routes6.push_back({Ipv6Prefix{a, 128}, rep, host.route_table, host.route_protocol, owner,
                          std::nullopt, false});
    sw.neighbours6.push_back({rep, a, port.mac, false, owner});
    sw.rules6.push_back({rep, kRule6AllowPriority, Ipv6Prefix{a, 128}, std::nullopt, false,
                         host.route_table, host.route_protocol, owner});
  }
  // The source check: link-scoped destinations (unicast neighbour discovery
  // to the gateway) go on, anything else not from the VM's /128s is dropped.
  sw.rules6.push_back({rep, kRule6AllowPriority, std::nullopt, kLinkLocalUnicast, false,
                       host.route_table, host.route_protocol, owner});
  sw.rules6.push_back({rep, kRule6BlackholePriority, std::nullopt, std::nullopt, true, 0,
                       host.route_protocol, owner});
}

std::uint32_t remoteVni(const HostConfig& host, const RemoteEndpoint& r) {
  return r.vni ? *r.vni : host.default_vni.value_or(0);
}

// The netdev of the uplink next hop `hop` is on (underlay.next_hops[].uplink;
// a hop not listed is on the first). Next hops are few (the ToRs).
const std::string& hopDevice(const HostConfig& host, const IpAddr& hop) {
  for (const auto& nh : host.next_hops)
    if (nh.address == hop && nh.uplink < host.uplinkCount()) return host.uplinkNetdev(nh.uplink);
  return host.uplink_netdev;
}

// The route of one remote /32: via its next hop on the uplink it is on
// (routed), or via its VTEP, onlink, on the VXLAN device of its VNI.
void emitRemoteObjects(const HostConfig& host, const RemoteEndpoint& r, OwnerId owner,
                       SoftwarePathState& sw) {
  // A remote learned from the kernel's routing table has its route there
  // already (the routing daemon's): a route of ours would shadow or fight it.
  if (r.learned()) return;
  if (!r.address.isV4()) {
    // A /128: the kernel takes only an IPv6 gateway, so on VXLAN the VTEP
    // stands behind a link-local one (vtepGateway6) that a neighbour entry
    // of the VTEP's (emitVtepObjects) resolves to its router MAC.
    Route6Entry route{Ipv6Prefix{r.address.v6(), 128},
                      host.uplink_netdev,
                      host.route_table,
                      host.route_protocol,
                      owner,
                      std::nullopt,
                      false};
    if (host.underlay == UnderlayMode::kRouted) {
      route.via = r.next_hop->v6();  // checkRemote: an IPv6 remote names its IPv6 next hop
      route.dev = hopDevice(host, *r.next_hop);
    } else {
      route.dev = vxlanDeviceName(remoteVni(host, r));
      route.via = vtepGateway6(*r.vtep);
      route.onlink = true;
    }
    sw.routes6.push_back(std::move(route));
    return;
  }
  if (host.underlay == UnderlayMode::kRouted) {
    const Ipv4Addr via = r.next_hop ? r.next_hop->v4() : host.default_next_hop->v4();
    sw.routes.push_back({Ipv4Prefix{r.address.v4(), 32}, hopDevice(host, via), via, false,
                         host.route_table, host.route_protocol, owner});
    return;
  }
  // Behind an IPv4 VTEP: via the VTEP itself, onlink. Behind an IPv6 one:
  // via its link-local stand-in (an IPv6 gateway, RTA_VIA), which needs no
  // onlink.
  const bool vtep4 = r.vtep->isV4();
  sw.routes.push_back({Ipv4Prefix{r.address.v4(), 32}, vxlanDeviceName(remoteVni(host, r)),
                       vtep4 ? *r.vtep : IpAddr(vtepGateway6(*r.vtep)), vtep4, host.route_table,
                       host.route_protocol, owner});
}

void emitVniObjects(const HostConfig& host, std::uint32_t vni, SoftwarePathState& sw) {
  VxlanDevice dev;
  dev.name = vxlanDeviceName(vni);
  dev.vni = vni;
  dev.local = *host.vtep;
  dev.dst_port = host.vxlan_udp_port;
  dev.mac = routerMacForVtep(*host.vtep);
  dev.underlay_dev = host.uplink_netdev;
  dev.owner = vniOwner(vni);
  sw.vxlan_devices.push_back(dev);
}

// Per remote VTEP (and VNI): an FDB entry for its router MAC, and the
// neighbour the routes through it name: an IPv4 VTEP itself; with IPv6 on,
// or behind an IPv6 VTEP, its link-local stand-in (vtepGateway6).
void emitVtepObjects(const HostConfig& host, std::uint32_t vni, const IpAddr& vtep,
                     SoftwarePathState& sw) {
  const std::string dev = vxlanDeviceName(vni);
  // An IPv4 VTEP's owner is what it was before IPv6 VTEPs.
  const OwnerId owner = vtep.isV4()
                            ? StableHasher().str("vtep").u32(vni).u32(vtep.v4().value).finish()
                            : StableHasher().str("vtep6").u32(vni).str(vtep.str()).finish();
  const MacAddr mac = routerMacForVtep(vtep);
  sw.fdb.push_back({dev, mac, vtep, owner});
  if (vtep.isV4()) sw.neighbours.push_back({dev, vtep.v4(), mac, owner});
  if (host.gateway_ipv6 || !vtep.isV4())
    sw.neighbours6.push_back({dev, vtepGateway6(vtep), mac, false, owner});
}

struct VniVtepHash {
  std::size_t operator()(const std::pair<std::uint32_t, IpAddr>& k) const noexcept {
    return std::hash<IpAddr>{}(k.second) * 31 + k.first;
  }
};

void emitSoftwarePath(const model::Intent& intent, const std::vector<OwnerId>& remote_owners,
                      SoftwarePathState& sw) {
  const auto& host = intent.host;
  std::size_t addresses = 0;
  for (const auto& port : intent.ports) addresses += port.addresses.size();
  sw.routes.reserve(addresses + intent.remotes.size());
  sw.neighbours.reserve(addresses);
  sw.sysctls.reserve(1 + 4 * intent.ports.size());
  emitHostObjects(host, sw);
  for (const auto& port : intent.ports) emitPortObjects(host, port, sw);
  for (std::size_t i = 0; i < intent.remotes.size(); ++i)
    emitRemoteObjects(host, intent.remotes[i], remote_owners[i], sw);
  if (host.underlay == UnderlayMode::kRouted) return;

  // VXLAN: one device per VNI in use (by a port or a remote), one FDB entry
  // and neighbour per (VNI, remote VTEP).
  std::set<std::uint32_t> vnis;
  for (const auto& port : intent.ports) vnis.insert(portVni(host, port));
  // (vni, vtep), hashed first: 100 k remotes share a few hundred.
  std::unordered_set<std::pair<std::uint32_t, IpAddr>, VniVtepHash> vtep_keys;
  for (const auto& r : intent.remotes) {
    const std::uint32_t vni = remoteVni(host, r);
    vnis.insert(vni);
    vtep_keys.emplace(vni, *r.vtep);
  }
  std::set<std::pair<std::uint32_t, IpAddr>> vteps(vtep_keys.begin(), vtep_keys.end());
  for (const auto vni : vnis) emitVniObjects(host, vni, sw);
  for (const auto& [vni, vtep] : vteps) emitVtepObjects(host, vni, vtep, sw);
}

Status checkHostAgainstProfile(const HostConfig& host, const HwProfile& profile) {
  if (host.vf_count > profile.max_vfs)
    return makeError(ErrorCode::kUnsupported, "uplink.vf_count", std::to_string(host.vf_count),
                     std::to_string(host.vf_count) + " VFs requested, but profile " + profile.name +
                         " allows at most " + std::to_string(profile.max_vfs) + " per PF (" +
                         profile.max_vfs_source + ")");
  if (std::find(profile.eswitch_modes.begin(), profile.eswitch_modes.end(),
                model::EswitchMode::kSwitchdev) == profile.eswitch_modes.end())
    return makeError(ErrorCode::kUnsupported, "hw_profile", profile.name,
                     "profile " + profile.name + " has no switchdev eswitch mode; nicoffload needs it");
  return Status::success();
}

Status checkPortForPlan(const HostConfig& host, const HwProfile& profile, const Port& port,
                        const std::string& field) {
  if (!port.vf)
    return makeError(ErrorCode::kMissingField, field + ".vf", "",
                     "port " + port.key.str() + " has no VF assigned; name one (0.." +
                         std::to_string(host.vf_count ? host.vf_count - 1 : 0) + ")");
  return vdpa::checkSupport(profile, vdpa::effectiveKind(host, port), field + ".vdpa");
}

}  // namespace

Ipv6Addr vtepGateway6(const IpAddr& vtep) {
  Ipv6Addr a;
  a.bytes[0] = 0xFE;
  a.bytes[1] = 0x80;
  for (std::size_t i = 12; i < 16; ++i)
    a.bytes[i] = vtep.v6().bytes[i];  // v4-mapped: the IPv4 address
  return a;
}

std::string vxlanDeviceName(std::uint32_t vni) { return std::string(kVxlanDevicePrefix) + std::to_string(vni); }

OwnerId portOwner(const model::PortKey& key) {
  return StableHasher().str("port").str(key.vm).u16(key.nic).finish();
}
OwnerId remoteOwner(const IpAddr& address) {
  // An IPv4 remote's owner is what it was before IPv6 (rule ids on a NIC
  // and in journals stay valid across the upgrade).
  static const StableHasher kSeed = StableHasher().str("remote");  // same value, prefix hashed once
  static const StableHasher kSeed6 = StableHasher().str("remote6");
  if (address.isV4()) return StableHasher(kSeed).u32(address.v4().value).finish();
  return StableHasher(kSeed6).bytes(address.v6().bytes.data(), address.v6().bytes.size()).finish();
}
OwnerId vniOwner(std::uint32_t vni) { return StableHasher().str("vni").u32(vni).finish(); }
OwnerId hostOwner() { return StableHasher().str("host").finish(); }

Result<DesiredState> plan(const model::Intent& intent, const HwProfile& profile,
                          const PlanOptions& options) {
  DesiredState out;
  if (auto s = planInto(intent, profile, options, out); !s) return s.error();
  return out;
}

namespace {
Status planIntoUnchecked(const model::Intent& intent, const HwProfile& profile,
                         const PlanOptions& options, DesiredState& out);
}  // namespace

Status planInto(const model::Intent& intent, const HwProfile& profile, const PlanOptions& options,
                DesiredState& out) {
  // A rule kind that outgrew FlowRule's capacities (InlineVec::push_back
  // throws) is a bug, reported as one instead of crossing the planner's edge.
  try {
    return planIntoUnchecked(intent, profile, options, out);
  } catch (const std::length_error& e) {
    out.rules.clear();
    return makeError(ErrorCode::kInternal, "plan", "", e.what());
  }
}

namespace {
Status planIntoUnchecked(const model::Intent& intent, const HwProfile& profile,
                         const PlanOptions& options, DesiredState& out) {
  if (!options.skip_validation)
    if (auto s = model::validateIntent(intent); !s) return s.error();
  if (auto s = checkHostAgainstProfile(intent.host, profile); !s) return s.error();
  for (std::size_t i = 0; i < intent.ports.size(); ++i)
    if (auto s = checkPortForPlan(intent.host, profile, intent.ports[i],
                                  "ports[" + std::to_string(i) + "]");
        !s)
      return s.error();

  const Context ctx(intent.host, profile);
  out.rules.clear();
  out.sw.sysctls.clear();
  out.sw.links.clear();
  out.sw.addresses.clear();
  out.sw.vxlan_devices.clear();
  out.sw.fdb.clear();
  out.sw.neighbours.clear();
  out.sw.routes.clear();
  out.sw.neighbours6.clear();
  out.sw.routes6.clear();
  out.sw.rules6.clear();
  out.vdpa_devices.clear();
  out.vfs.clear();
  out.counts = {};
  auto& rules = out.rules;
  std::size_t estimate = intent.remotes.size() + 2;
  for (const auto& p : intent.ports) estimate += 4 + 2 * p.addresses.size() + 2 * p.addresses6.size();
  rules.reserve(estimate);

  std::map<std::uint32_t, std::vector<std::size_t>> delivery_by_vni;  // VNI -> delivery rule idx
  for (const auto& port : intent.ports) {
    const std::size_t first = rules.size();
    emitPortRules(ctx, port, rules);
    if (intent.host.underlay == UnderlayMode::kVxlan) {
      auto& list = delivery_by_vni[portVni(intent.host, port)];
      for (std::size_t i = first; i < rules.size(); ++i)
        if (rules[i].cls == RuleClass::kLocalDelivery) list.push_back(i);
    }
  }
  std::vector<OwnerId> remote_owners;
  remote_owners.reserve(intent.remotes.size());
  for (const auto& remote : intent.remotes) remote_owners.push_back(remoteOwner(remote.address));
  const RemoteTemplates remote_templates = remoteTemplates(ctx);
  for (std::size_t i = 0; i < intent.remotes.size(); ++i)
    emitRemoteRule(ctx, remote_templates, intent.remotes[i], remote_owners[i], rules);
  std::map<std::uint32_t, std::size_t> decap_idx;
  if (intent.host.underlay == UnderlayMode::kRouted) {
    appendUplinkEntryRules(ctx, rules);
  } else {
    for (const auto& [vni, list] : delivery_by_vni) {
      decap_idx[vni] = rules.size();
      rules.push_back(decapRule(ctx, vni));
    }
  }

  applyCapacity(rules, profile);

  // Capacity may have moved allow/trap rules to software: re-couple the drops
  // of the ports concerned (rules of a port are contiguous).
  for (std::size_t i = 0; i < rules.size();) {
    std::size_t j = i + 1;
    while (j < rules.size() && rules[j].owner == rules[i].owner) ++j;
    if (rules[i].cls == RuleClass::kArpTrap)
      coupleAntiSpoofing(std::span<FlowRule>(rules).subspan(i, j - i));
    i = j;
  }
  // A decapsulated packet whose delivery rule is in software would miss in
  // the FIB and reach the uplink representor without its VXLAN header: the
  // kernel could not deliver it. The FIB (group 1) is shared by every VNI, so
  // a packet of any VNI can reach any local delivery rule: one delivery rule
  // in software sends every decap to software (found by the simulated NIC's
  // differential test: VNI 100 traffic to a VNI 200 VM whose delivery rule
  // was beyond the table).
  const FlowRule* sw_delivery = nullptr;
  for (const auto& [vni, list] : delivery_by_vni)
    for (const auto d : list)
      if (!sw_delivery && rules[d].placement == Placement::kSw) sw_delivery = &rules[d];
  if (sw_delivery)
    for (const auto& [vni, idx] : decap_idx) follow(rules[idx], *sw_delivery);

  sortById(rules);
  for (std::size_t i = 1; i < rules.size(); ++i)
    if (rules[i].id == rules[i - 1].id)
      return makeError(ErrorCode::kInternal, formatRuleId(rules[i].cls, rules[i].id), "",
                       "two rules got the same id (hash collision); please report");
  for (const auto& r : rules) {
    if (r.placement == Placement::kHw) {
      ++out.counts.hw;
    } else {
      ++out.counts.sw;
      ++out.counts.sw_by_reason[static_cast<std::size_t>(r.reason.code)];
    }
  }

  if (intent.host.software_path == model::SoftwarePathKind::kKernel) {
    emitSoftwarePath(intent, remote_owners, out.sw);
    sortByKey(out.sw.sysctls);
    sortByKey(out.sw.links);
    sortByKey(out.sw.addresses);
    sortByKey(out.sw.vxlan_devices);
    sortByKey(out.sw.fdb);
    sortByKey(out.sw.neighbours);
    sortRoutes(out.sw.routes);
    sortByKey(out.sw.neighbours6);
    sortByKey(out.sw.routes6);
    sortByKey(out.sw.rules6);
  }

  planDevices(intent, out);
  return Status::success();
}
}  // namespace

std::optional<vdpa::VdpaDeviceSpec> planVdpaDevice(const HostConfig& host, const Port& port) {
  const auto kind = vdpa::effectiveKind(host, port);
  if (kind == model::VdpaKind::kNone) return std::nullopt;
  return vdpa::VdpaDeviceSpec{vdpa::deviceName(port.key), port.key, kind, *port.vf, port.mac,
                              port.mtu, port.queues};
}

void planDevices(const model::Intent& intent, DesiredState& out) {
  out.vfs.clear();
  out.vdpa_devices.clear();
  for (const auto& port : intent.ports) {
    out.vfs.push_back({*port.vf, port.key, port.mac});
    if (auto spec = planVdpaDevice(intent.host, port)) out.vdpa_devices.push_back(std::move(*spec));
  }
  std::sort(out.vfs.begin(), out.vfs.end(),
            [](const auto& a, const auto& b) { return a.vf < b.vf; });
  std::sort(out.vdpa_devices.begin(), out.vdpa_devices.end(),
            [](const auto& a, const auto& b) { return a.port < b.port; });
}

Result<std::vector<FlowRule>> planPortRules(const HostConfig& host, const HwProfile& profile,
                                            const Port& port) {
  if (auto s = checkPortForPlan(host, profile, port, "port"); !s) return s.error();
  const Context ctx(host, profile);
  std::vector<FlowRule> rules;
  emitPortRules(ctx, port, rules);
  std::sort(rules.begin(), rules.end(),
            [](const FlowRule& a, const FlowRule& b) { return a.id < b.id; });
  return rules;
}

struct OwnerPlanner::Impl {
  HostConfig host;
  HwProfile profile;
  Context ctx;
  RemoteTemplates remote_templates;
  Impl(HostConfig h, HwProfile p)
      : host(std::move(h)),
        profile(std::move(p)),
        ctx(host, profile),
        remote_templates(remoteTemplates(ctx)) {}
};

OwnerPlanner::OwnerPlanner(HostConfig host, HwProfile profile)
    : impl_(std::make_unique<Impl>(std::move(host), std::move(profile))) {}
OwnerPlanner::~OwnerPlanner() = default;

const HostConfig& OwnerPlanner::host() const { return impl_->host; }
const HwProfile& OwnerPlanner::profile() const { return impl_->profile; }

Result<std::vector<FlowRule>> OwnerPlanner::portRules(const Port& port) const {
  if (auto s = checkPortForPlan(impl_->host, impl_->profile, port, "port"); !s) return s.error();
  std::vector<FlowRule> rules;
  emitPortRules(impl_->ctx, port, rules);
  std::sort(rules.begin(), rules.end(),
            [](const FlowRule& a, const FlowRule& b) { return a.id < b.id; });
  return rules;
}

FlowRule OwnerPlanner::remoteRule(const RemoteEndpoint& remote) const {
  std::vector<FlowRule> out;
  emitRemoteRule(impl_->ctx, impl_->remote_templates, remote, remoteOwner(remote.address), out);
  return std::move(out.front());
}

FlowRule OwnerPlanner::decapRule(std::uint32_t vni) const {
  return flowrules::decapRule(impl_->ctx, vni);
}
FlowRule OwnerPlanner::uplinkEntryRule() const { return flowrules::uplinkEntryRule(impl_->ctx); }

std::vector<FlowRule> OwnerPlanner::hostRules(std::span<const std::uint32_t> port_vnis) const {
  std::vector<FlowRule> out;
  if (impl_->host.underlay == UnderlayMode::kRouted) {
    appendUplinkEntryRules(impl_->ctx, out);
  } else {
    for (const auto vni : port_vnis) out.push_back(decapRule(vni));
  }
  return out;
}

std::uint32_t OwnerPlanner::vniOf(const Port& port) const { return portVni(impl_->host, port); }
std::uint32_t OwnerPlanner::vniOf(const RemoteEndpoint& remote) const {
  return remoteVni(impl_->host, remote);
}

void OwnerPlanner::hostObjects(SoftwarePathState& out) const { emitHostObjects(impl_->host, out); }
void OwnerPlanner::portObjects(const Port& port, SoftwarePathState& out) const {
  emitPortObjects(impl_->host, port, out);
}
void OwnerPlanner::remoteObjects(const RemoteEndpoint& remote, SoftwarePathState& out) const {
  emitRemoteObjects(impl_->host, remote, remoteOwner(remote.address), out);
}
void OwnerPlanner::vniObjects(std::uint32_t vni, SoftwarePathState& out) const {
  emitVniObjects(impl_->host, vni, out);
}
void OwnerPlanner::vtepObjects(std::uint32_t vni, const IpAddr& vtep,
                               SoftwarePathState& out) const {
  emitVtepObjects(impl_->host, vni, vtep, out);
}

std::string describeReason(const PlacementReason& reason, const HwProfile& p) {
  using Code = PlacementReason::Code;
  switch (reason.code) {
    case Code::kNone:
      return "profile " + p.name + " supports every item and action of this rule";
    case Code::kItemUnsupported: {
      const auto t = static_cast<ItemType>(reason.detail);
      return "profile " + p.name + " cannot match item " + std::string(model::itemName(t)) + " (" +
             p.item(t).source + ")";
    }
    case Code::kActionUnsupported: {
      const auto t = static_cast<ActionType>(reason.detail);
      return "profile " + p.name + " has no action " + std::string(model::actionName(t)) + " (" +
             p.action(t).source + ")";
    }
    case Code::kUdpPortUnsupported: {
      const auto& cap = reason.on_action ? p.action(static_cast<ActionType>(reason.detail))
                                         : p.item(static_cast<ItemType>(reason.detail));
      const std::string name(reason.on_action
                                 ? model::actionName(static_cast<ActionType>(reason.detail))
                                 : model::itemName(static_cast<ItemType>(reason.detail)));
      std::string ports;
      for (auto port : cap.udp_dst_ports) ports += (ports.empty() ? "" : ", ") + std::to_string(port);
      return "profile " + p.name + ": " + name + " only on UDP port " + ports + ", rule needs " +
             std::to_string(reason.port) + " (" + cap.source + ")";
    }
    case Code::kNextHopUnresolved:
      return "no MAC known for underlay next hop " + reason.address.str() +
             " (unresolved in the kernel's neighbour table, and not in underlay.next_hops); "
             "the kernel path carries it until it resolves";
    case Code::kTableFull:
      return "hardware table full: group " + std::to_string(reason.group) + " holds at most " +
             std::to_string(reason.capacity) + " rules on " + p.name + " (" + p.tables_source + ")";
    case Code::kFollows:
      return "follows rule " + [&] {
        char buf[17];
        std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(reason.rule));
        return std::string(buf);
      }() + ", which is in software: keeping this one in hardware would shadow or strand it";
    case Code::kUplinkOtherEswitch:
      return "next hop " + reason.address.str() + " is on uplink " + std::to_string(reason.detail) +
             ", a PF with an eswitch of its own: profile " + p.name +
             " has no multiport eswitch, so a VF's rule cannot send out of it (" +
             (p.multiport_source.empty() ? std::string("no eswitch.multiport claim")
                                         : p.multiport_source) +
             "); the kernel path routes it";
    case Code::kIpv6UnderlayUnsupported: {
      const auto t = static_cast<ActionType>(reason.detail);
      const auto& cap = p.action(t);
      return "the VXLAN underlay is IPv6 (underlay.vtep) and profile " + p.name +
             " does not claim " + std::string(model::actionName(t)) + " with IPv6 outer headers (" +
             (cap.ipv6_underlay_source.empty() ? std::string("no ipv6_underlay claim")
                                               : cap.ipv6_underlay_source) +
             "); the kernel path carries it";
    }
    case Code::kDeviceRefused:  // detail = the ErrorCode of the refusal (HwApplier)
      return "the device refused the rule at install time (" +
             std::string(reason.detail <= static_cast<std::uint8_t>(ErrorCode::kInternal)
                             ? errorInfo(static_cast<ErrorCode>(reason.detail)).name
                             : "unknown") +
             "); the software path carries it";
  }
  return "?";
}

std::string explainRule(const FlowRule& rule, const HwProfile& profile) {
  std::string out = formatRuleId(rule.cls, rule.id) + ": " + toString(rule.cls) + " rule in group " +
                    std::to_string(rule.attr.group) + ", priority " +
                    std::to_string(rule.attr.priority) + ", placed " + toString(rule.placement) +
                    ": " + describeReason(rule.reason, profile);
  if (rule.cls == RuleClass::kNdTrap)
    out += ". Neighbour discovery is answered in software (proxy NDP for the gateway); this rule "
           "steers the VM's link-scoped IPv6 (ff02::/16, fe80::/10), which is never routed, to the "
           "representor";
  if (rule.cls == RuleClass::kArpTrap)
    out += ". ARP replies are always made in software: no NIC rewrites ARP in hardware; this rule "
           "only steers ARP to the representor, matching the ethertype alone";
  return out;
}

}  // namespace nicoffload::flowrules
