// The rule IR as rte_flow arrays (DPDK 22.11): attributes, an END-terminated
// pattern and an END-terminated action list, with every spec, mask and conf
// they point to owned by the same object. Pure translation: no EAL needed,
// tested at the struct level.
//
// Mapping (one rte_flow item per IR item, one action per IR action, same
// order, so an rte_flow_error cause maps back to the IR index):
//   PortItem              REPRESENTED_PORT  spec.port_id = ethdev port, mask 0xffff
//   EthItem               ETH               src/dst/type as matched (mask ff.. per field);
//                                           no field: spec = mask = NULL (any Ethernet)
//   Ipv4Item              IPV4              src/dst (network order, mask /32)
//   Ipv6Item              IPV6              src or dst (mask: the item's prefix length)
//   UdpItem               UDP               dst port (network order)
//   VxlanItem             VXLAN             VNI (24 bits, mask 0xffffff)
//   SetMacSrc/DstAction   SET_MAC_SRC/DST   conf.mac_addr
//   DecTtlAction          DEC_TTL           no conf
//   RepresentedPortAction REPRESENTED_PORT  conf.port_id (the VF's representor port: out to the VM;
//                                           the PF port: out to the wire)
//   PortRepresentorAction PORT_REPRESENTOR  conf.port_id (to that representor: the kernel)
//   VxlanEncapAction      VXLAN_ENCAP       conf.definition = ETH / IPV4 / UDP / VXLAN / END
//                                           from FlowRule::encap (outer TTL kVxlanEncapTtl)
//   VxlanDecapAction      VXLAN_DECAP       no conf
//   JumpAction            JUMP              conf.group
//   CountAction           COUNT             conf.id = 0 (a counter of the rule's own)
//   DropAction            DROP              no conf
// Attributes: group, priority, transfer (eswitch/FDB domain). The rte_flow
// tunnel-offload API (rte_flow_tunnel_decap_set) is deliberately not used.
#pragma once

#include <rte_flow.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/flowrules/rule.h"

namespace nicoffload::dpdk {

// The ethdev ports of the embedded switch.
struct SwitchPorts {
  std::uint16_t proxy = 0;                       // the transfer proxy: flow rules are created on it
  std::uint16_t uplink = 0;                      // the PF port (its REPRESENTED_PORT is the wire)
  std::vector<std::optional<std::uint16_t>> vf;  // vf[n]: port of VF n's representor
  // The second uplink's PF port, where one eswitch spans both PFs (a
  // multiport eswitch); unset: rules to it are refused (kNotFound).
  std::optional<std::uint16_t> uplink2;

  // The ethdev port of a switch port. Errors: kNotFound for a VF without a
  // representor port.
  Result<std::uint16_t> portOf(const flowrules::PortRef& p) const;
};

// One translated rule. Move-only; the arrays stay valid as long as it lives.
class RteFlowRule {
 public:
  RteFlowRule();
  RteFlowRule(RteFlowRule&&) noexcept;
  RteFlowRule& operator=(RteFlowRule&&) noexcept;
  ~RteFlowRule();

  const rte_flow_attr& attr() const;
  const rte_flow_item* pattern() const;    // END-terminated
  const rte_flow_action* actions() const;  // END-terminated
  std::size_t patternSize() const;         // items before END
  std::size_t actionsSize() const;         // actions before END
  // The COUNT action of the rule (for rte_flow_query), or nullptr.
  const rte_flow_action* countAction() const;

  // Where an rte_flow_error cause points in the IR rule: the index of the
  // item or action whose struct, spec, last, mask, conf or (VXLAN_ENCAP)
  // definition it is.
  struct Cause {
    enum class Kind { kUnknown, kItem, kAction };
    Kind kind = Kind::kUnknown;
    std::size_t index = 0;
  };
  Cause locate(const void* cause) const;

 private:
  friend Result<RteFlowRule> translate(const flowrules::FlowRule& rule, const SwitchPorts& ports);
  struct Storage;
  std::unique_ptr<Storage> s_;
};

// Translates `rule` for the ports of `ports`. Errors: kInvalidValue naming the
// item or action that refers to a VF without a representor port, or a
// VXLAN_ENCAP without its definition.
Result<RteFlowRule> translate(const flowrules::FlowRule& rule, const SwitchPorts& ports);

// errno of an rte_flow call -> ErrorCode: EINVAL -> kInvalidValue, ENOTSUP
// and ENOSYS -> kUnsupported, ENOSPC and ENOMEM -> kTableFull, EBUSY and
// EAGAIN -> kBusy, ENOENT -> kNotFound, EEXIST -> kConflict (an overlapping
// rule), anything else -> kInternal.
ErrorCode errorCodeFromErrno(int err);

// Our Error for a failed rte_flow call on `rule`: the code from `ret`
// (-errno), the field and value of the item/action/attribute `error` points
// at, and the device's message verbatim with the call, the port and the
// errno ("transfer is not supported (rte_flow_validate on port 4: ENOTSUP)").
Error flowError(int ret, const rte_flow_error& error, const flowrules::FlowRule& rule,
                const RteFlowRule* translated, const char* call, std::uint16_t port);

}  // namespace nicoffload::dpdk
