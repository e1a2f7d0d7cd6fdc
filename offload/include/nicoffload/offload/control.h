// The control API: JSON messages over a unix stream socket, one request or
// reply per line ('\n'-terminated). Requests: {"op": "<name>", ...}; replies:
// {"ok": true, "result": ...} or {"ok": false, "error": {"code", "title",
// "field", "value", "message", "suggestion"}}. Ops: README.md, "Control API".
//
// The server is root-only: the socket file is mode 0600 and every peer's
// credentials (SO_PEERCRED) are checked. A request larger than the limit, a
// line that is not JSON, or a peer that is not allowed gets an error reply;
// the daemon carries on.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "nicoffload/common/error.h"

namespace nicoffload::offload::control {

inline constexpr std::size_t kDefaultMaxRequestBytes = 1 << 20;  // 1 MiB

nlohmann::json errorJson(const Error& e);
Error errorFromJson(const nlohmann::json& j);
nlohmann::json okReply(nlohmann::json result);
nlohmann::json errorReply(const Error& e);

struct Request {
  std::uint64_t connection = 0;
  nlohmann::json body;  // an object with a string "op"
  uid_t uid = 0;        // the peer's uid (already checked)
};

struct ServerCounters {
  std::uint64_t connections = 0;
  std::uint64_t requests = 0;
  std::uint64_t malformed = 0;      // not JSON, not an object, no "op"
  std::uint64_t oversized = 0;      // longer than the limit
  std::uint64_t refused_peers = 0;  // SO_PEERCRED uid not allowed
};

class Server {
 public:
  struct Options {
    std::string socket_path;
    std::size_t max_request_bytes = kDefaultMaxRequestBytes;
    std::vector<uid_t> allowed_uids{0};
    std::size_t max_connections = 256;
  };

  // Binds and listens. Refuses when another daemon answers on the path;
  // removes a stale socket file. Errors: kIo, kConflict.
  static Result<std::unique_ptr<Server>> open(const Options& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Waits up to timeout_ms (-1: forever) for activity and returns the
  // complete, well-formed requests that arrived. Bad ones are answered here.
  // Returns early (possibly empty) when a signal interrupts the wait.
  std::vector<Request> poll(int timeout_ms);

  // Queues a reply for the connection (dropped if it has gone).
  void reply(std::uint64_t connection, const nlohmann::json& response);

  const ServerCounters& counters() const { return counters_; }
  const std::string& path() const { return options_.socket_path; }

 private:
  struct Connection {
    int fd = -1;
    uid_t uid = 0;
    std::string in;
    std::string out;
    bool closing = false;  // close once `out` is written
  };
  explicit Server(Options options) : options_(std::move(options)) {}
  void accept();
  void readFrom(std::uint64_t id, std::vector<Request>& out);
  void flush(std::uint64_t id);
  void drop(std::uint64_t id);
  void sendNow(std::uint64_t id, const nlohmann::json& reply, bool then_close);

  Options options_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, Connection> conns_;
  ServerCounters counters_;
};

// A client of the control socket (nicoffloadctl, the libvirt hook, tests).
class Client {
 public:
  // Errors: kNotFound "nicoffloadd is not running" when nothing listens on
  // the path; kPermissionDenied when the socket refuses us; kIo otherwise.
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

}  // namespace nicoffload::offload::control
