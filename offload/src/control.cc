#include "nicoffload/offload/control.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace nicoffload::offload::control {
namespace {

constexpr std::uint64_t kListenTag = 0;

Error sysError(ErrorCode code, const std::string& field, const std::string& what, int err) {
  return makeError(code, field, "", what + ": " + std::strerror(err));
}

bool fillAddress(const std::string& path, sockaddr_un& addr) {
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return true;
}

}  // namespace

nlohmann::json errorJson(const Error& e) {
  const auto& info = errorInfo(e.code);
  return {{"code", info.name},       {"title", info.title},     {"field", e.field},
          {"value", e.value},        {"message", e.message},    {"suggestion", info.suggestion}};
}

Error errorFromJson(const nlohmann::json& j) {
  Error e;
  e.code = ErrorCode::kInternal;
  if (!j.is_object()) {
    e.message = "malformed error in reply";
    return e;
  }
  if (auto code = errorCodeFromName(j.value("code", ""))) e.code = *code;
  e.field = j.value("field", "");
  e.value = j.value("value", "");
  e.message = j.value("message", "");
  return e;
}

nlohmann::json okReply(nlohmann::json result) { return {{"ok", true}, {"result", std::move(result)}}; }
nlohmann::json errorReply(const Error& e) { return {{"ok", false}, {"error", errorJson(e)}}; }

// --- server ---

Result<std::unique_ptr<Server>> Server::open(const Options& options) {
  sockaddr_un addr{};
  if (!fillAddress(options.socket_path, addr))
    return makeError(ErrorCode::kInvalidValue, "socket", options.socket_path,
                     "socket path must be non-empty and shorter than 108 bytes");
  // Another daemon answering on the path? Then refuse; a dead socket file is removed.
  if (int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0); probe >= 0) {
    const bool alive = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(probe);
    if (alive)
      return makeError(ErrorCode::kConflict, "socket", options.socket_path,
                       "another nicoffloadd already listens on " + options.socket_path);
  }
  ::unlink(options.socket_path.c_str());
  // The socket's directory: created root-only if missing.
  const auto slash = options.socket_path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    const std::string dir = options.socket_path.substr(0, slash);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      return sysError(ErrorCode::kIo, "socket", "cannot create " + dir, errno);
  }
  std::unique_ptr<Server> s(new Server(options));
  s->listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s->listen_fd_ < 0) return sysError(ErrorCode::kIo, "socket", "socket()", errno);
  const mode_t old_mask = ::umask(0177);  // the file is born 0600: no window where others may connect
  const int rc = ::bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  const int bind_err = errno;
  ::umask(old_mask);
  if (rc != 0) return sysError(ErrorCode::kIo, "socket", "cannot bind " + options.socket_path, bind_err);
  ::chmod(options.socket_path.c_str(), 0600);
  if (::listen(s->listen_fd_, 128) != 0) return sysError(ErrorCode::kIo, "socket", "listen()", errno);
  s->epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (s->epoll_fd_ < 0) return sysError(ErrorCode::kIo, "socket", "epoll_create1()", errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenTag;
  ::epoll_ctl(s->epoll_fd_, EPOLL_CTL_ADD, s->listen_fd_, &ev);
  return s;
}

Server::~Server() {
  for (auto& [id, c] : conns_) ::close(c.fd);
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    ::unlink(options_.socket_path.c_str());
  }
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

void Server::accept() {
  while (true) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN: all accepted
    ++counters_.connections;
    const std::uint64_t id = next_id_++;
    Connection c;
    c.fd = fd;
    ucred cred{};
    socklen_t len = sizeof cred;
    const bool known = ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0;
    c.uid = known ? cred.uid : static_cast<uid_t>(-1);
    conns_.emplace(id, std::move(c));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = id;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    const auto& allowed = options_.allowed_uids;
    if (!known || std::find(allowed.begin(), allowed.end(), cred.uid) == allowed.end()) {
      ++counters_.refused_peers;
      sendNow(id, errorReply(makeError(ErrorCode::kPermissionDenied, "peer",
                                       known ? "uid " + std::to_string(cred.uid) : "unknown",
                                       "the nicoffload control socket is for root only")),
              true);
      continue;
    }
    if (conns_.size() > options_.max_connections) {
      sendNow(id, errorReply(makeError(ErrorCode::kBusy, "connections", std::to_string(conns_.size()),
                                       "too many connections to nicoffloadd; retry")),
              true);
    }
  }
}

void Server::sendNow(std::uint64_t id, const nlohmann::json& reply, bool then_close) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  it->second.out += reply.dump() + "\n";
  it->second.closing = it->second.closing || then_close;
  flush(id);
}

void Server::flush(std::uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  auto& c = it->second;
  while (!c.out.empty()) {
    const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT;
        ev.data.u64 = id;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
        return;
      }
      drop(id);
      return;
    }
    c.out.erase(0, static_cast<std::size_t>(n));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = id;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
  if (c.closing) drop(id);
}

void Server::drop(std::uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.fd, nullptr);
  ::close(it->second.fd);
  conns_.erase(it);
}

void Server::readFrom(std::uint64_t id, std::vector<Request>& out) {
  auto it = conns_.find(id);
  if (it == conns_.end() || it->second.closing) return;
  char buf[65536];
  while (true) {
    auto& c = conns_.at(id);
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n == 0) {  // peer closed; replies still queued are dropped with it
      drop(id);
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      drop(id);
      return;
    }
    c.in.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl; (nl = c.in.find('\n', start)) != std::string::npos; start = nl + 1) {
      const std::string_view line(c.in.data() + start, nl - start);
      if (line.size() > options_.max_request_bytes) {
        ++counters_.oversized;
        sendNow(id, errorReply(makeError(ErrorCode::kInvalidValue, "request", std::to_string(line.size()) + " bytes",
                                         "request larger than the limit of " +
                                             std::to_string(options_.max_request_bytes) + " bytes")),
                true);
        return;
      }
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      nlohmann::json body = nlohmann::json::parse(line, nullptr, false);
      if (body.is_discarded() || !body.is_object() || !body.contains("op") || !body["op"].is_string()) {
        ++counters_.malformed;
        const std::string why = body.is_discarded() ? "the request is not valid JSON"
                                : !body.is_object() ? "the request must be a JSON object"
                                                    : "the request has no string field \"op\"";
        sendNow(id, errorReply(makeError(ErrorCode::kInvalidValue, body.is_discarded() ? "request" : "op",
                                         std::string(line.substr(0, 60)), why)),
                false);
        if (!conns_.count(id)) return;
        continue;
      }
      ++counters_.requests;
      out.push_back({id, std::move(body), c.uid});
    }
    auto& cc = conns_.at(id);
    cc.in.erase(0, start);
    if (cc.in.size() > options_.max_request_bytes) {
      ++counters_.oversized;
      sendNow(id, errorReply(makeError(ErrorCode::kInvalidValue, "request", std::to_string(cc.in.size()) + "+ bytes",
                                       "request larger than the limit of " +
                                           std::to_string(options_.max_request_bytes) + " bytes")),
              true);
      return;
    }
  }
}

std::vector<Request> Server::poll(int timeout_ms) {
  std::vector<Request> out;
  epoll_event events[64];
  const int n = ::epoll_wait(epoll_fd_, events, 64, timeout_ms);
  for (int i = 0; i < n; ++i) {
    const std::uint64_t id = events[i].data.u64;
    if (id == kListenTag) {
      accept();
      continue;
    }
    if (events[i].events & EPOLLOUT) flush(id);
    if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) readFrom(id, out);
  }
  return out;
}

void Server::reply(std::uint64_t connection, const nlohmann::json& response) {
  sendNow(connection, response, false);
}

// --- client ---

Result<std::unique_ptr<Client>> Client::connect(const std::string& socket_path, int timeout_ms) {
  sockaddr_un addr{};
  if (!fillAddress(socket_path, addr))
    return makeError(ErrorCode::kInvalidValue, "socket", socket_path, "not a usable socket path");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return sysError(ErrorCode::kIo, "socket", "socket()", errno);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == ENOENT || err == ECONNREFUSED)
      return makeError(ErrorCode::kNotFound, "socket", socket_path,
                       "nicoffloadd is not running (nothing listens on " + socket_path + ": " +
                           std::strerror(err) + ")");
    if (err == EACCES)
      return makeError(ErrorCode::kPermissionDenied, "socket", socket_path,
                       "permission denied on " + socket_path + " (the control socket is for root)");
    return sysError(ErrorCode::kIo, "socket", "cannot connect to " + socket_path, err);
  }
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return std::unique_ptr<Client>(new Client(fd, socket_path));
}

Client::~Client() { ::close(fd_); }

Result<nlohmann::json> Client::call(const nlohmann::json& request, int timeout_ms) {
  const std::string line = request.dump() + "\n";
  std::size_t sent = 0;
  while (sent < line.size()) {
    const ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      // The daemon may have answered (e.g. refused us) and closed: read that.
      break;
    }
    sent += static_cast<std::size_t>(n);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
      nlohmann::json reply = nlohmann::json::parse(buffer_.substr(0, nl), nullptr, false);
      buffer_.erase(0, nl + 1);
      if (reply.is_discarded() || !reply.is_object())
        return makeError(ErrorCode::kInternal, "reply", "", "nicoffloadd sent a reply that is not JSON");
      if (reply.value("ok", false)) return reply.contains("result") ? reply["result"] : nlohmann::json();
      return errorFromJson(reply.value("error", nlohmann::json()));
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0)
      return makeError(ErrorCode::kBusy, "reply", "", "nicoffloadd did not answer within " + std::to_string(timeout_ms) + " ms");
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      if (sent < line.size())
        return sysError(ErrorCode::kIo, "socket", "nicoffloadd closed the connection while we were sending", EPIPE);
      return makeError(ErrorCode::kIo, "socket", path_, "nicoffloadd closed the connection without a reply");
    }
    buffer_.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace nicoffload::offload::control
