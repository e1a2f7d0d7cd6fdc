// FailureBook: a status and a backoff per object; sweeps end what is in
// place; the retry time is the earliest object's.
#include "nicoffload/daemon/failure_book.h"

#include <gtest/gtest.h>

namespace nicoffload::daemon {
namespace {

using std::chrono::milliseconds;
using Kind = FailureBook::Kind;
using Clock = FailureBook::Clock;

Error kernelSays(const std::string& what) {
  return makeError(ErrorCode::kConflict, "route", "10.0.3.1/32", what);
}

struct BookTest : ::testing::Test {
  FailureBook book{milliseconds(100), milliseconds(800)};
  Clock::time_point t0 = Clock::time_point() + std::chrono::hours(1);
};

TEST_F(BookTest, NothingFailedMeansNoRetry) {
  EXPECT_EQ(book.nextRetry(), Clock::time_point::max());
  EXPECT_EQ(book.size(), 0u);
  EXPECT_EQ(book.find("route a"), nullptr);
}

// Each failure that came when the object was due doubles its backoff, up
// to the ceiling.
TEST_F(BookTest, AnObjectsBackoffDoublesOnItsOwnFailuresUpToTheCeiling) {
  struct Step {
    milliseconds at;
    milliseconds backoff;
  };
  const Step steps[] = {{milliseconds(0), milliseconds(100)},    {milliseconds(100), milliseconds(200)},
                        {milliseconds(300), milliseconds(400)},  {milliseconds(700), milliseconds(800)},
                        {milliseconds(1500), milliseconds(800)}, {milliseconds(2300), milliseconds(800)}};
  std::uint32_t attempts = 0;
  for (const auto& s : steps) {
    const auto& e = book.failed(Kind::kKernel, "route a", kernelSays("exists"), t0 + s.at);
    EXPECT_EQ(e.attempts, ++attempts);
    EXPECT_EQ(e.backoff, s.backoff) << "failure at +" << s.at.count() << " ms";
    EXPECT_EQ(e.retry_at, t0 + s.at + s.backoff);
    EXPECT_EQ(e.since, t0);
  }
}

// A pass that retried an object before it was due (another object's retry)
// does not push it further out; the error is the latest all the same.
TEST_F(BookTest, AFailureBeforeTheObjectWasDueKeepsItsRetryTime) {
  book.failed(Kind::kKernel, "route a", kernelSays("first"), t0);
  const auto& e = book.failed(Kind::kKernel, "route a", kernelSays("second"), t0 + milliseconds(30));
  EXPECT_EQ(e.retry_at, t0 + milliseconds(100));
  EXPECT_EQ(e.backoff, milliseconds(100));
  EXPECT_EQ(e.attempts, 2u);
  EXPECT_EQ(e.error.message, "second");
}

// The point of a backoff per object: a long-failing object does not delay
// the retry of a fresh failure.
TEST_F(BookTest, AFreshFailureIsRetriedSoonWhateverAnOldOneWaitsFor) {
  for (int i = 0; i < 5; ++i)
    book.failed(Kind::kKernel, "route old", kernelSays("no"), t0 + milliseconds(1000 * i));
  ASSERT_EQ(book.find("route old")->backoff, milliseconds(800));
  const auto now = t0 + milliseconds(4100);
  book.failed(Kind::kDevice, "vf 3", kernelSays("busy"), now);
  EXPECT_EQ(book.nextRetry(), now + milliseconds(100));
}

TEST_F(BookTest, ClearedForgetsTheObjectAndItsBackoff) {
  book.failed(Kind::kKernel, "route a", kernelSays("no"), t0);
  book.failed(Kind::kKernel, "route a", kernelSays("no"), t0 + milliseconds(100));
  book.cleared("route a");
  EXPECT_EQ(book.find("route a"), nullptr);
  const auto& again = book.failed(Kind::kKernel, "route a", kernelSays("no"), t0 + milliseconds(500));
  EXPECT_EQ(again.attempts, 1u);
  EXPECT_EQ(again.backoff, milliseconds(100));
}

// A sweep forgets the objects of its kind (and scope) that did not fail
// again while it was open, and nothing else.
TEST_F(BookTest, ASweepEndsWhatDidNotFailAgainWithinItsKindAndScope) {
  book.failed(Kind::kKernel, "route a", kernelSays("no"), t0);
  book.failed(Kind::kKernel, "route b", kernelSays("no"), t0);
  book.failed(Kind::kDevice, "vf 1", kernelSays("no"), t0);
  book.failed(Kind::kDevice, "vf 2", kernelSays("no"), t0);
  book.beginSweep(Kind::kKernel);
  book.beginSweep(Kind::kDevice);
  book.failed(Kind::kKernel, "route b", kernelSays("still"), t0 + milliseconds(100));
  EXPECT_EQ(book.endSweep(Kind::kKernel), 1u);
  EXPECT_EQ(book.find("route a"), nullptr);
  ASSERT_NE(book.find("route b"), nullptr);
  EXPECT_EQ(book.find("route b")->attempts, 2u);
  // The device sweep looked at vf 2 only.
  EXPECT_EQ(book.endSweep(Kind::kDevice, [](const std::string& o) { return o == "vf 2"; }), 1u);
  EXPECT_NE(book.find("vf 1"), nullptr);
  EXPECT_EQ(book.find("vf 2"), nullptr);
}

TEST_F(BookTest, PoolFailuresAreNotRetryPasses) {
  book.failed(Kind::kPool, "vdpa vf 7", kernelSays("no"), t0);
  EXPECT_EQ(book.nextRetry(), Clock::time_point::max());
  EXPECT_EQ(book.postponeDue(t0 + milliseconds(500)), 0u);
  EXPECT_EQ(book.count(Kind::kPool), 1u);
}

// A due object that a retry pass could not reach backs off as if it had
// failed: retry passes never run back to back.
TEST_F(BookTest, PostponeDueBacksOffOnlyWhatIsDue) {
  book.failed(Kind::kKernel, "route a", kernelSays("no"), t0);
  book.failed(Kind::kKernel, "route b", kernelSays("no"), t0 + milliseconds(90));
  const auto now = t0 + milliseconds(120);
  EXPECT_EQ(book.postponeDue(now), 1u);
  EXPECT_EQ(book.find("route a")->retry_at, now + milliseconds(200));
  EXPECT_EQ(book.find("route b")->retry_at, t0 + milliseconds(190));
  EXPECT_EQ(book.nextRetry(), t0 + milliseconds(190));
}

TEST_F(BookTest, JsonNamesTheObjectItsErrorAttemptsAndTimes) {
  book.failed(Kind::kKernel, "route b", kernelSays("later"), t0 + milliseconds(50));
  book.failed(Kind::kDevice, "vf 3", kernelSays("first"), t0);
  const auto now = t0 + milliseconds(60);
  const auto one = FailureBook::toJson("vf 3", *book.find("vf 3"), now);
  EXPECT_EQ(one["object"], "vf 3");
  EXPECT_EQ(one["kind"], "device");
  EXPECT_EQ(one["attempts"], 1);
  EXPECT_EQ(one["failing_for_ms"], 60);
  EXPECT_EQ(one["retry_in_ms"], 40);
  EXPECT_EQ(one["error"]["message"], "first");
  const auto sum = book.summaryJson(now, 1);
  EXPECT_EQ(sum["objects"], 2);
  EXPECT_EQ(sum["kernel"], 1);
  EXPECT_EQ(sum["device"], 1);
  EXPECT_EQ(sum["next_retry_in_ms"], 40);
  ASSERT_EQ(sum["oldest"].size(), 1u);
  EXPECT_EQ(sum["oldest"][0]["object"], "vf 3") << "the longest failing first";
}

}  // namespace
}  // namespace nicoffload::daemon
