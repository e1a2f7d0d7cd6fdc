// The vDPA devices, the warm pool, the ports' links (vdpa_devices.h).
#include "nicoffload/daemon/vdpa_devices.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

namespace nicoffload::daemon {

VdpaDevices::VdpaDevices(const model::HostConfig& host, vdpa::VdpaBackend* backend,
                         FailureBook& failures,
                         std::function<FailureBook::Clock::time_point()> now)
    : host_(host), backend_(backend), failures_(failures), now_(std::move(now)) {}

const std::set<std::uint16_t>* VdpaDevices::readyFor(const model::Port& port) const {
  const bool fits = poolEnabled() && !pool_vfs_.empty() &&
                    vdpa::effectiveKind(host_, port) == backend_->kind() &&
                    port.mtu == host_.vdpa_pool_mtu && port.queues == 1;
  return fits ? &pool_vfs_ : nullptr;
}

void VdpaDevices::fullPassBegins() {
  pool_failed_vfs_.clear();  // a full pass tries them again
  failures_.beginSweep(FailureBook::Kind::kPool);
  failures_.endSweep(FailureBook::Kind::kPool);  // and forgets why they failed
  stalled_ = false;
}

bool VdpaDevices::poolEnabled() const {
  return host_.vdpa_pool_size > 0 && backend_ && !cannot_set_mac_;
}

bool VdpaDevices::poolFits(const vdpa::VdpaDevice& d) const {
  return d.kind == backend_->kind() && (!d.mtu || *d.mtu == host_.vdpa_pool_mtu) &&
         (!d.max_vqp || *d.max_vqp == 1);
}

void VdpaDevices::hold(vdpa::VdpaDevice d) {
  if (d.vf) by_vf_[*d.vf] = d.name;
  devices_[d.name] = std::move(d);
}

void VdpaDevices::drop(const std::string& name) {
  const auto it = devices_.find(name);
  if (it == devices_.end()) return;
  if (it->second.vf) {
    const auto v = by_vf_.find(*it->second.vf);
    if (v != by_vf_.end() && v->second == name) by_vf_.erase(v);
    pool_vfs_.erase(*it->second.vf);
  }
  devices_.erase(it);
}

const vdpa::VdpaDevice* VdpaDevices::onVf(std::uint16_t vf) const {
  const auto it = by_vf_.find(vf);
  if (it == by_vf_.end()) return nullptr;
  const auto d = devices_.find(it->second);
  return d == devices_.end() ? nullptr : &d->second;
}

// The vDPA devices of the VFs in `scope` (a batch), or of every VF (a full
// pass), against the ports that want one (`want`, by name) and the warm pool.
// One device per VF: a device is matched to a port by the VF it sits on,
// whatever its name, so that a pool device ("nfovf<N>") a port claimed, or
// a device made before the pool existed ("nfo" + 12 hex), is kept.
void VdpaDevices::reconcile(const std::map<std::string, vdpa::VdpaDeviceSpec>& want,
                            const std::set<std::uint16_t>* scope, const vdpa::VfPool& vf_pool,
                            const FailFn& failed) {
  auto& backend = *backend_;
  std::map<std::uint16_t, const vdpa::VdpaDeviceSpec*> want_by_vf;
  for (const auto& [name, spec] : want) want_by_vf[spec.vf] = &spec;
  std::set<std::uint16_t> vfs;
  if (scope) {
    vfs = *scope;
  } else {
    // A full pass: every VF that holds or wants a device; and devices on a VF
    // that is not the PF's (read back from elsewhere) are not ours to keep.
    std::vector<std::string> stray;
    for (const auto& [name, d] : devices_)
      if (d.vf)
        vfs.insert(*d.vf);
      else
        stray.push_back(name);
    for (const auto& [vf, _] : want_by_vf) vfs.insert(vf);
    for (const auto& name : stray) {
      ++counters_.ops;
      if (auto s = backend.destroy(name); !s) {
        failed("vdpa " + name, s.error(), counters_.failures);
        continue;
      }
      spdlog::info("vdpa: {} destroyed (not on one of the PF's VFs)", name);
      drop(name);
    }
  }
  auto destroy = [&](const std::string& name, std::uint16_t vf, const char* why) {
    ++counters_.ops;
    if (auto s = backend.destroy(name); !s) {
      failed("vdpa vf " + std::to_string(vf), s.error(), counters_.failures);
      return false;
    }
    spdlog::info("vdpa: {} on vf {} destroyed ({})", name, vf, why);
    drop(name);
    return true;
  };
  // Sets the MAC of a device in place; false when the backend cannot (the
  // caller recreates the device) or failed (reported).
  auto set_mac = [&](vdpa::VdpaDevice& d, const MacAddr& mac, bool& unsupported) {
    ++counters_.ops;
    auto s = backend.setMac(d.name, mac);
    if (!s) {
      if (s.error().code == ErrorCode::kUnsupported) {
        unsupported = true;
        if (host_.vdpa_pool_size > 0 && !cannot_set_mac_) {
          cannot_set_mac_ = true;
          spdlog::warn(
              "vdpa pool: the vDPA backend cannot change a device's MAC ({}); the pool is off "
              "and every port's device is created on demand",
              s.error().message);
        }
      } else {
        failed("vdpa vf " + std::to_string(*d.vf), s.error(), counters_.failures);
      }
      return false;
    }
    d.mac = mac;
    return true;
  };
  for (const auto vf : vfs) {
    const std::string what = "vdpa vf " + std::to_string(vf);
    const auto w = want_by_vf.find(vf);
    const vdpa::VdpaDevice* held = onVf(vf);
    if (w == want_by_vf.end()) {
      // No port wants a device here: back to the pool, or gone.
      if (!held) continue;
      const std::string name = held->name;
      const bool free_vf = !vf_pool.portOf(vf);
      const bool pool = poolEnabled() && free_vf && poolFits(*held) &&
                        (pool_vfs_.count(vf) || pool_vfs_.size() < host_.vdpa_pool_size);
      if (pool) {
        auto& d = devices_.at(name);
        bool unsupported = false;
        if (d.mac && !d.mac->isZero()) {
          if (!set_mac(d, MacAddr{}, unsupported)) {
            if (unsupported) destroy(name, vf, "it cannot be scrubbed for the pool");
            continue;
          }
          spdlog::info("vdpa: {} on vf {} scrubbed and back in the pool", name, vf);
        }
        pool_vfs_.insert(vf);
        continue;
      }
      destroy(name, vf, free_vf ? "the pool is full" : "its port needs none");
      continue;
    }
    const vdpa::VdpaDeviceSpec& spec = *w->second;
    if (spec.kind != backend.kind()) {
      if (held) destroy(held->name, vf, "the port asks for another vDPA kind");
      failed(what,
             makeError(ErrorCode::kUnsupported, "port.vdpa", model::toString(spec.kind),
                       std::string("port ") + spec.port.str() + " asks for vDPA '" +
                           model::toString(spec.kind) + "' but this host runs the '" +
                           model::toString(backend.kind()) + "' backend"),
             counters_.failures);
      continue;
    }
    const bool warm = pool_vfs_.count(vf) > 0;
    if (held) {
      auto& d = devices_.at(held->name);
      const bool fits = d.kind == spec.kind && (!d.mtu || *d.mtu == spec.mtu) &&
                        (!d.max_vqp || *d.max_vqp == spec.max_vqp);
      bool unsupported = false;
      if (fits && (!d.mac || *d.mac == spec.mac || set_mac(d, spec.mac, unsupported))) {
        if (warm) {
          pool_vfs_.erase(vf);
          ++counters_.pool_claims;
          spdlog::info("vdpa: port {} claimed pool device {} on vf {}", spec.port.str(), d.name,
                       vf);
        }
        updateLink(spec.port, d);
        continue;
      }
      if (fits && !unsupported) continue;  // setting the MAC failed: reported, retried
      if (!destroy(d.name, vf, fits ? "its MAC cannot be changed" : "the port wants another "
                                                                    "MTU or queue count"))
        continue;
    }
    // Created on demand: named after the port, unless a device elsewhere
    // already has that name (it went back to the pool with its port's name).
    vdpa::VdpaDeviceSpec create = spec;
    if (devices_.count(create.name)) create.name = vdpa::poolDeviceName(vf);
    if (poolEnabled()) {
      ++counters_.pool_misses;
      spdlog::warn("vdpa pool: no ready device for port {} on vf {}; creating {} on demand",
                   spec.port.str(), vf, create.name);
    }
    ++counters_.ops;
    auto dev = backend.create(create);
    if (!dev) {
      failed(what, dev.error(), counters_.failures);
      continue;
    }
    spdlog::info("vdpa: {} created on vf {} ({})", create.name, vf,
                 dev->vhost_vdpa_path.empty() ? dev->socket_path : dev->vhost_vdpa_path);
    const std::string name = dev->name;
    hold(std::move(dev).value());
    updateLink(spec.port, devices_.at(name));
  }
}

// Makes pool devices on free VFs, at most `max_creates` per call (tick()
// calls it between requests, so a request waits behind at most that many
// device creations), until the pool has vdpa.pool.size devices; it starts
// when fewer than low_water are ready (and at start, when below size).
void VdpaDevices::refill(std::size_t max_creates, const vdpa::VfPool& vf_pool) {
  if (!poolEnabled()) return;
  if (!refilling_) {
    if (pool_vfs_.size() >= host_.vdpa_pool_low_water && !fill_at_start_) return;
    if (pool_vfs_.size() >= host_.vdpa_pool_size) {
      fill_at_start_ = false;
      return;
    }
    refilling_ = true;
    if (short_logged_)  // said already: the pool cannot be filled now
      spdlog::debug("vdpa pool: {} of {} devices ready; trying to refill", pool_vfs_.size(),
                    host_.vdpa_pool_size);
    else
      spdlog::info("vdpa pool: {} of {} devices ready; refilling", pool_vfs_.size(),
                   host_.vdpa_pool_size);
  }
  auto& backend = *backend_;
  std::size_t made = 0;
  for (std::uint16_t vf = 0; vf < host_.vf_count && made < max_creates &&
                             pool_vfs_.size() < host_.vdpa_pool_size;
       ++vf) {
    if (vf_pool.portOf(vf) || by_vf_.count(vf) || pool_failed_vfs_.count(vf)) continue;
    vdpa::VdpaDeviceSpec spec;
    spec.name = vdpa::poolDeviceName(vf);
    spec.kind = backend.kind();
    spec.vf = vf;
    spec.mtu = host_.vdpa_pool_mtu;
    spec.max_vqp = 1;
    ++made;
    ++counters_.ops;
    auto dev = backend.create(spec);
    if (!dev) {
      ++counters_.failures;
      pool_failed_vfs_.insert(vf);  // not retried before the next full pass
      failures_.failed(FailureBook::Kind::kPool, "vdpa vf " + std::to_string(vf), dev.error(),
                       now_());
      spdlog::error("vdpa pool: making {} on vf {}: {}", spec.name, vf, dev.error().describe());
      continue;
    }
    ++counters_.pool_refills;
    failures_.cleared("vdpa vf " + std::to_string(vf));
    hold(std::move(dev).value());
    pool_vfs_.insert(vf);
  }
  if (pool_vfs_.size() >= host_.vdpa_pool_size || made == 0) {
    // Nothing more can be made now (no free VF without a device, or each
    // failed): wait for a VF to free up or the next full pass.
    stalled_ = made == 0 && pool_vfs_.size() < host_.vdpa_pool_size;
    if (stalled_ && !short_logged_) {
      spdlog::warn("vdpa pool: only {} of {} devices could be made (no free VF without a device, "
                   "or creating failed); ports get devices created on demand",
                   pool_vfs_.size(), host_.vdpa_pool_size);
      short_logged_ = true;
    }
    if (pool_vfs_.size() >= host_.vdpa_pool_size) {
      spdlog::info("vdpa pool: {} devices ready", pool_vfs_.size());
      short_logged_ = false;
    }
    refilling_ = false;
    fill_at_start_ = false;
  }
}

bool VdpaDevices::wantsWork() const {
  if (!poolEnabled() || stalled_) return false;
  if (refilling_) return true;
  return (fill_at_start_ && pool_vfs_.size() < host_.vdpa_pool_size) ||
         pool_vfs_.size() < host_.vdpa_pool_low_water;
}

std::string VdpaDevices::linkPath(const model::PortKey& key) const {
  return linkDir() + "/" + vdpa::deviceName(key);
}

std::string VdpaDevices::linkDir() const {
  if (!host_.vdpa_link_dir.empty()) return host_.vdpa_link_dir;
  const auto slash = host_.socket_path.rfind('/');
  return (slash == std::string::npos ? std::string(".") : host_.socket_path.substr(0, slash)) +
         "/vdpa";
}

// A stable name for the port's device: QEMU is given the link (a domain
// definition can name it before the device exists), which points at
// /dev/vhost-vdpa-N or the vhost-user socket. Replaced atomically (a new
// link renamed over the old one).
void VdpaDevices::updateLink(const model::PortKey& key, const vdpa::VdpaDevice& d) const {
  const std::string& target = d.vhost_vdpa_path.empty() ? d.socket_path : d.vhost_vdpa_path;
  if (target.empty()) return;
  const std::string link = linkPath(key);
  // Plain syscalls: this runs for every new port, on the request's path.
  char current[4096];
  const ssize_t n = ::readlink(link.c_str(), current, sizeof current);
  if (n >= 0 && static_cast<std::size_t>(n) == target.size() &&
      target.compare(0, target.size(), current, static_cast<std::size_t>(n)) == 0)
    return;
  const std::string tmp = link + ".new";
  (void)::unlink(tmp.c_str());
  int rc = ::symlink(target.c_str(), tmp.c_str());
  if (rc != 0 && errno == ENOENT) {  // the directory is made on first use
    std::error_code ec;
    std::filesystem::create_directories(linkDir(), ec);
    rc = ::symlink(target.c_str(), tmp.c_str());
  }
  if (rc == 0) rc = ::rename(tmp.c_str(), link.c_str());
  if (rc != 0) {
    spdlog::warn("vdpa: cannot link {} to {}: {} (the reply's device path still works)", link,
                 target, std::strerror(errno));
    (void)::unlink(tmp.c_str());
  }
}

void VdpaDevices::removeLink(const model::PortKey& key) const {
  (void)::unlink(linkPath(key).c_str());
}

nlohmann::json VdpaDevices::poolJson() const {
  std::string state;
  if (host_.vdpa_pool_size == 0 || !backend_) {
    state = "off";
  } else if (cannot_set_mac_) {
    state = "unsupported";  // the backend cannot re-MAC a device: created on demand
  } else if (wantsWork()) {
    state = pool_vfs_.empty() ? "empty, refilling" : "refilling";
  } else if (pool_vfs_.empty()) {
    state = "empty";  // ports get devices created on demand
  } else {
    state = "ready";
  }
  nlohmann::json vfs = nlohmann::json::array();
  for (const auto vf : pool_vfs_) vfs.push_back(vf);
  return {{"size", host_.vdpa_pool_size},
          {"low_water", host_.vdpa_pool_low_water},
          {"mtu", host_.vdpa_pool_mtu},
          {"ready", pool_vfs_.size()},
          {"state", state},
          {"vfs", std::move(vfs)},
          {"claimed", counters_.pool_claims},
          {"created_on_demand", counters_.pool_misses},
          {"made_ahead", counters_.pool_refills}};
}

}  // namespace nicoffload::daemon
