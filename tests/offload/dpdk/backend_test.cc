// The DPDK flow backend for real: the EAL runs in this process (--no-huge
// --no-pci, net_null / net_ring vdevs; net_tap hot-plugged), ports are found
// and started, every rule class is translated and validated by the PMDs, and
// their refusals place each rule in sw with the device's own message.
//
// What only a ConnectX NIC can show (rules accepted in the eswitch, counters
// that count, representor discovery through devargs) is listed in
// docs/operator-guide.md, "What only a ConnectX NIC can validate".
#include <gtest/gtest.h>
#include <rte_dev.h>
#include <rte_ethdev.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "nicoffload/dpdk/dpdk_flow_backend.h"
#include "nicoffload/dpdk/eal.h"
#include "nicoffload/flowrules/hw_apply.h"
#include "nicoffload/flowrules/planner.h"
#include "support/test_support.h"

namespace nicoffload::dpdk {
namespace {

using namespace flowrules;  // NOLINT: the rule IR, in a test
using Code = PlacementReason::Code;

std::string prefix() { return "nfo-dpdk-" + std::to_string(::getpid()); }

// Ports: 0 net_null0 (the "PF"), 1..3 net_null1..3 and 4 net_ring0 (the
// "representors" of vf0..vf3).
class EalEnvironment : public testing::Environment {
 public:
  void SetUp() override {
    auto eal = Eal::start({"nicoffload-dpdk-test",
                           "--no-huge",
                           "--no-pci",
                           "-m",
                           "512",
                           "--no-shconf",
                           "--file-prefix",
                           prefix(),
                           "--no-telemetry",
                           "--log-level=*:error",
                           "--vdev",
                           "net_null0",
                           "--vdev",
                           "net_null1",
                           "--vdev",
                           "net_null2",
                           "--vdev",
                           "net_null3",
                           "--vdev",
                           "net_ring0"});
    ASSERT_TRUE(eal.ok()) << eal.error().describe();
    eal_ = std::move(eal).value();
  }
  void TearDown() override {
    const std::filesystem::path run = "/var/run/dpdk/" + prefix();
    EXPECT_TRUE(eal_->stop().ok());
    EXPECT_FALSE(eal_->running());
    EXPECT_EQ(rte_eth_dev_count_avail(), 0u) << "every port closed";
    std::filesystem::remove_all(run);
    EXPECT_FALSE(std::filesystem::exists(run));
  }

 private:
  std::unique_ptr<Eal> eal_;
};

const auto* const kEnv = testing::AddGlobalTestEnvironment(new EalEnvironment);

DpdkFlowConfig numbered(std::uint16_t uplink, std::uint16_t vfs) {
  DpdkFlowConfig c;
  c.uplink_port_id = uplink;
  c.first_representor_port_id = 1;
  c.vf_count = vfs;
  return c;
}

std::unique_ptr<DpdkFlowBackend> openOrFail(const DpdkFlowConfig& c) {
  auto b = DpdkFlowBackend::open(c, test::loadProfile("connectx-6dx"));
  if (!b) throw std::runtime_error(b.error().describe());
  return std::move(b).value();
}

model::Intent hv1() {
  auto intent = test::exampleIntent(test::Example::kVxlan);
  intent.host.vf_count = 4;  // the four representor stand-ins
  return intent;
}

TEST(DpdkPorts, NumberedPortsAndTheTransferProxy) {
  EXPECT_EQ(rte_eth_dev_count_avail(), 5u);
  std::vector<std::string> notes;
  auto ports = discoverPorts(numbered(0, 6), &notes);
  ASSERT_TRUE(ports.ok()) << ports.error().describe();
  EXPECT_EQ(ports->uplink, 0);
  EXPECT_EQ(ports->proxy, 0) << "net_null has no transfer proxy: the port itself";
  ASSERT_EQ(ports->vf.size(), 6u);
  for (std::uint16_t n = 0; n < 4; ++n)
    EXPECT_EQ(ports->vf[n], std::optional<std::uint16_t>(1 + n));
  EXPECT_FALSE(ports->vf[4].has_value()) << "port 5 does not exist";
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("no transfer proxy"), std::string::npos) << notes[0];

  auto missing = discoverPorts(numbered(9, 0));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().field, "dpdk.uplink_port_id");
}

TEST(DpdkPorts, ThePfFromItsDevargs) {
  DpdkFlowConfig c;
  c.pf_devargs = "net_ring0";
  c.vf_count = 2;
  auto ports = discoverPorts(c);
  ASSERT_TRUE(ports.ok()) << ports.error().describe();
  EXPECT_EQ(ports->uplink, 4);
  // Virtual devices have no representors: "net_ring0,representor=vf0"
  // matches nothing (on mlx5 it is the VF's representor port).
  EXPECT_FALSE(ports->vf[0].has_value());
  EXPECT_FALSE(ports->vf[1].has_value());
  c.pf_devargs = "net_null7,foo=bar";
  auto missing = discoverPorts(c);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().field, "dpdk.pf_devargs");
  EXPECT_NE(missing.error().message.find("net_null7"), std::string::npos);
}

TEST(DpdkBackend, OpensStartsPortsAndReportsCapabilities) {
  auto b = openOrFail(numbered(0, 4));
  const auto& caps = b->capabilities();
  EXPECT_EQ(caps.backend, "dpdk");
  EXPECT_EQ(caps.device, "net_null0");
  EXPECT_FALSE(caps.enforced) << "the profile's claims; the device decides";
  EXPECT_EQ(caps.vf_count, 4);
  EXPECT_TRUE(caps.supports(model::ActionType::kVxlanEncap));
  // Isolated mode is asked of every port; net_null has no flow ops and says so.
  std::size_t isolate_notes = 0;
  for (const auto& n : b->notes()) isolate_notes += n.find("rte_flow_isolate") != std::string::npos;
  EXPECT_EQ(isolate_notes, 5u);
  for (const auto& n : b->notes()) EXPECT_EQ(n.find("not started"), std::string::npos) << n;
  // The ports run: a Tx burst on a started null port is taken.
  rte_eth_link link{};
  EXPECT_EQ(rte_eth_link_get_nowait(0, &link), 0);
  EXPECT_EQ(link.link_status, RTE_ETH_LINK_UP);
}

TEST(DpdkBackend, PortsWithoutFlowSupportRefuseEveryRuleClassIntoSoftware) {
  for (auto e : {test::Example::kVxlan, test::Example::kRouted}) {
    auto intent = e == test::Example::kVxlan ? hv1() : test::exampleIntent(e);
    SCOPED_TRACE(intent.host.name);
    const auto plan = test::planOrThrow(intent, test::loadProfile("connectx-6dx"));
    HwApplier applier(openOrFail(numbered(0, 4)));
    auto& backend = static_cast<DpdkFlowBackend&>(applier.backend());
    const auto report = applier.apply(plan.rules, ruleDependencies(intent, plan.rules));
    EXPECT_TRUE(report.clean());
    EXPECT_EQ(report.created, 0u);
    EXPECT_EQ(backend.size(), 0u);
    std::set<RuleClass> classes;
    std::size_t planned_hw = 0;
    for (const auto& r : plan.rules) {
      if (r.placement != Placement::kHw) continue;
      ++planned_hw;
      const AppliedRule* a = applier.find(r.id);
      ASSERT_NE(a, nullptr);
      EXPECT_EQ(a->placement, Placement::kSw);
      if (a->reason.code == Code::kFollows) continue;
      classes.insert(r.cls);
      EXPECT_EQ(a->reason.code, Code::kDeviceRefused);
      ASSERT_NE(a->device_error, nullptr);
      EXPECT_EQ(a->device_error->code, ErrorCode::kUnsupported);
      EXPECT_EQ(a->device_error->message,
                "Function not implemented (rte_flow_validate on port 0: ENOSYS)");
      EXPECT_NE(
          describeApplied(*a, test::loadProfile("connectx-6dx")).find("Function not implemented"),
          std::string::npos);
    }
    const auto& c = applier.counters();
    EXPECT_EQ(c.hw, 0u);
    EXPECT_EQ(c.refused_by_code[static_cast<std::size_t>(ErrorCode::kUnsupported)],
              planned_hw - report.followed);
    EXPECT_EQ(c.validations, planned_hw - report.followed)
        << "validate before create, for every rule";
    EXPECT_EQ(c.creations, 0u) << "nothing the device refused was created";
    if (e == test::Example::kVxlan) {
      EXPECT_TRUE(classes.count(RuleClass::kVxlanEgress));
      EXPECT_TRUE(classes.count(RuleClass::kArpTrap));
      EXPECT_TRUE(classes.count(RuleClass::kAntiSpoofing));
      EXPECT_TRUE(classes.count(RuleClass::kLocalDelivery));
    } else {
      EXPECT_TRUE(classes.count(RuleClass::kRoutedEgress));
    }
    EXPECT_TRUE(applier.flush().ok()) << "no flow support: nothing to flush";
  }
}

TEST(DpdkBackend, EveryRuleClassIsTranslatedAndValidatedByThePmd) {
  auto b = openOrFail(numbered(0, 4));
  std::set<RuleClass> classes;
  for (auto e : {test::Example::kVxlan, test::Example::kRouted}) {
    auto intent = e == test::Example::kVxlan ? hv1() : test::exampleIntent(e);
    for (const auto& r : test::planOrThrow(intent, test::loadProfile("connectx-6dx")).rules) {
      const Status v = b->validate(r);
      ASSERT_FALSE(v.ok()) << formatRuleId(r.cls, r.id) << ": net_null has no rte_flow";
      EXPECT_EQ(v.error().code, ErrorCode::kUnsupported);
      EXPECT_EQ(v.error().message,
                "Function not implemented (rte_flow_validate on port 0: ENOSYS)");
      auto h = b->create(r);
      ASSERT_FALSE(h.ok());
      EXPECT_EQ(h.error().code, ErrorCode::kUnsupported);
      EXPECT_NE(h.error().message.find("rte_flow_create on port 0"), std::string::npos);
      classes.insert(r.cls);
    }
  }
  EXPECT_EQ(classes.size(), 6u);
  EXPECT_EQ(b->size(), 0u);
}

TEST(DpdkBackend, ATranslationErrorIsARefusalNamingTheAction) {
  // vf3 has no port when only three representors exist.
  auto intent = hv1();
  const auto plan = test::planOrThrow(intent, test::loadProfile("connectx-6dx"));
  HwApplier applier(openOrFail(numbered(0, 3)));
  applier.apply(plan.rules, ruleDependencies(intent, plan.rules));
  std::size_t seen = 0;
  for (const auto& r : plan.rules) {
    const AppliedRule* a = applier.find(r.id);
    if (!a->device_error ||
        a->device_error->message.find("vf3 has no representor port") == std::string::npos)
      continue;
    ++seen;
    EXPECT_EQ(a->device_error->code, ErrorCode::kInvalidValue);
    EXPECT_TRUE(a->device_error->value == "represented_port" ||
                a->device_error->value == "port_representor");
  }
  EXPECT_GT(seen, 0u);
}

TEST(DpdkBackend, UnknownHandlesAndFlush) {
  auto b = openOrFail(numbered(0, 4));
  EXPECT_EQ(b->destroy(42).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(b->query(42).error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(b->flush().ok());
}

// net_tap has rte_flow (TC flower) but no eswitch: it refuses the transfer
// attribute, naming it. An ingress rule goes through validate and create on
// the real PMD.
TEST(DpdkBackend, TapRefusesTransferWithItsOwnMessage) {
  const std::string iface = "nfo" + std::to_string(::getpid() % 1000000);
  ASSERT_EQ(rte_dev_probe(("net_tap0,iface=" + iface).c_str()), 0)
      << "net_tap needs root and /dev/net/tun";
  DpdkFlowConfig c;
  c.pf_devargs = "net_tap0";
  auto ports = discoverPorts(c);
  ASSERT_TRUE(ports.ok());
  // The tap as the PF, net_null1..4 as the representors.
  c = numbered(ports->uplink, 4);
  c.start_ports = false;
  HwApplier applier(openOrFail(c));
  auto& backend = static_cast<DpdkFlowBackend&>(applier.backend());
  EXPECT_EQ(backend.ports().proxy, ports->uplink) << "net_tap is its own transfer proxy";

  auto intent = hv1();
  const auto plan = test::planOrThrow(intent, test::loadProfile("connectx-6dx"));
  const auto report = applier.apply(plan.rules, ruleDependencies(intent, plan.rules));
  EXPECT_EQ(report.created, 0u);
  const std::string expected = "transfer is not supported (rte_flow_validate on port " +
                               std::to_string(ports->uplink) + ": ENOTSUP)";
  std::size_t refused = 0;
  for (const auto& r : plan.rules) {
    const AppliedRule* a = applier.find(r.id);
    if (a->reason.code != Code::kDeviceRefused) continue;
    ++refused;
    EXPECT_EQ(a->device_error->code, ErrorCode::kUnsupported);
    EXPECT_EQ(a->device_error->field, formatRuleId(r.cls, r.id) + ".attr");
    EXPECT_EQ(a->device_error->value, "transfer");
    EXPECT_EQ(a->device_error->message, expected);
  }
  EXPECT_EQ(refused, applier.counters().refused());
  EXPECT_GT(refused, 10u);

  // An ingress (non-transfer) rule: the tap validates it, then create asks
  // the kernel for a TC flower filter. Either the filter is made (then
  // destroy and flush run for real) or the kernel's refusal comes back.
  FlowRule ingress;
  ingress.id = 7;
  ingress.cls = RuleClass::kAntiSpoofing;
  ingress.attr.transfer = false;
  ingress.attr.ingress = true;
  ingress.pattern.push_back(EthItem{});
  ingress.actions.push_back(DropAction{});
  EXPECT_TRUE(backend.validate(ingress).ok());
  auto h = backend.create(ingress);
  if (h.ok()) {
    EXPECT_EQ(backend.size(), 1u);
    EXPECT_EQ(backend.query(*h).error().code, ErrorCode::kUnsupported) << "no count action";
    EXPECT_TRUE(backend.destroy(*h).ok());
    EXPECT_EQ(backend.destroy(*h).error().code, ErrorCode::kNotFound);
  } else {
    EXPECT_NE(h.error().message.find("(rte_flow_create on port " + std::to_string(ports->uplink)),
              std::string::npos)
        << h.error().describe();
    EXPECT_EQ(backend.size(), 0u);
  }
  EXPECT_TRUE(backend.flush().ok());
  EXPECT_EQ(backend.size(), 0u);
}

}  // namespace
}  // namespace nicoffload::dpdk
