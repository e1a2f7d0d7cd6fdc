// KernelVdpaBackend against a fake sysfs tree and a fake `vdpa` family that
// records the requests. The fake family plays the kernel's part in the tree
// (a new device appears under the VF, bound to virtio_vdpa, with the
// vhost-vdpa-N child the kernel would show once bound to vhost_vdpa).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "nicoffload/vdpa/kernel_vdpa_backend.h"
#include "support/fake_sysfs.h"
#include "support/logging_sysfs.h"
#include "support/test_support.h"

namespace nicoffload::vdpa {
namespace {

using test::FakeSysfs;
using test::Log;
using test::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr const char* kPf = "0000:03:00.0";
const std::string kName = "nfo0123456789ab";

class FakeVdpaFamily : public VdpaNetlink {
 public:
  FakeVdpaFamily(const FakeSysfs& tree, Log& log) : tree_(tree), log_(log) {}

  Result<std::vector<VdpaMgmtDev>> mgmtdevs() override { return mgmt; }

  Status devNew(const VdpaDevNewRequest& r) override {
    log_.push_back("dev new " + r.name + " " + r.mgmt.bus + "/" + r.mgmt.dev);
    requests.push_back(r);
    if (refuse_new) return *refuse_new;
    devices[r.name] = {r.name, r.mgmt, r.mac, r.mtu, r.max_vqp};
    const unsigned vf = static_cast<unsigned>(std::stoul(r.mgmt.dev.substr(11))) - 2;
    tree_.vdpaDevice(r.mgmt.dev, vf, r.name, "virtio_vdpa", minor);
    return Status::success();
  }

  Status devDel(const std::string& name) override {
    log_.push_back("dev del " + name);
    if (!devices.erase(name))
      return makeError(ErrorCode::kNotFound, name, "", "vdpa dev del " + name + ": No such device");
    tree_.remove("bus/vdpa/devices/" + name);
    return Status::success();
  }

  Result<std::vector<VdpaDevInfo>> devs() override {
    std::vector<VdpaDevInfo> out;
    for (const auto& [n, d] : devices) out.push_back(d);
    return out;
  }

  std::vector<VdpaMgmtDev> mgmt;
  std::map<std::string, VdpaDevInfo> devices;
  std::vector<VdpaDevNewRequest> requests;
  std::optional<Error> refuse_new;
  int minor = 7;

 private:
  const FakeSysfs& tree_;
  Log& log_;
};

struct Fixture {
  TempDir dir{"nfo-kvdpa"};
  FakeSysfs tree{dir / "sys"};
  std::string dev_dir = dir / "dev";
  Log log;
  FakeVdpaFamily* family = nullptr;

  Fixture() {
    tree.pf(kPf, "enp3s0f0np0", 8, 2, true, "b8cef60300aa01e2");
    tree.vf(kPf, 0, "0000:03:00.2", "mlx5_core");
    tree.vf(kPf, 1, "0000:03:00.3", "mlx5_core");
    tree.vdpaDriver("virtio_vdpa");
    tree.vdpaDriver("vhost_vdpa");
    std::filesystem::create_directories(dev_dir);
  }

  std::unique_ptr<KernelVdpaBackend> backend(std::optional<model::HwProfile> profile = {}) {
    KernelVdpaOptions o;
    o.pf_pci = kPf;
    o.dev_dir = dev_dir;
    o.node_wait = std::chrono::milliseconds(0);
    o.profile = std::move(profile);
    auto f = std::make_unique<FakeVdpaFamily>(tree, log);
    f->mgmt = {{"pci", "0000:03:00.2"}, {"pci", "0000:03:00.3"}};
    family = f.get();
    return std::make_unique<KernelVdpaBackend>(
        o, std::move(f), std::make_unique<test::LoggingSysfs>(tree.root(), log));
  }

  void devNode(int minor) const { std::ofstream(dev_dir + "/vhost-vdpa-" + std::to_string(minor)); }
};

VdpaDeviceSpec spec(std::uint16_t vf = 1) {
  VdpaDeviceSpec s;
  s.name = kName;
  s.port = {"6f3c2a1e-0000-4000-8000-000000000001", 0};
  s.kind = model::VdpaKind::kKernel;
  s.vf = vf;
  s.mac = *MacAddr::parse("52:54:00:00:00:01");
  s.mtu = 9000;
  s.max_vqp = 2;
  return s;
}

TEST(KernelVdpa, CreateMakesTheDeviceBindsVhostVdpaAndReadsN) {
  Fixture f;
  auto b = f.backend();
  f.devNode(7);
  auto d = b->create(spec());
  ASSERT_TRUE(d.ok()) << d.error().describe();
  EXPECT_EQ(d->name, kName);
  EXPECT_EQ(d->kind, model::VdpaKind::kKernel);
  EXPECT_EQ(d->vf, 1);
  EXPECT_EQ(d->vf_pci, "0000:03:00.3");
  EXPECT_EQ(d->vhost_vdpa_path, f.dev_dir + "/vhost-vdpa-7") << "N read from sysfs, not derived";
  EXPECT_EQ(d->mac, MacAddr::parse("52:54:00:00:00:01"));
  ASSERT_EQ(f.family->requests.size(), 1u);
  const auto& r = f.family->requests[0];
  EXPECT_EQ(r.name, kName);
  EXPECT_EQ(r.mgmt, (VdpaMgmtDev{"pci", "0000:03:00.3"}));
  EXPECT_EQ(r.mac, MacAddr::parse("52:54:00:00:00:01"));
  EXPECT_EQ(r.mtu, 9000);
  EXPECT_EQ(r.max_vqp, 2);
  EXPECT_THAT(f.log, ElementsAre("dev new " + kName + " pci/0000:03:00.3",
                                 "bus/vdpa/devices/" + kName + "/driver_override <- vhost_vdpa",
                                 "bus/vdpa/drivers/virtio_vdpa/unbind <- " + kName,
                                 "bus/vdpa/drivers/vhost_vdpa/bind <- " + kName));
  EXPECT_EQ(f.tree.read("bus/vdpa/devices/" + kName + "/driver_override"), "vhost_vdpa");
}

TEST(KernelVdpa, NoManagementDeviceOnTheVf) {
  Fixture f;
  auto b = f.backend();
  f.family->mgmt = {{"pci", "0000:03:00.2"}};
  auto d = b->create(spec());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(
      d.error().message,
      HasSubstr(
          "no vDPA management device pci/0000:03:00.3 for VF 1 (0000:03:00.3) of PF 0000:03:00.0"));
  EXPECT_THAT(d.error().message, HasSubstr("mlx5_vdpa"));
  EXPECT_TRUE(f.family->requests.empty());
}

TEST(KernelVdpa, VhostVdpaNotLoadedDeletesTheNewDevice) {
  Fixture f;
  f.tree.remove("bus/vdpa/drivers/vhost_vdpa");
  auto b = f.backend();
  auto d = b->create(spec());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::kUnsupported);
  EXPECT_THAT(d.error().message,
              HasSubstr("vDPA device " + kName + ": the vhost_vdpa driver is not loaded"));
  EXPECT_THAT(d.error().message, HasSubstr("deleted again"));
  EXPECT_EQ(f.log.back(), "dev del " + kName);
  EXPECT_TRUE(f.family->devices.empty()) << "nothing left behind";
}

TEST(KernelVdpa, DevNodeMissingIsNamedAndRolledBack) {
  Fixture f;
  auto b = f.backend();  // no /dev/vhost-vdpa-7
  auto d = b->create(spec());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(d.error().message, HasSubstr("is vhost-vdpa-7 in sysfs, but " + f.dev_dir +
                                           "/vhost-vdpa-7 does not exist"));
  EXPECT_TRUE(f.family->devices.empty());
}

TEST(KernelVdpa, NoVhostNodeInSysfs) {
  Fixture f;
  auto b = f.backend();
  f.family->minor = -1;
  auto d = b->create(spec());
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.error().message, HasSubstr("has no vhost-vdpa-N entry"));
  EXPECT_TRUE(f.family->devices.empty());
}

TEST(KernelVdpa, CreateAgainIsANoOp) {
  Fixture f;
  auto b = f.backend();
  f.devNode(7);
  ASSERT_TRUE(b->create(spec()).ok());
  f.tree.vdpaDevice("0000:03:00.3", 1, kName, "vhost_vdpa", 7);  // what the kernel now shows
  f.log.clear();
  auto d = b->create(spec());
  ASSERT_TRUE(d.ok()) << d.error().describe();
  EXPECT_EQ(d->vhost_vdpa_path, f.dev_dir + "/vhost-vdpa-7");
  EXPECT_TRUE(f.log.empty()) << f.log.front();
  EXPECT_EQ(f.family->requests.size(), 1u);
}

TEST(KernelVdpa, ChangedConfigReplacesTheDevice) {
  Fixture f;
  auto b = f.backend();
  f.devNode(7);
  ASSERT_TRUE(b->create(spec()).ok());
  auto changed = spec();
  changed.mac = *MacAddr::parse("52:54:00:00:00:99");
  f.log.clear();
  auto d = b->create(changed);
  ASSERT_TRUE(d.ok()) << d.error().describe();
  ASSERT_GE(f.log.size(), 2u);
  EXPECT_EQ(f.log[0], "dev del " + kName);
  EXPECT_EQ(f.log[1], "dev new " + kName + " pci/0000:03:00.3");
  EXPECT_EQ(f.family->devices.at(kName).mac, MacAddr::parse("52:54:00:00:00:99"));
}

TEST(KernelVdpa, VfWithAnotherDeviceIsBusy) {
  Fixture f;
  auto b = f.backend();
  f.family->devices["nfoffffffffffff"] = {
      "nfoffffffffffff", {"pci", "0000:03:00.3"}, std::nullopt, std::nullopt, std::nullopt};
  auto d = b->create(spec());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::kBusy);
  EXPECT_THAT(
      d.error().message,
      HasSubstr(
          "VF 1 (0000:03:00.3) of PF 0000:03:00.0 already backs vDPA device nfoffffffffffff"));
}

TEST(KernelVdpa, KernelRefusalCarriesContext) {
  Fixture f;
  auto b = f.backend();
  f.family->refuse_new = makeError(
      ErrorCode::kUnsupported, "vdpa", "",
      "vdpa dev add: Operation not supported (kernel: All provided attributes are not supported)");
  auto d = b->create(spec());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::kUnsupported);
  EXPECT_THAT(d.error().message, HasSubstr("creating vDPA device " + kName +
                                           " on VF 1 (0000:03:00.3) of PF 0000:03:00.0"));
  EXPECT_THAT(d.error().message, HasSubstr("All provided attributes are not supported"));
}

TEST(KernelVdpa, BadInputAndMissingVf) {
  Fixture f;
  auto b = f.backend();
  auto low_mtu = spec();
  low_mtu.mtu = 60;
  auto r = b->create(low_mtu);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidValue);
  EXPECT_THAT(r.error().message, HasSubstr("MTU 60 is below 68"));
  auto no_vf = b->create(spec(5));
  ASSERT_FALSE(no_vf.ok());
  EXPECT_EQ(no_vf.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(no_vf.error().message, HasSubstr("VF 5 of PF 0000:03:00.0 does not exist"));
  EXPECT_TRUE(f.family->requests.empty());
}

TEST(KernelVdpa, ASpecOfAnotherKindIsRefused) {
  Fixture f;
  auto b = f.backend();
  auto s = spec();
  s.kind = model::VdpaKind::kDpdk;
  auto r = b->create(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidValue);
  EXPECT_THAT(r.error().message,
              HasSubstr("is asked as 'dpdk', but this backend makes 'kernel' devices"));
  EXPECT_TRUE(f.family->requests.empty());
}

TEST(KernelVdpa, ConnectX5HasNoVdpa) {
  Fixture f;
  auto b = f.backend(test::loadProfile("connectx-5"));
  auto r = b->create(spec());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnsupported);
  EXPECT_THAT(r.error().message, HasSubstr("profile connectx-5"));
  EXPECT_THAT(r.error().message, HasSubstr("has no kernel vDPA"));
  EXPECT_TRUE(f.family->requests.empty());
}

TEST(KernelVdpa, DestroyIsIdempotentAndListReadsBack) {
  Fixture f;
  auto b = f.backend();
  f.devNode(7);
  ASSERT_TRUE(b->create(spec()).ok());
  f.tree.vdpaDevice("0000:03:00.3", 1, kName, "vhost_vdpa", 7);
  f.family->devices["foreign0"] = {
      "foreign0", {"", "vdpasim_net"}, std::nullopt, 1500, std::nullopt};
  auto all = b->list();
  ASSERT_TRUE(all.ok()) << all.error().describe();
  ASSERT_EQ(all->size(), 2u);
  const auto& foreign = (*all)[0];
  EXPECT_EQ(foreign.name, "foreign0");
  EXPECT_FALSE(foreign.vf.has_value());
  const auto& ours = (*all)[1];
  EXPECT_EQ(ours.name, kName);
  EXPECT_EQ(ours.vf, 1);
  EXPECT_EQ(ours.vf_pci, "0000:03:00.3");
  EXPECT_EQ(ours.vhost_vdpa_path, f.dev_dir + "/vhost-vdpa-7");
  EXPECT_EQ(ours.mtu, 9000);
  ASSERT_TRUE(b->destroy(kName).ok());
  ASSERT_TRUE(b->destroy(kName).ok()) << "deleting what is gone succeeds";
  EXPECT_EQ(b->list()->size(), 1u);
}

TEST(KernelVdpa, InterfaceXml) {
  Fixture f;
  auto b = f.backend();
  VdpaDevice d;
  d.name = kName;
  d.vhost_vdpa_path = "/dev/vhost-vdpa-7";
  model::Port p;
  p.key = spec().port;
  p.mac = *MacAddr::parse("52:54:00:00:00:01");
  auto xml = b->interfaceXml(d, p);
  ASSERT_TRUE(xml.ok());
  EXPECT_THAT(*xml, HasSubstr("<interface type='vdpa'>"));
  EXPECT_THAT(*xml, HasSubstr("<source dev='/dev/vhost-vdpa-7' />"));
  d.vhost_vdpa_path.clear();
  auto none = b->interfaceXml(d, p);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, ErrorCode::kInvalidValue);
}

}  // namespace
}  // namespace nicoffload::vdpa
