// The hook's config (/etc/nicoffload/hook.json), read on every hook run.

#include "fuzz_support.h"
#include "nicoffload/hooks/hook_config.h"

using namespace nicoffload;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Entry: the text loadHookConfig() reads from the file.
  auto config = hooks::parseHookConfigText(fuzz::asText(data, size));
  if (!config) (void)config.error().describe();
  return 0;
}
