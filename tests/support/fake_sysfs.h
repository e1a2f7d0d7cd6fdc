// Test support: a temp directory, and a fake sysfs tree built in it with the
// layout of /sys (devices/pci0000:00/<bdf> with bus/pci/devices/<bdf> links,
// virtfnN and physfn links, driver links into bus/pci/drivers/<drv>,
// net/<netdev>/phys_port_name and phys_switch_id with class/net links,
// bus/vdpa/devices/<name> under the VF's mlx5_core.vnet.N device). Nothing in
// it reacts to writes: the tests read back what the code wrote.
// Header-only.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace nicoffload::test {

namespace fs = std::filesystem;

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "nfo-test") {
    std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

class FakeSysfs {
 public:
  explicit FakeSysfs(std::string root) : root_(std::move(root)) { fs::create_directories(root_); }
  const std::string& root() const { return root_; }

  void file(const std::string& rel, const std::string& content = "") const {
    fs::create_directories(fs::path(root_ + "/" + rel).parent_path());
    std::ofstream(root_ + "/" + rel, std::ios::trunc) << content;
  }
  std::string read(const std::string& rel) const {
    std::ifstream in(root_ + "/" + rel);
    if (!in) throw std::runtime_error("fake sysfs: no file " + rel);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  bool exists(const std::string& rel) const {
    return fs::exists(fs::symlink_status(root_ + "/" + rel));
  }
  void link(const std::string& rel, const std::string& target) const {
    fs::create_directories(fs::path(root_ + "/" + rel).parent_path());
    std::error_code ec;
    fs::remove(root_ + "/" + rel, ec);
    fs::create_symlink(target, root_ + "/" + rel);
  }
  void remove(const std::string& rel) const { fs::remove_all(root_ + "/" + rel); }

  static std::string dev(const std::string& pci) { return "devices/pci0000:00/" + pci; }

  // A PCI driver with its bind / unbind files.
  void pciDriver(const std::string& name) const {
    file("bus/pci/drivers/" + name + "/bind");
    file("bus/pci/drivers/" + name + "/unbind");
  }
  void vdpaDriver(const std::string& name) const {
    file("bus/vdpa/drivers/" + name + "/bind");
    file("bus/vdpa/drivers/" + name + "/unbind");
  }

  // A PF bound to mlx5_core with its netdev (phys_port_name "p<F>" and the
  // switch id when `switch_id` is set, as in switchdev mode).
  void pf(const std::string& pci, const std::string& netdev, unsigned total, unsigned numvfs,
          bool autoprobe = true, const std::string& switch_id = "") const {
    const std::string d = dev(pci);
    file(d + "/sriov_totalvfs", std::to_string(total) + "\n");
    file(d + "/sriov_numvfs", std::to_string(numvfs) + "\n");
    file(d + "/sriov_drivers_autoprobe", autoprobe ? "1\n" : "0\n");
    link("bus/pci/devices/" + pci, "../../../" + d);
    pciDriver("mlx5_core");
    link(d + "/driver", "../../../bus/pci/drivers/mlx5_core");
    // (phys_port_name "p<F>"; built with append(), which GCC 12's -Wrestrict
    // does not misread at -O3 as it does `"p" + substr()`.)
    std::string port_name;
    if (!switch_id.empty()) port_name.append("p").append(pci, 11);
    netdevOf(pci, netdev, port_name, switch_id);
  }

  // VF `index` of `pf` at `vf_pci`, bound to `driver` (empty: unbound).
  void vf(const std::string& pf_pci, unsigned index, const std::string& vf_pci,
          const std::string& driver = "") const {
    const std::string d = dev(vf_pci);
    file(d + "/vendor", "0x15b3\n");
    link(d + "/physfn", "../" + pf_pci);
    link(dev(pf_pci) + "/virtfn" + std::to_string(index), "../" + vf_pci);
    link("bus/pci/devices/" + vf_pci, "../../../" + d);
    if (!driver.empty()) bind(vf_pci, driver);
  }

  void bind(const std::string& pci, const std::string& driver) const {
    pciDriver(driver);
    link(dev(pci) + "/driver", "../../../bus/pci/drivers/" + driver);
  }

  // A netdev whose parent is `pci`, with its class/net link.
  void netdevOf(const std::string& pci, const std::string& name, const std::string& phys_port_name,
                const std::string& switch_id) const {
    const std::string n = dev(pci) + "/net/" + name;
    file(n + "/phys_port_name", phys_port_name.empty() ? "" : phys_port_name + "\n");
    file(n + "/phys_switch_id", switch_id.empty() ? "" : switch_id + "\n");
    link("class/net/" + name, "../../" + n);
  }

  // A vDPA device on a VF, bound to `driver` (empty: none), with a
  // vhost-vdpa-<minor> child when minor >= 0.
  void vdpaDevice(const std::string& vf_pci, unsigned vf_index, const std::string& name,
                  const std::string& driver, int minor = -1) const {
    const std::string d = dev(vf_pci) + "/mlx5_core.vnet." + std::to_string(vf_index) + "/" + name;
    file(d + "/driver_override", "(null)\n");
    link("bus/vdpa/devices/" + name, "../../../" + d);
    if (!driver.empty()) {
      vdpaDriver(driver);
      link(d + "/driver", "../../../../../bus/vdpa/drivers/" + driver);
    }
    if (minor >= 0)
      file(d + "/vhost-vdpa-" + std::to_string(minor) + "/dev",
           "508:" + std::to_string(minor) + "\n");
  }

 private:
  std::string root_;
};

}  // namespace nicoffload::test
