#!/usr/bin/env bash
# Sets everything up, then runs the whole stack on this machine: an NzbDav stand-in,
# shardproxy, one rclone mount per shard plus `rest`, mergerfs and a Plex-style library
# of symlinks, in a folder that is removed again on Ctrl-C. FUSE mounts need root.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
args=("$@")
case " $* " in
    *" --mount "* | *" --mount="*) ;;
    *) args+=(--mount "${TMPDIR:-/tmp}/shardproxy-demo") ;;
esac
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# -m puts the source tree on the path, where the stand-in (not installed) lives.
exec $sudo .venv/bin/python -m shardproxy.cli demo "${args[@]}"
