#include "nicoffload/hooks/hook.h"

#include <exception>
#include <set>

#include "nicoffload/common/text.h"
#include "nicoffload/hooks/daemon_replies.h"
#include "nicoffload/hooks/domain.h"
#include "nicoffload/model/parse.h"

namespace nicoffload::hooks {

namespace {

using nlohmann::json;

// The longest line the hook writes (bytes, before the "..." marker): enough
// for a daemon error with its field and value, short enough for a log line.
constexpr std::size_t kMaxLineBytes = 2048;

class Run {
 public:
  Run(const Invocation& inv, const Result<HookConfig>& config, DaemonClient& daemon)
      : inv_(inv), config_(config), daemon_(daemon) {}

  HookOutcome outcome;

  // One line on stderr. printable() turns newlines and other control bytes
  // into "\xNN", so a message never spans lines and never carries invalid
  // UTF-8 into libvirt's log.
  void warn(const std::string& msg) { outcome.err += line(msg); }

  // A failure: exactly one line, libvirt shows it to the user. The operations
  // that must not fail (their failure kills a running VM or leaks nothing
  // that release would not clean) only ever warn, whoever calls fail().
  void fail(const std::string& msg) {
    if (mustNotFail(inv_.op)) {
      warn("warning: " + msg);
      return;
    }
    outcome.exit_code = 1;
    outcome.out.clear();
    outcome.err = line(msg);
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
    PortAddView view;  // the daemon's view of the port (VF assigned, representor)
  };

  static std::string portName(const model::Port& port) {
    return "port " + port.mac.str() + " (interface " + std::to_string(port.key.nic) + ")";
  }

  // port.add for every port, pipelined. Returns false after having reported
  // a failure (the first port that failed, in metadata order).
  //
  // `tolerate_refusal` (reconnect, attach): the domain already runs and a
  // failing hook makes libvirt kill it, so a port nicoffloadd refuses, or
  // whose reply cannot be read, is reported degraded and the others go on.
  //
  // `tentative` (migrate): the ports are claims that nicoffloadd removes
  // unless a later port.add without it (prepare, start, started) confirms
  // them, as libvirt sends no stopped/release when an incoming migration
  // fails before QEMU starts.
  bool addAll(const Domain& d, bool undo_on_failure, bool tolerate_refusal,
              std::vector<Added>& added, bool tentative = false) {
    std::vector<json> requests;
    requests.reserve(d.ports.size());
    for (const auto& port : d.ports) {
      requests.push_back(json{{"op", "port.add"}, {"port", model::toJson(port)}, {"brief", true}});
      if (tentative) requests.back()["tentative"] = true;
    }
    const auto replies = daemon_.callAll(requests);

    const Error* unavailable = nullptr;  // the first port nicoffloadd did not answer for
    std::optional<std::string> failure;  // the first port it refused (or answered oddly)
    bool unavailable_first = false;
    for (std::size_t i = 0; i < d.ports.size(); ++i) {
      const auto& port = d.ports[i];
      std::optional<std::string> problem;
      if (i >= replies.size()) {
        problem = "got no reply from nicoffloadd (" + std::to_string(replies.size()) +
                  " replies to " + std::to_string(requests.size()) + " requests)";
      } else if (const DaemonReply& r = replies[i]; r.kind == DaemonReply::Kind::kOk) {
        auto view = readPortAddResult(r.result);
        // Added either way: nicoffloadd said ok, so an undo must remove it.
        added.push_back({port.key, view ? *view : PortAddView{}});
        if (!view) {
          problem = "was added, but nicoffloadd's reply cannot be read: " + view.error().describe();
        } else if (view->degraded) {
          warn("warning: " + portName(port) +
               " is degraded: part of its software path failed; nicoffloadd retries");
        }
      } else if (r.kind == DaemonReply::Kind::kRefused) {
        problem = "refused by nicoffloadd: " + r.error.describe();
      } else {
        if (!unavailable) unavailable = &r.error;
        if (!failure) unavailable_first = true;
        continue;
      }
      if (!problem) continue;
      if (tolerate_refusal) {
        warn("warning: " + portName(port) + " " + *problem + "; the port is degraded (no offload)" +
             ", the domain keeps running");
      } else if (!failure) {
        failure = portName(port) + " " + *problem;
      }
    }
    if (!unavailable && !failure) return true;
    if (undo_on_failure) undo(added);
    if (unavailable && (unavailable_first || !failure)) {
      daemonDown(*unavailable);
    } else {
      fail(*failure);
    }
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
    if (list.kind == DaemonReply::Kind::kRefused) {
      warn("warning: listing the domain's ports: " + list.error.describe() +
           "; removing the ports its metadata names");
    } else if (auto held = readPortListResult(list.result, uuid); !held) {
      warn("warning: nicoffloadd's port list cannot be read: " + held.error().describe() +
           "; removing the ports the metadata names");
    } else {
      nics.insert(held->begin(), held->end());
    }
    std::vector<json> requests;
    std::vector<std::uint16_t> order;
    for (auto nic : nics) {
      requests.push_back(json{{"op", "port.remove"}, {"vm", uuid}, {"nic", nic}});
      order.push_back(nic);
    }
    const auto replies = daemon_.callAll(requests);
    for (std::size_t i = 0; i < replies.size() && i < order.size(); ++i) {
      const DaemonReply& r = replies[i];
      if (r.kind == DaemonReply::Kind::kUnavailable) {
        daemonDown(r.error);
        return;
      }
      if (r.kind == DaemonReply::Kind::kRefused)
        warn("warning: removing port " + uuid + "/" + std::to_string(order[i]) + ": " +
             r.error.describe());
    }
  }

  // The exception boundary's report: whatever escaped, the hook answers with
  // its documented exit status.
  void internalError(const std::string& what) {
    fail("internal error during " + std::string(toString(inv_.op)) + ": " + what +
         " (a bug in nicoffload-hook; the domain's ports may be incomplete)");
  }

 private:
  std::string line(const std::string& msg) const {
    return "nicoffload: " + printable(inv_.domain) + ": " + printable(msg, kMaxLineBytes) + "\n";
  }

  const Invocation& inv_;
  const Result<HookConfig>& config_;
  DaemonClient& daemon_;
};

std::vector<InterfaceRewrite> rewritesFor(const Domain& d, const std::vector<Run::Added>& added) {
  std::vector<InterfaceRewrite> out;
  for (std::size_t i = 0; i < d.ports.size() && i < added.size(); ++i) {
    const PortAddView& p = added[i].view;
    InterfaceRewrite r;
    r.mac = d.ports[i].mac.str();
    if (!p.representor.empty()) {
      r.target_dev = p.representor;
    } else if (p.vf) {
      r.target_dev = "pf0vf" + std::to_string(*p.vf);
    }
    // From status.devices.vdpa (path and kind) of the daemon's reply: a
    // vhost-vdpa node, or the vhost-user socket nicoffloadd serves (DPDK).
    r.vdpa_dev = p.vdpa_dev;
    r.vhostuser_path = p.vhostuser_path;
    out.push_back(std::move(r));
  }
  return out;
}

void runOperation(Run& run, const Invocation& inv, std::string_view domain_xml,
                  const Result<HookConfig>& config) {
  const Action action = actionFor(inv.op);
  if (action == Action::kNone) return;

  auto domain = parseDomainXml(domain_xml);
  if (!domain) {
    // Not ours unless the text names our namespace (a domain we cannot parse
    // and that carries no nicoffload metadata is left alone).
    if (domain_xml.find(kMetadataNamespace) == std::string_view::npos) return;
    run.fail("bad domain XML: " + domain.error().describe());
    if (action == Action::kRemove && config)
      if (auto id = parseDomainIdentity(domain_xml)) run.removeAll(id->uuid, {});
    return;
  }
  for (const auto& w : domain->warnings) run.warn("warning: " + w);
  if (!domain->has_metadata) return;
  if (!config) {
    run.fail("bad hook config: " + config.error().describe());
    return;
  }

  std::vector<Run::Added> added;
  switch (action) {
    case Action::kAdd:
      run.addAll(*domain, /*undo_on_failure=*/true, /*tolerate_refusal=*/false, added);
      break;
    case Action::kConfirm:
      // libvirt calls stopped/release after a failed start: no undo here.
      run.addAll(*domain, false, false, added);
      break;
    case Action::kReassert:
      // No undo either: the VM runs and keeps whatever it has.
      run.addAll(*domain, false, /*tolerate_refusal=*/true, added);
      break;
    case Action::kRemove:
      run.removeAll(domain->uuid, domain->ports);
      break;
    case Action::kFilter:
      if (run.addAll(*domain, true, false, added,
                     /*tentative=*/inv.op == Operation::kMigrate)) {
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
}

}  // namespace

bool mustNotFail(Operation op) {
  return op == Operation::kStopped || op == Operation::kRelease || op == Operation::kReconnect ||
         op == Operation::kAttach;
}

HookOutcome runHook(const Invocation& inv, std::string_view domain_xml,
                    const Result<HookConfig>& config, DaemonClient& daemon) {
  Run run(inv, config, daemon);
  // The hook's exception boundary (nlohmann, pugixml, the standard library,
  // an injected client): nothing escapes, and Run::fail keeps the operations
  // that must not fail at exit status 0.
  try {
    runOperation(run, inv, domain_xml, config);
  } catch (const std::exception& e) {
    run.internalError(e.what());
  } catch (...) {
    run.internalError("an exception of unknown type");
  }
  return std::move(run.outcome);
}

}  // namespace nicoffload::hooks
