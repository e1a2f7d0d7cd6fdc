// DaemonClient over nicoffloadd's control socket (control::Client), bounded
// by one deadline for the whole hook run.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "nicoffload/hooks/daemon_client.h"

namespace nicoffload::offload::control {
class Client;
}

namespace nicoffload::hooks {

class SocketDaemonClient : public DaemonClient {
 public:
  SocketDaemonClient(std::string socket_path, std::chrono::steady_clock::time_point deadline);
  ~SocketDaemonClient() override;

  // Connects on the first call and keeps the connection. Once the daemon was
  // found unavailable, every later call fails at once (the deadline holds).
  DaemonReply call(const nlohmann::json& request) override;

 private:
  std::string socket_path_;
  std::chrono::steady_clock::time_point deadline_;
  std::unique_ptr<offload::control::Client> client_;
  bool down_ = false;
  Error down_error_;
};

}  // namespace nicoffload::hooks
