#include "nicoffload/hooks/invocation.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "nicoffload/hooks/hook_config.h"

namespace nicoffload::hooks {
namespace {

TEST(Argv, EveryOperationLibvirtSends) {
  struct Case {
    const char* op;
    const char* sub;
    Operation expected;
    Action action;
  };
  const Case cases[] = {
      {"prepare", "begin", Operation::kPrepare, Action::kAdd},
      {"start", "begin", Operation::kStart, Action::kConfirm},
      {"started", "begin", Operation::kStarted, Action::kConfirm},
      {"stopped", "end", Operation::kStopped, Action::kRemove},
      {"release", "end", Operation::kRelease, Action::kRemove},
      {"migrate", "begin", Operation::kMigrate, Action::kFilter},
      {"restore", "begin", Operation::kRestore, Action::kFilter},
      {"reconnect", "begin", Operation::kReconnect, Action::kReassert},
      {"attach", "begin", Operation::kAttach, Action::kReassert},
      // Not ours: other sub-operations and operations libvirt may add.
      {"prepare", "end", Operation::kOther, Action::kNone},
      {"stopped", "begin", Operation::kOther, Action::kNone},
      {"shutdown", "begin", Operation::kOther, Action::kNone},
      {"", "", Operation::kOther, Action::kNone},
  };
  for (const auto& c : cases) {
    auto inv = parseArgv({"/etc/libvirt/hooks/qemu.d/50-nicoffload", "vm-1", c.op, c.sub, "-"});
    ASSERT_TRUE(inv) << c.op;
    EXPECT_EQ(inv->op, c.expected) << c.op << " " << c.sub;
    EXPECT_EQ(actionFor(inv->op), c.action) << c.op << " " << c.sub;
    EXPECT_EQ(inv->domain, "vm-1");
    EXPECT_EQ(inv->extra, "-");
  }
}

TEST(Argv, ExtraArgumentIsOptionalAndTooFewArgumentsAreRefused) {
  auto three = parseArgv({"hook", "vm", "release", "end"});
  ASSERT_TRUE(three);
  EXPECT_EQ(three->op, Operation::kRelease);
  EXPECT_EQ(three->extra, "-");
  auto two = parseArgv({"hook", "vm", "prepare"});
  ASSERT_FALSE(two);
  EXPECT_EQ(two.error().code, ErrorCode::kMissingField);
  EXPECT_NE(two.error().message.find("usage"), std::string::npos);
  EXPECT_FALSE(parseArgv({}));
}

TEST(Argv, NamesAndFailurePolicy) {
  EXPECT_STREQ(toString(Operation::kReconnect), "reconnect");
  EXPECT_STREQ(toString(Operation::kMigrate), "migrate");
}

TEST(HookConfig, DefaultsAndEveryKey) {
  auto d = parseHookConfig(nlohmann::json::object());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->socket, "/run/nicoffload/nicoffloadd.sock");
  EXPECT_EQ(d->timeout_ms, 3000);
  EXPECT_EQ(d->on_daemon_down, DaemonDownPolicy::kFail);
  auto c = parseHookConfig(
      {{"socket", "/tmp/x.sock"}, {"timeout_ms", 250}, {"on_daemon_down", "allow"}});
  ASSERT_TRUE(c) << c.error().describe();
  EXPECT_EQ(c->socket, "/tmp/x.sock");
  EXPECT_EQ(c->timeout_ms, 250);
  EXPECT_EQ(c->on_daemon_down, DaemonDownPolicy::kAllow);
}

TEST(HookConfig, BadValuesAreRefusedNamingTheKey) {
  const std::pair<nlohmann::json, std::string> bad[] = {
      {{{"sockett", "/x"}}, "sockett"},
      {{{"socket", "relative.sock"}}, "socket"},
      {{{"socket", 5}}, "socket"},
      {{{"timeout_ms", 0}}, "timeout_ms"},
      {{{"timeout_ms", "3000"}}, "timeout_ms"},
      {{{"timeout_ms", 600000}}, "timeout_ms"},
      {{{"on_daemon_down", "ignore"}}, "on_daemon_down"},
  };
  for (const auto& [doc, field] : bad) {
    auto c = parseHookConfig(doc);
    ASSERT_FALSE(c) << doc.dump();
    EXPECT_EQ(c.error().field, field) << doc.dump();
  }
  EXPECT_FALSE(parseHookConfig(nlohmann::json::array()));
}

// hook.json goes through parseJsonInput like every JSON input: no input
// bytes throw, duplicate keys and deep nesting are refused.
TEST(HookConfig, TextOfAnyShapeGivesAConfigOrAClearError) {
  auto c = parseHookConfigText(R"({"socket": "/run/x.sock", "timeout_ms": 1000})");
  ASSERT_TRUE(c) << c.error().describe();
  EXPECT_EQ(c->timeout_ms, 1000);
  const std::pair<std::string, std::string> bad[] = {
      {R"({"timeout_ms": 1000, "timeout_ms": 5})", "hook.json: timeout_ms"},
      {std::string(200, '[') + std::string(200, ']'), "hook.json"},
      {"{\"socket\": \"/run/\xff.sock\"}", "hook.json"},
      {R"({"socket": "/run/a\u0000b.sock"})", "hook.json: socket"},
      {R"({"socket": "/)" + std::string(120, 'a') + R"("})", "hook.json: socket"},
      {R"({"timeout_ms": 18446744073709551615})", "hook.json: timeout_ms"},
      {R"({"timeout_ms": -1})", "hook.json: timeout_ms"},
      {R"({"on_daemon_down": ["allow"]})", "hook.json: on_daemon_down"},
      {R"([])", "hook.json: hook.json"},
      {"", "hook.json"},
  };
  for (const auto& [text, field] : bad) {
    Result<HookConfig> r = HookConfig{};
    ASSERT_NO_THROW(r = parseHookConfigText(text)) << text;
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().field, field) << text << ": " << r.error().describe();
  }
  auto named = parseHookConfigText("{", "/etc/nicoffload/hook.json");
  ASSERT_FALSE(named);
  EXPECT_EQ(named.error().field, "/etc/nicoffload/hook.json");
}

TEST(HookConfig, FileAbsentGivesDefaultsBadFileNamesThePath) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("nfo-hookcfg-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto absent = loadHookConfig((dir / "none.json").string());
  ASSERT_TRUE(absent);
  EXPECT_EQ(absent->timeout_ms, 3000);
  std::ofstream(dir / "bad.json") << "{\"timeout_ms\": ";
  auto bad = loadHookConfig((dir / "bad.json").string());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("not valid JSON"), std::string::npos);
  std::ofstream(dir / "typo.json") << "{\"on_daemon_dwn\": \"allow\"}";
  auto typo = loadHookConfig((dir / "typo.json").string());
  ASSERT_FALSE(typo);
  EXPECT_NE(typo.error().field.find("typo.json"), std::string::npos);
  EXPECT_EQ(typo.error().code, ErrorCode::kUnknownField);
  std::filesystem::remove_all(dir);
}

TEST(HookConfig, AFifoOrADirectoryAsTheConfigIsAnErrorNotAHang) {
  // A FIFO at the config path blocked the hook's open (libvirt waits on the
  // hook); a directory or a device is refused naming the path.
  const auto dir =
      std::filesystem::temp_directory_path() / ("nfo-hookcfg-fifo-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto fifo = (dir / "hook.json").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto r = loadHookConfig(fifo);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("is a FIFO, not a regular file"), std::string::npos)
      << r.error().message;
  auto d = loadHookConfig(dir.string());
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("is a directory"), std::string::npos) << d.error().message;
  auto z = loadHookConfig("/dev/zero");
  ASSERT_FALSE(z);
  EXPECT_NE(z.error().message.find("character device"), std::string::npos) << z.error().message;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nicoffload::hooks
