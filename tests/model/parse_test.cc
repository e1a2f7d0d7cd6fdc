// Host config, ports file and remote endpoint parsing, and whole-intent
// validation: every bad input yields an Error with the right code, the exact
// JSON path of the field, and the offending value.
#include <functional>

#include <gtest/gtest.h>

#include "nicoffload/model/parse.h"
#include "support/test_support.h"

namespace nicoffload {
namespace {

using model::Intent;
using nlohmann::json;
using test::Example;

// --- mutations of a JSON document, for the tables ---
using Mutation = std::function<void(json&)>;

Mutation set(std::string pointer, json value) {
  return [pointer = std::move(pointer), value = std::move(value)](json& doc) {
    doc[json::json_pointer(pointer)] = value;
  };
}

Mutation erase(std::string pointer) {
  return [pointer = std::move(pointer)](json& doc) {
    const json::json_pointer p(pointer);
    doc[p.parent_pointer()].erase(p.back());
  };
}

[[maybe_unused]] Mutation both(Mutation a, Mutation b) {
  return [a = std::move(a), b = std::move(b)](json& doc) {
    a(doc);
    b(doc);
  };
}

// Where an error surfaced.
enum class Stage { kHost, kPorts, kValidate, kNone };

const char* toString(Stage s) {
  switch (s) {
    case Stage::kHost: return "parseHostConfig";
    case Stage::kPorts: return "parsePortsFile";
    case Stage::kValidate: return "validateIntent";
    case Stage::kNone: return "(no error)";
  }
  return "?";
}

struct Outcome {
  Stage stage = Stage::kNone;
  Error error;
};

// Runs the three steps the daemon runs on its inputs; stops at the first error.
Outcome parseAndValidate(const json& host_doc, const json& ports_doc) {
  Intent intent;
  auto host = model::parseHostConfig(host_doc);
  if (!host) return {Stage::kHost, host.error()};
  intent.host = *host;
  if (auto s = model::parsePortsFile(ports_doc, intent); !s) return {Stage::kPorts, s.error()};
  if (auto s = model::validateIntent(intent); !s) return {Stage::kValidate, s.error()};
  return {};
}

json exampleHost(Example e) {
  return test::readJson(e == Example::kVxlan ? "examples/host.json" : "examples/host-routed.json");
}
json examplePorts(Example e) {
  return test::readJson(e == Example::kVxlan ? "examples/ports.json" : "examples/ports-routed.json");
}

TEST(ParseIntent, ExamplesParseAndValidate) {
  for (auto e : {Example::kVxlan, Example::kRouted}) {
    SCOPED_TRACE(test::toString(e));
    const auto out = parseAndValidate(exampleHost(e), examplePorts(e));
    EXPECT_EQ(out.stage, Stage::kNone) << toString(out.stage) << ": " << out.error.describe();
  }
}

TEST(ParseIntent, VxlanExampleValues) {
  const Intent intent = test::exampleIntent(Example::kVxlan);
  const auto& h = intent.host;
  EXPECT_EQ(h.name, "hv1");
  EXPECT_EQ(h.uplink_pci, "0000:03:00.0");
  EXPECT_EQ(h.uplink_netdev, "uplink0");
  EXPECT_EQ(h.uplink_mac.str(), "0c:42:a1:00:00:01");
  EXPECT_EQ(h.vf_count, 8);
  EXPECT_EQ(h.gateway_ipv4.str(), "169.254.1.1");
  EXPECT_EQ(h.underlay, model::UnderlayMode::kVxlan);
  ASSERT_TRUE(h.vtep);
  EXPECT_EQ(h.vtep->str(), "192.0.2.1");
  EXPECT_EQ(h.vxlan_udp_port, 4789);
  EXPECT_EQ(h.default_vni, std::optional<std::uint32_t>(100));
  ASSERT_EQ(h.next_hops.size(), 1u);
  EXPECT_EQ(h.next_hops[0].mac.str(), "0c:42:a1:ff:ff:fe");
  EXPECT_EQ(h.route_protocol, 240);
  EXPECT_EQ(h.route_table, 254u);
  EXPECT_EQ(h.vdpa_backend, model::VdpaKind::kSim);

  ASSERT_EQ(intent.ports.size(), 4u);
  const auto& p1 = intent.ports[1];
  EXPECT_EQ(p1.key.str(), "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001/1");
  ASSERT_EQ(p1.addresses.size(), 2u);
  EXPECT_EQ(p1.addresses[1].str(), "10.10.1.3");
  EXPECT_EQ(p1.queues, 2);
  EXPECT_EQ(p1.mtu, 1500);
  EXPECT_FALSE(p1.vni);
  EXPECT_EQ(intent.ports[2].vni, std::optional<std::uint32_t>(200));
  EXPECT_EQ(intent.ports[2].mtu, 9000);
  EXPECT_EQ(intent.ports[3].vdpa, std::optional<model::VdpaKind>(model::VdpaKind::kNone));
  EXPECT_FALSE(intent.ports[0].vdpa);  // unset: the host default applies

  ASSERT_EQ(intent.remotes.size(), 3u);
  EXPECT_EQ(intent.remotes[2].address.str(), "10.20.2.1");
  EXPECT_EQ(intent.remotes[2].vtep->str(), "192.0.2.3");
  EXPECT_EQ(intent.remotes[2].vni, std::optional<std::uint32_t>(200));
}

TEST(ParseIntent, LearnRoutesAndProtocols) {
  json host = exampleHost(Example::kRouted);
  EXPECT_FALSE(model::parseHostConfig(host)->learn_routes) << "off by default";
  EXPECT_TRUE(model::parseHostConfig(host)->learn_protocols.empty()) << "empty: any but ours";
  host["kernel"] = {{"learn_routes", true}, {"learn_protocols", {"bgp", 188, "ospf", "bird"}}};
  host["uplink"]["netdev"] = "uplink0";
  auto h = model::parseHostConfig(host);
  ASSERT_TRUE(h) << h.error().describe();
  EXPECT_TRUE(h->learn_routes);
  EXPECT_EQ(h->learn_protocols, (std::vector<std::uint8_t>{186, 188, 12}));
  // Learned routes go through the uplink and are read from the kernel.
  for (const auto& [pointer, value] :
       {std::pair<const char*, json>{"/uplink/netdev", ""}, {"/backends/software_path", "none"}}) {
    json bad = host;
    bad[json::json_pointer(pointer)] = value;
    auto r = model::parseHostConfig(bad);
    ASSERT_FALSE(r) << pointer;
    EXPECT_EQ(r.error().field, "kernel.learn_routes") << r.error().describe();
    EXPECT_EQ(r.error().code, ErrorCode::kConflict);
  }
}

// Issue 22: kernel.learn_prefixes (allow/deny), each bad value named.
TEST(ParseIntent, LearnPrefixesAndTheirErrors) {
  json host = exampleHost(Example::kRouted);
  host["uplink"]["netdev"] = "uplink0";
  host["kernel"] = {{"learn_routes", true},
                    {"learn_prefixes", {{"allow", {"10.0.0.0/8", "172.16.0.0/12"}},
                                        {"deny", {"10.255.0.0/16"}}}}};
  auto h = model::parseHostConfig(host);
  ASSERT_TRUE(h) << h.error().describe();
  EXPECT_EQ(h->learn_allow.size(), 2u);
  ASSERT_EQ(h->learn_deny.size(), 1u);
  EXPECT_EQ(h->learn_deny[0].str(), "10.255.0.0/16");
  EXPECT_TRUE(h->learn_deny[0].contains(*Ipv4Addr::parse("10.255.9.1")));
  EXPECT_FALSE(h->learn_deny[0].contains(*Ipv4Addr::parse("10.254.9.1")));
  struct Bad {
    json prefixes;
    const char* field;
    const char* value;
    ErrorCode code;
  };
  for (const auto& b : std::vector<Bad>{
           {{{"allow", {"10.1.2.3/8"}}}, "kernel.learn_prefixes.allow[0]", "10.1.2.3/8",
            ErrorCode::kInvalidValue},
           {{{"deny", {"10.0.0.0"}}}, "kernel.learn_prefixes.deny[0]", "10.0.0.0",
            ErrorCode::kInvalidValue},
           {{{"deny", {"10.0.0.0/33"}}}, "kernel.learn_prefixes.deny[0]", "10.0.0.0/33",
            ErrorCode::kInvalidValue},
           {{{"deny", {7}}}, "kernel.learn_prefixes.deny[0]", "7", ErrorCode::kWrongType},
           {{{"allow", "10.0.0.0/8"}}, "kernel.learn_prefixes.allow", "10.0.0.0/8",
            ErrorCode::kWrongType},
           {{{"permit", json::array()}}, "kernel.learn_prefixes.permit", "permit",
            ErrorCode::kUnknownField},
           {json::array(), "kernel.learn_prefixes", "[]", ErrorCode::kWrongType}}) {
    json bad = host;
    bad["kernel"]["learn_prefixes"] = b.prefixes;
    auto r = model::parseHostConfig(bad);
    ASSERT_FALSE(r) << b.prefixes.dump();
    EXPECT_EQ(r.error().field, b.field) << r.error().describe();
    EXPECT_EQ(r.error().code, b.code) << r.error().describe();
    EXPECT_NE((r.error().value + " " + r.error().message).find(b.value), std::string::npos)
        << r.error().value << " / " << r.error().message;
  }
  // Without learn_routes the filter would do nothing: said so.
  host["kernel"]["learn_routes"] = false;
  auto off = model::parseHostConfig(host);
  ASSERT_FALSE(off);
  EXPECT_EQ(off.error().field, "kernel.learn_prefixes");
}

// Issue 14: vdpa.pool and vdpa.link_dir; each bad value names its field.
TEST(ParseIntent, VdpaPoolAndItsErrors) {
  json host = exampleHost(Example::kRouted);
  auto plain = model::parseHostConfig(host);
  ASSERT_TRUE(plain) << plain.error().describe();
  EXPECT_EQ(plain->vdpa_pool_size, 0) << "no pool by default";
  EXPECT_TRUE(plain->vdpa_link_dir.empty()) << "empty: beside the control socket";
  host["backends"]["vdpa"] = "sim";
  host["vdpa"] = {{"pool", {{"size", 6}}}, {"link_dir", "/run/x/vdpa"}};
  auto h = model::parseHostConfig(host);
  ASSERT_TRUE(h) << h.error().describe();
  EXPECT_EQ(h->vdpa_pool_size, 6);
  EXPECT_EQ(h->vdpa_pool_low_water, 3) << "default: half the size, rounded up";
  EXPECT_EQ(h->vdpa_pool_mtu, 1500);
  EXPECT_EQ(h->vdpa_link_dir, "/run/x/vdpa");
  host["vdpa"]["pool"] = {{"size", 4}, {"low_water", 1}, {"mtu", 9000}};
  h = model::parseHostConfig(host);
  ASSERT_TRUE(h) << h.error().describe();
  EXPECT_EQ(h->vdpa_pool_low_water, 1);
  EXPECT_EQ(h->vdpa_pool_mtu, 9000);
  const struct {
    const char* pointer;
    json value;
    ErrorCode code;
    const char* field;
  } cases[] = {
      {"/vdpa/pool/size", -1, ErrorCode::kInvalidValue, "vdpa.pool.size"},
      {"/vdpa/pool/size", "4", ErrorCode::kWrongType, "vdpa.pool.size"},
      {"/vdpa/pool/size", 9, ErrorCode::kInvalidValue, "vdpa.pool.size"},  // vf_count 8
      {"/vdpa/pool/low_water", 5, ErrorCode::kInvalidValue, "vdpa.pool.low_water"},
      {"/vdpa/pool/mtu", 60, ErrorCode::kInvalidValue, "vdpa.pool.mtu"},
      {"/vdpa/pool/sise", 1, ErrorCode::kUnknownField, "vdpa.pool.sise"},
      {"/vdpa/link_dir", "relative/dir", ErrorCode::kInvalidValue, "vdpa.link_dir"},
      {"/vdpa/colour", 1, ErrorCode::kUnknownField, "vdpa.colour"},
      {"/backends/vdpa", "none", ErrorCode::kConflict, "vdpa.pool.size"},
  };
  for (const auto& c : cases) {
    json bad = host;
    bad[json::json_pointer(c.pointer)] = c.value;
    auto r = model::parseHostConfig(bad);
    ASSERT_FALSE(r) << c.pointer << " = " << c.value;
    EXPECT_EQ(r.error().field, c.field) << r.error().describe();
    EXPECT_EQ(r.error().code, c.code) << r.error().describe();
  }
}

// Issue 23: how often the per-port traffic counters are read; 0 = never.
TEST(ParseIntent, TrafficInterval) {
  json host = exampleHost(Example::kRouted);
  auto h = model::parseHostConfig(host);
  ASSERT_TRUE(h) << h.error().describe();
  EXPECT_EQ(h->traffic_interval_ms, 10000u) << "default: 10 s";
  for (const int ok : {0, 100, 86400000}) {
    host["daemon"] = {{"traffic_interval_ms", ok}};
    h = model::parseHostConfig(host);
    ASSERT_TRUE(h) << ok << ": " << h.error().describe();
    EXPECT_EQ(h->traffic_interval_ms, static_cast<std::uint32_t>(ok));
  }
  for (const auto& [value, code] : std::vector<std::pair<json, ErrorCode>>{
           {1, ErrorCode::kInvalidValue},
           {99, ErrorCode::kInvalidValue},
           {-1, ErrorCode::kInvalidValue},
           {86400001, ErrorCode::kInvalidValue},
           {"100", ErrorCode::kWrongType}}) {
    host["daemon"] = {{"traffic_interval_ms", value}};
    auto r = model::parseHostConfig(host);
    ASSERT_FALSE(r) << value;
    EXPECT_EQ(r.error().field, "daemon.traffic_interval_ms") << r.error().describe();
    EXPECT_EQ(r.error().code, code) << r.error().describe();
  }
}

// Issue 22: how long a tentative port (the hook's migrate) lives, and the
// expiry a port carries through the state file.
TEST(ParseIntent, TentativeTtlAndThePortsExpiry) {
  json host = exampleHost(Example::kRouted);
  auto h = model::parseHostConfig(host);
  ASSERT_TRUE(h) << h.error().describe();
  EXPECT_EQ(h->tentative_ttl_ms, 300000u) << "default: 5 minutes";
  host["daemon"] = {{"tentative_ttl_ms", 2000}};
  h = model::parseHostConfig(host);
  ASSERT_TRUE(h) << h.error().describe();
  EXPECT_EQ(h->tentative_ttl_ms, 2000u);
  for (const auto& [value, code] : std::vector<std::pair<json, ErrorCode>>{
           {999, ErrorCode::kInvalidValue},
           {86400001, ErrorCode::kInvalidValue},
           {"2000", ErrorCode::kWrongType}}) {
    host["daemon"]["tentative_ttl_ms"] = value;
    auto r = model::parseHostConfig(host);
    ASSERT_FALSE(r) << value;
    EXPECT_EQ(r.error().field, "daemon.tentative_ttl_ms") << r.error().describe();
    EXPECT_EQ(r.error().code, code) << r.error().describe();
  }
  json port = {{"vm", "00000000-0000-4000-8000-000000000001"}, {"nic", 0},
               {"mac", "52:54:00:00:00:01"}, {"addresses", {"10.0.1.1/32"}}};
  auto plain = model::parsePort(port, "port");
  ASSERT_TRUE(plain) << plain.error().describe();
  EXPECT_FALSE(plain->tentative_until_ms);
  EXPECT_FALSE(model::toJson(*plain).contains("tentative_until_ms"));
  port["tentative_until_ms"] = 1796474818337;
  auto claimed = model::parsePort(port, "port");
  ASSERT_TRUE(claimed) << claimed.error().describe();
  EXPECT_EQ(claimed->tentative_until_ms, 1796474818337);
  EXPECT_EQ(model::toJson(*claimed)["tentative_until_ms"], 1796474818337);
  port["tentative_until_ms"] = -1;
  auto bad = model::parsePort(port, "port");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "port.tentative_until_ms");
}

TEST(ParseIntent, RoutedExampleValuesAndDefaults) {
  const Intent intent = test::exampleIntent(Example::kRouted);
  const auto& h = intent.host;
  EXPECT_EQ(h.underlay, model::UnderlayMode::kRouted);
  EXPECT_FALSE(h.vtep);
  EXPECT_EQ(h.default_next_hop, std::optional<Ipv4Addr>(test::ip("192.0.2.254")));
  // Absent sections take their defaults.
  EXPECT_EQ(h.route_protocol, 240);
  EXPECT_EQ(h.route_table, 254u);
  EXPECT_EQ(h.vxlan_udp_port, 4789);
  EXPECT_EQ(h.uplink_port_id, 0);
  EXPECT_EQ(h.first_representor_port_id, 1);
  EXPECT_EQ(h.socket_path, "/run/nicoffload/nicoffloadd.sock");
  ASSERT_EQ(intent.remotes.size(), 2u);
  EXPECT_FALSE(intent.remotes[0].next_hop);
  EXPECT_EQ(intent.remotes[1].next_hop, std::optional<Ipv4Addr>(test::ip("192.0.2.253")));
  EXPECT_EQ(intent.ports[0].representorName(), "pf0vf0");  // derived from the VF
}

// An IPv6 remote on a routed host with IPv6 on: through its IPv6 next hop,
// whose MAC a static next hop gives; written back as a /128.
TEST(ParseIntent, Ipv6RemoteThroughAnIpv6NextHop) {
  json host = test::readJson("examples/host-routed.json");
  host["gateway"]["ipv6"] = "fe80::1";
  host["underlay"]["next_hops"].push_back({{"ipv6", "FE80::6"}, {"mac", "0c:42:a1:00:00:66"}});
  json ports = test::readJson("examples/ports-routed.json");
  ports["remotes"].push_back({{"address", "2001:db8:9::5/128"}, {"next_hop", "fe80::6"}});
  const Intent intent = test::intentFrom(host, ports);
  ASSERT_TRUE(model::validateIntent(intent).ok());
  ASSERT_EQ(intent.host.next_hops.size(), 2u);
  EXPECT_EQ(intent.host.next_hops[1].address, *IpAddr::parse("fe80::6"));
  const auto& r = intent.remotes.back();
  EXPECT_FALSE(r.address.isV4());
  EXPECT_EQ(r.address.str(), "2001:db8:9::5");
  EXPECT_EQ(model::toJson(r)["address"], "2001:db8:9::5/128");
  EXPECT_EQ(model::toJson(r)["next_hop"], "fe80::6");
  auto again = model::parseRemote(model::toJson(r));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->address, r.address);
  EXPECT_EQ(again->next_hop, r.next_hop);
  // The same /128 twice, and a /128 that a local VM holds.
  const auto validate = [&](const json& ports_doc) {
    Intent i;
    i.host = intent.host;
    EXPECT_TRUE(model::parsePortsFile(ports_doc, i).ok());
    return model::validateIntent(i);
  };
  json twice = ports;
  twice["remotes"].push_back({{"address", "2001:db8:9::5"}, {"next_hop", "fe80::6"}});
  auto dup = validate(twice);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ErrorCode::kDuplicate);
  EXPECT_EQ(dup.error().field, "remotes[3].address");
  json local = ports;
  local["ports"][0]["addresses"].push_back("2001:db8:9::5/128");
  auto taken = validate(local);
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().code, ErrorCode::kConflict);
  EXPECT_NE(taken.error().message.find("local VM address"), std::string::npos)
      << taken.error().message;
}

// VXLAN over an IPv6 underlay (issue 23): underlay.vtep, the remotes'
// VTEPs and the default next hop are IPv6. Each misuse is refused naming its
// field: a link-local VTEP, VTEPs of two families, a default next hop of the
// other family, two IPv6 VTEPs with the same last 32 bits (their router
// MACs would be equal), one of them this host's.
TEST(ParseIntent, Ipv6VtepsAndTheirErrors) {
  json host = exampleHost(Example::kVxlan);
  host["underlay"]["vtep"] = "2001:db8:ff::1";
  host["underlay"]["default_next_hop"] = "2001:db8:ff::fe";
  host["underlay"]["next_hops"] =
      json::array({{{"ipv6", "2001:db8:ff::fe"}, {"mac", "0c:42:a1:ff:ff:fe"}}});
  json ports = examplePorts(Example::kVxlan);
  ports["remotes"] =
      json::array({{{"address", "10.20.1.1/32"}, {"vtep", "2001:db8:ff::2"}, {"vni", 100}},
                   {{"address", "10.20.1.2/32"}, {"vtep", "2001:db8:ff::2"}, {"vni", 100}},
                   {{"address", "10.20.2.1/32"}, {"vtep", "2001:db8:ff::3"}, {"vni", 200}}});
  const auto ok = parseAndValidate(host, ports);
  ASSERT_EQ(ok.stage, Stage::kNone) << ok.error.describe();
  const Intent intent = test::intentFrom(host, ports);
  ASSERT_TRUE(intent.host.vtep);
  EXPECT_EQ(intent.host.vtep->str(), "2001:db8:ff::1");
  EXPECT_EQ(intent.host.default_next_hop->str(), "2001:db8:ff::fe");
  EXPECT_EQ(intent.remotes[0].vtep->str(), "2001:db8:ff::2");
  EXPECT_EQ(model::toJson(intent.remotes[0])["vtep"], "2001:db8:ff::2");
  EXPECT_EQ(model::routerMacKey(*intent.host.vtep), 1u);

  struct Case {
    const char* what;
    Mutation host, ports;
    Stage stage;
    const char* field;
    ErrorCode code;
    const char* says;
  };
  const Case cases[] = {
      {"link-local VTEP",
       [](json& h) { h["underlay"]["vtep"] = "fe80::1:1"; },
       {},
       Stage::kHost,
       "underlay.vtep",
       ErrorCode::kInvalidValue,
       "not link-local"},
      {"multicast VTEP",
       [](json& h) { h["underlay"]["vtep"] = "ff05::1"; },
       {},
       Stage::kHost,
       "underlay.vtep",
       ErrorCode::kInvalidValue,
       "unicast"},
      {"default next hop of the other family",
       [](json& h) { h["underlay"]["default_next_hop"] = "192.0.2.254"; },
       {},
       Stage::kHost,
       "underlay.default_next_hop",
       ErrorCode::kConflict,
       "IPv6 address"},
      {"an IPv4 remote VTEP",
       {},
       [](json& p) { p["remotes"][1]["vtep"] = "192.0.2.2"; },
       Stage::kValidate,
       "remotes[1].vtep",
       ErrorCode::kConflict,
       "of its own family"},
      {"a link-local remote VTEP",
       {},
       [](json& p) { p["remotes"][1]["vtep"] = "fe80::2"; },
       Stage::kValidate,
       "remotes[1].vtep",
       ErrorCode::kInvalidValue,
       "not link-local"},
      {"two VTEPs with the same last 32 bits",
       {},
       [](json& p) { p["remotes"][2]["vtep"] = "2001:db8:77::2"; },
       Stage::kValidate,
       "remotes[2].vtep",
       ErrorCode::kConflict,
       "router MAC 02:00:00:00:00:02"},
      {"a VTEP with this host's last 32 bits",
       {},
       [](json& p) { p["remotes"][0]["vtep"] = "2001:db8:77::1"; },
       Stage::kValidate,
       "remotes[0].vtep",
       ErrorCode::kConflict,
       "this host's VTEP 2001:db8:ff::1"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    json h = host, p = ports;
    if (c.host) c.host(h);
    if (c.ports) c.ports(p);
    const auto out = parseAndValidate(h, p);
    EXPECT_EQ(out.stage, c.stage) << out.error.describe();
    EXPECT_EQ(out.error.field, c.field);
    EXPECT_EQ(out.error.code, c.code);
    EXPECT_NE(out.error.message.find(c.says), std::string::npos) << out.error.message;
  }

  // A routed underlay keeps an IPv4 default next hop.
  json routed = exampleHost(Example::kRouted);
  routed["underlay"]["default_next_hop"] = "2001:db8:ff::fe";
  const auto refused = parseAndValidate(routed, examplePorts(Example::kRouted));
  EXPECT_EQ(refused.stage, Stage::kHost);
  EXPECT_EQ(refused.error.field, "underlay.default_next_hop");

  // One remote at a time (the daemon's admission): the same MAC clash.
  model::IntentIndex index(intent);
  model::RemoteEndpoint clash;
  clash.address = *IpAddr::parse("10.20.9.9");
  clash.vtep = *IpAddr::parse("2001:db8:99::3");
  clash.vni = 100;
  const auto s = index.checkRemote(clash, false);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().field, "remote.vtep");
  EXPECT_NE(s.error().message.find("2001:db8:ff::3"), std::string::npos) << s.error().message;
  // Once the VTEP it clashed with is gone, it is accepted.
  index.removeRemote(intent.remotes[2]);
  EXPECT_TRUE(index.checkRemote(clash, false).ok());
}

// A dual-homed host (issue 23): "uplinks" lists two PFs; a next hop names
// the uplink it is on; the second PF's port id defaults after the first's
// representors. Each misuse is refused naming its field.
TEST(ParseIntent, TwoUplinksAndTheirErrors) {
  json host = test::readJson("examples/host-routed.json");
  const json first = host["uplink"];
  host.erase("uplink");
  host["uplinks"] = json::array(
      {first, {{"pci", "0000:03:00.1"}, {"netdev", "uplink1"}, {"mac", "0c:42:a1:00:00:02"}}});
  host["underlay"]["next_hops"].push_back(
      {{"ipv4", "198.51.100.1"}, {"mac", "0c:42:a1:ff:ff:fd"}, {"uplink", 1}});
  auto ok = model::parseHostConfig(host);
  ASSERT_TRUE(ok.ok()) << ok.error().describe();
  EXPECT_EQ(ok->uplinkCount(), 2u);
  EXPECT_EQ(ok->uplink_netdev, "uplink0");
  EXPECT_EQ(ok->vf_count, 8);
  ASSERT_TRUE(ok->uplink2);
  EXPECT_EQ(ok->uplink2->netdev, "uplink1");
  EXPECT_EQ(ok->uplinkNetdev(1), "uplink1");
  EXPECT_EQ(ok->uplinkMac(1).str(), "0c:42:a1:00:00:02");
  EXPECT_EQ(ok->uplink2->port_id, 1 + 8);  // testpmd: PF0, vf0..vf7, then PF1
  ASSERT_EQ(ok->next_hops.size(), 2u);
  EXPECT_EQ(ok->next_hops[0].uplink, 0);
  EXPECT_EQ(ok->next_hops[1].uplink, 1);
  // One entry in "uplinks" is a single-homed host, as "uplink" is.
  json one = host;
  one["uplinks"].erase(1);
  one["underlay"]["next_hops"].erase(1);
  auto single = model::parseHostConfig(one);
  ASSERT_TRUE(single.ok()) << single.error().describe();
  EXPECT_FALSE(single->uplink2);
  json explicit_port = host;
  explicit_port["dpdk"] = {{"uplink2_port_id", 40}};
  auto with_port = model::parseHostConfig(explicit_port);
  ASSERT_TRUE(with_port.ok()) << with_port.error().describe();
  EXPECT_EQ(with_port->uplink2->port_id, 40);

  struct Bad {
    const char* name;
    std::function<void(json&)> mutate;
    ErrorCode code;
    const char* field;
    const char* needle;
  };
  const std::vector<Bad> bad = {
      {"uplink and uplinks", [&](json& h) { h["uplink"] = first; }, ErrorCode::kConflict, "uplinks",
       "not both"},
      {"three uplinks", [](json& h) { h["uplinks"].push_back(h["uplinks"][1]); },
       ErrorCode::kInvalidValue, "uplinks", "one or two"},
      {"no uplinks", [](json& h) { h["uplinks"] = json::array(); }, ErrorCode::kInvalidValue,
       "uplinks", "one or two"},
      {"second without netdev", [](json& h) { h["uplinks"][1].erase("netdev"); },
       ErrorCode::kMissingField, "uplinks[1].netdev", "missing"},
      {"first without netdev", [](json& h) { h["uplinks"][0].erase("netdev"); },
       ErrorCode::kMissingField, "uplinks[0].netdev", "both netdevs"},
      {"same PF twice", [](json& h) { h["uplinks"][1]["pci"] = "0000:03:00.0"; },
       ErrorCode::kConflict, "uplinks[1].pci", "two PFs"},
      {"same netdev twice", [](json& h) { h["uplinks"][1]["netdev"] = "uplink0"; },
       ErrorCode::kConflict, "uplinks[1].netdev", "two netdevs"},
      {"bad second MAC", [](json& h) { h["uplinks"][1]["mac"] = "01:00:5e:00:00:01"; },
       ErrorCode::kInvalidValue, "uplinks[1].mac", "unicast"},
      {"VFs on the second", [](json& h) { h["uplinks"][1]["vf_count"] = 4; }, ErrorCode::kConflict,
       "uplinks[1].vf_count", "first uplink"},
      {"bad first PCI", [](json& h) { h["uplinks"][0]["pci"] = "03:00.0"; },
       ErrorCode::kInvalidValue, "uplinks[0].pci", "03:00.0"},
      {"next hop on uplink 2", [](json& h) { h["underlay"]["next_hops"][1]["uplink"] = 2; },
       ErrorCode::kInvalidValue, "underlay.next_hops[1].uplink", "0 or 1"},
      {"next hop on a missing uplink",
       [](json& h) {
         h["uplink"] = h["uplinks"][0];
         h.erase("uplinks");
       },
       ErrorCode::kConflict, "underlay.next_hops[1].uplink", "one uplink"},
      {"two uplinks with VXLAN",
       [](json& h) {
         h["underlay"]["mode"] = "vxlan";
         h["underlay"]["vtep"] = "192.0.2.1";
         h["underlay"]["default_vni"] = 100;
       },
       ErrorCode::kConflict, "uplinks", "routed"},
      {"uplink2 port without a second uplink",
       [](json& h) {
         h["uplinks"].erase(1);
         h["underlay"]["next_hops"].erase(1);
         h["dpdk"] = {{"uplink2_port_id", 3}};
       },
       ErrorCode::kConflict, "dpdk.uplink2_port_id", "one uplink"},
  };
  for (const auto& c : bad) {
    SCOPED_TRACE(c.name);
    json h = host;
    c.mutate(h);
    auto out = model::parseHostConfig(h);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.error().code, c.code) << out.error().describe();
    EXPECT_EQ(out.error().field, c.field) << out.error().describe();
    EXPECT_NE((out.error().value + " | " + out.error().message).find(c.needle), std::string::npos)
        << out.error().describe();
  }
}

TEST(ParseIntent, LoadHostConfigReadsTheExampleFiles) {
  for (const char* f : {"examples/host.json", "examples/host-routed.json"}) {
    auto host = model::loadHostConfig(test::sourcePath(f));
    EXPECT_TRUE(host.ok()) << f << ": " << (host ? "" : host.error().describe());
  }
  auto missing = model::loadHostConfig(test::sourcePath("examples/no-such-file.json"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kIo);
  EXPECT_NE(missing.error().field.find("no-such-file.json"), std::string::npos);
}

TEST(ParseIntent, AddressForms) {
  // A bare address is a /32; "/32" is accepted; the stored value is the address.
  for (const char* text : {"10.10.1.1", "10.10.1.1/32"}) {
    json doc = {{"vm", "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001"}, {"nic", 0},
                {"mac", "52:54:00:00:01:01"}, {"addresses", {text}}, {"vf", 0}};
    auto port = model::parsePort(doc, "ports[0]");
    ASSERT_TRUE(port.ok()) << text << ": " << port.error().describe();
    ASSERT_EQ(port->addresses.size(), 1u);
    EXPECT_EQ(port->addresses[0].str(), "10.10.1.1");
  }
}

TEST(ParseIntent, Ipv6AddressFormsAndErrors) {
  auto port = [](json addresses) {
    json doc = {{"vm", "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001"}, {"nic", 0},
                {"mac", "52:54:00:00:01:01"}, {"addresses", std::move(addresses)}, {"vf", 0}};
    return model::parsePort(doc, "ports[0]");
  };
  // Both families in one list, in any order; a bare address is a /128.
  auto p = port({"2001:DB8::5", "10.10.1.1", "2001:db8::6/128"});
  ASSERT_TRUE(p.ok()) << p.error().describe();
  EXPECT_EQ(p->addresses.size(), 1u);
  ASSERT_EQ(p->addresses6.size(), 2u);
  EXPECT_EQ(p->addresses6[0].str(), "2001:db8::5");
  // The JSON form (state file, port.get) gives the same port back.
  auto again = model::parsePort(model::toJson(*p), "port");
  ASSERT_TRUE(again.ok()) << again.error().describe();
  EXPECT_EQ(again->addresses6, p->addresses6);
  EXPECT_EQ(model::toJson(*p)["addresses"], json({"10.10.1.1/32", "2001:db8::5/128", "2001:db8::6/128"}));
  // An IPv6-only port.
  EXPECT_TRUE(port({"fd00:10::1"}).ok());

  struct Bad { json address; ErrorCode code; const char* needle; };
  const Bad bads[] = {
      {"2001:db8::/64", ErrorCode::kInvalidValue, "/128 host prefix"},
      {"fe80::5", ErrorCode::kInvalidValue, "link-local"},
      {"ff02::1", ErrorCode::kInvalidValue, "multicast"},
      {"::1", ErrorCode::kInvalidValue, "loopback"},
      {"::", ErrorCode::kInvalidValue, "not a host address"},
      {"::ffff:10.0.0.1", ErrorCode::kInvalidValue, "v4-mapped"},
      {"2001:db8::zz", ErrorCode::kInvalidValue, "not an IPv6 address"},
  };
  for (const auto& b : bads) {
    auto r = port({"10.10.1.1", b.address});
    ASSERT_FALSE(r.ok()) << b.address;
    EXPECT_EQ(r.error().code, b.code) << b.address;
    EXPECT_EQ(r.error().field, "ports[0].addresses[1]") << b.address;
    EXPECT_EQ(r.error().value, b.address.get<std::string>());
    EXPECT_NE(r.error().message.find(b.needle), std::string::npos) << r.error().message;
  }
  auto twice = port({"2001:db8::5", "2001:db8:0::5"});
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code, ErrorCode::kDuplicate);
  EXPECT_EQ(twice.error().field, "ports[0].addresses[1]");
}

TEST(ParseIntent, GatewayIpv6TurnsIpv6On) {
  json host = exampleHost(Example::kRouted);
  json ports = examplePorts(Example::kRouted);
  host["gateway"].erase("ipv6");
  ports["ports"][0]["addresses"].push_back("2001:db8:1::1");
  // Off: the port's IPv6 address is refused, naming the setting.
  auto off = parseAndValidate(host, ports);
  ASSERT_NE(off.stage, Stage::kNone);
  EXPECT_EQ(off.error.code, ErrorCode::kConflict);
  EXPECT_EQ(off.error.field, "ports[0].addresses");
  EXPECT_EQ(off.error.value, "2001:db8:1::1");
  EXPECT_NE(off.error.message.find("gateway.ipv6"), std::string::npos) << off.error.message;
  // On.
  host["gateway"]["ipv6"] = "fe80::1";
  auto on = parseAndValidate(host, ports);
  EXPECT_EQ(on.stage, Stage::kNone) << on.error.describe();
  auto parsed = model::parseHostConfig(host);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->gateway_ipv6->str(), "fe80::1");
  // Only a link-local unicast gateway.
  for (const char* bad : {"2001:db8::1", "ff02::1", "fe80::1%eth0", "169.254.1.1"}) {
    host["gateway"]["ipv6"] = bad;
    auto r = model::parseHostConfig(host);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().field, "gateway.ipv6") << bad;
    EXPECT_EQ(r.error().value, bad);
  }
  // The same /128 on two ports.
  host["gateway"]["ipv6"] = "fe80::1";
  ports["ports"][1]["addresses"].push_back("2001:db8:1::1");
  auto dup = parseAndValidate(host, ports);
  ASSERT_NE(dup.stage, Stage::kNone);
  EXPECT_EQ(dup.error.code, ErrorCode::kDuplicate);
  EXPECT_EQ(dup.error.value, "2001:db8:1::1");
}

TEST(ParseIntent, RouterAdvertisementsDefaultsAndErrors) {
  json host = exampleHost(Example::kRouted);
  auto defaults = model::parseHostConfig(host);
  ASSERT_TRUE(defaults.ok()) << defaults.error().describe();
  EXPECT_TRUE(defaults->router_advertisements.enabled);
  EXPECT_EQ(defaults->router_advertisements.interval_s, 200);
  EXPECT_EQ(defaults->router_advertisements.lifetime_s, 1800);
  host["gateway"]["router_advertisements"] = {
      {"enabled", false}, {"interval_s", 30}, {"lifetime_s", 90}};
  auto set = model::parseHostConfig(host);
  ASSERT_TRUE(set.ok()) << set.error().describe();
  EXPECT_FALSE(set->router_advertisements.enabled);
  EXPECT_EQ(set->router_advertisements.interval_s, 30);
  EXPECT_EQ(set->router_advertisements.lifetime_s, 90);
  host["gateway"]["router_advertisements"] = {{"lifetime_s", 0}};  // no default route
  ASSERT_TRUE(model::parseHostConfig(host).ok());
  const struct {
    json ra;
    const char* field;
    const char* value;
  } bad[] = {
      {{{"interval_s", 3}}, "gateway.router_advertisements.interval_s", "3"},
      {{{"interval_s", 1801}}, "gateway.router_advertisements.interval_s", "1801"},
      {{{"lifetime_s", 9001}}, "gateway.router_advertisements.lifetime_s", "9001"},
      {{{"interval_s", 600}, {"lifetime_s", 300}},
       "gateway.router_advertisements.lifetime_s",
       "300"},
      {{{"enabled", "yes"}}, "gateway.router_advertisements.enabled", "yes"},
      {{{"interval", 30}}, "gateway.router_advertisements.interval", ""},
      {json("on"), "gateway.router_advertisements", "on"},
  };
  for (const auto& c : bad) {
    SCOPED_TRACE(c.ra.dump());
    host["gateway"]["router_advertisements"] = c.ra;
    auto r = model::parseHostConfig(host);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().field, c.field) << r.error().describe();
    EXPECT_NE(r.error().value.find(c.value), std::string::npos) << r.error().describe();
  }
}

TEST(ParseIntent, UuidIsLowerCased) {
  json doc = {{"vm", "6F1C2A9E-3B41-4F0A-9C5E-2D7B8A1E0001"}, {"nic", 3},
              {"mac", "52:54:00:00:01:01"}, {"addresses", {"10.0.0.1"}}};
  auto port = model::parsePort(doc);
  ASSERT_TRUE(port.ok()) << port.error().describe();
  EXPECT_EQ(port->key.vm, "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001");
  EXPECT_EQ(port->key.nic, 3);
  EXPECT_FALSE(port->vf);
}

// One bad input and the error it must give.
struct BadInput {
  const char* name;
  Example base;           // which example pair the mutation starts from
  bool on_host;           // mutate the host document (else the ports document)
  Mutation mutate;
  Stage stage;            // where the error must surface
  ErrorCode code;
  const char* field;      // exact JSON path
  const char* needle;     // must occur in the error's value or message
};

const std::vector<BadInput>& badInputs() {
  using E = ErrorCode;
  constexpr auto V = Example::kVxlan;
  constexpr auto R = Example::kRouted;
  static const std::vector<BadInput> kCases = {
      // MAC addresses
      {"bad uplink MAC", V, true, set("/uplink/mac", "52:54:00:zz:00:01"), Stage::kHost,
       E::kInvalidValue, "uplink.mac", "52:54:00:zz:00:01"},
      {"bad port MAC", V, false, set("/ports/1/mac", "52:54:00:zz:00:01"), Stage::kPorts,
       E::kInvalidValue, "ports[1].mac", "52:54:00:zz:00:01"},
      {"multicast port MAC", V, false, set("/ports/0/mac", "01:00:5e:00:00:01"), Stage::kPorts,
       E::kInvalidValue, "ports[0].mac", "01:00:5e:00:00:01"},
      {"broadcast port MAC", V, false, set("/ports/2/mac", "ff:ff:ff:ff:ff:ff"), Stage::kPorts,
       E::kInvalidValue, "ports[2].mac", "ff:ff:ff:ff:ff:ff"},
      {"zero port MAC", V, false, set("/ports/0/mac", "00:00:00:00:00:00"), Stage::kPorts,
       E::kInvalidValue, "ports[0].mac", "00:00:00:00:00:00"},
      {"multicast gateway MAC", V, true, set("/gateway/mac", "33:33:00:00:00:01"), Stage::kHost,
       E::kInvalidValue, "gateway.mac", "33:33:00:00:00:01"},
      {"multicast next hop MAC", V, true, set("/underlay/next_hops/0/mac", "01:00:5e:00:00:09"),
       Stage::kHost, E::kInvalidValue, "underlay.next_hops[0].mac", "01:00:5e:00:00:09"},
      // IPv4 addresses
      {"bad gateway IPv4", V, true, set("/gateway/ipv4", "169.254.1.256"), Stage::kHost,
       E::kInvalidValue, "gateway.ipv4", "169.254.1.256"},
      {"bad VTEP IPv4", V, true, set("/underlay/vtep", "192.0.2"), Stage::kHost, E::kInvalidValue,
       "underlay.vtep", "192.0.2"},
      {"bad port address", V, false, set("/ports/1/addresses/1", "10.10.1.300"), Stage::kPorts,
       E::kInvalidValue, "ports[1].addresses[1]", "10.10.1.300"},
      {"port address /24", V, false, set("/ports/1/addresses/1", "10.10.1.3/24"), Stage::kPorts,
       E::kInvalidValue, "ports[1].addresses[1]", "10.10.1.3/24"},
      {"port address /24 says /32", V, false, set("/ports/0/addresses/0", "10.10.1.0/24"),
       Stage::kPorts, E::kInvalidValue, "ports[0].addresses[0]", "/32"},
      {"multicast port address", V, false, set("/ports/0/addresses/0", "224.0.0.5"), Stage::kPorts,
       E::kInvalidValue, "ports[0].addresses[0]", "224.0.0.5"},
      {"remote address /16", V, false, set("/remotes/2/address", "10.20.0.0/16"), Stage::kPorts,
       E::kInvalidValue, "remotes[2].address", "10.20.0.0/16"},
      {"address twice in one port", V, false, set("/ports/1/addresses/1", "10.10.1.2"),
       Stage::kPorts, E::kDuplicate, "ports[1].addresses[1]", "10.10.1.2"},
      {"no address", V, false, set("/ports/0/addresses", json::array()), Stage::kPorts,
       E::kInvalidValue, "ports[0].addresses", "at least one"},
      // Duplicates across ports
      {"same IP on two ports", V, false, set("/ports/1/addresses/0", "10.10.1.1/32"),
       Stage::kValidate, E::kDuplicate, "ports[1].addresses[0]", "10.10.1.1"},
      {"same MAC on two ports", V, false, set("/ports/1/mac", "52:54:00:00:01:01"),
       Stage::kValidate, E::kDuplicate, "ports[1].mac", "52:54:00:00:01:01"},
      {"same VF on two ports", V, false, set("/ports/3/vf", 0), Stage::kValidate, E::kDuplicate,
       "ports[3].vf", "0"},
      {"same representor on two ports", V, false, set("/ports/3/representor", "pf0vf0"),
       Stage::kValidate, E::kDuplicate, "ports[3].representor", "pf0vf0"},
      {"same port key twice", V, false, set("/ports/1/nic", 0), Stage::kValidate, E::kDuplicate,
       "ports[1]", "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001/0"},
      {"VF beyond vf_count", V, false, set("/ports/3/vf", 8), Stage::kValidate, E::kInvalidValue,
       "ports[3].vf", "8"},
      {"port address is the gateway", V, false, set("/ports/0/addresses/0", "169.254.1.1"),
       Stage::kValidate, E::kConflict, "ports[0].addresses[0]", "169.254.1.1"},
      {"port MAC is the gateway MAC", V, false, set("/ports/0/mac", "ee:ee:ee:ee:ee:ee"),
       Stage::kValidate, E::kConflict, "ports[0].mac", "ee:ee:ee:ee:ee:ee"},
      // VNIs: 24 bits (RFC 7348)
      {"port VNI 2^24", V, false, set("/ports/2/vni", 16777216), Stage::kPorts, E::kInvalidValue,
       "ports[2].vni", "16777216"},
      {"remote VNI 2^24", V, false, set("/remotes/0/vni", 16777216), Stage::kPorts,
       E::kInvalidValue, "remotes[0].vni", "16777216"},
      {"default VNI 2^24", V, true, set("/underlay/default_vni", 16777216), Stage::kHost,
       E::kInvalidValue, "underlay.default_vni", "16777216"},
      // Unknown keys
      {"unknown top-level key", V, true, set("/uplnk", json::object()), Stage::kHost,
       E::kUnknownField, "uplnk", "uplnk"},
      {"unknown nested key", V, true, set("/uplink/vfcount", 8), Stage::kHost, E::kUnknownField,
       "uplink.vfcount", "vfcount"},
      {"unknown port key", V, false, set("/ports/2/adresses", json::array()), Stage::kPorts,
       E::kUnknownField, "ports[2].adresses", "adresses"},
      {"unknown remote key", V, false, set("/remotes/1/vnid", 100), Stage::kPorts, E::kUnknownField,
       "remotes[1].vnid", "vnid"},
      {"unknown ports-file key", V, false, set("/remote", json::array()), Stage::kPorts,
       E::kUnknownField, "remote", "remote"},
      // Missing required fields
      {"missing uplink.mac", V, true, erase("/uplink/mac"), Stage::kHost, E::kMissingField,
       "uplink.mac", "missing"},
      {"missing name", V, true, erase("/name"), Stage::kHost, E::kMissingField, "name", "missing"},
      {"missing underlay.mode", V, true, erase("/underlay/mode"), Stage::kHost, E::kMissingField,
       "underlay.mode", "routed or vxlan"},
      {"missing ports[0].mac", V, false, erase("/ports/0/mac"), Stage::kPorts, E::kMissingField,
       "ports[0].mac", "missing"},
      {"missing remote address", V, false, erase("/remotes/1/address"), Stage::kPorts,
       E::kMissingField, "remotes[1].address", "missing"},
      {"missing ports array", V, false, erase("/ports"), Stage::kPorts, E::kMissingField, "ports",
       "missing"},
      // Wrong types
      {"nic as a string", V, false, set("/ports/0/nic", "0"), Stage::kPorts, E::kWrongType,
       "ports[0].nic", "0"},
      {"addresses as a string", V, false, set("/ports/0/addresses", "10.0.0.1"), Stage::kPorts,
       E::kWrongType, "ports[0].addresses", "10.0.0.1"},
      {"address as a number", V, false, set("/ports/0/addresses/0", 167772161), Stage::kPorts,
       E::kWrongType, "ports[0].addresses[0]", "167772161"},
      {"vf_count as a string", V, true, set("/uplink/vf_count", "8"), Stage::kHost, E::kWrongType,
       "uplink.vf_count", "8"},
      {"vf as a fraction", V, false, set("/ports/0/vf", 1.5), Stage::kPorts, E::kWrongType,
       "ports[0].vf", "1.5"},
      {"uplink as a string", V, true, set("/uplink", "0000:03:00.0"), Stage::kHost, E::kWrongType,
       "uplink", "0000:03:00.0"},
      {"ports file is an array", V, false, [](json& d) { d = json::array(); }, Stage::kPorts,
       E::kWrongType, "(document)", "object"},
      // Other values
      {"bad uuid", V, false, set("/ports/0/vm", "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e00"),
       Stage::kPorts, E::kInvalidValue, "ports[0].vm", "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e00"},
      {"bad uuid separators", V, false, set("/ports/0/vm", "6f1c2a9e_3b41_4f0a_9c5e_2d7b8a1e0001"),
       Stage::kPorts, E::kInvalidValue, "ports[0].vm", "6f1c2a9e_3b41"},
      {"bad PCI address", V, true, set("/uplink/pci", "03:00.0"), Stage::kHost, E::kInvalidValue,
       "uplink.pci", "03:00.0"},
      {"bad representor", V, false, set("/ports/0/representor", "pf0vf0-with-a-long-name"),
       Stage::kPorts, E::kInvalidValue, "ports[0].representor", "pf0vf0-with-a-long-name"},
      {"unknown vdpa kind", V, false, set("/ports/0/vdpa", "vhost"), Stage::kPorts,
       E::kInvalidValue, "ports[0].vdpa", "vhost"},
      {"unknown underlay mode", V, true, set("/underlay/mode", "evpn"), Stage::kHost,
       E::kInvalidValue, "underlay.mode", "evpn"},
      {"MTU below 68", V, false, set("/ports/0/mtu", 67), Stage::kPorts, E::kInvalidValue,
       "ports[0].mtu", "67"},
      {"relative socket path", V, true, set("/socket", "nicoffloadd.sock"), Stage::kHost,
       E::kInvalidValue, "socket", "nicoffloadd.sock"},
      {"route_protocol 186 (FRR)", V, true, set("/kernel/route_protocol", 186), Stage::kHost,
       E::kInvalidValue, "kernel.route_protocol", "186"},
      {"route_protocol 42 (FRR)", V, true, set("/kernel/route_protocol", 42), Stage::kHost,
       E::kInvalidValue, "kernel.route_protocol", "42"},
      {"route_protocol 4 (kernel)", V, true, set("/kernel/route_protocol", 4), Stage::kHost,
       E::kInvalidValue, "kernel.route_protocol", "4"},
      // Routes learned from the kernel (issue 13)
      {"learn_routes in a vxlan underlay", V, true, set("/kernel/learn_routes", true), Stage::kHost,
       E::kConflict, "kernel.learn_routes", "true"},
      {"learn_protocols names ours", R, true, set("/kernel/learn_protocols", json::array({240})),
       Stage::kHost, E::kConflict, "kernel.learn_protocols[0]", "240"},
      {"learn_protocols: the kernel's own", R, true,
       set("/kernel/learn_protocols", json::array({"bgp", 2})), Stage::kHost, E::kInvalidValue,
       "kernel.learn_protocols[1]", "2"},
      {"learn_protocols: no such name", R, true,
       set("/kernel/learn_protocols", json::array({"bgpd"})), Stage::kHost, E::kInvalidValue,
       "kernel.learn_protocols[0]", "bgpd"},
      {"route_table 255 (local)", V, true, set("/kernel/route_table", 255), Stage::kHost,
       E::kInvalidValue, "kernel.route_table", "255"},
      {"vxlan_udp_port 0", V, true, set("/underlay/vxlan_udp_port", 0), Stage::kHost,
       E::kInvalidValue, "underlay.vxlan_udp_port", "0"},
      // Underlay consistency
      {"vxlan underlay without vtep", V, true, erase("/underlay/vtep"), Stage::kHost,
       E::kMissingField, "underlay.vtep", "missing"},
      {"next hop listed twice", V, true,
       set("/underlay/next_hops/1", {{"ipv4", "192.0.2.254"}, {"mac", "0c:42:a1:ff:ff:fd"}}),
       Stage::kHost, E::kDuplicate, "underlay.next_hops[1].ipv4", "192.0.2.254"},
      {"port without VNI and no default_vni", V, true, erase("/underlay/default_vni"),
       Stage::kValidate, E::kMissingField, "ports[0].vni", "default_vni"},
      {"VNI on a routed host", R, false, set("/ports/1/vni", 100), Stage::kValidate, E::kConflict,
       "ports[1].vni", "100"},
      // IPv6 remotes (issue 23)
      {"IPv6 remote on a host without IPv6", R, false,
       set("/remotes/1", {{"address", "2001:db8:9::5/128"}, {"next_hop", "fe80::6"}}),
       Stage::kValidate, E::kConflict, "remotes[1].address", "gateway.ipv6"},
      {"IPv6 remote without its IPv6 next hop", R, false,
       set("/remotes/0/address", "2001:db8:9::5"), Stage::kValidate, E::kMissingField,
       "remotes[0].next_hop", "IPv6 next hop"},
      {"IPv6 remote through an IPv4 next hop", R, false, set("/remotes/1/address", "2001:db8:9::5"),
       Stage::kValidate, E::kConflict, "remotes[1].next_hop", "192.0.2.253"},
      {"IPv4 remote through an IPv6 next hop", R, false, set("/remotes/1/next_hop", "fe80::6"),
       Stage::kValidate, E::kConflict, "remotes[1].next_hop", "fe80::6"},
      {"multicast IPv6 next hop", R, false,
       set("/remotes/1", {{"address", "2001:db8:9::5"}, {"next_hop", "ff02::1"}}), Stage::kValidate,
       E::kInvalidValue, "remotes[1].next_hop", "ff02::1"},
      {"remote next hop not an address", R, false, set("/remotes/1/next_hop", "fe80::6::1"),
       Stage::kPorts, E::kInvalidValue, "remotes[1].next_hop", "fe80::6::1"},
      {"link-local IPv6 remote", R, false, set("/remotes/0/address", "fe80::5"), Stage::kPorts,
       E::kInvalidValue, "remotes[0].address", "fe80::5"},
      {"IPv6 remote not a /128", R, false, set("/remotes/0/address", "2001:db8:9::/64"),
       Stage::kPorts, E::kInvalidValue, "remotes[0].address", "2001:db8:9::/64"},
      {"next hop with both families", R, true, set("/underlay/next_hops/0/ipv6", "fe80::6"),
       Stage::kHost, E::kConflict, "underlay.next_hops[0].ipv6", "not both"},
      {"multicast IPv6 underlay next hop", R, true,
       set("/underlay/next_hops/0", {{"ipv6", "ff02::2"}, {"mac", "0c:42:a1:ff:ff:fe"}}),
       Stage::kHost, E::kInvalidValue, "underlay.next_hops[0].ipv6", "ff02::2"},
      {"vtep remote on a routed host", R, false, set("/remotes/0/vtep", "192.0.2.2"),
       Stage::kValidate, E::kConflict, "remotes[0].vtep", "192.0.2.2"},
      {"next_hop remote on a vxlan host", V, false, set("/remotes/0/next_hop", "192.0.2.254"),
       Stage::kValidate, E::kConflict, "remotes[0].next_hop", "192.0.2.254"},
      {"vxlan remote without vtep", V, false, erase("/remotes/1/vtep"), Stage::kValidate,
       E::kMissingField, "remotes[1].vtep", "VTEP"},
      {"remote VTEP is the local VTEP", V, false, set("/remotes/1/vtep", "192.0.2.1"),
       Stage::kValidate, E::kConflict, "remotes[1].vtep", "192.0.2.1"},
      // Remotes
      {"remote is a local address", V, false, set("/remotes/1/address", "10.10.2.1"),
       Stage::kValidate, E::kConflict, "remotes[1].address", "10.10.2.1"},
      {"remote is the gateway", R, false, set("/remotes/0/address", "169.254.1.1"),
       Stage::kValidate, E::kConflict, "remotes[0].address", "169.254.1.1"},
      {"duplicate remotes", V, false, set("/remotes/2/address", "10.20.1.1/32"), Stage::kValidate,
       E::kDuplicate, "remotes[2].address", "10.20.1.1"},
      {"routed remote without next hop and no default", R, true,
       erase("/underlay/default_next_hop"), Stage::kValidate, E::kMissingField,
       "remotes[0].next_hop", "10.20.1.1"},
      // Addresses the underlay uses are never a VM or remote /32 (issue 11):
      // each error names the field and the other use of the address.
      {"port address is a next hop", R, false, set("/ports/0/addresses/0", "192.0.2.254/32"),
       Stage::kValidate, E::kConflict, "ports[0].addresses[0]",
       "192.0.2.254 is the underlay next hop underlay.next_hops[0]"},
      {"port address is the host VTEP", V, false, set("/ports/1/addresses/1", "192.0.2.1"),
       Stage::kValidate, E::kConflict, "ports[1].addresses[1]", "(underlay.vtep)"},
      {"port address is a remote VTEP", V, false, set("/ports/0/addresses/0", "192.0.2.2"),
       Stage::kValidate, E::kConflict, "ports[0].addresses[0]",
       "the VTEP of remote 10.20.1.1 (remotes[0].vtep)"},
      {"port address is a remote's next hop", R, false, set("/ports/1/addresses/1", "192.0.2.253"),
       Stage::kValidate, E::kConflict, "ports[1].addresses[1]", "(remotes[1].next_hop)"},
      {"port address is the gateway names it", V, false, set("/ports/2/addresses/0", "169.254.1.1"),
       Stage::kValidate, E::kConflict, "ports[2].addresses[0]", "gateway.ipv4"},
      {"remote is the own VTEP", V, false, set("/remotes/2/address", "192.0.2.1/32"),
       Stage::kValidate, E::kConflict, "remotes[2].address",
       "this host's VTEP address (underlay.vtep)"},
      {"remote is a later remote's VTEP", V, false, set("/remotes/0/address", "192.0.2.3/32"),
       Stage::kValidate, E::kConflict, "remotes[0].address",
       "the VTEP of remote 10.20.2.1 (remotes[2].vtep)"},
      {"remote is a next hop", R, false, set("/remotes/0/address", "192.0.2.254"), Stage::kValidate,
       E::kConflict, "remotes[0].address", "underlay.next_hops[0]"},
      {"remote is another remote's next hop", R, false, set("/remotes/0/address", "192.0.2.253"),
       Stage::kValidate, E::kConflict, "remotes[0].address", "(remotes[1].next_hop)"},
      // The same conflicts seen from the other side: the VM's or the remote's
      // /32 is named, with the VTEP that uses it.
      {"remote VTEP is a VM address", V, false, set("/remotes/2/vtep", "10.10.2.1"),
       Stage::kValidate, E::kConflict, "ports[2].addresses[0]",
       "the VTEP of remote 10.20.2.1 (remotes[2].vtep)"},
      {"remote VTEP is another remote", V, false, set("/remotes/0/vtep", "10.20.2.1"),
       Stage::kValidate, E::kConflict, "remotes[2].address",
       "the VTEP of remote 10.20.1.1 (remotes[0].vtep)"},
      {"remote next hop is the gateway", R, false, set("/remotes/1/next_hop", "169.254.1.1"),
       Stage::kValidate, E::kConflict, "remotes[1].next_hop", "gateway"},
      {"host VTEP is the gateway", V, true, set("/underlay/vtep", "169.254.1.1"), Stage::kHost,
       E::kConflict, "underlay.vtep", "gateway address (gateway.ipv4)"},
      {"next hop is the gateway", R, true, set("/underlay/next_hops/0/ipv4", "169.254.1.1"),
       Stage::kHost, E::kConflict, "underlay.next_hops[0].ipv4", "gateway"},
      {"next hop is the host VTEP", V, true, set("/underlay/next_hops/0/ipv4", "192.0.2.1"),
       Stage::kHost, E::kConflict, "underlay.next_hops[0].ipv4", "underlay.vtep"},
      {"vf_count 0 blames the host config", V, true, set("/uplink/vf_count", 0), Stage::kValidate,
       E::kInvalidValue, "uplink.vf_count", "(ports[0]) needs one"},
      // Integers beyond 64 bits (nlohmann reads them as doubles) are out of
      // range, not "a number with a fraction".
      {"nic beyond 64 bits", V, false, set("/ports/0/nic", 1e20), Stage::kPorts, E::kInvalidValue,
       "ports[0].nic", "out of range: must be an integer between 0 and 65535"},
      {"vf_count beyond 64 bits", V, true, set("/uplink/vf_count", -1e20), Stage::kHost,
       E::kInvalidValue, "uplink.vf_count", "out of range"},
      {"nic with an exponent", V, false, set("/ports/0/nic", 1e3), Stage::kPorts, E::kWrongType,
       "ports[0].nic", "no fraction or exponent"},
  };
  return kCases;
}

TEST(ParseIntent, BadInputsNameTheField) {
  for (const auto& c : badInputs()) {
    SCOPED_TRACE(c.name);
    json host = exampleHost(c.base);
    json ports = examplePorts(c.base);
    c.mutate(c.on_host ? host : ports);
    const auto out = parseAndValidate(host, ports);
    EXPECT_EQ(out.stage, c.stage) << toString(out.stage) << ": " << out.error.describe();
    if (out.stage == Stage::kNone) continue;
    EXPECT_EQ(out.error.code, c.code) << errorInfo(out.error.code).name << ": " << out.error.describe();
    EXPECT_EQ(out.error.field, c.field) << out.error.describe();
    // The raw-text entry points (fuzzing, admission) give the same error.
    const auto text = model::checkAdmissionText(host.dump(), ports.dump());
    ASSERT_FALSE(text.ok());
    EXPECT_EQ(text.error().code, out.error.code) << text.error().describe();
    EXPECT_EQ(text.error().field, out.error.field) << text.error().describe();
    const std::string haystack = out.error.value + " | " + out.error.message;
    EXPECT_NE(haystack.find(c.needle), std::string::npos)
        << "'" << c.needle << "' not in value '" << out.error.value << "' nor message '"
        << out.error.message << "'";
    EXPECT_FALSE(out.error.message.empty());
    // describe() leads with the field so an operator sees where to look.
    EXPECT_EQ(out.error.describe().rfind(out.error.field + ": ", 0), 0u) << out.error.describe();
  }
}

TEST(ParseIntent, ValidRouteProtocolsAreKept) {
  for (int proto : {5, 17, 185, 199, 240, 255}) {
    json host = exampleHost(Example::kVxlan);
    host["kernel"]["route_protocol"] = proto;
    auto h = model::parseHostConfig(host);
    ASSERT_TRUE(h.ok()) << proto << ": " << h.error().describe();
    EXPECT_EQ(h->route_protocol, proto);
  }
}

TEST(ParseIntent, RemoteWithExplicitNextHopNeedsNoDefault) {
  json host = exampleHost(Example::kRouted);
  host["underlay"].erase("default_next_hop");
  json ports = examplePorts(Example::kRouted);
  ports["remotes"] = json::array({{{"address", "10.20.1.2"}, {"next_hop", "192.0.2.253"}}});
  const auto out = parseAndValidate(host, ports);
  EXPECT_EQ(out.stage, Stage::kNone) << out.error.describe();
}

TEST(ParseIntent, RemotesAreOptionalInThePortsFile) {
  json ports = examplePorts(Example::kVxlan);
  ports.erase("remotes");
  Intent intent;
  intent.remotes.push_back(test::vxlanRemote("10.99.0.1", "192.0.2.9"));  // replaced
  ASSERT_TRUE(model::parsePortsFile(ports, intent).ok());
  EXPECT_EQ(intent.ports.size(), 4u);
  EXPECT_TRUE(intent.remotes.empty());
}

TEST(ParseIntent, FailedPortsFileLeavesIntentUntouched) {
  Intent intent = test::exampleIntent(Example::kVxlan);
  const auto before = intent.ports.size();
  json ports = examplePorts(Example::kVxlan);
  ports["ports"].erase(0);          // would shrink the ports...
  ports["ports"][2]["mac"] = "nope";  // ...but a later port is bad
  EXPECT_FALSE(model::parsePortsFile(ports, intent).ok());
  EXPECT_EQ(intent.ports.size(), before);
  EXPECT_EQ(intent.remotes.size(), 3u);
}

// --- validatePortAgainst: admission of one port into an existing intent ---

class ValidatePortAgainst : public ::testing::Test {
 protected:
  Intent intent = test::exampleIntent(Example::kVxlan);

  model::Port newPort() const {
    model::Port p = test::makePort(7, {"10.10.7.1"});
    return p;
  }
};

TEST_F(ValidatePortAgainst, NewPortIsAccepted) {
  EXPECT_TRUE(model::validatePortAgainst(intent, newPort()).ok());
}

TEST_F(ValidatePortAgainst, DuplicateIpWithAnExistingPort) {
  model::Port p = newPort();
  p.addresses.push_back(test::ip("10.10.2.1"));  // ports[2]'s address
  const auto s = model::validatePortAgainst(intent, p);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kDuplicate);
  EXPECT_EQ(s.error().field, "port.addresses[1]");
  EXPECT_EQ(s.error().value, "10.10.2.1");
  EXPECT_NE(s.error().message.find(intent.ports[2].key.str()), std::string::npos) << s.error().message;
}

TEST_F(ValidatePortAgainst, DuplicateMacAndVf) {
  model::Port p = newPort();
  p.mac = intent.ports[1].mac;
  auto s = model::validatePortAgainst(intent, p);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kDuplicate);
  EXPECT_EQ(s.error().field, "port.mac");

  p = newPort();
  p.vf = 2;
  s = model::validatePortAgainst(intent, p);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kDuplicate);
  EXPECT_EQ(s.error().field, "port.vf");
}

TEST_F(ValidatePortAgainst, ReplacingTheSameKeyIsFine) {
  // The same port again (a repeated hook call), and the same key with a new
  // address: the old version of the port does not collide with the new one.
  EXPECT_TRUE(model::validatePortAgainst(intent, intent.ports[1]).ok());
  model::Port changed = intent.ports[1];
  changed.addresses = {test::ip("10.10.1.2"), test::ip("10.10.1.9")};
  EXPECT_TRUE(model::validatePortAgainst(intent, changed).ok());
  // ...but taking another port's address is still refused.
  changed.addresses = {test::ip("10.10.1.1")};
  const auto s = model::validatePortAgainst(intent, changed);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kDuplicate);
  EXPECT_EQ(s.error().field, "port.addresses[0]");
}

TEST_F(ValidatePortAgainst, HostLevelChecksApply) {
  model::Port p = newPort();
  p.vf = 8;  // vf_count is 8
  auto s = model::validatePortAgainst(intent, p);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(s.error().field, "port.vf");

  p = newPort();
  p.addresses = {test::ip("10.20.2.1")};  // a remote's address
  s = model::validatePortAgainst(intent, p);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kConflict);
  EXPECT_EQ(s.error().field, "port.addresses[0]");
  EXPECT_EQ(s.error().value, "10.20.2.1");

  intent.host.default_vni.reset();
  p = newPort();
  s = model::validatePortAgainst(intent, p);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kMissingField);
  EXPECT_EQ(s.error().field, "port.vni");
}

// The daemon admits one port or remote at a time through IntentIndex: the
// underlay addresses are refused there too, naming "port." / "remote." fields.
TEST_F(ValidatePortAgainst, UnderlayAddressesAreRefusedOnePortAtATime) {
  const struct {
    const char* address;
    const char* needle;
  } kCases[] = {
      {"192.0.2.254", "the underlay next hop underlay.next_hops[0]"},
      {"192.0.2.1", "this host's VTEP address (underlay.vtep)"},
      {"192.0.2.3", "the VTEP of remote 10.20.2.1 (remotes[2].vtep)"},
      {"169.254.1.1", "the gateway address (gateway.ipv4)"},
  };
  const model::IntentIndex index(intent);
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.address);
    model::Port p = newPort();
    p.addresses.push_back(test::ip(c.address));
    const auto s = index.checkPort(p);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, ErrorCode::kConflict);
    EXPECT_EQ(s.error().field, "port.addresses[1]");
    EXPECT_NE(s.error().message.find(c.needle), std::string::npos) << s.error().message;
  }
}

TEST_F(ValidatePortAgainst, UnderlayAddressesAreRefusedOneRemoteAtATime) {
  const model::IntentIndex index(intent);
  auto remote = [](const char* address, const char* vtep) {
    model::RemoteEndpoint r;
    r.address = test::ip(address);
    r.vtep = test::ip(vtep);
    r.vni = 100;
    return r;
  };
  const struct {
    model::RemoteEndpoint remote;
    const char* field;
    const char* needle;
  } kCases[] = {
      {remote("192.0.2.1", "192.0.2.2"), "remote.address", "this host's VTEP"},
      {remote("192.0.2.3", "192.0.2.2"), "remote.address",
       "the VTEP of remote 10.20.2.1 (remotes[2].vtep)"},
      {remote("192.0.2.254", "192.0.2.2"), "remote.address", "underlay.next_hops[0]"},
      {remote("10.20.9.9", "10.10.1.2"), "remote.vtep", "local VM address"},
      {remote("10.20.9.9", "10.20.1.2"), "remote.vtep", "another remote"},
      {remote("10.20.9.9", "169.254.1.1"), "remote.vtep", "gateway"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.remote.address.str());
    const auto s = index.checkRemote(c.remote);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, ErrorCode::kConflict);
    EXPECT_EQ(s.error().field, c.field);
    EXPECT_NE(s.error().message.find(c.needle), std::string::npos) << s.error().message;
  }
  EXPECT_TRUE(index.checkRemote(remote("10.20.9.9", "192.0.2.4")).ok());
  // Replacing a remote with itself is no conflict with its own VTEP.
  EXPECT_TRUE(index.checkRemote(intent.remotes[2]).ok());
}

// The raw-text entry points never throw, whatever the bytes.
TEST(ParseText, EntryPointsTurnAnyBytesIntoErrors) {
  const std::string host = exampleHost(Example::kVxlan).dump();
  const std::string ports = examplePorts(Example::kVxlan).dump();
  ASSERT_TRUE(model::parseHostConfigText(host).ok());
  Intent intent;
  ASSERT_TRUE(model::parsePortsFileText(ports, intent).ok());
  EXPECT_EQ(intent.ports.size(), 4u);
  ASSERT_TRUE(model::checkAdmissionText(host, ports).ok());
  const std::string profile = test::readJson("hw-profiles/sim.json").dump();
  ASSERT_TRUE(model::parseHwProfileText(profile, "sim").ok());

  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string inputs[] = {"",
                                "\xff",
                                "{\"name\": \"\xed\xa0\x80\"}",
                                deep,
                                "[1, 2]",
                                "null",
                                R"({"name": 1, "name": 2})",
                                R"({"ports": [{"nic": 99999999999999999999}]})"};
  for (const auto& in : inputs) {
    SCOPED_TRACE(in.substr(0, 40));
    EXPECT_FALSE(model::parseHostConfigText(in).ok());
    Intent scratch;
    EXPECT_FALSE(model::parsePortsFileText(in, scratch).ok());
    EXPECT_FALSE(model::parseHwProfileText(in, "x").ok());
    EXPECT_FALSE(model::checkAdmissionText(in, ports).ok());
    EXPECT_FALSE(model::checkAdmissionText(host, in).ok());
  }
  Intent scratch;
  const auto big =
      model::parsePortsFileText(R"({"ports": [{"nic": 99999999999999999999}]})", scratch);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().field, "ports[0].vm");  // vm comes first; nic is checked below
  const auto nic = model::parsePortsFileText(
      R"({"ports": [{"vm": "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001", "nic": 99999999999999999999}]})",
      scratch);
  ASSERT_FALSE(nic.ok());
  EXPECT_EQ(nic.error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(nic.error().field, "ports[0].nic");
  EXPECT_NE(nic.error().message.find("out of range: must be an integer between 0 and 65535"),
            std::string::npos)
      << nic.error().describe();
}

TEST(ParseIntent, ResolveProfilePath) {
  const auto named = model::resolveProfilePath("connectx-5", "/usr/share/p");
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(*named, "/usr/share/p/connectx-5.json");
  const auto path = model::resolveProfilePath("./mine.json", "/x");
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(*path, "./mine.json");
  const auto autop = model::resolveProfilePath("auto", "/x");
  ASSERT_FALSE(autop.ok());
  EXPECT_EQ(autop.error().code, ErrorCode::kUnsupported);
  EXPECT_NE(autop.error().message.find("nicoffload-hwtest --probe"), std::string::npos) << autop.error().message;
  const auto bad = model::resolveProfilePath("cx 5", "/x");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(bad.error().field, "hw_profile");
}

TEST(ErrorCatalogue, EveryCodeHasAnEntry) {
  for (int c = 0; c <= static_cast<int>(ErrorCode::kInternal); ++c) {
    const auto& info = errorInfo(static_cast<ErrorCode>(c));
    EXPECT_FALSE(info.name.empty()) << c;
    EXPECT_FALSE(info.suggestion.empty()) << c;
  }
  EXPECT_EQ(errorInfo(ErrorCode::kDuplicate).name, "duplicate");
  EXPECT_EQ(errorInfo(ErrorCode::kTableFull).name, "table-full");
  // "no free VF" has its own entry, not "Hardware table full" (issue 11).
  EXPECT_EQ(errorInfo(ErrorCode::kExhausted).name, "exhausted");
  EXPECT_EQ(errorInfo(ErrorCode::kExhausted).title, "Resource exhausted");
  EXPECT_EQ(errorInfo(ErrorCode::kTableFull).description.find("VF"), std::string_view::npos);
  EXPECT_EQ(errorInfo(ErrorCode::kDeadlineExceeded).name, "deadline-exceeded");
  // Every name maps back to its code: the daemon and its clients exchange names.
  for (std::size_t c = 0; c < kErrorCodeCount; ++c) {
    const auto code = static_cast<ErrorCode>(c);
    EXPECT_FALSE(errorInfo(code).title.empty()) << c;
    EXPECT_EQ(errorCodeFromName(errorInfo(code).name), code) << errorInfo(code).name;
  }
  EXPECT_EQ(makeError(ErrorCode::kInvalidValue, "ports[1].mac", "x", "bad").describe(),
            "ports[1].mac: bad");
  EXPECT_EQ(makeError(ErrorCode::kInvalidValue, "", "x", "bad").describe(), "bad");
}

}  // namespace
}  // namespace nicoffload
