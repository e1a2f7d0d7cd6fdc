// The answers of QUERY_HCA_CAP over devx (nicoffload-hwtest --probe): bytes
// the device's firmware writes, parsed and checked against a profile.
#include <algorithm>

#include "fuzz_support.h"
#include "nicoffload/devx/caps.h"
#include "nicoffload/model/parse.h"

using namespace nicoffload;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto profile =
      model::loadHwProfile(fuzz::sourcePath("hw-profiles/connectx-6dx.json"));
  const std::span<const std::uint8_t> out(data, size);
  devx::DeviceCaps caps;
  // The firmware version string ibv_query_device gives: the input's first bytes.
  caps.fw_ver = std::string(fuzz::asText(data, std::min<std::size_t>(size, 24)));
  auto keep = [&](auto parsed, auto& slot) {
    if (parsed)
      slot = std::move(parsed).value();
    else
      caps.errors.push_back(parsed.error().describe());
  };
  keep(devx::parseGeneralCaps(out), caps.general);
  keep(devx::parseFlowTableCaps(out), caps.fdb_flow_table);
  keep(devx::parseEswitchCaps(out), caps.eswitch);
  keep(devx::parseVirtioCaps(out), caps.virtio);
  if (profile)
    for (const auto& f : devx::checkProfile(caps, *profile)) (void)f.message.size();
  (void)devx::firmwareAtLeast(caps.fw_ver, caps.fw_ver);
  return 0;
}
