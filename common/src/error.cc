#include "nicoffload/common/error.h"

#include <array>

namespace nicoffload {
namespace {

constexpr std::array<ErrorInfo, kErrorCodeCount> kCatalogue{{
    {"invalid-value", "Invalid value",
     "A value does not parse or lies outside the range the field allows.",
     "Correct the named field; the message gives the expected form."},
    {"missing-field", "Missing field", "A field the schema requires is absent.",
     "Add the named field; see README.md or hw-profiles/README.md for the schema."},
    {"unknown-field", "Unknown field",
     "The input has a key the schema does not know; usually a typo.",
     "Remove or correct the key; unknown keys are refused so typos do not pass silently."},
    {"wrong-type", "Wrong type", "A field has the wrong JSON type.",
     "Use the type the schema gives for the field (string, number, array, object)."},
    {"duplicate", "Duplicate", "The same address, MAC, VF or key is used twice.",
     "Each VM address, MAC and VF belongs to exactly one port; remove the duplicate."},
    {"conflict", "Conflict", "Two values are each valid but cannot hold together.",
     "Change one of the two fields the message names."},
    {"unsupported", "Unsupported by the hardware",
     "The hardware profile or the device cannot do what was asked.",
     "Pick a profile/NIC that supports it, or let the software path carry the traffic."},
    {"table-full", "Hardware table full", "A hardware flow table has no room left.",
     "Rules beyond the limit run in the software path; raise the table size if the NIC allows."},
    {"busy", "Busy", "The resource is in use.", "Retry later; the reconciler retries on its own."},
    {"not-found", "Not found", "The named object does not exist.",
     "Check the name with the list command."},
    {"io", "I/O error", "Reading or writing a file or socket failed.",
     "Check the path, its permissions and free space."},
    {"internal", "Internal error", "An invariant of nicoffload broke: this is a bug.",
     "Report it with the log lines around it."},
    {"permission-denied", "Permission denied", "The caller is not allowed to do this.",
     "The control socket is for root; run the command as root."},
    {"exhausted", "Resource exhausted",
     "A pool has nothing left to hand out: every VF of the PF is assigned to a port.",
     "Remove a port, or raise uplink.vf_count (up to the NIC's max_vfs) and restart nicoffloadd."},
    {"deadline-exceeded", "Deadline exceeded",
     "The request's deadline (deadline_ms) had passed when nicoffloadd came to handle it: its "
     "client had stopped waiting, so nothing of it was applied.",
     "Nothing changed; retry. If it repeats, nicoffloadd is stalled or overloaded: check its log "
     "and `nicoffloadctl status`, or give the client more time (hook.json timeout_ms, --timeout)."},
}};

}  // namespace

const ErrorInfo& errorInfo(ErrorCode code) {
  return kCatalogue[static_cast<std::size_t>(code)];
}

std::optional<ErrorCode> errorCodeFromName(std::string_view name) {
  for (std::size_t i = 0; i < kCatalogue.size(); ++i)
    if (kCatalogue[i].name == name) return static_cast<ErrorCode>(i);
  return std::nullopt;
}

std::string Error::describe() const {
  std::string out;
  if (!field.empty()) {
    out += field;
    out += ": ";
  }
  out += message;
  return out;
}

}  // namespace nicoffload
