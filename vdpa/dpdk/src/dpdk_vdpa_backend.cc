#include "nicoffload/vdpa/dpdk_vdpa_backend.h"

#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_vdpa.h>
#include <rte_vhost.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "nicoffload/offload/sysfs_io.h"
#include "nicoffload/vdpa/domain_xml.h"

namespace nicoffload::vdpa {

namespace fs = std::filesystem;

namespace vhost {

Status registerSocket(const std::string& path, std::uint64_t flags) {
  if (rte_vhost_driver_register(path.c_str(), flags) != 0)
    return makeError(ErrorCode::kBusy, path, "",
                     "rte_vhost_driver_register refused vhost-user socket " + path +
                         " (registered already, or its directory is not writable)");
  return Status::success();
}

Status attachVdpaDevice(const std::string& path, const std::string& vdpa_device) {
  rte_vdpa_device* dev = rte_vdpa_find_device_by_name(vdpa_device.c_str());
  if (!dev)
    return makeError(ErrorCode::kNotFound, path, vdpa_device,
                     "DPDK has no vDPA device '" + vdpa_device +
                         "': the VF must be probed by the mlx5 vDPA driver (EAL -a " + vdpa_device +
                         ",class=vdpa) on a NIC with vDPA (ConnectX-6 Dx or newer)");
  if (rte_vhost_driver_attach_vdpa_device(path.c_str(), dev) != 0)
    return makeError(ErrorCode::kIo, path, vdpa_device,
                     "rte_vhost_driver_attach_vdpa_device refused to attach vDPA device '" +
                         vdpa_device + "' to vhost-user socket " + path +
                         " (socket not registered?)");
  return Status::success();
}

Status probeVdpaDevice(const std::string& vf_pci) {
  if (rte_vdpa_find_device_by_name(vf_pci.c_str())) return Status::success();
  const std::string devargs = vf_pci + ",class=vdpa";
  const int rc = rte_dev_probe(devargs.c_str());
  if (rc == 0 && rte_vdpa_find_device_by_name(vf_pci.c_str())) return Status::success();
  return makeError(ErrorCode::kNotFound, vf_pci, devargs,
                   "DPDK could not probe VF " + vf_pci + " as a vDPA device (rte_dev_probe(\"" +
                       devargs + "\"): " + (rc == 0 ? "probed, but no vDPA device of that name"
                                                   : std::string(rte_strerror(-rc))) +
                       "): the VF must be an mlx5 VF with vDPA (ConnectX-6 Dx or newer) bound to "
                       "a DPDK-usable driver, and the EAL must see PCI devices (no --no-pci)");
}

Status start(const std::string& path) {
  if (rte_vhost_driver_start(path.c_str()) != 0)
    return makeError(ErrorCode::kIo, path, "",
                     "rte_vhost_driver_start failed for vhost-user socket " + path +
                         " (cannot bind/listen there?)");
  return Status::success();
}

Status unregisterSocket(const std::string& path) {
  (void)rte_vhost_driver_unregister(path.c_str());  // -1: not registered, which is fine
  std::error_code ec;
  if (!fs::is_socket(fs::symlink_status(path, ec))) return Status::success();  // none (left)
  if (!fs::remove(path, ec) && ec)
    return makeError(ErrorCode::kIo, path, "",
                     "cannot remove vhost-user socket " + path + ": " + ec.message());
  return Status::success();
}

}  // namespace vhost

DpdkVdpaBackend::DpdkVdpaBackend(DpdkVdpaOptions options) : opt_(std::move(options)) {}

DpdkVdpaBackend::~DpdkVdpaBackend() {
  std::lock_guard lock(mu_);
  for (const auto& [name, dev] : devices_) (void)vhost::unregisterSocket(dev.socket_path);
}

std::string DpdkVdpaBackend::socketPath(const std::string& name) const {
  return opt_.runtime_dir + "/" + name + ".sock";
}

Result<VdpaDevice> DpdkVdpaBackend::create(const VdpaDeviceSpec& spec) {
  const std::string field = spec.port.vm.empty() ? spec.name : spec.port.str();
  if (opt_.profile)
    if (auto s = checkSupport(*opt_.profile, model::VdpaKind::kDpdk, field); !s) return s.error();
  if (spec.kind != model::VdpaKind::kNone && spec.kind != model::VdpaKind::kDpdk)
    return makeError(ErrorCode::kInvalidValue, field + ".vdpa", model::toString(spec.kind),
                     "vDPA device " + spec.name + " is asked as '" + model::toString(spec.kind) +
                         "', but this backend makes '" + model::toString(model::VdpaKind::kDpdk) +
                         "' devices");
  if (spec.name.empty() || spec.name.find('/') != std::string::npos)
    return makeError(ErrorCode::kInvalidValue, field, spec.name,
                     "bad vDPA device name '" + spec.name + "'");
  if (spec.max_vqp == 0)
    return makeError(ErrorCode::kInvalidValue, field + ".queues", "0",
                     "vDPA device " + spec.name + " needs at least one virtqueue pair");
  const std::string path = socketPath(spec.name);
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    return makeError(
        ErrorCode::kInvalidValue, "runtime_dir", opt_.runtime_dir,
        "vhost-user socket path " + path + " is longer than a unix socket path may be");
  offload::FsSysfsIo io(opt_.sysfs_root);
  auto vf_pci = offload::sysfs::vfPci(io, opt_.pf_pci, spec.vf);
  if (!vf_pci) {
    Error e = vf_pci.error();
    e.message = "vDPA device " + spec.name + ": " + e.message;
    return e;
  }

  std::lock_guard lock(mu_);
  if (const auto it = devices_.find(spec.name); it != devices_.end()) {
    const VdpaDevice& d = it->second;
    if (d.vf == spec.vf && d.mac == spec.mac && d.mtu == spec.mtu && d.max_vqp == spec.max_vqp)
      return d;
    if (auto s = destroyLocked(spec.name); !s) return s.error();
  }
  for (const auto& [name, d] : devices_)
    if (d.vf_pci == *vf_pci)
      return makeError(ErrorCode::kBusy, field, name,
                       "VF " + std::to_string(spec.vf) + " (" + *vf_pci + ") of PF " + opt_.pf_pci +
                           " already backs vDPA device " + name + "; cannot create " + spec.name);
  std::error_code ec;
  fs::create_directories(opt_.runtime_dir, ec);
  if (ec)
    return makeError(
        ErrorCode::kIo, "runtime_dir", opt_.runtime_dir,
        "cannot create the vhost-user runtime directory " + opt_.runtime_dir + ": " + ec.message());
  // The VF's DPDK vDPA device first (probed once, then kept by the EAL):
  // nothing is registered for a VF that has none.
  if (auto s = vhost::probeVdpaDevice(*vf_pci); !s) {
    Error e = s.error();
    e.field = field;
    e.message = "vDPA device " + spec.name + " on VF " + std::to_string(spec.vf) + " of PF " +
                opt_.pf_pci + ": " + e.message;
    return e;
  }
  if (auto s = vhost::unregisterSocket(path); !s)
    return s.error();  // a stale socket of a crashed run
  if (auto s = vhost::registerSocket(path, opt_.vhost_flags); !s) return s.error();
  auto undo = [&](Error e) -> Error {
    (void)vhost::unregisterSocket(path);
    e.message = "vDPA device " + spec.name + " on VF " + std::to_string(spec.vf) + " of PF " +
                opt_.pf_pci + ": " + e.message + "; the socket was unregistered again";
    return e;
  };
  if (auto s = vhost::attachVdpaDevice(path, *vf_pci); !s) return undo(s.error());
  if (auto s = vhost::start(path); !s) return undo(s.error());
  VdpaDevice d;
  d.name = spec.name;
  d.kind = model::VdpaKind::kDpdk;
  d.vf = spec.vf;
  d.vf_pci = *vf_pci;
  d.socket_path = path;
  d.mac = spec.mac;
  d.mtu = spec.mtu;
  d.max_vqp = spec.max_vqp;
  devices_[spec.name] = d;
  return d;
}

Status DpdkVdpaBackend::destroyLocked(const std::string& name) {
  const auto it = devices_.find(name);
  const std::string path = it != devices_.end() ? it->second.socket_path : socketPath(name);
  if (it != devices_.end()) (void)rte_vhost_driver_detach_vdpa_device(path.c_str());
  if (auto s = vhost::unregisterSocket(path); !s) return s;
  if (it != devices_.end()) devices_.erase(it);
  return Status::success();
}

Status DpdkVdpaBackend::destroy(const std::string& name) {
  std::lock_guard lock(mu_);
  return destroyLocked(name);
}

Status DpdkVdpaBackend::setMac(const std::string& name, const MacAddr& mac) {
  std::lock_guard lock(mu_);
  const auto it = devices_.find(name);
  if (it == devices_.end())
    return makeError(ErrorCode::kNotFound, name, "", "no vhost-user vDPA device " + name);
  it->second.mac = mac;
  return Status::success();
}

Result<std::vector<VdpaDevice>> DpdkVdpaBackend::list() {
  std::lock_guard lock(mu_);
  std::vector<VdpaDevice> out;
  for (const auto& [name, d] : devices_) out.push_back(d);
  return out;
}

Result<std::string> DpdkVdpaBackend::interfaceXml(const VdpaDevice& device,
                                                  const model::Port& port) const {
  if (device.socket_path.empty())
    return makeError(ErrorCode::kInvalidValue, port.key.str(), device.name,
                     "vDPA device " + device.name + " has no vhost-user socket");
  return vhostUserInterfaceXml(device.socket_path, port);
}

}  // namespace nicoffload::vdpa
