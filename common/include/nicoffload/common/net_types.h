// Value types for link-layer and IPv4 addresses, with strict parsers.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace nicoffload {

// IEEE 802 MAC-48 address, stored in transmission (network) order.
struct MacAddr {
  std::array<std::uint8_t, 6> bytes{};

  // Parses "aa:bb:cc:dd:ee:ff" (exactly six two-digit hex groups, ':'
  // separated, either case). Returns nullopt on anything else.
  static std::optional<MacAddr> parse(std::string_view text);

  std::string str() const;  // lower-case "aa:bb:cc:dd:ee:ff"
  bool isZero() const;
  bool isMulticast() const { return (bytes[0] & 0x01) != 0; }  // I/G bit; includes broadcast

  auto operator<=>(const MacAddr&) const = default;
};

// IPv4 address (RFC 791) in host byte order, so it orders numerically.
struct Ipv4Addr {
  std::uint32_t value = 0;

  // Parses a dotted quad "a.b.c.d" (each 0..255, no leading '+', no
  // shorthand). Returns nullopt on anything else.
  static std::optional<Ipv4Addr> parse(std::string_view text);

  std::string str() const;
  bool isUnspecified() const { return value == 0; }
  bool isMulticast() const { return (value >> 28) == 0xE; }   // 224.0.0.0/4
  bool isLoopback() const { return (value >> 24) == 127; }    // 127.0.0.0/8
  bool isBroadcast() const { return value == 0xFFFFFFFFu; }

  auto operator<=>(const Ipv4Addr&) const = default;
};

// "a.b.c.d/len" split into address and prefix length; a bare address parses
// with length 32. Returns nullopt when either half does not parse or the
// length is outside 0..32.
struct Ipv4Prefix {
  Ipv4Addr addr;
  std::uint8_t len = 32;

  static std::optional<Ipv4Prefix> parse(std::string_view text);
  std::string str() const;
  // Whether `a` lies in the prefix (its first `len` bits equal addr's).
  bool contains(Ipv4Addr a) const {
    if (len == 0) return true;
    const std::uint32_t mask = len >= 32 ? ~std::uint32_t{0} : ~(~std::uint32_t{0} >> len);
    return (a.value & mask) == (addr.value & mask);
  }
  auto operator<=>(const Ipv4Prefix&) const = default;
};

}  // namespace nicoffload

template <>
struct std::hash<nicoffload::Ipv4Addr> {
  std::size_t operator()(const nicoffload::Ipv4Addr& a) const noexcept {
    return std::hash<std::uint32_t>{}(a.value);
  }
};

template <>
struct std::hash<nicoffload::MacAddr> {
  std::size_t operator()(const nicoffload::MacAddr& m) const noexcept {
    std::uint64_t v = 0;
    for (auto b : m.bytes) v = (v << 8) | b;
    return std::hash<std::uint64_t>{}(v);
  }
};
