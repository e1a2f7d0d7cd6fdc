// The simulated NIC: the production SysfsNicBackend driven over the
// simulated kernel and its sysfs tree, with the profile enforced.
#include "nicoffload/offload/sim_pf.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "nicoffload/offload/sysfs_nic_backend.h"
#include "support/fake_sysfs.h"
#include "support/test_support.h"

namespace nicoffload::offload {
namespace {

using model::EswitchMode;
using test::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::unique_ptr<SimPf> openSim(const std::string& dir, const std::string& profile = "sim") {
  SimPfOptions o;
  o.dir = dir;
  o.profile = test::loadProfile(profile);
  auto nic = SimPf::open(std::move(o));
  if (!nic) throw std::runtime_error(nic.error().describe());
  return std::move(*nic);
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The journal segments (nicoffload-sim/state.journal.<seq>), by seq.
std::vector<std::string> journalSegments(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/nicoffload-sim"))
    if (e.path().filename().string().rfind("state.journal.", 0) == 0)
      out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// All of the journal, segment after segment.
std::string journalText(const std::string& dir) {
  std::string all;
  for (const auto& p : journalSegments(dir)) all += readFile(p);
  return all;
}

TEST(SimPf, StartsInLegacyWithoutVfs) {
  TempDir dir("nfo-sim");
  auto sim = openSim(dir.path());
  auto st = sim->makeBackend()->status();
  ASSERT_TRUE(st.ok()) << st.error().describe();
  EXPECT_EQ(st->eswitch_mode, EswitchMode::kLegacy);
  EXPECT_EQ(st->total_vfs, sim->profile().max_vfs);
  EXPECT_EQ(st->num_vfs, 0);
  EXPECT_EQ(st->netdev, "simpf0");
  EXPECT_TRUE(st->switch_id.empty());
  EXPECT_TRUE(st->vfs.empty());
  EXPECT_TRUE(st->warnings.empty()) << st->warnings.front();
}

TEST(SimPf, SwitchdevWithVfsAndRepresentorsThenIdempotent) {
  TempDir dir("nfo-sim");
  auto sim = openSim(dir.path());
  auto nic = sim->makeBackend();
  EXPECT_EQ(nic->name(), "sim");
  auto r = nic->ensureSwitchdev(4);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_TRUE(r->changed);
  EXPECT_THAT(r->steps,
              ElementsAre("sriov_drivers_autoprobe=0", "sriov_numvfs=4",
                          "devlink eswitch mode switchdev", "bind 0000:03:00.2 to mlx5_core",
                          "bind 0000:03:00.3 to mlx5_core", "bind 0000:03:00.4 to mlx5_core",
                          "bind 0000:03:00.5 to mlx5_core", "sriov_drivers_autoprobe=1"));
  auto st = nic->status();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->eswitch_mode, EswitchMode::kSwitchdev);
  EXPECT_EQ(st->num_vfs, 4);
  EXPECT_FALSE(st->switch_id.empty());
  ASSERT_EQ(st->vfs.size(), 4u);
  for (unsigned i = 0; i < 4; ++i) {
    EXPECT_EQ(st->vfs[i].driver, "mlx5_core");
    EXPECT_EQ(st->vfs[i].representor, "pf0vf" + std::to_string(i));
    EXPECT_EQ(st->vfs[i].netdev, "simpf0v" + std::to_string(i));
    EXPECT_EQ(st->vfs[i].mac, MacAddr{});
  }
  // The tree is what production code reads in /sys.
  EXPECT_EQ(readFile(dir / "class/net/pf0vf2/phys_port_name"), "pf0vf2\n");
  EXPECT_EQ(readFile(dir / "class/net/simpf0/phys_port_name"), "p0\n");
  EXPECT_EQ(readFile(dir / "bus/pci/devices/0000:03:00.0/sriov_numvfs"), "4\n");
  auto rep = nic->representorOf(3);
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(*rep, "pf0vf3");

  auto again = nic->ensureSwitchdev(4);
  ASSERT_TRUE(again.ok()) << again.error().describe();
  EXPECT_FALSE(again->changed);
  EXPECT_TRUE(again->steps.empty());

  auto more = nic->ensureSwitchdev(6);
  ASSERT_TRUE(more.ok()) << more.error().describe();
  EXPECT_THAT(more->steps,
              ::testing::IsSupersetOf({"sriov_numvfs=0", "devlink eswitch mode legacy",
                                       "sriov_numvfs=6", "devlink eswitch mode switchdev"}));
  EXPECT_EQ(nic->status()->vfs.size(), 6u);
}

TEST(SimPf, EnforcesTheProfile) {
  TempDir dir("nfo-sim");
  auto sim = openSim(dir.path(), "connectx-6dx");
  auto nic = sim->makeBackend();
  const auto max = sim->profile().max_vfs;
  auto r = nic->ensureSwitchdev(static_cast<std::uint16_t>(max + 1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidValue);
  EXPECT_THAT(r.error().message,
              HasSubstr("profile connectx-6dx allows at most " + std::to_string(max)));

  // Straight to the kernel, past the backend: the sim kernel refuses too.
  auto io = sim->sysfs();
  auto w = io->write("bus/pci/devices/0000:03:00.0/sriov_numvfs", std::to_string(max + 1));
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, ErrorCode::kInvalidValue);
  EXPECT_THAT(w.error().message, HasSubstr("exceed sriov_totalvfs"));
  ASSERT_TRUE(io->write("bus/pci/devices/0000:03:00.0/sriov_numvfs", "2").ok());
  w = io->write("bus/pci/devices/0000:03:00.0/sriov_numvfs", "3");
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, ErrorCode::kBusy)
      << "the kernel changes the VF count only from and to 0";
}

TEST(SimPf, LegacyOnlyProfileHasNoSwitchdev) {
  TempDir dir("nfo-sim");
  SimPfOptions o;
  o.dir = dir.path();
  o.profile = test::loadProfile("sim");
  o.profile.eswitch_modes = {EswitchMode::kLegacy};
  o.profile.eswitch_source = "test: legacy only";
  auto sim = SimPf::open(o);
  ASSERT_TRUE(sim.ok());
  auto r = (*sim)->makeBackend()->ensureSwitchdev(2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnsupported);
  EXPECT_THAT(r.error().message, HasSubstr("no switchdev eswitch mode (test: legacy only)"));
}

TEST(SimPf, VfPassedThroughWithVfioPciBlocksTheSwitch) {
  TempDir dir("nfo-sim");
  auto sim = openSim(dir.path());
  auto nic = sim->makeBackend();
  ASSERT_TRUE(nic->ensureSwitchdev(3).ok());
  // What an operator (or libvirt's managed hostdev) does for passthrough.
  auto io = sim->sysfs();
  auto no_override = io->write("bus/pci/drivers/vfio-pci/bind", "0000:03:00.3");
  ASSERT_FALSE(no_override.ok()) << "vfio-pci takes a VF only through driver_override";
  ASSERT_TRUE(io->write("bus/pci/drivers/mlx5_core/unbind", "0000:03:00.3").ok());
  ASSERT_TRUE(io->write("bus/pci/devices/0000:03:00.3/driver_override", "vfio-pci").ok());
  ASSERT_TRUE(io->write("bus/pci/drivers/vfio-pci/bind", "0000:03:00.3").ok());
  auto st = nic->status();
  EXPECT_EQ(st->vfs[1].driver, "vfio-pci");
  auto r = nic->ensureSwitchdev(5);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kBusy);
  EXPECT_THAT(r.error().message,
              HasSubstr("VF 1 (0000:03:00.3) of PF 0000:03:00.0 is bound to vfio-pci"));
  EXPECT_EQ(nic->status()->num_vfs, 3) << "nothing changed";
  // Still in switchdev with 3 VFs: that VM keeps its VF, the call is a no-op.
  auto same = nic->ensureSwitchdev(3);
  ASSERT_TRUE(same.ok()) << same.error().describe();
  EXPECT_FALSE(same->changed);
}

TEST(SimPf, KernelRefusingTheModeChangeLeavesVfsBound) {
  TempDir dir("nfo-sim");
  auto sim = openSim(dir.path());
  auto nic = sim->makeBackend();
  ASSERT_TRUE(sim->sysfs()->write("bus/pci/devices/0000:03:00.0/sriov_numvfs", "2").ok());
  EXPECT_EQ(nic->status()->vfs[0].driver, "mlx5_core") << "autoprobe binds new VFs";
  sim->failNext("eswitch", EBUSY, "firmware busy");
  auto r = nic->ensureSwitchdev(2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kBusy);
  EXPECT_THAT(r.error().message,
              HasSubstr("PF 0000:03:00.0: switching the eswitch to switchdev failed"));
  EXPECT_THAT(r.error().message, HasSubstr("sim kernel: firmware busy"));
  auto st = nic->status();
  EXPECT_EQ(st->eswitch_mode, EswitchMode::kLegacy);
  for (const auto& vf : st->vfs) EXPECT_EQ(vf.driver, "mlx5_core") << vf.pci;
  // The same call succeeds once the kernel agrees.
  auto ok = nic->ensureSwitchdev(2);
  ASSERT_TRUE(ok.ok()) << ok.error().describe();
  EXPECT_EQ(nic->status()->eswitch_mode, EswitchMode::kSwitchdev);
}

TEST(SimPf, ModeChangeWithBoundVfsIsRefusedByTheSimKernel) {
  TempDir dir("nfo-sim");
  auto sim = openSim(dir.path());
  ASSERT_TRUE(sim->sysfs()->write("bus/pci/devices/0000:03:00.0/sriov_numvfs", "2").ok());
  // devlink straight, skipping the unbind step of the sequence.
  auto devlink = sim->eswitch();
  auto s = devlink->setMode("0000:03:00.0", EswitchMode::kSwitchdev);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kBusy);
  EXPECT_THAT(s.error().message, HasSubstr("unbind the VFs before changing the eswitch mode"));
  // A failing unbind inside the sequence is reported; nothing is switched.
  auto nic = sim->makeBackend();
  sim->failNext("unbind", EIO, "stuck");
  auto r = nic->ensureSwitchdev(2);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("unbinding VF 0000:03:00.2"));
  EXPECT_THAT(r.error().message, HasSubstr("sim kernel: stuck"));
  EXPECT_EQ(nic->status()->eswitch_mode, EswitchMode::kLegacy);
}

TEST(SimPf, VfSettingsAndRelease) {
  TempDir dir("nfo-sim");
  auto sim = openSim(dir.path());
  auto nic = sim->makeBackend();
  ASSERT_TRUE(nic->ensureSwitchdev(2).ok());
  ASSERT_TRUE(nic->setVfMac(1, *MacAddr::parse("52:54:00:00:00:11")).ok());
  ASSERT_TRUE(nic->setVfTrust(1, true).ok());
  ASSERT_TRUE(nic->setVfSpoofCheck(1, true).ok());
  auto st = nic->status();
  EXPECT_EQ(st->vfs[1].mac, MacAddr::parse("52:54:00:00:00:11"));
  EXPECT_EQ(st->vfs[1].trust, true);
  EXPECT_EQ(st->vfs[1].spoofchk, true);
  auto mc = nic->setVfMac(1, *MacAddr::parse("01:00:5e:00:00:01"));
  ASSERT_FALSE(mc.ok());
  EXPECT_EQ(mc.error().code, ErrorCode::kInvalidValue);
  EXPECT_THAT(mc.error().message,
              HasSubstr("PF 0000:03:00.0 VF 1 (0000:03:00.3): setting the MAC failed"));
  ASSERT_TRUE(nic->releaseVf(1).ok());
  st = nic->status();
  EXPECT_EQ(st->vfs[1].mac, MacAddr{});
  EXPECT_EQ(st->vfs[1].trust, false);
  EXPECT_EQ(st->vfs[1].spoofchk, true);
  ASSERT_TRUE(nic->releaseVf(1).ok()) << "idempotent";
}

TEST(SimPf, StateSurvivesAReopen) {
  TempDir dir("nfo-sim");
  {
    auto sim = openSim(dir.path());
    auto nic = sim->makeBackend();
    ASSERT_TRUE(nic->ensureSwitchdev(3).ok());
    ASSERT_TRUE(nic->setVfMac(2, *MacAddr::parse("52:54:00:00:00:22")).ok());
  }
  auto sim = openSim(dir.path());
  auto nic = sim->makeBackend();
  auto st = nic->status();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->eswitch_mode, EswitchMode::kSwitchdev);
  ASSERT_EQ(st->vfs.size(), 3u);
  EXPECT_EQ(st->vfs[2].mac, MacAddr::parse("52:54:00:00:00:22"));
  EXPECT_EQ(st->vfs[2].representor, "pf0vf2");
  auto r = nic->ensureSwitchdev(3);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->changed);
}

// Each operation appends one record (a line) to the journal; state.json
// (the snapshot) is rewritten only at open and when the journal grows long.
TEST(SimPf, OperationsAreJournalledAndReplayed) {
  TempDir dir("nfo-sim");
  const std::string snap = dir.path() + "/nicoffload-sim/state.json";
  {
    auto sim = openSim(dir.path());
    auto nic = sim->makeBackend();
    ASSERT_TRUE(nic->ensureSwitchdev(4).ok());
    const std::string snapshot_before = readFile(snap);
    const std::string journal_before = journalText(dir.path());
    ASSERT_TRUE(nic->setVfMac(1, *MacAddr::parse("52:54:00:00:00:11")).ok());
    ASSERT_TRUE(sim->vdpaDevNew({"vdpa1", sim->vdpaMgmtDevs().at(1),
                                 *MacAddr::parse("52:54:00:00:00:11"), 1500, 1})
                    .ok());
    ASSERT_TRUE(sim->vdpaDevNew({"vdpa3", sim->vdpaMgmtDevs().at(3),
                                 *MacAddr::parse("52:54:00:00:00:33"), 9000, 2})
                    .ok());
    ASSERT_TRUE(sim->vdpaDevDel("vdpa3").ok());
    EXPECT_EQ(readFile(snap), snapshot_before) << "no snapshot per operation";
    const std::string j = journalText(dir.path());
    ASSERT_EQ(j.substr(0, journal_before.size()), journal_before) << "appended, never rewritten";
    const std::string added = j.substr(journal_before.size());
    EXPECT_EQ(std::count(added.begin(), added.end(), '\n'), 4) << added;
    EXPECT_THAT(j, HasSubstr("\"vdpa_del\":[\"vdpa3\"]"));
  }
  auto sim = openSim(dir.path());
  auto st = sim->makeBackend()->status();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->eswitch_mode, EswitchMode::kSwitchdev);
  ASSERT_EQ(st->vfs.size(), 4u);
  EXPECT_EQ(st->vfs[1].mac, MacAddr::parse("52:54:00:00:00:11"));
  const auto devs = sim->vdpaDevs();
  ASSERT_EQ(devs.size(), 1u);
  EXPECT_EQ(devs[0].name, "vdpa1");
  EXPECT_EQ(devs[0].mgmt_dev, sim->vdpaMgmtDevs().at(1));
  EXPECT_EQ(journalText(dir.path()), "")
      << "the replayed journal was compacted into the snapshot at open";
}

// A controller killed in the middle of an append leaves a cut last record:
// the operation never happened, the ones before it did.
TEST(SimPf, ACutJournalRecordIsIgnored) {
  TempDir dir("nfo-sim");
  std::string last_segment;
  {
    auto sim = openSim(dir.path());
    auto nic = sim->makeBackend();
    ASSERT_TRUE(nic->ensureSwitchdev(2).ok());
    ASSERT_TRUE(nic->setVfMac(0, *MacAddr::parse("52:54:00:00:00:a0")).ok());
    ASSERT_FALSE(journalSegments(dir.path()).empty());
    last_segment = journalSegments(dir.path()).back();
  }
  {
    std::ofstream out(last_segment, std::ios::app);
    out << "63 12345678 {\"vfs\":{\"0\":{\"driver\":\"mlx5_core\",\"mac\":\"52:54";
  }
  auto sim = openSim(dir.path());
  auto st = sim->makeBackend()->status();
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(st->vfs.size(), 2u);
  EXPECT_EQ(st->vfs[0].mac, MacAddr::parse("52:54:00:00:00:a0"));
}

// Killed between writing a snapshot and deleting the older segments: those
// segments are older than the snapshot's journal_seq and are skipped.
TEST(SimPf, JournalSegmentsOlderThanTheSnapshotAreSkipped) {
  TempDir dir("nfo-sim");
  std::string stale, stale_path;
  {
    auto sim = openSim(dir.path());
    auto nic = sim->makeBackend();
    ASSERT_TRUE(nic->ensureSwitchdev(2).ok());
    ASSERT_TRUE(nic->setVfMac(0, *MacAddr::parse("52:54:00:00:00:01")).ok());
    stale_path = journalSegments(dir.path()).back();
    stale = readFile(stale_path);
  }
  {
    auto sim = openSim(dir.path());  // snapshot now holds MAC :01; journal empty
    auto nic = sim->makeBackend();
    ASSERT_TRUE(nic->setVfMac(0, *MacAddr::parse("52:54:00:00:00:02")).ok());
  }
  {
    auto sim = openSim(dir.path());  // snapshot: :02
  }
  {
    std::ofstream out(stale_path, std::ios::trunc);
    out << stale;  // a record that sets :01, in a segment the snapshot has passed
  }
  auto sim = openSim(dir.path());
  auto st = sim->makeBackend()->status();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->vfs[0].mac, MacAddr::parse("52:54:00:00:00:02"));
  EXPECT_FALSE(std::filesystem::exists(stale_path)) << "deleted at open";
}

// A directory of the nicoffload before segmented journals (state.json with
// a generation, one state.journal of JSON lines) is read, then moved to the
// new files.
TEST(SimPf, AnOldSingleFileJournalIsReadAndMigrated) {
  TempDir dir("nfo-sim");
  {
    auto sim = openSim(dir.path());
    ASSERT_TRUE(sim->makeBackend()->ensureSwitchdev(2).ok());
  }
  openSim(dir.path());  // the snapshot now holds the 2 VFs
  const std::string snap = dir.path() + "/nicoffload-sim/state.json";
  auto doc = nlohmann::json::parse(readFile(snap));
  doc.erase("journal_seq");
  doc["generation"] = 5;
  std::ofstream(snap, std::ios::trunc) << doc.dump(1) << "\n";
  auto vf = doc["vfs"][0];
  vf["mac"] = "52:54:00:00:00:0b";
  const std::string old_journal = dir.path() + "/nicoffload-sim/state.journal";
  {
    std::ofstream out(old_journal, std::ios::trunc);
    nlohmann::json older = {{"gen", 4}, {"vfs", {{"0", vf}}}};
    vf["mac"] = "52:54:00:00:00:0c";
    nlohmann::json newer = {{"gen", 6}, {"vfs", {{"0", vf}}}};
    out << older.dump() << "\n" << newer.dump() << "\n{\"gen\":7,\"vfs";  // cut last line
  }
  {
    auto sim = openSim(dir.path());
    auto st = sim->makeBackend()->status();
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->vfs[0].mac, MacAddr::parse("52:54:00:00:00:0c"));
  }
  EXPECT_FALSE(std::filesystem::exists(old_journal));
  EXPECT_TRUE(nlohmann::json::parse(readFile(snap)).contains("journal_seq"));
  auto sim = openSim(dir.path());
  EXPECT_EQ(sim->makeBackend()->status()->vfs[0].mac, MacAddr::parse("52:54:00:00:00:0c"));
}

TEST(SimPf, ALongJournalIsCompacted) {
  TempDir dir("nfo-sim");
  auto sim = openSim(dir.path());
  auto nic = sim->makeBackend();
  ASSERT_TRUE(nic->ensureSwitchdev(2).ok());
  for (int i = 0; i < 5000; ++i)
    ASSERT_TRUE(
        nic->setVfMac(1, *MacAddr::parse(i % 2 ? "52:54:00:00:00:01" : "52:54:00:00:00:02")).ok());
  const std::string j = journalText(dir.path());
  EXPECT_LT(std::count(j.begin(), j.end(), '\n'), 4096);
  auto again = openSim(dir.path());
  auto st = again->makeBackend()->status();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->vfs[1].mac, MacAddr::parse("52:54:00:00:00:01"));
}

// Each record holds only what its operation touched: after random
// operations, a reopened simulator (snapshot + journal replay) holds exactly
// what the live one held.
TEST(SimPf, RandomOperationsReplayToTheLiveState) {
  TempDir dir("nfo-sim");
  std::mt19937 rng(12);
  constexpr unsigned kVfs = 8;
  auto view = [](SimPf& sim) {
    std::ostringstream out;
    auto st = sim.makeBackend()->status();
    if (!st) throw std::runtime_error(st.error().describe());
    for (const auto& vf : st->vfs)
      out << vf.index << ' ' << vf.driver << ' ' << (vf.mac ? vf.mac->str() : "-") << ';';
    for (const auto& d : sim.vdpaDevs())
      out << d.name << '@' << d.mgmt_dev << ' ' << d.mac.str() << ' ' << d.mtu << ';';
    return out.str();
  };
  {
    auto sim = openSim(dir.path());
    ASSERT_TRUE(sim->makeBackend()->ensureSwitchdev(kVfs).ok());
  }
  for (int round = 0; round < 8; ++round) {
    std::string live;
    {
      auto sim = openSim(dir.path());
      auto nic = sim->makeBackend();
      for (int op = 0; op < 60; ++op) {
        const unsigned vf = rng() % kVfs;
        const std::string name = "vdpa" + std::to_string(vf);
        const auto mac = *MacAddr::parse("52:54:00:00:0" + std::to_string(round % 10) + ":" +
                                         std::to_string(10 + op % 90));
        switch (rng() % 3) {
          case 0:
            ASSERT_TRUE(nic->setVfMac(vf, mac).ok());
            break;
          case 1:  // refused when the VF has one: the refusal changes nothing
            (void)sim->vdpaDevNew(
                {name, sim->vdpaMgmtDevs().at(vf), mac, static_cast<std::uint16_t>(1500 + vf), 1});
            break;
          default:
            (void)sim->vdpaDevDel(name);
            break;
        }
      }
      live = view(*sim);
    }
    auto again = openSim(dir.path());
    EXPECT_EQ(view(*again), live) << "round " << round;
  }
}

TEST(SimPf, RefusesABadPfAddress) {
  TempDir dir("nfo-sim");
  SimPfOptions o;
  o.dir = dir.path();
  o.profile = test::loadProfile("sim");
  o.pf_pci = "03:00.0";
  auto sim = SimPf::open(o);
  ASSERT_FALSE(sim.ok());
  EXPECT_EQ(sim.error().code, ErrorCode::kInvalidValue);
  EXPECT_THAT(sim.error().message, HasSubstr("'03:00.0' is not a PCI address"));
}

}  // namespace
}  // namespace nicoffload::offload
