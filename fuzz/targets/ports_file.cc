// The ports file ({"ports": [...], "remotes": [...]}), checked as a whole
// intent against the example host config, as `nicoffloadctl plan` does.
#include "fuzz_support.h"
#include <nlohmann/json.hpp>

#include "nicoffload/model/parse.h"

using namespace nicoffload;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const model::HostConfig host = [] {
    auto h = model::loadHostConfig(fuzz::sourcePath("examples/host.json"));
    if (!h) std::abort();
    return *h;
  }();
  // Entry: the text `nicoffloadctl plan --ports` reads from the file.
  model::Intent intent;
  intent.host = host;
  auto parsed = model::parsePortsFileText(fuzz::asText(data, size), intent);
  if (!parsed) {
    (void)parsed.error().describe();
    return 0;
  }
  // The daemon's path too: each port and remote admitted one at a time.
  static const std::string host_text = fuzz::readFile(fuzz::sourcePath("examples/host.json"));
  (void)model::checkAdmissionText(host_text, fuzz::asText(data, size));
  auto valid = model::validateIntent(intent);
  if (!valid) (void)valid.error().describe();
  // The state file round trip: what the daemon writes it must read back.
  for (const auto& p : intent.ports) (void)model::toJson(p).dump();
  for (const auto& r : intent.remotes) (void)model::toJson(r).dump();
  return 0;
}
