# Neither Conan nor vcpkg can be installed here, so check what both rely on: the install
# tree they package, and the names and paths they declare against it.
#   -DSOURCE_DIR=... -DWORK_DIR=... -DCXX=... -DVERSION=x.y.z
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

# Conan: names, version and sources.
file(READ "${SOURCE_DIR}/packaging/conan/conanfile.py" conan)
string(FIND "${conan}" "version = \"${VERSION}\"" at)
expect(NOT at EQUAL -1 WHAT "conanfile version is ${VERSION}")
foreach(needle "package_type = \"header-library\"" "no_copy_source = True" "self.info.clear()"
               "check_min_cppstd(self, 20)" "set_property(\"cmake_file_name\", \"uniws\")"
               "set_property(\"cmake_target_name\", \"uniws::uniws\")" "CMake(self).install()")
  string(FIND "${conan}" "${needle}" at)
  expect(NOT at EQUAL -1 WHAT "conanfile has ${needle}")
endforeach()
foreach(path CMakeLists.txt LICENSE cmake include)
  expect(EXISTS "${SOURCE_DIR}/${path}" WHAT "conan export_sources path ${path} exists")
endforeach()

# vcpkg: names, version, and the config path it fixes up.
file(READ "${SOURCE_DIR}/packaging/vcpkg/ports/uniws/vcpkg.json" port_json)
string(JSON port_version GET "${port_json}" version)
expect(port_version STREQUAL VERSION WHAT "vcpkg.json version is ${VERSION}")
file(READ "${SOURCE_DIR}/packaging/vcpkg/ports/uniws/portfile.cmake" portfile)
string(REGEX MATCH "CONFIG_PATH ([^ )]+)" _ "${portfile}")
expect(EXISTS "${prefix}/${CMAKE_MATCH_1}/uniwsConfig.cmake" WHAT "vcpkg config_fixup path ${CMAKE_MATCH_1} holds uniwsConfig.cmake")
string(FIND "${portfile}" "PACKAGE_NAME uniws" at)
expect(NOT at EQUAL -1 WHAT "vcpkg port fixes up package uniws")
file(READ "${SOURCE_DIR}/packaging/vcpkg/ports/uniws/usage" usage)
string(FIND "${usage}" "uniws::uniws" at)
expect(NOT at EQUAL -1 WHAT "vcpkg usage names uniws::uniws")

if(failures)
  message(FATAL_ERROR "packaging checks failed: ${failures}")
endif()
