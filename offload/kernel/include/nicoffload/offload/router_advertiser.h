#pragma once
// IPv6 router advertisements for the VMs (issue 23): on every device where
// the kernel answers neighbour solicitations for the gateway's link-local
// address (a proxy NDP entry, which the kernel software path installs on
// the representor of each port with IPv6 addresses), the gateway advertises
// itself as the default router, so that a VM with a static /128 (or one
// from DHCPv6) finds its default route without configuration of its own.
//
// What is sent (RFC 4861 4.2, 6.2): ICMPv6 type 134 from the gateway's
// address (not configured on the device: IPV6_FREEBIND) to ff02::1, hop
// limit 255, router lifetime `router_lifetime`, M and O flags clear, no
// prefix information (the VMs' addresses are /128s of their own, never
// made by SLAAC), the gateway's MAC as the source link-layer option. When:
// at once on a device seen for the first time, every `interval` after, and
// in answer to a router solicitation on it (at most one per 3 s per device,
// MIN_DELAY_BETWEEN_RAS). A device whose proxy entry is gone gets a last
// advertisement with lifetime 0 (the VM drops its default route at once)
// when it still exists.
//
// One thread of its own, owned by this object: it reads the proxy entries
// (a netlink dump every `rescan`), receives solicitations on a raw ICMPv6
// socket filtered to type 133, and sends. Both sockets live in `netns`.
// Destroying the object stops the thread (withdrawing nothing: a restart
// keeps the VMs' routes).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "nicoffload/common/error.h"
#include "nicoffload/common/net_types.h"

namespace nicoffload::offload {

struct RouterAdvertiserOptions {
  std::string netns;  // the kernel path's namespace; empty: the daemon's
  Ipv6Addr gateway;   // source of the advertisements (link-local), and the proxy entries' address
  MacAddr gateway_mac;
  std::chrono::seconds interval{200};          // unsolicited, per device (RFC 4861: 4..1800 s)
  std::chrono::seconds router_lifetime{1800};  // 0..9000 s
  std::chrono::milliseconds rescan{2000};      // how often the proxy entries are read
};

struct RouterAdvertiserCounters {
  std::uint64_t sent = 0;          // advertisements sent
  std::uint64_t solicited = 0;     // solicitations received on an advertised device
  std::uint64_t send_errors = 0;   // sendmsg failures
  std::uint64_t scan_errors = 0;   // proxy-entry dumps that failed
  std::uint64_t devices = 0;       // devices advertised on now
};

class RouterAdvertiser {
 public:
  // Opens the sockets in `netns` and starts the thread. Errors: kNotFound
  // (no such namespace), kInvalidValue (a gateway that is not link-local
  // unicast, an interval outside 4..1800 s, a lifetime above 9000 s or below
  // the interval), kIo (a socket).
  static Result<std::unique_ptr<RouterAdvertiser>> start(const RouterAdvertiserOptions& options);
  ~RouterAdvertiser();
  RouterAdvertiser(const RouterAdvertiser&) = delete;
  RouterAdvertiser& operator=(const RouterAdvertiser&) = delete;

  RouterAdvertiserCounters counters() const;

  class Impl;

 private:
  explicit RouterAdvertiser(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nicoffload::offload
