// Rendering of the desired state: DPDK testpmd `flow create` syntax (so an
// operator can paste a rule into testpmd on the real NIC) and JSON.
#pragma once

#include <iosfwd>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "nicoffload/flowrules/planner.h"

namespace nicoffload::flowrules {

// DPDK ethdev port ids of the switch ports, as testpmd numbers them when
// started with "-a <PF>,representor=vf[0-N]": the PF first, then vf0, vf1...
struct PortNumbering {
  std::uint16_t uplink = 0;            // also the transfer proxy port the rules are created on
  std::uint16_t first_representor = 1;
  std::uint16_t uplink2 = 0;  // the second uplink's PF (dpdk.uplink2_port_id)
  std::uint16_t of(const PortRef& p) const {
    if (p.kind == PortRef::Kind::kUplink) return p.uplink_index == 0 ? uplink : uplink2;
    return static_cast<std::uint16_t>(first_representor + p.vf);
  }
  static PortNumbering fromHost(const model::HostConfig& host) {
    return {host.uplink_port_id, host.first_representor_port_id,
            host.uplink2 ? host.uplink2->port_id : std::uint16_t{0}};
  }
};

// The testpmd commands for one rule: a "set vxlan-tos-ttl ..." line first for rules
// with VXLAN_ENCAP, then the "flow create ..." line.
std::vector<std::string> renderTestpmd(const FlowRule& rule, const PortNumbering& ports);

// The lines to paste into testpmd for one rule. A rule placed hw gives
// renderTestpmd()'s lines. A rule placed sw is not for the hardware (its
// next hop may be unresolved, giving a zero destination MAC; the NIC may
// lack an item): it gives a "# sw, not for the hardware: <reason>" line, then
// its lines commented out, so that pasting the whole output into testpmd
// installs exactly what the plan puts in hardware.
std::vector<std::string> renderTestpmdForPaste(const FlowRule& rule, const PortNumbering& ports,
                                               const model::HwProfile& profile);

// JSON forms (stable field names; a rule's is documented in docs/control-api.md, "rules").
nlohmann::json toJson(const FlowRule& rule, const model::HwProfile& profile);
nlohmann::json toJson(const SoftwarePathState& sw);
nlohmann::json toJson(const DesiredState& state, const model::HwProfile& profile,
                      const PortNumbering& ports);
// Writes the same document as toJson(state, profile, ports) to `out`, one
// rule or object at a time, so that memory stays flat however many rules
// the plan holds (100 k remotes: one document of them took 1.3 GB). One
// element per line; the top-level keys in the order toJson's dump gives
// them, the sections of "software_path" in the planner's order.
void writeJson(std::ostream& out, const DesiredState& state, const model::HwProfile& profile,
               const PortNumbering& ports);

// Text lines for the software-path objects, in `ip`/`bridge`-like notation
// (for reading only: nicoffload never runs these commands).
std::vector<std::string> describeSoftwarePath(const SoftwarePathState& sw);

}  // namespace nicoffload::flowrules
