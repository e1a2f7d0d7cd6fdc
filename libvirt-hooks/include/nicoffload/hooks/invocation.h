// The qemu hook's command line: libvirt runs
//   /etc/libvirt/hooks/qemu.d/50-nicoffload <domain> <operation> <sub-operation> <extra>
// with the domain XML on stdin (https://libvirt.org/hooks.html).
#pragma once

#include <string>
#include <vector>

#include "nicoffload/common/error.h"

namespace nicoffload::hooks {

enum class Operation {
  kPrepare,    // "prepare begin": before QEMU is spawned; failure aborts the start
  kStart,      // "start begin": QEMU about to run; failure aborts the start
  kStarted,    // "started begin": QEMU runs
  kStopped,    // "stopped end": QEMU is gone
  kRelease,    // "release end": resources may be released (may come twice)
  kMigrate,    // "migrate begin": incoming migration; XML filter
  kRestore,    // "restore begin": restore of a saved image; XML filter
  kReconnect,  // "reconnect begin": libvirtd restarted; failure kills the VM
  kAttach,     // "attach begin": libvirt attaches to an external QEMU; like reconnect
  kOther,      // any other operation / sub-operation: not ours, exit 0
};

// What the hook does for an operation.
enum class Action {
  kAdd,       // create or claim every port; undo on failure
  kConfirm,   // make sure every port exists (re-adds a missing one)
  kRemove,    // remove the domain's ports; never fails
  kReassert,  // re-add; only a refused port fails, never a degraded one
  kFilter,    // add, then print the domain XML rewritten for this host
  kNone,
};

struct Invocation {
  std::string domain;
  std::string operation;      // as given
  std::string sub_operation;  // as given
  std::string extra;          // "-" usually
  Operation op = Operation::kOther;
};

// argv[0] is the program. Errors: kMissingField when fewer than three
// arguments (domain, operation, sub-operation) are given.
Result<Invocation> parseArgv(const std::vector<std::string>& argv);

Action actionFor(Operation op);
const char* toString(Operation op);

}  // namespace nicoffload::hooks
