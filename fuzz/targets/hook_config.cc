// The hook's config (/etc/nicoffload/hook.json), read on every hook run.
#include <unistd.h>

#include "fuzz_support.h"
#include "nicoffload/hooks/hook_config.h"

using namespace nicoffload;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = fuzz::scratchDir() + "/hook.json";
  fuzz::writeFile(path, fuzz::asText(data, size));
  // Entry: the file is the only way in today (parseHookConfigText at merge).
  auto config = hooks::loadHookConfig(path);
  if (!config) (void)config.error().describe();
  return 0;
}
