// Ports, remotes and comparisons shared by the StateStore tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "nicoffload/model/parse.h"
#include "nicoffload/daemon/state_store.h"

namespace nicoffload::daemon::state_fixtures {

// A valid port; `i` < 65536 picks the VM, MAC, address and VF; `mtu` varies
// the content so that a put of the same key is a visible replacement.
inline model::Port makePort(unsigned i, unsigned mtu = 1500) {
  char vm[40];
  std::snprintf(vm, sizeof vm, "00000000-0000-4000-8000-%012x", i);
  char mac[24];
  std::snprintf(mac, sizeof mac, "52:54:00:00:%02x:%02x", (i >> 8) & 0xFF, i & 0xFF);
  auto p = model::parsePort({{"vm", vm},
                             {"nic", 0},
                             {"mac", mac},
                             {"addresses",
                              {"10.0." + std::to_string((i >> 8) & 0xFF) + "." +
                               std::to_string((i & 0xFF) % 250 + 1) + "/32"}},
                             {"vf", i % 4096},
                             {"vni", 100},
                             {"mtu", mtu},
                             {"vdpa", "kernel"}});
  EXPECT_TRUE(p.ok()) << p.error().describe();
  return *p;
}

// A remote at 10.1.x.y (`i` < 62500) behind VTEP 192.0.2.<vtep>.
inline model::RemoteEndpoint makeRemote(unsigned i, unsigned vtep = 1, std::uint32_t vni = 100) {
  model::RemoteEndpoint r;
  r.address =
      *Ipv4Addr::parse("10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1));
  r.vtep = *Ipv4Addr::parse("192.0.2." + std::to_string(vtep % 250 + 1));
  r.vni = vni;
  return r;
}

// Ports and remotes (in order) as JSON, to compare states with one EXPECT.
inline nlohmann::json dump(const PersistedState& s) {
  nlohmann::json j = {{"ports", nlohmann::json::array()}, {"remotes", nlohmann::json::array()}};
  for (const auto& p : s.ports) j["ports"].push_back(model::toJson(p));
  for (const auto& r : s.remotes) j["remotes"].push_back(model::toJson(r));
  return j;
}

}  // namespace nicoffload::daemon::state_fixtures
