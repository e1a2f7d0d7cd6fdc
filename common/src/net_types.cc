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

// RFC 4291 §2.2 by hand (the pure core keeps out of <arpa/inet.h>): up to
// eight groups of 1-4 hex digits, at most one "::" standing for one or more
// zero groups, and optionally a dotted quad as the last 32 bits.
std::optional<Ipv6Addr> Ipv6Addr::parse(std::string_view text) {
  if (text.size() < 2 || text.size() > 45) return std::nullopt;
  std::array<std::uint16_t, 8> groups{};
  std::size_t count = 0;          // groups written
  std::optional<std::size_t> gap;  // where "::" stands
  std::size_t i = 0;
  if (text.substr(0, 2) == "::") {
    gap = 0;
    i = 2;
  } else if (text[0] == ':') {
    return std::nullopt;
  }
  while (i < text.size()) {
    if (count == 8) return std::nullopt;
    // A dotted quad: only as the last 32 bits.
    const auto rest = text.substr(i);
    if (rest.find('.') != std::string_view::npos && rest.find(':') == std::string_view::npos) {
      auto v4 = Ipv4Addr::parse(rest);
      if (!v4 || count > 6) return std::nullopt;
      groups[count++] = static_cast<std::uint16_t>(v4->value >> 16);
      groups[count++] = static_cast<std::uint16_t>(v4->value & 0xFFFF);
      i = text.size();
      break;
    }
    unsigned v = 0;
    std::size_t digits = 0;
    while (i < text.size() && hexDigit(text[i]) >= 0) {
      if (++digits > 4) return std::nullopt;
      v = v * 16 + static_cast<unsigned>(hexDigit(text[i]));
      ++i;
    }
    if (digits == 0) return std::nullopt;
    groups[count++] = static_cast<std::uint16_t>(v);
    if (i == text.size()) break;
    if (text[i] != ':') return std::nullopt;
    ++i;
    if (i < text.size() && text[i] == ':') {
      if (gap) return std::nullopt;  // a second "::"
      gap = count;
      ++i;
    } else if (i == text.size()) {
      return std::nullopt;  // a trailing single ':'
    }
  }
  if (gap ? count > 7 : count != 8) return std::nullopt;
  Ipv6Addr a;
  std::array<std::uint16_t, 8> full{};
  if (gap) {
    const std::size_t tail = count - *gap;
    for (std::size_t k = 0; k < *gap; ++k) full[k] = groups[k];
    for (std::size_t k = 0; k < tail; ++k) full[8 - tail + k] = groups[*gap + k];
  } else {
    full = groups;
  }
  for (std::size_t k = 0; k < 8; ++k) {
    a.bytes[2 * k] = static_cast<std::uint8_t>(full[k] >> 8);
    a.bytes[2 * k + 1] = static_cast<std::uint8_t>(full[k] & 0xFF);
  }
  return a;
}

// RFC 5952 §4: lower case, no leading zeros, the longest run of two or more
// zero groups (the first of equal runs) as "::", and ::ffff:a.b.c.d for a
// v4-mapped address.
std::string Ipv6Addr::str() const {
  std::array<std::uint16_t, 8> g{};
  for (std::size_t k = 0; k < 8; ++k)
    g[k] = static_cast<std::uint16_t>((bytes[2 * k] << 8) | bytes[2 * k + 1]);
  if (isV4Mapped())
    return "::ffff:" + Ipv4Addr{(std::uint32_t{g[6]} << 16) | g[7]}.str();
  std::size_t best = 8, best_len = 0;
  for (std::size_t k = 0; k < 8;) {
    if (g[k] != 0) {
      ++k;
      continue;
    }
    std::size_t j = k;
    while (j < 8 && g[j] == 0) ++j;
    if (j - k > best_len && j - k >= 2) {
      best = k;
      best_len = j - k;
    }
    k = j;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(39);
  for (std::size_t k = 0; k < 8; ++k) {
    if (k == best) {
      out += "::";
      k += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      const unsigned d = (g[k] >> shift) & 0xF;
      if (d != 0 || started || shift == 0) {
        out += kHex[d];
        started = true;
      }
    }
  }
  return out;
}

bool Ipv6Addr::isUnspecified() const {
  for (auto b : bytes)
    if (b != 0) return false;
  return true;
}

bool Ipv6Addr::isLoopback() const {
  for (std::size_t i = 0; i < 15; ++i)
    if (bytes[i] != 0) return false;
  return bytes[15] == 1;
}

bool Ipv6Addr::isV4Mapped() const {
  for (std::size_t i = 0; i < 10; ++i)
    if (bytes[i] != 0) return false;
  return bytes[10] == 0xFF && bytes[11] == 0xFF;
}

std::optional<Ipv6Prefix> Ipv6Prefix::parse(std::string_view text) {
  const auto slash = text.find('/');
  auto addr = Ipv6Addr::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  Ipv6Prefix prefix{*addr, 128};
  if (slash != std::string_view::npos) {
    const auto lenText = text.substr(slash + 1);
    unsigned len = 0;
    auto [next, ec] = std::from_chars(lenText.data(), lenText.data() + lenText.size(), len);
    if (lenText.empty() || ec != std::errc() || next != lenText.data() + lenText.size() ||
        len > 128)
      return std::nullopt;
    prefix.len = static_cast<std::uint8_t>(len);
  }
  return prefix;
}

std::string Ipv6Prefix::str() const { return addr.str() + "/" + std::to_string(len); }

bool Ipv6Prefix::contains(const Ipv6Addr& a) const {
  const std::size_t full = len / 8;
  for (std::size_t i = 0; i < full; ++i)
    if (a.bytes[i] != addr.bytes[i]) return false;
  if (const unsigned rest = len % 8; rest != 0) {
    const auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
    if ((a.bytes[full] & mask) != (addr.bytes[full] & mask)) return false;
  }
  return true;
}

IpAddr::IpAddr(Ipv4Addr a) {
  v6_.bytes[10] = 0xFF;
  v6_.bytes[11] = 0xFF;
  for (std::size_t i = 0; i < 4; ++i)
    v6_.bytes[12 + i] = static_cast<std::uint8_t>(a.value >> (24 - 8 * i));
}

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  if (text.find(':') == std::string_view::npos) {
    if (auto v4 = Ipv4Addr::parse(text)) return IpAddr(*v4);
    return std::nullopt;
  }
  if (auto v6 = Ipv6Addr::parse(text)) return IpAddr(*v6);
  return std::nullopt;
}

std::optional<IpAddr> IpAddr::parseHost(std::string_view text) {
  const auto slash = text.find('/');
  auto a = parse(text.substr(0, slash));
  if (!a || slash == std::string_view::npos) return a;
  if (text.substr(slash + 1) != std::to_string(a->hostLength())) return std::nullopt;
  return a;
}

Ipv4Addr IpAddr::v4() const {
  if (!isV4()) return {};
  std::uint32_t v = 0;
  for (std::size_t i = 12; i < 16; ++i) v = (v << 8) | v6_.bytes[i];
  return Ipv4Addr{v};
}

std::string IpAddr::str() const { return isV4() ? v4().str() : v6_.str(); }

}  // namespace nicoffload
