// Controller: tentative ports. The libvirt hook's `migrate` (an incoming
// live migration) claims the domain's ports before QEMU starts, and libvirt
// skips `stopped`/`release` when the migration fails before that: the
// claims would stay forever, holding VFs, vDPA devices and rules (issue
// 22). So a claim made with "tentative" expires after
// daemon.tentative_ttl_ms unless a port.add without it (the hook's
// prepare, start or started of the same domain) confirms it. The expiry is
// part of the port (Port::tentative_until_ms), persisted with it, so a
// restart (kill -9 included) keeps it.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "controller_types.h"
#include "nicoffload/daemon/controller.h"
#include "request_fields.h"

namespace nicoffload::daemon {

std::int64_t Controller::claimClockMs() const {
  return wall_base_ms_ +
         std::chrono::duration_cast<std::chrono::milliseconds>(options_.now() - started_).count();
}

void Controller::noteClaim(std::int64_t until_ms) {
  const auto at = options_.now() + std::chrono::milliseconds(
                                       std::max<std::int64_t>(0, until_ms - claimClockMs()));
  next_claim_ = std::min(next_claim_, at);
}

std::size_t Controller::tentativeCount() const {
  return static_cast<std::size_t>(std::count_if(
      admission_.intent().ports.begin(), admission_.intent().ports.end(),
      [](const model::Port& p) { return p.tentative_until_ms.has_value(); }));
}

json Controller::claimJson(const model::Port& port) const {
  const std::int64_t left_ms = std::max<std::int64_t>(0, *port.tentative_until_ms - claimClockMs());
  return {{"expires_in_s", static_cast<double>(left_ms) / 1000.0},
          {"until_ms", *port.tentative_until_ms}};
}

void Controller::expireClaims() {
  next_claim_ = SteadyClock::time_point::max();
  const std::int64_t now_ms = claimClockMs();
  // Removed the way a port.remove is (admission, journal, reconcile: rules,
  // kernel objects, the VF scrubbed, the vDPA device back to the pool).
  std::vector<control::Request> batch;
  for (const auto& p : admission_.intent().ports) {
    if (!p.tentative_until_ms) continue;
    if (*p.tentative_until_ms > now_ms) {
      noteClaim(*p.tentative_until_ms);
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
  const auto replies = handle(batch);
  bool failed = false;
  for (std::size_t i = 0; i < replies.size(); ++i) {
    const json& r = replies[i];
    if (r.value("ok", false)) {
      ++counters_.tentative_expired;
      continue;
    }
    failed = true;
    spdlog::error("removing the expired tentative port {}/{} failed: {}; retried",
                  batch[i].body["vm"].get<std::string>(), batch[i].body["nic"].get<int>(),
                  r.contains("error") ? r["error"].dump() : r.dump());
  }
  // A refused removal (the state write failed, say) is tried again.
  if (failed)
    next_claim_ = std::min(next_claim_, options_.now() + std::max(options_.retry_min,
                                                                  std::chrono::milliseconds(1000)));
}

}  // namespace nicoffload::daemon
