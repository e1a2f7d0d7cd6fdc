#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include <arpa/inet.h>

#include "nicoffload/common/net_types.h"

namespace nicoffload {
namespace {

TEST(MacAddr, ParsesCanonicalForms) {
  struct Case { const char* text; bool ok; const char* canonical; };
  const Case cases[] = {
      {"52:54:00:00:01:01", true, "52:54:00:00:01:01"},
      {"AA:bb:CC:dd:EE:ff", true, "aa:bb:cc:dd:ee:ff"},
      {"52:54:00:00:01", false, ""},
      {"52:54:00:00:01:011", false, ""},
      {"52-54-00-00-01-01", false, ""},
      {"52:54:00:zz:01:01", false, ""},
      {"", false, ""},
  };
  for (const auto& c : cases) {
    auto mac = MacAddr::parse(c.text);
    EXPECT_EQ(mac.has_value(), c.ok) << c.text;
    if (mac && c.ok) {
      EXPECT_EQ(mac->str(), c.canonical);
    }
  }
}

// str() is formatted by hand: it must print what printf's canonical forms
// print, and parse back, for any value.
TEST(MacAddr, FormatsLowerCaseColonHexAndRoundTrips) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    MacAddr m;
    const std::uint64_t v = i == 0 ? 0 : i == 1 ? ~0ull : rng();
    for (int b = 0; b < 6; ++b) m.bytes[b] = static_cast<std::uint8_t>(v >> (8 * b));
    char want[18];
    std::snprintf(want, sizeof want, "%02x:%02x:%02x:%02x:%02x:%02x", m.bytes[0], m.bytes[1],
                  m.bytes[2], m.bytes[3], m.bytes[4], m.bytes[5]);
    ASSERT_EQ(m.str(), want);
    ASSERT_EQ(MacAddr::parse(m.str()), m);
  }
}

TEST(Ipv4Addr, FormatsDottedQuadAndRoundTrips) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const std::uint32_t v = i == 0 ? 0 : i == 1 ? ~0u : i == 2 ? 0x0A000001u : rng();
    const Ipv4Addr a{v};
    char want[16];
    std::snprintf(want, sizeof want, "%u.%u.%u.%u", v >> 24, (v >> 16) & 0xFF, (v >> 8) & 0xFF,
                  v & 0xFF);
    ASSERT_EQ(a.str(), want);
    ASSERT_EQ(Ipv4Addr::parse(a.str()), a);
  }
}

TEST(Ipv4Addr, ParsesDottedQuadOnly) {
  struct Case { const char* text; bool ok; std::uint32_t value; };
  const Case cases[] = {
      {"10.0.0.1", true, 0x0A000001}, {"255.255.255.255", true, 0xFFFFFFFF},
      {"0.0.0.0", true, 0},           {"256.0.0.1", false, 0},
      {"10.0.0", false, 0},           {"10.0.0.1.2", false, 0},
      {"010.0.0.1", false, 0},        {"10.0.0.1/32", false, 0},
      {" 10.0.0.1", false, 0},        {"", false, 0},
  };
  for (const auto& c : cases) {
    auto ip = Ipv4Addr::parse(c.text);
    EXPECT_EQ(ip.has_value(), c.ok) << c.text;
    if (ip && c.ok) {
      EXPECT_EQ(ip->value, c.value) << c.text;
    }
  }
}

TEST(Ipv4Prefix, ParsesLengths) {
  EXPECT_EQ(Ipv4Prefix::parse("10.0.0.1")->len, 32);
  EXPECT_EQ(Ipv4Prefix::parse("10.0.0.0/24")->len, 24);
  EXPECT_FALSE(Ipv4Prefix::parse("10.0.0.0/33"));
  EXPECT_FALSE(Ipv4Prefix::parse("10.0.0.0/"));
  EXPECT_FALSE(Ipv4Prefix::parse("10.0.0.0/3x"));
  EXPECT_EQ(Ipv4Prefix::parse("10.0.0.7/32")->str(), "10.0.0.7/32");
}

TEST(Ipv6Addr, ParsesRfc4291FormsAndPrintsRfc5952) {
  struct Case { const char* text; bool ok; const char* canonical; };
  const Case cases[] = {
      {"2001:db8::5", true, "2001:db8::5"},
      {"2001:DB8:0:0:0:0:0:5", true, "2001:db8::5"},
      {"2001:db8:0:0:1:0:0:1", true, "2001:db8::1:0:0:1"},  // first of equal zero runs
      {"::", true, "::"},
      {"::1", true, "::1"},
      {"fe80::1", true, "fe80::1"},
      {"::ffff:192.0.2.1", true, "::ffff:192.0.2.1"},
      {"2001:db8::5/128", false, ""},
      {"fe80::1%eth0", false, ""},
      {"[2001:db8::5]", false, ""},
      {"2001:db8:::5", false, ""},
      {"10.0.0.1", false, ""},
      {" 2001:db8::5", false, ""},
      {"", false, ""},
      {"2001:0db8:0000:0000:0000:0000:0000:0005:1", false, ""},
  };
  for (const auto& c : cases) {
    auto ip = Ipv6Addr::parse(c.text);
    EXPECT_EQ(ip.has_value(), c.ok) << c.text;
    if (ip && c.ok) {
      EXPECT_EQ(ip->str(), c.canonical) << c.text;
    }
  }
  // Longer than any address: refused before inet_pton sees it.
  EXPECT_FALSE(Ipv6Addr::parse(std::string(200, '1')));
}

// The hand-written parser and printer agree with glibc's inet_pton/inet_ntop
// (RFC 5952 output) on random addresses with zero runs of every length.
TEST(Ipv6Addr, AgreesWithInetPtonAndNtop) {
  std::mt19937 rng(7);
  for (int n = 0; n < 20000; ++n) {
    Ipv6Addr a;
    for (std::size_t k = 0; k < 8; ++k) {
      const bool zero = rng() % 3 == 0;
      const auto v = zero ? 0u : (rng() % 4 == 0 ? rng() % 16 : rng() & 0xFFFF);
      a.bytes[2 * k] = static_cast<std::uint8_t>(v >> 8);
      a.bytes[2 * k + 1] = static_cast<std::uint8_t>(v & 0xFF);
    }
    char buf[INET6_ADDRSTRLEN] = {};
    ASSERT_NE(inet_ntop(AF_INET6, a.bytes.data(), buf, sizeof(buf)), nullptr);
    // glibc prints the deprecated IPv4-compatible ::a.b.c.d form (::/96 but
    // :: and ::1); RFC 5952 §5 keeps mixed notation to v4-mapped: only the
    // parse must agree there.
    bool compatible = true;
    for (std::size_t k = 0; k < 12; ++k) compatible = compatible && a.bytes[k] == 0;
    if (!compatible) {
      ASSERT_EQ(a.str(), buf);
    }
    auto back = Ipv6Addr::parse(buf);
    ASSERT_TRUE(back) << buf;
    ASSERT_EQ(*back, a) << buf;
  }
  for (const char* text : {"1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1::8", "1:2:3:4:5:6:1.2.3.4",
                           "::1.2.3.4", "1:2:3:4:5:6:7:8:9", ":1:2:3:4:5:6:7", "1:2:3:4:5:6:7:",
                           "1::2::3", "12345::", "::ffff:1.2.3", "g::1", "1:2:3:4:5:6:7:1.2.3.4"}) {
    unsigned char raw[16];
    const bool ok = inet_pton(AF_INET6, text, raw) == 1;
    EXPECT_EQ(Ipv6Addr::parse(text).has_value(), ok) << text;
  }
}

TEST(Ipv6Addr, Classifies) {
  EXPECT_TRUE(Ipv6Addr::parse("::")->isUnspecified());
  EXPECT_TRUE(Ipv6Addr::parse("::1")->isLoopback());
  EXPECT_FALSE(Ipv6Addr::parse("::2")->isLoopback());
  EXPECT_TRUE(Ipv6Addr::parse("ff02::1:ff00:1")->isMulticast());
  EXPECT_TRUE(Ipv6Addr::parse("fe80::1")->isLinkLocal());
  EXPECT_TRUE(Ipv6Addr::parse("febf::1")->isLinkLocal());
  EXPECT_FALSE(Ipv6Addr::parse("fec0::1")->isLinkLocal());
  EXPECT_TRUE(Ipv6Addr::parse("::ffff:10.0.0.1")->isV4Mapped());
  EXPECT_FALSE(Ipv6Addr::parse("2001:db8::5")->isV4Mapped());
  EXPECT_LT(*Ipv6Addr::parse("2001:db8::5"), *Ipv6Addr::parse("2001:db8::6"));
  EXPECT_LT(*Ipv6Addr::parse("2001:db8::ffff"), *Ipv6Addr::parse("2001:db8:0:1::"));
  EXPECT_NE(std::hash<Ipv6Addr>{}(*Ipv6Addr::parse("2001:db8::5")),
            std::hash<Ipv6Addr>{}(*Ipv6Addr::parse("2001:db8::6")));
}

TEST(Ipv6Prefix, ParsesLengthsAndContains) {
  EXPECT_EQ(Ipv6Prefix::parse("2001:db8::5")->len, 128);
  EXPECT_EQ(Ipv6Prefix::parse("2001:db8::/32")->len, 32);
  EXPECT_FALSE(Ipv6Prefix::parse("2001:db8::/129"));
  EXPECT_FALSE(Ipv6Prefix::parse("2001:db8::/"));
  EXPECT_FALSE(Ipv6Prefix::parse("10.0.0.0/8"));
  EXPECT_EQ(Ipv6Prefix::parse("2001:db8::/32")->str(), "2001:db8::/32");
  const auto link_local = *Ipv6Prefix::parse("fe80::/10");
  EXPECT_TRUE(link_local.contains(*Ipv6Addr::parse("fe80::1")));
  EXPECT_TRUE(link_local.contains(*Ipv6Addr::parse("febf:ffff::1")));
  EXPECT_FALSE(link_local.contains(*Ipv6Addr::parse("fec0::1")));
  EXPECT_TRUE(Ipv6Prefix::parse("::/0")->contains(*Ipv6Addr::parse("2001:db8::5")));
  EXPECT_TRUE(Ipv6Prefix::parse("2001:db8::5/128")->contains(*Ipv6Addr::parse("2001:db8::5")));
  EXPECT_FALSE(Ipv6Prefix::parse("2001:db8::5/128")->contains(*Ipv6Addr::parse("2001:db8::4")));
}

TEST(IpAddr, HoldsEitherFamilyAsOneValue) {
  const IpAddr v4 = *Ipv4Addr::parse("192.0.2.1");
  EXPECT_TRUE(v4.isV4());
  EXPECT_EQ(v4.v4(), *Ipv4Addr::parse("192.0.2.1"));
  EXPECT_EQ(v4.str(), "192.0.2.1");
  EXPECT_EQ(v4.hostLength(), 32);
  EXPECT_EQ(IpAddr::parse("192.0.2.1"), v4);
  EXPECT_EQ(IpAddr::parse("::ffff:192.0.2.1"), v4);  // the same address
  EXPECT_TRUE(IpAddr().isV4());
  EXPECT_EQ(IpAddr().v4(), Ipv4Addr{});

  const auto v6 = IpAddr::parse("2001:db8::5");
  ASSERT_TRUE(v6);
  EXPECT_FALSE(v6->isV4());
  EXPECT_EQ(v6->v6(), *Ipv6Addr::parse("2001:db8::5"));
  EXPECT_EQ(v6->v4(), Ipv4Addr{});
  EXPECT_EQ(v6->str(), "2001:db8::5");
  EXPECT_EQ(v6->hostLength(), 128);
  EXPECT_NE(*v6, v4);
  EXPECT_NE(std::hash<IpAddr>{}(*v6), std::hash<IpAddr>{}(v4));

  for (const char* bad :
       {"", "1.2.3", "1.2.3.4.5", "2001:db8::5::1", "2001:db8::5/128", "fe80::1%eth0"})
    EXPECT_FALSE(IpAddr::parse(bad)) << bad;
  EXPECT_EQ(IpAddr::parseHost("192.0.2.1/32"), v4);
  EXPECT_EQ(IpAddr::parseHost("192.0.2.1"), v4);
  EXPECT_EQ(IpAddr::parseHost("2001:db8::5/128"), v6);
  for (const char* bad :
       {"192.0.2.1/24", "192.0.2.1/128", "2001:db8::5/32", "2001:db8::5/", "x/32"})
    EXPECT_FALSE(IpAddr::parseHost(bad)) << bad;
  // IPv4 orders numerically among IPv4, and before every global IPv6.
  EXPECT_LT(IpAddr(*Ipv4Addr::parse("10.0.0.2")), IpAddr(*Ipv4Addr::parse("10.0.0.10")));
  EXPECT_LT(v4, *v6);
}

}  // namespace
}  // namespace nicoffload
