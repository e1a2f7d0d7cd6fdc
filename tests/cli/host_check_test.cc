// nicoffloadctl host-check: every line ok / missing / wrong against a fake
// host (a sysfs and procfs tree in a temp dir, a fake HostProbe), which lines
// the host config's backends make required, the report's JSON, and the real
// probe against an independent generic netlink lookup on this machine.
#include "host_check.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "nicoffload/model/profile_dirs.h"
#include "support/genl_probe.h"
#include "support/temp_dirs.h"

namespace nicoffload::cli {
namespace {

namespace fs = std::filesystem;
using model::FlowBackendKind;
using model::NicBackendKind;
using model::SoftwarePathKind;
using model::VdpaKind;

class FakeProbe : public HostProbe {
 public:
  std::map<std::string, Result<bool>> genl;
  Result<std::string> libvirt = std::string("9.0.0");
  Result<std::string> qemu = std::string("7.2.19");
  Result<std::vector<std::uint32_t>> tables = std::vector<std::uint32_t>{255, 254, 253};
  std::string rules_netns_asked = "-";

  Result<bool> hasGenlFamily(const std::string& name) override {
    auto it = genl.find(name);
    return it == genl.end() ? Result<bool>(false) : it->second;
  }
  Result<std::string> libvirtVersion() override { return libvirt; }
  Result<std::string> qemuVersion() override { return qemu; }
  Result<std::vector<std::uint32_t>> ipv4RuleTables(const std::string& netns) override {
    rules_netns_asked = netns;
    return tables;
  }
};

void writeFile(const fs::path& p, const std::string& content, bool exec = false) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << content;
  if (exec)
    fs::permissions(p, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
}

class HostCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::makeTempDir("nfo-hostcheck");
    roots_.sys = dir_ + "/sys";
    roots_.proc = dir_ + "/proc";
    roots_.frr_dir = dir_ + "/frr";
    fs::create_directories(roots_.sys + "/module");
    fs::create_directories(roots_.sys + "/class/iommu");
    fs::create_directories(roots_.proc);
    fs::create_directories(dir_ + "/state");
    host_.name = "hv";
    host_.uplink_pci = "0000:03:00.0";
    host_.vf_count = 8;
    host_.state_dir = dir_ + "/state";
    // All simulated by default; each test turns on what it checks.
    host_.flow_backend = FlowBackendKind::kSim;
    host_.nic_backend = NicBackendKind::kSim;
    host_.vdpa_backend = VdpaKind::kNone;
    host_.software_path = SoftwarePathKind::kNone;
    profile_.name = "connectx-6dx";
    profile_.model = "NVIDIA ConnectX-6 Dx";
    profile_.pci_ids = {"15b3:101d"};
  }

  std::vector<CheckLine> run() { return runHostChecks(host_, &profile_, roots_, probe_); }

  const CheckLine* line(const std::vector<CheckLine>& lines, const std::string& id) {
    for (const auto& l : lines)
      if (l.id == id) return &l;
    return nullptr;
  }

  // The line `id` of a fresh run; fails the test when it is absent.
  CheckLine get(const std::string& id) {
    auto lines = run();
    auto* l = line(lines, id);
    EXPECT_NE(l, nullptr) << "no line " << id;
    return l ? *l : CheckLine{};
  }

  void addPf(const std::string& vendor, const std::string& device) {
    const fs::path pf = roots_.sys + "/bus/pci/devices/" + host_.uplink_pci;
    writeFile(pf / "vendor", vendor + "\n");
    writeFile(pf / "device", device + "\n");
  }

  std::string dir_;
  HostRoots roots_;
  model::HostConfig host_;
  model::HwProfile profile_;
  FakeProbe probe_;
};

TEST_F(HostCheckTest, AllSimulatedNeedsNoHardwareLines) {
  auto lines = run();
  for (const char* id : {"module.mlx5_core", "genl.devlink", "genl.vdpa", "pf.pci", "pf.sriov",
                         "iommu", "hugepages", "ip_rule"})
    EXPECT_EQ(line(lines, id), nullptr) << id;
  ASSERT_NE(line(lines, "state_dir"), nullptr);
  EXPECT_EQ(line(lines, "state_dir")->status, CheckStatus::kOk);
  // libvirt and QEMU are reported, but only kernel vDPA requires them.
  ASSERT_NE(line(lines, "libvirt"), nullptr);
  EXPECT_FALSE(line(lines, "libvirt")->required);
  EXPECT_TRUE(hostReady(lines));
}

TEST_F(HostCheckTest, ModulesFollowTheBackends) {
  host_.nic_backend = NicBackendKind::kSysfs;
  host_.vdpa_backend = VdpaKind::kKernel;
  fs::create_directories(roots_.sys + "/module/mlx5_core");
  fs::create_directories(roots_.sys + "/module/vhost_vdpa");
  auto lines = run();
  ASSERT_NE(line(lines, "module.mlx5_core"), nullptr);
  EXPECT_EQ(line(lines, "module.mlx5_core")->status, CheckStatus::kOk);
  EXPECT_EQ(line(lines, "module.vhost_vdpa")->status, CheckStatus::kOk);
  const auto* vdpa = line(lines, "module.mlx5_vdpa");
  ASSERT_NE(vdpa, nullptr);
  EXPECT_EQ(vdpa->status, CheckStatus::kMissing);
  EXPECT_TRUE(vdpa->required);
  EXPECT_NE(vdpa->fix.find("modprobe mlx5_vdpa"), std::string::npos);
  EXPECT_FALSE(hostReady(lines));

  // DPDK vDPA: vhost-user, no vDPA kernel modules asked for.
  host_.vdpa_backend = VdpaKind::kDpdk;
  lines = run();
  EXPECT_EQ(line(lines, "module.mlx5_vdpa"), nullptr);
  EXPECT_EQ(line(lines, "module.vhost_vdpa"), nullptr);
  ASSERT_NE(line(lines, "vhost_user"), nullptr);
}

TEST_F(HostCheckTest, GenlFamilies) {
  host_.nic_backend = NicBackendKind::kSysfs;
  host_.vdpa_backend = VdpaKind::kKernel;
  probe_.genl.emplace("devlink", true);
  probe_.genl.emplace("vdpa", false);
  auto lines = run();
  EXPECT_EQ(line(lines, "genl.devlink")->status, CheckStatus::kOk);
  EXPECT_TRUE(line(lines, "genl.devlink")->fix.empty());
  EXPECT_EQ(line(lines, "genl.vdpa")->status, CheckStatus::kMissing);
  EXPECT_EQ(line(lines, "genl.vdpa")->found, "not in this kernel");
  EXPECT_FALSE(line(lines, "genl.vdpa")->fix.empty());

  probe_.genl.erase("devlink");
  probe_.genl.emplace("devlink",
                      Result<bool>(makeError(ErrorCode::kIo, "netlink", "", "no socket")));
  auto l = get("genl.devlink");
  EXPECT_EQ(l.status, CheckStatus::kMissing);
  EXPECT_NE(l.found.find("cannot ask the kernel"), std::string::npos) << l.found;
}

TEST_F(HostCheckTest, PfPciIdAgainstTheProfile) {
  host_.nic_backend = NicBackendKind::kSysfs;
  auto l = get("pf.pci");
  EXPECT_EQ(l.status, CheckStatus::kMissing);
  EXPECT_EQ(l.found, "no such PCI device");

  addPf("0x15b3", "0x1017");  // a ConnectX-5, under a ConnectX-6 Dx profile
  l = get("pf.pci");
  EXPECT_EQ(l.status, CheckStatus::kWrong);
  EXPECT_NE(l.found.find("15b3:1017"), std::string::npos) << l.found;
  EXPECT_NE(l.found.find("15b3:101d"), std::string::npos) << l.found;
  EXPECT_NE(l.fix.find("hw_profile"), std::string::npos);

  addPf("0x15b3", "0x101d");
  l = get("pf.pci");
  EXPECT_EQ(l.status, CheckStatus::kOk);
  EXPECT_EQ(l.found, "15b3:101d (NVIDIA ConnectX-6 Dx)");

  // No profile (hw_profile "auto"): the id is shown, not compared.
  auto lines = runHostChecks(host_, nullptr, roots_, probe_);
  EXPECT_EQ(line(lines, "pf.pci")->status, CheckStatus::kOk);
  EXPECT_NE(line(lines, "pf.pci")->found.find("not compared"), std::string::npos);
}

TEST_F(HostCheckTest, SriovTotalVfs) {
  host_.nic_backend = NicBackendKind::kSysfs;
  addPf("0x15b3", "0x101d");
  auto l = get("pf.sriov");
  EXPECT_EQ(l.status, CheckStatus::kMissing);
  EXPECT_NE(l.fix.find("SRIOV_EN=1"), std::string::npos);

  writeFile(roots_.sys + "/bus/pci/devices/0000:03:00.0/sriov_totalvfs", "4\n");
  l = get("pf.sriov");
  EXPECT_EQ(l.status, CheckStatus::kWrong);
  EXPECT_EQ(l.found, "sriov_totalvfs = 4");
  EXPECT_NE(l.fix.find("uplink.vf_count to 4"), std::string::npos) << l.fix;

  writeFile(roots_.sys + "/bus/pci/devices/0000:03:00.0/sriov_totalvfs", "127\n");
  EXPECT_EQ(get("pf.sriov").status, CheckStatus::kOk);
}

TEST_F(HostCheckTest, Iommu) {
  host_.nic_backend = NicBackendKind::kSysfs;
  auto l = get("iommu");
  EXPECT_EQ(l.status, CheckStatus::kMissing);
  EXPECT_NE(l.fix.find("intel_iommu=on"), std::string::npos);
  fs::create_directories(roots_.sys + "/class/iommu/dmar0");
  l = get("iommu");
  EXPECT_EQ(l.status, CheckStatus::kOk);
  EXPECT_EQ(l.found, "enabled (dmar0)");
}

TEST_F(HostCheckTest, HugepagesOnlyForDpdk) {
  writeFile(roots_.proc + "/meminfo",
            "MemTotal: 1000 kB\nHugePages_Total:       0\nHugePages_Free:        0\n");
  EXPECT_EQ(line(run(), "hugepages"), nullptr);  // flow sim: not asked

  host_.flow_backend = FlowBackendKind::kDpdk;
  auto l = get("hugepages");
  EXPECT_EQ(l.status, CheckStatus::kMissing);
  EXPECT_EQ(l.found, "HugePages_Total = 0");
  writeFile(roots_.proc + "/meminfo", "HugePages_Total:       4\nHugePages_Free:        0\n");
  l = get("hugepages");
  EXPECT_EQ(l.status, CheckStatus::kWrong);
  writeFile(roots_.proc + "/meminfo", "HugePages_Total:       4\nHugePages_Free:        3\n");
  l = get("hugepages");
  EXPECT_EQ(l.status, CheckStatus::kOk);
  EXPECT_EQ(l.found, "HugePages_Total = 4, free 3");

  // --no-huge (the EAL without hugepages): not needed.
  writeFile(roots_.proc + "/meminfo", "HugePages_Total:       0\n");
  host_.dpdk_eal_args = {"--no-huge", "-m", "256"};
  EXPECT_EQ(get("hugepages").status, CheckStatus::kOk);
}

TEST_F(HostCheckTest, LibvirtAndQemuVersionsForKernelVdpa) {
  host_.vdpa_backend = VdpaKind::kKernel;
  probe_.libvirt = std::string("6.8.0");
  auto l = get("libvirt");
  EXPECT_EQ(l.status, CheckStatus::kWrong);
  EXPECT_TRUE(l.required);
  EXPECT_EQ(l.found, "6.8.0");
  probe_.libvirt = std::string("6.9.0");
  EXPECT_EQ(get("libvirt").status, CheckStatus::kOk);

  probe_.qemu = std::string("5.0.1");
  EXPECT_EQ(get("qemu").status, CheckStatus::kWrong);
  probe_.qemu =
      Result<std::string>(makeError(ErrorCode::kNotFound, "program", "qemu", "not installed"));
  l = get("qemu");
  EXPECT_EQ(l.status, CheckStatus::kMissing);
  EXPECT_EQ(l.found, "not installed");
  EXPECT_TRUE(l.required);

  // Without kernel vDPA a missing QEMU is reported but does not fail the check.
  host_.vdpa_backend = VdpaKind::kNone;
  auto lines = run();
  EXPECT_EQ(line(lines, "qemu")->status, CheckStatus::kMissing);
  EXPECT_FALSE(line(lines, "qemu")->required);
  EXPECT_TRUE(hostReady(lines));
}

TEST_F(HostCheckTest, FrrIsRequiredOnlyWhenRoutesAreLearned) {
  auto l = get("frr");
  EXPECT_EQ(l.status, CheckStatus::kMissing);
  EXPECT_FALSE(l.required);
  host_.learn_routes = true;
  auto lines = run();
  EXPECT_TRUE(line(lines, "frr")->required);
  EXPECT_FALSE(hostReady(lines)) << "kernel.learn_routes without FRR";
  host_.learn_routes = false;
  writeFile(roots_.frr_dir + "/zebra", "#!/bin/sh\n", true);
  l = get("frr");
  EXPECT_EQ(l.status, CheckStatus::kMissing);
  EXPECT_NE(l.found.find("no bgpd"), std::string::npos) << l.found;
  writeFile(roots_.frr_dir + "/bgpd", "#!/bin/sh\n", true);
  EXPECT_EQ(get("frr").status, CheckStatus::kOk);
}

TEST_F(HostCheckTest, IpRuleForTheRouteTable) {
  host_.software_path = SoftwarePathKind::kKernel;
  EXPECT_EQ(get("ip_rule").status, CheckStatus::kOk);  // 254, the default rules
  host_.route_table = 100;
  auto l = get("ip_rule");
  EXPECT_EQ(l.status, CheckStatus::kMissing);
  EXPECT_NE(l.fix.find("ip rule add priority 1000 lookup 100"), std::string::npos) << l.fix;
  probe_.tables = std::vector<std::uint32_t>{255, 100, 254, 253};
  EXPECT_EQ(get("ip_rule").status, CheckStatus::kOk);

  host_.kernel_netns = "hv1";
  probe_.tables = Result<std::vector<std::uint32_t>>(
      makeError(ErrorCode::kNotFound, "netns", "hv1", "no such namespace"));
  l = get("ip_rule");
  EXPECT_EQ(probe_.rules_netns_asked, "hv1");
  EXPECT_EQ(l.status, CheckStatus::kMissing);
  EXPECT_NE(l.fix.find("ip netns add hv1"), std::string::npos);
}

TEST_F(HostCheckTest, StateDirectory) {
  EXPECT_EQ(get("state_dir").found, "writable");
  host_.state_dir = dir_ + "/new/state";  // absent, parent absent
  auto l = get("state_dir");
  EXPECT_EQ(l.status, CheckStatus::kMissing);
  EXPECT_NE(l.fix.find("mkdir -p"), std::string::npos);
  host_.state_dir = dir_ + "/state2";  // absent, parent writable
  EXPECT_EQ(get("state_dir").status, CheckStatus::kOk);
  writeFile(dir_ + "/afile", "x");
  host_.state_dir = dir_ + "/afile";
  l = get("state_dir");
  EXPECT_EQ(l.status, CheckStatus::kWrong);
  EXPECT_EQ(l.found, "exists, but is not a directory");
  // The probe file it made to test the directory is gone again.
  host_.state_dir = dir_ + "/state";
  (void)run();
  EXPECT_TRUE(fs::is_empty(dir_ + "/state"));
}

TEST_F(HostCheckTest, JsonAndTextReport) {
  host_.nic_backend = NicBackendKind::kSysfs;
  auto lines = run();
  auto j = toJson(lines, "/etc/nicoffload/host.json");
  EXPECT_EQ(j["config"], "/etc/nicoffload/host.json");
  EXPECT_EQ(j["ready"], false);
  ASSERT_TRUE(j["checks"].is_array());
  EXPECT_EQ(j["checks"].size(), lines.size());
  bool saw_devlink = false;
  for (const auto& c : j["checks"]) {
    EXPECT_TRUE(c.contains("id") && c.contains("check") && c.contains("status") &&
                c.contains("required") && c.contains("found"));
    EXPECT_EQ(c.contains("fix"), c["status"] != "ok") << c.dump();
    if (c["id"] == "genl.devlink") {
      saw_devlink = true;
      EXPECT_EQ(c["status"], "missing");
    }
  }
  EXPECT_TRUE(saw_devlink);
  const auto text = renderText(lines);
  EXPECT_NE(text.find("missing generic netlink family devlink"), std::string::npos) << text;
  EXPECT_NE(text.find("        fix: "), std::string::npos);
  EXPECT_NE(text.find("NOT ready"), std::string::npos);
}

TEST(HostCheckVersions, ExtractAndCompare) {
  EXPECT_EQ(extractVersion("libvirtd (libvirt) 9.0.0\n"), "9.0.0");
  EXPECT_EQ(extractVersion("QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)\n"),
            "7.2.19");
  EXPECT_EQ(extractVersion("x86_64 build 10.1"), "10.1");  // not "86"
  EXPECT_EQ(extractVersion("no version here 42"), "");
  EXPECT_TRUE(versionAtLeast("6.9.0", 6, 9));
  EXPECT_TRUE(versionAtLeast("10.0.0", 6, 9));
  EXPECT_TRUE(versionAtLeast("7.0", 6, 9));
  EXPECT_FALSE(versionAtLeast("6.8.99", 6, 9));
  EXPECT_FALSE(versionAtLeast("5.0", 5, 1));
  EXPECT_FALSE(versionAtLeast("", 5, 1));
}

// The real probe on the machine the tests run on, against the independent
// CTRL_CMD_GETFAMILY of tests/support/genl_probe.h. On the development and
// CI machines there is no devlink and no vdpa family, so host-check must
// say "missing" for both and the host is not ready.
TEST(HostCheckRealHost, GenlFamiliesTellTheTruth) {
  auto probe = makeSystemHostProbe();
  for (const char* family : {"devlink", "vdpa", "nlctrl"}) {
    auto has = probe->hasGenlFamily(family);
    ASSERT_TRUE(has.ok()) << family << ": " << has.error().describe();
    EXPECT_EQ(*has, test::kernelHasGenlFamily(family)) << family;
  }
  EXPECT_TRUE(*probe->hasGenlFamily("nlctrl"));  // the controller itself: always there

  model::HostConfig host;
  host.name = "real";
  host.uplink_pci = "0000:03:00.0";
  host.nic_backend = NicBackendKind::kSysfs;
  host.vdpa_backend = VdpaKind::kKernel;
  host.software_path = SoftwarePathKind::kKernel;
  host.state_dir = testing::makeTempDir("nfo-hostcheck-real");
  const auto lines = runHostChecks(host, nullptr, HostRoots{}, *probe);
  std::map<std::string, CheckLine> by_id;
  for (const auto& l : lines) by_id[l.id] = l;
  for (const char* family : {"devlink", "vdpa"}) {
    const auto& l = by_id.at(std::string("genl.") + family);
    EXPECT_EQ(l.status == CheckStatus::kOk, test::kernelHasGenlFamily(family)) << l.found;
  }
  EXPECT_EQ(by_id.at("pf.pci").status == CheckStatus::kMissing,
            !fs::exists("/sys/bus/pci/devices/0000:03:00.0"));
  EXPECT_EQ(by_id.at("module.mlx5_core").status == CheckStatus::kOk,
            fs::exists("/sys/module/mlx5_core"));
  EXPECT_EQ(by_id.at("ip_rule").status, CheckStatus::kOk);  // every kernel has "lookup main"
  EXPECT_EQ(by_id.at("state_dir").status, CheckStatus::kOk);
  if (!test::kernelHasGenlFamily("devlink")) {
    EXPECT_FALSE(hostReady(lines));
  }
}

TEST(ProfileDirs, BesideTheBinary) {
  const std::string root = testing::makeTempDir("nfo-profiledir");
  EXPECT_EQ(model::profileDirBesideBinary(root + "/usr/sbin/nicoffloadd"), "");
  fs::create_directories(root + "/usr/share/nicoffload/hw-profiles");
  EXPECT_EQ(model::profileDirBesideBinary(root + "/usr/sbin/nicoffloadd"),
            root + "/usr/share/nicoffload/hw-profiles");
  EXPECT_EQ(model::profileDirBesideBinary(""), "");
}

}  // namespace
}  // namespace nicoffload::cli
