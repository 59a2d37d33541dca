# The install tree that find_package, pkg-config, Conan and vcpkg users get: every public header
# and nothing else, the uniws::uniws target, no lib/ (header-only).
#   -DSOURCE_DIR=... -DWORK_DIR=... -DCXX=...
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${WORK_DIR}")
execute_process(COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" -G Ninja -DCMAKE_CXX_COMPILER=${CXX}
                        -DUNIWS_BUILD_TESTS=OFF -DUNIWS_BUILD_EXAMPLES=OFF -DUNIWS_BUILD_BENCHMARKS=OFF
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configure failed: ${err}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --install "${WORK_DIR}/build" --prefix "${WORK_DIR}/prefix"
                RESULT_VARIABLE rc OUTPUT_QUIET)
set(prefix "${WORK_DIR}/prefix")
set(failures "")
# expect(<condition...> WHAT <text>): the condition is passed to if() as separate arguments.
function(expect)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "WHAT" "")
  if(${arg_UNPARSED_ARGUMENTS})
    message(STATUS "ok: ${arg_WHAT}")
  else()
    message(STATUS "FAILED: ${arg_WHAT}")
    set(failures "${failures};${arg_WHAT}" PARENT_SCOPE)
  endif()
endfunction()

# The install tree.
expect(EXISTS "${prefix}/share/cmake/uniws/uniwsConfig.cmake" WHAT "install tree has share/cmake/uniws/uniwsConfig.cmake")
expect(EXISTS "${prefix}/share/cmake/uniws/uniwsConfigVersion.cmake" WHAT "install tree has uniwsConfigVersion.cmake")
expect(EXISTS "${prefix}/share/pkgconfig/uniws.pc" WHAT "install tree has share/pkgconfig/uniws.pc")
file(GLOB_RECURSE source_headers RELATIVE "${SOURCE_DIR}/include" "${SOURCE_DIR}/include/uniws/*.hpp")
file(GLOB_RECURSE installed_headers RELATIVE "${prefix}/include" "${prefix}/include/uniws/*.hpp")
list(SORT source_headers)
list(SORT installed_headers)
expect(source_headers STREQUAL installed_headers WHAT "every header under include/ is installed, and nothing else")
file(GLOB_RECURSE targets "${prefix}/share/cmake/uniws/uniwsTargets*.cmake")
file(READ "${prefix}/share/cmake/uniws/uniwsTargets.cmake" targets_text)
string(FIND "${targets_text}" "add_library(uniws::uniws INTERFACE IMPORTED)" at)
expect(NOT at EQUAL -1 WHAT "the exported target is uniws::uniws")
file(GLOB libs "${prefix}/lib*")
expect(NOT libs WHAT "no lib/ directory: header-only")

if(failures)
  message(FATAL_ERROR "install tree checks failed: ${failures}")
endif()
