// mlx5 device capabilities as the firmware reports them (QUERY_HCA_CAP over
// devx), and what they say about a hardware profile. Pure: the commands are
// byte buffers built here, the answers byte buffers parsed here; only
// nicoffload_devx (probe.h) talks to a device through rdma-core.
//
// Layouts: the mlx5 PRM as the Linux kernel transcribes it in
// include/linux/mlx5/mlx5_ifc.h and mlx5_ifc_vdpa.h (Linux 6.1, Debian
// linux-headers-6.1.0-47-common 6.1.170-3), bit offsets counted from the
// start of each structure, big-endian, bit 0 = the most significant bit of
// byte 0 (the PRM's numbering). Every offset below names its structure and
// field so that it can be checked against that header.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/model/hw_profile.h"

namespace nicoffload::devx {

// MLX5_CMD_OP_QUERY_HCA_CAP (mlx5_ifc.h).
inline constexpr std::uint16_t kOpQueryHcaCap = 0x100;

// enum mlx5_cap_type (include/linux/mlx5/device.h): the op_mod's capability
// type, shifted left by one; bit 0 selects current (1) or maximum (0) values
// (HCA_CAP_OPMOD_GET_CUR / _MAX).
enum class CapType : std::uint16_t {
  kGeneral = 0x0,           // MLX5_CAP_GENERAL: cmd_hca_cap
  kNicFlowTable = 0x7,      // MLX5_CAP_FLOW_TABLE: flow_table_nic_cap
  kEswitchFlowTable = 0x8,  // MLX5_CAP_ESWITCH_FLOW_TABLE: flow_table_eswitch_cap
  kEswitch = 0x9,           // MLX5_CAP_ESWITCH: e_switch_cap
  kVirtioEmulation = 0x13,  // MLX5_CAP_VDPA_EMULATION: virtio_emulation_cap
};
const char* toString(CapType type);

// query_hca_cap_in is 0x80 bits; query_hca_cap_out is a 0x80-bit header
// (status, syndrome) followed by the 0x8000-bit hca_cap_union.
inline constexpr std::size_t kQueryHcaCapInBytes = 16;
inline constexpr std::size_t kQueryHcaCapOutHeaderBytes = 16;
inline constexpr std::size_t kHcaCapUnionBytes = 4096;
inline constexpr std::size_t kQueryHcaCapOutBytes = kQueryHcaCapOutHeaderBytes + kHcaCapUnionBytes;

// The QUERY_HCA_CAP command for `type` (current values: what the firmware
// has enabled, not its maximum): opcode at bit 0x00 (16 bits), op_mod at bit
// 0x30 (16 bits), other_function 0.
std::vector<std::uint8_t> queryHcaCapCommand(CapType type);

// Reads `width` bits (1..64) at PRM bit offset `bit` of `buf` (big-endian).
// Bits beyond the buffer read as 0 (the caller checks sizes first).
std::uint64_t getBits(std::span<const std::uint8_t> buf, std::size_t bit, std::size_t width);

// cmd_hca_cap (op_mod general).
struct GeneralCaps {
  std::uint16_t vhca_id = 0;            // bit 0x30, 16
  bool vport_group_manager = false;     // bit 0x1a0: may manage the eswitch vports
  bool nic_flow_table = false;          // bit 0x1a6
  bool eswitch_manager = false;         // bit 0x1a7: switchdev / FDB rules (E-Switch manager)
  std::uint8_t port_type = 0;           // bit 0x1b6, 2: 0 InfiniBand, 1 Ethernet
  std::uint64_t general_obj_types = 0;  // bit 0x400, 64: MLX5_GENERAL_OBJ_TYPES_CAP_*
  bool sw_owner_id = false;             // bit 0x61e: software steering ownership (DV, dv_flow_en=1)
  // MLX5_GENERAL_OBJ_TYPES_CAP_VIRTIO_NET_Q (1 << 13): virtio-net queue objects (vDPA).
  bool virtioNetQueues() const { return (general_obj_types >> 13) & 1; }
};

// flow_table_prop_layout (one per table type).
struct FlowTableProps {
  bool ft_support = false;                // bit 0x00
  bool flow_counter = false;              // bit 0x02: COUNT
  bool reformat = false;                  // bit 0x07: packet reformat (encap)
  bool decap = false;                     // bit 0x08
  bool reformat_l3_tunnel_to_l2 = false;  // bit 0x12
  std::uint8_t log_max_ft_size = 0;       // bit 0x22, 6: a table holds 2^n rules
  std::uint8_t max_ft_level = 0;          // bit 0x38, 8: levels of chained tables
  std::uint8_t log_max_ft_num = 0;        // bit 0x78, 8
  std::uint8_t log_max_flow_counter = 0;  // bit 0x90, 8
};

// flow_table_nic_cap: flow_table_properties_nic_receive at bit 0x200.
// flow_table_eswitch_cap: flow_table_properties_nic_esw_fdb at bit 0x200.
struct FlowTableCaps {
  FlowTableProps props;
};

// e_switch_cap (op_mod eswitch).
struct EswitchCaps {
  bool vxlan_encap_decap = false;             // bit 0x20
  std::uint8_t log_max_fdb_encap_uplink = 0;  // bit 0x23, 5
};

// virtio_emulation_cap (op_mod 0x13).
struct VirtioCaps {
  bool virtio_version_1_0 = false;          // bit 0x02
  std::uint8_t max_emulated_devices = 0;    // bit 0x80, 8
  std::uint32_t max_num_virtio_queues = 0;  // bit 0x88, 24
};

// Parsers of a full query_hca_cap_out buffer (header + capability). Errors:
// kInvalidValue when the buffer is shorter than kQueryHcaCapOutBytes, or the
// command status (bit 0x00, 8) is not 0 (field "status", with the syndrome).
Result<GeneralCaps> parseGeneralCaps(std::span<const std::uint8_t> out);
Result<FlowTableCaps> parseFlowTableCaps(std::span<const std::uint8_t> out);  // NIC or eswitch FDB
Result<EswitchCaps> parseEswitchCaps(std::span<const std::uint8_t> out);
Result<VirtioCaps> parseVirtioCaps(std::span<const std::uint8_t> out);

// Everything a probe found on one PF. Optional parts are absent when the
// query failed (the firmware refuses op_mods it lacks); `errors` says why.
struct DeviceCaps {
  std::string pci;     // "0000:03:00.0"
  std::string pci_id;  // "15b3:101d" (vendor:device, sysfs)
  std::string ibdev;   // "mlx5_0"
  std::string fw_ver;  // ibv_query_device fw_ver, "22.35.1012"
  std::optional<GeneralCaps> general;
  std::optional<FlowTableCaps> nic_flow_table;
  std::optional<FlowTableCaps> fdb_flow_table;
  std::optional<EswitchCaps> eswitch;
  std::optional<VirtioCaps> virtio;
  std::vector<std::string> errors;  // one line per query that failed
};

// Compares firmware versions "MM.mm.ssss" with a minimum "xx.mm.ssss" (the
// profiles write the major as "xx": it names the NIC family, not an order).
// nullopt when either does not parse.
std::optional<bool> firmwareAtLeast(const std::string& fw_ver, const std::string& minimum);

// One statement about a profile from the device's capabilities.
struct ProbeFinding {
  enum class Severity : std::uint8_t { kOk, kFinding, kUnknown };
  Severity severity = Severity::kOk;
  std::string claim;    // "vdpa.kernel", "steering.hw_steering", ...
  std::string message;  // what the device says, with the capability bit
};
const char* toString(ProbeFinding::Severity s);

// The profile whose pci_ids hold `pci_id` ("15b3:101d"), among `profiles`.
// Errors: kNotFound when none does (names the id); kConflict when two do.
Result<model::HwProfile> chooseProfile(const std::string& pci_id,
                                       const std::vector<model::HwProfile>& profiles);

// Checks the profile's claims that the capabilities can speak to: switchdev
// (eswitch_manager), firmware >= hw_steering_min_firmware, VXLAN encap/decap
// (e_switch_cap and FDB reformat/decap), COUNT (FDB flow_counter), vDPA
// (virtio-net queue objects), the FDB table size (2^log_max_ft_size) against
// root_table_rules / rules_per_group. A claim the capabilities cannot decide
// (a query failed) is kUnknown.
std::vector<ProbeFinding> checkProfile(const DeviceCaps& caps, const model::HwProfile& profile);

}  // namespace nicoffload::devx
