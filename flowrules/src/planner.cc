#include "nicoffload/flowrules/planner.h"

#include <algorithm>
#include <map>
#include <set>
#include <span>
#include <unordered_map>

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
};

RuleId makeId(RuleClass cls, OwnerId owner, Sub sub, std::uint32_t extra = 0) {
  return StableHasher().u8(static_cast<std::uint8_t>(cls)).u64(owner).u8(sub).u32(extra).finish();
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

// A drop must not stay in hardware when the allow/trap rule it backs went to
// software: the hardware drop would then catch the legitimate traffic first.
void coupleAntiSpoofing(std::span<FlowRule> port_rules) {
  const FlowRule* sw_allow = nullptr;
  const FlowRule* sw_trap = nullptr;
  for (const auto& r : port_rules) {
    if (r.placement != Placement::kSw) continue;
    if (r.cls == RuleClass::kArpTrap) sw_trap = &r;
    if (r.cls == RuleClass::kAntiSpoofing && r.attr.priority == 0 && !sw_allow) sw_allow = &r;
  }
  for (auto& r : port_rules) {
    if (r.cls != RuleClass::kAntiSpoofing || r.attr.priority == 0) continue;
    const bool is_arp_drop = r.pattern.size() > 1 &&
                             std::get<EthItem>(r.pattern[1]).ether_type == kEtherTypeArp;
    if (is_arp_drop && sw_trap) follow(r, *sw_trap);
    if (!is_arp_drop && sw_allow) follow(r, *sw_allow);
  }
}

struct Context {
  const HostConfig& host;
  const HwProfile& profile;
  std::unordered_map<Ipv4Addr, MacAddr> next_hop_mac;

  Context(const HostConfig& h, const HwProfile& p) : host(h), profile(p) {
    for (const auto& nh : h.next_hops) next_hop_mac.emplace(nh.ipv4, nh.mac);
  }
  std::optional<MacAddr> macOf(Ipv4Addr nh) const {
    auto it = next_hop_mac.find(nh);
    if (it == next_hop_mac.end()) return std::nullopt;
    return it->second;
  }
};

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
    r.actions.push_back(CountAction{});
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
    r.actions.push_back(CountAction{});
    out.push_back(r);
  }
  for (const auto& [sub, type] : {std::pair{kSubDropIpv4, kEtherTypeIpv4}, std::pair{kSubDropArp, kEtherTypeArp}}) {
    // Anything else of that ethertype from the VF: spoofed source or MAC.
    auto r = makeRule(RuleClass::kAntiSpoofing, owner, sub, 0, kRootGroup, 1);
    r.pattern.push_back(PortItem{vf});
    r.pattern.push_back(ethMatch(EthItem::kType, MacAddr{}, type));
    r.actions.push_back(DropAction{});
    r.actions.push_back(CountAction{});
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
    r.actions.push_back(CountAction{});
    out.push_back(r);
  }
  for (std::size_t i = first; i < out.size(); ++i) placeByCapability(out[i], ctx.profile);
  coupleAntiSpoofing(std::span<FlowRule>(out).subspan(first));
}

void emitRemoteRule(const Context& ctx, const RemoteEndpoint& remote, std::vector<FlowRule>& out) {
  const auto& host = ctx.host;
  const OwnerId owner = remoteOwner(remote.address);
  const bool vxlan = host.underlay == UnderlayMode::kVxlan;
  auto r = makeRule(vxlan ? RuleClass::kVxlanEgress : RuleClass::kRoutedEgress, owner, kSubEgress,
                    0, kFibGroup, 0);
  r.pattern.push_back(EthItem{});
  Ipv4Item ip;
  ip.fields = Ipv4Item::kDst;
  ip.dst = remote.address;
  r.pattern.push_back(ip);

  // The underlay neighbour the packet goes to, and its MAC if configured.
  Ipv4Addr hop;
  std::optional<MacAddr> hop_mac;
  if (vxlan) {
    hop = *remote.vtep;
    hop_mac = ctx.macOf(hop);
    if (!hop_mac && host.default_next_hop) {
      hop = *host.default_next_hop;
      hop_mac = ctx.macOf(hop);
    }
  } else {
    hop = remote.next_hop ? *remote.next_hop : *host.default_next_hop;
    hop_mac = ctx.macOf(hop);
  }
  if (!hop_mac) {
    r.reason.code = PlacementReason::Code::kNextHopUnresolved;
    r.reason.address = hop;
  }

  if (vxlan) {
    const Ipv4Addr local = *host.vtep_ipv4;
    r.actions.push_back(SetMacSrcAction{routerMacForVtep(local)});
    r.actions.push_back(SetMacDstAction{routerMacForVtep(*remote.vtep)});
    r.actions.push_back(DecTtlAction{});
    r.actions.push_back(VxlanEncapAction{});
    VxlanEncap encap;
    encap.eth_src = host.uplink_mac;
    encap.eth_dst = hop_mac.value_or(MacAddr{});
    encap.ipv4_src = local;
    encap.ipv4_dst = *remote.vtep;
    encap.udp_src = static_cast<std::uint16_t>(
        49152 + StableHasher().u32(remote.address.value).finish() % 16384);
    encap.udp_dst = host.vxlan_udp_port;
    encap.vni = remote.vni ? *remote.vni : *host.default_vni;
    r.encap = encap;
  } else {
    r.actions.push_back(SetMacSrcAction{host.uplink_mac});
    r.actions.push_back(SetMacDstAction{hop_mac.value_or(MacAddr{})});
    r.actions.push_back(DecTtlAction{});
  }
  r.actions.push_back(RepresentedPortAction{PortRef::uplink()});
  r.actions.push_back(CountAction{});
  placeByCapability(r, ctx.profile);
  out.push_back(r);
}

FlowRule uplinkEntryRule(const Context& ctx) {
  auto r = makeRule(RuleClass::kLocalDelivery, hostOwner(), kSubUplinkEntry, 0, kRootGroup, 1);
  r.pattern.push_back(PortItem{PortRef::uplink()});
  r.pattern.push_back(ethMatch(EthItem::kType, MacAddr{}, kEtherTypeIpv4));
  r.actions.push_back(JumpAction{kFibGroup});
  r.actions.push_back(CountAction{});
  placeByCapability(r, ctx.profile);
  return r;
}

FlowRule decapRule(const Context& ctx, std::uint32_t vni) {
  auto r = makeRule(RuleClass::kVxlanIngress, vniOwner(vni), kSubDecap, 0, kRootGroup, 0);
  r.pattern.push_back(PortItem{PortRef::uplink()});
  r.pattern.push_back(EthItem{});
  Ipv4Item ip;
  ip.fields = Ipv4Item::kDst;
  ip.dst = *ctx.host.vtep_ipv4;
  r.pattern.push_back(ip);
  UdpItem udp;
  udp.fields = UdpItem::kDst;
  udp.dst_port = ctx.host.vxlan_udp_port;
  r.pattern.push_back(udp);
  r.pattern.push_back(VxlanItem{vni});
  r.actions.push_back(VxlanDecapAction{});
  r.actions.push_back(JumpAction{kFibGroup});
  r.actions.push_back(CountAction{});
  placeByCapability(r, ctx.profile);
  return r;
}

int rank(RuleClass c) {
  switch (c) {
    case RuleClass::kLocalDelivery:
    case RuleClass::kVxlanIngress: return 0;
    case RuleClass::kArpTrap:
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

void sortById(std::vector<FlowRule>& rules) {
  std::vector<std::pair<RuleId, std::uint32_t>> keys;
  keys.reserve(rules.size());
  for (std::uint32_t i = 0; i < rules.size(); ++i) keys.emplace_back(rules[i].id, i);
  std::sort(keys.begin(), keys.end());
  std::vector<FlowRule> sorted;
  sorted.reserve(rules.size());
  for (const auto& [id, i] : keys) sorted.push_back(rules[i]);
  rules.swap(sorted);
}

template <class T>
void sortByKey(std::vector<T>& v) {
  std::sort(v.begin(), v.end(), [](const T& a, const T& b) { return a.key() < b.key(); });
}

std::uint32_t portVni(const HostConfig& host, const Port& port) {
  return port.vni ? *port.vni : host.default_vni.value_or(0);
}

void emitSoftwarePath(const model::Intent& intent, SoftwarePathState& sw) {
  const auto& host = intent.host;
  const OwnerId host_owner = hostOwner();
  sw.sysctls.push_back({"ipv4/ip_forward", "1", host_owner});
  // The gateway address is local, so the kernel answers ARP for it on every
  // representor (arp_ignore=0); proxy_arp answers for everything it routes.
  sw.addresses.push_back({"lo", Ipv4Prefix{host.gateway_ipv4, 32}, host_owner});

  for (const auto& port : intent.ports) {
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
  }

  if (host.underlay == UnderlayMode::kRouted) {
    for (const auto& r : intent.remotes) {
      const Ipv4Addr via = r.next_hop ? *r.next_hop : *host.default_next_hop;
      sw.routes.push_back({Ipv4Prefix{r.address, 32}, host.uplink_netdev, via, false,
                           host.route_table, host.route_protocol, remoteOwner(r.address)});
    }
    return;
  }

  // VXLAN: one device per VNI in use; per remote VTEP a neighbour + FDB entry
  // for its router MAC; per remote /32 a route via the VTEP, onlink.
  std::set<std::uint32_t> vnis;
  for (const auto& port : intent.ports) vnis.insert(portVni(host, port));
  std::set<std::pair<std::uint32_t, Ipv4Addr>> vteps;
  for (const auto& r : intent.remotes) {
    const std::uint32_t vni = r.vni ? *r.vni : *host.default_vni;
    vnis.insert(vni);
    vteps.emplace(vni, *r.vtep);
    const std::string dev = "vxlan" + std::to_string(vni);
    sw.routes.push_back({Ipv4Prefix{r.address, 32}, dev, *r.vtep, true, host.route_table,
                         host.route_protocol, remoteOwner(r.address)});
  }
  for (const auto vni : vnis) {
    VxlanDevice dev;
    dev.name = "vxlan" + std::to_string(vni);
    dev.vni = vni;
    dev.local = *host.vtep_ipv4;
    dev.dst_port = host.vxlan_udp_port;
    dev.mac = routerMacForVtep(*host.vtep_ipv4);
    dev.underlay_dev = host.uplink_netdev;
    dev.owner = vniOwner(vni);
    sw.vxlan_devices.push_back(dev);
  }
  for (const auto& [vni, vtep] : vteps) {
    const std::string dev = "vxlan" + std::to_string(vni);
    const OwnerId owner = StableHasher().str("vtep").u32(vni).u32(vtep.value).finish();
    sw.fdb.push_back({dev, routerMacForVtep(vtep), vtep, owner});
    sw.neighbours.push_back({dev, vtep, routerMacForVtep(vtep), owner});
  }
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

OwnerId portOwner(const model::PortKey& key) {
  return StableHasher().str("port").str(key.vm).u16(key.nic).finish();
}
OwnerId remoteOwner(Ipv4Addr address) { return StableHasher().str("remote").u32(address.value).finish(); }
OwnerId vniOwner(std::uint32_t vni) { return StableHasher().str("vni").u32(vni).finish(); }
OwnerId hostOwner() { return StableHasher().str("host").finish(); }

Result<DesiredState> plan(const model::Intent& intent, const HwProfile& profile,
                          const PlanOptions& options) {
  if (!options.skip_validation)
    if (auto s = model::validateIntent(intent); !s) return s.error();
  if (auto s = checkHostAgainstProfile(intent.host, profile); !s) return s.error();
  for (std::size_t i = 0; i < intent.ports.size(); ++i)
    if (auto s = checkPortForPlan(intent.host, profile, intent.ports[i],
                                  "ports[" + std::to_string(i) + "]");
        !s)
      return s.error();

  const Context ctx(intent.host, profile);
  DesiredState out;
  auto& rules = out.rules;
  std::size_t estimate = intent.remotes.size() + 2;
  for (const auto& p : intent.ports) estimate += 3 + 2 * p.addresses.size();
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
  for (const auto& remote : intent.remotes) emitRemoteRule(ctx, remote, rules);
  std::map<std::uint32_t, std::size_t> decap_idx;
  if (intent.host.underlay == UnderlayMode::kRouted) {
    rules.push_back(uplinkEntryRule(ctx));
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
  // kernel could not deliver it. Decap that VNI in software too.
  for (const auto& [vni, idx] : decap_idx)
    for (const auto d : delivery_by_vni[vni])
      if (rules[d].placement == Placement::kSw) {
        follow(rules[idx], rules[d]);
        break;
      }

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
    emitSoftwarePath(intent, out.sw);
    sortByKey(out.sw.sysctls);
    sortByKey(out.sw.links);
    sortByKey(out.sw.addresses);
    sortByKey(out.sw.vxlan_devices);
    sortByKey(out.sw.fdb);
    sortByKey(out.sw.neighbours);
    sortByKey(out.sw.routes);
  }

  for (const auto& port : intent.ports) {
    out.vfs.push_back({*port.vf, port.key, port.mac});
    const auto kind = vdpa::effectiveKind(intent.host, port);
    if (kind == model::VdpaKind::kNone) continue;
    out.vdpa_devices.push_back({vdpa::deviceName(port.key), port.key, kind, *port.vf, port.mac,
                                port.mtu, port.queues});
  }
  std::sort(out.vfs.begin(), out.vfs.end(),
            [](const auto& a, const auto& b) { return a.vf < b.vf; });
  std::sort(out.vdpa_devices.begin(), out.vdpa_devices.end(),
            [](const auto& a, const auto& b) { return a.port < b.port; });
  return out;
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
             " (add it to underlay.next_hops); the kernel resolves it";
    case Code::kTableFull:
      return "hardware table full: group " + std::to_string(reason.group) + " holds at most " +
             std::to_string(reason.capacity) + " rules on " + p.name + " (" + p.tables_source + ")";
    case Code::kFollows:
      return "follows rule " + [&] {
        char buf[17];
        std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(reason.rule));
        return std::string(buf);
      }() + ", which is in software: keeping this one in hardware would shadow or strand it";
    case Code::kDeviceRefused:
      return "the device refused the rule at install time";
  }
  return "?";
}

std::string explainRule(const FlowRule& rule, const HwProfile& profile) {
  std::string out = formatRuleId(rule.cls, rule.id) + ": " + toString(rule.cls) + " rule in group " +
                    std::to_string(rule.attr.group) + ", priority " +
                    std::to_string(rule.attr.priority) + ", placed " + toString(rule.placement) +
                    ": " + describeReason(rule.reason, profile);
  if (rule.cls == RuleClass::kArpTrap)
    out += ". ARP replies are always made in software: no NIC rewrites ARP in hardware; this rule "
           "only steers ARP to the representor, matching the ethertype alone";
  return out;
}

}  // namespace nicoffload::flowrules
