#!/usr/bin/env bash
# Sets everything up, then runs the linters and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/python -m ruff check shardproxy nzbdav_standin tests loadtest
.venv/bin/python -m ruff format --check shardproxy nzbdav_standin tests loadtest
.venv/bin/python -m mypy
.venv/bin/lint-imports --no-cache
# pytest exits 5 when it collected nothing: set -e makes that a failure, as it should be.
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
