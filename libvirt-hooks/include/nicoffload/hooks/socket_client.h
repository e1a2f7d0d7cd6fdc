// DaemonClient over nicoffloadd's control socket (the protocol of
// offload/control.h: one JSON request or reply per line), bounded by one
// deadline for the whole hook run, connect included. Requests of callAll()
// are pipelined on one connection. Each reply line is read by
// parseDaemonReply() (daemon_replies.h), the pure entry point the fuzz target
// calls.
//
// Every request is sent with "deadline_ms" (the control API's, docs/control-api.md):
// the run's deadline less a margin for the reply (a quarter of the budget,
// at most kReplyMargin), as CLOCK_MONOTONIC milliseconds. nicoffloadd
// refuses a request it comes to after that instead of applying it when the
// hook has long given up (a stalled daemon that resumes: issue 22).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "nicoffload/hooks/daemon_client.h"
#include "nicoffload/hooks/daemon_replies.h"

namespace nicoffload::hooks {

class SocketDaemonClient : public DaemonClient {
 public:
  SocketDaemonClient(std::string socket_path, std::chrono::steady_clock::time_point deadline);
  ~SocketDaemonClient() override;
  SocketDaemonClient(const SocketDaemonClient&) = delete;
  SocketDaemonClient& operator=(const SocketDaemonClient&) = delete;

  // Connects on the first call and keeps the connection. Unavailable (with
  // the reason) when nothing listens ("nicoffloadd is not running"), when the
  // socket refuses us, when the daemon's listen queue stays full until the
  // deadline (connect never blocks past it), when the connection breaks, or
  // when no reply came before the deadline; after that every call fails at
  // once. A reply line that parseDaemonReply cannot read is kRefused with
  // ErrorCode::kInternal for its own request; the others go on.
  DaemonReply call(const nlohmann::json& request) override;
  std::vector<DaemonReply> callAll(const std::vector<nlohmann::json>& requests) override;

  // The longest reply line accepted (bytes): port.list of a whole host is
  // well below (500 ports at about 1 KiB each).
  static constexpr std::size_t kMaxReplyBytes = 16u << 20;
  // Kept between the requests' deadline_ms and the hook's own deadline, so
  // that a request admitted just in time is persisted, applied and answered
  // before the hook stops reading.
  static constexpr std::chrono::milliseconds kReplyMargin{250};
  // The "deadline_ms" each request carries (CLOCK_MONOTONIC milliseconds).
  std::int64_t requestDeadlineMs() const;

 private:
  Status connect();
  int msLeft() const;
  DaemonReply down(Error e);

  std::string socket_path_;
  std::chrono::steady_clock::time_point deadline_;
  std::chrono::steady_clock::time_point request_deadline_;  // deadline_ less the reply margin
  int fd_ = -1;
  std::string buffer_;
  bool down_ = false;
  Error down_error_;
};

}  // namespace nicoffload::hooks
