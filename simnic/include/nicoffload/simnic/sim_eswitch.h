// The simulated ConnectX eswitch: a first-class FlowBackend, not a mock.
//
// It loads a hardware profile and enforces it: the rte_flow items and actions
// the profile supports, its UDP port limits (VXLAN only on 4789 for
// ConnectX-5), its table sizes per group and group count, and the VF count.
// It also refuses what rte_flow / mlx5 refuse whatever the profile says
// (no fate action, two fate actions, ingress together with transfer, a jump to
// the root table or to its own group, header rewrites without the header in
// the pattern, VXLAN_DECAP without a VXLAN item, VXLAN_ENCAP without its
// definition). It keeps its installed rules, can fail on command (fault
// injection), and evaluates packets against its rules with rte_flow
// semantics:
//   - a packet enters group 0 from its source port (a VF: from the VM; the
//     uplink: from the wire);
//   - in a group, of the rules that match, the one with the lowest priority
//     value wins; ties go to the rule created first;
//   - actions apply in order: SET_MAC_SRC/DST (outermost Ethernet), DEC_TTL
//     (outermost IPv4, checksum updated), VXLAN_DECAP (strips outer
//     Ethernet/IPv4/UDP/VXLAN), VXLAN_ENCAP (adds them from the definition);
//     COUNT adds the packet (as matched) to the rule's counters;
//   - the fate: JUMP continues in the target group, REPRESENTED_PORT sends the
//     packet out of that port (to the VM of a VF, to the wire for the uplink),
//     PORT_REPRESENTOR to the kernel through that port's representor, DROP
//     drops it;
//   - a packet that matches nothing in a group goes to the representor of its
//     source port, as in switchdev (the kernel software path takes it).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/common/journal.h"
#include "nicoffload/flowrules/flow_backend.h"
#include "nicoffload/flowrules/rule.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/simnic/evaluator.h"
#include "nicoffload/simnic/packet.h"

namespace nicoffload::simnic {

using flowrules::FlowCounters;
using flowrules::FlowHandle;
using flowrules::FlowRule;
using flowrules::PortRef;

// One rule held by the sim.
struct InstalledFlow {
  FlowHandle handle = flowrules::kNoHandle;
  FlowRule rule;
  FlowCounters counters;
  std::uint64_t sequence = 0;  // creation order: breaks priority ties
};

inline constexpr std::uint8_t kJournalCreate = 1, kJournalDestroy = 2, kJournalFlush = 3;

class SimEswitch final : public flowrules::FlowBackend {
 public:
  // A NIC with `vf_count` VFs that enforces `profile`. Errors: kUnsupported
  // when vf_count exceeds the profile's max_vfs or the profile has no
  // switchdev eswitch mode (transfer rules need it).
  static Result<std::unique_ptr<SimEswitch>> create(model::HwProfile profile, std::uint16_t vf_count);

  // How a persistent device keeps its journal short.
  struct PersistOptions {
    // A compaction (a new snapshot of the live rules, the older segments
    // deleted) starts when the snapshot and journal hold more than this many
    // dead records (creates of destroyed rules, destroys, flushes) beyond the
    // number of live rules: a journal mostly of live rules is not rewritten.
    std::uint64_t dead_records_allowed = 1024;
  };

  // A NIC whose rules persist in `device_dir` (a journal, replayed here), so
  // they survive a restart of the controller the way a real device's do.
  // The open only reads (and, for a new directory, writes a snapshot header
  // naming the journal): a journal past its compaction threshold is
  // compacted on a thread of its own, started by the next create, destroy
  // or flush, off the controller's path to ready.
  // Errors: those of create(); kIo when the directory or journal cannot be
  // read or written; kInvalidValue for a journal of another build.
  static Result<std::unique_ptr<SimEswitch>> open(model::HwProfile profile, std::uint16_t vf_count,
                                              const std::string& device_dir);
  static Result<std::unique_ptr<SimEswitch>> open(model::HwProfile profile, std::uint16_t vf_count,
                                              const std::string& device_dir, PersistOptions options);
  // Waits for a running compaction.
  ~SimEswitch() override;

  // What the device in `device_dir` holds, read without touching it (the
  // controller may be running). Errors: kIo, kInvalidValue as open().
  static Result<std::vector<InstalledFlow>> readDevice(const std::string& device_dir);

  // --- FlowBackend (errors as documented in flow_backend.h) ---
  const flowrules::FlowBackendCapabilities& capabilities() const override { return caps_; }
  std::vector<flowrules::HeldRule> installed() const override;
  Status validate(const FlowRule& rule) override;
  Result<FlowHandle> create(const FlowRule& rule) override;
  Status destroy(FlowHandle handle) override;
  Result<FlowCounters> query(FlowHandle handle) override;
  Status flush() override;

  // --- fault injection ---
  // The n-th device operation from now fails with `error` (n = 1: the next
  // one). validate, create, destroy, query and flush each count as one.
  void failNthOperation(std::uint64_t n, Error error);
  // From now on, validate and create of every rule with an action of `type`
  // fail with `code`, naming that action.
  void failAction(model::ActionType type, ErrorCode code = ErrorCode::kUnsupported);
  // From now on, create (but not validate) of every rule with an action of
  // `type` fails with `code`, naming that action: a device that accepts a
  // rule at validate and refuses it when it programs it (mlx5 allocates some
  // resources, such as encap contexts, only at create). nicoffload-hwtest's
  // mis-configured runs use it.
  void failActionOnCreate(model::ActionType type, ErrorCode code = ErrorCode::kUnsupported);
  // The tables are full: validate and create answer kTableFull; the rules in
  // place stay and still match.
  void setFull(bool full) { full_ = full; }
  // Ends every injected fault.
  void clearFaults();

  // --- packets ---
  // Sends `packet` into the switch from `ingress` and returns where it went.
  // Errors: kInvalidValue for a VF the NIC does not have; kInternal when the
  // rules jump in a loop.
  Result<Delivery> evaluate(const Packet& packet, PortRef ingress);

  // --- inspection ---
  std::size_t size() const { return flows_.size(); }
  std::size_t groupSize(std::uint32_t group) const;
  std::vector<InstalledFlow> flows() const;  // in creation order
  const InstalledFlow* find(FlowHandle handle) const;
  std::uint64_t operations() const { return operations_; }
  // Device persistence: compactions completed (and failed: the journal then
  // keeps every record, and the next try waits for as many dead records
  // again), and whether one is running.
  std::uint64_t compactions() const { return compactions_; }
  std::uint64_t compactionFailures() const { return compaction_failures_; }
  bool compacting() const { return compacting_.load(std::memory_order_acquire); }
  // Waits for the running compaction, if any, and counts its outcome.
  void waitForCompaction();
  std::uint16_t vfCount() const { return vf_count_; }
  const model::HwProfile& profile() const { return profile_; }

 private:
  SimEswitch(model::HwProfile profile, std::uint16_t vf_count);
  void journal(std::uint8_t type, const InstalledFlow* flow, FlowHandle handle);

  Status tick();  // counts one operation; the injected n-th failure fires here
  Status check(const FlowRule& rule) const;
  Status checkRoom(const FlowRule& rule) const;
  Status checkPort(const FlowRule& rule, PortRef port, bool is_item, std::size_t index) const;

  model::HwProfile profile_;
  std::uint16_t vf_count_;
  flowrules::FlowBackendCapabilities caps_;

  std::map<FlowHandle, InstalledFlow> flows_;
  // Per group, the handles in creation order (handles only grow).
  std::map<std::uint32_t, std::set<FlowHandle>> by_group_;
  FlowHandle next_handle_ = 1;
  std::uint64_t next_sequence_ = 0;

  void maybeCompact();
  void startCompaction();

  std::unique_ptr<Journal> journal_;  // device persistence; null = in memory only
  PersistOptions persist_;
  // Records in the snapshot and journal that no longer describe a live rule.
  std::uint64_t dead_records_ = 0;
  // No compaction starts before dead_records_ passes this (after a failure).
  std::uint64_t compact_floor_ = 0;
  // The compaction thread: it writes a snapshot of the live rules as they
  // were at the journal's rotate() and deletes the older segments (the only
  // files journal.h lets a second thread touch); this thread keeps
  // appending to the new segment meanwhile.
  std::thread compactor_;
  std::atomic<bool> compacting_{false};
  bool compaction_ok_ = false;            // written by the thread before compacting_ drops
  std::uint64_t compaction_dead_ = 0;     // the dead records it removes
  std::uint64_t compactions_ = 0;
  std::uint64_t compaction_failures_ = 0;

  std::uint64_t operations_ = 0;
  std::optional<std::uint64_t> fail_at_;  // operation number that fails
  Error fail_error_;
  std::map<model::ActionType, ErrorCode> failing_actions_;
  std::map<model::ActionType, ErrorCode> failing_creates_;
  bool full_ = false;
};

}  // namespace nicoffload::simnic
