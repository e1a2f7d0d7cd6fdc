#include "nicoffload/dpdk/rte_flow_translate.h"

#include <netinet/in.h>
#include <rte_byteorder.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <deque>

#include "nicoffload/flowrules/flow_backend.h"

namespace nicoffload::dpdk {
namespace fr = flowrules;

struct RteFlowRule::Storage {
  rte_flow_attr attr{};
  std::vector<rte_flow_item> items;      // END-terminated once built
  std::vector<rte_flow_action> actions;  // END-terminated once built
  // Specs, masks and confs: deques keep every element where it was put.
  std::deque<rte_flow_item_ethdev> ethdev_items;
  std::deque<rte_flow_item_eth> eth;
  std::deque<rte_flow_item_ipv4> ipv4;
  std::deque<rte_flow_item_ipv6> ipv6;
  std::deque<rte_flow_item_udp> udp;
  std::deque<rte_flow_item_vxlan> vxlan;
  std::deque<rte_flow_action_set_mac> set_mac;
  std::deque<rte_flow_action_ethdev> ethdev_actions;
  std::deque<rte_flow_action_jump> jump;
  std::deque<rte_flow_action_count> count;
  std::deque<rte_flow_action_vxlan_encap> encap;
  std::deque<std::array<rte_flow_item, 5>> encap_definitions;  // ETH IPV4|IPV6 UDP VXLAN END
  std::optional<std::size_t> count_index;

  template <class T>
  T* keep(std::deque<T>& where, const T& value) {
    where.push_back(value);
    return &where.back();
  }
};

RteFlowRule::RteFlowRule() : s_(std::make_unique<Storage>()) {}
RteFlowRule::RteFlowRule(RteFlowRule&&) noexcept = default;
RteFlowRule& RteFlowRule::operator=(RteFlowRule&&) noexcept = default;
RteFlowRule::~RteFlowRule() = default;

const rte_flow_attr& RteFlowRule::attr() const { return s_->attr; }
const rte_flow_item* RteFlowRule::pattern() const { return s_->items.data(); }
const rte_flow_action* RteFlowRule::actions() const { return s_->actions.data(); }
std::size_t RteFlowRule::patternSize() const { return s_->items.size() - 1; }
std::size_t RteFlowRule::actionsSize() const { return s_->actions.size() - 1; }
const rte_flow_action* RteFlowRule::countAction() const {
  return s_->count_index ? &s_->actions[*s_->count_index] : nullptr;
}

RteFlowRule::Cause RteFlowRule::locate(const void* cause) const {
  if (!cause) return {};
  for (std::size_t i = 0; i + 1 < s_->items.size(); ++i) {
    const auto& it = s_->items[i];
    if (cause == &it || cause == it.spec || cause == it.mask || cause == it.last)
      return {Cause::Kind::kItem, i};
  }
  for (std::size_t i = 0; i + 1 < s_->actions.size(); ++i) {
    const auto& a = s_->actions[i];
    if (cause == &a || (a.conf && cause == a.conf)) return {Cause::Kind::kAction, i};
    if (a.type == RTE_FLOW_ACTION_TYPE_VXLAN_ENCAP) {
      const auto* def = static_cast<const rte_flow_action_vxlan_encap*>(a.conf)->definition;
      for (const rte_flow_item* d = def; d->type != RTE_FLOW_ITEM_TYPE_END; ++d)
        if (cause == d || cause == d->spec || cause == d->mask) return {Cause::Kind::kAction, i};
    }
  }
  return {};
}

Result<std::uint16_t> SwitchPorts::portOf(const fr::PortRef& p) const {
  if (p.kind == fr::PortRef::Kind::kUplink && p.uplink_index == 0) return uplink;
  if (p.kind == fr::PortRef::Kind::kUplink) {
    if (p.uplink_index == 1 && uplink2) return *uplink2;
    return makeError(ErrorCode::kNotFound, p.str(), p.str(),
                     p.str() +
                         " has no port on this eswitch (the DPDK backend drives the first "
                         "PF's eswitch only)");
  }
  if (p.vf < vf.size() && vf[p.vf]) return *vf[p.vf];
  return makeError(
      ErrorCode::kNotFound, p.str(), p.str(),
      p.str() + " has no representor port (the PF devargs need representor=vf[...] covering it)");
}

namespace {

constexpr std::uint8_t kFf[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

void copyMac(rte_ether_addr& to, const MacAddr& from) {
  std::memcpy(to.addr_bytes, from.bytes.data(), RTE_ETHER_ADDR_LEN);
}

rte_flow_item item(rte_flow_item_type type, const void* spec, const void* mask) {
  rte_flow_item i{};
  i.type = type;
  i.spec = spec;
  i.mask = mask;
  return i;
}

rte_flow_action action(rte_flow_action_type type, const void* conf) {
  rte_flow_action a{};
  a.type = type;
  a.conf = conf;
  return a;
}

}  // namespace

Result<RteFlowRule> translate(const fr::FlowRule& rule, const SwitchPorts& ports) {
  RteFlowRule out;
  auto& s = *out.s_;
  s.attr.group = rule.attr.group;
  s.attr.priority = rule.attr.priority;
  s.attr.ingress = rule.attr.ingress ? 1 : 0;
  s.attr.transfer = rule.attr.transfer ? 1 : 0;
  s.items.reserve(rule.pattern.size() + 1);
  s.actions.reserve(rule.actions.size() + 1);

  for (std::size_t i = 0; i < rule.pattern.size(); ++i) {
    const auto& it = rule.pattern[i];
    if (const auto* p = std::get_if<fr::PortItem>(&it)) {
      auto port = ports.portOf(p->port);
      if (!port) return fr::itemError(ErrorCode::kInvalidValue, rule, i, port.error().message);
      rte_flow_item_ethdev spec{}, mask{};
      spec.port_id = *port;
      mask.port_id = 0xffff;
      s.items.push_back(item(RTE_FLOW_ITEM_TYPE_REPRESENTED_PORT, s.keep(s.ethdev_items, spec),
                             s.keep(s.ethdev_items, mask)));
    } else if (const auto* e = std::get_if<fr::EthItem>(&it)) {
      if (e->fields == 0) {  // any Ethernet frame
        s.items.push_back(item(RTE_FLOW_ITEM_TYPE_ETH, nullptr, nullptr));
        continue;
      }
      rte_flow_item_eth spec{}, mask{};
      if (e->fields & fr::EthItem::kSrc) {
        copyMac(spec.hdr.src_addr, e->src);
        std::memcpy(mask.hdr.src_addr.addr_bytes, kFf, 6);
      }
      if (e->fields & fr::EthItem::kDst) {
        copyMac(spec.hdr.dst_addr, e->dst);
        std::memcpy(mask.hdr.dst_addr.addr_bytes, kFf, 6);
      }
      if (e->fields & fr::EthItem::kType) {
        spec.hdr.ether_type = rte_cpu_to_be_16(e->ether_type);
        mask.hdr.ether_type = 0xffff;
      }
      s.items.push_back(item(RTE_FLOW_ITEM_TYPE_ETH, s.keep(s.eth, spec), s.keep(s.eth, mask)));
    } else if (const auto* ip = std::get_if<fr::Ipv4Item>(&it)) {
      rte_flow_item_ipv4 spec{}, mask{};
      if (ip->fields & fr::Ipv4Item::kSrc) {
        spec.hdr.src_addr = rte_cpu_to_be_32(ip->src.value);
        mask.hdr.src_addr = 0xffffffff;
      }
      if (ip->fields & fr::Ipv4Item::kDst) {
        spec.hdr.dst_addr = rte_cpu_to_be_32(ip->dst.value);
        mask.hdr.dst_addr = 0xffffffff;
      }
      s.items.push_back(item(RTE_FLOW_ITEM_TYPE_IPV4, s.keep(s.ipv4, spec), s.keep(s.ipv4, mask)));
    } else if (const auto* ip6 = std::get_if<fr::Ipv6Item>(&it)) {
      // One address under its prefix: the mask's first `len` bits set.
      rte_flow_item_ipv6 spec{}, mask{};
      if (ip6->field != fr::Ipv6Item::Field::kNone) {
        std::uint8_t* value = ip6->field == fr::Ipv6Item::Field::kSrc ? spec.hdr.src_addr : spec.hdr.dst_addr;
        std::uint8_t* bits = ip6->field == fr::Ipv6Item::Field::kSrc ? mask.hdr.src_addr : mask.hdr.dst_addr;
        for (std::size_t k = 0; k < 16; ++k) {
          const int left = static_cast<int>(ip6->len) - static_cast<int>(8 * k);
          bits[k] = left >= 8 ? 0xff : left <= 0 ? 0 : static_cast<std::uint8_t>(0xff << (8 - left));
          value[k] = ip6->addr.bytes[k] & bits[k];
        }
      }
      s.items.push_back(item(RTE_FLOW_ITEM_TYPE_IPV6, s.keep(s.ipv6, spec), s.keep(s.ipv6, mask)));
    } else if (const auto* u = std::get_if<fr::UdpItem>(&it)) {
      rte_flow_item_udp spec{}, mask{};
      if (u->fields & fr::UdpItem::kDst) {
        spec.hdr.dst_port = rte_cpu_to_be_16(u->dst_port);
        mask.hdr.dst_port = 0xffff;
      }
      s.items.push_back(item(RTE_FLOW_ITEM_TYPE_UDP, s.keep(s.udp, spec), s.keep(s.udp, mask)));
    } else if (const auto* v = std::get_if<fr::VxlanItem>(&it)) {
      rte_flow_item_vxlan spec{}, mask{};
      spec.hdr.vx_vni = rte_cpu_to_be_32(v->vni << 8);  // VNI (24) + reserved (8)
      mask.hdr.vx_vni = rte_cpu_to_be_32(0xffffff00);
      s.items.push_back(
          item(RTE_FLOW_ITEM_TYPE_VXLAN, s.keep(s.vxlan, spec), s.keep(s.vxlan, mask)));
    }
  }
  s.items.push_back(item(RTE_FLOW_ITEM_TYPE_END, nullptr, nullptr));

  for (std::size_t i = 0; i < rule.actions.size(); ++i) {
    const auto& a = rule.actions[i];
    if (const auto* m = std::get_if<fr::SetMacSrcAction>(&a)) {
      rte_flow_action_set_mac conf{};
      std::memcpy(conf.mac_addr, m->mac.bytes.data(), RTE_ETHER_ADDR_LEN);
      s.actions.push_back(action(RTE_FLOW_ACTION_TYPE_SET_MAC_SRC, s.keep(s.set_mac, conf)));
    } else if (const auto* m = std::get_if<fr::SetMacDstAction>(&a)) {
      rte_flow_action_set_mac conf{};
      std::memcpy(conf.mac_addr, m->mac.bytes.data(), RTE_ETHER_ADDR_LEN);
      s.actions.push_back(action(RTE_FLOW_ACTION_TYPE_SET_MAC_DST, s.keep(s.set_mac, conf)));
    } else if (std::holds_alternative<fr::DecTtlAction>(a)) {
      s.actions.push_back(action(RTE_FLOW_ACTION_TYPE_DEC_TTL, nullptr));
    } else if (const auto* p = std::get_if<fr::RepresentedPortAction>(&a)) {
      auto port = ports.portOf(p->port);
      if (!port) return fr::actionError(ErrorCode::kInvalidValue, rule, i, port.error().message);
      rte_flow_action_ethdev conf{};
      conf.port_id = *port;
      s.actions.push_back(
          action(RTE_FLOW_ACTION_TYPE_REPRESENTED_PORT, s.keep(s.ethdev_actions, conf)));
    } else if (const auto* p = std::get_if<fr::PortRepresentorAction>(&a)) {
      auto port = ports.portOf(p->port);
      if (!port) return fr::actionError(ErrorCode::kInvalidValue, rule, i, port.error().message);
      rte_flow_action_ethdev conf{};
      conf.port_id = *port;
      s.actions.push_back(
          action(RTE_FLOW_ACTION_TYPE_PORT_REPRESENTOR, s.keep(s.ethdev_actions, conf)));
    } else if (std::holds_alternative<fr::VxlanEncapAction>(a)) {
      if (!rule.encap)
        return fr::actionError(ErrorCode::kInvalidValue, rule, i,
                               "vxlan_encap without its definition (FlowRule::encap is empty)");
      const auto& e = *rule.encap;
      // The outer headers (RFC 7348 §5), spec and full mask as testpmd's
      // "set vxlan-tos-ttl" builds them (the TTL is kVxlanEncapTtl, as rendered).
      rte_flow_item_eth eth{}, eth_mask{};
      copyMac(eth.hdr.src_addr, e.eth_src);
      copyMac(eth.hdr.dst_addr, e.eth_dst);
      eth.hdr.ether_type = rte_cpu_to_be_16(e.ipv6() ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4);
      std::memcpy(eth_mask.hdr.src_addr.addr_bytes, kFf, 6);
      std::memcpy(eth_mask.hdr.dst_addr.addr_bytes, kFf, 6);
      eth_mask.hdr.ether_type = 0xffff;
      auto& def = s.encap_definitions.emplace_back();
      if (!e.ipv6()) {
        rte_flow_item_ipv4 ip{}, ip_mask{};
        ip.hdr.version_ihl = RTE_IPV4_VHL_DEF;
        ip.hdr.time_to_live = fr::kVxlanEncapTtl;
        ip.hdr.next_proto_id = IPPROTO_UDP;
        ip.hdr.src_addr = rte_cpu_to_be_32(e.src.v4().value);
        ip.hdr.dst_addr = rte_cpu_to_be_32(e.dst.v4().value);
        ip_mask.hdr.src_addr = 0xffffffff;
        ip_mask.hdr.dst_addr = 0xffffffff;
        ip_mask.hdr.time_to_live = 0xff;
        ip_mask.hdr.next_proto_id = 0xff;
        def[1] = item(RTE_FLOW_ITEM_TYPE_IPV4, s.keep(s.ipv4, ip), s.keep(s.ipv4, ip_mask));
      } else {
        // As testpmd's "set vxlan-tos-ttl ip-version ipv6" builds it: version
        // 6, traffic class 0, the hop limit kVxlanEncapTtl. mlx5 leaves the
        // outer UDP checksum zero (flow_dv_zero_encap_udp_csum).
        rte_flow_item_ipv6 ip{}, ip_mask{};
        ip.hdr.vtc_flow = rte_cpu_to_be_32(6u << 28);
        ip.hdr.proto = IPPROTO_UDP;
        ip.hdr.hop_limits = fr::kVxlanEncapTtl;
        std::memcpy(ip.hdr.src_addr, e.src.v6().bytes.data(), 16);
        std::memcpy(ip.hdr.dst_addr, e.dst.v6().bytes.data(), 16);
        std::memset(ip_mask.hdr.src_addr, 0xff, 16);
        std::memset(ip_mask.hdr.dst_addr, 0xff, 16);
        ip_mask.hdr.proto = 0xff;
        ip_mask.hdr.hop_limits = 0xff;
        def[1] = item(RTE_FLOW_ITEM_TYPE_IPV6, s.keep(s.ipv6, ip), s.keep(s.ipv6, ip_mask));
      }
      rte_flow_item_udp udp{}, udp_mask{};
      udp.hdr.src_port = rte_cpu_to_be_16(e.udp_src);
      udp.hdr.dst_port = rte_cpu_to_be_16(e.udp_dst);
      udp_mask.hdr.src_port = 0xffff;
      udp_mask.hdr.dst_port = 0xffff;
      rte_flow_item_vxlan vx{}, vx_mask{};
      vx.hdr.vx_flags = rte_cpu_to_be_32(0x08000000);  // I flag
      vx.hdr.vx_vni = rte_cpu_to_be_32(e.vni << 8);
      vx_mask.hdr.vx_vni = rte_cpu_to_be_32(0xffffff00);
      def[0] = item(RTE_FLOW_ITEM_TYPE_ETH, s.keep(s.eth, eth), s.keep(s.eth, eth_mask));
      def[2] = item(RTE_FLOW_ITEM_TYPE_UDP, s.keep(s.udp, udp), s.keep(s.udp, udp_mask));
      def[3] = item(RTE_FLOW_ITEM_TYPE_VXLAN, s.keep(s.vxlan, vx), s.keep(s.vxlan, vx_mask));
      def[4] = item(RTE_FLOW_ITEM_TYPE_END, nullptr, nullptr);
      rte_flow_action_vxlan_encap conf{};
      conf.definition = def.data();
      s.actions.push_back(action(RTE_FLOW_ACTION_TYPE_VXLAN_ENCAP, s.keep(s.encap, conf)));
    } else if (std::holds_alternative<fr::VxlanDecapAction>(a)) {
      s.actions.push_back(action(RTE_FLOW_ACTION_TYPE_VXLAN_DECAP, nullptr));
    } else if (const auto* j = std::get_if<fr::JumpAction>(&a)) {
      rte_flow_action_jump conf{};
      conf.group = j->group;
      s.actions.push_back(action(RTE_FLOW_ACTION_TYPE_JUMP, s.keep(s.jump, conf)));
    } else if (std::holds_alternative<fr::CountAction>(a)) {
      s.count_index = s.actions.size();
      s.actions.push_back(
          action(RTE_FLOW_ACTION_TYPE_COUNT, s.keep(s.count, rte_flow_action_count{})));
    } else if (std::holds_alternative<fr::DropAction>(a)) {
      s.actions.push_back(action(RTE_FLOW_ACTION_TYPE_DROP, nullptr));
    }
  }
  s.actions.push_back(action(RTE_FLOW_ACTION_TYPE_END, nullptr));
  return out;
}

ErrorCode errorCodeFromErrno(int err) {
  switch (err) {
    case EINVAL:
      return ErrorCode::kInvalidValue;
    case ENOTSUP:
    case ENOSYS:
      return ErrorCode::kUnsupported;
    case ENOSPC:
    case ENOMEM:
      return ErrorCode::kTableFull;
    case EBUSY:
    case EAGAIN:
      return ErrorCode::kBusy;
    case ENOENT:
      return ErrorCode::kNotFound;
    case EEXIST:
      return ErrorCode::kConflict;  // e.g. an overlapping rule
    default:
      return ErrorCode::kInternal;
  }
}

namespace {

std::string errnoName(int err) {
  switch (err) {
    case EINVAL:
      return "EINVAL";
    case ENOTSUP:
      return "ENOTSUP";
    case ENOSYS:
      return "ENOSYS";
    case ENOSPC:
      return "ENOSPC";
    case ENOMEM:
      return "ENOMEM";
    case EBUSY:
      return "EBUSY";
    case EAGAIN:
      return "EAGAIN";
    case ENOENT:
      return "ENOENT";
    case EEXIST:
      return "EEXIST";
    case ENODEV:
      return "ENODEV";
    case EIO:
      return "EIO";
    case EPERM:
      return "EPERM";
    default:
      return "errno " + std::to_string(err);
  }
}

const char* attrName(rte_flow_error_type t) {
  switch (t) {
    case RTE_FLOW_ERROR_TYPE_ATTR_GROUP:
      return "group";
    case RTE_FLOW_ERROR_TYPE_ATTR_PRIORITY:
      return "priority";
    case RTE_FLOW_ERROR_TYPE_ATTR_INGRESS:
      return "ingress";
    case RTE_FLOW_ERROR_TYPE_ATTR_EGRESS:
      return "egress";
    case RTE_FLOW_ERROR_TYPE_ATTR_TRANSFER:
      return "transfer";
    default:
      return "attr";
  }
}

}  // namespace

Error flowError(int ret, const rte_flow_error& error, const fr::FlowRule& rule,
                const RteFlowRule* translated, const char* call, std::uint16_t port) {
  const int err = ret < 0 ? -ret : ret;
  std::string message = error.message && *error.message ? error.message : std::strerror(err);
  message +=
      " (" + std::string(call) + " on port " + std::to_string(port) + ": " + errnoName(err) + ")";
  const ErrorCode code = errorCodeFromErrno(err);
  switch (error.type) {
    case RTE_FLOW_ERROR_TYPE_ATTR_GROUP:
    case RTE_FLOW_ERROR_TYPE_ATTR_PRIORITY:
    case RTE_FLOW_ERROR_TYPE_ATTR_INGRESS:
    case RTE_FLOW_ERROR_TYPE_ATTR_EGRESS:
    case RTE_FLOW_ERROR_TYPE_ATTR_TRANSFER:
    case RTE_FLOW_ERROR_TYPE_ATTR:
      return fr::attrError(code, rule, attrName(error.type), std::move(message));
    default:
      break;
  }
  if (translated) {
    const auto cause = translated->locate(error.cause);
    if (cause.kind == RteFlowRule::Cause::Kind::kItem)
      return fr::itemError(code, rule, cause.index, std::move(message));
    if (cause.kind == RteFlowRule::Cause::Kind::kAction)
      return fr::actionError(code, rule, cause.index, std::move(message));
  }
  std::string field = fr::formatRuleId(rule.cls, rule.id);
  if (error.type == RTE_FLOW_ERROR_TYPE_ITEM_NUM) field += ".pattern";
  if (error.type == RTE_FLOW_ERROR_TYPE_ACTION_NUM) field += ".actions";
  return makeError(code, std::move(field), "", std::move(message));
}

}  // namespace nicoffload::dpdk
