// Temporary directories that are removed when the test program exits.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

namespace nicoffload::testing {

inline std::string makeTempDir(const char* prefix) {
  static std::mutex mu;
  static std::vector<std::string> dirs;
  static const bool registered = [] {
    std::atexit([] {
      for (const auto& d : dirs) {
        std::error_code ec;
        std::filesystem::remove_all(d, ec);
      }
    });
    return true;
  }();
  (void)registered;
  std::string tmpl = std::string("/tmp/") + prefix + "-XXXXXX";
  std::string dir = mkdtemp(tmpl.data());
  std::lock_guard<std::mutex> lock(mu);
  dirs.push_back(dir);
  return dir;
}

}  // namespace nicoffload::testing
