// Opens the flow backend the host config chooses (backends.flow): the
// simulated NIC ("sim") or DPDK rte_flow on the PF ("dpdk"). Not part of the
// pure core: it links the DPDK backend.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/dpdk/eal.h"
#include "nicoffload/flowrules/flow_backend.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::offload {

struct OpenedFlowBackend {
  // The EAL of this process when backends.flow = "dpdk" (started from
  // dpdk.eal_args and dpdk.pf_devargs). It must outlive `backend`: destroy
  // (or move into an HwApplier that is destroyed) the backend first.
  std::unique_ptr<dpdk::Eal> eal;
  std::unique_ptr<flowrules::FlowBackend> backend;
  std::vector<std::string> notes;  // what opening found worth saying
};

struct FlowBackendOptions {
  // sim: keep the simulated NIC's rules in simDeviceDir(host), so that they
  // outlive the process (the daemon's device); false: in memory (tools that
  // must not touch the daemon's device, such as device-check).
  bool persistent_sim = false;
};

// Where the persistent simulated NIC of this host keeps its rules:
// <daemon.sim_device_dir>/<uplink PCI address>.
std::string simDeviceDir(const model::HostConfig& host);

// sim: a SimEswitch that enforces `profile` with the host's VF count.
// dpdk: starts the EAL (ealArguments(host)) and opens DpdkFlowBackend on the
// PF; `profile` gives the capabilities it reports.
// Errors: those of SimEswitch::create, Eal::start and DpdkFlowBackend::open.
Result<OpenedFlowBackend> openFlowBackend(const model::HostConfig& host,
                                          const model::HwProfile& profile,
                                          const FlowBackendOptions& options = {});

}  // namespace nicoffload::offload
