// Reading nicoffloadd's replies without trusting their shape: every line
// gives a reply or a clear error, never an exception (the hook used
// nlohmann's value()/operator[] on them and aborted with SIGABRT).
#include "nicoffload/hooks/daemon_replies.h"

#include <gtest/gtest.h>

#include "nicoffload/common/text.h"

namespace nicoffload::hooks {
namespace {

using nlohmann::json;

TEST(DaemonReply, SuccessAndRefusalAreReadAsValues) {
  auto ok = parseDaemonReply(R"({"ok":true,"result":{"n":1}})");
  ASSERT_TRUE(ok) << ok.error().describe();
  EXPECT_EQ(ok->kind, DaemonReply::Kind::kOk);
  EXPECT_EQ(ok->result, (json{{"n", 1}}));
  auto refused = parseDaemonReply(
      R"({"ok":false,"error":{"code":"table-full","field":"port.vf","value":"","message":"no free VF"}})");
  ASSERT_TRUE(refused) << refused.error().describe();
  EXPECT_EQ(refused->kind, DaemonReply::Kind::kRefused);
  EXPECT_EQ(refused->error.code, ErrorCode::kTableFull);
  EXPECT_EQ(refused->error.field, "port.vf");
  EXPECT_EQ(refused->error.message, "no free VF");
  // An unknown code or no message still gives a usable refusal.
  auto vague = parseDaemonReply(R"({"ok":false,"error":{"code":"new-in-v9"}})");
  ASSERT_TRUE(vague);
  EXPECT_EQ(vague->error.code, ErrorCode::kInternal);
  EXPECT_FALSE(vague->error.message.empty());
}

TEST(DaemonReply, UnexpectedShapesAreClearErrors) {
  const std::pair<std::string, std::string> cases[] = {
      {R"({"ok":"yes"})", "reply.ok"},
      {R"({"ok":1,"result":{}})", "reply.ok"},
      {R"({"result":{}})", "reply.ok"},
      {R"({"ok":true})", "reply.result"},
      {R"({"ok":false})", "reply.error"},
      {R"({"ok":false,"error":"busy"})", "reply.error"},
      {R"({"ok":false,"error":{"code":5}})", "reply.error.code"},
      {R"({"ok":false,"error":{"message":["a"]}})", "reply.error.message"},
      {R"([true])", "reply"},
      {R"("ok")", "reply"},
      {"", "reply"},
      {"not json", "reply"},
      {"{\"ok\":true,\"result\":\"\xff\"}", "reply"},            // invalid UTF-8
      {"{\"ok\":true,\"ok\":false,\"result\":1}", "reply: ok"},  // a key twice
      {std::string(100, '[') + std::string(100, ']'), "reply"},  // too deep
  };
  for (const auto& [line, field] : cases) {
    Result<DaemonReply> r = makeError(ErrorCode::kInternal, "", "", "");
    ASSERT_NO_THROW(r = parseDaemonReply(line)) << printable(line);
    ASSERT_FALSE(r) << printable(line);
    EXPECT_EQ(r.error().field, field) << printable(line) << ": " << r.error().describe();
    EXPECT_TRUE(isValidUtf8(r.error().describe())) << printable(line);
  }
  // A refusal echoing bytes of any kind comes out printable and short.
  auto loud = parseDaemonReply(R"({"ok":false,"error":{"value":")" + std::string(5000, 'x') +
                               R"(","message":"line1\nline2"}})");
  ASSERT_TRUE(loud);
  EXPECT_LE(loud->error.value.size(), kMaxEchoedValueBytes + 3);
  EXPECT_EQ(loud->error.message.find('\n'), std::string::npos);
}

TEST(DaemonReply, PortAddResultIsReadWithCheckedAccess) {
  auto full = readPortAddResult(json::parse(R"({
      "port": {"vm": "x", "nic": 0, "vf": 3, "representor": "pf0vf3"},
      "changed": true,
      "status": {"state": "degraded", "devices": {"vdpa": {"name": "n", "path": "/dev/vhost-vdpa-2"}}}})"));
  ASSERT_TRUE(full) << full.error().describe();
  EXPECT_EQ(full->representor, "pf0vf3");
  ASSERT_TRUE(full->vf);
  EXPECT_EQ(*full->vf, 3);
  EXPECT_EQ(full->vdpa_dev, "/dev/vhost-vdpa-2");
  EXPECT_TRUE(full->degraded);
  auto bare = readPortAddResult(json::object());  // every member is optional
  ASSERT_TRUE(bare);
  EXPECT_FALSE(bare->degraded);

  const std::pair<const char*, const char*> bad[] = {
      {R"([1,2])", "result"},
      {R"(null)", "result"},
      {R"({"status": "degraded"})", "result.status"},
      {R"({"status": {"state": 1}})", "result.status.state"},
      {R"({"status": {"devices": []}})", "result.status.devices"},
      {R"({"status": {"devices": {"vdpa": "x"}}})", "result.status.devices.vdpa"},
      {R"({"status": {"devices": {"vdpa": {"path": 7}}}})", "result.status.devices.vdpa.path"},
      {R"({"port": [1]})", "result.port"},
      {R"({"port": {"representor": 5}})", "result.port.representor"},
      {R"({"port": {"vf": "3"}})", "result.port.vf"},
      {R"({"port": {"vf": -1}})", "result.port.vf"},
      {R"({"port": {"vf": 65536}})", "result.port.vf"},
      {R"({"port": {"vf": 18446744073709551615}})", "result.port.vf"},
  };
  for (const auto& [text, field] : bad) {
    Result<PortAddView> r = PortAddView{};
    ASSERT_NO_THROW(r = readPortAddResult(json::parse(text))) << text;
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().field, field) << text << ": " << r.error().describe();
  }
}

TEST(DaemonReply, PortListResultKeepsThisDomainsInterfaces) {
  const std::string vm = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b";
  auto nics = readPortListResult(json::parse(R"([
      {"port": {"vm": "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b", "nic": 3}, "state": "installed"},
      {"port": {"vm": "00000000-0000-4000-8000-000000000001", "nic": 1}},
      {"vm": "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b", "nic": 65535}])"),
                                 vm);
  ASSERT_TRUE(nics) << nics.error().describe();
  EXPECT_EQ(*nics, (std::vector<std::uint16_t>{3, 65535}));

  const std::pair<std::string, const char*> bad[] = {
      {R"({"port": {}})", "result"},
      {R"([1])", "result[0]"},
      {R"([{"port": "x"}])", "result[0].port"},
      {R"([{"port": {"nic": 1}}])", "result[0].port.vm"},
      {R"([{"port": {"vm": 5, "nic": 1}}])", "result[0].port.vm"},
      {R"([{"port": {"vm": "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"}}])", "result[0].port.nic"},
      {R"([{"port": {"vm": "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b", "nic": 1.5}}])",
       "result[0].port.nic"},
      {R"([{"port": {"vm": "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b", "nic": 65538}}])",
       "result[0].port.nic"},
  };
  for (const auto& [text, field] : bad) {
    Result<std::vector<std::uint16_t>> r = std::vector<std::uint16_t>{};
    ASSERT_NO_THROW(r = readPortListResult(json::parse(text), vm)) << text;
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().field, field) << text << ": " << r.error().describe();
  }
}

}  // namespace
}  // namespace nicoffload::hooks
