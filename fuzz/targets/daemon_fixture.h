// A controller on simulated backends (flow rules, NIC, vDPA) in a fresh
// state directory, started the way tests/daemon/controller_test.cc does.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "fuzz_support.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/daemon/controller.h"
#include "nicoffload/offload/sim_pf.h"
#include "nicoffload/simnic/sim_eswitch.h"
#include "nicoffload/vdpa/sim_vdpa_backend.h"

namespace nicoffload::fuzz {

struct SimDaemon {
  std::unique_ptr<offload::SimPf> nic_mgmt;  // outlives the controller's backends
  std::unique_ptr<daemon::Controller> controller;
};

inline SimDaemon startSimDaemon() {
  static const model::HwProfile profile = [] {
    auto p = model::loadHwProfile(sourcePath("hw-profiles/sim.json"));
    if (!p) std::abort();
    return *p;
  }();
  const std::string dir = scratchDir() + "/daemon";
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  auto h = model::loadHostConfig(sourcePath("examples/host-routed.json"));
  if (!h) std::abort();
  model::HostConfig host = *h;
  host.state_dir = dir + "/state";
  host.sim_device_dir = dir + "/simnic";
  host.socket_path = dir + "/ctl.sock";  // the ports' vDPA links go beside it, not in /run
  host.vdpa_backend = model::VdpaKind::kSim;

  spdlog::set_level(spdlog::level::off);  // a line per refusal would be most of the run
  SimDaemon d;
  auto m = offload::SimPf::open({dir + "/nicmgmt", profile, host.uplink_pci, "simpf0"});
  if (!m) std::abort();
  d.nic_mgmt = std::move(m).value();
  auto flow = simnic::SimEswitch::open(profile, host.vf_count, host.sim_device_dir);
  if (!flow) std::abort();
  daemon::Backends b;
  b.flow = std::move(flow).value();
  b.nic = d.nic_mgmt->makeBackend();
  b.vdpa = vdpa::makeSimVdpaBackend(*d.nic_mgmt);
  daemon::ControllerOptions o;
  o.now = [] { return daemon::SteadyClock::time_point{}; };
  auto c = daemon::Controller::start(host, profile, std::move(b), daemon::StateStore(host.state_dir), o);
  if (!c) std::abort();
  d.controller = std::move(c).value();
  return d;
}

// The daemon an input meets. Starting one costs ~30 ms (state and device
// directories, a first full pass), so it serves kInputsPerDaemon inputs in a
// row and is then started afresh; the first input of a process always meets
// a fresh one, which is how a saved reproducer runs.
inline daemon::Controller& daemonForNextInput() {
  constexpr int kInputsPerDaemon = 64;
  static SimDaemon daemon;
  static int served = 0;
  if (served++ % kInputsPerDaemon == 0) {
    daemon.controller.reset();  // before the NIC its backends refer to
    daemon.nic_mgmt.reset();
    daemon = startSimDaemon();
  }
  return *daemon.controller;
}

}  // namespace nicoffload::fuzz
