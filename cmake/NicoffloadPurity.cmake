# nicoffload_assert_pure(<target>...)
#
# Fails the configure step when a pure-core target links (directly or through
# another target) anything but the allowed libraries, or names a forbidden
# header directory. This is how the build shows that the model, planner and
# diff never reach DPDK, libnl, libvirt or sysfs code.
#
# Linking is not all: a pure source can call socket() or ioctl() from libc,
# or include <linux/netlink.h>, with no library added. So it also adds the
# target nicoffload_purity (built by default, after the pure libraries): it
# runs NicoffloadPurityCheck.cmake on the targets' sources and headers
# (#include lines) and on their static libraries (nm -u), and fails the build
# on a forbidden include or symbol. The lists, and why file I/O stays
# allowed, are in that script.
set(NICOFFLOAD_PURE_ALLOWED
    nicoffload_common nicoffload_journal nicoffload_model nicoffload_flowrules
    nicoffload_simnic nicoffload_trace nicoffload_devx_caps nlohmann_json::nlohmann_json
    ZLIB::ZLIB)

function(_nicoffload_collect_links target out)
  get_target_property(libs ${target} LINK_LIBRARIES)
  get_target_property(ilibs ${target} INTERFACE_LINK_LIBRARIES)
  set(all "")
  foreach(l IN LISTS libs ilibs)
    if(l AND NOT l MATCHES "-NOTFOUND$")
      string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" l "${l}")
      list(APPEND all "${l}")
      if(TARGET ${l})
        get_target_property(aliased ${l} ALIASED_TARGET)
        if(aliased)
          set(l ${aliased})
        endif()
        if(NOT l STREQUAL target)
          _nicoffload_collect_links(${l} sub)
          list(APPEND all ${sub})
        endif()
      endif()
    endif()
  endforeach()
  list(REMOVE_DUPLICATES all)
  set(${out} "${all}" PARENT_SCOPE)
endfunction()

function(nicoffload_assert_pure)
  foreach(target IN LISTS ARGN)
    _nicoffload_collect_links(${target} links)
    foreach(l IN LISTS links)
      if(NOT l IN_LIST NICOFFLOAD_PURE_ALLOWED)
        message(FATAL_ERROR
          "pure-core target '${target}' links '${l}'. The model/planner/diff must not "
          "depend on DPDK, libnl, libvirt, sysfs or any backend; move that code into a backend target.")
      endif()
    endforeach()
    get_target_property(incs ${target} INCLUDE_DIRECTORIES)
    foreach(i IN LISTS incs)
      if(i MATCHES "dpdk|libnl|libvirt")
        message(FATAL_ERROR "pure-core target '${target}' includes '${i}'")
      endif()
    endforeach()
  endforeach()
  message(STATUS "nicoffload: pure core checked (${ARGN}): links only ${NICOFFLOAD_PURE_ALLOWED}")
  _nicoffload_add_purity_check(${ARGN})
endfunction()

# The build-time half: sources and headers of the pure targets (their own
# include directories in the tree and the directories of their sources), and
# their archives.
function(_nicoffload_add_purity_check)
  set(sources "")
  set(archives "")
  foreach(target IN LISTS ARGN)
    get_target_property(dir ${target} SOURCE_DIR)
    get_target_property(srcs ${target} SOURCES)
    foreach(s IN LISTS srcs)
      if(s MATCHES "^\\$<")
        continue()
      endif()
      cmake_path(ABSOLUTE_PATH s BASE_DIRECTORY "${dir}" NORMALIZE OUTPUT_VARIABLE abs)
      list(APPEND sources "${abs}")
      cmake_path(GET abs PARENT_PATH src_dir)
      file(GLOB local_headers CONFIGURE_DEPENDS "${src_dir}/*.h" "${src_dir}/*.hpp")
      list(APPEND sources ${local_headers})
    endforeach()
    get_target_property(incs ${target} INCLUDE_DIRECTORIES)
    foreach(i IN LISTS incs)
      if(i MATCHES "^\\$<" OR NOT IS_DIRECTORY "${i}")
        continue()
      endif()
      cmake_path(IS_PREFIX PROJECT_SOURCE_DIR "${i}" NORMALIZE in_tree)
      if(in_tree)
        file(GLOB_RECURSE headers CONFIGURE_DEPENDS "${i}/*.h" "${i}/*.hpp")
        list(APPEND sources ${headers})
      endif()
    endforeach()
    list(APPEND archives "$<TARGET_FILE:${target}>")
  endforeach()
  list(REMOVE_DUPLICATES sources)
  set(inputs "${PROJECT_BINARY_DIR}/nicoffload-purity-inputs.cmake")
  set(stamp "${PROJECT_BINARY_DIR}/nicoffload-purity.stamp")
  set(checker "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/NicoffloadPurityCheck.cmake")
  file(GENERATE OUTPUT "${inputs}"
       CONTENT "set(SOURCES [==[${sources}]==])\nset(ARCHIVES [==[${archives}]==])\n")
  set(nm "${CMAKE_NM}")
  if(NOT nm)
    set(nm nm)
  endif()
  add_custom_command(OUTPUT "${stamp}"
    COMMAND "${CMAKE_COMMAND}" "-DINPUTS=${inputs}" "-DNM=${nm}" "-DSTAMP=${stamp}" -P "${checker}"
    DEPENDS ${ARGN} ${sources} "${checker}" "${inputs}"
    COMMENT "Checking the pure core's includes and undefined symbols (${ARGN})"
    VERBATIM)
  add_custom_target(nicoffload_purity ALL DEPENDS "${stamp}")
endfunction()
