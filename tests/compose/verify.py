"""The checks scripts/compose-test.sh runs against the generated compose files, up.

Run from the repository after `podman-compose up -d` in the layout's compose folder::

    python -m tests.compose.verify --compose-dir DIR --layout shard-links ...

Each check prints one line with the seconds it took; the first that fails ends the run
with exit status 1 and the reason. `compose down`, and the check that it leaves nothing
behind, are the script's.
"""

from __future__ import annotations

import argparse
import base64
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nzbdav_standin import Library, expected_bytes, uuid_path
from shardproxy.core.shards import ShardMap
from shardproxy.tools.deploy.model import Layout

PROJECT = "shardproxy"  # the compose file's `name:`
READY_WITHIN = 120.0
SHARD = 2  # the shard killed in check 4


class CheckFailed(Exception):
    """A check did not hold; the message says what was seen."""


@dataclass(frozen=True)
class Link:
    """A library link as the rest mount shows it: a symlink into the merged mount."""

    path: Path
    target: str
    uuid: str
    shard: int


@dataclass
class Deployment:
    """The running compose deployment, as the command line describes it."""

    compose_dir: Path
    layout: Layout
    merged: Path
    mounts: dict[str, Path]  # rclone service -> its mount point on the host
    caches: dict[str, Path]  # rclone service -> its cache directory on the host
    library: Library
    shard_map: ShardMap
    rc_auth: str  # shardproxy's RC user:pass
    rclone_rc_pass: str
    admin_auth: str
    admin_port: int

    # -- podman ---------------------------------------------------------------

    def containers(self) -> dict[str, dict[str, object]]:
        """Every container of the project by service name (``podman inspect``)."""
        listed = podman("ps", "-a", "-q", "--filter", f"label=io.podman.compose.project={PROJECT}")
        ids = listed.split()
        if not ids:
            return {}
        found = {}
        for info in json.loads(podman("inspect", *ids)):
            service = info["Config"]["Labels"]["com.docker.compose.service"]
            found[service] = info
        return found

    def container(self, service: str) -> dict[str, object]:
        """One service's container, inspected now."""
        containers = self.containers()
        if service not in containers:
            raise CheckFailed(f"no container for service {service}")
        return containers[service]

    def compose(self, *args: str) -> None:
        """`podman-compose ARGS` in the compose folder, as a person runs it."""
        done = subprocess.run(
            [str(Path(sys.executable).parent / "podman-compose"), *args],
            cwd=self.compose_dir,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise CheckFailed(f"podman-compose {' '.join(args)}: {done.stderr[-800:]}")

    # -- what the host sees ---------------------------------------------------

    def links(self) -> list[Link]:
        """Every link under /completed-symlinks of the merged mount."""
        found = []
        for path in sorted((self.merged / "completed-symlinks").rglob("*")):
            if path.is_symlink():
                target = os.readlink(path)
                uuid = target.rsplit("/", 1)[-1]
                found.append(Link(path, target, uuid, self.shard_map.shard_of(uuid)))
        return found

    def expected(self, link: Link) -> bytes:
        size = self.library.ids[link.uuid].size
        return expected_bytes(uuid_path(link.uuid), size, 0, size - 1)

    def cached(self, service: str) -> set[str]:
        """File names in a mount's data cache."""
        data = self.caches[service] / "vfs"
        return {p.name for p in data.rglob("*") if p.is_file()} if data.exists() else set()

    def recorded_whole(self, service: str, link: Link) -> bool:
        """Whether the mount's cache metadata (vfsMeta) records every byte of ``link``:
        what survives a crash. rclone writes it a few seconds after the file is closed."""
        remote = service.removeprefix("rclone-")
        meta = self.caches[service] / "vfsMeta" / remote / "/".join(link.uuid[:5]) / link.uuid
        try:
            ranges = json.loads(meta.read_text())["Rs"] or []
        except (OSError, ValueError):
            return False
        size = self.library.ids[link.uuid].size
        return any(r["Pos"] == 0 and r["Size"] >= size for r in ranges)

    def admin_page(self, path: str) -> str:
        """A page of shardproxy's admin listener, through the port published on the host."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.admin_port}{path}",
            headers={"Authorization": basic(self.admin_auth)},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            text: str = reply.read().decode()
            return text

    def metrics(self) -> str:
        """shardproxy's /metrics."""
        return self.admin_page("/metrics")

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics (0 when it is not there yet)."""
        wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
        match = re.search(rf"^{name}{{{re.escape(wanted)}}} (\S+)$", self.metrics(), re.M)
        return float(match.group(1)) if match else 0.0

    def rclone_files_cached(self, service: str) -> int:
        """How many entries an rclone's VFS holds in its metadata cache (``vfs/stats``)."""
        out = podman(
            "exec",
            str(self.container(service)["Name"]),
            "rclone",
            "rc",
            "vfs/stats",
            "--url",
            "http://127.0.0.1:5572/",
            "--user",
            "rclone",
            "--pass",
            self.rclone_rc_pass,
        )
        cache = json.loads(out)["metadataCache"]
        return int(cache["files"]) + int(cache["dirs"])


def podman(*args: str) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CheckFailed(f"podman {' '.join(args[:3])}...: {done.stderr.strip()[-500:]}")
    return done.stdout


def basic(user_pass: str) -> str:
    return "Basic " + base64.b64encode(user_pass.encode()).decode()


def poll(ready: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not ready():
        if time.monotonic() > deadline:
            raise CheckFailed(f"not after {within:.0f} s: {what}")
        time.sleep(0.2)


def mounted(path: Path) -> bool:
    """A live mount at ``path`` (a stale one answers ENOTCONN)."""
    try:
        return os.path.ismount(path) and (os.listdir(path) is not None)
    except OSError:
        return False


def read_through_failover(path: Path, within: float = 15.0) -> bytes:
    """Read ``path``, allowing the moment after a crash when the dead branch still answers.

    mergerfs skips a branch that fails; for about a second the kernel may still hold the
    dead mount's entries and the open fails with ENOTCONN (as in tests/e2e).
    """
    deadline = time.monotonic() + within
    while True:
        try:
            return path.read_bytes()
        except OSError as error:
            if error.errno != errno.ENOTCONN or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# -- the checks ---------------------------------------------------------------------


def check_up_and_healthy(d: Deployment) -> str:
    """1. Every service runs, shardproxy passes its health check, every mount is live."""
    services = {"nzbdav", "shardproxy", "mergerfs", *d.mounts}

    def all_running() -> bool:
        found = d.containers()
        return all(
            s in found and found[s]["State"]["Running"]  # type: ignore[index]
            for s in services
        )

    poll(all_running, READY_WITHIN, f"every service running ({sorted(services)})")
    # podman 4.3 runs health checks only from systemd timers: run shardproxy's by hand.
    name = str(d.container("shardproxy")["Name"])
    poll(
        lambda: subprocess.run(["podman", "healthcheck", "run", name], check=False).returncode == 0,
        READY_WITHIN,
        "shardproxy's health check passes",
    )
    for service, point in d.mounts.items():
        poll(lambda p=point: mounted(p), READY_WITHIN, f"{service}'s mount {point} is live")
    poll(lambda: mounted(d.merged), READY_WITHIN, f"mergerfs at {d.merged} is live")
    page = d.admin_page("/")
    if 'id="initial-status"' not in page:
        raise CheckFailed(f"no status page on the host's port {d.admin_port}: {page[:200]!r}")
    return (
        f"{len(services)} services up, shardproxy healthy, {len(d.mounts)} + 1 mounts live, "
        f"status page on 127.0.0.1:{d.admin_port}"
    )


def check_reads_land_in_their_shard(d: Deployment) -> str:
    """2. A file read through the host's merged path has the stand-in's bytes and is
    cached by its own shard's rclone only."""
    links = d.links()
    folder = ".ids" if d.layout is Layout.LINKS_UNCHANGED else ".ids-s{shard}"
    picked = {}
    for link in links:
        want = f"{d.merged}/{folder.format(shard=link.shard)}/"
        if not link.target.startswith(want):
            raise CheckFailed(f"{link.path} points to {link.target}, not under {want}")
        picked.setdefault(link.shard, link)
    if sorted(picked) != list(range(d.shard_map.count)):
        raise CheckFailed(f"the library has links of shards {sorted(picked)} only")
    for link in picked.values():
        got = link.path.read_bytes()
        if got != d.expected(link):
            raise CheckFailed(f"{link.path}: {len(got)} bytes that are not the stand-in's")
    for shard in range(d.shard_map.count):
        mine = {link.uuid for link in picked.values() if link.shard == shard}
        if d.cached(f"rclone-shard{shard}") != mine:
            raise CheckFailed(f"shard {shard} caches {d.cached(f'rclone-shard{shard}')}")
    if d.cached("rclone-rest"):
        raise CheckFailed(f"rest caches {d.cached('rclone-rest')}")
    return (
        f"{len(links)} links into {folder.format(shard='<N>')}; one of each shard read: "
        "exact bytes, cached by its own shard only"
    )


def check_forget_reaches_the_owner(d: Deployment) -> str:
    """3. A forget sent as NzbDav sends it, to http://shardproxy:5575 from the NzbDav
    container, reaches the owning rclone, and changes no other shard's cache (rest is
    told to forget it too, but had never listed that folder)."""
    link = next(link for link in d.links() if link.shard == SHARD)
    link.path.read_bytes()  # its folder is listed and held in shard 2's VFS
    levels = ".ids/" + "/".join(link.uuid[:5])
    before = {service: d.rclone_files_cached(service) for service in d.mounts}
    script = (
        "import json, sys, urllib.request\n"
        "request = urllib.request.Request('http://shardproxy:5575/vfs/forget', "
        "data=json.dumps({'dir': sys.argv[1]}).encode(), method='POST', headers={"
        "'Content-Type': 'application/json; charset=utf-8', 'Authorization': sys.argv[2]})\n"
        "print(urllib.request.urlopen(request, timeout=30).read().decode())\n"
    )
    nzbdav = str(d.container("nzbdav")["Name"])
    reply = json.loads(
        podman("exec", nzbdav, "/opt/shardproxy/bin/python", "-c", script, levels, basic(d.rc_auth))
    )
    if reply.get("forgotten") != [levels]:
        raise CheckFailed(f"the proxy answered {reply}, not that {levels} was forgotten")
    after = {service: d.rclone_files_cached(service) for service in d.mounts}
    owner = f"rclone-shard{SHARD}"
    if not after[owner] < before[owner]:
        raise CheckFailed(f"{owner} holds {after[owner]} entries, {before[owner]} before")
    others = {s: (before[s], after[s]) for s in d.mounts if s != owner and before[s] != after[s]}
    if others:
        raise CheckFailed(f"the forget changed other rclones too: {others}")
    return (
        f"forget of {levels} reached {owner} ({before[owner]} -> {after[owner]} entries); "
        "no other cache changed"
    )


def check_a_killed_shard_is_restarted_and_failed_over(d: Deployment) -> str:
    """4. A shard whose rclone is killed (SIGKILL) is restarted by compose; while it is
    down its files read through rest; back up, they are served from its old cache."""
    service = f"rclone-shard{SHARD}"
    point = d.mounts[service]
    link = next(link for link in d.links() if link.shard == SHARD)
    link.path.read_bytes()
    poll(lambda: d.recorded_whole(service, link), 30, f"{service}'s cache records {link.uuid}")
    info = d.container(service)
    pid, restarts = int(info["State"]["Pid"]), int(info["RestartCount"])  # type: ignore[index]
    os.kill(pid, signal.SIGKILL)  # a crash: no stop through compose
    poll(
        lambda: int(d.container(service)["RestartCount"]) > restarts,  # type: ignore[call-overload]
        60,
        f"{service} restarted after SIGKILL",
    )
    poll(lambda: mounted(point), 60, f"{point} live again after the restart")
    # Down for a while: `podman kill` is a stop compose leaves alone (unless-stopped),
    # and it leaves the mount point stale, as a crash does.
    podman("kill", "--signal", "KILL", str(d.container(service)["Name"]))
    poll(lambda: not mounted(point), 30, f"{point} down after the kill")
    fallbacks = d.metric("shardproxy_fallback_reads_total", shard=str(SHARD))
    got = read_through_failover(link.path)
    if got != d.expected(link):
        raise CheckFailed(f"{link.path} read {len(got)} wrong bytes with its shard down")
    poll(
        lambda: d.metric("shardproxy_fallback_reads_total", shard=str(SHARD)) > fallbacks,
        10,
        "the proxy counted the read through rest",
    )
    if link.uuid in d.cached("rclone-rest"):
        raise CheckFailed("the read through rest was cached by rest")
    # What docs/docker-compose.md has a person do around replacing the shard's disk.
    d.compose("stop", service)
    d.compose("start", service)
    poll(lambda: mounted(point), 60, f"{point} live again after `podman-compose start`")
    gets = d.metric("shardproxy_requests_total", method="GET", shard=str(SHARD), status_class="2xx")
    if link.path.read_bytes() != d.expected(link):
        raise CheckFailed(f"{link.path} read wrong bytes after the restart")
    gets_after = d.metric(
        "shardproxy_requests_total", method="GET", shard=str(SHARD), status_class="2xx"
    )
    if gets_after != gets:
        raise CheckFailed(f"the restarted shard fetched again ({gets} -> {gets_after} GETs)")
    return (
        f"{service} restarted after SIGKILL; with it down {link.path.name} read through rest "
        "(counted as fail-over, not cached there); back up, served from its old cache"
    )


CHECKS = (
    check_up_and_healthy,
    check_reads_land_in_their_shard,
    check_forget_reaches_the_owner,
    check_a_killed_shard_is_restarted_and_failed_over,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.compose.verify")
    parser.add_argument("--compose-dir", type=Path, required=True)
    parser.add_argument("--layout", choices=[layout.value for layout in Layout], required=True)
    parser.add_argument("--mount-root", type=Path, required=True)
    parser.add_argument("--cache-root", type=Path, required=True, help="holds s0.. and rest")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--ids", type=int, required=True, help="the stand-in's --ids")
    parser.add_argument("--seed", type=int, required=True, help="the stand-in's --seed")
    parser.add_argument("--rc-auth", required=True, metavar="USER:PASS")
    parser.add_argument("--rclone-rc-pass", required=True)
    parser.add_argument("--admin-auth", required=True, metavar="USER:PASS")
    parser.add_argument("--admin-port", type=int, default=8766)
    return parser


def deployment(options: argparse.Namespace) -> Deployment:
    layout = Layout(options.layout)
    root: Path = options.mount_root
    mounts = {}
    for shard in range(options.shards):
        folder = ".ids" if layout is Layout.LINKS_UNCHANGED else f".ids-s{shard}"
        mounts[f"rclone-shard{shard}"] = root / "shards" / f"s{shard}" / folder
    mounts["rclone-rest"] = root / "shards" / "rest"
    caches = {f"rclone-shard{n}": options.cache_root / f"s{n}" for n in range(options.shards)}
    caches["rclone-rest"] = options.cache_root / "rest"
    return Deployment(
        compose_dir=options.compose_dir,
        layout=layout,
        merged=root / "nzbdav",
        mounts=mounts,
        caches=caches,
        library=Library.sample(options.ids, seed=options.seed),
        shard_map=ShardMap.even(options.shards),
        rc_auth=options.rc_auth,
        rclone_rc_pass=options.rclone_rc_pass,
        admin_auth=options.admin_auth,
        admin_port=options.admin_port,
    )


def run(checks: Iterator[Callable[[Deployment], str]], d: Deployment) -> int:
    for number, check in enumerate(checks, 1):
        started = time.monotonic()
        try:
            said = check(d)
        except (CheckFailed, OSError, subprocess.SubprocessError) as failure:
            print(f"compose-test: FAILED check {number} ({check.__name__}): {failure}")
            return 1
        print(f"compose-test: check {number} passed in {time.monotonic() - started:.1f} s: {said}")
    return 0


if __name__ == "__main__":
    sys.exit(run(iter(CHECKS), deployment(_parser().parse_args())))
