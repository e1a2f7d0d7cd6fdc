// A part of the controller: tentative ports (issue 22). The libvirt hook's
// `migrate` (an incoming live migration) claims the domain's ports before
// QEMU starts, with "tentative"; libvirt skips `stopped`/`release` when the
// migration fails before that, so the claims would stay forever, holding
// VFs, vDPA devices and rules. A tentative claim therefore expires after
// daemon.tentative_ttl_ms unless a port.add without "tentative" (the hook's
// prepare, start or started of the same domain) confirms it.
//
// The expiry is part of the port (Port::tentative_until_ms, set by
// Admission), persisted with it, so a restart (kill -9 included) keeps it.
// It is wall time, so that it means the same after a restart; while the
// daemon runs, time goes by the steady clock from the wall time read at
// start (the claims' clock), so that a step of the wall clock neither
// expires nor prolongs a claim.
//
// This part keeps the claims' clock and when to look at the claims next;
// it removes an expired port through the controller (RemovePorts), the way
// a port.remove does.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "nicoffload/daemon/control.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::daemon {

class Claims {
 public:
  using Clock = std::chrono::steady_clock;
  // Removes ports as a batch of requests does (Controller::handle with
  // port.remove requests): one reply per request, in order, each with "ok".
  using RemovePorts = std::function<std::vector<nlohmann::json>(std::vector<control::Request>)>;

  // `intent` (the ports and their expiries) outlives the part. `now`: the
  // daemon's clock; `wall_now`: read once, here; `started`: the daemon's
  // start on `now`. A removal refused is tried again after
  // max(retry_min, 1 s).
  Claims(const model::Intent& intent, std::function<Clock::time_point()> now,
         const std::function<std::chrono::system_clock::time_point()>& wall_now,
         Clock::time_point started, std::chrono::milliseconds retry_min, RemovePorts remove_ports);

  // The claims' clock: wall time at start plus steady time since, in ms
  // since the Unix epoch.
  std::int64_t clockMs() const;
  // A tentative port expires at `until_ms` (the claims' clock): expire()
  // is due then.
  void note(std::int64_t until_ms);
  // After the start: tentative ports held across the restart are looked at
  // by the first tick().
  void startDone();
  // When expire() is due; time_point::max() when no claim is held.
  Clock::time_point next() const { return next_; }
  // Removes every tentative port past its expiry (as port.remove does:
  // rules, kernel objects, VF, vDPA device back to the pool), logged and
  // counted; schedules the next look (the earliest claim left, or the
  // retry of a refused removal).
  void expire();

  std::size_t tentativeCount() const;
  // port.get's "tentative" of a tentative port: {"expires_in_s", "until_ms"}.
  nlohmann::json claimJson(const model::Port& port) const;
  // Tentative ports removed unconfirmed.
  std::uint64_t expired() const { return expired_; }

 private:
  const model::Intent& intent_;
  std::function<Clock::time_point()> now_;
  Clock::time_point started_;
  std::int64_t wall_base_ms_ = 0;  // wall_now() at started_, ms since the epoch
  std::chrono::milliseconds retry_min_;
  RemovePorts remove_ports_;
  Clock::time_point next_ = Clock::time_point::max();
  std::uint64_t expired_ = 0;
};

}  // namespace nicoffload::daemon
