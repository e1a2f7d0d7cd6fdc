#include "nicoffload/model/json_input.h"

#include <vector>

namespace nicoffload::model {
namespace {

using json = nlohmann::json;

// A SAX handler that builds the document like nlohmann's own DOM parser, and
// stops at the first nesting or duplicate-key violation.
class GuardedDomBuilder : public nlohmann::json_sax<json> {
 public:
  GuardedDomBuilder(json& root, const JsonLimits& limits) : root_(root), limits_(limits) {}

  bool null() override { return put(json(nullptr)); }
  bool boolean(bool v) override { return put(json(v)); }
  bool number_integer(number_integer_t v) override { return put(json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return put(json(v)); }
  bool number_float(number_float_t v, const string_t&) override { return put(json(v)); }
  bool string(string_t& v) override { return put(json(std::move(v))); }
  bool binary(binary_t& v) override { return put(json::binary(std::move(v))); }

  bool start_object(std::size_t) override { return open(json::object()); }
  bool start_array(std::size_t) override { return open(json::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool key(string_t& k) override {
    json& obj = *stack_.back();
    if (limits_.refuse_duplicate_keys && obj.contains(k)) {
      error_ = makeError(ErrorCode::kDuplicate, path() + (path().empty() ? "" : ".") + k, k,
                         "key \"" + k + "\" appears twice in the same object; each key may be given once");
      return false;
    }
    key_ = std::move(k);
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) override {
    // ex.what() is "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
    std::string why = ex.what();
    if (const auto colon = why.find(": "); colon != std::string::npos) why = why.substr(colon + 2);
    error_ = makeError(ErrorCode::kInvalidValue, "", "",
                       "not valid JSON at byte " + std::to_string(position) + ": " + why);
    return false;
  }

  std::optional<Error>& error() { return error_; }

 private:
  std::string path() const { return path_; }

  json* place(json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json& parent = *stack_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    return &(parent[key_] = std::move(v));
  }
  bool put(json&& v) {
    place(std::move(v));
    return true;
  }
  bool open(json&& v) {
    if (stack_.size() >= limits_.max_depth) {
      error_ = makeError(ErrorCode::kInvalidValue, "", std::to_string(stack_.size() + 1) + " levels",
                         "JSON nested deeper than the limit of " + std::to_string(limits_.max_depth) + " levels");
      return false;
    }
    if (!stack_.empty() && stack_.back()->is_object()) {
      path_stack_.push_back(path_.size());
      path_ += path_.empty() ? key_ : "." + key_;
    } else if (!stack_.empty()) {
      path_stack_.push_back(path_.size());
      path_ += "[" + std::to_string(stack_.back()->size()) + "]";
    } else {
      path_stack_.push_back(path_.size());
    }
    stack_.push_back(place(std::move(v)));
    return true;
  }
  bool close() {
    stack_.pop_back();
    path_.resize(path_stack_.back());
    path_stack_.pop_back();
    return true;
  }

  json& root_;
  const JsonLimits& limits_;
  std::vector<json*> stack_;
  std::vector<std::size_t> path_stack_;
  std::string path_;  // where the innermost open container sits ("ports[2]")
  std::string key_;
  std::optional<Error> error_;
};

}  // namespace

Result<json> parseJsonInput(std::string_view text, std::string_view what, const JsonLimits& limits) {
  json root;
  GuardedDomBuilder builder(root, limits);
  bool ok = false;
  try {
    ok = json::sax_parse(text.begin(), text.end(), &builder, json::input_format_t::json, /*strict=*/true);
  } catch (const std::exception& e) {  // the SAX interface reports through parse_error; belt and braces
    builder.error() = makeError(ErrorCode::kInvalidValue, "", "", std::string("not valid JSON: ") + e.what());
  }
  if (!ok || builder.error()) {
    Error e = builder.error().value_or(makeError(ErrorCode::kInvalidValue, "", "", "not valid JSON"));
    e.field = e.field.empty() ? std::string(what) : std::string(what) + ": " + e.field;
    return e;
  }
  return root;
}

}  // namespace nicoffload::model
