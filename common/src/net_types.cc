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
  // Formatted by hand: this runs for every rule and state record written
  // (snprintf was a visible share of a 100 k remote.sync).
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(17, ':');
  for (int i = 0; i < 6; ++i) {
    out[static_cast<std::size_t>(i * 3)] = kHex[bytes[i] >> 4];
    out[static_cast<std::size_t>(i * 3 + 1)] = kHex[bytes[i] & 0xF];
  }
  return out;
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
  std::string out;
  out.reserve(15);
  for (int shift = 24; shift >= 0; shift -= 8) {
    const unsigned octet = (value >> shift) & 0xFF;
    if (octet >= 100) out += static_cast<char>('0' + octet / 100);
    if (octet >= 10) out += static_cast<char>('0' + octet / 10 % 10);
    out += static_cast<char>('0' + octet % 10);
    if (shift) out += '.';
  }
  return out;
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
