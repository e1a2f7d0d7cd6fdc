#include "nicoffload/hooks/socket_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace nicoffload::hooks {

SocketDaemonClient::SocketDaemonClient(std::string socket_path,
                                       std::chrono::steady_clock::time_point deadline)
    : socket_path_(std::move(socket_path)), deadline_(deadline) {
  const auto budget = std::max(deadline_ - std::chrono::steady_clock::now(),
                               std::chrono::steady_clock::duration::zero());
  request_deadline_ =
      deadline_ - std::min<std::chrono::steady_clock::duration>(budget / 4, kReplyMargin);
}

// steady_clock is CLOCK_MONOTONIC (libstdc++ on Linux), the clock nicoffloadd
// reads deadline_ms in.
std::int64_t SocketDaemonClient::requestDeadlineMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             request_deadline_.time_since_epoch())
      .count();
}

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

namespace {

Error connectError(int err, const std::string& path) {
  if (err == ENOENT || err == ECONNREFUSED)
    return makeError(
        ErrorCode::kNotFound, "socket", path,
        "nicoffloadd is not running (nothing listens on " + path + ": " + std::strerror(err) + ")");
  if (err == EACCES)
    return makeError(ErrorCode::kPermissionDenied, "socket", path,
                     "permission denied on " + path + " (the control socket is for root)");
  return makeError(ErrorCode::kIo, "socket", path,
                   "cannot connect to " + path + ": " + std::strerror(err));
}

bool setNonBlocking(int fd, bool on) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return false;
  return ::fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) == 0;
}

}  // namespace

Status SocketDaemonClient::connect() {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path_.empty() || socket_path_.size() >= sizeof addr.sun_path)
    return makeError(ErrorCode::kInvalidValue, "socket", socket_path_, "not a usable socket path");
  std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return makeError(ErrorCode::kIo, "socket", "",
                     std::string("socket(): ") + std::strerror(errno));
  const auto timeout = [&] {
    ::close(fd);
    return makeError(ErrorCode::kBusy, "timeout_ms", "",
                     "nicoffloadd did not accept the connection on " + socket_path_ +
                         " within the hook's time bound (hook.json timeout_ms): its listen "
                         "queue is full");
  };
  const auto* address = reinterpret_cast<const sockaddr*>(&addr);
  int rc = ::connect(fd, address, sizeof addr);
  while (rc != 0) {
    int err = errno;
    if (err == EINTR) {
      rc = ::connect(fd, address, sizeof addr);
      continue;
    }
    if (err == EAGAIN) {
      // A unix socket whose listener's queue is full: Linux neither queues a
      // non-blocking connect nor reports EINPROGRESS (there is nothing to
      // poll for); only a blocking connect waits for room, for as long as
      // SO_SNDTIMEO allows (unix_stream_connect). So wait that way, bounded
      // by the hook's deadline; accept() on the daemon's side wakes us.
      const int ms = msLeft();
      if (ms <= 0) return timeout();
      timeval tv{ms / 1000, (ms % 1000) * 1000};
      if (::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
          !setNonBlocking(fd, false)) {
        err = errno;
        ::close(fd);
        return connectError(err, socket_path_);
      }
      rc = ::connect(fd, address, sizeof addr);
      const int connect_errno = errno;
      const timeval none{0, 0};
      const bool restored = ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none) == 0 &&
                            setNonBlocking(fd, true);
      if (!restored) {
        err = errno;
        ::close(fd);
        return connectError(err, socket_path_);
      }
      errno = connect_errno;
      continue;
    }
    if (err == EINPROGRESS) {
      // Not what AF_UNIX does today, but the portable non-blocking protocol:
      // wait for POLLOUT, then SO_ERROR says how the connect ended.
      int ready = -1;
      while (ready < 0) {
        const int ms = msLeft();
        if (ms <= 0) return timeout();
        pollfd p{fd, POLLOUT, 0};
        ready = ::poll(&p, 1, ms);
        if (ready < 0 && errno != EINTR) break;
        if (ready < 0) continue;
        if (ready == 0) return timeout();
      }
      int so_error = 0;
      socklen_t len = sizeof so_error;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) so_error = errno;
      if (so_error == 0) break;
      err = so_error;
    }
    ::close(fd);
    return connectError(err, socket_path_);
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

  // Each request carries the deadline (control API "deadline_ms"): a
  // request the daemon only comes to after the hook gave up is refused, not
  // applied behind libvirt's back (issue 22).
  std::string out;
  for (const auto& r : requests) {
    if (r.is_object() && !r.contains("deadline_ms")) {
      nlohmann::json stamped = r;
      stamped["deadline_ms"] = requestDeadlineMs();
      out += stamped.dump() + "\n";
    } else {
      out += r.dump() + "\n";
    }
  }
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
      auto reply = parseDaemonReply(std::string_view(buffer_).substr(0, nl));
      buffer_.erase(0, nl + 1);
      // One line answers one request, so the replies that follow are still
      // in step: an unreadable one fails its own request only.
      replies.push_back(
          reply ? std::move(reply).value()
                : DaemonReply::refused(makeError(
                      ErrorCode::kInternal, reply.error().field, reply.error().value,
                      "nicoffloadd sent a reply the hook cannot read: " + reply.error().message)));
      continue;
    }
    if (buffer_.size() > kMaxReplyBytes)
      return allDown(makeError(ErrorCode::kIo, "reply", "",
                               "nicoffloadd sent a reply line longer than " +
                                   std::to_string(kMaxReplyBytes) + " bytes"));
    const int ms = msLeft();
    if (ms <= 0) return allDown(timeout());
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, ms);
    if (r <= 0) continue;  // EINTR or the deadline: the loop checks
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
