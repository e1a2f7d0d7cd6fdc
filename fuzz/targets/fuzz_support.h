// What the fuzz targets share: a per-process scratch directory and the
// source tree's paths. A target never catches: an exception escaping the
// code under test is a finding (libFuzzer reports the abort as a crash).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

namespace nicoffload::fuzz {

inline std::string_view asText(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A directory under /dev/shm (or /tmp) for this process, removed when it exits.
inline const std::string& scratchDir() {
  static const std::string dir = [] {
    // tmpfs when there is one: the daemon targets fsync their state per input.
    std::string tmpl = std::filesystem::is_directory("/dev/shm") ? "/dev/shm/nfo-fuzz-XXXXXX" : "/tmp/nfo-fuzz-XXXXXX";
    std::string d = ::mkdtemp(tmpl.data());
    static std::string keep = d;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return d;
  }();
  return dir;
}

inline void writeFile(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

inline std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline std::string sourcePath(const std::string& rel) {
  return std::string(NICOFFLOAD_SOURCE_DIR) + "/" + rel;
}

}  // namespace nicoffload::fuzz
