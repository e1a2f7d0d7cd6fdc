#include "nicoffload/devx/caps.h"

#include <charconv>
#include <cstdio>

namespace nicoffload::devx {

namespace {

// Bit offsets (PRM numbering) of the fields read below; see caps.h for the
// structures they come from (Linux 6.1 mlx5_ifc.h / mlx5_ifc_vdpa.h).
constexpr std::size_t kCapBase =
    kQueryHcaCapOutHeaderBytes * 8;  // hca_cap_union in query_hca_cap_out

Status checkOut(std::span<const std::uint8_t> out, CapType type) {
  if (out.size() < kQueryHcaCapOutBytes)
    return makeError(ErrorCode::kInvalidValue,
                     std::string("query_hca_cap_out(") + toString(type) + ")",
                     std::to_string(out.size()),
                     "answer of " + std::to_string(out.size()) + " bytes, expected " +
                         std::to_string(kQueryHcaCapOutBytes));
  if (const auto status = getBits(out, 0x00, 8); status != 0)
    return makeError(
        ErrorCode::kInvalidValue, "status", std::to_string(status),
        std::string("QUERY_HCA_CAP ") + toString(type) + " failed: status 0x" + [&] {
          char b[32];
          std::snprintf(b, sizeof b, "%02x, syndrome 0x%08x", static_cast<unsigned>(status),
                        static_cast<unsigned>(getBits(out, 0x20, 32)));
          return std::string(b);
        }());
  return Status::success();
}

FlowTableProps parseProps(std::span<const std::uint8_t> out, std::size_t base) {
  FlowTableProps p;
  p.ft_support = getBits(out, base + 0x00, 1);
  p.flow_counter = getBits(out, base + 0x02, 1);
  p.reformat = getBits(out, base + 0x07, 1);
  p.decap = getBits(out, base + 0x08, 1);
  p.reformat_l3_tunnel_to_l2 = getBits(out, base + 0x12, 1);
  p.log_max_ft_size = static_cast<std::uint8_t>(getBits(out, base + 0x22, 6));
  p.max_ft_level = static_cast<std::uint8_t>(getBits(out, base + 0x38, 8));
  p.log_max_ft_num = static_cast<std::uint8_t>(getBits(out, base + 0x78, 8));
  p.log_max_flow_counter = static_cast<std::uint8_t>(getBits(out, base + 0x90, 8));
  return p;
}

struct FwVersion {
  std::optional<unsigned> major;  // unset for "xx"
  unsigned minor = 0, sub = 0;
};

std::optional<FwVersion> parseFw(const std::string& s) {
  FwVersion v;
  unsigned parts[3];
  std::size_t pos = 0;
  for (int i = 0; i < 3; ++i) {
    const auto dot = s.find('.', pos);
    const std::string part =
        s.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (i == 0 && part == "xx") {
      parts[0] = 0;
    } else {
      auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), parts[i]);
      if (ec != std::errc() || p != part.data() + part.size() || part.empty()) return std::nullopt;
      if (i == 0) v.major = parts[0];
    }
    if (i < 2) {
      if (dot == std::string::npos) return std::nullopt;
      pos = dot + 1;
    } else if (dot != std::string::npos) {
      // "22.35.1012 (MT_0000000359)": ibv fw_ver may carry a PSID after a space.
      return std::nullopt;
    }
  }
  v.minor = parts[1];
  v.sub = parts[2];
  return v;
}

}  // namespace

const char* toString(CapType type) {
  switch (type) {
    case CapType::kGeneral:
      return "general";
    case CapType::kNicFlowTable:
      return "nic-flow-table";
    case CapType::kEswitchFlowTable:
      return "eswitch-flow-table";
    case CapType::kEswitch:
      return "eswitch";
    case CapType::kVirtioEmulation:
      return "virtio-emulation";
  }
  return "?";
}

const char* toString(ProbeFinding::Severity s) {
  switch (s) {
    case ProbeFinding::Severity::kOk:
      return "ok";
    case ProbeFinding::Severity::kFinding:
      return "finding";
    case ProbeFinding::Severity::kUnknown:
      return "unknown";
  }
  return "?";
}

std::vector<std::uint8_t> queryHcaCapCommand(CapType type) {
  std::vector<std::uint8_t> in(kQueryHcaCapInBytes, 0);
  // opcode: bits 0x00..0x0f (bytes 0-1); op_mod: bits 0x30..0x3f (bytes 6-7).
  in[0] = static_cast<std::uint8_t>(kOpQueryHcaCap >> 8);
  in[1] = static_cast<std::uint8_t>(kOpQueryHcaCap & 0xff);
  const std::uint16_t op_mod =
      static_cast<std::uint16_t>((static_cast<std::uint16_t>(type) << 1) | 1);
  in[6] = static_cast<std::uint8_t>(op_mod >> 8);
  in[7] = static_cast<std::uint8_t>(op_mod & 0xff);
  return in;
}

std::uint64_t getBits(std::span<const std::uint8_t> buf, std::size_t bit, std::size_t width) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < width; ++i) {
    const std::size_t b = bit + i;
    const std::size_t byte = b / 8;
    const unsigned bit_in_byte = 7 - static_cast<unsigned>(b % 8);
    const std::uint64_t x = byte < buf.size() ? (buf[byte] >> bit_in_byte) & 1u : 0u;
    v = (v << 1) | x;
  }
  return v;
}

Result<GeneralCaps> parseGeneralCaps(std::span<const std::uint8_t> out) {
  if (auto s = checkOut(out, CapType::kGeneral); !s) return s.error();
  GeneralCaps c;
  c.vhca_id = static_cast<std::uint16_t>(getBits(out, kCapBase + 0x30, 16));
  c.vport_group_manager = getBits(out, kCapBase + 0x1a0, 1);
  c.nic_flow_table = getBits(out, kCapBase + 0x1a6, 1);
  c.eswitch_manager = getBits(out, kCapBase + 0x1a7, 1);
  c.port_type = static_cast<std::uint8_t>(getBits(out, kCapBase + 0x1b6, 2));
  c.general_obj_types = getBits(out, kCapBase + 0x400, 64);
  c.sw_owner_id = getBits(out, kCapBase + 0x61e, 1);
  return c;
}

Result<FlowTableCaps> parseFlowTableCaps(std::span<const std::uint8_t> out) {
  if (auto s = checkOut(out, CapType::kEswitchFlowTable); !s) return s.error();
  // flow_table_properties_nic_receive (flow_table_nic_cap) and
  // flow_table_properties_nic_esw_fdb (flow_table_eswitch_cap) both sit at 0x200.
  return FlowTableCaps{parseProps(out, kCapBase + 0x200)};
}

Result<EswitchCaps> parseEswitchCaps(std::span<const std::uint8_t> out) {
  if (auto s = checkOut(out, CapType::kEswitch); !s) return s.error();
  EswitchCaps c;
  c.vxlan_encap_decap = getBits(out, kCapBase + 0x20, 1);
  c.log_max_fdb_encap_uplink = static_cast<std::uint8_t>(getBits(out, kCapBase + 0x23, 5));
  return c;
}

Result<VirtioCaps> parseVirtioCaps(std::span<const std::uint8_t> out) {
  if (auto s = checkOut(out, CapType::kVirtioEmulation); !s) return s.error();
  VirtioCaps c;
  c.virtio_version_1_0 = getBits(out, kCapBase + 0x02, 1);
  c.max_emulated_devices = static_cast<std::uint8_t>(getBits(out, kCapBase + 0x80, 8));
  c.max_num_virtio_queues = static_cast<std::uint32_t>(getBits(out, kCapBase + 0x88, 24));
  return c;
}

std::optional<bool> firmwareAtLeast(const std::string& fw_ver, const std::string& minimum) {
  auto have = parseFw(fw_ver.substr(0, fw_ver.find(' ')));
  auto need = parseFw(minimum);
  if (!have || !need || !have->major) return std::nullopt;
  if (need->major && *need->major != *have->major) return *have->major > *need->major;
  if (have->minor != need->minor) return have->minor > need->minor;
  return have->sub >= need->sub;
}

Result<model::HwProfile> chooseProfile(const std::string& pci_id,
                                       const std::vector<model::HwProfile>& profiles) {
  const model::HwProfile* found = nullptr;
  for (const auto& p : profiles)
    for (const auto& id : p.pci_ids)
      if (id == pci_id) {
        if (found && found->name != p.name)
          return makeError(
              ErrorCode::kConflict, "pci_ids", pci_id,
              "profiles " + found->name + " and " + p.name + " both claim PCI id " + pci_id);
        found = &p;
      }
  if (!found)
    return makeError(
        ErrorCode::kNotFound, "pci_ids", pci_id,
        "no hardware profile lists PCI id " + pci_id + "; write one (hw-profiles/README.md)");
  return *found;
}

std::vector<ProbeFinding> checkProfile(const DeviceCaps& caps, const model::HwProfile& profile) {
  using S = ProbeFinding::Severity;
  std::vector<ProbeFinding> out;
  auto add = [&](S s, std::string claim, std::string msg) {
    out.push_back({s, std::move(claim), std::move(msg)});
  };

  // PCI id.
  if (!caps.pci_id.empty()) {
    bool listed = false;
    for (const auto& id : profile.pci_ids) listed = listed || id == caps.pci_id;
    add(listed ? S::kOk : S::kFinding, "pci_ids",
        listed ? "the device " + caps.pci_id + " is one the profile lists"
               : "the device is " + caps.pci_id + ", which the profile " + profile.name +
                     " does not list");
  }

  const bool claims_switchdev = [&] {
    for (auto m : profile.eswitch_modes)
      if (m == model::EswitchMode::kSwitchdev) return true;
    return false;
  }();
  if (!caps.general) {
    add(S::kUnknown, "eswitch.modes", "QUERY_HCA_CAP general failed: switchdev not checked");
  } else if (claims_switchdev) {
    const bool ok = caps.general->eswitch_manager && caps.general->vport_group_manager;
    add(ok ? S::kOk : S::kFinding, "eswitch.modes",
        std::string("cmd_hca_cap.eswitch_manager=") + (caps.general->eswitch_manager ? "1" : "0") +
            " vport_group_manager=" + (caps.general->vport_group_manager ? "1" : "0") +
            (ok ? ": this function manages the eswitch (switchdev possible)"
                : ": this function cannot manage the eswitch, switchdev is not possible here"));
  }

  // Steering.
  if (profile.hw_steering) {
    const auto at_least = firmwareAtLeast(caps.fw_ver, profile.hw_steering_min_firmware);
    if (!at_least)
      add(S::kUnknown, "steering.hw_steering",
          "firmware '" + caps.fw_ver + "' or minimum '" + profile.hw_steering_min_firmware +
              "' does not parse");
    else
      add(*at_least ? S::kOk : S::kFinding, "steering.hw_steering",
          "firmware " + caps.fw_ver + (*at_least ? " >= " : " < ") +
              profile.hw_steering_min_firmware +
              (*at_least ? "" : ": hardware steering (dv_flow_en=2) needs a firmware update"));
  }
  if (profile.sw_steering && caps.general)
    add(caps.general->sw_owner_id ? S::kOk : S::kFinding, "steering.sw_steering",
        std::string("cmd_hca_cap.sw_owner_id=") + (caps.general->sw_owner_id ? "1" : "0"));

  // Encap / decap and COUNT in the FDB.
  const bool encap = profile.action(model::ActionType::kVxlanEncap).supported;
  const bool decap = profile.action(model::ActionType::kVxlanDecap).supported;
  if (encap || decap) {
    if (!caps.eswitch || !caps.fdb_flow_table) {
      add(S::kUnknown, "actions.vxlan_encap/vxlan_decap",
          "eswitch or FDB capabilities could not be read");
    } else {
      const auto& f = caps.fdb_flow_table->props;
      if (encap) {
        const bool ok = caps.eswitch->vxlan_encap_decap && f.reformat;
        add(ok ? S::kOk : S::kFinding, "actions.vxlan_encap",
            std::string("e_switch_cap.vxlan_encap_decap=") +
                (caps.eswitch->vxlan_encap_decap ? "1" : "0") +
                " fdb.reformat=" + (f.reformat ? "1" : "0"));
      }
      if (decap) {
        const bool ok = caps.eswitch->vxlan_encap_decap && (f.decap || f.reformat_l3_tunnel_to_l2);
        add(ok ? S::kOk : S::kFinding, "actions.vxlan_decap",
            std::string("e_switch_cap.vxlan_encap_decap=") +
                (caps.eswitch->vxlan_encap_decap ? "1" : "0") +
                " fdb.decap=" + (f.decap ? "1" : "0"));
      }
    }
  }
  if (caps.fdb_flow_table) {
    const auto& f = caps.fdb_flow_table->props;
    if (profile.action(model::ActionType::kCount).supported)
      add(f.flow_counter ? S::kOk : S::kFinding, "actions.count",
          std::string("fdb.flow_counter=") + (f.flow_counter ? "1" : "0"));
    const std::uint64_t size = f.log_max_ft_size >= 63 ? ~0ull : (1ull << f.log_max_ft_size);
    const std::uint64_t claimed = std::max(profile.root_table_rules, profile.rules_per_group);
    add(claimed <= size ? S::kOk : S::kFinding, "tables",
        "fdb.log_max_ft_size=" + std::to_string(f.log_max_ft_size) + " (" + std::to_string(size) +
            " rules per table); the profile claims " + std::to_string(claimed));
  } else {
    add(S::kUnknown, "tables", "FDB flow table capabilities could not be read");
  }

  // vDPA.
  if (profile.vdpa_kernel || profile.vdpa_dpdk) {
    if (!caps.general) {
      add(S::kUnknown, "vdpa", "QUERY_HCA_CAP general failed: vDPA not checked");
    } else {
      const bool q = caps.general->virtioNetQueues();
      const bool ok = q && caps.virtio && caps.virtio->max_num_virtio_queues > 0;
      add(ok ? S::kOk : S::kFinding, "vdpa",
          std::string("general_obj_types VIRTIO_NET_Q=") + (q ? "1" : "0") +
              ", virtio_emulation_cap " +
              (caps.virtio
                   ? "max_num_virtio_queues=" + std::to_string(caps.virtio->max_num_virtio_queues)
                   : std::string("not readable")));
    }
  }
  return out;
}

}  // namespace nicoffload::devx
