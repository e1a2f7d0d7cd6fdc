// BulkRequests on its own, over real parts (an Admission, a Reconciler on the
// simulated NIC in memory with the in-memory software path, a StateStore in
// a temp dir) and small fakes for what it asks the controller (answer_now
// records what it answered, waits_for_sync holds the remote mutations). A
// bulk request is held per connection, replies go out in request order, a
// remote.sync is admitted, persisted and applied in slices and rolled back
// whole when refused, a large `rules` read lists the owners as they were.
#include "nicoffload/daemon/bulk_requests.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <stdexcept>
#include <string>

#include "port_json.h"
#include "reconciler_parts.h"
#include "support/temp_dirs.h"

namespace nicoffload::daemon {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = Reconciler::Clock;

json request(const std::string& op, json fields = json::object()) {
  fields["op"] = op;
  return fields;
}

// `n` remotes 10.70.x.y/32; the entry at `bad_at` malformed.
json remotes(int n, int bad_at = -1) {
  json list = json::array();
  for (int i = 1; i <= n; ++i)
    list.push_back({{"address", i - 1 == bad_at ? std::string("10.99.0.300/32")
                                                : "10.70." + std::to_string(i / 250) + "." +
                                                      std::to_string(i % 250 + 1) + "/32"}});
  return list;
}

json sync(int n, int bad_at = -1) {
  return request("remote.sync", {{"origin", "bgp-ctl"}, {"remotes", remotes(n, bad_at)}});
}

struct Fixture : test_support::ReconcilerParts {
  std::unique_ptr<StateStore> store;
  std::unique_ptr<BulkRequests> bulk;

  // What the fakes saw.
  std::vector<std::vector<std::uint64_t>> answered;  // connections answered now, per call
  std::vector<std::string> internal_errors;
  int compactions = 0;
  int reinstates = 0;
  bool waits_for_sync_throws = false;

  explicit Fixture(std::size_t threshold = 16, std::size_t items_per_slice = 8)
      : ReconcilerParts([](model::HostConfig& h) {
          h.state_dir = testing::makeTempDir("nfo-bulk") + "/state";
        }) {
    store = std::make_unique<StateStore>(host.state_dir);
    bulk = std::make_unique<BulkRequests>(
        BulkRequests::Parts{.host = host,
                            .profile = profile,
                            .admission = *admission,
                            .reconciler = *reconciler,
                            .store = *store,
                            .counters = counters},
        BulkRequests::Seams{
            .answer_now =
                [this](const std::vector<control::Request>& batch) {
                  std::vector<std::uint64_t> connections;
                  std::vector<json> replies;
                  for (const auto& r : batch) {
                    connections.push_back(r.connection);
                    replies.push_back({{"ok", true}, {"result", {{"op", r.body["op"]}}}});
                  }
                  answered.push_back(std::move(connections));
                  return replies;
                },
            .waits_for_sync =
                [this](const json& r) {
                  if (waits_for_sync_throws) throw std::runtime_error("the op table broke");
                  const std::string op = r.value("op", "");
                  return op.rfind("remote.", 0) == 0 || op == "batch" || op == "reconcile";
                },
            .internal_error =
                [this](const json& r, const std::string& what) {
                  internal_errors.push_back(what);
                  return json{{"ok", false}, {"error", {{"code", "internal"}, {"op", r["op"]}}}};
                },
            .planned_rules = [this] { return plannedRules().size(); },
            .port_vnis = [] { return std::vector<std::uint32_t>{}; },
            .compact_state = [this] { ++compactions; },
            .reinstate_learned = [this] { ++reinstates; },
        },
        BulkRequests::Options{.threshold = threshold,
                              .items_per_slice = items_per_slice,
                              .slice_budget = milliseconds(1000)});
  }

  // The planned rules' ids in listing order: ports, the host's, remotes.
  std::vector<std::string> plannedRules() const {
    std::vector<std::string> ids;
    for (const auto& p : admission->intent().ports)
      if (auto r = reconciler->planner()->portRules(p))
        for (const auto& rule : *r) ids.push_back(flowrules::formatRuleId(rule.cls, rule.id));
    for (const auto& rule : reconciler->planner()->hostRules({}))
      ids.push_back(flowrules::formatRuleId(rule.cls, rule.id));
    for (const auto& r : admission->intent().remotes) {
      const auto rule = reconciler->planner()->remoteRule(r);
      ids.push_back(flowrules::formatRuleId(rule.cls, rule.id));
    }
    return ids;
  }

  // Admitted and reconciled as the controller's batch does.
  void addPort(int i) {
    admission->beginBatch();
    auto r = admission->portAdd({{"port", test_support::portJson(i)}});
    ASSERT_TRUE(r.ok()) << r.error().describe();
    reconciler->scheduleRetry(reconciler->reconcileTouched(), false);
    admission->log().undo.clear();
  }

  // Steps until nothing is pending; the late replies in order.
  std::vector<BulkRequests::LateReply> drain(std::size_t& steps) {
    std::vector<BulkRequests::LateReply> all;
    for (steps = 0; bulk->pending() && steps < 10000; ++steps)
      for (auto& r : bulk->step()) all.push_back(std::move(r));
    return all;
  }

  std::size_t persistedRemotes() const {
    StateStore again(host.state_dir);
    auto loaded = again.load();
    EXPECT_TRUE(loaded.ok()) << loaded.error().describe();
    return loaded.ok() ? loaded->remotes.size() : 0;
  }
};

TEST(BulkRequests, ABatchWithoutBulkRequestsIsAnsweredAtOnce) {
  Fixture f;
  auto replies = f.bulk->handle({{1, request("status"), 0}, {2, sync(3), 0}});
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0]["result"]["op"], "status");
  EXPECT_EQ(replies[1]["result"]["op"], "remote.sync");
  EXPECT_FALSE(f.bulk->pending());
  ASSERT_EQ(f.answered.size(), 1u);  // one batch, both requests
  EXPECT_EQ(f.answered[0], (std::vector<std::uint64_t>{1, 2}));
  EXPECT_TRUE(f.bulk->isBulk(sync(17)));
  EXPECT_FALSE(f.bulk->isBulk(sync(16)));
}

TEST(BulkRequests, RequestsAreHeldPerConnectionAndAnsweredInRequestOrder) {
  Fixture f;
  auto replies = f.bulk->handle({
      {1, sync(40), 0},
      {2, request("status"), 0},  // another client: now
      {3, request("remote.add", {{"remote", {{"address", "10.71.0.1/32"}}}}), 0},  // waits
      {1, request("status"), 0},  // behind its own connection's sync
      {3, request("status"), 0},  // behind its own connection's held remote.add
      {4, request("port.list"), 0},
  });
  ASSERT_EQ(replies.size(), 6u);
  EXPECT_TRUE(replies[0].is_null());
  EXPECT_EQ(replies[1]["result"]["op"], "status");
  EXPECT_TRUE(replies[2].is_null());
  EXPECT_TRUE(replies[3].is_null());
  EXPECT_TRUE(replies[4].is_null());
  EXPECT_EQ(replies[5]["result"]["op"], "port.list");
  ASSERT_EQ(f.answered.size(), 1u);
  EXPECT_EQ(f.answered[0], (std::vector<std::uint64_t>{2, 4}));
  EXPECT_TRUE(f.bulk->pending());
  EXPECT_TRUE(f.bulk->changesIntent());

  // A second bulk sync from another client waits for the first.
  EXPECT_TRUE(f.bulk->handle({{5, sync(20), 0}})[0].is_null());

  std::size_t steps = 0;
  const auto late = f.drain(steps);
  EXPECT_GT(steps, 5u);
  ASSERT_EQ(late.size(), 5u);
  EXPECT_EQ(late[0].connection, 1u);  // the sync
  EXPECT_TRUE(late[0].body["ok"]) << late[0].body.dump();
  EXPECT_EQ(late[0].body["result"]["added"], 40);
  EXPECT_EQ(late[1].connection, 3u);  // then what waited, in arrival order
  EXPECT_EQ(late[1].body["result"]["op"], "remote.add");
  EXPECT_EQ(late[2].connection, 1u);
  EXPECT_EQ(late[2].body["result"]["op"], "status");
  EXPECT_EQ(late[3].connection, 3u);
  EXPECT_EQ(late[3].body["result"]["op"], "status");
  EXPECT_EQ(late[4].connection, 5u);  // the second sync, after its own slices
  EXPECT_TRUE(late[4].body["ok"]) << late[4].body.dump();
  EXPECT_FALSE(f.bulk->changesIntent());
  // The held requests were answered together, once the first sync was over.
  ASSERT_EQ(f.answered.size(), 2u);
  EXPECT_EQ(f.answered[1], (std::vector<std::uint64_t>{3, 1, 3}));
}

TEST(BulkRequests, ASyncIsAdmittedPersistedAndAppliedInSlices) {
  Fixture f;
  const std::size_t rules_before = f.nic->size();
  ASSERT_TRUE(f.bulk->handle({{1, sync(40), 0}})[0].is_null());
  // Admitted in slices: after the first step, part of the list is in the
  // intent, nothing is on the device or on disk yet.
  EXPECT_TRUE(f.bulk->step().empty());
  EXPECT_EQ(f.admission->intent().remotes.size(), 8u);
  EXPECT_EQ(f.nic->size(), rules_before);
  EXPECT_EQ(f.counters.state_saves, 0u);

  std::size_t steps = 0;
  const auto late = f.drain(steps);
  ASSERT_EQ(late.size(), 1u);
  EXPECT_TRUE(late[0].body["ok"]) << late[0].body.dump();
  EXPECT_EQ(f.admission->intent().remotes.size(), 40u);
  EXPECT_EQ(f.nic->size(), rules_before + 40);  // a rule per remote
  EXPECT_EQ(f.counters.state_saves, 5u);        // a journal record per slice of 8
  EXPECT_EQ(f.persistedRemotes(), 40u);
  EXPECT_EQ(f.reinstates, 1);  // once, at the end
  EXPECT_TRUE(f.admission->log().undo.empty()) << "the job's log never leaks into the batch's";

  // A sync to a short list removes the rest in slices as well.
  ASSERT_TRUE(f.bulk->handle({{1, sync(2), 0}})[0].is_null());
  const auto removed = f.drain(steps);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0].body["result"]["removed"], 38) << removed[0].body.dump();
  EXPECT_EQ(f.admission->intent().remotes.size(), 2u);
  EXPECT_EQ(f.nic->size(), rules_before + 2);
  EXPECT_EQ(f.persistedRemotes(), 2u);
}

TEST(BulkRequests, ARefusedSyncRollsBackEverySliceAndPersistsNothing) {
  Fixture f;
  f.addPort(1);
  const std::size_t rules_before = f.nic->size();
  ASSERT_TRUE(f.bulk->handle({{1, sync(40, 30), 0}})[0].is_null());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(f.bulk->step().empty());
  EXPECT_EQ(f.admission->intent().remotes.size(), 24u);  // three slices admitted so far
  // A port request meanwhile is answered at once.
  EXPECT_FALSE(f.bulk->handle({{2, request("port.add"), 0}})[0].is_null());
  std::size_t steps = 0;
  const auto late = f.drain(steps);
  ASSERT_EQ(late.size(), 1u);
  EXPECT_FALSE(late[0].body["ok"]);
  EXPECT_EQ(late[0].body["error"]["field"], "remotes[30].address") << late[0].body.dump();
  EXPECT_EQ(f.admission->intent().remotes.size(), 0u);  // all or nothing
  EXPECT_EQ(f.admission->intent().ports.size(), 1u);
  EXPECT_EQ(f.nic->size(), rules_before);
  EXPECT_EQ(f.counters.requests_refused, 1u);
  EXPECT_EQ(f.counters.state_saves, 0u);
  EXPECT_EQ(f.persistedRemotes(), 0u);
  EXPECT_FALSE(f.bulk->pending());
}

TEST(BulkRequests, AFailedStateWriteIsTheReplyAndPutsTheRestBack) {
  Fixture f;
  // The state directory cannot be made: a file stands where it goes.
  std::ofstream(f.host.state_dir) << "not a directory";
  ASSERT_TRUE(f.bulk->handle({{1, sync(40), 0}})[0].is_null());
  std::size_t steps = 0;
  const auto late = f.drain(steps);
  ASSERT_EQ(late.size(), 1u);
  EXPECT_FALSE(late[0].body["ok"]);
  const std::string message = late[0].body["error"]["message"];
  EXPECT_NE(message.find("0 of its 40 changes were persisted"), std::string::npos) << message;
  EXPECT_EQ(f.admission->intent().remotes.size(), 0u);
  EXPECT_EQ(f.counters.state_save_failures, 1u);
  EXPECT_EQ(f.reinstates, 0);
  EXPECT_TRUE(f.admission->log().undo.empty());
}

TEST(BulkRequests, ALargeRulesReadListsTheOwnersAsTheyWereInSlices) {
  Fixture f;
  f.addPort(1);
  ASSERT_TRUE(f.bulk->handle({{1, sync(30), 0}})[0].is_null());
  std::size_t steps = 0;
  f.drain(steps);
  const auto expected = f.plannedRules();
  ASSERT_GT(expected.size(), 16u);
  ASSERT_TRUE(f.bulk->isBulk(request("rules")));
  EXPECT_FALSE(f.bulk->isBulk(request("rules", {{"offset", 0}, {"limit", 16}})));

  auto replies = f.bulk->handle({{1, request("rules"), 0}, {2, request("status"), 0}});
  EXPECT_TRUE(replies[0].is_null());
  EXPECT_FALSE(replies[1].is_null());
  EXPECT_FALSE(f.bulk->changesIntent());
  // A port added after the read arrived is not in its listing.
  f.addPort(2);
  const auto late = f.drain(steps);
  EXPECT_GT(steps, 2u);
  ASSERT_EQ(late.size(), 1u);
  ASSERT_FALSE(late[0].text.empty());
  EXPECT_EQ(late[0].text.back(), '\n');
  const json reply = json::parse(late[0].text);
  ASSERT_TRUE(reply["ok"]);
  ASSERT_EQ(reply["result"].size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(reply["result"][i]["id"], expected[i]) << i;

  // A page larger than the threshold: bulk too, with its "next" and "total".
  f.bulk->handle({{1, request("rules", {{"offset", 4}, {"limit", 20}}), 0}});
  const auto paged = f.drain(steps);
  ASSERT_EQ(paged.size(), 1u);
  const json page = json::parse(paged[0].text);
  EXPECT_EQ(page["result"]["rules"].size(), 20u);
  EXPECT_EQ(page["result"]["next"], 24);
  EXPECT_EQ(page["result"]["total"], f.plannedRules().size());
}

TEST(BulkRequests, ARefusedRulesReadIsAnsweredAtTheNextStep) {
  Fixture f;
  f.addPort(1);
  ASSERT_TRUE(f.bulk->handle({{1, sync(30), 0}})[0].is_null());
  std::size_t steps = 0;
  f.drain(steps);
  auto replies = f.bulk->handle({{7, request("rules", {{"testpmd", "yes"}}), 0}});
  EXPECT_TRUE(replies[0].is_null());
  EXPECT_TRUE(f.bulk->pending());
  const auto late = f.bulk->step();
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0].connection, 7u);
  EXPECT_FALSE(late[0].body["ok"]);
  EXPECT_EQ(late[0].body["error"]["field"], "testpmd") << late[0].body.dump();
  EXPECT_FALSE(f.bulk->pending());
}

TEST(BulkRequests, WhenSortingThrowsEveryRequestNotTakenIsAnsweredAsAnInternalError) {
  Fixture f;
  ASSERT_TRUE(f.bulk->handle({{1, sync(40), 0}})[0].is_null());
  f.waits_for_sync_throws = true;  // asked of every request while the sync is in flight
  auto replies = f.bulk->handle({{2, request("status"), 0}, {1, request("status"), 0}});
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0]["error"]["code"], "internal");
  EXPECT_EQ(replies[0]["error"]["op"], "status");
  // Sorting stopped at the first: the rest of the batch was neither answered
  // nor taken, and is answered the same way.
  EXPECT_EQ(replies[1]["error"]["code"], "internal");
  ASSERT_EQ(f.internal_errors.size(), 2u);
  EXPECT_EQ(f.internal_errors[0], "the op table broke");
  f.waits_for_sync_throws = false;
  std::size_t steps = 0;
  const auto late = f.drain(steps);
  ASSERT_EQ(late.size(), 1u);  // the sync, which was taken before
  EXPECT_EQ(late[0].connection, 1u);
  EXPECT_TRUE(late[0].body["ok"]) << late[0].body.dump();
}

}  // namespace
}  // namespace nicoffload::daemon
