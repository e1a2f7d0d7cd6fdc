#include "nicoffload/daemon/state_store.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "nicoffload/model/parse.h"
#include "state_fixtures.h"
#include "support/temp_dirs.h"

namespace nicoffload::daemon {
namespace {

std::string tempDir() { return testing::makeTempDir("nfo-state"); }

model::Port port(int i) {
  auto p = model::parsePort({{"vm", "00000000-0000-4000-8000-00000000000" + std::to_string(i)},
                             {"nic", 0},
                             {"mac", "52:54:00:00:00:0" + std::to_string(i)},
                             {"addresses", {"10.0.0." + std::to_string(i) + "/32"}},
                             {"vf", i},
                             {"vni", 100},
                             {"vdpa", "kernel"}});
  EXPECT_TRUE(p.ok());
  return *p;
}

TEST(StateStore, EmptyDirectoryLoadsEmptyState) {
  StateStore store(tempDir() + "/sub/dir");
  auto s = store.load();
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_TRUE(s->ports.empty());
  EXPECT_TRUE(s->remotes.empty());
}

TEST(StateStore, RoundTripKeepsEveryField) {
  StateStore store(tempDir());
  PersistedState in;
  in.ports = {port(1), port(2)};
  in.ports[1].representor = "rep2";
  in.ports[1].mtu = 9000;
  model::RemoteEndpoint r;
  r.address = *Ipv4Addr::parse("10.9.0.1");
  r.vtep = *Ipv4Addr::parse("192.0.2.9");
  r.vni = 100;
  in.remotes = {r};
  in.extra["vf_pool"] = {{"0000:03:00.0", {1, 2}}};
  ASSERT_TRUE(store.save(in).ok());
  auto out = store.load();
  ASSERT_TRUE(out.ok()) << out.error().describe();
  ASSERT_EQ(out->ports.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(model::toJson(out->ports[i]), model::toJson(in.ports[i]));
  }
  ASSERT_EQ(out->remotes.size(), 1u);
  EXPECT_EQ(model::toJson(out->remotes[0]), model::toJson(r));
  EXPECT_EQ(out->extra, in.extra);
  struct stat st {};
  ASSERT_EQ(::stat(store.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(StateStore, SaveReplacesAndLeavesNoTemporaryFile) {
  StateStore store(tempDir());
  PersistedState a;
  a.ports = {port(1)};
  ASSERT_TRUE(store.save(a).ok());
  PersistedState b;
  b.ports = {port(3)};
  ASSERT_TRUE(store.save(b).ok());
  auto out = store.load();
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->ports.size(), 1u);
  EXPECT_EQ(out->ports[0].key.vm, b.ports[0].key.vm);
  EXPECT_NE(::access((store.path() + ".tmp").c_str(), F_OK), 0);
}

TEST(StateStore, TornTemporaryFileFromACrashIsIgnored) {
  StateStore store(tempDir());
  PersistedState a;
  a.ports = {port(1)};
  ASSERT_TRUE(store.save(a).ok());
  std::ofstream(store.path() + ".tmp")
      << "{\"version\": 1, \"ports\": [ {\"vm\": ";  // crash mid-write
  auto out = store.load();
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->ports.size(), 1u);
  // The next save overwrites the torn file.
  ASSERT_TRUE(store.save(a).ok());
}

TEST(StateStore, CorruptFileIsAnErrorNamingThePath) {
  StateStore store(tempDir());
  std::ofstream(store.path()) << "{ not json";
  auto out = store.load();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidValue);
  EXPECT_NE(out.error().describe().find(store.path()), std::string::npos);
  std::ofstream(store.path()) << R"({"version": 1, "ports": [{"vm": "nope"}]})";
  out = store.load();
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().field.find("ports[0].vm"), std::string::npos) << out.error().describe();
  std::ofstream(store.path()) << R"({"version": 7})";
  out = store.load();
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message.find("version 1"), std::string::npos);
}

// --- the journal ---

using state_fixtures::dump;
using state_fixtures::makePort;
using state_fixtures::makeRemote;

std::uint64_t fileSize(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<std::uint64_t>(st.st_size);
}

std::string readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// CRC-32 (IEEE), bit by bit: independent of the store's table.
std::uint32_t bitwiseCrc32(const std::string& data) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void writeAll(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

std::vector<std::string> segmentFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (name.rfind("journal.", 0) == 0) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Appends `batch` to the store and to the expected state.
void appendBoth(StateStore& store, PersistedState& expected, const std::vector<Mutation>& batch) {
  auto s = store.append(batch);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  for (const auto& m : batch) applyMutation(expected, m);
}

PersistedState loadFresh(const std::string& dir, StateStore::Stats* stats = nullptr) {
  StateStore store(dir);
  auto s = store.load();
  EXPECT_TRUE(s.ok()) << s.error().describe();
  if (stats) *stats = store.stats();
  return s.ok() ? *s : PersistedState{};
}

TEST(StateStoreJournal, AppendsReplayWithEveryField) {
  const std::string dir = tempDir() + "/state";
  StateStore store(dir);
  ASSERT_TRUE(store.load().ok());
  PersistedState expected;
  auto p = makePort(1);
  p.representor = "rep1";
  p.queues = 4;
  p.vni.reset();
  model::RemoteEndpoint routed;
  routed.address = *Ipv4Addr::parse("10.9.0.7");
  routed.next_hop = *Ipv4Addr::parse("192.0.2.200");
  appendBoth(store, expected, {Mutation::portPut(p), Mutation::portPut(makePort(2))});
  appendBoth(store, expected, {Mutation::remotePut(makeRemote(1)), Mutation::remotePut(routed)});
  appendBoth(
      store, expected,
      {Mutation::portRemove(makePort(2).key), Mutation::remoteRemove(makeRemote(1).address)});
  ASSERT_TRUE(store.append({}).ok());  // an empty batch writes nothing
  EXPECT_EQ(store.stats().appends, 3u);
  EXPECT_EQ(store.stats().records, 6u);
  EXPECT_EQ(store.stats().journal_bytes, fileSize(store.segmentPath(1)));
  EXPECT_NE(::access(store.path().c_str(), F_OK), 0) << "no snapshot before the first compaction";

  StateStore::Stats stats;
  const auto out = loadFresh(dir, &stats);
  ASSERT_EQ(out.ports.size(), 1u);
  EXPECT_EQ(model::toJson(out.ports[0]), model::toJson(p));
  EXPECT_EQ(dump(out), dump(expected));
  EXPECT_EQ(stats.replayed_records, 6u);
  EXPECT_EQ(stats.torn_records_ignored, 0u);
  struct stat st {};
  ASSERT_EQ(::stat(store.segmentPath(1).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(StateStoreJournal, ReplayKeepsFirstInsertionOrderReplacesInPlaceErasesRemoved) {
  const std::string dir = tempDir();
  StateStore store(dir);
  ASSERT_TRUE(store.load().ok());
  ASSERT_TRUE(store
                  .append(std::vector<Mutation>{
                      Mutation::remotePut(makeRemote(1)), Mutation::remotePut(makeRemote(2)),
                      Mutation::remotePut(makeRemote(3)), Mutation::portPut(makePort(1)),
                      Mutation::portPut(makePort(2)), Mutation::portPut(makePort(3))})
                  .ok());
  ASSERT_TRUE(store
                  .append(std::vector<Mutation>{
                      Mutation::remotePut(makeRemote(2, 9)),  // replaced in place
                      Mutation::remoteRemove(makeRemote(1).address),
                      Mutation::remotePut(makeRemote(1, 7)),           // re-added: at the end
                      Mutation::remoteRemove(makeRemote(42).address),  // absent: no-op
                      Mutation::portPut(makePort(2, 9000)), Mutation::portRemove(makePort(1).key),
                      Mutation::portPut(makePort(1, 1400))})
                  .ok());
  PersistedState expected;
  expected.remotes = {makeRemote(2, 9), makeRemote(3), makeRemote(1, 7)};
  expected.ports = {makePort(2, 9000), makePort(3), makePort(1, 1400)};
  EXPECT_EQ(dump(loadFresh(dir)), dump(expected));
}

TEST(StateStoreJournal, EveryTornTailIsIgnoredCountedAndCutOff) {
  // The journal of two batches; every cut inside the second record.
  const std::string src = tempDir();
  PersistedState first;
  std::uint64_t first_end = 0;
  std::string segment;
  {
    StateStore store(src);
    ASSERT_TRUE(store.load().ok());
    appendBoth(store, first, {Mutation::portPut(makePort(1)), Mutation::remotePut(makeRemote(1))});
    first_end = fileSize(store.segmentPath(1));
    ASSERT_TRUE(store
                    .append(std::vector<Mutation>{Mutation::remotePut(makeRemote(2)),
                                                  Mutation::portRemove(makePort(1).key)})
                    .ok());
    segment = readAll(store.segmentPath(1));
  }
  ASSERT_GT(segment.size(), first_end + 10);
  for (std::size_t cut = first_end; cut < segment.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    const std::string dir = tempDir();
    StateStore store(dir);
    writeAll(store.segmentPath(1), segment.substr(0, cut));
    auto out = store.load();
    ASSERT_TRUE(out.ok()) << out.error().describe();
    EXPECT_EQ(dump(*out), dump(first));
    EXPECT_EQ(store.stats().torn_records_ignored, cut == first_end ? 0u : 1u);
    EXPECT_EQ(fileSize(store.segmentPath(1)), first_end) << "the torn tail is cut off";
    // The next append follows the last good record, and loads.
    PersistedState expected = first;
    appendBoth(store, expected, {Mutation::remotePut(makeRemote(3))});
    StateStore::Stats stats;
    EXPECT_EQ(dump(loadFresh(dir, &stats)), dump(expected));
    EXPECT_EQ(stats.torn_records_ignored, 0u);
  }
}

TEST(StateStoreJournal, GarbageWithoutNewlineAtTheTailIsTorn) {
  // A power loss may extend the file with zeros.
  const std::string dir = tempDir();
  PersistedState expected;
  {
    StateStore store(dir);
    ASSERT_TRUE(store.load().ok());
    appendBoth(store, expected, {Mutation::remotePut(makeRemote(1))});
  }
  StateStore store(dir);
  writeAll(store.segmentPath(1), readAll(store.segmentPath(1)) + std::string(300, '\0'));
  auto out = store.load();
  ASSERT_TRUE(out.ok()) << out.error().describe();
  EXPECT_EQ(dump(*out), dump(expected));
  EXPECT_EQ(store.stats().torn_records_ignored, 1u);
}

TEST(StateStoreJournal, CorruptRecordBeforeTheTailIsRefusedWithFileAndOffset) {
  const std::string dir = tempDir();
  std::uint64_t second_at = 0;
  std::string segment;
  std::string seg_path;
  {
    StateStore store(dir);
    ASSERT_TRUE(store.load().ok());
    ASSERT_TRUE(store.append(std::vector<Mutation>{Mutation::remotePut(makeRemote(1))}).ok());
    second_at = fileSize(store.segmentPath(1));
    ASSERT_TRUE(store.append(std::vector<Mutation>{Mutation::remotePut(makeRemote(2))}).ok());
    ASSERT_TRUE(store.append(std::vector<Mutation>{Mutation::remotePut(makeRemote(3))}).ok());
    seg_path = store.segmentPath(1);
    segment = readAll(seg_path);
  }
  struct Case {
    std::size_t at;           // byte flipped
    std::uint64_t record_at;  // offset the error must name
  };
  // In the payload of the first record, in the length of the second, in the
  // payload of the second.
  for (const Case c : {Case{20, 0}, Case{second_at, second_at}, Case{second_at + 30, second_at}}) {
    SCOPED_TRACE("flip at " + std::to_string(c.at));
    std::string bad = segment;
    bad[c.at] ^= 0x01;
    writeAll(seg_path, bad);
    StateStore store(dir);
    auto out = store.load();
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.error().code, ErrorCode::kInvalidValue);
    const std::string text = out.error().describe();
    EXPECT_NE(text.find(seg_path), std::string::npos) << text;
    EXPECT_NE(text.find("byte " + std::to_string(c.record_at) + " "), std::string::npos) << text;
    EXPECT_NE(text.find("truncate -s " + std::to_string(c.record_at)), std::string::npos) << text;
    EXPECT_EQ(readAll(seg_path), bad) << "a refused journal is left as it is";
  }
  // A length that points past the end of the file, with records after it.
  {
    writeAll(seg_path, segment.substr(0, second_at) + "9" + segment.substr(second_at));
    StateStore store(dir);
    auto out = store.load();
    ASSERT_FALSE(out.ok());
    EXPECT_NE(out.error().describe().find("byte " + std::to_string(second_at) + " "),
              std::string::npos)
        << out.error().describe();
  }
  // A record whose CRC-32 matches but whose content does not parse: refused
  // too, naming the field.
  const std::string payload = R"([{"op":"remote.put","remote":{"address":"nope"}}])";
  char head[32];
  std::snprintf(head, sizeof head, "%zu %08x ", payload.size(), bitwiseCrc32(payload));
  writeAll(seg_path, segment + head + payload + "\n");
  StateStore store(dir);
  auto out = store.load();
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().describe().find("remote.address"), std::string::npos)
      << out.error().describe();
}

TEST(StateStoreJournal, RecordFramingIsLengthCrc32Payload) {
  EXPECT_EQ(bitwiseCrc32("123456789"), 0xCBF43926u);  // the CRC-32 check value
  const std::string dir = tempDir();
  StateStore store(dir);
  ASSERT_TRUE(
      store.append(std::vector<Mutation>{Mutation::remoteRemove(makeRemote(1).address)}).ok());
  const std::string line = readAll(store.segmentPath(1));
  const std::string payload = R"([{"address":"10.1.0.2","op":"remote.remove"}])";
  char head[32];
  std::snprintf(head, sizeof head, "%zu %08x ", payload.size(), bitwiseCrc32(payload));
  EXPECT_EQ(line, head + payload + "\n");
}

TEST(StateStoreJournal, CompactionThenMoreAppendsThenLoad) {
  const std::string dir = tempDir();
  StateStore store(dir, StateStoreOptions{.compact_journal_bytes = 2000});
  ASSERT_TRUE(store.load().ok());
  PersistedState expected;
  expected.extra["vf_pool"] = {{"0000:03:00.0", {1}}};
  for (unsigned i = 0; !store.compactionDue(); ++i)
    appendBoth(store, expected,
               {Mutation::remotePut(makeRemote(i)), Mutation::portPut(makePort(i % 3))});
  store.compactInBackground(expected);
  // Appends go on meanwhile, into the next segment.
  for (unsigned i = 100; i < 110; ++i)
    appendBoth(
        store, expected,
        {Mutation::remotePut(makeRemote(i)), Mutation::remoteRemove(makeRemote(i - 100).address)});
  store.waitForCompaction();
  EXPECT_FALSE(store.compacting());
  const auto stats = store.stats();
  EXPECT_EQ(stats.compactions, 1u);
  EXPECT_EQ(stats.compaction_failures, 0u);
  EXPECT_GT(stats.last_compaction_ms, 0.0);
  EXPECT_EQ(stats.journal_bytes, fileSize(store.segmentPath(2)));
  EXPECT_EQ(segmentFiles(dir), std::vector<std::string>{"journal.0000000000000002"});
  const auto snap = model::readJsonFile(store.path());
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ((*snap)["journal_seq"], 2);

  StateStore::Stats loaded;
  const auto out = loadFresh(dir, &loaded);
  EXPECT_EQ(dump(out), dump(expected));
  EXPECT_EQ(out.extra, expected.extra);
  EXPECT_EQ(loaded.replayed_records, 20u) << "only the segment after the snapshot is replayed";

  // A compaction with nothing appended since does not rotate; a second one
  // in a row waits for the first.
  StateStore again(dir);
  auto st = again.load();
  ASSERT_TRUE(st.ok());
  again.compactInBackground(*st);
  again.compactInBackground(*st);
  again.waitForCompaction();
  EXPECT_EQ(again.stats().compactions, 2u);
  EXPECT_EQ(dump(loadFresh(dir)), dump(expected));
}

// Removals are small records: a journal that removed half of what the
// snapshot holds is due for compaction long before it is large, here and
// after a restart that replayed it.
TEST(StateStoreJournal, CompactionIsDueOnceTheJournalChangedHalfTheSnapshot) {
  const std::string dir = tempDir();
  PersistedState expected;
  {
    StateStore store(dir);
    ASSERT_TRUE(store.load().ok());
    for (unsigned i = 0; i < 24000; ++i) expected.remotes.push_back(makeRemote(i));
    ASSERT_TRUE(store.save(expected).ok());
    std::vector<Mutation> gone;
    for (unsigned i = 0; i < 11999; ++i)
      gone.push_back(Mutation::remoteRemove(makeRemote(i).address));
    appendBoth(store, expected, gone);
    EXPECT_LT(store.stats().journal_bytes, 1u << 20) << "small: the byte rules do not apply";
    EXPECT_FALSE(store.compactionDue()) << "11 999 changes < half of 24 000";
    appendBoth(store, expected, {Mutation::remoteRemove(makeRemote(11999).address)});
    EXPECT_TRUE(store.compactionDue()) << "12 000 changes = half of 24 000";
  }
  StateStore again(dir);
  auto st = again.load();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(again.stats().replayed_records, 12000u);
  EXPECT_TRUE(again.compactionDue()) << "the replayed changes count";
  again.compactInBackground(*st);
  again.waitForCompaction();
  EXPECT_FALSE(again.compactionDue());
  StateStore::Stats loaded;
  EXPECT_EQ(dump(loadFresh(dir, &loaded)), dump(expected));
  EXPECT_EQ(loaded.replayed_records, 0u);
}

TEST(StateStoreJournal, SaveDropsOlderSegmentsAndAppendsFollowIt) {
  const std::string dir = tempDir();
  StateStore store(dir);
  ASSERT_TRUE(store.load().ok());
  PersistedState expected;
  appendBoth(store, expected, {Mutation::remotePut(makeRemote(1))});
  ASSERT_TRUE(store.save(expected).ok());
  EXPECT_TRUE(segmentFiles(dir).empty());
  EXPECT_EQ(store.stats().journal_bytes, 0u);
  appendBoth(store, expected, {Mutation::remotePut(makeRemote(2))});
  EXPECT_EQ(segmentFiles(dir), std::vector<std::string>{"journal.0000000000000002"});
  StateStore::Stats stats;
  EXPECT_EQ(dump(loadFresh(dir, &stats)), dump(expected));
  EXPECT_EQ(stats.replayed_records, 1u);
}

TEST(StateStoreJournal, SegmentsLeftBehindByACrashAfterTheSnapshotAreDeleted) {
  const std::string dir = tempDir();
  PersistedState expected;
  {
    StateStore store(dir);
    ASSERT_TRUE(store.load().ok());
    appendBoth(store, expected, {Mutation::remotePut(makeRemote(1))});
    ASSERT_TRUE(store.save(expected).ok());  // journal_seq 2
  }
  // As if the process died between the rename and the deletion: an older
  // segment, even one with a torn tail, is not replayed.
  StateStore store(dir);
  writeAll(store.segmentPath(1), "999 00000000 {");
  EXPECT_EQ(dump(loadFresh(dir)), dump(expected));
  EXPECT_TRUE(segmentFiles(dir).empty());
}

TEST(StateStoreJournal, MissingSegmentIsRefused) {
  const std::string dir = tempDir();
  {
    StateStore store(dir, StateStoreOptions{.compact_journal_bytes = 1});
    ASSERT_TRUE(store.load().ok());
    PersistedState s;
    appendBoth(store, s, {Mutation::remotePut(makeRemote(1))});
    store.compactInBackground(s);  // snapshot names segment 2
    store.waitForCompaction();
    appendBoth(store, s, {Mutation::remotePut(makeRemote(2))});
  }
  StateStore store(dir);
  ASSERT_EQ(::rename(store.segmentPath(2).c_str(), store.segmentPath(3).c_str()), 0);
  auto out = store.load();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidValue);
  EXPECT_NE(out.error().describe().find(store.segmentPath(2)), std::string::npos)
      << out.error().describe();
}

TEST(StateStoreJournal, FailedAppendCountsForNothing) {
  // RLIMIT_FSIZE makes the write fail part way (EFBIG), as a full disk would;
  // it applies to root too.
  const std::string dir = tempDir();
  StateStore store(dir);
  ASSERT_TRUE(store.load().ok());
  PersistedState expected;
  appendBoth(store, expected, {Mutation::remotePut(makeRemote(1))});
  const std::uint64_t before = fileSize(store.segmentPath(1));
  std::vector<Mutation> big;
  for (unsigned i = 10; i < 1010; ++i) big.push_back(Mutation::remotePut(makeRemote(i)));

  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit old_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  rlimit limit = old_limit;
  limit.rlim_cur = before + 4096;  // part of the batch fits
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  const Status failed = store.append(big);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  std::signal(SIGXFSZ, old_handler);

  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, ErrorCode::kIo);
  EXPECT_NE(failed.error().describe().find(store.segmentPath(1)), std::string::npos);
  EXPECT_EQ(fileSize(store.segmentPath(1)), before) << "the partial record is cut back";
  EXPECT_EQ(store.stats().append_failures, 1u);
  EXPECT_EQ(store.stats().appends, 1u);
  appendBoth(store, expected, {Mutation::remotePut(makeRemote(2))});
  StateStore::Stats stats;
  EXPECT_EQ(dump(loadFresh(dir, &stats)), dump(expected));
  EXPECT_EQ(stats.torn_records_ignored, 0u);
}

TEST(StateStoreJournal, IntentJsonWithoutJournalSeqLoadsAndIsMigrated) {
  const std::string dir = tempDir();
  StateStore store(dir);
  // As written before the journal existed.
  nlohmann::json old = {{"version", 1},
                        {"ports", {model::toJson(makePort(1))}},
                        {"remotes", {model::toJson(makeRemote(1))}},
                        {"extra", {{"vf_pool", {{"0000:03:00.0", {1}}}}}}};
  writeAll(store.path(), old.dump(1));
  auto out = store.load();
  ASSERT_TRUE(out.ok()) << out.error().describe();
  PersistedState expected;
  expected.ports = {makePort(1)};
  expected.remotes = {makeRemote(1)};
  EXPECT_EQ(dump(*out), dump(expected));
  EXPECT_EQ(out->extra, old["extra"]);
  const auto snap = model::readJsonFile(store.path());
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ((*snap)["journal_seq"], 1) << "rewritten with the journal's start";
  appendBoth(store, expected, {Mutation::remotePut(makeRemote(2))});
  EXPECT_EQ(dump(loadFresh(dir)), dump(expected)) << "appends after the migration are replayed";
}

TEST(StateStoreJournal, AppendWithoutLoadLoadsFirst) {
  const std::string dir = tempDir();
  PersistedState expected;
  {
    StateStore store(dir);
    appendBoth(store, expected, {Mutation::remotePut(makeRemote(1))});
  }
  {
    StateStore store(dir);
    appendBoth(store, expected, {Mutation::remotePut(makeRemote(2))});
  }
  EXPECT_EQ(dump(loadFresh(dir)), dump(expected));
}

// Not timed (the machine is shared): prints the figures, checks the result.
TEST(StateStoreJournal, HundredThousandRemotesAppendReplayCompact) {
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  auto p50 = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const std::string dir = tempDir();
  StateStore store(dir);
  ASSERT_TRUE(store.load().ok());
  PersistedState expected;
  std::vector<double> one_port;
  for (unsigned i = 0; i < 50; ++i) {
    const std::vector<Mutation> batch{Mutation::portPut(makePort(i))};
    const auto t = Clock::now();
    ASSERT_TRUE(store.append(batch).ok());
    one_port.push_back(ms(Clock::now() - t));
    expected.ports.push_back(makePort(i));
  }
  std::vector<double> thousand;
  for (unsigned b = 0; b < 100; ++b) {
    std::vector<Mutation> batch;
    for (unsigned i = 0; i < 1000; ++i) {
      model::RemoteEndpoint r;
      r.address = Ipv4Addr{(10u << 24 | 16u << 16) + b * 1000 + i + 1};
      r.vtep = *Ipv4Addr::parse("192.0.2." + std::to_string(1 + (b * 1000 + i) % 200));
      r.vni = 100;
      batch.push_back(Mutation::remotePut(r));
      expected.remotes.push_back(r);
    }
    const auto t = Clock::now();
    ASSERT_TRUE(store.append(batch).ok());
    thousand.push_back(ms(Clock::now() - t));
  }
  const auto journal_bytes = store.stats().journal_bytes;

  auto t = Clock::now();
  StateStore replay(dir);
  auto out = replay.load();
  const double replay_ms = ms(Clock::now() - t);
  ASSERT_TRUE(out.ok()) << out.error().describe();
  ASSERT_EQ(out->remotes.size(), 100000u);
  EXPECT_EQ(dump(*out), dump(expected));
  EXPECT_EQ(replay.stats().replayed_records, 100050u);

  replay.compactInBackground(*out);
  replay.waitForCompaction();
  ASSERT_EQ(replay.stats().compactions, 1u);
  t = Clock::now();
  StateStore snap(dir);
  auto again = snap.load();
  const double snapshot_load_ms = ms(Clock::now() - t);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(dump(*again), dump(expected));
  std::printf(
      "append p50 (fdatasync included): 1-port batch %.2f ms, 1000-remote batch %.2f ms\n"
      "replay of 100 050 puts (%.1f MB of journal): %.0f ms; compaction of 100 k remotes "
      "+ 50 ports: %.0f ms; load of that snapshot: %.0f ms\n",
      p50(one_port), p50(thousand), static_cast<double>(journal_bytes) / 1e6, replay_ms,
      replay.stats().last_compaction_ms, snapshot_load_ms);
}

TEST(StateStoreJournal, FailedCompactionLosesNothingAndIsCounted) {
  const std::string dir = tempDir();
  StateStore store(dir, StateStoreOptions{.compact_journal_bytes = 40});
  ASSERT_TRUE(store.load().ok());
  PersistedState expected;
  appendBoth(store, expected, {Mutation::remotePut(makeRemote(1))});
  ASSERT_TRUE(store.compactionDue());
  // The snapshot's temporary file cannot be created (a directory in its
  // way: works as root too).
  ASSERT_EQ(::mkdir((store.path() + ".tmp").c_str(), 0700), 0);
  store.compactInBackground(expected);
  appendBoth(store, expected, {Mutation::remotePut(makeRemote(2))});
  store.waitForCompaction();
  EXPECT_EQ(store.stats().compactions, 0u);
  EXPECT_EQ(store.stats().compaction_failures, 1u);
  EXPECT_TRUE(store.compactionDue()) << "the journal still holds everything";
  const Status saved = store.save(expected);
  ASSERT_FALSE(saved.ok());
  EXPECT_EQ(saved.error().code, ErrorCode::kIo);
  EXPECT_NE(saved.error().describe().find(store.path() + ".tmp"), std::string::npos);
  appendBoth(store, expected, {Mutation::remoteRemove(makeRemote(1).address)});
  EXPECT_EQ(dump(loadFresh(dir)), dump(expected));

  ASSERT_EQ(::rmdir((store.path() + ".tmp").c_str()), 0);
  store.compactInBackground(expected);
  store.waitForCompaction();
  EXPECT_EQ(store.stats().compactions, 1u);
  EXPECT_FALSE(store.compactionDue());
  EXPECT_EQ(dump(loadFresh(dir)), dump(expected));
}

TEST(StateStoreJournal, FailedSnapshotLeavesNoTemporaryFile) {
  // A snapshot that fails part way (RLIMIT_FSIZE: EFBIG, as a full disk's
  // ENOSPC would) removes its intent.json.tmp: left there, it would keep the
  // disk full until the next start, and the one after.
  const std::string dir = tempDir();
  StateStore store(dir);
  ASSERT_TRUE(store.load().ok());
  PersistedState state;
  for (unsigned i = 10; i < 1010; ++i) state.remotes.push_back(makeRemote(i));
  const std::string tmp = store.path() + ".tmp";

  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit old_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  rlimit limit = old_limit;
  limit.rlim_cur = 4096;  // a part of the snapshot fits
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  const Status saved = store.save(state);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  std::signal(SIGXFSZ, old_handler);

  ASSERT_FALSE(saved.ok());
  EXPECT_EQ(saved.error().code, ErrorCode::kIo);
  EXPECT_NE(saved.error().describe().find(tmp), std::string::npos) << saved.error().describe();
  EXPECT_NE(::access(tmp.c_str(), F_OK), 0) << tmp << " was left behind";
  EXPECT_NE(::access(store.path().c_str(), F_OK), 0) << "no snapshot replaced the old one";
  ASSERT_TRUE(store.save(state).ok()) << "the next snapshot has the room";
  EXPECT_EQ(dump(loadFresh(dir)), dump(state));
}

TEST(StateStoreJournal, StartRemovesATemporaryFileACrashLeft) {
  const std::string dir = tempDir();
  PersistedState expected;
  {
    StateStore store(dir);
    ASSERT_TRUE(store.load().ok());
    appendBoth(store, expected, {Mutation::remotePut(makeRemote(1))});
    ASSERT_TRUE(store.save(expected).ok());
    appendBoth(store, expected, {Mutation::remotePut(makeRemote(2))});
  }
  // A kill -9 during the next snapshot: its tmp file, cut short.
  const std::string tmp = dir + "/intent.json.tmp";
  std::ofstream(tmp) << "{\"version\": 1, \"journal_seq\": 2, \"ports\": [";
  ASSERT_EQ(::access(tmp.c_str(), F_OK), 0);
  EXPECT_EQ(dump(loadFresh(dir)), dump(expected)) << "the tmp file is no part of the state";
  EXPECT_NE(::access(tmp.c_str(), F_OK), 0) << tmp << " is still there after a start";
}

}  // namespace
}  // namespace nicoffload::daemon
