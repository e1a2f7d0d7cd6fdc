// The hook's seam towards nicoffloadd: one call = one control API request.
// The real implementation speaks over the control socket (socket_client.h);
// unit tests inject a fake.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "nicoffload/common/error.h"

namespace nicoffload::hooks {

struct DaemonReply {
  enum class Kind {
    kOk,           // `result` holds the reply's result
    kRefused,      // nicoffloadd answered with an error, or with a reply the hook
                   // cannot read (ErrorCode::kInternal) (`error`)
    kUnavailable,  // no answer: not running, socket refused us, or too slow (`error`)
  };
  Kind kind = Kind::kOk;
  nlohmann::json result;
  Error error;

  static DaemonReply ok(nlohmann::json r) { return {Kind::kOk, std::move(r), {}}; }
  static DaemonReply refused(Error e) { return {Kind::kRefused, {}, std::move(e)}; }
  static DaemonReply unavailable(Error e) { return {Kind::kUnavailable, {}, std::move(e)}; }
};

class DaemonClient {
 public:
  virtual ~DaemonClient() = default;
  // Sends one request ({"op": ...}) and returns its outcome. Must return
  // within the hook's time bound. `result` is whatever JSON the daemon sent:
  // read it with daemon_replies.h, never with nlohmann's throwing accessors.
  // An exception thrown here is caught by runHook (an "internal error").
  virtual DaemonReply call(const nlohmann::json& request) = 0;

  // Sends every request, then collects the replies (in request order). A
  // client over the socket pipelines them, so that nicoffloadd admits them in
  // one batch (one state write instead of one per port). The default sends
  // them one by one.
  virtual std::vector<DaemonReply> callAll(const std::vector<nlohmann::json>& requests) {
    std::vector<DaemonReply> out;
    out.reserve(requests.size());
    for (const auto& r : requests) out.push_back(call(r));
    return out;
  }
};

}  // namespace nicoffload::hooks
