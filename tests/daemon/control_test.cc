#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>

#include "nicoffload/offload/control.h"
#include "nicoffload/offload/metrics.h"
#include "temp_dirs.h"

namespace nicoffload::offload::control {
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
            server_->reply(r.connection, errorReply(makeError(ErrorCode::kInvalidValue, "op",
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

// Sends raw bytes and reads one reply line.
std::string rawExchange(const std::string& path, const std::string& bytes) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return "connect failed";
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
  struct stat st{};
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
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child exit code 10: setuid failed, 11: connect failed, 12: served, 13: wrong error";
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

TEST(ControlSocket, ClientSaysWhenTheDaemonIsNotRunning) {
  auto c = Client::connect(tempSocket(), 1000);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kNotFound);
  EXPECT_NE(c.error().message.find("nicoffloadd is not running"), std::string::npos);
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
  for (int attempt = 0; attempt < 50 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0; ++attempt)
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
}  // namespace nicoffload::offload::control
