#include "nicoffload/offload/state_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "nicoffload/model/parse.h"
#include "temp_dirs.h"

namespace nicoffload::offload {
namespace {

std::string tempDir() { return testing::makeTempDir("nfo-state"); }

model::Port port(int i) {
  auto p = model::parsePort({{"vm", "00000000-0000-4000-8000-00000000000" + std::to_string(i)},
                             {"nic", 0},
                             {"mac", "52:54:00:00:00:0" + std::to_string(i)},
                             {"addresses", {"10.0.0." + std::to_string(i) + "/32"}},
                             {"vf", i},
                             {"vni", 100},
                             {"vdpa", "kernel"}});
  EXPECT_TRUE(p.ok());
  return *p;
}

TEST(StateStore, EmptyDirectoryLoadsEmptyState) {
  StateStore store(tempDir() + "/sub/dir");
  auto s = store.load();
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_TRUE(s->ports.empty());
  EXPECT_TRUE(s->remotes.empty());
}

TEST(StateStore, RoundTripKeepsEveryField) {
  StateStore store(tempDir());
  PersistedState in;
  in.ports = {port(1), port(2)};
  in.ports[1].representor = "rep2";
  in.ports[1].mtu = 9000;
  model::RemoteEndpoint r;
  r.address = *Ipv4Addr::parse("10.9.0.1");
  r.vtep = *Ipv4Addr::parse("192.0.2.9");
  r.vni = 100;
  in.remotes = {r};
  in.extra["vf_pool"] = {{"0000:03:00.0", {1, 2}}};
  ASSERT_TRUE(store.save(in).ok());
  auto out = store.load();
  ASSERT_TRUE(out.ok()) << out.error().describe();
  ASSERT_EQ(out->ports.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(model::toJson(out->ports[i]), model::toJson(in.ports[i]));
  }
  ASSERT_EQ(out->remotes.size(), 1u);
  EXPECT_EQ(model::toJson(out->remotes[0]), model::toJson(r));
  EXPECT_EQ(out->extra, in.extra);
  struct stat st {};
  ASSERT_EQ(::stat(store.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(StateStore, SaveReplacesAndLeavesNoTemporaryFile) {
  StateStore store(tempDir());
  PersistedState a;
  a.ports = {port(1)};
  ASSERT_TRUE(store.save(a).ok());
  PersistedState b;
  b.ports = {port(3)};
  ASSERT_TRUE(store.save(b).ok());
  auto out = store.load();
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->ports.size(), 1u);
  EXPECT_EQ(out->ports[0].key.vm, b.ports[0].key.vm);
  EXPECT_NE(::access((store.path() + ".tmp").c_str(), F_OK), 0);
}

TEST(StateStore, TornTemporaryFileFromACrashIsIgnored) {
  StateStore store(tempDir());
  PersistedState a;
  a.ports = {port(1)};
  ASSERT_TRUE(store.save(a).ok());
  std::ofstream(store.path() + ".tmp")
      << "{\"version\": 1, \"ports\": [ {\"vm\": ";  // crash mid-write
  auto out = store.load();
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->ports.size(), 1u);
  // The next save overwrites the torn file.
  ASSERT_TRUE(store.save(a).ok());
}

TEST(StateStore, CorruptFileIsAnErrorNamingThePath) {
  StateStore store(tempDir());
  std::ofstream(store.path()) << "{ not json";
  auto out = store.load();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidValue);
  EXPECT_NE(out.error().describe().find(store.path()), std::string::npos);
  std::ofstream(store.path()) << R"({"version": 1, "ports": [{"vm": "nope"}]})";
  out = store.load();
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().field.find("ports[0].vm"), std::string::npos) << out.error().describe();
  std::ofstream(store.path()) << R"({"version": 7})";
  out = store.load();
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message.find("version 1"), std::string::npos);
}

}  // namespace
}  // namespace nicoffload::offload
