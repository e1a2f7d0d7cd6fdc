#include "nicoffload/common/file_read.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace nicoffload {
namespace {

// What a file that is not a regular one is, for the error.
const char* kindOf(mode_t mode) {
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

std::string sizeText(std::size_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

// Reads `fd` to its end into `out`; at most max_bytes + 1 bytes, so that
// "larger than the cap" is known without reading the rest. 0 or errno.
int readCapped(int fd, std::size_t max_bytes, std::size_t size_hint, std::string& out) {
  out.clear();
  out.reserve(std::min(size_hint, max_bytes) + 1);
  char chunk[1 << 16];
  while (out.size() <= max_bytes) {
    const std::size_t want = std::min(sizeof chunk, max_bytes + 1 - out.size());
    const ssize_t n = ::read(fd, chunk, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) break;
    out.append(chunk, static_cast<std::size_t>(n));
  }
  return 0;
}

}  // namespace

Result<std::string> readRegularFile(const std::string& path, std::size_t max_bytes,
                                    const std::string& field) {
  const std::string f = field.empty() ? path : field;
  const std::string v = field.empty() ? std::string() : path;
  // O_NONBLOCK: opening a FIFO for reading would wait for a writer. O_NOCTTY:
  // a terminal named here must not become the controlling one.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    return makeError(ErrorCode::kIo, f, v, "cannot open " + path + ": " + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return makeError(ErrorCode::kIo, f, v, "cannot stat " + path + ": " + std::strerror(err));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return makeError(ErrorCode::kInvalidValue, f, v, path + " is a directory, not a file");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return makeError(ErrorCode::kInvalidValue, f, v,
                     path + " is " + kindOf(st.st_mode) + ", not a regular file");
  }
  // A regular file's size is a hint only: procfs and sysfs files say 0 or
  // 4096 whatever they hold, and a file can grow while it is read.
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    return makeError(ErrorCode::kInvalidValue, f, v,
                     path + " is larger than " + sizeText(max_bytes) + " (" +
                         std::to_string(st.st_size) + " bytes); not a file of this kind");
  }
  std::string out;
  const int err = readCapped(fd, max_bytes, static_cast<std::size_t>(st.st_size), out);
  ::close(fd);
  if (err != 0)
    return makeError(ErrorCode::kIo, f, v, "cannot read " + path + ": " + std::strerror(err));
  if (out.size() > max_bytes)
    return makeError(ErrorCode::kInvalidValue, f, v,
                     path + " is larger than " + sizeText(max_bytes) + "; not a file of this kind");
  return out;
}

Result<std::string> readBoundedFd(int fd, std::size_t max_bytes, const std::string& what) {
  std::string out;
  if (const int err = readCapped(fd, max_bytes, 0, out); err != 0)
    return makeError(ErrorCode::kIo, what, "", "cannot read " + what + ": " + std::strerror(err));
  if (out.size() > max_bytes)
    return makeError(ErrorCode::kInvalidValue, what, "",
                     what + " holds more than " + sizeText(max_bytes));
  return out;
}

}  // namespace nicoffload
