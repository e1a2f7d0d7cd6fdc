// The packet model: sizes, lengths, checksums, builders.
#include "nicoffload/simnic/packet.h"

#include <gtest/gtest.h>

#include "support/test_support.h"

namespace nicoffload::simnic {
namespace {

using test::ip;
using test::mac;

TEST(Packet, Ipv4ChecksumMatchesRfc1071Example) {
  // The header 4500 0073 0000 4000 4011 xxxx c0a8 0001 c0a8 00c7 has the
  // checksum 0xb861 (the classic worked example of RFC 1071 summing).
  Ipv4Header h;
  h.total_length = 0x73;
  h.flags_fragment = 0x4000;
  h.ttl = 0x40;
  h.protocol = 0x11;
  h.src = ip("192.168.0.1");
  h.dst = ip("192.168.0.199");
  EXPECT_EQ(ipv4HeaderChecksum(h), 0xb861);
  EXPECT_FALSE(ipv4ChecksumOk(h));
  h.checksum = 0xb861;
  EXPECT_TRUE(ipv4ChecksumOk(h));
  h.ttl = 0x3f;  // a rewrite without a checksum update is detected
  EXPECT_FALSE(ipv4ChecksumOk(h));
}

TEST(Packet, BuilderFillsLengthsTypesAndChecksum) {
  const Packet p = udpPacket(mac("52:54:00:00:00:01"), mac("ee:ee:ee:ee:ee:ee"), ip("10.0.0.1"),
                             ip("10.0.0.2"), 100, 17);
  ASSERT_EQ(p.headers.size(), 3u);
  EXPECT_EQ(p.size(), 14u + 20 + 8 + 100);
  EXPECT_EQ(p.at<EthHeader>(0)->ether_type, kEtherTypeIpv4);
  const auto* ip4 = p.at<Ipv4Header>(1);
  ASSERT_NE(ip4, nullptr);
  EXPECT_EQ(ip4->protocol, kIpProtoUdp);
  EXPECT_EQ(ip4->total_length, 20 + 8 + 100);
  EXPECT_EQ(ip4->ttl, 17);
  EXPECT_TRUE(ipv4ChecksumOk(*ip4));
  EXPECT_EQ(p.at<UdpHeader>(2)->length, 8 + 100);
  EXPECT_EQ(p.at<UdpHeader>(1), nullptr);
  EXPECT_EQ(p.at<UdpHeader>(7), nullptr);
}

TEST(Packet, ArpRequestIsBroadcast) {
  const Packet p = arpRequest(mac("52:54:00:00:00:01"), ip("10.0.0.1"), ip("169.254.1.1"));
  EXPECT_EQ(p.at<EthHeader>(0)->ether_type, kEtherTypeArp);
  EXPECT_TRUE(p.at<EthHeader>(0)->dst.isMulticast());
  ASSERT_NE(p.at<ArpHeader>(1), nullptr);
  EXPECT_EQ(p.at<ArpHeader>(1)->tpa, ip("169.254.1.1"));
  EXPECT_EQ(p.size(), 14u + 28);
}

TEST(Packet, VxlanEncapsulationAddsFiftyBytesAndKeepsTheInnerPacket) {
  const Packet inner = udpPacket(mac("52:54:00:00:00:01"), mac("ee:ee:ee:ee:ee:ee"), ip("10.0.0.1"),
                                 ip("10.0.0.2"), 64);
  const Packet outer = vxlanEncapsulated(inner, mac("0c:42:a1:00:00:01"), mac("0c:42:a1:ff:ff:fe"),
                                         ip("192.0.2.1"), ip("192.0.2.2"), 4242, 50000);
  EXPECT_EQ(outer.size(), inner.size() + 50);  // RFC 7348: 14 + 20 + 8 + 8
  const auto* oip = outer.at<Ipv4Header>(1);
  EXPECT_EQ(oip->total_length, inner.size() + 36);
  EXPECT_TRUE(ipv4ChecksumOk(*oip));
  EXPECT_EQ(outer.at<UdpHeader>(2)->dst_port, kVxlanPort);
  EXPECT_EQ(outer.at<UdpHeader>(2)->src_port, 50000);
  EXPECT_EQ(outer.at<UdpHeader>(2)->length, inner.size() + 16);
  EXPECT_EQ(outer.at<VxlanHeader>(3)->vni, 4242u);
  EXPECT_EQ(outer.at<VxlanHeader>(3)->flags, 0x08);
  Packet rest;
  rest.headers.assign(outer.headers.begin() + 4, outer.headers.end());
  rest.payload_bytes = outer.payload_bytes;
  EXPECT_EQ(rest, inner);
  EXPECT_NE(describe(outer).find("vxlan vni 4242"), std::string::npos) << describe(outer);
}

}  // namespace
}  // namespace nicoffload::simnic
