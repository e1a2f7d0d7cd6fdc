// The ops of the per-port traffic counters (issue 23, part 3; ops.h).
// `traffic` shows what the TrafficSweep part (traffic_sweep.h) last read;
// `sim.send` sends packets through the simulated NIC, so that its counters
// move without a wire.
#include <chrono>

#include "nicoffload/simnic/sim_eswitch.h"
#include "nicoffload/trace/trace.h"
#include "ops.h"
#include "request_fields.h"

namespace nicoffload::daemon {

// The `traffic` op: every port's figures (or one VM's), from the last sweep;
// "refresh": true runs a sweep first, at once.
Result<json> readTraffic(TrafficSweep& traffic, const model::Intent& intent, const json& req) {
  auto fail = [](Error e) { return e; };
  if (auto s = onlyKeys(req, {"refresh", "vm"}); !s) return fail(s.error());
  auto refresh = optionalBool(req, "refresh", false);
  if (!refresh) return fail(refresh.error());
  std::optional<std::string> vm;
  if (req.contains("vm")) {
    auto v = requiredString(req, "vm", "a domain UUID");
    if (!v) return fail(v.error());
    vm = std::move(v).value();
    std::transform(vm->begin(), vm->end(), vm->begin(), [](unsigned char c) { return std::tolower(c); });
  }
  if (*refresh) traffic.runNow();
  json ports = json::array();
  for (const auto& p : intent.ports) {
    if (vm && p.key.vm != *vm) continue;
    ports.push_back({{"vm", p.key.vm}, {"nic", p.key.nic}, {"traffic", traffic.portJson(p)}});
  }
  return json{{"ports", std::move(ports)}, {"sweep", traffic.statusJson()}};
}

// The `sim.send` op: `count` copies of a packet (the trace op's packet spec)
// into the simulated NIC, which counts them on the rules they match, as the
// device would. Only with backends.flow = sim: a real NIC takes its packets
// from the wire and the VMs. The packets go through at once, on the loop
// thread (about a microsecond each): hence the cap of 100 000.
Result<json> simSend(flowrules::HwApplier& applier, const model::Intent& intent, const json& req) {
  auto fail = [](Error e) { return e; };
  if (auto s = onlyKeys(req, {"packet", "count"}); !s) return fail(s.error());
  // The one place the daemon looks behind its FlowBackend seam: sending
  // packets is what only the simulated NIC can be asked to do.
  auto* sim = dynamic_cast<simnic::SimEswitch*>(&applier.backend());
  if (!sim)
    return fail(
        requestError(ErrorCode::kUnsupported, "op", "sim.send",
                     "sim.send needs the simulated NIC (backends.flow = sim); this host runs " +
                         applier.backend().capabilities().backend));
  std::uint64_t count = 1;
  if (const auto it = req.find("count"); it != req.end()) {
    if (!it->is_number_integer())
      return fail(requestError(ErrorCode::kWrongType, "count", echoOf(*it), "must be an integer 1..100000"));
    const auto n = it->get<std::int64_t>();  // an unsigned beyond int64 wraps negative: refused too
    count = n > 0 ? static_cast<std::uint64_t>(n) : 0;
    if (count == 0 || count > 100000)
      return fail(requestError(ErrorCode::kInvalidValue, "count", echoOf(*it), "must be 1..100000"));
  }
  auto input = packetSpecOf(req, intent);
  if (!input) return input.error();
  std::optional<simnic::Delivery> last;
  for (std::uint64_t i = 0; i < count; ++i) {
    auto d = sim->evaluate(input->packet, input->ingress);
    if (!d) return d.error();
    last = std::move(d).value();
  }
  return json{{"sent", count}, {"in", input->in}, {"delivery", last->str()},
              {"miss", last->miss}, {"rules_matched", last->path.size()}};
}

}  // namespace nicoffload::daemon
