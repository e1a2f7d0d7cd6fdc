// SysfsNicBackend against a fake sysfs tree built in a temp dir, with fake
// devlink and VF-link seams that log what they are asked. The tree does not
// react to writes (no kernel): each test lays out the state the kernel would
// show and checks what the backend wrote, in order.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "nicoffload/offload/sysfs_nic_backend.h"
#include "support/fake_sysfs.h"
#include "support/logging_sysfs.h"

namespace nicoffload::offload {
namespace {

using model::EswitchMode;
using test::FakeSysfs;
using test::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr const char* kPf = "0000:03:00.0";
constexpr const char* kSwitchId = "b8cef60300aa01e2";

std::string vfAddr(unsigned i) { return "0000:03:00." + std::to_string(2 + i); }

// The order of everything the backend did: sysfs writes and devlink calls.
using test::Log;
using test::LoggingSysfs;

class FakeEswitch : public EswitchControl {
 public:
  FakeEswitch(EswitchMode mode, Log& log) : mode_(mode), log_(log) {}
  Result<EswitchMode> mode(const std::string& pf) override {
    if (pf != kPf) return makeError(ErrorCode::kNotFound, pf, "", "no devlink instance");
    return mode_;
  }
  Status setMode(const std::string& pf, EswitchMode m) override {
    log_.push_back(std::string("devlink ") + pf + " " +
                   (m == EswitchMode::kSwitchdev ? "switchdev" : "legacy"));
    if (refuse) return *refuse;
    mode_ = m;
    return Status::success();
  }
  std::optional<Error> refuse;

 private:
  EswitchMode mode_;
  Log& log_;
};

class FakeVfLink : public VfLinkControl {
 public:
  explicit FakeVfLink(Log& log) : log_(log) {}
  Result<std::vector<VfLinkInfo>> vfs(const std::string& netdev) override {
    if (netdev != "enp3s0f0np0")
      return makeError(ErrorCode::kNotFound, netdev, "", "no such netdev");
    return links;
  }
  Status setVf(const std::string& netdev, const VfSettings& s) override {
    std::string entry = "vf-set " + netdev + " vf " + std::to_string(s.vf);
    if (s.mac) entry += " mac " + s.mac->str();
    if (s.trust) entry += std::string(" trust ") + (*s.trust ? "on" : "off");
    if (s.spoofchk) entry += std::string(" spoofchk ") + (*s.spoofchk ? "on" : "off");
    log_.push_back(entry);
    return Status::success();
  }
  std::vector<VfLinkInfo> links;

 private:
  Log& log_;
};

struct Fixture {
  TempDir dir{"nfo-nic"};
  FakeSysfs tree{dir.path()};
  Log log;
  FakeEswitch* eswitch = nullptr;
  FakeVfLink* vf_link = nullptr;

  std::unique_ptr<SysfsNicBackend> backend(EswitchMode mode,
                                           std::optional<model::HwProfile> profile = {}) {
    SysfsNicOptions o;
    o.pf_pci = kPf;
    o.profile = std::move(profile);
    o.representor_wait = std::chrono::milliseconds(0);
    auto e = std::make_unique<FakeEswitch>(mode, log);
    auto v = std::make_unique<FakeVfLink>(log);
    eswitch = e.get();
    vf_link = v.get();
    return std::make_unique<SysfsNicBackend>(o, std::make_unique<LoggingSysfs>(dir.path(), log),
                                             std::move(e), std::move(v));
  }

  // The PF in legacy mode (its netdev has no port name / switch id), `n` VFs
  // present (as the kernel shows them after sriov_numvfs=n), bound to `driver`.
  void legacyPf(unsigned numvfs_file, unsigned vfs_present, const std::string& driver) {
    tree.pf(kPf, "enp3s0f0np0", 8, numvfs_file);
    for (unsigned i = 0; i < vfs_present; ++i) tree.vf(kPf, i, vfAddr(i), driver);
  }

  // Representors as switchdev creates them; the PF netdev gets p0 + switch id.
  void representors(unsigned n, unsigned skip = 99) {
    tree.netdevOf(kPf, "enp3s0f0np0", "p0", kSwitchId);
    for (unsigned i = 0; i < n; ++i)
      if (i != skip)
        tree.netdevOf(kPf, "enp3s0f0npf0vf" + std::to_string(i), "pf0vf" + std::to_string(i),
                      kSwitchId);
  }
};

std::string unbind(unsigned i) { return "bus/pci/drivers/mlx5_core/unbind <- " + vfAddr(i); }
std::string bind(unsigned i) { return "bus/pci/drivers/mlx5_core/bind <- " + vfAddr(i); }
const std::string kNumvfs = std::string("bus/pci/devices/") + kPf + "/sriov_numvfs <- ";
const std::string kAutoprobe =
    std::string("bus/pci/devices/") + kPf + "/sriov_drivers_autoprobe <- ";
const std::string kToSwitchdev = std::string("devlink ") + kPf + " switchdev";
const std::string kToLegacy = std::string("devlink ") + kPf + " legacy";

TEST(SysfsNic, FromLegacyWithoutVfsRunsTheMlx5Sequence) {
  Fixture f;
  f.legacyPf(0, 4, "");  // after sriov_numvfs=4 with autoprobe off the VFs are unbound
  f.representors(4);
  auto nic = f.backend(EswitchMode::kLegacy);
  auto r = nic->ensureSwitchdev(4);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_TRUE(r->changed);
  EXPECT_THAT(f.log, ElementsAre(kAutoprobe + "0", kNumvfs + "4", kToSwitchdev, bind(0), bind(1),
                                 bind(2), bind(3), kAutoprobe + "1"));
  EXPECT_EQ(r->steps.front(), "sriov_drivers_autoprobe=0");
  EXPECT_EQ(r->steps[1], "sriov_numvfs=4");
  EXPECT_EQ(r->steps[2], "devlink eswitch mode switchdev");
  EXPECT_EQ(r->steps[3], "bind 0000:03:00.2 to mlx5_core");
  EXPECT_EQ(f.tree.read(std::string("devices/pci0000:00/") + kPf + "/sriov_numvfs"), "4");
  EXPECT_EQ(f.tree.read(std::string("devices/pci0000:00/") + kPf + "/sriov_drivers_autoprobe"),
            "1");
  EXPECT_EQ(f.tree.read("bus/pci/drivers/mlx5_core/bind"), vfAddr(3));  // the last one written
}

TEST(SysfsNic, LegacyWithBoundVfsUnbindsSwitchesAndRebinds) {
  Fixture f;
  f.legacyPf(3, 3, "mlx5_core");
  f.representors(3);
  auto nic = f.backend(EswitchMode::kLegacy);
  auto r = nic->ensureSwitchdev(3);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_THAT(
      f.log, ElementsAre(unbind(0), unbind(1), unbind(2), kToSwitchdev, bind(0), bind(1), bind(2)));
}

TEST(SysfsNic, ChangingTheVfCountInSwitchdevGoesThroughZeroAndLegacy) {
  Fixture f;
  f.legacyPf(2, 4, "");
  f.representors(4);
  auto nic = f.backend(EswitchMode::kSwitchdev);
  auto r = nic->ensureSwitchdev(4);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_THAT(f.log,
              ElementsAre(kAutoprobe + "0", kNumvfs + "0", kToLegacy, kNumvfs + "4", kToSwitchdev,
                          bind(0), bind(1), bind(2), bind(3), kAutoprobe + "1"));
}

TEST(SysfsNic, AlreadyInSwitchdevIsNotTouched) {
  Fixture f;
  f.legacyPf(4, 4, "mlx5_core");
  f.representors(4);
  auto nic = f.backend(EswitchMode::kSwitchdev);
  auto r = nic->ensureSwitchdev(4);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_FALSE(r->changed);
  EXPECT_TRUE(r->steps.empty());
  EXPECT_TRUE(f.log.empty()) << f.log.front();
}

TEST(SysfsNic, InterruptedRunIsFinishedByBindingTheUnboundVfs) {
  Fixture f;
  f.legacyPf(2, 2, "");
  f.tree.bind(vfAddr(0), "mlx5_core");  // VF 1 was left unbound by a crash
  f.representors(2);
  auto nic = f.backend(EswitchMode::kSwitchdev);
  auto r = nic->ensureSwitchdev(2);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_TRUE(r->changed);
  EXPECT_THAT(f.log, ElementsAre(bind(1)));
}

TEST(SysfsNic, VfBoundToVfioPciRefusesTheSwitch) {
  Fixture f;
  f.legacyPf(4, 4, "mlx5_core");
  f.tree.bind(vfAddr(2), "vfio-pci");
  f.representors(4);
  auto nic = f.backend(EswitchMode::kLegacy);
  auto r = nic->ensureSwitchdev(4);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kBusy);
  EXPECT_THAT(r.error().message,
              HasSubstr("VF 2 (0000:03:00.4) of PF 0000:03:00.0 is bound to vfio-pci"));
  EXPECT_THAT(r.error().message, HasSubstr("in use"));
  EXPECT_TRUE(f.log.empty()) << "nothing may be written before the refusal: " << f.log.front();
}

TEST(SysfsNic, VfBackingAVdpaDeviceRefusesTheSwitch) {
  Fixture f;
  f.legacyPf(2, 2, "mlx5_core");
  f.tree.vdpaDevice(vfAddr(1), 1, "nfo0123456789ab", "vhost_vdpa", 0);
  auto nic = f.backend(EswitchMode::kLegacy);
  auto r = nic->ensureSwitchdev(2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kBusy);
  EXPECT_THAT(
      r.error().message,
      HasSubstr("VF 1 (0000:03:00.3) of PF 0000:03:00.0 backs vDPA device nfo0123456789ab"));
  EXPECT_TRUE(f.log.empty());
}

TEST(SysfsNic, ModeSwitchRefusedByTheKernelRebindsTheVfs) {
  Fixture f;
  f.legacyPf(2, 2, "mlx5_core");
  f.representors(2);
  auto nic = f.backend(EswitchMode::kLegacy);
  f.eswitch->refuse =
      makeError(ErrorCode::kBusy, "devlink", "",
                "devlink eswitch set pci/0000:03:00.0 mode switchdev: Device or resource busy "
                "(kernel: Can't change mode while VFs are in use)");
  auto r = nic->ensureSwitchdev(2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kBusy);
  EXPECT_THAT(r.error().message,
              HasSubstr("PF 0000:03:00.0: switching the eswitch to switchdev failed"));
  EXPECT_THAT(r.error().message, HasSubstr("Can't change mode while VFs are in use"));
  EXPECT_THAT(r.error().message, HasSubstr("bound again"));
  EXPECT_THAT(f.log, ElementsAre(unbind(0), unbind(1), kToSwitchdev, bind(0), bind(1)));
}

TEST(SysfsNic, KernelRefusalAfterCreatingVfsRestoresAutoprobe) {
  Fixture f;
  f.legacyPf(0, 2, "");
  auto nic = f.backend(EswitchMode::kLegacy);
  f.eswitch->refuse = makeError(ErrorCode::kBusy, "devlink", "", "busy");
  auto r = nic->ensureSwitchdev(2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(f.log.back(), kAutoprobe + "1");
  EXPECT_EQ(f.tree.read(std::string("devices/pci0000:00/") + kPf + "/sriov_drivers_autoprobe"),
            "1");
}

TEST(SysfsNic, MissingRepresentorIsNamed) {
  Fixture f;
  f.legacyPf(4, 4, "mlx5_core");
  f.representors(4, /*skip=*/2);
  auto nic = f.backend(EswitchMode::kLegacy);
  auto r = nic->ensureSwitchdev(4);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(r.error().message,
              HasSubstr("representor of VF 2 (0000:03:00.4) on PF 0000:03:00.0 not found"));
  EXPECT_THAT(r.error().message, HasSubstr(std::string("phys_switch_id ") + kSwitchId));
  EXPECT_THAT(r.error().message, HasSubstr("phys_port_name pf0vf2"));
  auto rep = nic->representorOf(2);
  ASSERT_FALSE(rep.ok());
  EXPECT_EQ(rep.error().code, ErrorCode::kNotFound);
  auto ok = nic->representorOf(3);
  ASSERT_TRUE(ok.ok()) << ok.error().describe();
  EXPECT_EQ(*ok, "enp3s0f0npf0vf3");
}

TEST(SysfsNic, RepresentorOfAnotherSwitchOrPfIsNotTaken) {
  Fixture f;
  f.legacyPf(1, 1, "mlx5_core");
  f.representors(0);
  f.tree.netdevOf("0000:03:00.1", "enp3s0f1npf1vf0", "pf1vf0", kSwitchId);  // the other PF's VF 0
  f.tree.netdevOf("0000:81:00.0", "enp129s0f0npf0vf0", "pf0vf0",
                  "1111222233334444");  // another NIC
  auto nic = f.backend(EswitchMode::kSwitchdev);
  auto rep = nic->representorOf(0);
  ASSERT_FALSE(rep.ok());
  f.tree.netdevOf(kPf, "eth7", "pf0vf0", kSwitchId);
  rep = nic->representorOf(0);
  ASSERT_TRUE(rep.ok()) << rep.error().describe();
  EXPECT_EQ(*rep, "eth7");
}

TEST(SysfsNic, TooManyVfsAreRefused) {
  Fixture f;
  f.legacyPf(0, 0, "");
  auto nic = f.backend(EswitchMode::kLegacy);
  auto r = nic->ensureSwitchdev(9);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidValue);
  EXPECT_THAT(r.error().message,
              HasSubstr("PF 0000:03:00.0 supports at most 8 VFs (sriov_totalvfs), 9 asked"));

  model::HwProfile p;
  p.name = "tiny";
  p.model = "Tiny NIC";
  p.max_vfs = 2;
  p.max_vfs_source = "test";
  p.eswitch_modes = {EswitchMode::kLegacy, EswitchMode::kSwitchdev};
  auto limited = f.backend(EswitchMode::kLegacy, p);
  r = limited->ensureSwitchdev(3);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("profile tiny allows at most 2"));
  p.eswitch_modes = {EswitchMode::kLegacy};
  p.eswitch_source = "test: legacy only";
  auto legacy_only = f.backend(EswitchMode::kLegacy, p);
  r = legacy_only->ensureSwitchdev(1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnsupported);
  EXPECT_THAT(r.error().message, HasSubstr("no switchdev eswitch mode (test: legacy only)"));
  EXPECT_TRUE(f.log.empty());
}

TEST(SysfsNic, MissingVfAfterNumvfsIsReported) {
  Fixture f;
  f.legacyPf(0, 2, "");  // the "kernel" shows only 2 of the 3 VFs asked
  auto nic = f.backend(EswitchMode::kLegacy);
  auto r = nic->ensureSwitchdev(3);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(r.error().message, HasSubstr("VF 2 is missing after writing sriov_numvfs"));
}

TEST(SysfsNic, MissingPfAndMissingSriov) {
  Fixture f;
  auto nic = f.backend(EswitchMode::kLegacy);
  auto st = nic->status();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(st.error().message, HasSubstr("PF 0000:03:00.0 not found"));
  f.tree.link(std::string("bus/pci/devices/") + kPf,
              std::string("../../../devices/pci0000:00/") + kPf);
  f.tree.file(std::string("devices/pci0000:00/") + kPf + "/vendor", "0x15b3\n");
  auto r = nic->ensureSwitchdev(1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnsupported);
  EXPECT_THAT(r.error().message, HasSubstr("PF 0000:03:00.0 has no SR-IOV"));
}

TEST(SysfsNic, StatusReadsEverythingBack) {
  Fixture f;
  f.legacyPf(3, 3, "mlx5_core");
  f.tree.bind(vfAddr(1), "vfio-pci");
  f.tree.netdevOf(vfAddr(0), "enp3s0f0v0", "", "");
  f.representors(3);
  f.tree.vdpaDevice(vfAddr(2), 2, "nfoaaaaaaaaaaaa", "vhost_vdpa", 4);
  auto nic = f.backend(EswitchMode::kSwitchdev);
  f.vf_link->links = {{0, *MacAddr::parse("52:54:00:00:00:01"), true, false},
                      {2, *MacAddr::parse("52:54:00:00:00:03"), std::nullopt, std::nullopt}};
  auto st = nic->status();
  ASSERT_TRUE(st.ok()) << st.error().describe();
  EXPECT_EQ(st->pci, kPf);
  EXPECT_EQ(st->netdev, "enp3s0f0np0");
  EXPECT_EQ(st->eswitch_mode, EswitchMode::kSwitchdev);
  EXPECT_EQ(st->total_vfs, 8);
  EXPECT_EQ(st->num_vfs, 3);
  EXPECT_TRUE(st->drivers_autoprobe);
  EXPECT_EQ(st->switch_id, kSwitchId);
  ASSERT_EQ(st->vfs.size(), 3u);
  EXPECT_EQ(st->vfs[0].pci, "0000:03:00.2");
  EXPECT_EQ(st->vfs[0].driver, "mlx5_core");
  EXPECT_EQ(st->vfs[0].netdev, "enp3s0f0v0");
  EXPECT_EQ(st->vfs[0].representor, "enp3s0f0npf0vf0");
  EXPECT_EQ(st->vfs[0].mac, MacAddr::parse("52:54:00:00:00:01"));
  EXPECT_EQ(st->vfs[0].trust, true);
  EXPECT_EQ(st->vfs[0].spoofchk, false);
  EXPECT_EQ(st->vfs[1].driver, "vfio-pci");
  EXPECT_FALSE(st->vfs[1].mac.has_value());
  EXPECT_EQ(st->vfs[2].representor, "enp3s0f0npf0vf2");
  EXPECT_THAT(st->vfs[2].vdpa_devices, ElementsAre("nfoaaaaaaaaaaaa"));
  EXPECT_TRUE(st->warnings.empty()) << st->warnings.front();
}

TEST(SysfsNic, StatusKeepsGoingWhenDevlinkIsMissing) {
  Fixture f;
  f.legacyPf(0, 0, "");
  SysfsNicOptions o;
  o.pf_pci = kPf;
  class NoDevlink : public EswitchControl {
    Result<EswitchMode> mode(const std::string&) override {
      return makeError(ErrorCode::kUnsupported, "genl family", "devlink",
                       "generic netlink family 'devlink' not found: no devlink");
    }
    Status setMode(const std::string&, EswitchMode) override { return Status::success(); }
  };
  SysfsNicBackend nic(o, std::make_unique<FsSysfsIo>(f.dir.path()), std::make_unique<NoDevlink>(),
                      std::make_unique<FakeVfLink>(f.log));
  auto st = nic.status();
  ASSERT_TRUE(st.ok()) << st.error().describe();
  EXPECT_FALSE(st->eswitch_mode.has_value());
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_THAT(st->warnings[0], HasSubstr("'devlink' not found"));
  auto r = nic.ensureSwitchdev(0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnsupported);
  EXPECT_THAT(r.error().message, HasSubstr("PF 0000:03:00.0: cannot read the eswitch mode"));
}

TEST(SysfsNic, VfSettingsGoToThePfNetdevAndReleaseScrubs) {
  Fixture f;
  f.legacyPf(2, 2, "mlx5_core");
  auto nic = f.backend(EswitchMode::kSwitchdev);
  ASSERT_TRUE(nic->setVfMac(1, *MacAddr::parse("52:54:00:12:34:56")).ok());
  ASSERT_TRUE(nic->setVfTrust(1, true).ok());
  ASSERT_TRUE(nic->setVfSpoofCheck(0, true).ok());
  ASSERT_TRUE(nic->releaseVf(1).ok());
  EXPECT_THAT(f.log,
              ElementsAre("vf-set enp3s0f0np0 vf 1 mac 52:54:00:12:34:56",
                          "vf-set enp3s0f0np0 vf 1 trust on", "vf-set enp3s0f0np0 vf 0 spoofchk on",
                          "vf-set enp3s0f0np0 vf 1 mac 00:00:00:00:00:00 trust off spoofchk on"));
  auto bad = nic->setVfMac(5, *MacAddr::parse("52:54:00:12:34:56"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(bad.error().message, HasSubstr("VF 5 of PF 0000:03:00.0 does not exist"));
  EXPECT_THAT(bad.error().message, HasSubstr("sriov_numvfs is 2"));
  EXPECT_TRUE(nic->releaseVf(5).ok()) << "releasing a VF that is gone is not an error";
}

}  // namespace
}  // namespace nicoffload::offload
