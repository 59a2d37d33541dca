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
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bare_debian.sh: needs root (debootstrap, chroot, mount)" >&2; exit 1; }

root="$PWD/build/bare/root"
cache="${HOME}/.cache/uniws-bare"
mkdir -p "$cache/debootstrap" "$cache/apt" "${HOME}/.cache/ccache"

# The Debian mirror apt uses here (deb822 sources or a one-line sources.list).
mirror=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\/\?\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(http[^ ]*\/debian\/\?\) bookworm .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
[ -n "$mirror" ] || { echo "bare_debian.sh: no Debian mirror found in apt's sources" >&2; exit 1; }

mounts=()
unmount_all() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -R "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" || true; done
  mounts=()
}
mount_into() {  # mount_into TARGET_IN_ROOT MOUNT_ARGS...
  mkdir -p "$root$1"
  mount "${@:2}" "$root$1"
  mount --make-rslave "$root$1" 2>/dev/null || true
  mounts+=("$root$1")
}
trap unmount_all EXIT

# Anything still mounted under an old root (an interrupted run) goes before the root does.
if [ -d "$root" ]; then
  findmnt -rn -o TARGET | grep "^$root" | sort -r | xargs -r -n1 umount -l
  rm -rf --one-file-system "$root"
fi
mkdir -p "$root"

t=$SECONDS
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

env=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "CI=${CI:-}")
for var in UNIWS_CONAN UNIWS_VCPKG UNIWS_VCPKG_ROOT UNIWS_VCPKG_TRIPLETS; do
  [ -n "${!var:-}" ] || continue
  path=$(realpath "${!var}")
  dir=$path && [ -d "$path" ] || dir=$(dirname "$path")
  mount_into "/opt/uniws-tools/$var" --bind "$dir"
  mount -o remount,bind,ro "$root/opt/uniws-tools/$var"
  env+=("$var=/opt/uniws-tools/$var${path#"$dir"}")
done

git clone -q --no-local "$PWD" "$root/root/uniws"
t=$SECONDS
chroot "$root" /usr/bin/env -i "${env[@]}" /bin/bash -c \
  'cd /root/uniws && scripts/setup.sh && scripts/demo.sh && scripts/test.sh'
echo "bare: set-up, demo and quick suite in the chroot in $((SECONDS - t)) s"
unmount_all
rm -rf --one-file-system "$root"
