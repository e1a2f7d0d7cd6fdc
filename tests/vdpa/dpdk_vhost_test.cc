// DPDK vDPA, what runs here: a real EAL (--no-huge --no-pci, no shared
// config, own file prefix), real vhost-user sockets registered, started,
// connected to and unregistered in a temp dir, and the DpdkVdpaBackend's
// refusal when DPDK has no vDPA device for the VF (there is no mlx5 here).
// Attaching a real mlx5 vDPA device is left to the hardware validation suite.
//
// Its own executable: the EAL can be initialised once per process.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "nicoffload/vdpa/dpdk_vdpa_backend.h"
#include "support/fake_sysfs.h"
#include "support/test_support.h"

namespace nicoffload::vdpa {
namespace {

namespace fs = std::filesystem;
using test::FakeSysfs;
using test::TempDir;
using ::testing::HasSubstr;

bool connects(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

TEST(DpdkVhost, RegisterStartConnectUnregister) {
  TempDir dir("nfo-vhost");
  const std::string path = dir / "port0.sock";
  ASSERT_TRUE(vhost::registerSocket(path, 0).ok());
  ASSERT_TRUE(vhost::start(path).ok());
  EXPECT_TRUE(fs::is_socket(path));
  EXPECT_TRUE(connects(path)) << "rte_vhost listens on the socket";
  ASSERT_TRUE(vhost::unregisterSocket(path).ok());
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(connects(path));
  EXPECT_TRUE(vhost::unregisterSocket(path).ok()) << "unregistering what is gone succeeds";
  // The path is free again.
  ASSERT_TRUE(vhost::registerSocket(path, 0).ok());
  ASSERT_TRUE(vhost::unregisterSocket(path).ok());
}

TEST(DpdkVhost, StartRefusesAnUnusablePath) {
  // DPDK 22.11 binds a server socket in rte_vhost_driver_start.
  const std::string path = "/nonexistent-nfo-dir/sub/port.sock";
  ASSERT_TRUE(vhost::registerSocket(path, 0).ok());
  auto s = vhost::start(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kIo);
  EXPECT_THAT(s.error().message,
              HasSubstr("rte_vhost_driver_start failed for vhost-user socket " + path));
  ASSERT_TRUE(vhost::unregisterSocket(path).ok());
}

TEST(DpdkVhost, AttachRefusesWithoutAVdpaDevice) {
  TempDir dir("nfo-vhost");
  const std::string path = dir / "port1.sock";
  ASSERT_TRUE(vhost::registerSocket(path, 0).ok());
  auto r = vhost::attachVdpaDevice(path, "0000:03:00.2");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(r.error().message, HasSubstr("DPDK has no vDPA device '0000:03:00.2'"));
  EXPECT_THAT(r.error().message, HasSubstr("-a 0000:03:00.2,class=vdpa"));
  ASSERT_TRUE(vhost::unregisterSocket(path).ok());
}

struct Fixture {
  TempDir dir{"nfo-dpdk-vdpa"};
  FakeSysfs tree{dir / "sys"};
  DpdkVdpaOptions opt;
  Fixture() {
    tree.pf("0000:03:00.0", "enp3s0f0np0", 8, 2);
    tree.vf("0000:03:00.0", 0, "0000:03:00.2", "mlx5_core");
    tree.vf("0000:03:00.0", 1, "0000:03:00.3", "mlx5_core");
    opt.pf_pci = "0000:03:00.0";
    opt.sysfs_root = tree.root();
    opt.runtime_dir = dir / "run/vhost";
  }
};

VdpaDeviceSpec spec(std::uint16_t vf) {
  VdpaDeviceSpec s;
  s.name = "nfo0123456789ab";
  s.port = {"6f3c2a1e-0000-4000-8000-000000000001", 0};
  s.kind = model::VdpaKind::kDpdk;
  s.vf = vf;
  s.mac = *MacAddr::parse("52:54:00:00:00:01");
  return s;
}

TEST(DpdkVdpaBackend, NoVdpaDeviceForTheVfIsAClearErrorAndLeavesNothing) {
  Fixture f;
  DpdkVdpaBackend b(f.opt);
  EXPECT_EQ(b.kind(), model::VdpaKind::kDpdk);
  auto r = b.create(spec(1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(r.error().message,
              HasSubstr("vDPA device nfo0123456789ab on VF 1 of PF 0000:03:00.0"));
  // The VF is probed first (rte_dev_probe "<VF>,class=vdpa", refused here:
  // --no-pci), so nothing is registered for it.
  EXPECT_THAT(r.error().message, HasSubstr("DPDK could not probe VF 0000:03:00.3 as a vDPA device"));
  EXPECT_THAT(r.error().message, HasSubstr("rte_dev_probe(\"0000:03:00.3,class=vdpa\")"));
  EXPECT_EQ(r.error().value, "0000:03:00.3,class=vdpa");
  const std::string path = b.socketPath("nfo0123456789ab");
  EXPECT_EQ(path, f.opt.runtime_dir + "/nfo0123456789ab.sock");
  EXPECT_FALSE(fs::exists(path));
  // Never registered: the same path registers.
  ASSERT_TRUE(vhost::registerSocket(path, 0).ok());
  ASSERT_TRUE(vhost::unregisterSocket(path).ok());
  EXPECT_TRUE(b.list()->empty());
  EXPECT_TRUE(b.destroy("nfo0123456789ab").ok());
}

TEST(DpdkVdpaBackend, MissingVfAndProfileRefusals) {
  Fixture f;
  DpdkVdpaBackend b(f.opt);
  auto r = b.create(spec(4));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(r.error().message, HasSubstr("VF 4 of PF 0000:03:00.0 does not exist"));
  f.opt.profile = test::loadProfile("connectx-5");
  DpdkVdpaBackend cx5(f.opt);
  auto u = cx5.create(spec(0));
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().code, ErrorCode::kUnsupported);
  EXPECT_THAT(u.error().message, HasSubstr("profile connectx-5"));
  EXPECT_THAT(u.error().message, HasSubstr("has no dpdk vDPA"));
}

TEST(DpdkVdpaBackend, InterfaceXmlIsVhostUser) {
  Fixture f;
  DpdkVdpaBackend b(f.opt);
  VdpaDevice d;
  d.name = "nfo0123456789ab";
  d.socket_path = b.socketPath(d.name);
  model::Port p;
  p.key = spec(0).port;
  p.mac = spec(0).mac;
  auto xml = b.interfaceXml(d, p);
  ASSERT_TRUE(xml.ok()) << xml.error().describe();
  EXPECT_THAT(*xml, HasSubstr("<interface type='vhostuser'>"));
  EXPECT_THAT(*xml, HasSubstr("path='" + d.socket_path + "'"));
  d.socket_path.clear();
  EXPECT_FALSE(b.interfaceXml(d, p).ok());
}

}  // namespace
}  // namespace nicoffload::vdpa

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // gtest_discover_tests lists the tests without running them: no EAL then.
  if (::testing::GTEST_FLAG(list_tests)) return RUN_ALL_TESTS();
  const std::string prefix = "nfo-vhost-" + std::to_string(getpid());
  std::vector<std::string> args = {"nicoffload_dpdk_vhost_tests",
                                   "--no-huge",
                                   "--no-pci",
                                   "-m",
                                   "512",
                                   "--no-shconf",
                                   "--no-telemetry",
                                   "--log-level",
                                   "lib.eal:error",
                                   "--file-prefix",
                                   prefix};
  std::vector<char*> eal_argv;
  for (auto& a : args) eal_argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
    std::fprintf(stderr, "rte_eal_init failed: %s\n", rte_strerror(rte_errno));
    return 1;
  }
  const int rc = RUN_ALL_TESTS();
  rte_eal_cleanup();
  std::error_code ec;
  std::filesystem::remove_all("/var/run/dpdk/" + prefix, ec);
  return rc;
}
