#include "nicoffload/dpdk/dpdk_flow_backend.h"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace nicoffload::dpdk {
namespace fr = flowrules;

namespace {

constexpr const char* kPoolName = "nicoffload_flow";  // one per process, kept until EAL cleanup
constexpr unsigned kPoolMbufs = 4095;
constexpr std::uint16_t kQueueDescriptors = 64;

// The first port matching `devargs`, or nullopt.
std::optional<std::uint16_t> firstMatching(const std::string& devargs) {
  rte_dev_iterator it{};
  if (rte_eth_iterator_init(&it, devargs.c_str()) != 0) return std::nullopt;
  const std::uint16_t port = rte_eth_iterator_next(&it);
  if (port == RTE_MAX_ETHPORTS) return std::nullopt;  // the iterator cleaned up after itself
  rte_eth_iterator_cleanup(&it);
  return port;
}

std::string portName(std::uint16_t port) {
  char name[RTE_ETH_NAME_MAX_LEN] = {};
  if (rte_eth_dev_get_name_by_port(port, name) != 0) return "port " + std::to_string(port);
  return name;
}

rte_mempool* flowPool() {
  if (rte_mempool* p = rte_mempool_lookup(kPoolName)) return p;
  return rte_pktmbuf_pool_create(kPoolName, kPoolMbufs, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                 static_cast<int>(rte_socket_id()));
}

Error deviceError(int ret, const rte_flow_error& e, std::string field, const char* call,
                  std::uint16_t port) {
  const int err = ret < 0 ? -ret : ret;
  std::string message = e.message && *e.message ? e.message : std::strerror(err);
  message += " (" + std::string(call) + " on port " + std::to_string(port) + ")";
  return makeError(errorCodeFromErrno(err), std::move(field), "", std::move(message));
}

}  // namespace

DpdkFlowConfig DpdkFlowConfig::fromHost(const model::HostConfig& host) {
  DpdkFlowConfig c;
  c.pf_devargs = host.dpdk_pf_devargs;
  c.uplink_port_id = host.uplink_port_id;
  c.first_representor_port_id = host.first_representor_port_id;
  c.vf_count = host.vf_count;
  return c;
}

Result<SwitchPorts> discoverPorts(const DpdkFlowConfig& config, std::vector<std::string>* notes) {
  SwitchPorts ports;
  ports.vf.resize(config.vf_count);
  if (!config.pf_devargs.empty()) {
    const std::string device = config.pf_devargs.substr(0, config.pf_devargs.find(','));
    auto pf = firstMatching(device);
    if (!pf)
      return makeError(
          ErrorCode::kNotFound, "dpdk.pf_devargs", config.pf_devargs,
          "no ethdev port for " + device +
              ": the EAL did not probe it (is it bound to its driver and allowed with -a?)");
    ports.uplink = *pf;
    for (std::uint16_t n = 0; n < config.vf_count; ++n)
      ports.vf[n] = firstMatching(device + ",representor=vf" + std::to_string(n));
  } else {
    if (!rte_eth_dev_is_valid_port(config.uplink_port_id))
      return makeError(ErrorCode::kNotFound, "dpdk.uplink_port_id",
                       std::to_string(config.uplink_port_id),
                       "no ethdev port " + std::to_string(config.uplink_port_id) + " (" +
                           std::to_string(rte_eth_dev_count_avail()) + " ports available)");
    ports.uplink = config.uplink_port_id;
    for (std::uint16_t n = 0; n < config.vf_count; ++n) {
      const unsigned id = config.first_representor_port_id + n;
      if (id < RTE_MAX_ETHPORTS && rte_eth_dev_is_valid_port(static_cast<std::uint16_t>(id)))
        ports.vf[n] = static_cast<std::uint16_t>(id);
    }
  }
  rte_flow_error err{};
  std::uint16_t proxy = ports.uplink;
  if (const int rc = rte_flow_pick_transfer_proxy(ports.uplink, &proxy, &err); rc != 0) {
    proxy = ports.uplink;  // a port without flow support: rules on it will be refused anyway
    if (notes)
      notes->push_back("port " + std::to_string(ports.uplink) + " (" + portName(ports.uplink) +
                       "): no transfer proxy (" + (err.message ? err.message : std::strerror(-rc)) +
                       "); rules go to the port itself");
  }
  ports.proxy = proxy;
  return ports;
}

Result<std::unique_ptr<DpdkFlowBackend>> DpdkFlowBackend::open(const DpdkFlowConfig& config,
                                                               const model::HwProfile& profile) {
  std::unique_ptr<DpdkFlowBackend> b(new DpdkFlowBackend());
  b->config_ = config;
  auto ports = discoverPorts(config, &b->notes_);
  if (!ports) return ports.error();
  b->ports_ = std::move(ports).value();

  auto& caps = b->caps_;
  caps = flowrules::FlowBackendCapabilities::fromProfile(profile);
  caps.backend = "dpdk";
  caps.device = config.pf_devargs.empty() ? portName(b->ports_.uplink) : config.pf_devargs;
  caps.vf_count = static_cast<std::uint16_t>(std::count_if(
      b->ports_.vf.begin(), b->ports_.vf.end(), [](const auto& p) { return p.has_value(); }));
  caps.enforced = false;

  if (config.start_ports) {
    if (!flowPool())
      return makeError(ErrorCode::kIo, "dpdk", "",
                       std::string("cannot create the mbuf pool: ") + rte_strerror(rte_errno));
    std::vector<std::uint16_t> todo{b->ports_.proxy, b->ports_.uplink};
    for (const auto& p : b->ports_.vf)
      if (p) todo.push_back(*p);
    std::sort(todo.begin(), todo.end());
    todo.erase(std::unique(todo.begin(), todo.end()), todo.end());
    for (auto p : todo) b->startPort(p);
  }
  return b;
}

void DpdkFlowBackend::startPort(std::uint16_t port) {
  const std::string who = "port " + std::to_string(port) + " (" + portName(port) + ")";
  rte_flow_error err{};
  // Isolated mode: the port's queues get only what rules send there; all
  // else stays with the kernel (bifurcated driver). Must precede configure.
  if (const int rc = rte_flow_isolate(port, 1, &err); rc != 0)
    notes_.push_back(who +
                     ": rte_flow_isolate: " + (err.message ? err.message : std::strerror(-rc)));
  rte_eth_conf conf{};
  if (const int rc = rte_eth_dev_configure(port, 1, 1, &conf); rc != 0) {
    notes_.push_back(who + ": left as it is (rte_eth_dev_configure: " + std::strerror(-rc) + ")");
    return;
  }
  const int socket = rte_eth_dev_socket_id(port);
  const unsigned s = socket < 0 ? SOCKET_ID_ANY : static_cast<unsigned>(socket);
  int rc = rte_eth_rx_queue_setup(port, 0, kQueueDescriptors, s, nullptr, flowPool());
  if (rc == 0) rc = rte_eth_tx_queue_setup(port, 0, kQueueDescriptors, s, nullptr);
  if (rc == 0) rc = rte_eth_dev_start(port);
  if (rc != 0) {
    notes_.push_back(who + ": not started: " + std::strerror(-rc));
    return;
  }
  started_.push_back(port);
}

DpdkFlowBackend::~DpdkFlowBackend() {
  rte_flow_error err{};
  for (auto& [h, f] : flows_) rte_flow_destroy(ports_.proxy, f.flow, &err);
  for (auto p : started_) rte_eth_dev_stop(p);
}

Status DpdkFlowBackend::validate(const fr::FlowRule& rule) {
  auto t = translate(rule, ports_);
  if (!t) return t.error();
  rte_flow_error err{};
  const int rc = rte_flow_validate(ports_.proxy, &t->attr(), t->pattern(), t->actions(), &err);
  if (rc != 0) return flowError(rc, err, rule, &*t, "rte_flow_validate", ports_.proxy);
  return Status::success();
}

Result<fr::FlowHandle> DpdkFlowBackend::create(const fr::FlowRule& rule) {
  auto t = translate(rule, ports_);
  if (!t) return t.error();
  rte_flow_error err{};
  rte_errno = 0;
  rte_flow* flow = rte_flow_create(ports_.proxy, &t->attr(), t->pattern(), t->actions(), &err);
  if (!flow)
    return flowError(-(rte_errno ? rte_errno : EINVAL), err, rule, &*t, "rte_flow_create",
                     ports_.proxy);
  const fr::FlowHandle h = next_handle_++;
  flows_.emplace(h, Installed{flow, rule, t->countAction() != nullptr});
  return h;
}

Status DpdkFlowBackend::destroy(fr::FlowHandle handle) {
  auto it = flows_.find(handle);
  if (it == flows_.end())
    return makeError(ErrorCode::kNotFound, "handle", std::to_string(handle),
                     "no rule with handle " + std::to_string(handle) + " on " + caps_.device);
  rte_flow_error err{};
  if (const int rc = rte_flow_destroy(ports_.proxy, it->second.flow, &err); rc != 0)
    return deviceError(rc, err, fr::formatRuleId(it->second.rule.cls, it->second.rule.id),
                       "rte_flow_destroy", ports_.proxy);
  flows_.erase(it);
  return Status::success();
}

Result<fr::FlowCounters> DpdkFlowBackend::query(fr::FlowHandle handle) {
  auto it = flows_.find(handle);
  if (it == flows_.end())
    return makeError(ErrorCode::kNotFound, "handle", std::to_string(handle),
                     "no rule with handle " + std::to_string(handle) + " on " + caps_.device);
  const auto& f = it->second;
  const std::string id = fr::formatRuleId(f.rule.cls, f.rule.id);
  if (!f.counted)
    return makeError(ErrorCode::kUnsupported, id + ".actions", "count",
                     "the rule has no count action");
  rte_flow_action count[2]{};
  count[0].type = RTE_FLOW_ACTION_TYPE_COUNT;
  count[1].type = RTE_FLOW_ACTION_TYPE_END;
  rte_flow_query_count q{};
  rte_flow_error err{};
  if (const int rc = rte_flow_query(ports_.proxy, f.flow, count, &q, &err); rc != 0)
    return deviceError(rc, err, id, "rte_flow_query", ports_.proxy);
  fr::FlowCounters c;
  if (q.hits_set) c.hits = q.hits;
  if (q.bytes_set) c.bytes = q.bytes;
  return c;
}

Status DpdkFlowBackend::flush() {
  rte_flow_error err{};
  const int rc = rte_flow_flush(ports_.proxy, &err);
  if (rc == -ENOSYS && flows_.empty())
    return Status::success();  // no flow support: nothing can be there
  if (rc != 0)
    return deviceError(rc, err, "port " + std::to_string(ports_.proxy), "rte_flow_flush",
                       ports_.proxy);
  flows_.clear();
  return Status::success();
}

}  // namespace nicoffload::dpdk
