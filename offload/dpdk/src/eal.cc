#include "nicoffload/dpdk/eal.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>

#include <atomic>
#include <cerrno>

namespace nicoffload::dpdk {
namespace {

// 0: never started in this process; 1: running; 2: stopped (for good).
std::atomic<int> g_eal_state{0};

ErrorCode ealErrorCode(int err) {
  switch (err) {
    case EALREADY:
      return ErrorCode::kBusy;
    case EINVAL:
      return ErrorCode::kInvalidValue;
    case ENOTSUP:
      return ErrorCode::kUnsupported;
    default:
      return ErrorCode::kIo;
  }
}

}  // namespace

std::vector<std::string> ealArguments(const model::HostConfig& host, std::string_view program) {
  std::vector<std::string> args{std::string(program)};
  args.insert(args.end(), host.dpdk_eal_args.begin(), host.dpdk_eal_args.end());
  if (!host.dpdk_pf_devargs.empty()) {
    args.emplace_back("-a");
    args.push_back(host.dpdk_pf_devargs);
  }
  return args;
}

Result<std::unique_ptr<Eal>> Eal::start(std::vector<std::string> args) {
  if (args.empty()) args.emplace_back("nicoffloadd");
  int expected = 0;
  if (!g_eal_state.compare_exchange_strong(expected, 1))
    return makeError(ErrorCode::kBusy, "dpdk.eal_args", "",
                     expected == 1
                         ? "the DPDK EAL already runs in this process; it starts once"
                         : "the DPDK EAL of this process was stopped; DPDK cannot start it again");
  std::unique_ptr<Eal> eal(new Eal(std::move(args)));
  for (auto& a : eal->args_) eal->argv_.push_back(a.data());
  eal->argv_.push_back(nullptr);
  const int n = rte_eal_init(static_cast<int>(eal->args_.size()), eal->argv_.data());
  if (n < 0) {
    const int err = rte_errno;
    g_eal_state = 2;  // a failed rte_eal_init cannot be retried either
    std::string joined;
    for (const auto& a : eal->args_) joined += (joined.empty() ? "" : " ") + a;
    return makeError(ealErrorCode(err), "dpdk.eal_args", joined,
                     std::string("rte_eal_init failed: ") + rte_strerror(err) + " (arguments: " + joined + ")");
  }
  eal->running_ = true;
  return eal;
}

Status Eal::stop() {
  if (!running_) return Status::success();
  std::uint16_t port;
  RTE_ETH_FOREACH_DEV(port) {
    rte_eth_dev_stop(port);  // an error here (already stopped) changes nothing for close
    rte_eth_dev_close(port);
  }
  const int rc = rte_eal_cleanup();
  running_ = false;
  g_eal_state = 2;
  if (rc < 0)
    return makeError(ErrorCode::kIo, "eal", "",
                     std::string("rte_eal_cleanup failed: ") + rte_strerror(-rc));
  return Status::success();
}

Eal::~Eal() { (void)stop(); }

std::string Eal::filePrefix() const {
  for (std::size_t i = 0; i < args_.size(); ++i) {
    if (args_[i] == "--file-prefix" && i + 1 < args_.size()) return args_[i + 1];
    if (args_[i].rfind("--file-prefix=", 0) == 0) return args_[i].substr(14);
  }
  return "rte";
}

}  // namespace nicoffload::dpdk
