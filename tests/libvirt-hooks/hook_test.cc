#include "nicoffload/hooks/hook.h"

#include <gtest/gtest.h>

#include <pugixml.hpp>

#include <functional>
#include <map>
#include <stdexcept>

#include "fixtures.h"
#include "nicoffload/common/text.h"
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
    // As the socket client does: a request JSON cannot carry (invalid
    // UTF-8) throws here, as it would in dump() before send().
    (void)request.dump();
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
  EXPECT_EQ(d.requests[0], (json{{"op", "port.list"}, {"vm", kUuid}}))
      << "only this domain's ports are listed";
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
  // libvirt kills a running VM whose reconnect hook fails: a refused port is
  // reported degraded, never fatal.
  EXPECT_EQ(refused.exit_code, 0);
  EXPECT_EQ(lines(refused.err), 2) << refused.err;  // one warning per port
  // No undo on reconnect: the VM runs and keeps whatever it has.
  for (const auto& r : d.requests) EXPECT_NE(r["op"], "port.remove");
}

// Each way nicoffloadd can turn a port down during reconnect/attach: the
// address is another domain's, no VF is free, the error reply could not be
// read (the socket client makes that a kInternal refusal).
TEST(Hook, ReconnectAndAttachNeverFailWhenNicoffloaddRefusesAPort) {
  const std::vector<Error> refusals = {
      makeError(ErrorCode::kDuplicate, "port.addresses[0]", "10.0.0.1",
                "10.0.0.1 is already used by port 0f0e0d0c-0b0a-4908-8706-050403020100/0"),
      makeError(ErrorCode::kTableFull, "port.vf", "", "no free VF"),
      makeError(ErrorCode::kInternal, "reply.ok", "\"yes\"",
                "nicoffloadd sent a reply the hook cannot read: must be true or false"),
  };
  for (const auto& refusal : refusals) {
    for (const char* op : {"reconnect", "attach"}) {
      FakeDaemon d;
      d.intercept = [&](const json& r) -> std::optional<DaemonReply> {
        if (r["op"] == "port.add" && r["port"]["nic"] == 0) return DaemonReply::refused(refusal);
        return std::nullopt;
      };
      auto out = runHook(inv(op, "begin"), domainXml(twoPorts()), config(), d);
      EXPECT_EQ(out.exit_code, 0) << op << ": " << out.err;
      ASSERT_EQ(lines(out.err), 1) << out.err;
      EXPECT_EQ(out.err.rfind("nicoffload: vm-web-1: warning: port 52:54:00:aa:00:01", 0), 0u)
          << out.err;
      EXPECT_NE(out.err.find("degraded"), std::string::npos) << out.err;
      EXPECT_NE(out.err.find(refusal.message.substr(0, 20)), std::string::npos) << out.err;
      EXPECT_EQ(d.ports.size(), 1u) << "the other port is re-asserted";
      for (const auto& r : d.requests) EXPECT_NE(r["op"], "port.remove") << op;
    }
  }
}

// Replies of a shape the hook does not expect, on every operation: a clear
// message (exit 1 where failing is allowed, a warning where it is not),
// never an exception (the hook used to abort with SIGABRT, exit 134).
TEST(Hook, RepliesOfAnUnexpectedShapeAreClearErrorsOnEveryOperation) {
  std::vector<json> add_results, list_results;
  for (const char* text :
       {R"([1, 2])", R"("yes")", "null", R"({"status": "degraded"})", R"({"port": []})",
        R"({"status": {"state": 1}})", R"({"port": {"vf": "3"}})",
        R"({"status": {"devices": {"vdpa": {"path": 5}}}})"})
    add_results.push_back(json::parse(text));
  for (const std::string& text :
       {std::string(R"({})"), std::string(R"("x")"), std::string(R"([[]])"),
        std::string(R"([{"port": "x"}])"),
        R"([{"port": {"vm": ")" + std::string(kUuid) + R"(", "nic": "3"}}])",
        std::string(R"([{"port": {"vm": 5, "nic": 3}}])")})
    list_results.push_back(json::parse(text));
  const std::pair<const char*, const char*> ops[] = {
      {"prepare", "begin"}, {"start", "begin"},   {"started", "begin"},
      {"migrate", "begin"}, {"restore", "begin"}, {"reconnect", "begin"},
      {"attach", "begin"},  {"stopped", "end"},   {"release", "end"}};
  for (std::size_t i = 0; i < std::max(add_results.size(), list_results.size()); ++i) {
    const json add_result = add_results[i % add_results.size()];
    const json list_result = list_results[i % list_results.size()];
    for (auto [op, sub] : ops) {
      FakeDaemon d;
      d.intercept = [&](const json& r) -> std::optional<DaemonReply> {
        if (r["op"] == "port.add") return DaemonReply::ok(add_result);
        if (r["op"] == "port.list") return DaemonReply::ok(list_result);
        return std::nullopt;
      };
      HookOutcome out;
      ASSERT_NO_THROW(out = runHook(inv(op, sub), domainXml(twoPorts()), config(), d))
          << op << " " << add_result.dump() << " " << list_result.dump();
      const std::string what = std::string(op) + " " + add_result.dump() + " " + list_result.dump();
      ASSERT_FALSE(out.err.empty()) << what;
      EXPECT_EQ(out.err.rfind("nicoffload: vm-web-1: ", 0), 0u) << what << ": " << out.err;
      EXPECT_NE(out.err.find("cannot be read"), std::string::npos) << what << ": " << out.err;
      if (mustNotFail(inv(op, sub).op)) {
        EXPECT_EQ(out.exit_code, 0) << what << ": " << out.err;
      } else {
        EXPECT_EQ(out.exit_code, 1) << what << ": " << out.err;
        EXPECT_EQ(lines(out.err), 1) << what << ": " << out.err;
        EXPECT_EQ(out.out, "") << what;
      }
    }
  }
  // prepare undoes what the daemon said it added, even when it said so oddly.
  FakeDaemon d;
  d.intercept = [](const json& r) -> std::optional<DaemonReply> {
    if (r["op"] == "port.add") return DaemonReply::ok(json::array());
    return std::nullopt;
  };
  ASSERT_EQ(runHook(inv("prepare", "begin"), domainXml(twoPorts()), config(), d).exit_code, 1);
  EXPECT_EQ(d.ops(),
            (std::vector<std::string>{"port.add", "port.add", "port.remove", "port.remove"}));
}

// Whatever a DaemonClient throws stops at runHook: "internal error" and the
// documented exit status.
TEST(Hook, ExceptionsNeverEscapeAndNeverFailTheMustNotFailOperations) {
  for (int kind = 0; kind < 3; ++kind) {
    const std::pair<const char*, const char*> ops[] = {{"prepare", "begin"},   {"migrate", "begin"},
                                                       {"reconnect", "begin"}, {"attach", "begin"},
                                                       {"stopped", "end"},     {"release", "end"}};
    for (auto [op, sub] : ops) {
      FakeDaemon d;
      d.intercept = [kind](const json&) -> std::optional<DaemonReply> {
        if (kind == 0) throw std::runtime_error("boom\nsecond line");
        if (kind == 1) throw 42;
        return DaemonReply::ok(json::parse("[1, 2, 3]").at(5));  // nlohmann's out_of_range
      };
      HookOutcome out;
      ASSERT_NO_THROW(out = runHook(inv(op, sub), domainXml(twoPorts()), config(), d)) << op;
      EXPECT_EQ(out.exit_code, mustNotFail(inv(op, sub).op) ? 0 : 1) << op << out.err;
      EXPECT_EQ(lines(out.err), 1) << op << ": " << out.err;
      EXPECT_EQ(out.err.rfind("nicoffload: vm-web-1: ", 0), 0u) << out.err;
      EXPECT_NE(out.err.find("internal error"), std::string::npos) << out.err;
      EXPECT_EQ(out.out, "") << op;
    }
  }
}

// Invalid UTF-8 from the domain XML never reaches a request (dump() would
// throw): prepare refuses it naming the field; the must-not-fail operations
// warn and exit 0.
TEST(Hook, InvalidUtf8InTheMetadataOrTheUuidIsRefusedNeverAborts) {
  const std::string bad_representor = domainXml(
      "<nfo:ports xmlns:nfo='http://nicoffload.org/xmlns/ports/1'>"
      "<nfo:port mac='52:54:00:aa:00:04' representor='rep\xff'>"
      "<nfo:address>10.0.0.4</nfo:address></nfo:port></nfo:ports>");
  const std::string bad_uuid = domainXml(twoPorts(), "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a\xff\xfe");
  for (const auto& [xml, field] :
       {std::pair{bad_representor, "nfo:port[0].representor"}, {bad_uuid, "uuid"}}) {
    FakeDaemon d;
    auto out = runHook(inv("prepare", "begin"), xml, config(), d);
    EXPECT_EQ(out.exit_code, 1) << out.err;
    EXPECT_EQ(lines(out.err), 1) << out.err;
    EXPECT_NE(out.err.find(field), std::string::npos) << out.err;
    EXPECT_NE(out.err.find("\\xff"), std::string::npos) << "the byte is shown escaped: " << out.err;
    EXPECT_TRUE(isValidUtf8(out.err)) << out.err;
    EXPECT_TRUE(d.requests.empty());
    for (auto [op, sub] : {std::pair{"reconnect", "begin"},
                           {"attach", "begin"},
                           {"stopped", "end"},
                           {"release", "end"}}) {
      auto o = runHook(inv(op, sub), xml, config(), d);
      EXPECT_EQ(o.exit_code, 0) << op << ": " << o.err;
      EXPECT_NE(o.err.find("warning: bad domain XML"), std::string::npos) << op << ": " << o.err;
      EXPECT_TRUE(isValidUtf8(o.err)) << o.err;
    }
  }
}

// The tap of an ethernet interface becomes the port's representor: it is
// checked like a representor in the metadata, so nicoffloadd never gets (and
// never has to refuse) a name it cannot take.
TEST(Hook, AnEthernetTargetDevThatIsNoInterfaceNameIsRefusedBeforeNicoffloadd) {
  std::string e60;
  for (int i = 0; i < 60; ++i) e60 += "\xc3\xa9";  // é
  std::string xml = domainXml(twoPorts());
  xml.replace(xml.find("nfotap4"), 7, e60);
  FakeDaemon d;
  auto out = runHook(inv("prepare", "begin"), xml, config(), d);
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_EQ(lines(out.err), 1) << out.err;
  EXPECT_NE(out.err.find("interface[3].target.dev"), std::string::npos) << out.err;
  EXPECT_NE(out.err.find("representor"), std::string::npos) << out.err;
  EXPECT_LT(out.err.size(), 1000u) << out.err;
  EXPECT_TRUE(d.requests.empty());
  auto rec = runHook(inv("reconnect", "begin"), xml, config(), d);
  EXPECT_EQ(rec.exit_code, 0) << rec.err;
}

// A port key's nic is 16 bits: interface 65 538 must not become nic 2.
TEST(Hook, APortBeyondInterface65535IsRefusedNotWrapped) {
  std::string devices;
  for (int i = 0; i < 65538; ++i) devices += "<interface type='user'/>";
  devices += "<interface type='ethernet'><mac address='52:54:00:bb:00:01'/></interface>";
  const std::string xml = std::string("<domain><name>vm-web-1</name><uuid>") + kUuid +
                          "</uuid><metadata><nfo:ports xmlns:nfo='" +
                          std::string(kMetadataNamespace) +
                          "'><nfo:port mac='52:54:00:bb:00:01'><nfo:address>10.0.0.9</nfo:address>"
                          "</nfo:port></nfo:ports></metadata><devices>" +
                          devices + "</devices></domain>";
  FakeDaemon d;
  auto out = runHook(inv("prepare", "begin"), xml, config(), d);
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_NE(out.err.find("interface 65538"), std::string::npos) << out.err;
  EXPECT_NE(out.err.find("0..65535"), std::string::npos) << out.err;
  EXPECT_TRUE(d.requests.empty()) << "no port.add with nic=2";
}

TEST(Hook, AMetadataNamespaceThatIsAlmostOursIsWarnedNotIgnoredInSilence) {
  for (const char* found :
       {"http://nicoffload.org/xmlns/ports/1/", "http://nicoffload.org/xmlns/ports/2",
        "HTTP://NICOFFLOAD.ORG/xmlns/ports/1", "https://nicoffload.org/xmlns/ports/1"}) {
    const std::string uri = found;
    const std::string xml =
        domainXml("<nfo:ports xmlns:nfo='" + uri +
                  "'><nfo:port mac='52:54:00:aa:00:04'><nfo:address>10.0.0.4</nfo:address>"
                  "</nfo:port></nfo:ports>");
    FakeDaemon d;
    auto out = runHook(inv("prepare", "begin"), xml, config(), d);
    EXPECT_EQ(out.exit_code, 0) << uri;
    EXPECT_TRUE(d.requests.empty()) << uri;
    ASSERT_EQ(lines(out.err), 1) << uri << ": " << out.err;
    EXPECT_EQ(out.err.rfind("nicoffload: vm-web-1: warning: ", 0), 0u) << out.err;
    EXPECT_NE(out.err.find("'" + uri + "'"), std::string::npos)
        << "names what it found: " << out.err;
    EXPECT_NE(out.err.find("'" + std::string(kMetadataNamespace) + "'"), std::string::npos)
        << "names what it expects: " << out.err;
  }
  // Other people's metadata stays silent.
  FakeDaemon d;
  EXPECT_EQ(runHook(inv("prepare", "begin"), domainXml(""), config(), d).err, "");
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
      if (p["nic"] == 0)
        status["devices"]["vdpa"] = {{"name", "nfo0123456789ab"}, {"path", "/dev/vhost-vdpa-5"}};
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

// Issue 22: libvirt sends no stopped/release when an incoming migration
// fails before QEMU starts, so the ports `migrate` claims are tentative
// (nicoffloadd removes them unless confirmed); prepare, start and started
// confirm them (a port.add without "tentative"). restore and every other
// operation claim for good.
TEST(Hook, MigrateClaimsTentativelyAndPrepareStartStartedConfirm) {
  FakeDaemon d;
  auto out = runHook(inv("migrate", "begin"), domainXml(twoPorts()), config(), d);
  ASSERT_EQ(out.exit_code, 0) << out.err;
  ASSERT_EQ(d.ops(), (std::vector<std::string>{"port.add", "port.add"}));
  for (const auto& r : d.requests) EXPECT_EQ(r.value("tentative", false), true) << r.dump();
  for (const char* op : {"prepare", "start", "started", "restore", "reconnect", "attach"}) {
    d.requests.clear();
    auto s = runHook(inv(op, "begin"), domainXml(twoPorts()), config(), d);
    EXPECT_EQ(s.exit_code, 0) << op << s.err;
    ASSERT_EQ(d.ops(), (std::vector<std::string>{"port.add", "port.add"})) << op;
    for (const auto& r : d.requests) EXPECT_FALSE(r.contains("tentative")) << op << r.dump();
  }
}

// Issue 14: a domain migrating (or restored) onto a host whose vDPA backend
// is DPDK: its vdpa interface becomes a vhostuser one on the socket the
// destination's nicoffloadd serves (QEMU the client, with reconnect); and
// back to vdpa on a kernel-vDPA host. Other interfaces are untouched.
TEST(Hook, MigrateTurnsTheInterfaceIntoTheDestinationsDeviceKind) {
  for (const bool dpdk : {true, false}) {
    FakeDaemon d;
    d.intercept = [dpdk](const json& r) -> std::optional<DaemonReply> {
      if (r["op"] != "port.add") return std::nullopt;
      json status = {{"state", "installed"}, {"devices", json::object()}};
      if (r["port"]["nic"] == 0)
        status["devices"]["vdpa"] =
            dpdk ? json{{"name", "nfovf3"}, {"path", "/run/nicoffload/vhost/nfovf3.sock"},
                        {"kind", "vhostuser"}}
                 : json{{"name", "nfovf3"}, {"path", "/dev/vhost-vdpa-9"}, {"kind", "vdpa"}};
      return DaemonReply::ok({{"port", r["port"]}, {"status", status}});
    };
    auto out = runHook(inv("migrate", "begin"), domainXml(twoPorts()), config(), d);
    ASSERT_EQ(out.exit_code, 0) << out.err;
    pugi::xml_document doc;
    ASSERT_TRUE(doc.load_string(out.out.c_str())) << out.out;
    const auto iface = doc.select_node("//interface[mac/@address='52:54:00:AA:00:01']").node();
    ASSERT_TRUE(iface) << out.out;
    if (dpdk) {
      EXPECT_STREQ(iface.attribute("type").value(), "vhostuser") << out.out;
      EXPECT_STREQ(iface.child("source").attribute("type").value(), "unix");
      EXPECT_STREQ(iface.child("source").attribute("path").value(),
                   "/run/nicoffload/vhost/nfovf3.sock");
      EXPECT_STREQ(iface.child("source").attribute("mode").value(), "client");
      EXPECT_STREQ(iface.child("source").child("reconnect").attribute("enabled").value(), "yes");
      EXPECT_FALSE(iface.child("source").attribute("dev")) << "no vdpa source left";
    } else {
      EXPECT_STREQ(iface.attribute("type").value(), "vdpa") << out.out;
      EXPECT_STREQ(iface.child("source").attribute("dev").value(), "/dev/vhost-vdpa-9");
    }
    EXPECT_STREQ(iface.child("model").attribute("type").value(), "virtio");
    EXPECT_STREQ(iface.child("alias").attribute("name").value(), "net0") << "the rest is kept";
    // The vhostuser interface of another MAC and the others stay as they were.
    EXPECT_TRUE(doc.select_node("//interface[@type='hostdev']"));
    EXPECT_TRUE(doc.select_node("//interface[@type='bridge']/source[@bridge='br0']"));
    EXPECT_TRUE(doc.select_node(
        "//interface[mac/@address='52:54:00:aa:00:02']/source[@path='/run/nicoffload/vhost/nfo0.sock']"));
  }
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
