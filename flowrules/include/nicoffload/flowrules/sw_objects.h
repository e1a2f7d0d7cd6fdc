// The software path (Linux kernel) as data: what the kernel must hold so that
// traffic the hardware does not carry still flows. The planner emits these;
// the SoftwarePath backend (offload/) programs them over netlink.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "nicoffload/common/net_types.h"
#include "nicoffload/flowrules/rule.h"

namespace nicoffload::flowrules {

// A /proc/sys/net value, e.g. path "ipv4/conf/pf0vf3/proxy_arp", value "1".
struct SysctlSetting {
  std::string path;   // relative to /proc/sys/net/
  std::string value;
  OwnerId owner = 0;
  auto key() const { return std::tie(path); }
  auto state() const { return std::tie(path, value); }
  // Same object in the same state; `owner` is bookkeeping the kernel does not hold.
  bool operator==(const SysctlSetting& o) const { return state() == o.state(); }
};

// Settings of a netdev we do not create (a representor): MAC and state.
struct LinkSetting {
  std::string dev;
  MacAddr mac;        // the gateway MAC, so proxy-ARP answers carry it
  bool up = true;
  OwnerId owner = 0;
  auto key() const { return std::tie(dev); }
  auto state() const { return std::tie(dev, mac, up); }
  // Same object in the same state; `owner` is bookkeeping the kernel does not hold.
  bool operator==(const LinkSetting& o) const { return state() == o.state(); }
};

// An address on a local netdev (the gateway /32 on "lo").
struct AddressEntry {
  std::string dev;
  Ipv4Prefix prefix;
  OwnerId owner = 0;
  auto key() const { return std::tie(dev, prefix); }
  auto state() const { return std::tie(dev, prefix); }
  // Same object in the same state; `owner` is bookkeeping the kernel does not hold.
  bool operator==(const AddressEntry& o) const { return state() == o.state(); }
};

// An IPv4 route (rtnetlink RTM_NEWROUTE).
struct RouteEntry {
  Ipv4Prefix dst;                 // always a /32 here
  std::string dev;                // output device; may be empty for routed remotes
  // Gateway; empty = directly connected (scope link). An IPv6 gateway
  // (RTA_VIA, RFC 5549) for a remote behind an IPv6 VTEP: its link-local
  // stand-in on the VXLAN device (vtepGateway6).
  std::optional<IpAddr> via;
  bool onlink = false;            // RTNH_F_ONLINK: gateway reachable on dev without a subnet
  std::uint32_t table = 254;
  std::uint8_t protocol = 0;      // rtm_protocol, so FRR can `redistribute kernel`
  OwnerId owner = 0;
  auto key() const { return std::tie(table, dst); }
  auto state() const { return std::tie(dst, dev, via, onlink, table, protocol); }
  // Same object in the same state; `owner` is bookkeeping the kernel does not hold.
  bool operator==(const RouteEntry& o) const { return state() == o.state(); }
};

// A neighbour (ARP) entry (RTM_NEWNEIGH, NUD_PERMANENT).
struct NeighbourEntry {
  std::string dev;
  Ipv4Addr ip;
  MacAddr mac;
  OwnerId owner = 0;
  auto key() const { return std::tie(dev, ip); }
  auto state() const { return std::tie(dev, ip, mac); }
  // Same object in the same state; `owner` is bookkeeping the kernel does not hold.
  bool operator==(const NeighbourEntry& o) const { return state() == o.state(); }
};

// An IPv6 route (RTM_NEWROUTE AF_INET6): a VM's /128 on its representor.
struct Route6Entry {
  Ipv6Prefix dst;                 // a /128
  std::string dev;
  std::uint32_t table = 254;
  std::uint8_t protocol = 0;
  OwnerId owner = 0;
  // A remote's /128: its IPv6 gateway on `dev` (the kernel takes no IPv4
  // gateway for an IPv6 route); empty for a VM's /128 on its representor.
  std::optional<Ipv6Addr> via;
  bool onlink = false;  // RTNH_F_ONLINK
  auto key() const { return std::tie(table, dst); }
  auto state() const { return std::tie(dst, dev, via, onlink, table, protocol); }
  // Same object in the same state; `owner` is bookkeeping the kernel does not hold.
  bool operator==(const Route6Entry& o) const { return state() == o.state(); }
};

// An IPv6 neighbour (RTM_NEWNEIGH AF_INET6): a VM's /128 and its MAC,
// NUD_PERMANENT; or, with `proxy`, a proxy entry (NTF_PROXY, no MAC): the
// kernel answers neighbour solicitations for `ip` on `dev` with the device's
// MAC (ipv6/conf/<dev>/proxy_ndp): the gateway's fe80::1 on a representor.
struct Neighbour6Entry {
  std::string dev;
  Ipv6Addr ip;
  MacAddr mac;         // zero for a proxy entry
  bool proxy = false;
  OwnerId owner = 0;
  auto key() const { return std::tie(dev, proxy, ip); }
  auto state() const { return std::tie(dev, proxy, ip, mac); }
  // Same object in the same state; `owner` is bookkeeping the kernel does not hold.
  bool operator==(const Neighbour6Entry& o) const { return state() == o.state(); }
};

// An IPv6 source check on a representor (RTM_NEWRULE AF_INET6), what strict
// rp_filter does for IPv4 (IPv6 has none): a packet in from `iif` from one
// of the VM's /128s (`src`), or to a link-scoped destination (`dst`
// fe80::/10: neighbour discovery with the gateway's proxy), goes on to
// `table`; any other is dropped (`blackhole`, neither src nor dst). The
// kernel's local table (priority 0) comes first, so multicast neighbour
// discovery is never caught. Ours by `protocol`, like our routes.
struct Rule6Entry {
  std::string iif;
  std::uint32_t priority = 0;
  std::optional<Ipv6Prefix> src;
  std::optional<Ipv6Prefix> dst;
  bool blackhole = false;
  std::uint32_t table = 0;         // the table to look up; 0 for a blackhole
  std::uint8_t protocol = 0;
  OwnerId owner = 0;
  auto key() const { return std::tie(iif, priority, src, dst, blackhole); }
  auto state() const { return std::tie(iif, priority, src, dst, blackhole, table, protocol); }
  // Same object in the same state; `owner` is bookkeeping the kernel does not hold.
  bool operator==(const Rule6Entry& o) const { return state() == o.state(); }
};
// The priorities of the source-check rules: after the local table (0),
// before main (32766); an operator's own rules are left alone.
inline constexpr std::uint32_t kRule6AllowPriority = 20000;
inline constexpr std::uint32_t kRule6BlackholePriority = 20001;

// A VXLAN netdev (one per VNI), learning off. Over an IPv6 underlay it
// takes UDP packets with a zero checksum (udp6zerocsumrx): the hardware's
// encapsulation leaves it zero (DPDK mlx5 flow_dv_zero_encap_udp_csum), as
// RFC 6935 allows for tunnels; its own packets carry a checksum.
struct VxlanDevice {
  std::string name;           // vxlanDeviceName(vni): "nfo-vx<vni>"
  std::uint32_t vni = 0;
  IpAddr local;  // local VTEP, IPv4 or IPv6
  std::uint16_t dst_port = 4789;
  MacAddr mac;                // router MAC derived from the local VTEP
  std::string underlay_dev;   // optional lower device (the uplink)
  OwnerId owner = 0;
  auto key() const { return std::tie(name); }
  auto state() const { return std::tie(name, vni, local, dst_port, mac, underlay_dev); }
  // Same object in the same state; `owner` is bookkeeping the kernel does not hold.
  bool operator==(const VxlanDevice& o) const { return state() == o.state(); }
};

// A VXLAN FDB entry (bridge fdb append MAC dev vxlanN dst VTEP).
struct FdbEntry {
  std::string dev;
  MacAddr mac;
  IpAddr dst;  // remote VTEP (the device's family)
  OwnerId owner = 0;
  auto key() const { return std::tie(dev, mac, dst); }
  auto state() const { return std::tie(dev, mac, dst); }
  // Same object in the same state; `owner` is bookkeeping the kernel does not hold.
  bool operator==(const FdbEntry& o) const { return state() == o.state(); }
};

// Every kind sorted by key. Equality ignores `owner`: it is the planner's
// bookkeeping (which intent produced the object), not state the kernel keeps.
struct SoftwarePathState {
  std::vector<SysctlSetting> sysctls;
  std::vector<LinkSetting> links;
  std::vector<AddressEntry> addresses;
  std::vector<VxlanDevice> vxlan_devices;
  std::vector<FdbEntry> fdb;
  std::vector<NeighbourEntry> neighbours;
  std::vector<RouteEntry> routes;
  std::vector<Neighbour6Entry> neighbours6;  // IPv6 (gateway.ipv6 set)
  std::vector<Route6Entry> routes6;
  std::vector<Rule6Entry> rules6;

  std::size_t size() const {
    return sysctls.size() + links.size() + addresses.size() + vxlan_devices.size() + fdb.size() +
           neighbours.size() + routes.size() + neighbours6.size() + routes6.size() + rules6.size();
  }
};

// VXLAN devices nicoffload creates are named "nfo-vx<VNI>" (at most 14
// bytes): the prefix marks them as ours, so read-back and clean-up never
// touch a VXLAN device an operator made.
inline constexpr const char* kVxlanDevicePrefix = "nfo-vx";
std::string vxlanDeviceName(std::uint32_t vni);
// The link-local IPv6 gateway that stands for a remote VTEP on its VXLAN
// device (fe80::<the VTEP's last 32 bits>): the kernel routes a /128 only
// through an IPv6 gateway, and a permanent neighbour entry resolves this one
// to the VTEP's router MAC. Behind an IPv6 VTEP the remote /32s go through
// it too (an IPv4 route with an IPv6 gateway, RTA_VIA).
Ipv6Addr vtepGateway6(const IpAddr& vtep);
// "rule6 pref 20000 iif rep3 from 2001:db8::5/128 lookup 254 proto 240"
std::string describeRule6(const Rule6Entry& r);

// The router MAC of a VTEP in the VXLAN underlay: 02:00 + the last four
// octets of the VTEP address (all of an IPv4 one; locally administered,
// unicast). Every hypervisor derives its peers' MACs the same way, so no
// control protocol is needed for them. IPv6 VTEPs must therefore differ in
// their last 32 bits; the model refuses two that do not (routerMacKey).
MacAddr routerMacForVtep(const IpAddr& vtep);

}  // namespace nicoffload::flowrules
