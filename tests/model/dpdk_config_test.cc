// The host config's "dpdk" section: EAL arguments and the PF devargs.
#include <gtest/gtest.h>

#include "support/test_support.h"

namespace nicoffload::model {
namespace {

using nlohmann::json;

json hostWithDpdk(json dpdk) {
  json doc = test::readJson("examples/host.json");
  doc["dpdk"] = std::move(dpdk);
  return doc;
}

TEST(DpdkConfig, DefaultsAreEmpty) {
  const auto host = test::unwrap(parseHostConfig(test::readJson("examples/host.json")), "host");
  EXPECT_TRUE(host.dpdk_eal_args.empty());
  EXPECT_TRUE(host.dpdk_pf_devargs.empty());
}

TEST(DpdkConfig, EalArgsAndPfDevargsAreRead) {
  const auto host = test::unwrap(
      parseHostConfig(
          hostWithDpdk({{"eal_args", {"-l", "0", "--file-prefix", "nicoffload"}},
                        {"pf_devargs", "0000:03:00.0,representor=vf[0-15],dv_flow_en=1"},
                        {"uplink_port_id", 0}})),
      "host");
  EXPECT_EQ(host.dpdk_eal_args,
            (std::vector<std::string>{"-l", "0", "--file-prefix", "nicoffload"}));
  EXPECT_EQ(host.dpdk_pf_devargs, "0000:03:00.0,representor=vf[0-15],dv_flow_en=1");
}

TEST(DpdkConfig, AVirtualDeviceMayStandInForThePf) {
  const auto host =
      test::unwrap(parseHostConfig(hostWithDpdk({{"pf_devargs", "net_ring0"}})), "host");
  EXPECT_EQ(host.dpdk_pf_devargs, "net_ring0");
}

TEST(DpdkConfig, MistakesAreRefusedNamingTheField) {
  struct Row {
    const char* what;
    json dpdk;
    ErrorCode code;
    const char* field;
  };
  const Row rows[] = {
      {"eal_args not an array", {{"eal_args", "-l 0"}}, ErrorCode::kWrongType, "dpdk.eal_args"},
      {"a number among the args",
       {{"eal_args", {"-l", 0}}},
       ErrorCode::kWrongType,
       "dpdk.eal_args[1]"},
      {"an empty arg", {{"eal_args", {"-l", ""}}}, ErrorCode::kInvalidValue, "dpdk.eal_args[1]"},
      {"'--' ends the EAL options",
       {{"eal_args", {"--"}}},
       ErrorCode::kInvalidValue,
       "dpdk.eal_args[0]"},
      {"--help exits the process",
       {{"eal_args", {"--help"}}},
       ErrorCode::kInvalidValue,
       "dpdk.eal_args[0]"},
      {"a newline", {{"eal_args", {"-l\n0"}}}, ErrorCode::kInvalidValue, "dpdk.eal_args[0]"},
      {"too many",
       {{"eal_args", json(std::vector<std::string>(65, "-v"))}},
       ErrorCode::kInvalidValue,
       "dpdk.eal_args"},
      {"devargs not a string", {{"pf_devargs", 3}}, ErrorCode::kWrongType, "dpdk.pf_devargs"},
      {"empty devargs", {{"pf_devargs", ""}}, ErrorCode::kInvalidValue, "dpdk.pf_devargs"},
      {"devargs with a space",
       {{"pf_devargs", "0000:03:00.0, representor=vf0"}},
       ErrorCode::kInvalidValue,
       "dpdk.pf_devargs"},
      {"short PCI form",
       {{"pf_devargs", "03:00.0,representor=vf[0-3]"}},
       ErrorCode::kInvalidValue,
       "dpdk.pf_devargs"},
      {"another PF than uplink.pci",
       {{"pf_devargs", "0000:04:00.0,representor=vf[0-3]"}},
       ErrorCode::kConflict,
       "dpdk.pf_devargs"},
      {"a typo in a key",
       {{"pf_devarg", "0000:03:00.0"}},
       ErrorCode::kUnknownField,
       "dpdk.pf_devarg"},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.what);
    const auto r = parseHostConfig(hostWithDpdk(row.dpdk));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, row.code) << r.error().describe();
    EXPECT_EQ(r.error().field, row.field) << r.error().describe();
    EXPECT_FALSE(r.error().message.empty());
  }
}

}  // namespace
}  // namespace nicoffload::model
