#include "nicoffload/vdpa/domain_xml.h"

#include <pugixml.hpp>
#include <sstream>

namespace nicoffload::vdpa {

namespace {

Status checkPath(const std::string& path, const model::Port& port, const char* what) {
  if (path.empty() || path.front() != '/')
    return makeError(ErrorCode::kInvalidValue, port.key.str(), path,
                     std::string("the ") + what + " of port " + port.key.str() +
                         " is not an absolute path: '" + path + "'");
  return Status::success();
}

pugi::xml_node interfaceNode(pugi::xml_document& doc, const char* type, const model::Port& port) {
  pugi::xml_node iface = doc.append_child("interface");
  iface.append_attribute("type") = type;
  iface.append_child("mac").append_attribute("address") = port.mac.str().c_str();
  return iface;
}

std::string render(const pugi::xml_document& doc) {
  std::ostringstream out;
  doc.save(out, "  ",
           pugi::format_indent | pugi::format_no_declaration | pugi::format_attribute_single_quote);
  return out.str();
}

}  // namespace

Result<std::string> vdpaInterfaceXml(const std::string& dev_path, const model::Port& port) {
  if (auto s = checkPath(dev_path, port, "vhost-vdpa device"); !s) return s.error();
  pugi::xml_document doc;
  pugi::xml_node iface = interfaceNode(doc, "vdpa", port);
  iface.append_child("source").append_attribute("dev") = dev_path.c_str();
  iface.append_child("model").append_attribute("type") = "virtio";
  return render(doc);
}

Result<std::string> vhostUserInterfaceXml(const std::string& socket_path, const model::Port& port) {
  if (auto s = checkPath(socket_path, port, "vhost-user socket"); !s) return s.error();
  pugi::xml_document doc;
  pugi::xml_node iface = interfaceNode(doc, "vhostuser", port);
  pugi::xml_node source = iface.append_child("source");
  source.append_attribute("type") = "unix";
  source.append_attribute("path") = socket_path.c_str();
  source.append_attribute("mode") = "client";
  pugi::xml_node reconnect = source.append_child("reconnect");
  reconnect.append_attribute("enabled") = "yes";
  reconnect.append_attribute("timeout") = 5;
  iface.append_child("model").append_attribute("type") = "virtio";
  if (port.mtu != 1500)
    iface.append_child("mtu").append_attribute("size") = static_cast<unsigned>(port.mtu);
  if (port.queues > 1)
    iface.append_child("driver").append_attribute("queues") = static_cast<unsigned>(port.queues);
  return render(doc);
}

}  // namespace nicoffload::vdpa
