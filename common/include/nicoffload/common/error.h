// Errors as values across component boundaries (STYLE.md point 7).
//
// An Error carries a catalogue code (what kind of failure), the field it is
// about (a JSON path such as "ports[2].addresses[0]", or a rule id), the
// offending value as the user wrote it, and a sentence that says what is
// wrong. The catalogue (errorInfo) gives every code a title, a description and
// a suggestion for the operator.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "nicoffload/common/text.h"

namespace nicoffload {

enum class ErrorCode : unsigned char {
  kInvalidValue,      // a value that does not parse or is out of range
  kMissingField,      // a required field is absent
  kUnknownField,      // a key the schema does not know (typo protection)
  kWrongType,         // e.g. a string where a number is expected
  kDuplicate,         // the same IP/MAC/VF/key used twice
  kConflict,          // two valid values that cannot hold together
  kUnsupported,       // the hardware profile or device cannot do it
  kTableFull,         // a hardware table has no room left (flow rules)
  kBusy,              // the resource is in use, try later
  kNotFound,          // the object does not exist
  kIo,                // reading or writing a file failed
  kInternal,          // an invariant broke: a bug in nicoffload
  kPermissionDenied,  // the caller may not do this (control socket peer check)
  kExhausted,         // a pool has nothing left to hand out: no free VF on the PF
  kDeadlineExceeded,  // the request's deadline (deadline_ms) passed before it was handled
};
// Codes are appended, never renumbered: counters are indexed by code, and
// the daemon and its clients exchange the catalogue names.
inline constexpr std::size_t kErrorCodeCount = 15;

// One entry of the error catalogue (FRR zebra_errors.c style).
struct ErrorInfo {
  std::string_view name;        // stable machine-readable name, e.g. "invalid-value"
  std::string_view title;       // short human title
  std::string_view description; // what this class of error means
  std::string_view suggestion;  // what the operator can do about it
};

const ErrorInfo& errorInfo(ErrorCode code);
// The code whose catalogue name is `name` ("invalid-value"), if any.
std::optional<ErrorCode> errorCodeFromName(std::string_view name);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string field;    // JSON path or object id the error is about; may be empty
  std::string value;    // offending value as written by the user; may be empty
  std::string message;  // one sentence: what is wrong

  // "ports[1].mac: '52:54:00:zz:00:01' is not a MAC address (expected ...)"
  std::string describe() const;
};

// Result<T>: either a T or an Error. Small on purpose: value(), error(),
// ok(). No exceptions cross a component boundary.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const Error& error() const { return std::get<Error>(v_); }

  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Error> v_;
};

// Result of an operation that yields nothing but success or an Error.
// Success costs nothing to build: the Error exists only on failure.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  static Status success() { return {}; }

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};

// The longest message an Error keeps (bytes); longer ones are cut.
inline constexpr std::size_t kMaxErrorMessageBytes = 1024;

// Builds an Error whose field, value and message are always printable and
// serialisable, whatever the input they echo: the value is cut to
// kMaxEchoedValueBytes, the message to kMaxErrorMessageBytes, control bytes
// and invalid UTF-8 are escaped (text.h, printable()).
inline Error makeError(ErrorCode code, std::string field, std::string value,
                       std::string message) {
  return Error{code, printable(field, kMaxErrorMessageBytes), printable(value),
               printable(message, kMaxErrorMessageBytes)};
}

}  // namespace nicoffload
