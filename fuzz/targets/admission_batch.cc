// A whole admission batch: each input line is one request (as the socket
// delivers them), all answered by one Controller::handle() call on a
// daemon over simulated backends (daemon_fixture.h); every reply is then serialised as the
// server does before it writes it.
#include <vector>

#include "daemon_fixture.h"
#include "nicoffload/model/json_input.h"
#include "nicoffload/daemon/control.h"

using namespace nicoffload;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<daemon::control::Request> batch;
  std::string_view text = fuzz::asText(data, size);
  while (!text.empty()) {
    const auto nl = text.find('\n');
    const auto line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    // Entry: the server's request parsing (control.cc readFrom) admits
    // objects with a string "op" only.
    auto body = model::parseJsonInput(line, "request");
    if (!body || !body->is_object() || !body->contains("op") || !(*body)["op"].is_string()) continue;
    batch.push_back({batch.size() + 1, std::move(body).value(), 0});
  }
  if (batch.empty()) return 0;
  auto& daemon = fuzz::daemonForNextInput();
  for (const auto& reply : daemon.handle(batch)) (void)reply.dump();
  daemon.tick();
  return 0;
}
