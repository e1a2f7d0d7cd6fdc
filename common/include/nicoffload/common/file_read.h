// Reading a file a user named (a host config, a hardware profile, a ports or
// remotes file, the hook's config, a state file) with a bound.
//
// A path can name anything: /dev/zero or /dev/urandom never end, a FIFO
// blocks the open until a writer comes, a directory opens but does not
// read. Every file nicoffload reads on someone's word goes through
// readRegularFile(): a regular file of at most max_bytes, or an Error that
// names the setting (field) and the path, never a hang or an allocation
// without end.
#pragma once

#include <cstddef>
#include <string>

#include "nicoffload/common/error.h"

namespace nicoffload {

// Caps (bytes). A host config, a hook config or a hardware profile is a few
// KiB (the largest shipped profile is under 40 KiB).
inline constexpr std::size_t kMaxConfigFileBytes = 1u << 20;  // 1 MiB
// A ports or remotes file for the CLI: as large as one request to nicoffloadd
// may be (control.h kDefaultMaxRequestBytes, a remote.sync of 100 k remotes)
// with room for indentation.
inline constexpr std::size_t kMaxInputFileBytes = 64u << 20;  // 64 MiB
// nicoffloadd's own state files (snapshot, journal segments) and the
// simulated NIC's journal: 100 k remotes or 1 M rules are tens to hundreds
// of MiB; the cap only stops a device or a runaway file.
inline constexpr std::size_t kMaxStateFileBytes = std::size_t{4} << 30;  // 4 GiB

// Reads the whole of `path`, which must be a regular file (a symlink to one
// is followed) of at most `max_bytes` bytes. `field` names the setting the
// path came from ("hw_profile", "--file"); when empty, the path itself is the
// field. Errors (field: `field` or the path; value: the path when `field`
// is given):
//  - kIo: it cannot be opened (missing: "No such file or directory") or read;
//  - kInvalidValue: it is a directory ("is a directory"), or another file
//    that is not a regular one: a character or block device, a FIFO, a
//    socket ("... is a character device, not a regular file");
//  - kInvalidValue: it is larger than max_bytes ("larger than N bytes").
// Never blocks on a FIFO and never reads more than max_bytes + 1 bytes.
Result<std::string> readRegularFile(const std::string& path, std::size_t max_bytes,
                                    const std::string& field = {});

// Reads an open descriptor (a pipe, stdin) to its end, at most `max_bytes`
// bytes. `what` names it in errors ("stdin"). Errors: kIo (read failed),
// kInvalidValue (more than max_bytes). The descriptor stays open.
Result<std::string> readBoundedFd(int fd, std::size_t max_bytes, const std::string& what);

}  // namespace nicoffload
