// The request fields and the helpers the daemon's parts share (Controller,
// Admission, LearnedRoutes): echoes, field readers, pages, keys.
// Private to the daemon; inline, in an anonymous namespace, as they were when
// they all lived in controller.cc.
#pragma once

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <future>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_set>

#include "nicoffload/daemon/controller.h"
#include "nicoffload/flowrules/render.h"
#include "nicoffload/trace/trace.h"

namespace nicoffload::daemon {
namespace {

using nlohmann::json;

// The message of the exception being handled (call inside a catch).
inline std::string describeCurrentException() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception of unknown type";
  }
}

inline Error requestError(ErrorCode code, const std::string& field, const std::string& value,
                          std::string msg) {
  return makeError(code, field, value, std::move(msg));
}

// A request value as an error echoes it, in time and space bounded whatever
// it holds: a string as written (makeError cuts it), a scalar as JSON, an
// array or object by its size only (dumping one would cost its whole size,
// and nested deep enough, the stack).
inline std::string echoOf(const json& v) {
  if (v.is_string()) return v.get_ref<const std::string&>();
  if (v.is_array()) return "[...] (an array of " + std::to_string(v.size()) + ")";
  if (v.is_object()) return "{...} (an object of " + std::to_string(v.size()) + " keys)";
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The optional boolean `key` of a request: `fallback` when absent, a
// wrong-type error naming the field when it is not a boolean.
inline Result<bool> optionalBool(const json& request, const char* key, bool fallback) {
  const auto it = request.find(key);
  if (it == request.end()) return fallback;
  if (!it->is_boolean())
    return requestError(ErrorCode::kWrongType, key, echoOf(*it),
                        std::string("must be true or false, got ") + it->type_name());
  return it->get<bool>();
}

// The required string `key` of a request: missing-field or wrong-type errors
// name the field; `what` says what the string is.
inline Result<std::string> requiredString(const json& request, const char* key,
                                          const std::string& what) {
  const auto it = request.find(key);
  if (it == request.end())
    return requestError(ErrorCode::kMissingField, key, "",
                        "required field is missing (" + what + ")");
  if (!it->is_string())
    return requestError(ErrorCode::kWrongType, key, echoOf(*it),
                        "must be a string (" + what + "), got " + std::string(it->type_name()));
  return it->get<std::string>();
}

// The required array `key` of a request, the same way.
inline Result<const json*> requiredArray(const json& request, const char* key,
                                         const std::string& what) {
  const auto it = request.find(key);
  if (it == request.end())
    return requestError(ErrorCode::kMissingField, key, "",
                        "required field is missing (" + what + ")");
  if (!it->is_array())
    return requestError(ErrorCode::kWrongType, key, echoOf(*it),
                        "must be an array (" + what + "), got " + std::string(it->type_name()));
  return &*it;
}

// "deadline_ms", which every op takes: when the client stops waiting for
// the reply, in milliseconds of CLOCK_MONOTONIC (std::chrono::steady_clock
// on Linux, Python's time.monotonic() * 1000). Both ends run on one host,
// and that clock does not step with the wall clock. A request nicoffloadd
// comes to handle after it (it waited in the queue of a stalled daemon) is
// refused with kDeadlineExceeded and nothing of it is applied: its client
// gave up and would never learn of, nor undo, what it did (issue 22).
inline constexpr const char* kDeadlineField = "deadline_ms";
inline constexpr std::uint64_t kMaxDeadlineMs = (std::uint64_t{1} << 53) - 1;

inline Status checkDeadline(const json& request, SteadyClock::time_point now) {
  const auto it = request.find(kDeadlineField);
  if (it == request.end()) return Status::success();
  const std::string range = "0.." + std::to_string(kMaxDeadlineMs);
  if (!it->is_number_integer())
    return requestError(ErrorCode::kWrongType, kDeadlineField, echoOf(*it),
                        std::string("must be an integer ") + range +
                            " (CLOCK_MONOTONIC milliseconds at which the client stops "
                            "waiting), got " +
                            it->type_name());
  if ((!it->is_number_unsigned() && it->get<std::int64_t>() < 0) ||
      it->get<std::uint64_t>() > kMaxDeadlineMs)
    return requestError(ErrorCode::kInvalidValue, kDeadlineField, echoOf(*it),
                        "must be " + range + " (CLOCK_MONOTONIC milliseconds)");
  const auto deadline = static_cast<std::int64_t>(it->get<std::uint64_t>());
  const std::int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  if (now_ms <= deadline) return Status::success();
  return requestError(ErrorCode::kDeadlineExceeded, kDeadlineField, std::to_string(deadline),
                      "the request's deadline had passed " + std::to_string(now_ms - deadline) +
                          " ms before nicoffloadd came to handle it (its client stopped "
                          "waiting): refused, nothing of it was applied");
}

// Refuses request keys the op does not know (typos must not pass silently).
// "op" and "deadline_ms" are every op's.
inline Status onlyKeys(const json& request, std::initializer_list<const char*> keys) {
  for (auto it = request.begin(); it != request.end(); ++it) {
    if (it.key() == "op" || it.key() == kDeadlineField) continue;
    if (std::none_of(keys.begin(), keys.end(), [&](const char* k) { return it.key() == k; })) {
      std::string known;
      for (const char* k : keys) known += (known.empty() ? "" : ", ") + std::string(k);
      known += std::string(known.empty() ? "" : ", ") + kDeadlineField;
      return requestError(ErrorCode::kUnknownField, it.key(), it.key(),
                          "unknown field '" + it.key() + "' for op '" +
                              request["op"].get<std::string>() +
                              "' (known: " + (known.empty() ? "none" : known) + ")");
    }
  }
  return Status::success();
}

// Pagination of a large read: "offset" and "limit" (both optional; with
// neither, the whole list as an array, as before pages existed).
struct Page {
  std::size_t offset = 0;
  std::size_t limit = SIZE_MAX;
  bool paged = false;
};
inline constexpr std::size_t kMaxPageSize = 100000;

inline Result<Page> pageOf(const json& request) {
  Page page;
  for (const auto& [key, max] :
       {std::pair{"offset", std::size_t{UINT32_MAX}}, std::pair{"limit", kMaxPageSize}}) {
    const auto it = request.find(key);
    if (it == request.end()) continue;
    page.paged = true;
    const bool limit = std::string_view(key) == "limit";
    if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<std::int64_t>() >= 0))
      return requestError(ErrorCode::kWrongType, key, echoOf(*it),
                          "must be an integer 0.." + std::to_string(max));
    const auto v = it->get<std::uint64_t>();
    if (v > max || (limit && v == 0))
      return requestError(
          ErrorCode::kInvalidValue, key, echoOf(*it),
          std::string("must be ") + (limit ? "1" : "0") + ".." + std::to_string(max));
    (limit ? page.limit : page.offset) = static_cast<std::size_t>(v);
  }
  if (page.paged && page.limit == SIZE_MAX) page.limit = 1000;
  return page;
}

inline Result<model::PortKey> portKeyOf(const json& request) {
  const json* vm = request.contains("vm") ? &request["vm"] : nullptr;
  const json* nic = request.contains("nic") ? &request["nic"] : nullptr;
  if (!vm)
    return requestError(ErrorCode::kMissingField, "vm", "",
                        "required field is missing (the VM UUID)");
  if (!vm->is_string())
    return requestError(ErrorCode::kWrongType, "vm", echoOf(*vm), "must be a string");
  if (!nic)
    return requestError(ErrorCode::kMissingField, "nic", "",
                        "required field is missing (the NIC index)");
  if (!nic->is_number_integer())
    return requestError(ErrorCode::kWrongType, "nic", echoOf(*nic), "must be an integer 0..65535");
  if (nic->is_number_unsigned()
          ? nic->get<std::uint64_t>() > 65535
          : (nic->get<std::int64_t>() < 0 || nic->get<std::int64_t>() > 65535))
    return requestError(ErrorCode::kInvalidValue, "nic", echoOf(*nic), "must be 0..65535");
  const auto n = nic->get<std::int64_t>();
  model::PortKey key{vm->get<std::string>(), static_cast<std::uint16_t>(n)};
  std::transform(key.vm.begin(), key.vm.end(), key.vm.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return key;
}

// The "packet" of a `trace` or `sim.send` (trace/trace.h's spec); its
// errors name packet.<field>.
inline Result<trace::TraceInput> packetSpecOf(const json& request, const model::Intent& intent) {
  const auto it = request.find("packet");
  if (it == request.end())
    return requestError(ErrorCode::kMissingField, "packet", "",
                        "required field is missing (the packet spec: in, dst_ip, ...)");
  auto input = trace::parseTraceSpec(*it, intent);
  if (!input) {
    Error e = input.error();
    e.field = "packet." + e.field;
    return e;
  }
  return input;
}

inline std::string ruleId(const flowrules::FlowRule& r) {
  return flowrules::formatRuleId(r.cls, r.id);
}

// Changes in one batch beyond which its transient memory is given back.
constexpr std::size_t kLargeBatch = 1000;

}  // namespace
}  // namespace nicoffload::daemon
