#include "nicoffload/flowrules/render.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>

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
  // testpmd: "dst is X" for a host, "dst spec X dst prefix N" under a mask.
  std::string operator()(const Ipv6Item& i) const {
    std::string s = "ipv6";
    if (i.field == Ipv6Item::Field::kNone) return s;
    const char* f = i.field == Ipv6Item::Field::kSrc ? "src" : "dst";
    if (i.len == 128) return s + " " + f + " is " + i.addr.str();
    return s + " " + f + " spec " + i.addr.str() + " " + f + " prefix " + std::to_string(i.len);
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
  if (p.kind == PortRef::Kind::kVf) return json{{"port", "vf"}, {"vf", p.vf}};
  if (p.uplink_index == 0) return json{{"port", "uplink"}};
  return json{{"port", "uplink"}, {"uplink", p.uplink_index}};
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
  json operator()(const Ipv6Item& i) const {
    json spec = json::object();
    if (i.field != Ipv6Item::Field::kNone)
      spec[i.field == Ipv6Item::Field::kSrc ? "src" : "dst"] =
          i.len == 128 ? i.addr.str() : Ipv6Prefix{i.addr, i.len}.str();
    return {{"type", "ipv6"}, {"spec", spec}};
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
            {"eth_src", e.eth_src.str()},
            {"eth_dst", e.eth_dst.str()},
            {e.ipv6() ? "ipv6_src" : "ipv4_src", e.src.str()},
            {e.ipv6() ? "ipv6_dst" : "ipv4_dst", e.dst.str()},
            {"udp_src", e.udp_src},
            {"udp_dst", e.udp_dst},
            {"vni", e.vni}};
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
    // Over IPv6, ip-tos is the traffic class and ip-ttl the hop limit.
    lines.push_back(std::string("set vxlan-tos-ttl ip-version ") + (e.ipv6() ? "ipv6" : "ipv4") +
                    " vni " + std::to_string(e.vni) + " udp-src " + std::to_string(e.udp_src) +
                    " udp-dst " + std::to_string(e.udp_dst) + " ip-tos 0 ip-ttl " +
                    std::to_string(kVxlanEncapTtl) + " ip-src " + e.src.str() + " ip-dst " +
                    e.dst.str() + " eth-src " + e.eth_src.str() + " eth-dst " + e.eth_dst.str());
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

std::vector<std::string> renderTestpmdForPaste(const FlowRule& rule, const PortNumbering& ports,
                                               const model::HwProfile& profile) {
  auto lines = renderTestpmd(rule, ports);
  if (rule.placement == Placement::kHw) return lines;
  std::vector<std::string> out;
  out.reserve(lines.size() + 1);
  std::string reason = describeReason(rule.reason, profile);
  // One comment line, whatever the profile's text holds.
  std::replace(reason.begin(), reason.end(), '\n', ' ');
  out.push_back("# sw, not for the hardware: " + reason);
  for (auto& line : lines) out.push_back("# " + line);
  return out;
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

namespace {

// The software-path objects as JSON, section by section ("sysctls", ...) and
// object by object: toJson() collects them, writeJson() streams them.
template <class Section, class Element>
void visitSoftwarePathJson(const SoftwarePathState& sw, Section&& section, Element&& element) {
  section("sysctls");
  for (const auto& s : sw.sysctls) element(json{{"path", "net/" + s.path}, {"value", s.value}});
  section("links");
  for (const auto& l : sw.links) element(json{{"dev", l.dev}, {"mac", l.mac.str()}, {"up", l.up}});
  section("addresses");
  for (const auto& a : sw.addresses) element(json{{"dev", a.dev}, {"prefix", a.prefix.str()}});
  section("vxlan_devices");
  for (const auto& v : sw.vxlan_devices)
    element(json{{"name", v.name},
                 {"vni", v.vni},
                 {"local", v.local.str()},
                 {"dst_port", v.dst_port},
                 {"mac", v.mac.str()},
                 {"underlay_dev", v.underlay_dev},
                 {"learning", false}});
  section("fdb");
  for (const auto& f : sw.fdb)
    element(json{{"dev", f.dev}, {"mac", f.mac.str()}, {"dst", f.dst.str()}});
  section("neighbours");
  for (const auto& n : sw.neighbours)
    element(json{{"dev", n.dev}, {"ip", n.ip.str()}, {"mac", n.mac.str()}, {"state", "permanent"}});
  section("routes");
  for (const auto& r : sw.routes) {
    json route = {{"dst", r.dst.str()}, {"table", r.table}, {"protocol", r.protocol}};
    if (!r.dev.empty()) route["dev"] = r.dev;
    if (r.via) route["via"] = r.via->str();
    if (r.onlink) route["onlink"] = true;
    element(std::move(route));
  }
  // IPv6 sections only on a host with IPv6 objects (gateway.ipv6 set).
  if (!sw.neighbours6.empty()) {
    section("neighbours6");
    for (const auto& n : sw.neighbours6)
      element(n.proxy ? json{{"dev", n.dev}, {"ip", n.ip.str()}, {"proxy", true}}
                      : json{{"dev", n.dev}, {"ip", n.ip.str()}, {"mac", n.mac.str()}, {"state", "permanent"}});
  }
  if (!sw.routes6.empty()) {
    section("routes6");
    for (const auto& r : sw.routes6) {
      json j{{"dst", r.dst.str()}, {"dev", r.dev}, {"table", r.table}, {"protocol", r.protocol}};
      if (r.via) j["via"] = r.via->str();
      if (r.onlink) j["onlink"] = true;
      element(std::move(j));
    }
  }
  if (!sw.rules6.empty()) {
    section("rules6");
    for (const auto& r : sw.rules6) {
      json rule = {{"iif", r.iif}, {"priority", r.priority}, {"protocol", r.protocol}};
      if (r.src) rule["from"] = r.src->str();
      if (r.dst) rule["to"] = r.dst->str();
      if (r.blackhole)
        rule["action"] = "blackhole";
      else
        rule["table"] = r.table;
      element(std::move(rule));
    }
  }
}

json countsJson(const DesiredState& state) {
  json by_reason = json::object();
  for (std::size_t i = 1; i < state.counts.sw_by_reason.size(); ++i)
    if (state.counts.sw_by_reason[i]) by_reason[reasonCodeName(i)] = state.counts.sw_by_reason[i];
  return {{"rules", state.counts.total()},
          {"hw", state.counts.hw},
          {"sw", state.counts.sw},
          {"sw_by_reason", by_reason},
          {"software_path_objects", state.sw.size()}};
}

json ruleJson(const FlowRule& r, const model::HwProfile& profile, const PortNumbering& ports) {
  json jr = toJson(r, profile);
  jr["testpmd"] = renderTestpmd(r, ports);
  return jr;
}

json vdpaJson(const vdpa::VdpaDeviceSpec& d) {
  return {{"name", d.name},      {"port", d.port.str()}, {"kind", model::toString(d.kind)},
          {"vf", d.vf},          {"mac", d.mac.str()},   {"mtu", d.mtu},
          {"max_vqp", d.max_vqp}};
}

json vfJson(const vdpa::VfAssignment& v) {
  return {{"vf", v.vf}, {"port", v.port.str()}, {"mac", v.mac.str()}};
}

// Streams a JSON array: "[", one element a line at `indent`, "]".
class ArrayWriter {
 public:
  ArrayWriter(std::ostream& out, const char* indent) : out_(out), indent_(indent) { out_ << '['; }
  void add(const json& element) {
    out_ << (first_ ? "\n" : ",\n") << indent_
         << element.dump(-1, ' ', false, json::error_handler_t::replace);
    first_ = false;
  }
  void close(const char* closing_indent) {
    if (!first_) out_ << '\n' << closing_indent;
    out_ << ']';
  }

 private:
  std::ostream& out_;
  const char* indent_;
  bool first_ = true;
};

}  // namespace

json toJson(const SoftwarePathState& sw) {
  json j = json::object();
  json* current = nullptr;
  visitSoftwarePathJson(
      sw, [&](const char* name) { current = &(j[name] = json::array()); },
      [&](json&& element) { current->push_back(std::move(element)); });
  return j;
}

json toJson(const DesiredState& state, const model::HwProfile& profile, const PortNumbering& ports) {
  json rules = json::array();
  for (const auto& r : state.rules) rules.push_back(ruleJson(r, profile, ports));
  json vdpa = json::array();
  for (const auto& d : state.vdpa_devices) vdpa.push_back(vdpaJson(d));
  json vfs = json::array();
  for (const auto& v : state.vfs) vfs.push_back(vfJson(v));
  return {{"profile", profile.name},
          {"counts", countsJson(state)},
          {"rules", rules},
          {"software_path", toJson(state.sw)},
          {"vfs", vfs},
          {"vdpa_devices", vdpa}};
}

void writeJson(std::ostream& out, const DesiredState& state, const model::HwProfile& profile,
               const PortNumbering& ports) {
  const auto dump = [](const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
  };
  out << "{\n  \"counts\": " << dump(countsJson(state))
      << ",\n  \"profile\": " << dump(profile.name) << ",\n  \"rules\": ";
  ArrayWriter rules(out, "    ");
  for (const auto& r : state.rules) rules.add(ruleJson(r, profile, ports));
  rules.close("  ");
  out << ",\n  \"software_path\": {";
  std::optional<ArrayWriter> section;
  const char* separator = "\n    ";
  visitSoftwarePathJson(
      state.sw,
      [&](const char* name) {
        if (section) section->close("    ");
        out << separator << '"' << name << "\": ";
        separator = ",\n    ";
        section.emplace(out, "      ");
      },
      [&](json&& element) { section->add(element); });
  if (section) section->close("    ");
  out << "\n  },\n  \"vdpa_devices\": ";
  ArrayWriter vdpa(out, "    ");
  for (const auto& d : state.vdpa_devices) vdpa.add(vdpaJson(d));
  vdpa.close("  ");
  out << ",\n  \"vfs\": ";
  ArrayWriter vfs(out, "    ");
  for (const auto& v : state.vfs) vfs.add(vfJson(v));
  vfs.close("  ");
  out << "\n}\n";
}

std::string describeRule6(const Rule6Entry& r) {
  std::string s = "rule6 pref " + std::to_string(r.priority) + " iif " + r.iif;
  if (r.src) s += " from " + r.src->str();
  if (r.dst) s += " to " + r.dst->str();
  s += r.blackhole ? " blackhole" : " lookup " + std::to_string(r.table);
  return s + " proto " + std::to_string(r.protocol);
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
  for (const auto& n : sw.neighbours6)
    out.push_back(n.proxy ? "neigh6 proxy " + n.ip.str() + " dev " + n.dev
                          : "neigh6 " + n.ip.str() + " lladdr " + n.mac.str() + " dev " + n.dev + " permanent");
  for (const auto& r : sw.routes6)
    out.push_back("route6 " + r.dst.str() + (r.via ? " via " + r.via->str() : "") + " dev " +
                  r.dev + (r.onlink ? " onlink" : "") + " table " + std::to_string(r.table) +
                  " proto " + std::to_string(r.protocol));
  for (const auto& r : sw.rules6) out.push_back(describeRule6(r));
  return out;
}

}  // namespace nicoffload::flowrules
