// Claims, the controller's part for tentative ports, on its own: an intent
// in memory, both clocks injected, and a RemovePorts that removes from the
// intent (or refuses, as a failed state write would). The claims' clock
// follows the steady clock from the wall time at start; an expired claim is
// removed and counted, the others scheduled; a refused removal is retried;
// claims held across a restart are looked at at once.
#include "nicoffload/daemon/claims.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace nicoffload::daemon {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = Claims::Clock;

// 2026-01-01T00:00:00Z, ms since the epoch: the wall clock at start.
constexpr std::int64_t kWallStartMs = 1'767'225'600'000;

struct Fixture {
  model::Intent intent;
  Clock::time_point now{std::chrono::hours(1)};
  std::chrono::system_clock::time_point wall{milliseconds(kWallStartMs)};
  Clock::time_point started = now;
  std::vector<std::vector<json>> removals;  // each call's requests
  std::set<std::string> refuse;             // VMs whose removal is refused
  std::unique_ptr<Claims> claims;

  void start(milliseconds retry_min = milliseconds(100)) {
    started = now;
    claims = std::make_unique<Claims>(
        intent, [this] { return now; }, [this] { return wall; }, started, retry_min,
        [this](std::vector<control::Request> batch) {
          std::vector<json> bodies, replies;
          for (const auto& r : batch) {
            bodies.push_back(r.body);
            const std::string vm = r.body["vm"];
            if (refuse.count(vm)) {
              replies.push_back({{"ok", false}, {"error", {{"code", "io"}}}});
              continue;
            }
            std::erase_if(intent.ports, [&](const model::Port& p) { return p.key.vm == vm; });
            replies.push_back({{"ok", true}, {"result", json::object()}});
          }
          removals.push_back(std::move(bodies));
          return replies;
        });
  }
  // A port of VM `vm`, tentative until `until_ms` (claims' clock) if given.
  void addPort(const std::string& vm, std::optional<std::int64_t> until_ms) {
    model::Port p;
    p.key = {vm, 0};
    p.tentative_until_ms = until_ms;
    intent.ports.push_back(p);
  }
  void advance(milliseconds d) {
    now += d;
    wall += d;
  }
};

TEST(Claims, TheClockIsTheWallAtStartPlusSteadyTimeSince) {
  Fixture f;
  f.start();
  EXPECT_EQ(f.claims->clockMs(), kWallStartMs);
  f.advance(milliseconds(1500));
  EXPECT_EQ(f.claims->clockMs(), kWallStartMs + 1500);
  // A step of the wall clock (NTP, an operator) changes nothing.
  f.wall += std::chrono::hours(2);
  EXPECT_EQ(f.claims->clockMs(), kWallStartMs + 1500);
  f.wall -= std::chrono::hours(5);
  EXPECT_EQ(f.claims->clockMs(), kWallStartMs + 1500);
}

TEST(Claims, NoteSchedulesTheEarliestExpiry) {
  Fixture f;
  f.start();
  EXPECT_EQ(f.claims->next(), Clock::time_point::max()) << "no claim held";
  f.claims->note(kWallStartMs + 10'000);
  EXPECT_EQ(f.claims->next(), f.now + milliseconds(10'000));
  f.claims->note(kWallStartMs + 4'000);
  EXPECT_EQ(f.claims->next(), f.now + milliseconds(4'000));
  f.claims->note(kWallStartMs + 20'000);
  EXPECT_EQ(f.claims->next(), f.now + milliseconds(4'000)) << "the earliest stays";
  f.claims->note(kWallStartMs - 5'000);
  EXPECT_EQ(f.claims->next(), f.now) << "already past: due now";
}

TEST(Claims, AnExpiredClaimIsRemovedAndCountedTheOthersAreScheduled) {
  Fixture f;
  f.start();
  f.addPort("vm-confirmed", std::nullopt);
  f.addPort("vm-early", kWallStartMs + 5'000);
  f.addPort("vm-late", kWallStartMs + 12'000);
  EXPECT_EQ(f.claims->tentativeCount(), 2u);
  const json early = f.claims->claimJson(f.intent.ports[1]);
  EXPECT_EQ(early["expires_in_s"], 5.0);
  EXPECT_EQ(early["until_ms"], kWallStartMs + 5'000);

  f.advance(milliseconds(4'999));
  f.claims->expire();
  EXPECT_TRUE(f.removals.empty()) << "expires at 5 s";
  EXPECT_EQ(f.claims->next(), f.now + milliseconds(1)) << "the early claim's expiry";

  f.advance(milliseconds(1));
  f.claims->expire();
  ASSERT_EQ(f.removals.size(), 1u);
  ASSERT_EQ(f.removals[0].size(), 1u);
  EXPECT_EQ(f.removals[0][0], (json{{"op", "port.remove"}, {"vm", "vm-early"}, {"nic", 0}}));
  EXPECT_EQ(f.claims->expired(), 1u);
  EXPECT_EQ(f.claims->tentativeCount(), 1u);
  EXPECT_EQ(f.intent.ports.size(), 2u) << "the confirmed port and the late claim stay";
  EXPECT_EQ(f.claims->next(), f.now + milliseconds(7'000)) << "the late claim's expiry";
  EXPECT_EQ(f.claims->claimJson(f.intent.ports[1])["expires_in_s"], 7.0);

  f.advance(milliseconds(7'000));
  f.claims->expire();
  EXPECT_EQ(f.claims->expired(), 2u);
  EXPECT_EQ(f.claims->tentativeCount(), 0u);
  EXPECT_EQ(f.claims->next(), Clock::time_point::max()) << "nothing left to expire";
  ASSERT_EQ(f.intent.ports.size(), 1u);
  EXPECT_EQ(f.intent.ports[0].key.vm, "vm-confirmed");
  model::Port past;
  past.tentative_until_ms = kWallStartMs;
  EXPECT_EQ(f.claims->claimJson(past)["expires_in_s"], 0.0) << "never negative";
}

TEST(Claims, ARefusedRemovalIsRetriedAfterASecondAtLeast) {
  Fixture f;
  f.start(milliseconds(100));
  f.addPort("vm-a", kWallStartMs + 1'000);
  f.addPort("vm-b", kWallStartMs + 1'000);
  f.refuse.insert("vm-a");
  f.advance(milliseconds(2'000));
  f.claims->expire();
  ASSERT_EQ(f.removals.size(), 1u);
  EXPECT_EQ(f.removals[0].size(), 2u) << "both in one batch";
  EXPECT_EQ(f.claims->expired(), 1u) << "vm-b only";
  EXPECT_EQ(f.claims->next(), f.now + milliseconds(1'000)) << "retry_min 100 ms: a second";

  f.refuse.clear();
  f.advance(milliseconds(1'000));
  f.claims->expire();
  EXPECT_EQ(f.claims->expired(), 2u);
  EXPECT_TRUE(f.intent.ports.empty());

  // A longer retry_min wins over the second.
  Fixture g;
  g.start(milliseconds(5'000));
  g.addPort("vm-a", kWallStartMs);
  g.refuse.insert("vm-a");
  g.advance(milliseconds(1));
  g.claims->expire();
  EXPECT_EQ(g.claims->next(), g.now + milliseconds(5'000));
}

TEST(Claims, ClaimsHeldAcrossARestartAreLookedAtAtOnce) {
  Fixture f;
  f.start();
  f.claims->startDone();
  EXPECT_EQ(f.claims->next(), Clock::time_point::max()) << "none held";

  Fixture g;
  g.addPort("vm-a", kWallStartMs + 60'000);  // loaded from the state file
  g.start();
  g.claims->startDone();
  EXPECT_EQ(g.claims->next(), g.started);
  g.claims->expire();
  EXPECT_TRUE(g.removals.empty()) << "not expired yet";
  EXPECT_EQ(g.claims->next(), g.now + milliseconds(60'000));
}

}  // namespace
}  // namespace nicoffload::daemon
