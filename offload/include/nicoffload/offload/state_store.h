// Crash-safe persistence of the daemon's intent (ports, remotes, and the
// extra state backends keep, such as VF assignments).
//
// The file is replaced atomically: written to a temporary file in the same
// directory, fsync()ed, renamed over the old one, and the directory
// fsync()ed. A kill -9 at any moment leaves either the old or the new file,
// never a torn one. A port is acknowledged only after save() returned.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nicoffload/common/error.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::offload {

struct PersistedState {
  std::vector<model::Port> ports;
  std::vector<model::RemoteEndpoint> remotes;
  nlohmann::json extra = nlohmann::json::object();  // backend state (e.g. "vf_pool")
};

class StateStore {
 public:
  // `dir` is created (mode 0700) if missing; the state lives in dir/intent.json.
  explicit StateStore(std::string dir) : dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }
  std::string path() const { return dir_ + "/intent.json"; }

  // The saved state, or an empty one when nothing was saved yet.
  // Errors: kIo (unreadable), kInvalidValue (the file does not parse; the
  // error names the field), never a partial state.
  Result<PersistedState> load() const;

  // Atomically replaces the saved state. Errors: kIo with the failing step.
  Status save(const PersistedState& state) const;

 private:
  std::string dir_;
};

}  // namespace nicoffload::offload
