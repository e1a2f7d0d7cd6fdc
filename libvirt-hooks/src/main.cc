// nicoffload-hook: libvirt's qemu hook (installed as
// /etc/libvirt/hooks/qemu.d/50-nicoffload). It never calls libvirt: libvirtd
// waits for the hook, so a call back would deadlock.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "nicoffload/hooks/hook.h"
#include "nicoffload/hooks/socket_client.h"

namespace {

using namespace nicoffload;

// The last line of defence for the time bound: whatever blocks (stdin that
// never closes, a stuck syscall), the hook exits.
volatile sig_atomic_t g_must_not_fail = 0;

extern "C" void onAlarm(int) {
  static const char kMsg[] = "nicoffload: hook timed out (hook.json timeout_ms)\n";
  ssize_t ignored = ::write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
  (void)ignored;
  ::_exit(g_must_not_fail ? 0 : 1);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  auto inv = hooks::parseArgv(args);
  if (!inv) {
    std::fprintf(stderr, "nicoffload: %s\n", inv.error().message.c_str());
    return 1;
  }
  g_must_not_fail = hooks::mustNotFail(inv->op) ? 1 : 0;
  const std::string config_path = hooks::hookConfigPath();
  const auto config = hooks::loadHookConfig(config_path);
  const int timeout_ms = config ? config->timeout_ms : hooks::HookConfig{}.timeout_ms;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);

  struct sigaction sa {};
  sa.sa_handler = onAlarm;
  ::sigaction(SIGALRM, &sa, nullptr);
  ::alarm(static_cast<unsigned>(timeout_ms / 1000 + 2));

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
  if (!out.out.empty()) std::fwrite(out.out.data(), 1, out.out.size(), stdout);
  if (!out.err.empty()) std::fwrite(out.err.data(), 1, out.err.size(), stderr);
  std::fflush(stdout);
  return out.exit_code;
}
