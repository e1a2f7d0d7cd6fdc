// The EAL's lifecycle: it starts once per process, from arguments; stop
// closes every port and cleans up; it cannot start again. Each check runs in
// a child process (a gtest death test), since the EAL starts once per process.
#include "nicoffload/dpdk/eal.h"

#include <gtest/gtest.h>
#include <rte_ethdev.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace nicoffload::dpdk {
namespace {

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "CHECK FAILED: %s\n", why.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

std::vector<std::string> args(const std::string& prefix) {
  return {"nicoffload-eal-test",
          "--no-huge",
          "--no-pci",
          "-m",
          "512",
          "--no-shconf",
          "--file-prefix",
          prefix,
          "--no-telemetry",
          "--log-level=*:error",
          "--vdev",
          "net_null0",
          "--vdev",
          "net_ring0"};
}

void startStopIsCleanAndOnce() {
  const std::string prefix = "nfo-eal-" + std::to_string(::getpid());
  const std::filesystem::path run = "/var/run/dpdk/" + prefix;
  auto eal = Eal::start(args(prefix));
  if (!eal.ok()) fail("start: " + eal.error().describe());
  if (!(*eal)->running()) fail("not running after start");
  if ((*eal)->filePrefix() != prefix) fail("file prefix " + (*eal)->filePrefix());
  if (rte_eth_dev_count_avail() != 2) fail("expected the 2 vdev ports");
  if (!std::filesystem::exists(run)) fail("no runtime directory " + run.string());
  auto again = Eal::start(args(prefix + "-again"));
  if (again.ok() || again.error().code != ErrorCode::kBusy)
    fail("a second start while running must be kBusy");
  if (!(*eal)->stop().ok()) fail("stop");
  if ((*eal)->running()) fail("running after stop");
  if (rte_eth_dev_count_avail() != 0) fail("ports left after stop");
  if (!(*eal)->stop().ok()) fail("a second stop must succeed (idempotent)");
  auto after = Eal::start(args(prefix + "-after"));
  if (after.ok() || after.error().code != ErrorCode::kBusy ||
      after.error().message.find("cannot start it again") == std::string::npos)
    fail("a start after stop must be refused");
  std::filesystem::remove_all(run);
  if (std::filesystem::exists(run)) fail("runtime directory left");
  std::exit(0);
}

void badArgumentsAreRefused() {
  const std::string prefix = "nfo-eal-bad-" + std::to_string(::getpid());
  auto eal = Eal::start({"nicoffload-eal-test", "--no-huge", "--no-pci", "--file-prefix", prefix,
                         "--no-such-eal-option"});
  std::filesystem::remove_all("/var/run/dpdk/" + prefix);
  if (eal.ok()) fail("an unknown EAL option was accepted");
  if (eal.error().code != ErrorCode::kInvalidValue)
    fail("expected kInvalidValue: " + eal.error().describe());
  if (eal.error().message.find("rte_eal_init failed") == std::string::npos)
    fail(eal.error().describe());
  // The value is cut to a short echo; the message names every argument.
  if (eal.error().message.find("--no-such-eal-option") == std::string::npos)
    fail("the arguments are named");
  std::exit(0);
}

TEST(EalLifecycle, StartStopIsCleanAndHappensOncePerProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(startStopIsCleanAndOnce(), testing::ExitedWithCode(0), "");
}

TEST(EalLifecycle, BadArgumentsAreRefusedAsInvalid) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(badArgumentsAreRefused(), testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace nicoffload::dpdk
