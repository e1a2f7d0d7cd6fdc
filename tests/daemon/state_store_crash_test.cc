// kill -9 of a process that appends, compacts and saves in a loop, at random
// moments, a few hundred times: each start must load exactly the batches
// acknowledged (plus, at most, the one in flight when the kill came).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "nicoffload/daemon/state_store.h"
#include "state_fixtures.h"
#include "support/temp_dirs.h"

namespace nicoffload::daemon {
namespace {

using state_fixtures::dump;
using state_fixtures::makePort;
using state_fixtures::makeRemote;

// Every batch puts this remote with vni = its seq: the loaded state says
// which batch was the last one persisted.
const Ipv4Addr kCounterAddress = *Ipv4Addr::parse("10.200.0.1");

// Batch `seq`, always the same for the same seq.
std::vector<Mutation> batchFor(std::uint64_t seq) {
  std::mt19937 rng(static_cast<std::uint32_t>(seq * 2654435761u + 17));
  std::vector<Mutation> b;
  const int n = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < n; ++i) {
    const unsigned pick = rng() % 10;
    if (pick < 2) {
      b.push_back(Mutation::portPut(makePort(rng() % 16, 1400 + rng() % 200)));
    } else if (pick < 3) {
      b.push_back(Mutation::portRemove(makePort(rng() % 16).key));
    } else if (pick < 8) {
      b.push_back(Mutation::remotePut(makeRemote(rng() % 400, rng() % 50, 1 + rng() % 1000)));
    } else {
      b.push_back(Mutation::remoteRemove(makeRemote(rng() % 400).address));
    }
  }
  if (seq % 40 == 0)  // now and then a big batch, so that compactions take a while
    for (unsigned i = 0; i < 300; ++i)
      b.push_back(Mutation::remotePut(makeRemote(1000 + i, static_cast<unsigned>(seq % 50))));
  model::RemoteEndpoint counter;
  counter.address = kCounterAddress;
  counter.vtep = *Ipv4Addr::parse("192.0.2.1");
  counter.vni = static_cast<std::uint32_t>(seq);
  b.push_back(Mutation::remotePut(counter));
  return b;
}

std::uint64_t persistedSeq(const PersistedState& s) {
  for (const auto& r : s.remotes)
    if (r.address == kCounterAddress) return *r.vni;
  return 0;
}

// Messages on the pipe, 8 bytes each.
constexpr std::uint64_t kCompactionStarted = 1ull << 63;
constexpr std::uint64_t kCompactionSeen = 1ull << 62;

[[noreturn]] void childLoop(const std::string& dir, std::uint64_t next, int out) {
  spdlog::set_level(spdlog::level::off);
  StateStore store(dir, StateStoreOptions{.compact_journal_bytes = 16 * 1024});
  auto loaded = store.load();
  if (!loaded) ::_exit(2);
  PersistedState state = std::move(*loaded);
  if (persistedSeq(state) + 1 != next) ::_exit(3);
  auto say = [&](std::uint64_t v) {
    if (::write(out, &v, sizeof v) != sizeof v) ::_exit(4);
  };
  bool was_compacting = false;
  for (std::uint64_t seq = next;; ++seq) {
    const auto batch = batchFor(seq);
    if (!store.append(batch)) ::_exit(5);
    say(seq);  // acknowledged
    for (const auto& m : batch) applyMutation(state, m);
    if (was_compacting && !store.compacting()) {
      say(kCompactionSeen);
      was_compacting = false;
    }
    if (seq % 61 == 0) {
      if (!store.save(state)) ::_exit(6);
    } else if (store.compactionDue() || seq % 29 == 0) {
      store.compactInBackground(state);
      say(kCompactionStarted);
      was_compacting = true;
    }
  }
}

TEST(StateStoreCrash, KillNineAtRandomMomentsLosesNoAcknowledgedBatch) {
  const std::string dir = testing::makeTempDir("nfo-crash") + "/state";
  std::mt19937 rng(12345);
  constexpr int kKills = 220;
  std::uint64_t persisted = 0;      // the last batch the state on disk holds
  PersistedState expected;          // batches 1..persisted
  int kills_during_compaction = 0;  // after a compaction started, before the child saw it end
  int in_flight_persisted = 0;
  std::uint64_t torn = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int round = 0; round < kKills; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      childLoop(dir, persisted + 1, fds[1]);
    }
    ::close(fds[1]);
    std::vector<std::uint64_t> msgs;
    auto readOne = [&] {
      std::uint64_t m = 0;
      if (::read(fds[0], &m, sizeof m) != sizeof m) return false;
      msgs.push_back(m);
      return true;
    };
    // However slow the machine, each child gets one batch through; one
    // round in three aims at a compaction that has just started.
    readOne();
    if (round % 3 == 2) {
      while (readOne() && msgs.back() != kCompactionStarted) {
      }
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 15000));
    }
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited on its own with status "
                                     << WEXITSTATUS(status) << " in round " << round;
    while (readOne()) {
    }
    std::uint64_t acked = persisted;
    bool compacting = false;
    for (const std::uint64_t msg : msgs) {
      if (msg == kCompactionStarted) {
        compacting = true;
      } else if (msg == kCompactionSeen) {
        compacting = false;
      } else {
        ASSERT_EQ(msg, acked + 1) << "acknowledged out of order";
        acked = msg;
      }
    }
    ::close(fds[0]);
    kills_during_compaction += compacting ? 1 : 0;

    StateStore store(dir);
    auto out = store.load();
    ASSERT_TRUE(out.ok()) << "round " << round << ": " << out.error().describe();
    torn += store.stats().torn_records_ignored;
    const std::uint64_t on_disk = persistedSeq(*out);
    // Every acknowledged batch, and at most the one in flight.
    ASSERT_GE(on_disk, acked) << "round " << round << ": an acknowledged batch was lost";
    ASSERT_LE(on_disk, acked + 1) << "round " << round;
    in_flight_persisted += on_disk == acked + 1 ? 1 : 0;
    for (std::uint64_t seq = persisted + 1; seq <= on_disk; ++seq)
      for (const auto& m : batchFor(seq)) applyMutation(expected, m);
    persisted = on_disk;
    ASSERT_EQ(dump(*out), dump(expected)) << "round " << round;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "%d kills in %.1f s: %llu batches persisted, %d kills while a compaction was "
      "running, %d in-flight batches found persisted, %llu torn records cut off\n",
      kKills, secs, static_cast<unsigned long long>(persisted), kills_during_compaction,
      in_flight_persisted, static_cast<unsigned long long>(torn));
  EXPECT_GE(persisted, static_cast<std::uint64_t>(kKills)) << "each child acknowledged a batch";
}

}  // namespace
}  // namespace nicoffload::daemon
