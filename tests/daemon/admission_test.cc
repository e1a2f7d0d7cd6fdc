// Admission on its own, with fakes for what it asks the daemon (Seams): the
// intent, its index and the VF pool change in place and come back exactly
// on rollback; the log holds the journal records and the touched owners;
// each mutation request is checked against the intent as it stands.
#include "nicoffload/daemon/admission.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace nicoffload::daemon {
namespace {

using nlohmann::json;

json port(int i, json extra = json::object()) {
  json p = {{"vm", "00000000-0000-4000-8000-00000000000" + std::to_string(i)},
            {"nic", 0},
            {"mac", "52:54:00:00:00:0" + std::to_string(i)},
            {"addresses", {"10.0." + std::to_string(i) + ".1/32"}},
            {"representor", "rep" + std::to_string(i)}};
  for (auto it = extra.begin(); it != extra.end(); ++it) p[it.key()] = it.value();
  return p;
}

json remote(const std::string& address) { return {{"address", address + "/32"}}; }

model::PortKey keyOf(int i) {
  return {"00000000-0000-4000-8000-00000000000" + std::to_string(i), 0};
}

struct Fixture {
  Status plans = Status::success();       // what the planner says of every port
  std::set<std::string> underlay;         // addresses the kernel shows as the underlay's
  std::int64_t clock_ms = 1'000'000;      // the claims' clock
  std::vector<std::int64_t> claims;       // note_claim's calls
  Admission admission;

  static model::HostConfig host() {
    model::HostConfig h;
    h.name = "hv-test";
    h.uplink_pci = "0000:03:00.0";
    h.uplink_netdev = "uplink0";
    h.vf_count = 4;
    h.gateway_ipv4 = *Ipv4Addr::parse("169.254.1.1");
    h.gateway_mac = *MacAddr::parse("ee:ee:ee:ee:ee:ee");
    h.uplink_mac = *MacAddr::parse("0c:42:a1:00:00:01");
    h.default_next_hop = *Ipv4Addr::parse("192.0.2.254");
    h.next_hops.push_back({*h.default_next_hop, *MacAddr::parse("0c:42:a1:ff:ff:fe")});
    h.tentative_ttl_ms = 60'000;
    return h;
  }

  Fixture()
      : admission(host(), Admission::Seams{
                              .port_plans = [this](const model::Port&) { return plans; },
                              .pool_ready = [](const model::Port&)
                                  -> const std::set<std::uint16_t>* { return nullptr; },
                              .claim_clock_ms = [this] { return clock_ms; },
                              .note_claim = [this](std::int64_t until) { claims.push_back(until); },
                              .underlay_use =
                                  [this](const IpAddr& a) {
                                    return underlay.count(a.str()) ? std::string("the underlay's")
                                                                   : std::string();
                                  },
                          }) {}

  json intentJson() const {
    json out = {{"ports", json::array()}, {"remotes", json::array()}};
    for (const auto& p : admission.intent().ports) out["ports"].push_back(model::toJson(p));
    for (const auto& r : admission.intent().remotes) out["remotes"].push_back(model::toJson(r));
    return out;
  }
};

TEST(Admission, PortAddTakesTheLowestFreeVfAndLogsIt) {
  Fixture f;
  auto r = f.admission.portAdd({{"port", port(1)}});
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ((*r)["changed"], true);
  ASSERT_EQ(f.admission.intent().ports.size(), 1u);
  EXPECT_EQ(f.admission.intent().ports[0].vf, std::optional<std::uint16_t>(0));
  EXPECT_EQ(f.admission.vfPool().assignedCount(), 1u);
  const auto& log = f.admission.log();
  EXPECT_EQ(log.journal.size(), 1u);
  EXPECT_EQ(log.mutations.size(), 1u);
  ASSERT_EQ(log.ports.count(keyOf(1)), 1u);
  EXPECT_FALSE(log.ports.at(keyOf(1))) << "it did not exist before the batch";

  // The same port again: unchanged, nothing logged.
  auto again = f.admission.portAdd({{"port", port(1)}});
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)["changed"], false);
  EXPECT_EQ(f.admission.log().journal.size(), 1u);
}

TEST(Admission, APortThePlannerRefusesLeavesNothingBehind) {
  Fixture f;
  f.plans = makeError(ErrorCode::kUnsupported, "port.vdpa", "dpdk", "the profile has no vDPA");
  auto r = f.admission.portAdd({{"port", port(1)}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "port.vdpa");
  EXPECT_TRUE(f.admission.intent().ports.empty());
  EXPECT_EQ(f.admission.vfPool().assignedCount(), 0u) << "the VF is given back";
  EXPECT_TRUE(f.admission.log().undo.empty());
}

TEST(Admission, RollbackRestoresIntentIndexAndVfPoolExactly) {
  Fixture f;
  ASSERT_TRUE(f.admission.portAdd({{"port", port(1)}}));
  ASSERT_TRUE(f.admission.portAdd({{"port", port(2)}}));
  for (const char* a : {"10.20.0.1", "10.20.0.2", "10.20.0.3"})
    ASSERT_TRUE(f.admission.remoteAdd({{"remote", remote(a)}}));
  const json before = f.intentJson();
  const auto mark = f.admission.marks();

  // Every primitive, then all undone.
  ASSERT_TRUE(f.admission.portRemove({{"vm", keyOf(1).vm}, {"nic", 0}}));
  ASSERT_TRUE(f.admission.portAdd({{"port", port(2, {{"addresses", {"10.0.2.9/32"}}})}}));
  ASSERT_TRUE(f.admission.remoteRemove({{"address", "10.20.0.1"}}));  // the last one moves into its place
  ASSERT_TRUE(f.admission.remoteAdd({{"remote", remote("10.20.0.9")}}));
  ASSERT_TRUE(f.admission.portAdd({{"port", port(3)}}));
  EXPECT_NE(f.intentJson(), before);
  f.admission.rollback(mark);

  EXPECT_EQ(f.intentJson(), before);
  EXPECT_EQ(f.admission.vfPool().assignedCount(), 2u);
  EXPECT_EQ(f.admission.marks().journal, mark.journal);
  // The index is back as well: the addresses the undone changes took are
  // free again, the ones they released are taken again.
  EXPECT_TRUE(f.admission.portAdd({{"port", port(4, {{"addresses", {"10.0.2.9/32"}}})}}));
  EXPECT_FALSE(f.admission.portAdd({{"port", port(5, {{"addresses", {"10.0.1.1/32"}}})}}))
      << "10.0.1.1 is port 1's again";
  EXPECT_EQ(f.admission.findRemote(*Ipv4Addr::parse("10.20.0.1"))->address.str(), "10.20.0.1");
}

TEST(Admission, RemoteSyncKeepsOtherOriginsAndRemovesWhatItNoLongerLists) {
  Fixture f;
  ASSERT_TRUE(f.admission.remoteAdd({{"remote", remote("10.20.0.1")}}));  // origin api
  f.underlay.insert("10.20.0.5");
  auto first = f.admission.remoteSync(
      {{"origin", "ctl"},
       {"remotes", {remote("10.20.0.1"), remote("10.20.0.2"), remote("10.20.0.3"), remote("10.20.0.5")}}});
  ASSERT_TRUE(first) << first.error().describe();
  EXPECT_EQ((*first)["added"], 2);
  EXPECT_EQ((*first)["conflict_count"], 2) << "api's address and the underlay's";
  EXPECT_EQ(f.admission.findRemote(*Ipv4Addr::parse("10.20.0.1"))->origin, "api");

  auto second = f.admission.remoteSync({{"origin", "ctl"}, {"remotes", {remote("10.20.0.3")}}});
  ASSERT_TRUE(second);
  EXPECT_EQ((*second)["removed"], 1);
  EXPECT_EQ((*second)["unchanged"], 1);
  EXPECT_EQ(f.admission.findRemote(*Ipv4Addr::parse("10.20.0.2")), nullptr);
  EXPECT_EQ(f.admission.intent().remotes.size(), 2u);

  // A malformed entry refuses the whole sync: nothing of it stays.
  const json before = f.intentJson();
  EXPECT_FALSE(f.admission.remoteSync(
      {{"origin", "ctl"}, {"remotes", {remote("10.20.0.7"), json{{"address", "nope"}}}}}));
  EXPECT_EQ(f.intentJson(), before);
}

TEST(Admission, ATentativePortExpiresByTheClaimsClock) {
  Fixture f;
  auto r = f.admission.portAdd({{"port", port(1)}, {"tentative", true}});
  ASSERT_TRUE(r) << r.error().describe();
  const auto until = f.clock_ms + 60'000;
  EXPECT_EQ(f.admission.findPort(keyOf(1))->tentative_until_ms, std::optional<std::int64_t>(until));
  EXPECT_EQ(f.claims, std::vector<std::int64_t>{until});
  // Confirmed by a port.add without "tentative": no expiry, no new claim.
  ASSERT_TRUE(f.admission.portAdd({{"port", port(1)}}));
  EXPECT_FALSE(f.admission.findPort(keyOf(1))->tentative_until_ms);
  EXPECT_EQ(f.claims.size(), 1u);
}

TEST(Admission, LoadIndexesThePersistedIntentAndRebuildsTheVfPool) {
  Fixture f;
  ASSERT_TRUE(f.admission.portAdd({{"port", port(1, {{"vf", 2}})}}));
  const auto ports = f.admission.intent().ports;
  Fixture g;
  ASSERT_TRUE(g.admission.load(ports, {}));
  EXPECT_EQ(g.admission.vfPool().assignedCount(), 1u);
  EXPECT_FALSE(g.admission.portAdd({{"port", port(2, {{"vf", 2}})}})) << "VF 2 is port 1's";
  EXPECT_FALSE(g.admission.load({ports[0], ports[0]}, {})) << "a port twice";
}

}  // namespace
}  // namespace nicoffload::daemon
