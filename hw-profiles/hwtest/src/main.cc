// nicoffload-hwtest: puts a hardware profile's claims to a device (the
// simulated NIC, or rte_flow on a PF under DPDK) and reports where they
// agree; --probe reads an mlx5 PF's capabilities through rdma-core devx.
// Usage and exit codes: --help, and hw-profiles/README.md.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "nicoffload/devx/caps.h"
#include "nicoffload/devx/probe.h"
#include "nicoffload/dpdk/dpdk_flow_backend.h"
#include "nicoffload/dpdk/eal.h"
#include "nicoffload/hwtest/busy.h"
#include "nicoffload/hwtest/suite.h"
#include "nicoffload/model/parse.h"
#include "nicoffload/model/profile_dirs.h"
#include "nicoffload/offload/sim_pf.h"
#include "nicoffload/simnic/sim_eswitch.h"

namespace {

using namespace nicoffload;
using namespace nicoffload::hwtest;

std::atomic<bool> g_stop{false};

extern "C" void onSignal(int) { g_stop.store(true); }

void installSignals() {
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

const char* kExitText =
    "Exit status:\n"
    "  0  every case run agrees with the profile (skipped cases allowed; --probe: every check ok)\n"
    "  1  the device and the profile disagree: a case failed or made a finding (--probe: a "
    "finding)\n"
    "  2  bad options, or a profile that does not load\n"
    "  3  something the suite made (a rule, a vDPA device) could not be removed: see stderr\n"
    "  4  the device could not be opened, or it is busy (rules / VFs in use) without --allow-busy\n"
    "  5  interrupted by SIGINT/SIGTERM: stopped between cases, everything made was removed\n"
    "  6  internal error\n"
    "  7  --probe: no mlx5 device on this host (or none at --pci), or devx unavailable on it\n"
    "  8  no case ran (--case matched none, or every case was skipped): nothing was checked\n";

struct Options {
  std::string profile_file;
  std::string backend = "sim";
  std::string sim_profile_file;
  std::vector<std::string> sim_fail_create;
  std::string sim_device_dir;
  std::uint16_t vfs = 4;
  std::string eal_args;
  std::vector<std::string> eal_words;  // --eal-args split, or the host config's dpdk.eal_args
  std::string host_file;
  std::string pf_devargs;
  std::string pf_pci;
  std::uint16_t uplink_port = 0;
  std::uint16_t first_representor_port = 1;
  std::string case_regex;
  bool list = false;
  bool allow_busy = false;
  std::string junit_file, json_file, write_profile_file;
  std::uint64_t fill_limit = 1u << 20;
  std::uint32_t rate_rules = 2000;
  bool probe = false;
  std::string pci;
  std::string profile_dir;
  bool quiet = false;
};

bool writeFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    std::fprintf(stderr, "nicoffload-hwtest: error: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

std::vector<std::string> splitWords(const std::string& s) {
  // EAL arguments are words separated by blanks; no shell, no quoting.
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::string profileDir(const Options& o) {
  if (!o.profile_dir.empty()) return o.profile_dir;
  return model::defaultProfileDir(NICOFFLOAD_PROFILE_INSTALL_DIR, NICOFFLOAD_PROFILE_SOURCE_DIR);
}

// --- --probe -----------------------------------------------------------------

int runProbe(const Options& o) {
  const auto devices = devx::listMlx5Devices();
  if (devices.empty()) {
    std::printf(
        "nicoffload-hwtest --probe: no mlx5 device on this host: rdma-core lists no RDMA device "
        "that the mlx5 provider drives (no ConnectX/BlueField NIC, or mlx5_ib not loaded); "
        "nothing probed\n");
    return kExitNoDevice;
  }
  for (const auto& d : devices)
    std::printf("# mlx5 device %s at %s (%s)\n", d.ibdev.c_str(), d.pci.c_str(), d.pci_id.c_str());
  auto caps = devx::probeDevice(o.pci);
  if (!caps) {
    std::fprintf(stderr, "nicoffload-hwtest: --probe: %s\n", caps.error().describe().c_str());
    return caps.error().code == ErrorCode::kPermissionDenied ? kExitDevice : kExitNoDevice;
  }
  std::printf("device %s (%s, %s), firmware %s\n", caps->pci.c_str(), caps->ibdev.c_str(),
              caps->pci_id.c_str(), caps->fw_ver.c_str());
  if (caps->general)
    std::printf(
        "general: vhca_id %u, eswitch_manager %d, vport_group_manager %d, nic_flow_table %d, "
        "port_type %u, sw_owner_id %d, virtio_net_q %d\n",
        caps->general->vhca_id, caps->general->eswitch_manager, caps->general->vport_group_manager,
        caps->general->nic_flow_table, caps->general->port_type, caps->general->sw_owner_id,
        caps->general->virtioNetQueues());
  if (caps->fdb_flow_table)
    std::printf(
        "eswitch FDB: ft_support %d, flow_counter %d, reformat %d, decap %d, log_max_ft_size %u, "
        "max_ft_level %u\n",
        caps->fdb_flow_table->props.ft_support, caps->fdb_flow_table->props.flow_counter,
        caps->fdb_flow_table->props.reformat, caps->fdb_flow_table->props.decap,
        caps->fdb_flow_table->props.log_max_ft_size, caps->fdb_flow_table->props.max_ft_level);
  if (caps->eswitch)
    std::printf("eswitch: vxlan_encap_decap %d\n", caps->eswitch->vxlan_encap_decap);
  if (caps->virtio)
    std::printf("virtio emulation: max_num_virtio_queues %u, max_emulated_devices %u\n",
                caps->virtio->max_num_virtio_queues, caps->virtio->max_emulated_devices);
  for (const auto& e : caps->errors) std::printf("could not read: %s\n", e.c_str());

  Result<model::HwProfile> profile = makeError(ErrorCode::kNotFound, "profile", "", "none");
  if (!o.profile_file.empty()) {
    profile = model::loadHwProfile(o.profile_file, "--profile");
  } else {
    std::vector<model::HwProfile> all;
    std::error_code ec;
    for (const auto& f : std::filesystem::directory_iterator(profileDir(o), ec))
      if (f.path().extension() == ".json")
        if (auto p = model::loadHwProfile(f.path().string())) all.push_back(std::move(p).value());
    profile = devx::chooseProfile(caps->pci_id, all);
  }
  if (!profile) {
    std::printf("profile: %s\n", profile.error().describe().c_str());
    return kExitDisagree;
  }
  std::printf("profile: %s (%s)\n", profile->name.c_str(), profile->model.c_str());
  bool finding = false;
  for (const auto& f : devx::checkProfile(*caps, *profile)) {
    std::printf("%-8s %-32s %s\n", devx::toString(f.severity), f.claim.c_str(), f.message.c_str());
    finding = finding || f.severity == devx::ProbeFinding::Severity::kFinding;
  }
  return finding ? kExitDisagree : kExitAgree;
}

// --- the suite ---------------------------------------------------------------

int runSuiteCommand(const Options& o) {
  auto profile = model::loadHwProfile(o.profile_file, "--profile");
  if (!profile) {
    std::fprintf(stderr, "nicoffload-hwtest: error: %s\n", profile.error().describe().c_str());
    return kExitUsage;
  }
  SuiteOptions so;
  if (!o.case_regex.empty()) {
    try {
      so.filter = std::regex(o.case_regex);
    } catch (const std::regex_error& e) {
      std::fprintf(stderr, "nicoffload-hwtest: error: --case '%s': %s\n", o.case_regex.c_str(),
                   e.what());
      return kExitUsage;
    }
  }
  so.fill_limit = o.fill_limit;
  so.rate_rules = o.rate_rules;
  so.vf_count = o.vfs;
  so.stop = &g_stop;
  if (o.list) {
    for (const auto& n : caseNames(*profile, so)) std::printf("%s\n", n.c_str());
    return kExitAgree;
  }

  Devices devices;
  std::unique_ptr<simnic::SimEswitch> sim;
  std::unique_ptr<offload::SimPf> sim_pf;
  std::string sim_pf_dir;
  std::unique_ptr<dpdk::Eal> eal;
  std::unique_ptr<dpdk::DpdkFlowBackend> dpdk_backend;
  std::string eal_run_dir;  // removed at the end: this run created it
  int lock_fd = -1;         // the PF's device lock (nicoffloadd's), held for the run

  if (o.backend == "sim") {
    // What the simulated device really is: the tested profile, unless
    // --sim-profile says otherwise (a deliberately mis-configured run).
    model::HwProfile real = *profile;
    if (!o.sim_profile_file.empty()) {
      auto p = model::loadHwProfile(o.sim_profile_file, "--sim-profile");
      if (!p) {
        std::fprintf(stderr, "nicoffload-hwtest: error: --sim-profile: %s\n",
                     p.error().describe().c_str());
        return kExitUsage;
      }
      real = std::move(p).value();
    }
    if (!o.sim_device_dir.empty()) {
      auto held = simnic::SimEswitch::readDevice(o.sim_device_dir);
      if (held && !held->empty() && !o.allow_busy) {
        std::fprintf(
            stderr,
            "nicoffload-hwtest: error: the device in %s holds %zu rules (a controller uses it); "
            "refusing to test a busy device without --allow-busy\n",
            o.sim_device_dir.c_str(), held->size());
        return kExitDevice;
      }
    }
    auto nic = o.sim_device_dir.empty() ? simnic::SimEswitch::create(real, o.vfs)
                                        : simnic::SimEswitch::open(real, o.vfs, o.sim_device_dir);
    if (!nic) {
      std::fprintf(stderr, "nicoffload-hwtest: error: simulated NIC: %s\n",
                   nic.error().describe().c_str());
      return kExitDevice;
    }
    sim = std::move(nic).value();
    for (const auto& a : o.sim_fail_create) {
      auto t = model::actionFromName(a);
      if (!t) {
        std::fprintf(stderr, "nicoffload-hwtest: error: --sim-fail-create: no action '%s'\n",
                     a.c_str());
        return kExitUsage;
      }
      sim->failActionOnCreate(*t);
    }
    devices.flow = sim.get();
    // The simulated PF (SR-IOV, switchdev, vDPA) in a directory of its own,
    // removed at the end. Under $TMPDIR when it is set, else /tmp.
    const char* tmpdir = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp") +
                       "/nicoffload-hwtest-XXXXXX";
    if (const char* d = ::mkdtemp(tmpl.data())) {
      sim_pf_dir = d;
      offload::SimPfOptions po;
      po.dir = sim_pf_dir;
      po.profile = real;
      auto pf = offload::SimPf::open(po);
      if (pf) {
        sim_pf = std::move(pf).value();
        devices.nic = sim_pf.get();
      } else {
        devices.nic_unavailable = "the simulated PF could not be made: " + pf.error().describe();
      }
    } else {
      devices.nic_unavailable = "no temporary directory for the simulated PF";
    }
  } else if (o.backend == "dpdk") {
    // The PF: --pf-pci, else the PCI address the devargs start with.
    std::string pf = o.pf_pci;
    if (pf.empty() && !o.pf_devargs.empty()) pf = o.pf_devargs.substr(0, o.pf_devargs.find(','));
    if (!pf.empty() && !std::filesystem::exists("/sys/bus/pci/devices/" + pf))
      pf.clear();  // a vdev
    if (!pf.empty()) {
      // Held for the whole run: nicoffloadd cannot start on this PF meanwhile.
      const std::string lock = std::string("/run/nicoffload/") + pf + ".lock";
      std::error_code ec;
      std::filesystem::create_directories("/run/nicoffload", ec);
      lock_fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      if (lock_fd >= 0 && ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        std::fprintf(
            stderr,
            "nicoffload-hwtest: error: %s is locked: nicoffloadd runs on PF %s; stop it first "
            "(--allow-busy does not override this)\n",
            lock.c_str(), pf.c_str());
        return kExitDevice;
      }
      const auto busy = pfBusyReasons("/sys", pf);
      if (!busy.empty() && !o.allow_busy) {
        for (const auto& b : busy) std::fprintf(stderr, "nicoffload-hwtest: busy: %s\n", b.c_str());
        std::fprintf(stderr,
                     "nicoffload-hwtest: error: PF %s carries VMs; refusing without --allow-busy\n",
                     pf.c_str());
        return kExitDevice;
      }
    }
    std::vector<std::string> args{"nicoffload-hwtest"};
    for (const auto& w : o.eal_words) args.push_back(w);
    if (!o.pf_devargs.empty()) {
      args.push_back("-a");
      args.push_back(o.pf_devargs);
    }
    // The EAL's runtime directory (/var/run/dpdk/<file-prefix>) stays after
    // rte_eal_cleanup; removed at the end only when this run created it, so a
    // directory another DPDK process uses is never touched.
    {
      std::string prefix = "rte";
      for (std::size_t i = 0; i + 1 < args.size(); ++i)
        if (args[i] == "--file-prefix") prefix = args[i + 1];
      for (const auto& a : args)
        if (a.rfind("--file-prefix=", 0) == 0) prefix = a.substr(14);
      const std::string run = "/var/run/dpdk/" + prefix;
      if (!std::filesystem::exists(run)) eal_run_dir = run;
    }
    auto e = dpdk::Eal::start(args);
    if (!e) {
      std::fprintf(stderr, "nicoffload-hwtest: error: DPDK EAL: %s\n",
                   e.error().describe().c_str());
      return kExitDevice;
    }
    eal = std::move(e).value();
    dpdk::DpdkFlowConfig cfg;
    cfg.pf_devargs = o.pf_devargs;
    cfg.uplink_port_id = o.uplink_port;
    cfg.first_representor_port_id = o.first_representor_port;
    cfg.vf_count = o.vfs;
    auto b = dpdk::DpdkFlowBackend::open(cfg, *profile);
    if (!b) {
      std::fprintf(stderr, "nicoffload-hwtest: error: DPDK flow backend: %s\n",
                   b.error().describe().c_str());
      (void)eal->stop();
      return kExitDevice;
    }
    dpdk_backend = std::move(b).value();
    for (const auto& n : dpdk_backend->notes())
      std::fprintf(stderr, "nicoffload-hwtest: note: %s\n", n.c_str());
    devices.flow = dpdk_backend.get();
    devices.nic_unavailable =
        "not run with --backend dpdk: hwtest does not drive the real PF's SR-IOV, eswitch mode or "
        "vDPA "
        "(changing them disrupts the host); check them with nicoffloadctl nic status and "
        "nicoffloadd";
  } else {
    std::fprintf(stderr, "nicoffload-hwtest: error: --backend must be sim or dpdk\n");
    return kExitUsage;
  }

  SuiteReport report = runSuite(*profile, devices, so);

  // Cleanup of what only this process made: the simulated PF's tree
  // (its VFs and vDPA devices with it), the DPDK backend's rules and ports.
  if (sim_pf) {
    for (const auto& d : sim_pf->vdpaDevs())
      if (auto s = sim_pf->vdpaDevDel(d.name); !s)
        report.cleanup_errors.push_back("vDPA device " + d.name + ": " + s.error().describe());
    sim_pf.reset();
  }
  if (!sim_pf_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(sim_pf_dir, ec);
  }
  if (dpdk_backend) {
    if (dpdk_backend->size() != 0)
      report.cleanup_errors.push_back(std::to_string(dpdk_backend->size()) +
                                      " rte_flow rules still held");
    dpdk_backend.reset();
  }
  if (eal) (void)eal->stop();
  if (!eal_run_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(eal_run_dir, ec);
  }

  if (lock_fd >= 0) ::close(lock_fd);

  if (!o.quiet) std::fputs(humanSummary(report).c_str(), stdout);
  bool wrote = true;
  if (!o.json_file.empty()) wrote = writeFile(o.json_file, toJson(report).dump(2) + "\n") && wrote;
  if (!o.junit_file.empty()) wrote = writeFile(o.junit_file, toJunitXml(report)) && wrote;
  if (!o.write_profile_file.empty()) {
    auto doc = model::readJsonFile(o.profile_file, kMaxConfigFileBytes, "--profile");
    if (!doc) {
      std::fprintf(stderr, "nicoffload-hwtest: error: %s\n", doc.error().describe().c_str());
      wrote = false;
    } else {
      auto corrected = correctedProfile(*doc, report);
      wrote = writeFile(o.write_profile_file, corrected.dump(2) + "\n") && wrote;
      const auto stem = std::filesystem::path(o.write_profile_file).stem().string();
      if (auto check = model::parseHwProfile(corrected, stem); !check)
        std::fprintf(
            stderr,
            "nicoffload-hwtest: warning: the corrected profile does not pass the schema as it is "
            "(%s); edit it before use\n",
            check.error().describe().c_str());
    }
  }
  for (const auto& e : report.cleanup_errors)
    std::fprintf(stderr, "nicoffload-hwtest: NOT REMOVED: %s\n", e.c_str());
  if (exitCode(report) == kExitNothingRan)
    std::fprintf(stderr,
                 "nicoffload-hwtest: error: no case ran (%zu skipped%s): nothing was checked\n",
                 report.count(Outcome::kSkipped),
                 o.case_regex.empty() ? "" : (", --case '" + o.case_regex + "'").c_str());
  if (!wrote) return kExitUsage;
  return exitCode(report);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options o;
    CLI::App app{
        "nicoffload-hwtest: check a hardware profile against the device itself.\n"
        "Every claim of the profile becomes a case (items, actions, the planner's rule classes, "
        "table sizes, insert/delete rates, SR-IOV/switchdev/vDPA where a NIC backend exists); "
        "each case reports pass, fail (the device cannot do what the profile claims), finding "
        "(the device does more: the profile is too pessimistic) or skipped (with the reason). "
        "Every rule and device it makes is removed, also on SIGINT/SIGTERM.\n"
        "--backend sim runs against the simulated NIC (--sim-profile: what that device really "
        "is); --backend dpdk runs in-process under DPDK on the PF (--eal-args, --pf-devargs).\n"
        "--probe reads an mlx5 PF's capabilities through rdma-core devx (QUERY_HCA_CAP) and "
        "checks the profile chosen by PCI id (or --profile) against them.",
        "nicoffload-hwtest"};
    app.footer(kExitText);
    app.set_version_flag("--version", std::string("nicoffload-hwtest ") + NICOFFLOAD_VERSION);
    app.add_option("--profile", o.profile_file, "hardware profile to test (hw-profiles/*.json)")
        ->check(CLI::ExistingFile);
    app.add_option("--backend", o.backend, "sim (the simulated NIC) or dpdk (rte_flow on the PF)")
        ->check(CLI::IsMember({"sim", "dpdk"}));
    app.add_option("--sim-profile", o.sim_profile_file,
                   "sim: the profile the simulated device really enforces (default: --profile)")
        ->check(CLI::ExistingFile);
    app.add_option(
        "--sim-fail-create", o.sim_fail_create,
        "sim: the device refuses rules with this action at create time only (repeatable)");
    app.add_option(
        "--sim-device-dir", o.sim_device_dir,
        "sim: test the persistent simulated device in DIR (a daemon's), busy check included");
    app.add_option("--vfs", o.vfs, "VFs the rules may name (vf0..); dpdk: representor ports")
        ->capture_default_str();
    app.add_option(
           "--host", o.host_file,
           "take the backend, DPDK EAL arguments, PF devargs, port numbers, VF count and profile "
           "from this host config (as nicoffloadd opens the PF); options given here win")
        ->check(CLI::ExistingFile);
    app.add_option("--eal-args", o.eal_args, "dpdk: EAL arguments, blank-separated (no shell)");
    app.add_option("--pf-devargs", o.pf_devargs,
                   "dpdk: the PF's devargs, e.g. 0000:03:00.0,representor=vf[0-3],dv_flow_en=1");
    app.add_option(
        "--pf-pci", o.pf_pci,
        "dpdk: the PF's PCI address for the busy check and lock (default: from --pf-devargs)");
    app.add_option("--uplink-port", o.uplink_port,
                   "dpdk without --pf-devargs: the uplink's ethdev port")
        ->capture_default_str();
    app.add_option("--first-representor-port", o.first_representor_port,
                   "dpdk without --pf-devargs: the ethdev port of vf0's representor")
        ->capture_default_str();
    app.add_option("--case", o.case_regex,
                   "run only cases whose name matches this regex (ECMAScript)");
    app.add_flag("--list", o.list, "list the cases for the profile and exit");
    app.add_flag(
        "--allow-busy", o.allow_busy,
        "run on a busy device, refused by default: sim, a --sim-device-dir that holds rules; dpdk, "
        "a PF "
        "whose VFs are bound to another driver than mlx5_core (vfio-pci) or back vDPA devices. "
        "A PF whose nicoffloadd lock (/run/nicoffload/<PCI>.lock) is held is always refused");
    app.add_option("--junit", o.junit_file, "write a JUnit XML report to FILE");
    app.add_option("--json", o.json_file, "write a JSON report to FILE");
    app.add_option(
        "--write-profile", o.write_profile_file,
        "write the profile with every disagreement corrected, the device's message as source");
    app.add_option(
           "--fill-limit", o.fill_limit,
           "tables claimed larger than N rules are not filled (the case is skipped, saying so)")
        ->capture_default_str();
    app.add_option("--rate-rules", o.rate_rules, "rules inserted and deleted per rate case")
        ->capture_default_str();
    app.add_flag("--probe", o.probe,
                 "read the mlx5 PF's capabilities (rdma-core devx) and check the profile");
    app.add_option("--pci", o.pci,
                   "--probe: the PF's PCI address (default: the first mlx5 device)");
    app.add_option("--profile-dir", o.profile_dir,
                   "where named profiles live (--host hw_profile, --probe by PCI id); default: the "
                   "installed ones, else the source tree's");
    app.add_flag("-q,--quiet", o.quiet, "no summary on stdout");
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      const int rc = app.exit(e);
      return rc == 0 ? 0 : kExitUsage;
    }
    installSignals();
    o.eal_words = splitWords(o.eal_args);
    if (!o.host_file.empty()) {
      // The host config the daemon would use: the same EAL arguments and
      // devargs (dpdk::ealArguments), port numbering and VF count.
      auto host = model::loadHostConfig(o.host_file);
      if (!host) {
        std::fprintf(stderr, "nicoffload-hwtest: error: %s\n", host.error().describe().c_str());
        return kExitUsage;
      }
      if (o.profile_file.empty()) {
        auto path = model::resolveProfilePath(host->hw_profile, profileDir(o));
        if (!path) {
          std::fprintf(stderr, "nicoffload-hwtest: error: %s: %s\n", o.host_file.c_str(),
                       path.error().describe().c_str());
          return kExitUsage;
        }
        o.profile_file = *path;
      }
      if (!app.count("--backend"))
        o.backend = host->flow_backend == model::FlowBackendKind::kDpdk ? "dpdk" : "sim";
      if (!app.count("--eal-args")) o.eal_words = host->dpdk_eal_args;
      if (!app.count("--pf-devargs")) o.pf_devargs = host->dpdk_pf_devargs;
      if (!app.count("--pf-pci")) o.pf_pci = host->uplink_pci;
      if (!app.count("--uplink-port")) o.uplink_port = host->uplink_port_id;
      if (!app.count("--first-representor-port"))
        o.first_representor_port = host->first_representor_port_id;
      if (!app.count("--vfs")) o.vfs = host->vf_count;
    }
    // Refused before anything opens: -h/--help/--version make rte_eal_init
    // print and exit the process with status 0, which would read as "every
    // case agrees" with no case run.
    for (const auto& w : o.eal_words)
      if (const auto why = model::ealArgumentProblem(w); !why.empty()) {
        const bool mine = app.count("--eal-args") > 0;
        std::fprintf(stderr, "nicoffload-hwtest: error: %s: %s\n",
                     mine ? "--eal-args" : (o.host_file + ": dpdk.eal_args").c_str(),
                     printable(why, kMaxErrorMessageBytes).c_str());
        return kExitUsage;
      }
    if (o.probe) return runProbe(o);
    if (o.profile_file.empty()) {
      std::fprintf(stderr, "nicoffload-hwtest: error: --profile is required (or --probe)\n");
      return kExitUsage;
    }
    return runSuiteCommand(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nicoffload-hwtest: internal error: %s\n", e.what());
    return kExitInternal;
  }
}
