// A small packet model for the simulated NIC: a stack of protocol headers as
// structs (outermost first) and a payload length. Enough for what the rule IR
// matches and rewrites: Ethernet, IPv4, IPv6, UDP, VXLAN, ARP and ICMP(v6). Values are in
// host byte order; sizes are the on-wire sizes of the headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "nicoffload/common/net_types.h"

namespace nicoffload::simnic {

inline constexpr std::uint16_t kEtherTypeIpv4 = 0x0800;  // IEEE EtherType registry
inline constexpr std::uint16_t kEtherTypeArp = 0x0806;
inline constexpr std::uint16_t kEtherTypeIpv6 = 0x86DD;
inline constexpr std::uint8_t kIpProtoIcmp = 1;  // IANA protocol numbers
inline constexpr std::uint8_t kIpProtoTcp = 6;
inline constexpr std::uint8_t kIpProtoUdp = 17;
inline constexpr std::uint8_t kIpProtoIcmpv6 = 58;
inline constexpr std::uint16_t kVxlanPort = 4789;  // IANA, RFC 7348 §5

// Ethernet II (IEEE 802.3), 14 bytes, no VLAN tag.
struct EthHeader {
  static constexpr std::size_t kSize = 14;
  MacAddr dst;
  MacAddr src;
  std::uint16_t ether_type = 0;
  bool operator==(const EthHeader&) const = default;
};

// IPv4 (RFC 791), 20 bytes, no options.
struct Ipv4Header {
  static constexpr std::size_t kSize = 20;
  std::uint8_t tos = 0;
  std::uint16_t total_length = 0;  // bytes: this header and everything after it
  std::uint16_t id = 0;
  std::uint16_t flags_fragment = 0;  // 3 flag bits (0x4000 = DF) and the fragment offset
  std::uint8_t ttl = 64;
  std::uint8_t protocol = 0;
  std::uint16_t checksum = 0;  // RFC 1071 one's complement sum over the header
  Ipv4Addr src;
  Ipv4Addr dst;
  bool operator==(const Ipv4Header&) const = default;
};

// IPv6 (RFC 8200), the 40-byte fixed header, no extension headers.
struct Ipv6Header {
  static constexpr std::size_t kSize = 40;
  std::uint8_t traffic_class = 0;
  std::uint32_t flow_label = 0;     // 20 bits
  std::uint16_t payload_length = 0; // bytes after this header
  std::uint8_t next_header = 0;     // IANA protocol number (17 UDP, 58 ICMPv6)
  std::uint8_t hop_limit = 64;
  Ipv6Addr src;
  Ipv6Addr dst;
  bool operator==(const Ipv6Header&) const = default;
};

// ICMPv6 (RFC 4443): an echo request or reply (8 bytes), or a neighbour
// solicitation / advertisement (RFC 4861 §4.3-4.4: 24 bytes with the target)
// counted as 8 header bytes and 16 bytes of payload.
struct Icmp6Header {
  static constexpr std::size_t kSize = 8;
  static constexpr std::uint8_t kEchoRequest = 128, kEchoReply = 129;
  static constexpr std::uint8_t kNeighbourSolicitation = 135, kNeighbourAdvertisement = 136;
  std::uint8_t type = kEchoRequest;
  std::uint8_t code = 0;
  bool operator==(const Icmp6Header&) const = default;
};

// UDP (RFC 768), 8 bytes.
struct UdpHeader {
  static constexpr std::size_t kSize = 8;
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  std::uint16_t length = 0;    // bytes: this header and its payload
  std::uint16_t checksum = 0;  // 0 = none (allowed over IPv4; RFC 7348 §5 recommends it for VXLAN)
  bool operator==(const UdpHeader&) const = default;
};

// TCP (RFC 9293), 20 bytes, no options. The rules never match TCP; the
// packet carries it so that a trace shows what an operator asked about.
struct TcpHeader {
  static constexpr std::size_t kSize = 20;
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  std::uint8_t flags = 0x02;  // SYN
  bool operator==(const TcpHeader&) const = default;
};

// ICMP (RFC 792), the 8-byte header of an echo request or reply.
struct IcmpHeader {
  static constexpr std::size_t kSize = 8;
  static constexpr std::uint8_t kEchoReply = 0, kEchoRequest = 8;
  std::uint8_t type = kEchoRequest;
  std::uint8_t code = 0;
  bool operator==(const IcmpHeader&) const = default;
};

// VXLAN (RFC 7348 §5), 8 bytes.
struct VxlanHeader {
  static constexpr std::size_t kSize = 8;
  std::uint8_t flags = 0x08;  // I flag: the VNI is valid
  std::uint32_t vni = 0;      // 24 bits
  bool operator==(const VxlanHeader&) const = default;
};

// ARP for Ethernet/IPv4 (RFC 826), 28 bytes.
struct ArpHeader {
  static constexpr std::size_t kSize = 28;
  static constexpr std::uint16_t kRequest = 1, kReply = 2;
  std::uint16_t op = kRequest;
  MacAddr sha;   // sender hardware address
  Ipv4Addr spa;  // sender protocol address
  MacAddr tha;   // target hardware address
  Ipv4Addr tpa;  // target protocol address
  bool operator==(const ArpHeader&) const = default;
};

using Header = std::variant<EthHeader, Ipv4Header, UdpHeader, VxlanHeader, ArpHeader, TcpHeader,
                            IcmpHeader, Ipv6Header, Icmp6Header>;

std::size_t headerSize(const Header& h);

struct Packet {
  std::vector<Header> headers;  // outermost first
  std::uint32_t payload_bytes = 0;

  // Bytes on the wire, without preamble and FCS.
  std::size_t size() const;

  // headers[i] as H, or nullptr when it is another header or i is out of range.
  template <class H>
  const H* at(std::size_t i) const {
    return i < headers.size() ? std::get_if<H>(&headers[i]) : nullptr;
  }
  template <class H>
  H* at(std::size_t i) {
    return i < headers.size() ? std::get_if<H>(&headers[i]) : nullptr;
  }
  // The first (outermost) header of type H, or nullptr.
  template <class H>
  const H* first() const {
    for (const auto& h : headers)
      if (const auto* p = std::get_if<H>(&h)) return p;
    return nullptr;
  }
  template <class H>
  H* first() {
    for (auto& h : headers)
      if (auto* p = std::get_if<H>(&h)) return p;
    return nullptr;
  }

  bool operator==(const Packet&) const = default;
};

// RFC 1071 checksum of the 20-byte header with the checksum field taken as 0.
std::uint16_t ipv4HeaderChecksum(const Ipv4Header& h);
bool ipv4ChecksumOk(const Ipv4Header& h);

// Fills in, for headers[0..count), what the headers after them determine:
// Ethernet type (when 0) from the next header, IPv4 protocol (UDP, TCP, ICMP) and
// total length and checksum, UDP length. Headers from `count` on are left
// as they are (the inner packet of an encapsulation).
void fixOuterHeaders(Packet& p, std::size_t count);

// "eth 52:54:00:00:00:01>ee:ee:ee:ee:ee:ee | ipv4 10.0.0.1>10.0.0.2 ttl 64 | udp 1000>2000 | 64 B"
std::string describe(const Packet& p);

// Builds a packet header by header, outermost first; build() fills in the
// lengths, types and checksums (fixOuterHeaders over every header).
class PacketBuilder {
 public:
  PacketBuilder& eth(MacAddr src, MacAddr dst,
                     std::uint16_t ether_type = 0);  // 0 = from the next header
  PacketBuilder& ipv4(Ipv4Addr src, Ipv4Addr dst, std::uint8_t ttl = 64);
  PacketBuilder& ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, std::uint8_t hop_limit = 64);
  PacketBuilder& icmp6(std::uint8_t type = Icmp6Header::kEchoRequest, std::uint8_t code = 0);
  PacketBuilder& udp(std::uint16_t src_port, std::uint16_t dst_port);
  PacketBuilder& tcp(std::uint16_t src_port, std::uint16_t dst_port);
  PacketBuilder& icmp(std::uint8_t type = IcmpHeader::kEchoRequest, std::uint8_t code = 0);
  PacketBuilder& vxlan(std::uint32_t vni);
  PacketBuilder& arp(std::uint16_t op, MacAddr sha, Ipv4Addr spa, MacAddr tha, Ipv4Addr tpa);
  PacketBuilder& payload(std::uint32_t bytes);
  Packet build() const;

 private:
  Packet p_;
};

// An Ethernet/IPv4/UDP packet.
Packet udpPacket(MacAddr src_mac, MacAddr dst_mac, Ipv4Addr src, Ipv4Addr dst,
                 std::uint32_t payload = 64, std::uint8_t ttl = 64);
// A broadcast ARP request "who has tpa? tell spa".
Packet arpRequest(MacAddr sha, Ipv4Addr spa, Ipv4Addr tpa);
// `inner` inside outer Ethernet/IPv4/UDP/VXLAN headers (RFC 7348 §5), or
// Ethernet/IPv6/UDP/VXLAN when the VTEPs are IPv6 (both of one family). The
// UDP checksum stays zero, as a ConnectX's encapsulation leaves it.
Packet vxlanEncapsulated(const Packet& inner, MacAddr outer_src, MacAddr outer_dst,
                         const IpAddr& vtep_src, const IpAddr& vtep_dst, std::uint32_t vni,
                         std::uint16_t udp_src = 49152, std::uint16_t udp_dst = kVxlanPort);
// Whether headers[0..4) are an outer Ethernet/IP(v4 or v6)/UDP/VXLAN stack.
bool isVxlanEncapsulated(const Packet& p);

}  // namespace nicoffload::simnic
