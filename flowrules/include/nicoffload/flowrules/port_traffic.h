// Per-port traffic figures from the hardware's COUNT actions and the
// representor's netdev counters (issue 23, part 3). Pure: the daemon reads
// the device and the kernel, and hands the readings to PortTrafficBook,
// which keeps totals that only grow.
//
// Where a port's packets are counted:
//   rx (towards the VM)  hw: the port's local-delivery rules (the NIC
//                            delivered the packet to the VF itself);
//                        sw: the representor's tx (the kernel sent it).
//                        A packet is counted in one of the two: rx total
//                        is hw + sw.
//   tx (from the VM)     hw: the port's anti-spoofing allow rules (the NIC
//                            accepted the packet from the VF);
//                        sw: the representor's rx (it reached the kernel:
//                            ARP, and whatever missed in hardware).
//                        A packet the NIC accepted but had no rule to
//                        forward (its destination's rule sits in sw) is in
//                        both; `tx.hw` is what the NIC took in, `tx.sw` what
//                        the kernel carried.
//   tx_dropped           hw: the port's anti-spoofing drop rules (a spoofed
//                            source address or MAC).
// The ARP trap's counter is left out: every packet it matches reaches the
// representor and is in tx.sw.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "nicoffload/flowrules/flow_backend.h"
#include "nicoffload/flowrules/rule.h"

namespace nicoffload::flowrules {

// What a rule's counter says about its port's traffic.
enum class TrafficRole : std::uint8_t { kRx, kTx, kTxDropped };
inline constexpr std::size_t kTrafficRoleCount = 3;
const char* toString(TrafficRole role);  // "rx", "tx", "tx_dropped"

// The role of a port's rule (as portRules() emits it); nullopt for rules
// whose counter says nothing of the port's own traffic (the ARP trap), for
// rules of other owners' classes, and for rules without a COUNT action (the
// profile's device has none).
std::optional<TrafficRole> trafficRole(const FlowRule& rule);

// A representor netdev's counters (rtnl_link_stats64), as the kernel keeps
// them: from the kernel's side, so rx is what the VF sent.
struct LinkTraffic {
  std::uint64_t rx_packets = 0;
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_packets = 0;
  std::uint64_t tx_bytes = 0;
  bool operator==(const LinkTraffic&) const = default;
};

struct TrafficCount {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  TrafficCount& operator+=(const TrafficCount& o) {
    packets += o.packets;
    bytes += o.bytes;
    return *this;
  }
  bool operator==(const TrafficCount&) const = default;
};

// A port's totals since the daemon started following it.
struct PortTraffic {
  TrafficCount rx_hw, rx_sw, tx_hw, tx_sw, tx_dropped;
  std::uint32_t rules_read = 0;     // hardware rules read in the last sweep
  bool representor_read = false;    // the representor's counters were found in the last sweep
  TrafficCount rx() const {
    TrafficCount t = rx_hw;
    t += rx_sw;
    return t;
  }
  bool operator==(const PortTraffic&) const = default;
};

// One sweep's readings of one port.
struct PortTrafficReading {
  struct Rule {
    RuleId id = 0;
    TrafficRole role = TrafficRole::kRx;
    FlowCounters counters;
  };
  std::vector<Rule> rules;                  // its hardware rules with a role
  std::optional<LinkTraffic> representor;   // nullopt: not found (no software path, no netdev)
};

// Totals per port that only grow (Prometheus counters), from readings that
// may go back to zero: a rule destroyed and created again (a vanished rule
// reinstalled, a move sw -> hw), a rule that leaves (an address removed, a
// move hw -> sw), a representor netdev made again. What a reading had
// counted before it went back, or before its rule left, stays in the total.
class PortTrafficBook {
 public:
  // Records one port's readings of a sweep. A rule the port had and
  // `reading` lacks has left: its last figures stay in the totals.
  void record(OwnerId port, const PortTrafficReading& reading);
  // Forgets every port not in `ports` (removed VMs), sorted or not.
  void retainOnly(std::span<const OwnerId> ports);
  void forget(OwnerId port);

  const PortTraffic* find(OwnerId port) const;
  std::size_t size() const { return ports_.size(); }

 private:
  struct RuleState {
    TrafficRole role = TrafficRole::kRx;
    FlowCounters last;
    std::uint64_t seen = 0;  // the port's epoch of the last reading that had it
  };
  struct PortState {
    PortTraffic totals;
    std::unordered_map<RuleId, RuleState> rules;
    std::array<TrafficCount, kTrafficRoleCount> gone{};  // from rules that left or reset
    std::optional<LinkTraffic> link_last;
    LinkTraffic link_gone;                               // from representor resets
    std::uint64_t epoch = 0;                             // readings recorded
  };
  static void recompute(PortState& p);
  std::unordered_map<OwnerId, PortState> ports_;
};

}  // namespace nicoffload::flowrules
