# nicoffload_assert_pure(<target>...)
#
# Fails the configure step when a pure-core target links (directly or through
# another target) anything but the allowed libraries, or names a forbidden
# header directory. This is how the build shows that the model, planner and
# diff never reach DPDK, libnl, libvirt or sysfs code.
set(NICOFFLOAD_PURE_ALLOWED
    nicoffload_common nicoffload_model nicoffload_vdpa_model nicoffload_flowrules
    nicoffload_simnic nicoffload_devx_caps nlohmann_json::nlohmann_json)

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
endfunction()
