// A hardware profile (hw-profiles/*.json, or the file host.json names).
#include "fuzz_support.h"
#include "nicoffload/model/parse.h"

using namespace nicoffload;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Entry: the text loadHwProfile() reads from the file ("" skips the
  // file-stem check of the "name" field).
  auto profile = model::parseHwProfileText(fuzz::asText(data, size), "");
  if (!profile) (void)profile.error().describe();
  return 0;
}
