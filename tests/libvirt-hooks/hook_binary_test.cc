// The nicoffload-hook executable as libvirt runs it (argv, the domain XML on
// stdin, hook.json from NICOFFLOAD_HOOK_CONFIG), against sockets that
// misbehave: its exit status is the one documented whatever happens, and it
// never dies by a signal (it used to abort with SIGABRT, exit 134).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fixtures.h"
#include "test_servers.h"

extern char** environ;

namespace nicoffload::hooks {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::domainXml;
using testing::FullListener;
using testing::RawServer;
using testing::twoPorts;

struct HookRun {
  int status = -1;  // exit status, or 128 + signal
  std::string out;
  std::string err;
  std::chrono::milliseconds took{0};
};

// A hook.json in its own temp dir.
class ConfigFile {
 public:
  explicit ConfigFile(const json& config) {
    char tmpl[] = "/tmp/nfo-hookbin-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    std::ofstream(path()) << config.dump();
  }
  ~ConfigFile() { std::filesystem::remove_all(dir_); }
  std::string path() const { return dir_ + "/hook.json"; }

 private:
  std::string dir_;
};

HookRun runHookBinary(const std::string& op, const std::string& sub, const std::string& xml,
                      const ConfigFile& config) {
  std::vector<std::string> args = {NICOFFLOAD_HOOK_BINARY, "vm-web-1", op, sub, "-"};
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "NICOFFLOAD_HOOK_CONFIG=", 23) != 0) env.emplace_back(*e);
  env.push_back("NICOFFLOAD_HOOK_CONFIG=" + config.path());
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  int in[2], out[2], err[2];
  EXPECT_EQ(::pipe2(in, O_CLOEXEC), 0);
  EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
  EXPECT_EQ(::pipe2(err, O_CLOEXEC), 0);
  HookRun run;
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {  // only async-signal-safe calls until exec
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  std::size_t written = 0;
  while (written < xml.size()) {  // the hook reads all of stdin first
    const ssize_t n = ::write(in[1], xml.data() + written, xml.size() - written);
    if (n <= 0) break;
    written += static_cast<std::size_t>(n);
  }
  ::close(in[1]);
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&run.out, &run.err};
  int open_fds = 2;
  while (open_fds > 0 && ::poll(fds, 2, 30000) > 0) {
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  run.took =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  run.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  return run;
}

// timeout_ms 1000 against a daemon whose listen queue is full: about one
// second (it used to block in connect() until the 3 s alarm, and ignore
// on_daemon_down "allow").
TEST(HookBinary, AFullListenQueueIsBoundedByTimeoutAndHonoursTheDaemonDownPolicy) {
  FullListener listener;
  for (const char* policy : {"allow", "fail"}) {
    ConfigFile config(
        {{"socket", listener.path()}, {"timeout_ms", 1000}, {"on_daemon_down", policy}});
    const auto run = runHookBinary("prepare", "begin", domainXml(twoPorts()), config);
    EXPECT_LT(run.took, 1600ms) << policy;
    if (std::string(policy) == "allow") {
      EXPECT_EQ(run.status, 0) << run.err;
      EXPECT_EQ(run.err.rfind("nicoffload: vm-web-1: warning: nicoffloadd unavailable", 0), 0u)
          << run.err;
      EXPECT_NE(run.err.find("on_daemon_down=allow"), std::string::npos) << run.err;
    } else {
      EXPECT_EQ(run.status, 1) << run.err;
      EXPECT_EQ(run.err.rfind("nicoffload: vm-web-1: nicoffloadd unavailable", 0), 0u) << run.err;
    }
    EXPECT_NE(run.err.find("listen queue is full"), std::string::npos) << run.err;
  }
}

// Replies of a shape the hook does not expect, on every operation.
TEST(HookBinary, RepliesOfAnUnexpectedShapeGiveTheDocumentedExitStatus) {
  for (const char* reply :
       {R"({"ok":"yes"})", R"({"ok":true,"result":[1]})", R"({"ok":true,"result":{"status":"up"}})",
        R"({"ok":false,"error":[]})", "\xff\xfe", R"({"ok":true})"}) {
    RawServer server({reply});
    ConfigFile config({{"socket", server.path()}, {"timeout_ms", 2000}});
    const std::pair<const char*, const char*> ops[] = {
        {"prepare", "begin"}, {"started", "begin"}, {"migrate", "begin"}, {"reconnect", "begin"},
        {"attach", "begin"},  {"stopped", "end"},   {"release", "end"}};
    for (auto [op, sub] : ops) {
      const auto run = runHookBinary(op, sub, domainXml(twoPorts()), config);
      const bool must_not_fail = std::string(sub) == "end" || std::string(op) == "reconnect" ||
                                 std::string(op) == "attach";
      EXPECT_EQ(run.status, must_not_fail ? 0 : 1) << op << " " << reply << ": " << run.err;
      EXPECT_EQ(run.err.rfind("nicoffload: vm-web-1: ", 0), 0u) << op << ": " << run.err;
      EXPECT_EQ(run.out, "") << op;
    }
  }
}

// Invalid UTF-8 in a metadata attribute: refused by prepare, warned by the
// operations that must not fail; never an abort.
TEST(HookBinary, InvalidUtf8InTheMetadataNeverAbortsIt) {
  RawServer server({R"({"ok":true,"result":[]})"});
  ConfigFile config({{"socket", server.path()}, {"timeout_ms", 2000}});
  const std::string xml = domainXml(
      "<nfo:ports xmlns:nfo='http://nicoffload.org/xmlns/ports/1'>"
      "<nfo:port mac='52:54:00:aa:00:04' representor='rep\xff'>"
      "<nfo:address>10.0.0.4</nfo:address></nfo:port></nfo:ports>");
  EXPECT_EQ(runHookBinary("prepare", "begin", xml, config).status, 1);
  for (auto [op, sub] : {std::pair{"reconnect", "begin"},
                         {"attach", "begin"},
                         {"stopped", "end"},
                         {"release", "end"}}) {
    const auto run = runHookBinary(op, sub, xml, config);
    EXPECT_EQ(run.status, 0) << op << ": " << run.err;
    EXPECT_NE(run.err.find("nfo:port[0].representor"), std::string::npos) << op << ": " << run.err;
  }
}

}  // namespace
}  // namespace nicoffload::hooks
