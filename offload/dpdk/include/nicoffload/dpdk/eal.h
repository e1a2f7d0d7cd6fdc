// The DPDK Environment Abstraction Layer of this process.
//
// rte_eal_init() runs once per process, and after rte_eal_cleanup() never
// again: at most one Eal ever starts in a process. Arguments come from the
// host config (ealArguments), never from a shell.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::dpdk {

// argv for rte_eal_init: `program`, then host.dpdk_eal_args, then
// "-a <host.dpdk_pf_devargs>" when the devargs are set (the mlx5 PF and its
// representors, e.g. "0000:03:00.0,representor=vf[0-15],dv_flow_en=1").
std::vector<std::string> ealArguments(const model::HostConfig& host,
                                      std::string_view program = "nicoffloadd");

class Eal {
 public:
  // Starts the EAL with `args` (args[0] is the program name). Errors:
  // kBusy when this process started an EAL before (running or stopped: DPDK
  // cannot start twice); kInvalidValue for arguments the EAL refuses
  // (EINVAL); kUnsupported (ENOTSUP, e.g. a device that failed to probe);
  // kIo for other environment failures (hugepages, permissions), with
  // rte_strerror's text.
  static Result<std::unique_ptr<Eal>> start(std::vector<std::string> args);

  Eal(const Eal&) = delete;
  Eal& operator=(const Eal&) = delete;
  ~Eal();

  // Stops and closes every ethdev port, then rte_eal_cleanup(). Idempotent;
  // the EAL cannot start again in this process afterwards.
  Status stop();
  bool running() const { return running_; }
  const std::vector<std::string>& args() const { return args_; }

  // "--file-prefix" of the arguments, or "rte": the runtime directory is
  // /var/run/dpdk/<prefix> (for root).
  std::string filePrefix() const;

 private:
  explicit Eal(std::vector<std::string> args) : args_(std::move(args)) {}

  std::vector<std::string> args_;  // the EAL may keep pointers into argv: kept alive here
  std::vector<char*> argv_;
  bool running_ = false;
};

}  // namespace nicoffload::dpdk
