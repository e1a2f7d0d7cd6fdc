// The domain XML libvirt writes to the hook's stdin, with nicoffload's
// <metadata>: parsed, then rewritten as `migrate`/`restore` do.
#include "fuzz_support.h"
#include "nicoffload/hooks/domain.h"

using namespace nicoffload;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto xml = fuzz::asText(data, size);
  (void)hooks::parseDomainIdentity(xml);
  auto domain = hooks::parseDomainXml(xml);
  if (!domain) {
    (void)domain.error().describe();
    return 0;
  }
  (void)hooks::metadataXmlFor(domain->ports);
  std::vector<hooks::InterfaceRewrite> rewrites;
  for (const auto& i : domain->interfaces)
    rewrites.push_back({i.mac, "nforep0", "/dev/vhost-vdpa-0", "/run/nicoffload/vhost/nfo0.sock"});
  (void)hooks::rewriteInterfaces(xml, rewrites);
  return 0;
}
