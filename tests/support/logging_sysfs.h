// Test support: a SysfsIo over a fake tree that logs every write, in order,
// as "<rel path> <- <value>", into a log the test owns. Header-only.
#pragma once

#include <string>
#include <vector>

#include "nicoffload/offload/sysfs_io.h"

namespace nicoffload::test {

using Log = std::vector<std::string>;

class LoggingSysfs : public offload::SysfsIo {
 public:
  LoggingSysfs(std::string root, Log& log) : fs_(std::move(root)), log_(log) {}
  const std::string& root() const override { return fs_.root(); }
  Result<std::string> read(const std::string& rel) override { return fs_.read(rel); }
  Status write(const std::string& rel, std::string_view value) override {
    log_.push_back(rel + " <- " + std::string(value));
    return fs_.write(rel, value);
  }
  Result<std::string> linkName(const std::string& rel) override { return fs_.linkName(rel); }
  Result<std::string> canonical(const std::string& rel) override { return fs_.canonical(rel); }
  std::vector<std::string> list(const std::string& rel) override { return fs_.list(rel); }
  bool exists(const std::string& rel) override { return fs_.exists(rel); }

 private:
  offload::FsSysfsIo fs_;
  Log& log_;
};

}  // namespace nicoffload::test
