// nicoffload-hook: libvirt's qemu hook (installed as
// /etc/libvirt/hooks/qemu.d/50-nicoffload). It never calls libvirt: libvirtd
// waits for the hook, so a call back would deadlock.
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "nicoffload/common/text.h"
#include "nicoffload/hooks/hook.h"
#include "nicoffload/hooks/socket_client.h"

namespace {

using namespace nicoffload;

// The last line of defence for the time bound: whatever blocks (stdin that
// never closes, a stuck syscall), the hook exits. The handler may only call
// async-signal-safe functions, so its line and exit status are prepared
// before the timer is armed.
volatile sig_atomic_t g_alarm_exit_code = 1;
char g_alarm_line[512] = "nicoffload: hook timed out (hook.json timeout_ms)\n";
volatile sig_atomic_t g_alarm_line_size = 0;

// Exit status when something escapes: 0 for the operations that must not
// fail, whatever happens (libvirt kills a running VM whose reconnect fails).
volatile sig_atomic_t g_exit_code_on_crash = 1;

extern "C" void onAlarm(int) {
  ssize_t ignored = ::write(STDERR_FILENO, g_alarm_line, static_cast<size_t>(g_alarm_line_size));
  (void)ignored;
  ::_exit(g_alarm_exit_code);
}

void prepareAlarm(const std::string& domain, int timeout_ms, bool must_not_fail, bool allow) {
  std::string line = "nicoffload: " + printable(domain) + ": hook timed out after " +
                     std::to_string(timeout_ms) + " ms (hook.json timeout_ms)";
  if (must_not_fail) {
    line += "; the operation must not fail: exit 0";
  } else if (allow) {
    line += ": the domain runs without offload (on_daemon_down=allow)";
  }
  line += "\n";
  const std::size_t n = std::min(line.size(), sizeof g_alarm_line - 1);
  std::memcpy(g_alarm_line, line.data(), n);
  if (n > 0) g_alarm_line[n - 1] = '\n';
  g_alarm_line_size = static_cast<sig_atomic_t>(n);
  g_alarm_exit_code = must_not_fail || allow ? 0 : 1;
}

void writeAll(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // libvirt closed the pipe: nothing left to tell
    done += static_cast<std::size_t>(n);
  }
}

int runMain(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  auto inv = hooks::parseArgv(args);
  if (!inv) {
    writeAll(STDERR_FILENO, "nicoffload: " + printable(inv.error().message, 1024) + "\n");
    return 1;
  }
  const bool must_not_fail = hooks::mustNotFail(inv->op);
  g_exit_code_on_crash = must_not_fail ? 0 : 1;
  // A libvirtd that stopped reading our output must not turn into a death by
  // SIGPIPE (a non-zero status); write() reports EPIPE instead.
  ::signal(SIGPIPE, SIG_IGN);
  const std::string config_path = hooks::hookConfigPath();
  const auto config = hooks::loadHookConfig(config_path);
  const int timeout_ms = config ? config->timeout_ms : hooks::HookConfig{}.timeout_ms;
  const bool allow = config && config->on_daemon_down == hooks::DaemonDownPolicy::kAllow;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);

  // The client answers within the deadline by itself; the timer, a second
  // later, only catches what blocks elsewhere (stdin).
  prepareAlarm(inv->domain, timeout_ms, must_not_fail, allow);
  struct sigaction sa {};
  sa.sa_handler = onAlarm;
  ::sigaction(SIGALRM, &sa, nullptr);
  const int alarm_ms = timeout_ms + 1000;
  itimerval timer{};
  timer.it_value.tv_sec = alarm_ms / 1000;
  timer.it_value.tv_usec = (alarm_ms % 1000) * 1000;
  ::setitimer(ITIMER_REAL, &timer, nullptr);

  // libvirt writes the domain XML to stdin for every operation; read it all
  // even when the operation is not ours, so libvirt's write never fails.
  // read(2), not iostreams: the hook's start-up time is part of every
  // domain operation.
  std::string xml;
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n > 0) {
      xml.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }

  hooks::SocketDaemonClient daemon(config ? config->socket : hooks::HookConfig{}.socket, deadline);
  const auto out = hooks::runHook(*inv, xml, config, daemon);
  writeAll(STDOUT_FILENO, out.out);
  writeAll(STDERR_FILENO, out.err);
  return must_not_fail ? 0 : out.exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  // The process's exception boundary (runHook has its own; this one covers
  // argv, hook.json, reading stdin and memory exhaustion).
  try {
    return runMain(argc, argv);
  } catch (const std::exception& e) {
    try {
      writeAll(STDERR_FILENO, "nicoffload: internal error: " + printable(e.what(), 1024) + "\n");
    } catch (...) {  // no memory left for the message: the exit status says enough
    }
  } catch (...) {
    static const char kMsg[] = "nicoffload: internal error: an exception of unknown type\n";
    ssize_t ignored = ::write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
    (void)ignored;
  }
  return g_exit_code_on_crash;
}
