// Claims: tentative ports (claims.h). A claim made with "tentative" expires
// after daemon.tentative_ttl_ms unless a port.add without it confirms it;
// the expiry is part of the port (Port::tentative_until_ms), persisted
// with it, so a restart (kill -9 included) keeps it.
#include "nicoffload/daemon/claims.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace nicoffload::daemon {

using nlohmann::json;

Claims::Claims(const model::Intent& intent, std::function<Clock::time_point()> now,
               const std::function<std::chrono::system_clock::time_point()>& wall_now,
               Clock::time_point started, std::chrono::milliseconds retry_min,
               RemovePorts remove_ports)
    : intent_(intent),
      now_(std::move(now)),
      started_(started),
      wall_base_ms_(
          std::chrono::duration_cast<std::chrono::milliseconds>(wall_now().time_since_epoch())
              .count()),
      retry_min_(retry_min),
      remove_ports_(std::move(remove_ports)) {}

std::int64_t Claims::clockMs() const {
  return wall_base_ms_ +
         std::chrono::duration_cast<std::chrono::milliseconds>(now_() - started_).count();
}

void Claims::note(std::int64_t until_ms) {
  const auto at =
      now_() + std::chrono::milliseconds(std::max<std::int64_t>(0, until_ms - clockMs()));
  next_ = std::min(next_, at);
}

void Claims::startDone() {
  if (tentativeCount() > 0) next_ = started_;
}

std::size_t Claims::tentativeCount() const {
  return static_cast<std::size_t>(
      std::count_if(intent_.ports.begin(), intent_.ports.end(),
                    [](const model::Port& p) { return p.tentative_until_ms.has_value(); }));
}

json Claims::claimJson(const model::Port& port) const {
  const std::int64_t left_ms = std::max<std::int64_t>(0, *port.tentative_until_ms - clockMs());
  return {{"expires_in_s", static_cast<double>(left_ms) / 1000.0},
          {"until_ms", *port.tentative_until_ms}};
}

void Claims::expire() {
  next_ = Clock::time_point::max();
  const std::int64_t now_ms = clockMs();
  // Removed the way a port.remove is (admission, journal, reconcile: rules,
  // kernel objects, the VF scrubbed, the vDPA device back to the pool).
  std::vector<control::Request> batch;
  for (const auto& p : intent_.ports) {
    if (!p.tentative_until_ms) continue;
    if (*p.tentative_until_ms > now_ms) {
      note(*p.tentative_until_ms);
      continue;
    }
    spdlog::warn(
        "port {}: tentative claim expired {} ms ago, never confirmed (no prepare/start/started "
        "followed the hook's migrate: the incoming migration was abandoned, and libvirt sends no "
        "stopped/release then); removing the port, its VF and vDPA device",
        p.key.str(), now_ms - *p.tentative_until_ms);
    batch.push_back({0, json{{"op", "port.remove"}, {"vm", p.key.vm}, {"nic", p.key.nic}}, 0});
  }
  if (batch.empty()) return;
  const auto replies = remove_ports_(batch);
  bool failed = false;
  for (std::size_t i = 0; i < replies.size(); ++i) {
    const json& r = replies[i];
    if (r.value("ok", false)) {
      ++expired_;
      continue;
    }
    failed = true;
    spdlog::error("removing the expired tentative port {}/{} failed: {}; retried",
                  batch[i].body["vm"].get<std::string>(), batch[i].body["nic"].get<int>(),
                  r.contains("error") ? r["error"].dump() : r.dump());
  }
  // A refused removal (the state write failed, say) is tried again.
  if (failed)
    next_ = std::min(next_, now_() + std::max(retry_min_, std::chrono::milliseconds(1000)));
}

}  // namespace nicoffload::daemon
