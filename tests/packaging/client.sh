# Sourced by the package-manager tests. `client NAME VARIABLE` prints the client to run: the
# variable's value, else NAME on PATH. Without one the test is skipped (exit 77, ctest's
# SKIP_RETURN_CODE), except under CI, where a missing client fails it.
client() {
  local name=$1 variable=$2 found
  found=${!variable:-$(command -v "$name" || true)}
  if [ -n "$found" ] && [ -x "$found" ]; then
    printf '%s\n' "$found"
    return
  fi
  if [ -n "${CI:-}" ]; then
    echo "FAILED: no $name client (set $variable, or put $name on PATH); CI must run this test" >&2
    exit 1
  fi
  echo "SKIPPED: no $name client: set $variable, or put $name on PATH" >&2
  exit 77
}

# `same_headers INSTALLED_INCLUDE_DIR SOURCE_DIR`: what was installed is include/, byte for byte
# (a header left out of the install, or an old copy, fails here).
same_headers() {
  if ! diff -r "$2/include" "$1" >&2; then
    echo "FAILED: the installed headers in $1 differ from $2/include" >&2
    exit 1
  fi
  echo "installed headers match include/ ($(find "$1" -name '*.hpp' | wc -l) headers)"
}
