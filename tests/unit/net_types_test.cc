#include <gtest/gtest.h>

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
