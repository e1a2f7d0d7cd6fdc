#include "nicoffload/offload/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nicoffload::offload {

Status checkNetnsName(const std::string& name) {
  if (name.empty() || name.size() > 64 || name == "." || name == ".." ||
      name.find('/') != std::string::npos)
    return makeError(ErrorCode::kInvalidValue, "netns", name,
                     "'" + name + "' is not a namespace name (a file name under /run/netns)");
  return Status::success();
}

NetnsGuard::NetnsGuard(const std::string& name) {
  if (name.empty()) return;
  if (auto s = checkNetnsName(name); !s) {
    status_ = s;
    return;
  }
  original_fd_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (original_fd_ < 0) {
    status_ = makeError(ErrorCode::kIo, "netns", name,
                        std::string("cannot open the current namespace: ") + std::strerror(errno));
    return;
  }
  const std::string path = "/run/netns/" + name;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    status_ = makeError(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo, "netns", name,
                        "cannot open " + path + ": " + std::strerror(err) +
                            (err == ENOENT ? " (no such network namespace)" : ""));
    ::close(original_fd_);
    original_fd_ = -1;
    return;
  }
  if (::setns(fd, CLONE_NEWNET) != 0) {
    status_ = makeError(ErrorCode::kIo, "netns", name,
                        std::string("setns failed: ") + std::strerror(errno) + " (needs root)");
    ::close(original_fd_);
    original_fd_ = -1;
  }
  ::close(fd);
}

NetnsGuard::~NetnsGuard() {
  if (original_fd_ < 0) return;
  (void)::setns(original_fd_, CLONE_NEWNET);
  ::close(original_fd_);
}

}  // namespace nicoffload::offload
