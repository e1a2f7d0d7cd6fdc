// The hardware validation suite (nicoffload-hwtest): the claims of a hardware
// profile turned into cases and put to a device through the FlowBackend seam
// (the simulated eswitch, or rte_flow on the PF), and, where a NIC backend is
// given, the SR-IOV / switchdev / vDPA claims through it.
//
// Each case says what the profile claims, what the device answered in its own
// words, and whether they agree:
//   pass     the device does what the profile claims (and refuses what it
//            denies)
//   fail     the device refuses or cannot do what the profile claims (the
//            profile is too optimistic), or misbehaves (a rule that cannot be
//            removed, counters that cannot be read)
//   finding  the device does more than the profile claims (the profile is
//            too pessimistic): safe, but hardware goes unused
//   skipped  not run, with the reason (never counted as a pass)
// A disagreement proposes a Correction of the profile file with the device's
// message as its evidence (--write-profile).
#pragma once

#include <atomic>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "nicoffload/flowrules/flow_backend.h"
#include "nicoffload/model/hw_profile.h"

namespace nicoffload::offload {
class SimPf;
}

namespace nicoffload::hwtest {

// Exit status of nicoffload-hwtest (also in its --help and hw-profiles/README.md).
inline constexpr int kExitAgree = 0;     // every case run agrees with the profile (skips allowed)
inline constexpr int kExitDisagree = 1;  // at least one case failed or made a finding
inline constexpr int kExitUsage = 2;     // bad options or a profile that does not load
inline constexpr int kExitCleanup = 3;   // something the suite made could not be removed
inline constexpr int kExitDevice = 4;  // the device could not be opened, or is busy (--allow-busy)
inline constexpr int kExitInterrupted = 5;  // SIGINT/SIGTERM: stopped between cases, cleaned up
inline constexpr int kExitInternal = 6;     // a bug: an exception reached main
inline constexpr int kExitNoDevice = 7;     // --probe: no mlx5 device (or devx unavailable)
// No case ran (--case matched none, or every case was skipped): nothing was
// checked, which must not read as "every case agrees".
inline constexpr int kExitNothingRan = 8;

enum class Outcome : std::uint8_t { kPass, kFail, kFinding, kSkipped };
const char* toString(Outcome o);

// A proposed change of one claim of the profile file.
struct Correction {
  std::string path;         // JSON pointer of the claim, "/actions/vxlan_encap/supported"
  std::string source_path;  // JSON pointer of the source quoting the evidence,
                            // "/actions/vxlan_encap/source"
  nlohmann::json from, to;
  std::string evidence;  // the device's own message
};

struct CaseReport {
  std::string name;   // "action/vxlan_encap", "table/group0-fill", "rate/local-delivery"
  std::string claim;  // what the profile says, in words
  Outcome outcome = Outcome::kSkipped;
  double seconds = 0;          // wall time of the case
  std::string summary;         // the suite's conclusion (for skipped: the reason)
  std::string device_message;  // the device's own words; empty when it said nothing
  nlohmann::json figures = nlohmann::json::object();  // measurements (rates: rules/s)
  std::vector<Correction> corrections;
};

struct SuiteReport {
  std::string profile;  // profile name
  std::string backend;  // "sim", "dpdk"
  std::string device;   // FlowBackendCapabilities::device
  std::vector<CaseReport> cases;
  bool interrupted = false;                 // stopped by the stop flag
  std::vector<std::string> cleanup_errors;  // what could not be removed, one line each
  std::size_t count(Outcome o) const;
};

struct SuiteOptions {
  std::optional<std::regex> filter;  // run only cases whose name matches (std::regex_search)
  // Tables claimed larger than this are not filled (the case is skipped and
  // says so): filling 16 M rules takes minutes even on hardware.
  std::uint64_t fill_limit = 1u << 20;
  std::uint32_t rate_rules = 2000;  // rules inserted and deleted per rate case
  std::uint16_t vf_count = 4;       // VFs the flow backend's rules may name (vf0..)
  // Checked between cases and inside long ones: when set, the suite stops,
  // removes what it made and returns with SuiteReport::interrupted.
  const std::atomic<bool>* stop = nullptr;
};

// What the suite drives. `flow` is required; `nic` (a SimPf: SR-IOV,
// switchdev, vDPA) only where such a backend exists, else the NIC and vDPA
// cases are skipped with `nic_unavailable` as the reason.
struct Devices {
  flowrules::FlowBackend* flow = nullptr;
  offload::SimPf* nic = nullptr;
  std::string nic_unavailable = "no NIC / vDPA backend given";
};

// The names of the cases runSuite would run for `profile`, in order, filter
// applied (--list).
std::vector<std::string> caseNames(const model::HwProfile& profile, const SuiteOptions& options);

// Runs the cases. Destroys every rule it created (by handle: the device's
// other rules are never touched) and every vDPA device it made, also when
// stopped. Never throws for device answers: they are case results.
SuiteReport runSuite(const model::HwProfile& profile, Devices& devices,
                     const SuiteOptions& options);

// The exit status for a report (kExitAgree ... kExitInterrupted, or
// kExitNothingRan when no case passed, failed or made a finding).
int exitCode(const SuiteReport& report);

// Renderings.
std::string humanSummary(const SuiteReport& report);
nlohmann::json toJson(const SuiteReport& report);
std::string toJunitXml(const SuiteReport& report);

// The profile document with every correction of the report applied, each
// changed claim's source quoting the device (source key "nicoffload-hwtest",
// added to "sources"). `device` names what was tested, for that source.
nlohmann::json correctedProfile(nlohmann::json profile_doc, const SuiteReport& report);

}  // namespace nicoffload::hwtest
