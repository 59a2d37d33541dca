#!/usr/bin/env bash
# The vcpkg port, run as the README writes it: `vcpkg install uniws
# --overlay-ports=packaging/vcpkg/ports --editable` into a scratch copy of a vcpkg root; then
# tests/packaging/consumer configured with vcpkg's toolchain file, built and run; the install
# holds exactly include/. Then a header changes and the port is installed again: vcpkg keys its
# binary cache by the port folder, not by the sources the port builds from, so without
# --editable it hands back the old headers.
#   vcpkg_test.sh SOURCE_DIR WORK_DIR   (the compiler: $CXX)
# The client: $UNIWS_VCPKG or `vcpkg`; its root (read-only is fine: it is copied) $UNIWS_VCPKG_ROOT,
# else the client's folder; $UNIWS_VCPKG_TRIPLETS, if set, is passed as --overlay-triplets.
set -euo pipefail
source_dir=$(cd "$1" && pwd) work=$2
. "$source_dir/tests/packaging/client.sh"
vcpkg=$(client vcpkg UNIWS_VCPKG)
root=${UNIWS_VCPKG_ROOT:-$(dirname "$vcpkg")}

# The binary cache stays between runs, as a user's does: a stale package would come from it.
rm -rf "$work/root" "$work/src" "$work/consumer-build" && mkdir -p "$work/binary-cache" "$work/downloads"
cp -r "$root" "$work/root" && chmod -R u+w "$work/root"
# The port builds from the checkout it sits in: a copy, so that the test can change a header.
mkdir -p "$work/src"
cp -r "$source_dir"/{CMakeLists.txt,LICENSE,cmake,include,packaging} "$work/src/"
export VCPKG_ROOT="$work/root" VCPKG_FORCE_SYSTEM_BINARIES=1 VCPKG_DOWNLOADS="$work/downloads" \
       VCPKG_DEFAULT_BINARY_CACHE="$work/binary-cache" VCPKG_DISABLE_METRICS=1
args=(uniws "--overlay-ports=$work/src/packaging/vcpkg/ports" --editable)
[ -z "${UNIWS_VCPKG_TRIPLETS:-}" ] || args+=("--overlay-triplets=$UNIWS_VCPKG_TRIPLETS")
installed="$work/root/installed/x64-linux"

"$vcpkg" install "${args[@]}"
same_headers "$installed/include" "$work/src"
# The port's version (vcpkg.json) is the library's (include/uniws/version.hpp).
version=$(sed -n 's/^#define UNIWS_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' "$source_dir/include/uniws/version.hpp" | paste -sd.)
"$vcpkg" list uniws | grep -q "^uniws:x64-linux *$version " ||
  { echo "FAILED: vcpkg lists $("$vcpkg" list uniws), not version $version" >&2; exit 1; }
cmake -S "$source_dir/tests/packaging/consumer" -B "$work/consumer-build" -G Ninja \
  "-DCMAKE_TOOLCHAIN_FILE=$work/root/scripts/buildsystems/vcpkg.cmake" -DUNIWS_CONSUMER_MODE=find_package
cmake --build "$work/consumer-build"
"$work/consumer-build/consumer"

echo "// changed by vcpkg_test.sh" >> "$work/src/include/uniws/version.hpp"
"$vcpkg" remove uniws
"$vcpkg" install "${args[@]}"
same_headers "$installed/include" "$work/src"
