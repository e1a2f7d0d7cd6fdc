// nicoffloadd: the nicoffload controller daemon.
//
// Loads the host config and hardware profile, opens the backends (flow: sim
// or dpdk; software path: kernel or none), loads the persisted intent,
// adopts what the backends already hold, converges, and serves the control
// API on a root-only unix socket. Logs go to stderr (journald), one line per
// state change; metrics to a Prometheus endpoint on loopback.
//
// One daemon per host: before any backend is opened it takes the exclusive
// locks of its device and its state directory (instance_lock.h) and checks
// that no daemon answers on its socket; a second instance stops there,
// having touched nothing. Exceptions stop at main(): logged, the socket file
// removed (the server's destructor runs as the stack unwinds), exit 1.
#include <malloc.h>
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <future>
#include <optional>
#include <string>

#include "nicoffload/daemon/control.h"
#include "nicoffload/daemon/controller.h"
#include "nicoffload/daemon/instance_lock.h"
#include "nicoffload/daemon/metrics.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/model/profile_dirs.h"
#include "nicoffload/offload/flow_backends.h"
#include "nicoffload/offload/router_advertiser.h"
#include "nicoffload/offload/sim_pf.h"
#include "nicoffload/offload/software_path.h"
#include "nicoffload/offload/sysfs_nic_backend.h"
#include "nicoffload/vdpa/dpdk_vdpa_backend.h"
#include "nicoffload/vdpa/kernel_vdpa_backend.h"
#include "nicoffload/vdpa/sim_vdpa_backend.h"

namespace {

std::atomic<int> g_signal{0};
void onSignal(int sig) { g_signal = sig; }

// The vhost-user sockets of backends.vdpa dpdk: "vhost" beside the control
// socket (/run/nicoffload/vhost for the default socket path).
std::string vdpaRuntimeDir(const nicoffload::model::HostConfig& host) {
  const auto slash = host.socket_path.rfind('/');
  return (slash == std::string::npos ? std::string(".") : host.socket_path.substr(0, slash)) +
         "/vhost";
}

std::string defaultProfileDir() {
  return nicoffload::model::defaultProfileDir(NICOFFLOAD_PROFILE_INSTALL_DIR,
                                              NICOFFLOAD_PROFILE_SOURCE_DIR);
}

using namespace nicoffload;

struct DaemonArgs {
  std::string config = "/etc/nicoffload/host.json";
  std::string profile_dir;
  std::string log_level = "info";
  bool check_only = false;
};

// The command line into `args`; an exit status when the process stops here
// (--help, --version, a usage error: CLI11 has printed what it has to).
std::optional<int> parseOptions(int argc, char** argv, DaemonArgs& args) {
  CLI::App app{"nicoffloadd: the nicoffload SmartNIC / vDPA offload controller daemon"};
  app.set_version_flag("--version", std::string("nicoffloadd ") + NICOFFLOAD_VERSION);
  app.add_option("-c,--config", args.config, "host config (JSON)")
      ->check(CLI::ExistingFile)
      ->capture_default_str();
  app.add_option("--profile-dir", args.profile_dir,
                 "directory of named hardware profiles (default: $NICOFFLOAD_PROFILE_DIR, else " +
                     std::string(NICOFFLOAD_PROFILE_INSTALL_DIR) + ")");
  app.add_option("--log-level", args.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_flag("--check", args.check_only,
               "load the config, the profile and the state, print them, and exit");
  app.footer(
      "Signals: SIGTERM/SIGINT stop (installed state stays and is adopted at the next start);\n"
      "SIGHUP starts a full pass (in the background). Exit status: 0 stopped cleanly; 1 cannot "
      "start (the\n"
      "log line says why; among the reasons: another nicoffloadd holds the device or the state\n"
      "directory, its pid named) or stopped on an unexpected error (logged; socket removed).");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return std::nullopt;
}

// Logs go to stderr (journald), one line per state change.
void setUpLogging(const std::string& log_level) {
  auto logger = spdlog::stderr_logger_mt("nicoffloadd");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::flush_on(spdlog::level::info);
}

int fatal(const Error& e) {
  spdlog::critical("cannot start: {}", e.describe());
  return 1;
}

struct LoadedConfig {
  model::HostConfig host;
  model::HwProfile profile;
};

// The host config and its hardware profile, checked against each other.
Result<LoadedConfig> loadConfig(const DaemonArgs& args) {
  auto host = model::loadHostConfig(args.config);
  if (!host) return host.error();
  auto profile =
      model::loadHostProfile(host->hw_profile, args.config,
                             args.profile_dir.empty() ? defaultProfileDir() : args.profile_dir);
  if (!profile) return profile.error();
  // A config the profile cannot carry (vf_count above max_vfs, vDPA the NIC
  // lacks) is refused here, --check included, not at the first plan.
  if (auto fits = model::checkHostForProfile(*host, *profile); !fits) {
    Error e = fits.error();
    e.field = args.config + ": " + e.field;
    return e;
  }
  spdlog::info("host {}: profile {} ({}), underlay {}, flow backend {}, software path {}",
               host->name, profile->name, profile->model, model::toString(host->underlay),
               model::toString(host->flow_backend), model::toString(host->software_path));
  return LoadedConfig{std::move(host).value(), std::move(profile).value()};
}

// --check: the state loads too; one line says what was read.
int checkOnly(const DaemonArgs& args, const LoadedConfig& cfg, daemon::StateStore& store) {
  auto state = store.load();
  if (!state) return fatal(state.error());
  std::printf("config %s ok; profile %s; state %s: %zu ports, %zu remotes\n", args.config.c_str(),
              cfg.profile.name.c_str(), store.path().c_str(), state->ports.size(),
              state->remotes.size());
  return 0;
}

// One daemon per host, decided before any backend is opened: a second
// instance must not adopt (and so rewrite) the first one's device.
Result<std::vector<daemon::InstanceLock>> takeInstanceLocks(const model::HostConfig& host) {
  auto locks = daemon::acquireInstanceLocks(host);
  if (!locks) return locks.error();
  if (auto alone = daemon::control::ensureNoDaemonListens(host.socket_path); !alone)
    return alone.error();
  for (const auto& lock : *locks) spdlog::info("holding {}", lock.path());
  return locks;
}

// Milliseconds since the backends started opening (the start-up log lines).
class StartTimer {
 public:
  double ms() const {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_)
        .count();
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// The backends and what they lean on.
struct OpenedBackends {
  // The EAL of DPDK (flow or vDPA) outlives the backends that use it: it is
  // declared first, so it is destroyed last.
  std::unique_ptr<dpdk::Eal> eal;
  // The simulated NIC keeps a /sys-shaped tree next to the simulated flow
  // table; its nic and vdpa backends refer to it.
  std::unique_ptr<offload::SimPf> sim_nic;
  daemon::Backends backends;
};

using SimPfOpening = std::future<Result<std::unique_ptr<offload::SimPf>>>;

// The flow backend, the software path, NIC management (SR-IOV, eswitch, VF
// settings), vDPA devices and the route watcher. The simulated PF, opened on
// its own thread (`sim_pf_opening`), is waited for here.
Result<OpenedBackends> openBackends(const model::HostConfig& host, const model::HwProfile& profile,
                                    SimPfOpening& sim_pf_opening, const StartTimer& timer) {
  OpenedBackends opened;
  auto flow = offload::openFlowBackend(host, profile, {.persistent_sim = true});
  if (!flow) return flow.error();
  spdlog::debug("start: flow backend opened in {:.0f} ms", timer.ms());
  opened.eal = std::move(flow->eal);
  for (const auto& note : flow->notes) spdlog::info("flow backend: {}", note);
  auto& backends = opened.backends;
  backends.flow = std::move(flow->backend);
  if (host.software_path == model::SoftwarePathKind::kKernel) {
    auto sw = offload::openKernelSoftwarePath({.netns = host.kernel_netns});
    if (!sw) return sw.error();
    backends.software_path = std::move(sw).value();
    spdlog::info("software path: kernel{}",
                 host.kernel_netns.empty() ? "" : " in namespace " + host.kernel_netns);
  }

  if (host.nic_backend == model::NicBackendKind::kSim) {
    auto sn = sim_pf_opening.get();
    if (!sn) return sn.error();
    opened.sim_nic = std::move(sn).value();
    backends.nic = opened.sim_nic->makeBackend();
  } else {
    offload::SysfsNicOptions no;
    no.pf_pci = host.uplink_pci;
    no.pf_netdev = host.uplink_netdev;
    no.profile = profile;
    backends.nic = offload::makeSysfsNicBackend(no);
  }
  switch (host.vdpa_backend) {
    case model::VdpaKind::kNone:
      break;
    case model::VdpaKind::kSim:
      if (!opened.sim_nic)
        return makeError(ErrorCode::kConflict, "backends.vdpa", "sim",
                         "vDPA 'sim' needs backends.nic 'sim'");
      backends.vdpa = vdpa::makeSimVdpaBackend(*opened.sim_nic);
      break;
    case model::VdpaKind::kKernel: {
      vdpa::KernelVdpaOptions vo;
      vo.pf_pci = host.uplink_pci;
      vo.profile = profile;
      backends.vdpa = vdpa::makeKernelVdpaBackend(vo);
      break;
    }
    case model::VdpaKind::kDpdk: {
      // vhost-user sockets served by this process, each attached to its VF's
      // mlx5 vDPA device, in the EAL of the DPDK flow backend when there is
      // one (an EAL starts once per process), else in one started here.
      if (!opened.eal) {
        auto started = dpdk::Eal::start(dpdk::ealArguments(host, "nicoffload"));
        if (!started) {
          Error e = started.error();
          e.message = "backends.vdpa dpdk: starting the DPDK EAL (dpdk.eal_args): " + e.message;
          return e;
        }
        opened.eal = std::move(started).value();
        spdlog::info("vdpa: DPDK EAL started for the vhost-user backend");
      }
      vdpa::DpdkVdpaOptions vo;
      vo.pf_pci = host.uplink_pci;
      vo.runtime_dir = vdpaRuntimeDir(host);
      vo.profile = profile;
      if (opened.sim_nic)
        vo.sysfs_root = opened.sim_nic->root();  // the VFs' addresses are the sim's
      backends.vdpa = std::make_unique<vdpa::DpdkVdpaBackend>(vo);
      break;
    }
  }
  spdlog::info("nic backend {}, vdpa backend {}", model::toString(host.nic_backend),
               model::toString(host.vdpa_backend));

  if (host.learn_routes) {
    offload::RouteWatcherOptions ro;
    ro.netns = host.kernel_netns;
    ro.uplink = host.uplink_netdev;
    if (host.uplink2) ro.uplink2 = host.uplink2->netdev;
    ro.table = host.route_table;
    ro.own_protocol = host.route_protocol;
    ro.protocols = host.learn_protocols;
    ro.ipv6 = host.gateway_ipv6.has_value();
    auto watcher = offload::RouteWatcher::open(ro);
    if (!watcher) return watcher.error();
    backends.routes = std::move(watcher).value();
    spdlog::info("routes: learning {} routes of table {} through {} from the kernel{}",
                 ro.ipv6 ? "/32 and /128" : "/32", host.route_table,
                 host.uplink_netdev + (host.uplink2 ? " and " + host.uplink2->netdev : ""),
                 host.kernel_netns.empty() ? "" : " in namespace " + host.kernel_netns);
  }
  return opened;
}

// The control API on a root-only unix socket, which also wakes the loop for
// the controller's route watcher.
Result<std::unique_ptr<daemon::control::Server>> openControlServer(
    const model::HostConfig& host, daemon::Controller& controller) {
  daemon::control::Server::Options sopts;
  sopts.socket_path = host.socket_path;
  sopts.max_request_bytes = host.max_request_bytes;
  sopts.allowed_uids = {0};
  if (::geteuid() != 0) sopts.allowed_uids.push_back(::geteuid());
  auto server = daemon::control::Server::open(sopts);
  if (!server) return server.error();
  if (const int fd = controller.routeWatcherFd(); fd >= 0)
    if (auto s = (*server)->watchFd(fd); !s) return s.error();
  return server;
}

// The Prometheus endpoint on loopback; null when metrics_listen is empty.
Result<std::unique_ptr<daemon::MetricsServer>> startMetrics(const model::HostConfig& host) {
  if (host.metrics_listen.empty()) return std::unique_ptr<daemon::MetricsServer>();
  const auto colon = host.metrics_listen.rfind(':');
  std::string mhost = host.metrics_listen.substr(0, colon);
  if (mhost == "[::1]") mhost = "::1";
  auto m = daemon::MetricsServer::start(mhost, std::stoi(host.metrics_listen.substr(colon + 1)));
  if (!m) return m.error();
  spdlog::info("metrics on http://{}/metrics", host.metrics_listen);
  return m;
}

// IPv6 router advertisements on the representors (gateway.ipv6 with the
// kernel software path, unless gateway.router_advertisements.enabled is
// false); null when off.
Result<std::unique_ptr<offload::RouterAdvertiser>> startRouterAdvertisements(
    const model::HostConfig& host) {
  const auto& ra = host.router_advertisements;
  if (!host.gateway_ipv6 || host.software_path != model::SoftwarePathKind::kKernel || !ra.enabled)
    return std::unique_ptr<offload::RouterAdvertiser>();
  offload::RouterAdvertiserOptions o;
  o.netns = host.kernel_netns;
  o.gateway = *host.gateway_ipv6;
  o.gateway_mac = host.gateway_mac;
  o.interval = std::chrono::seconds(ra.interval_s);
  o.router_lifetime = std::chrono::seconds(ra.lifetime_s);
  auto started = offload::RouterAdvertiser::start(o);
  if (!started) return started.error();
  spdlog::info(
      "router advertisements: {} as the default router on every representor of a port "
      "with IPv6 addresses, every {} s, lifetime {} s",
      host.gateway_ipv6->str(), ra.interval_s, ra.lifetime_s);
  return started;
}

void installSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

// The loop, until SIGTERM or SIGINT: requests, bulk slices, learned routes,
// the controller's tick, metrics.
void serve(daemon::Controller& ctl, daemon::control::Server& srv,
           daemon::MetricsServer* metrics) {
  if (metrics) metrics->publish(ctl.metricsText(&srv.counters()));
  while (true) {
    const int sig = g_signal.exchange(0);
    if (sig == SIGTERM || sig == SIGINT) break;
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: a full pass starts (in the background)");
      ctl.requestFullPass();
    }
    const auto wait = std::min<long long>(ctl.untilNextTick().count(), 1000);
    auto requests = srv.poll(static_cast<int>(wait));
    if (!requests.empty()) {
      std::vector<std::uint64_t> connections;
      connections.reserve(requests.size());
      for (const auto& r : requests) connections.push_back(r.connection);
      const auto replies = ctl.handle(std::move(requests));
      for (std::size_t i = 0; i < connections.size(); ++i)
        if (!replies[i].is_null()) srv.reply(connections[i], replies[i]);  // null: later
    }
    // A slice of a bulk request (a large remote.sync or rules read), then
    // what waited behind it: other clients are served between two slices.
    if (ctl.bulkPending())
      for (auto& late : ctl.stepBulk()) {
        if (late.text.empty()) {
          srv.reply(late.connection, late.body);
        } else {
          srv.replyText(late.connection, std::move(late.text));
        }
      }
    // Learned routes wait while a bulk remote.sync changes the intent (bulk.cc).
    if (!ctl.bulkPending()) ctl.pollRoutes();
    ctl.tick();
    if (metrics) metrics->publish(ctl.metricsText(&srv.counters()));
  }
}

int run(int argc, char** argv) {
  DaemonArgs args;
  if (auto exit_status = parseOptions(argc, argv, args)) return *exit_status;
  setUpLogging(args.log_level);

  auto loaded_config = loadConfig(args);
  if (!loaded_config) return fatal(loaded_config.error());
  const model::HostConfig& host = loaded_config->host;
  const model::HwProfile& profile = loaded_config->profile;

  daemon::StateStore store(host.state_dir, {.compact_journal_bytes = host.journal_compact_bytes});
  if (args.check_only) return checkOnly(args, *loaded_config, store);

  auto locks = takeInstanceLocks(host);
  if (!locks) return fatal(locks.error());

  // A restart at fleet scale spends most of its time reading: the state
  // (snapshot + journal), the flow device and the simulated PF. The three
  // are independent, so the state and the simulated PF load on their own
  // threads while the flow backend opens here. (A future's destructor waits
  // for it: an early return below does not leave a thread behind.)
  const StartTimer timer;
  auto loading = std::async(std::launch::async, [&store, &timer] {
    auto state = store.load();
    spdlog::debug("start: state read in {:.0f} ms", timer.ms());
    return state;
  });
  SimPfOpening sim_pf_opening;
  if (host.nic_backend == model::NicBackendKind::kSim)
    sim_pf_opening = std::async(std::launch::async, [&] {
      auto sn = offload::SimPf::open({host.sim_device_dir + "/nic-" + host.uplink_pci, profile,
                                      host.uplink_pci,
                                      host.uplink_netdev.empty() ? "simpf0" : host.uplink_netdev});
      spdlog::debug("start: simulated PF opened in {:.0f} ms", timer.ms());
      return sn;
    });

  auto opened = openBackends(host, profile, sim_pf_opening, timer);
  if (!opened) return fatal(opened.error());

  daemon::ControllerOptions options;
  options.reconcile_interval = std::chrono::milliseconds(host.reconcile_interval_ms);
  auto loaded_state = loading.get();
  if (!loaded_state) return fatal(loaded_state.error());
  auto controller = daemon::Controller::start(host, profile, std::move(opened->backends),
                                               std::move(store), options, std::move(*loaded_state));
  if (!controller) return fatal(controller.error());

  auto server = openControlServer(host, **controller);
  if (!server) return fatal(server.error());
  auto metrics = startMetrics(host);
  if (!metrics) return fatal(metrics.error());
  auto advertiser = startRouterAdvertisements(host);
  if (!advertiser) return fatal(advertiser.error());

  installSignalHandlers();
  spdlog::info("ready: control socket {} ({:.0f} ms after taking the locks)", host.socket_path,
               timer.ms());
  serve(**controller, **server, metrics->get());
  if (*advertiser) {
    const auto c = (*advertiser)->counters();
    spdlog::info("router advertisements: {} sent, {} solicitations answered or rate-limited",
                 c.sent, c.solicited);
  }
  spdlog::info("stopping; installed state stays in place and is adopted at the next start");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // One malloc arena for the few threads there are (the loop, the full
  // pass's worker, the state compactor): what one frees is trimmed with the
  // rest (malloc_trim), instead of staying in a per-thread arena of its own,
  // and the heap figures in `status` (mallinfo2) cover all of it.
  ::mallopt(M_ARENA_MAX, 1);
  // The process's edge: nothing may escape as std::terminate (which would
  // leave the socket file behind and say nothing useful).
  std::string what;
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "an exception of unknown type";
  }
  try {
    if (auto logger = spdlog::get("nicoffloadd")) {
      logger->critical("stopping on an unexpected error (a bug in nicoffloadd): {}", what);
      logger->flush();
      return 1;
    }
  } catch (...) {  // NOLINT(bugprone-empty-catch): fall back to plain stderr
  }
  std::fprintf(stderr, "nicoffloadd: stopping on an unexpected error (a bug in nicoffloadd): %s\n",
               what.c_str());
  return 1;
}
