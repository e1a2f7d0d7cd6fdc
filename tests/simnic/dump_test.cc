// nicoffload-simnic dump: the rules a persistent simulated NIC holds, read
// back from its device directory; with --verbose each rule's match and
// actions (IR and testpmd), as the device holds them.
#include "nicoffload/simnic/dump.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "nicoffload/flowrules/planner.h"
#include "nicoffload/flowrules/render.h"
#include "support/sim_support.h"

namespace nicoffload::simnic {
namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/nfo-simnic-dump-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

TEST(SimnicDump, VerboseShowsEachRulesMatchAndActions) {
  TempDir dir;
  const auto profile = test::loadProfile("sim");
  const auto plan = test::planOrThrow(test::hv1Intent(), profile);
  {
    auto nic = test::unwrap(SimEswitch::open(profile, 16, dir.path), "sim eswitch");
    for (const auto& r : plan.rules) {
      if (r.placement == flowrules::Placement::kHw) {
        ASSERT_TRUE(nic->create(r).ok());
      }
    }
  }
  const auto flows = test::unwrap(SimEswitch::readDevice(dir.path), "read device");
  ASSERT_GT(flows.size(), 10u);

  const auto brief = deviceRulesJson(flows, false);
  ASSERT_EQ(brief["rules"].size(), flows.size());
  EXPECT_FALSE(brief["rules"][0].contains("pattern"));
  EXPECT_FALSE(brief["rules"][0].contains("testpmd"));

  const auto verbose = deviceRulesJson(flows, true);
  ASSERT_EQ(verbose["rules"].size(), flows.size());
  bool saw_encap = false;
  for (std::size_t i = 0; i < flows.size(); ++i) {
    const auto& j = verbose["rules"][i];
    const auto& rule = flows[i].rule;
    SCOPED_TRACE(j.dump());
    EXPECT_EQ(j["handle"], flows[i].handle);
    ASSERT_TRUE(j["pattern"].is_array());
    ASSERT_TRUE(j["actions"].is_array());
    EXPECT_EQ(j["pattern"].size(), rule.pattern.size());
    EXPECT_EQ(j["actions"].size(), rule.actions.size());
    // The testpmd lines are the rule's own, as nicoffloadctl renders them.
    EXPECT_EQ(j["testpmd"], flowrules::renderTestpmd(rule, flowrules::PortNumbering{}));
    const std::string flow_line = j["testpmd"].back();
    EXPECT_EQ(flow_line.rfind("flow create 0 ", 0), 0u) << flow_line;
    EXPECT_NE(flow_line.find(" pattern "), std::string::npos);
    EXPECT_NE(flow_line.find(" actions "), std::string::npos);
    saw_encap = saw_encap || flow_line.find("vxlan_encap") != std::string::npos;
  }
  EXPECT_TRUE(saw_encap) << "the VXLAN egress rules show their encap";
}

}  // namespace
}  // namespace nicoffload::simnic
