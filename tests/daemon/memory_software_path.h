// A software path held in memory, shared by the controller's and the
// reconciler's tests.
#pragma once

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>

#include "nicoffload/common/error.h"
#include "nicoffload/flowrules/sw_objects.h"
#include "nicoffload/offload/software_path.h"

namespace nicoffload::daemon::test_support {

// A software path held in memory, a first-class SoftwarePath: each kind of
// object kept by key; failures on command (the next N objects whose
// description contains a word fail, as the kernel would refuse them).
class MemorySoftwarePath final : public offload::SoftwarePath {
 public:
  // Thread-safe as the kernel path is: a full pass reads back from its worker.
  offload::SwApplyReport apply(const flowrules::SoftwarePathState& o) override {
    if (throw_on_apply_.exchange(false)) throw std::runtime_error("injected: apply threw");
    const std::lock_guard lock(mutex_);
    changed_ = true;  // the kernel notifies our own changes too
    offload::SwApplyReport r;
    upsert(o.sysctls, held_.sysctls, r);
    upsert(o.links, held_.links, r);
    upsert(o.addresses, held_.addresses, r);
    upsert(o.vxlan_devices, held_.vxlan_devices, r);
    upsert(o.fdb, held_.fdb, r);
    upsert(o.neighbours, held_.neighbours, r);
    upsert(o.routes, held_.routes, r);
    upsert(o.neighbours6, held_.neighbours6, r);
    upsert(o.routes6, held_.routes6, r);
    upsert(o.rules6, held_.rules6, r);
    return r;
  }
  offload::SwApplyReport remove(const flowrules::SoftwarePathState& o) override {
    const std::lock_guard lock(mutex_);
    changed_ = true;
    offload::SwApplyReport r;  // removing what is gone succeeds
    erase(o.sysctls, held_.sysctls, r);
    erase(o.links, held_.links, r);
    erase(o.addresses, held_.addresses, r);
    erase(o.vxlan_devices, held_.vxlan_devices, r);
    erase(o.fdb, held_.fdb, r);
    erase(o.neighbours, held_.neighbours, r);
    erase(o.routes, held_.routes, r);
    erase(o.neighbours6, held_.neighbours6, r);
    erase(o.routes6, held_.routes6, r);
    erase(o.rules6, held_.rules6, r);
    return r;
  }
  Result<flowrules::SoftwarePathState> readBack(const flowrules::SoftwarePathState&,
                                                const offload::ReadBackScope&) override {
    if (throw_on_read_back_.exchange(false)) throw std::out_of_range("injected: readBack threw");
    if (read_back_gate.valid()) read_back_gate.wait();
    const std::lock_guard lock(mutex_);
    ++read_backs;
    return held_;
  }
  // With reports_changes, says what the kernel path's notifications say:
  // whether apply(), remove() or a drift(notified) happened since the last
  // call. Without it (the default), always yes.
  bool changedSinceLastAsked() override {
    if (!reports_changes) return true;
    return changed_.exchange(false);
  }
  std::atomic<bool> reports_changes = false;
  // While valid, readBack() waits for it: a full pass's worker held half-way,
  // so that a test knows the pass is in flight. Set it before the pass starts.
  std::shared_future<void> read_back_gate;
  std::atomic<int> read_backs = 0;
  // Someone else removes every route; `notified`: the kernel says so (a
  // route), or not (what sysctls do).
  void drift(bool notified) {
    const std::lock_guard lock(mutex_);
    held_.routes.clear();
    if (notified) changed_ = true;
  }
  // The next apply() (or readBack()) throws, as a bug or a library might.
  void throwOnApply() { throw_on_apply_ = true; }
  void throwOnReadBack() { throw_on_read_back_ = true; }
  void failNext(const std::string& word, int times) {
    fail_word_ = word;
    fail_left_ = times;
  }
  const flowrules::SoftwarePathState& held() const { return held_; }
  bool hasRoute(const std::string& dst, const std::string& dev) const {
    for (const auto& r : held_.routes)
      if (r.dst.str() == dst && r.dev == dev) return true;
    return false;
  }

 private:
  static std::string describe(const flowrules::RouteEntry& x) {
    return "route " + x.dst.str() + " dev " + x.dev;
  }
  static std::string describe(const flowrules::NeighbourEntry& x) {
    return "neigh " + x.ip.str() + " dev " + x.dev;
  }
  static std::string describe(const flowrules::SysctlSetting& x) { return "sysctl net/" + x.path; }
  static std::string describe(const flowrules::LinkSetting& x) { return "link " + x.dev; }
  static std::string describe(const flowrules::AddressEntry& x) {
    return "address " + x.prefix.str() + " dev " + x.dev;
  }
  static std::string describe(const flowrules::VxlanDevice& x) { return "vxlan device " + x.name; }
  static std::string describe(const flowrules::Neighbour6Entry& x) {
    return std::string(x.proxy ? "neigh6 proxy " : "neigh6 ") + x.ip.str() + " dev " + x.dev;
  }
  static std::string describe(const flowrules::Rule6Entry& x) {
    return flowrules::describeRule6(x);
  }
  static std::string describe(const flowrules::Route6Entry& x) {
    return "route6 " + x.dst.str() + " dev " + x.dev;
  }
  static std::string describe(const flowrules::FdbEntry& x) {
    return "fdb " + x.mac.str() + " dev " + x.dev;
  }

  template <class T>
  void upsert(const std::vector<T>& in, std::vector<T>& held, offload::SwApplyReport& r) {
    for (const auto& x : in) {
      const auto what = describe(x);
      if (!fail_word_.empty() && fail_left_ > 0 && what.find(fail_word_) != std::string::npos) {
        --fail_left_;
        r.failures.push_back(
            {what, makeError(ErrorCode::kNotFound, what, "", "kernel: No such device")});
        continue;
      }
      auto it =
          std::find_if(held.begin(), held.end(), [&](const T& h) { return h.key() == x.key(); });
      if (it == held.end()) {
        held.push_back(x);
      } else {
        *it = x;
      }
      std::sort(held.begin(), held.end(), [](const T& a, const T& b) { return a.key() < b.key(); });
      ++r.succeeded;
    }
  }
  template <class T>
  void erase(const std::vector<T>& in, std::vector<T>& held, offload::SwApplyReport& r) {
    for (const auto& x : in) {
      held.erase(
          std::remove_if(held.begin(), held.end(), [&](const T& h) { return h.key() == x.key(); }),
          held.end());
      ++r.succeeded;
    }
  }

  std::mutex mutex_;
  flowrules::SoftwarePathState held_;
  std::atomic<bool> changed_ = true;
  std::atomic<bool> throw_on_apply_ = false;
  std::atomic<bool> throw_on_read_back_ = false;
  std::string fail_word_;
  int fail_left_ = 0;
};

}  // namespace nicoffload::daemon::test_support
