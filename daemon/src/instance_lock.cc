#include "nicoffload/daemon/instance_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace nicoffload::daemon {
namespace {

Error ioError(const InstanceLockPath& lock, const std::string& what, int err) {
  return makeError(
      ErrorCode::kIo, "lock", lock.path,
      what + " " + lock.path + " (the lock of the " + lock.what + "): " + std::strerror(err));
}

// mkdir -p with mode 0700 for what it creates (existing directories keep
// their mode).
bool makeDirs(const std::string& dir) {
  if (dir.empty()) return true;
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) return S_ISDIR(st.st_mode);
  const auto slash = dir.rfind('/');
  if (slash != std::string::npos && slash > 0 && !makeDirs(dir.substr(0, slash))) return false;
  return ::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST;
}

// The pid the holder wrote into the file, if it reads as one.
std::string holderOf(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return "";
  std::string text(buf, static_cast<std::size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) return "";
  return text;
}

}  // namespace

std::vector<InstanceLockPath> instanceLockPaths(const model::HostConfig& host) {
  const bool simulated = host.flow_backend == model::FlowBackendKind::kSim ||
                         host.nic_backend == model::NicBackendKind::kSim ||
                         host.vdpa_backend == model::VdpaKind::kSim;
  const bool hardware = host.flow_backend != model::FlowBackendKind::kSim ||
                        host.nic_backend != model::NicBackendKind::kSim ||
                        host.vdpa_backend == model::VdpaKind::kKernel ||
                        host.vdpa_backend == model::VdpaKind::kDpdk;
  // Every PF the host drives: the first (its VFs) and a dual-homed host's
  // second, whose egress rules and routes are this daemon's alone too.
  std::vector<std::string> pfs{host.uplink_pci};
  if (host.uplink2) pfs.push_back(host.uplink2->pci);
  std::vector<InstanceLockPath> out;
  for (const auto& pci : pfs) {
    if (simulated)
      out.push_back({host.sim_device_dir + "/nic-" + pci + ".lock",
                     "simulated device " + pci + " in " + host.sim_device_dir});
    if (hardware)
      out.push_back({std::string(kDeviceLockDir) + "/" + pci + ".lock", "device " + pci});
  }
  out.push_back({host.state_dir + "/lock", "state directory " + host.state_dir});
  return out;
}

Result<InstanceLock> InstanceLock::acquire(const InstanceLockPath& lock) {
  const auto slash = lock.path.rfind('/');
  if (slash != std::string::npos && slash > 0 && !makeDirs(lock.path.substr(0, slash)))
    return ioError(lock, "cannot create the directory of", errno);
  const int fd = ::open(lock.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return ioError(lock, "cannot open", errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) {
      ::close(fd);
      return ioError(lock, "cannot lock", err);
    }
    const std::string holder = holderOf(fd);
    ::close(fd);
    return makeError(ErrorCode::kConflict, "lock", lock.path,
                     "another nicoffloadd" +
                         (holder.empty() ? std::string() : " (pid " + holder + ")") +
                         " holds the " + lock.what + " (lock " + lock.path +
                         "); one daemon per host: this one stops before touching anything");
  }
  // Ours now: say who holds it.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int err = errno;
    ::close(fd);
    return ioError(lock, "cannot write our pid into", err);
  }
  return InstanceLock(fd, lock.path);
}

InstanceLock::InstanceLock(InstanceLock&& other) noexcept
    : fd_(other.fd_), path_(std::move(other.path_)) {
  other.fd_ = -1;
}

InstanceLock& InstanceLock::operator=(InstanceLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

InstanceLock::~InstanceLock() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::vector<InstanceLock>> acquireInstanceLocks(const model::HostConfig& host) {
  std::vector<InstanceLock> held;
  for (const auto& path : instanceLockPaths(host)) {
    auto lock = InstanceLock::acquire(path);
    if (!lock) return lock.error();
    held.push_back(std::move(lock).value());
  }
  return held;
}

}  // namespace nicoffload::daemon
