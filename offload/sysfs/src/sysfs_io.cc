#include "nicoffload/offload/sysfs_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

namespace nicoffload::offload {

namespace fs = std::filesystem;

ErrorCode errorCodeForErrno(int err) {
  switch (err) {
    case ENOENT:
    case ENODEV:
    case ENXIO:
      return ErrorCode::kNotFound;
    case EBUSY:
    case EAGAIN:
      return ErrorCode::kBusy;
    case EINVAL:
    case ERANGE:
      return ErrorCode::kInvalidValue;
    case EOPNOTSUPP:
#if EOPNOTSUPP != ENOTSUP
    case ENOTSUP:
#endif
    case EPROTONOSUPPORT:
      return ErrorCode::kUnsupported;
    case EEXIST:
      return ErrorCode::kDuplicate;
    case ENOSPC:
      return ErrorCode::kTableFull;
    default:
      return ErrorCode::kIo;
  }
}

FsSysfsIo::FsSysfsIo(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

Result<std::string> FsSysfsIo::read(const std::string& rel) {
  const std::string p = path(rel);
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return makeError(errorCodeForErrno(err), p, "",
                     std::string("cannot open: ") + std::strerror(err));
  }
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return makeError(errorCodeForErrno(err), p, "",
                       std::string("cannot read: ") + std::strerror(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\0')) out.pop_back();
  return out;
}

Status FsSysfsIo::write(const std::string& rel, std::string_view value) {
  const std::string p = path(rel);
  // O_TRUNC so that the plain files of a test tree hold the last value, as a
  // sysfs attribute reads back; sysfs ignores it.
  const int fd = ::open(p.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return makeError(errorCodeForErrno(err), p, std::string(value),
                     std::string("cannot open for writing: ") + std::strerror(err));
  }
  ssize_t n;
  do {
    n = ::write(fd, value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  const int err = n < 0 ? errno : 0;
  ::close(fd);
  if (n < 0)
    return makeError(errorCodeForErrno(err), p, std::string(value),
                     "writing '" + std::string(value) + "' failed: " + std::strerror(err));
  if (static_cast<std::size_t>(n) != value.size())
    return makeError(ErrorCode::kIo, p, std::string(value), "short write");
  return Status::success();
}

Result<std::string> FsSysfsIo::linkName(const std::string& rel) {
  std::error_code ec;
  const fs::path target = fs::read_symlink(path(rel), ec);
  if (ec) return makeError(ErrorCode::kNotFound, path(rel), "", "not a symlink: " + ec.message());
  return target.filename().string();
}

Result<std::string> FsSysfsIo::canonical(const std::string& rel) {
  std::error_code ec;
  const fs::path p = fs::canonical(path(rel), ec);
  if (ec) return makeError(ErrorCode::kNotFound, path(rel), "", ec.message());
  return p.string();
}

std::vector<std::string> FsSysfsIo::list(const std::string& rel) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(path(rel), ec), end; !ec && it != end; it.increment(ec))
    out.push_back(it->path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

bool FsSysfsIo::exists(const std::string& rel) {
  std::error_code ec;
  return fs::exists(path(rel), ec);
}

namespace sysfs {
namespace {

bool allHex(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c); });
}

std::optional<unsigned> parseUnsigned(std::string_view s) {
  unsigned v = 0;
  if (s.empty()) return std::nullopt;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

bool isPciAddress(std::string_view t) {
  // DDDD:BB:DD.F
  return t.size() == 12 && t[4] == ':' && t[7] == ':' && t[10] == '.' && allHex(t.substr(0, 4)) &&
         allHex(t.substr(5, 2)) && allHex(t.substr(8, 2)) && t[11] >= '0' && t[11] <= '7';
}

std::optional<unsigned> pciFunction(std::string_view pci) {
  if (!isPciAddress(pci)) return std::nullopt;
  return static_cast<unsigned>(pci[11] - '0');
}

std::vector<std::string> vfPcis(SysfsIo& io, const std::string& pf_pci) {
  std::map<unsigned, std::string> by_index;
  const std::string dir = pciDevice(pf_pci);
  for (const auto& entry : io.list(dir)) {
    if (entry.rfind("virtfn", 0) != 0) continue;
    const auto index = parseUnsigned(std::string_view(entry).substr(6));
    if (!index) continue;
    if (auto target = io.linkName(dir + "/" + entry)) by_index[*index] = *target;
  }
  std::vector<std::string> out;
  if (!by_index.empty()) out.resize(by_index.rbegin()->first + 1);
  for (auto& [i, pci] : by_index) out[i] = std::move(pci);
  return out;
}

Result<std::string> vfPci(SysfsIo& io, const std::string& pf_pci, std::uint16_t vf) {
  const std::string link = pciDevice(pf_pci) + "/virtfn" + std::to_string(vf);
  auto target = io.linkName(link);
  if (target && isPciAddress(*target)) return *target;
  auto numvfs = io.read(pciDevice(pf_pci) + "/sriov_numvfs");
  return makeError(ErrorCode::kNotFound, "vf " + std::to_string(vf), std::to_string(vf),
                   "VF " + std::to_string(vf) + " of PF " + pf_pci + " does not exist (no " +
                       io.root() + "/" + link + "; sriov_numvfs is " +
                       (numvfs ? *numvfs : "unreadable") + ")");
}

std::string driverOf(SysfsIo& io, const std::string& pci) {
  auto d = io.linkName(pciDevice(pci) + "/driver");
  return d ? *d : std::string();
}

std::vector<std::string> netdevsOf(SysfsIo& io, const std::string& pci) {
  return io.list(pciDevice(pci) + "/net");
}

std::vector<std::string> vdpaDevicesOn(SysfsIo& io, const std::string& pci) {
  std::vector<std::string> out;
  auto dev = io.canonical(pciDevice(pci));
  if (!dev) return out;
  const std::string prefix = *dev + "/";
  for (const auto& name : io.list("bus/vdpa/devices")) {
    auto p = io.canonical(vdpaDevice(name));
    if (p && p->rfind(prefix, 0) == 0) out.push_back(name);
  }
  return out;
}

std::vector<std::vector<std::string>> vdpaDevicesOnEach(SysfsIo& io,
                                                       const std::vector<std::string>& pcis) {
  std::vector<std::vector<std::string>> out(pcis.size());
  // Canonical path of each function -> its indexes in `pcis`.
  std::unordered_map<std::string, std::vector<std::size_t>> by_path;
  for (std::size_t i = 0; i < pcis.size(); ++i)
    if (!pcis[i].empty())
      if (auto dev = io.canonical(pciDevice(pcis[i]))) by_path[*dev].push_back(i);
  if (by_path.empty()) return out;
  for (const auto& name : io.list("bus/vdpa/devices")) {
    auto p = io.canonical(vdpaDevice(name));
    if (!p) continue;
    // Every ancestor directory of the device's path: a function the device
    // runs through is one of them (directly, or through an auxiliary device).
    for (auto slash = p->rfind('/'); slash != std::string::npos && slash > 0;
         slash = p->rfind('/', slash - 1)) {
      const auto it = by_path.find(p->substr(0, slash));
      if (it == by_path.end()) continue;
      for (const auto i : it->second) out[i].push_back(name);
    }
  }
  return out;
}

std::optional<PhysPortName> parsePhysPortName(std::string_view t) {
  PhysPortName out;
  auto take = [&](char tag1, char tag2, std::optional<unsigned>& slot) {
    const std::size_t tag_len = tag2 ? 2 : 1;
    if (t.size() <= tag_len || t[0] != tag1 || (tag2 && t[1] != tag2)) return false;
    std::size_t n = tag_len;
    while (n < t.size() && std::isdigit(static_cast<unsigned char>(t[n]))) ++n;
    if (n == tag_len) return false;
    slot = parseUnsigned(t.substr(tag_len, n - tag_len));
    if (!slot) return false;
    t.remove_prefix(n);
    return true;
  };
  if (t.size() >= 2 && t[0] == 'p' && std::isdigit(static_cast<unsigned char>(t[1]))) {
    if (!take('p', 0, out.uplink) || !t.empty()) return std::nullopt;
    return out;
  }
  if (!t.empty() && t[0] == 'c') take('c', 0, out.controller);
  if (!take('p', 'f', out.pf)) return std::nullopt;
  if (!t.empty()) {
    if (t.size() >= 2 && t[0] == 'v' && t[1] == 'f') {
      if (!take('v', 'f', out.vf)) return std::nullopt;
    } else if (t.size() >= 2 && t[0] == 's' && t[1] == 'f') {
      if (!take('s', 'f', out.sf)) return std::nullopt;
    } else {
      return std::nullopt;
    }
  }
  if (!t.empty()) return std::nullopt;
  return out;
}

}  // namespace sysfs
}  // namespace nicoffload::offload
