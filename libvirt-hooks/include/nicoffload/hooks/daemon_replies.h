// Reading what nicoffloadd answers, without trusting its shape.
//
// The hook runs inside libvirt's domain operations: a reply of an unexpected
// shape (another daemon version, a bug, a byte flipped) must give a clear
// error, never an exception (nlohmann's value()/get<>/at throw on a type
// mismatch, and an uncaught exception aborts the hook). Every function here
// is pure, never throws (std::bad_alloc aside) and may be called with any
// bytes: the fuzz targets call them directly.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/hooks/daemon_client.h"

namespace nicoffload::hooks {

// Parses one reply line of the control protocol (offload/control.h), without
// its '\n':
//   {"ok": true,  "result": <any JSON>}                      → kOk, `result`
//   {"ok": false, "error": {"code": "duplicate", "field": ..., "value": ...,
//                           "message": ...}}                   → kRefused, `error`
// The refusal's field, value and message are made printable and short
// (makeError); an unknown or absent code gives ErrorCode::kInternal. Other
// keys are ignored.
// Errors (field "reply"): kInvalidValue when the line is not JSON, is nested
// deeper than model::kMaxJsonDepth, repeats a key or holds invalid UTF-8
// (model::parseJsonInput), or is not an object; kMissingField / kWrongType
// when "ok" is not a boolean, "result" is missing from a success, or "error"
// (or one of its members) has the wrong type.
Result<DaemonReply> parseDaemonReply(std::string_view line);

// What the hook needs from the result of a successful port.add:
//   {"port": {... "vf": 3, "representor": "pf0vf3" ...},
//    "changed": true,
//    "status": {"state": "installed" | "degraded", "devices": {"vdpa": {"path": ...}}, ...}}
// Every member is optional ("status" is absent when the daemon has no state
// for the port yet); a member that is present must have its type.
struct PortAddView {
  std::string representor;          // port.representor; empty when absent
  std::optional<std::uint16_t> vf;  // port.vf (VF index on the uplink PF)
  // status.devices.vdpa.path by its kind: a vhost-vdpa node (kind "vdpa")
  // or a vhost-user socket (kind "vhostuser"); empty when absent.
  std::string vdpa_dev;
  std::string vhostuser_path;
  bool degraded = false;            // status.state == "degraded"
};

// Errors: kWrongType naming the member ("result.status.state") when the result
// is not an object or a member has another type; kInvalidValue for a vf
// outside 0..65535.
Result<PortAddView> readPortAddResult(const nlohmann::json& result);

// The interface indexes ("nic") of the ports of domain `vm` in the result of
// port.list: an array of {"port": {"vm": <uuid>, "nic": <0..65535>, ...}, ...}
// (a bare port object per entry is accepted as well). Entries of other
// domains are skipped. Errors: kWrongType when the result is not an array or
// an entry, its "vm" or its "nic" has another type; kInvalidValue for a nic
// outside 0..65535.
Result<std::vector<std::uint16_t>> readPortListResult(const nlohmann::json& result,
                                                      std::string_view vm);

}  // namespace nicoffload::hooks
