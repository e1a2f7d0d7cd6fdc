// The packet evaluator of the simulated eswitch, on the rule IR: where a
// packet goes through a set of flow rules, with rte_flow semantics (see
// sim_eswitch.h for them). SimEswitch evaluates its installed rules with it;
// `nicoffloadctl trace` evaluates the rules the daemon holds with it, whatever
// the backend (sim or DPDK), so that there is one evaluator.
//
// The rule set may hold rules placed in software (sw): the device does not
// hold them, so they never decide; a sw rule that matches ahead of the rule
// that decided (or where the hardware missed) is reported as bypassed, which
// is how a trace shows that the kernel carries that traffic.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/flowrules/flow_backend.h"
#include "nicoffload/flowrules/rule.h"
#include "nicoffload/simnic/packet.h"

namespace nicoffload::simnic {

using flowrules::FlowHandle;
using flowrules::FlowRule;
using flowrules::Placement;
using flowrules::PortRef;

// Where the switch sent a packet.
struct Delivery {
  enum class Kind : std::uint8_t {
    kPort,  // REPRESENTED_PORT: out of `port` (to the VM of a VF; to the wire for the uplink)
    kRepresentor,  // PORT_REPRESENTOR or a miss: to the kernel through `port`'s representor
    kDrop,         // DROP
  };
  Kind kind = Kind::kDrop;
  PortRef port;
  bool miss = false;  // no rule decided (switchdev default: representor of the source port)
  Packet packet;      // as it leaves the switch
  std::vector<FlowHandle> path;  // the rules that matched, in order (their handles)

  // "out of vf2", "out of the uplink (wire)", "to the representor of vf0 (miss)", "dropped"
  std::string str() const;
};

// One rule offered to the evaluator.
struct CandidateRule {
  const FlowRule* rule = nullptr;            // valid while the RuleSet lives
  FlowHandle handle = flowrules::kNoHandle;  // the device's handle, when it has one
  Placement placement = Placement::kHw;      // in effect: only hw rules are on the device
};

// The rules of each group, each group in tie-break order (the order a device
// created them in: the first one wins a priority tie).
class RuleSet {
 public:
  virtual ~RuleSet() = default;
  virtual void forEachInGroup(std::uint32_t group,
                              const std::function<void(const CandidateRule&)>& each) const = 0;
};

// A RuleSet of copies, grouped by FlowAttr::group, in the order added.
class RuleList final : public RuleSet {
 public:
  void add(const FlowRule& rule, Placement placement, FlowHandle handle = flowrules::kNoHandle);
  std::size_t size() const { return size_; }
  void forEachInGroup(std::uint32_t group,
                      const std::function<void(const CandidateRule&)>& each) const override;

 private:
  struct Entry {
    FlowRule rule;
    FlowHandle handle;
    Placement placement;
  };
  std::map<std::uint32_t, std::vector<Entry>> groups_;
  std::size_t size_ = 0;
};

// One group the packet went through.
struct GroupStep {
  std::uint32_t group = 0;
  std::optional<CandidateRule> matched;  // the hw rule that decided; empty: a miss
  std::vector<CandidateRule> bypassed;   // sw rules matching ahead of it (or instead of the miss)
  std::vector<std::string> actions;      // the actions applied, in order ("set_mac_src ee:..")
  Packet before;                         // as it entered the group (as the rule matched it)
  Packet after;                          // after the rule's actions
};

struct Evaluation {
  Delivery delivery;
  std::vector<GroupStep> steps;  // in the order visited
};

// Whether `rule`'s pattern matches `packet` entering the switch from `ingress`
// (rte_flow pattern semantics: REPRESENTED_PORT matches the source port;
// protocol items stack from the outermost header of the first item's type).
bool ruleMatches(const FlowRule& rule, const Packet& packet, PortRef ingress);

// Sends `packet` into the switch from `ingress`, through `rules` (group 0
// first). At most `max_jumps` jumps. Errors: kInternal when the rules jump
// in a loop (more than max_jumps jumps).
Result<Evaluation> evaluateRules(const RuleSet& rules, const Packet& packet, PortRef ingress,
                                 std::uint32_t max_jumps);

}  // namespace nicoffload::simnic
