#include "nicoffload/simnic/evaluator.h"

#include <algorithm>

namespace nicoffload::simnic {
namespace {

namespace fr = flowrules;
using model::ItemType;

template <class H>
bool headerIs(const Header& h) {
  return std::holds_alternative<H>(h);
}

bool itemMatchesHeader(const fr::FlowItem& item, const Header& h) {
  if (const auto* e = std::get_if<fr::EthItem>(&item)) {
    const auto* eh = std::get_if<EthHeader>(&h);
    if (!eh) return false;
    if ((e->fields & fr::EthItem::kSrc) && eh->src != e->src) return false;
    if ((e->fields & fr::EthItem::kDst) && eh->dst != e->dst) return false;
    if ((e->fields & fr::EthItem::kType) && eh->ether_type != e->ether_type) return false;
    return true;
  }
  if (const auto* i = std::get_if<fr::Ipv4Item>(&item)) {
    const auto* ih = std::get_if<Ipv4Header>(&h);
    if (!ih) return false;
    if ((i->fields & fr::Ipv4Item::kSrc) && ih->src != i->src) return false;
    if ((i->fields & fr::Ipv4Item::kDst) && ih->dst != i->dst) return false;
    return true;
  }
  if (const auto* i = std::get_if<fr::Ipv6Item>(&item)) {
    const auto* ih = std::get_if<Ipv6Header>(&h);
    if (!ih) return false;
    if (i->field == fr::Ipv6Item::Field::kSrc) return i->matches(ih->src);
    if (i->field == fr::Ipv6Item::Field::kDst) return i->matches(ih->dst);
    return true;
  }
  if (const auto* u = std::get_if<fr::UdpItem>(&item)) {
    const auto* uh = std::get_if<UdpHeader>(&h);
    if (!uh) return false;
    return !(u->fields & fr::UdpItem::kDst) || uh->dst_port == u->dst_port;
  }
  if (const auto* v = std::get_if<fr::VxlanItem>(&item)) {
    const auto* vh = std::get_if<VxlanHeader>(&h);
    return vh && vh->vni == v->vni;
  }
  return false;
}

bool headerOfItem(const fr::FlowItem& item, const Header& h) {
  switch (fr::itemType(item)) {
    case ItemType::kEth:
      return headerIs<EthHeader>(h);
    case ItemType::kIpv4:
      return headerIs<Ipv4Header>(h);
    case ItemType::kIpv6:
      return headerIs<Ipv6Header>(h);
    case ItemType::kUdp:
      return headerIs<UdpHeader>(h);
    case ItemType::kVxlan:
      return headerIs<VxlanHeader>(h);
    default:
      return false;
  }
}

// The TTL or hop limit of the outermost IP header (rte_flow DEC_TTL).
void decTtl(Packet& p) {
  for (auto& h : p.headers) {
    if (auto* ip = std::get_if<Ipv4Header>(&h)) {
      if (ip->ttl > 0) --ip->ttl;
      ip->checksum = ipv4HeaderChecksum(*ip);
      return;
    }
    if (auto* ip6 = std::get_if<Ipv6Header>(&h)) {
      if (ip6->hop_limit > 0) --ip6->hop_limit;
      return;
    }
  }
}

void vxlanDecap(Packet& p) {
  if (isVxlanEncapsulated(p)) p.headers.erase(p.headers.begin(), p.headers.begin() + 4);
}

void vxlanEncap(Packet& p, const fr::VxlanEncap& e) {
  Packet outer =
      vxlanEncapsulated(p, e.eth_src, e.eth_dst, e.src, e.dst, e.vni, e.udp_src, e.udp_dst);
  if (auto* ip = outer.at<Ipv4Header>(1)) {
    ip->ttl = fr::kVxlanEncapTtl;
    ip->checksum = ipv4HeaderChecksum(*ip);
  } else if (auto* ip6 = outer.at<Ipv6Header>(1)) {
    ip6->hop_limit = fr::kVxlanEncapTtl;
  }
  p = std::move(outer);
}

// The action as a trace shows it: its rte_flow name and its argument.
std::string actionText(const fr::FlowAction& action, const FlowRule& rule) {
  std::string name(model::actionName(fr::actionType(action)));
  if (const auto* a = std::get_if<fr::SetMacSrcAction>(&action)) return name + " " + a->mac.str();
  if (const auto* a = std::get_if<fr::SetMacDstAction>(&action)) return name + " " + a->mac.str();
  if (const auto* a = std::get_if<fr::RepresentedPortAction>(&action))
    return name + " " + a->port.str();
  if (const auto* a = std::get_if<fr::PortRepresentorAction>(&action))
    return name + " " + a->port.str();
  if (const auto* a = std::get_if<fr::JumpAction>(&action))
    return name + " group " + std::to_string(a->group);
  if (std::holds_alternative<fr::VxlanEncapAction>(action) && rule.encap)
    return name + " " + rule.encap->src.str() + ">" + rule.encap->dst.str() + " udp " +
           std::to_string(rule.encap->udp_dst) + " vni " + std::to_string(rule.encap->vni);
  return name;
}

}  // namespace

std::string Delivery::str() const {
  switch (kind) {
    case Kind::kPort:
      return port.kind == PortRef::Kind::kUplink ? "out of the " + port.str() + " (wire)"
                                                 : "out of " + port.str();
    case Kind::kRepresentor:
      return "to the representor of " + port.str() + (miss ? " (miss)" : "");
    case Kind::kDrop:
      return "dropped";
  }
  return "?";
}

void RuleList::add(const FlowRule& rule, Placement placement, FlowHandle handle) {
  groups_[rule.attr.group].push_back({rule, handle, placement});
  ++size_;
}

void RuleList::forEachInGroup(std::uint32_t group,
                              const std::function<void(const CandidateRule&)>& each) const {
  const auto it = groups_.find(group);
  if (it == groups_.end()) return;
  for (const auto& e : it->second) each({&e.rule, e.handle, e.placement});
}

bool ruleMatches(const FlowRule& rule, const Packet& p, PortRef ingress) {
  std::size_t pos = 0;
  bool started = false;
  for (const auto& item : rule.pattern) {
    if (const auto* port = std::get_if<fr::PortItem>(&item)) {
      if (!(port->port == ingress)) return false;
      continue;
    }
    if (!started) {
      while (pos < p.headers.size() && !headerOfItem(item, p.headers[pos])) ++pos;
      started = true;
    }
    if (pos >= p.headers.size() || !itemMatchesHeader(item, p.headers[pos])) return false;
    ++pos;
  }
  return true;
}

Result<Evaluation> evaluateRules(const RuleSet& rules, const Packet& packet, PortRef ingress,
                                 std::uint32_t max_jumps) {
  Evaluation ev;
  Delivery& d = ev.delivery;
  d.packet = packet;
  std::uint32_t group = 0;
  for (std::uint32_t hops = 0;; ++hops) {
    if (hops > max_jumps)
      return makeError(ErrorCode::kInternal, "group", std::to_string(group),
                       "the rules jump in a loop (" + std::to_string(hops) + " jumps)");
    GroupStep step;
    step.group = group;
    step.before = d.packet;
    // The device decides among its own (hw) rules: the lowest priority value
    // wins, the first in order a tie. Software rules are looked at only to
    // say what the hardware passed over.
    std::optional<CandidateRule> best;
    std::vector<CandidateRule> sw_matching;
    rules.forEachInGroup(group, [&](const CandidateRule& c) {
      if (c.placement == Placement::kSw) {
        if (ruleMatches(*c.rule, d.packet, ingress)) sw_matching.push_back(c);
        return;
      }
      if ((!best || c.rule->attr.priority < best->rule->attr.priority) &&
          ruleMatches(*c.rule, d.packet, ingress))
        best = c;
    });
    for (const auto& c : sw_matching)
      if (!best || c.rule->attr.priority <= best->rule->attr.priority) step.bypassed.push_back(c);
    if (!best) {  // switchdev: a miss goes to the representor of the source port
      d.kind = Delivery::Kind::kRepresentor;
      d.port = ingress;
      d.miss = true;
      step.after = d.packet;
      ev.steps.push_back(std::move(step));
      return ev;
    }
    step.matched = best;
    d.path.push_back(best->handle);
    const FlowRule& rule = *best->rule;
    std::optional<std::uint32_t> jump;
    for (const auto& action : rule.actions) {
      if (!std::holds_alternative<fr::CountAction>(action))
        step.actions.push_back(actionText(action, rule));
      if (const auto* a = std::get_if<fr::SetMacSrcAction>(&action)) {
        if (auto* eth = d.packet.at<EthHeader>(0)) eth->src = a->mac;
      } else if (const auto* a = std::get_if<fr::SetMacDstAction>(&action)) {
        if (auto* eth = d.packet.at<EthHeader>(0)) eth->dst = a->mac;
      } else if (std::holds_alternative<fr::DecTtlAction>(action)) {
        decTtl(d.packet);
      } else if (std::holds_alternative<fr::VxlanDecapAction>(action)) {
        vxlanDecap(d.packet);
      } else if (std::holds_alternative<fr::VxlanEncapAction>(action)) {
        if (rule.encap) vxlanEncap(d.packet, *rule.encap);
      } else if (const auto* a = std::get_if<fr::RepresentedPortAction>(&action)) {
        d.kind = Delivery::Kind::kPort;
        d.port = a->port;
      } else if (const auto* a = std::get_if<fr::PortRepresentorAction>(&action)) {
        d.kind = Delivery::Kind::kRepresentor;
        d.port = a->port;
      } else if (std::holds_alternative<fr::DropAction>(action)) {
        d.kind = Delivery::Kind::kDrop;
      } else if (const auto* a = std::get_if<fr::JumpAction>(&action)) {
        jump = a->group;
      }
    }
    step.after = d.packet;
    ev.steps.push_back(std::move(step));
    if (!jump) return ev;
    group = *jump;
  }
}

}  // namespace nicoffload::simnic
