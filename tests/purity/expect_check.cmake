# Runs NicoffloadPurityCheck.cmake (cmake -P) and checks its verdict: a check
# that cannot fail is a defect, so the planted violations in fixtures/ must
# make it fail and name each fault; what the pure core legitimately does must
# pass.
#
#   cmake -DCHECKER=<script> -DEXPECT=pass|fail [-DSOURCES=<file>]
#         [-DARCHIVES=<lib.a>] [-DINPUTS=<file>] [-DNM=<nm>]
#         [-DMATCH1=<regex>] [-DMATCH2=...] ... [-DMATCH5=...] -P expect_check.cmake
set(args "")
foreach(v SOURCES ARCHIVES INPUTS NM)
  if(DEFINED ${v})
    list(APPEND args "-D${v}=${${v}}")
  endif()
endforeach()
execute_process(COMMAND "${CMAKE_COMMAND}" ${args} -P "${CHECKER}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(EXPECT STREQUAL "fail" AND rc EQUAL 0)
  message(FATAL_ERROR "the purity check passed; it should have failed")
elseif(EXPECT STREQUAL "pass" AND NOT rc EQUAL 0)
  message(FATAL_ERROR "the purity check failed (${rc}); it should have passed")
elseif(NOT EXPECT MATCHES "^(pass|fail)$")
  message(FATAL_ERROR "EXPECT must be pass or fail, not '${EXPECT}'")
endif()
# Whitespace-insensitive: CMake wraps long messages.
string(REGEX REPLACE "[ \t\r\n]+" " " flat "${out}")
foreach(i RANGE 1 5)
  if(DEFINED MATCH${i} AND NOT flat MATCHES "${MATCH${i}}")
    message(FATAL_ERROR "the purity check's output does not match '${MATCH${i}}'")
  endif()
endforeach()
message(STATUS "purity check: ${EXPECT}ed as expected")
