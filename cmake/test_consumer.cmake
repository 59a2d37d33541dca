# Builds and runs tests/packaging/consumer against uniws in one of the ways a user gets it.
#   cmake -DMODE=find_package|find_package_mismatch|add_subdirectory|fetchcontent|pkg_config|single_include
#         -DSOURCE_DIR=<uniws sources> -DWORK_DIR=<scratch dir> -DCXX=<compiler> -P test_consumer.cmake
# find_package and pkg_config install uniws, then MOVE the prefix before using it, which
# proves the install tree is relocatable.
cmake_minimum_required(VERSION 3.25)
set(consumer "${SOURCE_DIR}/tests/packaging/consumer")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}\n${out}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

function(install_moved_prefix out_var)
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/uniws-build" -G Ninja -DCMAKE_CXX_COMPILER=${CXX}
      -DUNIWS_BUILD_TESTS=OFF -DUNIWS_BUILD_EXAMPLES=OFF -DUNIWS_BUILD_BENCHMARKS=OFF)
  run(${CMAKE_COMMAND} --install "${WORK_DIR}/uniws-build" --prefix "${WORK_DIR}/prefix")
  file(RENAME "${WORK_DIR}/prefix" "${WORK_DIR}/moved-prefix")
  # Nothing in the tree may still name where it was installed.
  file(GLOB_RECURSE files "${WORK_DIR}/moved-prefix/*")
  foreach(f IN LISTS files)
    file(READ "${f}" content)
    string(FIND "${content}" "${WORK_DIR}/prefix" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "${f} holds the absolute install path")
    endif()
  endforeach()
  set(${out_var} "${WORK_DIR}/moved-prefix" PARENT_SCOPE)
endfunction()

function(build_and_run_consumer)
  run(${CMAKE_COMMAND} -S "${consumer}" -B "${WORK_DIR}/consumer-build" -G Ninja -DCMAKE_CXX_COMPILER=${CXX} ${ARGN})
  run(${CMAKE_COMMAND} --build "${WORK_DIR}/consumer-build")
  run("${WORK_DIR}/consumer-build/consumer")
  message(STATUS "consumer ran: ${last_output}")
endfunction()

if(MODE STREQUAL "find_package")
  install_moved_prefix(prefix)
  build_and_run_consumer(-DUNIWS_CONSUMER_MODE=find_package -DCMAKE_PREFIX_PATH=${prefix})
elseif(MODE STREQUAL "find_package_mismatch")
  install_moved_prefix(prefix)
  execute_process(COMMAND ${CMAKE_COMMAND} -S "${consumer}" -B "${WORK_DIR}/consumer-build" -G Ninja
                          -DUNIWS_CONSUMER_MODE=find_package -DUNIWS_REQUIRED_VERSION=9.0 -DCMAKE_PREFIX_PATH=${prefix}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc EQUAL 0 OR NOT out MATCHES "uniws" OR NOT out MATCHES "9\\.0")
    message(FATAL_ERROR "find_package(uniws 9.0) was not rejected as expected:\n${out}")
  endif()
  message(STATUS "find_package(uniws 9.0) rejected, as it must be")
elseif(MODE STREQUAL "add_subdirectory" OR MODE STREQUAL "fetchcontent")
  build_and_run_consumer(-DUNIWS_CONSUMER_MODE=${MODE} -DUNIWS_SOURCE_DIR=${SOURCE_DIR})
elseif(MODE STREQUAL "pkg_config")
  install_moved_prefix(prefix)
  set(ENV{PKG_CONFIG_PATH} "${prefix}/share/pkgconfig")
  run(pkg-config --cflags uniws)
  string(STRIP "${last_output}" cflags)
  separate_arguments(cflags UNIX_COMMAND "${cflags}")
  run(${CXX} -std=c++20 ${cflags} "${consumer}/main.cpp" -o "${WORK_DIR}/consumer" -pthread)
  run("${WORK_DIR}/consumer")
  message(STATUS "consumer (pkg-config ${cflags}) ran: ${last_output}")
elseif(MODE STREQUAL "single_include")
  run(${CXX} -std=c++20 -Wall -Wextra -Wpedantic -Werror -I "${SOURCE_DIR}/single_include" "${consumer}/main.cpp"
      -o "${WORK_DIR}/consumer" -pthread)
  run("${WORK_DIR}/consumer")
  message(STATUS "consumer (single include) ran: ${last_output}")
else()
  message(FATAL_ERROR "unknown MODE ${MODE}")
endif()
