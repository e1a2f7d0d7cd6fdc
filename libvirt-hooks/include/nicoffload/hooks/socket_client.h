// DaemonClient over nicoffloadd's control socket (the protocol of
// offload/control.h: one JSON request or reply per line), bounded by one
// deadline for the whole hook run, connect included. Requests of callAll()
// are pipelined on one connection. Each reply line is read by
// parseDaemonReply() (daemon_replies.h), the pure entry point the fuzz target
// calls.
#pragma once

#include <chrono>
#include <cstddef>
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

 private:
  Status connect();
  int msLeft() const;
  DaemonReply down(Error e);

  std::string socket_path_;
  std::chrono::steady_clock::time_point deadline_;
  int fd_ = -1;
  std::string buffer_;
  bool down_ = false;
  Error down_error_;
};

}  // namespace nicoffload::hooks
