#include "nicoffload/trace/trace.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>

#include "nicoffload/flowrules/sw_objects.h"

namespace nicoffload::trace {

// The simulated NIC's packet model and evaluator, used here as a library.
using simnic::ArpHeader;
using simnic::CandidateRule;
using simnic::Delivery;
using simnic::EthHeader;
using simnic::evaluateRules;
using simnic::Ipv4Header;
using simnic::kEtherTypeArp;
using simnic::kEtherTypeIpv4;
using simnic::Packet;
using simnic::PacketBuilder;
using simnic::PortRef;
using simnic::RuleList;
using simnic::UdpHeader;
using simnic::vxlanEncapsulated;
using simnic::VxlanHeader;

namespace {

using nlohmann::json;
namespace fr = flowrules;

Error specError(ErrorCode code, const std::string& field, const std::string& value,
                std::string message) {
  return makeError(code, field, value, std::move(message));
}

// A spec value as an error echoes it.
std::string echo(const json& v) {
  if (v.is_string()) return v.get_ref<const std::string&>();
  if (v.is_structured()) return v.is_array() ? "[...]" : "{...}";
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Reads the spec's fields; each reader answers nullopt when the key is absent.
class SpecReader {
 public:
  explicit SpecReader(const json& spec) : spec_(spec) {}

  Result<std::optional<std::string>> str(const char* key) const {
    const auto it = spec_.find(key);
    if (it == spec_.end() || it->is_null()) return std::optional<std::string>();
    if (!it->is_string())
      return specError(ErrorCode::kWrongType, key, echo(*it),
                       std::string("must be a string, got ") + it->type_name());
    return std::optional<std::string>(it->get<std::string>());
  }

  Result<std::optional<MacAddr>> mac(const char* key) const {
    auto s = str(key);
    if (!s) return s.error();
    if (!*s) return std::optional<MacAddr>();
    auto m = MacAddr::parse(**s);
    if (!m)
      return specError(ErrorCode::kInvalidValue, key, **s,
                       "'" + **s + "' is not a MAC address (aa:bb:cc:dd:ee:ff)");
    return std::optional<MacAddr>(*m);
  }

  Result<std::optional<Ipv4Addr>> ip(const char* key) const {
    auto s = str(key);
    if (!s) return s.error();
    if (!*s) return std::optional<Ipv4Addr>();
    auto a = Ipv4Addr::parse(**s);
    if (!a)
      return specError(ErrorCode::kInvalidValue, key, **s,
                       "'" + **s + "' is not an IPv4 address (a.b.c.d)");
    return std::optional<Ipv4Addr>(*a);
  }

  // An IPv4 or an IPv6 address (a packet's source or destination).
  Result<std::optional<IpAddr>> anyIp(const char* key) const {
    auto s = str(key);
    if (!s) return s.error();
    if (!*s) return std::optional<IpAddr>();
    auto a = IpAddr::parse(**s);
    if (!a)
      return specError(
          ErrorCode::kInvalidValue, key, **s,
          "'" + **s + "' is not an IP address (a.b.c.d, or IPv6 text such as 2001:db8::5)");
    return std::optional<IpAddr>(*a);
  }

  // An integer in [lo, hi]; a decimal or 0x-hex string is accepted too (the
  // CLI passes what the operator typed).
  Result<std::optional<std::uint64_t>> number(const char* key, std::uint64_t lo, std::uint64_t hi,
                                              const std::string& what) const {
    const auto it = spec_.find(key);
    if (it == spec_.end() || it->is_null()) return std::optional<std::uint64_t>();
    const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
    std::uint64_t v = 0;
    if (it->is_number_unsigned()) {
      v = it->get<std::uint64_t>();
    } else if (it->is_number_integer()) {
      if (it->get<std::int64_t>() < 0)
        return specError(ErrorCode::kInvalidValue, key, echo(*it),
                         "must be " + range + " (" + what + ")");
      v = static_cast<std::uint64_t>(it->get<std::int64_t>());
    } else if (it->is_string()) {
      const std::string& s = it->get_ref<const std::string&>();
      const bool hex = s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
      const std::string digits = hex ? s.substr(2) : s;
      if (digits.empty() || digits.size() > 10 ||
          !std::all_of(digits.begin(), digits.end(),
                       [&](unsigned char c) { return hex ? std::isxdigit(c) : std::isdigit(c); }))
        return specError(ErrorCode::kInvalidValue, key, s,
                         "'" + s + "' is not a number (" + what + ", " + range + ")");
      v = std::stoull(digits, nullptr, hex ? 16 : 10);
    } else {
      return specError(ErrorCode::kWrongType, key, echo(*it),
                       std::string("must be an integer (") + what + "), got " + it->type_name());
    }
    if (v < lo || v > hi)
      return specError(ErrorCode::kInvalidValue, key, echo(*it),
                       echo(*it) + " is out of range: must be " + range + " (" + what + ")");
    return std::optional<std::uint64_t>(v);
  }

 private:
  const json& spec_;
};

#define TRY_ASSIGN(var, expr)           \
  auto var##_r = (expr);                \
  if (!var##_r) return var##_r.error(); \
  auto var = std::move(var##_r).value()

const model::Port* portByVf(const model::Intent& intent, std::uint16_t vf) {
  for (const auto& p : intent.ports)
    if (p.vf && *p.vf == vf) return &p;
  return nullptr;
}

// Resolves `in`: "uplink", "<vm>/<nic>", a representor name, "vf<N>".
Result<TraceInput> resolveIngress(const std::string& in, const model::Intent& intent) {
  TraceInput t;
  t.in = in;
  const auto& host = intent.host;
  if (in == "uplink" || (!host.uplink_netdev.empty() && in == host.uplink_netdev)) {
    t.ingress = PortRef::uplink();
    t.representor = host.uplink_netdev;
    return t;
  }
  const model::Port* port = nullptr;
  if (const auto slash = in.rfind('/'); slash != std::string::npos) {
    std::string vm = in.substr(0, slash);
    std::transform(vm.begin(), vm.end(), vm.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    const std::string nic = in.substr(slash + 1);
    if (!nic.empty() && nic.size() <= 5 && std::all_of(nic.begin(), nic.end(), ::isdigit))
      for (const auto& p : intent.ports)
        if (p.key.vm == vm && std::to_string(p.key.nic) == nic) port = &p;
  } else if (in.size() > 2 && in.rfind("vf", 0) == 0 && in.size() <= 7 &&
             std::all_of(in.begin() + 2, in.end(), ::isdigit)) {
    const auto vf = std::stoul(in.substr(2));
    if (vf >= host.vf_count)
      return specError(
          ErrorCode::kNotFound, "in", in,
          "no " + in + " on this host: it has " + std::to_string(host.vf_count) + " VFs");
    t.ingress = PortRef::vfPort(static_cast<std::uint16_t>(vf));
    port = portByVf(intent, static_cast<std::uint16_t>(vf));
    if (!port) {  // a VF no port uses: its packets still enter the switch
      t.representor = "pf0vf" + std::to_string(vf);
      return t;
    }
  } else {
    for (const auto& p : intent.ports)
      if (!p.representorName().empty() && p.representorName() == in) port = &p;
  }
  if (!port)
    return specError(ErrorCode::kNotFound, "in", in,
                     "no port '" + in +
                         "' on this host (give \"uplink\", a port as <vm uuid>/<nic>, its "
                         "representor name or vf<N>; `nicoffloadctl port list` shows them)");
  if (!port->vf)
    return specError(ErrorCode::kNotFound, "in", in, "port " + port->key.str() + " has no VF");
  t.ingress = PortRef::vfPort(*port->vf);
  t.port = port->key;
  t.representor = port->representorName();
  return t;
}

}  // namespace

const char* toString(KernelRoute::Type type) {
  switch (type) {
    case KernelRoute::Type::kUnicast:
      return "unicast";
    case KernelRoute::Type::kLocal:
      return "local";
    case KernelRoute::Type::kBroadcast:
      return "broadcast";
    case KernelRoute::Type::kUnreachable:
      return "unreachable";
    case KernelRoute::Type::kBlackhole:
      return "blackhole";
    case KernelRoute::Type::kProhibit:
      return "prohibit";
    case KernelRoute::Type::kOther:
      return "other";
  }
  return "?";
}

Result<TraceInput> parseTraceSpec(const json& spec, const model::Intent& intent) {
  if (!spec.is_object())
    return specError(ErrorCode::kWrongType, "packet", echo(spec),
                     std::string("the packet spec must be an object, got ") + spec.type_name());
  for (auto it = spec.begin(); it != spec.end(); ++it)
    if (std::none_of(std::begin(kTraceSpecKeys), std::end(kTraceSpecKeys),
                     [&](const char* k) { return it.key() == k; })) {
      std::string known;
      for (const char* k : kTraceSpecKeys) known += (known.empty() ? "" : ", ") + std::string(k);
      return specError(ErrorCode::kUnknownField, it.key(), it.key(),
                       "unknown packet field '" + it.key() + "' (known: " + known + ")");
    }
  const auto& host = intent.host;
  SpecReader r(spec);

  TRY_ASSIGN(in, r.str("in"));
  if (!in || in->empty())
    return specError(ErrorCode::kMissingField, "in", "",
                     "required: where the packet enters (\"uplink\" or a port <vm uuid>/<nic>)");
  TRY_ASSIGN(t, resolveIngress(*in, intent));
  const model::Port* port = nullptr;
  if (t.port)
    for (const auto& p : intent.ports)
      if (p.key == *t.port) port = &p;

  TRY_ASSIGN(src_mac, r.mac("src_mac"));
  TRY_ASSIGN(dst_mac, r.mac("dst_mac"));
  TRY_ASSIGN(src_ip, r.anyIp("src_ip"));
  TRY_ASSIGN(dst_ip, r.anyIp("dst_ip"));
  TRY_ASSIGN(spa, r.ip("spa"));
  TRY_ASSIGN(tpa, r.ip("tpa"));
  TRY_ASSIGN(proto, r.str("proto"));
  TRY_ASSIGN(ethertype_text, r.str("ethertype"));
  TRY_ASSIGN(arp_op, r.str("arp_op"));
  TRY_ASSIGN(src_port, r.number("src_port", 0, 65535, "a UDP/TCP port"));
  TRY_ASSIGN(dst_port, r.number("dst_port", 0, 65535, "a UDP/TCP port"));
  TRY_ASSIGN(ttl, r.number("ttl", 0, 255, "IPv4 time to live, or IPv6 hop limit"));
  TRY_ASSIGN(payload, r.number("payload", 0, 65000, "payload bytes"));
  TRY_ASSIGN(vni, r.number("vni", 0, 0xFFFFFF, "a 24-bit VXLAN network identifier, RFC 7348"));
  TRY_ASSIGN(vxlan_port, r.number("vxlan_port", 1, 65535, "the outer UDP destination port"));
  TRY_ASSIGN(outer_src_ip, r.anyIp("outer_src_ip"));
  TRY_ASSIGN(outer_dst_ip, r.anyIp("outer_dst_ip"));
  TRY_ASSIGN(outer_src_mac, r.mac("outer_src_mac"));
  TRY_ASSIGN(outer_dst_mac, r.mac("outer_dst_mac"));

  // The ethertype: named, numeric, or from the fields given (an IPv6
  // source or destination makes an IPv6 packet).
  const bool v6_given = (src_ip && !src_ip->isV4()) || (dst_ip && !dst_ip->isV4());
  std::uint16_t ethertype = (tpa || spa || arp_op) ? kEtherTypeArp
                            : v6_given             ? simnic::kEtherTypeIpv6
                                                   : kEtherTypeIpv4;
  if (ethertype_text) {
    if (*ethertype_text == "ipv4") {
      ethertype = kEtherTypeIpv4;
    } else if (*ethertype_text == "ipv6") {
      ethertype = simnic::kEtherTypeIpv6;
    } else if (*ethertype_text == "arp") {
      ethertype = kEtherTypeArp;
    } else {
      TRY_ASSIGN(n, r.number("ethertype", 0x600, 0xFFFF, "ipv4, ipv6, arp or an EtherType number"));
      ethertype = static_cast<std::uint16_t>(*n);
    }
  }
  const bool ip_packet = ethertype == kEtherTypeIpv4 || ethertype == simnic::kEtherTypeIpv6;
  const bool v6 = ethertype == simnic::kEtherTypeIpv6;
  for (const auto& [a, key] : {std::pair{src_ip, "src_ip"}, std::pair{dst_ip, "dst_ip"}})
    if (a && ip_packet && a->isV4() == v6)
      return specError(ErrorCode::kConflict, key, a->str(),
                       std::string(key) + " " + a->str() + " is not an " + (v6 ? "IPv6" : "IPv4") +
                           " address, as the packet is");
  if (ethertype == kEtherTypeArp && ((src_ip && !src_ip->isV4()) || (dst_ip && !dst_ip->isV4())))
    return specError(ErrorCode::kConflict, src_ip && !src_ip->isV4() ? "src_ip" : "dst_ip", "",
                     "an ARP packet carries IPv4 addresses");
  const bool vxlan =
      vni || outer_src_ip || outer_dst_ip || outer_src_mac || outer_dst_mac || vxlan_port;
  if (ethertype != kEtherTypeArp && (tpa || spa || arp_op))
    return specError(ErrorCode::kConflict,
                     tpa   ? "tpa"
                     : spa ? "spa"
                           : "arp_op",
                     "", "ARP fields need ethertype arp");
  if (!ip_packet && (proto || src_port || dst_port || ttl))
    return specError(ErrorCode::kConflict,
                     proto      ? "proto"
                     : src_port ? "src_port"
                     : dst_port ? "dst_port"
                                : "ttl",
                     "", "IP fields need ethertype ipv4 or ipv6");

  // Layer 2 defaults: a VM sends from its MAC to the gateway's; the wire
  // brings packets from the underlay next hop to the uplink's MAC.
  MacAddr wire_src = MacAddr::parse("02:00:00:00:00:01").value();
  if (host.default_next_hop)
    for (const auto& h : host.next_hops)
      if (h.address == *host.default_next_hop) wire_src = h.mac;
  const bool from_wire = t.ingress.kind == PortRef::Kind::kUplink;
  MacAddr l2_src = from_wire ? wire_src : (port ? port->mac : MacAddr{});
  MacAddr l2_dst = from_wire ? host.uplink_mac : host.gateway_mac;
  if (vxlan && host.vtep) {  // the inner frame between the VTEPs' router MACs
    l2_dst = fr::routerMacForVtep(*host.vtep);
    if (outer_src_ip) l2_src = fr::routerMacForVtep(*outer_src_ip);
  }
  if (src_mac) l2_src = *src_mac;
  if (dst_mac) l2_dst = *dst_mac;

  PacketBuilder b;
  if (ethertype == kEtherTypeArp) {
    if (!tpa)
      return specError(ErrorCode::kMissingField, "tpa", "",
                       "required for ARP: the target protocol address (who has tpa?)");
    std::uint16_t op = ArpHeader::kRequest;
    if (arp_op && *arp_op == "reply") {
      op = ArpHeader::kReply;
    } else if (arp_op && *arp_op != "request") {
      return specError(ErrorCode::kInvalidValue, "arp_op", *arp_op,
                       "'" + *arp_op + "' is not an ARP operation (request, reply)");
    }
    Ipv4Addr sender;
    if (spa) {
      sender = *spa;
    } else if (src_ip) {
      sender = src_ip->v4();
    } else if (port && !port->addresses.empty()) {
      sender = port->addresses.front();
    } else {
      return specError(ErrorCode::kMissingField, "spa", "",
                       "required: the sender protocol address (no port address to default to)");
    }
    MacAddr broadcast;
    broadcast.bytes = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    b.eth(l2_src, dst_mac ? *dst_mac : (op == ArpHeader::kRequest ? broadcast : l2_dst),
          kEtherTypeArp)
        .arp(op, l2_src, sender, op == ArpHeader::kRequest ? MacAddr{} : l2_dst, *tpa);
  } else if (ip_packet) {
    const char* family = v6 ? "IPv6" : "IPv4";
    if (!dst_ip)
      return specError(ErrorCode::kMissingField, "dst_ip", "",
                       std::string("required: the ") + family + " destination");
    std::optional<IpAddr> source = src_ip;
    if (!source && port && !v6 && !port->addresses.empty())
      source = IpAddr(port->addresses.front());
    if (!source && port && v6 && !port->addresses6.empty())
      source = IpAddr(port->addresses6.front());
    if (!source)
      return specError(
          ErrorCode::kMissingField, "src_ip", "",
          std::string("required: the ") + family + " source (no port address to default to)");
    const auto hops = static_cast<std::uint8_t>(ttl.value_or(64));
    if (v6) {
      b.eth(l2_src, l2_dst, simnic::kEtherTypeIpv6).ipv6(source->v6(), dst_ip->v6(), hops);
    } else {
      b.eth(l2_src, l2_dst).ipv4(source->v4(), dst_ip->v4(), hops);
    }
    const std::string p = proto.value_or("udp");
    if (p == "udp") {
      b.udp(static_cast<std::uint16_t>(src_port.value_or(40000)),
            static_cast<std::uint16_t>(dst_port.value_or(5001)));
    } else if (p == "tcp") {
      b.tcp(static_cast<std::uint16_t>(src_port.value_or(40000)),
            static_cast<std::uint16_t>(dst_port.value_or(80)));
    } else if (p == "icmp") {
      if (src_port || dst_port)
        return specError(ErrorCode::kConflict, src_port ? "src_port" : "dst_port", "",
                         "ICMP has no ports");
      if (v6) {
        b.icmp6();
      } else {
        b.icmp();
      }
    } else {
      return specError(ErrorCode::kInvalidValue, "proto", p,
                       "'" + p + "' is not a protocol trace knows (udp, tcp, icmp)");
    }
  } else {
    b.eth(l2_src, l2_dst, ethertype);
  }
  b.payload(static_cast<std::uint32_t>(payload.value_or(64)));
  t.packet = b.build();

  if (vxlan) {
    if (!outer_src_ip)
      return specError(ErrorCode::kMissingField, "outer_src_ip", "",
                       "required for a VXLAN packet: the remote VTEP that sent it");
    IpAddr outer_dst;
    if (outer_dst_ip) {
      outer_dst = *outer_dst_ip;
    } else if (host.vtep) {
      outer_dst = *host.vtep;
    } else {
      return specError(ErrorCode::kMissingField, "outer_dst_ip", "",
                       "required: this host has no VTEP (underlay " +
                           std::string(model::toString(host.underlay)) + ")");
    }
    if (outer_src_ip->isV4() != outer_dst.isV4())
      return specError(
          ErrorCode::kConflict, "outer_src_ip", outer_src_ip->str(),
          "the outer source and destination (" + outer_dst.str() + ") are VTEPs of one family");
    std::uint32_t v = 0;
    if (vni) {
      v = static_cast<std::uint32_t>(*vni);
    } else if (host.default_vni) {
      v = *host.default_vni;
    } else {
      return specError(ErrorCode::kMissingField, "vni", "", "required for a VXLAN packet");
    }
    t.packet = vxlanEncapsulated(
        t.packet, outer_src_mac.value_or(wire_src), outer_dst_mac.value_or(host.uplink_mac),
        *outer_src_ip, outer_dst, v, 49152,
        static_cast<std::uint16_t>(vxlan_port.value_or(host.vxlan_udp_port)));
  }
  return t;
}

namespace {

std::string ruleName(const fr::FlowRule& r) { return fr::formatRuleId(r.cls, r.id); }

json ruleRef(const CandidateRule& c, const std::map<fr::RuleId, const TraceRule*>& by_id) {
  const auto it = by_id.find(c.rule->id);
  return {{"rule", ruleName(*c.rule)},
          {"class", fr::toString(c.rule->cls)},
          {"placement", fr::toString(c.placement)},
          {"priority", c.rule->attr.priority},
          {"reason", it != by_id.end() ? it->second->reason : ""}};
}

std::string deviceOf(const TraceInput& input, PortRef port, const model::Intent& intent) {
  if (port.kind == PortRef::Kind::kUplink)
    return port.uplink_index < intent.host.uplinkCount()
               ? intent.host.uplinkNetdev(port.uplink_index)
               : port.str();
  if (port == input.ingress) return input.representor;
  if (const auto* p = portByVf(intent, port.vf)) return p->representorName();
  return "pf0vf" + std::to_string(port.vf);
}

std::string errnoText(int err) {
  switch (err) {
    case EXDEV:
      return "reverse-path filter: the source is not routed back through the device it came in on";
    case ENETUNREACH:
      return "no route (network unreachable)";
    case EHOSTUNREACH:
      return "no route (host unreachable; is forwarding on?)";
    case EINVAL:
      // Kernels since the drop-reason rework (6.13) answer EINVAL for every
      // input-route refusal, reverse-path filter included.
      return "refused at input: reverse-path filter (the source is not routed back through the "
             "device it came in on) or a martian address";
    default:
      return std::strerror(err);
  }
}

struct KernelWalk {
  const KernelView& k;
  const model::Intent& intent;
  json steps = json::array();
  json verdict;

  void step(json s) { steps.push_back(std::move(s)); }
  void finish(const std::string& kind, const std::string& text, json extra = json::object()) {
    verdict = std::move(extra);
    verdict["kind"] = kind;
    verdict["text"] = text;
  }
  bool failed(const Error& e, const std::string& what) {
    finish("unknown", "cannot look up " + what + " in the kernel: " + e.describe());
    return false;
  }

  void arp(const ArpHeader& a, const std::string& iif) {
    json s{{"step", "arp"}, {"in_dev", iif}, {"tpa", a.tpa.str()}, {"spa", a.spa.str()}};
    if (a.op != ArpHeader::kRequest) {
      step(std::move(s));
      finish("consumed", "an ARP reply: the kernel updates its neighbour table, nothing is sent");
      return;
    }
    auto route = k.routeInput(a.tpa, a.spa, iif);
    if (!route) {
      failed(route.error(), "the route to " + a.tpa.str());
      return;
    }
    s["route"] = routeJson(*route);
    auto mac = k.linkMac(iif);
    const std::string answer_mac = mac && *mac ? (*mac)->str() : "";
    if (route->error) {
      step(std::move(s));
      finish("no-answer", "no ARP answer for " + a.tpa.str() + ": " + errnoText(route->error));
      return;
    }
    if (route->type == KernelRoute::Type::kLocal) {
      step(std::move(s));
      finish("arp-reply",
             "the kernel answers: " + a.tpa.str() + " is its own address, is-at " + answer_mac,
             {{"dev", iif}, {"mac", answer_mac}});
      return;
    }
    if (route->type != KernelRoute::Type::kUnicast) {
      step(std::move(s));
      finish("no-answer",
             "no ARP answer: the route to " + a.tpa.str() + " is " + toString(route->type));
      return;
    }
    auto proxy = k.proxyArp(iif);
    if (!proxy) {
      failed(proxy.error(), "proxy_arp of " + iif);
      return;
    }
    s["proxy_arp"] = *proxy;
    step(std::move(s));
    if (route->dev == iif) {
      finish("no-answer", "no proxy-ARP answer: " + a.tpa.str() + " is routed back out of " + iif +
                              " (the device the request came in on)");
      return;
    }
    if (!*proxy) {
      finish("no-answer", "no ARP answer: proxy_arp is off on " + iif + " (" + a.tpa.str() +
                              " is routed via dev " + route->dev + ")");
      return;
    }
    finish("proxy-arp-reply",
           "proxy-ARP reply on " + iif + ": " + a.tpa.str() + " is-at " + answer_mac +
               " (routed via dev " + route->dev + ")",
           {{"dev", iif}, {"mac", answer_mac}, {"route_dev", route->dev}});
  }

  static json routeJson(const KernelRoute& r) {
    if (r.error) return {{"error", errnoText(r.error)}, {"errno", r.error}};
    json j{{"type", toString(r.type)}};
    if (!r.dev.empty()) j["dev"] = r.dev;
    if (r.gateway) j["via"] = r.gateway->str();
    return j;
  }

  // IPv4 forwarding of `p` (outermost Ethernet + IPv4) received on iif.
  void ipv4(const Packet& p, const std::string& iif, int depth) {
    const auto* ip = p.at<Ipv4Header>(1);
    auto route = k.routeInput(ip->dst, ip->src, iif);
    if (!route) {
      failed(route.error(), "the route to " + ip->dst.str());
      return;
    }
    step({{"step", "route"},
          {"in_dev", iif},
          {"dst", ip->dst.str()},
          {"src", ip->src.str()},
          {"route", routeJson(*route)}});
    if (route->error) {
      finish(route->error == EXDEV || route->error == EINVAL ? "dropped" : "no-route",
             "dropped by the kernel: " + errnoText(route->error));
      return;
    }
    if (route->type == KernelRoute::Type::kLocal) {
      if (vxlanDecap(p, depth)) return;
      finish("local", "delivered to the host itself: " + ip->dst.str() + " is a local address");
      return;
    }
    if (route->type != KernelRoute::Type::kUnicast) {
      finish("dropped",
             std::string("dropped by the kernel: the route is ") + toString(route->type));
      return;
    }
    if (ip->ttl <= 1) {
      finish("dropped", "dropped by the kernel: TTL " + std::to_string(ip->ttl) +
                            " expires on forwarding (ICMP time exceeded)");
      return;
    }
    forward(*route, ip->dst);
  }

  // IPv6 forwarding of `p` (outermost Ethernet + IPv6) received on iif:
  // the same lookups as IPv4 (RTM_GETROUTE with the input device, the
  // neighbour table), by the /128 routes the kernel path installs.
  // VXLAN to this host's VTEP (the route to the outer destination is
  // local): the VXLAN device of the VNI decapsulates, and the inner packet
  // is forwarded from it. False when `p` is not VXLAN (or is already inner).
  bool vxlanDecap(const Packet& p, int depth) {
    const auto* udp = p.at<UdpHeader>(2);
    const auto* vx = p.at<VxlanHeader>(3);
    if (!(udp && vx && udp->dst_port == intent.host.vxlan_udp_port && depth == 0 &&
          p.at<EthHeader>(4) && (p.at<Ipv4Header>(5) || p.at<simnic::Ipv6Header>(5))))
      return false;
    const std::string dev = fr::vxlanDeviceName(vx->vni);
    auto mac = k.linkMac(dev);
    if (!mac) {
      failed(mac.error(), "device " + dev);
      return true;
    }
    if (!*mac) {
      step({{"step", "vxlan-decap"}, {"vni", vx->vni}, {"dev", nullptr}});
      finish("dropped",
             "dropped: no VXLAN device for VNI " + std::to_string(vx->vni) + " (" + dev + ")");
      return true;
    }
    Packet inner = p;
    inner.headers.erase(inner.headers.begin(), inner.headers.begin() + 4);
    step({{"step", "vxlan-decap"}, {"vni", vx->vni}, {"dev", dev}, {"packet", describe(inner)}});
    if (inner.at<Ipv4Header>(1)) {
      ipv4(inner, dev, depth + 1);
    } else {
      ipv6(inner, dev, depth + 1);
    }
    return true;
  }

  void ipv6(const Packet& p, const std::string& iif, int depth = 0) {
    const auto* ip = p.at<simnic::Ipv6Header>(1);
    const IpAddr dst(ip->dst), src(ip->src);
    if (ip->dst.bytes[0] == 0xff) {
      step({{"step", "multicast"}, {"in_dev", iif}, {"dst", dst.str()}});
      finish("local", "received by the host itself: " + dst.str() +
                          " is a multicast address (neighbour discovery: the gateway's proxy "
                          "NDP entry on " +
                          iif + " answers; not forwarded)");
      return;
    }
    auto route = k.routeInput(dst, src, iif);
    if (!route) {
      failed(route.error(), "the route to " + dst.str());
      return;
    }
    step({{"step", "route"},
          {"in_dev", iif},
          {"dst", dst.str()},
          {"src", src.str()},
          {"route", routeJson(*route)}});
    if (route->error == EINVAL) {
      // IPv6 has no reverse-path filter: the kernel path's source check is
      // a blackhole rule after the rule that lets the VM's /128s on; a
      // source it allows whose destination has no route falls through to it
      // as well.
      finish("dropped", "dropped by the kernel: a blackhole rule on " + iif +
                            " (its source check: " + src.str() +
                            " is not one of the VM's /128s, or no route to " + dst.str() +
                            " matched first)");
      return;
    }
    if (route->error) {
      finish("no-route", "dropped by the kernel: " + errnoText(route->error));
      return;
    }
    if (route->type == KernelRoute::Type::kLocal) {
      if (vxlanDecap(p, depth)) return;
      finish("local", "delivered to the host itself: " + dst.str() + " is a local address");
      return;
    }
    if (route->type != KernelRoute::Type::kUnicast) {
      finish("dropped",
             std::string("dropped by the kernel: the route is ") + toString(route->type));
      return;
    }
    if (ip->hop_limit <= 1) {
      finish("dropped", "dropped by the kernel: hop limit " + std::to_string(ip->hop_limit) +
                            " expires on forwarding (ICMPv6 time exceeded)");
      return;
    }
    forward(*route, dst);
  }

  // The last hop of a forwarded packet: the neighbour the route leads to
  // (the gateway, or `dst` itself when directly connected) and, on a VXLAN
  // device, the remote VTEP its FDB holds for that neighbour's MAC.
  void forward(const KernelRoute& route, IpAddr dst) {
    const IpAddr hop = route.gateway ? *route.gateway : dst;
    auto neigh = k.neighbour(route.dev, hop);
    if (!neigh) {
      failed(neigh.error(), "the neighbour " + hop.str());
      return;
    }
    json ns{{"step", "neighbour"}, {"dev", route.dev}, {"ip", hop.str()}};
    if (*neigh) {
      ns["mac"] = (*neigh)->mac.str();
      ns["state"] = (*neigh)->state;
    } else {
      ns["mac"] = nullptr;
    }
    step(ns);
    json extra{{"dev", route.dev}};
    if (route.gateway) extra["via"] = route.gateway->str();
    const bool is_vxlan = route.dev.rfind(fr::kVxlanDevicePrefix, 0) == 0;
    if (is_vxlan && *neigh) {
      auto remotes = k.fdb(route.dev, (*neigh)->mac);
      if (!remotes) {
        failed(remotes.error(), "the FDB of " + route.dev);
        return;
      }
      json vteps = json::array();
      for (const auto& v : *remotes) vteps.push_back(v.str());
      step({{"step", "fdb"},
            {"dev", route.dev},
            {"mac", (*neigh)->mac.str()},
            {"remote_vteps", vteps}});
      if (remotes->empty()) {
        finish("dropped", "dropped: the FDB of " + route.dev + " has no remote VTEP for " +
                              (*neigh)->mac.str());
        return;
      }
      extra["remote_vtep"] = remotes->front().str();
      finish("kernel-route",
             "kernel route via dev " + route.dev + ": VXLAN-encapsulated to VTEP " +
                 remotes->front().str() + " (" + (*neigh)->mac.str() + ")",
             extra);
      return;
    }
    std::string text = "kernel route via dev " + route.dev;
    if (route.gateway) text += " via " + route.gateway->str();
    text += *neigh ? " to " + (*neigh)->mac.str()
                   : " (no neighbour entry for " + hop.str() + ": the kernel resolves it with " +
                         (hop.isV4() ? "ARP" : "neighbour discovery") + " first)";
    finish("kernel-route", text, extra);
  }
};

}  // namespace

Result<json> tracePacket(const TraceInput& input, const std::vector<TraceRule>& rules,
                         const TraceContext& ctx) {
  const model::Intent& intent = *ctx.intent;
  // Tie-break order: by id (the planner never emits two rules that tie and
  // overlap, so the order only has to be stable).
  std::vector<const TraceRule*> ordered;
  ordered.reserve(rules.size());
  for (const auto& r : rules) ordered.push_back(&r);
  std::sort(ordered.begin(), ordered.end(),
            [](const TraceRule* a, const TraceRule* b) { return a->rule.id < b->rule.id; });
  RuleList list;
  std::map<fr::RuleId, const TraceRule*> by_id;
  for (const auto* r : ordered) {
    list.add(r->rule, r->rule.placement, r->handle);
    by_id.emplace(r->rule.id, r);
  }
  auto ev = evaluateRules(list, input.packet, input.ingress, ctx.max_jumps);
  if (!ev) return ev.error();

  json steps = json::array();
  for (const auto& s : ev->steps) {
    json j{{"group", s.group}};
    if (s.matched) {
      j.update(ruleRef(*s.matched, by_id));
      j["actions"] = s.actions;
    } else {
      j["rule"] = nullptr;
      j["miss"] = true;
    }
    json bypassed = json::array();
    for (const auto& b : s.bypassed) bypassed.push_back(ruleRef(b, by_id));
    j["bypassed"] = std::move(bypassed);
    j["packet"] = describe(s.after);
    steps.push_back(std::move(j));
  }
  const Delivery& d = ev->delivery;
  const char* kind = d.kind == Delivery::Kind::kPort          ? "port"
                     : d.kind == Delivery::Kind::kRepresentor ? "representor"
                                                              : "drop";
  json verdict{{"kind", kind}, {"miss", d.miss}, {"text", d.str()}};
  if (d.kind != Delivery::Kind::kDrop) verdict["port"] = d.port.str();
  if (d.kind == Delivery::Kind::kRepresentor)
    verdict["representor"] = deviceOf(input, d.port, intent);

  json out{{"in", input.in},
           {"ingress",
            {{"switch_port", input.ingress.str()},
             {"port", input.port ? json(input.port->str()) : json()},
             {"representor", input.representor}}},
           {"packet", describe(input.packet)},
           {"hardware",
            {{"backend", ctx.backend},
             {"steps", std::move(steps)},
             {"verdict", verdict},
             {"packet", describe(d.packet)}}}};

  std::string leaves;
  if (d.kind == Delivery::Kind::kDrop) {
    leaves = "dropped in hardware";
  } else if (d.kind == Delivery::Kind::kPort) {
    leaves = d.port.kind == PortRef::Kind::kUplink
                 ? "out of the " + d.port.str() + " (wire), in hardware"
                 : "out of " + d.port.str() + " to its VM, in hardware";
    if (d.port.kind == PortRef::Kind::kVf)
      if (const auto* p = portByVf(intent, d.port.vf)) leaves += " (port " + p->key.str() + ")";
  }
  if (d.kind != Delivery::Kind::kRepresentor) {
    out["kernel"] = nullptr;
    out["leaves"] = leaves;
    return out;
  }

  // The kernel: the packet as the switch hands it to the representor.
  const std::string dev = deviceOf(input, d.port, intent);
  json kernel{{"in_dev", dev}, {"packet", describe(d.packet)}};
  if (!ctx.kernel) {
    kernel["where"] = nullptr;
    kernel["steps"] = json::array();
    kernel["verdict"] = {{"kind", "unknown"},
                         {"text", "not looked up: " + (ctx.kernel_unavailable.empty()
                                                           ? std::string("no software path")
                                                           : ctx.kernel_unavailable)}};
  } else if (dev.empty()) {
    kernel["where"] = ctx.kernel->where();
    kernel["steps"] = json::array();
    kernel["verdict"] = {{"kind", "unknown"},
                         {"text", "not looked up: the host config names no netdev for " +
                                      d.port.str() + " (uplink.netdev)"}};
  } else {
    KernelWalk walk{*ctx.kernel, intent, json::array(), json()};
    kernel["where"] = ctx.kernel->where();
    if (d.packet.at<EthHeader>(0) && d.packet.at<ArpHeader>(1)) {
      walk.arp(*d.packet.at<ArpHeader>(1), dev);
    } else if (d.packet.at<EthHeader>(0) && d.packet.at<Ipv4Header>(1)) {
      walk.ipv4(d.packet, dev, 0);
    } else if (d.packet.at<EthHeader>(0) && d.packet.at<simnic::Ipv6Header>(1)) {
      walk.ipv6(d.packet, dev);
    } else {
      walk.finish("dropped", "the software path forwards IP and answers ARP only: not forwarded");
    }
    kernel["steps"] = std::move(walk.steps);
    kernel["verdict"] = std::move(walk.verdict);
  }
  out["leaves"] = "to the kernel on " + (dev.empty() ? d.port.str() : dev) + ": " +
                  kernel["verdict"]["text"].get<std::string>();
  out["kernel"] = std::move(kernel);
  return out;
}

std::vector<std::string> traceText(const json& t) {
  std::vector<std::string> out;
  auto s = [](const json& j, const char* k) {
    const auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const json& ing = t.at("ingress");
  out.push_back("packet   " + s(t, "packet"));
  out.push_back("enters   " + s(ing, "switch_port") +
                (ing.at("port").is_string() ? " (port " + s(ing, "port") + ")" : std::string()) +
                (s(ing, "representor").empty() ? "" : ", representor " + s(ing, "representor")));
  const json& hw = t.at("hardware");
  out.push_back("hardware (" + s(hw, "backend") + "):");
  for (const auto& st : hw.at("steps")) {
    const std::string g = "  group " + std::to_string(st.at("group").get<unsigned>()) + ": ";
    for (const auto& b : st.at("bypassed"))
      out.push_back(g + "rule " + s(b, "rule") + " (" + s(b, "class") + ") matches but is placed " +
                    s(b, "placement") + ": " + s(b, "reason"));
    if (st.at("rule").is_null()) {
      out.push_back(g + "no hardware rule matches (miss)");
      continue;
    }
    out.push_back(g + "rule " + s(st, "rule") + " (" + s(st, "class") + ", " + s(st, "placement") +
                  ", priority " + std::to_string(st.at("priority").get<unsigned>()) + ")");
    out.push_back("    reason:  " + s(st, "reason"));
    std::string acts;
    for (const auto& a : st.at("actions"))
      acts += (acts.empty() ? "" : ", ") + a.get<std::string>();
    out.push_back("    actions: " + acts);
    out.push_back("    packet:  " + s(st, "packet"));
  }
  out.push_back("  verdict: " + s(hw.at("verdict"), "text"));
  if (t.at("kernel").is_object()) {
    const json& k = t.at("kernel");
    out.push_back("kernel (" + (k.at("where").is_string() ? s(k, "where") : std::string("-")) +
                  "), in on " + s(k, "in_dev") + ":");
    for (const auto& st : k.at("steps")) {
      std::string line = "  " + s(st, "step") + ":";
      for (auto it = st.begin(); it != st.end(); ++it) {
        if (it.key() == "step") continue;
        line += " " + it.key() + "=" + (it->is_string() ? it->get<std::string>() : it->dump());
      }
      out.push_back(line);
    }
    out.push_back("  verdict: " + s(k.at("verdict"), "text"));
  }
  out.push_back("leaves   " + s(t, "leaves"));
  return out;
}

}  // namespace nicoffload::trace
