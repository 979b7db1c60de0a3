#!/usr/bin/env bash
# Builds the Docker image with podman and checks it for real: it runs against the NzbDav
# stand-in on the host's loopback, serves a shard view (PROPFIND through the container),
# passes its own HEALTHCHECK command and runs as a user other than root.
#
# Docker Hub may be out of reach: the Dockerfile's FROM image is stood in for by a Debian
# made here with debootstrap once (scripts/podman-lib.sh).
#
# Skips (exit 0, saying why) where podman cannot run containers at all.
set -euo pipefail
cd "$(dirname "$0")/.."

image="localhost/shardproxy:test"

skip() {
    echo "container-test: SKIPPED: $*"
    exit 0
}
say() { echo "container-test: $*"; }
# shellcheck source=scripts/podman-lib.sh
. scripts/podman-lib.sh

work="$(mktemp -d)"
standin_pid=""
container=""
cleanup() {
    [ -z "$container" ] || podman rm -f -v "$container" >/dev/null 2>&1 || true
    [ -z "$standin_pid" ] || kill "$standin_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

podman_ready "$work"
[ -x .venv/bin/python ] || ./scripts/setup.sh
podman_base_image "$work"

say "building the image"
podman_build "$work/build.log" -t "$image" . || { echo "container-test: FAILED: podman build"; exit 1; }

free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url, what
    for _ in $(seq 1 300); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "container-test: FAILED: $2 did not answer at $1"
    return 1
}
standin_port="$(free_port)"
proxy_port="$(free_port)"
admin_port="$(free_port)"

.venv/bin/python -m nzbdav_standin --listen "127.0.0.1:$standin_port" >"$work/standin.log" 2>&1 &
standin_pid=$!
wait_http "http://127.0.0.1:$standin_port/" "the NzbDav stand-in"

container="shardproxy-test-$$"
# --health-interval=disable: no systemd timer here; the check is run by hand below.
podman run -d --name "$container" --network host --health-interval=disable \
    -e SHARDPROXY_BACKEND="http://127.0.0.1:$standin_port" \
    -e SHARDPROXY_LISTEN="127.0.0.1:$proxy_port" \
    -e SHARDPROXY_ADMIN_LISTEN="127.0.0.1:$admin_port" \
    -e SHARDPROXY_SHARDS=4 \
    "$image" >/dev/null 2>"$work/run.log" || { cat "$work/run.log"; exit 1; }
if ! wait_http "http://127.0.0.1:$admin_port/healthz" "the container's admin listener"; then
    podman logs "$container" | tail -n 40
    exit 1
fi

fail() {
    echo "container-test: FAILED: $*"
    podman logs "$container" 2>&1 | tail -n 20
    exit 1
}

# A shard view, through the container: shard 2 of 4 owns 8-b, so its root lists 8 9 a b.
listing="$(curl -s -u admin:secret -X PROPFIND -H 'Depth: 1' "http://127.0.0.1:$proxy_port/.ids-s2/")"
for level in 8 9 a b; do
    grep -q "<D:href>http://127.0.0.1:$proxy_port/.ids-s2/$level</D:href>" <<<"$listing" \
        || fail "PROPFIND /.ids-s2/ does not list $level: ${listing:0:400}"
done
grep -q '/.ids-s2/0<' <<<"$listing" && fail "PROPFIND /.ids-s2/ lists 0, which shard 0 owns"
say "PROPFIND /.ids-s2/ through the container lists exactly 8 9 a b"

# The status page is in the wheel (package data) and answers.
# (Read whole first: grep -q stops early, and pipefail would blame curl's broken pipe.)
page="$(curl -s "http://127.0.0.1:$admin_port/")"
grep -q 'id="initial-status"' <<<"$page" || fail "the status page is missing from the image"
metrics="$(curl -s "http://127.0.0.1:$admin_port/metrics")"
grep -q '^shardproxy_requests_total{method="PROPFIND",shard="2",status_class="2xx"} 1.0$' <<<"$metrics" \
    || fail "/metrics does not count the PROPFIND: $(grep requests_total <<<"$metrics")"
say "the status page and /metrics answer"

# The image's own HEALTHCHECK command, run the way the engine runs it.
podman healthcheck run "$container" || fail "the HEALTHCHECK command reports unhealthy"
health_cmd="$(podman inspect --format '{{json .Config.Healthcheck.Test}}' "$container")"
say "HEALTHCHECK passes: $health_cmd"

uid="$(podman exec "$container" id -u)"
[ "$uid" != "0" ] || fail "the container runs as root"
say "runs as uid $uid, not root"

# The product's own interpreter finds shardproxy but not the test stand-in.
podman run --rm --no-healthcheck --entrypoint /opt/shardproxy/bin/python "$image" -c \
    'import importlib.util as u, sys; sys.exit(not u.find_spec("shardproxy") or bool(u.find_spec("nzbdav_standin")))' \
    || fail "the image ships the nzbdav_standin test package (or lacks shardproxy)"
say "the image holds the product only (no nzbdav_standin)"

# With no variables the image's own defaults file applies: WebDAV on every interface.
defaults="$(podman run --rm --no-healthcheck "$image" check)"
grep -q '^listen   0.0.0.0:8765$' <<<"$defaults" || fail "the image's defaults are not used: $defaults"
say "without variables it listens on :8765 (the image's defaults file)"
say "passed"
