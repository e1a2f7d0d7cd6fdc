// Reading the files a user names: a regular file with a size cap, or an
// error naming the setting and the path. /dev/zero, a directory, a FIFO or
// an oversized file never hang, grow without bound or pass.
#include "nicoffload/common/file_read.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "nicoffload/model/parse.h"
#include "support/test_support.h"

namespace nicoffload {
namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/nfo-file-read-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name, const std::string& text) const {
    const std::string p = path + "/" + name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
};

bool has(const std::string& s, const std::string& needle) {
  return s.find(needle) != std::string::npos;
}

TEST(ReadRegularFile, ReadsAFileUpToTheCap) {
  TempDir d;
  const auto p = d.file("ten", "0123456789");
  auto ok = readRegularFile(p, 10);
  ASSERT_TRUE(ok) << ok.error().describe();
  EXPECT_EQ(*ok, "0123456789");
  auto big = readRegularFile(p, 9, "--file");
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(big.error().field, "--file");
  EXPECT_EQ(big.error().value, p);
  EXPECT_TRUE(has(big.error().message, "larger than 9 bytes")) << big.error().message;
  EXPECT_TRUE(readRegularFile(d.file("empty", ""), 9));
}

TEST(ReadRegularFile, DevZeroIsRefusedAsACharacterDevice) {
  const auto t0 = std::chrono::steady_clock::now();
  auto r = readRegularFile("/dev/zero", kMaxConfigFileBytes, "hw_profile");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(r.error().field, "hw_profile");
  EXPECT_EQ(r.error().value, "/dev/zero");
  EXPECT_EQ(r.error().message, "/dev/zero is a character device, not a regular file");
}

TEST(ReadRegularFile, ADirectorySaysSo) {
  TempDir d;
  auto r = readRegularFile(d.path, kMaxConfigFileBytes);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(r.error().field, d.path) << "no field given: the path is the field";
  EXPECT_TRUE(has(r.error().message, "is a directory")) << r.error().message;
}

TEST(ReadRegularFile, AFifoWithoutAWriterDoesNotBlock) {
  TempDir d;
  const std::string fifo = d.path + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto r = readRegularFile(fifo, kMaxConfigFileBytes, "--config");
  ASSERT_FALSE(r);
  EXPECT_TRUE(has(r.error().message, "is a FIFO, not a regular file")) << r.error().message;
}

TEST(ReadRegularFile, AMissingFileIsAnIoErrorNamingIt) {
  auto r = readRegularFile("/nonexistent/nfo.json", 100, "--host");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kIo);
  EXPECT_EQ(r.error().field, "--host");
  EXPECT_TRUE(has(r.error().message, "/nonexistent/nfo.json")) << r.error().message;
}

TEST(ReadRegularFile, BoundedFdStopsAtTheCap) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "abcdef", 6), 6);
  ::close(fds[1]);
  auto r = readBoundedFd(fds[0], 5, "stdin");
  ::close(fds[0]);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "stdin");
  EXPECT_TRUE(has(r.error().message, "more than 5 bytes")) << r.error().message;
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "abc", 3), 3);
  ::close(fds[1]);
  auto ok = readBoundedFd(fds[0], 5, "stdin");
  ::close(fds[0]);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, "abc");
}

// Issue 22: `host-check --config /dev/zero` read without end (exit 6), and
// `"hw_profile": "/dev/zero"` grew --check without bound.
TEST(ReadRegularFile, HostConfigAndProfileOnADevice) {
  auto host = model::loadHostConfig("/dev/zero");
  ASSERT_FALSE(host);
  EXPECT_EQ(host.error().code, ErrorCode::kInvalidValue);
  EXPECT_TRUE(has(host.error().describe(), "/dev/zero is a character device"))
      << host.error().describe();

  auto profile = model::loadHostProfile("/dev/zero", "/etc/nicoffload/host.json", "/nonexistent");
  ASSERT_FALSE(profile);
  EXPECT_EQ(profile.error().field, "/etc/nicoffload/host.json: hw_profile");
  EXPECT_EQ(profile.error().value, "/dev/zero");
  EXPECT_TRUE(has(profile.error().message, "not a regular file")) << profile.error().message;

  TempDir d;
  auto dir_profile = model::loadHostProfile(d.path + "/", "host.json", "/nonexistent");
  ASSERT_FALSE(dir_profile);
  EXPECT_EQ(dir_profile.error().field, "host.json: hw_profile");
  EXPECT_TRUE(has(dir_profile.error().message, "is a directory")) << dir_profile.error().message;

  // A profile larger than any real one is refused before it is parsed.
  auto huge = d.file("huge.json", std::string(kMaxConfigFileBytes + 1, ' '));
  auto too_big = model::loadHwProfile(huge);
  ASSERT_FALSE(too_big);
  EXPECT_TRUE(has(too_big.error().message, "larger than 1 MiB")) << too_big.error().message;
}

// --- what a host config asks of its profile (nicoffloadd --check, host-check) ---

TEST(HostForProfile, VfCountAboveMaxVfsIsRefused) {
  auto intent = test::exampleIntent(test::Example::kRouted);
  test::dropVdpa(intent);
  const auto cx5 = test::loadProfile("connectx-5");
  EXPECT_TRUE(model::checkHostForProfile(intent.host, cx5));
  intent.host.vf_count = static_cast<std::uint16_t>(cx5.max_vfs + 1);
  auto s = model::checkHostForProfile(intent.host, cx5);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(s.error().field, "uplink.vf_count");
  EXPECT_EQ(s.error().value, std::to_string(cx5.max_vfs + 1));
  EXPECT_TRUE(has(s.error().message, "at most " + std::to_string(cx5.max_vfs)))
      << s.error().message;
  intent.host.vf_count = cx5.max_vfs;
  EXPECT_TRUE(model::checkHostForProfile(intent.host, cx5));
}

TEST(HostForProfile, VdpaTheProfileLacksIsRefused) {
  auto host = test::exampleIntent(test::Example::kVxlan).host;
  const auto cx5 = test::loadProfile("connectx-5");
  host.vdpa_backend = model::VdpaKind::kSim;
  auto s = model::checkHostForProfile(host, cx5);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().field, "backends.vdpa");
  EXPECT_EQ(s.error().value, "sim");
  EXPECT_TRUE(has(s.error().message, "connectx-5")) << s.error().message;

  host.vdpa_backend = model::VdpaKind::kKernel;
  host.vdpa_pool_size = 4;
  s = model::checkHostForProfile(host, cx5);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().field, "vdpa.pool.size");
  EXPECT_EQ(s.error().value, "4");

  // BlueField-3: kernel vDPA, no DPDK vDPA (its profile's claim).
  const auto bf3 = test::loadProfile("bluefield-3");
  EXPECT_TRUE(model::checkHostForProfile(host, bf3));
  host.vdpa_backend = model::VdpaKind::kDpdk;
  s = model::checkHostForProfile(host, bf3);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().field, "vdpa.pool.size");
  host.vdpa_pool_size = 0;
  s = model::checkHostForProfile(host, bf3);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().field, "backends.vdpa");
  EXPECT_EQ(s.error().value, "dpdk");
  host.vdpa_backend = model::VdpaKind::kNone;
  EXPECT_TRUE(model::checkHostForProfile(host, cx5)) << "VF passthrough needs no vDPA";
}

TEST(EalArguments, HelpAndVersionInAnyFormAreRefused) {
  for (const char* a : {"-h", "--help", "--he", "--hel", "--help=1", "--version", "--vers", "-vh",
                        "--", "", "a\nb"})
    EXPECT_FALSE(model::ealArgumentProblem(a).empty()) << a;
  for (const char* a : {"--no-huge", "--no-pci", "-m", "512", "--file-prefix=x", "--huge-dir", "-v",
                        "-l0-1", "-lh", "--vdev", "net_null0", "-a", "0000:03:00.0"})
    EXPECT_EQ(model::ealArgumentProblem(a), "") << a;
}

}  // namespace
}  // namespace nicoffload
