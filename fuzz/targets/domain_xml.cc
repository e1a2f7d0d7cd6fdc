// The domain XML libvirt writes to the hook's stdin, with nicoffload's
// <metadata>: parsed, each port serialised as the hook sends it to the
// daemon, then rewritten as `migrate`/`restore` do.
#include <nlohmann/json.hpp>

#include "fuzz_support.h"
#include "nicoffload/hooks/domain.h"
#include "nicoffload/model/parse.h"

using namespace nicoffload;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto xml = fuzz::asText(data, size);
  // Cleanup (stopped, release) knows the domain by its identity only.
  if (auto id = hooks::parseDomainIdentity(xml)) (void)nlohmann::json{{"op", "port.list"}, {"vm", id->uuid}}.dump();
  auto domain = hooks::parseDomainXml(xml);
  if (!domain) {
    (void)domain.error().describe();
    return 0;
  }
  // What the hook sends for each port (hook.cc, socket_client.cc).
  for (const auto& port : domain->ports) (void)nlohmann::json{{"op", "port.add"}, {"port", model::toJson(port)}}.dump();
  (void)hooks::metadataXmlFor(domain->ports);
  std::vector<hooks::InterfaceRewrite> rewrites;
  for (const auto& i : domain->interfaces)
    rewrites.push_back({i.mac, "nforep0", "/dev/vhost-vdpa-0", "/run/nicoffload/vhost/nfo0.sock"});
  (void)hooks::rewriteInterfaces(xml, rewrites);
  return 0;
}
