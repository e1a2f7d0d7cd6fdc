// SocketDaemonClient against a real control::Server on a temp socket:
// pipelining, refusals as values, a daemon that is not running, one that
// does not answer (the deadline holds).
#include "nicoffload/hooks/socket_client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "nicoffload/offload/control.h"

namespace nicoffload::hooks {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace control = offload::control;

std::string tempSocket() {
  char tmpl[] = "/tmp/nfo-hooksock-XXXXXX";
  const char* dir = ::mkdtemp(tmpl);
  return std::string(dir ? dir : "/tmp") + "/ctl.sock";
}

// Answers "ping" with its "n", anything else with an invalid-value error;
// records the size of every batch poll() returned. `silent` never answers.
class TestServer {
 public:
  explicit TestServer(bool silent = false) : path_(tempSocket()) {
    control::Server::Options o;
    o.socket_path = path_;
    o.allowed_uids = {::geteuid()};
    auto s = control::Server::open(o);
    EXPECT_TRUE(s) << s.error().describe();
    server_ = std::move(s).value();
    thread_ = std::thread([this, silent] {
      while (!stop_) {
        auto batch = server_->poll(20);
        if (!batch.empty()) largest_batch_ = std::max<std::size_t>(largest_batch_, batch.size());
        if (silent) continue;
        for (const auto& r : batch) {
          if (r.body["op"] == "ping")
            server_->reply(r.connection, control::okReply({{"n", r.body.value("n", 0)}}));
          else
            server_->reply(r.connection,
                           control::errorReply(makeError(ErrorCode::kDuplicate, "port.mac",
                                                         "52:54:00:00:00:01", "MAC in use")));
        }
      }
    });
  }
  ~TestServer() {
    stop_ = true;
    thread_.join();
    server_.reset();
    std::filesystem::remove_all(std::filesystem::path(path_).parent_path());
  }
  const std::string& path() const { return path_; }
  std::size_t largestBatch() const { return largest_batch_; }

 private:
  std::string path_;
  std::unique_ptr<control::Server> server_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> largest_batch_{0};
};

TEST(SocketDaemonClient, PipelinesRequestsAndKeepsReplyOrder) {
  TestServer server;
  SocketDaemonClient client(server.path(), std::chrono::steady_clock::now() + 5s);
  std::vector<json> requests;
  for (int i = 0; i < 4; ++i) requests.push_back({{"op", "ping"}, {"n", i}});
  requests.push_back({{"op", "port.add"}});
  const auto replies = client.callAll(requests);
  ASSERT_EQ(replies.size(), 5u);
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(replies[i].kind, DaemonReply::Kind::kOk) << replies[i].error.describe();
    EXPECT_EQ(replies[i].result["n"], i);
  }
  ASSERT_EQ(replies[4].kind, DaemonReply::Kind::kRefused);
  EXPECT_EQ(replies[4].error.code, ErrorCode::kDuplicate);
  EXPECT_EQ(replies[4].error.field, "port.mac");
  EXPECT_GT(server.largestBatch(), 1u);  // they arrived together
  // The connection is kept for the next call.
  auto again = client.call({{"op", "ping"}, {"n", 9}});
  ASSERT_EQ(again.kind, DaemonReply::Kind::kOk);
  EXPECT_EQ(again.result["n"], 9);
}

TEST(SocketDaemonClient, NothingListeningIsUnavailableAtOnce) {
  const std::string path = tempSocket();
  SocketDaemonClient client(path, std::chrono::steady_clock::now() + 5s);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = client.call({{"op", "status"}});
  EXPECT_EQ(r.kind, DaemonReply::Kind::kUnavailable);
  EXPECT_NE(r.error.message.find("not running"), std::string::npos) << r.error.message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST(SocketDaemonClient, ASilentDaemonCostsNoMoreThanTheDeadline) {
  TestServer server(/*silent=*/true);
  const auto t0 = std::chrono::steady_clock::now();
  SocketDaemonClient client(server.path(), t0 + 300ms);
  auto r = client.callAll({{{"op", "ping"}}, {{"op", "ping"}}});
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].kind, DaemonReply::Kind::kUnavailable);
  EXPECT_EQ(r[1].kind, DaemonReply::Kind::kUnavailable);
  EXPECT_NE(r[0].error.message.find("did not answer"), std::string::npos) << r[0].error.message;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 2s);
  // Once down, every later call fails at once.
  const auto t1 = std::chrono::steady_clock::now();
  EXPECT_EQ(client.call({{"op", "ping"}}).kind, DaemonReply::Kind::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 50ms);
}

}  // namespace
}  // namespace nicoffload::hooks
