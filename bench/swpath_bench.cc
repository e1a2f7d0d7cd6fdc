// Kernel software path benchmark (issue: software path).
//
// Installs N /32 routes (default 100 000) through KernelSoftwarePath and,
// in the same run, through `ip -batch` (iproute2) as the reference; then
// removes them both ways. Between install and removal it reads the routes
// back (SoftwarePath::readBack, what the daemon's periodic full pass does). Every trial runs in a fresh network namespace (the
// process unshares its own), on a veth that exists only there. The reference
// is run as a child process with a fixed argv and a file this program wrote.
// Needs root.
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "nicoffload/offload/software_path.h"

using namespace nicoffload;
using Clock = std::chrono::steady_clock;

namespace {

int runArgv(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    execvp(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

bool freshNamespace() {
  if (unshare(CLONE_NEWNET) != 0) {
    std::perror("unshare(CLONE_NEWNET) (needs root)");
    return false;
  }
  return runArgv({"ip", "link", "add", "bench0", "type", "veth", "peer", "name", "bench1"}) == 0 &&
         runArgv({"ip", "link", "set", "bench0", "up"}) == 0 &&
         runArgv({"ip", "link", "set", "bench1", "up"}) == 0;
}

Ipv4Addr nth(std::size_t i) { return Ipv4Addr{0x0A000000u + static_cast<std::uint32_t>(i) + 1}; }

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::size_t countOurRoutes() {
  // Counted with our own read-back, not with the tool under test.
  auto path = offload::openKernelSoftwarePath({});
  if (!path) return 0;
  auto rb = (*path)->readBack({}, {254, 240});
  return rb ? rb->routes.size() : 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
  const int trials = argc > 2 ? std::atoi(argv[2]) : 3;
  if (n == 0 || n > 4000000 || trials < 1) {
    std::fprintf(stderr, "usage: %s [ROUTES (1..4000000)] [TRIALS]\n", argv[0]);
    return 2;
  }

  flowrules::SoftwarePathState state;
  state.routes.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    state.routes.push_back({Ipv4Prefix{nth(i), 32}, "bench0", std::nullopt, false, 254, 240, 0});

  char tmpl[] = "/tmp/nfo-swbench-XXXXXX";
  const char* dir = mkdtemp(tmpl);
  if (!dir) return 1;
  const std::string add_file = std::string(dir) + "/add.batch";
  const std::string del_file = std::string(dir) + "/del.batch";
  {
    std::ofstream add(add_file), del(del_file);
    for (std::size_t i = 0; i < n; ++i) {
      add << "route add " << nth(i).str() << "/32 dev bench0 proto 240\n";
      del << "route del " << nth(i).str() << "/32 dev bench0 proto 240\n";
    }
  }

  std::vector<double> ours_add, ours_del, ip_add, ip_del, read_back, read_back_foreign;
  bool ok = true;
  for (int t = 0; t < trials && ok; ++t) {
    // nicoffload backend
    if (!freshNamespace()) return 1;
    auto path = offload::openKernelSoftwarePath({});
    if (!path) {
      std::fprintf(stderr, "%s\n", path.error().describe().c_str());
      return 1;
    }
    auto t0 = Clock::now();
    auto rep = (*path)->apply(state);
    ours_add.push_back(seconds(Clock::now() - t0));
    if (!rep.ok() || countOurRoutes() != n) {
      std::fprintf(stderr, "backend install failed: %zu failures%s%s\n", rep.failures.size(),
                   rep.failures.empty() ? "" : ", first: ",
                   rep.failures.empty() ? "" : rep.failures[0].error.describe().c_str());
      ok = false;
    }
    {  // Read-back of the installed routes, as the periodic full pass does it.
      t0 = Clock::now();
      auto rb = (*path)->readBack(state, {254, 240});
      read_back.push_back(seconds(Clock::now() - t0));
      if (!rb || rb->routes.size() != n) {
        std::fprintf(stderr, "read-back returned %zu routes, %zu expected\n", rb ? rb->routes.size() : 0, n);
        ok = false;
      }
    }
    {  // The same table read back for another protocol: the kernel filters
       // (NETLINK_GET_STRICT_CHK), so none of the 100 k routes is sent.
      t0 = Clock::now();
      auto rb = (*path)->readBack({}, {254, 241});
      read_back_foreign.push_back(seconds(Clock::now() - t0));
      if (!rb || !rb->routes.empty()) ok = false;
    }
    t0 = Clock::now();
    rep = (*path)->remove(state);
    ours_del.push_back(seconds(Clock::now() - t0));
    if (!rep.ok() || countOurRoutes() != 0) ok = false;

    // iproute2 reference, in its own fresh namespace
    if (!freshNamespace()) return 1;
    t0 = Clock::now();
    const int rc_add = runArgv({"ip", "-batch", add_file});
    ip_add.push_back(seconds(Clock::now() - t0));
    if (rc_add != 0 || countOurRoutes() != n) {
      std::fprintf(stderr, "ip -batch install failed (rc %d)\n", rc_add);
      ok = false;
    }
    t0 = Clock::now();
    const int rc_del = runArgv({"ip", "-batch", del_file});
    ip_del.push_back(seconds(Clock::now() - t0));
    if (rc_del != 0 || countOurRoutes() != 0) ok = false;
  }
  std::remove(add_file.c_str());
  std::remove(del_file.c_str());
  rmdir(dir);
  if (!ok) return 1;

  const double oa = median(ours_add), od = median(ours_del), ia = median(ip_add), id = median(ip_del);
  std::printf("nicoffload_swpath_bench: %zu /32 routes, %d trials, each in a fresh network namespace\n", n, trials);
  std::printf("install: nicoffload %.3f s (%.0f routes/s)   ip -batch %.3f s (%.0f routes/s)   ratio %.2f  [target >= 1.0: %s]\n",
              oa, n / oa, ia, n / ia, ia / oa, ia / oa >= 1.0 ? "MET" : "MISSED");
  std::printf("remove:  nicoffload %.3f s (%.0f routes/s)   ip -batch %.3f s (%.0f routes/s)   ratio %.2f  [target >= 1.0: %s]\n",
              od, n / od, id, n / id, id / od, id / od >= 1.0 ? "MET" : "MISSED");
  const double rb = median(read_back);
  std::printf("read-back: nicoffload %.3f s for %zu routes  [target <= 0.150 s at 100 k: %s]; "
              "%.3f s when none of them is of our protocol (filtered by the kernel)\n",
              rb, n, n > 100000 || rb <= 0.150 ? "MET" : "MISSED", median(read_back_foreign));
  return (ia / oa >= 1.0 && id / od >= 1.0 && (n > 100000 || rb <= 0.150)) ? 0 : 2;
}
