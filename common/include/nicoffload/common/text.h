// Text that is safe to print and to serialise.
//
// Values that reach an error message, a log line or a JSON reply may come
// from anyone (a request line, a domain XML, a file): they can be megabytes
// long, hold NUL or control bytes, or be invalid UTF-8, which nlohmann's
// dump() refuses with an exception. Everything that echoes such a value goes
// through printable() first.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace nicoffload {

// The default cap for a value echoed in an error (bytes of output, before
// the "..." marker).
inline constexpr std::size_t kMaxEchoedValueBytes = 80;

// True when `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates U+D800..U+DFFF, nothing above U+10FFFF).
bool isValidUtf8(std::string_view s);

// `s` made printable and short: each byte that is not part of a well-formed
// UTF-8 character, and each control byte (< 0x20, 0x7f), is written as
// "\xNN"; the result is cut at a character boundary so that it holds at most
// `max_bytes` bytes, with "..." appended when something was cut. The result
// is always valid UTF-8 with no control bytes.
std::string printable(std::string_view s, std::size_t max_bytes = kMaxEchoedValueBytes);

}  // namespace nicoffload
