// nicoffload-simnic: look at the simulated NIC's device directory from the
// outside, the way one would ask a real NIC what it holds (tests use it to
// check the controller against the device, not against itself).
//
//   nicoffload-simnic dump DEVICE_DIR    # JSON: {"rules": [{"handle", "id", "class", "group", "priority"}]}
#include <cstdio>
#include <cstring>
#include <iostream>

#include <nlohmann/json.hpp>

#include "nicoffload/simnic/sim_nic.h"

int main(int argc, char** argv) {
  using namespace nicoffload;
  if (argc != 3 || std::strcmp(argv[1], "dump") != 0) {
    std::fprintf(stderr, "usage: %s dump DEVICE_DIR\n  prints, as JSON, the rules the simulated NIC in DEVICE_DIR holds\n", argv[0]);
    return 2;
  }
  auto flows = simnic::SimNic::readDevice(argv[2]);
  if (!flows) {
    std::fprintf(stderr, "nicoffload-simnic: %s\n", flows.error().describe().c_str());
    return 1;
  }
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& f : *flows) {
    char id[17];
    std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(f.rule.id));
    rules.push_back({{"handle", f.handle}, {"id", id}, {"class", flowrules::toString(f.rule.cls)},
                     {"group", f.rule.attr.group}, {"priority", f.rule.attr.priority}});
  }
  std::cout << nlohmann::json{{"rules", rules}}.dump() << "\n";
  return 0;
}
