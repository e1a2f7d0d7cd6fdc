#include "nicoffload/simnic/sim_eswitch.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <type_traits>

#include <algorithm>
#include <array>

#include "nicoffload/common/file_read.h"
#include "nicoffload/common/journal.h"

namespace nicoffload::simnic {
namespace {

using flowrules::actionError;
using flowrules::attrError;
using flowrules::itemError;
using model::ActionType;
using model::ItemType;
namespace fr = flowrules;

bool portAllowed(const std::vector<std::uint16_t>& allowed, std::uint16_t port) {
  return allowed.empty() || std::find(allowed.begin(), allowed.end(), port) != allowed.end();
}

std::string portList(const std::vector<std::uint16_t>& ports) {
  std::string s;
  for (auto p : ports) s += (s.empty() ? "" : ", ") + std::to_string(p);
  return s;
}

std::string ruleName(const FlowRule& r) { return fr::formatRuleId(r.cls, r.id); }

bool hasCount(const FlowRule& r) {
  return std::any_of(r.actions.begin(), r.actions.end(), [](const fr::FlowAction& a) {
    return std::holds_alternative<fr::CountAction>(a);
  });
}

}  // namespace

SimEswitch::SimEswitch(model::HwProfile profile, std::uint16_t vf_count)
    : profile_(std::move(profile)), vf_count_(vf_count) {
  caps_ = flowrules::FlowBackendCapabilities::fromProfile(profile_);
  caps_.backend = "sim";
  caps_.device = profile_.name;
  caps_.vf_count = vf_count_;
  caps_.enforced = true;
}

Result<std::unique_ptr<SimEswitch>> SimEswitch::create(model::HwProfile profile, std::uint16_t vf_count) {
  if (vf_count > profile.max_vfs)
    return makeError(ErrorCode::kUnsupported, "uplink.vf_count", std::to_string(vf_count),
                     std::to_string(vf_count) + " VFs requested, but the simulated " +
                         profile.name + " has at most " + std::to_string(profile.max_vfs) + " (" +
                         profile.max_vfs_source + ")");
  if (std::find(profile.eswitch_modes.begin(), profile.eswitch_modes.end(),
                model::EswitchMode::kSwitchdev) == profile.eswitch_modes.end())
    return makeError(ErrorCode::kUnsupported, "hw_profile", profile.name,
                     "profile " + profile.name + " has no switchdev mode: no transfer rules");
  return std::unique_ptr<SimEswitch>(new SimEswitch(std::move(profile), vf_count));
}

Status SimEswitch::tick() {
  ++operations_;
  if (fail_at_ && operations_ == *fail_at_) {
    fail_at_.reset();
    return fail_error_;
  }
  return Status::success();
}

void SimEswitch::failNthOperation(std::uint64_t n, Error error) {
  fail_at_ = operations_ + std::max<std::uint64_t>(n, 1);
  fail_error_ = std::move(error);
}

void SimEswitch::failAction(model::ActionType type, ErrorCode code) { failing_actions_[type] = code; }

void SimEswitch::failActionOnCreate(model::ActionType type, ErrorCode code) { failing_creates_[type] = code; }

void SimEswitch::clearFaults() {
  fail_at_.reset();
  failing_actions_.clear();
  failing_creates_.clear();
  full_ = false;
}

Status SimEswitch::checkPort(const FlowRule& rule, PortRef port, bool is_item,
                         std::size_t index) const {
  if (port.kind == PortRef::Kind::kUplink && port.uplink_index > 0 &&
      (port.uplink_index > 1 || !profile_.multiport_eswitch)) {
    std::string msg =
        port.str() + " is not on this eswitch: " +
        (port.uplink_index > 1 ? std::string("the NIC has two uplinks")
                               : "profile " + profile_.name + " has no multiport eswitch");
    return is_item ? itemError(ErrorCode::kUnsupported, rule, index, msg)
                   : actionError(ErrorCode::kUnsupported, rule, index, msg);
  }
  if (port.kind == PortRef::Kind::kVf && port.vf >= vf_count_) {
    std::string msg =
        port.str() + " does not exist: the NIC has " + std::to_string(vf_count_) + " VFs";
    return is_item ? itemError(ErrorCode::kInvalidValue, rule, index, msg)
                   : actionError(ErrorCode::kInvalidValue, rule, index, msg);
  }
  return Status::success();
}

Status SimEswitch::check(const FlowRule& r) const {
  const auto& p = profile_;
  // Attributes (rte_flow.c refuses ingress/egress together with transfer).
  if (r.attr.transfer && r.attr.ingress)
    return attrError(ErrorCode::kInvalidValue, r, "ingress transfer",
                     "cannot use attr ingress/egress with attr transfer");
  if (!r.attr.transfer)
    return attrError(ErrorCode::kUnsupported, r, "ingress",
                     "the simulated eswitch holds transfer (FDB) rules only");
  if (r.attr.group >= p.max_groups)
    return attrError(ErrorCode::kUnsupported, r, "group " + std::to_string(r.attr.group),
                     "group " + std::to_string(r.attr.group) + " is beyond the " +
                         std::to_string(p.max_groups) + " groups of " + p.name + " (" +
                         p.tables_source + ")");

  // Pattern: supported items, stacked in protocol order.
  std::optional<ItemType> prev;
  std::optional<std::uint16_t> udp_dst;
  bool has_eth = false, has_ip = false, has_vxlan = false, has_port = false;
  bool outer_ipv6 = false;  // UDP after IPv6: VXLAN over an IPv6 underlay
  for (std::size_t i = 0; i < r.pattern.size(); ++i) {
    const auto& item = r.pattern[i];
    const ItemType t = fr::itemType(item);
    if (!p.item(t).supported)
      return itemError(ErrorCode::kUnsupported, r, i,
                       "profile " + p.name + " cannot match item " +
                           std::string(model::itemName(t)) + " (" + p.item(t).source + ")");
    if (const auto* port = std::get_if<fr::PortItem>(&item)) {
      if (has_port)
        return itemError(ErrorCode::kInvalidValue, r, i, "more than one represented_port item");
      has_port = true;
      if (auto s = checkPort(r, port->port, true, i); !s) return s;
      continue;
    }
    static constexpr struct {
      ItemType item;
      ItemType after, or_after;  // the items it may follow
    } kStack[] = {{ItemType::kEth, ItemType::kVxlan, ItemType::kVxlan},
                  {ItemType::kIpv4, ItemType::kEth, ItemType::kEth},
                  {ItemType::kIpv6, ItemType::kEth, ItemType::kEth},
                  {ItemType::kUdp, ItemType::kIpv4, ItemType::kIpv6},
                  {ItemType::kVxlan, ItemType::kUdp, ItemType::kUdp}};
    for (const auto& s : kStack)
      if (s.item == t && prev && *prev != s.after && *prev != s.or_after)
        return itemError(ErrorCode::kInvalidValue, r, i,
                         std::string(model::itemName(t)) + " cannot follow " +
                             std::string(model::itemName(*prev)) + " in a pattern");
    if (t == ItemType::kUdp && prev == ItemType::kIpv6) outer_ipv6 = true;
    prev = t;
    has_eth = has_eth || t == ItemType::kEth;
    has_ip = has_ip || t == ItemType::kIpv4 || t == ItemType::kIpv6;
    if (const auto* udp = std::get_if<fr::UdpItem>(&item))
      udp_dst = (udp->fields & fr::UdpItem::kDst) ? std::optional(udp->dst_port) : std::nullopt;
    if (t == ItemType::kVxlan) {
      has_vxlan = true;
      const std::uint16_t port =
          udp_dst.value_or(kVxlanPort);  // mlx5: VXLAN without a UDP port = 4789
      if (!portAllowed(p.item(t).udp_dst_ports, port))
        return itemError(ErrorCode::kUnsupported, r, i,
                         p.name + " matches VXLAN only on UDP port " +
                             portList(p.item(t).udp_dst_ports) + ", not " + std::to_string(port) +
                             " (" + p.item(t).source + ")");
      if (std::get<fr::VxlanItem>(item).vni > 0xFFFFFF)
        return itemError(ErrorCode::kInvalidValue, r, i, "a VNI has 24 bits");
    }
  }

  // Actions.
  int fates = 0;
  int counts = 0;
  for (std::size_t i = 0; i < r.actions.size(); ++i) {
    const auto& action = r.actions[i];
    const ActionType t = fr::actionType(action);
    const std::string name(model::actionName(t));
    if (auto f = failing_actions_.find(t); f != failing_actions_.end())
      return actionError(f->second, r, i, "injected fault: every rule with " + name + " fails");
    if (!p.action(t).supported)
      return actionError(
          ErrorCode::kUnsupported, r, i,
          "profile " + p.name + " has no action " + name + " (" + p.action(t).source + ")");
    switch (t) {
      case ActionType::kSetMacSrc:
      case ActionType::kSetMacDst:
        if (!has_eth) return actionError(ErrorCode::kInvalidValue, r, i, "no L2 item in pattern");
        break;
      case ActionType::kDecTtl:
        if (!has_ip)
          return actionError(ErrorCode::kInvalidValue, r, i, "no IP protocol in pattern");
        break;
      case ActionType::kRepresentedPort:
        ++fates;
        if (auto s = checkPort(r, std::get<fr::RepresentedPortAction>(action).port, false, i); !s)
          return s;
        break;
      case ActionType::kPortRepresentor:
        ++fates;
        if (auto s = checkPort(r, std::get<fr::PortRepresentorAction>(action).port, false, i); !s)
          return s;
        break;
      case ActionType::kVxlanEncap: {
        if (!r.encap)
          return actionError(ErrorCode::kInvalidValue, r, i,
                             "vxlan_encap without its definition (outer headers)");
        const auto& cap = p.action(t);
        if (!portAllowed(cap.udp_dst_ports, r.encap->udp_dst))
          return actionError(ErrorCode::kUnsupported, r, i,
                             p.name + " encapsulates VXLAN only to UDP port " +
                                 portList(cap.udp_dst_ports) + ", not " +
                                 std::to_string(r.encap->udp_dst) + " (" + cap.source + ")");
        if (r.encap->vni > 0xFFFFFF)
          return actionError(ErrorCode::kInvalidValue, r, i, "a VNI has 24 bits");
        if (r.encap->ipv6() && !cap.ipv6_underlay)
          return actionError(
              ErrorCode::kUnsupported, r, i,
              p.name + " does not encapsulate VXLAN in IPv6 (no ipv6_underlay claim)");
        if (r.encap->src.isV4() != r.encap->dst.isV4())
          return actionError(ErrorCode::kInvalidValue, r, i,
                             "the outer source and destination are of two IP versions");
        break;
      }
      case ActionType::kVxlanDecap: {
        if (!has_vxlan)
          return actionError(ErrorCode::kInvalidValue, r, i,
                             "vxlan_decap needs a vxlan item in the pattern");
        const auto& cap = p.action(t);
        const std::uint16_t port = udp_dst.value_or(kVxlanPort);
        if (!portAllowed(cap.udp_dst_ports, port))
          return actionError(ErrorCode::kUnsupported, r, i,
                             p.name + " decapsulates VXLAN only on UDP port " +
                                 portList(cap.udp_dst_ports) + ", not " + std::to_string(port) +
                                 " (" + cap.source + ")");
        if (outer_ipv6 && !cap.ipv6_underlay)
          return actionError(
              ErrorCode::kUnsupported, r, i,
              p.name + " does not decapsulate VXLAN from IPv6 (no ipv6_underlay claim)");
        break;
      }
      case ActionType::kJump: {
        ++fates;
        const auto target = std::get<fr::JumpAction>(action).group;
        if (target == 0)
          return actionError(ErrorCode::kUnsupported, r, i,
                             "the root table (group 0) cannot be a jump target");
        if (target == r.attr.group)
          return actionError(ErrorCode::kInvalidValue, r, i,
                             "jump to its own group " + std::to_string(target) + " would loop");
        if (target >= p.max_groups)
          return actionError(ErrorCode::kUnsupported, r, i,
                             "jump target group " + std::to_string(target) + " is beyond the " +
                                 std::to_string(p.max_groups) + " groups of " + p.name);
        break;
      }
      case ActionType::kCount:
        if (++counts > 1)
          return actionError(ErrorCode::kInvalidValue, r, i, "more than one count action");
        break;
      case ActionType::kDrop:
        ++fates;
        break;
    }
    if (fates > 1)
      return actionError(
          ErrorCode::kInvalidValue, r, i,
          "a rule takes one fate action (represented_port, port_representor, jump or drop)");
  }
  if (fates == 0)
    return makeError(ErrorCode::kInvalidValue, ruleName(r) + ".actions", "",
                     "no fate action (represented_port, port_representor, jump or drop)");
  return checkRoom(r);
}

Status SimEswitch::checkRoom(const FlowRule& r) const {
  if (full_)
    return attrError(ErrorCode::kTableFull, r, "group " + std::to_string(r.attr.group),
                     "injected fault: the flow tables are full");
  const std::uint32_t cap = profile_.groupCapacity(r.attr.group);
  if (groupSize(r.attr.group) >= cap)
    return attrError(ErrorCode::kTableFull, r, "group " + std::to_string(r.attr.group),
                     "group " + std::to_string(r.attr.group) + " is full: it holds " +
                         std::to_string(cap) + " rules on " + profile_.name + " (" +
                         profile_.tables_source + ")");
  return Status::success();
}

Status SimEswitch::validate(const FlowRule& rule) {
  if (auto s = tick(); !s) return s;
  return check(rule);
}

Result<FlowHandle> SimEswitch::create(const FlowRule& rule) {
  if (auto s = tick(); !s) return s.error();
  if (auto s = check(rule); !s) return s.error();
  for (std::size_t i = 0; i < rule.actions.size(); ++i) {
    const ActionType t = fr::actionType(rule.actions[i]);
    if (auto f = failing_creates_.find(t); f != failing_creates_.end())
      return actionError(f->second, rule, i,
                         "injected fault: create of every rule with " + std::string(model::actionName(t)) +
                             " fails (validate accepts it)");
  }
  const FlowHandle h = next_handle_++;
  InstalledFlow f;
  f.handle = h;
  f.rule = rule;
  f.sequence = next_sequence_++;
  auto [it, fresh] = flows_.emplace(h, std::move(f));
  (void)fresh;
  by_group_[rule.attr.group].insert(h);
  journal(kJournalCreate, &it->second, h);
  return h;
}

Status SimEswitch::destroy(FlowHandle handle) {
  if (auto s = tick(); !s) return s;
  auto it = flows_.find(handle);
  if (it == flows_.end())
    return makeError(ErrorCode::kNotFound, "handle", std::to_string(handle),
                     "no rule with handle " + std::to_string(handle) + " on the simulated NIC");
  by_group_[it->second.rule.attr.group].erase(handle);
  flows_.erase(it);
  journal(kJournalDestroy, nullptr, handle);
  return Status::success();
}

Result<FlowCounters> SimEswitch::query(FlowHandle handle) {
  if (auto s = tick(); !s) return s.error();
  auto it = flows_.find(handle);
  if (it == flows_.end())
    return makeError(ErrorCode::kNotFound, "handle", std::to_string(handle),
                     "no rule with handle " + std::to_string(handle) + " on the simulated NIC");
  if (!hasCount(it->second.rule))
    return makeError(ErrorCode::kUnsupported, ruleName(it->second.rule) + ".actions", "count",
                     "the rule has no count action");
  return it->second.counters;
}

Status SimEswitch::flush() {
  if (auto s = tick(); !s) return s;
  dead_records_ += flows_.size() + 1;  // their creates and the flush
  flows_.clear();
  by_group_.clear();
  journal(kJournalFlush, nullptr, flowrules::kNoHandle);
  return Status::success();
}

std::size_t SimEswitch::groupSize(std::uint32_t group) const {
  auto it = by_group_.find(group);
  return it == by_group_.end() ? 0 : it->second.size();
}

std::vector<InstalledFlow> SimEswitch::flows() const {
  std::vector<InstalledFlow> out;
  out.reserve(flows_.size());
  for (const auto& [h, f] : flows_) out.push_back(f);
  std::sort(out.begin(), out.end(),
            [](const InstalledFlow& a, const InstalledFlow& b) { return a.sequence < b.sequence; });
  return out;
}

const InstalledFlow* SimEswitch::find(FlowHandle handle) const {
  auto it = flows_.find(handle);
  return it == flows_.end() ? nullptr : &it->second;
}

namespace {

// The installed rules as the evaluator sees them: per group, in creation
// order (handles only grow), every one in hardware.
class InstalledRuleSet final : public RuleSet {
 public:
  InstalledRuleSet(const std::map<FlowHandle, InstalledFlow>& flows,
                   const std::map<std::uint32_t, std::set<FlowHandle>>& by_group)
      : flows_(flows), by_group_(by_group) {}
  void forEachInGroup(std::uint32_t group,
                      const std::function<void(const CandidateRule&)>& each) const override {
    const auto g = by_group_.find(group);
    if (g == by_group_.end()) return;
    for (const FlowHandle h : g->second) each({&flows_.at(h).rule, h, Placement::kHw});
  }

 private:
  const std::map<FlowHandle, InstalledFlow>& flows_;
  const std::map<std::uint32_t, std::set<FlowHandle>>& by_group_;
};

}  // namespace

Result<Delivery> SimEswitch::evaluate(const Packet& packet, PortRef ingress) {
  if (ingress.kind == PortRef::Kind::kVf && ingress.vf >= vf_count_)
    return makeError(
        ErrorCode::kInvalidValue, "ingress", ingress.str(),
        ingress.str() + " does not exist: the NIC has " + std::to_string(vf_count_) + " VFs");
  auto ev =
      evaluateRules(InstalledRuleSet(flows_, by_group_), packet, ingress, profile_.max_groups);
  if (!ev) return ev.error();
  // COUNT: each matched rule counts the packet as it matched it.
  for (const auto& step : ev->steps) {
    if (!step.matched) continue;
    InstalledFlow& f = flows_.at(step.matched->handle);
    if (!hasCount(f.rule)) continue;
    ++f.counters.hits;
    f.counters.bytes += step.before.size();
  }
  return std::move(ev->delivery);
}

}  // namespace nicoffload::simnic

// --- device persistence ---
//
// Through common/journal.h (Durability::kProcessCrash: like a real device,
// the sim loses its rules with the host, not with the controller). Files in
// the device directory:
//   rules.journal         the snapshot: a header line
//                           NFOSIM03 <sizeof(FlowRule)> <journal_seq>
//                         (a snapshot of another build, whose rules have
//                         another layout, is refused rather than misread),
//                         then one create record per live rule, in creation
//                         order. Rewritten atomically (tmp + rename).
//   rules.journal.<seq>   journal segments from journal_seq on: one record
//                         per create, destroy or flush.
// A record is {type, handle, sequence} and, for a create, the rule's bytes,
// with newlines escaped (encodeRecord()). Replayed on open, never rewritten
// there (a restart's path to ready is the replay only); compacted (a new
// snapshot) on a thread of its own once it holds more dead records than live
// rules + PersistOptions::dead_records_allowed, started by the operation that
// finds it so. A record cut short by a kill -9 is cut off on replay (the
// operation it records never returned); a kill mid-compaction leaves the
// previous snapshot and every segment (before the rename) or the new
// snapshot and segments it covers, which the next replay deletes (after).
namespace nicoffload::simnic {
namespace {

static_assert(std::is_trivially_copyable_v<FlowRule>, "the journal stores rules as bytes");
constexpr std::string_view kSnapshotMagic = "NFOSIM03";
// The binary journal of nicoffload before common/journal.h started so.
constexpr std::string_view kOldJournalMagic = "NFOSIM01";
constexpr const char* kSnapshotName = "rules.journal";

struct JournalRecord {
  std::uint8_t type;
  std::uint8_t pad[7];
  std::uint64_t handle;
  std::uint64_t sequence;
};

// The bytes of {type, handle, sequence} (+ the rule's bytes for a create),
// escaped so that a record holds no newline (the journal's framing): '\n'
// is written kEscape 'n', kEscape itself kEscape 'e'. Close to the rule's
// own size (most bytes pass as they are): a restart reads every record.
constexpr char kEscape = '\x1b';

std::string encodeRecord(std::uint8_t type, FlowHandle handle, const InstalledFlow* flow) {
  JournalRecord rec{};
  rec.type = type;
  rec.handle = handle;
  rec.sequence = flow ? flow->sequence : 0;
  std::string out;
  out.reserve(sizeof rec + (flow ? sizeof(FlowRule) : 0) + 16);
  auto put = [&](const void* data, std::size_t size) {
    const auto* b = static_cast<const char*>(data);
    for (std::size_t i = 0; i < size; ++i) {
      if (b[i] == '\n') {
        out.push_back(kEscape);
        out.push_back('n');
      } else if (b[i] == kEscape) {
        out.push_back(kEscape);
        out.push_back('e');
      } else {
        out.push_back(b[i]);
      }
    }
  };
  put(&rec, sizeof rec);
  if (flow) put(&flow->rule, sizeof(FlowRule));
  return out;
}

// Decodes a record into `rec` (and `rule` for a create); false when it is
// not one of this build's records.
bool decodeRecord(std::string_view data, JournalRecord& rec, FlowRule& rule) {
  unsigned char bytes[sizeof(JournalRecord) + sizeof(FlowRule)];
  std::size_t n = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (n == sizeof bytes) return false;
    char c = data[i];
    if (c == kEscape) {
      if (++i == data.size()) return false;
      if (data[i] == 'n')
        c = '\n';
      else if (data[i] != 'e')
        return false;
    }
    bytes[n++] = static_cast<unsigned char>(c);
  }
  if (n < sizeof rec) return false;
  std::memcpy(&rec, bytes, sizeof rec);
  const std::size_t want = sizeof rec + (rec.type == kJournalCreate ? sizeof(FlowRule) : 0);
  if (n != want) return false;
  if (rec.type == kJournalCreate) std::memcpy(&rule, bytes + sizeof rec, sizeof(FlowRule));
  return true;
}

// Applies one record to `flows` (handle -> rule); counts records that no
// longer describe a live rule in `dead`. Creates come in handle order, so
// each lands at the end of the map.
bool applyRecord(std::string_view data, std::map<FlowHandle, InstalledFlow>& flows,
                 std::uint64_t& dead) {
  JournalRecord rec{};
  FlowRule rule{};
  if (!decodeRecord(data, rec, rule)) return false;
  if (rec.type == kJournalCreate) {
    auto it = flows.emplace_hint(flows.end(), rec.handle, InstalledFlow{});
    it->second.handle = rec.handle;
    it->second.sequence = rec.sequence;
    it->second.rule = rule;
  } else if (rec.type == kJournalDestroy) {
    if (flows.erase(rec.handle)) ++dead;  // its create record is dead
    ++dead;
  } else if (rec.type == kJournalFlush) {
    dead += flows.size() + 1;  // their creates and the flush
    flows.clear();
  } else {
    return false;
  }
  return true;
}

Journal::Options journalOptions(const std::string& device_dir) {
  return Journal::Options{device_dir, std::string(kSnapshotName) + ".", kSnapshotName, 0,
                          Durability::kProcessCrash};
}

Error anotherBuild(const std::string& path, const std::string& what) {
  return makeError(ErrorCode::kInvalidValue, "sim_device_dir", path,
                   "the simulated NIC's journal " + path + " is " + what +
                       "; remove it and the files " + path +
                       ".* (the sim's rules are then gone, as after a device reset)");
}

// A snapshot naming journal segment `seq` and holding `flows` (creation
// order).
std::string snapshotText(std::uint64_t seq, const std::vector<InstalledFlow>& flows) {
  std::string text = std::string(kSnapshotMagic) + " " + std::to_string(sizeof(FlowRule)) + " " +
                     std::to_string(seq) + "\n";
  for (const auto& f : flows) {
    text += encodeRecord(kJournalCreate, f.handle, &f);
    text += '\n';
  }
  return text;
}

// What a replay of the device found.
struct Replayed {
  bool snapshot = false;   // rules.journal exists and is not empty
  std::uint64_t dead = 0;  // records that no longer describe a live rule
  std::optional<Journal::Replay> journal;
};

// Replays the snapshot and the journal of `device_dir` into `flows`.
Result<Replayed> replayDevice(Journal& journal, std::map<FlowHandle, InstalledFlow>& flows,
                              Journal::Access access) {
  Replayed out;
  const std::string path = journal.options().dir + "/" + kSnapshotName;
  std::uint64_t journal_seq = 1;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 || errno != ENOENT) {
    // A regular file, bounded: the directory is named by a user
    // (--sim-device-dir, nicoffload-simnic dump), and a device or FIFO there
    // must not hang or fill us.
    auto read = readRegularFile(path, kMaxStateFileBytes, "sim_device_dir");
    if (!read) return read.error();
    const std::string_view data = *read;
    if (!data.empty()) {
      out.snapshot = true;
      if (data.substr(0, kOldJournalMagic.size()) == kOldJournalMagic)
        return anotherBuild(path, "of an older nicoffload (a binary journal, NFOSIM01)");
      const std::size_t nl = data.find('\n');
      unsigned long long rule_size = 0, seq = 0;
      char magic[16] = {};
      if (nl == std::string_view::npos ||
          std::sscanf(std::string(data.substr(0, nl)).c_str(), "%15s %llu %llu", magic, &rule_size,
                      &seq) != 3 ||
          kSnapshotMagic != magic || seq < 1)
        return anotherBuild(path, "not a simulated NIC's snapshot (no NFOSIM03 header)");
      if (rule_size != sizeof(FlowRule))
        return anotherBuild(path, "of another nicoffload build (its rules are " +
                                      std::to_string(rule_size) + " bytes, this build's " +
                                      std::to_string(sizeof(FlowRule)) + ")");
      journal_seq = seq;
      std::uint64_t ignored = 0;
      for (std::size_t pos = nl + 1; pos < data.size();) {
        std::size_t end = data.find('\n', pos);
        if (end == std::string_view::npos) end = data.size();
        if (!applyRecord(data.substr(pos, end - pos), flows, ignored))
          return makeError(ErrorCode::kInvalidValue, "sim_device_dir", path,
                           "the simulated NIC's snapshot " + path + " is corrupt at byte " +
                               std::to_string(pos) + "; remove it and the files " + path +
                               ".* (a device reset)");
        pos = end + 1;
      }
    }
  }
  auto replayed = journal.replay(
      journal_seq,
      [&](std::string_view payload) -> Status {
        if (!applyRecord(payload, flows, out.dead))
          return makeError(ErrorCode::kInvalidValue, "", "",
                           "not a rule record of this nicoffload build");
        return Status::success();
      },
      access);
  if (!replayed) {
    Error e = replayed.error();
    e.value = e.field;
    e.field = "sim_device_dir";
    return e;
  }
  out.journal = *replayed;
  return out;
}

}  // namespace

void SimEswitch::journal(std::uint8_t type, const InstalledFlow* flow, FlowHandle handle) {
  if (!journal_) return;
  // The rule is already in (or out of) the table; like a device, the sim
  // keeps going when its backing store fails (the next open starts from
  // what was written).
  (void)journal_->append(encodeRecord(type, handle, flow));
  if (type == kJournalDestroy) dead_records_ += 2;  // the rule's create and this record
  // A flush's records were counted before it by the caller (flush()).
  maybeCompact();
}

void SimEswitch::maybeCompact() {
  if (compacting()) return;
  if (compactor_.joinable()) waitForCompaction();
  if (dead_records_ <= flows_.size() + persist_.dead_records_allowed || dead_records_ < compact_floor_)
    return;
  startCompaction();
}

void SimEswitch::startCompaction() {
  // Every record so far is in a segment below `seq`: the snapshot of the
  // rules as they are now covers them.
  auto seq = journal_->rotate();
  if (!seq) {
    ++compaction_failures_;
    compact_floor_ = dead_records_ + flows_.size() + persist_.dead_records_allowed;
    return;
  }
  std::vector<InstalledFlow> live;
  live.reserve(flows_.size());
  for (const auto& [h, f] : flows_) live.push_back(f);
  std::sort(live.begin(), live.end(),
            [](const auto& a, const auto& b) { return a.sequence < b.sequence; });
  compaction_dead_ = dead_records_;
  compaction_ok_ = false;
  compacting_.store(true, std::memory_order_release);
  compactor_ = std::thread([this, live = std::move(live), seq = *seq] {
    const std::string& dir = journal_->options().dir;
    const auto s =
        writeFileAtomically(dir, kSnapshotName, snapshotText(seq, live), Durability::kProcessCrash);
    if (s) (void)journal_->deleteSegmentsBelow(seq);  // best effort: the next open retries
    compaction_ok_ = s.ok();
    compacting_.store(false, std::memory_order_release);
  });
}

void SimEswitch::waitForCompaction() {
  if (!compactor_.joinable()) return;
  compactor_.join();
  if (compaction_ok_) {
    // The snapshot holds live rules only: the dead records it replaced are
    // gone (those of rules destroyed meanwhile were counted again).
    dead_records_ -= std::min(dead_records_, compaction_dead_);
    ++compactions_;
  } else {
    ++compaction_failures_;
    compact_floor_ = dead_records_ + flows_.size() + persist_.dead_records_allowed;
  }
}

std::vector<flowrules::HeldRule> SimEswitch::installed() const {
  std::vector<const InstalledFlow*> order;
  order.reserve(flows_.size());
  for (const auto& [h, f] : flows_) order.push_back(&f);
  std::sort(order.begin(), order.end(),
            [](const auto* a, const auto* b) { return a->sequence < b->sequence; });
  std::vector<flowrules::HeldRule> out;
  out.reserve(order.size());
  for (const auto* f : order) out.push_back({f->handle, f->rule});
  return out;
}

SimEswitch::~SimEswitch() {
  if (compactor_.joinable()) compactor_.join();
}

Result<std::vector<InstalledFlow>> SimEswitch::readDevice(const std::string& device_dir) {
  std::map<FlowHandle, InstalledFlow> flows;
  Journal journal(journalOptions(device_dir));
  auto replayed = replayDevice(journal, flows, Journal::Access::kReadOnly);
  if (!replayed) return replayed.error();
  std::vector<InstalledFlow> out;
  out.reserve(flows.size());
  for (auto& [h, f] : flows) out.push_back(std::move(f));
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.sequence < b.sequence; });
  return out;
}

Result<std::unique_ptr<SimEswitch>> SimEswitch::open(model::HwProfile profile,
                                                     std::uint16_t vf_count,
                                                     const std::string& device_dir) {
  return open(std::move(profile), vf_count, device_dir, PersistOptions{});
}

Result<std::unique_ptr<SimEswitch>> SimEswitch::open(model::HwProfile profile,
                                                     std::uint16_t vf_count,
                                                     const std::string& device_dir,
                                                     PersistOptions options) {
  auto nic = create(std::move(profile), vf_count);
  if (!nic) return nic.error();
  auto& n = **nic;
  auto inDeviceDir = [](Error e) {
    if (e.field != "sim_device_dir") {
      e.value = e.field;
      e.field = "sim_device_dir";
    }
    return e;
  };
  if (auto s = makeDirs(device_dir); !s) return inDeviceDir(s.error());
  n.journal_ = std::make_unique<Journal>(journalOptions(device_dir));
  n.persist_ = options;

  auto replayed = replayDevice(*n.journal_, n.flows_, Journal::Access::kReadWrite);
  if (!replayed) return replayed.error();
  for (const auto& [h, f] : n.flows_) {
    n.by_group_[f.rule.attr.group].insert(h);
    n.next_handle_ = std::max(n.next_handle_, h + 1);
    n.next_sequence_ = std::max(n.next_sequence_, f.sequence + 1);
  }
  // The journal is kept as it is, with or without a snapshot before it (a
  // record cut short by a kill was cut off by the replay): a journal with
  // more dead records than its threshold is compacted by the next operation
  // (maybeCompact()), not here, where it would delay the restart.
  n.dead_records_ = replayed->dead;
  if (!replayed->snapshot) {
    // A first open, or a device whose rules are all in its journal: a
    // snapshot of no rule that names the journal from seq 1 (what the
    // replay read) marks the directory as a simulated NIC's, and the rules
    // are not rewritten.
    const std::string header =
        std::string(kSnapshotMagic) + " " + std::to_string(sizeof(FlowRule)) + " 1\n";
    if (auto s = writeFileAtomically(device_dir, kSnapshotName, header, Durability::kProcessCrash); !s)
      return inDeviceDir(s.error());
  }
  return nic;
}

}  // namespace nicoffload::simnic
