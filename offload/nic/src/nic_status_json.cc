#include "nicoffload/offload/nic_status_json.h"

namespace nicoffload::offload {

namespace {
template <class T, class F>
nlohmann::json opt(const std::optional<T>& v, F f) {
  return v ? nlohmann::json(f(*v)) : nlohmann::json(nullptr);
}
}  // namespace

nlohmann::json toJson(const PfStatus& s) {
  nlohmann::json vfs = nlohmann::json::array();
  for (const auto& v : s.vfs)
    vfs.push_back({{"index", v.index},
                   {"pci", v.pci},
                   {"driver", v.driver},
                   {"netdev", v.netdev},
                   {"representor", v.representor},
                   {"mac", opt(v.mac, [](const MacAddr& m) { return m.str(); })},
                   {"trust", opt(v.trust, [](bool b) { return b; })},
                   {"spoofchk", opt(v.spoofchk, [](bool b) { return b; })},
                   {"vdpa_devices", v.vdpa_devices}});
  return {{"pci", s.pci},
          {"netdev", s.netdev},
          {"eswitch_mode", opt(s.eswitch_mode,
                               [](model::EswitchMode m) {
                                 return m == model::EswitchMode::kSwitchdev ? "switchdev"
                                                                            : "legacy";
                               })},
          {"total_vfs", s.total_vfs},
          {"num_vfs", s.num_vfs},
          {"drivers_autoprobe", s.drivers_autoprobe},
          {"switch_id", s.switch_id},
          {"vfs", std::move(vfs)},
          {"warnings", s.warnings}};
}

}  // namespace nicoffload::offload
