// The Reconciler on its own, over real parts: an Admission, a FailureBook,
// VdpaDevices (no vDPA backend), the simulated NIC in memory and the
// in-memory software path, with an injected clock. A touched pass installs
// exactly what the planner plans for the owners a batch touched; a full pass
// reinstalls what vanished from the device and removes what nobody asked
// for; a failed kernel object is retried by a retry pass, with its own
// backoff.
#include "nicoffload/daemon/reconciler.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "port_json.h"
#include "reconciler_parts.h"

namespace nicoffload::daemon {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = Reconciler::Clock;

json port(int i) { return test_support::portJson(i); }

model::PortKey keyOf(int i) { return {port(i)["vm"].get<std::string>(), 0}; }

struct Fixture : test_support::ReconcilerParts {
  // One batch as the controller runs it: admitted, then the touched pass.
  Reconciler::PassResult batch(const std::function<void()>& admit) {
    admission->beginBatch();
    admit();
    auto pass = reconciler->reconcileTouched();
    reconciler->scheduleRetry(pass, false);
    admission->log().undo.clear();
    return pass;
  }
  void addPort(int i) {
    auto r = admission->portAdd({{"port", port(i)}});
    ASSERT_TRUE(r.ok()) << r.error().describe();
  }

  // The ids of the rules the device holds for `owner`.
  std::set<flowrules::RuleId> deviceRules(flowrules::OwnerId owner) const {
    std::set<flowrules::RuleId> out;
    for (const auto& f : nic->flows())
      if (f.rule.owner == owner) out.insert(f.rule.id);
    return out;
  }
  std::set<flowrules::RuleId> plannedRules(int i) const {
    std::set<flowrules::RuleId> out;
    auto rules = reconciler->planner()->portRules(*admission->findPort(keyOf(i)));
    EXPECT_TRUE(rules.ok());
    for (const auto& r : *rules) out.insert(r.id);
    return out;
  }
};

TEST(Reconciler, ATouchedPassInstallsExactlyThePlannedRules) {
  Fixture f;
  const auto before = f.nic->size();
  const auto passes = f.counters.reconcile_passes;
  f.batch([&] { f.addPort(1); });
  const auto planned = f.plannedRules(1);
  ASSERT_FALSE(planned.empty());
  EXPECT_EQ(f.deviceRules(flowrules::portOwner(keyOf(1))), planned);
  EXPECT_EQ(f.nic->size(), before + planned.size()) << "nothing else was touched";
  EXPECT_TRUE(f.sw.hasRoute("10.0.1.1/32", "rep1"));
  EXPECT_EQ(f.counters.reconcile_passes, passes + 1);
  EXPECT_EQ(f.counters.full_passes, 1u) << "only the first pass was a full one";

  // A second port: its rules only; the first port's stay as they are.
  f.batch([&] { f.addPort(2); });
  EXPECT_EQ(f.deviceRules(flowrules::portOwner(keyOf(2))), f.plannedRules(2));
  EXPECT_EQ(f.deviceRules(flowrules::portOwner(keyOf(1))), planned);
  EXPECT_EQ(f.nic->size(), before + planned.size() + f.plannedRules(2).size());

  // Removed: its rules and route go, nothing else.
  f.batch([&] { ASSERT_TRUE(f.admission->portRemove({{"vm", port(1)["vm"]}, {"nic", 0}}).ok()); });
  EXPECT_TRUE(f.deviceRules(flowrules::portOwner(keyOf(1))).empty());
  EXPECT_FALSE(f.sw.hasRoute("10.0.1.1/32", "rep1"));
  EXPECT_EQ(f.nic->size(), before + f.plannedRules(2).size());
}

TEST(Reconciler, AFullPassReinstallsWhatVanishedAndRemovesWhatNobodyAskedFor) {
  Fixture f;
  f.batch([&] {
    f.addPort(1);
    f.addPort(2);
  });
  const auto planned1 = f.plannedRules(1);
  const auto planned2 = f.plannedRules(2);
  const auto size = f.nic->size();

  // A rule of port 1 vanishes from the device (a port restart, say).
  flowrules::FlowHandle gone = flowrules::kNoHandle;
  flowrules::RuleId gone_id = 0;
  for (const auto& fl : f.nic->flows())
    if (fl.rule.owner == flowrules::portOwner(keyOf(1))) {
      gone = fl.handle;
      gone_id = fl.rule.id;
    }
  ASSERT_NE(gone, flowrules::kNoHandle);
  ASSERT_TRUE(f.nic->destroy(gone).ok());
  // Port 2 leaves the intent without its pass (as a pass cut short would):
  // its rules and route are now held for nobody.
  f.admission->beginBatch();
  ASSERT_TRUE(f.admission->portRemove({{"vm", port(2)["vm"]}, {"nic", 0}}).ok());
  f.admission->log().undo.clear();
  f.admission->beginBatch();
  ASSERT_TRUE(f.sw.hasRoute("10.0.2.1/32", "rep2"));

  const auto pass = f.reconciler->reconcile(true);
  EXPECT_EQ(pass.failures, 0u);
  EXPECT_EQ(f.deviceRules(flowrules::portOwner(keyOf(1))), planned1);
  EXPECT_EQ(f.deviceRules(flowrules::portOwner(keyOf(1))).count(gone_id), 1u) << "reinstalled";
  EXPECT_TRUE(f.deviceRules(flowrules::portOwner(keyOf(2))).empty()) << "nobody asked for them";
  EXPECT_EQ(f.nic->size(), size - planned2.size());
  EXPECT_TRUE(f.sw.hasRoute("10.0.1.1/32", "rep1"));
  EXPECT_FALSE(f.sw.hasRoute("10.0.2.1/32", "rep2")) << "the kernel's copy goes too";
  EXPECT_NE(f.reconciler->lastPassSummary().find("full pass"), std::string::npos);
}

TEST(Reconciler, AFailedObjectIsRetriedWithItsOwnBackoff) {
  Fixture f;
  const auto t0 = f.now;
  // The kernel refuses the first of port 1's objects.
  f.sw.failNext("rep1", 1);
  const auto pass = f.batch([&] { f.addPort(1); });
  EXPECT_EQ(pass.failures, 1u);
  EXPECT_EQ(pass.owned, 1u) << "kept under its object";
  ASSERT_EQ(f.failures->size(), 1u);
  const auto object = f.failures->entries().begin()->first;
  EXPECT_EQ(f.failures->entries().begin()->second.kind, FailureBook::Kind::kKernel);
  EXPECT_EQ(f.reconciler->nextPass(), t0 + milliseconds(100)) << "retry_min";

  // Not due yet: nothing runs.
  f.now = t0 + milliseconds(99);
  f.reconciler->step(f.now);
  EXPECT_EQ(f.counters.retries, 0u);

  // Due: a retry pass (a full pass) tries it again; it fails again and
  // backs off, doubled from now.
  f.sw.failNext(object, 1);
  f.now = t0 + milliseconds(100);
  f.reconciler->step(f.now);
  EXPECT_EQ(f.counters.retries, 1u);
  EXPECT_FALSE(f.reconciler->fullPassRunning());
  ASSERT_NE(f.failures->find(object), nullptr);
  EXPECT_EQ(f.failures->find(object)->attempts, 2u);
  EXPECT_EQ(f.reconciler->nextPass(), t0 + milliseconds(300));

  f.now = t0 + milliseconds(300);
  f.reconciler->step(f.now);
  EXPECT_EQ(f.counters.retries, 2u);
  EXPECT_EQ(f.failures->size(), 0u) << "in place now: forgotten";
  EXPECT_TRUE(f.sw.hasRoute("10.0.1.1/32", "rep1"));
  EXPECT_EQ(f.reconciler->nextPass(), t0 + milliseconds(60000)) << "only the periodic pass is due";
}

}  // namespace
}  // namespace nicoffload::daemon
