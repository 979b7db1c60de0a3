# Sourced by container-test.sh and compose-test.sh: podman made ready to run containers
# here, and the Debian base image the images build on. The caller defines say and skip.
#
# Docker Hub may be out of reach, so the Dockerfile's FROM image is stood in for by a
# Debian bookworm made here with debootstrap (from the mirror apt already uses) plus
# python3 and venv. It is kept in podman's storage and reused by later runs, also under
# the name debian:bookworm-slim (what the mergerfs recipe builds on).

base_image="docker.io/library/python:3.11-slim" # the Dockerfile's FROM
debian_image="docker.io/library/debian:bookworm-slim"
base_label="shardproxy.base=debootstrap-bookworm-1"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# podman_ready WORK PACKAGE...: install what is missing, write a containers.conf into
# WORK, and skip when podman cannot run here.
podman_ready() {
    local work="$1"
    shift
    local missing=() package
    for package in podman runc debootstrap "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # Root in some sandboxes lacks CAP_SYS_RESOURCE (so podman must not raise rlimits
    # past what it has) and crun rejects hybrid cgroup setups that runc takes.
    cat >"$work/containers.conf" <<'CONF'
[engine]
runtime = "runc"

[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
CONF
    export CONTAINERS_CONF="$work/containers.conf"
    podman info >"$work/podman-info.txt" 2>&1 || skip "podman cannot run here: $(tail -n 3 "$work/podman-info.txt")"
}

# podman_base_image WORK: the base image, the real one if it is here, else the one a
# previous run made, else made now.
podman_base_image() {
    local work="$1"
    if ! podman image exists "$base_image"; then
        local mirror rootfs
        mirror="$(grep -rhoE '^(URIs:|deb)[[:space:]]+[a-z]+://[^[:space:]]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
            | grep -v -- '-security' | awk '{print $2}' | grep -E '/debian/?$' | head -n 1 || true)"
        [ -n "$mirror" ] || skip "no Debian mirror found in /etc/apt/sources.list*, needed to make the base image"
        say "making the base image with debootstrap (a few minutes, once)"
        rootfs="$work/rootfs"
        if ! $sudo debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
            tail -n 20 "$work/debootstrap.log"
            skip "debootstrap could not make a base image"
        fi
        $sudo rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        $sudo tar -C "$rootfs" -c . | podman import \
            --change 'CMD ["python3"]' --change "LABEL $base_label" - "$base_image" >/dev/null
        $sudo rm -rf "$rootfs"
    fi
    podman image exists "$debian_image" || podman tag "$base_image" "$debian_image"
}

# podman_build LOG ARGS...: podman build with the host's CA bundle (pip and apt inside
# the build verify TLS with it: a proxy may re-sign); on failure, the log's end.
podman_build() {
    local log="$1"
    shift
    local ca_bundle=/etc/ssl/certs/ca-certificates.crt
    local args=(build --format docker --pull=never)
    [ -r "$ca_bundle" ] && args+=(--volume "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro")
    if ! podman "${args[@]}" "$@" >"$log" 2>&1; then
        tail -n 40 "$log"
        return 1
    fi
}
