// The control API: JSON messages over a unix stream socket, one request or
// reply per line ('\n'-terminated). Requests: {"op": "<name>", ...}; replies:
// {"ok": true, "result": ...} or {"ok": false, "error": {"code", "title",
// "field", "value", "message", "suggestion"}}. Ops: docs/control-api.md.
//
// The server is root-only: the socket file is mode 0600 and every peer's
// credentials (SO_PEERCRED) are checked. A request larger than the limit, a
// line that is not JSON (invalid UTF-8 included), nested deeper than
// model::kMaxJsonDepth or repeating a key, an empty line, or a peer that is
// not allowed gets an error reply; the daemon carries on.
//
// End of input: a client may half-close (shutdown(SHUT_WR), as `nc -N` and
// socat do) after its requests; it still gets every reply, then the server
// closes. Bytes after the last '\n' at end of input are answered as one
// more request (a line without its terminator), not dropped in silence.
//
// Slow clients: a connection holding part of a request longer than
// Options::partial_request_timeout gets an error reply and is closed, so
// that slow or stuck clients cannot hold every connection slot; an idle one
// (nothing pending) is closed after Options::idle_timeout. These clocks
// count only the time the server was waiting for the client: the time
// between poll() returning and the next poll() (the daemon's own turn, when
// nothing is read or sent) is not the client's fault and is not counted.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "nicoffload/common/error.h"

namespace nicoffload::daemon::control {

inline constexpr std::size_t kDefaultMaxRequestBytes = 16 << 20;  // 16 MiB: a remote.sync of 100 k remotes

nlohmann::json errorJson(const Error& e);
Error errorFromJson(const nlohmann::json& j);
nlohmann::json okReply(nlohmann::json result);
nlohmann::json errorReply(const Error& e);

// Refuses (kConflict) when a daemon answers on `socket_path`; success when
// nothing listens there (a stale socket file is left for Server::open to
// replace). nicoffloadd calls it before it opens any backend.
Status ensureNoDaemonListens(const std::string& socket_path);

// The reply as one line of text (with its '\n'). Never throws: invalid
// UTF-8 that slipped into a reply is replaced with U+FFFD.
std::string serialiseReply(const nlohmann::json& reply);

struct Request {
  std::uint64_t connection = 0;
  nlohmann::json body;  // an object with a string "op"
  uid_t uid = 0;        // the peer's uid (already checked)
};

struct ServerCounters {
  std::uint64_t connections = 0;
  std::uint64_t requests = 0;
  std::uint64_t malformed = 0;      // not JSON, not an object, no "op", empty
  std::uint64_t oversized = 0;      // longer than the limit
  std::uint64_t refused_peers = 0;  // SO_PEERCRED uid not allowed
  std::uint64_t timed_out = 0;      // partial request or idle too long
};

class Server {
 public:
  struct Options {
    std::string socket_path;
    std::size_t max_request_bytes = kDefaultMaxRequestBytes;
    std::vector<uid_t> allowed_uids{0};
    std::size_t max_connections = 256;
    // From the first byte of an unfinished request line to its '\n'; past
    // it the connection gets a kBusy error and is closed. Also bounds how
    // long a client may leave its replies unread.
    std::chrono::milliseconds partial_request_timeout{5000};
    // A connection with nothing pending (no partial request, no reply owed
    // or unsent) is closed after this long without traffic.
    std::chrono::milliseconds idle_timeout{60000};
  };

  // Binds and listens. Refuses when another daemon answers on the path;
  // removes a stale socket file. Errors: kIo, kConflict.
  static Result<std::unique_ptr<Server>> open(const Options& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Waits up to timeout_ms (-1: forever) for activity and returns the
  // complete, well-formed requests that arrived. Bad ones are answered here.
  // Returns early (possibly empty) when a signal interrupts the wait or a
  // connection's timeout is due. Each returned request is owed a reply().
  std::vector<Request> poll(int timeout_ms);
  // Makes poll() return early when `fd` (another source of work of the
  // loop, e.g. the route watcher) is readable; the caller reads it.
  Status watchFd(int fd);

  // Queues the reply to the oldest request of `connection` poll() handed
  // out and not answered yet: replies to one connection must be given in
  // the order of its requests, and go out in that order (dropped if the
  // connection has gone). Never throws: see serialiseReply().
  void reply(std::uint64_t connection, const nlohmann::json& response);
  // The same with the reply serialised already: one line with its '\n'
  // (a large read built in slices: Controller::stepBulk()).
  void replyText(std::uint64_t connection, std::string line);

  const ServerCounters& counters() const { return counters_; }
  const std::string& path() const { return options_.socket_path; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Connection {
    int fd = -1;
    uid_t uid = 0;
    std::string in;
    std::string out;
    std::size_t out_sent = 0;  // bytes at the front of `out` already sent
    bool closing = false;      // close once `out` is written
    bool peer_closed = false;  // end of input seen: close once nothing is owed
    // Replies in request order: nullopt for a request handed out by poll()
    // and not answered yet, text for a reply that waits for it (a bad line
    // is answered by the server at once, but after the ones before it).
    std::deque<std::optional<std::string>> queued;
    Clock::time_point partial_since{};  // first byte of the unfinished line in `in`
    Clock::time_point output_since{};   // `out` last made progress (or filled)
    Clock::time_point last_activity{};  // last byte received or sent
  };
  explicit Server(Options options) : options_(std::move(options)) {}
  void accept();
  void readFrom(std::uint64_t id, std::vector<Request>& out);
  void flush(std::uint64_t id);
  void drop(std::uint64_t id);
  void sendNow(std::uint64_t id, const nlohmann::json& reply, bool then_close);
  // Handles one complete line; false when the connection was dropped.
  bool handleLine(std::uint64_t id, std::string_view line, std::vector<Request>& out);
  // Closes a half-closed connection once every reply is written.
  void closeIfDone(std::uint64_t id);
  // Expires slow and idle connections; returns the time until the next expiry.
  int expire(int timeout_ms);
  // Moves every connection's clocks forward by the daemon's own turn since
  // the last poll() returned (see the header comment).
  void discountOwnTurn();
  void watch(std::uint64_t id);  // epoll interest from the connection's state

  Options options_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, Connection> conns_;
  std::optional<Clock::time_point> turn_started_;  // when poll() last returned
  ServerCounters counters_;
};

// A client of the control socket (nicoffloadctl, the libvirt hook, tests).
class Client {
 public:
  // Errors: kNotFound "nicoffloadd is not running" when nothing listens on
  // the path; kPermissionDenied when the socket refuses us; kBusy when the
  // daemon's listen queue stays full for timeout_ms; kIo otherwise.
  static Result<std::unique_ptr<Client>> connect(const std::string& socket_path, int timeout_ms);
  ~Client();

  // Sends one request and waits for its reply. Returns the "result" of an
  // ok reply, or the reply's error as an Error. kBusy when no reply came in
  // time.
  Result<nlohmann::json> call(const nlohmann::json& request, int timeout_ms);

 private:
  explicit Client(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
  std::string buffer_;
};

}  // namespace nicoffload::daemon::control
