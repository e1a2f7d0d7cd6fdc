// Unix socket servers for the hook's tests, each on its own temp socket:
// a listener whose queue is full and a raw server that answers each request
// line with scripted bytes (a daemon of another shape).
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace nicoffload::hooks::testing {

inline std::string tempSocket() {
  char tmpl[] = "/tmp/nfo-hooksock-XXXXXX";
  const char* dir = ::mkdtemp(tmpl);
  return std::string(dir ? dir : "/tmp") + "/ctl.sock";
}

inline sockaddr_un addressOf(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  return addr;
}

inline int listenOn(const std::string& path, int backlog) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un addr = addressOf(path);
  EXPECT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0)
      << std::strerror(errno);
  EXPECT_EQ(::listen(fd, backlog), 0) << std::strerror(errno);
  return fd;
}

// A listener that never accepts, its queue filled up (listen(fd, 0), then
// connections until one would block): a daemon too busy to accept, the way
// nicoffloadd is when many VMs start at once on a slow host.
class FullListener {
 public:
  FullListener() : path_(tempSocket()), fd_(listenOn(path_, 0)) {
    const sockaddr_un addr = addressOf(path_);
    for (int i = 0; i < 1000 && !full_; ++i) {
      const int c = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (::connect(c, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
        queued_.push_back(c);
        continue;
      }
      const int err = errno;
      ::close(c);
      EXPECT_EQ(err, EAGAIN) << std::strerror(err);
      full_ = true;
    }
    EXPECT_TRUE(full_) << "the listen queue never filled";
  }
  ~FullListener() {
    for (int c : queued_) ::close(c);
    ::close(fd_);
    std::filesystem::remove_all(std::filesystem::path(path_).parent_path());
  }
  FullListener(const FullListener&) = delete;
  FullListener& operator=(const FullListener&) = delete;

  const std::string& path() const { return path_; }
  // Makes room for one connection (a daemon catching up).
  int acceptOne() { return ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC); }

 private:
  std::string path_;
  int fd_;
  std::vector<int> queued_;
  bool full_ = false;
};

// Accepts connections one after the other and answers the i-th request line
// of each with replies[i] (the last one again once they run out), written as
// they are, followed by '\n'. Stops when destroyed.
class RawServer {
 public:
  explicit RawServer(std::vector<std::string> replies)
      : path_(tempSocket()), fd_(listenOn(path_, 8)) {
    thread_ = std::thread([this, replies = std::move(replies)] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 20) != 1) continue;
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        serve(c, replies);
        ::close(c);
      }
    });
  }
  ~RawServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
    std::filesystem::remove_all(std::filesystem::path(path_).parent_path());
  }
  RawServer(const RawServer&) = delete;
  RawServer& operator=(const RawServer&) = delete;

  const std::string& path() const { return path_; }

 private:
  void serve(int c, const std::vector<std::string>& replies) {
    std::size_t answered = 0;
    char buf[4096];
    while (!stop_) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 20) != 1) continue;
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      const auto lines = static_cast<std::size_t>(std::count(buf, buf + n, '\n'));
      std::string out;
      for (std::size_t i = 0; i < lines && !replies.empty(); ++i, ++answered)
        out += replies[std::min(answered, replies.size() - 1)] + "\n";
      if (::send(c, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size()))
        return;
    }
  }

  std::string path_;
  int fd_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

}  // namespace nicoffload::hooks::testing
