#include "nicoffload/devx/probe.h"

#include <infiniband/mlx5dv.h>
#include <infiniband/verbs.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

namespace nicoffload::devx {

namespace {

std::string readHex(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string s;
  in >> s;
  if (s.rfind("0x", 0) == 0) s = s.substr(2);
  return s;
}

Mlx5Device describe(ibv_device* dev) {
  Mlx5Device d;
  d.ibdev = ibv_get_device_name(dev);
  std::error_code ec;
  const std::filesystem::path device = std::filesystem::path(dev->ibdev_path) / "device";
  const auto real = std::filesystem::canonical(device, ec);
  if (!ec) d.pci = real.filename().string();
  const std::string vendor = readHex(device / "vendor"), id = readHex(device / "device");
  if (!vendor.empty() && !id.empty()) d.pci_id = vendor + ":" + id;
  return d;
}

struct DeviceList {
  ibv_device** list = nullptr;
  int count = 0;
  DeviceList() { list = ibv_get_device_list(&count); }
  ~DeviceList() {
    if (list) ibv_free_device_list(list);
  }
};

Error openError(int err, const std::string& ibdev) {
  const std::string text = "mlx5dv_open_device(" + ibdev + ", DEVX): " + std::strerror(err);
  switch (err) {
    case EOPNOTSUPP:  // == ENOTSUP on Linux
    case EPROTONOSUPPORT:
      return makeError(ErrorCode::kUnsupported, "devx", ibdev,
                       text + " (no devx in this kernel or firmware)");
    case EPERM:
    case EACCES:
      return makeError(ErrorCode::kPermissionDenied, "devx", ibdev,
                       text + " (devx needs CAP_NET_RAW: run as root)");
    default:
      return makeError(ErrorCode::kIo, "devx", ibdev, text);
  }
}

}  // namespace

std::vector<Mlx5Device> listMlx5Devices() {
  std::vector<Mlx5Device> out;
  DeviceList devs;
  for (int i = 0; devs.list && i < devs.count; ++i)
    if (mlx5dv_is_supported(devs.list[i])) out.push_back(describe(devs.list[i]));
  return out;
}

Result<DeviceCaps> probeDevice(const std::string& pci) {
  DeviceList devs;
  ibv_device* chosen = nullptr;
  Mlx5Device info;
  for (int i = 0; devs.list && i < devs.count && !chosen; ++i) {
    if (!mlx5dv_is_supported(devs.list[i])) continue;
    auto d = describe(devs.list[i]);
    if (pci.empty() || d.pci == pci) chosen = devs.list[i], info = d;
  }
  if (!chosen)
    return makeError(ErrorCode::kNotFound, "pci", pci,
                     pci.empty()
                         ? "no mlx5 RDMA device on this host (ibv_get_device_list found none "
                           "the mlx5 provider drives; is mlx5_ib loaded?)"
                         : "no mlx5 RDMA device at PCI address " + pci);

  mlx5dv_context_attr attr{};
  attr.flags = MLX5DV_CONTEXT_FLAGS_DEVX;
  errno = 0;
  ibv_context* ctx = mlx5dv_open_device(chosen, &attr);
  if (!ctx) return openError(errno ? errno : EOPNOTSUPP, info.ibdev);
  std::unique_ptr<ibv_context, int (*)(ibv_context*)> guard(ctx, ibv_close_device);

  DeviceCaps caps;
  caps.pci = info.pci;
  caps.pci_id = info.pci_id;
  caps.ibdev = info.ibdev;
  ibv_device_attr dattr{};
  if (ibv_query_device(ctx, &dattr) == 0)
    caps.fw_ver = dattr.fw_ver;
  else
    caps.errors.push_back("ibv_query_device: " + std::string(std::strerror(errno)));

  auto query = [&](CapType type) -> std::vector<std::uint8_t> {
    const auto in = queryHcaCapCommand(type);
    std::vector<std::uint8_t> out(kQueryHcaCapOutBytes, 0);
    if (int rc = mlx5dv_devx_general_cmd(ctx, in.data(), in.size(), out.data(), out.size());
        rc != 0) {
      caps.errors.push_back(std::string("QUERY_HCA_CAP ") + toString(type) + ": " +
                            std::strerror(rc < 0 ? -rc : (errno ? errno : rc)));
      return {};
    }
    return out;
  };
  auto keep = [&](auto parsed, auto& slot, CapType type) {
    if (parsed)
      slot = std::move(parsed).value();
    else
      caps.errors.push_back(std::string("QUERY_HCA_CAP ") + toString(type) + ": " +
                            parsed.error().describe());
  };
  if (auto b = query(CapType::kGeneral); !b.empty())
    keep(parseGeneralCaps(b), caps.general, CapType::kGeneral);
  if (auto b = query(CapType::kNicFlowTable); !b.empty())
    keep(parseFlowTableCaps(b), caps.nic_flow_table, CapType::kNicFlowTable);
  if (auto b = query(CapType::kEswitchFlowTable); !b.empty())
    keep(parseFlowTableCaps(b), caps.fdb_flow_table, CapType::kEswitchFlowTable);
  if (auto b = query(CapType::kEswitch); !b.empty())
    keep(parseEswitchCaps(b), caps.eswitch, CapType::kEswitch);
  if (auto b = query(CapType::kVirtioEmulation); !b.empty())
    keep(parseVirtioCaps(b), caps.virtio, CapType::kVirtioEmulation);
  return caps;
}

}  // namespace nicoffload::devx
