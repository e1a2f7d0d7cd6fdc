// The hook's parsing of nicoffloadd's replies: a fake daemon on a unix socket
// answers the hook's requests with the input's bytes; the hook runs one
// operation (chosen by the first byte) for a domain with two ports over its
// real socket client. Besides crashes, a broken promise is a finding:
// stopped, release, reconnect and attach never exit non-zero (docs/design.md,
// "Reliability rules").
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include "fixtures.h"
#include "fuzz_support.h"
#include "nicoffload/hooks/hook.h"
#include "nicoffload/hooks/socket_client.h"

using namespace nicoffload;

namespace {

// Answers every connection with `replies`, then half-closes and waits for
// the hook to close its end.
class FakeDaemon {
 public:
  FakeDaemon() : path_(fuzz::scratchDir() + "/nicoffloadd.sock") {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 16) != 0)
      std::abort();
    std::thread([this] { serve(); }).detach();
  }
  void setReplies(std::string_view r) {
    std::lock_guard<std::mutex> lock(mu_);
    replies_.assign(r);
  }
  const std::string& path() const { return path_; }

 private:
  void serve() {
    while (true) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::string out;
      {
        std::lock_guard<std::mutex> lock(mu_);
        out = replies_;
      }
      std::size_t sent = 0;
      while (sent < out.size()) {
        const ssize_t n = ::send(c, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
      }
      ::shutdown(c, SHUT_WR);
      char buf[4096];
      while (::recv(c, buf, sizeof buf, 0) > 0) {
      }
      ::close(c);
    }
  }
  std::string path_;
  int fd_ = -1;
  std::mutex mu_;
  std::string replies_;
};

constexpr hooks::Operation kOps[] = {
    hooks::Operation::kPrepare, hooks::Operation::kStart,   hooks::Operation::kStarted,
    hooks::Operation::kStopped, hooks::Operation::kRelease, hooks::Operation::kMigrate,
    hooks::Operation::kRestore, hooks::Operation::kReconnect, hooks::Operation::kAttach};
constexpr const char* kOpNames[][2] = {{"prepare", "begin"}, {"start", "begin"},   {"started", "begin"},
                                       {"stopped", "end"},   {"release", "end"},   {"migrate", "begin"},
                                       {"restore", "begin"}, {"reconnect", "begin"}, {"attach", "begin"}};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static FakeDaemon daemon;
  static const std::string xml = hooks::testing::domainXml(hooks::testing::twoPorts());
  if (size == 0) return 0;
  const std::size_t which = data[0] % std::size(kOps);
  hooks::Invocation inv;
  inv.domain = "vm-web-1";
  inv.operation = kOpNames[which][0];
  inv.sub_operation = kOpNames[which][1];
  inv.extra = "-";
  inv.op = kOps[which];
  hooks::HookConfig config;
  config.socket = daemon.path();
  config.timeout_ms = 1000;
  config.on_daemon_down = (data[0] & 0x80) ? hooks::DaemonDownPolicy::kAllow : hooks::DaemonDownPolicy::kFail;
  daemon.setReplies(fuzz::asText(data + 1, size - 1));

  hooks::HookOutcome outcome;
  {
    hooks::SocketDaemonClient client(config.socket,
                                     std::chrono::steady_clock::now() + std::chrono::milliseconds(config.timeout_ms));
    // Entry: the replies are parsed inside SocketDaemonClient::callAll
    // (parseDaemonReply at merge) and used by runHook.
    outcome = hooks::runHook(inv, xml, config, client);
  }
  const bool must_not_fail = inv.op == hooks::Operation::kStopped || inv.op == hooks::Operation::kRelease ||
                             inv.op == hooks::Operation::kReconnect || inv.op == hooks::Operation::kAttach;
  if (must_not_fail && outcome.exit_code != 0) {
    std::fprintf(stderr, "nicoffload-hook %s exited %d: %s\n", inv.operation.c_str(), outcome.exit_code,
                 outcome.err.c_str());
    std::abort();
  }
  return 0;
}
