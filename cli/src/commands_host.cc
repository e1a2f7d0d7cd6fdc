// The subcommands of nicoffloadctl about this host that need neither a plan
// nor nicoffloadd: nic status (the PF read from sysfs) and domain-xml (the
// libvirt XML of a port).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_common.h"
#include "nicoffload/hooks/domain.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/model/vdpa_device.h"
#include "nicoffload/offload/nic_status_json.h"
#include "nicoffload/offload/sysfs_nic_backend.h"

namespace nicoffload::cli {
namespace {

// `nic status`: the PF, its eswitch mode, VFs and representors, read-only.
int runNicStatus(const std::string& pci, const std::string& netdev, const std::string& sysfs_root,
                 bool json) {
  offload::SysfsNicOptions o;
  o.pf_pci = pci;
  o.pf_netdev = netdev;
  auto nic = offload::makeSysfsNicBackend(o, sysfs_root);
  auto st = nic->status();
  if (!st) {
    fail(st.error());
    return st.error().code == ErrorCode::kNotFound ? kExitNotFound : kExitInput;
  }
  if (json) {
    std::cout << offload::toJson(*st).dump(2) << "\n";
    return kExitOk;
  }
  const char* mode = !st->eswitch_mode                                     ? "unknown"
                     : *st->eswitch_mode == model::EswitchMode::kSwitchdev ? "switchdev"
                                                                           : "legacy";
  std::printf("PF %s netdev %s: eswitch %s, VFs %u of %u, autoprobe %s%s%s\n", st->pci.c_str(),
              st->netdev.empty() ? "-" : st->netdev.c_str(), mode, st->num_vfs, st->total_vfs,
              st->drivers_autoprobe ? "on" : "off", st->switch_id.empty() ? "" : ", switch id ",
              st->switch_id.c_str());
  auto flag = [](const std::optional<bool>& b) { return !b ? "?" : *b ? "on" : "off"; };
  for (const auto& v : st->vfs) {
    std::string vdpa;
    for (const auto& d : v.vdpa_devices) vdpa += (vdpa.empty() ? "" : ",") + d;
    std::printf(
        "  vf%-3u %s driver %s netdev %s representor %s mac %s trust %s spoofchk %s vdpa %s\n",
        v.index, v.pci.c_str(), v.driver.empty() ? "-" : v.driver.c_str(),
        v.netdev.empty() ? "-" : v.netdev.c_str(),
        v.representor.empty() ? "-" : v.representor.c_str(), v.mac ? v.mac->str().c_str() : "?",
        flag(v.trust), flag(v.spoofchk), vdpa.empty() ? "-" : vdpa.c_str());
  }
  for (const auto& w : st->warnings) std::printf("warning: %s\n", w.c_str());
  return kExitOk;
}

// domain-xml: the <interface> and <metadata> a domain definition needs for
// one port (libvirt-hooks/README.md). Offline; nothing is sent to the daemon.
struct DomainXmlArgs {
  std::string vm, mac, representor, vdpa, kind = "ethernet", source;
  std::string link_dir = "/run/nicoffload/vdpa";
  int nic = 0, mtu = 0, queues = 0;
  long long vni = -1, vf = -1;
  std::vector<std::string> addresses;
};

int runDomainXml(const DomainXmlArgs& a) {
  nlohmann::json doc{{"vm", a.vm}, {"nic", a.nic}, {"mac", a.mac}, {"addresses", a.addresses}};
  if (a.vni >= 0) doc["vni"] = a.vni;
  if (a.vf >= 0) doc["vf"] = a.vf;
  if (a.mtu > 0) doc["mtu"] = a.mtu;
  if (a.queues > 0) doc["queues"] = a.queues;
  if (!a.representor.empty()) doc["representor"] = a.representor;
  if (!a.vdpa.empty()) doc["vdpa"] = a.vdpa;
  auto port = model::parsePort(doc, "port");
  if (!port) return fail(port.error());
  // vdpa / vhostuser without --source: the stable link nicoffloadd keeps
  // for the port (vdpa.link_dir, default /run/nicoffload/vdpa), which a
  // domain definition can name before the device exists.
  std::string source = a.source;
  if (source.empty() && (a.kind == "vdpa" || a.kind == "vhostuser"))
    source = a.link_dir + "/" + vdpa::deviceName(port->key);
  auto iface = hooks::interfaceXmlFor(*port, a.kind, source);
  if (!iface) return fail(iface.error());
  std::printf(
      "<!-- in <devices>: interface %d of the domain (the port key is its position) -->\n%s", a.nic,
      iface->c_str());
  std::printf("<!-- in the domain, <uuid>%s</uuid>: -->\n%s", port->key.vm.c_str(),
              hooks::metadataXmlFor({*port}).c_str());
  return kExitOk;
}

struct NicStatusArgs {
  std::string pci, netdev, sysfs_root = "/sys";
  bool json = false;
};

void addNicCommands(CLI::App& app, Commands& commands) {
  auto a = std::make_shared<NicStatusArgs>();
  auto* nic_cmd =
      app.add_subcommand("nic", "the uplink PF: SR-IOV, eswitch mode, VFs, representors");
  nic_cmd->require_subcommand(1);
  auto* cmd = nic_cmd->add_subcommand(
      "status",
      "print the PF's eswitch mode, VFs (PCI address, driver, MAC, representor, vDPA devices)");
  cmd->add_option("--pci", a->pci, "PCI address of the uplink PF, e.g. 0000:03:00.0")->required();
  cmd->add_option("--netdev", a->netdev, "the PF's netdev; default: found in sysfs");
  cmd->add_option("--sysfs-root", a->sysfs_root, "where sysfs is mounted (default /sys)");
  cmd->add_flag("--json", a->json, "print the status as JSON");
  commands.push_back(
      {cmd, [a] { return runNicStatus(a->pci, a->netdev, a->sysfs_root, a->json); }});
}

void addDomainXmlCommand(CLI::App& app, Commands& commands) {
  auto a = std::make_shared<DomainXmlArgs>();
  auto* cmd = app.add_subcommand(
      "domain-xml",
      "print the libvirt <interface> and <metadata> XML of a port, for a domain definition");
  cmd->add_option("--vm", a->vm, "the domain's UUID")->required();
  cmd->add_option("--nic", a->nic, "position of the interface among the domain's interfaces");
  cmd->add_option("--mac", a->mac, "guest MAC")->required();
  cmd->add_option("--address", a->addresses, "a /32 or /128 of the VM (repeat for more)")
      ->required();
  cmd->add_option("--vni", a->vni, "VXLAN VNI");
  cmd->add_option("--vf", a->vf, "VF index");
  cmd->add_option("--representor", a->representor, "representor netdev");
  cmd->add_option("--mtu", a->mtu, "MTU");
  cmd->add_option("--queues", a->queues, "virtqueue pairs");
  cmd->add_option("--vdpa", a->vdpa, "none, kernel, dpdk or sim");
  cmd->add_option("--kind", a->kind, "interface type: ethernet (default), vdpa or vhostuser");
  cmd->add_option("--source", a->source,
                  "ethernet: the tap (default the representor); vdpa and vhostuser: the "
                  "device node or socket (default the stable link nicoffloadd keeps for the "
                  "port, <--link-dir>/nfo<12 hex>)");
  cmd->add_option("--link-dir", a->link_dir,
                  "nicoffloadd's vdpa.link_dir (default /run/nicoffload/vdpa)");
  commands.push_back({cmd, [a] { return runDomainXml(*a); }});
}

}  // namespace

void addHostCommands(CLI::App& app, Commands& commands) {
  addNicCommands(app, commands);
  addDomainXmlCommand(app, commands);
}

}  // namespace nicoffload::cli
