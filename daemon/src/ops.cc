// Controller: the control API's ops, in one table. Each op's name, whether
// it reads or changes the intent, whether it may be one of a `batch`'s ops,
// whether it waits behind a bulk remote.sync (bulk.cc), and its handler.
// Dispatch, admission, batches, the bulk router and the unknown-op error
// all read this table; nothing else spells an op's name.
#include "controller_types.h"
#include "request_fields.h"

namespace nicoffload::daemon {

std::span<const Controller::Op> Controller::ops() {
  using K = OpKind;
  static const Op kOps[] = {
      // name            kind          batch  waits  handler
      {"status",         K::kRead,     false, false, &Controller::readStatus},
      {"port.add",       K::kMutation, true,  false, &Controller::admitPortAdd},
      {"port.remove",    K::kMutation, true,  false, &Controller::admitPortRemove},
      {"port.get",       K::kRead,     false, false, &Controller::readPortGet},
      {"port.list",      K::kRead,     false, false, &Controller::readPortList},
      {"remote.add",     K::kMutation, true,  true,  &Controller::admitRemoteAdd},
      {"remote.remove",  K::kMutation, true,  true,  &Controller::admitRemoteRemove},
      {"remote.sync",    K::kMutation, true,  true,  &Controller::admitRemoteSync},
      {"remote.list",    K::kRead,     false, false, &Controller::readRemoteList},
      {"batch",          K::kMutation, false, true,  &Controller::admitBatch},
      {"rules",          K::kRead,     false, false, &Controller::readRules},
      {"explain",        K::kRead,     false, false, &Controller::readExplain},
      {"trace",          K::kRead,     false, false, &Controller::readTraceOp},
      {"counters",       K::kRead,     false, false, &Controller::readCounters},
      {"traffic",        K::kRead,     false, false, &Controller::readTraffic},
      {"sim.send",       K::kRead,     false, false, &Controller::simSend},
      {"reconcile",      K::kRead,     false, true,  &Controller::runReconcile},
  };
  return kOps;
}

const Controller::Op* Controller::findOp(const json& request) {
  const auto it = request.is_object() ? request.find("op") : request.end();
  if (it == request.end() || !it->is_string()) return nullptr;
  const auto& name = it->get_ref<const std::string&>();
  for (const auto& op : ops())
    if (op.name == name) return &op;
  return nullptr;
}

std::string Controller::opNames(bool batch_only) {
  std::string out;
  for (const auto& op : ops()) {
    if (batch_only && !op.in_batch) continue;
    if (!out.empty()) out += ", ";
    out += op.name;
  }
  return out;
}

bool Controller::isMutation(const json& request) {
  const Op* op = findOp(request);
  return op && op->kind == OpKind::kMutation;
}

Result<json> Controller::admit(const json& request) {
  // Now, not when it arrived: a request that waited past its deadline is
  // refused whole (a batch's ops each too).
  if (auto s = checkDeadline(request, options_.now()); !s) return s.error();
  const Op* op = findOp(request);
  if (!op || op->kind != OpKind::kMutation)
    return makeError(ErrorCode::kInternal, "op", request.value("op", std::string()), "not a mutation");
  return (this->*op->handler)(request);
}

Result<json> Controller::read(const json& request) {
  if (auto s = checkDeadline(request, options_.now()); !s) return s.error();
  const Op* op = findOp(request);
  if (!op) {
    const std::string name = request.value("op", std::string());
    return requestError(ErrorCode::kInvalidValue, "op", name,
                        "unknown op '" + name + "' (ops: " + opNames() + ")");
  }
  if (op->kind != OpKind::kRead)
    return makeError(ErrorCode::kInternal, "op", std::string(op->name), "not a read");
  return (this->*op->handler)(request);
}

// A `trace` through the table (readTrace is const; the table's handlers are not).
Result<json> Controller::readTraceOp(const json& request) { return readTrace(request); }

}  // namespace nicoffload::daemon
