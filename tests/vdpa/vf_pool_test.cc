// The VF pool: assignment, stability, explicit VFs, exhaustion, release,
// sync against the port set, and the state-file JSON.
#include "nicoffload/model/vf_pool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace nicoffload::vdpa {
namespace {

using model::PortKey;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

constexpr const char* kPf = "0000:03:00.0";

PortKey key(int n, std::uint16_t nic = 0) {
  char vm[40];
  std::snprintf(vm, sizeof vm, "00000000-0000-4000-8000-%012d", n);
  return {vm, nic};
}

model::Port port(int n, std::optional<std::uint16_t> vf = std::nullopt) {
  model::Port p;
  p.key = key(n);
  p.vf = vf;
  return p;
}

TEST(VfPool, LowestFreeAndStable) {
  VfPool pool(kPf, 4);
  EXPECT_EQ(*pool.assign(key(1), std::nullopt), 0);
  EXPECT_EQ(*pool.assign(key(2), std::nullopt), 1);
  EXPECT_EQ(*pool.assign(key(3), std::nullopt), 2);
  EXPECT_EQ(*pool.assign(key(2), std::nullopt), 1) << "asking again gives the same VF";
  EXPECT_EQ(pool.release(key(1)), 0);
  EXPECT_EQ(pool.release(key(1)), std::nullopt) << "releasing twice is not an error";
  EXPECT_EQ(*pool.assign(key(4), std::nullopt), 0) << "the lowest free VF";
  EXPECT_EQ(*pool.assign(key(5), std::nullopt), 3);
  EXPECT_EQ(pool.freeCount(), 0u);
  EXPECT_EQ(pool.portOf(3), key(5));
  EXPECT_EQ(pool.vfOf(key(3)), 2);
  EXPECT_FALSE(pool.vfOf(key(1)).has_value());
}

// Issue 14: a port that names no VF and holds none takes a preferred VF
// (one whose warm vDPA device is ready) when one is free.
TEST(VfPool, PreferredVfsFirst) {
  VfPool pool(kPf, 8);
  const std::set<std::uint16_t> warm{5, 6};
  EXPECT_EQ(*pool.assign(key(1), std::nullopt, &warm), 5);
  EXPECT_EQ(*pool.assign(key(2), std::nullopt, &warm), 6);
  EXPECT_EQ(*pool.assign(key(3), std::nullopt, &warm), 0) << "none free: the lowest free VF";
  EXPECT_EQ(*pool.assign(key(1), std::nullopt, &warm), 5) << "a port keeps its VF";
  EXPECT_EQ(pool.assign(key(4), 6, &warm).error().code, ErrorCode::kDuplicate);
  EXPECT_EQ(*pool.assign(key(5), 2, &warm), 2) << "a port that names its VF gets it";
  const std::set<std::uint16_t> beyond{9};
  EXPECT_EQ(*pool.assign(key(6), std::nullopt, &beyond), 1) << "a VF past vf_count is skipped";
}

TEST(VfPool, ExhaustionNamesThePfAndTheCount) {
  VfPool pool(kPf, 8);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(pool.assign(key(i), std::nullopt).ok());
  auto r = pool.assign(key(99), std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kExhausted);
  EXPECT_THAT(r.error().message,
              HasSubstr("no free VF on PF 0000:03:00.0: all 8 VFs are assigned"));
  EXPECT_EQ(r.error().field, key(99).str() + ".vf");
  EXPECT_EQ(pool.assignedCount(), 8u) << "a refusal changes nothing";
}

TEST(VfPool, ExplicitVfs) {
  VfPool pool(kPf, 4);
  EXPECT_EQ(*pool.assign(key(1), 3), 3);
  EXPECT_EQ(*pool.assign(key(2), std::nullopt), 0);
  auto taken = pool.assign(key(3), 3);
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().code, ErrorCode::kDuplicate);
  EXPECT_THAT(taken.error().message,
              HasSubstr("VF 3 on PF 0000:03:00.0 is already assigned to port " + key(1).str()));
  auto beyond = pool.assign(key(3), 4);
  ASSERT_FALSE(beyond.ok());
  EXPECT_EQ(beyond.error().code, ErrorCode::kInvalidValue);
  EXPECT_THAT(beyond.error().message,
              HasSubstr("VF 4 does not exist on PF 0000:03:00.0: it has 4 VFs (0..3)"));
  EXPECT_EQ(*pool.assign(key(1), 2), 2) << "a port naming another VF moves to it";
  EXPECT_FALSE(pool.portOf(3).has_value());
  EXPECT_EQ(*pool.assign(key(3), 3), 3);
}

TEST(VfPool, SyncReleasesGonePortsAndPlacesExplicitOnesFirst) {
  VfPool pool(kPf, 4);
  ASSERT_TRUE(pool.assign(key(1), std::nullopt).ok());  // VF 0
  ASSERT_TRUE(pool.assign(key(2), std::nullopt).ok());  // VF 1
  // Port 2 is gone; port 3 names VF 1 and comes after port 4 in the list.
  auto ch = pool.sync({port(1), port(4), port(3, 1)});
  ASSERT_TRUE(ch.ok()) << ch.error().describe();
  EXPECT_THAT(ch->released, ElementsAre(Pair(key(2), 1)));
  EXPECT_THAT(ch->assigned, ElementsAre(Pair(key(3), 1), Pair(key(4), 2)));
  EXPECT_THAT(pool.assignments(), ElementsAre(Pair(0, key(1)), Pair(1, key(3)), Pair(2, key(4))));
  auto again = pool.sync({port(1), port(4), port(3, 1)});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->released.empty());
  EXPECT_TRUE(again->assigned.empty()) << "a re-sync of the same ports changes nothing";
}

TEST(VfPool, SyncIsAllOrNothing) {
  VfPool pool(kPf, 2);
  ASSERT_TRUE(pool.assign(key(1), std::nullopt).ok());
  auto r = pool.sync({port(1), port(2), port(3)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kExhausted);
  EXPECT_THAT(r.error().message, HasSubstr("all 2 VFs are assigned"));
  EXPECT_THAT(pool.assignments(), ElementsAre(Pair(0, key(1))));
}

TEST(VfPool, JsonRoundTrip) {
  VfPool pool(kPf, 8);
  ASSERT_TRUE(pool.assign(key(1, 1), 5).ok());
  ASSERT_TRUE(pool.assign(key(2), std::nullopt).ok());
  const auto doc = pool.toJson();
  EXPECT_EQ(doc["pf"], kPf);
  EXPECT_EQ(doc["vf_count"], 8);
  ASSERT_EQ(doc["assignments"].size(), 2u);
  EXPECT_EQ(doc["assignments"][0]["vf"], 0);
  EXPECT_EQ(doc["assignments"][1]["nic"], 1);
  auto back = VfPool::fromJson(nlohmann::json::parse(doc.dump()), kPf, 8);
  ASSERT_TRUE(back.ok()) << back.error().describe();
  EXPECT_EQ(back->assignments(), pool.assignments());
  EXPECT_EQ(*back->assign(key(3), std::nullopt), 1);
}

TEST(VfPool, JsonErrorsNameTheField) {
  VfPool pool(kPf, 8);
  ASSERT_TRUE(pool.assign(key(1), 6).ok());
  auto doc = pool.toJson();
  auto other_pf = VfPool::fromJson(doc, "0000:81:00.0", 8);
  ASSERT_FALSE(other_pf.ok());
  EXPECT_EQ(other_pf.error().code, ErrorCode::kConflict);
  EXPECT_THAT(other_pf.error().message,
              HasSubstr("is for PF 0000:03:00.0, but the host config names PF 0000:81:00.0"));
  auto shrunk = VfPool::fromJson(doc, kPf, 4);
  ASSERT_FALSE(shrunk.ok());
  EXPECT_EQ(shrunk.error().code, ErrorCode::kConflict);
  EXPECT_EQ(shrunk.error().field, "vf_pool.assignments[0].vf");
  EXPECT_THAT(shrunk.error().message,
              HasSubstr("holds VF 6 of PF 0000:03:00.0, but uplink.vf_count is now 4"));
  auto dup = doc;
  dup["assignments"].push_back(doc["assignments"][0]);
  auto d = VfPool::fromJson(dup, kPf, 8);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::kDuplicate);
  auto bad = doc;
  bad["assignments"][0]["vf"] = "six";
  auto b = VfPool::fromJson(bad, kPf, 8);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().field, "vf_pool.assignments[0].vf");
  auto missing = VfPool::fromJson(nlohmann::json::object({{"pf", kPf}}), kPf, 8);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kMissingField);
}

}  // namespace
}  // namespace nicoffload::vdpa
