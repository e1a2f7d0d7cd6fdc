// nicoffloadctl trace, its pure part (trace/trace.h):
//  - golden traces, one per rule class, on the example hosts, compared with
//    tests/golden/trace/<name>.json (the kernel part from a model of the
//    kernel the planner programs, see SoftwarePathKernel below);
//  - differential: on generated packets, the trace's hardware verdict, path
//    and rewritten packet equal SimEswitch::evaluate's, also with rules in
//    software (profile, device refusals);
//  - packet spec validation: each error names its field and value.
//
// To regenerate the goldens after an intended change:
//   NICOFFLOAD_UPDATE_GOLDEN=1 ./nicoffload_trace_tests --gtest_filter='TraceGolden*'
// then read the diff of tests/golden/trace/ before committing it.
#include "nicoffload/trace/trace.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <fstream>
#include <random>

#include "nicoffload/flowrules/hw_apply.h"
#include "support/sim_support.h"

namespace nicoffload::test {
namespace {

using nlohmann::json;
using trace::KernelRoute;

// The kernel as the planner programs it (its SoftwarePathState), answering
// the trace's questions the way Linux does for those objects: local
// addresses, /32 routes, strict reverse-path filtering where rp_filter is 1,
// proxy_arp per device, permanent neighbours, VXLAN FDB entries. The real
// kernel is asked in tests/integration/trace_test.py.
class SoftwarePathKernel final : public trace::KernelView {
 public:
  SoftwarePathKernel(const model::Intent& intent, const flowrules::SoftwarePathState& sw)
      : host_(intent.host), sw_(sw) {}
  std::string where() const override { return "model of the planned software path"; }

  Result<KernelRoute> routeInput(IpAddr dst6, IpAddr src6, const std::string& iif) const override {
    KernelRoute r;
    if (!dst6.isV4()) return routeInput6(dst6.v6(), src6.v6(), iif);
    const Ipv4Addr dst = dst6.v4(), src = src6.v4();
    if (sysctl("ipv4/conf/" + iif + "/rp_filter") == "1") {
      const auto* back = route(src);
      if (!back || back->dev != iif) {
        r.error = EXDEV;
        return r;
      }
    }
    for (const auto& a : sw_.addresses)
      if (a.prefix.addr == dst) {
        r.type = KernelRoute::Type::kLocal;
        return r;
      }
    if (host_.vtep && *host_.vtep == dst) {
      r.type = KernelRoute::Type::kLocal;
      return r;
    }
    const auto* to = route(dst);
    if (!to) {
      r.error = ENETUNREACH;
      return r;
    }
    r.type = KernelRoute::Type::kUnicast;
    r.dev = to->dev;
    r.gateway = to->via;
    return r;
  }
  Result<bool> proxyArp(const std::string& dev) const override {
    return sysctl("ipv4/conf/" + dev + "/proxy_arp") == "1";
  }
  Result<std::optional<trace::KernelNeighbour>> neighbour(const std::string& dev,
                                                          IpAddr ip) const override {
    for (const auto& n : sw_.neighbours)
      if (ip.isV4() && n.dev == dev && n.ip == ip.v4())
        return std::optional(trace::KernelNeighbour{n.mac, "permanent"});
    for (const auto& n : sw_.neighbours6)
      if (!ip.isV4() && !n.proxy && n.dev == dev && n.ip == ip.v6())
        return std::optional(trace::KernelNeighbour{n.mac, "permanent"});
    return std::optional<trace::KernelNeighbour>();
  }
  Result<std::vector<IpAddr>> fdb(const std::string& dev, MacAddr m) const override {
    std::vector<IpAddr> out;
    for (const auto& f : sw_.fdb)
      if (f.dev == dev && f.mac == m) out.push_back(f.dst);
    return out;
  }
  Result<std::optional<MacAddr>> linkMac(const std::string& dev) const override {
    for (const auto& l : sw_.links)
      if (l.dev == dev) return std::optional(l.mac);
    for (const auto& v : sw_.vxlan_devices)
      if (v.name == dev) return std::optional(v.mac);
    if (dev == host_.uplink_netdev) return std::optional(host_.uplink_mac);
    return std::optional<MacAddr>();
  }

 private:
  // IPv6: no reverse-path filter; the source-check rules of the input
  // device in priority order, then the /128 routes (table main).
  KernelRoute routeInput6(const Ipv6Addr& dst, const Ipv6Addr& src, const std::string& iif) const {
    KernelRoute r;
    if (host_.vtep && *host_.vtep == IpAddr(dst)) {  // an IPv6 VTEP is a local address
      r.type = KernelRoute::Type::kLocal;
      return r;
    }
    std::vector<const flowrules::Rule6Entry*> rules;
    for (const auto& rule : sw_.rules6)
      if (rule.iif == iif) rules.push_back(&rule);
    std::sort(rules.begin(), rules.end(),
              [](const auto* a, const auto* b) { return a->priority < b->priority; });
    for (const auto* rule : rules) {
      if (rule->blackhole) {
        r.error = EINVAL;  // what the kernel answers for a blackhole rule
        return r;
      }
      if ((rule->src && rule->src->contains(src)) || (rule->dst && rule->dst->contains(dst))) break;
    }
    for (const auto& route : sw_.routes6)
      if (route.dst.addr == dst) {
        r.type = KernelRoute::Type::kUnicast;
        r.dev = route.dev;
        if (route.via) r.gateway = IpAddr(*route.via);
        return r;
      }
    r.error = ENETUNREACH;
    return r;
  }
  const flowrules::RouteEntry* route(Ipv4Addr a) const {
    for (const auto& r : sw_.routes)
      if (r.dst.addr == a) return &r;
    return nullptr;
  }
  std::string sysctl(const std::string& path) const {
    for (const auto& s : sw_.sysctls)
      if (s.path == path) return s.value;
    return "";
  }
  model::HostConfig host_;
  flowrules::SoftwarePathState sw_;
};

// The rules as the daemon holds them: planned, with the placement in effect.
std::vector<trace::TraceRule> heldRules(const SimHost& h) {
  std::vector<trace::TraceRule> out;
  for (const auto& r : h.plan.rules) {
    const auto* a = h.applier->find(r.id);
    if (!a) continue;
    out.push_back({a->effective(r), flowrules::describeApplied(*a, h.profile), a->handle});
  }
  return out;
}

json traceOf(SimHost& h, const json& spec, const trace::KernelView* kernel = nullptr) {
  auto input = unwrap(trace::parseTraceSpec(spec, h.intent), "spec " + spec.dump());
  trace::TraceContext ctx;
  ctx.intent = &h.intent;
  ctx.backend = "sim";
  ctx.max_jumps = h.profile.max_groups;
  ctx.kernel = kernel;
  return unwrap(trace::tracePacket(input, heldRules(h), ctx), "trace");
}

std::unique_ptr<SimHost> cx5Host() {
  auto intent = hv1Intent();
  dropVdpa(intent);
  intent.host.vxlan_udp_port = 8472;
  return SimHost::start(intent, loadProfile("connectx-5"));
}

struct GoldenTrace {
  const char* name;  // tests/golden/trace/<name>.json
  const char* host;  // "vxlan", "routed", "cx5-8472"
  const char* spec;
};

const char* const kVm1 =
    "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001/0";  // vf0, 10.10.1.1 (both examples)

const GoldenTrace kGoldenTraces[] = {
    {"vm-to-vm-local", "vxlan",
     R"({"in": "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001/0", "dst_ip": "10.10.1.2"})"},
    {"routed-egress", "routed",
     R"({"in": "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001/0", "dst_ip": "10.20.1.1", "proto": "tcp", "dst_port": "443"})"},
    {"vxlan-egress", "vxlan", R"({"in": "pf0vf0", "dst_ip": "10.20.1.1"})"},
    {"vxlan-ingress", "vxlan",
     R"({"in": "uplink", "outer_src_ip": "192.0.2.2", "vni": 100, "src_ip": "10.20.1.1", "dst_ip": "10.10.1.1", "proto": "icmp"})"},
    {"arp-trapped-proxy-arp", "vxlan",
     R"({"in": "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001/0", "tpa": "10.10.1.2"})"},
    {"spoofed-source-dropped", "vxlan",
     R"({"in": "vf0", "src_ip": "10.10.9.9", "dst_ip": "10.10.1.2"})"},
    {"profile-put-in-software", "cx5-8472",
     R"({"in": "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001/0", "dst_ip": "10.20.1.1"})"},
    {"next-hop-unresolved-in-software", "routed", R"({"in": "vf0", "dst_ip": "10.20.1.2"})"},
};

bool updating() {
  const char* v = std::getenv("NICOFFLOAD_UPDATE_GOLDEN");
  return v && std::string(v) == "1";
}

TEST(TraceGolden, EachRuleClassOnTheExampleHosts) {
  for (const auto& c : kGoldenTraces) {
    SCOPED_TRACE(c.name);
    std::unique_ptr<SimHost> h;
    if (std::string(c.host) == "vxlan") h = SimHost::start(hv1Intent(), loadProfile("sim"));
    if (std::string(c.host) == "routed")
      h = SimHost::start(exampleIntent(Example::kRouted), loadProfile("connectx-6dx"));
    if (std::string(c.host) == "cx5-8472") h = cx5Host();
    ASSERT_TRUE(h);
    const SoftwarePathKernel kernel(h->intent, h->plan.sw);
    json actual = traceOf(*h, json::parse(c.spec), &kernel);
    // Nothing in a trace is volatile (rule ids are stable, handles are not
    // shown); the text lines are part of the golden file too.
    json doc{{"spec", json::parse(c.spec)}, {"trace", actual}, {"text", trace::traceText(actual)}};
    const std::string path = sourcePath(std::string("tests/golden/trace/") + c.name + ".json");
    if (updating()) {
      std::ofstream(path) << doc.dump(2) << "\n";
      continue;
    }
    std::ifstream in(path);
    ASSERT_TRUE(in) << "missing " << path << " (NICOFFLOAD_UPDATE_GOLDEN=1 writes it)";
    const json expected = json::parse(in);
    EXPECT_EQ(expected, doc) << json::diff(expected, doc).dump(1);
  }
}

// The goldens' key facts, asserted outright (a golden regenerated by
// mistake cannot hide a wrong verdict).
TEST(TraceGolden, VerdictsSayWhatEachClassDoes) {
  auto hv1 = SimHost::start(hv1Intent(), loadProfile("sim"));
  const SoftwarePathKernel k1(hv1->intent, hv1->plan.sw);

  auto local = traceOf(*hv1, {{"in", kVm1}, {"dst_ip", "10.10.1.2"}}, &k1);
  EXPECT_EQ(local["hardware"]["verdict"]["kind"], "port");
  EXPECT_EQ(local["hardware"]["verdict"]["port"], "vf1");
  ASSERT_EQ(local["hardware"]["steps"].size(), 2u);
  EXPECT_EQ(local["hardware"]["steps"][0]["class"], "anti-spoofing");
  EXPECT_EQ(local["hardware"]["steps"][1]["class"], "local-delivery");
  EXPECT_NE(local["hardware"]["packet"].get<std::string>().find("ttl 63"), std::string::npos);
  EXPECT_TRUE(local["kernel"].is_null());

  auto egress = traceOf(*hv1, {{"in", kVm1}, {"dst_ip", "10.20.1.1"}}, &k1);
  EXPECT_EQ(egress["hardware"]["verdict"]["port"], "uplink");
  EXPECT_EQ(egress["hardware"]["steps"][1]["class"], "vxlan-egress");
  EXPECT_EQ(egress["hardware"]["packet"].get<std::string>().rfind("eth 0c:42:a1:00:00:01>", 0), 0u);
  EXPECT_NE(egress["hardware"]["packet"].get<std::string>().find("ipv4 192.0.2.1>192.0.2.2"),
            std::string::npos);

  auto ingress = traceOf(*hv1,
                         {{"in", "uplink"},
                          {"outer_src_ip", "192.0.2.2"},
                          {"vni", 100},
                          {"src_ip", "10.20.1.1"},
                          {"dst_ip", "10.10.1.1"}},
                         &k1);
  EXPECT_EQ(ingress["hardware"]["steps"][0]["class"], "vxlan-ingress");
  EXPECT_EQ(ingress["hardware"]["verdict"]["port"], "vf0");
  EXPECT_EQ(ingress["hardware"]["packet"].get<std::string>().find("vxlan"), std::string::npos);

  auto arp = traceOf(*hv1, {{"in", kVm1}, {"tpa", "10.10.1.2"}}, &k1);
  EXPECT_EQ(arp["hardware"]["steps"][0]["class"], "arp-trap");
  EXPECT_EQ(arp["hardware"]["verdict"]["kind"], "representor");
  EXPECT_EQ(arp["kernel"]["verdict"]["kind"], "proxy-arp-reply");
  EXPECT_EQ(arp["kernel"]["verdict"]["mac"],
            "ee:ee:ee:ee:ee:ee");  // the gateway MAC on the representor
  auto arp_unknown = traceOf(*hv1, {{"in", kVm1}, {"tpa", "198.51.100.7"}}, &k1);
  EXPECT_EQ(arp_unknown["kernel"]["verdict"]["kind"], "no-answer");

  auto spoofed =
      traceOf(*hv1, {{"in", "vf0"}, {"src_ip", "10.10.9.9"}, {"dst_ip", "10.10.1.2"}}, &k1);
  EXPECT_EQ(spoofed["hardware"]["verdict"]["kind"], "drop");
  EXPECT_EQ(spoofed["hardware"]["steps"][0]["class"], "anti-spoofing");
  EXPECT_EQ(spoofed["leaves"], "dropped in hardware");

  auto cx5 = cx5Host();
  const SoftwarePathKernel k5(cx5->intent, cx5->plan.sw);
  auto sw = traceOf(*cx5, {{"in", kVm1}, {"dst_ip", "10.20.1.1"}}, &k5);
  ASSERT_EQ(sw["hardware"]["steps"].size(), 2u);
  EXPECT_TRUE(sw["hardware"]["steps"][1]["miss"].get<bool>());
  ASSERT_EQ(sw["hardware"]["steps"][1]["bypassed"].size(), 1u);
  EXPECT_EQ(sw["hardware"]["steps"][1]["bypassed"][0]["placement"], "sw");
  EXPECT_NE(sw["hardware"]["steps"][1]["bypassed"][0]["reason"].get<std::string>().find("8472"),
            std::string::npos);
  EXPECT_EQ(sw["kernel"]["in_dev"], "pf0vf0");
  EXPECT_EQ(sw["kernel"]["verdict"]["kind"], "kernel-route");
  EXPECT_EQ(sw["kernel"]["verdict"]["dev"], "nfo-vx100");
  EXPECT_EQ(sw["kernel"]["verdict"]["remote_vtep"], "192.0.2.2");

  // Without a kernel view, the kernel part says why it was not looked at.
  auto none = traceOf(*cx5, {{"in", kVm1}, {"dst_ip", "10.20.1.1"}});
  EXPECT_EQ(none["kernel"]["verdict"]["kind"], "unknown");
}

// VXLAN over an IPv6 underlay (issue 23): in hardware, the egress packet
// leaves in IPv6 and a packet from the IPv6 underlay is decapsulated; on a
// profile without the ipv6_underlay claim, the kernel's walk shows the same:
// the route through the VTEP's stand-in to the FDB's IPv6 VTEP out, and the
// VXLAN device decapsulating in.
TEST(TraceIpv6Underlay, HardwareAndKernelBothWays) {
  auto intent = hv1Intent();
  const auto v6 = [](const char* t) { return *Ipv6Addr::parse(t); };
  intent.host.vtep = v6("2001:db8:ff::1");
  intent.host.next_hops = {{v6("2001:db8:ff::fe"), test::mac("0c:42:a1:ff:ff:fd"), 0}};
  intent.host.default_next_hop = v6("2001:db8:ff::fe");
  for (auto& r : intent.remotes)
    r.vtep = r.vtep->v4() == test::ip("192.0.2.2") ? v6("2001:db8:ff::2") : v6("2001:db8:ff::3");
  const json in_spec = {{"in", "uplink"},
                        {"outer_src_ip", "2001:db8:ff::2"},
                        {"vni", 100},
                        {"src_ip", "10.20.1.1"},
                        {"dst_ip", "10.10.1.1"}};

  auto hw = SimHost::start(intent, loadProfile("sim"));
  const SoftwarePathKernel k(hw->intent, hw->plan.sw);
  auto egress = traceOf(*hw, {{"in", kVm1}, {"dst_ip", "10.20.1.1"}}, &k);
  EXPECT_EQ(egress["hardware"]["verdict"]["port"], "uplink");
  EXPECT_NE(
      egress["hardware"]["packet"].get<std::string>().find("ipv6 2001:db8:ff::1>2001:db8:ff::2"),
      std::string::npos)
      << egress["hardware"]["packet"];
  auto ingress = traceOf(*hw, in_spec, &k);
  EXPECT_EQ(ingress["hardware"]["steps"][0]["class"], "vxlan-ingress");
  EXPECT_EQ(ingress["hardware"]["verdict"]["port"], "vf0");

  auto profile = loadProfile("sim");
  profile.actions[static_cast<std::size_t>(model::ActionType::kVxlanEncap)].ipv6_underlay = false;
  profile.actions[static_cast<std::size_t>(model::ActionType::kVxlanDecap)].ipv6_underlay = false;
  auto sw = SimHost::start(intent, profile);
  const SoftwarePathKernel ks(sw->intent, sw->plan.sw);
  auto out = traceOf(*sw, {{"in", kVm1}, {"dst_ip", "10.20.1.1"}}, &ks);
  EXPECT_EQ(out["kernel"]["verdict"]["kind"], "kernel-route") << out.dump(2);
  EXPECT_EQ(out["kernel"]["verdict"]["dev"], "nfo-vx100");
  EXPECT_EQ(out["kernel"]["verdict"]["via"], "fe80::2");
  EXPECT_EQ(out["kernel"]["verdict"]["remote_vtep"], "2001:db8:ff::2");
  auto in = traceOf(*sw, in_spec, &ks);
  bool decapped = false;
  for (const auto& step : in["kernel"]["steps"])
    if (step["step"] == "vxlan-decap") decapped = step["dev"] == "nfo-vx100";
  EXPECT_TRUE(decapped) << in.dump(2);
  EXPECT_EQ(in["kernel"]["verdict"]["dev"], "pf0vf0") << in.dump(2);

  // The outer addresses are of one family.
  json mixed = in_spec;
  mixed["outer_src_ip"] = "192.0.2.2";
  auto bad = trace::parseTraceSpec(mixed, sw->intent);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().field, "outer_src_ip");
}

// --- differential: trace's verdict == SimEswitch::evaluate's ---

// Generated packets: from every VF and the uplink, to addresses the host
// knows and others, legitimate and spoofed, TCP/UDP/ICMP, ARP, VXLAN with
// VNIs and UDP ports in use and not.
std::vector<std::pair<json, std::string>> generatedSpecs(const model::Intent& intent,
                                                         std::mt19937& rng, std::size_t n) {
  std::vector<std::string> addrs = {"198.51.100.7", "169.254.1.1", "10.99.0.1"};
  for (const auto& p : intent.ports)
    for (auto a : p.addresses) addrs.push_back(a.str());
  for (const auto& r : intent.remotes) addrs.push_back(r.address.str());
  std::vector<std::string> ins = {"uplink"};
  for (const auto& p : intent.ports) ins.push_back(p.key.str());
  ins.push_back("vf7");  // a VF no port uses
  const std::vector<std::string> macs = {"52:54:00:99:99:99", "ee:ee:ee:ee:ee:ee",
                                         "0c:42:a1:00:00:01"};
  auto pick = [&](const auto& v) {
    return v[std::uniform_int_distribution<std::size_t>(0, v.size() - 1)(rng)];
  };
  auto coin = [&](int percent) { return std::uniform_int_distribution<int>(0, 99)(rng) < percent; };
  std::vector<std::pair<json, std::string>> out;
  for (std::size_t i = 0; i < n; ++i) {
    json s{{"in", pick(ins)}};
    if (coin(15)) {
      s["tpa"] = pick(addrs);
      if (s["in"] == "uplink" || s["in"] == "vf7" || coin(50)) s["spa"] = pick(addrs);
    } else {
      s["dst_ip"] = pick(addrs);
      if (s["in"] == "uplink" || s["in"] == "vf7" || coin(30)) s["src_ip"] = pick(addrs);
      s["proto"] = pick(std::vector<std::string>{"udp", "tcp", "icmp"});
      if (coin(10)) s["ttl"] = 1;
    }
    if (coin(15)) s["src_mac"] = pick(macs);
    if (s["in"] == "uplink" && intent.host.underlay == model::UnderlayMode::kVxlan && coin(60)) {
      s["outer_src_ip"] = pick(std::vector<std::string>{"192.0.2.2", "192.0.2.3", "192.0.2.77"});
      s["vni"] = pick(std::vector<int>{100, 200, 999});
      if (coin(30)) s["vxlan_port"] = pick(std::vector<int>{4789, 8472, 4790});
      if (coin(15)) s["outer_dst_ip"] = "192.0.2.99";
    }
    out.push_back({s, s.dump()});
  }
  return out;
}

struct DiffScenario {
  std::string name;
  std::function<std::unique_ptr<SimHost>()> start;
};

TEST(TraceDifferential, VerdictEqualsTheSimulatedNicOnGeneratedPackets) {
  const std::vector<DiffScenario> scenarios = {
      {"hv1 vxlan on sim", [] { return SimHost::start(hv1Intent(), loadProfile("sim")); }},
      {"hv2 vxlan on sim", [] { return SimHost::start(hv2Intent(), loadProfile("sim")); }},
      {"routed on connectx-6dx",
       [] { return SimHost::start(exampleIntent(Example::kRouted), loadProfile("connectx-6dx")); }},
      {"hv1 on connectx-5, VXLAN on 8472", [] { return cx5Host(); }},
      // The device refuses what the profile allows: placement in effect differs from the plan.
      {"hv1, device refuses vxlan_decap",
       [] {
         return SimHost::start(hv1Intent(), loadProfile("sim"), [](simnic::SimEswitch& nic) {
           nic.failAction(model::ActionType::kVxlanDecap);
         });
       }},
      {"hv1, table full after 9 rules",
       [] {
         return SimHost::start(hv1Intent(), loadProfile("sim"), [](simnic::SimEswitch& nic) {
           nic.failNthOperation(19,
                                makeError(ErrorCode::kTableFull, "", "", "injected: table full"));
         });
       }},
  };
  std::mt19937 rng(20261130);
  for (const auto& sc : scenarios) {
    SCOPED_TRACE(sc.name);
    auto h = sc.start();
    const auto held = heldRules(*h);
    std::size_t sw_rules = 0, representor = 0, bypassed = 0;
    for (const auto& r : held) sw_rules += r.rule.placement == flowrules::Placement::kSw;
    for (const auto& [spec, text] : generatedSpecs(h->intent, rng, 1500)) {
      SCOPED_TRACE(text);
      auto input = unwrap(trace::parseTraceSpec(spec, h->intent), "spec");
      trace::TraceContext ctx;
      ctx.intent = &h->intent;
      ctx.max_jumps = h->profile.max_groups;
      const json t = unwrap(trace::tracePacket(input, held, ctx), "trace");
      const auto d = h->send(input.packet, input.ingress);
      const json& v = t["hardware"]["verdict"];
      const char* kind = d.kind == simnic::Delivery::Kind::kPort          ? "port"
                         : d.kind == simnic::Delivery::Kind::kRepresentor ? "representor"
                                                                          : "drop";
      ASSERT_EQ(v["kind"], kind);
      ASSERT_EQ(v["miss"], d.miss);
      if (d.kind != simnic::Delivery::Kind::kDrop) {
        ASSERT_EQ(v["port"], d.port.str());
      }
      ASSERT_EQ(t["hardware"]["packet"], simnic::describe(d.packet));
      // The same rules, in the same order.
      std::vector<std::string> sim_path, trace_path;
      for (auto handle : d.path) {
        const auto* f = h->nic->find(handle);
        ASSERT_NE(f, nullptr);
        sim_path.push_back(flowrules::formatRuleId(f->rule.cls, f->rule.id));
      }
      for (const auto& st : t["hardware"]["steps"]) {
        if (!st["rule"].is_null()) trace_path.push_back(st["rule"]);
        bypassed += st["bypassed"].size();
        for (const auto& b : st["bypassed"]) ASSERT_EQ(b["placement"], "sw");
      }
      ASSERT_EQ(trace_path, sim_path);
      representor += d.kind == simnic::Delivery::Kind::kRepresentor;
    }
    // The generated set reaches the kernel and, where rules sit in software,
    // finds them.
    EXPECT_GT(representor, 0u);
    if (sw_rules > 0) {
      EXPECT_GT(bypassed, 0u) << sw_rules << " rules in sw";
    } else {
      EXPECT_EQ(bypassed, 0u);
    }
  }
}

// --- the packet spec ---

// IPv6 (issue 23): a packet with an IPv6 source or destination is IPv6; the
// source defaults to the port's first /128. Traced through the hardware
// (a VM's /128 delivered locally, a remote /128 encapsulated), and through
// the ND trap to the kernel, whose IPv6 handling is said not to be traced.
TEST(TraceIpv6, ThroughTheHardwareAndToTheKernel) {
  auto intent = hv1Intent();
  intent.host.gateway_ipv6 = *Ipv6Addr::parse("fe80::1");
  intent.ports[0].addresses6 = {*Ipv6Addr::parse("2001:db8:1::10")};
  intent.ports[1].addresses6 = {*Ipv6Addr::parse("2001:db8:1::20")};
  model::RemoteEndpoint r;
  r.address = *Ipv6Addr::parse("2001:db8:9::5");
  r.vtep = ip("192.0.2.2");
  r.vni = 100;
  intent.remotes.push_back(r);
  auto h = SimHost::start(intent, loadProfile("sim"));
  const SoftwarePathKernel k(h->intent, h->plan.sw);

  auto spec =
      unwrap(trace::parseTraceSpec({{"in", "vf0"}, {"dst_ip", "2001:db8:1::20"}, {"proto", "icmp"}},
                                   h->intent),
             "spec");
  EXPECT_EQ(simnic::describe(spec.packet)
                .rfind("eth 52:54:00:00:01:01>ee:ee:ee:ee:ee:ee 0x86dd | ipv6 "
                       "2001:db8:1::10>2001:db8:1::20",
                       0),
            0u)
      << simnic::describe(spec.packet);

  auto local = traceOf(*h, {{"in", "vf0"}, {"dst_ip", "2001:db8:1::20"}}, &k);
  EXPECT_EQ(local["hardware"]["verdict"]["kind"], "port") << local.dump(1);
  EXPECT_EQ(local["hardware"]["verdict"]["port"], "vf1");
  ASSERT_EQ(local["hardware"]["steps"].size(), 2u);
  EXPECT_EQ(local["hardware"]["steps"][0]["class"], "anti-spoofing");
  EXPECT_EQ(local["hardware"]["steps"][1]["class"], "local-delivery");

  auto egress = traceOf(*h, {{"in", "vf0"}, {"dst_ip", "2001:db8:9::5"}, {"ttl", 9}}, &k);
  EXPECT_EQ(egress["hardware"]["verdict"]["port"], "uplink") << egress.dump(1);
  EXPECT_EQ(egress["hardware"]["steps"][1]["class"], "vxlan-egress");
  const auto packet = egress["hardware"]["packet"].get<std::string>();
  EXPECT_NE(packet.find("ipv4 192.0.2.1>192.0.2.2"), std::string::npos) << packet;
  EXPECT_NE(packet.find("2001:db8:1::10>2001:db8:9::5"), std::string::npos) << packet;

  // The kernel's part: the /128 routes, the neighbours, the hop limit.
  auto nowhere = traceOf(*h, {{"in", "vf0"}, {"dst_ip", "2001:db8:5::5"}}, &k);
  EXPECT_EQ(nowhere["hardware"]["verdict"]["kind"], "representor") << nowhere.dump(1);
  EXPECT_EQ(nowhere["kernel"]["in_dev"], "pf0vf0");
  EXPECT_EQ(nowhere["kernel"]["verdict"]["kind"], "no-route") << nowhere["kernel"].dump(1);
  ASSERT_EQ(nowhere["kernel"]["steps"].size(), 1u);
  EXPECT_EQ(nowhere["kernel"]["steps"][0]["dst"], "2001:db8:5::5");

  const json from_uplink{
      {"in", "uplink"}, {"src_ip", "2001:db8:9::5"}, {"dst_ip", "2001:db8:1::10"}};
  auto in = traceOf(*h, from_uplink, &k);
  EXPECT_EQ(in["kernel"]["in_dev"], "uplink0") << in.dump(1);
  EXPECT_EQ(in["kernel"]["verdict"]["kind"], "kernel-route") << in["kernel"].dump(1);
  EXPECT_EQ(in["kernel"]["verdict"]["dev"], "pf0vf0");
  ASSERT_EQ(in["kernel"]["steps"].size(), 2u);
  EXPECT_EQ(in["kernel"]["steps"][1]["step"], "neighbour");
  EXPECT_EQ(in["kernel"]["steps"][1]["ip"], "2001:db8:1::10");
  EXPECT_EQ(in["kernel"]["steps"][1]["mac"], "52:54:00:00:01:01");

  json last_hop = from_uplink;
  last_hop["ttl"] = 1;
  auto expired = traceOf(*h, last_hop, &k);
  EXPECT_EQ(expired["kernel"]["verdict"]["kind"], "dropped") << expired["kernel"].dump(1);
  EXPECT_NE(expired["kernel"]["verdict"]["text"].get<std::string>().find("hop limit 1"),
            std::string::npos);

  // (From the VM's link-local address: from its /128 the allow rule, at the
  // same priority, may match first; both end at the representor.)
  auto nd = traceOf(*h,
                    {{"in", "vf0"},
                     {"src_ip", "fe80::5054:ff:fe00:101"},
                     {"dst_ip", "ff02::1:ff00:1"},
                     {"proto", "icmp"}},
                    &k);
  EXPECT_EQ(nd["hardware"]["steps"][0]["class"], "nd-trap") << nd.dump(1);
  EXPECT_EQ(nd["kernel"]["verdict"]["kind"], "local") << nd.dump(1);
  EXPECT_NE(nd["kernel"]["verdict"]["text"].get<std::string>().find("multicast"),
            std::string::npos);

  const struct {
    json spec;
    ErrorCode code;
    const char* field;
  } bad[] = {
      {{{"in", "vf0"}, {"src_ip", "10.10.1.1"}, {"dst_ip", "2001:db8:1::20"}},
       ErrorCode::kConflict,
       "src_ip"},
      {{{"in", "vf0"}, {"ethertype", "ipv4"}, {"dst_ip", "2001:db8:1::20"}},
       ErrorCode::kConflict,
       "dst_ip"},
      {{{"in", "vf0"}, {"dst_ip", "2001:db8::1::2"}}, ErrorCode::kInvalidValue, "dst_ip"},
      {{{"in", "vf2"}, {"dst_ip", "2001:db8:1::20"}}, ErrorCode::kMissingField, "src_ip"},
  };
  for (const auto& c : bad) {
    SCOPED_TRACE(c.spec.dump());
    auto e = trace::parseTraceSpec(c.spec, h->intent);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code, c.code) << e.error().describe();
    EXPECT_EQ(e.error().field, c.field);
  }
}

TEST(TraceSpec, ErrorsNameTheFieldAndTheValue) {
  const auto intent = hv1Intent();
  struct Case {
    const char* spec;
    ErrorCode code;
    const char* field;
    const char* value;
  };
  const Case cases[] = {
      {R"({"dst_ip": "10.10.1.2"})", ErrorCode::kMissingField, "in", ""},
      {R"({"in": "nosuchport", "dst_ip": "10.10.1.2"})", ErrorCode::kNotFound, "in", "nosuchport"},
      {R"({"in": "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001/9", "dst_ip": "10.10.1.2"})",
       ErrorCode::kNotFound, "in", "6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001/9"},
      {R"({"in": "vf8", "dst_ip": "10.10.1.2"})", ErrorCode::kNotFound, "in", "vf8"},
      {R"({"in": "vf0", "dst_ip": "10.10.1.300"})", ErrorCode::kInvalidValue, "dst_ip",
       "10.10.1.300"},
      {R"({"in": "vf0", "src_mac": "52:54:00:zz:00:01", "dst_ip": "10.10.1.2"})",
       ErrorCode::kInvalidValue, "src_mac", "52:54:00:zz:00:01"},
      {R"({"in": "uplink", "outer_src_ip": "192.0.2.2", "vni": 16777216, "src_ip": "10.20.1.1", "dst_ip": "10.10.1.1"})",
       ErrorCode::kInvalidValue, "vni", "16777216"},
      {R"({"in": "uplink", "vni": 100, "src_ip": "10.20.1.1", "dst_ip": "10.10.1.1"})",
       ErrorCode::kMissingField, "outer_src_ip", ""},
      {R"({"in": "vf0", "dst_ip": "10.10.1.2", "dst_port": "70000"})", ErrorCode::kInvalidValue,
       "dst_port", "70000"},
      {R"({"in": "vf0", "dst_ip": "10.10.1.2", "proto": "sctp"})", ErrorCode::kInvalidValue,
       "proto", "sctp"},
      {R"({"in": "vf0", "dst_ip": "10.10.1.2", "ethertype": "0x12"})", ErrorCode::kInvalidValue,
       "ethertype", "0x12"},
      {R"({"in": "vf0", "dst_ip": 5})", ErrorCode::kWrongType, "dst_ip", "5"},
      {R"({"in": "vf0", "dst": "10.10.1.2"})", ErrorCode::kUnknownField, "dst", "dst"},
      {R"({"in": "vf0"})", ErrorCode::kMissingField, "dst_ip", ""},
      {R"({"in": "uplink", "dst_ip": "10.10.1.1"})", ErrorCode::kMissingField, "src_ip", ""},
      {R"({"in": "vf0", "ethertype": "arp"})", ErrorCode::kMissingField, "tpa", ""},
      {R"({"in": "vf0", "tpa": "10.10.1.2", "proto": "udp"})", ErrorCode::kConflict, "proto", ""},
      {R"({"in": "vf0", "dst_ip": "10.10.1.2", "proto": "icmp", "dst_port": 1})",
       ErrorCode::kConflict, "dst_port", ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.spec);
    auto r = trace::parseTraceSpec(json::parse(c.spec), intent);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, c.code) << r.error().describe();
    EXPECT_EQ(r.error().field, c.field);
    EXPECT_EQ(r.error().value, c.value);
    EXPECT_FALSE(r.error().message.empty());
  }
}

TEST(TraceSpec, IngressByKeyRepresentorOrVfAndDefaultsFromThePort) {
  const auto intent = hv1Intent();
  for (const char* in : {"6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001/1",
                         "6F1C2A9E-3B41-4F0A-9C5E-2D7B8A1E0001/1", "pf0vf1", "vf1"}) {
    SCOPED_TRACE(in);
    auto t = unwrap(trace::parseTraceSpec({{"in", in}, {"dst_ip", "10.10.1.1"}}, intent), "spec");
    EXPECT_EQ(t.ingress, PortRef::vfPort(1));
    EXPECT_EQ(t.representor, "pf0vf1");
    ASSERT_TRUE(t.port);
    EXPECT_EQ(t.port->nic, 1);
    EXPECT_EQ(simnic::describe(t.packet),
              "eth 52:54:00:00:01:02>ee:ee:ee:ee:ee:ee 0x0800 | ipv4 10.10.1.2>10.10.1.1 ttl 64 | "
              "udp 40000>5001 | 64 B");
  }
  auto up = unwrap(trace::parseTraceSpec({{"in", "uplink0"},
                                          {"src_ip", "10.20.1.1"},
                                          {"dst_ip", "10.10.1.1"},
                                          {"proto", "tcp"},
                                          {"dst_port", "0x16"}},
                                         intent),
                   "spec");
  EXPECT_EQ(up.ingress, PortRef::uplink());
  EXPECT_EQ(simnic::describe(up.packet),
            "eth 0c:42:a1:ff:ff:fe>0c:42:a1:00:00:01 0x0800 | ipv4 10.20.1.1>10.10.1.1 ttl 64 | "
            "tcp 40000>22 | 64 B");
  auto arp = unwrap(trace::parseTraceSpec({{"in", "vf0"}, {"tpa", "169.254.1.1"}}, intent), "spec");
  EXPECT_EQ(
      simnic::describe(arp.packet),
      "eth 52:54:00:00:01:01>ff:ff:ff:ff:ff:ff 0x0806 | arp who-has 169.254.1.1 tell 10.10.1.1 "
      "(52:54:00:00:01:01) | 64 B");
}

}  // namespace
}  // namespace nicoffload::test
