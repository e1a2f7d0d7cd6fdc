// Value types for link-layer, IPv4 and IPv6 addresses, with strict parsers.
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

// IPv6 address (RFC 4291) in network byte order, so it orders numerically.
struct Ipv6Addr {
  std::array<std::uint8_t, 16> bytes{};

  // Parses the text forms of RFC 4291 §2.2 ("2001:db8::5", "::1",
  // "::ffff:192.0.2.1"), as inet_pton(AF_INET6) does; no zone ("%eth0"), no
  // brackets. Returns nullopt on anything else.
  static std::optional<Ipv6Addr> parse(std::string_view text);

  std::string str() const;  // RFC 5952 canonical text ("2001:db8::5")
  bool isUnspecified() const;                                        // ::
  bool isLoopback() const;                                           // ::1
  bool isMulticast() const { return bytes[0] == 0xFF; }              // ff00::/8
  bool isLinkLocal() const { return bytes[0] == 0xFE && (bytes[1] & 0xC0) == 0x80; }  // fe80::/10
  bool isV4Mapped() const;                                           // ::ffff:0:0/96

  auto operator<=>(const Ipv6Addr&) const = default;
};

// "addr/len" (len 0..128); a bare address parses with length 128.
struct Ipv6Prefix {
  Ipv6Addr addr;
  std::uint8_t len = 128;

  static std::optional<Ipv6Prefix> parse(std::string_view text);
  std::string str() const;
  // Whether `a` lies in the prefix (its first `len` bits equal addr's).
  bool contains(const Ipv6Addr& a) const;
  auto operator<=>(const Ipv6Prefix&) const = default;
};

// An IPv4 or an IPv6 address in one value: a remote's /32 or /128, a next
// hop. IPv4 is held as v4-mapped (::ffff:a.b.c.d, RFC 4291 §2.5.5.2), so
// that both families order, hash and compare as one 16-byte value; an IPv4
// address converts implicitly, so IPv4-only code reads as before.
class IpAddr {
 public:
  IpAddr() : IpAddr(Ipv4Addr{}) {}       // 0.0.0.0
  IpAddr(Ipv4Addr a);                    // NOLINT(google-explicit-constructor): widening
  IpAddr(const Ipv6Addr& a) : v6_(a) {}  // NOLINT(google-explicit-constructor): widening

  // A dotted quad is IPv4; anything else is parsed as IPv6 text. A
  // v4-mapped IPv6 text ("::ffff:192.0.2.1") reads as that IPv4 address.
  static std::optional<IpAddr> parse(std::string_view text);
  // A host route's text: an address, or an address with its host length
  // ("192.0.2.5/32", "2001:db8::5/128"); any other length is refused.
  static std::optional<IpAddr> parseHost(std::string_view text);

  bool isV4() const { return v6_.isV4Mapped(); }
  Ipv4Addr v4() const;                        // the IPv4 address; 0.0.0.0 when !isV4()
  const Ipv6Addr& v6() const { return v6_; }  // as stored (v4-mapped for IPv4)
  std::uint8_t hostLength() const { return isV4() ? 32 : 128; }  // a host route's length

  std::string str() const;  // dotted quad or RFC 5952
  auto operator<=>(const IpAddr&) const = default;

 private:
  Ipv6Addr v6_;
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

template <>
struct std::hash<nicoffload::Ipv6Addr> {
  std::size_t operator()(const nicoffload::Ipv6Addr& a) const noexcept {
    std::uint64_t hi = 0, lo = 0;
    for (int i = 0; i < 8; ++i) hi = (hi << 8) | a.bytes[static_cast<std::size_t>(i)];
    for (int i = 8; i < 16; ++i) lo = (lo << 8) | a.bytes[static_cast<std::size_t>(i)];
    return std::hash<std::uint64_t>{}(hi ^ (lo * 0x9e3779b97f4a7c15ULL));
  }
};

template <>
struct std::hash<nicoffload::IpAddr> {
  std::size_t operator()(const nicoffload::IpAddr& a) const noexcept {
    return std::hash<nicoffload::Ipv6Addr>{}(a.v6());
  }
};
