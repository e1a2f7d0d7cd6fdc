// Spawns nicoffload-hook the way libvirt does (fork+exec, domain XML on
// stdin) from N threads at once and prints the latency of prepare+start per
// domain. Driven by bench/hook_bench.py, which starts nicoffloadd and writes
// the domain XML files; a C++ spawner keeps the harness's own cost out of the
// figures.
//
//   nicoffload_hook_spawn_bench HOOK ROUNDS XML...
//       one file per domain; HOOK may be any executable (the harness also
//       runs a static no-op to measure what starting 64 processes costs)
//   nicoffload_hook_spawn_bench --socket PATH ROUNDS PREFIX...
//       no process: per domain, PREFIX.add (the hook's port.add requests,
//       one JSON per line) is sent for prepare and again for start, and
//       PREFIX.remove after the round, over nicoffloadd's control socket:
//       the daemon's share of the hook latency
//
// Prints: samples, p50, p99, max (prepare+start, ms), prepare p50, p99.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

bool runHook(const std::string& hook, const std::string& xml_file, const char* op,
             const char* sub) {
  const int fd = ::open(xml_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fd, 0);
  const std::string name = "bench";
  std::vector<char*> argv{const_cast<char*>(hook.c_str()), const_cast<char*>(name.c_str()),
                          const_cast<char*>(op),           const_cast<char*>(sub),
                          const_cast<char*>("-"),          nullptr};
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, hook.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fd);
  if (rc != 0) return false;
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Sends `requests` (JSON lines) on a new connection and waits for as many
// reply lines; false unless every reply says "ok":true.
bool callDaemon(const std::string& socket_path, const std::string& requests) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  for (std::size_t sent = 0; ok && sent < requests.size();) {
    const ssize_t n = ::send(fd, requests.data() + sent, requests.size() - sent, MSG_NOSIGNAL);
    ok = n > 0;
    if (ok) sent += static_cast<std::size_t>(n);
  }
  const auto want = static_cast<std::size_t>(std::count(requests.begin(), requests.end(), '\n'));
  std::string replies;
  char buf[65536];
  while (ok && static_cast<std::size_t>(std::count(replies.begin(), replies.end(), '\n')) < want) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ok = n > 0;
    if (ok) replies.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  std::size_t oks = 0;
  for (std::size_t at = replies.find("\"ok\":true"); at != std::string::npos;
       at = replies.find("\"ok\":true", at + 1))
    ++oks;
  return ok && oks == want;
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1,
                    static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5))];
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string socket_path;
  if (args.size() >= 2 && args[0] == "--socket") {
    socket_path = args[1];
    args.erase(args.begin(), args.begin() + 2);
  }
  if ((socket_path.empty() && args.size() < 3) || (!socket_path.empty() && args.size() < 2)) {
    std::fprintf(stderr,
                 "usage: %s HOOK ROUNDS XML...\n"
                 "       %s --socket PATH ROUNDS PREFIX...\n",
                 argv[0], argv[0]);
    return 2;
  }
  const std::string hook = socket_path.empty() ? args[0] : "";
  if (socket_path.empty()) args.erase(args.begin());
  const int rounds = std::atoi(args[0].c_str());
  const std::vector<std::string> domains(args.begin() + 1, args.end());
  std::vector<std::string> add(domains.size()), remove(domains.size());
  if (!socket_path.empty())
    for (std::size_t i = 0; i < domains.size(); ++i) {
      add[i] = slurp(domains[i] + ".add");
      remove[i] = slurp(domains[i] + ".remove");
    }

  std::vector<double> both, prepare;
  std::mutex mu;
  bool ok = true;
  using clock = std::chrono::steady_clock;
  for (int r = 0; r < rounds; ++r) {
    std::barrier sync(static_cast<std::ptrdiff_t>(domains.size()));
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < domains.size(); ++i)
      threads.emplace_back([&, i] {
        sync.arrive_and_wait();
        const auto t0 = clock::now();
        const bool a = socket_path.empty() ? runHook(hook, domains[i], "prepare", "begin")
                                           : callDaemon(socket_path, add[i]);
        const auto t1 = clock::now();
        const bool b = socket_path.empty() ? runHook(hook, domains[i], "start", "begin")
                                           : callDaemon(socket_path, add[i]);
        const auto t2 = clock::now();
        std::lock_guard lock(mu);
        ok = ok && a && b;
        both.push_back(std::chrono::duration<double, std::milli>(t2 - t0).count());
        prepare.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      });
    for (auto& t : threads) t.join();
    threads.clear();
    for (std::size_t i = 0; i < domains.size(); ++i)
      threads.emplace_back([&, i] {
        if (socket_path.empty()) {
          runHook(hook, domains[i], "release", "end");
        } else {
          callDaemon(socket_path, remove[i]);
        }
      });
    for (auto& t : threads) t.join();
  }
  if (!ok) {
    std::fprintf(stderr, "a hook run failed\n");
    return 1;
  }
  std::printf("%zu %.3f %.3f %.3f %.3f %.3f\n", both.size(), pct(both, 50), pct(both, 99),
              *std::max_element(both.begin(), both.end()), pct(prepare, 50), pct(prepare, 99));
  return 0;
}
