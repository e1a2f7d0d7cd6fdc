#include "nicoffload/common/net_types.h"

#include <charconv>
#include <cstdio>

namespace nicoffload {
namespace {

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<MacAddr> MacAddr::parse(std::string_view text) {
  if (text.size() != 17) return std::nullopt;
  MacAddr mac;
  for (std::size_t i = 0; i < 6; ++i) {
    const std::size_t pos = i * 3;
    const int hi = hexDigit(text[pos]);
    const int lo = hexDigit(text[pos + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    if (i < 5 && text[pos + 2] != ':') return std::nullopt;
    mac.bytes[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return mac;
}

std::string MacAddr::str() const {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1],
                bytes[2], bytes[3], bytes[4], bytes[5]);
  return buf;
}

bool MacAddr::isZero() const {
  for (auto b : bytes)
    if (b != 0) return false;
  return true;
}

std::optional<Ipv4Addr> Ipv4Addr::parse(std::string_view text) {
  std::uint32_t value = 0;
  const char* p = text.data();
  const char* end = text.data() + text.size();
  for (int octet = 0; octet < 4; ++octet) {
    if (p == end || *p < '0' || *p > '9') return std::nullopt;
    // Leading zeros ("010") are refused: some tools read them as octal.
    if (*p == '0' && p + 1 != end && p[1] >= '0' && p[1] <= '9') return std::nullopt;
    unsigned v = 0;
    auto [next, ec] = std::from_chars(p, end, v);
    if (ec != std::errc() || v > 255 || next - p > 3) return std::nullopt;
    value = (value << 8) | v;
    p = next;
    if (octet < 3) {
      if (p == end || *p != '.') return std::nullopt;
      ++p;
    }
  }
  if (p != end) return std::nullopt;
  return Ipv4Addr{value};
}

std::string Ipv4Addr::str() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", value >> 24, (value >> 16) & 0xFF,
                (value >> 8) & 0xFF, value & 0xFF);
  return buf;
}

std::optional<Ipv4Prefix> Ipv4Prefix::parse(std::string_view text) {
  const auto slash = text.find('/');
  auto addr = Ipv4Addr::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  Ipv4Prefix prefix{*addr, 32};
  if (slash != std::string_view::npos) {
    const auto lenText = text.substr(slash + 1);
    unsigned len = 0;
    auto [next, ec] = std::from_chars(lenText.data(), lenText.data() + lenText.size(), len);
    if (lenText.empty() || ec != std::errc() || next != lenText.data() + lenText.size() ||
        len > 32)
      return std::nullopt;
    prefix.len = static_cast<std::uint8_t>(len);
  }
  return prefix;
}

std::string Ipv4Prefix::str() const { return addr.str() + "/" + std::to_string(len); }

}  // namespace nicoffload
