// One daemon per host: the exclusive locks a nicoffloadd holds for its
// whole life, taken before it opens any backend.
//
// What a daemon owns is its state directory and its device. A second
// instance started with the same device but another state_dir, or with the
// same state_dir, must stop before it touches either: it would otherwise
// adopt the device and destroy every rule, VF MAC and vDPA device the first
// one holds. flock(2) locks go with the open file description, so they are
// released by the kernel when the process dies (kill -9 included) and no
// stale lock survives a crash.
#pragma once

#include <string>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::daemon {

// One lock file a daemon must hold, and what it protects (for messages).
struct InstanceLockPath {
  std::string path;
  std::string what;  // "state directory /var/lib/nicoffload", "device 0000:03:00.0"
};

// The lock files for `host`, in the order they are taken:
//  - the device: <sim_device_dir>/nic-<uplink_pci>.lock when any backend is
//    simulated (the simulated NIC lives in that directory), and
//    /run/nicoffload/<uplink_pci>.lock when any backend drives real hardware
//    (DPDK flow, sysfs NIC, kernel vDPA);
//  - the state directory: <state_dir>/lock.
std::vector<InstanceLockPath> instanceLockPaths(const model::HostConfig& host);

// The directory that holds real-hardware device locks.
inline constexpr const char* kDeviceLockDir = "/run/nicoffload";

class InstanceLock {
 public:
  // Takes an exclusive, non-blocking flock(2) on `lock.path` (created 0600,
  // its missing directories 0700; the fd is O_CLOEXEC so no child inherits
  // it) and writes our pid into the file for the next one to name.
  // Errors: kConflict when another process holds it ("... is held by
  // nicoffloadd pid N"; the file is left as it is); kIo when the file cannot
  // be created or locked.
  static Result<InstanceLock> acquire(const InstanceLockPath& lock);

  InstanceLock(InstanceLock&& other) noexcept;
  InstanceLock& operator=(InstanceLock&& other) noexcept;
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;
  // Releases the lock. The file stays: removing it would let a third
  // instance lock a new file while a second still waits on the old one.
  ~InstanceLock();

  const std::string& path() const { return path_; }

 private:
  InstanceLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

// Takes every lock of instanceLockPaths(host), in order; the first refusal
// is returned and the locks already taken are released.
Result<std::vector<InstanceLock>> acquireInstanceLocks(const model::HostConfig& host);

}  // namespace nicoffload::daemon
