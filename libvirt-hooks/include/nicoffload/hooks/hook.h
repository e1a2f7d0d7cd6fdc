// One run of the qemu hook, without I/O of its own: the invocation, the
// domain XML read from stdin, the config and a daemon client in; the exit
// status and what to print out.
//
// Exit status: 0 done, or not ours (no nicoffload metadata, an operation the
// hook does not handle); 1 refused: `err` holds one line
// "nicoffload: <domain>: <message>" that libvirt shows to the user.
//  - prepare/start/started/migrate/restore: a port refused by nicoffloadd (or
//    a reply the hook cannot read), bad metadata or malformed XML → 1. Ports
//    added by a failed prepare (migrate, restore) are removed again before the
//    hook exits.
//  - nicoffloadd unavailable (not running, its listen queue full, or slower
//    than timeout_ms): on_daemon_down "fail" → 1; "allow" → 0 with a warning.
//  - stopped/release/reconnect/attach: always 0, whatever happens (a refused
//    or degraded port, an unavailable daemon, bad input, an exception): each
//    problem is a warning line in `err`. A failing reconnect hook makes
//    libvirt kill the running VM; a refused port there is reported degraded.
// Every line is printable (text.h): control bytes and invalid UTF-8 from the
// domain name, the XML or a reply are escaped.
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
// that carry nicoffload metadata. Never throws: this is the hook's exception
// boundary (an exception from the XML/JSON libraries or from `daemon` becomes
// an "internal error" line, with exit status 1, or 0 where mustNotFail).
HookOutcome runHook(const Invocation& inv, std::string_view domain_xml,
                    const Result<HookConfig>& config, DaemonClient& daemon);

// Whether a failure of this operation must not fail the hook.
bool mustNotFail(Operation op);

}  // namespace nicoffload::hooks
