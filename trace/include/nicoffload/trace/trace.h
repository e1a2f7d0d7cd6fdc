// Packet trace (`nicoffloadctl trace`): where one packet goes on this host,
// step by step. First through the flow rules the device holds, group by
// group, with the evaluator of the simulated NIC (simnic/evaluator.h) run on the
// rule IR with the placement in effect, whatever the backend; then, where the
// hardware hands the packet to a representor (a miss, a rule placed in
// software, the ARP trap), through the kernel software path: a route lookup
// as for a packet received on that representor, proxy ARP, the neighbour and
// (VXLAN) FDB entries. Pure: the kernel is asked through KernelView, which
// the daemon implements over rtnetlink in the software path's namespace
// (offload/kernel_trace.h) and tests may fake. Read-only: nothing is changed.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/flowrules/rule.h"
#include "nicoffload/model/intent.h"
#include "nicoffload/simnic/evaluator.h"
#include "nicoffload/simnic/packet.h"

namespace nicoffload::trace {

// The packet spec's fields (JSON keys of the "trace" op's "packet" object and,
// with '-' for '_', the CLI's options). Only `in` and the destination
// (dst_ip, or tpa for ARP) are required; the rest defaults from the port.
//   in            "uplink", a port "<vm uuid>/<nic>", its representor name, or "vf<N>"
//   src_mac dst_mac ethertype ("ipv4", "arp" or a number such as "0x86dd")
//   src_ip dst_ip proto ("udp", "tcp", "icmp") src_port dst_port ttl payload
//   arp_op ("request", "reply") spa tpa          (ethertype arp)
//   vni outer_src_ip outer_dst_ip outer_src_mac outer_dst_mac vxlan_port
//                  (a VXLAN packet: the fields above are the inner packet)
inline constexpr const char* kTraceSpecKeys[] = {
    "in",           "src_mac",      "dst_mac",       "ethertype",     "src_ip",
    "dst_ip",       "proto",        "src_port",      "dst_port",      "ttl",
    "payload",      "arp_op",       "spa",           "tpa",           "vni",
    "outer_src_ip", "outer_dst_ip", "outer_src_mac", "outer_dst_mac", "vxlan_port"};

// A packet spec resolved against the intent.
struct TraceInput {
  std::string in;                      // as given
  simnic::PortRef ingress;             // the switch port it enters from
  std::optional<model::PortKey> port;  // the VM port, for a VF
  std::string representor;             // the netdev the kernel sees it on ("" = none known)
  simnic::Packet packet;
};

// Parses and validates a packet spec. Errors (field = the spec key, value =
// what was given): kMissingField (in, dst_ip/tpa, src_ip from the uplink,
// outer_src_ip), kWrongType, kUnknownField, kInvalidValue (bad MAC, bad IPv4,
// port or TTL or VNI out of range, unknown proto or ethertype), kNotFound (no
// such port or VF on this host).
Result<TraceInput> parseTraceSpec(const nlohmann::json& spec, const model::Intent& intent);

// One rule the device (or the software path) holds, with the placement in
// effect and why it sits there (the daemon's describeApplied()).
struct TraceRule {
  flowrules::FlowRule rule;  // placement and reason: in effect
  std::string reason;        // human text
  flowrules::FlowHandle handle = flowrules::kNoHandle;
};

// --- the kernel, as the trace asks it ---

// What RTM_GETROUTE answers for a packet received on a device
// (ip_route_input: forwarding, reverse-path filtering and local addresses
// included).
struct KernelRoute {
  enum class Type : std::uint8_t {
    kUnicast,
    kLocal,
    kBroadcast,
    kUnreachable,
    kBlackhole,
    kProhibit,
    kOther
  };
  Type type = Type::kOther;
  std::string dev;                  // output device (kUnicast)
  std::optional<IpAddr> gateway;    // RTA_GATEWAY or RTA_VIA; empty: directly connected
  int error = 0;                    // errno the kernel answered instead of a route (0: a route)
};
const char* toString(KernelRoute::Type type);

struct KernelNeighbour {
  MacAddr mac;
  std::string state;  // "permanent", "reachable", "stale", "incomplete", ...
};

class KernelView {
 public:
  virtual ~KernelView() = default;
  // Where the lookups run ("network namespace hv1").
  virtual std::string where() const = 0;
  // The route for a packet dst<-src received on `iif` (RTA_IIF), IPv4 or
  // IPv6 (dst and src of one family). Errors: kNotFound when `iif` does not
  // exist; kIo for netlink failures. The kernel refusing the lookup is not
  // an error: KernelRoute::error.
  virtual Result<KernelRoute> routeInput(IpAddr dst, IpAddr src, const std::string& iif) const = 0;
  // Whether proxy ARP is on for `dev`: net.ipv4.conf.all or .<dev>.proxy_arp
  // (the kernel ORs them, IN_DEV_PROXY_ARP). Errors: kNotFound, kIo.
  virtual Result<bool> proxyArp(const std::string& dev) const = 0;
  // The neighbour entry of `ip` (ARP or NDP) on `dev`; nullopt when there is none.
  virtual Result<std::optional<KernelNeighbour>> neighbour(const std::string& dev,
                                                           IpAddr ip) const = 0;
  // The remote VTEPs the FDB of VXLAN device `dev` holds for `mac`.
  virtual Result<std::vector<IpAddr>> fdb(const std::string& dev, MacAddr mac) const = 0;
  // The MAC of `dev`; nullopt when there is no such device.
  virtual Result<std::optional<MacAddr>> linkMac(const std::string& dev) const = 0;
};

struct TraceContext {
  const model::Intent* intent = nullptr;  // host config and ports (required)
  std::string backend;                    // "sim" or "dpdk": shown
  std::uint32_t max_jumps = 16;           // the profile's max_groups
  const KernelView* kernel = nullptr;     // null: the kernel part is skipped (no software path)
  std::string kernel_unavailable;         // why, when kernel is null
};

// The trace of `input` through `rules` (any order: sorted here by id, the
// tie-break order of a priority tie, which the planner never emits) and
// then the kernel. The reply of the "trace" op; its shape is in docs/control-api.md.
// Errors: kInternal when the rules jump in a loop.
Result<nlohmann::json> tracePacket(const TraceInput& input, const std::vector<TraceRule>& rules,
                                   const TraceContext& context);

// The trace as text lines for a terminal (nicoffloadctl trace without --json).
std::vector<std::string> traceText(const nlohmann::json& trace);

}  // namespace nicoffload::trace
