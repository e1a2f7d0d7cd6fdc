// Helpers of the simulated-NIC tests: a hypervisor in simulation (intent ->
// plan -> HwApplier over a SimEswitch), the second hypervisor of the
// two-hypervisor example, and packet shorthands.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "nicoffload/flowrules/hw_apply.h"
#include "nicoffload/flowrules/planner.h"
#include "nicoffload/simnic/packet.h"
#include "nicoffload/simnic/sim_eswitch.h"
#include "support/test_support.h"

namespace nicoffload::test {

using flowrules::PortRef;
using simnic::Delivery;
using simnic::Packet;

// examples/host.json + examples/ports.json: hv1, VTEP 192.0.2.1.
inline model::Intent hv1Intent() { return exampleIntent(Example::kVxlan); }

// tests/simnic/fixtures: hv2, VTEP 192.0.2.2, hosting hv1's remotes 10.20.1.x.
inline model::Intent hv2Intent() {
  return intentFrom(readJson("tests/simnic/fixtures/hv2-host.json"),
                    readJson("tests/simnic/fixtures/hv2-ports.json"));
}

// One hypervisor in simulation: the intent planned for a profile and applied
// through an HwApplier to a SimEswitch with the host's VF count.
struct SimHost {
  model::Intent intent;
  model::HwProfile profile;
  flowrules::DesiredState plan;
  simnic::SimEswitch* nic = nullptr;  // owned by applier
  std::unique_ptr<flowrules::HwApplier> applier;
  flowrules::HwApplyReport report;

  // `before_apply` may inject faults into the NIC before the first apply;
  // `with_dependencies` = false applies without the rule dependencies (a
  // negative control for the differential test).
  static std::unique_ptr<SimHost> start(
      model::Intent intent, model::HwProfile profile,
      const std::function<void(simnic::SimEswitch&)>& before_apply = {},
      bool with_dependencies = true) {
    auto h = std::make_unique<SimHost>();
    h->intent = std::move(intent);
    h->profile = std::move(profile);
    h->plan = unwrap(flowrules::plan(h->intent, h->profile), "plan");
    auto nic = unwrap(simnic::SimEswitch::create(h->profile, h->intent.host.vf_count), "sim NIC");
    h->nic = nic.get();
    h->applier = std::make_unique<flowrules::HwApplier>(std::move(nic));
    if (before_apply) before_apply(*h->nic);
    const auto deps = with_dependencies ? flowrules::ruleDependencies(h->intent, h->plan.rules)
                                        : std::vector<flowrules::RuleDependency>{};
    h->report = h->applier->apply(h->plan.rules, deps);
    return h;
  }

  Delivery send(const Packet& p, PortRef ingress) {
    return unwrap(nic->evaluate(p, ingress), "evaluate " + simnic::describe(p));
  }

  const model::Port& portWith(Ipv4Addr address) const {
    for (const auto& p : intent.ports)
      for (auto a : p.addresses)
        if (a == address) return p;
    throw std::invalid_argument("no port with " + address.str());
  }
};

// A packet from a VM: its MAC to the gateway MAC, UDP.
inline Packet fromVm(const model::Port& port, Ipv4Addr src, Ipv4Addr dst,
                     const model::HostConfig& host, std::uint8_t ttl = 64) {
  return simnic::udpPacket(port.mac, host.gateway_mac, src, dst, 64, ttl);
}

}  // namespace nicoffload::test
