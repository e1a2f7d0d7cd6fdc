// The ports file ({"ports": [...], "remotes": [...]}), checked as a whole
// intent against the example host config, as `nicoffloadctl plan` does.
#include "fuzz_support.h"
#include "nicoffload/model/json_input.h"
#include "nicoffload/model/parse.h"

using namespace nicoffload;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const model::HostConfig host = [] {
    auto h = model::loadHostConfig(fuzz::sourcePath("examples/host.json"));
    if (!h) std::abort();
    return *h;
  }();
  // Entry: what readJsonFile() does with the file's text.
  auto doc = model::parseJsonInput(fuzz::asText(data, size), "ports.json");
  if (!doc) return 0;
  model::Intent intent;
  intent.host = host;
  auto parsed = model::parsePortsFile(*doc, intent);
  if (!parsed) {
    (void)parsed.error().describe();
    return 0;
  }
  auto valid = model::validateIntent(intent);
  if (!valid) (void)valid.error().describe();
  // The state file round trip: what the daemon writes it must read back.
  for (const auto& p : intent.ports) (void)model::toJson(p).dump();
  for (const auto& r : intent.remotes) (void)model::toJson(r).dump();
  return 0;
}
