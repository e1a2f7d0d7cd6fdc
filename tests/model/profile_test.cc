// The shipped hardware profiles load and say what their sources say; a
// profile with a mistake is refused with an error naming the field.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include <gtest/gtest.h>

#include "nicoffload/model/parse.h"
#include "support/test_support.h"

namespace nicoffload {
namespace {

using model::ActionType;
using model::HwProfile;
using model::ItemType;
using nlohmann::json;

bool isMlx5(const std::string& name) { return name != "sim"; }

TEST(HwProfiles, EveryShippedFileIsListedAndLoads) {
  std::set<std::string> on_disk;
  for (const auto& entry : std::filesystem::directory_iterator(test::sourcePath("hw-profiles")))
    if (entry.path().extension() == ".json") on_disk.insert(entry.path().stem().string());
  const std::set<std::string> listed(test::shippedProfiles().begin(), test::shippedProfiles().end());
  EXPECT_EQ(on_disk, listed) << "hw-profiles/*.json and test::shippedProfiles() disagree";

  for (const auto& name : on_disk) {
    SCOPED_TRACE(name);
    auto p = model::loadHwProfile(test::profilePath(name));
    ASSERT_TRUE(p.ok()) << p.error().describe();
    EXPECT_EQ(p->name, name);
    EXPECT_FALSE(p->model.empty());
    EXPECT_FALSE(p->sources.empty());
    EXPECT_NE(std::find(p->eswitch_modes.begin(), p->eswitch_modes.end(),
                        model::EswitchMode::kSwitchdev),
              p->eswitch_modes.end());
    EXPECT_EQ(p->min_dpdk, "22.11");
    EXPECT_GE(p->max_groups, 2u);  // the planner uses groups 0 and 1
    EXPECT_GT(p->root_table_rules, 0u);
    if (isMlx5(name)) {
      EXPECT_FALSE(p->pci_ids.empty());
      EXPECT_EQ(p->max_vfs, 127) << "NVIDIA: up to 127 VFs per port";
    } else {
      EXPECT_EQ(p->max_vfs, 64);
    }
    // Every capability carries a checkable source.
    for (std::size_t i = 0; i < model::kItemTypeCount; ++i)
      EXPECT_FALSE(p->items[i].source.empty()) << model::itemName(static_cast<ItemType>(i));
    for (std::size_t i = 0; i < model::kActionTypeCount; ++i)
      EXPECT_FALSE(p->actions[i].source.empty()) << model::actionName(static_cast<ActionType>(i));
  }
}

TEST(HwProfiles, NoMlx5ProfileMatchesArpFields) {
  // mlx5 matches ARP by ethertype only; the sim models that too.
  for (const auto& name : test::shippedProfiles()) {
    const HwProfile p = test::loadProfile(name);
    EXPECT_FALSE(p.item(ItemType::kArpEthIpv4).supported) << name;
    EXPECT_TRUE(p.item(ItemType::kEth).supported) << name;
  }
}

TEST(HwProfiles, ConnectX5Facts) {
  const HwProfile p = test::loadProfile("connectx-5");
  EXPECT_FALSE(p.vdpa_kernel);
  EXPECT_FALSE(p.vdpa_dpdk);
  EXPECT_FALSE(p.supportsVdpa(true));
  EXPECT_FALSE(p.supportsVdpa(false));
  EXPECT_TRUE(p.sw_steering);
  EXPECT_FALSE(p.hw_steering);
  EXPECT_TRUE(p.hw_steering_min_firmware.empty());
  const std::vector<std::uint16_t> only_4789 = {4789};
  EXPECT_TRUE(p.item(ItemType::kVxlan).supported);
  EXPECT_EQ(p.item(ItemType::kVxlan).udp_dst_ports, only_4789);
  EXPECT_TRUE(p.action(ActionType::kVxlanEncap).supported);
  EXPECT_EQ(p.action(ActionType::kVxlanEncap).udp_dst_ports, only_4789);
  EXPECT_EQ(p.action(ActionType::kVxlanDecap).udp_dst_ports, only_4789);
  EXPECT_FALSE(p.action(ActionType::kVxlanEncap).note.empty());
  const std::vector<std::string> ids = {"15b3:1017", "15b3:1019"};
  EXPECT_EQ(p.pci_ids, ids);
}

TEST(HwProfiles, SteeringAndVdpaPerModel) {
  struct Row {
    const char* name;
    bool hw_steering;
    const char* min_fw;
    bool vdpa_kernel;
    bool vdpa_dpdk;
  };
  const Row rows[] = {
      {"sim", true, "xx.35.1012", true, true},
      {"connectx-5", false, "", false, false},
      {"connectx-6lx", false, "", true, true},
      {"connectx-6dx", true, "xx.35.1012", true, true},
      {"connectx-7", true, "xx.35.1012", true, true},
      {"bluefield-2", true, "xx.35.1012", true, true},
      {"bluefield-3", true, "xx.35.1012", true, false},  // DPDK mlx5 vDPA lists BF-3 from 23.03
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.name);
    const HwProfile p = test::loadProfile(r.name);
    EXPECT_EQ(p.hw_steering, r.hw_steering);
    EXPECT_EQ(p.hw_steering_min_firmware, r.min_fw);
    EXPECT_EQ(p.vdpa_kernel, r.vdpa_kernel);
    EXPECT_EQ(p.vdpa_dpdk, r.vdpa_dpdk);
    EXPECT_TRUE(p.sw_steering);
    // Only ConnectX-5 limits VXLAN to one UDP port.
    EXPECT_EQ(p.item(ItemType::kVxlan).udp_dst_ports.empty(), std::string(r.name) != "connectx-5");
  }
}

// VXLAN over an IPv6 underlay (issue 23): every shipped profile claims
// vxlan_encap and vxlan_decap with IPv6 outer headers, each with a source.
TEST(HwProfiles, Ipv6UnderlayClaims) {
  for (const char* name : {"sim", "connectx-5", "connectx-6lx", "connectx-6dx", "connectx-7",
                           "bluefield-2", "bluefield-3"}) {
    SCOPED_TRACE(name);
    const HwProfile p = test::loadProfile(name);
    for (const auto t : {ActionType::kVxlanEncap, ActionType::kVxlanDecap}) {
      EXPECT_TRUE(p.action(t).ipv6_underlay);
      EXPECT_FALSE(p.action(t).ipv6_underlay_source.empty());
    }
    EXPECT_FALSE(p.action(ActionType::kJump).ipv6_underlay);
  }
}

// Two uplinks (issue 23): only the simulated NIC claims one eswitch over
// both PFs; every mlx5 profile says, with its source, that each PF has its
// own, so that a remote through the second uplink takes the kernel path.
TEST(HwProfiles, MultiportEswitchClaims) {
  EXPECT_TRUE(test::loadProfile("sim").multiport_eswitch);
  for (const char* name :
       {"connectx-5", "connectx-6lx", "connectx-6dx", "connectx-7", "bluefield-2", "bluefield-3"}) {
    SCOPED_TRACE(name);
    const HwProfile p = test::loadProfile(name);
    EXPECT_FALSE(p.multiport_eswitch);
    EXPECT_NE(p.multiport_source.find("dedicated E-Switch"), std::string::npos)
        << p.multiport_source;
  }
  // Absent: no multiport eswitch.
  json doc = test::profileJson("sim");
  doc["eswitch"].erase("multiport");
  doc["eswitch"].erase("multiport_source");
  auto p = model::parseHwProfile(doc, "sim");
  ASSERT_TRUE(p.ok()) << p.error().describe();
  EXPECT_FALSE(p->multiport_eswitch);
}

TEST(HwProfiles, NamesRoundTrip) {
  for (std::size_t i = 0; i < model::kItemTypeCount; ++i) {
    const auto t = static_cast<ItemType>(i);
    EXPECT_EQ(model::itemFromName(model::itemName(t)), std::optional<ItemType>(t));
  }
  for (std::size_t i = 0; i < model::kActionTypeCount; ++i) {
    const auto t = static_cast<ActionType>(i);
    EXPECT_EQ(model::actionFromName(model::actionName(t)), std::optional<ActionType>(t));
  }
  EXPECT_EQ(model::itemName(ItemType::kArpEthIpv4), "arp_eth_ipv4");
  EXPECT_EQ(model::actionName(ActionType::kVxlanEncap), "vxlan_encap");
  EXPECT_FALSE(model::itemFromName("geneve"));
  EXPECT_FALSE(model::actionFromName("VXLAN_ENCAP"));
}

// --- profile mistakes ---

using Mutation = std::function<void(json&)>;

struct BadProfile {
  const char* name;
  const char* base;       // shipped profile the mutation starts from
  Mutation mutate;
  const char* parse_as;   // the name parseHwProfile is given (the file stem)
  ErrorCode code;
  const char* field;
  const char* needle;     // must occur in the value or the message
};

const std::vector<BadProfile>& badProfiles() {
  using E = ErrorCode;
  static const std::vector<BadProfile> kCases = {
      {"missing item", "connectx-5", [](json& d) { d["items"].erase("vxlan"); }, "connectx-5",
       E::kMissingField, "items.vxlan", "missing"},
      {"missing action", "sim", [](json& d) { d["actions"].erase("dec_ttl"); }, "sim",
       E::kMissingField, "actions.dec_ttl", "missing"},
      {"unknown item", "connectx-6dx",
       [](json& d) {
         d["items"]["geneve"] = {{"supported", true}, {"source", "dpdk-mlx5: geneve"}};
       },
       "connectx-6dx", E::kUnknownField, "items.geneve", "geneve"},
      {"unknown action", "sim",
       [](json& d) {
         d["actions"]["meter"] = {{"supported", false}, {"source", "nicoffload: x"}};
       },
       "sim", E::kUnknownField, "actions.meter", "meter"},
      {"source names an unknown key", "connectx-5",
       [](json& d) { d["items"]["eth"]["source"] = "dpdk-guide: eth = Y"; }, "connectx-5",
       E::kInvalidValue, "items.eth.source", "dpdk-guide"},
      {"source without key: text form", "connectx-5",
       [](json& d) { d["actions"]["drop"]["source"] = "dpdk-mlx5-features"; }, "connectx-5",
       E::kInvalidValue, "actions.drop.source", "<source-key>: <section or quote>"},
      {"source with an empty quote", "connectx-5",
       [](json& d) { d["sriov"]["source"] = "nvidia-fw-rn: "; }, "connectx-5", E::kInvalidValue,
       "sriov.source", "nvidia-fw-rn: "},
      {"udp_dst_ports on udp item", "connectx-5",
       [](json& d) { d["items"]["udp"]["udp_dst_ports"] = {4789}; }, "connectx-5", E::kUnknownField,
       "items.udp.udp_dst_ports", "vxlan"},
      {"udp_dst_ports on jump", "connectx-5",
       [](json& d) { d["actions"]["jump"]["udp_dst_ports"] = {4789}; }, "connectx-5",
       E::kUnknownField, "actions.jump.udp_dst_ports", "4789"},
      {"udp_dst_ports on unsupported vxlan", "connectx-5",
       [](json& d) { d["items"]["vxlan"]["supported"] = false; }, "connectx-5", E::kConflict,
       "items.vxlan.udp_dst_ports", "unsupported"},
      {"empty udp_dst_ports", "connectx-5",
       [](json& d) { d["actions"]["vxlan_encap"]["udp_dst_ports"] = json::array(); }, "connectx-5",
       E::kInvalidValue, "actions.vxlan_encap.udp_dst_ports", "omit the field"},
      {"udp port 0", "connectx-5",
       [](json& d) {
         d["actions"]["vxlan_decap"]["udp_dst_ports"] = {4789, 0};
       },
       "connectx-5", E::kInvalidValue, "actions.vxlan_decap.udp_dst_ports[1]", "0"},
      {"ipv6_underlay on jump", "connectx-5",
       [](json& d) {
         d["actions"]["jump"]["ipv6_underlay"] = {{"supported", true}, {"source", "dpdk-mlx5: x"}};
       },
       "connectx-5", E::kUnknownField, "actions.jump.ipv6_underlay", "vxlan_encap and vxlan_decap"},
      {"ipv6_underlay on an unsupported vxlan_encap", "sim",
       [](json& d) { d["actions"]["vxlan_encap"]["supported"] = false; }, "sim", E::kConflict,
       "actions.vxlan_encap.ipv6_underlay", "unsupported"},
      {"ipv6_underlay without its source", "connectx-6dx",
       [](json& d) { d["actions"]["vxlan_decap"]["ipv6_underlay"].erase("source"); },
       "connectx-6dx", E::kMissingField, "actions.vxlan_decap.ipv6_underlay.source", ""},
      {"supported as a string", "connectx-7",
       [](json& d) { d["items"]["ipv4"]["supported"] = "yes"; }, "connectx-7", E::kWrongType,
       "items.ipv4.supported", "yes"},
      {"hw_steering without firmware", "connectx-5",
       [](json& d) { d["steering"]["hw_steering"] = true; }, "connectx-5", E::kInvalidValue,
       "steering.hw_steering_min_firmware", "xx.35.1012"},
      {"hw_steering with a bad firmware", "connectx-6dx",
       [](json& d) { d["steering"]["hw_steering_min_firmware"] = "35.1012"; }, "connectx-6dx",
       E::kInvalidValue, "steering.hw_steering_min_firmware", "35.1012"},
      {"firmware without hw_steering", "connectx-6dx",
       [](json& d) { d["steering"]["hw_steering"] = false; }, "connectx-6dx", E::kConflict,
       "steering.hw_steering_min_firmware", "xx.35.1012"},
      {"bad min_dpdk", "connectx-6dx", [](json& d) { d["steering"]["min_dpdk"] = "22.11.1"; },
       "connectx-6dx", E::kInvalidValue, "steering.min_dpdk", "22.11.1"},
      {"vdpa without switchdev", "connectx-6dx",
       [](json& d) { d["eswitch"]["modes"] = {"legacy"}; }, "connectx-6dx", E::kConflict, "vdpa",
       "switchdev"},
      {"unknown eswitch mode", "connectx-6dx",
       [](json& d) {
         d["eswitch"]["modes"] = {"legacy", "switch-dev"};
       },
       "connectx-6dx", E::kInvalidValue, "eswitch.modes[1]", "switch-dev"},
      {"no eswitch mode", "connectx-6dx", [](json& d) { d["eswitch"]["modes"] = json::array(); },
       "connectx-6dx", E::kInvalidValue, "eswitch.modes", "at least one"},
      {"name does not match the file", "connectx-6dx", [](json&) {}, "connectx-6lx", E::kConflict,
       "name", "connectx-6lx.json"},
      {"schema_version 2", "bluefield-3", [](json& d) { d["schema_version"] = 2; }, "bluefield-3",
       E::kUnsupported, "schema_version", "2"},
      {"schema_version missing", "bluefield-3", [](json& d) { d.erase("schema_version"); },
       "bluefield-3", E::kMissingField, "schema_version", "missing"},
      {"unknown top-level key", "sim", [](json& d) { d["max_vfs"] = 64; }, "sim", E::kUnknownField,
       "max_vfs", "max_vfs"},
      {"unknown nested key", "sim", [](json& d) { d["tables"]["root_rules"] = 1; }, "sim",
       E::kUnknownField, "tables.root_rules", "root_rules"},
      {"upper-case pci id", "connectx-5", [](json& d) { d["pci_ids"][1] = "15B3:1019"; },
       "connectx-5", E::kInvalidValue, "pci_ids[1]", "15B3:1019"},
      {"non-Mellanox pci id", "connectx-5", [](json& d) { d["pci_ids"][0] = "8086:1572"; },
       "connectx-5", E::kInvalidValue, "pci_ids[0]", "8086:1572"},
      {"empty sources", "sim", [](json& d) { d["sources"] = json::object(); }, "sim",
       E::kInvalidValue, "sources", "at least one"},
      {"jump with one group", "sim", [](json& d) { d["tables"]["max_groups"] = 1; }, "sim",
       E::kConflict, "tables.max_groups", "1"},
      {"rules but no root table", "sim", [](json& d) { d["tables"]["root_table_rules"] = 0; },
       "sim", E::kConflict, "tables.root_table_rules", "0"},
      {"max_vfs beyond 16 bits", "sim", [](json& d) { d["sriov"]["max_vfs"] = 65536; }, "sim",
       E::kInvalidValue, "sriov.max_vfs", "65536"},
      {"multiport without its source", "sim",
       [](json& d) { d["eswitch"].erase("multiport_source"); }, "sim", E::kMissingField,
       "eswitch.multiport_source", "missing"},
      {"multiport not a boolean", "sim", [](json& d) { d["eswitch"]["multiport"] = "yes"; }, "sim",
       E::kWrongType, "eswitch.multiport", "true or false"},
  };
  return kCases;
}

TEST(HwProfiles, MistakesAreRefusedNamingTheField) {
  for (const auto& c : badProfiles()) {
    SCOPED_TRACE(c.name);
    json doc = test::profileJson(c.base);
    ASSERT_TRUE(model::parseHwProfile(doc, c.base).ok()) << "base profile must be valid";
    c.mutate(doc);
    const auto p = model::parseHwProfile(doc, c.parse_as);
    ASSERT_FALSE(p.ok()) << "accepted";
    const Error& e = p.error();
    EXPECT_EQ(e.code, c.code) << errorInfo(e.code).name << ": " << e.describe();
    EXPECT_EQ(e.field, c.field) << e.describe();
    const std::string haystack = e.value + " | " + e.message;
    EXPECT_NE(haystack.find(c.needle), std::string::npos)
        << "'" << c.needle << "' not in value '" << e.value << "' nor message '" << e.message << "'";
  }
}

TEST(HwProfiles, UdpPortListBuiltInCode) {
  // Ports written in code are signed JSON integers (parsed text gives
  // unsigned ones): both forms are the same ports.
  json doc = test::profileJson("connectx-5");
  doc["items"]["vxlan"]["udp_dst_ports"] = {4789, 8472};
  const auto p = model::parseHwProfile(doc, "connectx-5");
  ASSERT_TRUE(p.ok()) << p.error().describe();
  EXPECT_EQ(p->item(ItemType::kVxlan).udp_dst_ports, (std::vector<std::uint16_t>{4789, 8472}));

  doc["items"]["vxlan"]["udp_dst_ports"] = {-4789};
  const auto neg = model::parseHwProfile(doc, "connectx-5");
  ASSERT_FALSE(neg.ok());
  EXPECT_EQ(neg.error().field, "items.vxlan.udp_dst_ports[0]");
}

TEST(HwProfiles, LoadChecksTheFileName) {
  // A copy of the connectx-6dx profile saved under another name is refused,
  // and the error names the file.
  const std::string dir = ::testing::TempDir() + "nicoffload-profile-test";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/my-nic.json";
  {
    std::ofstream out(path);
    out << test::profileJson("connectx-6dx").dump(2);
  }
  const auto p = model::loadHwProfile(path);
  std::filesystem::remove_all(dir);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code, ErrorCode::kConflict);
  EXPECT_EQ(p.error().field, path + ": name");
  EXPECT_NE(p.error().message.find("my-nic.json"), std::string::npos) << p.error().message;
}

TEST(HwProfiles, ParseWithoutNameAcceptsAnyName) {
  // An empty expected name (no file behind the document) skips the name check.
  json doc = test::profileJson("sim");
  doc["name"] = "custom";
  const auto p = model::parseHwProfile(doc, "");
  ASSERT_TRUE(p.ok()) << p.error().describe();
  EXPECT_EQ(p->name, "custom");
}

TEST(HwProfiles, NotJson) {
  const std::string path = ::testing::TempDir() + "nicoffload-broken.json";
  {
    std::ofstream out(path);
    out << "{\"schema_version\": 1,";
  }
  const auto p = model::loadHwProfile(path);
  std::filesystem::remove(path);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code, ErrorCode::kInvalidValue);
  EXPECT_NE(p.error().message.find("byte"), std::string::npos) << p.error().message;
}

}  // namespace
}  // namespace nicoffload
