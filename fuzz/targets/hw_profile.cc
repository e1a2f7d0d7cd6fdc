// A hardware profile (hw-profiles/*.json, or the file host.json names).
#include "fuzz_support.h"
#include "nicoffload/model/json_input.h"
#include "nicoffload/model/parse.h"

using namespace nicoffload;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Entry: what loadHwProfile() does with the file's text ("" skips the
  // file-stem check of the "name" field).
  auto doc = model::parseJsonInput(fuzz::asText(data, size), "profile.json");
  if (!doc) return 0;
  auto profile = model::parseHwProfile(*doc, "");
  if (!profile) (void)profile.error().describe();
  return 0;
}
