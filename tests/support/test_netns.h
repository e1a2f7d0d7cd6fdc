// A network namespace of a test's own: made with `ip netns add`, set up with
// fixed `ip` commands, deleted with the object. For tests that need a kernel
// of their own (the software path, the route watcher); root only.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <initializer_list>
#include <string>

namespace nicoffload::test {

class TestNetns {
 public:
  // `prefix` + pid + a counter names it; each of `setup` is run as
  // `ip -n <name> <args>`, in order; ok() says whether all of it worked.
  TestNetns(const std::string& prefix, std::initializer_list<const char*> setup) {
    static int counter = 0;
    name_ = prefix + std::to_string(::getpid()) + "-" + std::to_string(++counter);
    ok_ = sh("ip netns add " + name_);
    for (const char* args : setup) ok_ = ok_ && run(args);
  }
  ~TestNetns() { sh("ip netns del " + name_); }
  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;

  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }
  std::string ip(const std::string& args) const { return "ip -n " + name_ + " " + args; }
  bool run(const std::string& args) const { return sh(ip(args)); }
  // The tests' own fixed commands (no input of anyone's), output discarded.
  static bool sh(const std::string& cmd) {
    return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
  }

 private:
  std::string name_;
  bool ok_ = false;
};

}  // namespace nicoffload::test
