// The control API's ops, in one table (ops.cc). Each op's name, whether it
// reads or changes the intent, whether it may be one of a `batch`'s ops,
// whether it waits behind a bulk remote.sync (bulk_requests.h), and its
// handler. Dispatch, admission, batches, the bulk router and the unknown-op
// error all read this table; nothing else spells an op's name.
// Private to the daemon.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>

#include "nicoffload/common/error.h"
#include "nicoffload/daemon/traffic_sweep.h"
#include "nicoffload/flowrules/hw_apply.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::daemon {

class Controller;

enum class OpKind : std::uint8_t { kRead, kMutation };

struct Op {
  std::string_view name;
  OpKind kind = OpKind::kRead;
  bool in_batch = false;        // may be one of a `batch`'s ops
  bool waits_for_sync = false;  // held while a bulk remote.sync changes the intent
  // The part that serves the op, reached through the controller.
  Result<nlohmann::json> (*handler)(Controller& c, const nlohmann::json& request) = nullptr;
};

// Every op, in the order `opNames` lists them.
std::span<const Op> ops();
// The op a request names; null when it names none (or no string "op").
const Op* findOp(const nlohmann::json& request);
// "status, port.add, ...": every op, or those a batch may hold.
std::string opNames(bool batch_only = false);
// Whether a request names a mutation op.
bool isMutation(const nlohmann::json& request);

// The per-port traffic ops (traffic.cc). `traffic`: every port's figures (or
// one VM's) from the last sweep of `traffic`, "refresh": true sweeping first.
Result<nlohmann::json> readTraffic(TrafficSweep& traffic, const model::Intent& intent,
                                   const nlohmann::json& request);
// `sim.send`: packets into the simulated NIC behind `applier`; kUnsupported
// on any other flow backend.
Result<nlohmann::json> simSend(flowrules::HwApplier& applier, const model::Intent& intent,
                               const nlohmann::json& request);

}  // namespace nicoffload::daemon
