// nicoffloadctl: the operator's command line.
//
// At this stage it plans offline: host config + ports file + hardware profile
// -> rules (testpmd syntax or JSON), software-path objects, vDPA devices, and
// the counts per placement; `explain` says why a rule sits in hw or sw;
// `device-check` runs the plan through the host's flow backend (the simulated
// NIC, or rte_flow on the real PF) and reports what the device accepted.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <tuple>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "nicoffload/flowrules/hw_apply.h"
#include "nicoffload/flowrules/planner.h"
#include "nicoffload/flowrules/render.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/offload/flow_backends.h"

namespace {

using namespace nicoffload;

constexpr int kExitOk = 0;
constexpr int kExitInput = 2;  // bad input: config, ports, profile
constexpr int kExitNotFound = 3;
constexpr int kExitDevice = 4;  // the flow backend cannot be opened, or the device failed

struct PlanInputs {
  std::string host_file;
  std::string ports_file;
  std::string profile_file;  // optional: overrides the host's hw_profile
  std::string profile_dir;   // optional: where named profiles live
};

std::string defaultProfileDir() {
  if (const char* env = std::getenv("NICOFFLOAD_PROFILE_DIR"); env && *env) return env;
  if (::access(NICOFFLOAD_PROFILE_INSTALL_DIR, R_OK) == 0) return NICOFFLOAD_PROFILE_INSTALL_DIR;
  return NICOFFLOAD_PROFILE_SOURCE_DIR;
}

void addPlanOptions(CLI::App* cmd, PlanInputs& in) {
  cmd->add_option("--host", in.host_file, "host config (JSON), e.g. /etc/nicoffload/host.json")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--ports", in.ports_file,
                  "ports file (JSON): {\"ports\": [...], \"remotes\": [...]}")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--profile", in.profile_file,
                  "hardware profile file; default: the host config's hw_profile")
      ->check(CLI::ExistingFile);
  cmd->add_option("--profile-dir", in.profile_dir,
                  "directory of named profiles (default: $NICOFFLOAD_PROFILE_DIR, else " +
                      std::string(NICOFFLOAD_PROFILE_INSTALL_DIR) + " if present, else the source tree's)");
}

int fail(const Error& e) {
  std::fprintf(stderr, "nicoffloadctl: error: %s\n", e.describe().c_str());
  return kExitInput;
}

struct Planned {
  model::Intent intent;
  model::HwProfile profile;
  flowrules::DesiredState state;
};

// Loads and plans; prints the error and returns nullopt on failure.
std::optional<Planned> loadAndPlan(const PlanInputs& in, int& rc) {
  Planned p;
  auto host = model::loadHostConfig(in.host_file);
  if (!host) return rc = fail(host.error()), std::nullopt;
  p.intent.host = std::move(host).value();

  auto ports_doc = model::readJsonFile(in.ports_file);
  if (!ports_doc) return rc = fail(ports_doc.error()), std::nullopt;
  if (auto s = model::parsePortsFile(*ports_doc, p.intent); !s) {
    Error e = s.error();
    e.field = in.ports_file + ": " + e.field;
    return rc = fail(e), std::nullopt;
  }

  std::string profile_path = in.profile_file;
  if (profile_path.empty()) {
    auto resolved = model::resolveProfilePath(
        p.intent.host.hw_profile, in.profile_dir.empty() ? defaultProfileDir() : in.profile_dir);
    if (!resolved) return rc = fail(resolved.error()), std::nullopt;
    profile_path = *resolved;
  }
  auto profile = model::loadHwProfile(profile_path);
  if (!profile) return rc = fail(profile.error()), std::nullopt;
  p.profile = std::move(profile).value();

  auto state = flowrules::plan(p.intent, p.profile);
  if (!state) {
    Error e = state.error();
    // Fields of ports/remotes live in the ports file, the rest in the host config.
    const bool in_ports = e.field.rfind("ports", 0) == 0 || e.field.rfind("remotes", 0) == 0;
    e.field = (in_ports ? in.ports_file : in.host_file) + ": " + e.field;
    return rc = fail(e), std::nullopt;
  }
  p.state = std::move(state).value();
  return p;
}

const char* const kReasonNames[] = {"none", "item-unsupported", "action-unsupported",
                                    "udp-port-unsupported", "next-hop-unresolved", "table-full",
                                    "follows", "device-refused"};

void printPlanText(const Planned& p, bool testpmd_only) {
  const auto ports = flowrules::PortNumbering::fromHost(p.intent.host);
  const auto& c = p.state.counts;
  if (!testpmd_only) {
    std::printf("# nicoffload plan: host %s, profile %s (%s), underlay %s\n",
                p.intent.host.name.c_str(), p.profile.name.c_str(), p.profile.model.c_str(),
                model::toString(p.intent.host.underlay));
    std::printf("# rules: %zu (hw %zu, sw %zu); software-path objects: %zu; vDPA devices: %zu\n",
                c.total(), c.hw, c.sw, p.state.sw.size(), p.state.vdpa_devices.size());
    std::printf("# testpmd port numbering: uplink/proxy port %u, vfN = port %u+N\n", ports.uplink,
                ports.first_representor);
  }
  // Display order: table by table, most specific first; within a class by id.
  std::vector<const flowrules::FlowRule*> order;
  for (const auto& rule : p.state.rules) order.push_back(&rule);
  std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return std::tie(a->attr.group, a->attr.priority, a->cls) <
           std::tie(b->attr.group, b->attr.priority, b->cls);
  });
  for (const auto* rule_ptr : order) {
    const auto& rule = *rule_ptr;
    if (!testpmd_only) {
      std::printf("\n# %s %s %s", flowrules::formatRuleId(rule.cls, rule.id).c_str(),
                  flowrules::toString(rule.cls), flowrules::toString(rule.placement));
      if (rule.placement == flowrules::Placement::kSw)
        std::printf(": %s", flowrules::describeReason(rule.reason, p.profile).c_str());
      std::printf("\n");
    }
    for (const auto& line : flowrules::renderTestpmd(rule, ports)) std::printf("%s\n", line.c_str());
  }
  if (testpmd_only) return;
  std::printf("\n# software path (kernel)\n");
  for (const auto& line : flowrules::describeSoftwarePath(p.state.sw)) std::printf("%s\n", line.c_str());
  std::printf("\n# VF assignments\n");
  for (const auto& v : p.state.vfs)
    std::printf("vf %u -> port %s mac %s\n", v.vf, v.port.str().c_str(), v.mac.str().c_str());
  std::printf("\n# vDPA devices\n");
  for (const auto& d : p.state.vdpa_devices)
    std::printf("vdpa %s (%s) on vf %u for port %s mac %s mtu %u max_vqp %u\n", d.name.c_str(),
                model::toString(d.kind), d.vf, d.port.str().c_str(), d.mac.str().c_str(), d.mtu,
                d.max_vqp);
  std::printf("\n# placement: hw %zu, sw %zu", c.hw, c.sw);
  for (std::size_t i = 1; i < c.sw_by_reason.size(); ++i)
    if (c.sw_by_reason[i]) std::printf(", %s %zu", kReasonNames[i], c.sw_by_reason[i]);
  std::printf("\n");
}

// device-check: validate and create the planned rules on the host's flow
// backend, report the placement in effect, then remove them again.
int deviceCheck(const Planned& p, bool json_out) {
  auto opened = offload::openFlowBackend(p.intent.host, p.profile);
  if (!opened) {
    std::fprintf(stderr, "nicoffloadctl: error: flow backend %s: %s\n",
                 model::toString(p.intent.host.flow_backend), opened.error().describe().c_str());
    return kExitDevice;
  }
  int rc = kExitOk;
  {
    const auto caps = opened->backend->capabilities();
    flowrules::HwApplier applier(std::move(opened->backend));  // destroyed before the EAL
    const auto report = applier.apply(p.state.rules, flowrules::ruleDependencies(p.intent, p.state.rules));
    const auto& c = applier.counters();
    std::vector<const flowrules::AppliedRule*> order;
    for (const auto& r : p.state.rules) order.push_back(applier.find(r.id));
    std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
      return std::tie(a->rule.attr.group, a->rule.attr.priority, a->rule.cls) <
             std::tie(b->rule.attr.group, b->rule.attr.priority, b->rule.cls);
    });
    if (json_out) {
      nlohmann::json rules = nlohmann::json::array();
      for (const auto* a : order) {
        nlohmann::json j = {{"id", flowrules::formatRuleId(a->rule.cls, a->rule.id)},
                            {"class", flowrules::toString(a->rule.cls)},
                            {"planned", flowrules::toString(a->rule.placement)},
                            {"placement", flowrules::toString(a->placement)},
                            {"reason", flowrules::describeApplied(*a, p.profile)}};
        if (a->device_error)
          j["device_error"] = {{"code", std::string(errorInfo(a->device_error->code).name)},
                               {"field", a->device_error->field},
                               {"value", a->device_error->value},
                               {"message", a->device_error->message}};
        rules.push_back(std::move(j));
      }
      nlohmann::json refused = nlohmann::json::object();
      for (std::size_t i = 0; i < c.refused_by_code.size(); ++i)
        if (c.refused_by_code[i]) refused[std::string(errorInfo(static_cast<ErrorCode>(i)).name)] = c.refused_by_code[i];
      std::cout << nlohmann::json{{"backend", caps.backend},
                                  {"device", caps.device},
                                  {"notes", opened->notes},
                                  {"rules", rules},
                                  {"counts", {{"hw", c.hw}, {"sw", c.sw}, {"refused", refused}}}}
                       .dump(2)
                << "\n";
    } else {
      std::printf("# nicoffload device-check: host %s, flow backend %s (%s), profile %s\n",
                  p.intent.host.name.c_str(), caps.backend.c_str(), caps.device.c_str(), p.profile.name.c_str());
      for (const auto& n : opened->notes) std::printf("# note: %s\n", n.c_str());
      for (const auto* a : order) {
        std::printf("%s %s planned %s, in effect %s", flowrules::formatRuleId(a->rule.cls, a->rule.id).c_str(),
                    flowrules::toString(a->rule.cls), flowrules::toString(a->rule.placement),
                    flowrules::toString(a->placement));
        if (a->placement == flowrules::Placement::kSw)
          std::printf(": %s", flowrules::describeApplied(*a, p.profile).c_str());
        std::printf("\n");
      }
      std::printf("# in effect: hw %zu, sw %zu", c.hw, c.sw);
      for (std::size_t i = 1; i < c.sw_by_reason.size(); ++i)
        if (c.sw_by_reason[i]) std::printf(", %s %zu", kReasonNames[i], c.sw_by_reason[i]);
      std::printf("\n# refused by the device:");
      bool any = false;
      for (std::size_t i = 0; i < c.refused_by_code.size(); ++i)
        if (c.refused_by_code[i]) {
          std::printf(" %s %zu", std::string(errorInfo(static_cast<ErrorCode>(i)).name).c_str(), c.refused_by_code[i]);
          any = true;
        }
      std::printf("%s\n", any ? "" : " none");
    }
    for (const auto& f : report.failures) {
      std::fprintf(stderr, "nicoffloadctl: error: %s\n", f.describe().c_str());
      rc = kExitDevice;
    }
    if (auto s = applier.flush(); !s) {
      std::fprintf(stderr, "nicoffloadctl: error: removing the rules: %s\n", s.error().describe().c_str());
      rc = kExitDevice;
    }
  }
  if (opened->eal) (void)opened->eal->stop();
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nicoffloadctl: control the nicoffload SmartNIC / vDPA offload controller"};
  app.set_version_flag("--version", std::string("nicoffloadctl ") + NICOFFLOAD_VERSION);
  app.require_subcommand(1);
  app.footer(
      "Exit status: 0 success; 2 bad input (config, ports, profile: the message names the file and\n"
      "field); 3 rule not found; 4 the flow backend cannot be opened or the device failed;\n"
      "105-110 command-line usage errors.\n"
      "Named profiles are read from --profile-dir, $NICOFFLOAD_PROFILE_DIR or " NICOFFLOAD_PROFILE_INSTALL_DIR ".");

  PlanInputs plan_in;
  bool json_out = false;
  bool testpmd_only = false;
  auto* plan_cmd = app.add_subcommand(
      "plan", "plan the rules, software-path objects and vDPA devices for a host and its ports");
  addPlanOptions(plan_cmd, plan_in);
  plan_cmd->add_flag("--json", json_out, "print the plan as JSON");
  plan_cmd->add_flag("--testpmd", testpmd_only,
                     "print only the testpmd commands (to paste into dpdk-testpmd)");

  PlanInputs explain_in;
  std::string rule_id;
  bool explain_json = false;
  auto* explain_cmd = app.add_subcommand("explain", "say why a rule is placed in hw or sw");
  explain_cmd->add_option("RULE-ID", rule_id, "rule id as printed by plan, e.g. ld-0123456789abcdef")
      ->required();
  addPlanOptions(explain_cmd, explain_in);
  explain_cmd->add_flag("--json", explain_json, "print the rule and its reason as JSON");

  PlanInputs device_in;
  bool device_json = false;
  auto* device_cmd = app.add_subcommand(
      "device-check",
      "plan, then validate and create every hw rule on the host's flow backend (backends.flow: the "
      "simulated NIC, or rte_flow on the PF with dpdk.eal_args/pf_devargs) and report what the device "
      "accepted; the rules are removed again before the command exits");
  addPlanOptions(device_cmd, device_in);
  device_cmd->add_flag("--json", device_json, "print the placement in effect as JSON");

  std::vector<std::string> profile_files;
  auto* check_cmd = app.add_subcommand("profile-check", "check hardware profile files against the schema");
  check_cmd->add_option("FILE", profile_files, "profile files (hw-profiles/*.json)")
      ->required()
      ->check(CLI::ExistingFile);

  CLI11_PARSE(app, argc, argv);

  int rc = kExitOk;
  if (*plan_cmd) {
    if (json_out && testpmd_only) {
      std::fprintf(stderr, "nicoffloadctl: error: --json and --testpmd exclude each other\n");
      return kExitInput;
    }
    auto p = loadAndPlan(plan_in, rc);
    if (!p) return rc;
    if (json_out)
      std::cout << flowrules::toJson(p->state, p->profile, flowrules::PortNumbering::fromHost(p->intent.host)).dump(2)
                << "\n";
    else
      printPlanText(*p, testpmd_only);
    return kExitOk;
  }
  if (*explain_cmd) {
    auto id = flowrules::parseRuleId(rule_id);
    if (!id) {
      std::fprintf(stderr,
                   "nicoffloadctl: error: RULE-ID: '%s' is not a rule id (expected e.g. "
                   "ld-0123456789abcdef, as printed by plan)\n",
                   rule_id.c_str());
      return kExitInput;
    }
    auto p = loadAndPlan(explain_in, rc);
    if (!p) return rc;
    for (const auto& rule : p->state.rules) {
      if (rule.id != *id) continue;
      if (explain_json) {
        auto j = flowrules::toJson(rule, p->profile);
        j["explanation"] = flowrules::explainRule(rule, p->profile);
        std::cout << j.dump(2) << "\n";
      } else {
        std::printf("%s\n", flowrules::explainRule(rule, p->profile).c_str());
        for (const auto& line :
             flowrules::renderTestpmd(rule, flowrules::PortNumbering::fromHost(p->intent.host)))
          std::printf("  %s\n", line.c_str());
      }
      return kExitOk;
    }
    std::fprintf(stderr, "nicoffloadctl: error: RULE-ID: no rule %s in the plan of %s\n",
                 rule_id.c_str(), explain_in.host_file.c_str());
    return kExitNotFound;
  }
  if (*device_cmd) {
    auto p = loadAndPlan(device_in, rc);
    if (!p) return rc;
    return deviceCheck(*p, device_json);
  }
  if (*check_cmd) {
    for (const auto& f : profile_files) {
      auto profile = model::loadHwProfile(f);
      if (!profile) {
        rc = fail(profile.error());
        continue;
      }
      std::printf("%s: ok (%s, %s)\n", f.c_str(), profile->name.c_str(), profile->model.c_str());
    }
    return rc;
  }
  return kExitOk;
}
