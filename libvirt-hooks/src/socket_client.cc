#include "nicoffload/hooks/socket_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "nicoffload/offload/control.h"

namespace nicoffload::hooks {

SocketDaemonClient::SocketDaemonClient(std::string socket_path,
                                       std::chrono::steady_clock::time_point deadline)
    : socket_path_(std::move(socket_path)), deadline_(deadline) {}

SocketDaemonClient::~SocketDaemonClient() {
  if (fd_ >= 0) ::close(fd_);
}

int SocketDaemonClient::msLeft() const {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline_ - std::chrono::steady_clock::now())
                      .count();
  return static_cast<int>(std::max<long long>(ms, 0));
}

DaemonReply SocketDaemonClient::down(Error e) {
  down_ = true;
  down_error_ = std::move(e);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  return DaemonReply::unavailable(down_error_);
}

Status SocketDaemonClient::connect() {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path_.empty() || socket_path_.size() >= sizeof addr.sun_path)
    return makeError(ErrorCode::kInvalidValue, "socket", socket_path_, "not a usable socket path");
  std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return makeError(ErrorCode::kIo, "socket", "",
                     std::string("socket(): ") + std::strerror(errno));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == ENOENT || err == ECONNREFUSED)
      return makeError(ErrorCode::kNotFound, "socket", socket_path_,
                       "nicoffloadd is not running (nothing listens on " + socket_path_ + ": " +
                           std::strerror(err) + ")");
    if (err == EACCES)
      return makeError(
          ErrorCode::kPermissionDenied, "socket", socket_path_,
          "permission denied on " + socket_path_ + " (the control socket is for root)");
    return makeError(ErrorCode::kIo, "socket", socket_path_,
                     "cannot connect to " + socket_path_ + ": " + std::strerror(err));
  }
  fd_ = fd;
  return Status::success();
}

DaemonReply SocketDaemonClient::call(const nlohmann::json& request) {
  return callAll({request}).front();
}

std::vector<DaemonReply> SocketDaemonClient::callAll(const std::vector<nlohmann::json>& requests) {
  std::vector<DaemonReply> replies;
  replies.reserve(requests.size());
  // The replies already read stay; the rest are unavailable.
  auto allDown = [&](Error e) {
    DaemonReply r = down(std::move(e));
    replies.resize(requests.size(), r);
    return replies;
  };
  if (requests.empty()) return {};
  if (down_)
    return std::vector<DaemonReply>(requests.size(), DaemonReply::unavailable(down_error_));
  const auto timeout = [&] {
    return makeError(
        ErrorCode::kBusy, "timeout_ms", "",
        "nicoffloadd did not answer within the hook's time bound (hook.json timeout_ms)");
  };
  if (msLeft() <= 0) return allDown(timeout());
  if (fd_ < 0)
    if (auto s = connect(); !s) return allDown(s.error());

  std::string out;
  for (const auto& r : requests) out += r.dump() + "\n";
  std::size_t sent = 0;
  while (sent < out.size()) {
    const ssize_t n =
        ::send(fd_, out.data() + sent, out.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const int ms = msLeft();
      if (ms <= 0) return allDown(timeout());
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, ms);
      continue;
    }
    break;  // the daemon may have answered (refused us) and closed: read that
  }

  while (replies.size() < requests.size()) {
    if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
      const auto reply = nlohmann::json::parse(buffer_.substr(0, nl), nullptr, false);
      buffer_.erase(0, nl + 1);
      if (reply.is_discarded() || !reply.is_object())
        return allDown(makeError(ErrorCode::kInternal, "reply", "",
                                 "nicoffloadd sent a reply that is not JSON"));
      if (reply.value("ok", false)) {
        replies.push_back(
            DaemonReply::ok(reply.contains("result") ? reply["result"] : nlohmann::json()));
      } else {
        replies.push_back(DaemonReply::refused(
            offload::control::errorFromJson(reply.value("error", nlohmann::json::object()))));
      }
      continue;
    }
    const int ms = msLeft();
    if (ms <= 0) return allDown(timeout());
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return allDown(makeError(ErrorCode::kIo, "socket", socket_path_,
                               "nicoffloadd closed the connection without a reply"));
    buffer_.append(buf, static_cast<std::size_t>(n));
  }
  return replies;
}

}  // namespace nicoffload::hooks
