#include "nicoffload/hooks/hook.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "fixtures.h"
#include "nicoffload/hooks/domain.h"

namespace nicoffload::hooks {
namespace {

using nlohmann::json;
using testing::domainXml;
using testing::kUuid;
using testing::twoPorts;

// A fake nicoffloadd: records requests; port.add/remove/list over a map;
// a per-request hook decides refusals, outages and degraded ports.
class FakeDaemon : public DaemonClient {
 public:
  std::vector<json> requests;
  std::map<std::pair<std::string, int>, json> ports;
  std::function<std::optional<DaemonReply>(const json&)> intercept;
  bool down = false;

  DaemonReply call(const json& request) override {
    requests.push_back(request);
    if (down)
      return DaemonReply::unavailable(
          makeError(ErrorCode::kNotFound, "socket", "/x", "nicoffloadd is not running"));
    if (intercept)
      if (auto r = intercept(request)) return *r;
    const std::string op = request["op"];
    if (op == "port.add") {
      json p = request["port"];
      if (!p.contains("vf")) p["vf"] = static_cast<int>(ports.size());
      ports[{p["vm"], p["nic"]}] = p;
      return DaemonReply::ok(
          {{"port", p}, {"changed", true}, {"status", {{"state", "installed"}}}});
    }
    if (op == "port.remove") {
      const bool removed = ports.erase({request["vm"], request["nic"]}) > 0;
      return DaemonReply::ok({{"removed", removed}});
    }
    if (op == "port.list") {  // as nicoffloadd: an optional "vm" filter
      json out = json::array();
      for (const auto& [k, p] : ports)
        if (!request.contains("vm") || request["vm"] == k.first)
          out.push_back({{"port", p}, {"state", "installed"}});
      return DaemonReply::ok(out);
    }
    return DaemonReply::refused(makeError(ErrorCode::kInvalidValue, "op", op, "unknown op"));
  }

  std::vector<std::string> ops() const {
    std::vector<std::string> out;
    for (const auto& r : requests) out.push_back(r["op"]);
    return out;
  }
};

Invocation inv(const char* op, const char* sub) {
  return *parseArgv({"hook", "vm-web-1", op, sub, "-"});
}

Result<HookConfig> config(DaemonDownPolicy policy = DaemonDownPolicy::kFail) {
  HookConfig c;
  c.on_daemon_down = policy;
  return c;
}

int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

TEST(Hook, PrepareAddsEveryPortAndStartConfirms) {
  FakeDaemon d;
  auto out = runHook(inv("prepare", "begin"), domainXml(twoPorts()), config(), d);
  EXPECT_EQ(out.exit_code, 0) << out.err;
  EXPECT_EQ(out.err, "");
  EXPECT_EQ(out.out, "");
  ASSERT_EQ(d.ops(), (std::vector<std::string>{"port.add", "port.add"}));
  EXPECT_EQ(d.requests[0]["port"]["vm"], kUuid);
  EXPECT_EQ(d.requests[0]["port"]["nic"], 3);
  EXPECT_EQ(d.requests[0]["port"]["representor"], "nfotap4");
  EXPECT_EQ(d.requests[0]["port"]["vni"], 100);
  EXPECT_EQ(d.requests[1]["port"]["vf"], 3);
  EXPECT_EQ(d.ports.size(), 2u);
  for (const char* op : {"start", "started"}) {
    d.requests.clear();
    auto s = runHook(inv(op, "begin"), domainXml(twoPorts()), config(), d);
    EXPECT_EQ(s.exit_code, 0) << op << s.err;
    EXPECT_EQ(d.ops(), (std::vector<std::string>{"port.add", "port.add"})) << op;
  }
  EXPECT_EQ(d.ports.size(), 2u);
}

TEST(Hook, DomainsWithoutMetadataAreLeftAlone) {
  for (const char* op :
       {"prepare", "start", "started", "migrate", "restore", "reconnect", "attach"}) {
    FakeDaemon d;
    auto out = runHook(inv(op, "begin"), domainXml(""), config(), d);
    EXPECT_EQ(out.exit_code, 0) << op;
    EXPECT_TRUE(d.requests.empty()) << op;
    EXPECT_EQ(out.out, "") << op;  // a filter with empty output keeps the XML
    EXPECT_EQ(out.err, "") << op;
  }
  for (const char* op : {"stopped", "release"}) {
    FakeDaemon d;
    auto out = runHook(inv(op, "end"), domainXml(""), config(), d);
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_TRUE(d.requests.empty()) << op;
  }
  // Malformed XML that does not name our namespace is not ours either.
  FakeDaemon d;
  EXPECT_EQ(runHook(inv("prepare", "begin"), "<domain><uuid>", config(), d).exit_code, 0);
  EXPECT_TRUE(d.requests.empty());
}

TEST(Hook, UnhandledOperationsDoNothing) {
  FakeDaemon d;
  for (auto [op, sub] :
       {std::pair{"prepare", "end"}, {"shutdown", "begin"}, {"stopped", "begin"}}) {
    auto out = runHook(inv(op, sub), domainXml(twoPorts()), config(), d);
    EXPECT_EQ(out.exit_code, 0);
  }
  EXPECT_TRUE(d.requests.empty());
}

TEST(Hook, RefusedPortFailsPrepareWithOneLineAndLeavesNothingBehind) {
  FakeDaemon d;
  d.intercept = [](const json& r) -> std::optional<DaemonReply> {
    if (r["op"] == "port.add" && r["port"]["nic"] == 0)
      return DaemonReply::refused(makeError(ErrorCode::kDuplicate, "port.addresses[0]", "10.0.0.1",
                                            "10.0.0.1 is already used by port 0000/0"));
    return std::nullopt;
  };
  auto out = runHook(inv("prepare", "begin"), domainXml(twoPorts()), config(), d);
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_EQ(lines(out.err), 1) << out.err;
  EXPECT_EQ(out.err.rfind("nicoffload: vm-web-1: ", 0), 0u) << out.err;
  EXPECT_NE(out.err.find("52:54:00:aa:00:01"), std::string::npos) << out.err;
  EXPECT_NE(out.err.find("already used"), std::string::npos) << out.err;
  EXPECT_EQ(d.ops(), (std::vector<std::string>{"port.add", "port.add", "port.remove"}));
  EXPECT_EQ(d.requests[2]["nic"], 3);  // the first port, added then undone
  EXPECT_TRUE(d.ports.empty());
}

TEST(Hook, BadMetadataFailsStartButNeverCleanup) {
  const std::string bad = domainXml(
      "<nfo:ports xmlns:nfo='http://nicoffload.org/xmlns/ports/1'><nfo:port "
      "mac='52:54:00:aa:00:04' vni='x'>"
      "<nfo:address>10.0.0.4</nfo:address></nfo:port></nfo:ports>");
  FakeDaemon d;
  auto out = runHook(inv("prepare", "begin"), bad, config(), d);
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_EQ(lines(out.err), 1);
  EXPECT_NE(out.err.find("nfo:port[0].vni"), std::string::npos) << out.err;
  EXPECT_TRUE(d.requests.empty());
  // On release the hook still removes what nicoffloadd holds for the UUID.
  d.ports[{kUuid, 3}] = json{{"vm", kUuid}, {"nic", 3}};
  const std::string other = "0f0e0d0c-0b0a-4908-8706-050403020100";
  d.ports[{other, 0}] = json{{"vm", other}, {"nic", 0}};
  d.requests.clear();
  auto rel = runHook(inv("release", "end"), bad, config(), d);
  EXPECT_EQ(rel.exit_code, 0);
  ASSERT_FALSE(d.requests.empty());
  EXPECT_EQ(d.requests[0], (json{{"op", "port.list"}, {"vm", kUuid}})) << "only this domain's ports are listed";
  EXPECT_EQ(d.ports.size(), 1u) << "another domain's port stays";
  EXPECT_TRUE(d.ports.count({other, 0}));
  auto mal = runHook(inv("prepare", "begin"),
                     "<domain xmlns:nfo='http://nicoffload.org/xmlns/ports/1'>", config(), d);
  EXPECT_EQ(mal.exit_code, 1);
  EXPECT_NE(mal.err.find("not well-formed"), std::string::npos) << mal.err;
}

TEST(Hook, DaemonDownPolicy) {
  FakeDaemon d;
  d.down = true;
  auto fail =
      runHook(inv("prepare", "begin"), domainXml(twoPorts()), config(DaemonDownPolicy::kFail), d);
  EXPECT_EQ(fail.exit_code, 1);
  EXPECT_EQ(lines(fail.err), 1);
  EXPECT_NE(fail.err.find("nicoffloadd unavailable"), std::string::npos) << fail.err;
  EXPECT_NE(fail.err.find("on_daemon_down=fail"), std::string::npos) << fail.err;
  auto allow =
      runHook(inv("prepare", "begin"), domainXml(twoPorts()), config(DaemonDownPolicy::kAllow), d);
  EXPECT_EQ(allow.exit_code, 0);
  EXPECT_NE(allow.err.find("without offload"), std::string::npos) << allow.err;
  auto mig =
      runHook(inv("migrate", "begin"), domainXml(twoPorts()), config(DaemonDownPolicy::kAllow), d);
  EXPECT_EQ(mig.exit_code, 0);
  EXPECT_EQ(mig.out, "");  // XML unchanged
  // Cleanup and reconnect never fail because the daemon is down.
  for (auto [op, sub] : {std::pair{"stopped", "end"},
                         {"release", "end"},
                         {"reconnect", "begin"},
                         {"attach", "begin"}}) {
    auto out = runHook(inv(op, sub), domainXml(twoPorts()), config(DaemonDownPolicy::kFail), d);
    EXPECT_EQ(out.exit_code, 0) << op;
    EXPECT_NE(out.err.find("unavailable"), std::string::npos) << op;
  }
}

TEST(Hook, StoppedAndReleaseRemoveEveryPortOfTheDomainIdempotently) {
  FakeDaemon d;
  ASSERT_EQ(runHook(inv("prepare", "begin"), domainXml(twoPorts()), config(), d).exit_code, 0);
  d.ports[{kUuid, 7}] = json{{"vm", kUuid}, {"nic", 7}};  // hot-unplugged since; still the domain's
  const std::string other = "00000000-0000-4000-8000-000000000001";
  d.ports[{other, 0}] = json{{"vm", other}, {"nic", 0}};
  auto out = runHook(inv("stopped", "end"), domainXml(twoPorts()), config(), d);
  EXPECT_EQ(out.exit_code, 0) << out.err;
  ASSERT_EQ(d.ports.size(), 1u);
  EXPECT_EQ(d.ports.begin()->first.first, other);
  for (int i = 0; i < 2; ++i) {  // release, twice
    auto rel = runHook(inv("release", "end"), domainXml(twoPorts()), config(), d);
    EXPECT_EQ(rel.exit_code, 0);
    EXPECT_EQ(rel.err, "");
  }
  EXPECT_EQ(d.ports.size(), 1u);
  // A refusal during cleanup is reported, never fatal.
  d.intercept = [](const json& r) -> std::optional<DaemonReply> {
    if (r["op"] == "port.remove")
      return DaemonReply::refused(makeError(ErrorCode::kBusy, "port", "", "busy"));
    return std::nullopt;
  };
  auto busy = runHook(inv("release", "end"), domainXml(twoPorts()), config(), d);
  EXPECT_EQ(busy.exit_code, 0);
  EXPECT_NE(busy.err.find("warning"), std::string::npos);
}

TEST(Hook, ReconnectToleratesDegradedButNotRefusedPorts) {
  FakeDaemon d;
  d.intercept = [](const json& r) -> std::optional<DaemonReply> {
    if (r["op"] == "port.add")
      return DaemonReply::ok({{"port", r["port"]}, {"status", {{"state", "degraded"}}}});
    return std::nullopt;
  };
  auto degraded = runHook(inv("reconnect", "begin"), domainXml(twoPorts()), config(), d);
  EXPECT_EQ(degraded.exit_code, 0);
  EXPECT_NE(degraded.err.find("degraded"), std::string::npos);
  d.intercept = [](const json& r) -> std::optional<DaemonReply> {
    if (r["op"] == "port.add")
      return DaemonReply::refused(
          makeError(ErrorCode::kDuplicate, "port.mac", "", "MAC used by another port"));
    return std::nullopt;
  };
  auto refused = runHook(inv("reconnect", "begin"), domainXml(twoPorts()), config(), d);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_EQ(lines(refused.err), 1);
  // No undo on reconnect: the VM runs and keeps whatever it has.
  for (const auto& r : d.requests) EXPECT_NE(r["op"], "port.remove");
}

TEST(Hook, MigrateAndRestorePrepareAndPrintTheRewrittenXml) {
  for (const char* op : {"migrate", "restore"}) {
    FakeDaemon d;
    d.intercept = [](const json& r) -> std::optional<DaemonReply> {
      if (r["op"] != "port.add") return std::nullopt;
      json p = r["port"];
      if (p["nic"] == 3) p["representor"] = "nfotap4";
      json status = {{"state", "installed"}, {"devices", json::object()}};
      // As nicoffloadd reports a port's vDPA device.
      if (p["nic"] == 0) status["devices"]["vdpa"] = {{"name", "nfo0123456789ab"}, {"path", "/dev/vhost-vdpa-5"}};
      return DaemonReply::ok({{"port", p}, {"status", status}});
    };
    const std::string in = domainXml(twoPorts());
    auto out = runHook(inv(op, "begin"), in, config(), d);
    ASSERT_EQ(out.exit_code, 0) << op << out.err;
    EXPECT_EQ(d.ops(), (std::vector<std::string>{"port.add", "port.add"}));
    auto parsed = parseDomainXml(out.out);
    ASSERT_TRUE(parsed) << out.out;
    EXPECT_EQ(parsed->interfaces[0].source_dev, "/dev/vhost-vdpa-5");
    EXPECT_EQ(parsed->interfaces[3].target_dev, "nfotap4");
    EXPECT_EQ(parsed->ports.size(), 2u);
  }
  FakeDaemon d;
  d.intercept = [](const json& r) -> std::optional<DaemonReply> {
    if (r["op"] == "port.add" && r["port"]["nic"] == 0)
      return DaemonReply::refused(makeError(ErrorCode::kTableFull, "port.vf", "", "no free VF"));
    return std::nullopt;
  };
  auto out = runHook(inv("migrate", "begin"), domainXml(twoPorts()), config(), d);
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_EQ(out.out, "");
  EXPECT_TRUE(d.ports.empty());  // the first port was undone
}

TEST(Hook, BadConfigFailsOnlyOurDomainsAndNeverCleanup) {
  Result<HookConfig> bad =
      makeError(ErrorCode::kUnknownField, "/etc/nicoffload/hook.json: sockt", "", "unknown key");
  FakeDaemon d;
  EXPECT_EQ(runHook(inv("prepare", "begin"), domainXml(""), bad, d).exit_code, 0);
  auto out = runHook(inv("prepare", "begin"), domainXml(twoPorts()), bad, d);
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_NE(out.err.find("bad hook config"), std::string::npos);
  EXPECT_NE(out.err.find("sockt"), std::string::npos);
  EXPECT_EQ(runHook(inv("release", "end"), domainXml(twoPorts()), bad, d).exit_code, 0);
  EXPECT_TRUE(d.requests.empty());
}

}  // namespace
}  // namespace nicoffload::hooks
