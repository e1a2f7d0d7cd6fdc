// A hash whose value is fixed by this file alone: the same input gives the
// same 64-bit value on every build, compiler and run. Rule ids and derived
// device names are made from it, so a re-plan of unchanged intent yields the
// same ids (and a restarted daemon recognises what it installed before).
// Not for security.
#pragma once

#include <cstdint>
#include <string_view>

namespace nicoffload {

class StableHasher {
 public:
  // FNV-1a 64 over the fed bytes, finished with a splitmix64 avalanche so that
  // nearby inputs give far-apart ids.
  StableHasher& bytes(const void* data, std::size_t len) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    for (std::size_t i = 0; i < len; ++i) {
      h_ ^= p[i];
      h_ *= 0x100000001b3ULL;
    }
    return *this;
  }
  StableHasher& u8(std::uint8_t v) { return bytes(&v, 1); }
  StableHasher& u16(std::uint16_t v) {
    const std::uint8_t b[2] = {static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
    return bytes(b, 2);
  }
  StableHasher& u32(std::uint32_t v) {
    const std::uint8_t b[4] = {static_cast<std::uint8_t>(v >> 24),
                               static_cast<std::uint8_t>(v >> 16),
                               static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
    return bytes(b, 4);
  }
  StableHasher& u64(std::uint64_t v) {
    u32(static_cast<std::uint32_t>(v >> 32));
    return u32(static_cast<std::uint32_t>(v));
  }
  // Length-prefixed so that ("ab","c") and ("a","bc") differ.
  StableHasher& str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    return bytes(s.data(), s.size());
  }

  std::uint64_t finish() const {
    std::uint64_t z = h_ + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t h_ = 0xcbf29ce484222325ULL;
};

}  // namespace nicoffload
