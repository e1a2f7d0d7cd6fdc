// The hook's own config, /etc/nicoffload/hook.json (overridden by the
// environment variable NICOFFLOAD_HOOK_CONFIG):
//   {"socket": "/run/nicoffload/nicoffloadd.sock",  nicoffloadd's control socket
//    "timeout_ms": 3000,                              bound on the whole hook run (1..60000)
//    "on_daemon_down": "fail"}                        or "allow": start without offload
// Every key is optional; unknown keys are refused.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "nicoffload/common/error.h"

namespace nicoffload::hooks {

inline constexpr const char* kDefaultHookConfigPath = "/etc/nicoffload/hook.json";

enum class DaemonDownPolicy { kFail, kAllow };

struct HookConfig {
  std::string socket = "/run/nicoffload/nicoffloadd.sock";
  int timeout_ms = 3000;
  DaemonDownPolicy on_daemon_down = DaemonDownPolicy::kFail;
};

// Errors name the field: kUnknownField, kWrongType, kInvalidValue.
Result<HookConfig> parseHookConfig(const nlohmann::json& doc);

// Reads `path`; an absent file gives the defaults. Errors: kIo (unreadable),
// kInvalidValue (not JSON), and those of parseHookConfig, prefixed by the path.
Result<HookConfig> loadHookConfig(const std::string& path);

// $NICOFFLOAD_HOOK_CONFIG if set and not empty, else kDefaultHookConfigPath.
std::string hookConfigPath();

}  // namespace nicoffload::hooks
