#include "nicoffload/flowrules/render.h"

#include <nlohmann/json.hpp>

#include "nicoffload/flowrules/flow_backend.h"

namespace nicoffload::flowrules {
namespace {

using nlohmann::json;

std::string etherType(std::uint16_t t) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%04x", t);
  return buf;
}

struct ItemText {
  const PortNumbering& ports;
  std::string operator()(const PortItem& i) const {
    return "represented_port ethdev_port_id is " + std::to_string(ports.of(i.port));
  }
  std::string operator()(const EthItem& i) const {
    std::string s = "eth";
    if (i.fields & EthItem::kSrc) s += " src is " + i.src.str();
    if (i.fields & EthItem::kDst) s += " dst is " + i.dst.str();
    if (i.fields & EthItem::kType) s += " type is " + etherType(i.ether_type);
    return s;
  }
  std::string operator()(const Ipv4Item& i) const {
    std::string s = "ipv4";
    if (i.fields & Ipv4Item::kSrc) s += " src is " + i.src.str();
    if (i.fields & Ipv4Item::kDst) s += " dst is " + i.dst.str();
    return s;
  }
  std::string operator()(const UdpItem& i) const {
    std::string s = "udp";
    if (i.fields & UdpItem::kDst) s += " dst is " + std::to_string(i.dst_port);
    return s;
  }
  std::string operator()(const VxlanItem& i) const { return "vxlan vni is " + std::to_string(i.vni); }
};

struct ActionText {
  const PortNumbering& ports;
  std::string operator()(const SetMacSrcAction& a) const { return "set_mac_src mac_addr " + a.mac.str(); }
  std::string operator()(const SetMacDstAction& a) const { return "set_mac_dst mac_addr " + a.mac.str(); }
  std::string operator()(const DecTtlAction&) const { return "dec_ttl"; }
  std::string operator()(const RepresentedPortAction& a) const {
    return "represented_port ethdev_port_id " + std::to_string(ports.of(a.port));
  }
  std::string operator()(const PortRepresentorAction& a) const {
    return "port_representor port_id " + std::to_string(ports.of(a.port));
  }
  std::string operator()(const VxlanEncapAction&) const { return "vxlan_encap"; }
  std::string operator()(const VxlanDecapAction&) const { return "vxlan_decap"; }
  std::string operator()(const JumpAction& a) const { return "jump group " + std::to_string(a.group); }
  std::string operator()(const CountAction&) const { return "count"; }
  std::string operator()(const DropAction&) const { return "drop"; }
};

json portJson(const PortRef& p) {
  return p.kind == PortRef::Kind::kUplink ? json{{"port", "uplink"}} : json{{"port", "vf"}, {"vf", p.vf}};
}

struct ItemJson {
  json operator()(const PortItem& i) const { return {{"type", "represented_port"}, {"spec", portJson(i.port)}}; }
  json operator()(const EthItem& i) const {
    json spec = json::object();
    if (i.fields & EthItem::kSrc) spec["src"] = i.src.str();
    if (i.fields & EthItem::kDst) spec["dst"] = i.dst.str();
    if (i.fields & EthItem::kType) spec["type"] = etherType(i.ether_type);
    return {{"type", "eth"}, {"spec", spec}};
  }
  json operator()(const Ipv4Item& i) const {
    json spec = json::object();
    if (i.fields & Ipv4Item::kSrc) spec["src"] = i.src.str();
    if (i.fields & Ipv4Item::kDst) spec["dst"] = i.dst.str();
    return {{"type", "ipv4"}, {"spec", spec}};
  }
  json operator()(const UdpItem& i) const {
    json spec = json::object();
    if (i.fields & UdpItem::kDst) spec["dst"] = i.dst_port;
    return {{"type", "udp"}, {"spec", spec}};
  }
  json operator()(const VxlanItem& i) const { return {{"type", "vxlan"}, {"spec", {{"vni", i.vni}}}}; }
};

struct ActionJson {
  const FlowRule& rule;
  json operator()(const SetMacSrcAction& a) const { return {{"type", "set_mac_src"}, {"mac", a.mac.str()}}; }
  json operator()(const SetMacDstAction& a) const { return {{"type", "set_mac_dst"}, {"mac", a.mac.str()}}; }
  json operator()(const DecTtlAction&) const { return {{"type", "dec_ttl"}}; }
  json operator()(const RepresentedPortAction& a) const {
    json j = portJson(a.port);
    j["type"] = "represented_port";
    return j;
  }
  json operator()(const PortRepresentorAction& a) const {
    json j = portJson(a.port);
    j["type"] = "port_representor";
    return j;
  }
  json operator()(const VxlanEncapAction&) const {
    const auto& e = *rule.encap;
    return {{"type", "vxlan_encap"},
            {"eth_src", e.eth_src.str()}, {"eth_dst", e.eth_dst.str()},
            {"ipv4_src", e.ipv4_src.str()}, {"ipv4_dst", e.ipv4_dst.str()},
            {"udp_src", e.udp_src}, {"udp_dst", e.udp_dst}, {"vni", e.vni}};
  }
  json operator()(const VxlanDecapAction&) const { return {{"type", "vxlan_decap"}}; }
  json operator()(const JumpAction& a) const { return {{"type", "jump"}, {"group", a.group}}; }
  json operator()(const CountAction&) const { return {{"type", "count"}}; }
  json operator()(const DropAction&) const { return {{"type", "drop"}}; }
};

}  // namespace

std::vector<std::string> renderTestpmd(const FlowRule& rule, const PortNumbering& ports) {
  std::vector<std::string> lines;
  if (rule.encap) {
    const auto& e = *rule.encap;
    // vxlan-tos-ttl: the outer TTL the backends write (kVxlanEncapTtl), not
    // testpmd's own default, so that the pasted rule is the installed one.
    lines.push_back("set vxlan-tos-ttl ip-version ipv4 vni " + std::to_string(e.vni) + " udp-src " +
                    std::to_string(e.udp_src) + " udp-dst " + std::to_string(e.udp_dst) +
                    " ip-tos 0 ip-ttl " + std::to_string(kVxlanEncapTtl) +
                    " ip-src " + e.ipv4_src.str() + " ip-dst " + e.ipv4_dst.str() + " eth-src " +
                    e.eth_src.str() + " eth-dst " + e.eth_dst.str());
  }
  std::string s = "flow create " + std::to_string(ports.uplink);
  if (rule.attr.group) s += " group " + std::to_string(rule.attr.group);
  if (rule.attr.priority) s += " priority " + std::to_string(rule.attr.priority);
  if (rule.attr.ingress) s += " ingress";
  if (rule.attr.transfer) s += " transfer";
  s += " pattern";
  for (const auto& item : rule.pattern) s += " " + std::visit(ItemText{ports}, item) + " /";
  s += " end actions";
  for (const auto& action : rule.actions) s += " " + std::visit(ActionText{ports}, action) + " /";
  s += " end";
  lines.push_back(std::move(s));
  return lines;
}

json toJson(const FlowRule& rule, const model::HwProfile& profile) {
  json pattern = json::array();
  for (const auto& item : rule.pattern) pattern.push_back(std::visit(ItemJson{}, item));
  json actions = json::array();
  for (const auto& action : rule.actions) actions.push_back(std::visit(ActionJson{rule}, action));
  return {{"id", formatRuleId(rule.cls, rule.id)},
          {"class", toString(rule.cls)},
          {"placement", toString(rule.placement)},
          {"reason", describeReason(rule.reason, profile)},
          {"group", rule.attr.group},
          {"priority", rule.attr.priority},
          {"transfer", rule.attr.transfer},
          {"pattern", pattern},
          {"actions", actions}};
}

json toJson(const SoftwarePathState& sw) {
  json j;
  j["sysctls"] = json::array();
  for (const auto& s : sw.sysctls) j["sysctls"].push_back({{"path", "net/" + s.path}, {"value", s.value}});
  j["links"] = json::array();
  for (const auto& l : sw.links) j["links"].push_back({{"dev", l.dev}, {"mac", l.mac.str()}, {"up", l.up}});
  j["addresses"] = json::array();
  for (const auto& a : sw.addresses) j["addresses"].push_back({{"dev", a.dev}, {"prefix", a.prefix.str()}});
  j["vxlan_devices"] = json::array();
  for (const auto& v : sw.vxlan_devices)
    j["vxlan_devices"].push_back({{"name", v.name}, {"vni", v.vni}, {"local", v.local.str()},
                                  {"dst_port", v.dst_port}, {"mac", v.mac.str()},
                                  {"underlay_dev", v.underlay_dev}, {"learning", false}});
  j["fdb"] = json::array();
  for (const auto& f : sw.fdb) j["fdb"].push_back({{"dev", f.dev}, {"mac", f.mac.str()}, {"dst", f.dst.str()}});
  j["neighbours"] = json::array();
  for (const auto& n : sw.neighbours)
    j["neighbours"].push_back({{"dev", n.dev}, {"ip", n.ip.str()}, {"mac", n.mac.str()}, {"state", "permanent"}});
  j["routes"] = json::array();
  for (const auto& r : sw.routes) {
    json route = {{"dst", r.dst.str()}, {"table", r.table}, {"protocol", r.protocol}};
    if (!r.dev.empty()) route["dev"] = r.dev;
    if (r.via) route["via"] = r.via->str();
    if (r.onlink) route["onlink"] = true;
    j["routes"].push_back(route);
  }
  return j;
}

json toJson(const DesiredState& state, const model::HwProfile& profile, const PortNumbering& ports) {
  json rules = json::array();
  for (const auto& r : state.rules) {
    json jr = toJson(r, profile);
    jr["testpmd"] = renderTestpmd(r, ports);
    rules.push_back(std::move(jr));
  }
  json vdpa = json::array();
  for (const auto& d : state.vdpa_devices)
    vdpa.push_back({{"name", d.name}, {"port", d.port.str()}, {"kind", model::toString(d.kind)},
                    {"vf", d.vf}, {"mac", d.mac.str()}, {"mtu", d.mtu}, {"max_vqp", d.max_vqp}});
  json vfs = json::array();
  for (const auto& v : state.vfs) vfs.push_back({{"vf", v.vf}, {"port", v.port.str()}, {"mac", v.mac.str()}});
  json by_reason = json::object();
  static const char* kReasonNames[] = {"none", "item-unsupported", "action-unsupported",
                                       "udp-port-unsupported", "next-hop-unresolved", "table-full",
                                       "follows", "device-refused"};
  for (std::size_t i = 1; i < state.counts.sw_by_reason.size(); ++i)
    if (state.counts.sw_by_reason[i]) by_reason[kReasonNames[i]] = state.counts.sw_by_reason[i];
  return {{"profile", profile.name},
          {"counts", {{"rules", state.counts.total()}, {"hw", state.counts.hw}, {"sw", state.counts.sw},
                      {"sw_by_reason", by_reason}, {"software_path_objects", state.sw.size()}}},
          {"rules", rules},
          {"software_path", toJson(state.sw)},
          {"vfs", vfs},
          {"vdpa_devices", vdpa}};
}

std::vector<std::string> describeSoftwarePath(const SoftwarePathState& sw) {
  std::vector<std::string> out;
  for (const auto& s : sw.sysctls) out.push_back("sysctl net/" + s.path + " = " + s.value);
  for (const auto& l : sw.links) out.push_back("link " + l.dev + " address " + l.mac.str() + (l.up ? " up" : " down"));
  for (const auto& a : sw.addresses) out.push_back("address " + a.prefix.str() + " dev " + a.dev);
  for (const auto& v : sw.vxlan_devices)
    out.push_back("vxlan " + v.name + " id " + std::to_string(v.vni) + " local " + v.local.str() +
                  " dstport " + std::to_string(v.dst_port) + " nolearning address " + v.mac.str() +
                  (v.underlay_dev.empty() ? "" : " dev " + v.underlay_dev));
  for (const auto& f : sw.fdb) out.push_back("fdb " + f.mac.str() + " dev " + f.dev + " dst " + f.dst.str());
  for (const auto& n : sw.neighbours)
    out.push_back("neigh " + n.ip.str() + " lladdr " + n.mac.str() + " dev " + n.dev + " permanent");
  for (const auto& r : sw.routes) {
    std::string s = "route " + r.dst.str();
    if (r.via) s += " via " + r.via->str();
    if (!r.dev.empty()) s += " dev " + r.dev;
    if (r.onlink) s += " onlink";
    s += " table " + std::to_string(r.table) + " proto " + std::to_string(r.protocol);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace nicoffload::flowrules
