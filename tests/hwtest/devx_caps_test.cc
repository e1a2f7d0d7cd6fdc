// The devx capability commands and parsers against byte buffers written from
// the PRM layout (Linux 6.1 include/linux/mlx5/mlx5_ifc.h): a big-endian
// bit-field writer sets known fields at their PRM bit offsets, the parser
// must read them back, and nothing else.
#include <gtest/gtest.h>

#include <random>

#include "nicoffload/devx/caps.h"
#include "support/test_support.h"

namespace nicoffload::devx {
namespace {

// Writes `value` into `width` bits at PRM bit offset `bit` (bit 0 = the most
// significant bit of byte 0), as the device lays out its answers.
void setBits(std::vector<std::uint8_t>& buf, std::size_t bit, std::size_t width,
             std::uint64_t value) {
  for (std::size_t i = 0; i < width; ++i) {
    const std::size_t b = bit + i;
    const std::uint8_t mask = static_cast<std::uint8_t>(0x80u >> (b % 8));
    const bool on = (value >> (width - 1 - i)) & 1u;
    if (on)
      buf.at(b / 8) |= mask;
    else
      buf.at(b / 8) &= static_cast<std::uint8_t>(~mask);
  }
}

// A query_hca_cap_out: 0x80-bit header, then the capability at bit 0x80.
std::vector<std::uint8_t> answer() { return std::vector<std::uint8_t>(kQueryHcaCapOutBytes, 0); }
constexpr std::size_t kCap = 0x80;

TEST(DevxCommand, QueryHcaCapInputBytes) {
  // opcode 0x0100 in bytes 0-1; op_mod = (cap type << 1) | GET_CUR in bytes 6-7.
  const std::vector<std::uint8_t> general = {0x01, 0x00, 0, 0, 0, 0, 0x00, 0x01,
                                             0,    0,    0, 0, 0, 0, 0,    0};
  EXPECT_EQ(queryHcaCapCommand(CapType::kGeneral), general);
  const auto fdb = queryHcaCapCommand(CapType::kEswitchFlowTable);
  ASSERT_EQ(fdb.size(), 16u);
  EXPECT_EQ(getBits(fdb, 0x00, 16), 0x100u);
  EXPECT_EQ(getBits(fdb, 0x30, 16), 0x11u);  // 0x8 << 1 | 1
  EXPECT_EQ(getBits(queryHcaCapCommand(CapType::kNicFlowTable), 0x30, 16), 0x0fu);
  EXPECT_EQ(getBits(queryHcaCapCommand(CapType::kEswitch), 0x30, 16), 0x13u);
  EXPECT_EQ(getBits(queryHcaCapCommand(CapType::kVirtioEmulation), 0x30, 16), 0x27u);
  // other_function (bit 0x40) and function_id (0x50) stay 0: our own function.
  EXPECT_EQ(getBits(fdb, 0x40, 48), 0u);
}

TEST(DevxBits, WriterAndReaderAgreeOnRandomFields) {
  std::mt19937_64 rng(15);
  for (int n = 0; n < 2000; ++n) {
    std::vector<std::uint8_t> buf(64, 0);
    const std::size_t width = 1 + rng() % 64;
    const std::size_t bit = rng() % (buf.size() * 8 - width);
    const std::uint64_t v = width == 64 ? rng() : rng() & ((1ull << width) - 1);
    setBits(buf, bit, width, v);
    ASSERT_EQ(getBits(buf, bit, width), v) << "bit " << bit << " width " << width;
    // Nothing outside the field.
    if (bit > 0) {
      EXPECT_EQ(getBits(buf, 0, std::min<std::size_t>(bit, 64)), 0u);
    }
  }
}

TEST(DevxParse, GeneralCapsFromPrmOffsets) {
  auto out = answer();
  setBits(out, kCap + 0x30, 16, 0x1234);       // vhca_id
  setBits(out, kCap + 0x1a0, 1, 1);            // vport_group_manager
  setBits(out, kCap + 0x1a7, 1, 1);            // eswitch_manager
  setBits(out, kCap + 0x1b6, 2, 1);            // port_type Ethernet
  setBits(out, kCap + 0x400, 64, 1ull << 13);  // general_obj_types: VIRTIO_NET_Q
  setBits(out, kCap + 0x61e, 1, 1);            // sw_owner_id
  const auto c = parseGeneralCaps(out);
  ASSERT_TRUE(c.ok()) << c.error().describe();
  EXPECT_EQ(c->vhca_id, 0x1234);
  EXPECT_TRUE(c->vport_group_manager);
  EXPECT_FALSE(c->nic_flow_table);  // bit 0x1a6, left 0
  EXPECT_TRUE(c->eswitch_manager);
  EXPECT_EQ(c->port_type, 1);
  EXPECT_TRUE(c->virtioNetQueues());
  EXPECT_TRUE(c->sw_owner_id);

  // Neighbouring bits do not leak into the fields.
  auto other = answer();
  setBits(other, kCap + 0x1a1, 5, 0x1f);  // vhca_group_manager .. reserved, before nic_flow_table
  setBits(other, kCap + 0x400, 64, ~(1ull << 13));
  const auto d = parseGeneralCaps(other);
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->vport_group_manager);
  EXPECT_FALSE(d->eswitch_manager);
  EXPECT_FALSE(d->virtioNetQueues());
}

TEST(DevxParse, FlowTablePropsAtTheFdbOffset) {
  auto out = answer();
  const std::size_t fdb = kCap + 0x200;  // flow_table_properties_nic_esw_fdb
  setBits(out, fdb + 0x00, 1, 1);        // ft_support
  setBits(out, fdb + 0x02, 1, 1);        // flow_counter
  setBits(out, fdb + 0x07, 1, 1);        // reformat
  setBits(out, fdb + 0x08, 1, 1);        // decap
  setBits(out, fdb + 0x22, 6, 23);       // log_max_ft_size
  setBits(out, fdb + 0x38, 8, 64);       // max_ft_level
  setBits(out, fdb + 0x78, 8, 20);       // log_max_ft_num
  setBits(out, fdb + 0x90, 8, 24);       // log_max_flow_counter
  // The ACL ingress properties right after (0x400) must not be read as FDB.
  setBits(out, kCap + 0x400 + 0x22, 6, 5);
  const auto c = parseFlowTableCaps(out);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->props.ft_support);
  EXPECT_TRUE(c->props.flow_counter);
  EXPECT_TRUE(c->props.reformat);
  EXPECT_TRUE(c->props.decap);
  EXPECT_FALSE(c->props.reformat_l3_tunnel_to_l2);
  EXPECT_EQ(c->props.log_max_ft_size, 23);
  EXPECT_EQ(c->props.max_ft_level, 64);
  EXPECT_EQ(c->props.log_max_ft_num, 20);
  EXPECT_EQ(c->props.log_max_flow_counter, 24);
}

TEST(DevxParse, EswitchAndVirtioCaps) {
  auto esw = answer();
  setBits(esw, kCap + 0x20, 1, 1);   // vxlan_encap_decap
  setBits(esw, kCap + 0x21, 1, 1);   // nvgre_encap_decap (not ours)
  setBits(esw, kCap + 0x23, 5, 17);  // log_max_fdb_encap_uplink
  const auto e = parseEswitchCaps(esw);
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->vxlan_encap_decap);
  EXPECT_EQ(e->log_max_fdb_encap_uplink, 17);

  auto vio = answer();
  setBits(vio, kCap + 0x02, 1, 1);          // virtio_version_1_0
  setBits(vio, kCap + 0x80, 8, 0);          // max_emulated_devices
  setBits(vio, kCap + 0x88, 24, 0x000400);  // max_num_virtio_queues
  const auto v = parseVirtioCaps(vio);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->virtio_version_1_0);
  EXPECT_EQ(v->max_num_virtio_queues, 0x400u);
}

TEST(DevxParse, ShortAnswerAndFailedStatusAreErrors) {
  std::vector<std::uint8_t> short_out(100, 0);
  const auto s = parseGeneralCaps(short_out);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidValue);
  auto failed = answer();
  setBits(failed, 0x00, 8, 0x02);         // status: bad op
  setBits(failed, 0x20, 32, 0xdeadbeef);  // syndrome
  const auto f = parseEswitchCaps(failed);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().field, "status");
  EXPECT_NE(f.error().message.find("syndrome 0xdeadbeef"), std::string::npos) << f.error().message;
}

TEST(DevxProfile, FirmwareComparison) {
  EXPECT_EQ(firmwareAtLeast("22.35.1012", "xx.35.1012"), true);
  EXPECT_EQ(firmwareAtLeast("22.36.0001", "xx.35.1012"), true);
  EXPECT_EQ(firmwareAtLeast("22.35.1011", "xx.35.1012"), false);
  EXPECT_EQ(firmwareAtLeast("16.34.9999", "xx.35.1012"), false);
  EXPECT_EQ(firmwareAtLeast("28.35.1012 (MT_0000000359)", "xx.35.1012"), true);
  EXPECT_EQ(firmwareAtLeast("22.35.1012", "22.36.0000"), false);
  EXPECT_EQ(firmwareAtLeast("junk", "xx.35.1012"), std::nullopt);
  EXPECT_EQ(firmwareAtLeast("22.35.1012", ""), std::nullopt);
}

std::vector<model::HwProfile> shipped() {
  std::vector<model::HwProfile> out;
  for (const auto& n : test::shippedProfiles()) out.push_back(test::loadProfile(n));
  return out;
}

TEST(DevxProfile, ChoosesTheProfileByPciId) {
  const auto all = shipped();
  EXPECT_EQ(test::unwrap(chooseProfile("15b3:101d", all), "cx6dx").name, "connectx-6dx");
  EXPECT_EQ(test::unwrap(chooseProfile("15b3:1017", all), "cx5").name, "connectx-5");
  const auto none = chooseProfile("15b3:ffff", all);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
  EXPECT_NE(none.error().message.find("15b3:ffff"), std::string::npos);
}

DeviceCaps capableDevice() {
  DeviceCaps c;
  c.pci = "0000:03:00.0";
  c.pci_id = "15b3:101d";
  c.fw_ver = "22.35.1012";
  GeneralCaps g;
  g.eswitch_manager = g.vport_group_manager = g.sw_owner_id = true;
  g.general_obj_types = 1ull << 13;
  c.general = g;
  FlowTableCaps f;
  f.props.ft_support = f.props.flow_counter = f.props.reformat = f.props.decap = true;
  f.props.log_max_ft_size = 24;
  c.fdb_flow_table = f;
  c.eswitch = EswitchCaps{true, 10};
  c.virtio = VirtioCaps{true, 0, 256};
  return c;
}

std::map<std::string, ProbeFinding::Severity> byClaim(const std::vector<ProbeFinding>& fs) {
  std::map<std::string, ProbeFinding::Severity> out;
  for (const auto& f : fs) out[f.claim] = f.severity;
  return out;
}

TEST(DevxProfile, ACapableDeviceAgreesWithItsProfile) {
  const auto profile = test::loadProfile("connectx-6dx");
  for (const auto& f : checkProfile(capableDevice(), profile))
    EXPECT_EQ(f.severity, ProbeFinding::Severity::kOk) << f.claim << ": " << f.message;
}

TEST(DevxProfile, FindingsNameTheClaimAndTheCapability) {
  const auto profile = test::loadProfile("connectx-6dx");
  auto dev = capableDevice();
  dev.fw_ver = "22.34.1002";                       // older than xx.35.1012
  dev.general->general_obj_types = 0;              // no virtio-net queues
  dev.eswitch->vxlan_encap_decap = false;          // no VXLAN in the eswitch
  dev.fdb_flow_table->props.log_max_ft_size = 16;  // 65536 rules < 16 M claimed
  dev.pci_id = "15b3:1017";
  const auto fs = checkProfile(dev, profile);
  const auto s = byClaim(fs);
  using S = ProbeFinding::Severity;
  EXPECT_EQ(s.at("steering.hw_steering"), S::kFinding);
  EXPECT_EQ(s.at("vdpa"), S::kFinding);
  EXPECT_EQ(s.at("actions.vxlan_encap"), S::kFinding);
  EXPECT_EQ(s.at("actions.vxlan_decap"), S::kFinding);
  EXPECT_EQ(s.at("tables"), S::kFinding);
  EXPECT_EQ(s.at("pci_ids"), S::kFinding);
  EXPECT_EQ(s.at("eswitch.modes"), S::kOk);
  for (const auto& f : fs)
    if (f.claim == "steering.hw_steering") {
      EXPECT_NE(f.message.find("22.34.1002 < xx.35.1012"), std::string::npos);
    }

  // Queries that failed make the claims unknown, not ok.
  DeviceCaps blind;
  blind.fw_ver = "22.35.1012";
  const auto u = byClaim(checkProfile(blind, profile));
  EXPECT_EQ(u.at("vdpa"), S::kUnknown);
  EXPECT_EQ(u.at("tables"), S::kUnknown);
  EXPECT_EQ(u.at("eswitch.modes"), S::kUnknown);
}

}  // namespace
}  // namespace nicoffload::devx
