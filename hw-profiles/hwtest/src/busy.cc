#include "nicoffload/hwtest/busy.h"

#include <filesystem>

namespace nicoffload::hwtest {

std::vector<std::string> pfBusyReasons(const std::string& sysfs_root, const std::string& pf) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  std::error_code ec;
  const fs::path dev = fs::path(sysfs_root) / "bus/pci/devices" / pf;
  for (const auto& e : fs::directory_iterator(dev, ec)) {
    if (e.path().filename().string().rfind("virtfn", 0) != 0) continue;
    std::error_code vec;
    const auto vf = fs::canonical(e.path(), vec);
    if (vec) continue;
    const std::string vf_name = vf.filename().string();
    const auto driver = fs::read_symlink(vf / "driver", vec).filename().string();
    if (!vec && !driver.empty() && driver != "mlx5_core")
      out.push_back("VF " + vf_name + " is bound to " + driver + " (passed through to a VM?)");
    for (const auto& c : fs::directory_iterator(vf, vec))
      if (c.path().filename().string().rfind("vdpa", 0) == 0)
        out.push_back("VF " + vf_name + " backs vDPA device " + c.path().filename().string());
  }
  return out;
}

}  // namespace nicoffload::hwtest
