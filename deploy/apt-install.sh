#!/usr/bin/env bash
# Install the Debian packages named that are not installed yet, quietly, starting no service.
#
#   bash deploy/apt-install.sh PACKAGE...
#
# Used by deploy/dev.sh and the benchmarks' set-up. Packages such as nginx and prometheus start a
# system service from their maintainer scripts; the tests and benchmarks start their own on loopback,
# so a policy-rc.d that answers 101 ("action forbidden") keeps the install from starting any.
set -euo pipefail

missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

printf 'apt-install: installing Debian packages: %s\n' "${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
policy=/usr/sbin/policy-rc.d
if [ -e "$policy" ]; then  # someone else's policy: leave it as it is
  exec apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
printf '#!/bin/sh\nexit 101\n' >"$policy"
chmod +x "$policy"
trap 'rm -f "$policy"' EXIT
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
