// Spawns nicoffload-hook the way libvirt does (fork+exec, domain XML on
// stdin) from N threads at once and prints the latency of prepare+start per
// domain. Driven by bench/hook_bench.py, which starts nicoffloadd and writes
// the domain XML files; a C++ spawner keeps the harness's own cost out of the
// figures.
//
// usage: nicoffload_hook_spawn_bench HOOK ROUNDS XML...   (one file per domain)
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
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

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1,
                    static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5))];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s HOOK ROUNDS XML...\n", argv[0]);
    return 2;
  }
  const std::string hook = argv[1];
  const int rounds = std::atoi(argv[2]);
  const std::vector<std::string> files(argv + 3, argv + argc);
  std::vector<double> both, prepare;
  std::mutex mu;
  bool ok = true;
  using clock = std::chrono::steady_clock;
  for (int r = 0; r < rounds; ++r) {
    std::barrier sync(static_cast<std::ptrdiff_t>(files.size()));
    std::vector<std::thread> threads;
    for (const auto& f : files)
      threads.emplace_back([&, f] {
        sync.arrive_and_wait();
        const auto t0 = clock::now();
        const bool a = runHook(hook, f, "prepare", "begin");
        const auto t1 = clock::now();
        const bool b = runHook(hook, f, "start", "begin");
        const auto t2 = clock::now();
        std::lock_guard lock(mu);
        ok = ok && a && b;
        both.push_back(std::chrono::duration<double, std::milli>(t2 - t0).count());
        prepare.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      });
    for (auto& t : threads) t.join();
    threads.clear();
    for (const auto& f : files)
      threads.emplace_back([&, f] { runHook(hook, f, "release", "end"); });
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
