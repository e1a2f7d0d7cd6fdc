// sysfs access and layout helpers against a fake tree.
#include "nicoffload/offload/sysfs_io.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/fake_sysfs.h"

namespace nicoffload::offload {
namespace {

using sysfs::PhysPortName;
using test::FakeSysfs;
using test::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(PhysPortName, Mlx5Forms) {
  EXPECT_EQ(sysfs::parsePhysPortName("p0"), (PhysPortName{{}, {}, {}, {}, 0u}));
  EXPECT_EQ(sysfs::parsePhysPortName("pf0vf3"), (PhysPortName{{}, 0u, 3u, {}, {}}));
  EXPECT_EQ(sysfs::parsePhysPortName("pf1vf127"), (PhysPortName{{}, 1u, 127u, {}, {}}));
  EXPECT_EQ(sysfs::parsePhysPortName("c1pf0vf3"), (PhysPortName{1u, 0u, 3u, {}, {}}));
  EXPECT_EQ(sysfs::parsePhysPortName("pf0sf88"), (PhysPortName{{}, 0u, {}, 88u, {}}));
  EXPECT_EQ(sysfs::parsePhysPortName("pf0"), (PhysPortName{{}, 0u, {}, {}, {}}));
  for (const char* bad :
       {"", "p", "pf", "pfvf1", "pf0vf", "pf0vf3x", "vf3", "eth0", "c1", "pf0xf1", "p0vf1"})
    EXPECT_FALSE(sysfs::parsePhysPortName(bad).has_value()) << bad;
}

TEST(PciAddress, Form) {
  EXPECT_TRUE(sysfs::isPciAddress("0000:03:00.0"));
  EXPECT_TRUE(sysfs::isPciAddress("0000:af:1f.7"));
  for (const char* bad : {"03:00.0", "0000:03:00.8", "0000:03:00", "0000-03:00.0", "000g:03:00.0"})
    EXPECT_FALSE(sysfs::isPciAddress(bad)) << bad;
  EXPECT_EQ(sysfs::pciFunction("0000:03:00.1"), 1u);
  EXPECT_FALSE(sysfs::pciFunction("bogus").has_value());
}

TEST(SysfsLayout, VfsDriversNetdevsAndVdpa) {
  TempDir dir("nfo-sysfs");
  FakeSysfs t(dir.path());
  t.pf("0000:03:00.0", "enp3s0f0np0", 8, 3);
  t.vf("0000:03:00.0", 0, "0000:03:00.2", "mlx5_core");
  t.vf("0000:03:00.0", 2, "0000:03:00.4");  // virtfn1 missing: a gap
  t.vdpaDevice("0000:03:00.2", 0, "nfo000000000001", "vhost_vdpa", 3);
  FsSysfsIo io(dir.path());
  EXPECT_THAT(sysfs::vfPcis(io, "0000:03:00.0"), ElementsAre("0000:03:00.2", "", "0000:03:00.4"));
  auto vf2 = sysfs::vfPci(io, "0000:03:00.0", 2);
  ASSERT_TRUE(vf2.ok());
  EXPECT_EQ(*vf2, "0000:03:00.4");
  auto vf1 = sysfs::vfPci(io, "0000:03:00.0", 1);
  ASSERT_FALSE(vf1.ok());
  EXPECT_EQ(vf1.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(vf1.error().message, HasSubstr("VF 1 of PF 0000:03:00.0 does not exist"));
  EXPECT_THAT(vf1.error().message, HasSubstr("sriov_numvfs is 3"));
  EXPECT_EQ(sysfs::driverOf(io, "0000:03:00.2"), "mlx5_core");
  EXPECT_EQ(sysfs::driverOf(io, "0000:03:00.4"), "");
  EXPECT_THAT(sysfs::netdevsOf(io, "0000:03:00.0"), ElementsAre("enp3s0f0np0"));
  EXPECT_THAT(sysfs::vdpaDevicesOn(io, "0000:03:00.2"), ElementsAre("nfo000000000001"));
  EXPECT_TRUE(sysfs::vdpaDevicesOn(io, "0000:03:00.4").empty());
}

// vdpaDevicesOnEach answers as vdpaDevicesOn per function, in one walk.
TEST(SysfsLayout, VdpaDevicesOfManyFunctionsAtOnce) {
  TempDir dir("nfo-sysfs");
  FakeSysfs t(dir.path());
  t.pf("0000:03:00.0", "enp3s0f0np0", 8, 4);
  t.vf("0000:03:00.0", 0, "0000:03:00.2", "mlx5_core");
  t.vf("0000:03:00.0", 1, "0000:03:00.3", "mlx5_core");
  t.vf("0000:03:00.0", 2, "0000:03:00.4");
  t.vf("0000:03:00.0", 3, "0000:03:00.5", "mlx5_core");
  t.vdpaDevice("0000:03:00.2", 0, "nfo000000000001", "vhost_vdpa", 3);
  t.vdpaDevice("0000:03:00.5", 1, "nfo000000000002", "vhost_vdpa", 4);
  FsSysfsIo io(dir.path());
  const std::vector<std::string> pcis = {"0000:03:00.2", "", "0000:03:00.4", "0000:03:00.5",
                                         "0000:03:00.9"};
  const auto each = sysfs::vdpaDevicesOnEach(io, pcis);
  ASSERT_EQ(each.size(), pcis.size());
  EXPECT_THAT(each[0], ElementsAre("nfo000000000001"));
  EXPECT_TRUE(each[1].empty());
  EXPECT_TRUE(each[2].empty());
  EXPECT_THAT(each[3], ElementsAre("nfo000000000002"));
  EXPECT_TRUE(each[4].empty()) << "a function that does not exist has none";
  for (std::size_t i = 0; i < pcis.size(); ++i) {
    if (!pcis[i].empty()) {
      EXPECT_EQ(each[i], sysfs::vdpaDevicesOn(io, pcis[i])) << pcis[i];
    }
  }
}

TEST(SysfsIo, ReadWriteAndErrors) {
  TempDir dir("nfo-sysfs");
  FakeSysfs t(dir.path());
  t.file("bus/pci/devices/x/sriov_numvfs", "4\n");
  FsSysfsIo io(dir.path() + "/");
  EXPECT_EQ(io.root(), dir.path());
  auto v = io.read("bus/pci/devices/x/sriov_numvfs");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "4");
  ASSERT_TRUE(io.write("bus/pci/devices/x/sriov_numvfs", "8").ok());
  EXPECT_EQ(t.read("bus/pci/devices/x/sriov_numvfs"), "8");
  auto missing = io.write("bus/pci/drivers/vfio-pci/bind", "0000:03:00.2");
  ASSERT_FALSE(missing.ok()) << "a write never creates an attribute";
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing.error().field, HasSubstr("bus/pci/drivers/vfio-pci/bind"));
  EXPECT_FALSE(t.exists("bus/pci/drivers/vfio-pci/bind"));
  auto nothing = io.read("nope");
  ASSERT_FALSE(nothing.ok());
  EXPECT_EQ(nothing.error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(io.list("no/such/dir").empty());
}

TEST(ErrnoMapping, Catalogue) {
  EXPECT_EQ(errorCodeForErrno(ENODEV), ErrorCode::kNotFound);
  EXPECT_EQ(errorCodeForErrno(EBUSY), ErrorCode::kBusy);
  EXPECT_EQ(errorCodeForErrno(EINVAL), ErrorCode::kInvalidValue);
  EXPECT_EQ(errorCodeForErrno(EOPNOTSUPP), ErrorCode::kUnsupported);
  EXPECT_EQ(errorCodeForErrno(EEXIST), ErrorCode::kDuplicate);
  EXPECT_EQ(errorCodeForErrno(EACCES), ErrorCode::kIo);
}

}  // namespace
}  // namespace nicoffload::offload
