// Snapshot-plus-append-journal storage: the framing, the files and the
// crash recovery; what a record or a snapshot means stays with the caller.
//
// Files, all in Journal::Options::dir:
//   <snapshot>          the caller's snapshot (writeFileAtomically()); it
//                       names the first segment it does NOT include (the seq
//                       compaction hands out), in whatever encoding it likes.
//   <prefix><seq>       journal segments, seq a 16-digit decimal, increasing.
//                       One record per append():
//                         <payload bytes> <crc32 of payload, 8 hex> <payload>\n
//   <snapshot>.tmp      a snapshot being written; never read.
//
// Recovery (replay()): segments below the snapshot's seq are deleted (a
// crash between a snapshot's rename and their deletion); a gap in the
// sequence, or a record that is corrupt but not the torn tail of the last
// segment, is refused with kInvalidValue naming the file and the byte
// offset; a torn tail (a crash mid-append: a record cut short, or garbage
// after the last newline) is cut off, so the next append does not follow
// garbage.
//
// Payloads must not contain '\n': a torn tail is told from a corrupt record
// in the middle by whether a line follows it.
//
// Threads: one thread drives a Journal; writeFileAtomically() and
// deleteSegmentsBelow() touch only the snapshot and segments older than
// the current one, so a compaction thread may run them meanwhile.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "nicoffload/common/error.h"

namespace nicoffload {

// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), zlib's crc32().
std::uint32_t crc32(std::string_view data);

// Creates `dir` and its missing parents (mode 0700).
// Errors: kIo naming the directory that cannot be created and the OS error.
Status makeDirs(const std::string& dir);

// How much a write survives.
enum class Durability : std::uint8_t {
  // Survives a power loss: fdatasync per append, fsync of a snapshot and of
  // the directory after a rename or a new segment (the daemon's intent).
  kPowerLoss,
  // Survives a kill of the process only (no fsync): for simulated devices,
  // which lose their state with the host like real ones.
  kProcessCrash,
};

// Atomically replaces dir/name with `bytes`: dir/name.tmp, fsync, rename,
// fsync of the directory (the fsyncs with Durability::kPowerLoss only). A
// failed attempt removes its tmp file (on a full disk, a partial snapshot
// left behind would keep the disk full). Creates `dir` when missing.
// Errors: kIo naming the failing step, the path and the OS error; the
// previous dir/name is then untouched.
Status writeFileAtomically(const std::string& dir, const std::string& name, std::string_view bytes,
                           Durability durability = Durability::kPowerLoss);

// The frame of one record: "<len> <crc32 8 hex> <payload>\n".
std::string frameRecord(std::string_view payload);

class Journal {
 public:
  struct Options {
    std::string dir;  // created (0700) when first written
    std::string segment_prefix = "journal.";
    std::string snapshot_name;            // for messages: what names the first seq
    std::uint64_t max_segment_bytes = 0;  // read bound; 0 = kMaxStateFileBytes
    Durability durability = Durability::kPowerLoss;
  };

  // What replay() found.
  struct Replay {
    std::uint64_t segments = 0;         // live segments replayed
    std::uint64_t records = 0;          // whole records handed to the callback
    std::uint64_t bytes = 0;            // bytes of those records
    std::uint64_t stale_deleted = 0;    // segments below first_seq, deleted
    bool torn = false;                  // a torn tail was cut off ...
    std::string torn_path;              // ... from this segment
    std::uint64_t torn_offset = 0;      // ... at this byte
    std::uint64_t torn_bytes = 0;       // ... this many bytes
    std::vector<std::string> warnings;  // best-effort steps that failed
  };

  explicit Journal(Options options);
  ~Journal();
  Journal(Journal&&) noexcept;
  Journal& operator=(Journal&&) noexcept;
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  const Options& options() const { return options_; }
  std::string segmentPath(std::uint64_t seq) const;

  // The segment numbers in the directory, increasing (none when it does not
  // exist). Errors: kIo naming the directory.
  Result<std::vector<std::uint64_t>> listSegments() const;

  // Replays segments first_seq, first_seq+1, ... in order, calling
  // `on_record` with each record's payload, and prepares append() to
  // continue the last one (or to create segment first_seq). `on_record`
  // returning an error stops the replay: it is reported as a corrupt record
  // (kInvalidValue naming the segment and byte offset, with its message).
  // Errors: kIo (a segment cannot be read or its torn tail cut off; names
  // the path), kInvalidValue (a corrupt record that is not the torn tail, a
  // missing segment: names the file, the offset and what the operator can
  // do). On error the journal is not ready for append().
  // With Access::kReadOnly (a reader beside a running writer) nothing is
  // deleted or cut off (a torn tail is still reported and skipped) and the
  // journal is not prepared for append().
  enum class Access : std::uint8_t { kReadWrite, kReadOnly };
  Result<Replay> replay(std::uint64_t first_seq,
                        const std::function<Status(std::string_view payload)>& on_record,
                        Access access = Access::kReadWrite);

  // Starts a journal at `seq` without replaying (the caller wrote a snapshot
  // naming seq and deleted the older segments).
  void restartAt(std::uint64_t seq);

  // Appends `payload` as one record: one write and (kPowerLoss) one
  // fdatasync. Success means it survives a crash of that kind. Errors: kIo naming the segment and
  // the failing step; the segment is then cut back to its previous size, and if that fails too,
  // every later append is refused (kIo) until rotate(), restartAt() or
  // replay() (the tail is unknown). kInvalidValue: a payload with '\n'.
  Status append(std::string_view payload);

  // Starts a new segment after the current one when the current one holds
  // records (first cutting back a failed append), and returns the seq a
  // snapshot of everything appended so far must name.
  // Errors: kIo (the cut-back or the new segment's creation failed).
  Result<std::uint64_t> rotate();

  // The seq a snapshot of everything appended so far names when written
  // without rotate() (tools, synchronous saves): current + 1 when the current
  // segment exists and holds records (or a failed append), else current.
  std::uint64_t nextSnapshotSeq() const;

  // Deletes the segments below `seq` (already in a snapshot). Best effort:
  // returns what could not be deleted (the next replay() deletes it).
  std::vector<std::string> deleteSegmentsBelow(std::uint64_t seq) const;

  // The current segment and its valid bytes (for accounting).
  std::uint64_t currentSeq() const { return current_seq_; }
  std::uint64_t currentBytes() const { return current_size_; }
  bool ready() const { return ready_; }
  // A failed append could not be cut back (append() refuses until rotate()).
  bool broken() const { return broken_; }
  // Closes the segment file (the next append reopens it).
  void close();

 private:
  Status openSegment();
  bool sync() const { return options_.durability == Durability::kPowerLoss; }

  Options options_;
  bool ready_ = false;              // replay() or restartAt() ran
  bool broken_ = false;             // a failed append could not be cut back
  std::uint64_t current_seq_ = 1;   // the segment append() writes to
  bool current_exists_ = false;     // its file exists (created lazily)
  std::uint64_t current_size_ = 0;  // its valid bytes
  int fd_ = -1;
};

}  // namespace nicoffload
