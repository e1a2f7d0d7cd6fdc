#include "nicoffload/hooks/daemon_replies.h"

#include "nicoffload/model/json_input.h"

namespace nicoffload::hooks {

namespace {

using nlohmann::json;

// The member `key` of `object`, or nullptr when `object` is not an object or
// has no such member. json::find on a non-object returns end(), but const
// operator[] asserts or throws: never use it on reply data.
const json* member(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// The value a wrong-typed member had, short: a container by its type only
// (dumping it whole could be megabytes).
std::string shown(const json& value) {
  if (value.is_structured()) return value.type_name();
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

Error wrongType(const std::string& field, const json& value, const char* expected) {
  return makeError(ErrorCode::kWrongType, field, shown(value),
                   std::string("must be ") + expected + ", not " + value.type_name());
}

// An optional string member: absent → true with `out` unchanged.
Status optionalString(const json& object, const char* key, const std::string& field,
                      std::string& out) {
  const json* v = member(object, key);
  if (!v) return Status::success();
  if (!v->is_string()) return wrongType(field, *v, "a string");
  out = v->get_ref<const std::string&>();
  return Status::success();
}

Result<std::uint16_t> interfaceIndex(const json& value, const std::string& field) {
  if (!value.is_number_integer()) return wrongType(field, value, "an integer");
  // Compare as signed and unsigned: nlohmann keeps large positives unsigned.
  const bool in_range = value.is_number_unsigned()
                            ? value.get<std::uint64_t>() <= 65535
                            : value.get<std::int64_t>() >= 0 && value.get<std::int64_t>() <= 65535;
  if (!in_range)
    return makeError(ErrorCode::kInvalidValue, field, shown(value), "must lie in 0..65535");
  return static_cast<std::uint16_t>(value.get<std::int64_t>());
}

}  // namespace

Result<DaemonReply> parseDaemonReply(std::string_view line) {
  auto doc = model::parseJsonInput(line, "reply");
  if (!doc) {
    const Error& e = doc.error();
    return makeError(e.code, e.field, e.value, "nicoffloadd's reply: " + e.message);
  }
  if (!doc->is_object())
    return makeError(
        ErrorCode::kWrongType, "reply", shown(*doc),
        std::string("nicoffloadd's reply must be a JSON object, not ") + doc->type_name());
  const json* ok = member(*doc, "ok");
  if (!ok)
    return makeError(ErrorCode::kMissingField, "reply.ok", "", "nicoffloadd's reply has no \"ok\"");
  if (!ok->is_boolean()) return wrongType("reply.ok", *ok, "true or false");
  if (ok->get<bool>()) {
    const json* result = member(*doc, "result");
    if (!result)
      return makeError(ErrorCode::kMissingField, "reply.result", "",
                       "nicoffloadd's reply says ok but carries no result");
    return DaemonReply::ok(*result);
  }
  const json* error = member(*doc, "error");
  if (!error)
    return makeError(ErrorCode::kMissingField, "reply.error", "",
                     "nicoffloadd's reply says not ok but carries no error");
  if (!error->is_object()) return wrongType("reply.error", *error, "an object");
  std::string code_name, field, value, message;
  for (auto [key, out] :
       {std::pair{"code", &code_name}, {"field", &field}, {"value", &value}, {"message", &message}})
    if (auto s = optionalString(*error, key, std::string("reply.error.") + key, *out); !s)
      return s.error();
  const ErrorCode code = errorCodeFromName(code_name).value_or(ErrorCode::kInternal);
  if (message.empty()) message = "nicoffloadd refused the request without saying why";
  return DaemonReply::refused(
      makeError(code, std::move(field), std::move(value), std::move(message)));
}

Result<PortAddView> readPortAddResult(const json& result) {
  if (!result.is_object()) return wrongType("result", result, "an object");
  PortAddView view;
  if (const json* port = member(result, "port")) {
    if (!port->is_object()) return wrongType("result.port", *port, "an object");
    if (auto s = optionalString(*port, "representor", "result.port.representor", view.representor);
        !s)
      return s.error();
    if (auto s = optionalString(*port, "vhostuser_path", "result.port.vhostuser_path",
                                view.vhostuser_path);
        !s)
      return s.error();
    if (const json* vf = member(*port, "vf")) {
      auto index = interfaceIndex(*vf, "result.port.vf");
      if (!index) return index.error();
      view.vf = *index;
    }
  }
  if (const json* status = member(result, "status")) {
    if (!status->is_object()) return wrongType("result.status", *status, "an object");
    std::string state;
    if (auto s = optionalString(*status, "state", "result.status.state", state); !s)
      return s.error();
    view.degraded = state == "degraded";
    if (const json* devices = member(*status, "devices")) {
      if (!devices->is_object()) return wrongType("result.status.devices", *devices, "an object");
      if (const json* vdpa = member(*devices, "vdpa")) {
        if (!vdpa->is_object()) return wrongType("result.status.devices.vdpa", *vdpa, "an object");
        if (auto s =
                optionalString(*vdpa, "path", "result.status.devices.vdpa.path", view.vdpa_dev);
            !s)
          return s.error();
        // "vdpa" (/dev/vhost-vdpa-N) or "vhostuser" (a socket); absent from
        // daemons before issue 14: a path under /dev is a vhost-vdpa node.
        std::string kind;
        if (auto s = optionalString(*vdpa, "kind", "result.status.devices.vdpa.kind", kind); !s)
          return s.error();
        if (kind.empty()) kind = view.vdpa_dev.rfind("/dev/", 0) == 0 ? "vdpa" : "vhostuser";
        if (kind != "vdpa" && kind != "vhostuser")
          return makeError(ErrorCode::kInvalidValue, "result.status.devices.vdpa.kind", kind,
                           "nicoffloadd named an unknown vDPA device kind '" + kind +
                               "' (expected vdpa or vhostuser)");
        if (kind == "vhostuser" && !view.vdpa_dev.empty()) {
          view.vhostuser_path = view.vdpa_dev;
          view.vdpa_dev.clear();
        }
      }
    }
  }
  return view;
}

Result<std::vector<std::uint16_t>> readPortListResult(const json& result, std::string_view vm) {
  if (!result.is_array()) return wrongType("result", result, "an array");
  std::vector<std::uint16_t> nics;
  for (std::size_t i = 0; i < result.size(); ++i) {
    const std::string field = "result[" + std::to_string(i) + "]";
    const json& entry = result[i];
    if (!entry.is_object()) return wrongType(field, entry, "an object");
    const json* port = member(entry, "port");
    if (port && !port->is_object()) return wrongType(field + ".port", *port, "an object");
    const json& p = port ? *port : entry;
    const std::string port_field = port ? field + ".port" : field;
    const json* owner = member(p, "vm");
    if (!owner)
      return makeError(ErrorCode::kMissingField, port_field + ".vm", "", "the port has no vm");
    if (!owner->is_string()) return wrongType(port_field + ".vm", *owner, "a string");
    if (owner->get_ref<const std::string&>() != vm) continue;
    const json* nic = member(p, "nic");
    if (!nic)
      return makeError(ErrorCode::kMissingField, port_field + ".nic", "", "the port has no nic");
    auto index = interfaceIndex(*nic, port_field + ".nic");
    if (!index) return index.error();
    nics.push_back(*index);
  }
  return nics;
}

}  // namespace nicoffload::hooks
