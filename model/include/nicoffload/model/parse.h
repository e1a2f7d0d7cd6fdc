// Parsing and validation of the JSON inputs (nlohmann/json).
//
// Every error names the field as a JSON path ("ports[2].addresses[0]") and
// the offending value. Unknown keys are refused, so a typo never passes
// silently. Schemas: docs/config.md (host, ports) and hw-profiles/README.md.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "nicoffload/common/error.h"
#include "nicoffload/common/file_read.h"
#include "nicoffload/model/hw_profile.h"
#include "nicoffload/model/intent.h"

namespace nicoffload::model {

// Host config (/etc/nicoffload/host.json).
Result<HostConfig> parseHostConfig(const nlohmann::json& doc);

// One port object (as in the "ports" array, or a control API request). `path`
// prefixes the field names in errors.
Result<Port> parsePort(const nlohmann::json& doc, const std::string& path = "port");

// One remote endpoint object.
Result<RemoteEndpoint> parseRemote(const nlohmann::json& doc,
                                   const std::string& path = "remote");

// The ports file: {"ports": [...], "remotes": [...]}; "remotes" is optional.
// Fills ports and remotes of `intent` (host is left as it is).
Status parsePortsFile(const nlohmann::json& doc, Intent& intent);

// A hardware profile document. `name` is the profile's name (file stem); the
// document's "name" must match it.
Result<HwProfile> parseHwProfile(const nlohmann::json& doc, const std::string& name);

// What the underlay uses an address for, to name it in errors: an address
// the underlay uses must never be a VM or remote /32 (a /32 towards a VF or a
// remote would take the underlay's own traffic).
struct UnderlayUse {
  enum class Kind : std::uint8_t {
    kGateway,         // gateway.ipv4
    kHostVtep,        // underlay.vtep
    kNextHop,         // underlay.next_hops[index].ipv4
    kDefaultNextHop,  // underlay.default_next_hop
    kRemoteVtep,      // remotes[index].vtep
    kRemoteNextHop,   // remotes[index].next_hop
  };
  static constexpr std::uint32_t kNoIndex = UINT32_MAX;  // a remote outside any file (the daemon)
  Kind kind = Kind::kGateway;
  std::uint32_t index = 0;  // into next_hops or remotes
  IpAddr remote;            // the remote's address, for kRemoteVtep and kRemoteNextHop

  // "the underlay next hop underlay.next_hops[0]", "the VTEP of remote
  // 10.20.1.1 (remotes[2].vtep)".
  std::string describe() const;
};

// The addresses the underlay uses, each with its first use.
class UnderlayAddresses {
 public:
  // Gateway, host VTEP, next hops and the default next hop.
  explicit UnderlayAddresses(const HostConfig& host);
  // The remote's VTEP and next hop (when it names them); `index` is its
  // position in the remotes list.
  void addRemote(const RemoteEndpoint& remote, std::size_t index);
  // Forgets one remote's VTEP and next hop (each counted per remote).
  void removeRemote(const RemoteEndpoint& remote);
  // The first use of `address`, or nullptr when the underlay does not use it.
  const UnderlayUse* find(const IpAddr& address) const {
    auto it = uses_.find(address);
    return it == uses_.end() ? nullptr : &it->second;
  }
  // Another IPv6 VTEP (this host's or a remote's) whose router MAC equals
  // `vtep`'s (the same last 32 bits), or nullptr.
  const IpAddr* routerMacTakenBy(const IpAddr& vtep) const {
    auto it = router_macs_.find(routerMacKey(vtep));
    return it == router_macs_.end() || it->second == vtep ? nullptr : &it->second;
  }

 private:
  std::unordered_map<IpAddr, UnderlayUse> uses_;
  std::unordered_map<IpAddr, std::uint32_t> remote_refs_;  // remotes using the address
  // IPv6 VTEPs by router MAC key: the first VTEP seen with each.
  std::unordered_map<std::uint32_t, IpAddr> router_macs_;
};

// Cross-object checks of a whole intent: duplicate IP/MAC/VF/port key across
// ports, VF beyond vf_count, VNI needed in VXLAN mode, remote addresses that
// collide with local ones, remotes without next hop / VTEP, and addresses
// the underlay uses (gateway, VTEPs, next hops) given as a VM or remote /32,
// or a remote's VTEP / next hop that is a VM or remote /32 (kConflict, the
// error names both uses).
Status validateIntent(const Intent& intent);

// Checks one port against the rest of the intent as if it were added (or
// replaced, when its key exists): the same checks as validateIntent, for
// admission control. `intent` is not modified.
Status validatePortAgainst(const Intent& intent, const Port& port);

// The indexes behind validatePortAgainst(), kept between calls: a one-port
// change is checked in O(addresses of the port) instead of O(intent). Built
// from a valid intent; kept in step with upsertPort/removePort.
class IntentIndex {
 public:
  explicit IntentIndex(const Intent& intent);

  // The same checks and errors as validatePortAgainst(intent, port).
  Status checkPort(const Port& port) const;
  // Checks a remote (added, or replacing the one with its address: remove
  // that one first) against the host and the rest: the remote's own fields
  // (as validateIntent), its address against the VM /32s and the underlay's
  // addresses (of the host and of the other remotes), its VTEP / next hop
  // against the VM and remote /32s. Fields are named "remote.<key>".
  // hops_may_be_remotes: a route learned from the kernel, whose next hop the
  // routing daemon chose: the underlay wins, so a remote at that address is
  // not a reason to refuse the route (learned_routes.cc refuses the remote).
  Status checkRemote(const RemoteEndpoint& remote, bool hops_may_be_remotes = false) const;
  // Records a remote at `position` of the intent's remotes (call after
  // checkRemote, with no remote of that address recorded).
  void addRemote(const RemoteEndpoint& remote, std::size_t position);
  // Forgets a recorded remote (its VTEP and next hop uses included).
  void removeRemote(const RemoteEndpoint& remote);
  // The remote at `address` changed position (a removal moved it).
  void moveRemote(const IpAddr& address, std::size_t position);
  // The position of the remote with this address, if recorded.
  std::optional<std::size_t> findRemote(const IpAddr& address) const;
  std::size_t remoteCount() const { return remotes_.size(); }
  // Records `port` (replacing the version with the same key). Call after checkPort.
  void upsertPort(const Port& port);
  void removePort(const PortKey& key);

 private:
  HostConfig host_;
  std::map<PortKey, Port> ports_;
  std::unordered_map<Ipv4Addr, PortKey> by_ip_;
  std::unordered_map<Ipv6Addr, PortKey> by_ip6_;
  std::unordered_map<MacAddr, PortKey> by_mac_;
  std::unordered_map<std::uint16_t, PortKey> by_vf_;
  std::unordered_map<std::string, PortKey> by_rep_;
  std::unordered_map<IpAddr, std::uint32_t> remotes_;  // address -> position
  UnderlayAddresses underlay_;
};

// An origin name (RemoteEndpoint::origin): 1..32 of [a-z0-9._-].
inline constexpr std::size_t kMaxOriginBytes = 32;
Status checkOriginName(const std::string& origin, const std::string& field);

// Why `a` cannot be a VM or remote host address (0.0.0.0, multicast,
// broadcast, loopback), or nullopt when it can.
std::optional<std::string> unusableHostAddress(Ipv4Addr a);
// The same for IPv6: ::, ::1, multicast, link-local (fe80::/10: the VM's own
// link, never routed) and v4-mapped (::ffff:a.b.c.d: give the IPv4 address).
std::optional<std::string> unusableHostAddress(const Ipv6Addr& a);

// The JSON forms parsePort / parseRemote read (for the state file and the
// control API): toJson then parse gives the same object back.
nlohmann::json toJson(const Port& port);
nlohmann::json toJson(const RemoteEndpoint& remote);

// Entry points on raw text, for untrusted input and fuzzing: never throw,
// whatever the bytes (invalid UTF-8, nesting, duplicate keys, huge numbers
// are refused as errors by parseJsonInput). Errors as the document versions
// above, field names without a file prefix.
Result<HostConfig> parseHostConfigText(std::string_view text);
// Fills ports and remotes of `intent`, as parsePortsFile.
Status parsePortsFileText(std::string_view text, Intent& intent);
Result<HwProfile> parseHwProfileText(std::string_view text, const std::string& name);
// A whole admission batch, as the daemon admits it: the host config and a
// ports file parsed, validateIntent on the whole, and each port and remote
// through IntentIndex one by one (the daemon's incremental admission path).
// Returns the first error.
Status checkAdmissionText(std::string_view host_text, std::string_view ports_text);

// File helpers: read and parse a JSON file; errors name the path and, for
// syntax errors, the byte offset. The file is read with readRegularFile()
// (common/file_read.h): a directory, a device, a FIFO or a file larger than
// `max_bytes` is refused (kInvalidValue) naming `field` (default: the path),
// a file that cannot be opened is kIo. Host configs and profiles are capped
// at kMaxConfigFileBytes.
Result<nlohmann::json> readJsonFile(const std::string& path,
                                    std::size_t max_bytes = kMaxInputFileBytes,
                                    const std::string& field = {});
Result<HostConfig> loadHostConfig(const std::string& path);
// `field` names the setting the path came from in read errors (default: the path).
Result<HwProfile> loadHwProfile(const std::string& path, const std::string& field = {});

// Resolves a host's hw_profile setting to a file: a path containing '/' or
// ending in ".json" is used as it is; a bare name is looked up as
// <profile_dir>/<name>.json. "auto" needs the NIC backend and is refused here.
Result<std::string> resolveProfilePath(const std::string& setting, const std::string& profile_dir);

// The host config's hardware profile: `setting` (its hw_profile) resolved in
// profile_dir and loaded. A setting that names no usable profile is blamed
// on "<host_file>: hw_profile" (kNotFound when the file is missing), not
// only on the path it resolved to; errors inside the profile name the
// profile file.
Result<HwProfile> loadHostProfile(const std::string& setting, const std::string& host_file,
                                  const std::string& profile_dir);

// Why one DPDK EAL argument (dpdk.eal_args, nicoffload-hwtest --eal-args)
// must not reach rte_eal_init, or "" when it may: empty, control
// characters, "--" (ends the EAL's options), and -h/--help/--version in
// any form getopt accepts ("--he", "--help=x", "-vh"): the EAL prints its
// usage and exits the whole process with status 0, so a run would end
// "successfully" having done nothing.
std::string ealArgumentProblem(std::string_view argument);

// What a host config asks of its hardware profile, checked before anything
// is opened or planned (nicoffloadd at start and with --check, nicoffloadctl
// host-check), so that a config that cannot work is refused at once. Errors
// (kUnsupported, the field and value named, the profile's source quoted):
//  - "uplink.vf_count": more VFs than the profile's max_vfs;
//  - "vdpa.pool.size": a vDPA pool on a profile without the vDPA flavour of
//    backends.vdpa;
//  - "backends.vdpa": a vDPA backend (kernel, dpdk, sim) the profile lacks
//    (every port without its own "vdpa" would be refused).
// The planner checks each port's own vDPA flavour (ports[i].vdpa).
Status checkHostForProfile(const HostConfig& host, const HwProfile& profile);

}  // namespace nicoffload::model
