// The software path backend: programs the kernel objects the planner emits
// (flowrules/sw_objects.h) and reads them back. One injected seam
// (STYLE.md point 2): the daemon and the CLI take a SoftwarePath; the kernel
// implementation talks netlink (libnl), tests may use another.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "nicoffload/common/error.h"
#include "nicoffload/flowrules/diff.h"
#include "nicoffload/flowrules/port_traffic.h"
#include "nicoffload/flowrules/sw_objects.h"

namespace nicoffload::offload {

// One object the kernel refused, with the kernel's own words.
struct SwObjectFailure {
  std::string object;  // e.g. "route 10.0.0.5/32 dev rep11 table 254"
  Error error;         // code from errno; message carries strerror and the extended ACK text
};

struct SwApplyReport {
  std::size_t succeeded = 0;
  std::vector<SwObjectFailure> failures;
  bool ok() const { return failures.empty(); }
};

// What read-back looks at besides the objects of a desired state: routes are
// ours when they carry our protocol in our table; VXLAN devices are ours by
// their name prefix; a device is one of ours when it is named in the desired
// state or carries one of our routes.
struct ReadBackScope {
  std::uint32_t route_table = 254;
  std::uint8_t route_protocol = 240;
};

// Threads: apply() and remove() are called by one thread at a time (they
// share the backend's netlink socket and link cache). readBack() may run on
// another thread at the same time as apply() or remove() on the same
// object: an implementation gives it state of its own (the kernel path: its
// own netlink socket, opened in the namespace, and a lock of its own, so
// that concurrent readBack() calls run one after the other) and shares
// nothing mutable with apply() and remove(). A read-back that overlaps
// changes sees each object either before or after its change; the kernel
// path runs a dump again (up to 4 times) when the kernel reports it
// interrupted by a change (NLM_F_DUMP_INTR).
class SoftwarePath {
 public:
  virtual ~SoftwarePath() = default;

  // Adds or updates every object; idempotent (what exists and matches is a
  // success). Objects are applied in dependency order: devices, settings,
  // addresses, FDB and neighbours, routes. A failure of one object does not
  // stop the others; each is reported.
  //   Errors per object: kNotFound (unknown interface), kConflict (a /32 is
  //   already routed by someone else: never replaced), kInvalidValue,
  //   kBusy, kIo (netlink I/O).
  virtual SwApplyReport apply(const flowrules::SoftwarePathState& objects) = 0;

  // Removes every object (reverse order); removing what is gone succeeds.
  // Device settings are restored to the namespace's defaults; a device's
  // MAC and link state are left as they are.
  virtual SwApplyReport remove(const flowrules::SoftwarePathState& objects) = 0;

  // What the kernel holds: the objects keyed like `desired`, plus every
  // object that is ours by the markers of ReadBackScope. Safe to call from
  // another thread while apply() or remove() runs (see above).
  //   Errors: kIo (a dump failed: the socket, or the kernel refused it),
  //   kNotFound (the namespace went away, for the /proc reads).
  virtual Result<flowrules::SoftwarePathState> readBack(const flowrules::SoftwarePathState& desired,
                                                        const ReadBackScope& scope) = 0;

  // Whether what the path holds may have changed since the last call, by
  // anyone (ourselves included). Main thread only. A full pass that finds
  // nothing else changed skips its plan and read-back when this says no;
  // the default cannot tell, and says yes. The kernel path listens to the
  // namespace's link, address, neighbour and route notifications (a lost
  // one, ENOBUFS, counts as a change); sysctls send none, which is why
  // every Nth pass computes in full anyway (ControllerOptions).
  virtual bool changedSinceLastAsked() { return true; }

  // Every netdev's packet and byte counters in the path's namespace, by
  // name (rtnl_link_stats64: rx is what the netdev received, as the kernel
  // sees it). The per-port traffic figures take each representor's from
  // here. Safe to call from another thread while apply(), remove() or
  // readBack() run (the kernel path: a socket and a lock of its own).
  //   Errors: kIo (the dump failed), kUnsupported (this path keeps none:
  //   the default).
  virtual Result<std::unordered_map<std::string, flowrules::LinkTraffic>> linkTraffic() {
    return makeError(ErrorCode::kUnsupported, "software_path", "",
                     "this software path keeps no netdev counters");
  }
};

// A diff split into what to apply (added and changed objects) and what to
// remove, ready for SoftwarePath::apply / remove.
struct SwChanges {
  flowrules::SoftwarePathState apply;
  flowrules::SoftwarePathState remove;
};
SwChanges splitDiff(const flowrules::SoftwarePathDiff& d);

// Converges the kernel to `desired`: reads back, diffs, applies what is
// missing or different, removes what is ours and no longer desired.
struct ConvergeReport {
  flowrules::SoftwarePathDiff diff;  // what was found to differ
  SwApplyReport applied;
  SwApplyReport removed;
  bool ok() const { return applied.ok() && removed.ok(); }
};
Result<ConvergeReport> converge(SoftwarePath& path, const flowrules::SoftwarePathState& desired,
                                const ReadBackScope& scope);

struct KernelSoftwarePathOptions {
  std::string netns;  // name under /run/netns; empty = the caller's namespace
  // Netlink messages per batch written to the socket in one send, and the
  // most messages awaiting their ACK.
  std::size_t batch_messages = 128;
  std::size_t window = 4096;
};

// The Linux kernel software path over rtnetlink (libnl-3 route). Read-back
// parses the kernel's dumps as they arrive (no libnl cache) on a socket of
// its own with NETLINK_GET_STRICT_CHK, so that the kernel itself leaves out
// the routes of other tables and protocols.
// Errors: kNotFound when the namespace does not exist, kIo when the netlink
// socket cannot be opened.
Result<std::unique_ptr<SoftwarePath>> openKernelSoftwarePath(const KernelSoftwarePathOptions& options);

}  // namespace nicoffload::offload
