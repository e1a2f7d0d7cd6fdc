// A part of the controller: the vDPA devices nicoffloadd holds (one per VF,
// as created or read back), the warm pool of devices made ahead on free VFs
// (vdpa.pool), and each port's stable link to its device.
//
// The controller decides which port holds which VF (vdpa::VfPool) and which
// devices the ports want (flowrules::planVdpaDevice); this part brings the
// vDPA backend there, keeps the pool filled between requests, and reports
// each failure through the controller's FailFn (kept in its FailureBook).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "nicoffload/common/error.h"
#include "nicoffload/daemon/failure_book.h"
#include "nicoffload/model/vdpa_device.h"
#include "nicoffload/model/intent.h"
#include "nicoffload/model/vf_pool.h"
#include "nicoffload/vdpa/vdpa_backend.h"

namespace nicoffload::daemon {

class VdpaDevices {
 public:
  struct Counters {
    std::uint64_t ops = 0;
    std::uint64_t failures = 0;
    std::uint64_t pool_claims = 0;   // ports given a ready pool device
    std::uint64_t pool_misses = 0;   // ports whose device was created on demand (pool on)
    std::uint64_t pool_refills = 0;  // pool devices made ahead
  };
  // Reports a failed operation on `what` ("vdpa vf 3") and counts it.
  using FailFn = std::function<void(const std::string& what, const Error&, std::uint64_t& counter)>;

  // `backend`: null when the host runs no vDPA backend (then this part holds
  // nothing and does nothing). `host` and `failures` outlive the part.
  VdpaDevices(const model::HostConfig& host, vdpa::VdpaBackend* backend, FailureBook& failures,
              std::function<FailureBook::Clock::time_point()> now);

  // --- at start ---
  // A device the backend already holds (a restart): kept as ours.
  void adopt(vdpa::VdpaDevice d) { hold(std::move(d)); }
  // After adoption and the first pass: a fresh pool fills to its size; one
  // adopted from a run before follows the low-water rule.
  void startDone() { fill_at_start_ = pool_vfs_.empty(); }

  // --- what the controller asks ---
  const vdpa::VdpaDevice* onVf(std::uint16_t vf) const;
  std::size_t size() const { return devices_.size(); }
  // The VFs with a ready pool device that `port` may take (its vDPA kind,
  // the pool's MTU, one queue pair); null when none fits.
  const std::set<std::uint16_t>* readyFor(const model::Port& port) const;

  // --- reconciliation ---
  // A full pass begins: the VFs whose pool device failed are tried again,
  // and the pool may refill (VFs may have freed up).
  void fullPassBegins();
  void mayRefill() { stalled_ = false; }
  // The devices of the VFs in `scope` (a batch), or of every VF (null: a
  // full pass), against `want` (by name) and the pool. Each port that has
  // its device gets its link (linkPath()).
  void reconcile(const std::map<std::string, vdpa::VdpaDeviceSpec>& want,
                 const std::set<std::uint16_t>* scope, const vdpa::VfPool& vfs,
                 const FailFn& failed);
  // Whether refill() has work now (tick() then calls it between requests).
  bool wantsWork() const;
  // Makes pool devices on free VFs, at most `max_creates` per call.
  void refill(std::size_t max_creates, const vdpa::VfPool& vfs);

  // --- the ports' links ---
  std::string linkPath(const model::PortKey& key) const;
  void removeLink(const model::PortKey& key) const;

  // status.vdpa_pool.
  nlohmann::json poolJson() const;
  bool poolEnabled() const;
  std::size_t ready() const { return pool_vfs_.size(); }
  const Counters& counters() const { return counters_; }

 private:
  void hold(vdpa::VdpaDevice d);
  void drop(const std::string& name);
  bool poolFits(const vdpa::VdpaDevice& d) const;
  std::string linkDir() const;
  void updateLink(const model::PortKey& key, const vdpa::VdpaDevice& d) const;

  const model::HostConfig& host_;
  vdpa::VdpaBackend* backend_;
  FailureBook& failures_;
  std::function<FailureBook::Clock::time_point()> now_;
  Counters counters_;
  std::map<std::string, vdpa::VdpaDevice> devices_;  // by device name
  std::map<std::uint16_t, std::string> by_vf_;        // VF -> the device on it
  std::set<std::uint16_t> pool_vfs_;         // free VFs whose device is ready for a port
  std::set<std::uint16_t> pool_failed_vfs_;  // pool creation failed: skipped until a full pass
  bool cannot_set_mac_ = false;              // the backend cannot change a MAC: no pool
  bool refilling_ = false;
  bool fill_at_start_ = true;  // an empty pool at start fills to size, whatever low_water says
  bool short_logged_ = false;
  bool stalled_ = false;  // nothing could be made: wait for a change
};

}  // namespace nicoffload::daemon
