#include "nicoffload/offload/flow_backends.h"

#include "nicoffload/dpdk/dpdk_flow_backend.h"
#include "nicoffload/simnic/sim_eswitch.h"

namespace nicoffload::offload {

std::string simDeviceDir(const model::HostConfig& host) { return host.sim_device_dir + "/" + host.uplink_pci; }

Result<OpenedFlowBackend> openFlowBackend(const model::HostConfig& host,
                                          const model::HwProfile& profile, const FlowBackendOptions& options) {
  OpenedFlowBackend out;
  if (host.flow_backend == model::FlowBackendKind::kSim) {
    auto nic = options.persistent_sim
                   ? simnic::SimEswitch::open(profile, host.vf_count, simDeviceDir(host))
                   : simnic::SimEswitch::create(profile, host.vf_count);
    if (!nic) return nic.error();
    out.backend = std::move(nic).value();
    return out;
  }
  auto eal = dpdk::Eal::start(dpdk::ealArguments(host, "nicoffload"));
  if (!eal) return eal.error();
  out.eal = std::move(eal).value();
  auto backend = dpdk::DpdkFlowBackend::open(dpdk::DpdkFlowConfig::fromHost(host), profile);
  if (!backend) return backend.error();
  out.notes = (*backend)->notes();
  out.backend = std::move(backend).value();
  return out;
}

}  // namespace nicoffload::offload
