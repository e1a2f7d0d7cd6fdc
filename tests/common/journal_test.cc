// common/journal: framing, replay, torn tails, compaction, refusals.
#include "nicoffload/common/journal.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace nicoffload {
namespace {

using ::testing::HasSubstr;

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/nfo-journal-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

std::string readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void writeAll(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

Journal::Options options(const std::string& dir) {
  return Journal::Options{dir, "journal.", "snap.json", 0};
}

// Replays from `first_seq` and returns the payloads (or the error).
Result<std::vector<std::string>> replayAll(Journal& j, std::uint64_t first_seq,
                                           Journal::Replay* out = nullptr) {
  std::vector<std::string> got;
  auto r = j.replay(first_seq, [&](std::string_view p) {
    got.emplace_back(p);
    return Status::success();
  });
  if (!r) return r.error();
  if (out) *out = *r;
  return got;
}

TEST(Journal, Crc32IsZlibs) {
  EXPECT_EQ(crc32(""), 0u);
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
}

TEST(Journal, FrameIsLengthCrcPayloadNewline) {
  EXPECT_EQ(frameRecord("123456789"), "9 cbf43926 123456789\n");
  EXPECT_EQ(frameRecord(""), "0 00000000 \n");
}

TEST(Journal, EmptyOrMissingDirectoryReplaysNothing) {
  TempDir d;
  const struct {
    const char* name;
    std::string dir;
    bool empty_segment;
  } cases[] = {{"missing dir", d.path + "/none", false},
               {"empty dir", d.path, false},
               {"empty segment", d.path, true}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Journal j(options(c.dir));
    if (c.empty_segment) writeAll(j.segmentPath(1), "");
    Journal::Replay rep;
    auto got = replayAll(j, 1, &rep);
    ASSERT_TRUE(got.ok()) << got.error().describe();
    EXPECT_TRUE(got->empty());
    EXPECT_FALSE(rep.torn);
    EXPECT_EQ(rep.bytes, 0u);
    EXPECT_EQ(j.currentSeq(), 1u);
  }
}

TEST(Journal, AppendThenReplayGivesThePayloadsInOrder) {
  const std::vector<std::vector<std::string>> cases = {
      {"a"}, {"[1,2,3]", "", "{\"op\":\"x\"}"}, {std::string(5000, 'x'), "y"}};
  for (const auto& payloads : cases) {
    TempDir d;
    {
      Journal j(options(d.path + "/sub"));
      ASSERT_TRUE(replayAll(j, 1).ok());
      for (const auto& p : payloads) ASSERT_TRUE(j.append(p).ok());
    }
    Journal j(options(d.path + "/sub"));
    Journal::Replay rep;
    auto got = replayAll(j, 1, &rep);
    ASSERT_TRUE(got.ok()) << got.error().describe();
    EXPECT_EQ(*got, payloads);
    EXPECT_EQ(rep.records, payloads.size());
    EXPECT_EQ(rep.bytes, readAll(j.segmentPath(1)).size());
    // Appends continue the segment.
    ASSERT_TRUE(j.append("more").ok());
    Journal again(options(d.path + "/sub"));
    auto after = replayAll(again, 1);
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->size(), payloads.size() + 1);
    EXPECT_EQ(after->back(), "more");
  }
}

TEST(Journal, APayloadWithANewlineIsRefused) {
  TempDir d;
  Journal j(options(d.path));
  ASSERT_TRUE(replayAll(j, 1).ok());
  auto s = j.append("a\nb");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidValue);
}

// A crash may leave any prefix of the last record: each is cut off, the
// records before it replay, and the next append follows them cleanly.
TEST(Journal, TornTailAtEachByteOfTheLastRecordIsCutOff) {
  const std::string last = frameRecord("{\"last\":true}");
  for (std::size_t cut = 1; cut < last.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    TempDir d;
    Journal w(options(d.path));
    ASSERT_TRUE(replayAll(w, 1).ok());
    ASSERT_TRUE(w.append("first").ok());
    ASSERT_TRUE(w.append("second").ok());
    const std::string whole = readAll(w.segmentPath(1));
    writeAll(w.segmentPath(1), whole + last.substr(0, cut));

    Journal j(options(d.path));
    Journal::Replay rep;
    auto got = replayAll(j, 1, &rep);
    ASSERT_TRUE(got.ok()) << got.error().describe();
    EXPECT_EQ(*got, (std::vector<std::string>{"first", "second"}));
    EXPECT_TRUE(rep.torn);
    EXPECT_EQ(rep.torn_offset, whole.size());
    EXPECT_EQ(rep.torn_bytes, cut);
    EXPECT_EQ(readAll(j.segmentPath(1)), whole) << "cut off on disk";
    ASSERT_TRUE(j.append("third").ok());
    Journal again(options(d.path));
    auto after = replayAll(again, 1);
    ASSERT_TRUE(after.ok()) << after.error().describe();
    EXPECT_EQ(*after, (std::vector<std::string>{"first", "second", "third"}));
  }
}

// A bad record followed by another line is not a crash's torn tail: refused,
// naming the file and the byte offset.
TEST(Journal, CorruptRecordInTheMiddleIsRefused) {
  const struct {
    const char* name;
    std::string bad;
  } cases[] = {{"crc mismatch", "5 00000000 hello\n"},
               {"no length", "x 00000000 hello\n"},
               {"length too long", "99 cbf43926 123456789\n"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir d;
    Journal j(options(d.path));
    const std::string good = frameRecord("ok");
    writeAll(j.segmentPath(1), good + c.bad + frameRecord("after"));
    auto got = replayAll(j, 1);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().code, ErrorCode::kInvalidValue);
    EXPECT_THAT(got.error().message, HasSubstr(j.segmentPath(1)));
    EXPECT_THAT(got.error().field, HasSubstr("byte " + std::to_string(good.size())));
    EXPECT_FALSE(j.ready());
  }
}

TEST(Journal, ACallbackErrorIsReportedAsACorruptRecord) {
  TempDir d;
  Journal j(options(d.path));
  writeAll(j.segmentPath(1), frameRecord("a") + frameRecord("b"));
  auto r = j.replay(1, [](std::string_view p) -> Status {
    if (p == "b") return makeError(ErrorCode::kInvalidValue, "", "", "not a mutation");
    return Status::success();
  });
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("not a mutation"));
  EXPECT_THAT(r.error().field, HasSubstr("byte 13"));
}

TEST(Journal, AMissingSegmentIsRefused) {
  TempDir d;
  Journal j(options(d.path));
  writeAll(j.segmentPath(1), frameRecord("a"));
  writeAll(j.segmentPath(3), frameRecord("c"));
  auto got = replayAll(j, 1);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().field, j.segmentPath(2));
  EXPECT_THAT(got.error().message, HasSubstr("missing"));
}

// Compaction: rotate, snapshot naming the new seq, drop older segments;
// a replay from that seq sees only what came after, and appends go on.
TEST(Journal, CompactionThenMoreAppends) {
  TempDir d;
  Journal j(options(d.path));
  ASSERT_TRUE(replayAll(j, 1).ok());
  ASSERT_TRUE(j.append("a").ok());
  ASSERT_TRUE(j.append("b").ok());
  auto seq = j.rotate();
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(*seq, 2u);
  ASSERT_TRUE(j.append("c").ok());
  ASSERT_TRUE(writeFileAtomically(d.path, "snap.json", "{\"seq\":2}").ok());
  EXPECT_TRUE(j.deleteSegmentsBelow(*seq).empty());
  EXPECT_FALSE(std::filesystem::exists(j.segmentPath(1)));
  EXPECT_FALSE(std::filesystem::exists(d.path + "/snap.json.tmp"));
  EXPECT_EQ(readAll(d.path + "/snap.json"), "{\"seq\":2}");
  ASSERT_TRUE(j.append("d").ok());

  Journal again(options(d.path));
  auto got = replayAll(again, 2);
  ASSERT_TRUE(got.ok()) << got.error().describe();
  EXPECT_EQ(*got, (std::vector<std::string>{"c", "d"}));
  // A rotation with nothing in the current segment keeps it.
  Journal empty(options(d.path + "/e"));
  ASSERT_TRUE(replayAll(empty, 5).ok());
  auto same = empty.rotate();
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(*same, 5u);
  EXPECT_EQ(empty.nextSnapshotSeq(), 5u);
}

// Segments below the snapshot's seq (a crash before their deletion) are
// deleted by replay and not replayed.
TEST(Journal, SegmentsOlderThanTheSnapshotAreDeletedOnReplay) {
  TempDir d;
  Journal j(options(d.path));
  writeAll(j.segmentPath(1), frameRecord("old"));
  writeAll(j.segmentPath(2), frameRecord("new"));
  Journal::Replay rep;
  auto got = replayAll(j, 2, &rep);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, std::vector<std::string>{"new"});
  EXPECT_EQ(rep.stale_deleted, 1u);
  EXPECT_FALSE(std::filesystem::exists(j.segmentPath(1)));
}

// A reader beside a running writer (Access::kReadOnly) changes nothing: a
// torn tail is reported and skipped but stays, a stale segment stays, and
// the journal is not ready for append().
TEST(Journal, ReadOnlyReplayTouchesNothing) {
  TempDir d;
  Journal w(options(d.path));
  const std::string seg2 = frameRecord("b") + "7 0000";
  writeAll(w.segmentPath(1), frameRecord("old"));
  writeAll(w.segmentPath(2), seg2);
  Journal r(options(d.path));
  std::vector<std::string> got;
  auto rep = r.replay(
      2,
      [&](std::string_view p) {
        got.emplace_back(p);
        return Status::success();
      },
      Journal::Access::kReadOnly);
  ASSERT_TRUE(rep.ok()) << rep.error().describe();
  EXPECT_EQ(got, std::vector<std::string>{"b"});
  EXPECT_TRUE(rep->torn);
  EXPECT_EQ(readAll(w.segmentPath(2)), seg2);
  EXPECT_TRUE(std::filesystem::exists(w.segmentPath(1)));
  EXPECT_FALSE(r.ready());
}

// Durability::kProcessCrash writes the same files (only the fsyncs differ).
TEST(Journal, ProcessCrashDurabilityWritesTheSameFiles) {
  TempDir d;
  auto o = options(d.path);
  o.durability = Durability::kProcessCrash;
  Journal j(o);
  ASSERT_TRUE(replayAll(j, 1).ok());
  ASSERT_TRUE(j.append("x").ok());
  EXPECT_EQ(readAll(j.segmentPath(1)), frameRecord("x"));
  ASSERT_TRUE(writeFileAtomically(d.path, "snap.json", "s", Durability::kProcessCrash).ok());
  EXPECT_EQ(readAll(d.path + "/snap.json"), "s");
}

// Another program's file in the segment's place (no record framing) is
// refused with an error naming the file, not misread.
TEST(Journal, AForeignHeaderIsRefused) {
  TempDir d;
  Journal j(options(d.path));
  writeAll(j.segmentPath(1), std::string("NFOSIM01\x10\x02\0\0", 12) + "\nrest\n");
  auto got = replayAll(j, 1);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, ErrorCode::kInvalidValue);
  EXPECT_THAT(got.error().message, HasSubstr(j.segmentPath(1)));
}

TEST(Journal, UnwritableDirectoryIsAnIoErrorNamingThePath) {
  TempDir d;
  writeAll(d.path + "/file", "");
  ASSERT_EQ(::mkdir((d.path + "/ro").c_str(), 0500), 0);
  const bool root = ::geteuid() == 0;  // root writes into a 0500 directory
  const struct {
    const char* name;
    std::string dir;
    const char* os_error;
    bool as_root;
  } cases[] = {
      {"under a regular file", d.path + "/file/sub", "Not a directory", true},
      {"a read-only directory", d.path + "/ro", "Permission denied", false},
      {"a directory to create in a read-only one", d.path + "/ro/sub", "Permission denied", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    if (root && !c.as_root) continue;
    Journal j(options(c.dir));
    j.restartAt(1);  // a fresh journal: nothing to replay
    auto s = j.append("a");
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, ErrorCode::kIo);
    EXPECT_THAT(s.error().field, HasSubstr(d.path));
    EXPECT_THAT(s.error().message, HasSubstr(c.os_error));
    auto w = writeFileAtomically(c.dir, "snap.json", "x");
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.error().code, ErrorCode::kIo);
    EXPECT_THAT(w.error().field, HasSubstr(d.path));
    EXPECT_THAT(w.error().message, HasSubstr(c.os_error));
  }
}

}  // namespace
}  // namespace nicoffload
