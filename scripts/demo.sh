#!/usr/bin/env bash
# Sets everything up, then runs the demo: an NzbDav stand-in behind shardproxy.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/shardproxy demo "$@"
