#include "nicoffload/simnic/packet.h"

#include <cstdio>

namespace nicoffload::simnic {

std::size_t headerSize(const Header& h) {
  return std::visit([](const auto& x) { return std::decay_t<decltype(x)>::kSize; }, h);
}

std::size_t Packet::size() const {
  std::size_t n = payload_bytes;
  for (const auto& h : headers) n += headerSize(h);
  return n;
}

std::uint16_t ipv4HeaderChecksum(const Ipv4Header& h) {
  // The ten 16-bit words of the header (RFC 791 §3.1), checksum word as 0.
  const std::uint32_t words[10] = {
      (0x45u << 8) | h.tos,
      h.total_length,
      h.id,
      h.flags_fragment,
      (std::uint32_t{h.ttl} << 8) | h.protocol,
      0,  // checksum
      h.src.value >> 16,
      h.src.value & 0xFFFF,
      h.dst.value >> 16,
      h.dst.value & 0xFFFF,
  };
  std::uint32_t sum = 0;
  for (auto w : words) sum += w;
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum & 0xFFFF);
}

bool ipv4ChecksumOk(const Ipv4Header& h) { return ipv4HeaderChecksum(h) == h.checksum; }

void fixOuterHeaders(Packet& p, std::size_t count) {
  std::size_t rest = p.payload_bytes;
  for (std::size_t i = p.headers.size(); i-- > 0;) {
    const Header* next = i + 1 < p.headers.size() ? &p.headers[i + 1] : nullptr;
    if (i < count) {
      if (auto* eth = std::get_if<EthHeader>(&p.headers[i]); eth && eth->ether_type == 0 && next) {
        if (std::holds_alternative<Ipv4Header>(*next)) eth->ether_type = kEtherTypeIpv4;
        if (std::holds_alternative<ArpHeader>(*next)) eth->ether_type = kEtherTypeArp;
        if (std::holds_alternative<Ipv6Header>(*next)) eth->ether_type = kEtherTypeIpv6;
      } else if (auto* ip6 = std::get_if<Ipv6Header>(&p.headers[i])) {
        if (next && std::holds_alternative<UdpHeader>(*next)) ip6->next_header = kIpProtoUdp;
        if (next && std::holds_alternative<TcpHeader>(*next)) ip6->next_header = kIpProtoTcp;
        if (next && std::holds_alternative<Icmp6Header>(*next)) ip6->next_header = kIpProtoIcmpv6;
        ip6->payload_length = static_cast<std::uint16_t>(rest);
      } else if (auto* ip = std::get_if<Ipv4Header>(&p.headers[i])) {
        if (next && std::holds_alternative<UdpHeader>(*next)) ip->protocol = kIpProtoUdp;
        if (next && std::holds_alternative<TcpHeader>(*next)) ip->protocol = kIpProtoTcp;
        if (next && std::holds_alternative<IcmpHeader>(*next)) ip->protocol = kIpProtoIcmp;
        ip->total_length = static_cast<std::uint16_t>(Ipv4Header::kSize + rest);
        ip->checksum = ipv4HeaderChecksum(*ip);
      } else if (auto* udp = std::get_if<UdpHeader>(&p.headers[i])) {
        udp->length = static_cast<std::uint16_t>(UdpHeader::kSize + rest);
      }
    }
    rest += headerSize(p.headers[i]);
  }
}

namespace {

struct HeaderText {
  std::string operator()(const EthHeader& h) const {
    char t[8];
    std::snprintf(t, sizeof t, "0x%04x", h.ether_type);
    return "eth " + h.src.str() + ">" + h.dst.str() + " " + t;
  }
  std::string operator()(const Ipv4Header& h) const {
    return "ipv4 " + h.src.str() + ">" + h.dst.str() + " ttl " + std::to_string(h.ttl) +
           (ipv4ChecksumOk(h) ? "" : " BAD-CHECKSUM");
  }
  std::string operator()(const Ipv6Header& h) const {
    return "ipv6 " + h.src.str() + ">" + h.dst.str() + " hlim " + std::to_string(h.hop_limit);
  }
  std::string operator()(const Icmp6Header& h) const {
    switch (h.type) {
      case Icmp6Header::kEchoRequest: return "icmp6 echo-request";
      case Icmp6Header::kEchoReply: return "icmp6 echo-reply";
      case Icmp6Header::kNeighbourSolicitation: return "icmp6 neighbour-solicitation";
      case Icmp6Header::kNeighbourAdvertisement: return "icmp6 neighbour-advertisement";
      default: return "icmp6 type " + std::to_string(h.type) + " code " + std::to_string(h.code);
    }
  }
  std::string operator()(const UdpHeader& h) const {
    return "udp " + std::to_string(h.src_port) + ">" + std::to_string(h.dst_port);
  }
  std::string operator()(const TcpHeader& h) const {
    return "tcp " + std::to_string(h.src_port) + ">" + std::to_string(h.dst_port);
  }
  std::string operator()(const IcmpHeader& h) const {
    if (h.type == IcmpHeader::kEchoRequest) return "icmp echo-request";
    if (h.type == IcmpHeader::kEchoReply) return "icmp echo-reply";
    return "icmp type " + std::to_string(h.type) + " code " + std::to_string(h.code);
  }
  std::string operator()(const VxlanHeader& h) const {
    return "vxlan vni " + std::to_string(h.vni);
  }
  std::string operator()(const ArpHeader& h) const {
    return std::string(h.op == ArpHeader::kRequest ? "arp who-has " : "arp reply ") + h.tpa.str() +
           " tell " + h.spa.str() + " (" + h.sha.str() + ")";
  }
};

}  // namespace

std::string describe(const Packet& p) {
  std::string s;
  for (const auto& h : p.headers) s += std::visit(HeaderText{}, h) + " | ";
  return s + std::to_string(p.payload_bytes) + " B";
}

PacketBuilder& PacketBuilder::eth(MacAddr src, MacAddr dst, std::uint16_t ether_type) {
  p_.headers.emplace_back(EthHeader{dst, src, ether_type});
  return *this;
}

PacketBuilder& PacketBuilder::ipv4(Ipv4Addr src, Ipv4Addr dst, std::uint8_t ttl) {
  Ipv4Header ip;
  ip.src = src;
  ip.dst = dst;
  ip.ttl = ttl;
  p_.headers.emplace_back(ip);
  return *this;
}

PacketBuilder& PacketBuilder::ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, std::uint8_t hop_limit) {
  Ipv6Header ip;
  ip.src = src;
  ip.dst = dst;
  ip.hop_limit = hop_limit;
  p_.headers.emplace_back(ip);
  return *this;
}

PacketBuilder& PacketBuilder::icmp6(std::uint8_t type, std::uint8_t code) {
  p_.headers.emplace_back(Icmp6Header{type, code});
  return *this;
}

PacketBuilder& PacketBuilder::udp(std::uint16_t src_port, std::uint16_t dst_port) {
  UdpHeader u;
  u.src_port = src_port;
  u.dst_port = dst_port;
  p_.headers.emplace_back(u);
  return *this;
}

PacketBuilder& PacketBuilder::tcp(std::uint16_t src_port, std::uint16_t dst_port) {
  TcpHeader t;
  t.src_port = src_port;
  t.dst_port = dst_port;
  p_.headers.emplace_back(t);
  return *this;
}

PacketBuilder& PacketBuilder::icmp(std::uint8_t type, std::uint8_t code) {
  p_.headers.emplace_back(IcmpHeader{type, code});
  return *this;
}

PacketBuilder& PacketBuilder::vxlan(std::uint32_t vni) {
  VxlanHeader v;
  v.vni = vni;
  p_.headers.emplace_back(v);
  return *this;
}

PacketBuilder& PacketBuilder::arp(std::uint16_t op, MacAddr sha, Ipv4Addr spa, MacAddr tha,
                                  Ipv4Addr tpa) {
  p_.headers.emplace_back(ArpHeader{op, sha, spa, tha, tpa});
  return *this;
}

PacketBuilder& PacketBuilder::payload(std::uint32_t bytes) {
  p_.payload_bytes = bytes;
  return *this;
}

Packet PacketBuilder::build() const {
  Packet p = p_;
  fixOuterHeaders(p, p.headers.size());
  return p;
}

Packet udpPacket(MacAddr src_mac, MacAddr dst_mac, Ipv4Addr src, Ipv4Addr dst,
                 std::uint32_t payload, std::uint8_t ttl) {
  return PacketBuilder()
      .eth(src_mac, dst_mac)
      .ipv4(src, dst, ttl)
      .udp(40000, 5001)
      .payload(payload)
      .build();
}

Packet arpRequest(MacAddr sha, Ipv4Addr spa, Ipv4Addr tpa) {
  MacAddr broadcast;
  broadcast.bytes = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  return PacketBuilder()
      .eth(sha, broadcast)
      .arp(ArpHeader::kRequest, sha, spa, MacAddr{}, tpa)
      .build();
}

Packet vxlanEncapsulated(const Packet& inner, MacAddr outer_src, MacAddr outer_dst,
                         const IpAddr& vtep_src, const IpAddr& vtep_dst, std::uint32_t vni,
                         std::uint16_t udp_src, std::uint16_t udp_dst) {
  Packet p;
  if (vtep_src.isV4()) {
    p.headers.emplace_back(EthHeader{outer_dst, outer_src, kEtherTypeIpv4});
    Ipv4Header ip;
    ip.src = vtep_src.v4();
    ip.dst = vtep_dst.v4();
    p.headers.emplace_back(ip);
  } else {
    p.headers.emplace_back(EthHeader{outer_dst, outer_src, kEtherTypeIpv6});
    Ipv6Header ip;
    ip.src = vtep_src.v6();
    ip.dst = vtep_dst.v6();
    p.headers.emplace_back(ip);
  }
  UdpHeader udp;
  udp.src_port = udp_src;
  udp.dst_port = udp_dst;
  p.headers.emplace_back(udp);
  VxlanHeader vx;
  vx.vni = vni;
  p.headers.emplace_back(vx);
  p.headers.insert(p.headers.end(), inner.headers.begin(), inner.headers.end());
  p.payload_bytes = inner.payload_bytes;
  fixOuterHeaders(p, 4);
  return p;
}

bool isVxlanEncapsulated(const Packet& p) {
  return p.at<EthHeader>(0) && (p.at<Ipv4Header>(1) || p.at<Ipv6Header>(1)) && p.at<UdpHeader>(2) &&
         p.at<VxlanHeader>(3);
}

}  // namespace nicoffload::simnic
