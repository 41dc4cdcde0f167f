#!/usr/bin/env bash
# Installs the Debian packages the lab needs (lab/system-packages.txt), only when one is missing.
set -euo pipefail
list="$(dirname "$0")/system-packages.txt"
mapfile -t packages < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' -e 's/[[:space:]]//g' "$list")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) != 0 ]]; then
  echo "lockdown: missing packages: ${missing[*]} - run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "lockdown: installing ${missing[*]} ..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
