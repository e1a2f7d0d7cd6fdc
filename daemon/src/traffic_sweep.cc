// TrafficSweep: a sweep of every port's traffic counters (traffic_sweep.h).
// The rules' counters are read on the loop thread in short slices (the flow
// backend is not thread-safe); the representors' netdev counters on a
// worker, at the same time; the readings go into the book once both are in.
#include "nicoffload/daemon/traffic_sweep.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <future>
#include <optional>
#include <utility>

#include "nicoffload/daemon/metrics.h"
#include "nicoffload/flowrules/planner.h"

namespace nicoffload::daemon {

using nlohmann::json;
using LinkTrafficMap = std::unordered_map<std::string, flowrules::LinkTraffic>;

struct TrafficSweep::Sweep {
  std::vector<model::PortKey> ports;  // as they were when it started
  std::size_t next = 0;
  struct Pending {
    flowrules::OwnerId owner = 0;
    std::size_t port = 0;  // in `ports`
    flowrules::PortTrafficReading reading;
  };
  std::vector<Pending> read;
  std::future<Result<LinkTrafficMap>> links;  // invalid: no software path
  Clock::time_point started;
  std::chrono::nanoseconds busy{0};  // loop-thread time spent on it
  std::size_t rule_reads = 0;
  std::size_t failures = 0;
  std::string first_failure;
};

TrafficSweep::TrafficSweep(const model::HostConfig& host, const model::Intent& intent,
                           offload::SoftwarePath* path, Seams seams, Options options,
                           Clock::time_point start)
    : host_(host),
      intent_(intent),
      path_(path),
      seams_(std::move(seams)),
      options_(options),
      next_(start + std::chrono::milliseconds(host.traffic_interval_ms)) {}

TrafficSweep::~TrafficSweep() = default;

void TrafficSweep::start() {
  auto sweep = std::make_unique<Sweep>();
  sweep->started = Clock::now();
  sweep->ports.reserve(intent_.ports.size());
  for (const auto& p : intent_.ports) sweep->ports.push_back(p.key);
  sweep->read.reserve(sweep->ports.size());
  if (offload::SoftwarePath* path = path_)
    sweep->links = std::async(std::launch::async, [path] { return path->linkTraffic(); });
  sweep_ = std::move(sweep);
}

// The port the sweep listed at `index`: where it stood, unless the intent
// changed meanwhile (then a walk of every port).
const model::Port* TrafficSweep::sweptPort(const Sweep& sweep, std::size_t index) const {
  const model::PortKey& key = sweep.ports[index];
  if (index < intent_.ports.size() && intent_.ports[index].key == key) return &intent_.ports[index];
  for (const auto& p : intent_.ports)
    if (p.key == key) return &p;
  return nullptr;
}

bool TrafficSweep::stepSweep(bool inline_all) {
  auto& sweep = *sweep_;
  const auto begin = Clock::now();
  // Short slices: a request arriving meanwhile waits at most about this
  // long behind the sweep (a sweep of 500 ports takes ~6 ms of the loop at
  // 100 k rules on the simulated NIC: docs/benchmarks.md).
  const auto deadline = begin + std::min<Clock::duration>(options_.slice_budget, kSlice);
  while (sweep.next < sweep.ports.size()) {
    const std::size_t index = sweep.next++;
    const model::Port* port = sweptPort(sweep, index);
    if (!port) continue;  // removed meanwhile
    Sweep::Pending p;
    p.owner = flowrules::portOwner(port->key);
    p.port = index;
    if (auto planned = seams_.port_rules(*port)) {
      for (const auto& r : *planned) {
        const auto role = flowrules::trafficRole(r);
        if (!role) continue;
        // One lookup: kNotFound is a rule not applied or not in hardware
        // (no counter of its own), or gone from the device (the next full
        // pass reinstalls it). Any other refusal is counted and shown.
        auto c = seams_.query(r.id);
        if (!c) {
          if (c.error().code == ErrorCode::kNotFound) continue;
          ++sweep.rule_reads;
          if (sweep.failures++ == 0) sweep.first_failure = c.error().describe();
          continue;
        }
        ++sweep.rule_reads;
        p.reading.rules.push_back({r.id, *role, *c});
      }
    }
    sweep.read.push_back(std::move(p));
    if (!inline_all && Clock::now() >= deadline) break;
  }
  sweep.busy += Clock::now() - begin;
  if (sweep.next < sweep.ports.size()) return false;

  std::optional<LinkTrafficMap> links;
  std::string links_error;
  if (sweep.links.valid()) {
    if (!inline_all && sweep.links.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
      return false;
    auto got = sweep.links.get();
    if (got) {
      links = std::move(got).value();
    } else if (got.error().code !=
               ErrorCode::kUnsupported) {  // unsupported: a path without netdevs
      links_error = got.error().describe();
    }
  }
  const auto merge_begin = Clock::now();
  for (auto& p : sweep.read) {
    const model::Port* port = sweptPort(sweep, p.port);
    if (!port) continue;  // removed while the sweep ran
    if (links)
      if (auto it = links->find(port->representorName()); it != links->end())
        p.reading.representor = it->second;
    book_.record(p.owner, p.reading);
  }
  std::vector<flowrules::OwnerId> owners;
  owners.reserve(intent_.ports.size());
  for (const auto& port : intent_.ports) owners.push_back(flowrules::portOwner(port.key));
  book_.retainOnly(owners);

  auto& st = stats_;
  ++st.sweeps;
  st.rule_reads += sweep.rule_reads;
  st.read_failures += sweep.failures;
  st.last_rule_reads = sweep.rule_reads;
  st.last_ports = sweep.read.size();
  st.last_busy_ms =
      std::chrono::duration<double, std::milli>(sweep.busy + (Clock::now() - merge_begin)).count();
  st.last_wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - sweep.started).count();
  st.last_at = seams_.now();
  st.last_error = sweep.failures ? std::to_string(sweep.failures) +
                                       " counter reads failed; the first: " + sweep.first_failure
                                 : std::string();
  if (!links_error.empty()) {
    ++st.link_failures;
    if (st.last_error.empty()) st.last_error = "representor counters: " + links_error;
  }
  if (!st.last_error.empty() && st.last_error != st.logged_error)
    spdlog::warn("traffic counters: {}", st.last_error);
  st.logged_error = st.last_error;
  const auto render_begin = Clock::now();
  renderMetrics();
  st.last_busy_ms += std::chrono::duration<double, std::milli>(Clock::now() - render_begin).count();
  sweep_.reset();
  return true;
}

void TrafficSweep::runNow() {
  if (!sweep_) start();
  stepSweep(true);
}

void TrafficSweep::step(Clock::time_point now) {
  if (!sweep_) {
    if (host_.traffic_interval_ms == 0 || now < next_) return;
    next_ = now + std::chrono::milliseconds(host_.traffic_interval_ms);
    start();
  }
  // Without background work (tests), a due sweep runs whole, at once.
  stepSweep(!options_.background);
}

TrafficSweep::Clock::time_point TrafficSweep::nextWork() const {
  if (sweep_) return Clock::time_point::min();
  if (host_.traffic_interval_ms == 0) return Clock::time_point::max();
  return next_;
}

namespace {

json countJson(const flowrules::TrafficCount& c) {
  return {{"packets", c.packets}, {"bytes", c.bytes}};
}

}  // namespace

json TrafficSweep::portJson(const model::Port& port) const {
  const auto* t = book_.find(flowrules::portOwner(port.key));
  if (!t) return nullptr;  // not read yet
  return {{"rx",
           {{"packets", t->rx().packets},
            {"bytes", t->rx().bytes},
            {"hw", countJson(t->rx_hw)},
            {"sw", countJson(t->rx_sw)}}},
          {"tx", {{"hw", countJson(t->tx_hw)}, {"sw", countJson(t->tx_sw)}}},
          {"tx_dropped", countJson(t->tx_dropped)},
          {"hw_rules_read", t->rules_read},
          {"representor_read", t->representor_read},
          {"age_ms", ageMs()}};
}

std::int64_t TrafficSweep::ageMs() const {
  if (stats_.sweeps == 0) return -1;
  return std::chrono::duration_cast<std::chrono::milliseconds>(seams_.now() - stats_.last_at)
      .count();
}

json TrafficSweep::statusJson() const {
  const auto& st = stats_;
  return {{"interval_ms", host_.traffic_interval_ms},
          {"sweeps", st.sweeps},
          {"age_ms", ageMs()},
          {"last_ports", st.last_ports},
          {"last_rule_reads", st.last_rule_reads},
          {"last_busy_ms", st.last_busy_ms},
          {"last_wall_ms", st.last_wall_ms},
          {"rule_reads", st.rule_reads},
          {"read_failures", st.read_failures},
          {"representor_failures", st.link_failures},
          {"last_error", st.last_error}};
}

// Written straight into one string (not through MetricsRegistry's map of
// labels): 500 ports make 5 000 samples after every sweep.
void TrafficSweep::renderMetrics() {
  struct Family {
    const char* name;
    const char* help;
    bool by_path;  // hw and sw samples
    std::uint64_t (*hw)(const flowrules::PortTraffic&);
    std::uint64_t (*sw)(const flowrules::PortTraffic&);
  };
  using T = flowrules::PortTraffic;
  static const Family kFamilies[] = {
      {"nicoffload_port_rx_packets_total",
       "Packets delivered to a VM NIC: by hardware rules (path=hw) or by the kernel through the "
       "representor (path=sw).",
       true, [](const T& t) { return t.rx_hw.packets; },
       [](const T& t) { return t.rx_sw.packets; }},
      {"nicoffload_port_rx_bytes_total", "Bytes of nicoffload_port_rx_packets_total.", true,
       [](const T& t) { return t.rx_hw.bytes; }, [](const T& t) { return t.rx_sw.bytes; }},
      {"nicoffload_port_tx_packets_total",
       "Packets from a VM NIC: taken in by its hardware anti-spoofing rules (path=hw), or reaching "
       "the kernel through the representor (path=sw; ARP, and what missed in hardware: such a "
       "packet is in both).",
       true, [](const T& t) { return t.tx_hw.packets; },
       [](const T& t) { return t.tx_sw.packets; }},
      {"nicoffload_port_tx_bytes_total", "Bytes of nicoffload_port_tx_packets_total.", true,
       [](const T& t) { return t.tx_hw.bytes; }, [](const T& t) { return t.tx_sw.bytes; }},
      {"nicoffload_port_tx_dropped_packets_total",
       "Packets from a VM NIC dropped by its hardware anti-spoofing rules (spoofed source address "
       "or MAC).",
       false, [](const T& t) { return t.tx_dropped.packets; }, nullptr},
      {"nicoffload_port_tx_dropped_bytes_total",
       "Bytes of nicoffload_port_tx_dropped_packets_total.", false,
       [](const T& t) { return t.tx_dropped.bytes; }, nullptr},
  };
  std::vector<std::pair<std::string, const T*>> ports;  // labels, figures
  ports.reserve(intent_.ports.size());
  for (const auto& p : intent_.ports)
    if (const auto* t = book_.find(flowrules::portOwner(p.key)))
      ports.emplace_back("vm=\"" + p.key.vm + "\",nic=\"" + std::to_string(p.key.nic) + "\"", t);
  std::string out;
  out.reserve(ports.size() * 1100 + 2048);
  char num[24];
  auto value = [&](std::uint64_t v) {
    const auto r = std::to_chars(num, num + sizeof num, v);
    out.append(num, r.ptr);
    out += '\n';
  };
  for (const auto& f : kFamilies) {
    out.append("# HELP ").append(f.name).append(" ").append(f.help).append("\n# TYPE ");
    out.append(f.name).append(" counter\n");
    for (const auto& [labels, t] : ports) {
      out.append(f.name).append("{").append(labels);
      if (!f.by_path) {
        out.append("} ");
        value(f.hw(*t));
        continue;
      }
      out.append(",path=\"hw\"} ");
      value(f.hw(*t));
      out.append(f.name).append("{").append(labels).append(",path=\"sw\"} ");
      value(f.sw(*t));
    }
  }
  const auto& st = stats_;
  MetricsRegistry m;
  m.describe("nicoffload_traffic_sweeps_total", "counter",
             "Reads of every port's traffic counters.");
  m.set("nicoffload_traffic_sweeps_total", "", static_cast<double>(st.sweeps));
  m.describe(
      "nicoffload_traffic_read_failures_total", "counter",
      "Hardware counter reads the device refused, and representor counter dumps that failed.");
  m.set("nicoffload_traffic_read_failures_total", "kind=\"rule\"",
        static_cast<double>(st.read_failures));
  m.set("nicoffload_traffic_read_failures_total", "kind=\"representors\"",
        static_cast<double>(st.link_failures));
  m.describe("nicoffload_traffic_sweep_busy_seconds", "gauge",
             "Loop-thread time the last sweep of the traffic counters took.");
  m.set("nicoffload_traffic_sweep_busy_seconds", "", st.last_busy_ms / 1000.0);
  metrics_ = std::move(out) + m.render();
}

}  // namespace nicoffload::daemon
