#!/usr/bin/env bash
# The Conan 2 recipe, run as the README writes it: `conan create packaging/conan
# -s compiler.cppstd=20` with a scratch CONAN_HOME; its test_package is built and run, and the
# package holds exactly include/.
#   conan_test.sh SOURCE_DIR WORK_DIR   (the compiler: $CXX; the client: $UNIWS_CONAN or `conan`)
set -euo pipefail
source_dir=$(cd "$1" && pwd) work=$2
. "$source_dir/tests/packaging/client.sh"
conan=$(client conan UNIWS_CONAN)

rm -rf "$work" && mkdir -p "$work"
export CONAN_HOME="$work/conan-home"
"$conan" profile detect >/dev/null 2>&1
# The test package is built from a copy: a test leaves nothing in the source tree.
cp -r "$source_dir/packaging/conan/test_package" "$work/test_package"
"$conan" create "$source_dir/packaging/conan" -s compiler.cppstd=20 --test-folder "$work/test_package"

"$conan" install --requires "uniws/$("$conan" inspect "$source_dir/packaging/conan" --format json |
  /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')" \
  -s compiler.cppstd=20 --deployer direct_deploy --output-folder "$work/deploy" >/dev/null
same_headers "$work/deploy/direct_deploy/uniws/include" "$source_dir"
