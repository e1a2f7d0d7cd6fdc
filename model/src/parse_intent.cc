// Host config, port and remote endpoint parsing, and whole-intent validation.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <unordered_map>

#include "json_reader.h"
#include "nicoffload/model/json_input.h"
#include "nicoffload/model/parse.h"

namespace nicoffload::model {
namespace {

using detail::ObjectReader;
using nlohmann::json;

constexpr std::int64_t kMaxVni = (1 << 24) - 1;  // RFC 7348 §5: 24-bit VNI

bool validPci(const std::string& s) {
  // Domain:bus:device.function, "0000:03:00.0" (lspci -D form).
  if (s.size() != 12 || s[4] != ':' || s[7] != ':' || s[10] != '.') return false;
  for (std::size_t i : {0u, 1u, 2u, 3u, 5u, 6u, 8u, 9u})
    if (!std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  return s[11] >= '0' && s[11] <= '7';
}

// Linux netdev names: 1..15 bytes (IFNAMSIZ-1), no '/', ':' or whitespace,
// not "." or ".." (the kernel's dev_valid_name()). The kernel takes any other
// byte; we take printable ASCII only, because the name travels in JSON
// (invalid UTF-8 makes dump() throw) and in every log and error line.
bool validIfName(const std::string& s) {
  if (s.empty() || s.size() > 15 || s == "." || s == "..") return false;
  for (char c : s) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7f || c == '/' || c == ':') return false;
  }
  return true;
}

bool validUuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return true;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

namespace {

// The local entry for `a` in the index of its family, or null.
template <class V4Map, class V6Map>
const typename V4Map::mapped_type* findLocal(const V4Map& v4, const V6Map& v6, const IpAddr& a) {
  if (a.isV4()) {
    auto it = v4.find(a.v4());
    return it == v4.end() ? nullptr : &it->second;
  }
  auto it = v6.find(a.v6());
  return it == v6.end() ? nullptr : &it->second;
}
}  // namespace

// A VM or remote address must be a usable unicast host address.
std::optional<std::string> unusableHostAddress(Ipv4Addr a) {
  if (a.isUnspecified()) return "0.0.0.0 is not a host address";
  if (a.isMulticast()) return "a multicast address cannot be a host address";
  if (a.isBroadcast()) return "the broadcast address cannot be a host address";
  if (a.isLoopback()) return "a loopback address cannot be a VM address";
  return std::nullopt;
}

std::optional<std::string> unusableHostAddress(const Ipv6Addr& a) {
  if (a.isUnspecified()) return ":: is not a host address";
  if (a.isLoopback()) return "::1 is the loopback address, not a VM address";
  if (a.isMulticast()) return "a multicast address (ff00::/8) cannot be a host address";
  if (a.isLinkLocal())
    return "a link-local address (fe80::/10) is never routed; give the VM's global or unique-local /128";
  if (a.isV4Mapped()) return "a v4-mapped address (::ffff:0:0/96): give the IPv4 address itself";
  return std::nullopt;
}

namespace {

// Parses "2001:db8::5" or "2001:db8::5/128" into a host address.
bool readHostAddress6(ObjectReader& r, const std::string& text, const std::string& path, Ipv6Addr& out) {
  auto prefix = Ipv6Prefix::parse(text);
  if (!prefix)
    return r.fail(makeError(ErrorCode::kInvalidValue, path, text,
                            "'" + text + "' is not an IPv6 address or prefix (expected e.g. 2001:db8::5/128)"));
  if (prefix->len != 128)
    return r.fail(makeError(ErrorCode::kInvalidValue, path, text,
                            "'" + text + "' is not a /128 host prefix: every VM address is a /128 host "
                            "route (use " + prefix->addr.str() + "/128)"));
  if (auto why = unusableHostAddress(prefix->addr))
    return r.fail(makeError(ErrorCode::kInvalidValue, path, text, *why));
  out = prefix->addr;
  return true;
}

// Parses "a.b.c.d" or "a.b.c.d/32" into a host address; other prefix lengths
// are refused.
bool readHostAddress(ObjectReader& r, const json& v, const std::string& path, Ipv4Addr& out) {
  if (!v.is_string())
    return r.fail(makeError(ErrorCode::kWrongType, path, detail::shortValue(v),
                            std::string("must be an IPv4 /32 string, got ") + detail::typeName(v)));
  const auto text = v.get<std::string>();
  auto prefix = Ipv4Prefix::parse(text);
  if (!prefix)
    return r.fail(makeError(ErrorCode::kInvalidValue, path, text,
                            "'" + text + "' is not an IPv4 address or prefix (expected a.b.c.d/32)"));
  if (prefix->len != 32)
    return r.fail(makeError(ErrorCode::kInvalidValue, path, text,
                            "'" + text + "' is not a /32 host prefix: every VM address is a /32 host "
                            "route (use " + prefix->addr.str() + "/32)"));
  if (auto why = unusableHostAddress(prefix->addr))
    return r.fail(makeError(ErrorCode::kInvalidValue, path, text, *why));
  out = prefix->addr;
  return true;
}

template <class Enum>
bool readEnum(ObjectReader& r, std::string_view key, Enum& out,
              std::initializer_list<std::pair<const char*, Enum>> choices) {
  std::string text;
  const json* v = r.member(key, false);
  if (!v) return r.ok();
  if (!r.string(key, text, false)) return false;
  std::string names;
  for (const auto& [name, value] : choices) {
    if (text == name) {
      out = value;
      return true;
    }
    if (!names.empty()) names += ", ";
    names += name;
  }
  return r.fail(ErrorCode::kInvalidValue, key, *v,
                "'" + text + "' is not one of: " + names);
}

// kernel.learn_protocols: names of rtnetlink protocols (rtnetlink.h
// RTPROT_*, /etc/iproute2/rt_protos) or numbers 3-255. The kernel's own
// (0 unspec, 1 redirect, 2 kernel) never count: they are not a routing
// daemon's routes.
bool readLearnProtocols(ObjectReader& r, const json& arr, HostConfig& host) {
  static const std::pair<const char*, int> kNames[] = {
      {"boot", 3},   {"static", 4},  {"gated", 8},  {"ra", 9},     {"mrt", 10},
      {"zebra", 11}, {"bird", 12},   {"dnrouted", 13}, {"xorp", 14}, {"ntk", 15},
      {"dhcp", 16},  {"keepalived", 18}, {"babel", 42}, {"openr", 99}, {"bgp", 186},
      {"isis", 187}, {"ospf", 188},  {"rip", 189},  {"eigrp", 192}};
  const std::string base = r.field("learn_protocols");
  for (std::size_t i = 0; i < arr.size(); ++i) {
    const json& v = arr[i];
    const std::string field = detail::indexPath(base, i);
    int proto = -1;
    if (v.is_number_integer()) {
      const auto n = v.get<std::int64_t>();
      if (n >= 3 && n <= 255) proto = static_cast<int>(n);
    } else if (v.is_string()) {
      for (const auto& [name, number] : kNames)
        if (v.get_ref<const std::string&>() == name) proto = number;
    }
    if (proto < 0)
      return r.fail(makeError(ErrorCode::kInvalidValue, field, detail::shortValue(v),
                              "not a route protocol: a number 3-255 or one of boot, static, "
                              "zebra, bird, babel, bgp, isis, ospf, rip, eigrp, dhcp, ..."));
    if (proto == host.route_protocol)
      return r.fail(makeError(ErrorCode::kConflict, field, detail::shortValue(v),
                              "protocol " + std::to_string(proto) +
                                  " is ours (kernel.route_protocol): our own routes are never "
                                  "learned back"));
    const auto p8 = static_cast<std::uint8_t>(proto);
    if (std::find(host.learn_protocols.begin(), host.learn_protocols.end(), p8) ==
        host.learn_protocols.end())
      host.learn_protocols.push_back(p8);
  }
  return true;
}

// kernel.learn_prefixes: {"allow": [prefix...], "deny": [prefix...]}, each
// prefix "a.b.c.d/len" with no host bits set.
bool readLearnPrefixes(ObjectReader& k, const json& v, HostConfig& host) {
  const std::string base = k.field("learn_prefixes");
  if (!v.is_object())
    return k.fail(makeError(ErrorCode::kWrongType, base, detail::shortValue(v),
                            std::string("must be an object {\"allow\": [...], \"deny\": [...]}, "
                                        "got ") +
                                detail::typeName(v)));
  for (const auto& [key, list] : v.items()) {
    const std::string field = base + "." + key;
    std::vector<Ipv4Prefix>* out = key == "allow"  ? &host.learn_allow
                                   : key == "deny" ? &host.learn_deny
                                                   : nullptr;
    if (!out)
      return k.fail(makeError(ErrorCode::kUnknownField, field, key,
                              "unknown key '" + key + "' (keys: allow, deny)"));
    if (!list.is_array())
      return k.fail(makeError(ErrorCode::kWrongType, field, detail::shortValue(list),
                              std::string("must be an array of IPv4 prefixes, got ") +
                                  detail::typeName(list)));
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string f = detail::indexPath(field, i);
      const json& e = list[i];
      if (!e.is_string())
        return k.fail(makeError(ErrorCode::kWrongType, f, detail::shortValue(e),
                                std::string("must be an IPv4 prefix string (a.b.c.d/len), got ") +
                                    detail::typeName(e)));
      const auto& text = e.get_ref<const std::string&>();
      const auto p = Ipv4Prefix::parse(text);
      if (!p || text.find('/') == std::string::npos)
        return k.fail(makeError(ErrorCode::kInvalidValue, f, text,
                                "'" + text + "' is not an IPv4 prefix (a.b.c.d/len)"));
      const std::uint32_t mask = p->len == 0 ? 0u : ~(~std::uint32_t{0} >> p->len);
      if ((p->addr.value & ~mask) != 0)
        return k.fail(makeError(ErrorCode::kInvalidValue, f, text,
                                "'" + text + "' has host bits set: the prefix is " +
                                    Ipv4Prefix{Ipv4Addr{p->addr.value & mask}, p->len}.str()));
      out->push_back(*p);
    }
  }
  return true;
}

bool readNextHops(ObjectReader& r, const json& arr, HostConfig& host) {
  const std::string base = r.field("next_hops");
  for (std::size_t i = 0; i < arr.size(); ++i) {
    ObjectReader nh(arr[i], detail::indexPath(base, i));
    std::optional<Ipv4Addr> ip;
    std::optional<Ipv6Addr> ip6;
    UnderlayNextHop hop;
    // One address per next hop: "ipv4" or "ipv6" (an IPv6 remote's).
    const bool v6 = nh.member("ipv6", false) != nullptr;
    const char* key = v6 ? "ipv6" : "ipv4";
    if (v6 && nh.member("ipv4", false))
      return r.fail(makeError(ErrorCode::kConflict, nh.field("ipv6"), "",
                              "a next hop is one address: give ipv4 or ipv6, not both"));
    std::int64_t uplink = 0;
    (v6 ? nh.ipv6("ipv6", ip6, true) : nh.ipv4("ipv4", ip, true)) && nh.mac("mac", hop.mac, true) &&
        nh.integer("uplink", 0, 1, uplink, false, "index into uplinks: 0 or 1") && nh.finish();
    if (nh.ok() && uplink >= static_cast<std::int64_t>(host.uplinkCount()))
      nh.fail(makeError(ErrorCode::kConflict, nh.field("uplink"), std::to_string(uplink),
                        "names uplinks[" + std::to_string(uplink) +
                            "], but this host has one uplink (give uplinks with two entries)"));
    hop.uplink = static_cast<std::uint8_t>(uplink);
    if (!nh.ok()) return r.fail(nh.error());
    if (ip6 &&
        (ip6->isMulticast() || ip6->isUnspecified() || ip6->isLoopback() || ip6->isV4Mapped()))
      return r.fail(
          makeError(ErrorCode::kInvalidValue, nh.field("ipv6"), ip6->str(),
                    "a next hop is a unicast IPv6 address (a link-local fe80:: one is usual)"));
    hop.address = ip6 ? IpAddr(*ip6) : IpAddr(*ip);
    if (hop.mac.isZero() || hop.mac.isMulticast())
      return r.fail(makeError(ErrorCode::kInvalidValue, nh.field("mac"), hop.mac.str(),
                              "a next hop MAC must be a non-zero unicast MAC"));
    for (const auto& other : host.next_hops)
      if (other.address == hop.address)
        return r.fail(makeError(ErrorCode::kDuplicate, nh.field(key), hop.address.str(),
                                "next hop " + hop.address.str() + " is listed twice"));
    host.next_hops.push_back(hop);
  }
  return true;
}

// EAL arguments from config: strings the EAL parses (rte_eal_init). Refused
// as ealArgumentProblem() says, and longer than kMaxEalArgLength.
constexpr std::size_t kMaxEalArgs = 64;
constexpr std::size_t kMaxEalArgLength = 1024;

bool readEalArgs(ObjectReader& r, const json& arr, HostConfig& host) {
  const std::string base = r.field("eal_args");
  if (arr.size() > kMaxEalArgs)
    return r.fail(makeError(ErrorCode::kInvalidValue, base, std::to_string(arr.size()) + " arguments",
                            "at most " + std::to_string(kMaxEalArgs) + " EAL arguments"));
  for (std::size_t i = 0; i < arr.size(); ++i) {
    const std::string path = detail::indexPath(base, i);
    if (!arr[i].is_string())
      return r.fail(makeError(ErrorCode::kWrongType, path, detail::shortValue(arr[i]),
                              std::string("must be a string, got ") + detail::typeName(arr[i])));
    const auto a = arr[i].get<std::string>();
    std::string why;
    if (a.size() > kMaxEalArgLength)
      why = "longer than " + std::to_string(kMaxEalArgLength) + " bytes";
    else
      why = ealArgumentProblem(a);
    if (!why.empty()) return r.fail(makeError(ErrorCode::kInvalidValue, path, a, why));
    host.dpdk_eal_args.push_back(a);
  }
  return true;
}

// "0000:03:00.0,representor=vf[0-15],dv_flow_en=1": a PCI address in full
// form (it must be uplink.pci) or a vdev name ("net_ring0", for tests), then
// driver/ethdev options. No spaces: the EAL takes it as one argument.
bool checkPfDevargs(ObjectReader& r, const json& v, const HostConfig& host) {
  const std::string& s = host.dpdk_pf_devargs;
  const auto fail = [&](std::string why) { return r.fail(ErrorCode::kInvalidValue, "pf_devargs", v, std::move(why)); };
  if (s.empty()) return fail("must not be empty (leave the key out to number the ports instead)");
  if (s.size() > 512) return fail("longer than 512 bytes");
  for (char c : s)
    if (std::isspace(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) < 0x20)
      return fail("'" + s + "' contains whitespace or control characters");
  const std::string dev = s.substr(0, s.find(','));
  if (validPci(dev)) {
    if (!host.uplink_pci.empty() && lower(dev) != lower(host.uplink_pci))
      return r.fail(makeError(ErrorCode::kConflict, r.field("pf_devargs"), s,
                              "the devargs name PCI device " + dev + ", but uplink.pci is " +
                                  host.uplink_pci + "; they must be the same PF"));
    return true;
  }
  const bool vdev = dev.size() > 4 && dev.compare(0, 4, "net_") == 0 &&
                    std::all_of(dev.begin(), dev.end(), [](char c) {
                      return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                    });
  if (!vdev)
    return fail("'" + dev + "' is neither a PCI address in full form (DDDD:BB:DD.F, e.g. 0000:03:00.0) "
                "nor a virtual device name (net_<driver><n>)");
  return true;
}

}  // namespace

const char* toString(UnderlayMode mode) {
  return mode == UnderlayMode::kRouted ? "routed" : "vxlan";
}
const char* toString(VdpaKind kind) {
  switch (kind) {
    case VdpaKind::kNone: return "none";
    case VdpaKind::kKernel: return "kernel";
    case VdpaKind::kDpdk: return "dpdk";
    case VdpaKind::kSim: return "sim";
  }
  return "?";
}
const char* toString(FlowBackendKind kind) {
  return kind == FlowBackendKind::kSim ? "sim" : "dpdk";
}
const char* toString(SoftwarePathKind kind) {
  return kind == SoftwarePathKind::kKernel ? "kernel" : "none";
}
const char* toString(NicBackendKind kind) {
  return kind == NicBackendKind::kSim ? "sim" : "sysfs";
}

namespace {

// One reader per section of host.json; each fails `r` with the first
// error it meets, naming the field.
// host.json "uplink".
void readUplinkSection(const json& section, HostConfig& host, ObjectReader& r,
                       const std::string& path = "uplink") {
  std::int64_t n = 0;
  const json* obj = &section;
  ObjectReader u(*obj, path);
  if (u.string("pci", host.uplink_pci, true) && !validPci(host.uplink_pci))
    u.fail(ErrorCode::kInvalidValue, "pci", host.uplink_pci,
           "'" + host.uplink_pci + "' is not a PCI address (expected DDDD:BB:DD.F, e.g. 0000:03:00.0)");
  if (u.string("netdev", host.uplink_netdev, false) && !host.uplink_netdev.empty() &&
      !validIfName(host.uplink_netdev))
    u.fail(ErrorCode::kInvalidValue, "netdev", host.uplink_netdev,
           "'" + host.uplink_netdev + "' is not a valid interface name (1-15 printable ASCII characters, no '/', ':' or spaces)");
  u.mac("mac", host.uplink_mac, true);
  if (u.integer("vf_count", 0, 65535, n, true, "SR-IOV VFs to create")) host.vf_count = static_cast<std::uint16_t>(n);
  u.finish();
  if (!u.ok()) r.fail(u.error());
}

// Not a port id (dpdk.*_port_id are 0..65534): "not given".
constexpr std::uint16_t kPortIdUnset = 65535;

// host.json "uplinks"[1]: the second uplink of a dual-homed host.
void readSecondUplink(const json& section, HostConfig& host, ObjectReader& r,
                      const std::string& path) {
  SecondUplink up;
  ObjectReader u(section, path);
  if (u.string("pci", up.pci, true) && !validPci(up.pci))
    u.fail(ErrorCode::kInvalidValue, "pci", section["pci"],
           "'" + up.pci + "' is not a PCI address (expected DDDD:BB:DD.F, e.g. 0000:03:00.1)");
  if (u.ok() && lower(up.pci) == lower(host.uplink_pci))
    u.fail(makeError(ErrorCode::kConflict, u.field("pci"), up.pci,
                     "is the first uplink's PF too: two uplinks are two PFs"));
  if (u.string("netdev", up.netdev, true) && !validIfName(up.netdev))
    u.fail(ErrorCode::kInvalidValue, "netdev", section["netdev"],
           "'" + up.netdev +
               "' is not a valid interface name (1-15 printable ASCII characters, no '/', ':' or "
               "spaces)");
  if (u.ok() && up.netdev == host.uplink_netdev)
    u.fail(makeError(ErrorCode::kConflict, u.field("netdev"), up.netdev,
                     "is the first uplink's netdev too: two uplinks are two netdevs"));
  u.mac("mac", up.mac, true);
  if (u.ok() && (up.mac.isZero() || up.mac.isMulticast()))
    u.fail(ErrorCode::kInvalidValue, "mac", section["mac"], "must be a non-zero unicast MAC");
  if (u.ok() && u.member("vf_count", false))
    u.fail(makeError(ErrorCode::kConflict, u.field("vf_count"),
                     detail::shortValue(section["vf_count"]),
                     "the VMs' VFs are made on the first uplink (uplinks[0].vf_count) only"));
  u.finish();
  if (!u.ok()) return void(r.fail(u.error()));
  up.port_id = kPortIdUnset;  // dpdk.uplink2_port_id, or the default (parseHostConfig)
  host.uplink2 = std::move(up);
}

// host.json "uplinks": one or two PFs (issue 23), instead of "uplink".
void readUplinks(const json& arr, HostConfig& host, ObjectReader& r) {
  if (arr.empty() || arr.size() > 2)
    return void(r.fail(ErrorCode::kInvalidValue, "uplinks", arr,
                       "lists " + std::to_string(arr.size()) +
                           " uplinks: give one or two (a dual-homed host's two PFs)"));
  readUplinkSection(arr[0], host, r, "uplinks[0]");
  if (r.ok() && arr.size() == 2) {
    if (host.uplink_netdev.empty())
      return void(r.fail(makeError(ErrorCode::kMissingField, "uplinks[0].netdev", "",
                                   "two uplinks need both netdevs: routes go out of either")));
    readSecondUplink(arr[1], host, r, "uplinks[1]");
  }
}

// host.json "gateway".
void readGatewaySection(const json& section, HostConfig& host, ObjectReader& r) {
  std::optional<Ipv4Addr> ip;
  const json* obj = &section;
  ObjectReader g(*obj, "gateway");
  if (g.ipv4("ipv4", ip, true) && ip) {
    host.gateway_ipv4 = *ip;
    if (ip->isUnspecified() || ip->isMulticast() || ip->isBroadcast())
      g.fail(ErrorCode::kInvalidValue, "ipv4", (*obj)["ipv4"], "must be a unicast address");
  }
  std::optional<Ipv6Addr> ip6;
  if (g.ipv6("ipv6", ip6, false) && ip6) {
    host.gateway_ipv6 = *ip6;
    if (!ip6->isLinkLocal() || ip6->isMulticast())
      g.fail(ErrorCode::kInvalidValue, "ipv6", (*obj)["ipv6"],
             "must be a link-local unicast address (fe80::/10, e.g. fe80::1): every VM reaches "
             "its gateway on its own link");
  }
  if (g.mac("mac", host.gateway_mac, true) &&
      (host.gateway_mac.isZero() || host.gateway_mac.isMulticast()))
    g.fail(ErrorCode::kInvalidValue, "mac", (*obj)["mac"], "must be a non-zero unicast MAC");
  const json* ra_obj = nullptr;
  if (g.object("router_advertisements", ra_obj, false) && ra_obj) {
    auto& ra = host.router_advertisements;
    ObjectReader a(*ra_obj, "gateway.router_advertisements");
    a.boolean("enabled", ra.enabled, false);
    std::int64_t n = ra.interval_s;  // an absent key leaves the default
    if (a.integer("interval_s", 4, 1800, n, false)) ra.interval_s = static_cast<std::uint16_t>(n);
    n = ra.lifetime_s;
    if (a.integer("lifetime_s", 0, 9000, n, false)) ra.lifetime_s = static_cast<std::uint16_t>(n);
    if (a.ok() && ra.lifetime_s != 0 && ra.lifetime_s < ra.interval_s)
      a.fail(ErrorCode::kInvalidValue, "lifetime_s", json(ra.lifetime_s),
             "is shorter than interval_s (" + std::to_string(ra.interval_s) +
                 "): the VMs would lose their default route between two advertisements; make it "
                 "0 (advertise no default route) or at least the interval");
    a.finish();
    if (!a.ok()) g.fail(a.error());
  }
  g.finish();
  if (!g.ok()) r.fail(g.error());
}

// host.json "underlay".
void readUnderlaySection(const json& section, HostConfig& host, ObjectReader& r) {
  std::int64_t n = 0;
  const json* obj = &section;
  ObjectReader u(*obj, "underlay");
  if (!u.member("mode", false) && u.ok())
    u.fail(makeError(ErrorCode::kMissingField, u.field("mode"), "",
                     "required field is missing (routed or vxlan)"));
  readEnum(u, "mode", host.underlay,
           {{"routed", UnderlayMode::kRouted}, {"vxlan", UnderlayMode::kVxlan}});
  const json* hops = nullptr;
  if (u.array("next_hops", hops, false) && hops) readNextHops(u, *hops, host);
  std::optional<IpAddr> any;
  if (u.ip("default_next_hop", any, false) && any) host.default_next_hop = any;
  any.reset();
  if (u.ip("vtep", any, host.underlay == UnderlayMode::kVxlan) && any) {
    host.vtep = any;
    const bool bad = any->isV4() ? (any->v4().isUnspecified() || any->v4().isMulticast() ||
                                    any->v4().isBroadcast() || any->v4().isLoopback())
                                 : (any->v6().isUnspecified() || any->v6().isMulticast() ||
                                    any->v6().isLoopback() || any->v6().isLinkLocal());
    if (bad)
      u.fail(ErrorCode::kInvalidValue, "vtep", (*obj)["vtep"],
             any->isV4() ? "must be a unicast, non-loopback address"
                         : "must be a unicast, non-loopback, routable address (not link-local: "
                           "the remote VTEPs reach it across the underlay)");
  }
  if (u.ok() && host.vtep && *host.vtep == host.gateway_ipv4)
    u.fail(makeError(ErrorCode::kConflict, u.field("vtep"), host.vtep->str(),
                     host.vtep->str() +
                         " is the gateway address (gateway.ipv4) that every VM uses; "
                         "the VTEP must be an underlay address of this host"));
  // The default next hop: an IPv4 router (routed: the remote /32s' gateway);
  // VXLAN, the underlay router towards the remote VTEPs, of their family.
  if (u.ok() && host.default_next_hop) {
    const IpAddr& hop = *host.default_next_hop;
    if (host.underlay == UnderlayMode::kRouted && !hop.isV4())
      u.fail(makeError(ErrorCode::kInvalidValue, u.field("default_next_hop"), hop.str(),
                       "in a routed underlay the default next hop is an IPv4 address (IPv6 "
                       "remotes name their own next_hop)"));
    else if (host.vtep && hop.isV4() != host.vtep->isV4())
      u.fail(makeError(ErrorCode::kConflict, u.field("default_next_hop"), hop.str(),
                       std::string("the VTEP (underlay.vtep) is an ") +
                           (host.vtep->isV4() ? "IPv4" : "IPv6") +
                           " address, so the default next hop towards the remote VTEPs is too"));
  }
  for (std::size_t i = 0; i < host.next_hops.size() && u.ok(); ++i) {
    const auto hop = host.next_hops[i].address;
    const auto field =
        detail::indexPath(u.field("next_hops"), i) + (hop.isV4() ? ".ipv4" : ".ipv6");
    if (hop == host.gateway_ipv4)
      u.fail(makeError(ErrorCode::kConflict, field, hop.str(),
                       hop.str() + " is the gateway address (gateway.ipv4) that every VM uses"));
    else if (host.vtep && hop == *host.vtep)
      u.fail(
          makeError(ErrorCode::kConflict, field, hop.str(),
                    hop.str() + " is this host's VTEP address (underlay.vtep), not a neighbour"));
  }
  if (u.ok() && host.default_next_hop && *host.default_next_hop == host.gateway_ipv4)
    u.fail(makeError(ErrorCode::kConflict, u.field("default_next_hop"),
                     host.default_next_hop->str(),
                     host.default_next_hop->str() +
                         " is the gateway address (gateway.ipv4) that every VM uses"));
  if (u.integer("vxlan_udp_port", 1, 65535, n, false, "UDP destination port of VXLAN, IANA 4789"))
    if (u.member("vxlan_udp_port", false)) host.vxlan_udp_port = static_cast<std::uint16_t>(n);
  if (u.integer("default_vni", 0, kMaxVni, n, false, "a VNI is 24 bits") &&
      u.member("default_vni", false))
    host.default_vni = static_cast<std::uint32_t>(n);
  u.finish();
  if (!u.ok()) r.fail(u.error());
}

// host.json "kernel".
void readKernelSection(const json& section, HostConfig& host, ObjectReader& r) {
  std::int64_t n = 0;
  const json* obj = &section;
  ObjectReader k(*obj, "kernel");
  if (k.integer("route_protocol", 5, 255, n, false, "0-4 are the kernel's own") &&
      k.member("route_protocol", false)) {
    // FRR's zebra maps these protocol numbers to its own daemons and would
    // not treat our routes as "kernel" routes for `redistribute kernel`.
    if (n == 11 || n == 42 || (n >= 186 && n <= 198))
      k.fail(ErrorCode::kInvalidValue, "route_protocol", (*obj)["route_protocol"],
             std::to_string(n) + " is used by FRR for its own routes (11, 42, 186-198); "
             "`redistribute kernel` would not see ours: pick another, e.g. 240");
    else
      host.route_protocol = static_cast<std::uint8_t>(n);
  }
  if (k.integer("route_table", 1, 0xFFFFFFFFLL, n, false) && k.member("route_table", false)) {
    if (n == 255 || n == 0)
      k.fail(ErrorCode::kInvalidValue, "route_table", (*obj)["route_table"],
             "tables 0 (unspec) and 255 (local) are not for host routes");
    else
      host.route_table = static_cast<std::uint32_t>(n);
  }
  bool learn = false;
  if (k.boolean("learn_routes", learn, false)) host.learn_routes = learn;
  const json* protos = nullptr;
  if (k.array("learn_protocols", protos, false) && protos) readLearnProtocols(k, *protos, host);
  if (const json* lp = k.member("learn_prefixes", false)) readLearnPrefixes(k, *lp, host);
  if (k.string("netns", host.kernel_netns, false) && !host.kernel_netns.empty() &&
      (host.kernel_netns.find('/') != std::string::npos || host.kernel_netns == "." ||
       host.kernel_netns == ".." || host.kernel_netns.size() > 64))
    k.fail(ErrorCode::kInvalidValue, "netns", (*obj)["netns"],
           "'" + host.kernel_netns + "' is not a namespace name (a file name under /run/netns)");
  k.finish();
  if (!k.ok()) r.fail(k.error());
}

// host.json "daemon".
void readDaemonSection(const json& section, HostConfig& host, ObjectReader& r) {
  std::int64_t n = 0;
  const json* obj = &section;
  ObjectReader d(*obj, "daemon");
  if (d.string("metrics_listen", host.metrics_listen, false) && !host.metrics_listen.empty()) {
    const auto colon = host.metrics_listen.rfind(':');
    const std::string hostpart = colon == std::string::npos ? "" : host.metrics_listen.substr(0, colon);
    const std::string portpart = colon == std::string::npos ? "" : host.metrics_listen.substr(colon + 1);
    const bool port_ok = !portpart.empty() && portpart.size() <= 5 &&
                         std::all_of(portpart.begin(), portpart.end(), ::isdigit) && std::stoi(portpart) > 0 &&
                         std::stoi(portpart) < 65536;
    if ((hostpart != "127.0.0.1" && hostpart != "localhost" && hostpart != "[::1]") || !port_ok)
      d.fail(ErrorCode::kInvalidValue, "metrics_listen", (*obj)["metrics_listen"],
             "'" + host.metrics_listen + "' must be 127.0.0.1:PORT or [::1]:PORT (metrics stay on loopback), or \"\" to turn them off");
  }
  if (d.integer("journal_compact_bytes", 4096, std::int64_t{1} << 40, n, false,
                "state journal size that triggers a snapshot") &&
      d.member("journal_compact_bytes", false))
    host.journal_compact_bytes = static_cast<std::uint64_t>(n);
  if (d.integer("reconcile_interval_ms", 100, 86400000, n, false, "periodic full pass") &&
      d.member("reconcile_interval_ms", false))
    host.reconcile_interval_ms = static_cast<std::uint32_t>(n);
  if (d.integer("max_request_bytes", 4096, 64 << 20, n, false, "control API request size limit") &&
      d.member("max_request_bytes", false))
    host.max_request_bytes = static_cast<std::uint32_t>(n);
  if (d.integer("tentative_ttl_ms", 1000, 86400000, n, false,
                "how long a tentative port lives unconfirmed, 1 s .. 1 day") &&
      d.member("tentative_ttl_ms", false))
    host.tentative_ttl_ms = static_cast<std::uint32_t>(n);
  if (d.integer("traffic_interval_ms", 0, 86400000, n, false,
                "how often the per-port traffic counters are read, 0 (never) or 100 ms .. 1 day") &&
      d.member("traffic_interval_ms", false)) {
    if (n > 0 && n < 100)
      d.fail(ErrorCode::kInvalidValue, "traffic_interval_ms", (*obj)["traffic_interval_ms"],
             std::to_string(n) + " ms is too often: 0 (never) or at least 100 ms");
    else
      host.traffic_interval_ms = static_cast<std::uint32_t>(n);
  }
  if (d.string("sim_device_dir", host.sim_device_dir, false) &&
      (host.sim_device_dir.empty() || host.sim_device_dir[0] != '/'))
    d.fail(ErrorCode::kInvalidValue, "sim_device_dir", (*obj)["sim_device_dir"], "must be an absolute path");
  d.finish();
  if (!d.ok()) r.fail(d.error());
}

// host.json "backends".
void readBackendsSection(const json& section, HostConfig& host, ObjectReader& r) {
  const json* obj = &section;
  ObjectReader b(*obj, "backends");
  readEnum(b, "flow", host.flow_backend,
           {{"sim", FlowBackendKind::kSim}, {"dpdk", FlowBackendKind::kDpdk}});
  readEnum(b, "software_path", host.software_path,
           {{"kernel", SoftwarePathKind::kKernel}, {"none", SoftwarePathKind::kNone}});
  readEnum(b, "vdpa", host.vdpa_backend,
           {{"none", VdpaKind::kNone}, {"kernel", VdpaKind::kKernel}, {"dpdk", VdpaKind::kDpdk},
            {"sim", VdpaKind::kSim}});
  readEnum(b, "nic", host.nic_backend,
           {{"sim", NicBackendKind::kSim}, {"sysfs", NicBackendKind::kSysfs}});
  b.finish();
  if (!b.ok()) r.fail(b.error());
}

// host.json "vdpa".
void readVdpaSection(const json& section, HostConfig& host, ObjectReader& r) {
  std::int64_t n = 0;
  const json* obj = &section;
  ObjectReader v(*obj, "vdpa");
  const json* pool = nullptr;
  if (v.object("pool", pool, false) && pool) {
    ObjectReader p(*pool, "vdpa.pool");
    if (p.integer("size", 0, 4096, n, false, "vDPA devices made ahead on free VFs") &&
        p.member("size", false))
      host.vdpa_pool_size = static_cast<std::uint16_t>(n);
    if (p.integer("low_water", 0, 4096, n, false, "refill below this many ready devices") &&
        p.member("low_water", false))
      host.vdpa_pool_low_water = static_cast<std::uint16_t>(n);
    else if (!p.member("low_water", false))
      host.vdpa_pool_low_water = static_cast<std::uint16_t>((host.vdpa_pool_size + 1) / 2);
    if (p.integer("mtu", 68, 65535, n, false, "MTU of the pool's devices") && p.member("mtu", false))
      host.vdpa_pool_mtu = static_cast<std::uint16_t>(n);
    if (p.ok() && host.vdpa_pool_low_water > host.vdpa_pool_size)
      p.fail(ErrorCode::kInvalidValue, "low_water", (*pool)["low_water"],
             "low_water " + std::to_string(host.vdpa_pool_low_water) + " is above the pool size " +
                 std::to_string(host.vdpa_pool_size));
    p.finish();
    if (!p.ok()) v.fail(p.error());
  }
  if (v.ok() && v.member("link_dir", false) && v.string("link_dir", host.vdpa_link_dir, false) &&
      (host.vdpa_link_dir.size() < 2 || host.vdpa_link_dir[0] != '/' ||
       host.vdpa_link_dir.size() > 80))
    v.fail(ErrorCode::kInvalidValue, "link_dir", (*obj)["link_dir"],
           "must be an absolute directory path of at most 80 bytes (a unix socket path is "
           "at most 107)");
  v.finish();
  if (!v.ok()) r.fail(v.error());
  if (r.ok() && host.vdpa_pool_size > host.vf_count)
    r.fail(makeError(ErrorCode::kInvalidValue, "vdpa.pool.size",
                     std::to_string(host.vdpa_pool_size),
                     "a pool of " + std::to_string(host.vdpa_pool_size) +
                         " vDPA devices needs as many free VFs, but uplink.vf_count is " +
                         std::to_string(host.vf_count)));
  if (r.ok() && host.vdpa_pool_size > 0 && host.vdpa_backend == VdpaKind::kNone)
    r.fail(makeError(ErrorCode::kConflict, "vdpa.pool.size", std::to_string(host.vdpa_pool_size),
                     "a vDPA pool needs a vDPA backend, but backends.vdpa is none"));
}

// host.json "dpdk".
void readDpdkSection(const json& section, HostConfig& host, ObjectReader& r) {
  std::int64_t n = 0;
  const json* obj = &section;
  ObjectReader d(*obj, "dpdk");
  if (d.integer("uplink_port_id", 0, 65534, n, false) && d.member("uplink_port_id", false))
    host.uplink_port_id = static_cast<std::uint16_t>(n);
  if (d.integer("first_representor_port_id", 0, 65534, n, false) &&
      d.member("first_representor_port_id", false))
    host.first_representor_port_id = static_cast<std::uint16_t>(n);
  if (d.integer("uplink2_port_id", 0, 65534, n, false) && d.member("uplink2_port_id", false)) {
    if (!host.uplink2)
      d.fail(makeError(ErrorCode::kConflict, d.field("uplink2_port_id"), std::to_string(n),
                       "numbers the second uplink's port, but uplinks lists one uplink"));
    else
      host.uplink2->port_id = static_cast<std::uint16_t>(n);
  }
  const json* args = nullptr;
  if (d.array("eal_args", args, false) && args) readEalArgs(d, *args, host);
  if (d.string("pf_devargs", host.dpdk_pf_devargs, false) && d.member("pf_devargs", false))
    checkPfDevargs(d, (*obj)["pf_devargs"], host);
  d.finish();
  if (!d.ok()) r.fail(d.error());
}

}  // namespace

Result<HostConfig> parseHostConfig(const json& doc) {
  HostConfig host;
  ObjectReader r(doc, "");
  const json* obj = nullptr;

  r.string("name", host.name, true);
  if (r.ok() && host.name.empty())
    r.fail(ErrorCode::kInvalidValue, "name", doc["name"], "must not be empty");
  r.string("hw_profile", host.hw_profile, false);
  r.string("socket", host.socket_path, false);
  r.string("state_dir", host.state_dir, false);
  if (r.ok() && (host.socket_path.empty() || host.socket_path[0] != '/'))
    r.fail(ErrorCode::kInvalidValue, "socket", host.socket_path, "must be an absolute path");
  if (r.ok() && (host.state_dir.empty() || host.state_dir[0] != '/'))
    r.fail(ErrorCode::kInvalidValue, "state_dir", host.state_dir, "must be an absolute path");

  // The sections in this order: later ones check against earlier ones
  // (the VTEP against the gateway, learn_routes against the underlay).
  if (r.member("uplinks", false)) {
    if (r.member("uplink", false))
      r.fail(makeError(ErrorCode::kConflict, "uplinks", "",
                       "give uplink (one PF) or uplinks (one or two), not both"));
    else if (r.array("uplinks", obj, true) && obj)
      readUplinks(*obj, host, r);
  } else if (r.object("uplink", obj, true) && obj) {
    readUplinkSection(*obj, host, r);
  }
  if (r.ok() && r.object("gateway", obj, true) && obj) readGatewaySection(*obj, host, r);
  if (r.ok() && r.object("underlay", obj, true) && obj) readUnderlaySection(*obj, host, r);
  if (r.ok() && r.object("kernel", obj, false) && obj) readKernelSection(*obj, host, r);
  if (r.ok() && r.object("daemon", obj, false) && obj) readDaemonSection(*obj, host, r);
  if (r.ok() && r.object("backends", obj, false) && obj) readBackendsSection(*obj, host, r);
  if (r.ok() && r.object("vdpa", obj, false) && obj) readVdpaSection(*obj, host, r);
  if (r.ok() && r.object("dpdk", obj, false) && obj) readDpdkSection(*obj, host, r);

  if (r.ok() && host.learn_routes) {
    const auto refuse = [&](const std::string& why) {
      r.fail(makeError(ErrorCode::kConflict, "kernel.learn_routes", "true", why));
    };
    if (host.underlay != UnderlayMode::kRouted)
      refuse("routes are learned in a routed underlay only (underlay.mode routed)");
    else if (host.software_path != SoftwarePathKind::kKernel)
      refuse("learning routes reads the kernel: backends.software_path must be kernel");
    else if (host.uplink_netdev.empty())
      refuse("learned routes go through the uplink: uplink.netdev is required");
  }
  // testpmd numbers a second "-a PF1" after the first PF and its representors.
  if (host.uplink2 && host.uplink2->port_id == kPortIdUnset)
    host.uplink2->port_id = static_cast<std::uint16_t>(
        std::min<unsigned>(65534, host.first_representor_port_id + host.vf_count));
  if (r.ok() && host.uplink2 && host.underlay != UnderlayMode::kRouted)
    r.fail(makeError(ErrorCode::kConflict, "uplinks", "2 uplinks",
                     "two uplinks need a routed underlay (underlay.mode routed): VXLAN goes "
                     "out of the first uplink only"));
  if (r.ok() && !host.learn_routes && (!host.learn_allow.empty() || !host.learn_deny.empty())) {
    r.fail(makeError(ErrorCode::kConflict, "kernel.learn_prefixes", "",
                     "filters learned routes, but kernel.learn_routes is off: set it to true, or "
                     "remove learn_prefixes"));
  }

  r.finish();
  if (!r.ok()) return r.error();
  return host;
}

Result<Port> parsePort(const json& doc, const std::string& path) {
  Port port;
  ObjectReader r(doc, path);
  std::int64_t n = 0;

  if (r.string("vm", port.key.vm, true) && !validUuid(port.key.vm))
    r.fail(ErrorCode::kInvalidValue, "vm", doc["vm"],
           "'" + port.key.vm + "' is not a VM UUID (expected 8-4-4-4-12 hex digits)");
  port.key.vm = lower(port.key.vm);
  if (r.integer("nic", 0, 65535, n, true, "index of the NIC in the domain")) port.key.nic = static_cast<std::uint16_t>(n);
  if (r.mac("mac", port.mac, true)) {
    if (port.mac.isZero())
      r.fail(ErrorCode::kInvalidValue, "mac", doc["mac"], "00:00:00:00:00:00 is not a usable MAC");
    else if (port.mac.isMulticast())
      r.fail(ErrorCode::kInvalidValue, "mac", doc["mac"],
             "'" + port.mac.str() + "' is a multicast MAC (lowest bit of the first octet set); a NIC needs a unicast MAC");
  }
  const json* addrs = nullptr;
  if (r.array("addresses", addrs, true) && addrs) {
    if (addrs->empty())
      r.fail(ErrorCode::kInvalidValue, "addresses", *addrs,
             "must list at least one address (an IPv4 /32 or an IPv6 /128)");
    const std::string base = r.field("addresses");
    for (std::size_t i = 0; i < addrs->size() && r.ok(); ++i) {
      const json& v = (*addrs)[i];
      if (v.is_string() && v.get_ref<const std::string&>().find(':') != std::string::npos) {
        Ipv6Addr a6;
        if (!readHostAddress6(r, v.get<std::string>(), detail::indexPath(base, i), a6)) break;
        if (std::find(port.addresses6.begin(), port.addresses6.end(), a6) != port.addresses6.end())
          r.fail(makeError(ErrorCode::kDuplicate, detail::indexPath(base, i), a6.str(),
                           a6.str() + " is listed twice"));
        port.addresses6.push_back(a6);
        continue;
      }
      Ipv4Addr a;
      if (!readHostAddress(r, v, detail::indexPath(base, i), a)) break;
      for (const auto& other : port.addresses)
        if (other == a)
          r.fail(makeError(ErrorCode::kDuplicate, detail::indexPath(base, i), a.str(),
                           a.str() + " is listed twice"));
      port.addresses.push_back(a);
    }
  }
  if (r.integer("mtu", 68, 9216, n, false, "RFC 791 minimum 68, jumbo maximum 9216") && r.member("mtu", false))
    port.mtu = static_cast<std::uint16_t>(n);
  if (r.integer("queues", 1, 256, n, false, "virtqueue pairs") && r.member("queues", false))
    port.queues = static_cast<std::uint16_t>(n);
  if (r.integer("vni", 0, kMaxVni, n, false, "a VNI is 24 bits") && r.member("vni", false))
    port.vni = static_cast<std::uint32_t>(n);
  if (r.integer("vf", 0, 65534, n, false) && r.member("vf", false))
    port.vf = static_cast<std::uint16_t>(n);
  if (r.string("representor", port.representor, false) && !port.representor.empty() &&
      !validIfName(port.representor))
    r.fail(ErrorCode::kInvalidValue, "representor", doc["representor"],
           "'" + port.representor + "' is not a valid interface name (1-15 printable ASCII characters, no '/', ':' or spaces)");
  VdpaKind vdpa = VdpaKind::kNone;
  if (r.member("vdpa", false) && r.ok()) {
    readEnum(r, "vdpa", vdpa,
             {{"none", VdpaKind::kNone}, {"kernel", VdpaKind::kKernel}, {"dpdk", VdpaKind::kDpdk},
              {"sim", VdpaKind::kSim}});
    port.vdpa = vdpa;
  }
  if (r.integer("tentative_until_ms", 0, std::int64_t{1} << 53, n, false,
                "milliseconds since the Unix epoch") &&
      r.member("tentative_until_ms", false))
    port.tentative_until_ms = n;
  r.finish();
  if (!r.ok()) return r.error();
  return port;
}

Status checkOriginName(const std::string& origin, const std::string& field) {
  const bool ok = !origin.empty() && origin.size() <= kMaxOriginBytes &&
                  std::all_of(origin.begin(), origin.end(), [](unsigned char c) {
                    return std::islower(c) || std::isdigit(c) || c == '-' || c == '_' || c == '.';
                  });
  if (!ok)
    return makeError(ErrorCode::kInvalidValue, field, origin,
                     "an origin is 1.." + std::to_string(kMaxOriginBytes) +
                         " characters of [a-z0-9._-], e.g. \"api\" or \"bgp\"");
  return Status::success();
}

Result<RemoteEndpoint> parseRemote(const json& doc, const std::string& path) {
  RemoteEndpoint remote;
  ObjectReader r(doc, path);
  std::int64_t n = 0;
  if (const json* a = r.member("address", true)) {
    if (a->is_string() && a->get_ref<const std::string&>().find(':') != std::string::npos) {
      Ipv6Addr a6;
      if (readHostAddress6(r, a->get<std::string>(), r.field("address"), a6)) remote.address = a6;
    } else {
      Ipv4Addr a4;
      if (readHostAddress(r, *a, r.field("address"), a4)) remote.address = a4;
    }
  }
  r.ip("next_hop", remote.next_hop, false);
  r.ip("vtep", remote.vtep, false);
  if (r.integer("vni", 0, kMaxVni, n, false, "a VNI is 24 bits") && r.member("vni", false))
    remote.vni = static_cast<std::uint32_t>(n);
  if (r.string("origin", remote.origin, false))
    if (auto s = checkOriginName(remote.origin, r.field("origin")); !s) return s.error();
  r.finish();
  if (!r.ok()) return r.error();
  return remote;
}

Status parsePortsFile(const json& doc, Intent& intent) {
  ObjectReader r(doc, "");
  const json* ports = nullptr;
  const json* remotes = nullptr;
  r.array("ports", ports, true);
  r.array("remotes", remotes, false);
  r.finish();
  if (!r.ok()) return r.error();
  std::vector<Port> parsed_ports;
  parsed_ports.reserve(ports->size());
  for (std::size_t i = 0; i < ports->size(); ++i) {
    auto p = parsePort((*ports)[i], detail::indexPath("ports", i));
    if (!p) return p.error();
    parsed_ports.push_back(std::move(p).value());
  }
  std::vector<RemoteEndpoint> parsed_remotes;
  if (remotes) {
    parsed_remotes.reserve(remotes->size());
    for (std::size_t i = 0; i < remotes->size(); ++i) {
      auto rem = parseRemote((*remotes)[i], detail::indexPath("remotes", i));
      if (!rem) return rem.error();
      parsed_remotes.push_back(std::move(rem).value());
    }
  }
  intent.ports = std::move(parsed_ports);
  intent.remotes = std::move(parsed_remotes);
  return Status::success();
}

namespace {

// Per-port checks against the host config and the addresses the underlay
// uses (a VM address equal to one of them would get a /32 towards a VF and
// take the underlay's traffic).
Status checkPortAgainstHost(const HostConfig& host, const UnderlayAddresses& underlay,
                            const Port& port, const std::string& path) {
  // Blame the host config, not the port: no port could get a VF.
  if (host.vf_count == 0)
    return makeError(ErrorCode::kInvalidValue, "uplink.vf_count", "0",
                     "is 0: the uplink " + host.uplink_pci + " gets no VFs, but port " +
                         port.key.str() + " (" + path +
                         ") needs one; set uplink.vf_count to the number of VFs to create");
  if (port.vf && *port.vf >= host.vf_count)
    return makeError(ErrorCode::kInvalidValue, path + ".vf", std::to_string(*port.vf),
                     "VF " + std::to_string(*port.vf) + " does not exist: uplink " +
                         host.uplink_pci + " has " + std::to_string(host.vf_count) +
                         " VFs (0.." + std::to_string(host.vf_count ? host.vf_count - 1 : 0) + ")");
  for (std::size_t i = 0; i < port.addresses.size(); ++i) {
    const auto a = port.addresses[i];
    if (const UnderlayUse* use = underlay.find(a))
      return makeError(ErrorCode::kConflict, path + ".addresses[" + std::to_string(i) + "]",
                       a.str(), a.str() + " is " + use->describe());
  }
  if (!port.addresses6.empty() && !host.gateway_ipv6)
    return makeError(ErrorCode::kConflict, path + ".addresses", port.addresses6.front().str(),
                     port.addresses6.front().str() +
                         " is an IPv6 address, but IPv6 is off on this host: set gateway.ipv6 "
                         "(e.g. fe80::1) in the host config to turn it on");
  if (port.mac == host.gateway_mac)
    return makeError(ErrorCode::kConflict, path + ".mac", port.mac.str(),
                     "the port MAC equals the gateway MAC (gateway.mac)");
  if (host.underlay == UnderlayMode::kVxlan && !port.vni && !host.default_vni)
    return makeError(ErrorCode::kMissingField, path + ".vni", "",
                     "the underlay is vxlan and neither the port nor underlay.default_vni gives a VNI");
  if (host.underlay == UnderlayMode::kRouted && port.vni)
    return makeError(ErrorCode::kConflict, path + ".vni", std::to_string(*port.vni),
                     "a VNI is set but underlay.mode is routed; remove it or switch the host to vxlan");
  return Status::success();
}

struct PortIndex {
  std::unordered_map<Ipv4Addr, const Port*> by_ip;
  std::unordered_map<Ipv6Addr, const Port*> by_ip6;
  std::unordered_map<MacAddr, const Port*> by_mac;
  std::unordered_map<std::uint16_t, const Port*> by_vf;
  std::unordered_map<std::string, const Port*> by_rep;

  // Adds `port`, or returns the error naming the first collision.
  Status add(const Port& port, const std::string& path) {
    for (std::size_t i = 0; i < port.addresses.size(); ++i) {
      auto [it, fresh] = by_ip.emplace(port.addresses[i], &port);
      if (!fresh)
        return makeError(ErrorCode::kDuplicate, path + ".addresses[" + std::to_string(i) + "]",
                         port.addresses[i].str(),
                         port.addresses[i].str() + " is already the address of port " +
                             it->second->key.str());
    }
    for (const auto& a : port.addresses6) {
      auto [it, fresh] = by_ip6.emplace(a, &port);
      if (!fresh)
        return makeError(ErrorCode::kDuplicate, path + ".addresses", a.str(),
                         a.str() + " is already the address of port " + it->second->key.str());
    }
    if (auto [it, fresh] = by_mac.emplace(port.mac, &port); !fresh)
      return makeError(ErrorCode::kDuplicate, path + ".mac", port.mac.str(),
                       port.mac.str() + " is already the MAC of port " + it->second->key.str());
    if (port.vf) {
      if (auto [it, fresh] = by_vf.emplace(*port.vf, &port); !fresh)
        return makeError(ErrorCode::kDuplicate, path + ".vf", std::to_string(*port.vf),
                         "VF " + std::to_string(*port.vf) + " already backs port " +
                             it->second->key.str());
    }
    const auto rep = port.representorName();
    if (!rep.empty()) {
      if (auto [it, fresh] = by_rep.emplace(rep, &port); !fresh)
        return makeError(ErrorCode::kDuplicate, path + ".representor", rep,
                         "representor " + rep + " already belongs to port " + it->second->key.str());
    }
    return Status::success();
  }
};

// A remote's address against the underlay's addresses, and its next hop /
// VTEP against the gateway and this host's VTEP. `path` is "remotes[3]" or
// "remote"; called only for a remote that failed the fast path or whose
// address is an underlay address.
Status checkRemoteUnderlay(const HostConfig& host, const UnderlayAddresses& underlay,
                           const RemoteEndpoint& r, const std::string& path) {
  if (const UnderlayUse* use = underlay.find(r.address))
    return makeError(ErrorCode::kConflict, path + ".address", r.address.str(),
                     "the remote address " + r.address.str() + " is " + use->describe());
  for (const auto& [hop, name] : {std::pair{r.next_hop, "next_hop"}, std::pair{r.vtep, "vtep"}}) {
    if (!hop) continue;
    if (*hop == host.gateway_ipv4)
      return makeError(ErrorCode::kConflict, path + "." + name, hop->str(),
                       hop->str() + " is the gateway address (gateway.ipv4) that every VM uses");
    if (host.vtep && *hop == *host.vtep)
      return makeError(
          ErrorCode::kConflict, path + "." + name, hop->str(),
          std::string(std::strcmp(name, "vtep") == 0 ? "the remote VTEP" : "the next hop") +
              " is this host's own VTEP (underlay.vtep)");
  }
  if (r.vtep && !r.vtep->isV4())
    if (const IpAddr* other = underlay.routerMacTakenBy(*r.vtep))
      return makeError(ErrorCode::kConflict, path + ".vtep", r.vtep->str(),
                       "the VTEP " + r.vtep->str() + " ends in the same 32 bits as " +
                           (host.vtep && *other == *host.vtep ? "this host's VTEP " : "VTEP ") +
                           other->str() + ": both would have router MAC " +
                           routerMac(*r.vtep).str() +
                           " (02:00 + the last 32 bits of the VTEP); IPv6 VTEPs must differ in "
                           "their last 32 bits");
  return Status::success();
}

// An IPv6 VTEP the underlay can route to (IPv4 VTEPs are checked as
// addresses elsewhere, as before IPv6).
bool routableVtep(const IpAddr& vtep) {
  if (vtep.isV4()) return true;
  const Ipv6Addr& a = vtep.v6();
  return !(a.isMulticast() || a.isUnspecified() || a.isLoopback() || a.isLinkLocal());
}

Status checkRemote(const HostConfig& host, const RemoteEndpoint& r, std::size_t index) {
  // Fast path first: the common valid remote costs no string building.
  const bool routed = host.underlay == UnderlayMode::kRouted;
  if (r.address != host.gateway_ipv4 && r.address.isV4() && (!r.next_hop || r.next_hop->isV4()) &&
      (routed ? (!r.vtep && !r.vni && (r.next_hop || host.default_next_hop))
              : (!r.next_hop && r.vtep && (!host.vtep || *r.vtep != *host.vtep) &&
                 (!host.vtep || r.vtep->isV4() == host.vtep->isV4()) && routableVtep(*r.vtep) &&
                 (r.vni || host.default_vni))))
    return Status::success();
  const std::string path = "remotes[" + std::to_string(index) + "]";
  if (host.underlay == UnderlayMode::kRouted) {
    if (r.vtep || r.vni)
      return makeError(ErrorCode::kConflict, path + (r.vtep ? ".vtep" : ".vni"),
                       r.vtep ? r.vtep->str() : std::to_string(*r.vni),
                       "the underlay is routed: a remote takes next_hop, not vtep/vni");
    if (!r.next_hop && !host.default_next_hop)
      return makeError(ErrorCode::kMissingField, path + ".next_hop", "",
                       "no next_hop and no underlay.default_next_hop to reach " + r.address.str());
    if (!r.next_hop && !r.address.isV4())
      return makeError(ErrorCode::kMissingField, path + ".next_hop", "",
                       "an IPv6 remote (" + r.address.str() +
                           ") names its IPv6 next hop: the kernel routes a /128 only through an "
                           "IPv6 gateway, and underlay.default_next_hop is IPv4");
    if (r.next_hop && r.next_hop->isV4() != r.address.isV4() && !r.learned())
      return makeError(ErrorCode::kConflict, path + ".next_hop", r.next_hop->str(),
                       std::string("the next hop of an ") + (r.address.isV4() ? "IPv4" : "IPv6") +
                           " remote is an " + (r.address.isV4() ? "IPv4" : "IPv6") + " address");
    if (r.next_hop && !r.next_hop->isV4() &&
        (r.next_hop->v6().isMulticast() || r.next_hop->v6().isUnspecified() ||
         r.next_hop->v6().isLoopback()))
      return makeError(ErrorCode::kInvalidValue, path + ".next_hop", r.next_hop->str(),
                       "a next hop is a unicast address (a link-local fe80:: one is usual)");
  } else {
    if (r.next_hop)
      return makeError(ErrorCode::kConflict, path + ".next_hop", r.next_hop->str(),
                       "the underlay is vxlan: a remote takes vtep and vni, not next_hop");
    if (!r.vtep)
      return makeError(ErrorCode::kMissingField, path + ".vtep", "",
                       "the underlay is vxlan and the remote names no VTEP");
    if (host.vtep && *r.vtep == *host.vtep)
      return makeError(ErrorCode::kConflict, path + ".vtep", r.vtep->str(),
                       "the remote VTEP is this host's own VTEP (underlay.vtep)");
    if (host.vtep && r.vtep->isV4() != host.vtep->isV4())
      return makeError(ErrorCode::kConflict, path + ".vtep", r.vtep->str(),
                       std::string("this host's VTEP (underlay.vtep ") + host.vtep->str() +
                           ") is " + (host.vtep->isV4() ? "IPv4" : "IPv6") +
                           ", and a VXLAN device reaches VTEPs of its own family only");
    if (!routableVtep(*r.vtep))
      return makeError(ErrorCode::kInvalidValue, path + ".vtep", r.vtep->str(),
                       "a VTEP is a routable unicast address (not link-local, multicast or "
                       "loopback)");
    if (!r.vni && !host.default_vni)
      return makeError(ErrorCode::kMissingField, path + ".vni", "",
                       "the remote names no VNI and underlay.default_vni is not set");
  }
  if (r.address == host.gateway_ipv4)
    return makeError(ErrorCode::kConflict, path + ".address", r.address.str(),
                     "the remote address is the gateway address");
  if (!r.address.isV4() && !host.gateway_ipv6)
    return makeError(
        ErrorCode::kConflict, path + ".address", r.address.str(),
        "IPv6 is off on this host (gateway.ipv6 is not set): its VMs send no IPv6, so a "
        "/128 remote would never be used");
  return Status::success();
}

}  // namespace

std::string UnderlayUse::describe() const {
  const std::string i = std::to_string(index);
  switch (kind) {
    case Kind::kGateway:
      return "the gateway address (gateway.ipv4) that every VM uses";
    case Kind::kHostVtep:
      return "this host's VTEP address (underlay.vtep)";
    case Kind::kNextHop:
      return "the underlay next hop underlay.next_hops[" + i + "]";
    case Kind::kDefaultNextHop:
      return "the underlay's default next hop (underlay.default_next_hop)";
    case Kind::kRemoteVtep:
    case Kind::kRemoteNextHop: {
      const bool vtep = kind == Kind::kRemoteVtep;
      std::string out = vtep ? "the VTEP of " : "the underlay next hop of ";
      out += remote == IpAddr{} ? "other remote endpoints" : "remote " + remote.str();
      if (index != kNoIndex) out += " (remotes[" + i + (vtep ? "].vtep)" : "].next_hop)");
      return out;
    }
  }
  return "an underlay address";
}

UnderlayAddresses::UnderlayAddresses(const HostConfig& host) {
  using Kind = UnderlayUse::Kind;
  uses_.emplace(host.gateway_ipv4, UnderlayUse{Kind::kGateway, 0, {}});
  if (host.vtep) {
    uses_.emplace(*host.vtep, UnderlayUse{Kind::kHostVtep, 0, {}});
    if (!host.vtep->isV4()) router_macs_.emplace(routerMacKey(*host.vtep), *host.vtep);
  }
  for (std::size_t i = 0; i < host.next_hops.size(); ++i)
    uses_.emplace(host.next_hops[i].address,
                  UnderlayUse{Kind::kNextHop, static_cast<std::uint32_t>(i), {}});
  if (host.default_next_hop)
    uses_.emplace(*host.default_next_hop, UnderlayUse{Kind::kDefaultNextHop, 0, {}});
}

void UnderlayAddresses::addRemote(const RemoteEndpoint& remote, std::size_t index) {
  using Kind = UnderlayUse::Kind;
  const auto i = static_cast<std::uint32_t>(std::min<std::size_t>(index, UnderlayUse::kNoIndex));
  // Remotes share a handful of VTEPs and next hops: emplace keeps the first.
  if (remote.vtep) {
    ++remote_refs_[*remote.vtep];
    uses_.emplace(*remote.vtep, UnderlayUse{Kind::kRemoteVtep, i, remote.address});
    if (!remote.vtep->isV4()) router_macs_.emplace(routerMacKey(*remote.vtep), *remote.vtep);
  }
  if (remote.next_hop) {
    ++remote_refs_[*remote.next_hop];
    uses_.emplace(*remote.next_hop, UnderlayUse{Kind::kRemoteNextHop, i, remote.address});
  }
}

void UnderlayAddresses::removeRemote(const RemoteEndpoint& remote) {
  for (const auto& hop : {remote.vtep, remote.next_hop}) {
    if (!hop) continue;
    auto ref = remote_refs_.find(*hop);
    if (ref == remote_refs_.end()) continue;
    auto use = uses_.find(*hop);
    const bool remote_use = use != uses_.end() && (use->second.kind == UnderlayUse::Kind::kRemoteVtep ||
                                                   use->second.kind == UnderlayUse::Kind::kRemoteNextHop);
    if (--ref->second == 0) {
      remote_refs_.erase(ref);
      if (remote_use) uses_.erase(use);
      if (!hop->isV4()) {
        auto mac = router_macs_.find(routerMacKey(*hop));
        if (mac != router_macs_.end() && mac->second == *hop) router_macs_.erase(mac);
      }
    } else if (remote_use && use->second.remote == remote.address) {
      use->second.remote = IpAddr{};  // still used, by remotes not recorded here
      use->second.index = UnderlayUse::kNoIndex;
    }
  }
}

namespace {

// Whether checkRemoteUnderlay() has anything to say about `r` (no strings built).
bool touchesUnderlay(const HostConfig& host, const UnderlayAddresses& underlay,
                     const RemoteEndpoint& r) {
  const auto hits = [&](const auto& a) {
    return a && (*a == host.gateway_ipv4 || (host.vtep && *a == *host.vtep));
  };
  return underlay.find(r.address) || hits(r.next_hop) || hits(r.vtep) ||
         (r.vtep && !r.vtep->isV4() && underlay.routerMacTakenBy(*r.vtep));
}

}  // namespace

Status validateIntent(const Intent& intent) {
  // Every remote's VTEP and next hop first, so that a VM or remote /32 equal
  // to one of them is refused wherever it sits in the lists (this also
  // covers a VTEP or next hop that is a VM or remote /32).
  UnderlayAddresses underlay(intent.host);
  for (std::size_t i = 0; i < intent.remotes.size(); ++i) underlay.addRemote(intent.remotes[i], i);
  PortIndex index;
  std::map<PortKey, std::size_t> keys;
  for (std::size_t i = 0; i < intent.ports.size(); ++i) {
    const auto& port = intent.ports[i];
    const auto path = "ports[" + std::to_string(i) + "]";
    if (auto [it, fresh] = keys.emplace(port.key, i); !fresh)
      return makeError(ErrorCode::kDuplicate, path, port.key.str(),
                       "port " + port.key.str() + " is listed twice (also ports[" +
                           std::to_string(it->second) + "])");
    if (auto s = checkPortAgainstHost(intent.host, underlay, port, path); !s) return s;
    if (auto s = index.add(port, path); !s) return s;
  }
  // Open-addressing set of remote addresses -> first index (no node
  // allocation per remote: there may be 100 k+ of them).
  std::size_t slots = 16;
  while (slots < intent.remotes.size() * 2) slots <<= 1;
  std::vector<std::pair<IpAddr, std::uint32_t>> seen(slots, {IpAddr{}, 0});  // (addr, index+1)
  auto firstIndexOf = [&](const IpAddr& a, std::size_t i) -> std::optional<std::size_t> {
    std::size_t h = (std::hash<IpAddr>{}(a)*0x9E3779B97F4A7C15ULL >> 20) & (slots - 1);
    while (seen[h].second != 0) {
      if (seen[h].first == a) return seen[h].second - 1;
      h = (h + 1) & (slots - 1);
    }
    seen[h] = {a, static_cast<std::uint32_t>(i + 1)};
    return std::nullopt;
  };
  for (std::size_t i = 0; i < intent.remotes.size(); ++i) {
    const auto& r = intent.remotes[i];
    if (auto s = checkRemote(intent.host, r, i); !s) return s;
    const auto path = [i] { return "remotes[" + std::to_string(i) + "]"; };
    if (touchesUnderlay(intent.host, underlay, r))
      if (auto s = checkRemoteUnderlay(intent.host, underlay, r, path()); !s) return s;
    if (const Port* const* local = findLocal(index.by_ip, index.by_ip6, r.address))
      return makeError(
          ErrorCode::kConflict, path() + ".address", r.address.str(),
          r.address.str() + " is a local VM address (port " + (*local)->key.str() + ")");
    if (auto first = firstIndexOf(r.address, i))
      return makeError(ErrorCode::kDuplicate, path() + ".address", r.address.str(),
                       r.address.str() + " is listed twice (also remotes[" +
                           std::to_string(*first) + "])");
  }
  return Status::success();
}

Status validatePortAgainst(const Intent& intent, const Port& port) {
  return IntentIndex(intent).checkPort(port);
}

IntentIndex::IntentIndex(const Intent& intent) : host_(intent.host), underlay_(intent.host) {
  for (const auto& port : intent.ports) upsertPort(port);
  remotes_.reserve(intent.remotes.size());
  for (std::size_t i = 0; i < intent.remotes.size(); ++i) {
    // Named by their place in the list they were read from.
    underlay_.addRemote(intent.remotes[i], i);
    remotes_[intent.remotes[i].address] = static_cast<std::uint32_t>(i);
  }
}

Status IntentIndex::checkRemote(const RemoteEndpoint& remote, bool hops_may_be_remotes) const {
  if (auto s = model::checkRemote(host_, remote, 0); !s) {
    Error e = s.error();
    if (e.field.rfind("remotes[0]", 0) == 0) e.field = "remote" + e.field.substr(10);
    return e;
  }
  if (const PortKey* local = findLocal(by_ip_, by_ip6_, remote.address))
    return makeError(ErrorCode::kConflict, "remote.address", remote.address.str(),
                     remote.address.str() + " is a local VM address (port " + local->str() + ")");
  if (touchesUnderlay(host_, underlay_, remote))
    if (auto s = checkRemoteUnderlay(host_, underlay_, remote, "remote"); !s) return s;
  for (const auto& [hop, name] :
       {std::pair{remote.next_hop, "next_hop"}, std::pair{remote.vtep, "vtep"}}) {
    if (!hop) continue;
    if (const PortKey* local = findLocal(by_ip_, by_ip6_, *hop))
      return makeError(ErrorCode::kConflict, std::string("remote.") + name, hop->str(),
                       hop->str() + " is a local VM address (port " + local->str() + ")");
    if (*hop != remote.address && !hops_may_be_remotes && remotes_.count(*hop))
      return makeError(ErrorCode::kConflict, std::string("remote.") + name, hop->str(),
                       hop->str() + " is the address of another remote endpoint");
  }
  return Status::success();
}

void IntentIndex::addRemote(const RemoteEndpoint& remote, std::size_t position) {
  underlay_.addRemote(remote, UnderlayUse::kNoIndex);
  remotes_[remote.address] = static_cast<std::uint32_t>(position);
}

void IntentIndex::removeRemote(const RemoteEndpoint& remote) {
  if (remotes_.erase(remote.address)) underlay_.removeRemote(remote);
}

void IntentIndex::moveRemote(const IpAddr& address, std::size_t position) {
  if (auto it = remotes_.find(address); it != remotes_.end())
    it->second = static_cast<std::uint32_t>(position);
}

std::optional<std::size_t> IntentIndex::findRemote(const IpAddr& address) const {
  auto it = remotes_.find(address);
  if (it == remotes_.end()) return std::nullopt;
  return it->second;
}

Status IntentIndex::checkPort(const Port& port) const {
  if (auto s = checkPortAgainstHost(host_, underlay_, port, "port"); !s) return s;
  auto taken = [&](const auto& map, const auto& key) -> const PortKey* {
    auto it = map.find(key);
    return it != map.end() && !(it->second == port.key) ? &it->second : nullptr;
  };
  for (std::size_t i = 0; i < port.addresses.size(); ++i) {
    const auto a = port.addresses[i];
    const auto field = "port.addresses[" + std::to_string(i) + "]";
    if (const PortKey* other = taken(by_ip_, a))
      return makeError(ErrorCode::kDuplicate, field, a.str(),
                       a.str() + " is already the address of port " + other->str());
    if (remotes_.count(a))
      return makeError(ErrorCode::kConflict, field, a.str(),
                       a.str() + " is routed to a remote hypervisor");
  }
  for (const auto& a : port.addresses6)
    if (const PortKey* other = taken(by_ip6_, a))
      return makeError(ErrorCode::kDuplicate, "port.addresses", a.str(),
                       a.str() + " is already the address of port " + other->str());
  if (const PortKey* other = taken(by_mac_, port.mac))
    return makeError(ErrorCode::kDuplicate, "port.mac", port.mac.str(),
                     port.mac.str() + " is already the MAC of port " + other->str());
  if (port.vf)
    if (const PortKey* other = taken(by_vf_, *port.vf))
      return makeError(ErrorCode::kDuplicate, "port.vf", std::to_string(*port.vf),
                       "VF " + std::to_string(*port.vf) + " already backs port " + other->str());
  const auto rep = port.representorName();
  if (!rep.empty())
    if (const PortKey* other = taken(by_rep_, rep))
      return makeError(ErrorCode::kDuplicate, "port.representor", rep,
                       "representor " + rep + " already belongs to port " + other->str());
  return Status::success();
}

void IntentIndex::removePort(const PortKey& key) {
  auto it = ports_.find(key);
  if (it == ports_.end()) return;
  const Port& old = it->second;
  for (const auto a : old.addresses) by_ip_.erase(a);
  for (const auto& a : old.addresses6) by_ip6_.erase(a);
  by_mac_.erase(old.mac);
  if (old.vf) by_vf_.erase(*old.vf);
  by_rep_.erase(old.representorName());
  ports_.erase(it);
}

void IntentIndex::upsertPort(const Port& port) {
  removePort(port.key);
  for (const auto a : port.addresses) by_ip_[a] = port.key;
  for (const auto& a : port.addresses6) by_ip6_[a] = port.key;
  by_mac_[port.mac] = port.key;
  if (port.vf) by_vf_[*port.vf] = port.key;
  if (auto rep = port.representorName(); !rep.empty()) by_rep_[rep] = port.key;
  ports_.emplace(port.key, port);
}

std::string ealArgumentProblem(std::string_view a) {
  if (a.empty()) return "an EAL argument must not be empty";
  for (char c : a)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return "control characters are not allowed";
  if (a == "--") return "'--' would end the EAL's options; give EAL options only";
  const std::string shown = "'" + std::string(a) + "'";
  // Long options: getopt_long takes any unambiguous prefix ("--he" is
  // --help), with or without "=value".
  if (a.size() > 2 && a.substr(0, 2) == "--") {
    const std::string_view name = a.substr(0, a.find('='));
    for (std::string_view opt : {"--help", "--version"})
      if (name.size() >= 4 && opt.substr(0, name.size()) == name)
        return shown + " is " + std::string(opt) +
               ": the EAL would print its usage and exit the process (status 0) before "
               "anything ran";
    return {};
  }
  // Short options: "-h" alone or in a cluster of flags ("-vh"); the EAL's
  // other short options take a value, which ends the cluster.
  if (a.size() > 1 && a[0] == '-')
    for (std::size_t i = 1; i < a.size(); ++i) {
      if (a[i] == 'h')
        return shown +
               " holds -h: the EAL would print its usage and exit the process (status "
               "0) before anything ran";
      if (a[i] != 'v') break;
    }
  return {};
}

Result<json> readJsonFile(const std::string& path, std::size_t max_bytes,
                          const std::string& field) {
  auto text = readRegularFile(path, max_bytes, field);
  if (!text) return text.error();
  return parseJsonInput(*text, path);
}

Result<HostConfig> loadHostConfig(const std::string& path) {
  auto doc = readJsonFile(path, kMaxConfigFileBytes);
  if (!doc) return doc.error();
  auto host = parseHostConfig(*doc);
  if (!host) {
    Error e = host.error();
    e.field = path + ": " + e.field;
    return e;
  }
  return host;
}

Result<std::string> resolveProfilePath(const std::string& setting, const std::string& profile_dir) {
  if (setting == "auto")
    return makeError(ErrorCode::kUnsupported, "hw_profile", setting,
                     "'auto' is not resolved by the daemon (it would open the PF through rdma-core "
                     "before the lock and the backends); run 'nicoffload-hwtest --probe --pci <PF>' to "
                     "see which profile the device matches, then name that profile");
  if (setting.empty())
    return makeError(ErrorCode::kInvalidValue, "hw_profile", setting, "must not be empty");
  if (setting.find('/') != std::string::npos ||
      (setting.size() > 5 && setting.compare(setting.size() - 5, 5, ".json") == 0))
    return setting;
  for (char c : setting)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'))
      return makeError(ErrorCode::kInvalidValue, "hw_profile", setting,
                       "'" + setting + "' is neither a profile name ([a-z0-9_-]) nor a path");
  return profile_dir + "/" + setting + ".json";
}

Result<HwProfile> loadHostProfile(const std::string& setting, const std::string& host_file,
                                  const std::string& profile_dir) {
  auto path = resolveProfilePath(setting, profile_dir);
  if (!path) {
    Error e = path.error();
    e.field = host_file + ": " + e.field;
    return e;
  }
  // Read errors blame the host config's hw_profile ("hw_profile": "/dev/zero"
  // is refused as a device, not read without end); errors inside the
  // profile name the profile file.
  auto profile = loadHwProfile(*path, host_file + ": hw_profile");
  if (!profile && profile.error().code == ErrorCode::kIo)
    return makeError(ErrorCode::kNotFound, host_file + ": hw_profile", setting,
                     "no hardware profile '" + setting + "': " + profile.error().message +
                         " (named profiles are read from " + profile_dir + "; see --profile-dir)");
  return profile;
}

}  // namespace nicoffload::model

namespace nicoffload::model {

Result<HostConfig> parseHostConfigText(std::string_view text) {
  try {
    auto doc = parseJsonInput(text, "host config");
    if (!doc) return doc.error();
    return parseHostConfig(*doc);
  } catch (const std::exception& e) {  // a bug, not an input error: never let it cross
    return makeError(ErrorCode::kInternal, "host config", "",
                     std::string("unexpected exception: ") + e.what());
  }
}

Status parsePortsFileText(std::string_view text, Intent& intent) {
  try {
    auto doc = parseJsonInput(text, "ports file");
    if (!doc) return doc.error();
    return parsePortsFile(*doc, intent);
  } catch (const std::exception& e) {
    return makeError(ErrorCode::kInternal, "ports file", "",
                     std::string("unexpected exception: ") + e.what());
  }
}

Status checkAdmissionText(std::string_view host_text, std::string_view ports_text) {
  try {
    Intent intent;
    auto host = parseHostConfigText(host_text);
    if (!host) return host.error();
    intent.host = std::move(host).value();
    if (auto s = parsePortsFileText(ports_text, intent); !s) return s;
    if (auto s = validateIntent(intent); !s) return s;
    // The daemon's path: one request at a time against what is admitted.
    Intent admitted;
    admitted.host = intent.host;
    IntentIndex index(admitted);
    for (const auto& port : intent.ports) {
      if (auto s = index.checkPort(port); !s) return s;
      index.upsertPort(port);
    }
    for (std::size_t i = 0; i < intent.remotes.size(); ++i) {  // unique: validateIntent passed
      if (auto s = index.checkRemote(intent.remotes[i]); !s) return s;
      index.addRemote(intent.remotes[i], i);
    }
    return Status::success();
  } catch (const std::exception& e) {
    return makeError(ErrorCode::kInternal, "admission", "",
                     std::string("unexpected exception: ") + e.what());
  }
}

}  // namespace nicoffload::model
