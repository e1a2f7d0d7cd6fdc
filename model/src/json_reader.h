// Small helper for reading a JSON object field by field with errors that name
// the JSON path and the offending value. Private to the model library.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "nicoffload/common/error.h"
#include "nicoffload/common/net_types.h"

namespace nicoffload::model::detail {

using nlohmann::json;

// A short, printable rendering of a JSON value for error messages.
std::string shortValue(const json& j);

// "ports[1]" + "mac" -> "ports[1].mac"; "" + "mac" -> "mac".
std::string joinPath(const std::string& base, std::string_view key);
std::string indexPath(const std::string& base, std::size_t index);

const char* typeName(const json& j);

// Reads one JSON object. Each accessor returns false once an error is
// recorded; the first error is kept (error()).
class ObjectReader {
 public:
  ObjectReader(const json& j, std::string path);

  bool ok() const { return !error_; }
  const Error& error() const { return *error_; }
  const std::string& path() const { return path_; }
  std::string field(std::string_view key) const { return joinPath(path_, key); }

  // The raw member, or nullptr when absent (an absent required member records
  // kMissingField). Marks the key as known.
  const json* member(std::string_view key, bool required);

  bool string(std::string_view key, std::string& out, bool required);
  bool boolean(std::string_view key, bool& out, bool required);
  // Integer in [min, max]; refuses floats and booleans.
  bool integer(std::string_view key, std::int64_t min, std::int64_t max, std::int64_t& out,
               bool required, std::string_view range_hint = {});
  bool mac(std::string_view key, MacAddr& out, bool required);
  bool ipv4(std::string_view key, std::optional<Ipv4Addr>& out, bool required);
  bool ipv6(std::string_view key, std::optional<Ipv6Addr>& out, bool required);
  bool ip(std::string_view key, std::optional<IpAddr>& out, bool required);  // either family
  bool object(std::string_view key, const json*& out, bool required);
  bool array(std::string_view key, const json*& out, bool required);

  // Records kUnknownField for the first key no accessor asked for.
  bool finish();

  bool fail(Error e) {
    if (!error_) error_ = std::move(e);
    return false;
  }
  bool fail(ErrorCode code, std::string_view key, const json& value, std::string message) {
    return fail(makeError(code, field(key), shortValue(value), std::move(message)));
  }

 private:
  const json& j_;
  std::string path_;
  std::set<std::string, std::less<>> known_;
  std::optional<Error> error_;
};

// Validates a standalone value (e.g. an array element).
std::optional<Error> checkType(const json& j, json::value_t want, const std::string& path,
                               const char* want_name);

}  // namespace nicoffload::model::detail
