#!/usr/bin/env bash
# The README's path on a bare Debian 12: debootstrap --variant=minbase (plus ca-certificates,
# nothing else) into build/bare/root, then in a chroot of it, in a clone of this checkout's HEAD:
#   scripts/setup.sh && scripts/demo.sh && scripts/test.sh
# A step that set-up forgot to install fails here, though the machine running it has it. Needs
# root and debootstrap; the mirror is the one this machine's apt uses. Kept between runs, under
# ~/.cache/uniws-bare: downloaded packages (the root itself is made anew each time), and ccache's
# cache is the caller's, so the chroot compiles little that this machine compiled before.
# UNIWS_CONAN, UNIWS_VCPKG, UNIWS_VCPKG_ROOT and UNIWS_VCPKG_TRIPLETS, when set, are mounted
# into the chroot read-only and passed on, as is CI: the packaging tests run there too.
#   scripts/bare_debian.sh             all of it
#   scripts/bare_debian.sh --prepare   the root and the README's set-up in it, left mounted
#   scripts/bare_debian.sh --run       then the demo and the quick suite; unmounts and removes
#   scripts/bare_debian.sh --clean     unmounts and removes a prepared root (never rm -rf a
#                                      mounted one: /dev and the ccache are bound into it)
# (scripts/test.sh --all prepares while other steps build: it is mostly downloading.)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bare_debian.sh: needs root (debootstrap, chroot, mount)" >&2; exit 1; }
mode=${1:-all}

root="$PWD/build/bare/root"
cache="${HOME}/.cache/uniws-bare"

unmount_all() {  # everything mounted under the root, innermost first
  findmnt -rn -o TARGET | grep "^$root/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
}
remove_root() {
  unmount_all
  [ -z "$(findmnt -rn -o TARGET | grep "^$root/")" ] || { echo "bare: $root still has mounts" >&2; exit 1; }
  rm -rf --one-file-system "$root"
}
mount_into() {  # mount_into TARGET_IN_ROOT MOUNT_ARGS...
  mkdir -p "$root$1"
  mount "${@:2}" "$root$1"
  mount --make-rslave "$root$1" 2>/dev/null || true
}
in_root() {  # in_root COMMAND: run in the chroot, as a fresh login would, with the tools' variables
  local env=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "CI=${CI:-}")
  for var in UNIWS_CONAN UNIWS_VCPKG UNIWS_VCPKG_ROOT UNIWS_VCPKG_TRIPLETS; do
    [ -z "${!var:-}" ] || env+=("$var=/opt/uniws-tools/$var$(tool_suffix "${!var}")")
  done
  chroot "$root" /usr/bin/env -i "${env[@]}" /bin/bash -c "cd /root/uniws && $1"
}
tool_dir() { local p; p=$(realpath "$1"); if [ -d "$p" ]; then echo "$p"; else dirname "$p"; fi; }
tool_suffix() { local p; p=$(realpath "$1"); echo "${p#"$(tool_dir "$1")"}"; }

prepare() {
  mkdir -p "$cache/debootstrap" "$cache/apt" "${HOME}/.cache/ccache"
  # The Debian mirror apt uses here (deb822 sources or a one-line sources.list).
  local mirror
  mirror=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\/\?\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
  [ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(http[^ ]*\/debian\/\?\) bookworm .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
  [ -n "$mirror" ] || { echo "bare: no Debian mirror found in apt's sources" >&2; exit 1; }

  [ ! -d "$root" ] || remove_root  # an interrupted run's
  mkdir -p "$root"
  local t=$SECONDS
  debootstrap --variant=minbase --include=ca-certificates --cache-dir="$cache/debootstrap" \
    bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
    { tail -n 30 "$root.debootstrap.log"; exit 1; }
  echo "bare: debootstrap minbase in $((SECONDS - t)) s ($(chroot "$root" dpkg-query -W | wc -l) packages)"

  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount_into /proc -t proc proc
  mount_into /sys -t sysfs sys
  mount_into /dev --rbind /dev
  mount_into /var/cache/apt/archives --bind "$cache/apt"
  mount_into /root/.cache/ccache --bind "${HOME}/.cache/ccache"
  for var in UNIWS_CONAN UNIWS_VCPKG UNIWS_VCPKG_ROOT UNIWS_VCPKG_TRIPLETS; do
    [ -n "${!var:-}" ] || continue
    mount_into "/opt/uniws-tools/$var" --bind "$(tool_dir "${!var}")"
    mount -o remount,bind,ro "$root/opt/uniws-tools/$var"
  done
  git clone -q --no-local "$PWD" "$root/root/uniws"

  t=$SECONDS
  in_root scripts/setup.sh
  echo "bare: the README's set-up (scripts/setup.sh) in $((SECONDS - t)) s ($(chroot "$root" dpkg-query -W | wc -l) packages now)"
}

run() {
  [ -d "$root/root/uniws" ] || { echo "bare: no prepared root (scripts/bare_debian.sh --prepare)" >&2; exit 1; }
  trap remove_root EXIT
  local t=$SECONDS
  in_root 'scripts/demo.sh && scripts/test.sh'
  echo "bare: the demo and the quick suite in the chroot in $((SECONDS - t)) s"
}

case "$mode" in
  --prepare) trap 'status=$?; [ $status -eq 0 ] || remove_root; exit $status' EXIT; prepare ;;
  --run) run ;;
  --clean) [ ! -d "$root" ] || remove_root ;;
  all) trap remove_root EXIT; prepare; run ;;
  *) echo "usage: scripts/bare_debian.sh [--prepare | --run | --clean]" >&2; exit 2 ;;
esac
