// Shared helpers of the unit tests: paths into the source tree, loading the
// shipped profiles and examples, and small builders for hand-made intents.
// Header-only; included by the *_test.cc files.
#pragma once

#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "nicoffload/common/error.h"
#include "nicoffload/flowrules/planner.h"
#include "nicoffload/model/parse.h"

namespace nicoffload::test {

using nlohmann::json;

// The shipped profiles, by file stem. profile_test checks that this list and
// hw-profiles/*.json agree, so a new profile cannot escape the tests.
inline const std::vector<std::string>& shippedProfiles() {
  static const std::vector<std::string> kNames = {
      "sim", "connectx-5", "connectx-6lx", "connectx-6dx", "connectx-7", "bluefield-2", "bluefield-3"};
  return kNames;
}

inline std::string sourcePath(std::string_view relative) {
  return std::string(NICOFFLOAD_SOURCE_DIR) + "/" + std::string(relative);
}

inline std::string profilePath(const std::string& name) {
  return sourcePath("hw-profiles/" + name + ".json");
}

// Unwraps a Result, turning an error into an exception (gtest reports it as a
// test failure with the error text).
template <class T>
T unwrap(Result<T> r, std::string_view what) {
  if (!r) throw std::runtime_error(std::string(what) + ": " + r.error().describe());
  return std::move(r).value();
}

inline void check(const Status& s, std::string_view what) {
  if (!s) throw std::runtime_error(std::string(what) + ": " + s.error().describe());
}

inline json readJson(std::string_view relative) {
  return unwrap(model::readJsonFile(sourcePath(relative)), relative);
}

inline model::HwProfile loadProfile(const std::string& name) {
  return unwrap(model::loadHwProfile(profilePath(name)), "profile " + name);
}

inline json profileJson(const std::string& name) { return readJson("hw-profiles/" + name + ".json"); }

// Builds an intent from a host document and a ports document (both JSON),
// validated.
inline model::Intent intentFrom(const json& host_doc, const json& ports_doc) {
  model::Intent intent;
  intent.host = unwrap(model::parseHostConfig(host_doc), "host config");
  check(model::parsePortsFile(ports_doc, intent), "ports file");
  check(model::validateIntent(intent), "intent");
  return intent;
}

enum class Example { kVxlan, kRouted };

inline const char* toString(Example e) { return e == Example::kVxlan ? "vxlan" : "routed"; }

// examples/host.json + examples/ports.json, or the -routed pair.
inline model::Intent exampleIntent(Example e) {
  return e == Example::kVxlan
             ? intentFrom(readJson("examples/host.json"), readJson("examples/ports.json"))
             : intentFrom(readJson("examples/host-routed.json"), readJson("examples/ports-routed.json"));
}

// Without vDPA anywhere: the form every profile can plan (ConnectX-5 has none).
inline void dropVdpa(model::Intent& intent) {
  intent.host.vdpa_backend = model::VdpaKind::kNone;
  for (auto& p : intent.ports) p.vdpa.reset();
}

inline flowrules::DesiredState planOrThrow(const model::Intent& intent, const model::HwProfile& profile) {
  return unwrap(flowrules::plan(intent, profile), "plan with " + profile.name);
}

// --- hand-made intents ---

inline Ipv4Addr ip(std::string_view text) {
  auto a = Ipv4Addr::parse(text);
  if (!a) throw std::invalid_argument("bad IPv4 in test: " + std::string(text));
  return *a;
}

inline MacAddr mac(std::string_view text) {
  auto m = MacAddr::parse(text);
  if (!m) throw std::invalid_argument("bad MAC in test: " + std::string(text));
  return *m;
}

// A host like examples/host.json: gateway 169.254.1.1 / ee:ee:.., uplink MAC
// 0c:42:a1:00:00:01, next hop 192.0.2.254 with a known MAC, 16 VFs; for vxlan
// VTEP 192.0.2.1, default VNI 100.
inline model::HostConfig makeHost(model::UnderlayMode mode) {
  model::HostConfig h;
  h.name = "hv-test";
  h.uplink_pci = "0000:03:00.0";
  h.uplink_netdev = "uplink0";
  h.vf_count = 16;
  h.gateway_ipv4 = ip("169.254.1.1");
  h.gateway_mac = mac("ee:ee:ee:ee:ee:ee");
  h.underlay = mode;
  h.uplink_mac = mac("0c:42:a1:00:00:01");
  h.next_hops.push_back({ip("192.0.2.254"), mac("0c:42:a1:ff:ff:fe")});
  h.default_next_hop = ip("192.0.2.254");
  if (mode == model::UnderlayMode::kVxlan) {
    h.vtep = ip("192.0.2.1");
    h.default_vni = 100;
  }
  h.vdpa_backend = model::VdpaKind::kNone;
  return h;
}

// Port number n (0-based): VM uuid ...000n, NIC 0, MAC 52:54:00:00:00:<n+1>,
// VF n, the given addresses.
inline model::Port makePort(int n, std::vector<std::string_view> addresses,
                            std::optional<std::uint32_t> vni = std::nullopt) {
  model::Port p;
  char vm[40];
  std::snprintf(vm, sizeof vm, "00000000-0000-4000-8000-%012d", n);
  p.key = {vm, 0};
  char m[32];
  std::snprintf(m, sizeof m, "52:54:00:00:00:%02x", n + 1);
  p.mac = mac(m);
  for (auto a : addresses) p.addresses.push_back(ip(a));
  p.vf = static_cast<std::uint16_t>(n);
  p.vni = vni;
  return p;
}

inline model::RemoteEndpoint routedRemote(std::string_view address,
                                          std::optional<std::string_view> next_hop = std::nullopt) {
  model::RemoteEndpoint r;
  r.address = ip(address);
  if (next_hop) r.next_hop = ip(*next_hop);
  return r;
}

inline model::RemoteEndpoint vxlanRemote(std::string_view address, std::string_view vtep,
                                         std::optional<std::uint32_t> vni = std::nullopt) {
  model::RemoteEndpoint r;
  r.address = ip(address);
  r.vtep = ip(vtep);
  r.vni = vni;
  return r;
}

}  // namespace nicoffload::test
