#include "nicoffload/simnic/dump.h"

#include <cstdio>

#include "nicoffload/flowrules/render.h"

namespace nicoffload::simnic {

nlohmann::json deviceRulesJson(const std::vector<InstalledFlow>& flows, bool verbose) {
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& f : flows) {
    char id[17];
    std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(f.rule.id));
    nlohmann::json j = {{"handle", f.handle},
                        {"id", id},
                        {"class", flowrules::toString(f.rule.cls)},
                        {"group", f.rule.attr.group},
                        {"priority", f.rule.attr.priority}};
    if (verbose) {
      // The device holds no profile: the IR's pattern and actions need none
      // (only the planner's placement reason would, and it is not shown).
      auto ir = flowrules::toJson(f.rule, model::HwProfile{});
      j["pattern"] = std::move(ir["pattern"]);
      j["actions"] = std::move(ir["actions"]);
      j["testpmd"] = flowrules::renderTestpmd(f.rule, flowrules::PortNumbering{});
    }
    rules.push_back(std::move(j));
  }
  return nlohmann::json{{"rules", std::move(rules)}};
}

}  // namespace nicoffload::simnic
