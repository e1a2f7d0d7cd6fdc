// Golden fixtures: the whole desired state (rules with placement, reasons and
// testpmd lines, software path, VFs, vDPA devices) of three reference setups,
// compared with tests/golden/<name>.json.
//
// To regenerate after an intended change:
//   NICOFFLOAD_UPDATE_GOLDEN=1 ./nicoffload_flowrules_tests --gtest_filter='Golden*'
// then read the diff of tests/golden/ before committing it.
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "nicoffload/flowrules/render.h"
#include "support/test_support.h"

namespace nicoffload {
namespace {

using nlohmann::json;

struct GoldenCase {
  const char* name;     // tests/golden/<name>.json
  const char* profile;  // hw-profiles/<profile>.json
  const char* host;     // paths relative to the source tree
  const char* ports;
};

const GoldenCase kGolden[] = {
    // Everything in hardware.
    {"plan-sim-vxlan", "sim", "examples/host.json", "examples/ports.json"},
    // VXLAN on UDP 8472: ConnectX-5 does 4789 only, so encap/decap go to sw;
    // no vDPA on ConnectX-5 (the host says backends.vdpa "none").
    {"plan-connectx-5-vxlan-8472", "connectx-5", "tests/golden/host-cx5-8472.json",
     "examples/ports.json"},
    // Routed underlay; one remote's next hop has no MAC, so its egress is sw.
    {"plan-connectx-6dx-routed", "connectx-6dx", "examples/host-routed.json",
     "examples/ports-routed.json"},
};

bool updating() {
  const char* v = std::getenv("NICOFFLOAD_UPDATE_GOLDEN");
  return v && std::string(v) == "1";
}

json render(const GoldenCase& c) {
  const model::HwProfile profile = test::loadProfile(c.profile);
  const model::Intent intent = test::intentFrom(test::readJson(c.host), test::readJson(c.ports));
  const auto state = test::planOrThrow(intent, profile);
  return flowrules::toJson(state, profile, flowrules::PortNumbering::fromHost(intent.host));
}

// A readable hint of how two documents differ: the JSON Patch that turns the
// expected document into the actual one, at most `max_ops` operations.
std::string diffHint(const json& expected, const json& actual, std::size_t max_ops = 20) {
  const json patch = json::diff(expected, actual);
  std::string out = std::to_string(patch.size()) + " difference(s), expected -> actual:\n";
  for (std::size_t i = 0; i < patch.size() && i < max_ops; ++i) {
    const auto& op = patch[i];
    const std::string path = op["path"];
    out += "  " + op["op"].get<std::string>() + " " + path;
    if (op.contains("value")) {
      std::string v = op["value"].dump();
      if (v.size() > 160) v = v.substr(0, 157) + "...";
      out += ": " + v;
      const auto ptr = json::json_pointer(path);
      if (op["op"] == "replace" && expected.contains(ptr)) {
        std::string was = expected[ptr].dump();
        if (was.size() > 160) was = was.substr(0, 157) + "...";
        out += "  (was " + was + ")";
      }
    }
    out += "\n";
  }
  if (patch.size() > max_ops) out += "  ...\n";
  return out;
}

TEST(Golden, DesiredStateMatchesFixtures) {
  for (const auto& c : kGolden) {
    SCOPED_TRACE(c.name);
    const std::string path = test::sourcePath(std::string("tests/golden/") + c.name + ".json");
    const json actual = render(c);
    if (updating()) {
      std::ofstream out(path);
      ASSERT_TRUE(out) << "cannot write " << path;
      out << actual.dump(2) << "\n";
      continue;
    }
    auto expected = model::readJsonFile(path);
    ASSERT_TRUE(expected.ok()) << expected.error().describe()
                               << "\n(generate with NICOFFLOAD_UPDATE_GOLDEN=1)";
    EXPECT_TRUE(*expected == actual) << path << " differs from the plan.\n"
                                     << diffHint(*expected, actual)
                                     << "If the change is intended, regenerate with "
                                        "NICOFFLOAD_UPDATE_GOLDEN=1 and review the diff.";
  }
}

// The fixtures themselves say what they are meant to show; these checks keep
// a regenerated fixture honest.
TEST(Golden, FixturesShowTheirPoint) {
  if (updating()) GTEST_SKIP() << "fixtures being regenerated";
  auto load = [](const char* name) {
    return test::readJson(std::string("tests/golden/") + name + ".json");
  };

  const json sim = load("plan-sim-vxlan");
  EXPECT_EQ(sim["profile"], "sim");
  EXPECT_EQ(sim["counts"]["sw"], 0);
  EXPECT_EQ(sim["counts"]["rules"], 27);
  EXPECT_EQ(sim["vdpa_devices"].size(), 3u);

  const json cx5 = load("plan-connectx-5-vxlan-8472");
  EXPECT_EQ(cx5["counts"]["sw_by_reason"], (json{{"udp-port-unsupported", 5}}));
  EXPECT_TRUE(cx5["vdpa_devices"].empty());
  for (const auto& r : cx5["rules"]) {
    const std::string cls = r["class"];
    const bool vxlan = cls == "vxlan-egress" || cls == "vxlan-ingress";
    EXPECT_EQ(r["placement"], vxlan ? "sw" : "hw") << r["id"];
    if (vxlan) {
      const std::string why = r["reason"];
      EXPECT_NE(why.find("4789"), std::string::npos) << why;
      EXPECT_NE(why.find("8472"), std::string::npos) << why;
    }
  }
  for (const auto& d : cx5["software_path"]["vxlan_devices"]) EXPECT_EQ(d["dst_port"], 8472);

  const json dx = load("plan-connectx-6dx-routed");
  EXPECT_EQ(dx["counts"]["sw_by_reason"], (json{{"next-hop-unresolved", 1}}));
  EXPECT_TRUE(dx["software_path"]["vxlan_devices"].empty());
}

TEST(Golden, Cx5HostVariantIsTheExampleWithTwoChanges) {
  // host-cx5-8472.json = examples/host.json with vxlan_udp_port 8472 and
  // backends.vdpa "none": nothing else may drift.
  json example = test::readJson("examples/host.json");
  example["underlay"]["vxlan_udp_port"] = 8472;
  example["backends"]["vdpa"] = "none";
  EXPECT_EQ(test::readJson("tests/golden/host-cx5-8472.json"), example);
}

}  // namespace
}  // namespace nicoffload
