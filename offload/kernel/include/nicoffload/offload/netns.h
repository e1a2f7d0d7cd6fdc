// Running a piece of code inside a named network namespace (/run/netns/NAME,
// as `ip netns add` creates them): setns() of the calling thread, restored on
// scope exit. Sockets opened inside stay bound to that namespace.
#pragma once

#include <string>

#include "nicoffload/common/error.h"

namespace nicoffload::offload {

class NetnsGuard {
 public:
  // Enters `name` (no-op for an empty name). Check ok() / error().
  explicit NetnsGuard(const std::string& name);
  ~NetnsGuard();
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;

  bool ok() const { return status_.ok(); }
  const Error& error() const { return status_.error(); }

 private:
  int original_fd_ = -1;
  Status status_;
};

// A namespace name must be a plain file name under /run/netns.
Status checkNetnsName(const std::string& name);

}  // namespace nicoffload::offload
