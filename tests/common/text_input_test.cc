// printable() and parseJsonInput(): the two guards every echoed value and
// every external JSON document pass through (issue 11).
#include <string>

#include <gtest/gtest.h>

#include "nicoffload/common/error.h"
#include "nicoffload/common/text.h"
#include "nicoffload/model/json_input.h"
#include "nicoffload/model/parse.h"

namespace nicoffload {
namespace {

TEST(Utf8, ValidAndInvalidSequences) {
  EXPECT_TRUE(isValidUtf8("plain"));
  EXPECT_TRUE(isValidUtf8("\xc3\xa9"));              // é
  EXPECT_TRUE(isValidUtf8("\xf0\x9f\x98\x80"));      // U+1F600
  EXPECT_FALSE(isValidUtf8("\xff"));
  EXPECT_FALSE(isValidUtf8("\xed\xa0\x80"));         // a surrogate, CESU-8
  EXPECT_FALSE(isValidUtf8("\xc0\xaf"));             // overlong '/'
  EXPECT_FALSE(isValidUtf8("\xc3"));                 // cut character
  EXPECT_FALSE(isValidUtf8("\xf4\x90\x80\x80"));     // above U+10FFFF
}

TEST(Printable, EscapesControlAndInvalidBytes) {
  EXPECT_EQ(printable(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(printable("rep\xff"), "rep\\xff");
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");
  EXPECT_EQ(printable("line\nbreak"), "line\\x0abreak");
}

TEST(Printable, CutsAtACharacterBoundary) {
  std::string many;
  for (int i = 0; i < 60; ++i) many += "\xc3\xa9";  // 120 bytes of é
  const std::string out = printable(many, 77);
  EXPECT_TRUE(isValidUtf8(out));
  EXPECT_LE(out.size(), 80u);
  EXPECT_EQ(out.substr(out.size() - 3), "...");
  EXPECT_EQ(out.size(), 76u + 3u);  // 38 whole characters, never half of one
}

TEST(Printable, HugeValuesStayShort) {
  const std::string big(50'000'000, 'x');
  const Error e = makeError(ErrorCode::kInvalidValue, "f", big, "'" + big + "' is wrong");
  EXPECT_LE(e.value.size(), kMaxEchoedValueBytes + 3);
  EXPECT_LE(e.message.size(), kMaxErrorMessageBytes + 3);
}

TEST(Printable, ErrorsAreAlwaysSerialisable) {
  const Error e = makeError(ErrorCode::kInvalidValue, "vm\xff", "\xe9\xe9", std::string("m\0x", 3));
  nlohmann::json j = {{"field", e.field}, {"value", e.value}, {"message", e.message}};
  EXPECT_NO_THROW((void)j.dump());
}

TEST(JsonInput, ParsesOrdinaryDocuments) {
  auto r = model::parseJsonInput(R"({"a":[1,2,{"b":"c"}],"d":null})", "doc");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ((*r)["a"][2]["b"], "c");
  EXPECT_TRUE((*r)["d"].is_null());
}

TEST(JsonInput, RefusesDuplicateKeysNamingThem) {
  auto r = model::parseJsonInput(R"({"ports":[{"vm":"a","vm":"b"}]})", "ports.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kDuplicate);
  EXPECT_EQ(r.error().field, "ports.json: ports[0].vm");
  EXPECT_NE(r.error().message.find("\"vm\""), std::string::npos);
}

TEST(JsonInput, RefusesDeepNesting) {
  const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
  auto r = model::parseJsonInput(deep, "request");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidValue);
  EXPECT_NE(r.error().message.find("deeper than the limit of 64"), std::string::npos);
  const std::string ok_depth = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(model::parseJsonInput(ok_depth, "request").ok());
  EXPECT_FALSE(model::parseJsonInput(R"({"a":)" + std::string(70, '[') , "request").ok());
}

TEST(JsonInput, InvalidUtf8IsNotJson) {
  auto r = model::parseJsonInput("{\"op\":\"\xed\xa0\x80\"}", "request");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not valid JSON at byte"), std::string::npos);
  EXPECT_FALSE(model::parseJsonInput("\xff", "request").ok());
  EXPECT_FALSE(model::parseJsonInput("", "request").ok());
  EXPECT_FALSE(model::parseJsonInput("{} {}", "request").ok());
}

}  // namespace
}  // namespace nicoffload

namespace nicoffload::model {
namespace {

TEST(LoadHostProfile, AMissingProfileIsBlamedOnTheHostField) {
  auto r = loadHostProfile("no-such-nic", "/etc/nicoffload/host.json", NICOFFLOAD_SOURCE_DIR "/hw-profiles");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(r.error().field, "/etc/nicoffload/host.json: hw_profile");
  EXPECT_EQ(r.error().value, "no-such-nic");
  auto bad = loadHostProfile("bad name!", "h.json", "/tmp");  // neither a name nor a path
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().field, "h.json: hw_profile");
  EXPECT_TRUE(loadHostProfile("sim", "h.json", NICOFFLOAD_SOURCE_DIR "/hw-profiles").ok());
}

}  // namespace
}  // namespace nicoffload::model
