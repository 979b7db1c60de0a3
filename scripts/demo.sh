#!/usr/bin/env bash
# Sets everything up, then runs the demo: an NzbDav stand-in behind shardproxy.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# -m puts the source tree on the path, where the stand-in (not installed) lives.
exec .venv/bin/python -m shardproxy.cli demo "$@"
