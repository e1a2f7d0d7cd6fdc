#include "nicoffload/daemon/control.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "nicoffload/daemon/metrics.h"
#include "support/temp_dirs.h"

namespace nicoffload::daemon::control {
namespace {

std::string tempSocket() { return testing::makeTempDir("nfo-ctl") + "/ctl.sock"; }

// A server answering {"op":"echo"} with its body, polled on a thread.
class EchoServer {
 public:
  explicit EchoServer(Server::Options o) {
    auto s = Server::open(o);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().describe());
    server_ = std::move(s).value();
    thread_ = std::thread([this] {
      while (!stop_) {
        for (auto& r : server_->poll(20)) {
          if (r.body["op"] == "echo")
            server_->reply(r.connection, okReply(r.body));
          else
            server_->reply(r.connection,
                           errorReply(makeError(ErrorCode::kInvalidValue, "op",
                                                r.body["op"].get<std::string>(), "unknown op")));
        }
      }
    });
  }
  ~EchoServer() {
    stop_ = true;
    thread_.join();
  }
  Server& server() { return *server_; }

 private:
  std::unique_ptr<Server> server_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A connected client socket with a 5 s receive timeout (a test that waits
// for a reply the server never sends fails instead of hanging), or -1.
int connectTo(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

void sendAll(int fd, const std::string& bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<std::size_t>(n);
  }
}

// Everything the server sends until it closes (or 5 s of silence).
std::string readToEnd(int fd) {
  std::string got;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<std::size_t>(n));
  return got;
}

std::vector<nlohmann::json> replyLines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::size_t start = 0;
  for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    out.push_back(nlohmann::json::parse(text.substr(start, nl - start), nullptr, false));
  return out;
}

// Sends raw bytes and reads one reply line.
std::string rawExchange(const std::string& path, const std::string& bytes) {
  const int fd = connectTo(path);
  if (fd < 0) return "connect failed";
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  std::string reply;
  char c;
  while (::recv(fd, &c, 1, 0) == 1 && c != '\n') reply += c;
  ::close(fd);
  return reply;
}

TEST(ControlSocket, RequestReplyAndSocketMode) {
  const auto path = tempSocket();
  EchoServer s({path});
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto c = Client::connect(path, 1000);
  ASSERT_TRUE(c.ok()) << c.error().describe();
  auto r = (*c)->call({{"op", "echo"}, {"x", 1}}, 2000);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ((*r)["x"], 1);
  auto e = (*c)->call({{"op", "nope"}}, 2000);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(e.error().value, "nope");
}

TEST(ControlSocket, MalformedRequestsGetErrorsAndTheServerCarriesOn) {
  const auto path = tempSocket();
  EchoServer s({path});
  const struct {
    std::string line;
    std::string needle;
  } cases[] = {
      {"{not json\n", "not valid JSON"},
      {"[1,2,3]\n", "must be a JSON object"},
      {"{\"opx\": 1}\n", "no string field \\\"op\\\""},
      {"{\"op\": 5}\n", "no string field \\\"op\\\""},
  };
  for (const auto& c : cases) {
    const auto reply = rawExchange(path, c.line);
    EXPECT_NE(reply.find("\"ok\":false"), std::string::npos) << c.line << " -> " << reply;
    EXPECT_NE(reply.find(c.needle), std::string::npos) << c.line << " -> " << reply;
  }
  // Same connection keeps working after a malformed line.
  const auto two = rawExchange(path, "garbage\n");
  EXPECT_NE(two.find("invalid-value"), std::string::npos);
  auto c = Client::connect(path, 1000);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE((*c)->call({{"op", "echo"}}, 2000).ok());
  EXPECT_EQ(s.server().counters().malformed, 5u);
}

TEST(ControlSocket, OversizedRequestIsRefused) {
  const auto path = tempSocket();
  EchoServer s({path, 4096});
  const std::string big = "{\"op\": \"echo\", \"pad\": \"" + std::string(10000, 'a') + "\"}\n";
  const auto reply = rawExchange(path, big);
  EXPECT_NE(reply.find("larger than the limit of 4096 bytes"), std::string::npos) << reply;
  auto c = Client::connect(path, 1000);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE((*c)->call({{"op", "echo"}}, 2000).ok()) << "server must survive";
  EXPECT_GE(s.server().counters().oversized, 1u);
}

TEST(ControlSocket, NonRootPeerIsRefused) {
  const auto path = tempSocket();
  Server::Options o{path};
  o.allowed_uids = {0};
  EchoServer s(o);
  // The socket's directory and file are root-only; let the test child reach
  // it so that the server's own credential check is what refuses it.
  ::chmod(path.substr(0, path.rfind('/')).c_str(), 0755);
  ::chmod(path.c_str(), 0666);
  const pid_t pid = fork();
  if (pid == 0) {
    if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) _exit(10);
    auto c = Client::connect(path, 1000);
    if (!c.ok()) _exit(11);
    auto r = (*c)->call({{"op", "echo"}}, 2000);
    if (r.ok()) _exit(12);
    _exit(r.error().code == ErrorCode::kPermissionDenied ? 0 : 13);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "child exit code 10: setuid failed, 11: connect failed, 12: served, 13: wrong error";
  EXPECT_EQ(s.server().counters().refused_peers, 1u);
}

TEST(ControlSocket, SecondServerOnTheSamePathIsRefusedAndStaleSocketIsReplaced) {
  const auto path = tempSocket();
  {
    EchoServer s({path});
    auto second = Server::open({path});
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.error().code, ErrorCode::kConflict);
  }
  // A stale socket file (daemon killed) is replaced.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
  EchoServer again({path});
  auto c = Client::connect(path, 1000);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE((*c)->call({{"op", "echo"}}, 2000).ok());
}

// Issue 11: invalid UTF-8 in a request line (or a line whose 60th byte
// falls inside a character) made the error reply unserialisable and
// aborted the daemon; deep nesting and repeated keys were not refused.
TEST(ControlSocket, HostileLinesGetClearErrorsAndTheServerLives) {
  const auto path = tempSocket();
  EchoServer s({path});
  std::string e_acute_60;
  for (int i = 0; i < 60; ++i) e_acute_60 += "\xc3\xa9";
  const struct {
    std::string line;
    std::string field;
    std::string needle;
  } cases[] = {
      {"\xff", "request", "not valid JSON"},
      {"{\"op\":\"\xed\xa0\x80\"}", "request", "not valid JSON"},
      {"{\"op\":\"echo\",\"x\":\"\xc0\xaf\"}", "request", "not valid JSON"},
      {"x" + e_acute_60, "request", "not valid JSON"},                 // byte 60 mid-character
      {"\"" + e_acute_60 + "\"", "request", "must be a JSON object"},  // valid JSON, not an object
      {std::string(100000, '['), "request", "nested deeper than the limit of 64"},
      {"{\"op\":\"echo\",\"op\":\"x\"}", "op", "appears twice"},
      {"{\"op\":\"echo\",\"port\":{\"vm\":1,\"vm\":2}}", "port.vm", "appears twice"},
      {"{\"op\":\"echo\",\"nul\":\"a\\u0000b\"}", "",
       ""},  // valid: echoed back, NUL escaped in JSON
  };
  for (const auto& c : cases) {
    const auto reply = rawExchange(path, c.line + "\n");
    const auto j = nlohmann::json::parse(reply, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "not one JSON reply for " << printable(c.line) << ": "
                               << printable(reply);
    if (c.field.empty()) {
      EXPECT_TRUE(j["ok"].get<bool>()) << reply;
      continue;
    }
    EXPECT_FALSE(j["ok"].get<bool>()) << reply;
    EXPECT_EQ(j["error"]["field"], c.field) << reply;
    EXPECT_NE(j["error"]["message"].get<std::string>().find(c.needle), std::string::npos) << reply;
    EXPECT_LE(j["error"]["value"].get<std::string>().size(), 90u) << "values are cut: " << reply;
  }
  auto client = Client::connect(path, 1000);
  ASSERT_TRUE(client.ok());
  EXPECT_TRUE((*client)->call({{"op", "echo"}}, 2000).ok()) << "the server must live";
}

TEST(ControlSocket, EmptyLineGetsAnErrorNamingTheRequestAsEmpty) {
  const auto path = tempSocket();
  EchoServer s({path});
  for (const std::string line : {"\n", "  \r\n"}) {
    const auto reply = nlohmann::json::parse(rawExchange(path, line), nullptr, false);
    ASSERT_TRUE(reply.is_object()) << "an empty line must get a reply";
    EXPECT_FALSE(reply["ok"].get<bool>());
    EXPECT_EQ(reply["error"]["field"], "request");
    EXPECT_NE(reply["error"]["message"].get<std::string>().find("empty request"), std::string::npos)
        << reply;
  }
}

// Issue 11: `nc -N` and socat send their requests and then shutdown(SHUT_WR);
// the server dropped the connection at end of input with the replies queued.
TEST(ControlSocket, HalfClosedClientGetsEveryReplyIncludingAnUnterminatedLastLine) {
  const auto path = tempSocket();
  EchoServer s({path});
  const int fd = connectTo(path);
  ASSERT_GE(fd, 0);
  sendAll(fd, "{\"op\":\"echo\",\"n\":1}\n\n{\"op\":\"echo\",\"n\":2}\n{\"op\":\"echo\",\"n\":3}");
  ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);
  const auto text = readToEnd(fd);
  ::close(fd);
  const auto replies = replyLines(text);
  ASSERT_EQ(replies.size(), 4u) << "two requests, an empty line, a last line without its newline: "
                                << text;
  EXPECT_EQ(replies[0]["result"]["n"], 1);
  EXPECT_FALSE(replies[1]["ok"].get<bool>()) << "the empty line";
  EXPECT_EQ(replies[2]["result"]["n"], 2);
  EXPECT_EQ(replies[3]["result"]["n"], 3) << "the unterminated last line is a request";
}

// Issue 11: connections holding a partial request were never timed out; a
// few hundred of them locked every other client out with `busy`.
TEST(ControlSocket, PartialRequestsTimeOutAndFreeTheirSlots) {
  const auto path = tempSocket();
  Server::Options o{path};
  o.max_connections = 20;
  o.partial_request_timeout = std::chrono::milliseconds(300);
  EchoServer s(o);
  std::vector<int> slow;
  for (int i = 0; i < 30; ++i) {  // more than the server takes
    const int fd = connectTo(path);
    ASSERT_GE(fd, 0);
    sendAll(fd, "{\"op\":\"echo\",");
    slow.push_back(fd);
  }
  auto locked_out = Client::connect(path, 1000);
  ASSERT_TRUE(locked_out.ok());
  auto busy = (*locked_out)->call({{"op", "echo"}}, 2000);
  ASSERT_FALSE(busy.ok()) << "every slot is held";
  EXPECT_EQ(busy.error().code, ErrorCode::kBusy);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  auto client = Client::connect(path, 1000);
  ASSERT_TRUE(client.ok());
  auto served = (*client)->call({{"op", "echo"}}, 2000);
  EXPECT_TRUE(served.ok()) << "after the timeout the slots are free: " << served.error().describe();
  std::size_t told = 0;
  for (const int fd : slow) {
    const auto text = readToEnd(fd);  // closed by the server: returns at once
    if (text.find("incomplete request") != std::string::npos) ++told;
    ::close(fd);
  }
  EXPECT_EQ(told, 20u) << "each slow client held a slot and is told why it is closed";
  EXPECT_GE(s.server().counters().timed_out, 20u);
}

// Issue 22: a client that pipelines requests while the daemon is busy (a
// large batch, a slice of bulk work) is not cut off for bytes the daemon
// did not read: the partial-request clock counts only the time the server
// was waiting for the client.
TEST(ControlSocket, TheDaemonsOwnBusyTurnDoesNotCountAgainstAPartialRequest) {
  const auto path = tempSocket();
  Server::Options o{path};
  o.partial_request_timeout = std::chrono::milliseconds(200);
  auto opened = Server::open(o);
  ASSERT_TRUE(opened.ok());
  auto& server = **opened;
  const int fd = connectTo(path);
  ASSERT_GE(fd, 0);
  sendAll(fd, R"({"op":"echo","n":1})" "\n" R"({"op":"ec)");
  std::vector<Request> got;
  for (int i = 0; i < 100 && got.empty(); ++i) got = server.poll(20);
  ASSERT_EQ(got.size(), 1u);
  // The daemon's turn: longer than the timeout, and the client sends the
  // rest of its line meanwhile.
  sendAll(fd, R"(ho","n":2})" "\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  server.reply(got[0].connection, okReply(got[0].body));
  std::vector<Request> second;
  for (int i = 0; i < 50 && second.empty(); ++i) second = server.poll(20);
  ASSERT_EQ(second.size(), 1u) << "the connection was closed as a slow client";
  EXPECT_EQ(second[0].body["n"], 2);
  server.reply(second[0].connection, okReply(second[0].body));
  for (int i = 0; i < 5; ++i) server.poll(10);
  ::shutdown(fd, SHUT_WR);
  std::string text;
  for (int i = 0; i < 20 && replyLines(text).size() < 2; ++i) {
    server.poll(10);
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  const auto replies = replyLines(text);
  ASSERT_EQ(replies.size(), 2u) << text;
  EXPECT_TRUE(replies[1]["ok"]) << text;
  EXPECT_EQ(server.counters().timed_out, 0u);
}

// The same for a large reply the client reads as fast as it can: the time
// the daemon spent on other work between two writes is not the reader's.
TEST(ControlSocket, ALargeReplyIsNotCutOffBecauseTheDaemonWasBusy) {
  const auto path = tempSocket();
  Server::Options o{path};
  o.partial_request_timeout = std::chrono::milliseconds(200);
  auto opened = Server::open(o);
  ASSERT_TRUE(opened.ok());
  auto& server = **opened;
  const int fd = connectTo(path);
  ASSERT_GE(fd, 0);
  sendAll(fd, "{\"op\":\"big\"}\n");
  std::vector<Request> got;
  for (int i = 0; i < 100 && got.empty(); ++i) got = server.poll(20);
  ASSERT_EQ(got.size(), 1u);
  std::atomic<std::size_t> received{0};
  std::thread reader([&] {
    char buf[65536];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
      received += static_cast<std::size_t>(n);
      if (buf[n - 1] == '\n') break;
    }
  });
  const std::string payload(8 << 20, 'x');  // far more than a socket buffer holds
  server.reply(got[0].connection, okReply({{"payload", payload}}));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // busy with other work
  for (int i = 0; i < 200 && received < payload.size(); ++i) server.poll(10);
  reader.join();
  ::close(fd);
  EXPECT_GT(received.load(), payload.size()) << "the reply was cut off";
  EXPECT_EQ(server.counters().timed_out, 0u);
}

TEST(ControlSocket, IdleConnectionsAreClosedAfterTheIdleTimeout) {
  const auto path = tempSocket();
  Server::Options o{path};
  o.idle_timeout = std::chrono::milliseconds(200);
  EchoServer s(o);
  const int fd = connectTo(path);
  ASSERT_GE(fd, 0);
  sendAll(fd, "{\"op\":\"echo\"}\n");
  const auto start = std::chrono::steady_clock::now();
  const auto replies = replyLines(readToEnd(fd));  // the reply, then EOF when idle
  ::close(fd);
  EXPECT_EQ(replies.size(), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3))
      << "closed by the server";
}

TEST(ControlSocket, RepliesAreSerialisedWhateverTheyHold) {
  const nlohmann::json reply = {{"ok", true},
                                {"result", {{"name", std::string("rep\xff\xed\xa0\x80")}}}};
  std::string line;
  ASSERT_NO_THROW(line = serialiseReply(reply));
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  const auto back = nlohmann::json::parse(line, nullptr, false);
  ASSERT_TRUE(back.is_object()) << line;
  EXPECT_EQ(back["result"]["name"].get<std::string>().substr(0, 3), "rep");
}

TEST(ControlSocket, ErrorFromJsonToleratesAnyShape) {
  for (const auto& j :
       {nlohmann::json::parse(R"({"code": 5, "field": [], "message": {"a": 1}})"),
        nlohmann::json::parse(R"("just text")"), nlohmann::json::parse("null"),
        nlohmann::json{{"code", "no-such-code"}, {"message", std::string("bad \xff")}}}) {
    Error e;
    ASSERT_NO_THROW(e = errorFromJson(j)) << j.dump();
    EXPECT_EQ(e.code, ErrorCode::kInternal);
    EXPECT_NO_THROW((void)errorReply(e).dump()) << "the error is printable";
  }
}

TEST(ControlSocket, ClientSaysWhenTheDaemonIsNotRunning) {
  auto c = Client::connect(tempSocket(), 1000);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kNotFound);
  EXPECT_NE(c.error().message.find("nicoffloadd is not running"), std::string::npos);
}

TEST(ControlSocket, ClientConnectIsBoundedWhenTheListenQueueIsFull) {
  // A listener that never accepts, with a backlog of 0: connects queue until
  // one would block. Client::connect must give up after its timeout.
  const std::string path = tempSocket();
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 0), 0);
  std::vector<int> fillers;
  for (int i = 0; i < 64; ++i) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      break;  // the queue is full
    }
    fillers.push_back(fd);
  }
  const auto start = std::chrono::steady_clock::now();
  auto c = Client::connect(path, 300);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kBusy) << c.error().describe();
  EXPECT_NE(c.error().message.find("listen queue is full"), std::string::npos);
  EXPECT_LT(took, std::chrono::seconds(3));
  for (int fd : fillers) ::close(fd);
  ::close(listener);
  ::unlink(path.c_str());
}

TEST(Metrics, RendersPrometheusTextAndServesItOnLoopback) {
  MetricsRegistry reg;
  reg.describe("nicoffload_rules", "gauge", "Rules by placement.");
  reg.set("nicoffload_rules", "placement=\"hw\"", 42);
  reg.set("nicoffload_rules", "placement=\"sw\"", 3);
  const auto text = reg.render();
  EXPECT_NE(text.find("# TYPE nicoffload_rules gauge"), std::string::npos);
  EXPECT_NE(text.find("nicoffload_rules{placement=\"hw\"} 42"), std::string::npos);
  auto refused = MetricsServer::start("0.0.0.0", 0);
  ASSERT_FALSE(refused.ok());
  auto s = MetricsServer::start("127.0.0.1", 0);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  (*s)->publish(text);
  // Fetch it over a plain TCP socket.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>((*s)->port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string got;
  for (int attempt = 0;
       attempt < 50 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0; ++attempt)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  EXPECT_NE(got.find("200 OK"), std::string::npos) << got;
  EXPECT_NE(got.find("nicoffload_rules{placement=\"sw\"} 3"), std::string::npos) << got;
}

}  // namespace
}  // namespace nicoffload::daemon::control
