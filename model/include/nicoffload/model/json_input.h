// Parsing JSON that comes from outside (files, the control socket, replies
// from the daemon): one entry point with the limits every such input needs.
//
// nlohmann's own parser accepts any nesting depth (a deep document later
// overflows the stack in dump() or in the destructor) and keeps the last of
// duplicate keys in silence. parseJsonInput refuses both, with an Error that
// names the offending key or byte offset, and never throws.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "nicoffload/common/error.h"

namespace nicoffload::model {

// Deeper than any document nicoffload reads (the deepest, a hardware
// profile, nests 5 levels), far below what recursion in dump() can take.
inline constexpr std::size_t kMaxJsonDepth = 64;

struct JsonLimits {
  std::size_t max_depth = kMaxJsonDepth;  // arrays + objects open at once
  bool refuse_duplicate_keys = true;
};

// Parses `text` as one JSON document. `what` names the input in errors
// (a file path, "request"). Errors (kInvalidValue unless noted):
//  - not JSON (with the byte offset and the parser's reason); invalid UTF-8
//    inside a string is "not JSON";
//  - nesting deeper than limits.max_depth;
//  - kDuplicate: a key repeated in one object, with the object's path.
Result<nlohmann::json> parseJsonInput(std::string_view text, std::string_view what,
                                      const JsonLimits& limits = {});

}  // namespace nicoffload::model
