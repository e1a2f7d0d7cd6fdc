// The kernel as `nicoffloadctl trace` asks it: route lookups as for a packet
// received on a device (RTM_GETROUTE with RTA_IIF, which runs the kernel's
// own input route lookup: forwarding, reverse-path filter, local addresses),
// proxy_arp, neighbours and VXLAN FDB entries, in the software path's network
// namespace. Read-only: it never changes anything in the kernel.
#pragma once

#include <memory>
#include <string>

#include "nicoffload/common/error.h"
#include "nicoffload/trace/trace.h"

namespace nicoffload::offload {

// A KernelView over rtnetlink in namespace `netns` (a name under /run/netns;
// empty = the caller's own). Errors: kNotFound when the namespace does not
// exist, kIo when the netlink socket cannot be opened.
Result<std::unique_ptr<trace::KernelView>> openKernelTraceView(const std::string& netns);

}  // namespace nicoffload::offload
