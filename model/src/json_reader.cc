#include "json_reader.h"

#include <cmath>

namespace nicoffload::model::detail {

std::string shortValue(const json& j) {
  if (j.is_string()) return printable(j.get_ref<const std::string&>());
  // Containers are echoed by their start only: dumping a large one whole to
  // cut it afterwards costs its full size.
  if ((j.is_array() || j.is_object()) && j.size() > 16)
    return std::string(j.is_array() ? "[" : "{") + "... " + std::to_string(j.size()) + " items" +
           (j.is_array() ? "]" : "}");
  return printable(j.dump(-1, ' ', false, json::error_handler_t::replace));
}

std::string joinPath(const std::string& base, std::string_view key) {
  if (base.empty()) return std::string(key);
  std::string out = base;
  out += '.';
  out += key;
  return out;
}

std::string indexPath(const std::string& base, std::size_t index) {
  return base + "[" + std::to_string(index) + "]";
}

const char* typeName(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number with a fraction";
    default: return "an unknown type";
  }
}

std::optional<Error> checkType(const json& j, json::value_t want, const std::string& path,
                               const char* want_name) {
  const bool match = j.type() == want ||
                     (want == json::value_t::number_integer && j.is_number_integer());
  if (match) return std::nullopt;
  return makeError(ErrorCode::kWrongType, path, shortValue(j),
                   std::string("must be ") + want_name + ", got " + typeName(j));
}

ObjectReader::ObjectReader(const json& j, std::string path) : j_(j), path_(std::move(path)) {
  if (!j_.is_object()) {
    error_ = makeError(ErrorCode::kWrongType, path_.empty() ? "(document)" : path_,
                       shortValue(j_), std::string("must be an object, got ") + typeName(j_));
  }
}

const json* ObjectReader::member(std::string_view key, bool required) {
  if (error_) return nullptr;
  known_.emplace(key);
  auto it = j_.find(key);
  if (it == j_.end()) {
    if (required)
      fail(makeError(ErrorCode::kMissingField, field(key), "", "required field is missing"));
    return nullptr;
  }
  return &*it;
}

bool ObjectReader::string(std::string_view key, std::string& out, bool required) {
  const json* v = member(key, required);
  if (!v) return ok();
  if (!v->is_string())
    return fail(ErrorCode::kWrongType, key, *v,
                std::string("must be a string, got ") + typeName(*v));
  out = v->get<std::string>();
  return true;
}

bool ObjectReader::boolean(std::string_view key, bool& out, bool required) {
  const json* v = member(key, required);
  if (!v) return ok();
  if (!v->is_boolean())
    return fail(ErrorCode::kWrongType, key, *v,
                std::string("must be true or false, got ") + typeName(*v));
  out = v->get<bool>();
  return true;
}

bool ObjectReader::integer(std::string_view key, std::int64_t min, std::int64_t max,
                           std::int64_t& out, bool required, std::string_view range_hint) {
  const json* v = member(key, required);
  if (!v) return ok();
  const std::string range = std::to_string(min) + " and " + std::to_string(max);
  if (v->is_number_float()) {
    // nlohmann reads an integer beyond 64 bits (99999999999999999999) as a
    // double: that is an integer out of range, not "a number with a fraction".
    const double d = v->get<double>();
    if (std::isfinite(d) && std::trunc(d) == d) {
      if (d < static_cast<double>(min) || d > static_cast<double>(max))
        return fail(ErrorCode::kInvalidValue, key, *v,
                    "is out of range: must be an integer between " + range);
      return fail(ErrorCode::kWrongType, key, *v,
                  "must be an integer between " + range +
                      " written in digits only (no fraction or exponent)");
    }
  }
  if (!v->is_number_integer())
    return fail(ErrorCode::kWrongType, key, *v,
                "must be an integer between " + range + ", got " + typeName(*v));
  bool in_range;
  std::int64_t value = 0;
  if (v->is_number_unsigned()) {
    const auto u = v->get<std::uint64_t>();
    in_range = u <= static_cast<std::uint64_t>(max) && static_cast<std::int64_t>(u) >= min;
    value = static_cast<std::int64_t>(u);
  } else {
    value = v->get<std::int64_t>();
    in_range = value >= min && value <= max;
  }
  if (!in_range) {
    std::string msg = "is out of range: must be " + std::to_string(min) + ".." +
                      std::to_string(max);
    if (!range_hint.empty()) {
      msg += " (";
      msg += range_hint;
      msg += ")";
    }
    return fail(ErrorCode::kInvalidValue, key, *v, msg);
  }
  out = value;
  return true;
}

bool ObjectReader::mac(std::string_view key, MacAddr& out, bool required) {
  std::string text;
  const json* v = member(key, required);
  if (!v) return ok();
  if (!v->is_string())
    return fail(ErrorCode::kWrongType, key, *v,
                std::string("must be a MAC address string, got ") + typeName(*v));
  text = v->get<std::string>();
  auto parsed = MacAddr::parse(text);
  if (!parsed)
    return fail(ErrorCode::kInvalidValue, key, *v,
                "'" + text + "' is not a MAC address (expected six hex pairs: aa:bb:cc:dd:ee:ff)");
  out = *parsed;
  return true;
}

bool ObjectReader::ipv4(std::string_view key, std::optional<Ipv4Addr>& out, bool required) {
  const json* v = member(key, required);
  if (!v) return ok();
  if (!v->is_string())
    return fail(ErrorCode::kWrongType, key, *v,
                std::string("must be an IPv4 address string, got ") + typeName(*v));
  const auto text = v->get<std::string>();
  auto parsed = Ipv4Addr::parse(text);
  if (!parsed)
    return fail(ErrorCode::kInvalidValue, key, *v,
                "'" + text + "' is not an IPv4 address (expected dotted quad a.b.c.d)");
  out = *parsed;
  return true;
}

bool ObjectReader::ipv6(std::string_view key, std::optional<Ipv6Addr>& out, bool required) {
  const json* v = member(key, required);
  if (!v) return ok();
  if (!v->is_string())
    return fail(ErrorCode::kWrongType, key, *v,
                std::string("must be an IPv6 address string, got ") + typeName(*v));
  const auto text = v->get<std::string>();
  auto parsed = Ipv6Addr::parse(text);
  if (!parsed)
    return fail(ErrorCode::kInvalidValue, key, *v,
                "'" + text + "' is not an IPv6 address (expected RFC 4291 text, e.g. fe80::1)");
  out = *parsed;
  return true;
}

bool ObjectReader::ip(std::string_view key, std::optional<IpAddr>& out, bool required) {
  const json* v = member(key, required);
  if (!v) return ok();
  if (!v->is_string())
    return fail(ErrorCode::kWrongType, key, *v,
                std::string("must be an IPv4 or IPv6 address string, got ") + typeName(*v));
  const auto text = v->get<std::string>();
  auto parsed = IpAddr::parse(text);
  if (!parsed)
    return fail(
        ErrorCode::kInvalidValue, key, *v,
        "'" + text + "' is not an IP address (expected a.b.c.d or RFC 4291 text, e.g. fe80::1)");
  out = *parsed;
  return true;
}

bool ObjectReader::object(std::string_view key, const json*& out, bool required) {
  out = member(key, required);
  if (!out) return ok();
  if (!out->is_object()) {
    fail(ErrorCode::kWrongType, key, *out,
         std::string("must be an object, got ") + typeName(*out));
    out = nullptr;
  }
  return ok();
}

bool ObjectReader::array(std::string_view key, const json*& out, bool required) {
  out = member(key, required);
  if (!out) return ok();
  if (!out->is_array()) {
    fail(ErrorCode::kWrongType, key, *out,
         std::string("must be an array, got ") + typeName(*out));
    out = nullptr;
  }
  return ok();
}

bool ObjectReader::finish() {
  if (error_) return false;
  for (auto it = j_.begin(); it != j_.end(); ++it) {
    if (!known_.count(it.key())) {
      std::string known_list;
      for (const auto& k : known_) {
        if (!known_list.empty()) known_list += ", ";
        known_list += k;
      }
      return fail(makeError(ErrorCode::kUnknownField, field(it.key()), it.key(),
                            "unknown field '" + it.key() + "' (known here: " + known_list + ")"));
    }
  }
  return true;
}

}  // namespace nicoffload::model::detail
