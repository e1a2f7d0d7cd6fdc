# The pure core's build-time check (cmake -P): what its sources include and
# what its static libraries leave undefined. NicoffloadPurity.cmake runs it on
# every build (target nicoffload_purity); tests/purity/ runs it on planted
# violations to show that it fails.
#
#   cmake [-DINPUTS=<file>] [-DSOURCES=<file>] [-DARCHIVES=<lib.a>] [-DNM=<nm>]
#         [-DSTAMP=<file>] -P NicoffloadPurityCheck.cmake
#
# INPUTS   a CMake file that sets SOURCES and ARCHIVES (lists; written by
#          file(GENERATE) so that it can name $<TARGET_FILE:...>)
# SOURCES  sources and headers whose #include lines are checked
# ARCHIVES static libraries whose undefined symbols (nm -u) are checked
# NM       the nm to use (CMAKE_NM); default: nm on PATH
# STAMP    written when everything passed (the build's up-to-date marker)
#
# Exits non-zero and names every file and include/symbol at fault.
#
# What the pure core may use, decided from what it uses today: the C++
# library, nlohmann/json, and plain file I/O (the simulated NIC keeps a
# journal with open/read/write/rename/fstat; the model reads JSON files and
# finds the profiles from /proc/self/exe). What it must not: anything that
# talks to the kernel's network stack or a device (sockets, netlink, ioctl,
# mmap of device memory, namespaces), DPDK, libnl/libmnl, rdma-core, libvirt,
# and running programs (the design forbids running `ip` or `sysctl`).

cmake_minimum_required(VERSION 3.25)

# Header names (as written between <> or "") the pure core must not include.
set(_forbidden_includes
    "^linux/"          # kernel UAPI: netlink, if_link, devlink, vdpa, ethtool
    "^asm/"
    "^netlink/"        # libnl-3 (<netlink/netlink.h>, <netlink/route/...>)
    "^libnl3/"
    "^libmnl/"
    "^rte_"            # DPDK
    "^dpdk/"
    "^generic/rte_"
    "^infiniband/"     # rdma-core: verbs, mlx5dv (devx)
    "^libvirt/"
    "^sys/socket\\.h$"
    "^sys/un\\.h$"
    "^sys/ioctl\\.h$"
    "^sys/mman\\.h$"
    "^sys/syscall\\.h$"
    "^syscall\\.h$"
    "^sys/wait\\.h$"
    "^spawn\\.h$"
    "^sched\\.h$"      # setns/unshare
    "^net/"            # <net/if.h>: if_nametoindex (a socket ioctl)
    "^netinet/"
    "^netpacket/"
    "^arpa/"
    "^ifaddrs\\.h$"
    "^pcap")

# Undefined symbols (C names; C++ names are mangled and start with _Z) the
# pure libraries must not reference.
set(_forbidden_symbols
    "^(socket|socketpair|bind|connect|listen|accept4?|shutdown)$"
    "^(send|sendto|sendmsg|sendmmsg|recv|recvfrom|recvmsg|recvmmsg)$"
    "^(setsockopt|getsockopt|getsockname|getpeername)$"
    "^(ioctl|mmap|mmap64|munmap|mremap)$"
    "^(syscall|setns|unshare|clone|clone3)$"
    "^(if_nametoindex|if_indextoname|if_nameindex|getifaddrs)$"
    "^(system|popen|fork|vfork|execl|execle|execlp|execv|execve|execvp|execvpe|fexecve)$"
    "^posix_spawnp?$"
    "^_*rte_"                       # DPDK (functions and per-lcore data)
    "^per_lcore__*rte_"
    "^(nl|rtnl|genl|nla|nlmsg|nfnl|idiagnl)_"   # libnl-3 (nl_langinfo excepted below)
    "^mnl_"                         # libmnl
    "^(ibv|mlx5dv)_"                # rdma-core
    "^vir[A-Z]")                    # libvirt
set(_allowed_symbols "^nl_langinfo(_l)?$")

if(INPUTS)
  include("${INPUTS}")
endif()
if(NOT NM)
  set(NM nm)
endif()
list(REMOVE_ITEM SOURCES "")
list(REMOVE_ITEM ARCHIVES "")
if(NOT SOURCES AND NOT ARCHIVES)
  message(FATAL_ERROR "purity check: nothing to check (SOURCES and ARCHIVES are empty)")
endif()

set(_faults "")

foreach(src IN LISTS SOURCES)
  if(NOT EXISTS "${src}")
    list(APPEND _faults "${src}: missing (cannot check its includes)")
    continue()
  endif()
  file(STRINGS "${src}" lines REGEX "^[ \t]*#[ \t]*include")
  foreach(line IN LISTS lines)
    if(NOT line MATCHES "^[ \t]*#[ \t]*include[ \t]*[<\"]([^>\"]+)[>\"]")
      # A macro include (#include FOO_H): the check cannot see through it.
      list(APPEND _faults "${src}: '${line}': a computed #include hides what the pure core includes")
      continue()
    endif()
    set(header "${CMAKE_MATCH_1}")
    foreach(re IN LISTS _forbidden_includes)
      if(header MATCHES "${re}")
        list(APPEND _faults "${src}: includes <${header}>")
        break()
      endif()
    endforeach()
  endforeach()
endforeach()

foreach(lib IN LISTS ARCHIVES)
  if(NOT EXISTS "${lib}")
    list(APPEND _faults "${lib}: missing (cannot check its symbols)")
    continue()
  endif()
  # POSIX format: "<symbol> <type> ..." per line, "<lib>[<member>]:" per
  # archive member.
  execute_process(COMMAND "${NM}" --undefined-only --portability "${lib}"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    list(APPEND _faults "${lib}: ${NM} failed (${rc}): ${err}")
    continue()
  endif()
  string(REPLACE "\n" ";" out_lines "${out}")
  set(member "")
  foreach(line IN LISTS out_lines)
    if(line MATCHES "\\[([^]]+)\\]:$")
      set(member "${CMAKE_MATCH_1}")
      continue()
    endif()
    if(NOT line MATCHES "^([^ ]+) [UwvV]")
      continue()
    endif()
    string(REGEX REPLACE "@.*$" "" sym "${CMAKE_MATCH_1}")  # memcpy@GLIBC_2.14
    set(allowed FALSE)
    foreach(re IN LISTS _allowed_symbols)
      if(sym MATCHES "${re}")
        set(allowed TRUE)
      endif()
    endforeach()
    if(allowed)
      continue()
    endif()
    foreach(re IN LISTS _forbidden_symbols)
      if(sym MATCHES "${re}")
        list(APPEND _faults "${lib}(${member}): calls ${sym}")
        break()
      endif()
    endforeach()
  endforeach()
endforeach()

if(_faults)
  list(REMOVE_DUPLICATES _faults)
  list(JOIN _faults "\n  " text)
  message(FATAL_ERROR
    "pure core: forbidden includes or symbols (sockets, netlink, ioctl, DPDK, libnl, rdma-core, libvirt or "
    "running programs belong in a backend target, not in the model/planner/diff/simulator):\n  ${text}")
endif()
list(LENGTH SOURCES nsrc)
list(LENGTH ARCHIVES nlib)
message(STATUS "pure core: ${nsrc} sources and ${nlib} libraries checked: no forbidden include or symbol")
if(STAMP)
  file(TOUCH "${STAMP}")
endif()
