// Controller: per-port traffic counters (issue 23, part 3). Every
// daemon.traffic_interval_ms a sweep reads the COUNT of each port's hardware
// rules (the flow backend: rte_flow_query, the sim's own counters) in slices
// of the loop turn, while a worker dumps the representors' netdev counters
// (SoftwarePath::linkTraffic, a socket of its own); then PortTrafficBook
// turns the readings into totals that only grow. `port.get` and the
// `traffic` op show them, /metrics exports them. And `sim.send`: packets
// through the simulated NIC, so that its counters move without a wire.
#include <charconv>
#include <chrono>
#include <future>

#include "controller_types.h"
#include "nicoffload/simnic/sim_eswitch.h"
#include "nicoffload/trace/trace.h"
#include "request_fields.h"

namespace nicoffload::daemon {

void Controller::startTrafficSweep() {
  auto sweep = std::make_unique<TrafficSweep>();
  sweep->started = SteadyClock::now();
  sweep->ports.reserve(admission_.intent().ports.size());
  for (const auto& p : admission_.intent().ports) sweep->ports.push_back(p.key);
  sweep->read.reserve(sweep->ports.size());
  if (offload::SoftwarePath* path = backends_.software_path.get())
    sweep->links = std::async(std::launch::async, [path] { return path->linkTraffic(); });
  traffic_sweep_ = std::move(sweep);
}

// The port the sweep listed at `index`: where it stood, unless the intent
// changed meanwhile (findPort is a walk of every port).
const model::Port* Controller::sweptPort(const TrafficSweep& sweep, std::size_t index) const {
  const model::PortKey& key = sweep.ports[index];
  if (index < admission_.intent().ports.size() && admission_.intent().ports[index].key == key) return &admission_.intent().ports[index];
  return findPort(key);
}

bool Controller::stepTrafficSweep(bool inline_all) {
  auto& sweep = *traffic_sweep_;
  const auto begin = SteadyClock::now();
  // Short slices: a request arriving meanwhile waits at most about this
  // long behind the sweep (a sweep of 500 ports takes ~6 ms of the loop at
  // 100 k rules on the simulated NIC: docs/benchmarks.md).
  const auto deadline = begin + std::min<SteadyClock::duration>(options_.slice_budget, kTrafficSlice);
  while (sweep.next < sweep.ports.size()) {
    const std::size_t index = sweep.next++;
    const model::Port* port = sweptPort(sweep, index);
    if (!port) continue;  // removed meanwhile
    TrafficSweep::Pending p;
    p.owner = flowrules::portOwner(port->key);
    p.port = index;
    if (auto planned = planner_->portRules(*port)) {
      for (const auto& r : *planned) {
        const auto role = flowrules::trafficRole(r);
        if (!role) continue;
        // One lookup: kNotFound is a rule not applied or not in hardware
        // (no counter of its own), or gone from the device (the next full
        // pass reinstalls it). Any other refusal is counted and shown.
        auto c = applier_->query(r.id);
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
    if (!inline_all && SteadyClock::now() >= deadline) break;
  }
  sweep.busy += SteadyClock::now() - begin;
  if (sweep.next < sweep.ports.size()) return false;

  std::optional<LinkTrafficMap> links;
  std::string links_error;
  if (sweep.links.valid()) {
    if (!inline_all && sweep.links.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
      return false;
    auto got = sweep.links.get();
    if (got) {
      links = std::move(got).value();
    } else if (got.error().code != ErrorCode::kUnsupported) {  // unsupported: a path without netdevs
      links_error = got.error().describe();
    }
  }
  const auto merge_begin = SteadyClock::now();
  for (auto& p : sweep.read) {
    const model::Port* port = sweptPort(sweep, p.port);
    if (!port) continue;  // removed while the sweep ran
    if (links)
      if (auto it = links->find(port->representorName()); it != links->end())
        p.reading.representor = it->second;
    traffic_.record(p.owner, p.reading);
  }
  std::vector<flowrules::OwnerId> owners;
  owners.reserve(admission_.intent().ports.size());
  for (const auto& port : admission_.intent().ports) owners.push_back(flowrules::portOwner(port.key));
  traffic_.retainOnly(owners);

  auto& st = traffic_stats_;
  ++st.sweeps;
  st.rule_reads += sweep.rule_reads;
  st.read_failures += sweep.failures;
  st.last_rule_reads = sweep.rule_reads;
  st.last_ports = sweep.read.size();
  st.last_busy_ms =
      std::chrono::duration<double, std::milli>(sweep.busy + (SteadyClock::now() - merge_begin)).count();
  st.last_wall_ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - sweep.started).count();
  st.last_at = options_.now();
  st.last_error = sweep.failures ? std::to_string(sweep.failures) + " counter reads failed; the first: " +
                                       sweep.first_failure
                                 : std::string();
  if (!links_error.empty()) {
    ++st.link_failures;
    if (st.last_error.empty()) st.last_error = "representor counters: " + links_error;
  }
  if (!st.last_error.empty() && st.last_error != st.logged_error)
    spdlog::warn("traffic counters: {}", st.last_error);
  st.logged_error = st.last_error;
  const auto render_begin = SteadyClock::now();
  renderTrafficMetrics();
  st.last_busy_ms += std::chrono::duration<double, std::milli>(SteadyClock::now() - render_begin).count();
  traffic_sweep_.reset();
  return true;
}

void Controller::runTrafficSweepNow() {
  if (!traffic_sweep_) startTrafficSweep();
  stepTrafficSweep(true);
}

void Controller::stepTraffic(SteadyClock::time_point now) {
  if (!traffic_sweep_) {
    if (host_.traffic_interval_ms == 0 || now < next_traffic_) return;
    next_traffic_ = now + std::chrono::milliseconds(host_.traffic_interval_ms);
    startTrafficSweep();
  }
  // Without background work (tests), a due sweep runs whole, at once.
  stepTrafficSweep(!options_.background_full_pass);
}

SteadyClock::time_point Controller::nextTrafficWork() const {
  if (traffic_sweep_) return SteadyClock::time_point::min();
  if (host_.traffic_interval_ms == 0) return SteadyClock::time_point::max();
  return next_traffic_;
}

namespace {

json countJson(const flowrules::TrafficCount& c) { return {{"packets", c.packets}, {"bytes", c.bytes}}; }

}  // namespace

json Controller::portTrafficJson(const model::Port& port) const {
  const auto* t = traffic_.find(flowrules::portOwner(port.key));
  if (!t) return nullptr;  // not read yet
  return {{"rx", {{"packets", t->rx().packets},
                  {"bytes", t->rx().bytes},
                  {"hw", countJson(t->rx_hw)},
                  {"sw", countJson(t->rx_sw)}}},
          {"tx", {{"hw", countJson(t->tx_hw)}, {"sw", countJson(t->tx_sw)}}},
          {"tx_dropped", countJson(t->tx_dropped)},
          {"hw_rules_read", t->rules_read},
          {"representor_read", t->representor_read},
          {"age_ms", trafficAgeMs()}};
}

std::int64_t Controller::trafficAgeMs() const {
  if (traffic_stats_.sweeps == 0) return -1;
  return std::chrono::duration_cast<std::chrono::milliseconds>(options_.now() -
                                                               traffic_stats_.last_at)
      .count();
}

json Controller::trafficStatusJson() const {
  const auto& st = traffic_stats_;
  return {{"interval_ms", host_.traffic_interval_ms},
          {"sweeps", st.sweeps},
          {"age_ms", trafficAgeMs()},
          {"last_ports", st.last_ports},
          {"last_rule_reads", st.last_rule_reads},
          {"last_busy_ms", st.last_busy_ms},
          {"last_wall_ms", st.last_wall_ms},
          {"rule_reads", st.rule_reads},
          {"read_failures", st.read_failures},
          {"representor_failures", st.link_failures},
          {"last_error", st.last_error}};
}

// The `traffic` op: every port's figures (or one VM's), from the last sweep;
// "refresh": true runs a sweep first, at once.
Result<json> Controller::readTraffic(const json& req) {
  auto fail = [](Error e) { return e; };
  if (auto s = onlyKeys(req, {"refresh", "vm"}); !s) return fail(s.error());
  auto refresh = optionalBool(req, "refresh", false);
  if (!refresh) return fail(refresh.error());
  std::optional<std::string> vm;
  if (req.contains("vm")) {
    auto v = requiredString(req, "vm", "a domain UUID");
    if (!v) return fail(v.error());
    vm = std::move(v).value();
    std::transform(vm->begin(), vm->end(), vm->begin(), [](unsigned char c) { return std::tolower(c); });
  }
  if (*refresh) runTrafficSweepNow();
  json ports = json::array();
  for (const auto& p : admission_.intent().ports) {
    if (vm && p.key.vm != *vm) continue;
    ports.push_back({{"vm", p.key.vm}, {"nic", p.key.nic}, {"traffic", portTrafficJson(p)}});
  }
  return json{{"ports", std::move(ports)}, {"sweep", trafficStatusJson()}};
}

// The `sim.send` op: `count` copies of a packet (the trace op's packet spec)
// into the simulated NIC, which counts them on the rules they match, as the
// device would. Only with backends.flow = sim: a real NIC takes its packets
// from the wire and the VMs. The packets go through at once, on the loop
// thread (about a microsecond each): hence the cap of 100 000.
Result<json> Controller::simSend(const json& req) {
  auto fail = [](Error e) { return e; };
  if (auto s = onlyKeys(req, {"packet", "count"}); !s) return fail(s.error());
  // The one place the daemon looks behind its FlowBackend seam: sending
  // packets is what only the simulated NIC can be asked to do.
  auto* sim = dynamic_cast<simnic::SimEswitch*>(&applier_->backend());
  if (!sim)
    return fail(requestError(ErrorCode::kUnsupported, "op", "sim.send",
                             "sim.send needs the simulated NIC (backends.flow = sim); this host runs " +
                                 applier_->backend().capabilities().backend));
  std::uint64_t count = 1;
  if (const auto it = req.find("count"); it != req.end()) {
    if (!it->is_number_integer())
      return fail(requestError(ErrorCode::kWrongType, "count", echoOf(*it), "must be an integer 1..100000"));
    const auto n = it->get<std::int64_t>();  // an unsigned beyond int64 wraps negative: refused too
    count = n > 0 ? static_cast<std::uint64_t>(n) : 0;
    if (count == 0 || count > 100000)
      return fail(requestError(ErrorCode::kInvalidValue, "count", echoOf(*it), "must be 1..100000"));
  }
  auto input = packetSpecOf(req, admission_.intent());
  if (!input) return input.error();
  std::optional<simnic::Delivery> last;
  for (std::uint64_t i = 0; i < count; ++i) {
    auto d = sim->evaluate(input->packet, input->ingress);
    if (!d) return d.error();
    last = std::move(d).value();
  }
  return json{{"sent", count}, {"in", input->in}, {"delivery", last->str()},
              {"miss", last->miss}, {"rules_matched", last->path.size()}};
}

// Written straight into one string (not through MetricsRegistry's map of
// labels): 500 ports make 5 000 samples after every sweep.
void Controller::renderTrafficMetrics() {
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
       true, [](const T& t) { return t.rx_hw.packets; }, [](const T& t) { return t.rx_sw.packets; }},
      {"nicoffload_port_rx_bytes_total", "Bytes of nicoffload_port_rx_packets_total.", true,
       [](const T& t) { return t.rx_hw.bytes; }, [](const T& t) { return t.rx_sw.bytes; }},
      {"nicoffload_port_tx_packets_total",
       "Packets from a VM NIC: taken in by its hardware anti-spoofing rules (path=hw), or reaching "
       "the kernel through the representor (path=sw; ARP, and what missed in hardware: such a "
       "packet is in both).",
       true, [](const T& t) { return t.tx_hw.packets; }, [](const T& t) { return t.tx_sw.packets; }},
      {"nicoffload_port_tx_bytes_total", "Bytes of nicoffload_port_tx_packets_total.", true,
       [](const T& t) { return t.tx_hw.bytes; }, [](const T& t) { return t.tx_sw.bytes; }},
      {"nicoffload_port_tx_dropped_packets_total",
       "Packets from a VM NIC dropped by its hardware anti-spoofing rules (spoofed source address "
       "or MAC).",
       false, [](const T& t) { return t.tx_dropped.packets; }, nullptr},
      {"nicoffload_port_tx_dropped_bytes_total", "Bytes of nicoffload_port_tx_dropped_packets_total.",
       false, [](const T& t) { return t.tx_dropped.bytes; }, nullptr},
  };
  std::vector<std::pair<std::string, const T*>> ports;  // labels, figures
  ports.reserve(admission_.intent().ports.size());
  for (const auto& p : admission_.intent().ports)
    if (const auto* t = traffic_.find(flowrules::portOwner(p.key)))
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
  const auto& st = traffic_stats_;
  MetricsRegistry m;
  m.describe("nicoffload_traffic_sweeps_total", "counter", "Reads of every port's traffic counters.");
  m.set("nicoffload_traffic_sweeps_total", "", static_cast<double>(st.sweeps));
  m.describe("nicoffload_traffic_read_failures_total", "counter",
             "Hardware counter reads the device refused, and representor counter dumps that failed.");
  m.set("nicoffload_traffic_read_failures_total", "kind=\"rule\"", static_cast<double>(st.read_failures));
  m.set("nicoffload_traffic_read_failures_total", "kind=\"representors\"",
        static_cast<double>(st.link_failures));
  m.describe("nicoffload_traffic_sweep_busy_seconds", "gauge",
             "Loop-thread time the last sweep of the traffic counters took.");
  m.set("nicoffload_traffic_sweep_busy_seconds", "", st.last_busy_ms / 1000.0);
  traffic_metrics_ = std::move(out) + m.render();
}

}  // namespace nicoffload::daemon
