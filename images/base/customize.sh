#!/bin/sh
# mmdebstrap customize hook for `base`: $1 is the root directory of the new image.
# Adds the sandbox user (uid/gid 1000, passwordless sudo) that envd runs commands as.
set -eu
root="$1"
chroot "$root" groupadd --gid 1000 user
chroot "$root" useradd --uid 1000 --gid 1000 --create-home --home-dir /home/user --shell /bin/bash user
echo 'user ALL=(ALL:ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/user"
chmod 0440 "$root/etc/sudoers.d/user"
echo wrenn >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 wrenn\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
