#!/bin/sh
# Installs what Wrenn needs on a fresh Debian machine: npm packages, and (as root) the
# Debian packages for QEMU, image building and PostgreSQL. Safe to run again: it only
# does work that is missing.
set -eu
cd "$(dirname "$0")/.."

DEBS="qemu-system-x86 qemu-utils busybox-static mmdebstrap e2fsprogs nftables iproute2 postgresql"
missing=""
for p in $DEBS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "wrenn: installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "wrenn: missing Debian packages:$missing"
    echo "wrenn: run as root, or: sudo apt-get install -y$missing"
    exit 1
  fi
fi

# npm ci only when the lock file changed since the last install.
stamp=node_modules/.wrenn-lock-hash
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "wrenn: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
