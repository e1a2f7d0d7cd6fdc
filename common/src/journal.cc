#include "nicoffload/common/journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <optional>

#include "nicoffload/common/file_read.h"

namespace nicoffload {
namespace {

Error ioError(const std::string& what, const std::string& path, int err) {
  return makeError(ErrorCode::kIo, path, "", what + ": " + std::strerror(err));
}

Status fsyncDir(const std::string& dir) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return ioError("cannot open directory", dir, errno);
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  if (rc != 0) return ioError("cannot fsync directory", dir, err);
  return Status::success();
}

// Writes all of [data, data + size) at `offset`; errno on failure.
int writeAllAt(int fd, const char* data, std::size_t size, off_t offset) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pwrite(fd, data + done, size - done, offset + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    done += static_cast<std::size_t>(n);
  }
  return 0;
}


// The seq of a segment file name (<prefix><digits>), or nullopt.
std::optional<std::uint64_t> segmentSeq(std::string_view name, std::string_view prefix) {
  if (name.substr(0, prefix.size()) != prefix) return std::nullopt;
  name.remove_prefix(prefix.size());
  if (name.empty() || name.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : name) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

// One record of a segment, starting at `off`.
struct RecordView {
  enum class Kind : std::uint8_t { kOk, kIncomplete, kCorrupt } kind = Kind::kOk;
  std::string_view payload;
  std::size_t end = 0;  // offset after the record (kOk)
  std::string why;      // kCorrupt
};

RecordView readRecord(std::string_view data, std::size_t off) {
  RecordView r;
  auto corrupt = [&](std::string why) {
    r.kind = RecordView::Kind::kCorrupt;
    r.why = std::move(why);
    return r;
  };
  auto incomplete = [&] {
    r.kind = RecordView::Kind::kIncomplete;
    return r;
  };
  std::size_t p = off;
  std::uint64_t len = 0;
  int digits = 0;
  while (p < data.size() && data[p] >= '0' && data[p] <= '9' && digits < 12) {
    len = len * 10 + static_cast<std::uint64_t>(data[p] - '0');
    ++p;
    ++digits;
  }
  if (p == data.size()) return incomplete();
  if (digits == 0 || data[p] != ' ') return corrupt("no payload length at the start of the record");
  ++p;
  std::uint32_t crc = 0;
  for (int i = 0; i < 8; ++i, ++p) {
    if (p == data.size()) return incomplete();
    const char c = data[p];
    std::uint32_t v = 0;
    if (c >= '0' && c <= '9') {
      v = static_cast<std::uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v = static_cast<std::uint32_t>(c - 'a' + 10);
    } else {
      return corrupt("no CRC-32 after the payload length");
    }
    crc = crc << 4 | v;
  }
  if (p == data.size()) return incomplete();
  if (data[p] != ' ') return corrupt("no space after the CRC-32");
  ++p;
  if (data.size() - p < len + 1) return incomplete();
  r.payload = data.substr(p, len);
  if (data[p + len] != '\n') return corrupt("the record does not end where its length says");
  if (crc32(r.payload) != crc) return corrupt("CRC-32 mismatch");
  r.end = p + len + 1;
  return r;
}

Error corruptJournal(const std::string& path, std::size_t off, std::size_t size,
                     const std::string& why) {
  return makeError(
      ErrorCode::kInvalidValue, path + ": byte " + std::to_string(off), "",
      "journal record at byte " + std::to_string(off) + " of " + path + " (" +
          std::to_string(size) + " bytes) is corrupt (" + why +
          ") and is not the torn tail of a crash: the changes recorded from there on cannot be "
          "trusted, so the state is not loaded. Stop the daemon and keep a copy of the "
          "directory; then restore it from a backup, or accept losing those changes with "
          "'truncate -s " +
          std::to_string(off) + " " + path +
          "' and by moving any later journal segment aside, and restart");
}

}  // namespace

// zlib's: several bytes per step, where a table walk does one (a restart
// checks every record of a journal, the simulated NIC's rules included).
std::uint32_t crc32(std::string_view data) {
  uLong c = ::crc32(0L, Z_NULL, 0);
  while (!data.empty()) {
    const auto n = static_cast<uInt>(std::min<std::size_t>(data.size(), 1u << 30));
    c = ::crc32(c, reinterpret_cast<const Bytef*>(data.data()), n);
    data.remove_prefix(n);
  }
  return static_cast<std::uint32_t>(c);
}

Status makeDirs(const std::string& dir) {
  std::string partial;
  for (std::size_t pos = 0; pos != std::string::npos;) {
    pos = dir.find('/', pos + 1);
    partial = dir.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST)
      return ioError("cannot create directory", partial, errno);
  }
  return Status::success();
}

Status writeFileAtomically(const std::string& dir, const std::string& name, std::string_view bytes,
                           Durability durability) {
  const bool sync = durability == Durability::kPowerLoss;
  if (auto s = makeDirs(dir); !s) return s;
  const std::string path = dir + "/" + name;
  const std::string tmp = path + ".tmp";
  auto failed = [&](const std::string& what, const std::string& where, int err) {
    Error e = ioError(what, where, err);
    if (::unlink(tmp.c_str()) != 0 && errno != ENOENT)
      e.message +=
          std::string(" (and ") + tmp + " cannot be removed: " + std::strerror(errno) + ")";
    return e;
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return failed("cannot create", tmp, errno);
  if (const int err = writeAllAt(fd, bytes.data(), bytes.size(), 0); err != 0) {
    ::close(fd);
    return failed("cannot write", tmp, err);
  }
  if (sync && ::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return failed("cannot fsync", tmp, err);
  }
  if (::close(fd) != 0) return failed("cannot close", tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return failed("cannot rename into place", path, errno);
  return sync ? fsyncDir(dir) : Status::success();
}

std::string frameRecord(std::string_view payload) {
  char head[32];
  std::snprintf(head, sizeof head, "%zu %08" PRIx32 " ", payload.size(), crc32(payload));
  std::string line;
  line.reserve(std::strlen(head) + payload.size() + 1);
  line.append(head).append(payload).push_back('\n');
  return line;
}

Journal::Journal(Options options) : options_(std::move(options)) {
  if (options_.max_segment_bytes == 0) options_.max_segment_bytes = kMaxStateFileBytes;
}

Journal::~Journal() { close(); }

Journal::Journal(Journal&& other) noexcept
    : options_(std::move(other.options_)),
      ready_(other.ready_),
      broken_(other.broken_),
      current_seq_(other.current_seq_),
      current_exists_(other.current_exists_),
      current_size_(other.current_size_),
      fd_(other.fd_) {
  other.fd_ = -1;
  other.ready_ = false;
}

Journal& Journal::operator=(Journal&& other) noexcept {
  if (this != &other) {
    close();
    options_ = std::move(other.options_);
    ready_ = other.ready_;
    broken_ = other.broken_;
    current_seq_ = other.current_seq_;
    current_exists_ = other.current_exists_;
    current_size_ = other.current_size_;
    fd_ = other.fd_;
    other.fd_ = -1;
    other.ready_ = false;
  }
  return *this;
}

void Journal::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::string Journal::segmentPath(std::uint64_t seq) const {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016" PRIu64, seq);
  return options_.dir + "/" + options_.segment_prefix + buf;
}

Result<std::vector<std::uint64_t>> Journal::listSegments() const {
  std::vector<std::uint64_t> out;
  DIR* d = ::opendir(options_.dir.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    return ioError("cannot list directory", options_.dir, errno);
  }
  while (const dirent* e = ::readdir(d))
    if (auto seq = segmentSeq(e->d_name, options_.segment_prefix)) out.push_back(*seq);
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> Journal::deleteSegmentsBelow(std::uint64_t seq) const {
  std::vector<std::string> warnings;
  auto segs = listSegments();
  if (!segs) {
    warnings.push_back(segs.error().describe());
    return warnings;
  }
  for (auto s : *segs) {
    if (s >= seq) break;
    const std::string p = segmentPath(s);
    if (::unlink(p.c_str()) != 0 && errno != ENOENT)
      warnings.push_back("cannot delete " + p +
                         " (already in the snapshot): " + std::strerror(errno));
  }
  return warnings;
}

Result<Journal::Replay> Journal::replay(
    std::uint64_t first_seq, const std::function<Status(std::string_view payload)>& on_record,
    Access access) {
  const bool writable = access == Access::kReadWrite;
  if (writable) {
    close();
    ready_ = false;
    broken_ = false;
  }
  Replay out;
  auto segs = listSegments();
  if (!segs) return segs.error();

  std::vector<std::uint64_t> live;
  for (auto s : *segs) {
    if (s < first_seq) {
      ++out.stale_deleted;
    } else {
      live.push_back(s);
    }
  }
  if (out.stale_deleted > 0 && writable) {
    // A crash between the snapshot's rename and the deletion of the
    // segments it includes.
    auto w = deleteSegmentsBelow(first_seq);
    out.warnings.insert(out.warnings.end(), w.begin(), w.end());
  }
  const std::string snapshot = options_.dir + "/" + options_.snapshot_name;
  for (std::size_t i = 0; i < live.size(); ++i) {
    if (live[i] != first_seq + i) {
      const std::string missing = segmentPath(first_seq + i);
      return makeError(
          ErrorCode::kInvalidValue, missing, "",
          "journal segment is missing (the snapshot " + snapshot + " names journal_seq " +
              std::to_string(first_seq) + ", and " + segmentPath(live[i]) +
              " exists): replaying without it would lose changes, so the state is not loaded. "
              "Restore the directory from a backup, or accept losing the changes from there on "
              "by moving " +
              segmentPath(live[i]) + " and later segments aside, and restart");
    }
  }

  std::uint64_t last_size = 0;
  for (std::size_t i = 0; i < live.size(); ++i) {
    const bool last = i + 1 == live.size();
    const std::string p = segmentPath(live[i]);
    auto data = readRegularFile(p, options_.max_segment_bytes);
    if (!data) return data.error();
    const std::string_view text = *data;
    std::size_t off = 0;
    while (off < text.size()) {
      RecordView rec = readRecord(text, off);
      if (rec.kind != RecordView::Kind::kOk) {
        // A crash mid-append leaves a prefix of the last record of the last
        // segment, which holds no newline (payloads have none); a power loss
        // may leave garbage without one, or the final line garbled. Anything
        // followed by another line is not a torn tail (e.g. a corrupt length
        // that points past the end of the file).
        const std::size_t nl = text.find('\n', off);
        const bool at_tail = nl == std::string_view::npos || nl + 1 == text.size();
        if (!last || !at_tail)
          return corruptJournal(p, off, text.size(),
                                rec.kind == RecordView::Kind::kIncomplete
                                    ? "cut short, in a segment that is not the last"
                                    : rec.why);
        out.torn = true;
        out.torn_path = p;
        out.torn_offset = off;
        out.torn_bytes = text.size() - off;
        if (!writable) break;
        const int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0) return ioError("cannot open to cut off a torn record", p, errno);
        if (::ftruncate(fd, static_cast<off_t>(off)) != 0 || (sync() && ::fdatasync(fd) != 0)) {
          const int err = errno;
          ::close(fd);
          return ioError("cannot cut off a torn record", p, err);
        }
        ::close(fd);
        break;
      }
      if (auto s = on_record(rec.payload); !s) {
        const Error& e = s.error();
        return corruptJournal(p, off, text.size(), e.field.empty() ? e.message : e.describe());
      }
      ++out.records;
      off = rec.end;
    }
    out.bytes += off;
    if (last) last_size = off;
  }
  out.segments = live.size();
  if (!writable) return out;
  current_seq_ = live.empty() ? first_seq : live.back();
  current_exists_ = !live.empty();
  current_size_ = last_size;
  ready_ = true;
  return out;
}

void Journal::restartAt(std::uint64_t seq) {
  close();
  current_seq_ = seq;
  current_exists_ = false;
  current_size_ = 0;
  broken_ = false;
  ready_ = true;
}

Status Journal::openSegment() {
  if (fd_ >= 0) return Status::success();
  if (auto s = makeDirs(options_.dir); !s) return s;
  const std::string p = segmentPath(current_seq_);
  fd_ = ::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) return ioError("cannot open journal segment", p, errno);
  if (!current_exists_) {
    // The new segment's directory entry must be durable before a record in
    // it is acknowledged.
    if (auto s = sync() ? fsyncDir(options_.dir) : Status::success(); !s) {
      close();
      return s;
    }
    current_exists_ = true;
  }
  return Status::success();
}

Status Journal::append(std::string_view payload) {
  const std::string p = segmentPath(current_seq_);
  if (broken_)
    return makeError(ErrorCode::kIo, p, "",
                     "an earlier append failed and could not be cut back: the journal's "
                     "tail is unknown; restart the daemon (the next start cuts it off)");
  if (payload.find('\n') != std::string_view::npos)
    return makeError(ErrorCode::kInvalidValue, p, "",
                     "a journal record's payload cannot hold a newline");
  const std::string line = frameRecord(payload);
  if (auto s = openSegment(); !s) return s;
  const off_t before = static_cast<off_t>(current_size_);
  int err = writeAllAt(fd_, line.data(), line.size(), before);
  const char* step = "cannot write to journal segment";
  if (err == 0 && sync() && ::fdatasync(fd_) != 0) {
    err = errno;
    step = "cannot fdatasync journal segment";
  }
  if (err != 0) {
    // Nothing of the record may count: cut it off, so that a later append
    // does not follow it and a restart does not replay it.
    Error e = ioError(step, p, err);
    if (::ftruncate(fd_, before) != 0 || (sync() && ::fdatasync(fd_) != 0)) {
      broken_ = true;
      e.message += std::string("; cannot cut it back to ") + std::to_string(before) +
                   " bytes either: " + std::strerror(errno);
    }
    return e;
  }
  current_size_ += line.size();
  return Status::success();
}

Result<std::uint64_t> Journal::rotate() {
  if (broken_) {
    // Cut the failed append off first: a segment that is not the last must
    // end with a whole record, or replay() refuses it.
    const std::string p = segmentPath(current_seq_);
    if (fd_ < 0) return ioError("cannot cut back a failed append before rotating", p, EBADF);
    if (::ftruncate(fd_, static_cast<off_t>(current_size_)) != 0 ||
        (sync() && ::fdatasync(fd_) != 0))
      return ioError("cannot cut back a failed append before rotating", p, errno);
    broken_ = false;
  }
  if (!current_exists_ || current_size_ == 0) return current_seq_;
  close();
  ++current_seq_;
  current_exists_ = false;
  current_size_ = 0;
  if (auto s = openSegment(); !s) return s.error();
  return current_seq_;
}

std::uint64_t Journal::nextSnapshotSeq() const {
  return current_exists_ && (current_size_ > 0 || broken_) ? current_seq_ + 1 : current_seq_;
}

}  // namespace nicoffload
