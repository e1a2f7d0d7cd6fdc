// nicoffloadctl: the operator's command line.
//
// At this stage it plans offline: host config + ports file + hardware profile
// -> rules (testpmd syntax or JSON), software-path objects, vDPA devices, and
// the counts per placement; `explain` says why a rule sits in hw or sw;
// `device-check` runs the plan through the host's flow backend (the simulated
// NIC, or rte_flow on the real PF) and reports what the device accepted.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <tuple>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "host_check.h"
#include "nicoffload/common/file_read.h"
#include "nicoffload/flowrules/hw_apply.h"
#include "nicoffload/flowrules/planner.h"
#include "nicoffload/flowrules/render.h"
#include "nicoffload/hooks/domain.h"
#include "nicoffload/model/json_input.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/model/profile_dirs.h"
#include "nicoffload/daemon/control.h"
#include "nicoffload/offload/netns.h"
#include "nicoffload/offload/nic_status_json.h"
#include "nicoffload/offload/software_path.h"
#include "nicoffload/offload/flow_backends.h"
#include "nicoffload/offload/sysfs_nic_backend.h"
#include "nicoffload/simnic/trace.h"
#include "nicoffload/model/vdpa_device.h"

namespace {

using namespace nicoffload;

constexpr int kExitOk = 0;
constexpr int kExitInput = 2;  // bad input: config, ports, profile
constexpr int kExitNotFound = 3;
constexpr int kExitPartial = 4;  // some objects failed; the others are in place
constexpr int kExitNotRunning = 5;  // nicoffloadd is not running
constexpr int kExitDevice = 4;  // the flow backend cannot be opened, or the device failed
constexpr int kExitInternal = 6;  // an unexpected reply from nicoffloadd, or a bug: never an abort
// Command-line usage errors keep CLI11's codes for the kinds the footer
// names (105 ValidationError ... 110 ConfigError); every other parse error
// (a missing or unconvertible option value: ArgumentMismatch 114,
// ConversionError 104, ...) is 105, the "bad option value" code.
constexpr int kExitUsageFirst = 105;
constexpr int kExitUsageLast = 110;
constexpr int kExitUsageValue = 105;

struct PlanInputs {
  std::string host_file;
  std::string ports_file;
  std::string profile_file;  // optional: overrides the host's hw_profile
  std::string profile_dir;   // optional: where named profiles live
};

std::string defaultProfileDir() {
  return nicoffload::model::defaultProfileDir(NICOFFLOAD_PROFILE_INSTALL_DIR, NICOFFLOAD_PROFILE_SOURCE_DIR);
}

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
                      std::string(NICOFFLOAD_PROFILE_INSTALL_DIR) + " if present, else the source tree's)");
}

// The longest error line printed (bytes): a field and a message, each cut
// by makeError, plus the file name put in front of the field.
constexpr std::size_t kMaxErrorLineBytes = 4 * kMaxErrorMessageBytes;

// Errors are printed through printable() whatever built them (a file name
// put in front of a field, an Error decoded from a reply of nicoffloadd):
// cut, control bytes and invalid UTF-8 escaped.
std::string printableError(const Error& e) { return printable(e.describe(), kMaxErrorLineBytes); }

int fail(const Error& e) {
  std::fprintf(stderr, "nicoffloadctl: error: %s\n", printableError(e).c_str());
  return kExitInput;
}

// A CLI11 parse error as the documented exit status: --help and --version
// print and exit 0; a usage error is one error line naming the option.
int usageExit(const CLI::App& app, const CLI::ParseError& e) {
  if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
  std::fprintf(stderr,
               "nicoffloadctl: error: command line: %s\n"
               "  (run 'nicoffloadctl --help', or '<command> --help', for the options)\n",
               printable(e.what(), kMaxErrorLineBytes).c_str());
  const int code = e.get_exit_code();
  return code >= kExitUsageFirst && code <= kExitUsageLast ? code : kExitUsageValue;
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
    out.push_back({{"object", f.object}, {"error", errorInfo(f.error.code).name}, {"message", f.error.message}});
  return out;
}

std::optional<std::unique_ptr<offload::SoftwarePath>> openSwPath(const std::string& netns, int& rc) {
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
  j["changes"] = changes;
  j["failures"] = failuresJson(report->applied);
  for (auto& f : failuresJson(report->removed)) j["failures"].push_back(f);
  if (json_out) {
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("software path of %s in namespace %s: %zu objects desired, %zu differed "
                "(added %zu, changed %zu, removed %zu)\n",
                p.intent.host.name.c_str(), netns.empty() ? "(current)" : netns.c_str(),
                p.state.sw.size(), d.size(),
                d.sysctls.add.size() + d.links.add.size() + d.addresses.add.size() +
                    d.vxlan_devices.add.size() + d.fdb.add.size() + d.neighbours.add.size() + d.routes.add.size(),
                d.sysctls.modify.size() + d.links.modify.size() + d.addresses.modify.size() +
                    d.vxlan_devices.modify.size() + d.fdb.modify.size() + d.neighbours.modify.size() + d.routes.modify.size(),
                d.sysctls.remove.size() + d.links.remove.size() + d.addresses.remove.size() +
                    d.vxlan_devices.remove.size() + d.fdb.remove.size() + d.neighbours.remove.size() + d.routes.remove.size());
    for (const auto* r : {&report->applied, &report->removed})
      for (const auto& f : r->failures)
        std::fprintf(stderr, "nicoffloadctl: failed: %s: %s\n", f.object.c_str(), f.error.message.c_str());
  }
  return report->ok() ? kExitOk : kExitPartial;
}

int runRemove(const Planned& p, const std::string& netns, bool json_out) {
  int rc = kExitOk;
  auto path = openSwPath(netns, rc);
  if (!path) return rc;
  const auto report = (*path)->remove(p.state.sw);
  if (json_out) {
    std::cout << nlohmann::json{{"removed", report.succeeded}, {"failures", failuresJson(report)}}.dump(2) << "\n";
  } else {
    std::printf("software path of %s removed from namespace %s: %zu objects\n",
                p.intent.host.name.c_str(), netns.empty() ? "(current)" : netns.c_str(), report.succeeded);
    for (const auto& f : report.failures)
      std::fprintf(stderr, "nicoffloadctl: failed: %s: %s\n", f.object.c_str(), f.error.message.c_str());
  }
  return report.ok() ? kExitOk : kExitPartial;
}

int runReadBack(const Planned& p, const std::string& netns) {
  int rc = kExitOk;
  auto path = openSwPath(netns, rc);
  if (!path) return rc;
  auto installed = (*path)->readBack(p.state.sw, {p.intent.host.route_table, p.intent.host.route_protocol});
  if (!installed) return fail(installed.error());
  std::cout << flowrules::toJson(*installed).dump(2) << "\n";
  return kExitOk;
}

// --- talking to nicoffloadd ---

struct DaemonOptions {
  std::string socket;
  std::string config;  // host config to take the socket path from
  int timeout_ms = 10000;
  bool json = false;
};

std::string socketPath(const DaemonOptions& d) {
  if (!d.socket.empty()) return d.socket;
  if (const char* env = std::getenv("NICOFFLOAD_SOCKET"); env && *env) return env;
  if (!d.config.empty())
    if (auto host = model::loadHostConfig(d.config)) return host->socket_path;
  if (::access("/etc/nicoffload/host.json", R_OK) == 0)
    if (auto host = model::loadHostConfig("/etc/nicoffload/host.json")) return host->socket_path;
  return model::HostConfig{}.socket_path;
}

// Sends one request; prints the error and returns nullopt on failure.
// Connects to nicoffloadd; on failure says why and sets the exit status.
std::unique_ptr<offload::control::Client> connectDaemon(const DaemonOptions& d, int& rc) {
  auto client = offload::control::Client::connect(socketPath(d), d.timeout_ms);
  if (!client) {
    std::fprintf(stderr, "nicoffloadctl: %s\n",
                 printable(client.error().message, kMaxErrorLineBytes).c_str());
    rc = client.error().code == ErrorCode::kNotFound ? kExitNotRunning : kExitInput;
    return nullptr;
  }
  return std::move(client).value();
}

std::optional<nlohmann::json> callDaemon(const DaemonOptions& d, const nlohmann::json& request, int& rc) {
  auto client = connectDaemon(d, rc);
  if (!client) return std::nullopt;
  // deadline_ms (CLOCK_MONOTONIC ms): a request nicoffloadd only comes to
  // after --timeout, when we no longer wait for it, is refused, not applied.
  nlohmann::json stamped = request;
  if (stamped.is_object() && !stamped.contains("deadline_ms"))
    stamped["deadline_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 (std::chrono::steady_clock::now() +
                                  std::chrono::milliseconds(d.timeout_ms))
                                     .time_since_epoch())
                                 .count();
  auto reply = client->call(stamped, d.timeout_ms);
  if (!reply) {
    const auto& e = reply.error();
    std::fprintf(stderr, "nicoffloadctl: error: %s\n", printableError(e).c_str());
    const auto& info = errorInfo(e.code);
    if (!info.suggestion.empty()) std::fprintf(stderr, "  (%s: %s)\n", std::string(info.title).c_str(), std::string(info.suggestion).c_str());
    rc = e.code == ErrorCode::kNotFound ? kExitNotFound : kExitInput;
    return std::nullopt;
  }
  return std::move(reply).value();
}

// A large read, page by page on one connection (the daemon serves other
// clients between pages): `request` with "offset"/"limit", each item of the
// reply's `key` list handed to `each` as it arrives.
bool callDaemonPaged(const DaemonOptions& d, nlohmann::json request, const char* key,
                     const std::function<void(const nlohmann::json&)>& each, int& rc) {
  constexpr std::size_t kPage = 2000;
  auto client = connectDaemon(d, rc);
  if (!client) return false;
  nlohmann::json next = 0;
  while (!next.is_null()) {
    request["offset"] = next;
    request["limit"] = kPage;
    auto reply = client->call(request, d.timeout_ms);
    if (!reply) {
      std::fprintf(stderr, "nicoffloadctl: error: %s\n", printableError(reply.error()).c_str());
      rc = reply.error().code == ErrorCode::kNotFound ? kExitNotFound : kExitInput;
      return false;
    }
    const auto& page = *reply;
    if (!page.is_object() || !page.contains(key) || !page[key].is_array() || !page.contains("next")) {
      std::fprintf(stderr, "nicoffloadctl: error: unexpected reply from nicoffloadd (no page of %s)\n", key);
      rc = kExitInternal;
      return false;
    }
    for (const auto& item : page[key]) each(item);
    const auto& after = page["next"];
    if (!after.is_null() &&
        (!after.is_number_unsigned() || after.get<std::uint64_t>() <= next.get<std::uint64_t>())) {
      std::fprintf(stderr, "nicoffloadctl: error: unexpected reply from nicoffloadd (page %s after %s)\n",
                   after.dump().c_str(), next.dump().c_str());
      rc = kExitInternal;
      return false;
    }
    next = after;
  }
  return true;
}

void printTable(const nlohmann::json& rows, std::initializer_list<std::pair<const char*, const char*>> cols) {
  auto cell = [](const nlohmann::json& row, const char* key) {
    const auto ptr = nlohmann::json::json_pointer(key);
    const auto v = row.contains(ptr) ? row[ptr] : nlohmann::json();
    return v.is_string() ? v.get<std::string>() : v.is_null() ? std::string("-") : v.dump();
  };
  std::vector<std::size_t> width;
  for (const auto& [title, key] : cols) {
    std::size_t w = std::strlen(title);
    for (const auto& row : rows) w = std::max(w, cell(row, key).size());
    width.push_back(w + 2);
  }
  std::size_t i = 0;
  for (const auto& [title, key] : cols) std::printf("%-*s", static_cast<int>(width[i++]), title);
  std::printf("\n");
  for (const auto& row : rows) {
    i = 0;
    for (const auto& [title, key] : cols) std::printf("%-*s", static_cast<int>(width[i++]), cell(row, key).c_str());
    std::printf("\n");
  }
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
        if (c.sw_by_reason[i]) std::printf(", %s %zu", flowrules::reasonCodeName(i), c.sw_by_reason[i]);
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

// `nic status`: the PF, its eswitch mode, VFs and representors, read-only.
int runNicStatus(const std::string& pci, const std::string& netdev, const std::string& sysfs_root, bool json) {
  offload::SysfsNicOptions o;
  o.pf_pci = pci;
  o.pf_netdev = netdev;
  auto nic = offload::makeSysfsNicBackend(o, sysfs_root);
  auto st = nic->status();
  if (!st) {
    fail(st.error());
    return st.error().code == ErrorCode::kNotFound ? kExitNotFound : kExitInput;
  }
  if (json) {
    std::cout << offload::toJson(*st).dump(2) << "\n";
    return kExitOk;
  }
  const char* mode = !st->eswitch_mode ? "unknown"
                     : *st->eswitch_mode == model::EswitchMode::kSwitchdev ? "switchdev" : "legacy";
  std::printf("PF %s netdev %s: eswitch %s, VFs %u of %u, autoprobe %s%s%s\n", st->pci.c_str(),
              st->netdev.empty() ? "-" : st->netdev.c_str(), mode, st->num_vfs, st->total_vfs,
              st->drivers_autoprobe ? "on" : "off", st->switch_id.empty() ? "" : ", switch id ",
              st->switch_id.c_str());
  auto flag = [](const std::optional<bool>& b) { return !b ? "?" : *b ? "on" : "off"; };
  for (const auto& v : st->vfs) {
    std::string vdpa;
    for (const auto& d : v.vdpa_devices) vdpa += (vdpa.empty() ? "" : ",") + d;
    std::printf("  vf%-3u %s driver %s netdev %s representor %s mac %s trust %s spoofchk %s vdpa %s\n", v.index,
                v.pci.c_str(), v.driver.empty() ? "-" : v.driver.c_str(), v.netdev.empty() ? "-" : v.netdev.c_str(),
                v.representor.empty() ? "-" : v.representor.c_str(), v.mac ? v.mac->str().c_str() : "?",
                flag(v.trust), flag(v.spoofchk), vdpa.empty() ? "-" : vdpa.c_str());
  }
  for (const auto& w : st->warnings) std::printf("warning: %s\n", w.c_str());
  return kExitOk;
}

// domain-xml: the <interface> and <metadata> a domain definition needs for
// one port (libvirt-hooks/README.md). Offline; nothing is sent to the daemon.
struct DomainXmlArgs {
  std::string vm, mac, representor, vdpa, kind = "ethernet", source;
  std::string link_dir = "/run/nicoffload/vdpa";
  int nic = 0, mtu = 0, queues = 0;
  long long vni = -1, vf = -1;
  std::vector<std::string> addresses;
};

int runDomainXml(const DomainXmlArgs& a) {
  nlohmann::json doc{{"vm", a.vm}, {"nic", a.nic}, {"mac", a.mac}, {"addresses", a.addresses}};
  if (a.vni >= 0) doc["vni"] = a.vni;
  if (a.vf >= 0) doc["vf"] = a.vf;
  if (a.mtu > 0) doc["mtu"] = a.mtu;
  if (a.queues > 0) doc["queues"] = a.queues;
  if (!a.representor.empty()) doc["representor"] = a.representor;
  if (!a.vdpa.empty()) doc["vdpa"] = a.vdpa;
  auto port = model::parsePort(doc, "port");
  if (!port) return fail(port.error());
  // vdpa / vhostuser without --source: the stable link nicoffloadd keeps
  // for the port (vdpa.link_dir, default /run/nicoffload/vdpa), which a
  // domain definition can name before the device exists.
  std::string source = a.source;
  if (source.empty() && (a.kind == "vdpa" || a.kind == "vhostuser"))
    source = a.link_dir + "/" + vdpa::deviceName(port->key);
  auto iface = hooks::interfaceXmlFor(*port, a.kind, source);
  if (!iface) return fail(iface.error());
  std::printf("<!-- in <devices>: interface %d of the domain (the port key is its position) -->\n%s", a.nic,
              iface->c_str());
  std::printf("<!-- in the domain, <uuid>%s</uuid>: -->\n%s", port->key.vm.c_str(),
              hooks::metadataXmlFor({*port}).c_str());
  return kExitOk;
}

// A remotes file (remote add --file, remote sync --file): a regular file of
// at most kMaxInputFileBytes, or stdin for "-" (as much as one request may
// carry).
Result<nlohmann::json> readRemotesFile(const std::string& file) {
  if (file != "-") return model::readJsonFile(file, kMaxInputFileBytes, "--file");
  auto text = readBoundedFd(STDIN_FILENO, kMaxInputFileBytes, "stdin");
  if (!text) return text.error();
  return model::parseJsonInput(*text, "stdin");
}

// remote add --file: one remote (an object) is a remote.add; a list (an
// array, or {"remotes": [...]}) is a batch of remote.add, all or nothing.
Result<nlohmann::json> remoteAddRequest(const nlohmann::json& doc, const std::string& file) {
  const bool wrapped = doc.is_object() && doc.contains("remotes");
  if (doc.is_object() && !wrapped) return nlohmann::json{{"op", "remote.add"}, {"remote", doc}};
  const nlohmann::json& list = wrapped ? doc["remotes"] : doc;
  if (!list.is_array() || list.empty())
    return makeError(ErrorCode::kInvalidValue, wrapped ? file + ": remotes" : file,
                     list.is_array() ? "[]" : list.type_name(),
                     "expected one remote (a JSON object) or a non-empty list of them (an array, "
                     "or {\"remotes\": [...]})");
  if (wrapped && doc.size() != 1)
    return makeError(ErrorCode::kUnknownField, file, "",
                     "a {\"remotes\": [...]} file holds the key \"remotes\" only");
  nlohmann::json ops = nlohmann::json::array();
  for (const auto& r : list) ops.push_back({{"op", "remote.add"}, {"remote", r}});
  return nlohmann::json{{"op", "batch"}, {"ops", std::move(ops)}};
}

// The packet options of `trace` and `sim send`: each a field of the
// daemon's packet spec (simnic/trace.h).
const std::vector<std::pair<const char*, const char*>> kPacketOptions = {
    {"in", "where the packet enters: uplink, a port <vm uuid>/<nic>, its representor or vf<N> (required)"},
    {"src-mac", "source MAC (default: the port's MAC; from the uplink, the next hop's)"},
    {"dst-mac", "destination MAC (default: the gateway MAC; from the uplink, the uplink's)"},
    {"ethertype", "ipv4 (default), arp, or an EtherType number such as 0x86dd"},
    {"src-ip", "IPv4 source (default: the port's first address)"},
    {"dst-ip", "IPv4 destination (required for IPv4)"},
    {"proto", "udp (default), tcp or icmp"},
    {"src-port", "UDP/TCP source port (default 40000)"},
    {"dst-port", "UDP/TCP destination port (default 5001 UDP, 80 TCP)"},
    {"ttl", "IPv4 TTL (default 64)"},
    {"payload", "payload bytes (default 64)"},
    {"arp-op", "ARP operation: request (default) or reply"},
    {"spa", "ARP sender protocol address (default: the port's first address)"},
    {"tpa", "ARP target protocol address (required for ARP; implies --ethertype arp)"},
    {"vni", "VXLAN: the VNI; the fields above then describe the inner packet"},
    {"outer-src-ip", "VXLAN: the sending VTEP (required for VXLAN)"},
    {"outer-dst-ip", "VXLAN: the receiving VTEP (default: this host's)"},
    {"outer-src-mac", "VXLAN: outer source MAC"},
    {"outer-dst-mac", "VXLAN: outer destination MAC (default: the uplink's)"},
    {"vxlan-port", "VXLAN: outer UDP destination port (default: the host's)"}};

// --- traffic: `top` and `sim send` ---

struct TopArgs {
  double interval_s = 2.0;
  int count = 0;      // samples to print; 0 = until interrupted
  bool once = false;  // one sample of the totals, no rates
  std::string vm;
};

// One port's figures as `traffic` gives them; null traffic (not read yet) = zeros.
struct TopRow {
  std::string vm;
  unsigned nic = 0;
  std::uint64_t v[7]{};  // rx hw pkts, rx sw pkts, tx hw pkts, tx sw pkts, drops, rx bytes, tx hw bytes
};

std::vector<TopRow> topRows(const nlohmann::json& reply) {
  std::vector<TopRow> rows;
  for (const auto& p : reply.at("ports")) {
    TopRow row;
    row.vm = p.at("vm").get<std::string>();
    row.nic = p.at("nic").get<unsigned>();
    const auto& t = p.at("traffic");
    if (!t.is_null()) {
      static const char* const paths[7] = {"/rx/hw/packets", "/rx/sw/packets", "/tx/hw/packets",
                                           "/tx/sw/packets", "/tx_dropped/packets", "/rx/bytes",
                                           "/tx/hw/bytes"};
      for (int i = 0; i < 7; ++i) row.v[i] = t.at(nlohmann::json::json_pointer(paths[i])).get<std::uint64_t>();
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string human(double v) {
  char buf[32];
  const char* unit[] = {"", "k", "M", "G", "T"};
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  std::snprintf(buf, sizeof buf, u ? "%.1f%s" : "%.0f%s", v, unit[u]);
  return buf;
}

// nicoffloadctl top: the ports' traffic from the hardware counters and the
// representors, refreshed every interval (each sample asks nicoffloadd to
// read the counters then: `traffic` with "refresh"). Rates are the change
// between two samples over the time between them.
int runTop(const DaemonOptions& daemon, const TopArgs& a) {
  nlohmann::json req = {{"op", "traffic"}, {"refresh", true}};
  if (!a.vm.empty()) req["vm"] = a.vm;
  const bool tty = ::isatty(STDOUT_FILENO) == 1 && !a.once && !daemon.json;
  std::map<std::pair<std::string, unsigned>, TopRow> previous;
  auto previous_at = std::chrono::steady_clock::now();
  for (int sample = 0; a.count == 0 || sample < (a.once ? 1 : a.count + 1); ++sample) {
    int rc = kExitOk;
    auto r = callDaemon(daemon, req, rc);
    if (!r) return rc;
    const auto now = std::chrono::steady_clock::now();
    if (daemon.json) {
      std::cout << r->dump() << "\n" << std::flush;
    } else {
      const auto rows = topRows(*r);
      const double dt = std::chrono::duration<double>(now - previous_at).count();
      const bool rates = !a.once && sample > 0 && dt > 0;
      if (tty) std::printf("\033[H\033[2J");
      if (!a.once && sample == 0 && a.count != 0) {  // the first sample only sets the baseline
        for (const auto& row : rows) previous[{row.vm, row.nic}] = row;
        previous_at = now;
        std::this_thread::sleep_for(std::chrono::duration<double>(a.interval_s));
        continue;
      }
      const auto& sweep = (*r)["sweep"];
      std::printf("nicoffload top: %zu ports; %s; counters read in %.2f ms (loop thread)%s\n", rows.size(),
                  rates ? ("rates over " + human(dt) + " s").c_str() : "totals since the daemon followed each port",
                  sweep.value("last_busy_ms", 0.0),
                  sweep.value("last_error", std::string()).empty() ? "" : "; some reads failed (see status)");
      std::printf("%-36s %4s %10s %10s %10s %10s %10s %10s %10s\n", "VM", "NIC", rates ? "RX pps hw" : "RX pkt hw",
                  rates ? "RX pps sw" : "RX pkt sw", rates ? "RX bit/s" : "RX bytes", rates ? "TX pps hw" : "TX pkt hw",
                  rates ? "TX pps sw" : "TX pkt sw", rates ? "TXbit/s hw" : "TX byte hw", rates ? "drop/s" : "dropped");
      for (const auto& row : rows) {
        double v[7];
        const auto it = previous.find({row.vm, row.nic});
        for (int i = 0; i < 7; ++i) {
          const std::uint64_t before = rates && it != previous.end() && it->second.v[i] <= row.v[i] ? it->second.v[i] : 0;
          v[i] = rates ? static_cast<double>(row.v[i] - before) / dt : static_cast<double>(row.v[i]);
        }
        const double bit = rates ? 8 : 1;
        std::printf("%-36s %4u %10s %10s %10s %10s %10s %10s %10s\n", row.vm.c_str(), row.nic, human(v[0]).c_str(),
                    human(v[1]).c_str(), human(v[5] * bit).c_str(), human(v[2]).c_str(), human(v[3]).c_str(),
                    human(v[6] * bit).c_str(), human(v[4]).c_str());
        previous[{row.vm, row.nic}] = row;
      }
      std::fflush(stdout);
    }
    previous_at = now;
    if (a.once || (a.count != 0 && sample >= a.count)) break;
    std::this_thread::sleep_for(std::chrono::duration<double>(a.interval_s));
  }
  return kExitOk;
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"nicoffloadctl: control the nicoffload SmartNIC / vDPA offload controller"};
  app.set_version_flag("--version", std::string("nicoffloadctl ") + NICOFFLOAD_VERSION);
  app.require_subcommand(1);

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
  auto* explain_cmd = app.add_subcommand(
      "explain", "say why a rule is placed in hw or sw: offline with --host and --ports, else asking nicoffloadd");
  explain_cmd->add_option("RULE-ID", rule_id, "rule id as printed by plan, e.g. ld-0123456789abcdef")
      ->required();
  addPlanOptions(explain_cmd, explain_in, false);
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

  // Software path: apply (converge), remove, read back.
  struct SwCommand {
    PlanInputs in;
    std::string netns;
    bool sw_only = false;
    bool json = false;
  };
  SwCommand apply_in, remove_in, readback_in;
  auto addSwOptions = [&](CLI::App* cmd, SwCommand& c, bool needs_sw_only) {
    addPlanOptions(cmd, c.in);
    cmd->add_option("--netns", c.netns, "network namespace (a name under /run/netns) to program; default: the current one");
    if (needs_sw_only)
      cmd->add_flag("--sw-only", c.sw_only,
                    "act on the kernel software path only (required: flow rules belong to nicoffloadd; device-check tries them)");
  };
  auto* apply_cmd = app.add_subcommand(
      "apply", "converge the kernel software path to the plan: add what is missing, fix what differs, "
               "remove what is ours and no longer planned (needs root)");
  addSwOptions(apply_cmd, apply_in, true);
  apply_cmd->add_flag("--json", apply_in.json, "print the changes and failures as JSON");
  auto* remove_cmd = app.add_subcommand("remove", "remove every software-path object of the plan (needs root)");
  addSwOptions(remove_cmd, remove_in, true);
  remove_cmd->add_flag("--json", remove_in.json, "print the result as JSON");
  auto* readback_cmd = app.add_subcommand(
      "readback", "print, as JSON, the software-path objects the kernel holds for this plan (needs root)");
  addSwOptions(readback_cmd, readback_in, false);

  // Daemon commands.
  DaemonOptions daemon;
  auto addDaemonOptions = [&](CLI::App* cmd) {
    cmd->add_option("--socket", daemon.socket, "nicoffloadd control socket");
    cmd->add_option("--config", daemon.config, "host config to read the socket path from")->check(CLI::ExistingFile);
    cmd->add_option("--timeout", daemon.timeout_ms, "milliseconds to wait for nicoffloadd")->capture_default_str();
    cmd->add_flag("--json", daemon.json, "print the reply as JSON");
  };
  auto* status_cmd = app.add_subcommand("status", "show nicoffloadd's state: host, backends, ports, rules");
  addDaemonOptions(status_cmd);
  auto* port_cmd = app.add_subcommand("port", "manage ports (VM NICs) in nicoffloadd");
  port_cmd->require_subcommand(1);
  struct PortArgs {
    std::string vm, mac, representor, vdpa, file;
    int nic = 0, mtu = 0, queues = 0;
    long long vni = -1, vf = -1;
    std::vector<std::string> addresses;
  } pa;
  auto* port_add = port_cmd->add_subcommand(
      "add", "add or update a port (idempotent): give --file, or --vm, --nic, --mac and --address");
  port_add->footer(
      "Required: either --file FILE (the port as a JSON object), or --vm, --nic, --mac and at\n"
      "least one --address; the other options only go with the latter.");
  addDaemonOptions(port_add);
  port_add->add_option("--vm", pa.vm, "VM (libvirt domain) UUID");
  port_add->add_option("--nic", pa.nic, "NIC index in the domain");
  port_add->add_option("--mac", pa.mac, "guest MAC");
  port_add->add_option("--address", pa.addresses, "a /32 of the VM (repeat for more)");
  port_add->add_option("--vni", pa.vni, "VXLAN VNI (vxlan underlay)");
  port_add->add_option("--vf", pa.vf, "VF index (default: the lowest free VF)");
  port_add->add_option("--representor", pa.representor, "representor netdev (default pf0vf<vf>)");
  port_add->add_option("--mtu", pa.mtu, "MTU");
  port_add->add_option("--queues", pa.queues, "virtqueue pairs");
  port_add->add_option("--vdpa", pa.vdpa, "none, kernel, dpdk or sim (default: the host's)");
  auto* port_file_opt =
      port_add->add_option("--file", pa.file, "the port as a JSON object (instead of the options)")
          ->check(CLI::ExistingFile);
  for (const char* name : {"--vm", "--nic", "--mac", "--address", "--vni", "--vf", "--representor",
                           "--mtu", "--queues", "--vdpa"})
    port_file_opt->excludes(port_add->get_option(name));
  auto* port_del = port_cmd->add_subcommand("del", "remove a port (removing a port that is gone succeeds)");
  addDaemonOptions(port_del);
  port_del->add_option("--vm", pa.vm, "VM UUID")->required();
  port_del->add_option("--nic", pa.nic, "NIC index")->required();
  auto* port_show = port_cmd->add_subcommand("show", "show one port: its rules and their placement");
  addDaemonOptions(port_show);
  port_show->add_option("--vm", pa.vm, "VM UUID")->required();
  port_show->add_option("--nic", pa.nic, "NIC index")->required();
  auto* port_list = port_cmd->add_subcommand("list", "list the ports");
  addDaemonOptions(port_list);
  auto* remote_cmd = app.add_subcommand("remote", "manage remote endpoints (other hypervisors' VM /32s)");
  remote_cmd->require_subcommand(1);
  std::string remote_address, remote_next_hop, remote_vtep;
  long long remote_vni = -1;
  std::string remote_add_file;
  auto* remote_add = remote_cmd->add_subcommand(
      "add", "add or update a remote endpoint (idempotent): give --file, or --address");
  remote_add->footer(
      "Required: either --file FILE (one remote as a JSON object, or a list of them: an array or\n"
      "{\"remotes\": [...]}, added all or nothing in one batch), or --address; the other options\n"
      "only go with the latter.");
  addDaemonOptions(remote_add);
  remote_add->add_option("--address", remote_address, "the remote VM's /32");
  remote_add->add_option("--next-hop", remote_next_hop, "underlay next hop (routed underlay)");
  remote_add->add_option("--vtep", remote_vtep, "remote VTEP (vxlan underlay)");
  remote_add->add_option("--vni", remote_vni, "VNI (vxlan underlay)");
  auto* remote_del = remote_cmd->add_subcommand("del", "remove a remote endpoint");
  addDaemonOptions(remote_del);
  remote_del->add_option("--address", remote_address, "the remote /32")->required();
  std::string remote_origin, remote_file;
  remote_add->add_option("--origin", remote_origin,
                         "api (the default, and the only origin remote add takes: a named "
                         "origin's set changes through remote sync)");
  auto* remote_file_opt =
      remote_add
          ->add_option("--file", remote_add_file,
                       "one remote (a JSON object) or a list of them (an array, or "
                       "{\"remotes\": [...]}) instead of the options; - reads stdin")
          ->check(CLI::ExistingFile | CLI::IsMember({"-"}));
  for (const char* name : {"--address", "--next-hop", "--vtep", "--vni", "--origin"})
    remote_file_opt->excludes(remote_add->get_option(name));
  auto* remote_list = remote_cmd->add_subcommand("list", "list remote endpoints (page by page)");
  addDaemonOptions(remote_list);
  remote_list->add_option("--origin", remote_origin, "only the remotes of this origin");
  bool remote_refused = false;
  remote_list->add_flag("--refused", remote_refused,
                        "instead: the routes learned from the kernel that are not followed, each "
                        "with its reason (an underlay address, kernel.learn_prefixes, ...)");
  auto* remote_sync = remote_cmd->add_subcommand(
      "sync", "make the remotes of one origin exactly those of a file (added, updated, removed)");
  addDaemonOptions(remote_sync);
  remote_sync->add_option("--origin", remote_origin, "the origin whose set this is, e.g. bgp-ctl")
      ->required();
  remote_sync->add_option("--file", remote_file,
                          "JSON: an array of remotes, or {\"remotes\": [...]}; - reads stdin")
      ->required();
  bool rules_testpmd = false;
  auto* rules_cmd = app.add_subcommand("rules", "list the installed rules with their placement and reason");
  addDaemonOptions(rules_cmd);
  rules_cmd->add_flag("--testpmd", rules_testpmd, "print each rule in testpmd syntax too");
  auto* counters_cmd = app.add_subcommand("counters", "show per-backend counters");
  addDaemonOptions(counters_cmd);
  auto* reconcile_cmd = app.add_subcommand("reconcile", "run a full reconcile pass now");
  addDaemonOptions(reconcile_cmd);
  // trace: each option is a field of the daemon's packet spec (simnic/trace.h).
  std::map<std::string, std::string> trace_fields;
  auto* trace_cmd = app.add_subcommand(
      "trace",
      "where one packet goes: through the rules the device holds, group by group (rule, class, "
      "placement and reason, actions, the packet as rewritten), then, when the hardware hands it "
      "to a representor, through the kernel software path (route lookup in the software path's "
      "namespace, proxy ARP, neighbour, VXLAN FDB); read-only, asks nicoffloadd");
  addDaemonOptions(trace_cmd);
  for (const auto& [key, help] : kPacketOptions) {
    std::string field = key;
    std::replace(field.begin(), field.end(), '-', '_');
    trace_cmd->add_option(std::string("--") + key, trace_fields[field], help);
  }
  TopArgs top_args;
  auto* top_cmd = app.add_subcommand(
      "top",
      "live per-port traffic (VM NICs): packets and bytes the hardware rules counted (hw) and the "
      "representors carried (sw), as rates between two samples; each sample has nicoffloadd read "
      "the counters then");
  addDaemonOptions(top_cmd);
  top_cmd->add_option("--interval", top_args.interval_s, "seconds between samples (default 2)")
      ->check(CLI::Range(0.1, 3600.0));
  top_cmd->add_option("--count", top_args.count, "print this many samples of rates, then stop (default: until interrupted)")
      ->check(CLI::Range(1, 1000000));
  top_cmd->add_flag("--once", top_args.once, "print the totals once and stop");
  top_cmd->add_option("--vm", top_args.vm, "only this VM's ports");
  std::map<std::string, std::string> send_fields;
  int send_count = 1;
  auto* sim_cmd = app.add_subcommand("sim", "the simulated NIC (backends.flow = sim)");
  sim_cmd->require_subcommand(1);
  auto* sim_send_cmd = sim_cmd->add_subcommand(
      "send",
      "send packets into the simulated NIC as if they came from the wire or a VM: they go through "
      "the rules it holds, whose counters count them (the same packet options as trace)");
  addDaemonOptions(sim_send_cmd);
  sim_send_cmd->add_option("--count", send_count, "how many copies (1..100000, default 1)")
      ->check(CLI::Range(1, 100000));
  for (const auto& [key, help] : kPacketOptions) {
    std::string field = key;
    std::replace(field.begin(), field.end(), '-', '_');
    sim_send_cmd->add_option(std::string("--") + key, send_fields[field], help);
  }
  explain_cmd->add_option("--socket", daemon.socket, "ask nicoffloadd (the default when --host/--ports are not given)");
  // NIC management (read-only here; the daemon changes the NIC).
  std::string nic_pci, nic_netdev, nic_sysfs = "/sys";
  bool nic_json = false;
  auto* nic_cmd = app.add_subcommand("nic", "the uplink PF: SR-IOV, eswitch mode, VFs, representors");
  nic_cmd->require_subcommand(1);
  auto* nic_status_cmd = nic_cmd->add_subcommand(
      "status", "print the PF's eswitch mode, VFs (PCI address, driver, MAC, representor, vDPA devices)");
  nic_status_cmd->add_option("--pci", nic_pci, "PCI address of the uplink PF, e.g. 0000:03:00.0")->required();
  nic_status_cmd->add_option("--netdev", nic_netdev, "the PF's netdev; default: found in sysfs");
  nic_status_cmd->add_option("--sysfs-root", nic_sysfs, "where sysfs is mounted (default /sys)");
  nic_status_cmd->add_flag("--json", nic_json, "print the status as JSON");

  DomainXmlArgs dx;
  auto* domain_xml_cmd = app.add_subcommand(
      "domain-xml", "print the libvirt <interface> and <metadata> XML of a port, for a domain definition");
  domain_xml_cmd->add_option("--vm", dx.vm, "the domain's UUID")->required();
  domain_xml_cmd->add_option("--nic", dx.nic, "position of the interface among the domain's interfaces");
  domain_xml_cmd->add_option("--mac", dx.mac, "guest MAC")->required();
  domain_xml_cmd->add_option("--address", dx.addresses, "a /32 of the VM (repeat for more)")->required();
  domain_xml_cmd->add_option("--vni", dx.vni, "VXLAN VNI");
  domain_xml_cmd->add_option("--vf", dx.vf, "VF index");
  domain_xml_cmd->add_option("--representor", dx.representor, "representor netdev");
  domain_xml_cmd->add_option("--mtu", dx.mtu, "MTU");
  domain_xml_cmd->add_option("--queues", dx.queues, "virtqueue pairs");
  domain_xml_cmd->add_option("--vdpa", dx.vdpa, "none, kernel, dpdk or sim");
  domain_xml_cmd->add_option("--kind", dx.kind, "interface type: ethernet (default), vdpa or vhostuser");
  domain_xml_cmd->add_option("--source", dx.source,
                             "ethernet: the tap (default the representor); vdpa and vhostuser: the "
                             "device node or socket (default the stable link nicoffloadd keeps for the "
                             "port, <--link-dir>/nfo<12 hex>)");
  domain_xml_cmd->add_option("--link-dir", dx.link_dir,
                             "nicoffloadd's vdpa.link_dir (default /run/nicoffload/vdpa)");

  cli::HostCheckArgs host_check;
  auto* host_check_cmd = cli::addHostCheckCommand(app, host_check);

  // Set last: CLI11 copies a parent's footer into each subcommand added
  // after it, and the long footer belongs to the top-level --help only.
  app.footer(
      "Exit status: 0 success; 2 bad input (config, ports, profile: the message names\n"
      "the file and field); 3 not found (rule, port); 4 some objects failed: kernel\n"
      "objects (each is named, the others are in place), or the flow backend/device\n"
      "(device-check); 5 nicoffloadd is not running; host-check: 1 a required line is not ok; 6 internal error (an unexpected\n"
      "reply from nicoffloadd, or a bug); 105-110 command-line usage errors: 105 an option\n"
      "value that is missing or invalid (also a file that does not exist), 106 a required option\n"
      "is missing, 107/108 options that need/exclude each other, 109 an unexpected argument.\n"
      "Errors are printed as \"nicoffloadctl: error: <field>: <message>\".\n"
      "Commands that talk to nicoffloadd use --socket, else $NICOFFLOAD_SOCKET, else the\n"
      "socket of /etc/nicoffload/host.json, else /run/nicoffload/nicoffloadd.sock.\n"
      "Named profiles are read from --profile-dir, $NICOFFLOAD_PROFILE_DIR "
      "or\n" NICOFFLOAD_PROFILE_INSTALL_DIR ".");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return usageExit(app, e);
  }

  if (*domain_xml_cmd) return runDomainXml(dx);
  if (*host_check_cmd) return cli::runHostCheckCommand(host_check, defaultProfileDir());

  if (*nic_status_cmd) return runNicStatus(nic_pci, nic_netdev, nic_sysfs, nic_json);

  int rc = kExitOk;
  auto printReply = [&](const nlohmann::json& reply, const std::function<void()>& text) {
    if (daemon.json)
      std::cout << reply.dump(2) << "\n";
    else
      text();
    return kExitOk;
  };
  if (*status_cmd) {
    auto r = callDaemon(daemon, {{"op", "status"}}, rc);
    if (!r) return rc;
    return printReply(*r, [&] {
      for (auto it = r->begin(); it != r->end(); ++it)
        std::printf("%-16s %s\n", it.key().c_str(), it->is_string() ? it->get<std::string>().c_str() : it->dump().c_str());
    });
  }
  if (*port_cmd) {
    nlohmann::json req;
    if (*port_add) {
      nlohmann::json port;
      if (pa.file.empty()) {
        std::string missing;
        for (const char* name : {"--vm", "--nic", "--mac", "--address"})
          if (port_add->count(name) == 0)
            missing += std::string(missing.empty() ? "" : ", ") + name;
        if (!missing.empty()) {
          std::fprintf(
              stderr,
              "nicoffloadctl: error: port add: give --file, or --vm, --nic, --mac and --address "
              "(missing: %s)\n",
              missing.c_str());
          return kExitInput;
        }
      }
      if (!pa.file.empty()) {
        auto doc = model::readJsonFile(pa.file, kMaxInputFileBytes, "--file");
        if (!doc) return fail(doc.error());
        port = *doc;
      } else {
        port = {{"vm", pa.vm}, {"nic", pa.nic}, {"mac", pa.mac}, {"addresses", pa.addresses}};
        if (pa.vni >= 0) port["vni"] = pa.vni;
        if (pa.vf >= 0) port["vf"] = pa.vf;
        if (!pa.representor.empty()) port["representor"] = pa.representor;
        if (pa.mtu) port["mtu"] = pa.mtu;
        if (pa.queues) port["queues"] = pa.queues;
        if (!pa.vdpa.empty()) port["vdpa"] = pa.vdpa;
      }
      req = {{"op", "port.add"}, {"port", port}};
    } else if (*port_del) {
      req = {{"op", "port.remove"}, {"vm", pa.vm}, {"nic", pa.nic}};
    } else if (*port_show) {
      req = {{"op", "port.get"}, {"vm", pa.vm}, {"nic", pa.nic}};
    } else {
      req = {{"op", "port.list"}};
    }
    auto r = callDaemon(daemon, req, rc);
    if (!r) return rc;
    return printReply(*r, [&] {
      if (*port_list) {
        printTable(*r, {{"VM", "/port/vm"}, {"NIC", "/port/nic"}, {"MAC", "/port/mac"}, {"VF", "/port/vf"},
                        {"STATE", "/state"}, {"HW", "/rules/hw"}, {"SW", "/rules/sw"}});
      } else if (*port_del) {
        std::printf("%s %s\n", (*r)["port"].get<std::string>().c_str(), (*r)["removed"].get<bool>() ? "removed" : "was not there");
      } else {
        const auto& st = r->contains("status") ? (*r)["status"] : *r;
        std::printf("port %s/%s: %s, vf %s, rules hw %s sw %s\n", st["port"]["vm"].get<std::string>().c_str(),
                    st["port"]["nic"].dump().c_str(), st["state"].get<std::string>().c_str(),
                    st["port"].value("vf", nlohmann::json()).dump().c_str(), st["rules"]["hw"].dump().c_str(),
                    st["rules"]["sw"].dump().c_str());
        if (st["rules"].contains("list"))
          for (const auto& rule : st["rules"]["list"])
            std::printf("  %s %-14s %s  %s\n", rule["id"].get<std::string>().c_str(), rule["class"].get<std::string>().c_str(),
                        rule["placement"].get<std::string>().c_str(), rule["reason"].get<std::string>().c_str());
        for (const auto& f : st["software_path_failures"])
          std::printf("  kernel object failing: %s: %s\n", f["object"].get<std::string>().c_str(),
                      f["error"]["message"].get<std::string>().c_str());
        if (const auto t = st.value("traffic", nlohmann::json()); t.is_object())
          std::printf("  traffic: rx %s packets (hw %s, sw %s); tx hw %s, sw %s; dropped %s (%s ms ago)\n",
                      t["rx"]["packets"].dump().c_str(), t["rx"]["hw"]["packets"].dump().c_str(),
                      t["rx"]["sw"]["packets"].dump().c_str(), t["tx"]["hw"]["packets"].dump().c_str(),
                      t["tx"]["sw"]["packets"].dump().c_str(), t["tx_dropped"]["packets"].dump().c_str(),
                      t["age_ms"].dump().c_str());
      }
    });
  }
  if (*remote_cmd) {
    nlohmann::json req;
    if (*remote_add && !remote_add_file.empty()) {
      auto doc = readRemotesFile(remote_add_file);
      if (!doc) return fail(doc.error());
      auto r = remoteAddRequest(*doc, remote_add_file);
      if (!r) return fail(r.error());
      req = std::move(r).value();
    } else if (*remote_add) {
      if (remote_add->count("--address") == 0) {
        std::fprintf(stderr,
                     "nicoffloadctl: error: remote add: give --file, or --address (missing: "
                     "--address)\n");
        return kExitInput;
      }
      nlohmann::json remote = {{"address", remote_address}};
      if (!remote_next_hop.empty()) remote["next_hop"] = remote_next_hop;
      if (!remote_vtep.empty()) remote["vtep"] = remote_vtep;
      if (remote_vni >= 0) remote["vni"] = remote_vni;
      if (!remote_origin.empty()) remote["origin"] = remote_origin;
      req = {{"op", "remote.add"}, {"remote", remote}};
    } else if (*remote_del) {
      req = {{"op", "remote.remove"}, {"address", remote_address}};
    } else if (*remote_sync) {
      auto doc = readRemotesFile(remote_file);
      if (!doc) return fail(doc.error());
      const nlohmann::json list = doc->is_object() && doc->contains("remotes") ? (*doc)["remotes"] : *doc;
      req = {{"op", "remote.sync"}, {"origin", remote_origin}, {"remotes", list}};
    } else {
      req = {{"op", "remote.list"}};
      if (!remote_origin.empty()) req["origin"] = remote_origin;
      if (remote_refused) req = {{"op", "remote.list"}, {"refused", true}};
      if (remote_refused && !remote_origin.empty())
        return fail(makeError(ErrorCode::kConflict, "--refused", "",
                              "--refused lists the learned routes not followed; --origin does "
                              "not apply"));
      nlohmann::json all = nlohmann::json::array();
      const bool ok = callDaemonPaged(daemon, req, remote_refused ? "refused" : "remotes",
                                      [&](const nlohmann::json& x) {
        if (daemon.json) {
          all.push_back(x);
          return;
        }
        if (remote_refused) {
          std::printf("%-18s %-12s %s\n", x.value("address", "").c_str(),
                      x.value("origin", "").c_str(), x.value("reason", "").c_str());
          return;
        }
        std::printf("%-18s %-16s %-16s %-9s %s\n", x.value("address", "").c_str(), x.value("next_hop", "").c_str(),
                    x.value("vtep", "").c_str(), x.contains("vni") ? x["vni"].dump().c_str() : "",
                    x.value("origin", "").c_str());
      }, rc);
      if (!ok) return rc;
      if (daemon.json) std::cout << all.dump(2) << "\n";
      return kExitOk;
    }
    auto r = callDaemon(daemon, req, rc);
    if (!r) return rc;
    return printReply(*r, [&] { std::cout << r->dump(2) << "\n"; });
  }
  if (*rules_cmd) {
    nlohmann::json all = nlohmann::json::array();
    const bool ok = callDaemonPaged(daemon, {{"op", "rules"}, {"testpmd", rules_testpmd}}, "rules",
                                    [&](const nlohmann::json& rule) {
      if (daemon.json) {
        all.push_back(rule);
        return;
      }
      std::printf("%s %-14s %s  %s\n", rule["id"].get<std::string>().c_str(), rule["class"].get<std::string>().c_str(),
                  rule["placement"].get<std::string>().c_str(), rule["reason"].get<std::string>().c_str());
      if (rule.contains("testpmd"))
        for (const auto& line : rule["testpmd"]) std::printf("    %s\n", line.get<std::string>().c_str());
    }, rc);
    if (!ok) return rc;
    if (daemon.json) std::cout << all.dump(2) << "\n";
    return kExitOk;
  }
  if (*counters_cmd || *reconcile_cmd) {
    auto r = callDaemon(daemon, {{"op", *counters_cmd ? "counters" : "reconcile"}}, rc);
    if (!r) return rc;
    return printReply(*r, [&] { std::cout << r->dump(2) << "\n"; });
  }
  if (*top_cmd) return runTop(daemon, top_args);
  if (*sim_send_cmd) {
    nlohmann::json packet = nlohmann::json::object();
    for (const auto& [field, value] : send_fields) {
      std::string key = field;
      std::replace(key.begin(), key.end(), '_', '-');
      if (sim_send_cmd->get_option("--" + key)->count() > 0) packet[field] = value;
    }
    auto r = callDaemon(daemon, {{"op", "sim.send"}, {"packet", packet}, {"count", send_count}}, rc);
    if (!r) return rc;
    return printReply(*r, [&] {
      std::printf("sent %s packet(s) from %s: %s (%s rules matched%s)\n", (*r)["sent"].dump().c_str(),
                  (*r)["in"].get<std::string>().c_str(), (*r)["delivery"].get<std::string>().c_str(),
                  (*r)["rules_matched"].dump().c_str(), (*r)["miss"].get<bool>() ? ", a miss" : "");
    });
  }
  if (*trace_cmd) {
    nlohmann::json packet = nlohmann::json::object();
    for (const auto& [field, value] : trace_fields) {
      std::string key = field;
      std::replace(key.begin(), key.end(), '_', '-');
      if (trace_cmd->get_option("--" + key)->count() > 0) packet[field] = value;
    }
    auto r = callDaemon(daemon, {{"op", "trace"}, {"packet", packet}}, rc);
    if (!r) return rc;
    return printReply(*r, [&] {
      for (const auto& line : simnic::traceText(*r)) std::printf("%s\n", line.c_str());
    });
  }
  if (*explain_cmd && explain_in.host_file.empty() && explain_in.ports_file.empty()) {
    daemon.json = explain_json;
    auto r = callDaemon(daemon, {{"op", "explain"}, {"rule", rule_id}}, rc);
    if (!r) return rc;
    return printReply(*r, [&] {
      std::printf("%s\n  device/placement: %s\n", (*r)["explanation"].get<std::string>().c_str(),
                  (*r)["reason"].get<std::string>().c_str());
      for (const auto& line : (*r)["testpmd"]) std::printf("  %s\n", line.get<std::string>().c_str());
    });
  }
  for (auto [cmd, c] : {std::pair{apply_cmd, &apply_in}, std::pair{remove_cmd, &remove_in},
                        std::pair{readback_cmd, &readback_in}}) {
    if (!*cmd) continue;
    if (cmd != readback_cmd && !c->sw_only) {
      std::fprintf(stderr, "nicoffloadctl: error: --sw-only is required: this version applies the kernel "
                           "software path only (flow rules belong to nicoffloadd; device-check tries them on the device)\n");
      return kExitInput;
    }
    if (!c->netns.empty())
      if (auto s = offload::checkNetnsName(c->netns); !s) return fail(s.error());
    auto p = loadAndPlan(c->in, rc);
    if (!p) return rc;
    if (cmd == apply_cmd) return runApply(*p, c->netns, c->json);
    if (cmd == remove_cmd) return runRemove(*p, c->netns, c->json);
    return runReadBack(*p, c->netns);
  }

  if (*plan_cmd) {
    if (json_out && testpmd_only) {
      std::fprintf(stderr, "nicoffloadctl: error: --json and --testpmd exclude each other\n");
      return kExitInput;
    }
    auto p = loadAndPlan(plan_in, rc);
    if (!p) return rc;
    if (json_out)
      flowrules::writeJson(std::cout, p->state, p->profile,
                           flowrules::PortNumbering::fromHost(p->intent.host));
    else
      printPlanText(*p, testpmd_only);
    return kExitOk;
  }
  if (*explain_cmd) {
    if (explain_in.host_file.empty() != explain_in.ports_file.empty()) {
      std::fprintf(stderr, "nicoffloadctl: error: explain offline needs both --host and --ports\n");
      return kExitInput;
    }
    auto id = flowrules::parseRuleId(rule_id);
    if (!id) {
      std::fprintf(stderr,
                   "nicoffloadctl: error: RULE-ID: '%s' is not a rule id (expected e.g. "
                   "ld-0123456789abcdef, as printed by plan)\n",
                   printable(rule_id).c_str());
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
        for (const auto& line : flowrules::renderTestpmdForPaste(
                 rule, flowrules::PortNumbering::fromHost(p->intent.host), p->profile))
          std::printf("  %s\n", line.c_str());
      }
      return kExitOk;
    }
    std::fprintf(stderr, "nicoffloadctl: error: RULE-ID: no rule %s in the plan of %s\n",
                 printable(rule_id).c_str(), printable(explain_in.host_file).c_str());
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

// The command edge: whatever a command meets (a reply of an unexpected shape
// from nicoffloadd, a library exception, a bug) becomes the documented error
// line and exit status, never an abort.
int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nicoffloadctl: error: %s\n",
                 printable(std::string("internal: ") + e.what()).c_str());
  } catch (...) {
    std::fprintf(stderr, "nicoffloadctl: error: internal: unknown exception\n");
  }
  return kExitInternal;
}
