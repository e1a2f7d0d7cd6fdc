// The daemon's request loop as nicoffloadd runs it: the input is what one
// client writes to the control socket (then it half-closes); control::Server
// splits and parses the lines, refuses the bad ones, and the well-formed
// requests go to a Controller on simulated backends, whose replies the
// server serialises and writes back.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "daemon_fixture.h"
#include "nicoffload/daemon/control.h"

using namespace nicoffload;

namespace {

daemon::control::Server& server() {
  static std::unique_ptr<daemon::control::Server> srv = [] {
    daemon::control::Server::Options o;
    o.socket_path = fuzz::scratchDir() + "/control.sock";
    o.allowed_uids = {::getuid()};
    auto s = daemon::control::Server::open(o);
    if (!s) std::abort();
    return std::move(s).value();
  }();
  return *srv;
}

int connectClient(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) std::abort();
  return fd;
}

void drain(int fd) {
  char buf[65536];
  while (::recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& srv = server();
  auto& daemon = fuzz::daemonForNextInput();
  const int fd = connectClient(srv.path());
  std::size_t sent = 0;
  bool half_closed = false;
  int idle = 0;
  // Until everything is written and the server has nothing more to do.
  while (idle < 3) {
    if (sent < size) {
      const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) sent += static_cast<std::size_t>(n);
    } else if (!half_closed) {
      ::shutdown(fd, SHUT_WR);
      half_closed = true;
    }
    // Entry: the server's line handling (Server::readFrom / sendNow).
    const auto requests = srv.poll(0);
    if (!requests.empty()) {
      const auto replies = daemon.handle(requests);
      for (std::size_t i = 0; i < requests.size(); ++i) srv.reply(requests[i].connection, replies[i]);
    }
    drain(fd);
    idle = (half_closed && requests.empty()) ? idle + 1 : 0;
  }
  ::close(fd);
  (void)srv.poll(0);  // the server notices the close and drops the connection
  return 0;
}
