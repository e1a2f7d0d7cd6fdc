// FlowBackend on DPDK rte_flow (22.11): the mlx5 PF with its VF
// representors, transfer (eswitch) rules created on the transfer proxy port.
//
// validate() is rte_flow_validate(); create() is rte_flow_create() (HwApplier
// validates first); destroy(), query() of COUNT and flush() are the rte_flow
// calls of the same name. Every rte_flow_error comes back as our Error: the
// code from errno (see errorCodeFromErrno), the offending item or action from
// the error's cause, the device's message verbatim.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/dpdk/rte_flow_translate.h"
#include "nicoffload/flowrules/flow_backend.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/model/intent.h"

struct rte_flow;

namespace nicoffload::dpdk {

struct DpdkFlowConfig {
  // The PF's devargs (host dpdk.pf_devargs). When set, the PF port is the
  // ethdev port of its device and the representor of VF n the port matching
  // "<device>,representor=vf<n>" (rte_eth_iterator). When empty, the ports
  // are numbered: uplink_port_id, and first_representor_port_id + n.
  std::string pf_devargs;
  std::uint16_t uplink_port_id = 0;
  std::uint16_t first_representor_port_id = 1;
  std::uint16_t vf_count = 0;
  // Configure (1 Rx/Tx queue) and start the proxy, uplink and representor
  // ports in flow isolated mode, so that the kernel keeps the traffic the
  // rules do not take (mlx5 bifurcated driver; mlx5 creates rules only on
  // started ports). A port that is already configured is left as it is.
  bool start_ports = true;

  static DpdkFlowConfig fromHost(const model::HostConfig& host);
};

// Finds the PF port, the transfer proxy (rte_flow_pick_transfer_proxy; a port
// without flow support is its own proxy) and each VF's representor port.
// Needs a running EAL. Errors: kNotFound when the PF (devargs) or the
// configured uplink port does not exist. A VF without a representor port is
// not an error here: rules that name it fail to translate (kInvalidValue).
Result<SwitchPorts> discoverPorts(const DpdkFlowConfig& config,
                                  std::vector<std::string>* notes = nullptr);

class DpdkFlowBackend final : public flowrules::FlowBackend {
 public:
  // Needs a running EAL (Eal::start). `profile` is what capabilities()
  // reports: rte_flow has no capability query, so these are the profile's
  // claims and rte_flow_validate on the device decides. Errors: those of
  // discoverPorts; kIo when the mbuf pool cannot be made.
  static Result<std::unique_ptr<DpdkFlowBackend>> open(const DpdkFlowConfig& config,
                                                       const model::HwProfile& profile);
  // Destroys the rules it created and stops the ports it started.
  ~DpdkFlowBackend() override;

  const flowrules::FlowBackendCapabilities& capabilities() const override { return caps_; }
  Status validate(const flowrules::FlowRule& rule) override;
  Result<flowrules::FlowHandle> create(const flowrules::FlowRule& rule) override;
  Status destroy(flowrules::FlowHandle handle) override;
  Result<flowrules::FlowCounters> query(flowrules::FlowHandle handle) override;
  // rte_flow_flush on the proxy. A port without flow support (ENOSYS) holds
  // no rules: flush succeeds.
  Status flush() override;

  const SwitchPorts& ports() const { return ports_; }
  std::size_t size() const { return flows_.size(); }
  std::vector<flowrules::HeldRule> installed() const override {
    std::vector<flowrules::HeldRule> out;
    for (const auto& [h, f] : flows_) out.push_back({h, f.rule});
    return out;
  }
  // What opening found worth saying (no transfer proxy, isolate refused...).
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  DpdkFlowBackend() = default;
  void startPort(std::uint16_t port);

  struct Installed {
    rte_flow* flow = nullptr;
    flowrules::FlowRule rule;
    bool counted = false;
  };

  DpdkFlowConfig config_;
  SwitchPorts ports_;
  flowrules::FlowBackendCapabilities caps_;
  std::map<flowrules::FlowHandle, Installed> flows_;
  flowrules::FlowHandle next_handle_ = 1;
  std::vector<std::uint16_t> started_;
  std::vector<std::string> notes_;
};

}  // namespace nicoffload::dpdk
