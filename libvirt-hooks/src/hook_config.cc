#include "nicoffload/hooks/hook_config.h"

#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "nicoffload/common/file_read.h"
#include "nicoffload/model/json_input.h"

namespace nicoffload::hooks {

namespace {

using nlohmann::json;

// A value echoed in an error: scalars as written, containers by type only.
std::string shown(const json& value) {
  if (value.is_structured()) return value.type_name();
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool hasControlBytes(const std::string& s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  return false;
}

}  // namespace

Result<HookConfig> parseHookConfig(const json& doc) {
  if (!doc.is_object())
    return makeError(ErrorCode::kWrongType, "hook.json", shown(doc),
                     "the hook config must be a JSON object");
  HookConfig c;
  for (const auto& [key, value] : doc.items()) {
    if (key == "socket") {
      if (!value.is_string())
        return makeError(ErrorCode::kWrongType, key, shown(value), "must be a string");
      c.socket = value.get<std::string>();
      if (c.socket.empty() || c.socket.front() != '/')
        return makeError(ErrorCode::kInvalidValue, key, c.socket, "must be an absolute path");
      // A NUL would cut the path short in sun_path, silently.
      if (hasControlBytes(c.socket))
        return makeError(ErrorCode::kInvalidValue, key, c.socket,
                         "must not hold control characters");
      if (c.socket.size() >= sizeof(sockaddr_un{}.sun_path))
        return makeError(ErrorCode::kInvalidValue, key, c.socket,
                         "is " + std::to_string(c.socket.size()) +
                             " bytes; a unix socket path holds at most " +
                             std::to_string(sizeof(sockaddr_un{}.sun_path) - 1));
    } else if (key == "timeout_ms") {
      if (!value.is_number_integer())
        return makeError(ErrorCode::kWrongType, key, shown(value),
                         "must be an integer (milliseconds)");
      // Unsigned first: a value above INT64_MAX is kept unsigned by nlohmann.
      const bool in_range =
          value.is_number_unsigned()
              ? value.get<std::uint64_t>() >= 1 && value.get<std::uint64_t>() <= 60000
              : value.get<std::int64_t>() >= 1 && value.get<std::int64_t>() <= 60000;
      if (!in_range)
        return makeError(ErrorCode::kInvalidValue, key, shown(value),
                         "must lie in 1..60000 ms (libvirt waits for the hook)");
      c.timeout_ms = static_cast<int>(value.get<std::int64_t>());
    } else if (key == "on_daemon_down") {
      const std::string v = value.is_string() ? value.get<std::string>() : shown(value);
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

Result<HookConfig> parseHookConfigText(std::string_view text, std::string_view source) {
  auto doc = model::parseJsonInput(text, source);
  if (!doc) return doc.error();  // its field already names the source
  auto c = parseHookConfig(*doc);
  if (!c) {
    const Error& e = c.error();
    return makeError(e.code, std::string(source) + ": " + e.field, e.value, e.message);
  }
  return c;
}

Result<HookConfig> loadHookConfig(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) return HookConfig{};
  // A regular file of at most kMaxHookConfigBytes: a directory, a device or
  // a FIFO at the path is an error naming it, never a hang of the hook.
  auto text = readRegularFile(path, kMaxHookConfigBytes);
  if (!text) return text.error();
  return parseHookConfigText(*text, path);
}

std::string hookConfigPath() {
  if (const char* env = std::getenv("NICOFFLOAD_HOOK_CONFIG"); env && *env) return env;
  return kDefaultHookConfigPath;
}

}  // namespace nicoffload::hooks
