// The host's network intent: host config, ports (one per VM NIC) and remote
// endpoints. Pure data; parsing and validation live in model/parse.h.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nicoffload/common/net_types.h"

namespace nicoffload::model {

enum class UnderlayMode : std::uint8_t {
  kRouted,  // pure L3 underlay: remote /32s via an underlay next hop
  kVxlan,   // overlay: remote /32s behind remote VTEPs (RFC 7348)
};

enum class FlowBackendKind : std::uint8_t { kSim, kDpdk };
enum class SoftwarePathKind : std::uint8_t { kKernel, kNone };
enum class VdpaKind : std::uint8_t { kNone, kKernel, kDpdk, kSim };
enum class NicBackendKind : std::uint8_t { kSim, kSysfs };

// An underlay neighbour whose MAC the hardware rules may write as the
// destination MAC of routed (or encapsulated) packets.
struct UnderlayNextHop {
  IpAddr address;  // host.json "ipv4" or "ipv6" (an IPv6 remote's next hop)
  MacAddr mac;
  // The uplink the neighbour is on: an index into HostConfig's uplinks (0:
  // the first, the one with the VFs; 1: HostConfig::uplink2).
  std::uint8_t uplink = 0;
};

// The second uplink PF of a dual-homed host (host.json uplinks[1], issue
// 23): a second link to a second top-of-rack switch, no bonding, ECMP by
// the routing daemon. It has no VFs of nicoffload's: the VMs' VFs are on
// the first uplink's PF. Routed underlay only.
struct SecondUplink {
  std::string pci;     // its PF, "0000:03:00.1"
  std::string netdev;  // its kernel netdev; required (routes and the route watcher use it)
  MacAddr mac;         // source MAC of packets sent out of it
  // DPDK ethdev port id of this PF (rendering, and the DPDK backend's
  // rules when the profile has a multiport eswitch).
  std::uint16_t port_id = 0;
};

struct HostConfig {
  std::string name;                  // hypervisor name, for logs and ids
  std::string uplink_pci;            // PCI address of the uplink PF, "0000:03:00.0"
  std::string uplink_netdev;         // kernel netdev of the uplink (software path); may be empty
  // host.json uplinks[1]: a second uplink; unset on a single-homed host.
  std::optional<SecondUplink> uplink2;
  std::size_t uplinkCount() const { return uplink2 ? 2 : 1; }
  // Uplink `i`'s netdev and MAC (0: the first; 1: uplink2, which must be set).
  const std::string& uplinkNetdev(std::size_t i) const {
    return i == 0 ? uplink_netdev : uplink2->netdev;
  }
  const MacAddr& uplinkMac(std::size_t i) const { return i == 0 ? uplink_mac : uplink2->mac; }
  std::uint16_t vf_count = 0;        // SR-IOV VFs to create on the PF
  std::string hw_profile = "sim";    // profile name in hw-profiles/, a path, or "auto"

  Ipv4Addr gateway_ipv4;             // gateway address every VM uses (e.g. 169.254.1.1)
  MacAddr gateway_mac;               // MAC the VMs see for the gateway
  // gateway.ipv6: the IPv6 gateway every VM uses, a link-local address
  // (fe80::1 by convention) answered on every representor with gateway_mac.
  // Unset: IPv6 is off on this host, and a port with an IPv6 address is
  // refused (the kernel path would need IPv6 forwarding, which also stops
  // the host from taking router advertisements on its own links).
  std::optional<Ipv6Addr> gateway_ipv6;
  // gateway.router_advertisements: with gateway_ipv6 and the kernel software
  // path, nicoffloadd advertises the gateway as the VMs' default router on
  // every representor that answers for it (offload/router_advertiser.h).
  struct RouterAdvertisements {
    bool enabled = true;
    std::uint16_t interval_s = 200;   // unsolicited, per representor (4..1800)
    std::uint16_t lifetime_s = 1800;  // router lifetime (0, or interval..9000)
  } router_advertisements;

  UnderlayMode underlay = UnderlayMode::kRouted;
  MacAddr uplink_mac;                // source MAC of packets sent to the underlay
  std::vector<UnderlayNextHop> next_hops;      // known underlay neighbours
  // Next hop for remotes that name none: routed, an IPv4 address; VXLAN,
  // the underlay router towards the remote VTEPs, of the VTEP's family.
  std::optional<IpAddr> default_next_hop;
  // underlay.vtep: the local VTEP (VXLAN underlay), IPv4 or IPv6 (VXLAN over
  // an IPv6 underlay, where the profile allows it). Every remote VTEP is of
  // the same family: a Linux VXLAN device has one.
  std::optional<IpAddr> vtep;
  std::uint16_t vxlan_udp_port = 4789;         // IANA VXLAN port (RFC 7348 §5)
  std::optional<std::uint32_t> default_vni;    // VNI for ports that name none (24 bits)

  std::uint8_t route_protocol = 240;  // rtm_protocol of the kernel routes we install
  std::uint32_t route_table = 254;    // kernel routing table (254 = main)

  // Routes learned from the kernel (issue 13, routed underlay only): the /32
  // routes a routing daemon (FRR, BIRD, ...) installs in route_table through
  // a next hop on the uplink become remote endpoints, and the underlay next
  // hops' MACs come from the kernel's neighbour table (next_hops[].mac, when
  // given, overrides it). Off by default.
  bool learn_routes = false;
  // The rtm_protocol values whose routes count (rtnetlink.h RTPROT_*, e.g.
  // 186 bgp, 188 ospf); empty = any but the kernel's own (0-2) and ours
  // (route_protocol), which never counts.
  std::vector<std::uint8_t> learn_protocols;
  // kernel.learn_prefixes: which learned /32s may become remotes. A route is
  // learned when its address lies in one of `allow` (empty: any) and in none
  // of `deny` (deny wins). An underlay loopback (a switch's router id
  // announced in the same BGP session) is kept out with a deny entry.
  std::vector<Ipv4Prefix> learn_allow;
  std::vector<Ipv4Prefix> learn_deny;

  FlowBackendKind flow_backend = FlowBackendKind::kSim;
  SoftwarePathKind software_path = SoftwarePathKind::kKernel;
  VdpaKind vdpa_backend = VdpaKind::kSim;
  NicBackendKind nic_backend = NicBackendKind::kSim;

  // vdpa.pool: vDPA devices made ahead on free VFs, so that a new port
  // claims one (its MAC is set) instead of waiting for a device to be
  // created. size 0 = no pool (every device is created on demand). When
  // fewer than low_water devices are ready, the daemon makes more in the
  // background, up to size. Pool devices have MTU pool_mtu and one
  // virtqueue pair: a port asking for another MTU or more queues gets a
  // device created for it.
  std::uint16_t vdpa_pool_size = 0;
  std::uint16_t vdpa_pool_low_water = 0;
  std::uint16_t vdpa_pool_mtu = 1500;  // bytes
  // Where nicoffloadd keeps one stable link per port to the port's vDPA
  // device (/dev/vhost-vdpa-N or the vhost-user socket): the name a domain
  // definition can use before the device exists ("<dir>/<nfo + 12 hex>").
  // Empty: "vdpa" beside the control socket (/run/nicoffload/vdpa).
  std::string vdpa_link_dir;

  // DPDK ethdev port numbering, used to render rules for testpmd and by the
  // DPDK backend: the PF (uplink) port and the port of representor vf0; vfN
  // is first_representor_port_id + N (the order of "representor=vf[0-N]").
  std::uint16_t uplink_port_id = 0;
  std::uint16_t first_representor_port_id = 1;
  // DPDK flow backend (backends.flow = "dpdk"). Extra EAL arguments, after
  // the program name and before "-a <dpdk_pf_devargs>", e.g. {"-l", "0",
  // "--file-prefix", "nicoffload"}.
  std::vector<std::string> dpdk_eal_args;
  // The uplink PF's devargs, passed to the EAL as "-a": its PCI address (or
  // a vdev name), the representors, driver options, e.g.
  // "0000:03:00.0,representor=vf[0-15],dv_flow_en=1". When set, the PF port
  // and the port of each representor are found from it (rte_eth_iterator);
  // when empty, uplink_port_id and first_representor_port_id number them.
  std::string dpdk_pf_devargs;

  std::string socket_path = "/run/nicoffload/nicoffloadd.sock";
  std::string state_dir = "/var/lib/nicoffload";

  // The network namespace the software path programs (a name under
  // /run/netns); empty = the daemon's own.
  std::string kernel_netns;

  // Daemon settings.
  std::string metrics_listen = "127.0.0.1:9478";  // Prometheus /metrics on loopback; "" = off
  std::uint32_t reconcile_interval_ms = 30000;    // periodic full pass
  // The state journal's size that triggers a snapshot (compaction).
  std::uint64_t journal_compact_bytes = 64ull << 20;
  std::uint32_t max_request_bytes = 16 << 20;     // control API request size limit (a 100 k remote.sync is ~6 MiB)
  // How long a tentative port (port.add "tentative": the hook's `migrate`)
  // lives unconfirmed before nicoffloadd removes it: libvirt skips
  // stopped/release when an incoming migration fails before QEMU starts.
  // Milliseconds, 1 s .. 1 day.
  std::uint32_t tentative_ttl_ms = 300000;
  // How often nicoffloadd reads the per-port traffic counters (the hardware
  // rules' COUNT and the representors' netdev counters); 0 = never (the
  // `traffic` op with "refresh" still reads them). Milliseconds, 100 .. 1 day.
  std::uint32_t traffic_interval_ms = 10000;
  // Where the simulated NIC keeps its rules, like a device keeps them while
  // the controller restarts (tmpfs: gone at reboot, as on real hardware).
  std::string sim_device_dir = "/run/nicoffload/simnic";
};

// Identity of a port: the VM (libvirt domain UUID) and the index of the NIC in
// the domain's interface list.
struct PortKey {
  std::string vm;          // RFC 4122 UUID, lower case
  std::uint16_t nic = 0;

  std::string str() const { return vm + "/" + std::to_string(nic); }
  auto operator<=>(const PortKey&) const = default;
};

struct Port {
  PortKey key;
  MacAddr mac;                           // the guest's MAC
  std::vector<Ipv4Addr> addresses;       // each a /32 host route
  std::vector<Ipv6Addr> addresses6;      // each a /128 host route (host gateway_ipv6 set)
  std::uint16_t mtu = 1500;              // bytes, L3 MTU of the guest NIC
  std::uint16_t queues = 1;              // virtqueue pairs
  std::optional<std::uint32_t> vni;      // VXLAN network identifier (24 bits)
  std::optional<std::uint16_t> vf;       // VF index on the uplink PF
  std::string representor;               // representor netdev; empty = "pf0vf<vf>"
  std::optional<VdpaKind> vdpa;          // vDPA flavour; unset = host default
  // Set while the port is a tentative claim (a port.add with "tentative":
  // the libvirt hook's `migrate`): when it passes unconfirmed (no port.add
  // without "tentative" came), nicoffloadd removes the port. Milliseconds
  // since the Unix epoch (CLOCK_REALTIME), so that it means the same after
  // a restart or a reboot; set by nicoffloadd only, never by a request.
  std::optional<std::int64_t> tentative_until_ms;

  // The representor netdev name used by the software path.
  std::string representorName() const {
    if (!representor.empty()) return representor;
    return vf ? "pf0vf" + std::to_string(*vf) : std::string();
  }
};

// Another hypervisor's VM address, learned from FRR's kernel routes or config.
struct RemoteEndpoint {
  IpAddr address;  // the remote VM's /32 or /128
  // Routed underlay: the underlay next hop. Of the address's family when
  // given through the API (the kernel routes a /128 only through an IPv6
  // gateway); a learned route may name either (RFC 5549).
  std::optional<IpAddr> next_hop;
  std::optional<IpAddr> vtep;            // VXLAN underlay: remote VTEP (underlay.vtep's family)
  std::optional<std::uint32_t> vni;      // VXLAN underlay: VNI
  // Who declared it: "api" (remote.add, the default) or the origin a
  // remote.sync names (an external controller's set, replaced as a whole).
  std::string origin = kDefaultRemoteOrigin;

  static constexpr const char* kDefaultRemoteOrigin = "api";
  // Origins of remotes learned from the kernel's routing table start with
  // this ("kernel:bgp"): the kernel is their source, so they are neither
  // persisted nor programmed as kernel routes (the route is already there).
  static constexpr const char* kKernelOriginPrefix = "kernel:";
  bool learned() const { return origin.rfind(kKernelOriginPrefix, 0) == 0; }
};

struct Intent {
  HostConfig host;
  std::vector<Port> ports;
  std::vector<RemoteEndpoint> remotes;
};

// The part of a VTEP's address its router MAC is made of
// (flowrules::routerMacForVtep: 02:00 + these 32 bits): the last four bytes
// (all of an IPv4 address). Two IPv6 VTEPs with the same key are refused.
inline std::uint32_t routerMacKey(const IpAddr& vtep) {
  const auto& b = vtep.v6().bytes;
  return (std::uint32_t{b[12]} << 24) | (std::uint32_t{b[13]} << 16) | (std::uint32_t{b[14]} << 8) |
         b[15];
}
// The router MAC itself: 02:00 + routerMacKey (locally administered, unicast).
inline MacAddr routerMac(const IpAddr& vtep) {
  const auto& b = vtep.v6().bytes;  // v4-mapped for IPv4: bytes 12..15 are the address
  MacAddr m;
  m.bytes = {0x02, 0x00, b[12], b[13], b[14], b[15]};
  return m;
}

const char* toString(UnderlayMode mode);
const char* toString(VdpaKind kind);
const char* toString(FlowBackendKind kind);
const char* toString(SoftwarePathKind kind);
const char* toString(NicBackendKind kind);

}  // namespace nicoffload::model
