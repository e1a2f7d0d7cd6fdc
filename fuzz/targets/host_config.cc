// Host config (/etc/nicoffload/host.json): the daemon's and the CLI's parser.
#include "fuzz_support.h"
#include "nicoffload/model/json_input.h"
#include "nicoffload/model/parse.h"

using namespace nicoffload;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Entry: what loadHostConfig() does with the file's text.
  auto doc = model::parseJsonInput(fuzz::asText(data, size), "host.json");
  if (!doc) return 0;
  auto host = model::parseHostConfig(*doc);
  if (host) (void)model::resolveProfilePath(host->hw_profile, "/nonexistent");
  else (void)host.error().describe();
  return 0;
}
