#include "nicoffload/vdpa/sim_vdpa_backend.h"

#include <cerrno>
#include <cstring>

namespace nicoffload::vdpa {

namespace {

class SimVdpaNetlink : public VdpaNetlink {
 public:
  explicit SimVdpaNetlink(offload::SimPf nic) : nic_(std::move(nic)) {}

  Result<std::vector<VdpaMgmtDev>> mgmtdevs() override {
    std::vector<VdpaMgmtDev> out;
    for (const auto& pci : nic_.vdpaMgmtDevs()) out.push_back({"pci", pci});
    return out;
  }

  Status devNew(const VdpaDevNewRequest& r) override {
    if (r.mgmt.bus != "pci")
      return makeError(ErrorCode::kNotFound, r.name, r.mgmt.bus,
                       "vdpa dev add name " + r.name + " mgmtdev " + r.mgmt.bus + "/" + r.mgmt.dev +
                           ": " + std::strerror(ENODEV));
    offload::SimVdpaDevice d;
    d.name = r.name;
    d.mgmt_dev = r.mgmt.dev;
    d.mac = r.mac.value_or(MacAddr{});
    d.mtu = r.mtu.value_or(1500);
    d.max_vqp = r.max_vqp.value_or(1);
    return nic_.vdpaDevNew(d);
  }

  Status devDel(const std::string& name) override { return nic_.vdpaDevDel(name); }

  Status devSetMac(const std::string& name, const MacAddr& mac) override {
    return nic_.vdpaDevSetMac(name, mac);
  }

  Result<std::vector<VdpaDevInfo>> devs() override {
    std::vector<VdpaDevInfo> out;
    for (const auto& d : nic_.vdpaDevs())
      out.push_back({d.name, {"pci", d.mgmt_dev}, d.mac, d.mtu, d.max_vqp});
    return out;
  }

 private:
  offload::SimPf nic_;
};

}  // namespace

std::unique_ptr<VdpaNetlink> makeSimVdpaNetlink(const offload::SimPf& nic) {
  return std::make_unique<SimVdpaNetlink>(nic);
}

std::unique_ptr<VdpaBackend> makeSimVdpaBackend(const offload::SimPf& nic) {
  KernelVdpaOptions o;
  o.pf_pci = nic.pfPci();
  o.dev_dir = nic.devDir();
  o.node_wait = std::chrono::milliseconds(0);
  o.kind = model::VdpaKind::kSim;
  o.profile = nic.profile();
  return std::make_unique<KernelVdpaBackend>(std::move(o), makeSimVdpaNetlink(nic), nic.sysfs());
}

}  // namespace nicoffload::vdpa
