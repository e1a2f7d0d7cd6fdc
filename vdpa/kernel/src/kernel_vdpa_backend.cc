#include "nicoffload/vdpa/kernel_vdpa_backend.h"

#include <algorithm>
#include <filesystem>
#include <thread>

#include "nicoffload/vdpa/domain_xml.h"

namespace nicoffload::vdpa {

namespace {

namespace sysfs = offload::sysfs;
constexpr const char* kVhostVdpa = "vhost_vdpa";

Error withContext(Error e, const std::string& prefix) {
  e.message = prefix + e.message;
  return e;
}

bool isVhostNode(const std::string& entry) {
  constexpr std::string_view prefix = "vhost-vdpa-";
  if (entry.size() <= prefix.size() || entry.compare(0, prefix.size(), prefix) != 0) return false;
  return std::all_of(entry.begin() + static_cast<std::ptrdiff_t>(prefix.size()), entry.end(),
                     [](unsigned char c) { return std::isdigit(c); });
}

bool sameConfig(const VdpaDevInfo& d, const VdpaDeviceSpec& spec) {
  // What the kernel does not report (max_vqp before feature negotiation) is
  // not held against the device.
  return (!d.mac || *d.mac == spec.mac) && (!d.mtu || *d.mtu == spec.mtu) &&
         (!d.max_vqp || *d.max_vqp == spec.max_vqp);
}

}  // namespace

KernelVdpaBackend::KernelVdpaBackend(KernelVdpaOptions options,
                                     std::unique_ptr<VdpaNetlink> netlink,
                                     std::unique_ptr<offload::SysfsIo> sysfs)
    : opt_(std::move(options)), nl_(std::move(netlink)), io_(std::move(sysfs)) {}

Status KernelVdpaBackend::bindVhostVdpa(const std::string& name) {
  const std::string dev = sysfs::vdpaDevice(name);
  auto current = io_->linkName(dev + "/driver");
  const std::string drv = current ? *current : std::string();
  if (drv == kVhostVdpa) return Status::success();
  if (auto s = io_->write(dev + "/driver_override", kVhostVdpa); !s)
    return withContext(s.error(), "vDPA device " + name + ": setting driver_override failed: ");
  if (!drv.empty())
    if (auto s = io_->write(sysfs::vdpaDriver(drv) + "/unbind", name); !s)
      return withContext(s.error(),
                         "vDPA device " + name + ": unbinding it from " + drv + " failed: ");
  if (!io_->exists(sysfs::vdpaDriver(kVhostVdpa)))
    return makeError(ErrorCode::kUnsupported, name, kVhostVdpa,
                     "vDPA device " + name + ": the vhost_vdpa driver is not loaded (no " +
                         io_->root() + "/" + sysfs::vdpaDriver(kVhostVdpa) +
                         "; modprobe vhost_vdpa)");
  if (auto s = io_->write(sysfs::vdpaDriver(kVhostVdpa) + "/bind", name); !s)
    return withContext(s.error(), "vDPA device " + name + ": binding it to vhost_vdpa failed: ");
  return Status::success();
}

Result<std::string> KernelVdpaBackend::vhostPath(const std::string& name) {
  const std::string dev = sysfs::vdpaDevice(name);
  const auto deadline = std::chrono::steady_clock::now() + opt_.node_wait;
  for (;;) {
    std::vector<std::string> nodes;
    for (const auto& e : io_->list(dev))
      if (isVhostNode(e)) nodes.push_back(e);
    std::error_code ec;
    const bool one = nodes.size() == 1;
    const std::string path = one ? opt_.dev_dir + "/" + nodes.front() : std::string();
    if (one && std::filesystem::exists(path, ec)) return path;
    if (std::chrono::steady_clock::now() >= deadline) {
      if (nodes.size() > 1)
        return makeError(
            ErrorCode::kInternal, name, "",
            "vDPA device " + name + " has several vhost-vdpa nodes in " + io_->root() + "/" + dev);
      if (!one)
        return makeError(ErrorCode::kNotFound, name, "",
                         "vDPA device " + name + " is bound to vhost_vdpa but " + io_->root() +
                             "/" + dev + " has no vhost-vdpa-N entry");
      return makeError(ErrorCode::kNotFound, name, path,
                       "vDPA device " + name + " is " + nodes.front() + " in sysfs, but " + path +
                           " does not exist (udev did not create it?)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<VdpaDevice> KernelVdpaBackend::create(const VdpaDeviceSpec& spec) {
  const std::string field = spec.port.vm.empty() ? spec.name : spec.port.str();
  if (spec.name.empty())
    return makeError(ErrorCode::kInvalidValue, field, "", "a vDPA device needs a name");
  if (opt_.profile)
    if (auto s = checkSupport(*opt_.profile, opt_.kind, field); !s) return s.error();
  if (spec.kind != model::VdpaKind::kNone && spec.kind != opt_.kind)
    return makeError(ErrorCode::kInvalidValue, field + ".vdpa", model::toString(spec.kind),
                     "vDPA device " + spec.name + " is asked as '" + model::toString(spec.kind) +
                         "', but this backend makes '" + model::toString(opt_.kind) + "' devices");
  if (spec.mtu < 68)
    return makeError(ErrorCode::kInvalidValue, field + ".mtu", std::to_string(spec.mtu),
                     "vDPA device " + spec.name + ": MTU " + std::to_string(spec.mtu) +
                         " is below 68, the virtio-net minimum");
  if (spec.max_vqp == 0)
    return makeError(ErrorCode::kInvalidValue, field + ".queues", "0",
                     "vDPA device " + spec.name + " needs at least one virtqueue pair");
  auto vf_pci = sysfs::vfPci(*io_, opt_.pf_pci, spec.vf);
  if (!vf_pci) return withContext(vf_pci.error(), "vDPA device " + spec.name + ": ");
  const std::string where =
      "VF " + std::to_string(spec.vf) + " (" + *vf_pci + ") of PF " + opt_.pf_pci;

  auto devs = nl_->devs();
  if (!devs) return devs.error();
  for (const auto& d : *devs) {
    if (d.name == spec.name) {
      if (d.mgmt.dev == *vf_pci && sameConfig(d, spec)) {
        // Ours already: finish what an interrupted create left undone.
        if (auto s = bindVhostVdpa(spec.name); !s) return s.error();
        auto path = vhostPath(spec.name);
        if (!path) return path.error();
        VdpaDevice out = fromInfo(d, sysfs::vfPcis(*io_, opt_.pf_pci));
        out.vhost_vdpa_path = *path;
        out.mac = spec.mac;
        out.mtu = spec.mtu;
        out.max_vqp = spec.max_vqp;
        return out;
      }
      // Same port, other VF or other config: replace it.
      if (auto s = nl_->devDel(d.name); !s && s.error().code != ErrorCode::kNotFound)
        return withContext(s.error(), "replacing vDPA device " + d.name + ": ");
    } else if (d.mgmt.dev == *vf_pci) {
      return makeError(
          ErrorCode::kBusy, field, d.name,
          where + " already backs vDPA device " + d.name + "; cannot create " + spec.name);
    }
  }

  auto mgmt = nl_->mgmtdevs();
  if (!mgmt) return mgmt.error();
  const VdpaMgmtDev wanted{"pci", *vf_pci};
  if (std::find(mgmt->begin(), mgmt->end(), wanted) == mgmt->end())
    return makeError(ErrorCode::kNotFound, field, "pci/" + *vf_pci,
                     "no vDPA management device pci/" + *vf_pci + " for " + where +
                         ": load mlx5_vdpa, and bind the VF to mlx5_core (in switchdev mode)");

  // A pool device is made without a MAC (the zero MAC): the port that
  // claims it sets one.
  VdpaDevNewRequest req{spec.name, wanted,
                        spec.mac.isZero() ? std::nullopt : std::optional<MacAddr>(spec.mac),
                        spec.mtu, spec.max_vqp};
  if (auto s = nl_->devNew(req); !s)
    return withContext(s.error(), "creating vDPA device " + spec.name + " on " + where + ": ");
  auto undo = [&](Error e) -> Error {
    (void)nl_->devDel(spec.name);
    e.message += "; the vDPA device was deleted again";
    return e;
  };
  if (auto s = bindVhostVdpa(spec.name); !s) return undo(s.error());
  auto path = vhostPath(spec.name);
  if (!path) return undo(path.error());
  VdpaDevice out;
  out.name = spec.name;
  out.kind = opt_.kind;
  out.vf = spec.vf;
  out.vf_pci = *vf_pci;
  out.vhost_vdpa_path = *path;
  out.mac = spec.mac;
  out.mtu = spec.mtu;
  out.max_vqp = spec.max_vqp;
  return out;
}

Status KernelVdpaBackend::destroy(const std::string& name) {
  auto s = nl_->devDel(name);
  if (!s && s.error().code == ErrorCode::kNotFound) return Status::success();  // already gone
  return s;
}

Status KernelVdpaBackend::setMac(const std::string& name, const MacAddr& mac) {
  return nl_->devSetMac(name, mac);
}

VdpaDevice KernelVdpaBackend::fromInfo(const VdpaDevInfo& info,
                                       const std::vector<std::string>& pcis) {
  VdpaDevice d;
  d.name = info.name;
  d.kind = opt_.kind;
  d.vf_pci = info.mgmt.dev;
  if (const auto it = std::find(pcis.begin(), pcis.end(), info.mgmt.dev); it != pcis.end())
    d.vf = static_cast<std::uint16_t>(it - pcis.begin());
  for (const auto& e : io_->list(sysfs::vdpaDevice(info.name)))
    if (isVhostNode(e)) d.vhost_vdpa_path = opt_.dev_dir + "/" + e;
  d.mac = info.mac;
  d.mtu = info.mtu;
  d.max_vqp = info.max_vqp;
  return d;
}

Result<std::vector<VdpaDevice>> KernelVdpaBackend::list() {
  auto devs = nl_->devs();
  if (!devs) return devs.error();
  // The PF's virtfn links are read once for all devices (issue 12: they
  // were read again per device, N x N readlinks at restart).
  const auto pcis = sysfs::vfPcis(*io_, opt_.pf_pci);
  std::vector<VdpaDevice> out;
  out.reserve(devs->size());
  for (const auto& d : *devs) out.push_back(fromInfo(d, pcis));
  return out;
}

Result<std::string> KernelVdpaBackend::interfaceXml(const VdpaDevice& device,
                                                    const model::Port& port) const {
  if (device.vhost_vdpa_path.empty())
    return makeError(
        ErrorCode::kInvalidValue, port.key.str(), device.name,
        "vDPA device " + device.name + " has no /dev/vhost-vdpa-N path (not bound to vhost_vdpa)");
  return vdpaInterfaceXml(device.vhost_vdpa_path, port);
}

std::unique_ptr<VdpaBackend> makeKernelVdpaBackend(KernelVdpaOptions options,
                                                   const std::string& sysfs_root) {
  return std::make_unique<KernelVdpaBackend>(std::move(options), makeGenlVdpaNetlink(),
                                             std::make_unique<offload::FsSysfsIo>(sysfs_root));
}

}  // namespace nicoffload::vdpa
