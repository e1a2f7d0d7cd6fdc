// The VF pool of one PF: which port holds which SR-IOV VF. Pure: no I/O; the
// daemon keeps it in its state file (toJson / fromJson) and, when a VF is
// released, has the NicBackend scrub it (NicBackend::releaseVf).
//
// Rules:
//  - a port that names a VF (Port::vf) gets exactly that VF, or an error;
//  - any other port keeps the VF it holds, else gets the lowest free VF;
//  - an assignment never moves on its own: a VF held by a running VM is
//    never taken from it to satisfy another port.
//
// Exhaustion is kExhausted (nothing frees itself, an operator must remove a
// port or raise uplink.vf_count), not kBusy (which says "retry later"). The message
// names the PF and its VF count: "no free VF on PF 0000:03:00.0: all 8 VFs
// are assigned".
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::vdpa {

// What VfPool::sync changed, so the caller can scrub released VFs and
// program assigned ones.
struct VfPoolChanges {
  std::vector<std::pair<model::PortKey, std::uint16_t>> released;  // port, VF
  std::vector<std::pair<model::PortKey, std::uint16_t>> assigned;  // port, VF (new only)
};

class VfPool {
 public:
  // `pf_pci` names the PF in errors; VFs are 0 .. vf_count-1.
  VfPool(std::string pf_pci, std::uint16_t vf_count);

  const std::string& pfPci() const { return pf_pci_; }
  std::uint16_t vfCount() const { return vf_count_; }

  // Gives `port` a VF: `wanted` when set, else the VF the port already
  // holds, else the lowest free one. Asking again returns the same VF.
  // A port that holds a VF and names another moves to it.
  // Errors: kInvalidValue (wanted >= vf_count), kDuplicate (wanted is held by
  // another port), kExhausted (no free VF).
  // `prefer` (optional): VFs to take first when the port names none and
  // holds none, lowest first, if free (the VFs of the warm vDPA pool).
  Result<std::uint16_t> assign(const model::PortKey& port, std::optional<std::uint16_t> wanted,
                               const std::set<std::uint16_t>* prefer = nullptr);

  // Frees the port's VF and returns it; nullopt when the port held none
  // (releasing twice is not an error).
  std::optional<std::uint16_t> release(const model::PortKey& port);

  std::optional<std::uint16_t> vfOf(const model::PortKey& port) const;
  std::optional<model::PortKey> portOf(std::uint16_t vf) const;
  std::size_t assignedCount() const { return by_vf_.size(); }
  std::size_t freeCount() const { return vf_count_ - by_vf_.size(); }
  // (VF, port) in VF order.
  std::vector<std::pair<std::uint16_t, model::PortKey>> assignments() const;

  // Brings the pool in line with `ports` (the whole set of ports of the
  // host): releases the VFs of ports that are gone, then assigns the ports
  // that name a VF, then the others in the order given. All or nothing: on
  // error the pool is unchanged. Errors as assign().
  Result<VfPoolChanges> sync(const std::vector<model::Port>& ports);

  // {"pf": "...", "vf_count": N, "assignments": [{"vm", "nic", "vf"}, ...]}
  nlohmann::json toJson() const;

  // Reads toJson()'s form back for the PF and VF count of the current host
  // config. Errors name the field: kConflict (state of another PF; a VF
  // beyond vf_count, e.g. after vf_count was lowered), kDuplicate,
  // kMissingField / kWrongType / kInvalidValue.
  static Result<VfPool> fromJson(const nlohmann::json& doc, const std::string& pf_pci,
                                 std::uint16_t vf_count);

 private:
  std::string pf_pci_;
  std::uint16_t vf_count_ = 0;
  std::map<std::uint16_t, model::PortKey> by_vf_;
  std::map<model::PortKey, std::uint16_t> by_port_;
};

}  // namespace nicoffload::vdpa
