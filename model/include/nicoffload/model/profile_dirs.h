// Where the named hardware profiles are, for nicoffloadd and nicoffloadctl.
//
// The installed profiles sit at <prefix>/share/nicoffload/hw-profiles next to
// <prefix>/sbin/<binary>. The prefix is found from the running binary
// (/proc/self/exe), not only from the one compiled in, so that the same build
// serves `cmake --install build` (/usr/local) and the Debian package built
// from it by CPack (/usr, tools/package).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace nicoffload::model {

// The profile directory that belongs to the binary at `exe`
// (<exe>/../../share/nicoffload/hw-profiles), or "" when there is none.
inline std::string profileDirBesideBinary(const std::filesystem::path& exe) {
  if (exe.empty()) return {};
  const auto dir = exe.parent_path().parent_path() / "share" / "nicoffload" / "hw-profiles";
  return ::access(dir.c_str(), R_OK) == 0 ? dir.string() : std::string();
}

// The default profile directory, first found of: $NICOFFLOAD_PROFILE_DIR; the
// one beside the running binary; `compiled_install_dir` (the build's install
// prefix); `source_dir` (the source tree, for binaries run from the build).
inline std::string defaultProfileDir(const std::string& compiled_install_dir,
                                     const std::string& source_dir) {
  if (const char* env = std::getenv("NICOFFLOAD_PROFILE_DIR"); env && *env) return env;
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    if (auto beside = profileDirBesideBinary(exe); !beside.empty()) return beside;
  }
  if (::access(compiled_install_dir.c_str(), R_OK) == 0) return compiled_install_dir;
  return source_dir;
}

}  // namespace nicoffload::model
