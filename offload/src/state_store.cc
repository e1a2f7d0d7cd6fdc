#include "nicoffload/offload/state_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "nicoffload/model/parse.h"

namespace nicoffload::offload {
namespace {

constexpr int kVersion = 1;

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

}  // namespace

Result<PersistedState> StateStore::load() const {
  PersistedState state;
  if (::access(path().c_str(), F_OK) != 0) {
    if (errno == ENOENT) return state;
    return ioError("cannot access", path(), errno);
  }
  auto doc = model::readJsonFile(path());
  if (!doc) return doc.error();
  const auto& j = *doc;
  auto bad = [&](const std::string& field, const std::string& msg) {
    return makeError(ErrorCode::kInvalidValue, path() + ": " + field, "", msg);
  };
  if (!j.is_object() || !j.contains("version") || j["version"] != kVersion)
    return bad("version", "not a nicoffload state file of version " + std::to_string(kVersion));
  model::Intent scratch;
  if (auto s = model::parsePortsFile({{"ports", j.value("ports", nlohmann::json::array())},
                                      {"remotes", j.value("remotes", nlohmann::json::array())}},
                                     scratch);
      !s) {
    Error e = s.error();
    e.field = path() + ": " + e.field;
    return e;
  }
  state.ports = std::move(scratch.ports);
  state.remotes = std::move(scratch.remotes);
  if (j.contains("extra")) state.extra = j["extra"];
  return state;
}

Status StateStore::save(const PersistedState& state) const {
  if (auto s = makeDirs(dir_); !s) return s;
  nlohmann::json j;
  j["version"] = kVersion;
  j["ports"] = nlohmann::json::array();
  for (const auto& p : state.ports) j["ports"].push_back(model::toJson(p));
  j["remotes"] = nlohmann::json::array();
  for (const auto& r : state.remotes) j["remotes"].push_back(model::toJson(r));
  j["extra"] = state.extra;
  const std::string text = j.dump(1) + "\n";

  const std::string tmp = path() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ioError("cannot create", tmp, errno);
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return ioError("cannot write", tmp, err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return ioError("cannot fsync", tmp, err);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path().c_str()) != 0) return ioError("cannot rename into place", path(), errno);
  const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return ioError("cannot open directory", dir_, errno);
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  if (rc != 0) return ioError("cannot fsync directory", dir_, err);
  return Status::success();
}

}  // namespace nicoffload::offload
