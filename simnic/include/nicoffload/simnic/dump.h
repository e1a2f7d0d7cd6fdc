// What nicoffload-simnic dump prints for the rules a simulated NIC holds.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "nicoffload/simnic/sim_eswitch.h"

namespace nicoffload::simnic {

// {"rules": [{"handle", "id", "class", "group", "priority"}, ...]} in the
// device's creation order. With `verbose`, each rule also carries what it
// matches and does: "pattern" and "actions" (the rule IR, as in
// nicoffloadctl plan --json) and "testpmd" (its testpmd lines, ports numbered
// as nicoffloadd's defaults: uplink port 0, vfN = port 1+N).
nlohmann::json deviceRulesJson(const std::vector<InstalledFlow>& flows, bool verbose);

}  // namespace nicoffload::simnic
