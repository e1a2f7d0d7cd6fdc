// SocketDaemonClient against a real control::Server on a temp socket:
// pipelining, refusals as values, a daemon that is not running, one that
// does not answer (the deadline holds), one whose listen queue is full
// (connect is bounded too), and one that answers with lines of the wrong
// shape (a raw socket server).
#include "nicoffload/hooks/socket_client.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "fixtures.h"
#include "nicoffload/hooks/hook.h"
#include "nicoffload/daemon/control.h"
#include "test_servers.h"

namespace nicoffload::hooks {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace control = daemon::control;
using testing::FullListener;
using testing::RawServer;
using testing::tempSocket;

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
            server_->reply(r.connection,
                           control::okReply({{"n", r.body.value("n", 0)},
                                             {"deadline_ms", r.body.value("deadline_ms", json())}}));
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

// Issue 22: every request carries the hook's deadline (CLOCK_MONOTONIC ms,
// less the reply margin), so that nicoffloadd refuses what it only comes to
// after the hook gave up; a request that names its own deadline keeps it.
TEST(SocketDaemonClient, EveryRequestCarriesTheHooksDeadline) {
  TestServer server;
  const auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  const auto before = now_ms();
  SocketDaemonClient client(server.path(), std::chrono::steady_clock::now() + 4s);
  const auto after = now_ms();
  EXPECT_GE(client.requestDeadlineMs(), before + 4000 - 250);
  EXPECT_LE(client.requestDeadlineMs(), after + 4000 - 250);
  auto replies = client.callAll({{{"op", "ping"}, {"n", 1}},
                                 {{"op", "ping"}, {"n", 2}},
                                 {{"op", "ping"}, {"n", 3}, {"deadline_ms", 42}}});
  ASSERT_EQ(replies.size(), 3u);
  for (const auto& r : replies) ASSERT_EQ(r.kind, DaemonReply::Kind::kOk) << r.error.describe();
  EXPECT_EQ(replies[0].result["deadline_ms"], client.requestDeadlineMs());
  EXPECT_EQ(replies[1].result["deadline_ms"], client.requestDeadlineMs());
  EXPECT_EQ(replies[2].result["deadline_ms"], 42);
  EXPECT_EQ(client.call({{"op", "ping"}}).result["deadline_ms"], client.requestDeadlineMs());
  // A short budget keeps a quarter of itself for the reply, not 250 ms.
  SocketDaemonClient quick(server.path(), std::chrono::steady_clock::now() + 100ms);
  EXPECT_GE(quick.requestDeadlineMs(), before + 70);
  EXPECT_LE(quick.requestDeadlineMs(), now_ms() + 75);
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

TEST(SocketDaemonClient, AFullListenQueueCostsNoMoreThanTheDeadline) {
  FullListener listener;
  const auto t0 = std::chrono::steady_clock::now();
  SocketDaemonClient client(listener.path(), t0 + 1000ms);
  auto r = client.call({{"op", "status"}});
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.kind, DaemonReply::Kind::kUnavailable);
  EXPECT_NE(r.error.message.find("listen queue is full"), std::string::npos) << r.error.message;
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 1500ms) << "timeout_ms 1000 means about one second";
  const auto t1 = std::chrono::steady_clock::now();
  EXPECT_EQ(client.call({{"op", "status"}}).kind, DaemonReply::Kind::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 50ms);
}

TEST(SocketDaemonClient, ConnectGetsInAsSoonAsTheDaemonAcceptsWithinTheDeadline) {
  FullListener listener;
  const auto t0 = std::chrono::steady_clock::now();
  std::thread daemon([&] {
    std::this_thread::sleep_for(200ms);
    const int accepted = listener.acceptOne();
    std::this_thread::sleep_for(1500ms);  // accepted, never answered
    ::close(accepted);
  });
  SocketDaemonClient client(listener.path(), t0 + 1000ms);
  auto r = client.call({{"op", "status"}});
  daemon.join();
  EXPECT_EQ(r.kind, DaemonReply::Kind::kUnavailable);
  // Connected once there was room; then it waited for the answer.
  EXPECT_NE(r.error.message.find("did not answer"), std::string::npos) << r.error.message;
}

TEST(SocketDaemonClient, TheHookHonoursItsPolicyWhenTheListenQueueIsFull) {
  FullListener listener;
  for (auto policy : {DaemonDownPolicy::kAllow, DaemonDownPolicy::kFail}) {
    HookConfig config;
    config.socket = listener.path();
    config.timeout_ms = 1000;
    config.on_daemon_down = policy;
    const auto t0 = std::chrono::steady_clock::now();
    SocketDaemonClient client(config.socket, t0 + std::chrono::milliseconds(config.timeout_ms));
    const auto inv = parseArgv({"hook", "vm-web-1", "prepare", "begin", "-"});
    ASSERT_TRUE(inv);
    auto out = runHook(*inv, testing::domainXml(testing::twoPorts()), config, client);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
    if (policy == DaemonDownPolicy::kAllow) {
      EXPECT_EQ(out.exit_code, 0) << out.err;
      EXPECT_EQ(out.err.rfind("nicoffload: vm-web-1: warning: nicoffloadd unavailable", 0), 0u)
          << out.err;
      EXPECT_NE(out.err.find("on_daemon_down=allow"), std::string::npos) << out.err;
    } else {
      EXPECT_EQ(out.exit_code, 1) << out.err;
      EXPECT_EQ(out.err.rfind("nicoffload: vm-web-1: nicoffloadd unavailable", 0), 0u) << out.err;
    }
    EXPECT_NE(out.err.find("listen queue is full"), std::string::npos) << out.err;
  }
}

TEST(SocketDaemonClient, RepliesThatCannotBeReadFailTheirOwnRequestOnly) {
  RawServer server({R"({"ok":"yes"})", "\xff", R"({"ok":true})", R"({"ok":true,"result":[1]})",
                    R"({"ok":false,"error":{"code":"table-full","message":"no free VF"}})",
                    R"({"ok":false,"error":{"code":7}})", R"({"ok":true,"result":{"n":5}})"});
  std::vector<DaemonReply> r;
  {
    SocketDaemonClient client(server.path(), std::chrono::steady_clock::now() + 5s);
    std::vector<json> requests(7, json{{"op", "port.add"}});
    ASSERT_NO_THROW(r = client.callAll(requests));
  }
  ASSERT_EQ(r.size(), 7u);
  for (int i : {0, 1, 2, 5}) {
    EXPECT_EQ(r[i].kind, DaemonReply::Kind::kRefused) << i;
    EXPECT_EQ(r[i].error.code, ErrorCode::kInternal) << i;
    EXPECT_NE(r[i].error.message.find("cannot read"), std::string::npos) << r[i].error.describe();
  }
  EXPECT_EQ(r[0].error.field, "reply.ok");
  EXPECT_EQ(r[2].error.field, "reply.result");
  ASSERT_EQ(r[3].kind, DaemonReply::Kind::kOk);  // the shape of a result is the caller's to check
  EXPECT_TRUE(r[3].result.is_array());
  ASSERT_EQ(r[4].kind, DaemonReply::Kind::kRefused);
  EXPECT_EQ(r[4].error.code, ErrorCode::kTableFull);
  ASSERT_EQ(r[6].kind, DaemonReply::Kind::kOk);
  EXPECT_EQ(r[6].result, (json{{"n", 5}}));
}

}  // namespace
}  // namespace nicoffload::hooks
