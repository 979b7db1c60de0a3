"""The deployment model of `shardproxy gen`: the mounts, their paths and command lines.

Pure: a ``Deployment`` (built from the settings by ``deployment_from``) and the paths of
the programs go in, ``Mount`` values and argv lists come out. The same ``Mount`` values
give both a unit's ``ExecStart`` (``deploy_files``) and the argv the stack runner
starts, so what the tests run is what the units say.

Two layouts (DESIGN.md): "links unchanged" mounts shard N's view at
``<root>/shards/s<N>/.ids`` so existing ``<root>/nzbdav/.ids/...`` symlinks resolve into
the owning shard; "shard links" mounts it at ``<root>/shards/s<N>/.ids-s<N>`` for links
that name the shard. Both join the shard folders and the ``rest`` mount (the proxy's
whole root, the fail-over branch) with mergerfs at ``<root>/nzbdav``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from yarl import URL

from shardproxy.config.settings import ConfigError, HostPort, Settings
from shardproxy.core.rclonelink import SYMLINKS_SINCE
from shardproxy.core.shards import IDS_NAME, view_name

# Bounds that make a dead proxy fail a read in seconds (docs/operations.md, "What Plex
# sees when something fails"): connection refused is retried once, a silent proxy is
# given up on after IO_TIMEOUT. rclone's defaults (10 low-level retries, 5 min idle
# timeout, 1 min connect timeout) times mergerfs asking every branch gave reads hanging
# for minutes.
CONNECT_TIMEOUT = "5s"
IO_TIMEOUT = "20s"
LOW_LEVEL_RETRIES = 2
RETRIES = 1
READ_FAILS_WITHIN = 60.0
"""Seconds within which a read through a mount fails when the proxy is down (tested)."""

# Forgets are routed to the owning rclone, so listings may be kept for long.
DIR_CACHE_TIME = "8760h"
# Cached files are evicted by size and free space, not by age: Usenet bytes are dear.
CACHE_MAX_AGE = "8760h"
# rclone 1.62 added --vfs-cache-min-free-space; 1.60.1 (Debian 12) refuses it.
MIN_FREE_SPACE_SINCE = (1, 62)

MERGERFS_THREADS = 16
MERGERFS_OPTIONS = (
    # Each shard view answers 404 for prefixes it does not own, so the first branch
    # that has a path is the owner; `rest`, last, finds everything else.
    "category.search=ff",
    "allow_other",
    # mergerfs's advice: page caching off (no double caching over rclone's own cache),
    # and longer attribute/entry caches in front of network filesystems. The negative
    # cache stays short so a file NzbDav adds shows up as soon as rclone forgets.
    "cache.files=off",
    "dropcacheonclose=true",
    "cache.attr=30",
    "cache.entry=30",
    "cache.negative_entry=1",
    # A lookup in mergerfs waits in one of its threads while an rclone asks NzbDav
    # (milliseconds, cold); mergerfs's default of one thread per CPU let two lookups
    # through at a time on a 2-CPU machine, and the four shard mounts could not work
    # at once (loadtest/scan.py: cold scans 2.5x slower than links past mergerfs).
    f"threads={MERGERFS_THREADS}",
    "fsname=shardproxy",
)


class Layout(enum.Enum):
    """How symlinks reach the shard mounts (DESIGN.md, "Two ways to deploy")."""

    LINKS_UNCHANGED = "links-unchanged"
    SHARD_LINKS = "shard-links"


@dataclass(frozen=True)
class Programs:
    """Absolute paths of the programs the units run (found at gen time)."""

    rclone: str = "/usr/bin/rclone"
    rclone_version: tuple[int, int] = (1, 60)
    mergerfs: str = "/usr/bin/mergerfs"
    fusermount: str = "/usr/bin/fusermount3"
    mkdir: str = "/usr/bin/mkdir"
    shardproxy: str = "/usr/local/bin/shardproxy"


@dataclass(frozen=True)
class RcEndpoint:
    """Where an rclone serves its remote control, and the credentials it demands."""

    addr: HostPort
    user: str
    password: str
    # Where the rclone listens, when not at ``addr``: in a container it listens on all
    # of its own interfaces and is called by its service name.
    listen: HostPort | None = None

    @property
    def url(self) -> URL:
        """The URL shardproxy calls, credentials included."""
        return URL.build(
            scheme="http",
            host=self.addr.host,
            port=self.addr.port,
            user=self.user,
            password=self.password,
        )


@dataclass(frozen=True)
class Deployment:
    """Everything the generated files depend on, validated by ``config``."""

    proxy_url: URL  # how the rclones reach the proxy
    shard_count: int
    mount_root: PurePosixPath
    config_dir: PurePosixPath  # where rclone.conf and shardproxy.toml are installed
    cache_dirs: tuple[PurePosixPath, ...]
    rest_cache_dir: PurePosixPath
    cache_max_size: Mapping[int, str] = field(default_factory=dict)  # default "off"
    cache_min_free_space: Mapping[int, str] = field(default_factory=dict)  # default 10G
    nzbdav_user: str | None = "admin"
    nzbdav_pass: str | None = None
    shard_rc: tuple[RcEndpoint, ...] = ()
    rest_rc: RcEndpoint | None = None
    log_level: str = "INFO"

    def cache_dir(self, shard: int) -> PurePosixPath:
        """Shard ``shard``'s rclone cache directory (on its own disk)."""
        return self.cache_dirs[shard]

    @property
    def merged(self) -> PurePosixPath:
        """Where mergerfs shows the library: what symlinks point into."""
        return self.mount_root / "nzbdav"

    @property
    def rest_mountpoint(self) -> PurePosixPath:
        """The mount of the proxy's whole root, mergerfs's last branch."""
        return self.mount_root / "shards" / "rest"

    def shard_branch(self, shard: int) -> PurePosixPath:
        """The mergerfs branch of a shard: the parent of its mount point."""
        return self.mount_root / "shards" / f"s{shard}"


@dataclass(frozen=True)
class Mount:
    """One `rclone mount` of a deployment."""

    name: str  # the rclone remote and the unit's stem
    mountpoint: PurePosixPath
    cache_dir: PurePosixPath
    cache_mode: str
    rc: RcEndpoint
    max_size: str | None = None
    min_free_space: str | None = None
    links: bool = False  # shows /completed-symlinks: .rclonelink files as symlinks

    @property
    def unit(self) -> str:
        """The systemd unit's file name."""
        return f"shardproxy-rclone-{self.name}.service"


def mounts(deployment: Deployment, layout: Layout) -> list[Mount]:
    """The shard mounts in shard order, then ``rest``."""
    found = []
    for shard in range(deployment.shard_count):
        folder = IDS_NAME if layout is Layout.LINKS_UNCHANGED else view_name(shard)
        found.append(
            Mount(
                name=f"shard{shard}",
                mountpoint=deployment.shard_branch(shard) / folder,
                cache_dir=deployment.cache_dir(shard),
                cache_mode="full",
                rc=deployment.shard_rc[shard],
                max_size=deployment.cache_max_size.get(shard, "off"),
                min_free_space=deployment.cache_min_free_space.get(shard, "10G"),
            )
        )
    assert deployment.rest_rc is not None
    # `rest` reads uncached: a fail-over read must not copy a shard's files onto the
    # rest disk, and everything else there is listings and small link files. It is the
    # mount that shows /completed-symlinks, so its links must be symlinks.
    found.append(
        Mount(
            "rest",
            deployment.rest_mountpoint,
            deployment.rest_cache_dir,
            "off",
            deployment.rest_rc,
            links=True,
        )
    )
    return found


def mount_argv(deployment: Deployment, programs: Programs, mount: Mount) -> list[str]:
    """The `rclone mount` command line of one mount, as its unit runs it."""
    argv = [
        programs.rclone,
        "mount",
        f"{mount.name}:",
        str(mount.mountpoint),
        "--config",
        str(deployment.config_dir / "rclone.conf"),
        "--cache-dir",
        str(mount.cache_dir),
        "--vfs-cache-mode",
        mount.cache_mode,
        "--dir-cache-time",
        DIR_CACHE_TIME,
        "--read-only",
        "--allow-other",
        "--rc",
        "--rc-addr",
        str(mount.rc.listen or mount.rc.addr),
        "--rc-user",
        mount.rc.user,
        "--rc-pass",
        mount.rc.password,
        "--contimeout",
        CONNECT_TIMEOUT,
        "--timeout",
        IO_TIMEOUT,
        "--low-level-retries",
        str(LOW_LEVEL_RETRIES),
        "--retries",
        str(RETRIES),
        "--log-level",
        deployment.log_level,
    ]
    if mount.links and programs.rclone_version >= SYMLINKS_SINCE:
        argv.append("--vfs-links")
    if mount.cache_mode == "full":
        argv += ["--vfs-cache-max-age", CACHE_MAX_AGE]
        if mount.max_size is not None:
            argv += ["--vfs-cache-max-size", mount.max_size]
        if mount.min_free_space is not None and programs.rclone_version >= MIN_FREE_SPACE_SINCE:
            argv += ["--vfs-cache-min-free-space", mount.min_free_space]
    return argv


def mergerfs_argv(deployment: Deployment, programs: Programs) -> list[str]:
    """The mergerfs command line: shard branches in order, then ``rest``, at ``merged``."""
    branches = [deployment.shard_branch(n) for n in range(deployment.shard_count)]
    branches.append(deployment.rest_mountpoint)
    return [
        programs.mergerfs,
        "-o",
        ",".join(MERGERFS_OPTIONS),
        ":".join(str(branch) for branch in branches),
        str(deployment.merged),
    ]


def proxy_argv(deployment: Deployment, programs: Programs) -> list[str]:
    """The shardproxy command line of its unit."""
    return [
        programs.shardproxy,
        "serve",
        "--config",
        str(deployment.config_dir / "shardproxy.toml"),
    ]


# -- from the settings ----------------------------------------------------------------


def deployment_from(settings: Settings) -> Deployment:
    """The deployment the settings describe; a ConfigError says what is missing."""
    count = settings.shard_map.count
    listen = settings.listen
    host = "127.0.0.1" if listen.host in ("0.0.0.0", "::") else listen.host
    proxy_url = URL(f"http://{HostPort(host, listen.port)}")

    def rc(url: URL | None, port: int, what: str) -> RcEndpoint:
        if url is not None:
            if url.host is None or url.port is None or not url.user or url.password is None:
                raise ConfigError(
                    f"{what} is {url.with_password(None)}: give it as http://USER:PASS@HOST:PORT "
                    "so the generated rclone demands those credentials"
                )
            return RcEndpoint(HostPort(url.host, url.port), url.user, url.password)
        if settings.rclone_rc_pass is None:
            raise ConfigError(
                f"{what}'s RC needs a password (rclone 1.74+ refuses unauthenticated cache "
                "calls): set rclone_rc_pass (--rclone-rc-pass), or give its URL with "
                "credentials in shard_rc / rc_fallback"
            )
        addr = HostPort("127.0.0.1", port)
        return RcEndpoint(addr, settings.rclone_rc_user, settings.rclone_rc_pass)

    base = settings.rclone_rc_port
    fallback = settings.rc_fallback[0] if settings.rc_fallback else None
    return Deployment(
        proxy_url=proxy_url,
        shard_count=count,
        mount_root=PurePosixPath(settings.mount_root),
        config_dir=PurePosixPath(settings.config_dir),
        cache_dirs=tuple(
            PurePosixPath(settings.cache_dir.get(n, f"/var/cache/shardproxy/s{n}"))
            for n in range(count)
        ),
        rest_cache_dir=PurePosixPath(settings.rest_cache_dir),
        cache_max_size=dict(settings.cache_max_size),
        cache_min_free_space=dict(settings.cache_min_free_space),
        nzbdav_user=settings.nzbdav_user,
        nzbdav_pass=settings.nzbdav_pass,
        shard_rc=tuple(rc(settings.shard_rc.get(n), base + n, f"shard {n}") for n in range(count)),
        rest_rc=rc(fallback, base + count, "the rest mount"),
        log_level="DEBUG" if settings.log_level == "debug" else "INFO",
    )
