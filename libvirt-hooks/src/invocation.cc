#include "nicoffload/hooks/invocation.h"

namespace nicoffload::hooks {

Result<Invocation> parseArgv(const std::vector<std::string>& argv) {
  if (argv.size() < 4)
    return makeError(ErrorCode::kMissingField, "argv",
                     std::to_string(argv.empty() ? 0 : argv.size() - 1),
                     "usage: nicoffload-hook <domain> <operation> <sub-operation> [<extra>] "
                     "(run by libvirt as a qemu hook, domain XML on stdin)");
  Invocation inv;
  inv.domain = argv[1];
  inv.operation = argv[2];
  inv.sub_operation = argv[3];
  inv.extra = argv.size() > 4 ? argv[4] : "-";
  const std::string& op = inv.operation;
  const std::string& sub = inv.sub_operation;
  struct Entry {
    const char* op;
    const char* sub;
    Operation value;
  };
  static constexpr Entry kTable[] = {
      {"prepare", "begin", Operation::kPrepare}, {"start", "begin", Operation::kStart},
      {"started", "begin", Operation::kStarted}, {"stopped", "end", Operation::kStopped},
      {"release", "end", Operation::kRelease},   {"migrate", "begin", Operation::kMigrate},
      {"restore", "begin", Operation::kRestore}, {"reconnect", "begin", Operation::kReconnect},
      {"attach", "begin", Operation::kAttach},
  };
  for (const auto& e : kTable)
    if (op == e.op && sub == e.sub) inv.op = e.value;
  return inv;
}

Action actionFor(Operation op) {
  switch (op) {
    case Operation::kPrepare:
      return Action::kAdd;
    case Operation::kStart:
    case Operation::kStarted:
      return Action::kConfirm;
    case Operation::kStopped:
    case Operation::kRelease:
      return Action::kRemove;
    case Operation::kMigrate:
    case Operation::kRestore:
      return Action::kFilter;
    case Operation::kReconnect:
    case Operation::kAttach:
      return Action::kReassert;
    case Operation::kOther:
      return Action::kNone;
  }
  return Action::kNone;
}

const char* toString(Operation op) {
  switch (op) {
    case Operation::kPrepare:
      return "prepare";
    case Operation::kStart:
      return "start";
    case Operation::kStarted:
      return "started";
    case Operation::kStopped:
      return "stopped";
    case Operation::kRelease:
      return "release";
    case Operation::kMigrate:
      return "migrate";
    case Operation::kRestore:
      return "restore";
    case Operation::kReconnect:
      return "reconnect";
    case Operation::kAttach:
      return "attach";
    case Operation::kOther:
      return "other";
  }
  return "other";
}

}  // namespace nicoffload::hooks
