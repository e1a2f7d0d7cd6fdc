// Restart benchmark (issue: daemon).
//
// With N rules installed in the simulated NIC and nothing changed, restart
// the controller: a new SimEswitch over the same device directory (its journal
// replayed, as a device keeps its rules) and a new Controller over the same
// state directory. Measured: time from the state load to converged, and the
// device operations the restart issued (target: <= 1 s and zero rule churn,
// i.e. no create and no destroy).
// Also: controller memory per installed rule (heap bytes the Controller holds,
// counted with mallinfo2, the device's own memory excluded), at 100 000 and
// 1 000 000 rules (target <= 300 bytes).
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "nicoffload/model/parse.h"
#include "nicoffload/daemon/controller.h"
#include "nicoffload/simnic/sim_eswitch.h"
#include "spdlog/spdlog.h"

using namespace nicoffload;
using Clock = std::chrono::steady_clock;

namespace {

std::size_t heapBytes() { return mallinfo2().uordblks + mallinfo2().hblkhd; }

model::HostConfig host(const std::string& dir) {
  model::HostConfig h;
  h.name = "bench";
  h.uplink_pci = "0000:03:00.0";
  h.uplink_mac = *MacAddr::parse("0c:42:a1:00:00:01");
  h.vf_count = 64;
  h.gateway_ipv4 = *Ipv4Addr::parse("169.254.1.1");
  h.gateway_mac = *MacAddr::parse("ee:ee:ee:ee:ee:ee");
  h.underlay = model::UnderlayMode::kRouted;
  h.default_next_hop = *Ipv4Addr::parse("192.0.2.254");
  h.next_hops.push_back({*h.default_next_hop, *MacAddr::parse("0c:42:a1:ff:ff:fe")});
  h.software_path = model::SoftwarePathKind::kNone;  // the flow rules are what is measured
  h.vdpa_backend = model::VdpaKind::kNone;
  h.state_dir = dir + "/state";
  h.sim_device_dir = dir + "/simnic";
  h.socket_path = dir + "/ctl.sock";  // nothing of the bench's goes to /run
  return h;
}

// 48 ports x 4 addresses (11 rules each) + remotes up to `rules`.
daemon::PersistedState intent(std::size_t rules) {
  daemon::PersistedState s;
  for (int p = 0; p < 48; ++p) {
    model::Port port;
    char uuid[40];
    std::snprintf(uuid, sizeof uuid, "00000000-0000-4000-8000-%012d", p);
    port.key = {uuid, 0};
    port.mac.bytes = {0x52, 0x54, 0x00, 0x00, 0x00, static_cast<std::uint8_t>(p + 1)};
    for (int a = 0; a < 4; ++a)
      port.addresses.push_back(Ipv4Addr{0x0A000000u | (static_cast<std::uint32_t>(p) << 8) | static_cast<std::uint32_t>(a + 1)});
    port.vf = static_cast<std::uint16_t>(p);
    s.ports.push_back(port);
  }
  const std::size_t port_rules = 48 * 11 + 1;  // + the uplink entry
  for (std::size_t r = 0; r + port_rules < rules; ++r) {
    model::RemoteEndpoint rem;
    rem.address = Ipv4Addr{0x0B000000u + static_cast<std::uint32_t>(r) + 1};
    s.remotes.push_back(rem);
  }
  return s;
}

struct Run {
  std::size_t rules = 0;
  double first_start_s = 0, restart_s = 0;
  std::uint64_t restart_ops = 0, restart_creates = 0, restart_destroys = 0;
  double bytes_per_rule = 0;
  double device_bytes_per_rule = 0;  // the simulated device's own heap (on a NIC: device memory)
};

Run run(std::size_t rules, const model::HwProfile& profile) {
  Run out;
  char tmpl[] = "/tmp/nfo-restart-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  auto h = host(dir);
  (void)daemon::StateStore(h.state_dir).save(intent(rules));

  {  // First start: installs everything.
    auto nic = simnic::SimEswitch::open(profile, h.vf_count, h.sim_device_dir);
    if (!nic) std::abort();
    daemon::Backends b;
    b.flow = std::move(nic).value();
    const auto t0 = Clock::now();
    auto c = daemon::Controller::start(h, profile, std::move(b), daemon::StateStore(h.state_dir));
    out.first_start_s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!c) {
      std::fprintf(stderr, "start failed: %s\n", c.error().describe().c_str());
      std::abort();
    }
    out.rules = (*c)->applier().counters().hw;
  }  // "stop": the controller goes; the device keeps its journal.

  // Restart. The device first (a NIC does not restart with the controller).
  const std::size_t heap_empty = heapBytes();
  auto nic = simnic::SimEswitch::open(profile, h.vf_count, h.sim_device_dir);
  if (!nic) std::abort();
  auto* sim = nic->get();
  const auto ops_before = sim->operations();
  const std::size_t heap_before = heapBytes();
  daemon::Backends b;
  b.flow = std::move(nic).value();
  const auto t0 = Clock::now();
  auto c = daemon::Controller::start(h, profile, std::move(b), daemon::StateStore(h.state_dir));
  out.restart_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!c) std::abort();
  const std::size_t heap_after = heapBytes();
  out.restart_ops = sim->operations() - ops_before;
  out.restart_creates = (*c)->applier().counters().creations;
  out.restart_destroys = (*c)->applier().counters().destructions;
  out.bytes_per_rule = static_cast<double>(heap_after - heap_before) / static_cast<double>(out.rules);
  out.device_bytes_per_rule =
      static_cast<double>(heap_before - heap_empty) / static_cast<double>(out.rules);
  c->reset();
  std::filesystem::remove_all(dir);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  const std::string profile_path = argc > 1 ? argv[1] : std::string(NICOFFLOAD_PROFILE_SOURCE_DIR) + "/sim.json";
  auto profile = model::loadHwProfile(profile_path);
  if (!profile) return 1;
  profile->rules_per_group = 4000000;  // room for the 1 M run
  int rc = 0;
  std::printf("nicoffload_restart_bench: controller restart over a simulated NIC that keeps its rules\n");
  for (std::size_t n : {100000ul, 1000000ul}) {
    const auto r = run(n, *profile);
    const bool time_ok = n > 100000 || r.restart_s <= 1.0;
    const bool churn_ok = r.restart_creates == 0 && r.restart_destroys == 0;
    const bool mem_ok = r.bytes_per_rule <= 300.0;
    std::printf("%zu rules: first start (installs all) %.2f s; restart to converged %.3f s [target <= 1 s%s: %s]; "
                "device operations during restart %llu (creates %llu, destroys %llu) [zero churn: %s]; "
                "controller memory %.0f bytes/rule [target <= 300: %s]; "
                "the simulated device's memory (in this process; on hardware the NIC's) %.0f bytes/rule\n",
                r.rules, r.first_start_s, r.restart_s, n > 100000 ? " at 100 k" : "",
                time_ok ? "MET" : "MISSED", static_cast<unsigned long long>(r.restart_ops),
                static_cast<unsigned long long>(r.restart_creates), static_cast<unsigned long long>(r.restart_destroys),
                churn_ok ? "MET" : "MISSED", r.bytes_per_rule, mem_ok ? "MET" : "MISSED",
                r.device_bytes_per_rule);
    if (!time_ok || !churn_ok || !mem_ok) rc = 2;
  }
  return rc;
}
