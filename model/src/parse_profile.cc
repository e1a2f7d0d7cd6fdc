// Hardware profile parsing and checking (schema: hw-profiles/README.md).
#include <algorithm>
#include <array>
#include <regex>

#include "json_reader.h"
#include "nicoffload/model/json_input.h"
#include "nicoffload/model/parse.h"

namespace nicoffload::model {
namespace {

using detail::ObjectReader;
using nlohmann::json;

constexpr std::array<std::string_view, kItemTypeCount> kItemNames{
    "represented_port", "eth", "ipv4", "udp", "vxlan", "arp_eth_ipv4", "ipv6"};
constexpr std::array<std::string_view, kActionTypeCount> kActionNames{
    "set_mac_src", "set_mac_dst", "dec_ttl",     "represented_port", "port_representor",
    "vxlan_encap", "vxlan_decap", "jump",        "count",            "drop"};

constexpr int kSchemaVersion = 1;

// A capability's "source" must start with a key of the profile's "sources"
// map, then ": " and the section or quote.
bool checkSource(ObjectReader& r, std::string_view key, const std::string& source,
                 const std::map<std::string, std::string>& sources) {
  const auto colon = source.find(": ");
  if (source.empty() || colon == std::string::npos || colon == 0 ||
      colon + 2 >= source.size())
    return r.fail(ErrorCode::kInvalidValue, key, source,
                  "must read '<source-key>: <section or quote>' so the claim can be checked");
  const auto src_key = source.substr(0, colon);
  if (!sources.count(src_key)) {
    std::string known;
    for (const auto& [k, v] : sources) known += (known.empty() ? "" : ", ") + k;
    return r.fail(ErrorCode::kInvalidValue, key, source,
                  "names source '" + src_key + "', which is not in \"sources\" (known: " + known + ")");
  }
  return true;
}

bool readCapability(ObjectReader& parent, std::string_view name, bool udp_ports_allowed,
                    const std::map<std::string, std::string>& sources, Capability& cap) {
  const json* obj = nullptr;
  if (!parent.object(name, obj, true) || !obj) return parent.ok();
  ObjectReader r(*obj, parent.field(name));
  r.boolean("supported", cap.supported, true);
  if (r.string("source", cap.source, true)) checkSource(r, "source", cap.source, sources);
  r.string("note", cap.note, false);
  const json* ports = nullptr;
  if (r.array("udp_dst_ports", ports, false) && ports) {
    if (!udp_ports_allowed) {
      r.fail(ErrorCode::kUnknownField, "udp_dst_ports", *ports,
             "only vxlan, vxlan_encap and vxlan_decap carry udp_dst_ports");
    } else if (!cap.supported) {
      r.fail(ErrorCode::kConflict, "udp_dst_ports", *ports,
             "an unsupported capability cannot limit UDP ports; drop the list or set supported");
    } else if (ports->empty()) {
      r.fail(ErrorCode::kInvalidValue, "udp_dst_ports", *ports,
             "an empty list would allow no port; omit the field to allow any port");
    } else {
      for (std::size_t i = 0; i < ports->size() && r.ok(); ++i) {
        const auto& p = (*ports)[i];
        // A non-negative integer is number_unsigned when parsed from text but
        // number_integer when built in code: accept both, by value.
        if (!p.is_number_integer() || p.get<std::int64_t>() < 1 || p.get<std::int64_t>() > 65535)
          r.fail(makeError(ErrorCode::kInvalidValue, detail::indexPath(r.field("udp_dst_ports"), i),
                           detail::shortValue(p), "must be a UDP port 1..65535"));
        else
          cap.udp_dst_ports.push_back(static_cast<std::uint16_t>(p.get<std::int64_t>()));
      }
    }
  }
  const json* v6 = nullptr;
  if (r.object("ipv6_underlay", v6, false) && v6) {
    if (!udp_ports_allowed || name == "vxlan") {
      r.fail(ErrorCode::kUnknownField, "ipv6_underlay", *v6,
             "only vxlan_encap and vxlan_decap carry ipv6_underlay");
    } else {
      ObjectReader u(*v6, r.field("ipv6_underlay"));
      u.boolean("supported", cap.ipv6_underlay, true);
      if (u.string("source", cap.ipv6_underlay_source, true))
        checkSource(u, "source", cap.ipv6_underlay_source, sources);
      u.finish();
      if (!u.ok())
        r.fail(u.error());
      else if (cap.ipv6_underlay && !cap.supported)
        r.fail(ErrorCode::kConflict, "ipv6_underlay", *v6,
               "an unsupported action cannot be supported over an IPv6 underlay; set supported");
    }
  }
  r.finish();
  if (!r.ok()) return parent.fail(r.error());
  return true;
}

}  // namespace

std::string_view itemName(ItemType type) { return kItemNames[static_cast<std::size_t>(type)]; }
std::string_view actionName(ActionType type) {
  return kActionNames[static_cast<std::size_t>(type)];
}
std::optional<ItemType> itemFromName(std::string_view name) {
  for (std::size_t i = 0; i < kItemNames.size(); ++i)
    if (kItemNames[i] == name) return static_cast<ItemType>(i);
  return std::nullopt;
}
std::optional<ActionType> actionFromName(std::string_view name) {
  for (std::size_t i = 0; i < kActionNames.size(); ++i)
    if (kActionNames[i] == name) return static_cast<ActionType>(i);
  return std::nullopt;
}

Result<HwProfile> parseHwProfile(const json& doc, const std::string& name) {
  HwProfile p;
  ObjectReader r(doc, "");
  std::int64_t n = 0;
  const json* obj = nullptr;

  if (r.integer("schema_version", 1, 1000, n, true) && n != kSchemaVersion)
    r.fail(ErrorCode::kUnsupported, "schema_version", doc["schema_version"],
           "this nicoffload reads schema_version " + std::to_string(kSchemaVersion));
  if (r.string("name", p.name, true) && !name.empty() && p.name != name)
    r.fail(ErrorCode::kConflict, "name", doc["name"],
           "profile is named '" + p.name + "' but its file is '" + name + ".json'");
  r.string("model", p.model, true);
  r.string("description", p.description, false);

  // Sources first: every capability refers to them.
  if (r.object("sources", obj, true) && obj) {
    if (obj->empty()) r.fail(ErrorCode::kInvalidValue, "sources", *obj, "must name at least one document");
    for (auto it = obj->begin(); it != obj->end() && r.ok(); ++it) {
      if (!it.value().is_string() || it.value().get<std::string>().empty())
        r.fail(makeError(ErrorCode::kWrongType, "sources." + it.key(), detail::shortValue(it.value()),
                         "must be a non-empty string naming the document (URL and version)"));
      else
        p.sources[it.key()] = it.value().get<std::string>();
    }
  }

  const json* ids = nullptr;
  if (r.ok() && r.array("pci_ids", ids, true) && ids) {
    static const std::regex kPciId("^15b3:[0-9a-f]{4}$");
    for (std::size_t i = 0; i < ids->size() && r.ok(); ++i) {
      const auto& v = (*ids)[i];
      if (!v.is_string() || !std::regex_match(v.get<std::string>(), kPciId))
        r.fail(makeError(ErrorCode::kInvalidValue, detail::indexPath("pci_ids", i),
                         detail::shortValue(v),
                         "must be a Mellanox/NVIDIA PCI id '15b3:xxxx' (lower-case hex)"));
      else
        p.pci_ids.push_back(v.get<std::string>());
    }
  }

  if (r.ok() && r.object("eswitch", obj, true) && obj) {
    ObjectReader e(*obj, "eswitch");
    const json* modes = nullptr;
    if (e.array("modes", modes, true) && modes) {
      for (std::size_t i = 0; i < modes->size() && e.ok(); ++i) {
        const auto& m = (*modes)[i];
        if (m == "legacy")
          p.eswitch_modes.push_back(EswitchMode::kLegacy);
        else if (m == "switchdev")
          p.eswitch_modes.push_back(EswitchMode::kSwitchdev);
        else
          e.fail(makeError(ErrorCode::kInvalidValue, detail::indexPath("eswitch.modes", i),
                           detail::shortValue(m), "must be 'legacy' or 'switchdev'"));
      }
    }
    if (e.string("source", p.eswitch_source, true)) checkSource(e, "source", p.eswitch_source, p.sources);
    // multiport: one eswitch spans both PFs of the card, so that a transfer
    // rule may send a VF's packet out of the other PF's uplink. Optional
    // (false); when given, multiport_source says where the claim rests.
    if (e.boolean("multiport", p.multiport_eswitch, false) && e.member("multiport", false) &&
        e.string("multiport_source", p.multiport_source, true))
      checkSource(e, "multiport_source", p.multiport_source, p.sources);
    e.finish();
    if (!e.ok()) r.fail(e.error());
  }

  if (r.ok() && r.object("sriov", obj, true) && obj) {
    ObjectReader s(*obj, "sriov");
    if (s.integer("max_vfs", 0, 65535, n, true, "PCIe SR-IOV TotalVFs")) p.max_vfs = static_cast<std::uint16_t>(n);
    if (s.string("source", p.max_vfs_source, true)) checkSource(s, "source", p.max_vfs_source, p.sources);
    s.finish();
    if (!s.ok()) r.fail(s.error());
  }

  if (r.ok() && r.object("vdpa", obj, true) && obj) {
    ObjectReader v(*obj, "vdpa");
    v.boolean("kernel", p.vdpa_kernel, true);
    v.boolean("dpdk", p.vdpa_dpdk, true);
    if (v.string("source", p.vdpa_source, true)) checkSource(v, "source", p.vdpa_source, p.sources);
    v.finish();
    if (!v.ok()) r.fail(v.error());
  }

  if (r.ok() && r.object("steering", obj, true) && obj) {
    ObjectReader s(*obj, "steering");
    s.boolean("sw_steering", p.sw_steering, true);
    s.boolean("hw_steering", p.hw_steering, true);
    s.string("hw_steering_min_firmware", p.hw_steering_min_firmware, false);
    s.string("min_dpdk", p.min_dpdk, true);
    if (s.string("source", p.steering_source, true)) checkSource(s, "source", p.steering_source, p.sources);
    static const std::regex kFw("^(xx|[0-9]+)\\.[0-9]+\\.[0-9]+$");
    if (s.ok() && p.hw_steering && !std::regex_match(p.hw_steering_min_firmware, kFw))
      s.fail(ErrorCode::kInvalidValue, "hw_steering_min_firmware", p.hw_steering_min_firmware,
             "hw_steering is true, so the minimum firmware must be given as 'xx.35.1012'");
    if (s.ok() && !p.hw_steering && !p.hw_steering_min_firmware.empty())
      s.fail(ErrorCode::kConflict, "hw_steering_min_firmware", p.hw_steering_min_firmware,
             "given while hw_steering is false");
    static const std::regex kDpdk("^[0-9]{2}\\.[0-9]{2}$");
    if (s.ok() && !std::regex_match(p.min_dpdk, kDpdk))
      s.fail(ErrorCode::kInvalidValue, "min_dpdk", p.min_dpdk, "must be a DPDK release 'YY.MM'");
    s.finish();
    if (!s.ok()) r.fail(s.error());
  }

  if (r.ok() && r.object("items", obj, true) && obj) {
    ObjectReader it(*obj, "items");
    for (std::size_t i = 0; i < kItemTypeCount && it.ok(); ++i)
      readCapability(it, kItemNames[i], static_cast<ItemType>(i) == ItemType::kVxlan, p.sources,
                     p.items[i]);
    it.finish();
    if (!it.ok()) r.fail(it.error());
  }
  if (r.ok() && r.object("actions", obj, true) && obj) {
    ObjectReader ac(*obj, "actions");
    for (std::size_t i = 0; i < kActionTypeCount && ac.ok(); ++i) {
      const auto t = static_cast<ActionType>(i);
      readCapability(ac, kActionNames[i], t == ActionType::kVxlanEncap || t == ActionType::kVxlanDecap,
                     p.sources, p.actions[i]);
    }
    ac.finish();
    if (!ac.ok()) r.fail(ac.error());
  }

  if (r.ok() && r.object("tables", obj, true) && obj) {
    ObjectReader t(*obj, "tables");
    if (t.integer("max_groups", 1, 0xFFFFFFFFLL, n, true)) p.max_groups = static_cast<std::uint32_t>(n);
    if (t.integer("root_table_rules", 0, 0xFFFFFFFFLL, n, true)) p.root_table_rules = static_cast<std::uint32_t>(n);
    if (t.integer("rules_per_group", 0, 0xFFFFFFFFLL, n, true)) p.rules_per_group = static_cast<std::uint32_t>(n);
    if (t.string("source", p.tables_source, true)) checkSource(t, "source", p.tables_source, p.sources);
    t.finish();
    if (!t.ok()) r.fail(t.error());
  }
  r.finish();
  if (!r.ok()) return r.error();

  // Cross-field consistency.
  auto has = [&](EswitchMode m) {
    return std::find(p.eswitch_modes.begin(), p.eswitch_modes.end(), m) != p.eswitch_modes.end();
  };
  if (p.eswitch_modes.empty())
    return makeError(ErrorCode::kInvalidValue, "eswitch.modes", "[]", "must list at least one mode");
  if ((p.vdpa_kernel || p.vdpa_dpdk) && !has(EswitchMode::kSwitchdev))
    return makeError(ErrorCode::kConflict, "vdpa", "",
                     "vDPA on mlx5 needs the eswitch in switchdev mode, which eswitch.modes lacks");
  if (p.action(ActionType::kJump).supported && p.max_groups < 2)
    return makeError(ErrorCode::kConflict, "tables.max_groups", std::to_string(p.max_groups),
                     "jump is supported, so at least 2 groups are needed");
  if (p.action(ActionType::kVxlanEncap).supported && !p.item(ItemType::kEth).supported)
    return makeError(ErrorCode::kConflict, "actions.vxlan_encap", "",
                     "VXLAN encap is claimed without the eth item; the profile is inconsistent");
  if (p.item(ItemType::kRepresentedPort).supported && !has(EswitchMode::kSwitchdev))
    return makeError(ErrorCode::kConflict, "items.represented_port", "",
                     "transfer rules from a represented port need switchdev mode");
  if (p.item(ItemType::kRepresentedPort).supported && p.root_table_rules == 0)
    return makeError(ErrorCode::kConflict, "tables.root_table_rules", "0",
                     "rules are supported but the root table holds none");
  return p;
}

Result<HwProfile> loadHwProfile(const std::string& path, const std::string& field) {
  auto doc = readJsonFile(path, kMaxConfigFileBytes, field);
  if (!doc) return doc.error();
  std::string stem = path;
  if (auto slash = stem.rfind('/'); slash != std::string::npos) stem = stem.substr(slash + 1);
  if (stem.size() > 5 && stem.compare(stem.size() - 5, 5, ".json") == 0)
    stem = stem.substr(0, stem.size() - 5);
  auto profile = parseHwProfile(*doc, stem);
  if (!profile) {
    Error e = profile.error();
    e.field = path + ": " + e.field;
    return e;
  }
  return profile;
}

Result<HwProfile> parseHwProfileText(std::string_view text, const std::string& name) {
  try {
    auto doc = parseJsonInput(text, "hardware profile");
    if (!doc) return doc.error();
    return parseHwProfile(*doc, name);
  } catch (const std::exception& e) {  // a bug, not an input error: never let it cross
    return makeError(ErrorCode::kInternal, "hardware profile", "",
                     std::string("unexpected exception: ") + e.what());
  }
}

Status checkHostForProfile(const HostConfig& host, const HwProfile& profile) {
  const std::string of = "profile " + profile.name + " (" + profile.model + ")";
  if (host.vf_count > profile.max_vfs)
    return makeError(ErrorCode::kUnsupported, "uplink.vf_count", std::to_string(host.vf_count),
                     std::to_string(host.vf_count) + " VFs requested, but " + of +
                         " allows at most " + std::to_string(profile.max_vfs) + " per PF (" +
                         profile.max_vfs_source + ")");
  // The vDPA flavour each backend needs of the NIC; the simulated backend
  // stands in for either.
  bool has = true;
  std::string flavour;
  switch (host.vdpa_backend) {
    case VdpaKind::kNone:
      return Status::success();
    case VdpaKind::kKernel:
      has = profile.vdpa_kernel;
      flavour = "kernel vDPA";
      break;
    case VdpaKind::kDpdk:
      has = profile.vdpa_dpdk;
      flavour = "DPDK vDPA";
      break;
    case VdpaKind::kSim:
      has = profile.vdpa_kernel || profile.vdpa_dpdk;
      flavour = "vDPA";
      break;
  }
  if (has) return Status::success();
  const std::string backend = toString(host.vdpa_backend);
  if (host.vdpa_pool_size > 0)
    return makeError(ErrorCode::kUnsupported, "vdpa.pool.size", std::to_string(host.vdpa_pool_size),
                     "a pool of " + std::to_string(host.vdpa_pool_size) +
                         " vDPA devices (backends.vdpa " + backend + "), but " + of + " has no " +
                         flavour + " (" + profile.vdpa_source +
                         "); remove vdpa.pool and set backends.vdpa to none (VF passthrough), "
                         "or use another NIC");
  return makeError(ErrorCode::kUnsupported, "backends.vdpa", backend,
                   "vDPA backend '" + backend + "', but " + of + " has no " + flavour + " (" +
                       profile.vdpa_source +
                       "); set backends.vdpa to none (VF passthrough), or use another NIC");
}

}  // namespace nicoffload::model
