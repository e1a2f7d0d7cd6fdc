#include <gtest/gtest.h>

#include <cstdio>
#include <random>

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

}  // namespace
}  // namespace nicoffload
