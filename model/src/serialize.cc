#include <nlohmann/json.hpp>

#include "nicoffload/model/parse.h"

namespace nicoffload::model {

nlohmann::json toJson(const Port& port) {
  nlohmann::json j;
  j["vm"] = port.key.vm;
  j["nic"] = port.key.nic;
  j["mac"] = port.mac.str();
  j["addresses"] = nlohmann::json::array();
  for (const auto a : port.addresses) j["addresses"].push_back(a.str() + "/32");
  for (const auto& a : port.addresses6) j["addresses"].push_back(a.str() + "/128");
  j["mtu"] = port.mtu;
  j["queues"] = port.queues;
  if (port.vni) j["vni"] = *port.vni;
  if (port.vf) j["vf"] = *port.vf;
  if (!port.representor.empty()) j["representor"] = port.representor;
  if (port.vdpa) j["vdpa"] = toString(*port.vdpa);
  if (port.tentative_until_ms) j["tentative_until_ms"] = *port.tentative_until_ms;
  return j;
}

nlohmann::json toJson(const RemoteEndpoint& remote) {
  nlohmann::json j;
  j["address"] = remote.address.str() + "/" + std::to_string(remote.address.hostLength());
  if (remote.next_hop) j["next_hop"] = remote.next_hop->str();
  if (remote.vtep) j["vtep"] = remote.vtep->str();
  if (remote.vni) j["vni"] = *remote.vni;
  if (remote.origin != RemoteEndpoint::kDefaultRemoteOrigin) j["origin"] = remote.origin;
  return j;
}

}  // namespace nicoffload::model
