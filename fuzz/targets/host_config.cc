// Host config (/etc/nicoffload/host.json): the daemon's and the CLI's parser.
#include "fuzz_support.h"
#include "nicoffload/model/parse.h"

using namespace nicoffload;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Entry: the text loadHostConfig() reads from the file.
  auto host = model::parseHostConfigText(fuzz::asText(data, size));
  if (host) (void)model::resolveProfilePath(host->hw_profile, "/nonexistent");
  else (void)host.error().describe();
  return 0;
}
