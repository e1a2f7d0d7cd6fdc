#include "nicoffload/hwtest/suite.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <pugixml.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "nicoffload/flowrules/planner.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/offload/sim_pf.h"

namespace nicoffload::hwtest {

namespace fr = flowrules;
using model::ActionType;
using model::ItemType;
using Clock = std::chrono::steady_clock;

namespace {

double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

bool stopped(const SuiteOptions& o) { return o.stop && o.stop->load(std::memory_order_relaxed); }

const MacAddr kGatewayMac = *MacAddr::parse("ee:ee:ee:ee:ee:ee");
const MacAddr kVmMac = *MacAddr::parse("52:54:00:00:00:01");
const MacAddr kNextHopMac = *MacAddr::parse("0c:42:a1:ff:ff:fe");
const MacAddr kUplinkMac = *MacAddr::parse("0c:42:a1:00:00:01");
// Documentation and test addresses (RFC 5737 TEST-NET-1 and -2), never routed.
const Ipv4Addr kVmAddr = *Ipv4Addr::parse("192.0.2.10");
const Ipv4Addr kLocalVtep = *Ipv4Addr::parse("198.51.100.1");
const Ipv4Addr kRemoteVtep = *Ipv4Addr::parse("198.51.100.2");
// RFC 3849 documentation prefix: the VTEPs of an IPv6 underlay.
const Ipv6Addr kLocalVtep6 = *Ipv6Addr::parse("2001:db8:100::1");
const Ipv6Addr kRemoteVtep6 = *Ipv6Addr::parse("2001:db8:100::2");
constexpr std::uint16_t kVxlanPort = 4789;  // RFC 7348 §5 (IANA)

// Rule ids the suite gives its own rules: "hwtest" in the top bytes, so
// they cannot be mistaken for the planner's in a device listing.
constexpr fr::RuleId kIdBase = 0x6877746573740000ull;

// The rules one case created, destroyed by handle when the case ends (also
// when it stops early): the device's other rules are never touched.
class Made {
 public:
  Made(fr::FlowBackend& backend, std::vector<std::string>& cleanup_errors)
      : backend_(backend), cleanup_errors_(cleanup_errors) {}
  ~Made() { destroyAll(); }
  Made(const Made&) = delete;
  Made& operator=(const Made&) = delete;

  Result<fr::FlowHandle> create(const fr::FlowRule& rule) {
    auto h = backend_.create(rule);
    if (h) handles_.push_back(*h);
    return h;
  }
  // Destroys one handle it made; forgets it whatever the answer (an error is
  // the caller's to report and is recorded for the cleanup summary).
  Status destroy(fr::FlowHandle h) {
    if (!handles_.empty() && handles_.back() == h)
      handles_.pop_back();  // destroyAll's order: O(1)
    else
      handles_.erase(std::remove(handles_.begin(), handles_.end(), h), handles_.end());
    auto s = backend_.destroy(h);
    if (!s)
      cleanup_errors_.push_back("rule handle " + std::to_string(h) + ": " + s.error().describe());
    return s;
  }
  void destroyAll() {
    while (!handles_.empty()) (void)destroy(handles_.back());
  }
  std::size_t size() const { return handles_.size(); }
  // Hands the handles to the caller (who destroys them itself, e.g. timed),
  // and takes back those it could not destroy.
  std::vector<fr::FlowHandle> release() { return std::exchange(handles_, {}); }
  void adopt(std::vector<fr::FlowHandle> handles) {
    handles_.insert(handles_.end(), handles.begin(), handles.end());
  }

 private:
  fr::FlowBackend& backend_;
  std::vector<std::string>& cleanup_errors_;
  std::vector<fr::FlowHandle> handles_;
};

// --- rules that exercise one capability ---------------------------------

bool itemOk(const model::HwProfile& p, ItemType t) { return p.item(t).supported; }
bool actionOk(const model::HwProfile& p, ActionType t) { return p.action(t).supported; }

std::uint16_t firstPort(const model::Capability& c) {
  return c.udp_dst_ports.empty() ? kVxlanPort : c.udp_dst_ports.front();
}

fr::FlowRule baseRule(fr::RuleId id) {
  fr::FlowRule r;
  r.id = kIdBase + id;
  r.cls = fr::RuleClass::kLocalDelivery;
  r.attr.group = 0;
  r.attr.transfer = true;
  return r;
}

// The pattern "from vf0, IPv4 to the VM address" (the port item only where
// the profile has it, so that an item or action case does not fail on it).
void vfIpv4Pattern(const model::HwProfile& p, fr::FlowRule& r) {
  if (itemOk(p, ItemType::kRepresentedPort))
    r.pattern.push_back(fr::PortItem{fr::PortRef::vfPort(0)});
  fr::EthItem eth;
  eth.fields = fr::EthItem::kType;
  eth.ether_type = fr::kEtherTypeIpv4;
  r.pattern.push_back(eth);
  fr::Ipv4Item ip;
  ip.fields = fr::Ipv4Item::kDst;
  ip.dst = kVmAddr;
  r.pattern.push_back(ip);
}

void vxlanPattern(const model::HwProfile& p, fr::FlowRule& r) {
  if (itemOk(p, ItemType::kRepresentedPort))
    r.pattern.push_back(fr::PortItem{fr::PortRef::uplink()});
  fr::EthItem eth;
  eth.fields = fr::EthItem::kType;
  eth.ether_type = fr::kEtherTypeIpv4;
  r.pattern.push_back(eth);
  fr::Ipv4Item ip;
  ip.fields = fr::Ipv4Item::kDst;
  ip.dst = kLocalVtep;
  r.pattern.push_back(ip);
  fr::UdpItem udp;
  udp.fields = fr::UdpItem::kDst;
  udp.dst_port = firstPort(p.item(ItemType::kVxlan));
  r.pattern.push_back(udp);
  r.pattern.push_back(fr::VxlanItem{100});
}

// A fate for a rule whose point is another action: the first one the profile
// supports (drop changes nothing anywhere; the others send to vf0 / its
// representor, which exist on every device the suite runs on).
std::optional<fr::FlowAction> carrierFate(const model::HwProfile& p, ActionType except) {
  if (except != ActionType::kDrop && actionOk(p, ActionType::kDrop)) return fr::DropAction{};
  if (except != ActionType::kPortRepresentor && actionOk(p, ActionType::kPortRepresentor))
    return fr::PortRepresentorAction{fr::PortRef::vfPort(0)};
  if (except != ActionType::kRepresentedPort && actionOk(p, ActionType::kRepresentedPort))
    return fr::RepresentedPortAction{fr::PortRef::vfPort(0)};
  return std::nullopt;
}

fr::VxlanEncap encapDefinition(const model::HwProfile& p) {
  fr::VxlanEncap e;
  e.eth_src = kUplinkMac;
  e.eth_dst = kNextHopMac;
  e.src = kLocalVtep;
  e.dst = kRemoteVtep;
  e.udp_src = 49152;
  e.udp_dst = firstPort(p.action(ActionType::kVxlanEncap));
  e.vni = 100;
  return e;
}

// The smallest rule that uses item `t`; nullopt when the rule IR cannot
// express it (with the reason in `why`).
std::optional<fr::FlowRule> itemRule(const model::HwProfile& p, ItemType t, std::string& why) {
  fr::FlowRule r = baseRule(0x100 + static_cast<unsigned>(t));
  switch (t) {
    case ItemType::kRepresentedPort:
      r.pattern.push_back(fr::PortItem{fr::PortRef::vfPort(0)});
      break;
    case ItemType::kEth: {
      if (itemOk(p, ItemType::kRepresentedPort))
        r.pattern.push_back(fr::PortItem{fr::PortRef::vfPort(0)});
      fr::EthItem eth;
      eth.fields = fr::EthItem::kSrc;
      eth.src = kVmMac;
      r.pattern.push_back(eth);
      break;
    }
    case ItemType::kIpv4:
      vfIpv4Pattern(p, r);
      break;
    case ItemType::kUdp: {
      vfIpv4Pattern(p, r);
      fr::UdpItem udp;
      udp.fields = fr::UdpItem::kDst;
      udp.dst_port = 53;
      r.pattern.push_back(udp);
      break;
    }
    case ItemType::kVxlan:
      vxlanPattern(p, r);
      break;
    case ItemType::kIpv6: {
      // As the ND traps use it: the destination under a prefix (ff02::/16),
      // one address per rule.
      if (itemOk(p, ItemType::kRepresentedPort))
        r.pattern.push_back(fr::PortItem{fr::PortRef::vfPort(0)});
      fr::EthItem eth;
      eth.fields = fr::EthItem::kType;
      eth.ether_type = fr::kEtherTypeIpv6;
      r.pattern.push_back(eth);
      r.pattern.push_back(fr::Ipv6Item{fr::Ipv6Item::Field::kDst, 16, *Ipv6Addr::parse("ff02::")});
      break;
    }
    case ItemType::kArpEthIpv4:
      why =
          "the rule IR has no arp_eth_ipv4 item: the planner traps ARP by ethertype 0x0806 (class "
          "arp-trap), "
          "so this claim decides nothing nicoffload does";
      return std::nullopt;
  }
  if (actionOk(p, ActionType::kCount)) r.actions.push_back(fr::CountAction{});
  auto fate = carrierFate(p, ActionType::kCount);
  if (!fate) {
    why =
        "the profile supports no fate action (drop, port_representor, represented_port) to carry "
        "it";
    return std::nullopt;
  }
  r.actions.push_back(*fate);
  return r;
}

std::optional<fr::FlowRule> actionRule(const model::HwProfile& p, ActionType t, std::string& why) {
  fr::FlowRule r = baseRule(0x200 + static_cast<unsigned>(t));
  bool fate_given = false;
  switch (t) {
    case ActionType::kSetMacSrc:
      vfIpv4Pattern(p, r);
      r.actions.push_back(fr::SetMacSrcAction{kGatewayMac});
      break;
    case ActionType::kSetMacDst:
      vfIpv4Pattern(p, r);
      r.actions.push_back(fr::SetMacDstAction{kVmMac});
      break;
    case ActionType::kDecTtl:
      vfIpv4Pattern(p, r);
      r.actions.push_back(fr::DecTtlAction{});
      break;
    case ActionType::kRepresentedPort:
      vfIpv4Pattern(p, r);
      r.actions.push_back(fr::RepresentedPortAction{fr::PortRef::uplink()});
      fate_given = true;
      break;
    case ActionType::kPortRepresentor:
      vfIpv4Pattern(p, r);
      r.actions.push_back(fr::PortRepresentorAction{fr::PortRef::vfPort(0)});
      fate_given = true;
      break;
    case ActionType::kVxlanEncap:
      vfIpv4Pattern(p, r);
      r.actions.push_back(fr::VxlanEncapAction{});
      r.encap = encapDefinition(p);
      if (actionOk(p, ActionType::kRepresentedPort)) {
        r.actions.push_back(fr::RepresentedPortAction{fr::PortRef::uplink()});
        fate_given = true;
      }
      break;
    case ActionType::kVxlanDecap:
      vxlanPattern(p, r);
      r.actions.push_back(fr::VxlanDecapAction{});
      if (actionOk(p, ActionType::kJump) && p.max_groups >= 2) {
        r.actions.push_back(fr::JumpAction{1});
        fate_given = true;
      }
      break;
    case ActionType::kJump:
      if (p.max_groups < 2) {
        why = "the profile gives fewer than 2 groups: nothing to jump to";
        return std::nullopt;
      }
      vfIpv4Pattern(p, r);
      r.actions.push_back(fr::JumpAction{1});
      fate_given = true;
      break;
    case ActionType::kCount:
      vfIpv4Pattern(p, r);
      r.actions.push_back(fr::CountAction{});
      break;
    case ActionType::kDrop:
      vfIpv4Pattern(p, r);
      r.actions.push_back(fr::DropAction{});
      fate_given = true;
      break;
  }
  if (t != ActionType::kCount && actionOk(p, ActionType::kCount)) {
    // COUNT first so that the counters of every capability rule can be read.
    fr::FlowRule c = r;
    c.actions = {};
    c.actions.push_back(fr::CountAction{});
    for (const auto& a : r.actions) c.actions.push_back(a);
    r = c;
  }
  if (!fate_given) {
    auto fate = carrierFate(p, t);
    if (!fate) {
      why =
          "the profile supports no fate action (drop, port_representor, represented_port) to carry "
          "it";
      return std::nullopt;
    }
    r.actions.push_back(*fate);
  }
  return r;
}

bool hasCount(const fr::FlowRule& r) {
  for (const auto& a : r.actions)
    if (std::holds_alternative<fr::CountAction>(a)) return true;
  return false;
}

std::string quote(const Error& e) { return e.describe(); }

// --- the planner's rules for a small intent ------------------------------

constexpr const char* kVxlanHost = R"({
  "name": "hwtest-vxlan", "hw_profile": "sim",
  "uplink": {"pci": "0000:03:00.0", "netdev": "uplink0", "mac": "0c:42:a1:00:00:01", "vf_count": 2},
  "gateway": {"ipv4": "169.254.1.1", "mac": "ee:ee:ee:ee:ee:ee"},
  "underlay": {"mode": "vxlan", "vtep": "198.51.100.1", "vxlan_udp_port": 4789, "default_vni": 100,
               "default_next_hop": "198.51.100.254",
               "next_hops": [{"ipv4": "198.51.100.254", "mac": "0c:42:a1:ff:ff:fe"}]}
})";
constexpr const char* kVxlanPorts = R"({
  "ports": [
    {"vm": "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001", "nic": 0, "mac": "52:54:00:00:01:01",
     "addresses": ["10.10.1.1/32"], "vf": 0, "vdpa": "none"},
    {"vm": "a0d5e7c2-8f1b-4c3d-b2a1-0e9f8d7c0002", "nic": 0, "mac": "52:54:00:00:02:01",
     "addresses": ["10.10.2.1/32"], "vf": 1, "vdpa": "none"}],
  "remotes": [{"address": "10.20.1.1/32", "vtep": "198.51.100.2", "vni": 100}]
})";
constexpr const char* kRoutedHost = R"({
  "name": "hwtest-routed", "hw_profile": "sim",
  "uplink": {"pci": "0000:03:00.0", "netdev": "uplink0", "mac": "0c:42:a1:00:00:01", "vf_count": 2},
  "gateway": {"ipv4": "169.254.1.1", "mac": "ee:ee:ee:ee:ee:ee"},
  "underlay": {"mode": "routed", "default_next_hop": "198.51.100.254",
               "next_hops": [{"ipv4": "198.51.100.254", "mac": "0c:42:a1:ff:ff:fe"}]}
})";
constexpr const char* kRoutedPorts = R"({
  "ports": [
    {"vm": "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001", "nic": 0, "mac": "52:54:00:00:01:01",
     "addresses": ["10.10.1.1/32"], "vf": 0, "vdpa": "none"},
    {"vm": "a0d5e7c2-8f1b-4c3d-b2a1-0e9f8d7c0002", "nic": 0, "mac": "52:54:00:00:02:01",
     "addresses": ["10.10.2.1/32"], "vf": 1, "vdpa": "none"}],
  "remotes": [{"address": "10.20.1.1/32"}]
})";

struct PlannedClass {
  std::string name;   // "local-delivery", "vxlan-egress", ..., "anti-spoofing-drop",
                      // "local-delivery-uplink-entry"
  fr::FlowRule rule;  // the first rule of that class, as planned
  std::string underlay;
};

// One rule per class (and per underlay for the classes whose shape depends
// on it), as the planner emits it for `profile`. Errors: the planner's.
Result<std::vector<PlannedClass>> plannedClasses(const model::HwProfile& profile) {
  std::vector<PlannedClass> out;
  std::set<std::string> seen;
  for (auto [host_text, ports_text, underlay] : {std::tuple{kVxlanHost, kVxlanPorts, "vxlan"},
                                                 std::tuple{kRoutedHost, kRoutedPorts, "routed"}}) {
    model::Intent intent;
    auto host = model::parseHostConfigText(host_text);
    if (!host) return host.error();
    intent.host = std::move(host).value();
    intent.host.vf_count = std::min<std::uint16_t>(intent.host.vf_count, profile.max_vfs);
    if (auto s = model::parsePortsFileText(ports_text, intent); !s) return s.error();
    auto state = fr::plan(intent, profile);
    if (!state) return state.error();
    for (const auto& r : state->rules) {
      std::string name = fr::toString(r.cls);
      // The routed underlay's uplink entry (IPv4 from the wire -> jump to
      // the FIB) is a local-delivery rule in the root table: a shape of its own.
      if (r.cls == fr::RuleClass::kLocalDelivery && r.attr.group == fr::kRootGroup)
        name += "-uplink-entry";
      if (r.cls == fr::RuleClass::kAntiSpoofing) {
        // Two shapes: the allow (jump) and the drop.
        bool drop = false;
        for (const auto& a : r.actions) drop = drop || std::holds_alternative<fr::DropAction>(a);
        name += drop ? "-drop" : "-allow";
      }
      if (!seen.insert(name).second) continue;
      out.push_back({name, r, underlay});
    }
  }
  return out;
}

// A copy of `r` that differs in one matched field by `i` (rate and fill
// cases insert many distinct rules of one class): the IPv4 destination when
// matched, else the VNI, else the Ethernet source (a field the rule then
// matches in addition; said in the case's summary).
fr::FlowRule variant(const fr::FlowRule& r, std::uint32_t i, fr::RuleId id) {
  fr::FlowRule out = r;
  out.id = id;
  out.pattern = {};
  bool varied = false;
  for (const auto& item : r.pattern) {
    fr::FlowItem it = item;
    if (!varied) {
      if (auto* ip = std::get_if<fr::Ipv4Item>(&it);
          ip && (ip->fields & fr::Ipv4Item::kDst) &&
          !std::holds_alternative<fr::VxlanItem>(r.pattern[r.pattern.size() - 1])) {
        ip->dst.value = 0x0a800000u + i;  // 10.128.0.0/9, one address per rule
        varied = true;
      } else if (auto* vx = std::get_if<fr::VxlanItem>(&it)) {
        vx->vni = 1 + (i % 0xFFFFFE);
        varied = true;
      }
    }
    out.pattern.push_back(it);
  }
  if (!varied) {
    fr::FlowRule again = out;
    again.pattern = {};
    for (const auto& item : out.pattern) {
      fr::FlowItem it = item;
      if (auto* eth = std::get_if<fr::EthItem>(&it); eth && !varied) {
        eth->fields |= fr::EthItem::kSrc;
        eth->src = MacAddr{{0x02, 0x00, static_cast<std::uint8_t>(i >> 24),
                            static_cast<std::uint8_t>(i >> 16), static_cast<std::uint8_t>(i >> 8),
                            static_cast<std::uint8_t>(i)}};
        varied = true;
      }
      again.pattern.push_back(it);
    }
    out = again;
  }
  return out;
}

// --- cases -----------------------------------------------------------------

struct Case {
  std::string name;
  std::function<void(CaseReport&)> run;
};

class Runner {
 public:
  Runner(const model::HwProfile& p, Devices& d, const SuiteOptions& o, SuiteReport& rep)
      : p_(p), d_(d), o_(o), rep_(rep), backend_(*d.flow) {}

  std::vector<Case> cases();

 private:
  void capabilityCase(CaseReport& c, const std::optional<fr::FlowRule>& rule,
                      const std::string& why, bool claimed, const std::string& claim_path,
                      const std::string& source_path);
  void classCase(CaseReport& c, const PlannedClass& pc);
  void fillCase(CaseReport& c, std::uint32_t group);
  void groupsCase(CaseReport& c);
  void rateCase(CaseReport& c, const PlannedClass& pc);
  void switchdevCase(CaseReport& c);
  void vfLimitCase(CaseReport& c);
  void vdpaCase(CaseReport& c);

  const model::HwProfile& p_;
  Devices& d_;
  const SuiteOptions& o_;
  SuiteReport& rep_;
  fr::FlowBackend& backend_;
  bool switchdev_done_ = false;
};

// The full life of a capability rule: validate, create, query, destroy,
// destroy again (must be kNotFound: removed cleanly).
void Runner::capabilityCase(CaseReport& c, const std::optional<fr::FlowRule>& rule,
                            const std::string& why, bool claimed, const std::string& claim_path,
                            const std::string& source_path) {
  c.claim = claimed ? "supported" : "not supported";
  if (!rule) {
    c.outcome = Outcome::kSkipped;
    c.summary = why;
    return;
  }
  Made made(backend_, rep_.cleanup_errors);
  auto v = backend_.validate(*rule);
  if (!claimed) {
    if (!v) {
      c.outcome = Outcome::kPass;
      c.device_message = quote(v.error());
      c.summary = "refused at validate, as the profile says";
      return;
    }
    auto h = made.create(*rule);
    if (!h) {
      c.outcome = Outcome::kPass;
      c.device_message = quote(h.error());
      c.summary = "validate accepted it but create refused it; the profile's 'not supported' holds";
      return;
    }
    c.outcome = Outcome::kFinding;
    c.summary = "profile too pessimistic: the device validated and created it";
    c.device_message = "rte_flow_validate and rte_flow_create succeeded";
    c.corrections.push_back({claim_path, source_path, false, true,
                             "the device accepted a rule with it (validate and create succeeded)"});
    return;
  }
  if (!v) {
    c.outcome = Outcome::kFail;
    c.device_message = quote(v.error());
    c.summary = "the device refused it at validate; the profile claims it";
    c.corrections.push_back({claim_path, source_path, true, false, v.error().describe()});
    return;
  }
  auto h = made.create(*rule);
  if (!h) {
    c.outcome = Outcome::kFail;
    c.device_message = quote(h.error());
    c.summary = "validate accepted it but create refused it; the profile claims it";
    c.corrections.push_back(
        {claim_path, source_path, true, false, "refused at create: " + h.error().describe()});
    return;
  }
  if (hasCount(*rule)) {
    auto q = backend_.query(*h);
    if (!q) {
      c.outcome = Outcome::kFail;
      c.device_message = quote(q.error());
      c.summary = "created, but its COUNT could not be read";
      return;
    }
    c.figures["hits"] = q->hits;
    c.figures["bytes"] = q->bytes;
  }
  if (auto s = made.destroy(*h); !s) {
    c.outcome = Outcome::kFail;
    c.device_message = quote(s.error());
    c.summary = "created, but could not be destroyed";
    return;
  }
  if (auto again = backend_.destroy(*h); again || again.error().code != ErrorCode::kNotFound) {
    c.outcome = Outcome::kFail;
    c.device_message =
        again ? "a second destroy of the same handle succeeded" : quote(again.error());
    c.summary = "destroyed, but the handle is still known to the device";
    return;
  }
  c.outcome = Outcome::kPass;
  c.summary = std::string("validated, created, ") + (hasCount(*rule) ? "counters read, " : "") +
              "destroyed cleanly";
}

// A rule of one class as the planner emits it: a hw rule must be accepted; a
// rule the profile put in sw for a capability must be refused by the device
// (or it is a finding: the planner leaves hardware unused).
void Runner::classCase(CaseReport& c, const PlannedClass& pc) {
  using Code = fr::PlacementReason::Code;
  const auto code = pc.rule.reason.code;
  const bool expect_hw = pc.rule.placement == fr::Placement::kHw || code == Code::kTableFull ||
                         code == Code::kFollows || code == Code::kNextHopUnresolved;
  c.claim = expect_hw ? "placed hw" : "placed sw: " + fr::describeReason(pc.rule.reason, p_);
  c.figures["rule"] = fr::formatRuleId(pc.rule.cls, pc.rule.id);
  c.figures["underlay"] = pc.underlay;
  Made made(backend_, rep_.cleanup_errors);
  auto v = backend_.validate(pc.rule);
  Result<fr::FlowHandle> h = v ? made.create(pc.rule) : Result<fr::FlowHandle>(v.error());
  if (expect_hw) {
    if (!h) {
      c.outcome = Outcome::kFail;
      c.device_message = quote(h.error());
      c.summary = std::string("the planner places it in hw; the device refused it at ") +
                  (v ? "create" : "validate") + " (it would fall back to sw as device-refused)";
      return;
    }
    if (auto s = made.destroy(*h); !s) {
      c.outcome = Outcome::kFail;
      c.device_message = quote(s.error());
      c.summary = "created, but could not be destroyed";
      return;
    }
    c.outcome = Outcome::kPass;
    c.summary = "validated, created and destroyed as the planner emits it";
    return;
  }
  if (h) {
    c.outcome = Outcome::kFinding;
    c.device_message = "rte_flow_validate and rte_flow_create succeeded";
    c.summary =
        "profile too pessimistic: the planner puts this class in sw, the device accepted it";
    return;
  }
  c.outcome = Outcome::kPass;
  c.device_message = quote(h.error());
  c.summary = "refused by the device, as the profile says (the planner puts it in sw)";
}

void Runner::fillCase(CaseReport& c, std::uint32_t group) {
  const std::uint64_t cap = p_.groupCapacity(group);
  const std::string key = group == 0 ? "root_table_rules" : "rules_per_group";
  c.claim = "group " + std::to_string(group) + " holds " + std::to_string(cap) + " rules";
  if (cap > o_.fill_limit) {
    c.outcome = Outcome::kSkipped;
    c.summary = "the profile claims " + std::to_string(cap) + " rules, above --fill-limit " +
                std::to_string(o_.fill_limit) + "; rerun with --fill-limit " + std::to_string(cap) +
                " to fill it";
    return;
  }
  if (!actionOk(p_, ActionType::kDrop)) {
    c.outcome = Outcome::kSkipped;
    c.summary = "the profile has no drop action: the fill rules would send traffic somewhere";
    return;
  }
  fr::FlowRule base = baseRule(0x400);
  base.attr.group = group;
  vfIpv4Pattern(p_, base);
  base.actions.push_back(fr::DropAction{});
  const auto held_before = [&] {
    std::size_t n = 0;
    for (const auto& h : backend_.installed()) n += h.rule.attr.group == group;
    return n;
  }();
  Made made(backend_, rep_.cleanup_errors);
  const auto t0 = Clock::now();
  for (std::uint64_t i = held_before; i < cap; ++i) {
    if ((i & 1023) == 0 && stopped(o_)) {
      c.outcome = Outcome::kSkipped;
      c.summary = "interrupted after " + std::to_string(made.size()) + " rules; removed them";
      return;
    }
    auto h = made.create(variant(base, static_cast<std::uint32_t>(i), kIdBase + 0x10000 + i));
    if (!h) {
      c.outcome = Outcome::kFail;
      c.device_message = quote(h.error());
      c.summary = "the device refused rule " + std::to_string(i + 1) + " of the " +
                  std::to_string(cap) + " the profile claims";
      c.figures["accepted"] = i;
      if (h.error().code == ErrorCode::kTableFull)
        c.corrections.push_back(
            {"/tables/" + key, "/tables/source", cap, i,
             "full after " + std::to_string(i) + " rules: " + h.error().describe()});
      return;
    }
  }
  c.figures["filled"] = cap;
  c.figures["fill_seconds"] = secondsSince(t0);
  fr::FlowRule next = variant(base, static_cast<std::uint32_t>(cap), kIdBase + 0x10000 + cap);
  auto h = made.create(next);
  if (h) {
    c.outcome = Outcome::kFinding;
    c.device_message = "rule " + std::to_string(cap + 1) + " accepted";
    c.summary = "profile too pessimistic: the group took more than the " + std::to_string(cap) +
                " rules the profile claims";
    return;
  }
  c.device_message = quote(h.error());
  if (h.error().code != ErrorCode::kTableFull) {
    c.outcome = Outcome::kFail;
    c.summary = "filled to the claimed size, but the next insert was refused as " +
                std::string(errorInfo(h.error().code).name) + ", not table-full";
    return;
  }
  const auto t1 = Clock::now();
  made.destroyAll();
  c.figures["drain_seconds"] = secondsSince(t1);
  c.outcome = Outcome::kPass;
  c.summary =
      "filled to " + std::to_string(cap) + " rules; the next insert was refused as table-full";
}

void Runner::groupsCase(CaseReport& c) {
  c.claim = std::to_string(p_.max_groups) + " groups";
  if (!actionOk(p_, ActionType::kDrop) || p_.max_groups == 0) {
    c.outcome = Outcome::kSkipped;
    c.summary = "the profile has no drop action or no group";
    return;
  }
  Made made(backend_, rep_.cleanup_errors);
  fr::FlowRule last = baseRule(0x500);
  last.attr.group = p_.max_groups - 1;
  vfIpv4Pattern(p_, last);
  last.actions.push_back(fr::DropAction{});
  auto h = made.create(last);
  if (!h) {
    c.outcome = Outcome::kFail;
    c.device_message = quote(h.error());
    c.summary = "a rule in group " + std::to_string(p_.max_groups - 1) +
                " (the last the profile claims) was refused";
    return;
  }
  fr::FlowRule beyond = last;
  beyond.id = kIdBase + 0x501;
  beyond.attr.group = p_.max_groups;
  auto b = made.create(beyond);
  if (b) {
    c.outcome = Outcome::kFinding;
    c.device_message = "a rule in group " + std::to_string(p_.max_groups) + " was accepted";
    c.summary = "profile too pessimistic: the device has more groups than claimed";
    return;
  }
  c.outcome = Outcome::kPass;
  c.device_message = quote(b.error());
  c.summary = "group " + std::to_string(p_.max_groups - 1) + " accepted, group " +
              std::to_string(p_.max_groups) + " refused";
}

void Runner::rateCase(CaseReport& c, const PlannedClass& pc) {
  c.claim =
      "sync API (rte_flow_create / rte_flow_destroy), " + std::to_string(o_.rate_rules) + " rules";
  if (pc.rule.placement != fr::Placement::kHw) {
    c.outcome = Outcome::kSkipped;
    c.summary = "the planner places this class in sw on this profile";
    return;
  }
  const std::uint64_t room = p_.groupCapacity(pc.rule.attr.group);
  const std::uint32_t n = static_cast<std::uint32_t>(std::min<std::uint64_t>(o_.rate_rules, room));
  Made made(backend_, rep_.cleanup_errors);
  std::vector<fr::FlowRule> rules;
  rules.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i)
    rules.push_back(variant(pc.rule, i, kIdBase + 0x100000 + i));
  const auto t0 = Clock::now();
  for (std::uint32_t i = 0; i < n; ++i) {
    if ((i & 255) == 0 && stopped(o_)) {
      c.outcome = Outcome::kSkipped;
      c.summary = "interrupted; removed the rules made";
      return;
    }
    auto h = made.create(rules[i]);
    if (!h) {
      c.outcome = Outcome::kFail;
      c.device_message = quote(h.error());
      c.summary = "insert " + std::to_string(i + 1) + " of " + std::to_string(n) + " refused";
      return;
    }
  }
  const double insert_s = secondsSince(t0);
  // Only the device's destroy calls are timed (the bookkeeping of Made
  // would otherwise count as the device's time).
  auto handles = made.release();
  const auto t1 = Clock::now();
  for (std::size_t i = 0; i < handles.size(); ++i)
    if (auto s = backend_.destroy(handles[i]); !s) {
      made.adopt({handles.begin() + static_cast<std::ptrdiff_t>(i) + 1, handles.end()});
      rep_.cleanup_errors.push_back("rule handle " + std::to_string(handles[i]) + ": " +
                                    s.error().describe());
      c.outcome = Outcome::kFail;
      c.device_message = quote(s.error());
      c.summary = "delete refused";
      return;
    }
  const double delete_s = secondsSince(t1);
  c.figures["rules"] = n;
  c.figures["insert_seconds"] = insert_s;
  c.figures["delete_seconds"] = delete_s;
  c.figures["insert_rules_per_s"] = insert_s > 0 ? n / insert_s : 0.0;
  c.figures["delete_rules_per_s"] = delete_s > 0 ? n / delete_s : 0.0;
  char buf[160];
  std::snprintf(buf, sizeof buf, "%u rules: insert %.0f rules/s, delete %.0f rules/s", n,
                insert_s > 0 ? n / insert_s : 0.0, delete_s > 0 ? n / delete_s : 0.0);
  c.outcome = Outcome::kPass;
  c.summary = buf;
}

void Runner::switchdevCase(CaseReport& c) {
  c.claim = "switchdev with " + std::to_string(p_.max_vfs) + " VFs (sriov.max_vfs)";
  if (!d_.nic) {
    c.outcome = Outcome::kSkipped;
    c.summary = d_.nic_unavailable;
    return;
  }
  const bool switchdev = std::find(p_.eswitch_modes.begin(), p_.eswitch_modes.end(),
                                   model::EswitchMode::kSwitchdev) != p_.eswitch_modes.end();
  auto nic = d_.nic->makeBackend();
  const auto t0 = Clock::now();
  auto r = nic->ensureSwitchdev(p_.max_vfs);
  c.figures["seconds"] = secondsSince(t0);
  if (!r) {
    c.device_message = quote(r.error());
    if (!switchdev && r.error().code == ErrorCode::kUnsupported) {
      c.outcome = Outcome::kPass;
      c.summary = "switchdev refused, as the profile says";
      return;
    }
    c.outcome = Outcome::kFail;
    c.summary = "the switchdev sequence with " + std::to_string(p_.max_vfs) + " VFs failed";
    return;
  }
  switchdev_done_ = true;
  auto st = nic->status();
  if (!st || st->num_vfs != p_.max_vfs || st->eswitch_mode != model::EswitchMode::kSwitchdev) {
    c.outcome = Outcome::kFail;
    c.device_message =
        st ? "read back: " + std::to_string(st->num_vfs) + " VFs" : quote(st.error());
    c.summary = "the PF does not read back as switchdev with the VFs asked for";
    return;
  }
  std::size_t reps = 0;
  for (const auto& vf : st->vfs) reps += !vf.representor.empty();
  c.figures["representors"] = reps;
  c.device_message =
      std::to_string(r->steps.size()) + " steps: " +
      (r->steps.empty() ? std::string("none") : r->steps.front() + " ... " + r->steps.back());
  if (!switchdev) {
    c.outcome = Outcome::kFinding;
    c.summary = "profile too pessimistic: switchdev worked";
    return;
  }
  c.outcome = reps == p_.max_vfs ? Outcome::kPass : Outcome::kFail;
  c.summary = "switchdev with " + std::to_string(st->num_vfs) + " VFs and " + std::to_string(reps) +
              " representors";
}

void Runner::vfLimitCase(CaseReport& c) {
  c.claim = "at most " + std::to_string(p_.max_vfs) + " VFs";
  if (!d_.nic) {
    c.outcome = Outcome::kSkipped;
    c.summary = d_.nic_unavailable;
    return;
  }
  auto st = d_.nic->makeBackend()->status();
  if (!st) {
    c.outcome = Outcome::kFail;
    c.device_message = quote(st.error());
    c.summary = "the PF could not be read";
    return;
  }
  c.figures["sriov_totalvfs"] = st->total_vfs;
  c.device_message = "sriov_totalvfs " + std::to_string(st->total_vfs);
  if (st->total_vfs < p_.max_vfs) {
    c.outcome = Outcome::kFail;
    c.summary = "the PF offers fewer VFs than the profile claims";
    c.corrections.push_back({"/sriov/max_vfs", "/sriov/source", p_.max_vfs, st->total_vfs,
                             "the PF reads sriov_totalvfs " + std::to_string(st->total_vfs)});
  } else if (st->total_vfs > p_.max_vfs) {
    c.outcome = Outcome::kFinding;
    c.summary = "profile too pessimistic: the PF offers more VFs";
  } else {
    c.outcome = Outcome::kPass;
    c.summary = "sriov_totalvfs equals the profile's max_vfs";
  }
}

void Runner::vdpaCase(CaseReport& c) {
  const bool claimed = p_.vdpa_kernel || p_.vdpa_dpdk;
  c.claim = claimed ? "vDPA devices on VFs" : "no vDPA";
  if (!d_.nic) {
    c.outcome = Outcome::kSkipped;
    c.summary = d_.nic_unavailable;
    return;
  }
  if (!switchdev_done_) {
    c.outcome = Outcome::kSkipped;
    c.summary = "the switchdev case did not bring the VFs up (see nic/switchdev)";
    return;
  }
  const auto mgmt = d_.nic->vdpaMgmtDevs();
  c.figures["management_devices"] = mgmt.size();
  if (mgmt.empty()) {
    c.device_message = "no vDPA management device on any VF";
    c.outcome = claimed ? Outcome::kFail : Outcome::kPass;
    c.summary = claimed ? "the profile claims vDPA; no VF offers a vDPA management device"
                        : "no vDPA management device, as the profile says";
    if (claimed)
      c.corrections.push_back({p_.vdpa_kernel ? "/vdpa/kernel" : "/vdpa/dpdk", "/vdpa/source", true,
                               false, "no vDPA management device on the VFs"});
    return;
  }
  offload::SimVdpaDevice dev;
  dev.name = "hwtest-vdpa0";
  dev.mgmt_dev = mgmt.front();
  dev.mac = kVmMac;
  const auto t0 = Clock::now();
  auto s = d_.nic->vdpaDevNew(dev);
  c.figures["create_seconds"] = secondsSince(t0);
  if (!s) {
    c.device_message = quote(s.error());
    c.outcome = claimed ? Outcome::kFail : Outcome::kPass;
    c.summary = claimed ? "vDPA device creation failed"
                        : "vDPA device creation refused, as the profile says";
    return;
  }
  const auto t1 = Clock::now();
  auto del = d_.nic->vdpaDevDel(dev.name);
  c.figures["delete_seconds"] = secondsSince(t1);
  if (!del) {
    rep_.cleanup_errors.push_back("vDPA device " + dev.name + ": " + del.error().describe());
    c.outcome = Outcome::kFail;
    c.device_message = quote(del.error());
    c.summary = "created, but could not be deleted";
    return;
  }
  c.device_message = "vdpa dev add " + dev.name + " mgmtdev pci/" + dev.mgmt_dev + " succeeded";
  c.outcome = claimed ? Outcome::kPass : Outcome::kFinding;
  c.summary = claimed ? "created and deleted a vDPA device"
                      : "profile too pessimistic: a vDPA device was created";
}

// The rule of actionRule() for vxlan_encap / vxlan_decap with IPv6 outer
// headers (VXLAN over an IPv6 underlay: the profile's ipv6_underlay claim).
std::optional<fr::FlowRule> ipv6UnderlayRule(const model::HwProfile& p, ActionType t,
                                             std::string& why) {
  auto r = actionRule(p, t, why);
  if (!r) return r;
  if (t == ActionType::kVxlanEncap) {
    r->encap->src = kLocalVtep6;
    r->encap->dst = kRemoteVtep6;
    return r;
  }
  if (!itemOk(p, ItemType::kIpv6)) {
    why = "the profile cannot match item ipv6, which the decapsulation rule's outer header needs";
    return std::nullopt;
  }
  fr::FlowRule d = baseRule(0x300 + static_cast<unsigned>(t));
  for (const auto& item : r->pattern) {
    if (auto* eth = std::get_if<fr::EthItem>(&item)) {
      fr::EthItem e6 = *eth;
      e6.ether_type = fr::kEtherTypeIpv6;
      d.pattern.push_back(e6);
    } else if (std::holds_alternative<fr::Ipv4Item>(item)) {
      d.pattern.push_back(fr::Ipv6Item{fr::Ipv6Item::Field::kDst, 128, kLocalVtep6});
    } else {
      d.pattern.push_back(item);
    }
  }
  for (const auto& a : r->actions) d.actions.push_back(a);
  d.attr = r->attr;
  return d;
}

std::vector<Case> Runner::cases() {
  std::vector<Case> out;
  for (std::size_t i = 0; i < model::kItemTypeCount; ++i) {
    const auto t = static_cast<ItemType>(i);
    const std::string name(model::itemName(t));
    out.push_back({"item/" + name, [this, t, name](CaseReport& c) {
                     std::string why;
                     auto r = itemRule(p_, t, why);
                     capabilityCase(c, r, why, p_.item(t).supported,
                                    "/items/" + name + "/supported", "/items/" + name + "/source");
                   }});
  }
  for (std::size_t i = 0; i < model::kActionTypeCount; ++i) {
    const auto t = static_cast<ActionType>(i);
    const std::string name(model::actionName(t));
    out.push_back({"action/" + name, [this, t, name](CaseReport& c) {
                     std::string why;
                     auto r = actionRule(p_, t, why);
                     capabilityCase(c, r, why, p_.action(t).supported,
                                    "/actions/" + name + "/supported",
                                    "/actions/" + name + "/source");
                   }});
    if (t != ActionType::kVxlanEncap && t != ActionType::kVxlanDecap) continue;
    out.push_back({"action/" + name + "-ipv6", [this, t, name](CaseReport& c) {
                     std::string why;
                     auto r = ipv6UnderlayRule(p_, t, why);
                     capabilityCase(c, r, why, p_.action(t).ipv6_underlay,
                                    "/actions/" + name + "/ipv6_underlay/supported",
                                    "/actions/" + name + "/ipv6_underlay/source");
                   }});
  }
  auto classes = plannedClasses(p_);
  if (!classes) {
    Error e = classes.error();
    out.push_back({"class/plan", [e](CaseReport& c) {
                     c.outcome = Outcome::kFail;
                     c.summary =
                         "the planner refused the suite's intent for this profile: " + e.describe();
                   }});
  } else {
    for (const auto& pc : *classes)
      out.push_back({"class/" + pc.name, [this, pc](CaseReport& c) { classCase(c, pc); }});
  }
  out.push_back({"table/groups", [this](CaseReport& c) { groupsCase(c); }});
  out.push_back({"table/group0-fill", [this](CaseReport& c) { fillCase(c, 0); }});
  if (p_.max_groups >= 2)
    out.push_back({"table/group1-fill", [this](CaseReport& c) { fillCase(c, 1); }});
  if (classes)
    for (const auto& pc : *classes)
      out.push_back({"rate/" + pc.name, [this, pc](CaseReport& c) { rateCase(c, pc); }});
  if (p_.hw_steering)
    out.push_back(
        {"rate/template-api", [](CaseReport& c) {
           c.claim = "hardware steering (dv_flow_en=2): template / async API";
           c.outcome = Outcome::kSkipped;
           c.summary =
               "not run: nicoffload's flow backends use the synchronous rte_flow API only "
               "(rte_flow_create/destroy); the template API (rte_flow_template_table_create, "
               "rte_flow_async_create) is not implemented, so its rate cannot be measured here";
         }});
  out.push_back({"nic/vf-limit", [this](CaseReport& c) { vfLimitCase(c); }});
  out.push_back({"nic/switchdev", [this](CaseReport& c) { switchdevCase(c); }});
  out.push_back({"vdpa/create", [this](CaseReport& c) { vdpaCase(c); }});
  return out;
}

std::string xmlSafe(const std::string& s) {
  // pugixml escapes markup; control bytes other than tab/newline are not
  // allowed in XML 1.0 at all.
  std::string out;
  for (unsigned char ch : s)
    out += (ch < 0x20 && ch != '\n' && ch != '\t') ? '?' : static_cast<char>(ch);
  return out;
}

}  // namespace

const char* toString(Outcome o) {
  switch (o) {
    case Outcome::kPass:
      return "pass";
    case Outcome::kFail:
      return "fail";
    case Outcome::kFinding:
      return "finding";
    case Outcome::kSkipped:
      return "skipped";
  }
  return "?";
}

std::size_t SuiteReport::count(Outcome o) const {
  return static_cast<std::size_t>(std::count_if(
      cases.begin(), cases.end(), [o](const CaseReport& c) { return c.outcome == o; }));
}

std::vector<std::string> caseNames(const model::HwProfile& profile, const SuiteOptions& options) {
  Devices none;
  SuiteReport rep;
  std::vector<std::string> out;
  // Listing the cases does not touch a device: the Runner gets a backend
  // that is never called.
  struct NullBackend final : fr::FlowBackend {
    fr::FlowBackendCapabilities caps;
    std::vector<fr::HeldRule> installed() const override { return {}; }
    const fr::FlowBackendCapabilities& capabilities() const override { return caps; }
    Status validate(const fr::FlowRule&) override { return Status::success(); }
    Result<fr::FlowHandle> create(const fr::FlowRule&) override { return fr::FlowHandle{1}; }
    Status destroy(fr::FlowHandle) override { return Status::success(); }
    Result<fr::FlowCounters> query(fr::FlowHandle) override { return fr::FlowCounters{}; }
    Status flush() override { return Status::success(); }
  } null;
  none.flow = &null;
  Runner runner(profile, none, options, rep);
  for (const auto& c : runner.cases())
    if (!options.filter || std::regex_search(c.name, *options.filter)) out.push_back(c.name);
  return out;
}

SuiteReport runSuite(const model::HwProfile& profile, Devices& devices,
                     const SuiteOptions& options) {
  SuiteReport rep;
  rep.profile = profile.name;
  rep.backend = devices.flow->capabilities().backend;
  rep.device = devices.flow->capabilities().device;
  Runner runner(profile, devices, options, rep);
  for (auto& c : runner.cases()) {
    if (options.filter && !std::regex_search(c.name, *options.filter)) continue;
    if (stopped(options)) {
      rep.interrupted = true;
      break;
    }
    CaseReport r;
    r.name = c.name;
    const auto t0 = Clock::now();
    try {
      c.run(r);
    } catch (const std::exception& e) {
      // A library exception (regex, json) is this case's failure, not the run's.
      r.outcome = Outcome::kFail;
      r.summary = std::string("internal error: ") + e.what();
    }
    r.seconds = secondsSince(t0);
    rep.cases.push_back(std::move(r));
  }
  if (stopped(options)) rep.interrupted = true;
  return rep;
}

int exitCode(const SuiteReport& report) {
  if (!report.cleanup_errors.empty()) return kExitCleanup;
  if (report.interrupted) return kExitInterrupted;
  if (report.count(Outcome::kFail) || report.count(Outcome::kFinding)) return kExitDisagree;
  if (report.count(Outcome::kPass) == 0) return kExitNothingRan;
  return kExitAgree;
}

std::string humanSummary(const SuiteReport& report) {
  std::ostringstream out;
  out << "# nicoffload-hwtest: profile " << report.profile << ", backend " << report.backend << " ("
      << report.device << ")\n";
  for (const auto& c : report.cases) {
    char head[128];
    std::snprintf(head, sizeof head, "%-8s %-36s %8.3f s  ", toString(c.outcome), c.name.c_str(),
                  c.seconds);
    out << head << c.summary << "\n";
    if (!c.device_message.empty() && c.outcome != Outcome::kPass)
      out << "         device: " << c.device_message << "\n";
  }
  out << "# pass " << report.count(Outcome::kPass) << ", fail " << report.count(Outcome::kFail)
      << ", finding " << report.count(Outcome::kFinding) << ", skipped "
      << report.count(Outcome::kSkipped);
  if (report.interrupted) out << "; INTERRUPTED (what was made is removed)";
  out << "\n";
  if (exitCode(report) == kExitNothingRan) out << "# NO CASE RAN: nothing was checked\n";
  for (const auto& e : report.cleanup_errors) out << "# NOT REMOVED: " << e << "\n";
  out << "# these results hold for the backend above only: a sim run says nothing about a real "
         "NIC\n";
  return out.str();
}

nlohmann::json toJson(const SuiteReport& report) {
  nlohmann::json cases = nlohmann::json::array();
  for (const auto& c : report.cases) {
    nlohmann::json corr = nlohmann::json::array();
    for (const auto& k : c.corrections)
      corr.push_back({{"path", k.path}, {"from", k.from}, {"to", k.to}, {"evidence", k.evidence}});
    cases.push_back({{"name", c.name},
                     {"claim", c.claim},
                     {"result", toString(c.outcome)},
                     {"seconds", c.seconds},
                     {"summary", c.summary},
                     {"device_message", c.device_message},
                     {"figures", c.figures},
                     {"corrections", corr}});
  }
  return {{"profile", report.profile},
          {"backend", report.backend},
          {"device", report.device},
          {"interrupted", report.interrupted},
          {"cleanup_errors", report.cleanup_errors},
          {"counts",
           {{"pass", report.count(Outcome::kPass)},
            {"fail", report.count(Outcome::kFail)},
            {"finding", report.count(Outcome::kFinding)},
            {"skipped", report.count(Outcome::kSkipped)}}},
          {"exit_code", exitCode(report)},
          {"cases", cases}};
}

std::string toJunitXml(const SuiteReport& report) {
  pugi::xml_document doc;
  auto decl = doc.append_child(pugi::node_declaration);
  decl.append_attribute("version") = "1.0";
  decl.append_attribute("encoding") = "UTF-8";
  auto suites = doc.append_child("testsuites");
  auto suite = suites.append_child("testsuite");
  const std::string name = "nicoffload-hwtest." + report.profile + "." + report.backend;
  suite.append_attribute("name") = name.c_str();
  suite.append_attribute("tests") = static_cast<unsigned long long>(report.cases.size());
  // JUnit has no "finding": a disagreement either way is a failure for CI.
  suite.append_attribute("failures") = static_cast<unsigned long long>(
      report.count(Outcome::kFail) + report.count(Outcome::kFinding));
  suite.append_attribute("errors") = 0;
  suite.append_attribute("skipped") =
      static_cast<unsigned long long>(report.count(Outcome::kSkipped));
  double total = 0;
  for (const auto& c : report.cases) total += c.seconds;
  suite.append_attribute("time") = total;
  for (const auto& c : report.cases) {
    auto tc = suite.append_child("testcase");
    tc.append_attribute("classname") = name.c_str();
    tc.append_attribute("name") = c.name.c_str();
    tc.append_attribute("time") = c.seconds;
    const std::string text =
        xmlSafe(c.summary + (c.device_message.empty() ? "" : "\ndevice: " + c.device_message));
    switch (c.outcome) {
      case Outcome::kPass:
        break;
      case Outcome::kSkipped: {
        auto s = tc.append_child("skipped");
        s.append_attribute("message") = xmlSafe(c.summary).c_str();
        break;
      }
      case Outcome::kFail:
      case Outcome::kFinding: {
        auto f = tc.append_child("failure");
        f.append_attribute("type") = toString(c.outcome);
        f.append_attribute("message") = xmlSafe(c.summary).c_str();
        f.append_child(pugi::node_pcdata).set_value(text.c_str());
        break;
      }
    }
    if (!c.device_message.empty())
      tc.append_child("system-out")
          .append_child(pugi::node_pcdata)
          .set_value(xmlSafe(c.device_message).c_str());
  }
  std::ostringstream out;
  doc.save(out, "  ");
  return out.str();
}

nlohmann::json correctedProfile(nlohmann::json doc, const SuiteReport& report) {
  bool any = false;
  for (const auto& c : report.cases)
    for (const auto& k : c.corrections) {
      const nlohmann::json::json_pointer ptr(k.path);
      doc[ptr] = k.to;
      // "supported": false may not keep a UDP port list (schema).
      if (k.to == false && doc[ptr.parent_pointer()].contains("udp_dst_ports"))
        doc[ptr.parent_pointer()].erase("udp_dst_ports");
      doc[nlohmann::json::json_pointer(k.source_path)] =
          "nicoffload-hwtest: case " + c.name + " on " + report.backend + " (" + report.device +
          "): the device answered \"" + k.evidence + "\"";
      any = true;
    }
  if (any)
    doc["sources"]["nicoffload-hwtest"] = "nicoffload-hwtest run with backend " + report.backend +
                                          " on " + report.device +
                                          " (hw-profiles/README.md, 'Hardware validation suite')";
  return doc;
}

}  // namespace nicoffload::hwtest
