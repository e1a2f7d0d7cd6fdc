// VdpaDevices, the controller's part for vDPA devices, on its own: the warm
// pool fills on free VFs, a fitting port takes a ready device, a failed pool
// device waits for the next full pass, and a port's device gets its link.
#include "nicoffload/daemon/vdpa_devices.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

#include "nicoffload/flowrules/planner.h"
#include "nicoffload/model/vdpa_device.h"
#include "support/temp_dirs.h"

namespace nicoffload::daemon {
namespace {

using std::chrono::milliseconds;

// A vDPA backend in memory; `fail_create` refuses creation on those VFs.
class FakeVdpa : public vdpa::VdpaBackend {
 public:
  model::VdpaKind kind() const override { return model::VdpaKind::kSim; }
  Result<vdpa::VdpaDevice> create(const vdpa::VdpaDeviceSpec& spec) override {
    ++creates;
    if (fail_create.count(spec.vf))
      return makeError(ErrorCode::kBusy, "vf", std::to_string(spec.vf), "firmware busy");
    vdpa::VdpaDevice d;
    d.name = spec.name;
    d.kind = spec.kind;
    d.vf = spec.vf;
    d.vhost_vdpa_path = "/dev/vhost-vdpa-" + std::to_string(spec.vf);
    d.mac = spec.mac;
    d.mtu = spec.mtu;
    d.max_vqp = spec.max_vqp;
    devices[d.name] = d;
    return d;
  }
  Status destroy(const std::string& name) override {
    devices.erase(name);
    return {};
  }
  Status setMac(const std::string& name, const MacAddr& mac) override {
    ++mac_sets;
    devices.at(name).mac = mac;
    return {};
  }
  Result<std::vector<vdpa::VdpaDevice>> list() override {
    std::vector<vdpa::VdpaDevice> out;
    for (const auto& [n, d] : devices) out.push_back(d);
    return out;
  }
  Result<std::string> interfaceXml(const vdpa::VdpaDevice&, const model::Port&) const override {
    return std::string();
  }
  std::map<std::string, vdpa::VdpaDevice> devices;
  std::set<std::uint16_t> fail_create;
  int creates = 0;
  int mac_sets = 0;
};

struct VdpaDevicesTest : ::testing::Test {
  std::string dir = testing::makeTempDir("nfo-vdpa-part");
  model::HostConfig host;
  FakeVdpa backend;
  FailureBook failures{milliseconds(100), milliseconds(800)};
  FailureBook::Clock::time_point now{};
  vdpa::VfPool vfs{"0000:03:00.0", 4};
  std::unique_ptr<VdpaDevices> part;
  std::vector<std::string> failed_what;

  void SetUp() override {
    host.vf_count = 4;
    host.vdpa_backend = model::VdpaKind::kSim;
    host.vdpa_pool_size = 2;
    host.vdpa_pool_low_water = 1;
    host.vdpa_pool_mtu = 1500;
    host.vdpa_link_dir = dir + "/links";
    part = std::make_unique<VdpaDevices>(host, &backend, failures, [this] { return now; });
  }
  void TearDown() override { std::filesystem::remove_all(dir); }

  VdpaDevices::FailFn failFn() {
    return [this](const std::string& what, const Error& e, std::uint64_t& counter) {
      ++counter;
      failed_what.push_back(what);
      failures.failed(FailureBook::Kind::kDevice, what, e, now);
    };
  }
  static model::Port port(int i, std::uint16_t mtu = 1500) {
    model::Port p;
    p.key = {"00000000-0000-4000-8000-00000000000" + std::to_string(i), 0};
    p.mac = *MacAddr::parse("52:54:00:00:00:0" + std::to_string(i));
    p.mtu = mtu;
    return p;
  }
};

TEST_F(VdpaDevicesTest, ThePoolFillsToItsSizeOnFreeVfsAFewAtATime) {
  ASSERT_TRUE(part->wantsWork()) << "an empty pool at start fills";
  part->refill(1, vfs);
  EXPECT_EQ(part->ready(), 1u) << "at most max_creates per call";
  part->refill(5, vfs);
  EXPECT_EQ(part->ready(), 2u);
  EXPECT_FALSE(part->wantsWork());
  EXPECT_EQ(backend.devices.count(vdpa::poolDeviceName(0)), 1u);
  EXPECT_EQ(backend.devices.count(vdpa::poolDeviceName(1)), 1u);
  EXPECT_EQ(part->counters().pool_refills, 2u);
  EXPECT_EQ(part->poolJson()["state"], "ready");
}

TEST_F(VdpaDevicesTest, AFittingPortTakesAReadyDeviceAndGetsItsLink) {
  part->refill(5, vfs);
  const auto p = port(1);
  EXPECT_EQ(part->readyFor(port(2, 9000)), nullptr) << "another MTU than the pool's";
  const auto* ready = part->readyFor(p);
  ASSERT_NE(ready, nullptr);
  auto vf = vfs.assign(p.key, std::nullopt, ready);
  ASSERT_TRUE(vf.ok());
  EXPECT_TRUE(ready->count(*vf)) << "the VF has a ready device";
  model::Port placed = p;
  placed.vf = *vf;
  auto spec = flowrules::planVdpaDevice(host, placed);
  ASSERT_TRUE(spec);
  const int creates = backend.creates;
  std::set<std::uint16_t> scope{*vf};
  part->reconcile({{spec->name, *spec}}, &scope, vfs, failFn());
  EXPECT_TRUE(failed_what.empty());
  EXPECT_EQ(backend.creates, creates) << "claimed, not created";
  EXPECT_EQ(part->counters().pool_claims, 1u);
  EXPECT_EQ(part->ready(), 1u);
  ASSERT_NE(part->onVf(*vf), nullptr);
  EXPECT_EQ(part->onVf(*vf)->mac, p.mac);
  char target[256] = {};
  ASSERT_GT(::readlink(part->linkPath(p.key).c_str(), target, sizeof target - 1), 0);
  EXPECT_EQ(std::string(target), "/dev/vhost-vdpa-" + std::to_string(*vf));
  part->removeLink(p.key);
  EXPECT_FALSE(std::filesystem::is_symlink(part->linkPath(p.key)));
}

TEST_F(VdpaDevicesTest, AFailedPoolDeviceWaitsForTheNextFullPass) {
  backend.fail_create = {0};
  part->refill(5, vfs);
  EXPECT_EQ(part->ready(), 2u) << "VFs 1 and 2";
  const auto* entry = failures.find("vdpa vf 0");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->kind, FailureBook::Kind::kPool);
  EXPECT_EQ(failures.nextRetry(), FailureBook::Clock::time_point::max())
      << "a pool device is no reason for a retry pass";
  backend.fail_create.clear();
  part->fullPassBegins();
  EXPECT_EQ(failures.find("vdpa vf 0"), nullptr);
}

TEST_F(VdpaDevicesTest, WithoutABackendThePoolIsOff) {
  VdpaDevices none(host, nullptr, failures, [this] { return now; });
  EXPECT_FALSE(none.poolEnabled());
  EXPECT_FALSE(none.wantsWork());
  EXPECT_EQ(none.readyFor(port(1)), nullptr);
  EXPECT_EQ(none.poolJson()["state"], "off");
}

}  // namespace
}  // namespace nicoffload::daemon
