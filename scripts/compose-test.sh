#!/usr/bin/env bash
# Runs the compose file `shardproxy gen` writes, for real, with podman-compose: the
# sidecar shape (NzbDav, shardproxy, one rclone per shard plus rest, mergerfs), the
# shard-links layout, FUSE mounts reaching the host through an rshared mount root.
# Then it checks (tests/compose/verify.py): 1. every service up and healthy; 2. a file
# read through the host's merged path has NzbDav's bytes and is cached by its own shard
# only; 3. a forget sent to shardproxy's RC endpoint reaches the owning rclone; 4. a
# shard killed with SIGKILL is restarted, its files read through rest while it is down
# and from its old cache afterwards; 5. `compose down` leaves no mount and no container.
# Every command a person runs is the one the README's "Docker compose" section shows.
#
# Offline: the images the compose file names are stood in for by local ones, tagged
# with those names: nzbdav/nzbdav by the NzbDav stand-in, rclone/rclone:<pin> by the
# same rclone release scripts/setup.sh installs, both on the Debian base that
# container-test.sh makes (scripts/podman-lib.sh); they are reused by later runs.
#
# Skips (exit 0, saying why) only where podman cannot run containers at all. Always
# cleans up, also when a check fails: compose down, no mount, no container left.
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
    echo "compose-test: SKIPPED: $*"
    exit 0
}
say() { echo "compose-test: $*"; }
fail() {
    echo "compose-test: FAILED: $*"
    exit 1
}
# shellcheck source=scripts/podman-lib.sh
. scripts/podman-lib.sh

layout="shard-links"
project="shardproxy" # the compose file's `name:`
work="$(mktemp -d /tmp/shardproxy-compose.XXXXXX)"
root="$work/mnt"   # the mount root: a shared mount point
caches="$work/cache"
deploy="$work/deploy"
compose_dir="$deploy/$layout/compose"
compose=("$PWD/.venv/bin/podman-compose")
# The stand-in's library and NzbDav's settings (a person sets these in NzbDav's web UI).
standin_ids=16
standin_seed=8

part_started=0
part() { part_started=$SECONDS; say "$*"; }
part_done() { say "  ... $1 in $((SECONDS - part_started)) s"; }

fuse_mounts() { # the FUSE mounts under the mount root, deepest first
    awk -v root="$root" '$5 == root || index($5, root "/") == 1 { for (i = 7; $i != "-"; i++); if ($(i + 1) ~ /^fuse/) print $5 }' /proc/self/mountinfo | sort -r
}
containers() { podman ps -a -q --filter "label=io.podman.compose.project=$project"; }

anonymous_volumes=()
cleanup() {
    local status=$?
    set +e
    if [ -f "$compose_dir/compose.yaml" ] && [ -n "$(containers)" ]; then
        for container in $(containers); do
            while read -r volume; do
                [ -n "$volume" ] && anonymous_volumes+=("$volume")
            done < <(podman inspect -f '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}}{{"\n"}}{{end}}{{end}}' "$container")
        done
        (cd "$compose_dir" && "${compose[@]}" down >"$work/down-cleanup.log" 2>&1)
    fi
    for container in $(containers); do podman rm -f "$container" >/dev/null 2>&1; done
    for volume in "${anonymous_volumes[@]}"; do podman volume rm -f "$volume" >/dev/null 2>&1; done
    podman volume rm -f "${project}_shardproxy-state" >/dev/null 2>&1
    for point in $(fuse_mounts); do fusermount3 -uz "$point" 2>/dev/null; done
    if mountpoint -q "$root"; then umount -l "$root"; fi
    if [ -z "$(fuse_mounts)" ] && ! mountpoint -q "$root"; then rm -rf "$work"; fi
    exit "$status"
}
trap cleanup EXIT

part "preparing podman"
podman_ready "$work" golang-github-containernetworking-plugin-dnsname
[ -x .venv/bin/podman-compose ] || ./scripts/setup.sh
[ -x .tools/rclone-current/bin/rclone ] || ./scripts/setup.sh
podman_base_image "$work"
[ -e /dev/fuse ] || fail "/dev/fuse is missing: the rclone and mergerfs containers need it (modprobe fuse)"
for port in 3000 8766; do # what the compose file publishes on the host
    ! .venv/bin/python -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null \
        || fail "port $port is taken on this machine; the compose file publishes it"
done
part_done "ready"

part "building the images (the first run makes the stand-ins; later runs reuse them)"
rclone_image="$(.venv/bin/python -c 'from shardproxy.tools.deploy.compose import RCLONE_IMAGE; print(RCLONE_IMAGE)')"
nzbdav_image="$(.venv/bin/python -c 'from shardproxy.tools.deploy.compose import NZBDAV_IMAGE; print(NZBDAV_IMAGE)')"
# The README's `docker build -t shardproxy .`.
podman_build "$work/build-shardproxy.log" -t shardproxy . || fail "podman build of shardproxy"
podman_build "$work/build-nzbdav.log" -t "$nzbdav_image" -f tests/compose/nzbdav-standin.Dockerfile . \
    || fail "podman build of the NzbDav stand-in"
rclone_context="$work/rclone-context"
mkdir -p "$rclone_context"
cp .tools/rclone-current/bin/rclone "$rclone_context/rclone"
podman_build "$work/build-rclone.log" -t "$rclone_image" -f tests/compose/rclone-standin.Dockerfile "$rclone_context" \
    || fail "podman build of the rclone stand-in"
say "  rclone stand-in: $(podman run --rm "$rclone_image" version | head -n 1) as $rclone_image"
part_done "built"

part "host preparation and gen (README, Docker compose)"
mkdir -p "$root" "$deploy" "$caches"/s{0,1,2,3} "$caches/rest"
mount --bind "$root" "$root"
mount --make-rshared "$root"
podman run --rm --user 0:0 -v "$deploy:/out" shardproxy gen --out /out \
    --mount-root "$root" \
    --cache-dir "0=$caches/s0" --cache-dir "1=$caches/s1" \
    --cache-dir "2=$caches/s2" --cache-dir "3=$caches/s3" --rest-cache-dir "$caches/rest" \
    --cache-min-free-space 0=100M --cache-min-free-space 1=100M \
    --cache-min-free-space 2=100M --cache-min-free-space 3=100M \
    --nzbdav-pass secret --rclone-rc-pass rclone-secret \
    --rc-user nzbdav --rc-pass rc-secret --admin-user ops --admin-pass ops-secret \
    >"$work/gen.log" 2>&1 || { cat "$work/gen.log"; fail "gen in the image"; }
[ "$(stat -c %a "$compose_dir/.env")" = 600 ] || fail ".env is not mode 600"
grep -q rclone-secret "$compose_dir/compose.yaml" && fail "a password is in compose.yaml, not in .env"
# The stand-in takes NzbDav's settings as flags: WebDAV password, rclone mount dir.
cat >"$compose_dir/compose.override.yaml" <<EOF
services:
  nzbdav:
    command: [--password, secret, --mount-dir, "$root/nzbdav", --ids, "$standin_ids", --seed, "$standin_seed"]
EOF
part_done "generated"

part "docker compose build && docker compose up -d (podman-compose)"
cd "$compose_dir"
"${compose[@]}" config >"$work/config.yaml" 2>"$work/config.log" || { cat "$work/config.log"; fail "compose config"; }
"${compose[@]}" build >"$work/compose-build.log" 2>&1 || { tail -n 30 "$work/compose-build.log"; fail "compose build"; }
# Bounded: podman-compose waits for a container that failed to start without end.
timeout 300 "${compose[@]}" up -d >"$work/up.log" 2>&1 || {
    tail -n 30 "$work/up.log"
    podman ps -a --format '{{.Names}} {{.Status}}'
    fail "compose up (a container that did not start is listed above)"
}
cd - >/dev/null
part_done "up"

part "checks 1-4"
if ! .venv/bin/python -m tests.compose.verify --compose-dir "$compose_dir" --layout "$layout" \
    --mount-root "$root" --cache-root "$caches" --ids "$standin_ids" --seed "$standin_seed" \
    --rc-auth nzbdav:rc-secret --rclone-rc-pass rclone-secret --admin-auth ops:ops-secret; then
    for container in $(containers); do
        echo "--- $(podman inspect -f '{{.Name}}' "$container")"
        podman logs --tail 15 "$container" 2>&1
    done
    fail "a check failed (logs above)"
fi
# What docs/docker-compose.md has a person look at.
(cd "$compose_dir" && "${compose[@]}" ps >"$work/ps.log" 2>&1 && "${compose[@]}" logs shardproxy >"$work/logs.log" 2>&1) \
    || fail "compose ps / compose logs"
grep -q "${project}_rclone-shard2_1" "$work/ps.log" || fail "compose ps does not list rclone-shard2: $(cat "$work/ps.log")"
grep -q "shard 2's files are being read without its cache" "$work/logs.log" \
    || fail "compose logs shardproxy does not show the fail-over warning"
say "compose ps lists the services; compose logs shardproxy shows the fail-over warning"
part_done "checked"

part "check 5: docker compose down (podman-compose)"
for container in $(containers); do
    while read -r volume; do
        [ -n "$volume" ] && anonymous_volumes+=("$volume")
    done < <(podman inspect -f '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}}{{"\n"}}{{end}}{{end}}' "$container")
done
(cd "$compose_dir" && "${compose[@]}" down >"$work/down.log" 2>&1) || { tail -n 20 "$work/down.log"; fail "compose down"; }
left="$(fuse_mounts)"
[ -z "$left" ] || fail "compose down left mounts on the host: $left"
[ -z "$(containers)" ] || fail "compose down left containers: $(containers)"
say "check 5 passed: no mount under $root and no container left"
part_done "down"
say "passed"
