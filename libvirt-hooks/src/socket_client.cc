#include "nicoffload/hooks/socket_client.h"

#include <algorithm>

#include "nicoffload/offload/control.h"

namespace nicoffload::hooks {

SocketDaemonClient::SocketDaemonClient(std::string socket_path, std::chrono::steady_clock::time_point deadline)
    : socket_path_(std::move(socket_path)), deadline_(deadline) {}

SocketDaemonClient::~SocketDaemonClient() = default;

DaemonReply SocketDaemonClient::call(const nlohmann::json& request) {
  if (down_) return DaemonReply::unavailable(down_error_);
  auto left = [&] {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - std::chrono::steady_clock::now()).count();
    return static_cast<int>(std::max<long long>(ms, 0));
  };
  auto unavailable = [&](Error e) {
    down_ = true;
    down_error_ = std::move(e);
    return DaemonReply::unavailable(down_error_);
  };
  if (!client_) {
    if (left() <= 0)
      return unavailable(makeError(ErrorCode::kBusy, "timeout_ms", "", "the hook ran out of time"));
    auto c = offload::control::Client::connect(socket_path_, std::max(left(), 1));
    if (!c) return unavailable(c.error());
    client_ = std::move(c).value();
  }
  const int ms = left();
  if (ms <= 0) return unavailable(makeError(ErrorCode::kBusy, "timeout_ms", "", "the hook ran out of time"));
  auto r = client_->call(request, ms);
  if (r) return DaemonReply::ok(std::move(r).value());
  const Error& e = r.error();
  // Transport failures carry the field the client sets ("reply": no answer in
  // time or not JSON; "socket": the connection broke). Anything else is the
  // daemon's own answer.
  if (e.field == "reply" || e.field == "socket") {
    if (e.code == ErrorCode::kBusy)
      return unavailable(makeError(ErrorCode::kBusy, "timeout_ms", "",
                                   "nicoffloadd did not answer within the hook's time bound (" + e.message + ")"));
    return unavailable(e);
  }
  return DaemonReply::refused(e);
}

}  // namespace nicoffload::hooks
