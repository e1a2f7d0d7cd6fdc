// The simulated NIC enforces its hardware profile and rte_flow's rules:
// table-driven per shipped profile, plus the profile's tables and VF count,
// and agreement with the planner's placement.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>

#include "nicoffload/flowrules/hw_apply.h"
#include "nicoffload/flowrules/planner.h"
#include "nicoffload/simnic/sim_eswitch.h"
#include "support/fake_sysfs.h"
#include "support/sim_support.h"

namespace nicoffload::simnic {
namespace {

using namespace flowrules;  // NOLINT: the rule IR, in a test
using test::ip;
using test::mac;

constexpr std::uint16_t kVfs = 8;

std::string readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

FlowRule baseRule(std::uint32_t group, std::uint32_t priority = 0) {
  FlowRule r;
  r.id = 0x1234;
  r.cls = RuleClass::kLocalDelivery;
  r.attr.group = group;
  r.attr.priority = priority;
  r.attr.transfer = true;
  return r;
}

Ipv4Item ipDst(const char* a) {
  Ipv4Item i;
  i.fields = Ipv4Item::kDst;
  i.dst = ip(a);
  return i;
}

UdpItem udpDst(std::uint16_t port) {
  UdpItem u;
  u.fields = UdpItem::kDst;
  u.dst_port = port;
  return u;
}

// Local delivery as the planner makes it.
FlowRule delivery(std::uint16_t vf = 0) {
  FlowRule r = baseRule(1);
  r.pattern.push_back(EthItem{});
  r.pattern.push_back(ipDst("10.0.0.1"));
  r.actions.push_back(SetMacSrcAction{mac("ee:ee:ee:ee:ee:ee")});
  r.actions.push_back(SetMacDstAction{mac("52:54:00:00:00:01")});
  r.actions.push_back(DecTtlAction{});
  r.actions.push_back(RepresentedPortAction{PortRef::vfPort(vf)});
  r.actions.push_back(CountAction{});
  return r;
}

// VXLAN ingress on `port`: pattern[4] is the vxlan item.
FlowRule decap(std::uint16_t port) {
  FlowRule r = baseRule(0);
  r.cls = RuleClass::kVxlanIngress;
  r.pattern.push_back(PortItem{PortRef::uplink()});
  r.pattern.push_back(EthItem{});
  r.pattern.push_back(ipDst("192.0.2.1"));
  r.pattern.push_back(udpDst(port));
  r.pattern.push_back(VxlanItem{100});
  r.actions.push_back(VxlanDecapAction{});
  r.actions.push_back(JumpAction{1});
  r.actions.push_back(CountAction{});
  return r;
}

// VXLAN egress to `port`: actions[3] is vxlan_encap.
FlowRule encap(std::uint16_t port) {
  FlowRule r = baseRule(1);
  r.cls = RuleClass::kVxlanEgress;
  r.pattern.push_back(EthItem{});
  r.pattern.push_back(ipDst("10.20.0.1"));
  r.actions.push_back(SetMacSrcAction{mac("02:00:c0:00:02:01")});
  r.actions.push_back(SetMacDstAction{mac("02:00:c0:00:02:02")});
  r.actions.push_back(DecTtlAction{});
  r.actions.push_back(VxlanEncapAction{});
  r.actions.push_back(RepresentedPortAction{PortRef::uplink()});
  VxlanEncap e;
  e.eth_src = mac("0c:42:a1:00:00:01");
  e.eth_dst = mac("0c:42:a1:ff:ff:fe");
  e.src = ip("192.0.2.1");
  e.dst = ip("192.0.2.2");
  e.udp_src = 50000;
  e.udp_dst = port;
  e.vni = 100;
  r.encap = e;
  return r;
}

FlowRule drop() {
  FlowRule r = baseRule(0, 1);
  r.cls = RuleClass::kAntiSpoofing;
  r.pattern.push_back(PortItem{PortRef::vfPort(0)});
  r.actions.push_back(DropAction{});
  return r;
}

struct Expect {
  std::optional<ErrorCode> code;  // nullopt: accepted
  std::string field_suffix;       // e.g. ".pattern[4]"
  std::string value;              // item/action name the error must carry
};

Expect ok() { return {}; }
Expect refuse(ErrorCode c, std::string suffix, std::string value = "") {
  return {c, std::move(suffix), std::move(value)};
}
bool isCx5(const model::HwProfile& p) { return p.name == "connectx-5"; }

struct Case {
  const char* name;
  std::function<FlowRule()> rule;
  std::function<Expect(const model::HwProfile&)> expect;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> kCases = {
      {"local delivery", [] { return delivery(); }, [](auto&) { return ok(); }},
      {"delivery to the last VF", [] { return delivery(kVfs - 1); }, [](auto&) { return ok(); }},
      {"delivery to a VF the NIC lacks", [] { return delivery(kVfs); },
       [](auto&) { return refuse(ErrorCode::kInvalidValue, ".actions[3]", "represented_port"); }},
      {"decap on 4789", [] { return decap(4789); }, [](auto&) { return ok(); }},
      {"decap on 8472", [] { return decap(8472); },
       [](auto& p) {
         return isCx5(p) ? refuse(ErrorCode::kUnsupported, ".pattern[4]", "vxlan") : ok();
       }},
      {"encap to 4789", [] { return encap(4789); }, [](auto&) { return ok(); }},
      {"encap to 8472", [] { return encap(8472); },
       [](auto& p) {
         return isCx5(p) ? refuse(ErrorCode::kUnsupported, ".actions[3]", "vxlan_encap") : ok();
       }},
      {"drop", [] { return drop(); }, [](auto&) { return ok(); }},
      {"group beyond the profile",
       [] {
         FlowRule r = drop();
         r.attr.group = 70000;
         return r;
       },
       [](auto&) { return refuse(ErrorCode::kUnsupported, ".attr"); }},
      {"ingress together with transfer",
       [] {
         FlowRule r = drop();
         r.attr.ingress = true;
         return r;
       },
       [](auto&) { return refuse(ErrorCode::kInvalidValue, ".attr"); }},
      {"not a transfer rule",
       [] {
         FlowRule r = drop();
         r.attr.transfer = false;
         r.attr.ingress = true;
         return r;
       },
       [](auto&) { return refuse(ErrorCode::kUnsupported, ".attr"); }},
      {"no fate action",
       [] {
         FlowRule r = drop();
         r.actions = {};
         r.actions.push_back(CountAction{});
         return r;
       },
       [](auto&) { return refuse(ErrorCode::kInvalidValue, ".actions"); }},
      {"two fate actions",
       [] {
         FlowRule r = drop();
         r.actions.push_back(RepresentedPortAction{PortRef::uplink()});
         return r;
       },
       [](auto&) { return refuse(ErrorCode::kInvalidValue, ".actions[1]", "represented_port"); }},
      {"jump to the root table",
       [] {
         FlowRule r = baseRule(1);
         r.pattern.push_back(EthItem{});
         r.actions.push_back(JumpAction{0});
         return r;
       },
       [](auto&) { return refuse(ErrorCode::kUnsupported, ".actions[0]", "jump"); }},
      {"jump to its own group",
       [] {
         FlowRule r = baseRule(1);
         r.pattern.push_back(EthItem{});
         r.actions.push_back(JumpAction{1});
         return r;
       },
       [](auto&) { return refuse(ErrorCode::kInvalidValue, ".actions[0]", "jump"); }},
      {"set_mac_src without an eth item",
       [] {
         FlowRule r = baseRule(1);
         r.pattern.push_back(ipDst("10.0.0.1"));
         r.actions.push_back(SetMacSrcAction{});
         r.actions.push_back(DropAction{});
         return r;
       },
       [](auto&) { return refuse(ErrorCode::kInvalidValue, ".actions[0]", "set_mac_src"); }},
      {"dec_ttl without an ipv4 item",
       [] {
         FlowRule r = baseRule(1);
         r.pattern.push_back(EthItem{});
         r.actions.push_back(DecTtlAction{});
         r.actions.push_back(DropAction{});
         return r;
       },
       [](auto&) { return refuse(ErrorCode::kInvalidValue, ".actions[0]", "dec_ttl"); }},
      {"decap without a vxlan item",
       [] {
         FlowRule r = decap(4789);
         FlowRule s = baseRule(0);
         for (std::size_t i = 0; i + 1 < r.pattern.size(); ++i) s.pattern.push_back(r.pattern[i]);
         s.actions = r.actions;
         return s;
       },
       [](auto&) { return refuse(ErrorCode::kInvalidValue, ".actions[0]", "vxlan_decap"); }},
      {"encap without its definition",
       [] {
         FlowRule r = encap(4789);
         r.encap.reset();
         return r;
       },
       [](auto&) { return refuse(ErrorCode::kInvalidValue, ".actions[3]", "vxlan_encap"); }},
      {"udp right after eth",
       [] {
         FlowRule r = baseRule(1);
         r.pattern.push_back(EthItem{});
         r.pattern.push_back(udpDst(53));
         r.actions.push_back(DropAction{});
         return r;
       },
       [](auto&) { return refuse(ErrorCode::kInvalidValue, ".pattern[1]", "udp"); }},
      {"two count actions",
       [] {
         FlowRule r = drop();
         r.actions.push_back(CountAction{});
         r.actions.push_back(CountAction{});
         return r;
       },
       [](auto&) { return refuse(ErrorCode::kInvalidValue, ".actions[2]", "count"); }},
      {"two represented_port items",
       [] {
         FlowRule r = drop();
         r.pattern.push_back(PortItem{PortRef::vfPort(1)});
         return r;
       },
       [](auto&) { return refuse(ErrorCode::kInvalidValue, ".pattern[1]", "represented_port"); }},
      {"match on a VF the NIC lacks",
       [] {
         FlowRule r = drop();
         r.pattern = {};
         r.pattern.push_back(PortItem{PortRef::vfPort(200)});
         return r;
       },
       [](auto&) { return refuse(ErrorCode::kInvalidValue, ".pattern[0]", "represented_port"); }},
  };
  return kCases;
}

class SimProfileTable : public testing::TestWithParam<std::string> {};

TEST_P(SimProfileTable, ValidateAndCreateFollowTheProfile) {
  const auto profile = test::loadProfile(GetParam());
  auto nic = test::unwrap(SimEswitch::create(profile, kVfs), "sim");
  for (const auto& c : cases()) {
    SCOPED_TRACE(std::string(c.name) + " on " + profile.name);
    const FlowRule rule = c.rule();
    const Expect want = c.expect(profile);
    const Status v = nic->validate(rule);
    const std::size_t before = nic->size();
    auto created = nic->create(rule);
    if (!want.code) {
      EXPECT_TRUE(v.ok()) << v.error().describe();
      ASSERT_TRUE(created.ok()) << created.error().describe();
      EXPECT_EQ(nic->size(), before + 1);
      EXPECT_TRUE(nic->destroy(*created).ok());
      continue;
    }
    ASSERT_FALSE(v.ok()) << "validate accepted it";
    EXPECT_EQ(v.error().code, *want.code) << v.error().describe();
    EXPECT_TRUE(v.error().field.ends_with(want.field_suffix)) << v.error().field;
    EXPECT_TRUE(v.error().field.starts_with(formatRuleId(rule.cls, rule.id))) << v.error().field;
    if (!want.value.empty()) {
      EXPECT_EQ(v.error().value, want.value);
    }
    EXPECT_FALSE(v.error().message.empty());
    ASSERT_FALSE(created.ok()) << "create accepted what validate refused";
    EXPECT_EQ(created.error().code, *want.code);
    EXPECT_EQ(nic->size(), before) << "a refused create must leave nothing behind";
  }
}

INSTANTIATE_TEST_SUITE_P(ShippedProfiles, SimProfileTable,
                         testing::ValuesIn(test::shippedProfiles()), [](const auto& info) {
                           std::string n = info.param;
                           for (auto& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

TEST(SimProfile, CapabilitiesComeFromTheProfile) {
  auto profile = test::loadProfile("connectx-5");
  auto nic = test::unwrap(SimEswitch::create(profile, 16), "sim");
  const auto& caps = nic->capabilities();
  EXPECT_EQ(caps.backend, "sim");
  EXPECT_EQ(caps.device, "connectx-5");
  EXPECT_TRUE(caps.enforced);
  EXPECT_EQ(caps.vf_count, 16);
  EXPECT_EQ(caps.max_groups, profile.max_groups);
  EXPECT_TRUE(caps.supports(model::ActionType::kVxlanEncap));
  EXPECT_FALSE(caps.supports(model::ItemType::kArpEthIpv4));
}

TEST(SimProfile, AnActionTheProfileLacksIsRefusedNamingIt) {
  auto profile = test::loadProfile("sim");
  profile.actions[static_cast<std::size_t>(model::ActionType::kVxlanEncap)].supported = false;
  auto nic = test::unwrap(SimEswitch::create(profile, kVfs), "sim");
  const Status s = nic->validate(encap(4789));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(s.error().value, "vxlan_encap");
  EXPECT_TRUE(s.error().field.ends_with(".actions[3]"));
  EXPECT_NE(s.error().message.find("has no action vxlan_encap"), std::string::npos);
  EXPECT_TRUE(nic->validate(delivery()).ok());
}

TEST(SimProfile, TablesHoldWhatTheProfileSaysPerGroup) {
  auto profile = test::loadProfile("sim");
  profile.root_table_rules = 2;
  profile.rules_per_group = 3;
  auto nic = test::unwrap(SimEswitch::create(profile, kVfs), "sim");
  std::vector<FlowHandle> root;
  for (int i = 0; i < 2; ++i) root.push_back(test::unwrap(nic->create(drop()), "root rule"));
  auto third = nic->create(drop());
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error().code, ErrorCode::kTableFull);
  EXPECT_NE(third.error().message.find("group 0 is full"), std::string::npos)
      << third.error().message;
  EXPECT_EQ(nic->validate(drop()).error().code, ErrorCode::kTableFull);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(nic->create(delivery()).ok()) << "group 1 has its own room";
  EXPECT_EQ(nic->create(delivery()).error().code, ErrorCode::kTableFull);
  EXPECT_EQ(nic->groupSize(0), 2u);
  EXPECT_EQ(nic->groupSize(1), 3u);
  ASSERT_TRUE(nic->destroy(root[0]).ok());
  EXPECT_TRUE(nic->create(drop()).ok()) << "room again after a destroy";
}

TEST(SimProfile, VfCountIsBoundedByTheProfile) {
  const auto profile = test::loadProfile("sim");
  auto too_many = SimEswitch::create(profile, static_cast<std::uint16_t>(profile.max_vfs + 1));
  ASSERT_FALSE(too_many.ok());
  EXPECT_EQ(too_many.error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(too_many.error().field, "uplink.vf_count");
  EXPECT_TRUE(SimEswitch::create(profile, profile.max_vfs).ok());
}

TEST(SimProfile, DestroyQueryFlushAndUnknownHandles) {
  auto nic = test::unwrap(SimEswitch::create(test::loadProfile("sim"), kVfs), "sim");
  const FlowHandle counted = test::unwrap(nic->create(delivery()), "create");
  const FlowHandle uncounted = test::unwrap(nic->create(drop()), "create");
  EXPECT_NE(counted, uncounted);
  EXPECT_EQ(test::unwrap(nic->query(counted), "query"), FlowCounters{});
  EXPECT_EQ(nic->query(uncounted).error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(nic->query(999).error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(nic->destroy(uncounted).ok());
  EXPECT_EQ(nic->destroy(uncounted).error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(nic->flush().ok());
  EXPECT_EQ(nic->size(), 0u);
  EXPECT_EQ(nic->query(counted).error().code, ErrorCode::kNotFound);
}

// The device persists its rules in a journal: a reopen holds exactly what
// the device held, keeps a journal of mostly live rules as it is (a restart
// reads the device without rewriting it), cuts off a record torn by a kill,
// and opens a journal with more dead records than live rules without
// rewriting it either: the next operation compacts it, on a thread.
TEST(SimProfile, ThePersistentDeviceReopensWithItsRules) {
  test::TempDir dir("nfo-simdev");
  auto handles = [](const SimEswitch& n) {
    std::vector<std::pair<FlowHandle, std::uint32_t>> out;
    for (const auto& f : n.flows()) out.emplace_back(f.handle, f.rule.actions.size());
    return out;
  };
  // The snapshot (rules.journal) and the segments (rules.journal.<seq>).
  auto files = [&] {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
      if (e.path().filename().string().rfind("rules.journal", 0) == 0)
        out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  };
  auto fileSize = [&] {
    std::uintmax_t total = 0;
    for (const auto& f : files()) total += std::filesystem::file_size(f);
    return total;
  };
  std::vector<std::pair<FlowHandle, std::uint32_t>> held;
  {
    auto nic = test::unwrap(SimEswitch::open(test::loadProfile("sim"), kVfs, dir.path()), "open");
    for (int i = 0; i < 300; ++i) {
      test::unwrap(nic->create(delivery(static_cast<std::uint16_t>(i % kVfs))), "create");
      test::unwrap(nic->create(drop()), "create");
    }
    for (FlowHandle h = 2; h <= 600; h += 4) ASSERT_TRUE(nic->destroy(h).ok());
    held = handles(*nic);
  }
  ASSERT_EQ(held.size(), 450u);
  const auto before = fileSize();
  {
    auto nic = test::unwrap(SimEswitch::open(test::loadProfile("sim"), kVfs, dir.path()), "reopen");
    EXPECT_EQ(handles(*nic), held);
    EXPECT_EQ(fileSize(), before) << "150 dead records among 450 live rules: kept as it is";
    const FlowHandle next = test::unwrap(nic->create(drop()), "create");
    EXPECT_EQ(next, 601u) << "handles go on growing after a reopen";
    held = handles(*nic);
  }
  {
    ASSERT_GT(files().size(), 1u) << "a segment after the snapshot";
    std::ofstream(files().back(), std::ios::binary | std::ios::app) << std::string(40, '\x01');
  }
  {
    // A device that never compacted (a threshold never reached): the debt a
    // controller killed before its compaction leaves behind.
    SimEswitch::PersistOptions never;
    never.dead_records_allowed = 1'000'000;
    auto nic = test::unwrap(SimEswitch::open(test::loadProfile("sim"), kVfs, dir.path(), never), "torn");
    EXPECT_EQ(handles(*nic), held) << "the torn record never happened";
    ASSERT_TRUE(nic->destroy(held.back().first).ok());
    held.pop_back();
    for (int i = 0; i < 3000; ++i) {
      const FlowHandle h = test::unwrap(nic->create(drop()), "create");
      ASSERT_TRUE(nic->destroy(h).ok());
    }
    EXPECT_EQ(nic->compactions(), 0u);
  }
  const auto grown = fileSize();
  const auto grown_files = files();
  const auto snapshot = readAll(dir.path() + "/rules.journal");
  auto nic = test::unwrap(SimEswitch::open(test::loadProfile("sim"), kVfs, dir.path()), "reopen");
  EXPECT_EQ(handles(*nic), held);
  // The open read the 6000 dead records and rewrote nothing.
  EXPECT_FALSE(nic->compacting());
  EXPECT_EQ(nic->compactions(), 0u);
  EXPECT_EQ(files(), grown_files);
  EXPECT_EQ(fileSize(), grown);
  EXPECT_EQ(readAll(dir.path() + "/rules.journal"), snapshot);
  // The next operation compacts, on a thread, while the device goes on.
  const FlowHandle late = test::unwrap(nic->create(drop()), "create");
  held.emplace_back(late, 1);
  const FlowHandle gone = test::unwrap(nic->create(drop()), "create during the compaction");
  ASSERT_TRUE(nic->destroy(gone).ok());
  nic->waitForCompaction();
  EXPECT_EQ(nic->compactions(), 1u);
  EXPECT_EQ(nic->compactionFailures(), 0u);
  EXPECT_LT(fileSize(), grown / 4) << "6000 dead records: compacted to the 451 live rules";
  EXPECT_NE(readAll(dir.path() + "/rules.journal"), snapshot);
  for (const auto& f : grown_files) {
    if (f != dir.path() + "/rules.journal") {
      EXPECT_FALSE(std::filesystem::exists(f)) << f << ": in the new snapshot, deleted";
    }
  }
  nic.reset();
  EXPECT_EQ(handles(*test::unwrap(SimEswitch::open(test::loadProfile("sim"), kVfs, dir.path()), "again")),
            held);
}

// Past its threshold while it runs, the device compacts without being
// reopened, as often as the dead records pile up, and every operation made
// during a compaction survives a reopen.
TEST(SimProfile, ThePersistentDeviceCompactsWhileItRuns) {
  test::TempDir dir("nfo-simdev");
  std::vector<FlowHandle> held;
  std::uint64_t compactions = 0;
  {
    auto nic = test::unwrap(SimEswitch::open(test::loadProfile("sim"), kVfs, dir.path()), "open");
    for (int i = 0; i < 200; ++i) held.push_back(test::unwrap(nic->create(drop()), "create"));
    for (int i = 0; i < 5000; ++i) {
      const FlowHandle h = test::unwrap(nic->create(drop()), "create");
      if (i % 10 == 0)
        held.push_back(h);
      else
        ASSERT_TRUE(nic->destroy(h).ok());
    }
    nic->waitForCompaction();
    compactions = nic->compactions();
    EXPECT_GE(compactions, 1u) << "9000 dead records, 1024 allowed beyond the live rules";
    // And again, once as many have piled up since.
    for (int i = 0; i < 3000; ++i) {
      const FlowHandle h = test::unwrap(nic->create(drop()), "create");
      ASSERT_TRUE(nic->destroy(h).ok());
    }
    nic->waitForCompaction();
    EXPECT_GT(nic->compactions(), compactions);
    EXPECT_EQ(nic->compactionFailures(), 0u);
    EXPECT_EQ(nic->size(), held.size());
  }
  auto nic = test::unwrap(SimEswitch::open(test::loadProfile("sim"), kVfs, dir.path()), "reopen");
  std::vector<FlowHandle> got;
  for (const auto& f : nic->flows()) got.push_back(f.handle);
  EXPECT_EQ(got, held);
  EXPECT_GT(test::unwrap(nic->create(drop()), "create"), held.back()) << "handles go on growing";
}

// A device directory of another build or of the binary journal before
// common/journal.h is refused with an error naming the file, never misread.
TEST(SimProfile, ADeviceFileOfAnotherFormatIsRefusedNamingIt) {
  const struct {
    const char* name;
    std::string bytes;
  } cases[] = {
      {"old binary journal", std::string("NFOSIM01\x10\x02\0\0", 12)},
      {"another rule size", "NFOSIM03 7 1\n"},
      {"not a snapshot", "hello\n"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    test::TempDir dir("nfo-simdev");
    const std::string file = dir.path() + "/rules.journal";
    std::ofstream(file, std::ios::binary) << c.bytes;
    for (int reader = 0; reader < 2; ++reader) {
      Error e = reader ? SimEswitch::readDevice(dir.path()).error()
                       : SimEswitch::open(test::loadProfile("sim"), kVfs, dir.path()).error();
      EXPECT_EQ(e.code, ErrorCode::kInvalidValue);
      EXPECT_NE(e.message.find(file), std::string::npos) << e.message;
    }
  }
}

// The planner places rules from the profile; the sim enforces the same
// profile: every rule planned hw is accepted, every rule planned sw for a
// capability reason is refused as unsupported, for every shipped profile and
// both examples (and ConnectX-5 with VXLAN on 8472, where encap/decap go sw).
TEST(SimProfile, AgreesWithThePlannerOnEveryPlannedRule) {
  struct Scenario {
    std::string name;
    model::Intent intent;
  };
  std::vector<Scenario> scenarios;
  for (auto e : {test::Example::kVxlan, test::Example::kRouted}) {
    auto intent = test::exampleIntent(e);
    test::dropVdpa(intent);
    scenarios.push_back({test::toString(e), intent});
  }
  auto odd_port = test::exampleIntent(test::Example::kVxlan);
  test::dropVdpa(odd_port);
  odd_port.host.vxlan_udp_port = 8472;
  scenarios.push_back({"vxlan-8472", odd_port});

  std::size_t refused_seen = 0;
  for (const auto& name : test::shippedProfiles()) {
    const auto profile = test::loadProfile(name);
    for (const auto& s : scenarios) {
      SCOPED_TRACE(s.name + " on " + name);
      const auto plan = test::unwrap(flowrules::plan(s.intent, profile), "plan");
      auto nic = test::unwrap(SimEswitch::create(profile, s.intent.host.vf_count), "sim");
      for (const auto& r : plan.rules) {
        const Status v = nic->validate(r);
        using Code = PlacementReason::Code;
        if (r.placement == Placement::kHw) {
          EXPECT_TRUE(v.ok()) << formatRuleId(r.cls, r.id) << ": " << v.error().describe();
        } else if (r.reason.code == Code::kItemUnsupported ||
                   r.reason.code == Code::kActionUnsupported ||
                   r.reason.code == Code::kUdpPortUnsupported) {
          ASSERT_FALSE(v.ok()) << formatRuleId(r.cls, r.id) << " planned sw but the sim takes it";
          EXPECT_EQ(v.error().code, ErrorCode::kUnsupported);
          ++refused_seen;
        }
      }
    }
  }
  EXPECT_GT(refused_seen, 0u) << "the ConnectX-5 8472 scenario must exercise a refusal";
}

TEST(SimProfile, AgreesWithThePlannerOnTableCapacity) {
  auto profile = test::loadProfile("sim");
  profile.rules_per_group = 3;  // the FIB of the example needs more
  auto intent = test::exampleIntent(test::Example::kVxlan);
  auto host = test::SimHost::start(intent, profile);
  const auto& plan = host->plan;
  ASSERT_GT(plan.counts.sw_by_reason[static_cast<std::size_t>(PlacementReason::Code::kTableFull)],
            0u);
  EXPECT_EQ(host->report.refused, 0u) << "the planner already kept within the tables";
  EXPECT_EQ(host->nic->groupSize(1), 3u);
  for (const auto& r : plan.rules) {
    if (r.reason.code != PlacementReason::Code::kTableFull) continue;
    const Status v = host->nic->validate(r);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.error().code, ErrorCode::kTableFull);
  }
}

}  // namespace
}  // namespace nicoffload::simnic
