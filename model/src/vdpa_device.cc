#include "nicoffload/model/vdpa_device.h"

#include <cstdio>

#include "nicoffload/common/stable_hash.h"

namespace nicoffload::vdpa {

std::string poolDeviceName(std::uint16_t vf) { return "nfovf" + std::to_string(vf); }

std::string deviceName(const model::PortKey& port) {
  const auto h = StableHasher().str("vdpa").str(port.vm).u16(port.nic).finish();
  char buf[16];
  std::snprintf(buf, sizeof buf, "nfo%012llx",
                static_cast<unsigned long long>(h & 0xFFFFFFFFFFFFULL));
  return buf;
}

model::VdpaKind effectiveKind(const model::HostConfig& host, const model::Port& port) {
  return port.vdpa ? *port.vdpa : host.vdpa_backend;
}

Status checkSupport(const model::HwProfile& profile, model::VdpaKind kind, const std::string& field) {
  using model::VdpaKind;
  bool ok = true;
  switch (kind) {
    case VdpaKind::kNone: return Status::success();
    case VdpaKind::kKernel: ok = profile.vdpa_kernel; break;
    case VdpaKind::kDpdk: ok = profile.vdpa_dpdk; break;
    case VdpaKind::kSim: ok = profile.vdpa_kernel || profile.vdpa_dpdk; break;
  }
  if (ok) return Status::success();
  return makeError(ErrorCode::kUnsupported, field, model::toString(kind),
                   "vDPA '" + std::string(model::toString(kind)) + "' requested, but profile " +
                       profile.name + " (" + profile.model + ") has no " +
                       (kind == VdpaKind::kSim ? std::string("vDPA")
                                               : std::string(model::toString(kind)) + " vDPA") +
                       " (" + profile.vdpa_source + "); use vdpa 'none' (VF passthrough) or another NIC");
}

}  // namespace nicoffload::vdpa
