#include "nicoffload/flowrules/port_traffic.h"

#include <algorithm>
#include <unordered_set>

namespace nicoffload::flowrules {

const char* toString(TrafficRole role) {
  switch (role) {
    case TrafficRole::kRx: return "rx";
    case TrafficRole::kTx: return "tx";
    case TrafficRole::kTxDropped: return "tx_dropped";
  }
  return "?";
}

namespace {

template <class A>
bool hasAction(const FlowRule& r) {
  return std::any_of(r.actions.begin(), r.actions.end(),
                     [](const FlowAction& a) { return std::holds_alternative<A>(a); });
}

bool toVf(const FlowRule& r) {
  return std::any_of(r.actions.begin(), r.actions.end(), [](const FlowAction& a) {
    const auto* to = std::get_if<RepresentedPortAction>(&a);
    return to && to->port.kind == PortRef::Kind::kVf;
  });
}

}  // namespace

std::optional<TrafficRole> trafficRole(const FlowRule& rule) {
  if (!hasAction<CountAction>(rule)) return std::nullopt;  // nothing to read (a device without COUNT)
  switch (rule.cls) {
    case RuleClass::kLocalDelivery:
      if (toVf(rule)) return TrafficRole::kRx;
      return std::nullopt;  // the uplink's entry rule: the host's, not a port's
    case RuleClass::kAntiSpoofing:
      if (hasAction<DropAction>(rule)) return TrafficRole::kTxDropped;
      if (hasAction<JumpAction>(rule)) return TrafficRole::kTx;
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

void PortTrafficBook::record(OwnerId port, const PortTrafficReading& reading) {
  PortState& p = ports_[port];
  const std::uint64_t epoch = ++p.epoch;
  for (const auto& r : reading.rules) {
    auto [it, fresh] = p.rules.try_emplace(r.id, RuleState{r.role, {}, epoch});
    RuleState& s = it->second;
    s.seen = epoch;
    if (!fresh && s.role != r.role) {  // the same id in another role: a new rule
      p.gone[static_cast<std::size_t>(s.role)] += TrafficCount{s.last.hits, s.last.bytes};
      s = RuleState{r.role, {}, epoch};
    }
    auto& g = p.gone[static_cast<std::size_t>(r.role)];
    if (r.counters.hits < s.last.hits || r.counters.bytes < s.last.bytes) {
      g.packets += s.last.hits;
      g.bytes += s.last.bytes;
    }
    s.last = r.counters;
  }
  if (p.rules.size() != reading.rules.size()) {
    for (auto it = p.rules.begin(); it != p.rules.end();) {
      if (it->second.seen == epoch) {
        ++it;
        continue;
      }
      auto& g = p.gone[static_cast<std::size_t>(it->second.role)];
      g += TrafficCount{it->second.last.hits, it->second.last.bytes};
      it = p.rules.erase(it);
    }
  }
  if (reading.representor) {
    const LinkTraffic& now = *reading.representor;
    if (p.link_last) {
      const LinkTraffic& last = *p.link_last;
      // The netdev made again: all four counters start over together.
      if (now.rx_packets < last.rx_packets || now.tx_packets < last.tx_packets ||
          now.rx_bytes < last.rx_bytes || now.tx_bytes < last.tx_bytes) {
        p.link_gone.rx_packets += last.rx_packets;
        p.link_gone.rx_bytes += last.rx_bytes;
        p.link_gone.tx_packets += last.tx_packets;
        p.link_gone.tx_bytes += last.tx_bytes;
      }
    }
    p.link_last = now;
  }
  // A representor not found this time keeps its last figures (and if it
  // comes back made anew, the reset above carries them).
  p.totals.rules_read = static_cast<std::uint32_t>(reading.rules.size());
  p.totals.representor_read = reading.representor.has_value();
  recompute(p);
}

void PortTrafficBook::recompute(PortState& p) {
  std::array<TrafficCount, kTrafficRoleCount> sum = p.gone;
  for (const auto& [id, s] : p.rules)
    sum[static_cast<std::size_t>(s.role)] += TrafficCount{s.last.hits, s.last.bytes};
  p.totals.rx_hw = sum[static_cast<std::size_t>(TrafficRole::kRx)];
  p.totals.tx_hw = sum[static_cast<std::size_t>(TrafficRole::kTx)];
  p.totals.tx_dropped = sum[static_cast<std::size_t>(TrafficRole::kTxDropped)];
  const LinkTraffic link = p.link_last.value_or(LinkTraffic{});
  // The representor seen from the kernel: its rx came from the VF (the
  // VM's tx), its tx went to the VF (the VM's rx).
  p.totals.rx_sw = {p.link_gone.tx_packets + link.tx_packets, p.link_gone.tx_bytes + link.tx_bytes};
  p.totals.tx_sw = {p.link_gone.rx_packets + link.rx_packets, p.link_gone.rx_bytes + link.rx_bytes};
}

void PortTrafficBook::retainOnly(std::span<const OwnerId> ports) {
  const std::unordered_set<OwnerId> keep(ports.begin(), ports.end());
  for (auto it = ports_.begin(); it != ports_.end();)
    it = keep.count(it->first) ? std::next(it) : ports_.erase(it);
}

void PortTrafficBook::forget(OwnerId port) { ports_.erase(port); }

const PortTraffic* PortTrafficBook::find(OwnerId port) const {
  auto it = ports_.find(port);
  return it == ports_.end() ? nullptr : &it->second.totals;
}

}  // namespace nicoffload::flowrules
