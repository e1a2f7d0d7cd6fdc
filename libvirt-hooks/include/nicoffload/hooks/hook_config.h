// The hook's own config, /etc/nicoffload/hook.json (overridden by the
// environment variable NICOFFLOAD_HOOK_CONFIG):
//   {"socket": "/run/nicoffload/nicoffloadd.sock",  nicoffloadd's control socket
//    "timeout_ms": 3000,                              bound on the whole hook run (1..60000)
//    "on_daemon_down": "fail"}                        or "allow": start without offload
// Every key is optional; unknown keys are refused.
#pragma once

#include <cstddef>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

#include "nicoffload/common/error.h"

namespace nicoffload::hooks {

inline constexpr const char* kDefaultHookConfigPath = "/etc/nicoffload/hook.json";

enum class DaemonDownPolicy { kFail, kAllow };

struct HookConfig {
  std::string socket = "/run/nicoffload/nicoffloadd.sock";
  int timeout_ms = 3000;
  DaemonDownPolicy on_daemon_down = DaemonDownPolicy::kFail;
};

// Errors name the field: kUnknownField, kWrongType, kInvalidValue (a socket
// path that is relative, holds control bytes or does not fit sun_path; a
// timeout outside 1..60000; a policy other than "fail" / "allow").
Result<HookConfig> parseHookConfig(const nlohmann::json& doc);

// Parses the text of a hook.json: model::parseJsonInput (nesting limit,
// duplicate keys and invalid UTF-8 refused), then parseHookConfig. `source`
// names the input in errors (the file's path). Never throws (std::bad_alloc
// aside); any bytes may be given (a fuzz target calls it directly).
// Errors: kInvalidValue (not JSON, too deep), kDuplicate (a key given twice),
// and those of parseHookConfig; each field is prefixed by "<source>: ".
Result<HookConfig> parseHookConfigText(std::string_view text,
                                       std::string_view source = "hook.json");

// Reads `path` (a regular file of at most kMaxHookConfigBytes, through
// readRegularFile); an absent file gives the defaults. Errors: kIo
// (unreadable), kInvalidValue (too large, a directory, a device, a FIFO),
// and those of parseHookConfigText with `path` as the source.
Result<HookConfig> loadHookConfig(const std::string& path);
inline constexpr std::size_t kMaxHookConfigBytes = 64 * 1024;

// $NICOFFLOAD_HOOK_CONFIG if set and not empty, else kDefaultHookConfigPath.
std::string hookConfigPath();

}  // namespace nicoffload::hooks
