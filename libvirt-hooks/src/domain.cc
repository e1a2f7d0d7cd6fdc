#include "nicoffload/hooks/domain.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>
#include <pugixml.hpp>
#include <set>
#include <sstream>

#include "nicoffload/common/text.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/vdpa/domain_xml.h"

namespace nicoffload::hooks {

namespace {

using nlohmann::json;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

// pugixml does not resolve namespaces: find the URI bound to the element's
// prefix on the element or its ancestors.
std::string namespaceOf(pugi::xml_node node) {
  const std::string name = node.name();
  const auto colon = name.find(':');
  const std::string attr = colon == std::string::npos ? "xmlns" : "xmlns:" + name.substr(0, colon);
  for (pugi::xml_node n = node; n; n = n.parent())
    if (auto a = n.attribute(attr.c_str())) return a.value();
  return {};
}

std::string localName(pugi::xml_node node) {
  const std::string name = node.name();
  const auto colon = name.find(':');
  return colon == std::string::npos ? name : name.substr(colon + 1);
}

bool isOurs(pugi::xml_node node, const char* local) {
  return node.type() == pugi::node_element && localName(node) == local &&
         namespaceOf(node) == kMetadataNamespace;
}

// A namespace URI that looks meant for nicoffload but is not ours exactly
// (".../ports/1/", ".../ports/2", "HTTP://NICOFFLOAD.ORG/..."): libvirt keeps
// such metadata and the hook would ignore it in silence.
bool almostOurs(std::string_view uri) {
  return uri != kMetadataNamespace &&
         lower(std::string(uri)).find("nicoffload") != std::string::npos;
}

bool validUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

Result<pugi::xml_document*> load(pugi::xml_document& doc, std::string_view xml) {
  const auto r = doc.load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!r)
    return makeError(ErrorCode::kInvalidValue, "domain XML", "",
                     std::string("the domain XML is not well-formed: ") + r.description() +
                         " at byte " + std::to_string(r.offset));
  if (std::string_view(doc.document_element().name()) != "domain")
    return makeError(
        ErrorCode::kInvalidValue, "domain XML", doc.document_element().name(),
        std::string("the root element is <") + doc.document_element().name() + ">, not <domain>");
  return &doc;
}

Status readIdentity(pugi::xml_node domain, Domain& out) {
  out.name = trim(domain.child_value("name"));
  out.uuid = lower(trim(domain.child_value("uuid")));
  if (out.uuid.empty())
    return makeError(ErrorCode::kMissingField, "uuid", "", "the domain XML has no <uuid>");
  // The UUID is the port key's vm: it travels to nicoffloadd in JSON, where
  // invalid UTF-8 cannot go.
  if (!validUuid(out.uuid))
    return makeError(
        ErrorCode::kInvalidValue, "uuid", out.uuid,
        "<uuid> '" + printable(out.uuid) + "' is not a UUID (expected 8-4-4-4-12 hex digits)");
  return Status::success();
}

void readInterfaces(pugi::xml_node domain, Domain& out) {
  std::size_t index = 0;
  for (pugi::xml_node iface : domain.child("devices").children("interface")) {
    DomainInterface i;
    i.index = index++;
    i.type = iface.attribute("type").value();
    const std::string mac = iface.child("mac").attribute("address").value();
    const auto parsed = MacAddr::parse(mac);
    i.mac = parsed ? parsed->str() : lower(mac);
    i.target_dev = iface.child("target").attribute("dev").value();
    pugi::xml_node src = iface.child("source");
    for (const char* a : {"dev", "path", "bridge", "network"})
      if (auto attr = src.attribute(a)) {
        i.source_dev = attr.value();
        break;
      }
    out.interfaces.push_back(std::move(i));
  }
}

// Attribute values and text go into JSON towards nicoffloadd: refuse what
// JSON cannot carry before it gets there (dump() throws on invalid UTF-8).
Status utf8Text(const std::string& field, const char* text) {
  if (isValidUtf8(text)) return Status::success();
  return makeError(ErrorCode::kInvalidValue, field, text,
                   "'" + printable(text) + "' is not valid UTF-8");
}

Result<json> numberAttr(const std::string& field, const char* text) {
  std::uint64_t v = 0;
  const std::string s = trim(text);
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size())
    return makeError(ErrorCode::kInvalidValue, field, text,
                     std::string("'") + text + "' is not a non-negative integer");
  return json(v);
}

Error renamePortField(Error e, const std::string& path) {
  // parsePort speaks JSON ("addresses[0]", "vm"); the metadata speaks XML.
  const std::string addresses = path + ".addresses";
  if (e.field.rfind(addresses, 0) == 0)
    e.field = path + ".address" + e.field.substr(addresses.size());
  if (e.field == path + ".vm") e.field = "uuid";
  return e;
}

Status readPorts(pugi::xml_node domain, Domain& out) {
  std::size_t count = 0;
  std::set<std::string> macs;
  for (pugi::xml_node ports : domain.child("metadata").children()) {
    if (ports.type() != pugi::node_element) continue;
    if (!isOurs(ports, "ports")) {
      if (const std::string uri = namespaceOf(ports); almostOurs(uri))
        out.warnings.push_back(printable(
            std::string("<metadata> element <") + ports.name() + "> is in the namespace '" + uri +
                "', not '" + std::string(kMetadataNamespace) +
                "': nicoffload ignores it (no port is offloaded from it)",
            kMaxErrorMessageBytes));
      continue;
    }
    out.has_metadata = true;
    for (pugi::xml_node node : ports.children()) {
      if (node.type() != pugi::node_element) continue;
      const std::string path = "nfo:port[" + std::to_string(count) + "]";
      if (!isOurs(node, "port"))
        return makeError(ErrorCode::kUnknownField, "nfo:ports", node.name(),
                         std::string("unknown element <") + node.name() +
                             "> in <nfo:ports> (expected <nfo:port>)");
      ++count;
      json doc{{"vm", out.uuid}, {"nic", 0}};
      for (pugi::xml_attribute a : node.attributes()) {
        const std::string name = a.name();
        const std::string field = path + "." + name;
        if (auto s = utf8Text(field, a.value()); !s) return s.error();
        if (name == "mac" || name == "representor" || name == "vdpa") {
          doc[name] = a.value();
        } else if (name == "vni" || name == "vf" || name == "mtu" || name == "queues") {
          auto n = numberAttr(field, a.value());
          if (!n) return n.error();
          doc[name] = *n;
        } else if (name.rfind("xmlns", 0) == 0) {
          continue;
        } else {
          return makeError(ErrorCode::kUnknownField, field, a.value(),
                           "unknown attribute '" + name +
                               "' (known: mac, vni, vf, representor, mtu, queues, vdpa)");
        }
      }
      if (!doc.contains("mac"))
        return makeError(ErrorCode::kMissingField, path + ".mac", "",
                         "the port has no mac attribute");
      json addresses = json::array();
      for (pugi::xml_node child : node.children()) {
        if (child.type() == pugi::node_pcdata && trim(child.value()).empty()) continue;
        if (!isOurs(child, "address"))
          return makeError(ErrorCode::kUnknownField, path, child.name(),
                           std::string("unknown content <") + child.name() +
                               "> in a port (expected <nfo:address>)");
        if (auto s = utf8Text(path + ".address", child.child_value()); !s) return s.error();
        addresses.push_back(trim(child.child_value()));
      }
      if (addresses.empty())
        return makeError(ErrorCode::kMissingField, path + ".address", "",
                         "the port lists no <nfo:address> (at least one IPv4 /32 or IPv6 /128)");
      doc["addresses"] = std::move(addresses);

      auto port = model::parsePort(doc, path);
      if (!port) return renamePortField(port.error(), path);
      const std::string mac = port->mac.str();
      if (!macs.insert(mac).second)
        return makeError(ErrorCode::kDuplicate, path + ".mac", mac,
                         "two ports name the MAC " + mac);
      const auto it = std::find_if(out.interfaces.begin(), out.interfaces.end(),
                                   [&](const DomainInterface& i) { return i.mac == mac; });
      if (it == out.interfaces.end())
        return makeError(ErrorCode::kNotFound, path + ".mac", mac,
                         "no <interface> of the domain has the MAC " + mac);
      if (it->index > kMaxInterfaceIndex)
        return makeError(ErrorCode::kInvalidValue, path + ".mac", mac,
                         "the <interface> with the MAC " + mac + " is the domain's interface " +
                             std::to_string(it->index) + "; nicoffload numbers a domain's " +
                             "interfaces 0.." + std::to_string(kMaxInterfaceIndex));
      port->key.nic = static_cast<std::uint16_t>(it->index);
      if (port->representor.empty() && it->type == "ethernet" && !it->target_dev.empty()) {
        // The tap stands for the representor: it must pass the checks a
        // representor in the metadata passes (nicoffloadd would refuse it).
        const std::string target_field = "interface[" + std::to_string(it->index) + "].target.dev";
        if (auto s = utf8Text(target_field, it->target_dev.c_str()); !s) return s.error();
        json with_representor = doc;
        with_representor["representor"] = it->target_dev;
        auto checked = model::parsePort(with_representor, path);
        if (!checked)
          return makeError(checked.error().code, target_field, it->target_dev,
                           "the <target dev> of the ethernet <interface> with the MAC " + mac +
                               " would be the port's representor: " + checked.error().message);
        port->representor = it->target_dev;
      }
      out.ports.push_back(std::move(port).value());
      out.port_interface.push_back(it->index);
    }
  }
  return Status::success();
}

std::string render(const pugi::xml_document& doc) {
  std::ostringstream out;
  doc.save(out, "  ",
           pugi::format_indent | pugi::format_no_declaration | pugi::format_attribute_single_quote);
  return out.str();
}

}  // namespace

Result<Domain> parseDomainIdentity(std::string_view xml) {
  pugi::xml_document doc;
  if (auto r = load(doc, xml); !r) return r.error();
  Domain out;
  if (auto s = readIdentity(doc.document_element(), out); !s) return s.error();
  return out;
}

Result<Domain> parseDomainXml(std::string_view xml) {
  pugi::xml_document doc;
  if (auto r = load(doc, xml); !r) return r.error();
  const pugi::xml_node domain = doc.document_element();
  Domain out;
  if (auto s = readIdentity(domain, out); !s) return s.error();
  readInterfaces(domain, out);
  if (auto s = readPorts(domain, out); !s) return s.error();
  return out;
}

Result<std::string> rewriteInterfaces(std::string_view xml,
                                      const std::vector<InterfaceRewrite>& rewrites) {
  pugi::xml_document doc;
  if (auto r = load(doc, xml); !r) return r.error();
  auto setAttr = [](pugi::xml_node parent, const char* child, const char* attr,
                    const std::string& value) {
    pugi::xml_node c = parent.child(child);
    if (!c) c = parent.append_child(child);
    pugi::xml_attribute a = c.attribute(attr);
    if (!a) a = c.append_attribute(attr);
    a.set_value(value.c_str());
  };
  for (pugi::xml_node iface : doc.document_element().child("devices").children("interface")) {
    const auto mac = MacAddr::parse(iface.child("mac").attribute("address").value());
    if (!mac) continue;
    for (const auto& r : rewrites) {
      if (r.mac != mac->str()) continue;
      const std::string type = iface.attribute("type").value();
      if (type == "ethernet" && !r.target_dev.empty())
        setAttr(iface, "target", "dev", r.target_dev);
      if (type != "vdpa" && type != "vhostuser") continue;
      if (!r.vdpa_dev.empty()) {
        iface.attribute("type").set_value("vdpa");
        iface.remove_child("source");
        iface.insert_child_after("source", iface.child("mac"))
            .append_attribute("dev")
            .set_value(r.vdpa_dev.c_str());
      } else if (!r.vhostuser_path.empty()) {
        iface.attribute("type").set_value("vhostuser");
        iface.remove_child("source");
        pugi::xml_node source = iface.insert_child_after("source", iface.child("mac"));
        source.append_attribute("type") = "unix";
        source.append_attribute("path") = r.vhostuser_path.c_str();
        source.append_attribute("mode") = "client";
        pugi::xml_node reconnect = source.append_child("reconnect");
        reconnect.append_attribute("enabled") = "yes";
        reconnect.append_attribute("timeout") = 5;
      }
    }
  }
  return render(doc);
}

Result<std::string> interfaceXmlFor(const model::Port& port, const std::string& kind,
                                    const std::string& source) {
  if (kind == "vdpa") return vdpa::vdpaInterfaceXml(source, port);
  if (kind == "vhostuser") return vdpa::vhostUserInterfaceXml(source, port);
  if (kind != "ethernet")
    return makeError(
        ErrorCode::kInvalidValue, "kind", kind,
        "'" + kind + "' is not an interface kind (expected ethernet, vdpa or vhostuser)");
  const std::string dev = source.empty() ? port.representorName() : source;
  if (dev.empty())
    return makeError(ErrorCode::kMissingField, "representor", "",
                     "an ethernet interface needs the representor (tap) name: give --representor, "
                     "--vf or --source");
  pugi::xml_document doc;
  pugi::xml_node iface = doc.append_child("interface");
  iface.append_attribute("type") = "ethernet";
  iface.append_child("mac").append_attribute("address") = port.mac.str().c_str();
  pugi::xml_node target = iface.append_child("target");
  target.append_attribute("dev") = dev.c_str();
  // libvirt creates the tap, which stands for the representor (simulation,
  // tests). On a real hypervisor the VM's NIC is vdpa or vhostuser.
  target.append_attribute("managed") = "yes";
  iface.append_child("model").append_attribute("type") = "virtio";
  if (port.mtu != 1500)
    iface.append_child("mtu").append_attribute("size") = static_cast<unsigned>(port.mtu);
  return render(doc);
}

std::string metadataXmlFor(const std::vector<model::Port>& ports) {
  pugi::xml_document doc;
  pugi::xml_node metadata = doc.append_child("metadata");
  pugi::xml_node root = metadata.append_child("nfo:ports");
  root.append_attribute("xmlns:nfo") = std::string(kMetadataNamespace).c_str();
  for (const auto& p : ports) {
    pugi::xml_node n = root.append_child("nfo:port");
    n.append_attribute("mac") = p.mac.str().c_str();
    if (p.vni) n.append_attribute("vni") = static_cast<unsigned>(*p.vni);
    if (p.vf) n.append_attribute("vf") = static_cast<unsigned>(*p.vf);
    if (!p.representor.empty()) n.append_attribute("representor") = p.representor.c_str();
    if (p.mtu != 1500) n.append_attribute("mtu") = static_cast<unsigned>(p.mtu);
    if (p.queues != 1) n.append_attribute("queues") = static_cast<unsigned>(p.queues);
    if (p.vdpa) n.append_attribute("vdpa") = model::toString(*p.vdpa);
    for (const auto& a : p.addresses)
      n.append_child("nfo:address").text() = (a.str() + "/32").c_str();
    for (const auto& a : p.addresses6)
      n.append_child("nfo:address").text() = (a.str() + "/128").c_str();
  }
  return render(doc);
}

}  // namespace nicoffload::hooks
