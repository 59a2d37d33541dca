# vcpkg overlay port: vcpkg install uniws --overlay-ports=packaging/vcpkg/ports --editable
# It builds from this checkout (UNIWS_SOURCE_DIR, default: three levels up from the port). vcpkg
# keys its binary cache by the port's own files, not by the checkout: --editable keeps a changed
# header from coming back old out of that cache. (A port published to a registry pins a release
# with vcpkg_from_github instead, and its REF is then part of the key.)
if(NOT DEFINED UNIWS_SOURCE_DIR)
  get_filename_component(UNIWS_SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}/../../../.." ABSOLUTE)
endif()
set(VCPKG_BUILD_TYPE release)  # header-only: one configuration is enough

vcpkg_cmake_configure(
  SOURCE_PATH "${UNIWS_SOURCE_DIR}"
  OPTIONS
    -DUNIWS_BUILD_TESTS=OFF
    -DUNIWS_BUILD_EXAMPLES=OFF
    -DUNIWS_BUILD_BENCHMARKS=OFF
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(PACKAGE_NAME uniws CONFIG_PATH share/cmake/uniws)
vcpkg_fixup_pkgconfig()

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug" "${CURRENT_PACKAGES_DIR}/lib")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${UNIWS_SOURCE_DIR}/LICENSE")
