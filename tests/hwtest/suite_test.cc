// The hardware validation suite against the simulated NIC: the shipped
// profiles on a sim that is what they claim (everything agrees), and on a sim
// deliberately mis-configured (a capability removed, a table shrunk, an
// action refused only at create time, a capability the profile denies): the
// suite must report exactly those mismatches, propose the corrections, and
// the corrected profile must agree with that device.
#include "nicoffload/hwtest/suite.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <pugixml.hpp>
#include <set>

#include "nicoffload/hwtest/busy.h"
#include "nicoffload/offload/sim_pf.h"
#include "nicoffload/simnic/sim_eswitch.h"
#include "support/test_support.h"

namespace nicoffload::hwtest {
namespace {

using test::loadProfile;
using test::unwrap;

// A temporary directory for the simulated PF, removed at the end.
struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/nfo-hwtest-unit-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

struct Sim {
  std::unique_ptr<simnic::SimEswitch> eswitch;
  TempDir dir;
  std::unique_ptr<offload::SimPf> pf;
  Devices devices;

  explicit Sim(const model::HwProfile& real, std::uint16_t vfs = 4) {
    eswitch = unwrap(simnic::SimEswitch::create(real, vfs), "sim eswitch");
    offload::SimPfOptions o;
    o.dir = dir.path;
    o.profile = real;
    pf = unwrap(offload::SimPf::open(o), "sim pf");
    devices.flow = eswitch.get();
    devices.nic = pf.get();
  }
};

SuiteOptions quick() {
  SuiteOptions o;
  o.fill_limit = 4096;
  o.rate_rules = 200;
  return o;
}

// name -> outcome of every case that did not pass.
std::map<std::string, Outcome> notPassed(const SuiteReport& r, bool with_skipped = false) {
  std::map<std::string, Outcome> out;
  for (const auto& c : r.cases)
    if (c.outcome != Outcome::kPass && (with_skipped || c.outcome != Outcome::kSkipped))
      out[c.name] = c.outcome;
  return out;
}

const CaseReport& caseNamed(const SuiteReport& r, const std::string& name) {
  for (const auto& c : r.cases)
    if (c.name == name) return c;
  throw std::runtime_error("no case " + name);
}

TEST(HwtestSuite, ARunWithNoCaseIsNotAnAgreement) {
  // --case matching nothing (or only skipped cases) checked nothing: that is
  // its own exit status, never "every case agrees".
  const auto profile = loadProfile("sim");
  Sim sim(profile);
  SuiteOptions o = quick();
  o.filter = std::regex("^no-such-case$");
  const auto none = runSuite(profile, sim.devices, o);
  EXPECT_TRUE(none.cases.empty());
  EXPECT_EQ(exitCode(none), kExitNothingRan);
  EXPECT_NE(humanSummary(none).find("NO CASE RAN"), std::string::npos) << humanSummary(none);
  EXPECT_EQ(toJson(none)["exit_code"], kExitNothingRan);

  SuiteReport skipped;
  CaseReport c;
  c.name = "vdpa/kernel";
  c.outcome = Outcome::kSkipped;
  skipped.cases.push_back(c);
  EXPECT_EQ(exitCode(skipped), kExitNothingRan);
  c.name = "action/drop";
  c.outcome = Outcome::kPass;
  skipped.cases.push_back(c);
  EXPECT_EQ(exitCode(skipped), kExitAgree);
  SuiteReport stopped;
  stopped.interrupted = true;
  EXPECT_EQ(exitCode(stopped), kExitInterrupted)
      << "interrupted before the first case: 5, not 8";
}

TEST(HwtestSuite, EveryShippedProfileAgreesWithASimThatIsWhatItClaims) {
  for (const auto& name : test::shippedProfiles()) {
    SCOPED_TRACE(name);
    const auto profile = loadProfile(name);
    Sim sim(profile);
    const auto report = runSuite(profile, sim.devices, quick());
    EXPECT_EQ(notPassed(report), (std::map<std::string, Outcome>{}));
    EXPECT_EQ(exitCode(report), kExitAgree);
    EXPECT_TRUE(report.cleanup_errors.empty());
    EXPECT_EQ(sim.eswitch->size(), 0u) << "every rule the suite made is destroyed";
    EXPECT_TRUE(sim.pf->vdpaDevs().empty());
    // The cases that ran for real, not skipped.
    for (const char* c :
         {"item/eth", "item/vxlan", "action/vxlan_encap", "action/count", "class/local-delivery",
          "class/arp-trap", "table/groups", "nic/switchdev", "nic/vf-limit"})
      EXPECT_EQ(caseNamed(report, c).outcome, Outcome::kPass)
          << c << ": " << caseNamed(report, c).summary;
    // Profiles without vDPA: creation refused, as claimed (a pass, not a skip).
    EXPECT_EQ(caseNamed(report, "vdpa/create").outcome, Outcome::kPass)
        << caseNamed(report, "vdpa/create").summary;
    // Skipped with their reason, never passed.
    const auto& arp = caseNamed(report, "item/arp_eth_ipv4");
    EXPECT_EQ(arp.outcome, Outcome::kSkipped);
    EXPECT_NE(arp.summary.find("no arp_eth_ipv4 item"), std::string::npos);
    const auto& fill = caseNamed(report, "table/group0-fill");
    EXPECT_EQ(fill.outcome, Outcome::kSkipped);
    EXPECT_NE(fill.summary.find("--fill-limit 4096"), std::string::npos) << fill.summary;
    bool has_template = false;
    for (const auto& c : report.cases) has_template = has_template || c.name == "rate/template-api";
    EXPECT_EQ(has_template, profile.hw_steering);
    if (profile.hw_steering) {
      EXPECT_EQ(caseNamed(report, "rate/template-api").outcome, Outcome::kSkipped);
    }
    // Rates are measured and positive.
    const auto& rate = caseNamed(report, "rate/local-delivery");
    ASSERT_EQ(rate.outcome, Outcome::kPass) << rate.summary;
    EXPECT_EQ(rate.figures["rules"], 200);
    EXPECT_GT(rate.figures["insert_rules_per_s"].get<double>(), 0);
    EXPECT_GT(rate.figures["delete_rules_per_s"].get<double>(), 0);
  }
}

model::HwProfile smallTables(model::HwProfile p, std::uint32_t root, std::uint32_t per_group) {
  p.root_table_rules = root;
  p.rules_per_group = per_group;
  return p;
}

TEST(HwtestSuite, TablesAreFilledToTheirSizeAndTheNextInsertIsRefused) {
  const auto profile = smallTables(loadProfile("sim"), 300, 200);
  Sim sim(profile);
  auto o = quick();
  o.filter = std::regex("^table/");
  const auto report = runSuite(profile, sim.devices, o);
  ASSERT_EQ(report.cases.size(), 3u);
  for (const auto& c : report.cases)
    EXPECT_EQ(c.outcome, Outcome::kPass) << c.name << ": " << c.summary;
  EXPECT_EQ(caseNamed(report, "table/group0-fill").figures["filled"], 300);
  EXPECT_EQ(caseNamed(report, "table/group1-fill").figures["filled"], 200);
  EXPECT_NE(caseNamed(report, "table/group0-fill").device_message.find("is full"),
            std::string::npos);
  EXPECT_EQ(sim.eswitch->size(), 0u);
}

TEST(HwtestSuite, MisconfiguredSimReportsExactlyTheMismatches) {
  // The profile under test: the sim profile with small tables.
  const auto tested = smallTables(loadProfile("sim"), 300, 300);
  // What the device really is: no vxlan_encap, a root table of 250.
  auto real = smallTables(tested, 250, 300);
  real.actions[static_cast<std::size_t>(model::ActionType::kVxlanEncap)].supported = false;
  Sim sim(real);
  // And it refuses dec_ttl only when a rule is created.
  sim.eswitch->failActionOnCreate(model::ActionType::kDecTtl);

  const auto report = runSuite(tested, sim.devices, quick());
  // Exactly these: the two actions (vxlan_encap with IPv4 and IPv6 outer
  // headers), the root table, and the planner's rule classes (and their
  // rates) that use vxlan_encap or dec_ttl.
  const std::map<std::string, Outcome> expected = {
      {"action/vxlan_encap", Outcome::kFail},      {"action/dec_ttl", Outcome::kFail},
      {"action/vxlan_encap-ipv6", Outcome::kFail}, {"table/group0-fill", Outcome::kFail},
      {"class/local-delivery", Outcome::kFail},    {"class/routed-egress", Outcome::kFail},
      {"class/vxlan-egress", Outcome::kFail},      {"rate/local-delivery", Outcome::kFail},
      {"rate/routed-egress", Outcome::kFail},      {"rate/vxlan-egress", Outcome::kFail},
  };
  EXPECT_EQ(notPassed(report), expected);
  EXPECT_EQ(exitCode(report), kExitDisagree);
  EXPECT_EQ(sim.eswitch->size(), 0u);

  // Each with the device's own message and the right correction.
  const auto& encap = caseNamed(report, "action/vxlan_encap");
  EXPECT_NE(encap.device_message.find("has no action vxlan_encap"), std::string::npos)
      << encap.device_message;
  EXPECT_NE(encap.summary.find("at validate"), std::string::npos);
  ASSERT_EQ(encap.corrections.size(), 1u);
  EXPECT_EQ(encap.corrections[0].path, "/actions/vxlan_encap/supported");
  EXPECT_EQ(encap.corrections[0].to, false);
  const auto& ttl = caseNamed(report, "action/dec_ttl");
  EXPECT_NE(ttl.summary.find("create refused"), std::string::npos) << ttl.summary;
  EXPECT_NE(ttl.device_message.find("validate accepts it"), std::string::npos)
      << ttl.device_message;
  const auto& fill = caseNamed(report, "table/group0-fill");
  EXPECT_EQ(fill.figures["accepted"], 250);
  ASSERT_EQ(fill.corrections.size(), 1u);
  EXPECT_EQ(fill.corrections[0].path, "/tables/root_table_rules");
  EXPECT_EQ(fill.corrections[0].to, 250);

  // The corrected profile passes the schema, quotes the device, and agrees
  // with the same device.
  auto doc = test::profileJson("sim");
  doc["tables"]["root_table_rules"] = 300;
  doc["tables"]["rules_per_group"] = 300;
  const auto fixed_doc = correctedProfile(doc, report);
  EXPECT_EQ(fixed_doc["actions"]["vxlan_encap"]["supported"], false);
  EXPECT_EQ(fixed_doc["actions"]["dec_ttl"]["supported"], false);
  EXPECT_EQ(fixed_doc["tables"]["root_table_rules"], 250);
  EXPECT_NE(
      fixed_doc["actions"]["dec_ttl"]["source"].get<std::string>().find("nicoffload-hwtest: "),
      std::string::npos);
  EXPECT_TRUE(fixed_doc["sources"].contains("nicoffload-hwtest"));
  const auto fixed = unwrap(model::parseHwProfile(fixed_doc, "sim"), "corrected profile");
  Sim again(real);
  again.eswitch->failActionOnCreate(model::ActionType::kDecTtl);
  const auto second = runSuite(fixed, again.devices, quick());
  EXPECT_EQ(notPassed(second), (std::map<std::string, Outcome>{}));
  EXPECT_EQ(exitCode(second), kExitAgree);
}

TEST(HwtestSuite, ADeviceThatDoesMoreThanClaimedIsAFinding) {
  const auto real = loadProfile("sim");
  auto tested = real;
  tested.actions[static_cast<std::size_t>(model::ActionType::kCount)].supported = false;
  tested.vdpa_kernel = tested.vdpa_dpdk = false;
  Sim sim(real);
  const auto report = runSuite(tested, sim.devices, quick());
  // Without COUNT in the profile the planner emits its rules uncounted, in
  // hw: every class still passes; the device counting anyway is the finding.
  EXPECT_EQ(notPassed(report), (std::map<std::string, Outcome>{
                                   {"action/count", Outcome::kFinding},
                                   {"vdpa/create", Outcome::kFinding}}));
  EXPECT_EQ(caseNamed(report, "class/arp-trap").outcome, Outcome::kPass);
  EXPECT_EQ(caseNamed(report, "rate/arp-trap").outcome, Outcome::kPass);
  const auto& c = caseNamed(report, "action/count");
  EXPECT_NE(c.summary.find("too pessimistic"), std::string::npos);
  ASSERT_EQ(c.corrections.size(), 1u);
  EXPECT_EQ(c.corrections[0].to, true);
  EXPECT_EQ(exitCode(report), kExitDisagree);
  EXPECT_EQ(sim.eswitch->size(), 0u);
}

// Sets the stop flag (as SIGINT does) after `after` creates.
class StoppingBackend final : public flowrules::FlowBackend {
 public:
  StoppingBackend(flowrules::FlowBackend& inner, std::atomic<bool>& stop, int after)
      : inner_(inner), stop_(stop), left_(after) {}
  std::vector<flowrules::HeldRule> installed() const override { return inner_.installed(); }
  const flowrules::FlowBackendCapabilities& capabilities() const override {
    return inner_.capabilities();
  }
  Status validate(const flowrules::FlowRule& r) override { return inner_.validate(r); }
  Result<flowrules::FlowHandle> create(const flowrules::FlowRule& r) override {
    if (--left_ == 0) stop_.store(true);
    return inner_.create(r);
  }
  Status destroy(flowrules::FlowHandle h) override { return inner_.destroy(h); }
  Result<flowrules::FlowCounters> query(flowrules::FlowHandle h) override {
    return inner_.query(h);
  }
  Status flush() override { return inner_.flush(); }

 private:
  flowrules::FlowBackend& inner_;
  std::atomic<bool>& stop_;
  int left_;
};

TEST(HwtestSuite, StopFlagStopsInsideALongCaseAndRemovesEverything) {
  const auto profile = smallTables(loadProfile("sim"), 100000, 100000);
  Sim sim(profile);
  std::atomic<bool> stop{false};
  StoppingBackend stopping(*sim.eswitch, stop, 5000);
  sim.devices.flow = &stopping;
  auto o = quick();
  o.fill_limit = 1u << 20;
  o.stop = &stop;
  const auto report = runSuite(profile, sim.devices, o);
  EXPECT_TRUE(report.interrupted);
  EXPECT_EQ(exitCode(report), kExitInterrupted);
  EXPECT_EQ(sim.eswitch->size(), 0u) << "the rules of the interrupted fill are removed";
  ASSERT_FALSE(report.cases.empty());
  EXPECT_EQ(report.cases.back().name, "table/group0-fill");
  EXPECT_EQ(report.cases.back().outcome, Outcome::kSkipped);
  EXPECT_NE(report.cases.back().summary.find("interrupted"), std::string::npos);
}

TEST(HwtestSuite, JunitXmlIsWellFormedAndCountsSkipsApart) {
  const auto real = loadProfile("connectx-5");
  auto tested = real;
  tested.actions[static_cast<std::size_t>(model::ActionType::kCount)].supported = false;
  Sim sim(real);
  const auto report = runSuite(tested, sim.devices, quick());
  const std::string xml = toJunitXml(report);
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(xml.c_str())) << xml;
  const auto suite = doc.child("testsuites").child("testsuite");
  ASSERT_TRUE(suite);
  EXPECT_EQ(suite.attribute("tests").as_ullong(), report.cases.size());
  EXPECT_EQ(suite.attribute("skipped").as_ullong(), report.count(Outcome::kSkipped));
  const std::size_t disagreements = report.count(Outcome::kFail) + report.count(Outcome::kFinding);
  EXPECT_EQ(disagreements, 1u);  // action/count (see the finding test)
  EXPECT_EQ(suite.attribute("failures").as_ullong(), disagreements);
  std::size_t cases = 0, skipped = 0, failures = 0;
  for (auto tc : suite.children("testcase")) {
    ++cases;
    skipped += static_cast<bool>(tc.child("skipped"));
    failures += static_cast<bool>(tc.child("failure"));
  }
  EXPECT_EQ(cases, report.cases.size());
  EXPECT_EQ(skipped, report.count(Outcome::kSkipped));
  EXPECT_GT(skipped, 0u);
  EXPECT_EQ(failures, disagreements);
  const auto json = toJson(report);
  EXPECT_EQ(json["counts"]["finding"], 1);
  EXPECT_EQ(json["exit_code"], kExitDisagree);
  EXPECT_EQ(json["cases"].size(), report.cases.size());
}

TEST(HwtestSuite, CaseFilterAndList) {
  const auto profile = loadProfile("connectx-6dx");
  SuiteOptions o = quick();
  o.filter = std::regex("^item/");
  const auto names = caseNames(profile, o);
  EXPECT_EQ(names.size(), model::kItemTypeCount);
  for (const auto& n : names) EXPECT_EQ(n.rfind("item/", 0), 0u);
  Sim sim(profile);
  const auto report = runSuite(profile, sim.devices, o);
  EXPECT_EQ(report.cases.size(), model::kItemTypeCount);
  o.filter.reset();
  const auto all = caseNames(profile, o);
  EXPECT_NE(std::find(all.begin(), all.end(), "rate/template-api"), all.end());
  EXPECT_NE(std::find(all.begin(), all.end(), "class/vxlan-ingress"), all.end());
}

}  // namespace
}  // namespace nicoffload::hwtest

namespace nicoffload::hwtest {
namespace {

// A PF's sysfs as Linux lays it out: bus/pci/devices/<addr> -> the device
// directory; virtfnN -> the VF's directory; the VF's driver -> the driver.
TEST(HwtestBusy, AVfOnVfioOrBackingVdpaMakesThePfBusy) {
  TempDir t;
  namespace fs = std::filesystem;
  const fs::path root = t.path;
  const fs::path devices = root / "devices/pci0000:00";
  fs::create_directories(root / "bus/pci/devices");
  fs::create_directories(root / "bus/pci/drivers/mlx5_core");
  fs::create_directories(root / "bus/pci/drivers/vfio-pci");
  for (const char* d : {"0000:03:00.0", "0000:03:00.2", "0000:03:00.3", "0000:03:00.4"}) {
    fs::create_directories(devices / d);
    fs::create_directory_symlink(devices / d, root / "bus/pci/devices" / d);
  }
  fs::create_directory_symlink(devices / "0000:03:00.2", devices / "0000:03:00.0/virtfn0");
  fs::create_directory_symlink(devices / "0000:03:00.3", devices / "0000:03:00.0/virtfn1");
  fs::create_directory_symlink(devices / "0000:03:00.4", devices / "0000:03:00.0/virtfn2");
  fs::create_directory_symlink(root / "bus/pci/drivers/mlx5_core", devices / "0000:03:00.2/driver");
  fs::create_directory_symlink(root / "bus/pci/drivers/mlx5_core", devices / "0000:03:00.3/driver");
  // VF 2 unbound: idle.
  EXPECT_TRUE(pfBusyReasons(t.path, "0000:03:00.0").empty());

  fs::remove(devices / "0000:03:00.3/driver");
  fs::create_directory_symlink(root / "bus/pci/drivers/vfio-pci", devices / "0000:03:00.3/driver");
  fs::create_directories(devices / "0000:03:00.2/vdpa0");
  const auto busy = pfBusyReasons(t.path, "0000:03:00.0");
  ASSERT_EQ(busy.size(), 2u);
  std::set<std::string> got(busy.begin(), busy.end());
  EXPECT_TRUE(got.count("VF 0000:03:00.3 is bound to vfio-pci (passed through to a VM?)"))
      << busy[0];
  EXPECT_TRUE(got.count("VF 0000:03:00.2 backs vDPA device vdpa0")) << busy[1];
  EXPECT_TRUE(pfBusyReasons(t.path, "0000:09:00.0").empty());  // no such PF
}

}  // namespace
}  // namespace nicoffload::hwtest
