// The offline subcommands of nicoffloadctl: host config + ports file +
// hardware profile -> rules (testpmd syntax or JSON), software-path objects,
// vDPA devices, and the counts per placement (plan); why a rule sits in hw or
// sw (explain, which asks nicoffloadd when no files are given); the plan run
// through the host's flow backend (device-check); profile files checked
// (profile-check); the plan's kernel software path converged, removed or
// read back (apply, remove, readback).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "cli_common.h"
#include "nicoffload/flowrules/hw_apply.h"
#include "nicoffload/flowrules/planner.h"
#include "nicoffload/flowrules/render.h"
#include "nicoffload/model/json_input.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/offload/flow_backends.h"
#include "nicoffload/offload/netns.h"
#include "nicoffload/offload/software_path.h"

namespace nicoffload::cli {
namespace {

struct PlanInputs {
  std::string host_file;
  std::string ports_file;
  std::string profile_file;  // optional: overrides the host's hw_profile
  std::string profile_dir;   // optional: where named profiles live
};

void addPlanOptions(CLI::App* cmd, PlanInputs& in, bool required = true) {
  cmd->add_option("--host", in.host_file, "host config (JSON), e.g. /etc/nicoffload/host.json")
      ->required(required)
      ->check(CLI::ExistingFile);
  cmd->add_option("--ports", in.ports_file,
                  "ports file (JSON): {\"ports\": [...], \"remotes\": [...]}")
      ->required(required)
      ->check(CLI::ExistingFile);
  cmd->add_option("--profile", in.profile_file,
                  "hardware profile file; default: the host config's hw_profile")
      ->check(CLI::ExistingFile);
  cmd->add_option("--profile-dir", in.profile_dir,
                  "directory of named profiles (default: $NICOFFLOAD_PROFILE_DIR, else " +
                      std::string(NICOFFLOAD_PROFILE_INSTALL_DIR) +
                      " if present, else the source tree's)");
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

  auto ports_doc = model::readJsonFile(in.ports_file, kMaxInputFileBytes, "--ports");
  if (!ports_doc) return rc = fail(ports_doc.error()), std::nullopt;
  if (auto s = model::parsePortsFile(*ports_doc, p.intent); !s) {
    Error e = s.error();
    e.field = in.ports_file + ": " + e.field;
    return rc = fail(e), std::nullopt;
  }

  const std::string profile_dir = in.profile_dir.empty() ? defaultProfileDir() : in.profile_dir;
  auto profile = in.profile_file.empty()
                     ? model::loadHostProfile(p.intent.host.hw_profile, in.host_file, profile_dir)
                     : model::loadHwProfile(in.profile_file);
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
    // sw rules come out commented, with their reason: pasted into testpmd
    // they would install what the plan keeps out of hardware (an unresolved
    // next hop renders as set_mac_dst 00:00:00:00:00:00 and black-holes).
    const auto lines = flowrules::renderTestpmdForPaste(rule, ports, p.profile);
    // The full plan's header line above already gave a sw rule's reason.
    const bool skip_reason = !testpmd_only && rule.placement == flowrules::Placement::kSw;
    for (std::size_t i = skip_reason ? 1 : 0; i < lines.size(); ++i)
      std::printf("%s\n", lines[i].c_str());
  }
  if (testpmd_only) return;
  std::printf("\n# software path (kernel)\n");
  for (const auto& line : flowrules::describeSoftwarePath(p.state.sw))
    std::printf("%s\n", line.c_str());
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
    if (c.sw_by_reason[i]) std::printf(", %s %zu", flowrules::reasonCodeName(i), c.sw_by_reason[i]);
  std::printf("\n");
}

template <class T>
void countDiff(nlohmann::json& j, const char* kind, const flowrules::ObjectDiff<T>& d) {
  j[kind] = {{"add", d.add.size()}, {"modify", d.modify.size()}, {"remove", d.remove.size()}};
}

nlohmann::json failuresJson(const offload::SwApplyReport& r) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& f : r.failures)
    out.push_back({{"object", f.object},
                   {"error", errorInfo(f.error.code).name},
                   {"message", f.error.message}});
  return out;
}

std::optional<std::unique_ptr<offload::SoftwarePath>> openSwPath(const std::string& netns,
                                                                 int& rc) {
  auto path = offload::openKernelSoftwarePath({.netns = netns});
  if (!path) {
    rc = fail(path.error());
    return std::nullopt;
  }
  return std::move(path).value();
}

int runApply(const Planned& p, const std::string& netns, bool json_out) {
  int rc = kExitOk;
  auto path = openSwPath(netns, rc);
  if (!path) return rc;
  offload::ReadBackScope scope{p.intent.host.route_table, p.intent.host.route_protocol};
  auto report = offload::converge(**path, p.state.sw, scope);
  if (!report) return fail(report.error());
  const auto& d = report->diff;
  nlohmann::json j;
  j["netns"] = netns.empty() ? "(current)" : netns;
  j["objects"] = p.state.sw.size();
  nlohmann::json changes;
  countDiff(changes, "sysctls", d.sysctls);
  countDiff(changes, "links", d.links);
  countDiff(changes, "addresses", d.addresses);
  countDiff(changes, "vxlan_devices", d.vxlan_devices);
  countDiff(changes, "fdb", d.fdb);
  countDiff(changes, "neighbours", d.neighbours);
  countDiff(changes, "routes", d.routes);
  if (!d.neighbours6.empty()) countDiff(changes, "neighbours6", d.neighbours6);
  if (!d.routes6.empty()) countDiff(changes, "routes6", d.routes6);
  if (!d.rules6.empty()) countDiff(changes, "rules6", d.rules6);
  j["changes"] = changes;
  j["failures"] = failuresJson(report->applied);
  for (auto& f : failuresJson(report->removed)) j["failures"].push_back(f);
  if (json_out) {
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf(
        "software path of %s in namespace %s: %zu objects desired, %zu differed "
        "(added %zu, changed %zu, removed %zu)\n",
        p.intent.host.name.c_str(), netns.empty() ? "(current)" : netns.c_str(), p.state.sw.size(),
        d.size(),
        d.sysctls.add.size() + d.links.add.size() + d.addresses.add.size() +
            d.vxlan_devices.add.size() + d.fdb.add.size() + d.neighbours.add.size() +
            d.routes.add.size() + d.neighbours6.add.size() + d.routes6.add.size() + d.rules6.add.size(),
        d.sysctls.modify.size() + d.links.modify.size() + d.addresses.modify.size() +
            d.vxlan_devices.modify.size() + d.fdb.modify.size() + d.neighbours.modify.size() +
            d.routes.modify.size() + d.neighbours6.modify.size() + d.routes6.modify.size() + d.rules6.modify.size(),
        d.sysctls.remove.size() + d.links.remove.size() + d.addresses.remove.size() +
            d.vxlan_devices.remove.size() + d.fdb.remove.size() + d.neighbours.remove.size() +
            d.routes.remove.size() + d.neighbours6.remove.size() + d.routes6.remove.size() + d.rules6.remove.size());
    for (const auto* r : {&report->applied, &report->removed})
      for (const auto& f : r->failures)
        std::fprintf(stderr, "nicoffloadctl: failed: %s: %s\n", f.object.c_str(),
                     f.error.message.c_str());
  }
  return report->ok() ? kExitOk : kExitPartial;
}

int runRemove(const Planned& p, const std::string& netns, bool json_out) {
  int rc = kExitOk;
  auto path = openSwPath(netns, rc);
  if (!path) return rc;
  const auto report = (*path)->remove(p.state.sw);
  if (json_out) {
    std::cout
        << nlohmann::json{{"removed", report.succeeded}, {"failures", failuresJson(report)}}.dump(2)
        << "\n";
  } else {
    std::printf("software path of %s removed from namespace %s: %zu objects\n",
                p.intent.host.name.c_str(), netns.empty() ? "(current)" : netns.c_str(),
                report.succeeded);
    for (const auto& f : report.failures)
      std::fprintf(stderr, "nicoffloadctl: failed: %s: %s\n", f.object.c_str(),
                   f.error.message.c_str());
  }
  return report.ok() ? kExitOk : kExitPartial;
}

int runReadBack(const Planned& p, const std::string& netns) {
  int rc = kExitOk;
  auto path = openSwPath(netns, rc);
  if (!path) return rc;
  auto installed =
      (*path)->readBack(p.state.sw, {p.intent.host.route_table, p.intent.host.route_protocol});
  if (!installed) return fail(installed.error());
  std::cout << flowrules::toJson(*installed).dump(2) << "\n";
  return kExitOk;
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
    const auto report =
        applier.apply(p.state.rules, flowrules::ruleDependencies(p.intent, p.state.rules));
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
        if (c.refused_by_code[i])
          refused[std::string(errorInfo(static_cast<ErrorCode>(i)).name)] = c.refused_by_code[i];
      std::cout << nlohmann::json{{"backend", caps.backend},
                                  {"device", caps.device},
                                  {"notes", opened->notes},
                                  {"rules", rules},
                                  {"counts", {{"hw", c.hw}, {"sw", c.sw}, {"refused", refused}}}}
                       .dump(2)
                << "\n";
    } else {
      std::printf("# nicoffload device-check: host %s, flow backend %s (%s), profile %s\n",
                  p.intent.host.name.c_str(), caps.backend.c_str(), caps.device.c_str(),
                  p.profile.name.c_str());
      for (const auto& n : opened->notes) std::printf("# note: %s\n", n.c_str());
      for (const auto* a : order) {
        std::printf("%s %s planned %s, in effect %s",
                    flowrules::formatRuleId(a->rule.cls, a->rule.id).c_str(),
                    flowrules::toString(a->rule.cls), flowrules::toString(a->rule.placement),
                    flowrules::toString(a->placement));
        if (a->placement == flowrules::Placement::kSw)
          std::printf(": %s", flowrules::describeApplied(*a, p.profile).c_str());
        std::printf("\n");
      }
      std::printf("# in effect: hw %zu, sw %zu", c.hw, c.sw);
      for (std::size_t i = 1; i < c.sw_by_reason.size(); ++i)
        if (c.sw_by_reason[i])
          std::printf(", %s %zu", flowrules::reasonCodeName(i), c.sw_by_reason[i]);
      std::printf("\n# refused by the device:");
      bool any = false;
      for (std::size_t i = 0; i < c.refused_by_code.size(); ++i)
        if (c.refused_by_code[i]) {
          std::printf(" %s %zu", std::string(errorInfo(static_cast<ErrorCode>(i)).name).c_str(),
                      c.refused_by_code[i]);
          any = true;
        }
      std::printf("%s\n", any ? "" : " none");
    }
    for (const auto& f : report.failures) {
      std::fprintf(stderr, "nicoffloadctl: error: %s\n", f.describe().c_str());
      rc = kExitDevice;
    }
    if (auto s = applier.flush(); !s) {
      std::fprintf(stderr, "nicoffloadctl: error: removing the rules: %s\n",
                   s.error().describe().c_str());
      rc = kExitDevice;
    }
  }
  if (opened->eal) (void)opened->eal->stop();
  return rc;
}

// --- plan ---

struct PlanArgs {
  PlanInputs in;
  bool json = false;
  bool testpmd_only = false;
};

int runPlan(const PlanArgs& a) {
  if (a.json && a.testpmd_only) {
    std::fprintf(stderr, "nicoffloadctl: error: --json and --testpmd exclude each other\n");
    return kExitInput;
  }
  int rc = kExitOk;
  auto p = loadAndPlan(a.in, rc);
  if (!p) return rc;
  if (a.json)
    flowrules::writeJson(std::cout, p->state, p->profile,
                         flowrules::PortNumbering::fromHost(p->intent.host));
  else
    printPlanText(*p, a.testpmd_only);
  return kExitOk;
}

void addPlanCommand(CLI::App& app, Commands& commands) {
  auto a = std::make_shared<PlanArgs>();
  auto* cmd = app.add_subcommand(
      "plan", "plan the rules, software-path objects and vDPA devices for a host and its ports");
  addPlanOptions(cmd, a->in);
  cmd->add_flag("--json", a->json, "print the plan as JSON");
  cmd->add_flag("--testpmd", a->testpmd_only,
                "print only the testpmd commands (to paste into dpdk-testpmd)");
  commands.push_back({cmd, [a] { return runPlan(*a); }});
}

// --- explain ---

struct ExplainArgs {
  PlanInputs in;
  std::string rule_id;
  bool json = false;
  DaemonOptions daemon;  // --socket only: without --host and --ports, nicoffloadd explains
};

int explainByDaemon(const ExplainArgs& a) {
  DaemonOptions daemon = a.daemon;
  daemon.json = a.json;
  int rc = kExitOk;
  auto r = callDaemon(daemon, {{"op", "explain"}, {"rule", a.rule_id}}, rc);
  if (!r) return rc;
  return printReply(daemon, *r, [&] {
    std::printf("%s\n  device/placement: %s\n", (*r)["explanation"].get<std::string>().c_str(),
                (*r)["reason"].get<std::string>().c_str());
    for (const auto& line : (*r)["testpmd"]) std::printf("  %s\n", line.get<std::string>().c_str());
  });
}

int explainOffline(const ExplainArgs& a) {
  if (a.in.host_file.empty() != a.in.ports_file.empty()) {
    std::fprintf(stderr, "nicoffloadctl: error: explain offline needs both --host and --ports\n");
    return kExitInput;
  }
  auto id = flowrules::parseRuleId(a.rule_id);
  if (!id) {
    std::fprintf(stderr,
                 "nicoffloadctl: error: RULE-ID: '%s' is not a rule id (expected e.g. "
                 "ld-0123456789abcdef, as printed by plan)\n",
                 printable(a.rule_id).c_str());
    return kExitInput;
  }
  int rc = kExitOk;
  auto p = loadAndPlan(a.in, rc);
  if (!p) return rc;
  for (const auto& rule : p->state.rules) {
    if (rule.id != *id) continue;
    if (a.json) {
      auto j = flowrules::toJson(rule, p->profile);
      j["explanation"] = flowrules::explainRule(rule, p->profile);
      std::cout << j.dump(2) << "\n";
    } else {
      std::printf("%s\n", flowrules::explainRule(rule, p->profile).c_str());
      for (const auto& line : flowrules::renderTestpmdForPaste(
               rule, flowrules::PortNumbering::fromHost(p->intent.host), p->profile))
        std::printf("  %s\n", line.c_str());
    }
    return kExitOk;
  }
  std::fprintf(stderr, "nicoffloadctl: error: RULE-ID: no rule %s in the plan of %s\n",
               printable(a.rule_id).c_str(), printable(a.in.host_file).c_str());
  return kExitNotFound;
}

int runExplain(const ExplainArgs& a) {
  if (a.in.host_file.empty() && a.in.ports_file.empty()) return explainByDaemon(a);
  return explainOffline(a);
}

void addExplainCommand(CLI::App& app, Commands& commands) {
  auto a = std::make_shared<ExplainArgs>();
  auto* cmd = app.add_subcommand("explain",
                                 "say why a rule is placed in hw or sw: offline with --host and "
                                 "--ports, else asking nicoffloadd");
  cmd->add_option("RULE-ID", a->rule_id, "rule id as printed by plan, e.g. ld-0123456789abcdef")
      ->required();
  addPlanOptions(cmd, a->in, false);
  cmd->add_flag("--json", a->json, "print the rule and its reason as JSON");
  cmd->add_option("--socket", a->daemon.socket,
                  "ask nicoffloadd (the default when --host/--ports are not given)");
  commands.push_back({cmd, [a] { return runExplain(*a); }});
}

// --- device-check ---

struct DeviceCheckArgs {
  PlanInputs in;
  bool json = false;
};

int runDeviceCheck(const DeviceCheckArgs& a) {
  int rc = kExitOk;
  auto p = loadAndPlan(a.in, rc);
  if (!p) return rc;
  return deviceCheck(*p, a.json);
}

void addDeviceCheckCommand(CLI::App& app, Commands& commands) {
  auto a = std::make_shared<DeviceCheckArgs>();
  auto* cmd = app.add_subcommand(
      "device-check",
      "plan, then validate and create every hw rule on the host's flow backend (backends.flow: the "
      "simulated NIC, or rte_flow on the PF with dpdk.eal_args/pf_devargs) and report what the "
      "device accepted; the rules are removed again before the command exits");
  addPlanOptions(cmd, a->in);
  cmd->add_flag("--json", a->json, "print the placement in effect as JSON");
  commands.push_back({cmd, [a] { return runDeviceCheck(*a); }});
}

// --- profile-check ---

int runProfileCheck(const std::vector<std::string>& files) {
  int rc = kExitOk;
  for (const auto& f : files) {
    auto profile = model::loadHwProfile(f);
    if (!profile) {
      rc = fail(profile.error());
      continue;
    }
    std::printf("%s: ok (%s, %s)\n", f.c_str(), profile->name.c_str(), profile->model.c_str());
  }
  return rc;
}

void addProfileCheckCommand(CLI::App& app, Commands& commands) {
  auto files = std::make_shared<std::vector<std::string>>();
  auto* cmd =
      app.add_subcommand("profile-check", "check hardware profile files against the schema");
  cmd->add_option("FILE", *files, "profile files (hw-profiles/*.json)")
      ->required()
      ->check(CLI::ExistingFile);
  commands.push_back({cmd, [files] { return runProfileCheck(*files); }});
}

// --- the software path: apply (converge), remove, readback ---

enum class SwAction { kApply, kRemove, kReadBack };

struct SwArgs {
  PlanInputs in;
  std::string netns;
  bool sw_only = false;
  bool json = false;
};

int runSwCommand(SwAction action, const SwArgs& a) {
  if (action != SwAction::kReadBack && !a.sw_only) {
    std::fprintf(stderr,
                 "nicoffloadctl: error: --sw-only is required: this version applies the kernel "
                 "software path only (flow rules belong to nicoffloadd; device-check tries them "
                 "on the device)\n");
    return kExitInput;
  }
  if (!a.netns.empty())
    if (auto s = offload::checkNetnsName(a.netns); !s) return fail(s.error());
  int rc = kExitOk;
  auto p = loadAndPlan(a.in, rc);
  if (!p) return rc;
  switch (action) {
    case SwAction::kApply:
      return runApply(*p, a.netns, a.json);
    case SwAction::kRemove:
      return runRemove(*p, a.netns, a.json);
    case SwAction::kReadBack:
      break;
  }
  return runReadBack(*p, a.netns);
}

void addSwCommand(CLI::App& app, Commands& commands, SwAction action, const char* name,
                  const std::string& description, const char* json_help) {
  auto a = std::make_shared<SwArgs>();
  auto* cmd = app.add_subcommand(name, description);
  addPlanOptions(cmd, a->in);
  cmd->add_option(
      "--netns", a->netns,
      "network namespace (a name under /run/netns) to program; default: the current one");
  if (action != SwAction::kReadBack)
    cmd->add_flag("--sw-only", a->sw_only,
                  "act on the kernel software path only (required: flow rules belong to "
                  "nicoffloadd; device-check tries them)");
  if (json_help) cmd->add_flag("--json", a->json, json_help);
  commands.push_back({cmd, [action, a] { return runSwCommand(action, *a); }});
}

}  // namespace

void addPlanCommands(CLI::App& app, Commands& commands) {
  addPlanCommand(app, commands);
  addExplainCommand(app, commands);
  addDeviceCheckCommand(app, commands);
  addProfileCheckCommand(app, commands);
  addSwCommand(app, commands, SwAction::kApply, "apply",
               "converge the kernel software path to the plan: add what is missing, fix what "
               "differs, remove what is ours and no longer planned (needs root)",
               "print the changes and failures as JSON");
  addSwCommand(app, commands, SwAction::kRemove, "remove",
               "remove every software-path object of the plan (needs root)",
               "print the result as JSON");
  addSwCommand(app, commands, SwAction::kReadBack, "readback",
               "print, as JSON, the software-path objects the kernel holds for this plan (needs "
               "root)",
               nullptr);
}

}  // namespace nicoffload::cli
