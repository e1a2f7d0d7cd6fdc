#include "nicoffload/daemon/state_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "nicoffload/common/file_read.h"
#include "nicoffload/model/parse.h"

namespace nicoffload::offload {
namespace {

using nlohmann::json;

constexpr int kVersion = 1;
constexpr std::string_view kSegmentPrefix = "journal.";

Error ioError(const std::string& what, const std::string& path, int err) {
  return makeError(ErrorCode::kIo, path, "", what + ": " + std::strerror(err));
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

// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the one zlib's
// crc32() computes; table-driven, one byte at a time.
constexpr std::array<std::uint32_t, 256> makeCrcTable() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kCrcTable = makeCrcTable();

std::uint32_t crc32(std::string_view data) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = kCrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::string segmentName(std::uint64_t seq) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "journal.%016" PRIu64, seq);
  return buf;
}

// The seq of a segment file name ("journal.<digits>"), or nullopt.
std::optional<std::uint64_t> segmentSeq(std::string_view name) {
  if (name.substr(0, kSegmentPrefix.size()) != kSegmentPrefix) return std::nullopt;
  name.remove_prefix(kSegmentPrefix.size());
  if (name.empty() || name.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : name) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

// The segments in `dir`, by increasing seq (none when `dir` does not exist).
Result<std::vector<std::uint64_t>> listSegments(const std::string& dir) {
  std::vector<std::uint64_t> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    return ioError("cannot list directory", dir, errno);
  }
  while (const dirent* e = ::readdir(d))
    if (auto seq = segmentSeq(e->d_name)) out.push_back(*seq);
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// Deletes the segments older than `seq` (already in a snapshot). Best
// effort: one left behind is deleted by the next load().
void deleteSegmentsBelow(const std::string& dir, std::uint64_t seq) {
  auto segs = listSegments(dir);
  if (!segs) {
    spdlog::warn("state: {}", segs.error().describe());
    return;
  }
  for (auto s : *segs) {
    if (s >= seq) break;
    const std::string p = dir + "/" + segmentName(s);
    if (::unlink(p.c_str()) != 0 && errno != ENOENT)
      spdlog::warn("state: cannot delete {} (already in the snapshot): {}", p,
                   std::strerror(errno));
  }
}

// A state file (snapshot, journal segment): a regular file, bounded.
Result<std::string> readFile(const std::string& path) {
  return readRegularFile(path, kMaxStateFileBytes);
}

json encode(const Mutation& m) {
  switch (m.kind) {
    case Mutation::Kind::kPortPut:
      return {{"op", "port.put"}, {"port", model::toJson(m.port)}};
    case Mutation::Kind::kPortRemove:
      return {{"op", "port.remove"}, {"vm", m.key.vm}, {"nic", m.key.nic}};
    case Mutation::Kind::kRemotePut:
      return {{"op", "remote.put"}, {"remote", model::toJson(m.remote)}};
    case Mutation::Kind::kRemoteRemove:
      return {{"op", "remote.remove"}, {"address", m.address.str()}};
  }
  return {};
}

// One mutation of a record's payload; errors name `path` (e.g. "[3]").
Result<Mutation> decode(const json& j, const std::string& path) {
  auto bad = [&](const std::string& field, const std::string& msg) {
    return makeError(ErrorCode::kInvalidValue, path + field, "", msg);
  };
  if (!j.is_object() || !j.contains("op") || !j["op"].is_string())
    return bad(".op", "not a journal mutation (no \"op\")");
  const auto& op = j["op"].get_ref<const std::string&>();
  if (op == "port.put") {
    if (!j.contains("port")) return bad(".port", "missing");
    auto p = model::parsePort(j["port"], path + ".port");
    if (!p) return p.error();
    return Mutation::portPut(std::move(*p));
  }
  if (op == "port.remove") {
    if (!j.contains("vm") || !j["vm"].is_string()) return bad(".vm", "missing or not a string");
    if (!j.contains("nic") || !j["nic"].is_number_unsigned() ||
        j["nic"].get<std::uint64_t>() > 0xFFFF)
      return bad(".nic", "missing or not a NIC index");
    return Mutation::portRemove(
        model::PortKey{j["vm"].get<std::string>(), j["nic"].get<std::uint16_t>()});
  }
  if (op == "remote.put") {
    if (!j.contains("remote")) return bad(".remote", "missing");
    auto r = model::parseRemote(j["remote"], path + ".remote");
    if (!r) return r.error();
    return Mutation::remotePut(std::move(*r));
  }
  if (op == "remote.remove") {
    std::optional<Ipv4Addr> a;
    if (j.contains("address") && j["address"].is_string())
      a = Ipv4Addr::parse(j["address"].get_ref<const std::string&>());
    if (!a) return bad(".address", "missing or not an IPv4 address");
    return Mutation::remoteRemove(*a);
  }
  return bad(".op", "unknown journal operation '" + op + "'");
}

// The snapshot document.
std::string snapshotText(const PersistedState& state, std::uint64_t journal_seq) {
  json j;
  j["version"] = kVersion;
  j["journal_seq"] = journal_seq;
  j["ports"] = json::array();
  for (const auto& p : state.ports) j["ports"].push_back(model::toJson(p));
  j["remotes"] = json::array();
  for (const auto& r : state.remotes) j["remotes"].push_back(model::toJson(r));
  j["extra"] = state.extra;
  return j.dump(1) + "\n";
}

// The snapshot being written, renamed over intent.json once it is whole.
std::string snapshotTmpPath(const std::string& dir) { return dir + "/intent.json.tmp"; }

// Atomically replaces dir/intent.json: tmp file, fsync, rename, fsync dir.
// A failed attempt removes its tmp file: on a full disk, a partial snapshot
// left behind would keep the disk full (and grow with the state).
Status writeSnapshot(const std::string& dir, const PersistedState& state,
                     std::uint64_t journal_seq) {
  if (auto s = makeDirs(dir); !s) return s;
  std::string text;
  try {
    text = snapshotText(state, journal_seq);
  } catch (const std::exception& e) {  // nlohmann: e.g. invalid UTF-8 in `extra`
    return makeError(ErrorCode::kInternal, dir + "/intent.json", "",
                     std::string("cannot serialise the state: ") + e.what());
  }
  const std::string path = dir + "/intent.json";
  const std::string tmp = snapshotTmpPath(dir);
  auto failed = [&](const std::string& what, const std::string& where, int err) {
    if (::unlink(tmp.c_str()) != 0 && errno != ENOENT)
      spdlog::warn("state: cannot remove {} after a failed snapshot: {}", tmp,
                   std::strerror(errno));
    return ioError(what, where, err);
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return failed("cannot create", tmp, errno);
  if (const int err = writeAllAt(fd, text.data(), text.size(), 0); err != 0) {
    ::close(fd);
    return failed("cannot write", tmp, err);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return failed("cannot fsync", tmp, err);
  }
  if (::close(fd) != 0) return failed("cannot close", tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return failed("cannot rename into place", path, errno);
  return fsyncDir(dir);
}

// Replays mutations onto a state in O(1) each: keys map to slots; a removed
// slot is emptied and squeezed out by finish(), so the order is the
// first-insertion order of the surviving keys.
class Replayer {
 public:
  explicit Replayer(PersistedState base) : extra_(std::move(base.extra)) {
    remote_at_.reserve(base.remotes.size());
    for (auto& p : base.ports) apply(Mutation::portPut(std::move(p)));
    for (auto& r : base.remotes) apply(Mutation::remotePut(std::move(r)));
  }

  void apply(Mutation&& m) {
    switch (m.kind) {
      case Mutation::Kind::kPortPut: {
        auto [it, added] = port_at_.try_emplace(m.port.key, ports_.size());
        if (added) {
          ports_.emplace_back(std::move(m.port));
        } else {
          ports_[it->second] = std::move(m.port);
        }
        break;
      }
      case Mutation::Kind::kPortRemove:
        if (auto it = port_at_.find(m.key); it != port_at_.end()) {
          ports_[it->second].reset();
          port_at_.erase(it);
        }
        break;
      case Mutation::Kind::kRemotePut: {
        auto [it, added] = remote_at_.try_emplace(m.remote.address, remotes_.size());
        if (added) {
          remotes_.emplace_back(std::move(m.remote));
        } else {
          remotes_[it->second] = std::move(m.remote);
        }
        break;
      }
      case Mutation::Kind::kRemoteRemove:
        if (auto it = remote_at_.find(m.address); it != remote_at_.end()) {
          remotes_[it->second].reset();
          remote_at_.erase(it);
        }
        break;
    }
  }

  PersistedState finish() && {
    PersistedState s;
    s.extra = std::move(extra_);
    s.ports.reserve(port_at_.size());
    for (auto& p : ports_)
      if (p) s.ports.push_back(std::move(*p));
    s.remotes.reserve(remote_at_.size());
    for (auto& r : remotes_)
      if (r) s.remotes.push_back(std::move(*r));
    return s;
  }

 private:
  json extra_;
  std::vector<std::optional<model::Port>> ports_;
  std::map<model::PortKey, std::size_t> port_at_;
  std::vector<std::optional<model::RemoteEndpoint>> remotes_;
  std::unordered_map<Ipv4Addr, std::size_t> remote_at_;
};

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

Mutation Mutation::portPut(model::Port p) {
  Mutation m;
  m.kind = Kind::kPortPut;
  m.port = std::move(p);
  return m;
}
Mutation Mutation::portRemove(model::PortKey k) {
  Mutation m;
  m.kind = Kind::kPortRemove;
  m.key = std::move(k);
  return m;
}
Mutation Mutation::remotePut(model::RemoteEndpoint r) {
  Mutation m;
  m.kind = Kind::kRemotePut;
  m.remote = std::move(r);
  return m;
}
Mutation Mutation::remoteRemove(Ipv4Addr a) {
  Mutation m;
  m.kind = Kind::kRemoteRemove;
  m.address = a;
  return m;
}

void applyMutation(PersistedState& state, const Mutation& m) {
  switch (m.kind) {
    case Mutation::Kind::kPortPut:
      for (auto& p : state.ports)
        if (p.key == m.port.key) {
          p = m.port;
          return;
        }
      state.ports.push_back(m.port);
      return;
    case Mutation::Kind::kPortRemove:
      std::erase_if(state.ports, [&](const model::Port& p) { return p.key == m.key; });
      return;
    case Mutation::Kind::kRemotePut:
      for (auto& r : state.remotes)
        if (r.address == m.remote.address) {
          r = m.remote;
          return;
        }
      state.remotes.push_back(m.remote);
      return;
    case Mutation::Kind::kRemoteRemove:
      std::erase_if(state.remotes,
                    [&](const model::RemoteEndpoint& r) { return r.address == m.address; });
      return;
  }
}

struct StateStore::Impl {
  std::string dir;
  StateStoreOptions options;

  // The loop's thread only.
  bool opened = false;             // load() or save() ran: the fields below are valid
  bool broken = false;             // a failed append could not be cut back
  std::uint64_t current_seq = 1;   // the segment append() writes to
  bool current_exists = false;     // its file exists (created lazily)
  std::uint64_t current_size = 0;  // its valid bytes
  int fd = -1;                     // open on it, or -1
  std::thread compactor;

  std::atomic<bool> compacting{false};
  mutable std::mutex mu;
  Stats stats;  // under mu
  // Under mu: mutations in the live journal segments (replayed at load plus
  // appended since), and the ports + remotes the snapshot holds.
  std::uint64_t journal_mutations = 0;
  std::uint64_t snapshot_objects = 0;

  std::string segmentPath(std::uint64_t seq) const { return dir + "/" + segmentName(seq); }

  void closeSegment() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }

  // Opens the current segment for writing, creating it (and making its
  // directory entry durable) when it does not exist yet.
  Status openSegment() {
    if (fd >= 0) return Status::success();
    if (auto s = makeDirs(dir); !s) return s;
    const std::string p = segmentPath(current_seq);
    fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return ioError("cannot open journal segment", p, errno);
    if (!current_exists) {
      if (auto s = fsyncDir(dir); !s) {
        closeSegment();
        return s;
      }
      current_exists = true;
    }
    return Status::success();
  }

  // Starts a new segment after the current one when the current one holds
  // records; the seq the next snapshot must name.
  Result<std::uint64_t> rotate() {
    if (broken) {
      // Cut the failed append off first: a segment that is not the last
      // must end with a whole record, or load() refuses it.
      const std::string p = segmentPath(current_seq);
      if (fd < 0) return ioError("cannot cut back a failed append before rotating", p, EBADF);
      if (::ftruncate(fd, static_cast<off_t>(current_size)) != 0 || ::fdatasync(fd) != 0)
        return ioError("cannot cut back a failed append before rotating", p, errno);
      broken = false;
    }
    if (!current_exists || current_size == 0) return current_seq;
    closeSegment();
    ++current_seq;
    current_exists = false;
    current_size = 0;
    if (auto s = openSegment(); !s) return s.error();
    return current_seq;
  }
};

StateStore::StateStore(std::string dir, StateStoreOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->dir = std::move(dir);
  impl_->options = options;
}

StateStore::~StateStore() {
  if (!impl_) return;
  waitForCompaction();
  impl_->closeSegment();
}

StateStore::StateStore(StateStore&&) noexcept = default;

StateStore& StateStore::operator=(StateStore&& other) noexcept {
  if (this != &other) {
    if (impl_) {
      waitForCompaction();
      impl_->closeSegment();
    }
    impl_ = std::move(other.impl_);
  }
  return *this;
}

const std::string& StateStore::dir() const { return impl_->dir; }
std::string StateStore::path() const { return impl_->dir + "/intent.json"; }
std::string StateStore::segmentPath(std::uint64_t seq) const { return impl_->segmentPath(seq); }

Result<PersistedState> StateStore::load() {
  Impl& im = *impl_;
  waitForCompaction();
  im.closeSegment();
  im.opened = false;
  im.broken = false;

  // A snapshot a crash interrupted: never part of the state (load() reads
  // intent.json only), and on a full disk the space it holds is what the
  // next snapshot needs.
  if (const std::string tmp = snapshotTmpPath(im.dir); ::unlink(tmp.c_str()) == 0)
    spdlog::info("state: removed {}, a snapshot a crash left unfinished", tmp);
  else if (errno != ENOENT && errno != ENOTDIR)
    spdlog::warn("state: cannot remove {}: {}", tmp, std::strerror(errno));

  PersistedState base;
  std::uint64_t snapshot_seq = 1;
  bool old_format = false;
  const std::string snap = path();
  if (::access(snap.c_str(), F_OK) == 0) {
    auto doc = model::readJsonFile(snap, kMaxStateFileBytes);
    if (!doc) return doc.error();
    auto& j = *doc;
    auto bad = [&](const std::string& field, const std::string& msg) {
      return makeError(ErrorCode::kInvalidValue, snap + ": " + field, "", msg);
    };
    if (!j.is_object() || !j.contains("version") || j["version"] != kVersion)
      return bad("version", "not a nicoffload state file of version " + std::to_string(kVersion));
    // Moved, not copied: 100 k remotes are tens of MB of JSON nodes.
    json lists = json::object();
    lists["ports"] = j.contains("ports") ? std::move(j["ports"]) : json::array();
    lists["remotes"] = j.contains("remotes") ? std::move(j["remotes"]) : json::array();
    model::Intent scratch;
    if (auto s = model::parsePortsFile(lists, scratch); !s) {
      Error e = s.error();
      e.field = snap + ": " + e.field;
      return e;
    }
    base.ports = std::move(scratch.ports);
    base.remotes = std::move(scratch.remotes);
    if (j.contains("extra")) base.extra = j["extra"];
    if (!j.contains("journal_seq")) {
      old_format = true;
    } else if (!j["journal_seq"].is_number_unsigned() ||
               j["journal_seq"].get<std::uint64_t>() < 1) {
      return bad("journal_seq", "not a journal segment number (an integer >= 1)");
    } else {
      snapshot_seq = j["journal_seq"].get<std::uint64_t>();
    }
  } else if (errno != ENOENT) {
    return ioError("cannot access", snap, errno);
  }

  auto segs = listSegments(im.dir);
  if (!segs) return segs.error();

  if (old_format) {
    // Written before the journal existed: the whole state. Any segment here
    // is older than it; name the next one in a rewritten snapshot, or the
    // next start could not tell new segments from old ones.
    snapshot_seq = segs->empty() ? 1 : segs->back() + 1;
    if (auto s = writeSnapshot(im.dir, base, snapshot_seq); !s) return s.error();
    deleteSegmentsBelow(im.dir, snapshot_seq);
    spdlog::info(
        "state: {} had no journal_seq (written before the journal): rewritten with "
        "journal_seq {}",
        snap, snapshot_seq);
    segs->clear();
  }

  std::vector<std::uint64_t> live;
  std::size_t stale = 0;
  for (auto s : *segs) {
    if (s < snapshot_seq) {
      ++stale;
    } else {
      live.push_back(s);
    }
  }
  if (stale > 0) {
    // A crash between the snapshot's rename and the deletion of the
    // segments it includes.
    spdlog::info("state: deleting {} journal segment(s) already in the snapshot", stale);
    deleteSegmentsBelow(im.dir, snapshot_seq);
  }
  for (std::size_t i = 0; i < live.size(); ++i) {
    if (live[i] != snapshot_seq + i) {
      const std::string missing = im.segmentPath(snapshot_seq + i);
      return makeError(
          ErrorCode::kInvalidValue, missing, "",
          "journal segment is missing (the snapshot " + snap + " names journal_seq " +
              std::to_string(snapshot_seq) + ", and " + im.segmentPath(live[i]) +
              " exists): replaying without it would lose changes, so the state is not loaded. "
              "Restore the directory from a backup, or accept losing the changes from there on "
              "by moving " +
              im.segmentPath(live[i]) + " and later segments aside, and restart");
    }
  }

  const std::uint64_t snapshot_objects = base.ports.size() + base.remotes.size();
  Replayer replayer(std::move(base));
  std::uint64_t replayed = 0;
  std::uint64_t torn = 0;
  std::uint64_t journal_bytes = 0;
  std::uint64_t last_size = 0;
  for (std::size_t i = 0; i < live.size(); ++i) {
    const bool last = i + 1 == live.size();
    const std::string p = im.segmentPath(live[i]);
    auto data = readFile(p);
    if (!data) return data.error();
    const std::string_view text = *data;
    std::size_t off = 0;
    while (off < text.size()) {
      RecordView rec = readRecord(text, off);
      if (rec.kind != RecordView::Kind::kOk) {
        // A crash mid-append leaves a prefix of the last record of the last
        // segment, which holds no newline (the JSON payload has none); a
        // power loss may leave garbage without one, or the final line
        // garbled. Anything followed by another line is not a torn tail
        // (e.g. a corrupt length that points past the end of the file).
        const std::size_t nl = text.find('\n', off);
        const bool at_tail = nl == std::string_view::npos || nl + 1 == text.size();
        if (!last || !at_tail)
          return corruptJournal(p, off, text.size(),
                                rec.kind == RecordView::Kind::kIncomplete
                                    ? "cut short, in a segment that is not the last"
                                    : rec.why);
        spdlog::warn(
            "state: {}: ignoring a torn record at byte {} ({} bytes; a crash during an "
            "append that was never acknowledged); cutting it off",
            p, off, text.size() - off);
        const int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0) return ioError("cannot open to cut off a torn record", p, errno);
        if (::ftruncate(fd, static_cast<off_t>(off)) != 0 || ::fdatasync(fd) != 0) {
          const int err = errno;
          ::close(fd);
          return ioError("cannot cut off a torn record", p, err);
        }
        ::close(fd);
        ++torn;
        break;
      }
      auto doc = json::parse(rec.payload.begin(), rec.payload.end(), nullptr, false);
      if (doc.is_discarded() || !doc.is_array())
        return corruptJournal(p, off, text.size(),
                              "its CRC-32 matches but its payload is not a JSON array");
      for (std::size_t k = 0; k < doc.size(); ++k) {
        auto m = decode(doc[k], "[" + std::to_string(k) + "]");
        if (!m) return corruptJournal(p, off, text.size(), m.error().describe());
        replayer.apply(std::move(*m));
        ++replayed;
      }
      off = rec.end;
    }
    journal_bytes += off;
    if (last) last_size = off;
  }

  im.current_seq = live.empty() ? snapshot_seq : live.back();
  im.current_exists = !live.empty();
  im.current_size = last_size;
  im.opened = true;
  {
    std::lock_guard<std::mutex> lock(im.mu);
    im.stats.journal_bytes = journal_bytes;
    im.stats.replayed_records = replayed;
    im.journal_mutations = replayed;
    im.snapshot_objects = snapshot_objects;
    im.stats.torn_records_ignored += torn;
  }
  if (!live.empty())
    spdlog::info("state: replayed {} journal change(s) from {} segment(s) after {}", replayed,
                 live.size(), snap);
  return std::move(replayer).finish();
}

Status StateStore::append(std::span<const Mutation> batch) {
  Impl& im = *impl_;
  auto fail = [&](Error e) -> Status {
    std::lock_guard<std::mutex> lock(im.mu);
    ++im.stats.append_failures;
    return e;
  };
  if (!im.opened) {
    if (auto l = load(); !l) return fail(l.error());
  }
  const std::string p = im.segmentPath(im.current_seq);
  if (im.broken)
    return fail(makeError(ErrorCode::kIo, p, "",
                          "an earlier append failed and could not be cut back: the journal's "
                          "tail is unknown; restart the daemon (the next start cuts it off)"));
  if (batch.empty()) return Status::success();

  std::string line;
  try {
    // The payload is a JSON array; each element is dumped as it is encoded,
    // so a 100 k batch never holds a tree of 100 k objects.
    std::string text = "[";
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (i) text += ',';
      text += encode(batch[i]).dump();
    }
    text += ']';
    char head[32];
    std::snprintf(head, sizeof head, "%zu %08" PRIx32 " ", text.size(), crc32(text));
    line.reserve(std::strlen(head) + text.size() + 1);
    line.append(head).append(text).push_back('\n');
  } catch (const std::exception& e) {  // nlohmann: invalid UTF-8 in a field
    return fail(makeError(ErrorCode::kInternal, p, "",
                          std::string("cannot serialise the batch: ") + e.what()));
  }

  if (auto s = im.openSegment(); !s) return fail(s.error());
  const off_t before = static_cast<off_t>(im.current_size);
  int err = writeAllAt(im.fd, line.data(), line.size(), before);
  const char* step = "cannot write to journal segment";
  if (err == 0 && ::fdatasync(im.fd) != 0) {
    err = errno;
    step = "cannot fdatasync journal segment";
  }
  if (err != 0) {
    // Nothing of the batch may count: cut it off, so that a later append
    // does not follow it and a restart does not replay it.
    if (::ftruncate(im.fd, before) != 0 || ::fdatasync(im.fd) != 0) {
      im.broken = true;
      spdlog::error("state: {}: cannot cut back a failed append to {} bytes: {}", p,
                    static_cast<long long>(before), std::strerror(errno));
    }
    return fail(ioError(step, p, err));
  }
  im.current_size += line.size();
  std::lock_guard<std::mutex> lock(im.mu);
  im.stats.journal_bytes += line.size();
  ++im.stats.appends;
  im.stats.records += batch.size();
  im.journal_mutations += batch.size();
  return Status::success();
}

bool StateStore::compactionDue() const {
  if (impl_->compacting.load()) return false;
  std::uint64_t journal = 0, mutations = 0, objects = 0;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    journal = impl_->stats.journal_bytes;
    mutations = impl_->journal_mutations;
    objects = impl_->snapshot_objects;
  }
  if (journal >= impl_->options.compact_journal_bytes) return true;
  // Or once the journal holds as many changes as half the snapshot's objects
  // (and 10 000): removals are small records, yet a start would load every
  // object they removed and then replay each removal.
  constexpr std::uint64_t kMinMutations = 10000;
  if (mutations >= kMinMutations && mutations >= objects / 2) return true;
  // Also once the journal reaches half the snapshot (and 1 MiB): a start then
  // replays at most half of what it loads, whatever the size of the state.
  constexpr std::uint64_t kMinRelative = 1 << 20;
  if (journal < kMinRelative) return false;
  struct stat st {};
  const std::string snapshot = impl_->dir + "/intent.json";
  const std::uint64_t snapshot_bytes =
      ::stat(snapshot.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  return journal >= snapshot_bytes / 2;
}

bool StateStore::compacting() const { return impl_->compacting.load(); }

void StateStore::waitForCompaction() {
  if (impl_->compactor.joinable()) impl_->compactor.join();
}

void StateStore::compactInBackground(PersistedState state) {
  Impl& im = *impl_;
  waitForCompaction();
  auto failed = [&](const Error& e) {
    spdlog::warn("state: compaction not started: {}", e.describe());
    std::lock_guard<std::mutex> lock(im.mu);
    ++im.stats.compaction_failures;
  };
  if (!im.opened) {
    if (auto l = load(); !l) return failed(l.error());
  }
  auto seq = im.rotate();
  if (!seq) return failed(seq.error());
  std::uint64_t covered = 0;            // every byte so far is in segments < *seq
  std::uint64_t covered_mutations = 0;  // ... and every mutation
  {
    std::lock_guard<std::mutex> lock(im.mu);
    covered = im.stats.journal_bytes;
    covered_mutations = im.journal_mutations;
  }
  im.compacting.store(true);
  im.compactor = std::thread([&im, state = std::move(state), seq = *seq, covered,
                              covered_mutations] {
    const auto t0 = std::chrono::steady_clock::now();
    Status s = writeSnapshot(im.dir, state, seq);
    if (s) deleteSegmentsBelow(im.dir, seq);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    {
      std::lock_guard<std::mutex> lock(im.mu);
      if (s) {
        ++im.stats.compactions;
        im.stats.journal_bytes -= std::min(covered, im.stats.journal_bytes);
        im.journal_mutations -= std::min(covered_mutations, im.journal_mutations);
        im.snapshot_objects = state.ports.size() + state.remotes.size();
        im.stats.last_compaction_ms = ms;
      } else {
        ++im.stats.compaction_failures;
      }
    }
    if (s) {
      spdlog::info(
          "state: compacted {} ports, {} remotes into {}/intent.json in {:.1f} ms "
          "(journal from segment {})",
          state.ports.size(), state.remotes.size(), im.dir, ms, seq);
    } else {
      spdlog::warn("state: compaction failed (the journal keeps every change): {}",
                   s.error().describe());
    }
    im.compacting.store(false);
  });
}

Status StateStore::save(const PersistedState& state) {
  Impl& im = *impl_;
  waitForCompaction();
  std::uint64_t seq = im.current_seq;
  bool rotate = false;
  if (im.opened) {
    rotate = im.current_exists && (im.current_size > 0 || im.broken);
    if (rotate) seq = im.current_seq + 1;
  } else {
    // Never loaded (tools): whatever segments exist are older than `state`.
    auto segs = listSegments(im.dir);
    if (!segs) return segs.error();
    seq = segs->empty() ? 1 : segs->back() + 1;
  }
  if (auto s = writeSnapshot(im.dir, state, seq); !s) return s;
  if (rotate || !im.opened) {
    im.closeSegment();
    im.current_seq = seq;
    im.current_exists = false;
    im.current_size = 0;
    im.broken = false;
  }
  im.opened = true;
  deleteSegmentsBelow(im.dir, seq);
  std::lock_guard<std::mutex> lock(im.mu);
  im.stats.journal_bytes = im.current_size;
  im.journal_mutations = 0;
  im.snapshot_objects = state.ports.size() + state.remotes.size();
  return Status::success();
}

StateStore::Stats StateStore::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

}  // namespace nicoffload::offload
