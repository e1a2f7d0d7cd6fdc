// Queries: the "trace" op. Where one packet goes on this host: through
// the rules the device holds (the planned rules with the placement in effect,
// evaluated on the IR whatever the backend), then through the kernel
// software path in its namespace. Read-only: nothing installed changes.
#include "nicoffload/trace/trace.h"

#include <set>

#include "nicoffload/offload/kernel_trace.h"
#include "request_fields.h"

namespace nicoffload::daemon {

Result<json> Queries::readTrace(const json& req) const {
  auto fail = [](Error e) { return e; };
  if (auto s = onlyKeys(req, {"packet"}); !s) return fail(s.error());
  auto input = packetSpecOf(req, admission_.intent());
  if (!input) return input.error();

  // The rules the applier holds, each with the placement in effect: a rule
  // the device refused or that follows one in software is sw here, so the
  // evaluation sees what the device holds. Every port's and the host's rules
  // (a few per port), but of the remotes' egress rules only those for an
  // IPv4 address the packet carries: they match on it and no action
  // rewrites an address, so the others cannot match, and a trace stays
  // O(ports) at 100 k remotes instead of re-planning every remote.
  std::vector<flowrules::FlowRule> planned;
  for (const auto& p : admission_.intent().ports)
    if (auto r = planner_->portRules(p)) planned.insert(planned.end(), r->begin(), r->end());
  for (auto& r : planner_->hostRules(portVnis())) planned.push_back(std::move(r));
  std::set<IpAddr> addresses;
  for (const auto& h : input->packet.headers) {
    if (const auto* ip = std::get_if<simnic::Ipv4Header>(&h)) addresses.insert({ip->src, ip->dst});
    if (const auto* ip6 = std::get_if<simnic::Ipv6Header>(&h))
      addresses.insert({ip6->src, ip6->dst});
  }
  for (const IpAddr& a : addresses)
    if (const auto* remote = findRemote(a)) planned.push_back(planner_->remoteRule(*remote));
  std::vector<trace::TraceRule> rules;
  rules.reserve(planned.size());
  for (const auto& r : planned) {
    const auto* a = applier_->find(r.id);
    if (!a) continue;  // planned, not applied yet: neither on the device nor in its place
    rules.push_back({a->effective(r), flowrules::describeApplied(*a, profile_), a->handle});
  }

  trace::TraceContext ctx;
  ctx.intent = &admission_.intent();
  ctx.backend = applier_->backend().capabilities().backend;
  ctx.max_jumps = profile_.max_groups;
  std::unique_ptr<trace::KernelView> kernel;
  if (!software_path_) {
    ctx.kernel_unavailable = "backends.software_path is none";
  } else if (auto view = offload::openKernelTraceView(host_.kernel_netns)) {
    kernel = std::move(view).value();
    ctx.kernel = kernel.get();
  } else {
    ctx.kernel_unavailable = view.error().describe();
  }
  auto trace = nicoffload::trace::tracePacket(*input, rules, ctx);
  if (!trace) return trace.error();
  return std::move(trace).value();
}

}  // namespace nicoffload::daemon
