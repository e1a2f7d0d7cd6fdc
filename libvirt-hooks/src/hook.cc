#include "nicoffload/hooks/hook.h"

#include <set>

#include "nicoffload/hooks/domain.h"
#include "nicoffload/model/parse.h"

namespace nicoffload::hooks {

namespace {

using nlohmann::json;

std::string oneLine(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

class Run {
 public:
  Run(const Invocation& inv, const Result<HookConfig>& config, DaemonClient& daemon)
      : inv_(inv), config_(config), daemon_(daemon) {}

  HookOutcome outcome;

  void warn(const std::string& msg) {
    outcome.err += "nicoffload: " + inv_.domain + ": " + oneLine(msg) + "\n";
  }
  // A failure: exactly one line, libvirt shows it to the user.
  void fail(const std::string& msg) {
    outcome.exit_code = 1;
    outcome.out.clear();
    outcome.err = "nicoffload: " + inv_.domain + ": " + oneLine(msg) + "\n";
  }

  bool allowWhenDown() const {
    return config_ && config_->on_daemon_down == DaemonDownPolicy::kAllow;
  }

  void daemonDown(const Error& e) {
    if (mustNotFail(inv_.op)) {
      warn("warning: nicoffloadd unavailable during " + std::string(toString(inv_.op)) + ": " +
           e.message);
    } else if (allowWhenDown()) {
      warn("warning: nicoffloadd unavailable (" + e.message +
           "): the domain runs without offload (on_daemon_down=allow)");
    } else {
      fail("nicoffloadd unavailable: " + e.message + " (on_daemon_down=fail)");
    }
  }

  struct Added {
    model::PortKey key;
    json port;  // the daemon's view of the port (VF assigned, representor)
  };

  // port.add for every port, pipelined. Returns false after having reported
  // a failure (the first port that failed, in metadata order).
  bool addAll(const Domain& d, bool undo_on_failure, std::vector<Added>& added) {
    std::vector<json> requests;
    for (const auto& port : d.ports)
      requests.push_back(json{{"op", "port.add"}, {"port", model::toJson(port)}});
    const auto replies = daemon_.callAll(requests);
    const DaemonReply* failed = nullptr;
    const model::Port* failed_port = nullptr;
    for (std::size_t i = 0; i < d.ports.size(); ++i) {
      const auto& port = d.ports[i];
      const DaemonReply& r = replies.at(i);
      if (r.kind == DaemonReply::Kind::kOk) {
        json view = r.result.value("port", json::object());
        // nicoffloadd reports the port's vDPA device in status.devices.vdpa.path.
        const json::json_pointer vdpa_path("/status/devices/vdpa/path");
        if (r.result.contains(vdpa_path) && r.result[vdpa_path].is_string())
          view["vdpa_dev"] = r.result[vdpa_path];
        added.push_back({port.key, std::move(view)});
        if (r.result.contains("status") && r.result["status"].value("state", "") == "degraded")
          warn("warning: port " + port.mac.str() + " (interface " + std::to_string(port.key.nic) +
               ") is degraded: part of its software path failed; nicoffloadd retries");
      } else if (!failed) {
        failed = &r;
        failed_port = &port;
      }
    }
    if (!failed) return true;
    if (undo_on_failure) undo(added);
    if (failed->kind == DaemonReply::Kind::kUnavailable) {
      daemonDown(failed->error);
      return false;
    }
    fail("port " + failed_port->mac.str() + " (interface " + std::to_string(failed_port->key.nic) +
         ") refused by nicoffloadd: " + failed->error.describe());
    return false;
  }

  void undo(const std::vector<Added>& added) {
    std::vector<json> requests;
    for (auto it = added.rbegin(); it != added.rend(); ++it)
      requests.push_back(json{{"op", "port.remove"}, {"vm", it->key.vm}, {"nic", it->key.nic}});
    daemon_.callAll(requests);
  }

  // Removes the domain's ports: those the metadata names and every port
  // nicoffloadd holds for the domain's UUID. Never fails.
  void removeAll(const std::string& uuid, const std::vector<model::Port>& ports) {
    std::set<std::uint16_t> nics;
    for (const auto& p : ports) nics.insert(p.key.nic);
    DaemonReply list = daemon_.call(json{{"op", "port.list"}, {"vm", uuid}});
    if (list.kind == DaemonReply::Kind::kUnavailable) {
      daemonDown(list.error);
      return;
    }
    if (list.kind == DaemonReply::Kind::kOk && list.result.is_array()) {
      for (const auto& entry : list.result) {
        const json& p = entry.contains("port") ? entry["port"] : entry;
        if (p.value("vm", "") == uuid && p.contains("nic") && p["nic"].is_number_integer() &&
            p["nic"].get<long long>() >= 0 && p["nic"].get<long long>() <= 65535)
          nics.insert(static_cast<std::uint16_t>(p["nic"].get<long long>()));
      }
    }
    std::vector<json> requests;
    for (auto nic : nics)
      requests.push_back(json{{"op", "port.remove"}, {"vm", uuid}, {"nic", nic}});
    const auto replies = daemon_.callAll(requests);
    for (std::size_t i = 0; i < replies.size(); ++i) {
      const DaemonReply& r = replies[i];
      if (r.kind == DaemonReply::Kind::kUnavailable) {
        daemonDown(r.error);
        return;
      }
      if (r.kind == DaemonReply::Kind::kRefused)
        warn("warning: removing port " + requests[i]["vm"].get<std::string>() + "/" +
             std::to_string(requests[i]["nic"].get<int>()) + ": " + r.error.describe());
    }
  }

  const Invocation& inv_;
  const Result<HookConfig>& config_;
  DaemonClient& daemon_;
};

std::vector<InterfaceRewrite> rewritesFor(const Domain& d, const std::vector<Run::Added>& added) {
  std::vector<InterfaceRewrite> out;
  for (std::size_t i = 0; i < d.ports.size() && i < added.size(); ++i) {
    const json& p = added[i].port;
    InterfaceRewrite r;
    r.mac = d.ports[i].mac.str();
    if (p.contains("representor") && p["representor"].is_string()) {
      r.target_dev = p["representor"].get<std::string>();
    } else if (p.contains("vf") && p["vf"].is_number_unsigned()) {
      r.target_dev = "pf0vf" + std::to_string(p["vf"].get<unsigned>());
    }
    // From status.devices.vdpa.path of the daemon's reply (addAll). The
    // daemon does not drive the DPDK vhost-user backend yet: no socket path.
    if (p.contains("vdpa_dev") && p["vdpa_dev"].is_string())
      r.vdpa_dev = p["vdpa_dev"].get<std::string>();
    if (p.contains("vhostuser_path") && p["vhostuser_path"].is_string())
      r.vhostuser_path = p["vhostuser_path"].get<std::string>();
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

bool mustNotFail(Operation op) {
  return op == Operation::kStopped || op == Operation::kRelease || op == Operation::kReconnect ||
         op == Operation::kAttach;
}

HookOutcome runHook(const Invocation& inv, std::string_view domain_xml,
                    const Result<HookConfig>& config, DaemonClient& daemon) {
  Run run(inv, config, daemon);
  const Action action = actionFor(inv.op);
  if (action == Action::kNone) return run.outcome;

  auto domain = parseDomainXml(domain_xml);
  if (!domain) {
    // Not ours unless the text names our namespace (a domain we cannot parse
    // and that carries no nicoffload metadata is left alone).
    if (domain_xml.find(kMetadataNamespace) == std::string_view::npos) return run.outcome;
    const std::string msg = "bad domain XML: " + domain.error().describe();
    if (!mustNotFail(inv.op)) {
      run.fail(msg);
      return run.outcome;
    }
    run.warn("warning: " + msg);
    if (action == Action::kRemove && config)
      if (auto id = parseDomainIdentity(domain_xml)) run.removeAll(id->uuid, {});
    return run.outcome;
  }
  if (!domain->has_metadata) return run.outcome;
  if (!config) {
    const std::string msg = "bad hook config: " + config.error().describe();
    if (mustNotFail(inv.op)) {
      run.warn("warning: " + msg);
    } else {
      run.fail(msg);
    }
    return run.outcome;
  }

  std::vector<Run::Added> added;
  switch (action) {
    case Action::kAdd:
      run.addAll(*domain, true, added);
      break;
    case Action::kConfirm:
      // libvirt calls stopped/release after a failed start: no undo here.
      run.addAll(*domain, false, added);
      break;
    case Action::kReassert:
      run.addAll(*domain, false, added);
      break;
    case Action::kRemove:
      run.removeAll(domain->uuid, domain->ports);
      break;
    case Action::kFilter:
      if (run.addAll(*domain, true, added)) {
        auto xml = rewriteInterfaces(domain_xml, rewritesFor(*domain, added));
        if (!xml) {
          run.undo(added);
          run.fail(xml.error().describe());
        } else {
          run.outcome.out = std::move(xml).value();
        }
      }
      break;
    case Action::kNone:
      break;
  }
  return run.outcome;
}

}  // namespace nicoffload::hooks
