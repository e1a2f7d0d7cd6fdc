// The expected behaviour of the software path, as a small pure function: what
// the kernel, programmed with the planner's SoftwarePathState, does with a
// packet that arrives from a port. Route lookup on the /32s, anti-spoofing
// (the permanent neighbours of a representor are its VM's addresses and
// MAC), ARP to the kernel's proxy ARP, VXLAN ingress on the VNIs the kernel
// has devices for. The differential test checks the simulated NIC against it.
#pragma once

#include <map>
#include <optional>
#include <ostream>
#include <string>

#include "nicoffload/flowrules/planner.h"
#include "nicoffload/flowrules/sw_objects.h"
#include "nicoffload/model/intent.h"
#include "nicoffload/simnic/packet.h"
#include "nicoffload/simnic/sim_eswitch.h"

namespace nicoffload::test {

// Where a packet ends up, as far as the differential test compares.
struct Destination {
  enum class Kind { kVf, kUplink, kKernel, kDrop };
  Kind kind = Kind::kDrop;
  std::uint16_t vf = 0;                 // kVf
  flowrules::PortRef kernel_port;       // kKernel: the representor it arrives on
  std::optional<Ipv4Addr> vtep;         // kUplink, VXLAN: the remote VTEP
  std::optional<std::uint32_t> vni;     // kUplink, VXLAN
  std::optional<MacAddr> next_hop_mac;  // kUplink, routed: the next hop (nullopt: unresolved)

  bool operator==(const Destination&) const = default;
  std::string str() const {
    switch (kind) {
      case Kind::kVf:
        return "to vf" + std::to_string(vf);
      case Kind::kUplink:
        if (vtep)
          return "to the uplink, VXLAN to " + vtep->str() + " VNI " +
                 std::to_string(vni.value_or(0));
        return "to the uplink, next hop " +
               (next_hop_mac ? next_hop_mac->str() : std::string("unresolved"));
      case Kind::kKernel:
        return "to the kernel via the representor of " + kernel_port.str();
      case Kind::kDrop:
        return "dropped";
    }
    return "?";
  }
};

inline void PrintTo(const Destination& d, std::ostream* os) { *os << d.str(); }

class SoftwarePathModel {
 public:
  SoftwarePathModel(const model::Intent& intent, const flowrules::SoftwarePathState& sw)
      : host_(intent.host) {
    for (const auto& p : intent.ports) {
      vf_of_rep_[p.representorName()] = *p.vf;
      rep_of_vf_[*p.vf] = p.representorName();
    }
    for (const auto& n : sw.neighbours) legit_[{n.dev, n.ip.value}] = n.mac;
    for (const auto& r : sw.routes)
      if (r.table == host_.route_table && r.dst.len == 32) routes_[r.dst.addr] = &r;
    for (const auto& v : sw.vxlan_devices) vni_dev_[v.vni] = v.name;
    for (const auto& v : sw.vxlan_devices) dev_vni_[v.name] = v.vni;
    for (const auto& nh : host_.next_hops)
      if (nh.address.isV4()) next_hop_mac_[nh.address.v4()] = nh.mac;
  }

  Destination handle(const simnic::Packet& p, flowrules::PortRef ingress) const {
    return ingress.kind == flowrules::PortRef::Kind::kVf ? fromVf(p, ingress.vf) : fromUplink(p);
  }

 private:
  Destination kernel(flowrules::PortRef port) const {
    Destination d;
    d.kind = Destination::Kind::kKernel;
    d.kernel_port = port;
    return d;
  }

  // Route lookup of `dst` for a packet the kernel forwards; nullopt: no /32
  // of the intent (the kernel's other routes decide).
  std::optional<Destination> route(Ipv4Addr dst) const {
    auto it = routes_.find(dst);
    if (it == routes_.end()) return std::nullopt;
    const auto& r = *it->second;
    Destination d;
    if (auto vf = vf_of_rep_.find(r.dev); vf != vf_of_rep_.end()) {
      d.kind = Destination::Kind::kVf;
      d.vf = vf->second;
      return d;
    }
    d.kind = Destination::Kind::kUplink;
    if (auto vni = dev_vni_.find(r.dev); vni != dev_vni_.end()) {
      if (r.via) d.vtep = r.via->v4();  // the examples' VTEPs are IPv4
      d.vni = vni->second;
    } else if (r.via) {
      if (auto m = next_hop_mac_.find(r.via->v4()); m != next_hop_mac_.end())
        d.next_hop_mac = m->second;
    }
    return d;
  }

  Destination fromVf(const simnic::Packet& p, std::uint16_t vf) const {
    const auto port = flowrules::PortRef::vfPort(vf);
    auto rep = rep_of_vf_.find(vf);
    const auto* eth = p.at<simnic::EthHeader>(0);
    if (rep == rep_of_vf_.end() || !eth) return kernel(port);
    const auto legit = [&](Ipv4Addr a, const MacAddr& m) {
      auto it = legit_.find({rep->second, a.value});
      return it != legit_.end() && it->second == m;
    };
    const auto ownsMac = [&](const MacAddr& m) {
      for (const auto& [key, mac] : legit_)
        if (key.first == rep->second && mac == m) return true;
      return false;
    };
    if (eth->ether_type == simnic::kEtherTypeArp)  // proxy ARP answers, unless spoofed
      return ownsMac(eth->src) ? kernel(port) : Destination{};
    if (eth->ether_type != simnic::kEtherTypeIpv4) return kernel(port);
    const auto* ip = p.at<simnic::Ipv4Header>(1);
    if (!ip || !legit(ip->src, eth->src))
      return Destination{};  // anti-spoofing: rp_filter + neighbours
    if (auto d = route(ip->dst)) return *d;
    return kernel(port);
  }

  Destination fromUplink(const simnic::Packet& p) const {
    const auto uplink = flowrules::PortRef::uplink();
    const auto* ip = p.at<simnic::Ipv4Header>(1);
    if (!ip) return kernel(uplink);
    // The kernel forwards what it has a route for, also back out of the
    // uplink (ip_forward=1; it would send an ICMP redirect as well).
    if (host_.underlay == model::UnderlayMode::kRouted) {
      auto d = route(ip->dst);
      return d ? *d : kernel(uplink);
    }
    // VXLAN underlay: only traffic for our VTEP, on our port, of a VNI we
    // have a device for, is decapsulated (by that vxlan device) and routed;
    // one routing table serves every VNI.
    const auto* udp = p.at<simnic::UdpHeader>(2);
    const auto* vx = p.at<simnic::VxlanHeader>(3);
    const auto* inner = p.at<simnic::Ipv4Header>(5);
    if (ip->dst != *host_.vtep || !udp || udp->dst_port != host_.vxlan_udp_port || !vx || !inner ||
        !vni_dev_.count(vx->vni))
      return kernel(uplink);
    auto d = route(inner->dst);
    return d ? *d : kernel(uplink);
  }

  model::HostConfig host_;
  std::map<std::string, std::uint16_t> vf_of_rep_;
  std::map<std::uint16_t, std::string> rep_of_vf_;
  std::map<std::pair<std::string, std::uint32_t>, MacAddr> legit_;  // (rep, ip) -> mac
  std::map<Ipv4Addr, const flowrules::RouteEntry*> routes_;
  std::map<std::uint32_t, std::string> vni_dev_;
  std::map<std::string, std::uint32_t> dev_vni_;
  std::map<Ipv4Addr, MacAddr> next_hop_mac_;
};

// What the simulated NIC did, in the same terms: a packet out of a VF or the
// uplink (with its VXLAN/next-hop identity), dropped, or handed to the
// kernel via a representor.
inline Destination destinationOf(const simnic::Delivery& d) {
  Destination out;
  using Kind = simnic::Delivery::Kind;
  if (d.kind == Kind::kDrop) return out;
  if (d.kind == Kind::kRepresentor) {
    out.kind = Destination::Kind::kKernel;
    out.kernel_port = d.port;
    return out;
  }
  if (d.port.kind == flowrules::PortRef::Kind::kVf) {
    out.kind = Destination::Kind::kVf;
    out.vf = d.port.vf;
    return out;
  }
  out.kind = Destination::Kind::kUplink;
  if (const auto* vx = d.packet.at<simnic::VxlanHeader>(3)) {
    out.vtep = d.packet.at<simnic::Ipv4Header>(1)->dst;
    out.vni = vx->vni;
  } else {
    out.next_hop_mac = d.packet.at<simnic::EthHeader>(0)->dst;
  }
  return out;
}

}  // namespace nicoffload::test
