// The controller's counters (Controller::Counters), kept by the controller
// and shown by its Queries part (the `counters` and `status` ops); also
// exported as metrics.
#pragma once

#include <cstdint>

namespace nicoffload::daemon {

struct ControllerCounters {
  std::uint64_t reconcile_passes = 0;
  std::uint64_t full_passes = 0;
  std::uint64_t quiet_passes = 0;  // full passes that found nothing changed: device verified only
  std::uint64_t retries = 0;
  std::uint64_t sw_ops = 0;
  std::uint64_t sw_failures = 0;
  std::uint64_t state_saves = 0;
  std::uint64_t state_save_failures = 0;
  std::uint64_t ports_added = 0;
  std::uint64_t ports_removed = 0;
  std::uint64_t requests_refused = 0;
  std::uint64_t internal_errors = 0;  // exceptions caught at the request boundary
  std::uint64_t nic_ops = 0;
  std::uint64_t nic_failures = 0;
  std::uint64_t vdpa_ops = 0;  // these five: VdpaDevices::Counters
  std::uint64_t vdpa_failures = 0;
  std::uint64_t vdpa_pool_claims = 0;   // ports given a ready pool device
  std::uint64_t vdpa_pool_misses = 0;   // ports whose device was created on demand (pool on)
  std::uint64_t vdpa_pool_refills = 0;  // pool devices made ahead
  std::uint64_t tentative_expired = 0;  // tentative ports removed unconfirmed: Claims::expired()
};

}  // namespace nicoffload::daemon
