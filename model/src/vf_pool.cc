#include "nicoffload/model/vf_pool.h"

#include <nlohmann/json.hpp>
#include <set>

namespace nicoffload::vdpa {

VfPool::VfPool(std::string pf_pci, std::uint16_t vf_count)
    : pf_pci_(std::move(pf_pci)), vf_count_(vf_count) {}

Result<std::uint16_t> VfPool::assign(const model::PortKey& port,
                                     std::optional<std::uint16_t> wanted,
                                     const std::set<std::uint16_t>* prefer) {
  const auto held = by_port_.find(port);
  if (wanted) {
    if (*wanted >= vf_count_)
      return makeError(ErrorCode::kInvalidValue, port.str() + ".vf", std::to_string(*wanted),
                       "VF " + std::to_string(*wanted) + " does not exist on PF " + pf_pci_ +
                           ": it has " + std::to_string(vf_count_) + " VFs (0.." +
                           std::to_string(vf_count_ == 0 ? 0 : vf_count_ - 1) +
                           "); raise uplink.vf_count or pick a lower VF");
    const auto holder = by_vf_.find(*wanted);
    if (holder != by_vf_.end() && holder->second != port)
      return makeError(ErrorCode::kDuplicate, port.str() + ".vf", std::to_string(*wanted),
                       "VF " + std::to_string(*wanted) + " on PF " + pf_pci_ +
                           " is already assigned to port " + holder->second.str());
    if (held != by_port_.end()) {
      if (held->second == *wanted) return *wanted;
      by_vf_.erase(held->second);  // the port moves to the VF it names
    }
    by_vf_[*wanted] = port;
    by_port_[port] = *wanted;
    return *wanted;
  }
  if (held != by_port_.end()) return held->second;
  if (prefer)
    for (const auto v : *prefer)
      if (v < vf_count_ && !by_vf_.count(v)) {
        by_vf_[v] = port;
        by_port_[port] = v;
        return v;
      }
  std::uint16_t vf = 0;
  for (const auto& [used, _] : by_vf_) {  // ordered: the first gap is the lowest free VF
    if (used != vf) break;
    ++vf;
  }
  if (vf >= vf_count_)
    return makeError(ErrorCode::kExhausted, port.str() + ".vf", "",
                     "no free VF on PF " + pf_pci_ + ": all " + std::to_string(vf_count_) +
                         " VFs are assigned (remove a port or raise uplink.vf_count)");
  by_vf_[vf] = port;
  by_port_[port] = vf;
  return vf;
}

std::optional<std::uint16_t> VfPool::release(const model::PortKey& port) {
  const auto it = by_port_.find(port);
  if (it == by_port_.end()) return std::nullopt;
  const std::uint16_t vf = it->second;
  by_vf_.erase(vf);
  by_port_.erase(it);
  return vf;
}

std::optional<std::uint16_t> VfPool::vfOf(const model::PortKey& port) const {
  const auto it = by_port_.find(port);
  if (it == by_port_.end()) return std::nullopt;
  return it->second;
}

std::optional<model::PortKey> VfPool::portOf(std::uint16_t vf) const {
  const auto it = by_vf_.find(vf);
  if (it == by_vf_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::pair<std::uint16_t, model::PortKey>> VfPool::assignments() const {
  return {by_vf_.begin(), by_vf_.end()};
}

Result<VfPoolChanges> VfPool::sync(const std::vector<model::Port>& ports) {
  VfPool next = *this;
  VfPoolChanges changes;
  std::set<model::PortKey> present;
  for (const auto& p : ports) present.insert(p.key);
  for (const auto& [key, vf] : by_port_)
    if (!present.count(key)) {
      next.release(key);
      changes.released.emplace_back(key, vf);
    }
  auto place = [&](const model::Port& p) -> Status {
    const auto before = next.vfOf(p.key);
    auto vf = next.assign(p.key, p.vf);
    if (!vf) return vf.error();
    if (before != *vf) {
      if (before) changes.released.emplace_back(p.key, *before);
      changes.assigned.emplace_back(p.key, *vf);
    }
    return Status::success();
  };
  for (const auto& p : ports)
    if (p.vf)
      if (auto s = place(p); !s) return s.error();
  for (const auto& p : ports)
    if (!p.vf)
      if (auto s = place(p); !s) return s.error();
  *this = std::move(next);
  return changes;
}

nlohmann::json VfPool::toJson() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [vf, key] : by_vf_)
    list.push_back({{"vm", key.vm}, {"nic", key.nic}, {"vf", vf}});
  return {{"pf", pf_pci_}, {"vf_count", vf_count_}, {"assignments", std::move(list)}};
}

namespace {

Error fieldError(ErrorCode code, const std::string& field, const std::string& message) {
  return makeError(code, field, "", message);
}

}  // namespace

Result<VfPool> VfPool::fromJson(const nlohmann::json& doc, const std::string& pf_pci,
                                std::uint16_t vf_count) {
  const std::string base = "vf_pool";
  if (!doc.is_object()) return fieldError(ErrorCode::kWrongType, base, "must be an object");
  for (const char* key : {"pf", "assignments"})
    if (!doc.contains(key))
      return fieldError(ErrorCode::kMissingField, base + "." + key, "is required");
  if (!doc["pf"].is_string())
    return fieldError(ErrorCode::kWrongType, base + ".pf", "must be a string");
  const auto stored_pf = doc["pf"].get<std::string>();
  if (stored_pf != pf_pci)
    return makeError(
        ErrorCode::kConflict, base + ".pf", stored_pf,
        "the VF pool state is for PF " + stored_pf + ", but the host config names PF " + pf_pci);
  const auto& list = doc["assignments"];
  if (!list.is_array())
    return fieldError(ErrorCode::kWrongType, base + ".assignments", "must be an array");
  VfPool pool(pf_pci, vf_count);
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string field = base + ".assignments[" + std::to_string(i) + "]";
    const auto& a = list[i];
    if (!a.is_object()) return fieldError(ErrorCode::kWrongType, field, "must be an object");
    if (!a.contains("vm") || !a["vm"].is_string())
      return fieldError(ErrorCode::kMissingField, field + ".vm", "must be a string");
    for (const char* key : {"nic", "vf"})
      if (!a.contains(key) || !a[key].is_number_unsigned() || a[key].get<std::uint64_t>() > 0xFFFF)
        return fieldError(ErrorCode::kInvalidValue, field + "." + key,
                          "must be an integer in 0..65535");
    const model::PortKey key{a["vm"].get<std::string>(), a["nic"].get<std::uint16_t>()};
    const auto vf = a["vf"].get<std::uint16_t>();
    if (vf >= vf_count)
      return makeError(ErrorCode::kConflict, field + ".vf", std::to_string(vf),
                       "port " + key.str() + " holds VF " + std::to_string(vf) + " of PF " +
                           pf_pci + ", but uplink.vf_count is now " + std::to_string(vf_count) +
                           "; remove the port first or raise vf_count again");
    if (pool.by_vf_.count(vf) || pool.by_port_.count(key))
      return makeError(ErrorCode::kDuplicate, field, std::to_string(vf),
                       "VF " + std::to_string(vf) + " or port " + key.str() +
                           " appears twice in the VF pool state");
    pool.by_vf_[vf] = key;
    pool.by_port_[key] = vf;
  }
  return pool;
}

}  // namespace nicoffload::vdpa
