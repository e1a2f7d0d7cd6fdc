// One run of the qemu hook, without I/O of its own: the invocation, the
// domain XML read from stdin, the config and a daemon client in; the exit
// status and what to print out.
//
// Exit status: 0 done, or not ours (no nicoffload metadata, an operation the
// hook does not handle); 1 refused: `err` holds one line
// "nicoffload: <domain>: <message>" that libvirt shows to the user.
//  - prepare/start/started/migrate/restore: a port refused by nicoffloadd, bad
//    metadata or malformed XML → 1. Ports added by a failed prepare (migrate,
//    restore) are removed again before the hook exits.
//  - nicoffloadd unavailable (not running, or slower than timeout_ms):
//    on_daemon_down "fail" → 1; "allow" → 0 with a warning in `err`.
//  - stopped/release: always 0 (a failure is reported in `err`).
//  - reconnect/attach: 0 unless nicoffloadd refuses a port; a degraded port or
//    an unavailable daemon gives a warning only (a failing reconnect hook makes
//    libvirt kill the running VM).
#pragma once

#include <string>
#include <string_view>

#include "nicoffload/hooks/daemon_client.h"
#include "nicoffload/hooks/hook_config.h"
#include "nicoffload/hooks/invocation.h"

namespace nicoffload::hooks {

struct HookOutcome {
  int exit_code = 0;
  std::string out;  // stdout: the rewritten domain XML (migrate, restore), else empty
  std::string err;  // stderr: zero or more lines, each "nicoffload: <domain>: ..."
};

// `config` may be an error (a bad hook.json): it is reported only for domains
// that carry nicoffload metadata.
HookOutcome runHook(const Invocation& inv, std::string_view domain_xml,
                    const Result<HookConfig>& config, DaemonClient& daemon);

// Whether a failure of this operation must not fail the hook.
bool mustNotFail(Operation op);

}  // namespace nicoffload::hooks
