#include "nicoffload/daemon/control.h"

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
#include <optional>

#include "nicoffload/common/text.h"
#include "nicoffload/model/json_input.h"

namespace nicoffload::daemon::control {
namespace {

constexpr std::uint64_t kListenTag = 0;
constexpr std::uint64_t kExternalTag = ~std::uint64_t{0};  // watchFd(): poll() returns early

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
  return {{"code", info.name}, {"title", info.title},  {"field", e.field},
          {"value", e.value},  {"message", e.message}, {"suggestion", info.suggestion}};
}

Error errorFromJson(const nlohmann::json& j) {
  // Replies come from another process: read each member only when it has
  // the expected type (nlohmann's value() throws on a mismatch).
  auto text = [&](const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  Error e;
  e.code = ErrorCode::kInternal;
  if (!j.is_object()) {
    e.message = "malformed error in reply";
    return e;
  }
  if (auto code = errorCodeFromName(text("code"))) e.code = *code;
  return makeError(e.code, text("field"), text("value"), text("message"));
}

nlohmann::json okReply(nlohmann::json result) {
  return {{"ok", true}, {"result", std::move(result)}};
}
nlohmann::json errorReply(const Error& e) { return {{"ok", false}, {"error", errorJson(e)}}; }

std::string serialiseReply(const nlohmann::json& reply) {
  // Every Error is printable already (makeError); `replace` is the last line
  // of defence for a string that reached a reply some other way.
  try {
    return reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  } catch (const std::exception& e) {
    try {
      return errorReply(makeError(ErrorCode::kInternal, "reply", "",
                                  std::string("the reply could not be serialised: ") + e.what()))
                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
             "\n";
    } catch (const std::exception&) {
      return "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"the reply could not be "
             "serialised\"}}\n";
    }
  }
}

Status ensureNoDaemonListens(const std::string& socket_path) {
  sockaddr_un addr{};
  if (!fillAddress(socket_path, addr))
    return makeError(ErrorCode::kInvalidValue, "socket", socket_path,
                     "socket path must be non-empty and shorter than 108 bytes");
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return sysError(ErrorCode::kIo, "socket", "socket()", errno);
  const bool alive = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(probe);
  if (alive)
    return makeError(ErrorCode::kConflict, "socket", socket_path,
                     "another nicoffloadd already listens on " + socket_path);
  return Status::success();
}

// --- server ---

Result<std::unique_ptr<Server>> Server::open(const Options& options) {
  sockaddr_un addr{};
  if (!fillAddress(options.socket_path, addr))
    return makeError(ErrorCode::kInvalidValue, "socket", options.socket_path,
                     "socket path must be non-empty and shorter than 108 bytes");
  // Another daemon answering on the path? Then refuse; a dead socket file is removed.
  if (auto alive = ensureNoDaemonListens(options.socket_path); !alive) return alive.error();
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
  const mode_t old_mask =
      ::umask(0177);  // the file is born 0600: no window where others may connect
  const int rc = ::bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  const int bind_err = errno;
  ::umask(old_mask);
  if (rc != 0) {
    ::close(s->listen_fd_);
    s->listen_fd_ = -1;  // not ours: the destructor must not remove the path
    return sysError(ErrorCode::kIo, "socket", "cannot bind " + options.socket_path, bind_err);
  }
  ::chmod(options.socket_path.c_str(), 0600);
  if (::listen(s->listen_fd_, 128) != 0)
    return sysError(ErrorCode::kIo, "socket", "listen()", errno);
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
    c.last_activity = Clock::now();
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
      sendNow(id,
              errorReply(makeError(ErrorCode::kPermissionDenied, "peer",
                                   known ? "uid " + std::to_string(cred.uid) : "unknown",
                                   "the nicoffload control socket is for root only")),
              true);
      continue;
    }
    if (conns_.size() > options_.max_connections) {
      sendNow(id,
              errorReply(makeError(ErrorCode::kBusy, "connections", std::to_string(conns_.size()),
                                   "too many connections to nicoffloadd; retry")),
              true);
    }
  }
}

void Server::sendNow(std::uint64_t id, const nlohmann::json& reply, bool then_close) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  auto& c = it->second;
  c.closing = c.closing || then_close;
  if (!c.queued.empty()) {  // after the replies owed to earlier requests
    c.queued.emplace_back(serialiseReply(reply));
    watch(id);  // closing: read no more
    return;
  }
  if (c.out.empty()) c.output_since = Clock::now();
  c.out += serialiseReply(reply);
  flush(id);
}

void Server::watch(std::uint64_t id) {
  const auto& c = conns_.at(id);
  epoll_event ev{};
  // After end of input (or an error that closes) nothing more is read: a
  // level-triggered EOF would otherwise wake the loop forever.
  ev.events = (c.peer_closed || c.closing ? 0u : static_cast<std::uint32_t>(EPOLLIN)) |
              (c.out.empty() ? 0u : static_cast<std::uint32_t>(EPOLLOUT));
  ev.data.u64 = id;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void Server::flush(std::uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  auto& c = it->second;
  while (!c.out.empty()) {
    const ssize_t n = ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        watch(id);
        return;
      }
      drop(id);
      return;
    }
    // What is sent is dropped from the front only now and then: erasing
    // each time would move a reply of 100 MB once per send (quadratic).
    c.out_sent += static_cast<std::size_t>(n);
    if (c.out_sent == c.out.size()) {
      c.out.clear();
      c.out_sent = 0;
    } else if (c.out_sent >= (1u << 20) && c.out_sent >= c.out.size() / 2) {
      c.out.erase(0, c.out_sent);
      c.out_sent = 0;
    }
    c.output_since = c.last_activity = Clock::now();
  }
  watch(id);
  if (c.closing && c.queued.empty()) {
    drop(id);
    return;
  }
  closeIfDone(id);
}

void Server::closeIfDone(std::uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  const auto& c = it->second;
  if (c.peer_closed && c.queued.empty() && c.out.empty()) drop(id);
}

void Server::drop(std::uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.fd, nullptr);
  ::close(it->second.fd);
  conns_.erase(it);
}

bool Server::handleLine(std::uint64_t id, std::string_view line, std::vector<Request>& out) {
  if (line.size() > options_.max_request_bytes) {
    ++counters_.oversized;
    sendNow(id,
            errorReply(makeError(ErrorCode::kInvalidValue, "request",
                                 std::to_string(line.size()) + " bytes",
                                 "request larger than the limit of " +
                                     std::to_string(options_.max_request_bytes) + " bytes")),
            true);
    return false;
  }
  // The line as the peer sent it, cut and escaped: it may be anything.
  const std::string echoed = printable(line, 60);
  Error refusal;
  nlohmann::json body;
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
    refusal = makeError(ErrorCode::kInvalidValue, "request", "",
                        "empty request: each request is one JSON object on one line, e.g. "
                        "{\"op\":\"status\"}");
  } else if (auto parsed = model::parseJsonInput(line, "request"); !parsed) {
    // Not JSON (invalid UTF-8 included), too deep, or a key given twice. A
    // duplicate names the key inside the request ("port.vm"), like any
    // other refusal of a request field.
    refusal = parsed.error();
    if (refusal.field.rfind("request: ", 0) == 0) refusal.field = refusal.field.substr(9);
    if (refusal.value.empty()) refusal.value = echoed;
    refusal.message = "the request is " + refusal.message;
  } else if (!parsed->is_object()) {
    refusal =
        makeError(ErrorCode::kInvalidValue, "request", echoed, "the request must be a JSON object");
  } else if (const auto op = parsed->find("op"); op == parsed->end() || !op->is_string()) {
    refusal =
        makeError(ErrorCode::kInvalidValue, "op", echoed, "the request has no string field \"op\"");
  } else {
    body = std::move(parsed).value();
  }
  if (body.is_null()) {
    ++counters_.malformed;
    sendNow(id, errorReply(refusal), false);
    return conns_.count(id) > 0;
  }
  auto& c = conns_.at(id);
  ++counters_.requests;
  c.queued.emplace_back(std::nullopt);  // owed: filled by reply()
  out.push_back({id, std::move(body), c.uid});
  return true;
}

void Server::readFrom(std::uint64_t id, std::vector<Request>& out) {
  auto it = conns_.find(id);
  if (it == conns_.end() || it->second.closing || it->second.peer_closed) return;
  char buf[65536];
  while (true) {
    auto& c = conns_.at(id);
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n == 0) {
      // End of input: the peer may have half-closed and still wait for its
      // replies. A last line without its '\n' is answered as a request.
      c.peer_closed = true;
      c.partial_since = {};
      if (!c.in.empty()) {
        const std::string last = std::move(c.in);
        c.in.clear();
        if (!handleLine(id, last, out)) return;
      }
      watch(id);
      closeIfDone(id);
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      drop(id);
      return;
    }
    const auto now = Clock::now();
    c.last_activity = now;
    const bool partial_before = !c.in.empty();
    const std::size_t scanned = c.in.size();  // holds no '\n': only the new bytes are searched
    c.in.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl; (nl = c.in.find('\n', start ? start : scanned)) != std::string::npos;
         start = nl + 1) {
      // `in` is not touched while a line is handled; a false return means
      // reading stops: the connection is gone or closing.
      if (!handleLine(id, std::string_view(c.in.data() + start, nl - start), out)) return;
    }
    auto& cc = conns_.at(id);
    cc.in.erase(0, start);
    // The clock of an unfinished line starts at its first byte.
    if (cc.in.empty()) {
      cc.partial_since = {};
    } else if (start > 0 || !partial_before) {
      cc.partial_since = now;
    }
    if (cc.in.size() > options_.max_request_bytes) {
      ++counters_.oversized;
      sendNow(id,
              errorReply(makeError(ErrorCode::kInvalidValue, "request",
                                   std::to_string(cc.in.size()) + "+ bytes",
                                   "request larger than the limit of " +
                                       std::to_string(options_.max_request_bytes) + " bytes")),
              true);
      return;
    }
  }
}

int Server::expire(int timeout_ms) {
  const auto now = Clock::now();
  auto next = timeout_ms < 0 ? Clock::duration::max()
                             : Clock::duration(std::chrono::milliseconds(timeout_ms));
  std::vector<std::uint64_t> partial, stalled, idle;
  for (const auto& [id, c] : conns_) {
    Clock::time_point due;
    std::vector<std::uint64_t>* late;
    if (!c.out.empty()) {  // replies the client does not read
      due = c.output_since + options_.partial_request_timeout;
      late = &stalled;
    } else if (!c.in.empty()) {  // a request that does not end
      due = c.partial_since + options_.partial_request_timeout;
      late = &partial;
    } else if (c.queued.empty()) {
      due = c.last_activity + options_.idle_timeout;
      late = &idle;
    } else {
      continue;  // its reply is being prepared
    }
    if (due <= now) {
      late->push_back(id);
    } else {
      next = std::min<Clock::duration>(next, due - now);
    }
  }
  counters_.timed_out += partial.size() + stalled.size() + idle.size();
  for (const auto id : partial) {
    // One attempt to say why, then the slot is freed whether or not the
    // client takes the reply.
    sendNow(id,
            errorReply(makeError(ErrorCode::kBusy, "request", "",
                                 "incomplete request: no end of line within " +
                                     std::to_string(options_.partial_request_timeout.count()) +
                                     " ms of its first byte; the connection is closed")),
            true);
    drop(id);
  }
  for (const auto id : stalled) drop(id);
  for (const auto id : idle) drop(id);
  if (next == Clock::duration::max()) return -1;
  // Rounded up: waking a little late is fine, spinning before the deadline is not.
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(next).count());
}

Status Server::watchFd(int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kExternalTag;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0)
    return sysError(ErrorCode::kIo, "epoll", "cannot watch descriptor " + std::to_string(fd), errno);
  return Status::success();
}

void Server::discountOwnTurn() {
  if (!turn_started_) return;
  const auto own = Clock::now() - *turn_started_;
  turn_started_.reset();
  // A turn of a few ms is the normal cost of serving; only long ones (a
  // large batch, a slice of bulk work, a full pass's repair) are worth the walk.
  if (own < std::chrono::milliseconds(1)) return;
  for (auto& [id, c] : conns_) {
    if (c.partial_since != Clock::time_point{}) c.partial_since += own;
    if (c.output_since != Clock::time_point{}) c.output_since += own;
    c.last_activity += own;
  }
}

std::vector<Request> Server::poll(int timeout_ms) {
  std::vector<Request> out;
  epoll_event events[64];
  // The bytes a client sent while the daemon was busy are still unread: the
  // time they waited is the daemon's, not the client's.
  discountOwnTurn();
  const int n = ::epoll_wait(epoll_fd_, events, 64, expire(timeout_ms));
  turn_started_ = Clock::now();
  for (int i = 0; i < n; ++i) {
    const std::uint64_t id = events[i].data.u64;
    if (id == kListenTag) {
      accept();
      continue;
    }
    if (id == kExternalTag) continue;  // the caller reads it
    if (events[i].events & EPOLLOUT) flush(id);
    auto it = conns_.find(id);
    if (it == conns_.end()) continue;
    if (it->second.peer_closed || it->second.closing) {
      // Nothing more to read; a hang-up now means the peer is gone both
      // ways and what it is owed cannot be delivered.
      if (events[i].events & (EPOLLHUP | EPOLLERR)) drop(id);
      continue;
    }
    if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) readFrom(id, out);
  }
  return out;
}

void Server::reply(std::uint64_t connection, const nlohmann::json& response) {
  if (!conns_.count(connection)) return;
  replyText(connection, serialiseReply(response));
}

void Server::replyText(std::uint64_t connection, std::string line) {
  auto it = conns_.find(connection);
  if (it == conns_.end()) return;
  auto& c = it->second;
  const auto owed = std::find(c.queued.begin(), c.queued.end(), std::nullopt);
  if (owed == c.queued.end()) {  // nothing owed (a caller's mistake): sent as it comes
    if (c.out.empty()) c.output_since = Clock::now();
    c.out += line;
    flush(connection);
    return;
  }
  *owed = std::move(line);
  // Everything now complete at the head of the queue goes out, in order.
  if (c.out.empty() && c.queued.front()) c.output_since = Clock::now();
  while (!c.queued.empty() && c.queued.front()) {
    c.out += *c.queued.front();
    c.queued.pop_front();
  }
  flush(connection);
}

// --- client ---

Result<std::unique_ptr<Client>> Client::connect(const std::string& socket_path, int timeout_ms) {
  sockaddr_un addr{};
  if (!fillAddress(socket_path, addr))
    return makeError(ErrorCode::kInvalidValue, "socket", socket_path, "not a usable socket path");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return sysError(ErrorCode::kIo, "socket", "socket()", errno);
  // A blocking connect on a unix socket waits while the daemon's listen
  // queue is full; SO_SNDTIMEO bounds that wait (EAGAIN when it runs out).
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EAGAIN || err == EINPROGRESS)
      return makeError(ErrorCode::kBusy, "socket", socket_path,
                       "nicoffloadd did not accept the connection within " + std::to_string(timeout_ms) +
                           " ms (its listen queue is full); retry");
    if (err == ENOENT || err == ECONNREFUSED)
      return makeError(ErrorCode::kNotFound, "socket", socket_path,
                       "nicoffloadd is not running (nothing listens on " + socket_path + ": " +
                           std::strerror(err) + ")");
    if (err == EACCES)
      return makeError(ErrorCode::kPermissionDenied, "socket", socket_path,
                       "permission denied on " + socket_path + " (the control socket is for root)");
    return sysError(ErrorCode::kIo, "socket", "cannot connect to " + socket_path, err);
  }
  return std::unique_ptr<Client>(new Client(fd, socket_path));
}

Client::~Client() { ::close(fd_); }

Result<nlohmann::json> Client::call(const nlohmann::json& request, int timeout_ms) {
  const std::string line = serialiseReply(request);  // one line, never throws
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
      auto parsed = model::parseJsonInput(std::string_view(buffer_).substr(0, nl), "reply");
      buffer_.erase(0, nl + 1);
      if (!parsed || !parsed->is_object())
        return makeError(ErrorCode::kInternal, "reply", "",
                         "nicoffloadd sent a reply that is not a JSON object");
      const nlohmann::json& reply = *parsed;
      const auto ok = reply.find("ok");
      if (ok == reply.end() || !ok->is_boolean())
        return makeError(ErrorCode::kInternal, "reply.ok", "",
                         "nicoffloadd sent a reply without a boolean \"ok\"");
      if (ok->get<bool>()) return reply.contains("result") ? reply["result"] : nlohmann::json();
      return errorFromJson(reply.contains("error") ? reply["error"] : nlohmann::json());
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0)
      return makeError(ErrorCode::kBusy, "reply", "",
                       "nicoffloadd did not answer within " + std::to_string(timeout_ms) + " ms");
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      if (sent < line.size())
        return sysError(ErrorCode::kIo, "socket",
                        "nicoffloadd closed the connection while we were sending", EPIPE);
      return makeError(ErrorCode::kIo, "socket", path_,
                       "nicoffloadd closed the connection without a reply");
    }
    buffer_.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace nicoffload::daemon::control
