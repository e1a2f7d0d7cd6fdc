// Queries, the controller's read ops, on their own: over real parts (an
// Admission, a planner and an applier on the simulated NIC in memory, a
// FailureBook, Claims, a TrafficSweep, a StateStore) and what a
// controller's passes keep, set by hand. A port's status joins its planned
// rules with the placements in effect and the failures that name it; rules
// and remotes read in pages; explain finds an applied rule through its
// owner; status and counters show the sources as they are.
#include "nicoffload/daemon/queries.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "port_json.h"
#include "read_parts.h"

namespace nicoffload::daemon {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = Queries::Clock;

json port(int i) { return test_support::portJson(i); }

// A request as the server hands it over: with its "op".
json request(const char* op, json fields) {
  fields["op"] = op;
  return fields;
}

struct Fixture : test_support::ReadParts {
  std::unique_ptr<LearnedRoutes> learned;  // off
  flowrules::DerivedRefs derived_refs;
  // What the controller's passes keep.
  std::map<std::uint16_t, MacAddr> vf_macs;
  std::size_t sw_objects = 0;
  std::string last_pass_summary = "full pass: nothing to do";
  bool full_pass_running = false;
  std::unique_ptr<Queries> queries;

  Fixture() : ReadParts("nfo-queries") {
    queries = std::make_unique<Queries>(Queries::Sources{
        .host = host,
        .profile = profile,
        .admission = *admission,
        .failures = *failures,
        .vdpa = *vdpa,
        .claims = *claims,
        .traffic = *traffic,
        .store = *store,
        .derived_refs = derived_refs,
        .planner = planner,
        .applier = applier,
        .learned = learned,
        .software_path = nullptr,
        .nic = nullptr,
        .vdpa_backend = nullptr,
        .routes = nullptr,
        .counters = counters,
        .vf_macs = vf_macs,
        .sw_objects = sw_objects,
        .last_pass_summary = last_pass_summary,
        .full_pass_running = [this] { return full_pass_running; },
        .now = [this] { return now; },
        .started = started,
    });
  }

  void addPort(int i) {
    auto r = admission->portAdd({{"port", port(i)}});
    ASSERT_TRUE(r.ok()) << r.error().describe();
  }
  void addRemote(const std::string& address, const std::string& origin = "") {
    if (origin.empty()) {
      auto r = admission->remoteAdd({{"remote", {{"address", address + "/32"}}}});
      ASSERT_TRUE(r.ok()) << r.error().describe();
      return;
    }
    json list = json::array();
    for (const auto& r : admission->intent().remotes)
      if (r.origin == origin) list.push_back({{"address", r.address.str() + "/32"}});
    list.push_back({{"address", address + "/32"}});
    auto r = admission->remoteSync({{"origin", origin}, {"remotes", list}});
    ASSERT_TRUE(r.ok()) << r.error().describe();
  }
  // The whole plan onto the simulated NIC, as a full pass would place it.
  void applyAll() {
    const auto rules = queries->plannedRules(0, SIZE_MAX);
    applier->apply(rules);
  }
  const model::Port& portOf(int i) const {
    return *admission->findPort({port(i)["vm"].get<std::string>(), 0});
  }
};

TEST(Queries, APortsStatusJoinsItsPlanWithThePlacementsAndItsOwnFailures) {
  Fixture f;
  f.addPort(1);
  f.addPort(2);
  auto r = f.queries->readPortGet(request("port.get", {{"vm", port(1)["vm"]}, {"nic", 0}}));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ((*r)["rules"]["list"].size(), 5u) << "arp trap, allow, 2 drops, delivery";
  EXPECT_EQ((*r)["state"], "installed");
  EXPECT_TRUE((*r)["traffic"].is_null()) << "no sweep yet";
  EXPECT_FALSE(r->contains("tentative"));

  f.applyAll();
  r = f.queries->readPortGet(request("port.get", {{"vm", port(1)["vm"]}, {"nic", 0}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)["rules"]["hw"].get<int>() + (*r)["rules"]["sw"].get<int>(), 5);
  EXPECT_EQ((*r)["rules"]["device_refusals"], 0);
  EXPECT_EQ((*r)["port"]["vm"], port(1)["vm"]);

  // Failures: the kernel objects that name its representor (not rep10's),
  // and its VF.
  const auto vf = f.portOf(1).vf;
  ASSERT_TRUE(vf);
  const Error busy = makeError(ErrorCode::kBusy, "route", "", "the kernel was busy");
  f.failures->failed(FailureBook::Kind::kKernel, "route 10.0.1.1/32 dev rep1 table 254", busy,
                     f.now);
  f.failures->failed(FailureBook::Kind::kKernel, "route 10.0.9.1/32 dev rep10 table 254", busy,
                     f.now);
  f.failures->failed(FailureBook::Kind::kDevice, "vf " + std::to_string(*vf), busy, f.now);
  r = f.queries->readPortGet(request("port.get", {{"vm", port(1)["vm"]}, {"nic", 0}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)["state"], "degraded");
  ASSERT_EQ((*r)["software_path_failures"].size(), 2u) << r->dump(1);
  EXPECT_EQ((*r)["software_path_failures"][0]["object"], "route 10.0.1.1/32 dev rep1 table 254");
  EXPECT_EQ((*r)["software_path_failures"][1]["object"], "vf " + std::to_string(*vf));
  EXPECT_EQ(f.queries->portJson(f.portOf(2), false)["state"], "installed");
  EXPECT_FALSE(f.queries->portJson(f.portOf(2), false)["rules"].contains("list"));

  // port.list: every port, or one VM's; without the rule lists.
  auto list = f.queries->readPortList(request("port.list", json::object()));
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);
  list = f.queries->readPortList(request("port.list", {{"vm", port(2)["vm"]}}));
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_FALSE((*list)[0]["rules"].contains("list"));

  auto missing = f.queries->readPortGet(request("port.get", {{"vm", port(7)["vm"]}, {"nic", 0}}));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(
      f.queries->readPortGet(request("port.get", {{"vm", port(1)["vm"]}, {"nic", 0}, {"extra", 1}}))
          .ok());
}

TEST(Queries, RulesAndRemotesReadInPagesInAStableOrder) {
  Fixture f;
  f.addPort(1);
  f.addRemote("10.20.0.1");
  f.addRemote("10.20.0.2", "ctl");
  f.addRemote("10.20.0.3", "ctl");
  const std::size_t total = f.queries->plannedRuleCount();
  EXPECT_EQ(total, f.queries->plannedRules(0, SIZE_MAX).size());
  EXPECT_GE(total, 5u + 3u) << "a port's five, the remotes' three, the host's";

  auto all = f.queries->readRules(request("rules", json::object()));
  ASSERT_TRUE(all.ok());
  ASSERT_TRUE(all->is_array()) << "unpaginated: the list itself";
  ASSERT_EQ(all->size(), total);
  EXPECT_EQ((*all)[total - 1]["class"], "routed-egress") << "remotes last";

  auto page = f.queries->readRules(request("rules", {{"offset", 3}, {"limit", 4}}));
  ASSERT_TRUE(page.ok());
  ASSERT_EQ((*page)["rules"].size(), 4u);
  EXPECT_EQ((*page)["rules"][0], (*all)[3]);
  EXPECT_EQ((*page)["next"], 7);
  EXPECT_EQ((*page)["total"], total);
  page = f.queries->readRules(request("rules", {{"offset", total - 1}, {"limit", 4}}));
  ASSERT_TRUE(page.ok());
  EXPECT_EQ((*page)["rules"].size(), 1u);
  EXPECT_TRUE((*page)["next"].is_null()) << "the last page";

  auto remotes = f.queries->readRemoteList(request("remote.list", {{"offset", 1}, {"limit", 1}}));
  ASSERT_TRUE(remotes.ok());
  EXPECT_EQ((*remotes)["total"], 3);
  ASSERT_EQ((*remotes)["remotes"].size(), 1u);
  EXPECT_EQ((*remotes)["next"], 2);
  auto ctl = f.queries->readRemoteList(
      request("remote.list", {{"origin", "ctl"}, {"offset", 0}, {"limit", 10}}));
  ASSERT_TRUE(ctl.ok());
  EXPECT_EQ((*ctl)["total"], 2) << "an origin's own count";
  EXPECT_EQ((*ctl)["remotes"][0]["origin"], "ctl");
  auto refused = f.queries->readRemoteList(request("remote.list", {{"refused", true}}));
  EXPECT_TRUE(refused.ok()) << "no route watcher: an empty refused list";
}

TEST(Queries, ExplainFindsAnAppliedRuleThroughItsOwner) {
  Fixture f;
  f.addPort(1);
  f.addRemote("10.20.0.1");
  auto all = f.queries->readRules(request("rules", json::object()));
  ASSERT_TRUE(all.ok());
  const std::string id = all->back()["id"];
  auto before = f.queries->readExplain(request("explain", {{"rule", id}}));
  ASSERT_FALSE(before.ok());
  EXPECT_EQ(before.error().code, ErrorCode::kNotFound) << "planned, not applied yet";

  f.applyAll();
  auto r = f.queries->readExplain(request("explain", {{"rule", id}}));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ((*r)["rule"]["class"], "routed-egress");
  EXPECT_TRUE((*r)["explanation"].is_string() || (*r)["explanation"].is_array());
  EXPECT_FALSE((*r)["testpmd"].empty());
  EXPECT_FALSE(r->contains("route")) << "no learned routes";

  auto bad = f.queries->readExplain(request("explain", {{"rule", "not-a-rule"}}));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidValue);
}

TEST(Queries, StatusAndCountersShowTheSourcesAsTheyAre) {
  Fixture f;
  f.addPort(1);
  f.applyAll();
  f.counters.sw_ops = 7;
  f.counters.retries = 2;
  f.sw_objects = 11;
  f.vf_macs[0] = *MacAddr::parse("52:54:00:00:00:01");
  f.now += milliseconds(5000);

  auto s = f.queries->readStatus(request("status", json::object()));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)["ports"], 1);
  EXPECT_EQ((*s)["ports_degraded"], 0);
  EXPECT_EQ((*s)["ports_tentative"]["held"], 0);
  EXPECT_EQ((*s)["backends"]["software_path"], "none");
  EXPECT_EQ((*s)["software_path"]["objects"], 11);
  EXPECT_EQ((*s)["last_pass"], "full pass: nothing to do");
  EXPECT_EQ((*s)["full_pass_running"], false);
  EXPECT_EQ((*s)["uptime_s"], 5);
  EXPECT_EQ((*s)["routes"]["enabled"], false);
  EXPECT_EQ((*s)["vfs"]["assigned"], 1);
  f.full_pass_running = true;
  f.last_pass_summary = "incremental pass: rules hw 5";
  s = f.queries->readStatus(request("status", json::object()));
  EXPECT_EQ((*s)["full_pass_running"], true);
  EXPECT_EQ((*s)["last_pass"], "incremental pass: rules hw 5");
  EXPECT_FALSE(f.queries->readStatus(request("status", {{"verbose", true}})).ok())
      << "status takes no field";

  auto c = f.queries->readCounters(request("counters", json::object()));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)["software_path"]["operations"], 7);
  EXPECT_EQ((*c)["controller"]["retries"], 2);
  EXPECT_EQ((*c)["nic"]["managed"], false);
  EXPECT_EQ((*c)["nic"]["vf_macs_set"], 1);
  EXPECT_EQ((*c)["vdpa"]["backend"], "none");
  EXPECT_EQ(
      (*c)["flow"]["rules_hw"].get<std::uint64_t>() + (*c)["flow"]["rules_sw"].get<std::uint64_t>(),
      f.queries->plannedRuleCount());
}

}  // namespace
}  // namespace nicoffload::daemon
