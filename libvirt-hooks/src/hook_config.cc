#include "nicoffload/hooks/hook_config.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace nicoffload::hooks {

Result<HookConfig> parseHookConfig(const nlohmann::json& doc) {
  if (!doc.is_object())
    return makeError(ErrorCode::kWrongType, "hook.json", doc.dump(),
                     "the hook config must be a JSON object");
  HookConfig c;
  for (const auto& [key, value] : doc.items()) {
    if (key == "socket") {
      if (!value.is_string())
        return makeError(ErrorCode::kWrongType, key, value.dump(), "must be a string");
      c.socket = value.get<std::string>();
      if (c.socket.empty() || c.socket.front() != '/')
        return makeError(ErrorCode::kInvalidValue, key, c.socket, "must be an absolute path");
    } else if (key == "timeout_ms") {
      if (!value.is_number_integer())
        return makeError(ErrorCode::kWrongType, key, value.dump(),
                         "must be an integer (milliseconds)");
      const auto ms = value.get<long long>();
      if (ms < 1 || ms > 60000)
        return makeError(ErrorCode::kInvalidValue, key, value.dump(),
                         "must lie in 1..60000 ms (libvirt waits for the hook)");
      c.timeout_ms = static_cast<int>(ms);
    } else if (key == "on_daemon_down") {
      const std::string v = value.is_string() ? value.get<std::string>() : value.dump();
      if (v == "fail") {
        c.on_daemon_down = DaemonDownPolicy::kFail;
      } else if (v == "allow") {
        c.on_daemon_down = DaemonDownPolicy::kAllow;
      } else {
        return makeError(ErrorCode::kInvalidValue, key, v, "must be \"fail\" or \"allow\"");
      }
    } else {
      return makeError(ErrorCode::kUnknownField, key, "",
                       "unknown key '" + key + "' (known: socket, timeout_ms, on_daemon_down)");
    }
  }
  return c;
}

Result<HookConfig> loadHookConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return HookConfig{};
    return makeError(ErrorCode::kIo, path, "", "cannot read " + path + ": " + std::strerror(errno));
  }
  std::stringstream text;
  text << in.rdbuf();
  const auto doc = nlohmann::json::parse(text.str(), nullptr, false);
  if (doc.is_discarded())
    return makeError(ErrorCode::kInvalidValue, path, "", path + " is not valid JSON");
  auto c = parseHookConfig(doc);
  if (!c) {
    Error e = c.error();
    e.field = path + ": " + e.field;
    return e;
  }
  return c;
}

std::string hookConfigPath() {
  if (const char* env = std::getenv("NICOFFLOAD_HOOK_CONFIG"); env && *env) return env;
  return kDefaultHookConfigPath;
}

}  // namespace nicoffload::hooks
