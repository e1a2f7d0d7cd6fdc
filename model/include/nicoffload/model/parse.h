// Parsing and validation of the JSON inputs (nlohmann/json).
//
// Every error names the field as a JSON path ("ports[2].addresses[0]") and
// the offending value. Unknown keys are refused, so a typo never passes
// silently. Schemas: README.md (host, ports) and hw-profiles/README.md.
#pragma once

#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json_fwd.hpp>

#include "nicoffload/common/error.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::model {

// Host config (/etc/nicoffload/host.json).
Result<HostConfig> parseHostConfig(const nlohmann::json& doc);

// One port object (as in the "ports" array, or a control API request). `path`
// prefixes the field names in errors.
Result<Port> parsePort(const nlohmann::json& doc, const std::string& path = "port");

// One remote endpoint object.
Result<RemoteEndpoint> parseRemote(const nlohmann::json& doc,
                                   const std::string& path = "remote");

// The ports file: {"ports": [...], "remotes": [...]}; "remotes" is optional.
// Fills ports and remotes of `intent` (host is left as it is).
Status parsePortsFile(const nlohmann::json& doc, Intent& intent);

// A hardware profile document. `name` is the profile's name (file stem); the
// document's "name" must match it.
Result<HwProfile> parseHwProfile(const nlohmann::json& doc, const std::string& name);

// Cross-object checks of a whole intent: duplicate IP/MAC/VF/port key across
// ports, VF beyond vf_count, VNI needed in VXLAN mode, remote addresses that
// collide with local ones, remotes without next hop / VTEP.
Status validateIntent(const Intent& intent);

// Checks one port against the rest of the intent as if it were added (or
// replaced, when its key exists): the same checks as validateIntent, for
// admission control. `intent` is not modified.
Status validatePortAgainst(const Intent& intent, const Port& port);

// The indexes behind validatePortAgainst(), kept between calls: a one-port
// change is checked in O(addresses of the port) instead of O(intent). Built
// from a valid intent; kept in step with upsertPort/removePort.
class IntentIndex {
 public:
  explicit IntentIndex(const Intent& intent);

  // The same checks and errors as validatePortAgainst(intent, port).
  Status checkPort(const Port& port) const;
  // Records `port` (replacing the version with the same key). Call after checkPort.
  void upsertPort(const Port& port);
  void removePort(const PortKey& key);

 private:
  HostConfig host_;
  std::map<PortKey, Port> ports_;
  std::unordered_map<Ipv4Addr, PortKey> by_ip_;
  std::unordered_map<MacAddr, PortKey> by_mac_;
  std::unordered_map<std::uint16_t, PortKey> by_vf_;
  std::unordered_map<std::string, PortKey> by_rep_;
  std::unordered_set<Ipv4Addr> remotes_;
};

// The JSON forms parsePort / parseRemote read (for the state file and the
// control API): toJson then parse gives the same object back.
nlohmann::json toJson(const Port& port);
nlohmann::json toJson(const RemoteEndpoint& remote);

// File helpers: read and parse a JSON file; errors name the path and, for
// syntax errors, the byte offset.
Result<nlohmann::json> readJsonFile(const std::string& path);
Result<HostConfig> loadHostConfig(const std::string& path);
Result<HwProfile> loadHwProfile(const std::string& path);

// Resolves a host's hw_profile setting to a file: a path containing '/' or
// ending in ".json" is used as it is; a bare name is looked up as
// <profile_dir>/<name>.json. "auto" needs the NIC backend and is refused here.
Result<std::string> resolveProfilePath(const std::string& setting, const std::string& profile_dir);

}  // namespace nicoffload::model
