// The control API's ops, in one table (ops.h), and the Controller's calls
// that run them: admit (a mutation), read, a `batch` of mutations.
#include "ops.h"

#include "nicoffload/daemon/controller.h"
#include "request_fields.h"

namespace nicoffload::daemon {

// The table's handlers reach the controller's parts: a friend of Controller.
struct OpTable {
  static std::span<const Op> ops();
};

std::span<const Op> OpTable::ops() {
  using K = OpKind;
  // A handler is the part that serves the op; `c` is the controller.
  static const Op kOps[] = {
      // name            kind          batch  waits  handler
      {"status", K::kRead, false, false,
       [](Controller& c, const json& r) { return c.queries_.readStatus(r); }},
      {"port.add", K::kMutation, true, false,
       [](Controller& c, const json& r) { return c.admission_.portAdd(r); }},
      {"port.remove", K::kMutation, true, false,
       [](Controller& c, const json& r) { return c.admission_.portRemove(r); }},
      {"port.get", K::kRead, false, false,
       [](Controller& c, const json& r) { return c.queries_.readPortGet(r); }},
      {"port.list", K::kRead, false, false,
       [](Controller& c, const json& r) { return c.queries_.readPortList(r); }},
      {"remote.add", K::kMutation, true, true,
       [](Controller& c, const json& r) { return c.admission_.remoteAdd(r); }},
      {"remote.remove", K::kMutation, true, true,
       [](Controller& c, const json& r) { return c.admission_.remoteRemove(r); }},
      {"remote.sync", K::kMutation, true, true,
       [](Controller& c, const json& r) { return c.admission_.remoteSync(r); }},
      {"remote.list", K::kRead, false, false,
       [](Controller& c, const json& r) { return c.queries_.readRemoteList(r); }},
      {"batch", K::kMutation, false, true,
       [](Controller& c, const json& r) { return c.admitBatch(r); }},
      {"rules", K::kRead, false, false,
       [](Controller& c, const json& r) { return c.queries_.readRules(r); }},
      {"explain", K::kRead, false, false,
       [](Controller& c, const json& r) { return c.queries_.readExplain(r); }},
      {"trace", K::kRead, false, false,
       [](Controller& c, const json& r) { return c.queries_.readTrace(r); }},
      {"counters", K::kRead, false, false,
       [](Controller& c, const json& r) { return c.queries_.readCounters(r); }},
      {"traffic", K::kRead, false, false,
       [](Controller& c, const json& r) {
         return readTraffic(c.traffic_, c.admission_.intent(), r);
       }},
      {"sim.send", K::kRead, false, false,
       [](Controller& c, const json& r) {
         return simSend(c.reconciler_.applier(), c.admission_.intent(), r);
       }},
      {"reconcile", K::kRead, false, true,
       [](Controller& c, const json& r) -> Result<json> {
         // A full pass now (Controller::reconcileAll), answered when it is over.
         if (auto s = onlyKeys(r, {}); !s) return s.error();
         return c.reconcileAll();
       }},
  };
  return kOps;
}

std::span<const Op> ops() { return OpTable::ops(); }

const Op* findOp(const json& request) {
  const auto it = request.is_object() ? request.find("op") : request.end();
  if (it == request.end() || !it->is_string()) return nullptr;
  const auto& name = it->get_ref<const std::string&>();
  for (const auto& op : ops())
    if (op.name == name) return &op;
  return nullptr;
}

std::string opNames(bool batch_only) {
  std::string out;
  for (const auto& op : ops()) {
    if (batch_only && !op.in_batch) continue;
    if (!out.empty()) out += ", ";
    out += op.name;
  }
  return out;
}

bool isMutation(const json& request) {
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
  return op->handler(*this, request);
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
  return op->handler(*this, request);
}

// Several mutations in one request, all or nothing: the first refusal
// undoes the ones before it and names its position.
Result<json> Controller::admitBatch(const json& request) {
  if (auto s = onlyKeys(request, {"ops"}); !s) return s.error();
  const auto found = requiredArray(request, "ops", "mutation requests");
  if (!found) return found.error();
  const json* ops = *found;
  const Admission::Marks mark = admission_.marks();
  json results = json::array();
  for (std::size_t i = 0; i < ops->size(); ++i) {
    const json& op = (*ops)[i];
    const std::string path = "ops[" + std::to_string(i) + "]";
    const auto name = op.is_object() ? op.find("op") : op.end();
    const Op* spec = findOp(op);
    if (!spec || !spec->in_batch) {
      admission_.rollback(mark);
      return requestError(ErrorCode::kInvalidValue, path + ".op",
                          name != op.end() ? echoOf(*name) : "",
                          "each op of a batch is a mutation: " + opNames(true));
    }
    auto r = admit(op);
    if (!r) {
      admission_.rollback(mark);
      Error e = r.error();
      e.field = path + "." + e.field;
      e.message = path + " (" + name->get<std::string>() + "): " + e.message +
                  "; nothing of the batch was applied";
      return e;
    }
    results.push_back(std::move(r).value());
  }
  return json{{"results", std::move(results)}};
}

}  // namespace nicoffload::daemon
