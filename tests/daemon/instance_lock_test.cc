// One daemon per host: the locks nicoffloadd takes before it opens any
// backend (the process-level test is tests/integration/single_instance_test.py).
#include "nicoffload/daemon/instance_lock.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "support/temp_dirs.h"

namespace nicoffload::daemon {
namespace {

std::string contents(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(InstanceLock, SecondHolderIsRefusedNamingThePidAndTheFileIsLeftAlone) {
  const std::string dir = testing::makeTempDir("nfo-lock") + "/not/yet/there";
  const InstanceLockPath path{dir + "/nic-0000:03:00.0.lock", "simulated device 0000:03:00.0"};
  auto first = InstanceLock::acquire(path);
  ASSERT_TRUE(first.ok()) << first.error().describe();
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u) << "missing directories are created root-only";
  const std::string pid = std::to_string(::getpid());
  EXPECT_EQ(contents(path.path), pid + "\n");
  // flock() locks belong to the open file description: a second acquire in
  // this very process is refused as another process's would be.
  auto second = InstanceLock::acquire(path);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, ErrorCode::kConflict);
  EXPECT_NE(second.error().message.find("(pid " + pid + ")"), std::string::npos)
      << second.error().message;
  EXPECT_NE(second.error().message.find("simulated device 0000:03:00.0"), std::string::npos);
  EXPECT_EQ(contents(path.path), pid + "\n") << "the refused one writes nothing";
  // Released with its holder (as on exit or kill -9): the next one takes it.
  { InstanceLock gone = std::move(first).value(); }
  auto third = InstanceLock::acquire(path);
  EXPECT_TRUE(third.ok()) << third.error().describe();
}

TEST(InstanceLock, TheLockFdIsNotInheritedByChildren) {
  const InstanceLockPath path{testing::makeTempDir("nfo-lock") + "/lock", "state directory"};
  auto lock = InstanceLock::acquire(path);
  ASSERT_TRUE(lock.ok());
  // Find our fd on the file and check FD_CLOEXEC.
  bool found = false;
  for (int fd = 3; fd < 1024; ++fd) {
    char link[64];
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    char target[4096] = {};
    const ssize_t n = ::readlink(link, target, sizeof target - 1);
    if (n <= 0 || std::string(target, static_cast<std::size_t>(n)) != path.path) continue;
    found = true;
    EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
  }
  EXPECT_TRUE(found);
}

TEST(InstanceLock, PathsCoverTheDeviceAndTheStateDirectory) {
  model::HostConfig host;
  host.uplink_pci = "0000:03:00.0";
  host.state_dir = "/var/lib/nfo-a";
  host.sim_device_dir = "/tmp/simnic";
  host.flow_backend = model::FlowBackendKind::kSim;
  host.nic_backend = model::NicBackendKind::kSim;
  host.vdpa_backend = model::VdpaKind::kSim;
  auto paths = instanceLockPaths(host);
  ASSERT_EQ(paths.size(), 2u);
  EXPECT_EQ(paths[0].path, "/tmp/simnic/nic-0000:03:00.0.lock") << "the device first";
  EXPECT_EQ(paths[1].path, "/var/lib/nfo-a/lock");
  host.flow_backend = model::FlowBackendKind::kDpdk;
  host.nic_backend = model::NicBackendKind::kSysfs;
  host.vdpa_backend = model::VdpaKind::kKernel;
  paths = instanceLockPaths(host);
  ASSERT_EQ(paths.size(), 2u);
  EXPECT_EQ(paths[0].path, "/run/nicoffload/0000:03:00.0.lock");
  EXPECT_EQ(paths[1].path, "/var/lib/nfo-a/lock");
  // A dual-homed host: both PFs, then the state directory.
  host.uplink2 = model::SecondUplink{};
  host.uplink2->pci = "0000:03:00.1";
  paths = instanceLockPaths(host);
  ASSERT_EQ(paths.size(), 3u);
  EXPECT_EQ(paths[0].path, "/run/nicoffload/0000:03:00.0.lock");
  EXPECT_EQ(paths[1].path, "/run/nicoffload/0000:03:00.1.lock");
  EXPECT_EQ(paths[2].path, "/var/lib/nfo-a/lock");
}

// Two daemons sharing a second PF: the one that comes second is refused on
// it, even though its first PF is another.
TEST(InstanceLock, TheSecondUplinkIsLockedToo) {
  const std::string dir = testing::makeTempDir("nfo-lock2");
  model::HostConfig a;
  a.uplink_pci = "0000:03:00.0";
  a.uplink2 = model::SecondUplink{};
  a.uplink2->pci = "0000:03:00.1";
  a.sim_device_dir = dir + "/simnic";
  a.state_dir = dir + "/state-a";
  auto first = acquireInstanceLocks(a);
  ASSERT_TRUE(first.ok()) << first.error().describe();
  model::HostConfig b;
  b.uplink_pci = "0000:03:00.1";
  b.sim_device_dir = dir + "/simnic";
  b.state_dir = dir + "/state-b";
  auto second = acquireInstanceLocks(b);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().describe().find("0000:03:00.1"), std::string::npos)
      << second.error().describe();
  first.value().clear();
  EXPECT_TRUE(acquireInstanceLocks(b).ok()) << "free again once the first lets go";
}

TEST(InstanceLock, AllOrNothing) {
  const std::string dir = testing::makeTempDir("nfo-lock");
  model::HostConfig host;
  host.uplink_pci = "0000:03:00.0";
  host.sim_device_dir = dir + "/simnic";
  host.state_dir = dir + "/state-a";
  auto first = acquireInstanceLocks(host);
  ASSERT_TRUE(first.ok()) << first.error().describe();
  // Same device, another state directory: refused on the device.
  host.state_dir = dir + "/state-b";
  auto second = acquireInstanceLocks(host);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().value, dir + "/simnic/nic-0000:03:00.0.lock");
  struct stat st {};
  EXPECT_NE(::stat(host.state_dir.c_str(), &st), 0)
      << "refused before it created its state directory";
  // Same state directory, another device: refused on the state directory.
  host.state_dir = dir + "/state-a";
  host.sim_device_dir = dir + "/simnic-other";
  auto third = acquireInstanceLocks(host);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error().value, dir + "/state-a/lock");
}

}  // namespace
}  // namespace nicoffload::daemon
