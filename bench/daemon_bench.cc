// The daemon at fleet scale (issue 12, "Benchmark"): drives a real
// nicoffloadd over its real control socket, every figure taken at the client.
//
// The bench starts the daemon itself (fork/exec, no shell) on a host config it
// writes into a temp dir (sim flow, sim NIC, sim vDPA; with --kernel a second
// run with the kernel software path in a network namespace the bench makes),
// then measures, in this order:
//   1. one port.add / port.remove / remote.add / remote.remove on the empty
//      daemon, sequential request -> reply, p50 and p99;
//   2. loading: P ports (pipelined), then R remotes pipelined one per request
//      on one connection (a writer thread sends, a reader thread receives),
//      req/s overall and per block of 10 k, the daemon's CPU per request per
//      block (/proc/<pid>/stat utime+stime), last block / first block;
//   3. the single ops of 1 again at R remotes, and their ratio to 1;
//   4. remote.sync of R remotes for a fresh origin, then one changing 1 %,
//      then one emptying the origin;
//   5. restart to ready (SIGTERM, exec again on the same state and device
//      dir, until `status` answers) and the device operations it cost;
//   6. the worst latency of a small request (port.get every 1 ms) while a
//      full pass runs (SIGHUP);
//   7. the daemon's CPU over an idle window (one reconcile interval);
//   8. RSS and heap per rule;
//   9. (right after the load, before 3) the latency of a port.add and of a
//      status read, each on its own connection, while one bulk request is in
//      flight: a remote.sync of R remotes, an unpaginated `rules`, a sync to
//      empty; and the bulk request's own time (--bulk-only: the load and 9).
// Each figure is printed against its goal (PASS / MISS). The exit status is
// 0 whatever the figures; non-zero when the daemon fails, a request is
// refused unexpectedly or a count is wrong.
//
// Ops a daemon may not have yet (remote.sync, batch, paginated rules,
// status.memory) are reported as "not supported by this daemon".
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
double msSince(Clock::time_point t0) { return secondsSince(t0) * 1e3; }

// A failure of the daemon or of the bench's expectations: the bench stops
// with a non-zero status (after cleaning up).
struct BenchFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void fail(const std::string& what) { throw BenchFailure(what); }

struct Options {
  std::string daemon;
  std::string profile_dir;
  int ports = 500;
  int addresses = 4;
  int addresses6 = 0;  // IPv6 /128s per port (gateway.ipv6 set when > 0)
  int remotes = 100000;
  bool remotes6 = false;  // the remotes are IPv6 /128s
  int vteps = 200;
  std::string underlay = "vxlan";
  bool kernel = false;
  bool skip_sim = false;
  int samples = 200;
  bool quick = false;
  bool bulk_only = false;  // load, then [9] only
  double max_load_seconds = 300;
  double max_op_seconds = 60;  // per op kind and phase: fewer samples when slower
  // One whole reconcile interval: the periodic full pass is most of an idle
  // daemon's CPU, and a shorter window may or may not hold one.
  double idle_seconds = 30;
  int reconcile_interval_ms = 30000;  // the daemon's default
  std::string log_level = "info";
  bool keep = false;
  std::string tmp_dir = "/tmp";
};

// --- deterministic data -----------------------------------------------------

std::string ipv4(std::uint32_t v) {
  return std::to_string(v >> 24) + "." + std::to_string((v >> 16) & 255) + "." +
         std::to_string((v >> 8) & 255) + "." + std::to_string(v & 255);
}

// Ports: VM uuids 00000000-0000-4000-8000-<i>, MAC 02:00:<i>, addresses in
// 10.0.0.0/9 (10.0.0.0 + 8 i + a + 1: never .0 or .255).
// IPv6 ones (--addresses6) in 2001:db8::/32: 2001:db8:<i>::<a + 1>.
json portJson(int i, int addresses, int addresses6) {
  char uuid[40], mac[20];
  std::snprintf(uuid, sizeof uuid, "00000000-0000-4000-8000-%012x", i);
  const unsigned m = static_cast<unsigned>(i) + 1;
  std::snprintf(mac, sizeof mac, "02:00:00:%02x:%02x:%02x", (m >> 16) & 255, (m >> 8) & 255,
                m & 255);
  json addrs = json::array();
  for (int a = 0; a < addresses; ++a)
    addrs.push_back(ipv4(0x0A000000u + (static_cast<std::uint32_t>(i) << 3) +
                         static_cast<std::uint32_t>(a) + 1) +
                    "/32");
  for (int a = 0; a < addresses6; ++a) {
    char v6[48];
    std::snprintf(v6, sizeof v6, "2001:db8:%x:%x::%x/128", (static_cast<unsigned>(i) >> 16) & 0xffff,
                  static_cast<unsigned>(i) & 0xffff, static_cast<unsigned>(a) + 1);
    addrs.push_back(v6);
  }
  return {{"vm", uuid}, {"nic", 0}, {"mac", mac}, {"addresses", addrs}};
}
json portKey(int i) {
  char uuid[40];
  std::snprintf(uuid, sizeof uuid, "00000000-0000-4000-8000-%012x", i);
  return {{"vm", uuid}, {"nic", 0}};
}

// Underlay neighbours (VTEPs or routed next hops): 198.18.0.0/15 (RFC 2544's
// benchmarking range), apart from every VM and remote address.
std::uint32_t hopAddress(int v) { return 0xC6120000u + static_cast<std::uint32_t>(v) + 1; }

struct Underlay {
  bool vxlan = true;
  int hops = 200;
  bool v6 = false;  // the remotes are IPv6 /128s (--remotes6)
  bool vtep6 = false;  // VXLAN over an IPv6 underlay (--underlay vxlan6)
};

// A remote VTEP of the IPv6 underlay: 2001:db8:ff::1:<v> (distinct last 32
// bits, as router MACs need; this host's is 2001:db8:ff::1).
std::string vtepAddress6(int v) {
  char text[40];
  std::snprintf(text, sizeof text, "2001:db8:ff::1:%x", v);
  return text;
}

// A routed IPv6 remote's next hop: fe80::c612:<v + 1> (the kernel routes a
// /128 only through an IPv6 gateway).
std::string hopAddress6(int v) {
  char text[40];
  std::snprintf(text, sizeof text, "fe80::c612:%x", static_cast<unsigned>(v) + 1);
  return text;
}

// Remote `r` of a family: family 0 = the loaded set in 10.128.0.0/9, family 1 =
// the remote.sync origin in 100.64.0.0/10. `variant` changes its VTEP (or next
// hop) to make an update.
// With --remotes6 the same remotes are /128s: fd00:a8::<r + 1> and
// fd00:64::<r + 1>.
json remoteJson(const Underlay& u, int family, int r, int variant = 0) {
  const std::uint32_t base = family == 0 ? 0x0A800000u : 0x64400000u;
  const int hop = (r + variant) % u.hops;
  json j;
  if (u.v6) {
    const auto n = static_cast<std::uint32_t>(r) + 1;
    char text[48];
    std::snprintf(text, sizeof text, "fd00:%s::%x:%x/128", family == 0 ? "a8" : "64", n >> 16,
                  n & 0xffff);
    j["address"] = text;
  } else {
    j["address"] = ipv4(base + static_cast<std::uint32_t>(r) + 1) + "/32";
  }
  if (u.vxlan) {
    j["vtep"] = u.vtep6 ? vtepAddress6(hop) : ipv4(hopAddress(hop));
    j["vni"] = 100 + (r % 64);
  } else {
    j["next_hop"] = u.v6 ? hopAddress6(hop) : ipv4(hopAddress(hop));
  }
  return j;
}

// --- processes and /proc ------------------------------------------------------

struct ProcCpu {
  double seconds = 0;  // utime + stime
};
double cpuSeconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = s.rfind(')');
  if (close == std::string::npos) fail("cannot read /proc/" + std::to_string(pid) + "/stat");
  std::istringstream in(s.substr(close + 2));
  std::string field;
  // Fields from 3 (state); utime is 14, stime 15.
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::optional<double> vmRssBytes(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) * 1024.0;
  return std::nullopt;
}

// The filesystem type of `path` from /proc/self/mounts (the longest mount
// point that prefixes it): the state's fsyncs cost what it makes them cost.
std::string filesystemOf(const std::string& path) {
  std::ifstream f("/proc/self/mounts");
  std::string dev, mnt, type, rest, best_type = "?";
  std::size_t best = 0;
  while (f >> dev >> mnt >> type && std::getline(f, rest))
    if (path.rfind(mnt, 0) == 0 && mnt.size() >= best) {
      best = mnt.size();
      best_type = type;
    }
  return best_type;
}

// Runs argv (no shell); stdin from `input` when not empty. Returns the exit status.
int runCommand(const std::vector<std::string>& argv, const std::string& input = "",
               bool quiet = true) {
  int in_pipe[2] = {-1, -1};
  if (!input.empty() && ::pipe(in_pipe) != 0) fail("pipe failed");
  const pid_t pid = ::fork();
  if (pid < 0) fail("fork failed");
  if (pid == 0) {
    if (!input.empty()) {
      ::dup2(in_pipe[0], 0);
      ::close(in_pipe[0]);
      ::close(in_pipe[1]);
    }
    if (quiet) {
      const int dn = ::open("/dev/null", O_WRONLY);
      ::dup2(dn, 1);
      ::dup2(dn, 2);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  if (!input.empty()) {
    ::close(in_pipe[0]);
    std::size_t off = 0;
    while (off < input.size()) {
      const ssize_t n = ::write(in_pipe[1], input.data() + off, input.size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    ::close(in_pipe[1]);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// --- the control socket ---------------------------------------------------------

inline constexpr int kReplyTimeoutSeconds = 900;

class Conn {
 public:
  // Connects; nullopt when nothing answers on the path (yet).
  static std::optional<Conn> tryConnect(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket() failed");
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd);
      return std::nullopt;
    }
    // A daemon that stops answering fails the bench instead of hanging it.
    timeval tv{};
    tv.tv_sec = kReplyTimeoutSeconds;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return Conn(fd);
  }
  static Conn connect(const std::string& path) {
    auto c = tryConnect(path);
    if (!c) fail("cannot connect to " + path + ": " + std::strerror(errno));
    return std::move(*c);
  }
  Conn(Conn&& o) noexcept : fd_(o.fd_), buf_(std::move(o.buf_)) { o.fd_ = -1; }
  Conn& operator=(Conn&& o) noexcept {
    std::swap(fd_, o.fd_);
    std::swap(buf_, o.buf_);
    return *this;
  }
  ~Conn() {
    if (fd_ >= 0) ::close(fd_);
  }

  void send(const std::string& line) {
    std::size_t off = 0;
    while (off < line.size()) {
      const ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail(std::string("send to the daemon failed: ") + std::strerror(errno));
      off += static_cast<std::size_t>(n);
    }
  }
  // The next reply line; fails when the daemon closes the connection.
  std::string readLine() {
    for (;;) {
      if (const auto nl = buf_.find('\n', scanned_); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        scanned_ = 0;
        return line;
      }
      scanned_ = buf_.size();
      char chunk[1 << 16];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        fail("no reply from the daemon within " + std::to_string(kReplyTimeoutSeconds) + " s");
      if (n <= 0) fail("the daemon closed the control connection");
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  json call(const json& request) {
    send(request.dump() + "\n");
    return json::parse(readLine());
  }
  // The result of an ok reply; fails on an error reply.
  json ok(const json& request) {
    json reply = call(request);
    if (!reply.value("ok", false))
      fail("request " + request.value("op", "?") + " refused: " + reply.dump().substr(0, 600));
    return reply["result"];
  }

 private:
  explicit Conn(int fd) : fd_(fd) {}
  int fd_ = -1;
  std::string buf_;
  std::size_t scanned_ = 0;
};

bool isUnknownOp(const json& reply) {
  if (reply.value("ok", true)) return false;
  return reply.contains("error") && reply["error"].dump().find("unknown op") != std::string::npos;
}

// --- figures ---------------------------------------------------------------------

struct Latencies {
  std::vector<double> ms;
  double pct(double p) const {
    if (ms.empty()) return NAN;
    auto v = ms;
    std::sort(v.begin(), v.end());
    const auto k = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, k == 0 ? 0 : k - 1)];
  }
  double max() const { return ms.empty() ? NAN : *std::max_element(ms.begin(), ms.end()); }
};

int g_miss = 0, g_pass = 0;

// One figure against its goal: value <= goal is a PASS.
void goal(const std::string& what, double value, double limit, const std::string& unit,
          const std::string& note = "") {
  const bool pass = value <= limit;
  (pass ? g_pass : g_miss) += 1;
  std::printf("  %-58s %12.3f %-6s goal <= %-10g %s%s\n", what.c_str(), value, unit.c_str(), limit,
              pass ? "PASS" : "MISS", note.empty() ? "" : ("  (" + note + ")").c_str());
}
void goalAtLeast(const std::string& what, double value, double limit, const std::string& unit,
                 const std::string& note = "") {
  const bool pass = value >= limit;
  (pass ? g_pass : g_miss) += 1;
  std::printf("  %-58s %12.3f %-6s goal >= %-10g %s%s\n", what.c_str(), value, unit.c_str(), limit,
              pass ? "PASS" : "MISS", note.empty() ? "" : ("  (" + note + ")").c_str());
}
void info(const std::string& what, double value, const std::string& unit,
          const std::string& note = "") {
  std::printf("  %-58s %12.3f %-6s %s\n", what.c_str(), value, unit.c_str(), note.c_str());
}
void notSupported(const std::string& what) {
  std::printf("  %-58s not supported by this daemon\n", what.c_str());
}

// --- the daemon under test ------------------------------------------------------------

class Daemon {
 public:
  Daemon(std::string binary, std::string config, std::string profile_dir, std::string log,
         std::string level)
      : binary_(std::move(binary)),
        config_(std::move(config)),
        profile_dir_(std::move(profile_dir)),
        log_(std::move(log)),
        level_(std::move(level)) {}
  ~Daemon() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  // Execs the daemon and waits until `status` answers; returns seconds from
  // just before fork to the first ok status reply.
  double start(const std::string& socket, double timeout_s = 600) {
    const auto t0 = Clock::now();
    pid_ = ::fork();
    if (pid_ < 0) fail("fork failed");
    if (pid_ == 0) {
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      const char* argv[] = {binary_.c_str(), "--config",    config_.c_str(), "--profile-dir",
                            profile_dir_.c_str(), "--log-level", level_.c_str(), nullptr};
      ::execv(argv[0], const_cast<char* const*>(argv));
      ::_exit(127);
    }
    for (;;) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        fail("nicoffloadd exited during start (status " + std::to_string(status) +
             "); log: " + log_ + " (kept with --keep)");
      }
      if (auto c = Conn::tryConnect(socket)) {
        try {
          const json reply = c->call({{"op", "status"}});
          if (reply.value("ok", false)) return secondsSince(t0);
        } catch (const BenchFailure&) {
          // Closed before answering: not ready yet.
        }
      }
      if (secondsSince(t0) > timeout_s) fail("nicoffloadd did not answer status in time");
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  // SIGTERM and wait; fails unless it exits with status 0.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fail("nicoffloadd did not stop cleanly (status " + std::to_string(status) + "); log: " +
           log_);
  }
  void signal(int sig) const { ::kill(pid_, sig); }
  pid_t pid() const { return pid_; }
  // Fails when the daemon has died.
  void checkAlive() {
    int status = 0;
    if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      fail("nicoffloadd died (status " + std::to_string(status) + "); log: " + log_ + " (kept with --keep)");
    }
  }

 private:
  std::string binary_, config_, profile_dir_, log_, level_;
  pid_t pid_ = -1;
};

// --- the measurements ----------------------------------------------------------------------

struct SingleOps {
  Latencies port_add, port_remove, remote_add, remote_remove;
};

// Sequential request -> reply of the four single mutations, on ports and
// remotes that exist only for this (added then removed: the daemon ends as it
// began). `max_s` bounds each op kind's time.
SingleOps measureSingleOps(const std::string& socket, const Options& o, const Underlay& u,
                           int first_spare_port, int first_spare_remote) {
  SingleOps out;
  Conn c = Conn::connect(socket);
  auto timed = [&](const json& req, Latencies& lat) {
    const auto t0 = Clock::now();
    c.ok(req);
    lat.ms.push_back(msSince(t0));
  };
  const auto t_ports = Clock::now();
  for (int s = 0; s < o.samples; ++s) {
    const int i = first_spare_port + (s % 8);
    timed({{"op", "port.add"}, {"port", portJson(i, o.addresses, o.addresses6)}}, out.port_add);
    timed({{"op", "port.remove"}, {"vm", portKey(i)["vm"]}, {"nic", 0}}, out.port_remove);
    if (secondsSince(t_ports) > 2 * o.max_op_seconds) break;
  }
  const auto t_remotes = Clock::now();
  for (int s = 0; s < o.samples; ++s) {
    const json r = remoteJson(u, 0, first_spare_remote + s);
    timed({{"op", "remote.add"}, {"remote", r}}, out.remote_add);
    timed({{"op", "remote.remove"}, {"address", r["address"]}}, out.remote_remove);
    if (secondsSince(t_remotes) > 2 * o.max_op_seconds) break;
  }
  return out;
}

void printSingleOps(const SingleOps& s) {
  auto row = [](const char* name, const Latencies& l) {
    std::printf("  %-14s n=%-4zu p50 %9.3f ms   p99 %9.3f ms   max %9.3f ms\n", name, l.ms.size(),
                l.pct(50), l.pct(99), l.max());
  };
  row("port.add", s.port_add);
  row("port.remove", s.port_remove);
  row("remote.add", s.remote_add);
  row("remote.remove", s.remote_remove);
}

// Sends `requests` pipelined on one connection (writer thread, at most
// `window` unanswered), reads the replies on another thread; every reply must
// be ok. Stops sending at `deadline_s`. Calls on_reply(k) after reply k.
struct Pipelined {
  std::size_t sent = 0, answered = 0;
  double seconds = 0;
};
Pipelined pipeline(const std::string& socket, const std::vector<std::string>& requests,
                   double deadline_s, const std::function<void(std::size_t)>& on_reply,
                   std::size_t window = 2048) {
  Conn c = Conn::connect(socket);
  Pipelined out;
  std::atomic<std::size_t> sent{0}, answered{0};
  std::atomic<bool> stop{false};
  std::string error;
  std::mutex error_mu;
  const auto t0 = Clock::now();
  std::thread reader([&] {
    try {
      for (;;) {
        const std::size_t n_sent = sent.load();
        if (answered.load() >= n_sent) {
          if (stop.load() && answered.load() >= sent.load()) return;
          std::this_thread::sleep_for(std::chrono::microseconds(50));
          continue;
        }
        const std::string line = c.readLine();
        const auto reply = json::parse(line);
        const std::size_t k = answered.load();
        if (!reply.value("ok", false)) fail("request " + std::to_string(k) + " refused: " + line.substr(0, 600));
        answered.store(k + 1);
        on_reply(k);
      }
    } catch (const std::exception& e) {
      std::lock_guard lock(error_mu);
      error = e.what();
      stop = true;
    }
  });
  try {
    std::string chunk;
    for (std::size_t i = 0; i < requests.size() && !stop.load(); ++i) {
      if (secondsSince(t0) > deadline_s) break;
      while (i - answered.load() >= window && !stop.load())
        std::this_thread::sleep_for(std::chrono::microseconds(20));
      c.send(requests[i]);
      sent.store(i + 1);
    }
  } catch (const std::exception& e) {
    std::lock_guard lock(error_mu);
    if (error.empty()) error = e.what();
  }
  stop = true;
  reader.join();
  if (!error.empty()) fail(error);
  out.sent = sent.load();
  out.answered = answered.load();
  out.seconds = secondsSince(t0);
  return out;
}

// Small requests while one bulk request is in flight (issue 22): a prober
// sends port.add / port.remove of a spare port on its own connection, another
// a status read on its own, each every `gap_ms`, from before the bulk request
// is sent until its reply has come; only the probes sent while the bulk
// request was unanswered count. Returns the bulk request's own time (s) and
// its reply line's size.
struct DuringBulk {
  Latencies port_add, status;
  double bulk_s = 0;
  std::size_t reply_bytes = 0;
  json result;
};
DuringBulk measureDuringBulk(const std::string& socket, const std::string& bulk_line,
                             const Options& o, int spare_port, int gap_ms = 5) {
  DuringBulk out;
  std::atomic<bool> in_flight{false}, stop{false};
  std::string probe_error;
  std::mutex mu;
  auto prober = [&](auto&& one) {
    return std::thread([&, one] {
      try {
        while (!stop.load()) {
          const bool counted = in_flight.load();
          one(counted);
          std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(mu);
        probe_error = e.what();
      }
    });
  };
  Conn ports = Conn::connect(socket), reads = Conn::connect(socket);
  bool added = false;
  std::thread t_port = prober([&](bool counted) {
    const auto t0 = Clock::now();
    if (!added) {
      ports.ok({{"op", "port.add"}, {"brief", true}, {"port", portJson(spare_port, o.addresses, o.addresses6)}});
      if (counted) out.port_add.ms.push_back(msSince(t0));
    } else {
      ports.ok({{"op", "port.remove"}, {"vm", portKey(spare_port)["vm"]}, {"nic", 0}});
    }
    added = !added;
  });
  std::thread t_status = prober([&](bool counted) {
    const auto t0 = Clock::now();
    reads.ok({{"op", "status"}});
    if (counted) out.status.ms.push_back(msSince(t0));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Conn bulk = Conn::connect(socket);
  const auto t0 = Clock::now();
  in_flight = true;
  bulk.send(bulk_line);
  const std::string line = bulk.readLine();
  in_flight = false;
  out.bulk_s = secondsSince(t0);
  out.reply_bytes = line.size() + 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop = true;
  t_port.join();
  t_status.join();
  if (!probe_error.empty()) fail("probe during a bulk request: " + probe_error);
  if (added) ports.ok({{"op", "port.remove"}, {"vm", portKey(spare_port)["vm"]}, {"nic", 0}});
  const json reply = json::parse(line);
  if (!reply.value("ok", false)) fail("bulk request refused: " + line.substr(0, 600));
  out.result = reply["result"];
  return out;
}

void printDuringBulk(const std::string& what, const DuringBulk& b) {
  info(what + ": its own time, send -> reply", b.bulk_s, "s",
       std::to_string(b.reply_bytes) + " bytes of reply");
  auto row = [&](const char* name, const Latencies& l) {
    std::printf("    %-12s n=%-4zu p50 %9.3f ms   p99 %9.3f ms   max %9.3f ms\n", name,
                l.ms.size(), l.pct(50), l.pct(99), l.max());
  };
  row("port.add", b.port_add);
  row("status", b.status);
  if (!b.port_add.ms.empty()) {
    goal("port.add during it, p99", b.port_add.pct(99), 50, "ms");
    goal("port.add during it, max", b.port_add.max(), 50, "ms");
  }
  if (!b.status.ms.empty()) goal("status during it, p99", b.status.pct(99), 50, "ms");
}

struct Variant {
  std::string name;  // "sim" or "kernel"
  bool kernel = false;
};

struct Setup {
  std::string dir, socket, config, profile_dir, log, state_dir, netns;
};

std::string writeHost(const Options& o, const Underlay& u, const Variant& v, Setup& s) {
  json next_hops = json::array();
  json underlay;
  if (u.vxlan && u.vtep6) {
    underlay = {
        {"mode", "vxlan"},
        {"vtep", "2001:db8:ff::1"},
        {"vxlan_udp_port", 4789},
        {"default_vni", 100},
        {"default_next_hop", "2001:db8:ff::fe"},
        {"next_hops", json::array({{{"ipv6", "2001:db8:ff::fe"}, {"mac", "0c:42:a1:ff:ff:fe"}}})}};
  } else if (u.vxlan) {
    underlay = {{"mode", "vxlan"},
                {"vtep", "192.0.2.1"},
                {"vxlan_udp_port", 4789},
                {"default_vni", 100},
                {"default_next_hop", "192.0.2.254"},
                {"next_hops", json::array({{{"ipv4", "192.0.2.254"}, {"mac", "0c:42:a1:ff:ff:fe"}}})}};
  } else {
    // Every routed next hop with its MAC, so that the rules can rewrite to it.
    next_hops.push_back({{"ipv4", "192.0.2.254"}, {"mac", "0c:42:a1:ff:ff:fe"}});
    for (int h = 0; h < u.hops; ++h) {
      char mac[20];
      std::snprintf(mac, sizeof mac, "0c:42:a1:fe:%02x:%02x", (h >> 8) & 255, h & 255);
      if (u.v6)
        next_hops.push_back({{"ipv6", hopAddress6(h)}, {"mac", mac}});
      else
        next_hops.push_back({{"ipv4", ipv4(hopAddress(h))}, {"mac", mac}});
    }
    underlay = {{"mode", "routed"}, {"default_next_hop", "192.0.2.254"}, {"next_hops", next_hops}};
  }
  json host{{"name", "bench"},
            {"hw_profile", "sim"},
            {"uplink",
             {{"pci", "0000:03:00.0"},
              {"netdev", "uplink0"},
              {"mac", "0c:42:a1:00:00:01"},
              {"vf_count", o.ports + 8}}},
            {"gateway",
             o.addresses6 > 0 || u.v6
                 ? json{{"ipv4", "169.254.1.1"}, {"ipv6", "fe80::1"}, {"mac", "ee:ee:ee:ee:ee:ee"}}
                 : json{{"ipv4", "169.254.1.1"}, {"mac", "ee:ee:ee:ee:ee:ee"}}},
            {"underlay", underlay},
            {"backends",
             {{"flow", "sim"},
              {"software_path", v.kernel ? "kernel" : "none"},
              {"vdpa", "sim"},
              {"nic", "sim"}}},
            {"daemon",
             {{"metrics_listen", ""},
              {"reconcile_interval_ms", o.reconcile_interval_ms},
              {"sim_device_dir", s.dir + "/simnic"},
              {"max_request_bytes", 64 << 20}}},
            {"socket", s.socket},
            {"state_dir", s.state_dir}};
  if (v.kernel) host["kernel"] = {{"netns", s.netns}};
  std::ofstream(s.config) << host.dump(2) << "\n";
  return s.config;
}

// The sim profile with max_vfs raised to the VFs the bench's ports need (the
// shipped one offers 64); everything else as shipped.
void writeProfile(const Options& o, const Setup& s) {
  fs::create_directories(s.profile_dir);
  std::ifstream in(o.profile_dir + "/sim.json");
  if (!in) fail("no sim.json in " + o.profile_dir);
  json p = json::parse(in);
  const int need = o.ports + 8;
  if (p["sriov"]["max_vfs"].get<int>() < need) {
    p["sriov"]["max_vfs"] = need;
    p["sriov"]["source"] = p["sriov"]["source"].get<std::string>() +
                           " (raised by bench/daemon_bench.cc to " + std::to_string(need) +
                           " for its ports)";
  }
  std::ofstream(s.profile_dir + "/sim.json") << p.dump(2) << "\n";
}

void makeNetns(const Options& o, Setup& s) {
  s.netns = "nfo-bench" + std::to_string(::getpid());
  if (runCommand({"ip", "netns", "add", s.netns}) != 0)
    fail("cannot create network namespace " + s.netns + " (--kernel needs root)");
  // The uplink and one device per representor the ports name (pf0vf<vf>).
  // veth pairs, both ends in the namespace and up (the dummy driver may be
  // missing from the kernel).
  std::string batch = "link set lo up\n";
  auto pair = [&](const std::string& name, const std::string& peer) {
    batch += "link add " + name + " type veth peer name " + peer + "\nlink set " + name +
             " up\nlink set " + peer + " up\n";
  };
  pair("uplink0", "uplink0p");
  for (int i = 0; i < o.ports + 8; ++i) pair("pf0vf" + std::to_string(i), "vm" + std::to_string(i));
  if (runCommand({"ip", "-n", s.netns, "-batch", "-"}, batch) != 0)
    fail("cannot create the devices in " + s.netns);
}

json status(const std::string& socket) { return Conn::connect(socket).ok({{"op", "status"}}); }

void checkCounts(const std::string& socket, int ports, int remotes, const std::string& when) {
  const json st = status(socket);
  if (st["ports"].get<int>() != ports || st["remotes"].get<int>() != remotes)
    fail(when + ": status says " + std::to_string(st["ports"].get<int>()) + " ports and " +
         std::to_string(st["remotes"].get<int>()) + " remotes, expected " + std::to_string(ports) +
         " and " + std::to_string(remotes));
}

// Adds the remotes [from, to) of family 0 while the daemon is stopped, into
// its state file (version 1 intent.json), for a daemon too slow to be loaded
// over the socket in the time given.
void appendToStateFile(const Setup& s, const Underlay& u, int from, int to) {
  const std::string path = s.state_dir + "/intent.json";
  std::ifstream in(path);
  if (!in) fail("no state file " + path);
  json st = json::parse(in);
  if (st.value("version", 0) != 1) fail("state file " + path + " is not version 1");
  for (int r = from; r < to; ++r) st["remotes"].push_back(remoteJson(u, 0, r));
  const std::string tmp = path + ".bench";
  std::ofstream(tmp) << st.dump() << "\n";
  fs::rename(tmp, path);
}

// The last `lines` lines of a file (the daemon's log, shown when the bench
// fails: the temp dir goes with it unless --keep).
std::string tailOf(const std::string& path, std::size_t lines) {
  std::ifstream f(path);
  std::vector<std::string> all;
  for (std::string line; std::getline(f, line);) all.push_back(line);
  std::string out;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out += "  | " + all[i] + "\n";
  return out;
}

int runVariant(const Options& o, const Variant& v) {
  Underlay u{o.underlay != "routed", o.vteps, o.remotes6, o.underlay == "vxlan6"};
  Setup s;
  std::string tmpl = o.tmp_dir + "/nfo-dbench-XXXXXX";
  if (!::mkdtemp(tmpl.data())) fail("mkdtemp in " + o.tmp_dir + " failed");
  s.dir = tmpl;
  s.socket = s.dir + "/ctl.sock";
  s.config = s.dir + "/host.json";
  s.profile_dir = s.dir + "/profiles";
  s.log = s.dir + "/nicoffloadd.log";
  s.state_dir = s.dir + "/state";
  struct Cleanup {
    const Setup& s;
    bool keep;
    ~Cleanup() {
      if (std::uncaught_exceptions() > 0 && fs::exists(s.log))
        std::fprintf(stderr, "last lines of the daemon's log (%s):\n%s", s.log.c_str(),
                     tailOf(s.log, 15).c_str());
      if (!s.netns.empty()) runCommand({"ip", "netns", "del", s.netns});
      if (!keep) {
        std::error_code ec;
        fs::remove_all(s.dir, ec);
      }
    }
  } cleanup{s, o.keep};
  if (v.kernel) makeNetns(o, s);
  writeProfile(o, s);
  writeHost(o, u, v, s);
  Daemon d(o.daemon, s.config, s.profile_dir, s.log, o.log_level);

  std::printf(
      "\n=== variant %s: %d ports x %d addresses + %d IPv6, %d %s remotes (%s, %d %s), sim "
      "flow/NIC/vDPA, "
      "software path %s%s ===\n",
      v.name.c_str(), o.ports, o.addresses, o.addresses6, o.remotes, o.remotes6 ? "/128" : "/32",
      o.underlay.c_str(), o.vteps, u.vxlan ? "VTEPs" : "next hops",
      v.kernel ? "kernel in netns " : "none", v.kernel ? s.netns.c_str() : "");
  {
    std::ifstream la("/proc/loadavg");
    std::string l1, l5;
    la >> l1 >> l5;
    std::printf("machine: %ld cores, load average %s %s at the start\n", ::sysconf(_SC_NPROCESSORS_ONLN),
                l1.c_str(), l5.c_str());
  }
  std::printf("temp dir %s (filesystem %s); daemon log %s\n", s.dir.c_str(),
              filesystemOf(s.dir).c_str(), s.log.c_str());
  const double first_start = d.start(s.socket);
  info("start to ready, empty state", first_start * 1e3, "ms");
  const double rss_empty = vmRssBytes(d.pid()).value_or(0);
  info("RSS, empty daemon", rss_empty / 1e6, "MB");

  // Spare ports and remotes for the single ops: past the loaded ones.
  const int spare_port = o.ports;
  const int spare_remote = o.remotes;

  SingleOps empty;
  if (!o.bulk_only) {
    std::printf("\n[1] single ops, empty daemon (sequential request -> reply, at the client)\n");
    empty = measureSingleOps(s.socket, o, u, spare_port, spare_remote);
    printSingleOps(empty);
    checkCounts(s.socket, 0, 0, "after the single ops on the empty daemon");
  }

  std::printf("\n[2] load\n");
  {
    std::vector<std::string> reqs;
    for (int i = 0; i < o.ports; ++i)
      reqs.push_back(json{{"op", "port.add"}, {"port", portJson(i, o.addresses, o.addresses6)}}.dump() + "\n");
    const auto p = pipeline(s.socket, reqs, 1e9, [](std::size_t) {});
    info("port.add x " + std::to_string(o.ports) + " pipelined", p.seconds, "s",
         std::to_string(static_cast<int>(p.answered / p.seconds)) + " req/s");
  }
  int loaded = 0;
  {
    std::vector<std::string> reqs;
    reqs.reserve(static_cast<std::size_t>(o.remotes));
    for (int r = 0; r < o.remotes; ++r)
      reqs.push_back(json{{"op", "remote.add"}, {"remote", remoteJson(u, 0, r)}}.dump() + "\n");
    const std::size_t block = 10000;
    struct Block {
      double t, cpu;
    };
    std::vector<Block> marks;
    const pid_t pid = d.pid();
    const auto t0 = Clock::now();
    marks.push_back({0, cpuSeconds(pid)});
    const auto p = pipeline(s.socket, reqs, o.max_load_seconds, [&](std::size_t k) {
      if ((k + 1) % block == 0) marks.push_back({secondsSince(t0), cpuSeconds(pid)});
    });
    loaded = static_cast<int>(p.answered);
    const double rate = static_cast<double>(p.answered) / p.seconds;
    std::printf("  remote.add pipelined one per request: %zu of %d answered in %.1f s%s\n",
                p.answered, o.remotes, p.seconds,
                p.answered < static_cast<std::size_t>(o.remotes) ? " (stopped by --max-load-seconds)"
                                                                 : "");
    goalAtLeast("remote.add pipelined, overall rate", rate, 20000, "req/s",
                std::to_string(p.answered) + " requests");
    for (std::size_t b = 1; b < marks.size(); ++b) {
      const double dt = marks[b].t - marks[b - 1].t, dcpu = marks[b].cpu - marks[b - 1].cpu;
      std::printf("    block %3zu (remotes %6zu..%6zu): %9.0f req/s, daemon CPU %8.3f ms/request\n",
                  b, (b - 1) * block, b * block, static_cast<double>(block) / dt,
                  dcpu * 1e3 / static_cast<double>(block));
    }
    if (marks.size() >= 3) {
      const double first = marks[1].cpu - marks[0].cpu;
      const double last = marks.back().cpu - marks[marks.size() - 2].cpu;
      goal("daemon CPU per request, last 10 k block / first 10 k block", last / first, 1.2, "x",
           "blocks 1 and " + std::to_string(marks.size() - 1) +
               (loaded < o.remotes ? ", load incomplete" : ""));
    } else {
      std::printf("  CPU per request last/first block: fewer than 2 blocks of 10 k loaded\n");
    }
    checkCounts(s.socket, o.ports, loaded, "after the pipelined load");
  }
  if (loaded < o.remotes) {
    // The rest of the remotes, by remote.sync when the daemon has it, else
    // into its state file while it is stopped; not a figure against a goal.
    const auto t0 = Clock::now();
    d.stop();
    appendToStateFile(s, u, loaded, o.remotes);
    const double t_start = d.start(s.socket);
    info("filled the remaining remotes via the state file; restart", t_start, "s",
         std::to_string(o.remotes - loaded) + " remotes; total " +
             std::to_string(secondsSince(t0)) + " s");
  }
  checkCounts(s.socket, o.ports, o.remotes, "at full load");

  std::printf("\n[9] small requests while a bulk request is in flight (port.add/remove and status "
              "on their own connections, one every 5 ms)\n");
  {
    std::string req = R"({"op":"remote.sync","origin":"bulk","remotes":[)";
    for (int r = 0; r < o.remotes; ++r) {
      if (r) req += ',';
      req += remoteJson(u, 1, r).dump();
    }
    req += "]}\n";
    const auto sync = measureDuringBulk(s.socket, req, o, spare_port + 1);
    if (sync.result.value("added", -1) != o.remotes) fail("remote.sync (bulk): " + sync.result.dump());
    printDuringBulk("(a) remote.sync of " + std::to_string(o.remotes) + " remotes, fresh origin", sync);
    checkCounts(s.socket, o.ports, 2 * o.remotes, "after the bulk remote.sync");
    const auto rules = measureDuringBulk(s.socket, R"({"op":"rules"})" "\n", o, spare_port + 1);
    if (!rules.result.is_array()) fail("rules: not a list");
    printDuringBulk("(b) rules, unpaginated (" + std::to_string(rules.result.size()) + " rules)", rules);
    const auto empty = measureDuringBulk(
        s.socket, R"({"op":"remote.sync","origin":"bulk","remotes":[]})" "\n", o, spare_port + 1);
    if (empty.result.value("removed", -1) != o.remotes) fail("remote.sync to empty: " + empty.result.dump());
    printDuringBulk("(c) remote.sync to empty, " + std::to_string(o.remotes) + " removed", empty);
    checkCounts(s.socket, o.ports, o.remotes, "after emptying the bulk origin");
  }
  if (o.bulk_only) {
    d.stop();
    return 0;
  }

  std::printf("\n[3] single ops at %d remotes\n", o.remotes);
  const SingleOps full = measureSingleOps(s.socket, o, u, spare_port, spare_remote);
  printSingleOps(full);
  checkCounts(s.socket, o.ports, o.remotes, "after the single ops at full load");
  auto ratio = [](const char* name, const Latencies& e, const Latencies& f) {
    char what[120];
    std::snprintf(what, sizeof what, "%s p50 at %s / empty (%.2f / %.2f ms)", name, "full",
                  f.pct(50), e.pct(50));
    goal(what, f.pct(50) / e.pct(50), 1.2, "x");
    std::snprintf(what, sizeof what, "%s p99 at %s / empty (%.2f / %.2f ms)", name, "full",
                  f.pct(99), e.pct(99));
    goal(what, f.pct(99) / e.pct(99), 1.2, "x");
  };
  ratio("port.add", empty.port_add, full.port_add);
  ratio("port.remove", empty.port_remove, full.port_remove);
  ratio("remote.add", empty.remote_add, full.remote_add);
  ratio("remote.remove", empty.remote_remove, full.remote_remove);

  std::printf("\n[4] remote.sync, origin \"bench\", %d remotes\n", o.remotes);
  {
    Conn c = Conn::connect(s.socket);
    auto syncReq = [&](int variant_every, bool empty_set) {
      std::string req = R"({"op":"remote.sync","origin":"bench","remotes":[)";
      if (!empty_set)
        for (int r = 0; r < o.remotes; ++r) {
          if (r) req += ',';
          req += remoteJson(u, 1, r, variant_every && r % variant_every == 0 ? 1 : 0).dump();
        }
      req += "]}\n";
      return req;
    };
    auto timedSync = [&](const std::string& req, json& result) {
      const auto t0 = Clock::now();
      c.send(req);
      const json reply = json::parse(c.readLine());
      const double t = secondsSince(t0);
      if (!reply.value("ok", false)) {
        if (isUnknownOp(reply)) return -1.0;
        fail("remote.sync refused: " + reply.dump().substr(0, 600));
      }
      result = reply["result"];
      return t;
    };
    json res;
    const double t_full = timedSync(syncReq(0, false), res);
    if (t_full < 0) {
      notSupported("remote.sync");
    } else {
      if (res.value("added", -1) != o.remotes)
        fail("remote.sync of a fresh origin: " + res.dump());
      goal("remote.sync, " + std::to_string(o.remotes) + " remotes, fresh origin", t_full, 1.0, "s");
      checkCounts(s.socket, o.ports, 2 * o.remotes, "after remote.sync");
      const double t_1pc = timedSync(syncReq(100, false), res);
      if (res.value("updated", -1) != (o.remotes + 99) / 100 || res.value("added", -1) != 0 ||
          res.value("removed", -1) != 0)
        fail("remote.sync changing 1 %: " + res.dump());
      info("remote.sync changing 1 % (updated " + std::to_string(res.value("updated", 0)) + ")",
           t_1pc, "s");
      const double t_empty = timedSync(syncReq(0, true), res);
      if (res.value("removed", -1) != o.remotes) fail("remote.sync to empty: " + res.dump());
      info("remote.sync to empty (removes the origin's remotes)", t_empty, "s");
      checkCounts(s.socket, o.ports, o.remotes, "after emptying the sync origin");
    }
    // A batch of 1000 remote.add (informational; all-or-nothing op).
    json ops = json::array();
    for (int r = 0; r < 1000; ++r)
      ops.push_back({{"op", "remote.add"}, {"remote", remoteJson(u, 0, spare_remote + 1000 + r)}});
    const auto t0 = Clock::now();
    const json reply = c.call({{"op", "batch"}, {"ops", ops}});
    const double t_batch = secondsSince(t0);
    if (!reply.value("ok", false)) {
      if (!isUnknownOp(reply)) fail("batch refused: " + reply.dump().substr(0, 600));
      notSupported("batch");
    } else {
      info("batch of 1000 remote.add", t_batch, "s");
      json rm = json::array();
      for (const auto& op : ops) rm.push_back({{"op", "remote.remove"}, {"address", op["remote"]["address"]}});
      const auto t1 = Clock::now();
      c.ok({{"op", "batch"}, {"ops", rm}});
      info("batch of 1000 remote.remove", secondsSince(t1), "s");
      checkCounts(s.socket, o.ports, o.remotes, "after the batches");
    }
    // The first page of the rules (paginated); the unpaginated listing is not
    // taken (it froze today's daemon for 14 s at this scale).
    const auto t2 = Clock::now();
    const json page = c.call({{"op", "rules"}, {"offset", 0}, {"limit", 1000}});
    const double t_page = secondsSince(t2);
    if (page.value("ok", false) && page["result"].is_object() && page["result"].contains("total")) {
      info("rules, first page of 1000", t_page * 1e3, "ms",
           "total " + page["result"]["total"].dump());
    } else {
      notSupported("rules with offset/limit");
    }
  }

  std::printf("\n[5] restart to ready\n");
  {
    d.stop();
    const double t = d.start(s.socket);
    goal("restart to ready (exec -> status answers)", t, 1.0, "s");
    checkCounts(s.socket, o.ports, o.remotes, "after the restart");
    const json c = Conn::connect(s.socket).ok({{"op", "counters"}});
    const auto n = [&](const char* a, const char* b) { return c[a][b].get<double>(); };
    goal("restart: flow rule creations", n("flow", "creations"), 0, "ops");
    goal("restart: flow rule destructions", n("flow", "destructions"), 0, "ops");
    goal("restart: NIC operations", n("nic", "operations"), 0, "ops");
    goal("restart: vDPA operations", n("vdpa", "operations"), 0, "ops");
    if (v.kernel) info("restart: software path operations", n("software_path", "operations"), "ops");
  }

  std::printf("\n[6] small requests during a full pass (SIGHUP)\n");
  {
    Latencies lat;
    std::atomic<bool> stop{false};
    std::string probe_error;
    const json probe_req = {{"op", "port.get"}, {"vm", portKey(0)["vm"]}, {"nic", 0}};
    std::thread prober([&] {
      try {
        Conn c = Conn::connect(s.socket);
        auto next = Clock::now();
        while (!stop.load()) {
          const auto t0 = Clock::now();
          c.ok(probe_req);
          lat.ms.push_back(msSince(t0));
          next += std::chrono::milliseconds(1);
          if (next > Clock::now()) std::this_thread::sleep_until(next);
          else next = Clock::now();
        }
      } catch (const std::exception& e) {
        probe_error = e.what();
      }
    });
    Conn watch = Conn::connect(s.socket);
    const auto passes = [&] {
      return watch.ok({{"op", "counters"}})["controller"]["full_passes"].get<long>();
    };
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    const long before = passes();
    const auto t0 = Clock::now();
    d.signal(SIGHUP);
    double pass_s = NAN;
    while (secondsSince(t0) < 120) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (passes() > before) {
        pass_s = secondsSince(t0);
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    stop = true;
    prober.join();
    if (!probe_error.empty()) fail("probe: " + probe_error);
    if (std::isnan(pass_s)) fail("no full pass was counted within 120 s of SIGHUP");
    info("full pass: SIGHUP -> counters.full_passes moved (20 ms polls)", pass_s * 1e3, "ms");
    info("port.get probes (every 1 ms, 1 s before to 1 s after)", static_cast<double>(lat.ms.size()),
         "n", "p50 " + std::to_string(lat.pct(50)) + " ms");
    goal("port.get during a full pass, max", lat.max(), 50, "ms");
    goal("port.get during a full pass, p99", lat.pct(99), 50, "ms");
  }

  std::printf("\n[7] idle CPU at %d remotes\n", o.remotes);
  {
    // Periodic passes that find nothing changed only verify the device
    // ("quiet"); every Nth (10 by default), SIGHUP and the reconcile op
    // compute in full. Both are measured, and their average over a cycle.
    const auto counters = [&] {
      const json c = Conn::connect(s.socket).ok({{"op", "counters"}})["controller"];
      return std::pair<long, long>(c["full_passes"].get<long>(), c.value("quiet_full_passes", 0L));
    };
    const auto [p0, q0] = counters();
    const double c0 = cpuSeconds(d.pid());
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(o.idle_seconds));
    const double idle_s = secondsSince(t0);
    const double idle_cpu = cpuSeconds(d.pid()) - c0;
    const double pct = idle_cpu / idle_s * 100.0;
    const auto [p1, q1] = counters();
    goal("daemon CPU while idle, % of a core over " + std::to_string(static_cast<int>(o.idle_seconds)) + " s",
         pct, 1.0, "%",
         std::to_string(p1 - p0) + " periodic full passes in the window (" + std::to_string(q1 - q0) +
             " quiet); one every " + std::to_string(o.reconcile_interval_ms) + " ms");
    // One pass in full (SIGHUP), nothing else running: its CPU.
    const double f0 = cpuSeconds(d.pid());
    ::kill(d.pid(), SIGHUP);
    const auto h0 = Clock::now();
    while (counters().first == p1 && secondsSince(h0) < 60)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const double full_cpu = cpuSeconds(d.pid()) - f0;
    info("CPU of one full pass computed in full (SIGHUP)", full_cpu, "s");
    if (q1 > q0 && p1 - p0 == q1 - q0) {
      // A 10-pass cycle: 9 quiet windows as measured, one with a full pass.
      const double cycle = 10 * idle_s;
      const double avg = (9 * idle_cpu + (idle_cpu + full_cpu)) / cycle * 100.0;
      goal("daemon CPU while idle, averaged over 10 passes (1 in full)", avg, 1.0, "%");
    }
  }

  std::printf("\n[8] memory per rule\n");
  {
    const json st = status(s.socket);
    const double rules = st["rules"]["hw"].get<double>() + st["rules"]["sw"].get<double>();
    info("rules (status.rules hw + sw)", rules, "rules",
         "hw " + st["rules"]["hw"].dump() + ", sw " + st["rules"]["sw"].dump());
    if (v.kernel)
      info("software path objects (status.software_path)",
           st["software_path"].value("objects", 0.0), "objects",
           "failed " + st["software_path"].value("failed", json(0)).dump());
    double rss = 0;
    std::optional<double> heap;
    if (st.contains("memory") && st["memory"].is_object()) {
      rss = st["memory"].value("rss_bytes", 0.0);
      if (st["memory"].contains("heap_bytes")) heap = st["memory"]["heap_bytes"].get<double>();
    } else {
      rss = vmRssBytes(d.pid()).value_or(0);
    }
    info("whole-process RSS", rss / 1e6, "MB",
         st.contains("memory") ? "status.memory" : "VmRSS from /proc");
    goal("whole-process RSS per rule", rss / rules, 600, "B/rule");
    info("RSS above the empty daemon, per rule", (rss - rss_empty) / rules, "B/rule");
    if (heap) {
      goal("heap (malloc in use) per rule", *heap / rules, 300, "B/rule");
    } else {
      std::printf("  %-58s n/a (status has no memory.heap_bytes)\n", "heap per rule");
    }
  }

  d.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"nicoffload_daemon_bench: nicoffloadd at fleet scale, over its control socket"};
  app.add_option("daemon", o.daemon, "path of nicoffloadd")->required()->check(CLI::ExistingFile);
  app.add_option("profile_dir", o.profile_dir, "hardware profile directory (hw-profiles/)")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--ports", o.ports, "ports (VMs' NICs)")->capture_default_str();
  app.add_option("--addresses", o.addresses, "IPv4 addresses per port")->capture_default_str();
  app.add_option("--addresses6", o.addresses6, "IPv6 /128s per port (0: IPv6 off)")->capture_default_str();
  app.add_option("--remotes", o.remotes, "remote endpoints")->capture_default_str();
  app.add_flag("--remotes6", o.remotes6,
               "the remotes are IPv6 /128s (routed: through IPv6 next hops; vxlan: IPv4 VTEPs); "
               "turns IPv6 on");
  app.add_option("--vteps", o.vteps, "remote VTEPs (vxlan) or next hops (routed)")
      ->capture_default_str();
  app.add_option("--underlay", o.underlay,
                 "vxlan, vxlan6 (VXLAN over an IPv6 underlay: IPv6 VTEPs) or routed")
      ->check(CLI::IsMember({"vxlan", "vxlan6", "routed"}))
      ->capture_default_str();
  app.add_flag("--kernel", o.kernel,
               "also run with the kernel software path in a network namespace (root)");
  app.add_flag("--skip-sim", o.skip_sim, "with --kernel: run only the kernel-path variant");
  app.add_option("--samples", o.samples, "samples of each single op")->capture_default_str();
  app.add_flag("--bulk-only", o.bulk_only,
               "load, then only [9] (small requests while a bulk request is in flight)");
  app.add_flag("--quick", o.quick, "smoke scale: 8 ports, 2000 remotes, 20 samples, 2 s idle");
  app.add_option("--max-load-seconds", o.max_load_seconds,
                 "stop the pipelined load after this long; the rest goes in by the state file")
      ->capture_default_str();
  app.add_option("--max-op-seconds", o.max_op_seconds,
                 "bound on each single-op measurement pair (fewer samples when slower)")
      ->capture_default_str();
  app.add_option("--idle-seconds", o.idle_seconds,
                 "idle CPU window (keep it >= the reconcile interval: the periodic pass is the "
                 "idle cost)")
      ->capture_default_str();
  app.add_option("--reconcile-interval-ms", o.reconcile_interval_ms,
                 "the daemon's periodic full pass (host.json daemon.reconcile_interval_ms)")
      ->check(CLI::Range(100, 86400000))
      ->capture_default_str();
  app.add_option("--log-level", o.log_level, "the daemon's --log-level")->capture_default_str();
  app.add_flag("--keep", o.keep, "keep the temp dir (daemon log, state)");
  app.add_option("--tmp-dir", o.tmp_dir,
                 "where the temp dir (state, socket, sim device) goes: its filesystem decides "
                 "what an fsync costs")
      ->check(CLI::ExistingDirectory)
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (o.quick) {
    o.ports = 8;
    o.remotes = 2000;
    o.vteps = 20;
    o.samples = 20;
    o.idle_seconds = 2;
  }
  if (o.ports < 1 || o.addresses < 1 || o.addresses > 7 || o.addresses6 < 0 || o.addresses6 > 7 ||
      o.remotes < 1 || o.vteps < 1 || o.vteps > 60000 || o.remotes > 4000000 || o.samples < 1) {
    std::fprintf(stderr, "out of range: ports >= 1, addresses 1..7, addresses6 0..7, remotes "
                         "1..4000000, vteps 1..60000, samples >= 1\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::vector<Variant> variants;
  if (!(o.kernel && o.skip_sim)) variants.push_back({"sim", false});
  if (o.kernel) variants.push_back({"kernel", true});
  try {
    for (const auto& v : variants) runVariant(o, v);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "daemon_bench: FAILED: %s\n", e.what());
    return 1;
  }
  std::printf("\n%d figures PASS, %d MISS (a MISS is a measurement, not a failure)\n", g_pass,
              g_miss);
  return 0;
}
