// The error line, the socket path and the calls to nicoffloadd that the
// subcommands of nicoffloadctl share (cli_common.h).
#include "cli_common.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "nicoffload/daemon/control.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/model/profile_dirs.h"

namespace nicoffload::cli {

std::string printableError(const Error& e) { return printable(e.describe(), kMaxErrorLineBytes); }

int fail(const Error& e) {
  std::fprintf(stderr, "nicoffloadctl: error: %s\n", printableError(e).c_str());
  return kExitInput;
}

std::string defaultProfileDir() {
  return model::defaultProfileDir(NICOFFLOAD_PROFILE_INSTALL_DIR, NICOFFLOAD_PROFILE_SOURCE_DIR);
}

void addDaemonOptions(CLI::App* cmd, DaemonOptions& daemon) {
  cmd->add_option("--socket", daemon.socket, "nicoffloadd control socket");
  cmd->add_option("--config", daemon.config, "host config to read the socket path from")
      ->check(CLI::ExistingFile);
  cmd->add_option("--timeout", daemon.timeout_ms, "milliseconds to wait for nicoffloadd")
      ->capture_default_str();
  cmd->add_flag("--json", daemon.json, "print the reply as JSON");
}

namespace {

std::string socketPath(const DaemonOptions& d) {
  if (!d.socket.empty()) return d.socket;
  if (const char* env = std::getenv("NICOFFLOAD_SOCKET"); env && *env) return env;
  if (!d.config.empty())
    if (auto host = model::loadHostConfig(d.config)) return host->socket_path;
  if (::access("/etc/nicoffload/host.json", R_OK) == 0)
    if (auto host = model::loadHostConfig("/etc/nicoffload/host.json")) return host->socket_path;
  return model::HostConfig{}.socket_path;
}

// Connects to nicoffloadd; on failure says why and sets the exit status.
std::unique_ptr<daemon::control::Client> connectDaemon(const DaemonOptions& d, int& rc) {
  auto client = daemon::control::Client::connect(socketPath(d), d.timeout_ms);
  if (!client) {
    std::fprintf(stderr, "nicoffloadctl: %s\n",
                 printable(client.error().message, kMaxErrorLineBytes).c_str());
    rc = client.error().code == ErrorCode::kNotFound ? kExitNotRunning : kExitInput;
    return nullptr;
  }
  return std::move(client).value();
}

}  // namespace

std::optional<nlohmann::json> callDaemon(const DaemonOptions& d, const nlohmann::json& request,
                                         int& rc) {
  auto client = connectDaemon(d, rc);
  if (!client) return std::nullopt;
  // deadline_ms (CLOCK_MONOTONIC ms): a request nicoffloadd only comes to
  // after --timeout, when we no longer wait for it, is refused, not applied.
  nlohmann::json stamped = request;
  if (stamped.is_object() && !stamped.contains("deadline_ms"))
    stamped["deadline_ms"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(
            (std::chrono::steady_clock::now() + std::chrono::milliseconds(d.timeout_ms))
                .time_since_epoch())
            .count();
  auto reply = client->call(stamped, d.timeout_ms);
  if (!reply) {
    const auto& e = reply.error();
    std::fprintf(stderr, "nicoffloadctl: error: %s\n", printableError(e).c_str());
    const auto& info = errorInfo(e.code);
    if (!info.suggestion.empty())
      std::fprintf(stderr, "  (%s: %s)\n", std::string(info.title).c_str(),
                   std::string(info.suggestion).c_str());
    rc = e.code == ErrorCode::kNotFound ? kExitNotFound : kExitInput;
    return std::nullopt;
  }
  return std::move(reply).value();
}

bool callDaemonPaged(const DaemonOptions& d, nlohmann::json request, const char* key,
                     const std::function<void(const nlohmann::json&)>& each, int& rc) {
  constexpr std::size_t kPage = 2000;
  auto client = connectDaemon(d, rc);
  if (!client) return false;
  nlohmann::json next = 0;
  while (!next.is_null()) {
    request["offset"] = next;
    request["limit"] = kPage;
    auto reply = client->call(request, d.timeout_ms);
    if (!reply) {
      std::fprintf(stderr, "nicoffloadctl: error: %s\n", printableError(reply.error()).c_str());
      rc = reply.error().code == ErrorCode::kNotFound ? kExitNotFound : kExitInput;
      return false;
    }
    const auto& page = *reply;
    if (!page.is_object() || !page.contains(key) || !page[key].is_array() ||
        !page.contains("next")) {
      std::fprintf(
          stderr, "nicoffloadctl: error: unexpected reply from nicoffloadd (no page of %s)\n", key);
      rc = kExitInternal;
      return false;
    }
    for (const auto& item : page[key]) each(item);
    const auto& after = page["next"];
    if (!after.is_null() &&
        (!after.is_number_unsigned() || after.get<std::uint64_t>() <= next.get<std::uint64_t>())) {
      std::fprintf(stderr,
                   "nicoffloadctl: error: unexpected reply from nicoffloadd (page %s after %s)\n",
                   after.dump().c_str(), next.dump().c_str());
      rc = kExitInternal;
      return false;
    }
    next = after;
  }
  return true;
}

int printReply(const DaemonOptions& d, const nlohmann::json& reply,
               const std::function<void()>& text) {
  if (d.json)
    std::cout << reply.dump(2) << "\n";
  else
    text();
  return kExitOk;
}

}  // namespace nicoffload::cli
