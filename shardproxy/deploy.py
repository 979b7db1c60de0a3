"""`shardproxy gen`: the rclone, mergerfs, systemd and compose files of a deployment.

Pure: a ``Deployment`` (built from the settings) and the paths of the programs go in,
file texts come out; the command line writes them. The same ``Mount`` values give both
a unit's ``ExecStart`` and the argv the stack runner starts, so what the tests run is
what the units say.

Two layouts (DESIGN.md): "links unchanged" mounts shard N's view at
``<root>/shards/s<N>/.ids`` so existing ``<root>/nzbdav/.ids/...`` symlinks resolve into
the owning shard; "shard links" mounts it at ``<root>/shards/s<N>/.ids-s<N>`` for links
that name the shard. Both join the shard folders and the ``rest`` mount (the proxy's
whole root, the fail-over branch) with mergerfs at ``<root>/nzbdav``.
"""

from __future__ import annotations

import base64
import enum
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from yarl import URL

from shardproxy.config import OPTIONS, ConfigError, HostPort, Settings
from shardproxy.shards import IDS_NAME, view_name

# rclone's fixed key for `rclone obscure` (fs/config/obscure): obscuring only keeps a
# password from being read over a shoulder; anyone can reveal it.
_OBSCURE_KEY = bytes.fromhex("9c935b48730a554d6bfd7c63c886a92bd390198eb8128afbf4de162b8b95f638")

# Bounds that make a dead proxy fail a read in seconds (see README "When something
# fails"): connection refused is retried once, a silent proxy is given up on after
# IO_TIMEOUT. rclone's defaults (10 low-level retries, 5 min idle timeout, 1 min
# connect timeout) times mergerfs asking every branch gave reads hanging for minutes.
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
    # rest disk, and everything else there is listings and small link files.
    found.append(
        Mount(
            "rest", deployment.rest_mountpoint, deployment.rest_cache_dir, "off", deployment.rest_rc
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
        str(mount.rc.addr),
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


# -- rclone.conf ---------------------------------------------------------------------


def obscure(password: str, iv: bytes) -> str:
    """``password`` as ``rclone obscure`` writes it, with the given 16-byte IV."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if len(iv) != 16:
        raise ValueError(f"the IV must be 16 bytes, got {len(iv)}")
    encryptor = Cipher(algorithms.AES(_OBSCURE_KEY), modes.CTR(iv)).encryptor()
    sealed = iv + encryptor.update(password.encode()) + encryptor.finalize()
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def rclone_conf(deployment: Deployment, obscured_pass: str | None) -> str:
    """Remotes ``shard0..`` on the shard views and ``rest`` on the proxy's root."""
    return webdav_remotes(
        deployment.proxy_url, deployment.shard_count, deployment.nzbdav_user, obscured_pass
    )


def webdav_remotes(
    proxy_url: URL | str,
    shard_count: int,
    user: str | None,
    obscured_pass: str | None,
    *,
    rest: str = "rest",
) -> str:
    """rclone.conf text: a WebDAV remote per shard view, and ``rest`` on the proxy's root."""
    base = str(proxy_url).rstrip("/")
    remotes = [(f"shard{n}", f"{base}/{view_name(n)}") for n in range(shard_count)]
    remotes.append((rest, base))
    sections = []
    for name, url in remotes:
        lines = [f"[{name}]", "type = webdav", f"url = {url}", "vendor = other"]
        if user is not None:
            lines.append(f"user = {user}")
        if obscured_pass is not None:
            lines.append(f"pass = {obscured_pass}")
        if name == rest:
            # Tells the proxy a read came through the fail-over mount, in both layouts
            # (with shard links, `rest` reads the same /.ids-s<N>/ paths as the shard).
            lines.append("headers = X-Shardproxy-Mount,rest")
        sections.append("\n".join(lines) + "\n")
    return "# Generated by `shardproxy gen`.\n\n" + "\n".join(sections)


# -- systemd units -------------------------------------------------------------------


def systemd_quote(word: str) -> str:
    """One argv word for an ``Exec*=`` line: specifiers and variables escaped, quoted."""
    escaped = word.replace("%", "%%").replace("$", "$$")
    if escaped and re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_line(argv: Sequence[str], *, may_fail: bool = False) -> str:
    """An ``Exec*=`` value; ``may_fail`` prefixes ``-`` so a failure is ignored."""
    return ("-" if may_fail else "") + " ".join(systemd_quote(word) for word in argv)


def parse_exec_line(value: str) -> tuple[list[str], bool]:
    """``exec_line`` undone: the argv and whether failure is ignored."""
    may_fail = value.startswith("-")
    words = shlex.split(value[1:] if may_fail else value)
    return [w.replace("%%", "%").replace("$$", "$") for w in words], may_fail


def unit_commands(unit_text: str) -> dict[str, list[tuple[list[str], bool]]]:
    """Every ``Exec*=`` line of a unit by key, parsed, in order."""
    commands: dict[str, list[tuple[list[str], bool]]] = {}
    for line in unit_text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("Exec"):
            commands.setdefault(key, []).append(parse_exec_line(value))
    return commands


PROXY_UNIT = "shardproxy.service"
MERGERFS_UNIT = "shardproxy-mergerfs.service"


def _unit(description: str, unit: Sequence[str], service: Sequence[str]) -> str:
    return "\n".join(
        [
            "# Generated by `shardproxy gen`.",
            "[Unit]",
            f"Description={description}",
            *unit,
            "",
            "[Service]",
            *service,
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


def rclone_unit(deployment: Deployment, programs: Programs, mount: Mount) -> str:
    """The unit of one `rclone mount`: after the proxy, clearing a stale mount first."""
    mountpoint = str(mount.mountpoint)
    what = "the rest of NzbDav (fail-over)" if mount.name == "rest" else f"shard {mount.name[5:]}"
    return _unit(
        f"rclone mount of {what} through shardproxy",
        [
            f"After=network-online.target {PROXY_UNIT}",
            f"Wants=network-online.target {PROXY_UNIT}",
        ],
        [
            # rclone tells systemd when the mount is up, so mergerfs starts after it.
            "Type=notify",
            # A crashed rclone leaves "Transport endpoint is not connected" behind, and
            # the next start fails with "directory already mounted" until it is cleared.
            "ExecStartPre=" + exec_line([programs.fusermount, "-uz", mountpoint], may_fail=True),
            "ExecStartPre=" + exec_line([programs.mkdir, "-p", mountpoint, str(mount.cache_dir)]),
            "ExecStart=" + exec_line(mount_argv(deployment, programs, mount)),
            "ExecStopPost=" + exec_line([programs.fusermount, "-uz", mountpoint], may_fail=True),
            "Restart=on-failure",
            "RestartSec=5",
        ],
    )


def mergerfs_unit(deployment: Deployment, programs: Programs, layout: Layout) -> str:
    """The mergerfs unit: after every rclone mount, yet running when one of them fails."""
    rclone_units = " ".join(mount.unit for mount in mounts(deployment, layout))
    merged = str(deployment.merged)
    return _unit(
        "mergerfs joining the shardproxy rclone mounts",
        # Wants, not Requires: a failed shard must not take the whole library down;
        # its files are found through `rest`.
        [f"After={rclone_units}", f"Wants={rclone_units}"],
        [
            "Type=forking",
            "ExecStartPre=" + exec_line([programs.fusermount, "-uz", merged], may_fail=True),
            "ExecStartPre=" + exec_line([programs.mkdir, "-p", merged]),
            "ExecStart=" + exec_line(mergerfs_argv(deployment, programs)),
            "ExecStop=" + exec_line([programs.fusermount, "-uz", merged], may_fail=True),
            "Restart=on-failure",
            "RestartSec=5",
        ],
    )


def proxy_unit(deployment: Deployment, programs: Programs) -> str:
    """The shardproxy unit."""
    return _unit(
        "shardproxy: shard views of NzbDav for several rclone caches",
        ["After=network-online.target", "Wants=network-online.target"],
        [
            "Type=simple",
            "ExecStart=" + exec_line(proxy_argv(deployment, programs)),
            "Restart=on-failure",
            "RestartSec=2",
            # Gives $STATE_DIRECTORY: the RC retry queue's file lives there by default.
            "StateDirectory=shardproxy",
        ],
    )


# -- docker compose ------------------------------------------------------------------


def compose(deployment: Deployment, programs: Programs, layout: Layout) -> str:
    """A compose file: NzbDav, shardproxy, one rclone per mount, mergerfs.

    Every service uses the host's network and the same paths as the units, so the
    commands are the units' commands; mounts reach the host through rshared binds.
    JSON is valid YAML, which keeps this free of a YAML writer.
    """
    fuse = {
        "devices": ["/dev/fuse:/dev/fuse"],
        "cap_add": ["SYS_ADMIN"],
        "security_opt": ["apparmor:unconfined"],
    }
    config = f"{deployment.config_dir}:{deployment.config_dir}:ro"
    shared_root = f"{deployment.mount_root}:{deployment.mount_root}:rshared"
    services: dict[str, dict[str, object]] = {
        "nzbdav": {
            "image": "nzbdav/nzbdav:latest",
            "network_mode": "host",
            "restart": "unless-stopped",
            "volumes": ["./nzbdav-config:/config"],
        },
        "shardproxy": {
            "image": "shardproxy:latest",
            "network_mode": "host",
            "restart": "unless-stopped",
            "depends_on": ["nzbdav"],
            # The generated files are root's alone (they hold passwords), and the config
            # folder is mounted read-only: the RC retry queue goes to the state volume.
            "user": "0:0",
            "command": [
                *proxy_argv(deployment, _IN_IMAGES)[1:],
                "--rc-pending-file",
                f"{_STATE_DIR}/shardproxy-rc-pending.sqlite3",
            ],
            "volumes": [config, f"shardproxy-state:{_STATE_DIR}"],
        },
    }
    rclone_names = []
    for mount in mounts(deployment, layout):
        name = f"rclone-{mount.name}"
        rclone_names.append(name)
        services[name] = {
            "image": "rclone/rclone:latest",
            "network_mode": "host",
            "restart": "unless-stopped",
            "depends_on": ["shardproxy"],
            "command": mount_argv(deployment, _IN_IMAGES, mount)[1:],
            "volumes": [config, shared_root, f"{mount.cache_dir}:{mount.cache_dir}"],
            **fuse,
        }
    services["mergerfs"] = {
        "build": {
            "context": ".",
            "dockerfile_inline": "FROM debian:12-slim\nRUN apt-get update && "
            "apt-get install -y --no-install-recommends mergerfs fuse3 "
            "&& rm -rf /var/lib/apt/lists/*\n",
        },
        "network_mode": "host",
        "restart": "unless-stopped",
        "depends_on": rclone_names,
        # -f keeps mergerfs in the foreground, as a container's process must be.
        "command": [*mergerfs_argv(deployment, _IN_IMAGES), "-f"],
        "volumes": [shared_root],
        **fuse,
    }
    header = (
        "# Generated by `shardproxy gen` (JSON is YAML). Every service shares the host's\n"
        "# network and paths, so the commands are those of the systemd units. Build the\n"
        "# shardproxy image first: `docker build -t shardproxy .` in its repository.\n"
    )
    document = {"name": "shardproxy", "services": services, "volumes": {"shardproxy-state": {}}}
    return header + json.dumps(document, indent=2) + "\n"


_STATE_DIR = "/var/lib/shardproxy"  # the shardproxy image's STATE_DIRECTORY

# Program paths inside the images the compose file names.
_IN_IMAGES = Programs(
    rclone="rclone",
    rclone_version=(1, 75),
    mergerfs="mergerfs",
    shardproxy="shardproxy",
)


# -- shardproxy.toml ----------------------------------------------------------------


def toml_text(values: Mapping[str, object]) -> str:
    """Settings as TOML: strings, numbers, lists of strings, and ``{N: value}`` tables."""
    plain, tables = [], []
    for key, value in values.items():
        if isinstance(value, Mapping):
            rows = "".join(f"{k} = {_toml_value(v)}\n" for k, v in value.items())
            tables.append(f"\n[{key}]\n{rows}")
        else:
            plain.append(f"{key} = {_toml_value(value)}\n")
    return "# Generated by `shardproxy gen`.\n" + "".join(plain) + "".join(tables)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    # A JSON string is a valid TOML basic string.
    return json.dumps(str(value), ensure_ascii=False)


# -- from the settings ----------------------------------------------------------------

DEPLOY_ONLY = frozenset(
    {
        "mount_root",
        "config_dir",
        "cache_dir",
        "rest_cache_dir",
        "cache_max_size",
        "cache_min_free_space",
        "nzbdav_user",
        "nzbdav_pass",
        "rclone_rc_user",
        "rclone_rc_pass",
        "rclone_rc_port",
    }
)
"""Settings only `gen` reads; the proxy's own file leaves them out."""


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


# A deployed proxy gets its status page, metrics and the image's health check on
# loopback, where they need no credentials, unless the settings say otherwise.
GENERATED_ADMIN_LISTEN = "127.0.0.1:8766"


def proxy_toml(settings: Settings, deployment: Deployment) -> str:
    """The proxy's own settings file, with every rclone's RC URL filled in."""
    values: dict[str, object] = {}
    for option in OPTIONS:
        # rc_pending_file's default is worked out where gen runs; the proxy's own
        # default (beside its config file) is the one that fits where it is installed.
        # The shard map's settings (shards, shard, shard_weights) are no Settings fields;
        # it is written below as the explicit `shard` table.
        if option.name in DEPLOY_ONLY or option.name == "rc_pending_file":
            continue
        if not hasattr(settings, option.name):
            continue
        value = getattr(settings, option.name)
        if value is None or value == option.default or option.name in ("shard_rc", "rc_fallback"):
            continue
        if isinstance(value, Mapping):
            value = {str(k): str(v) for k, v in value.items()}
        elif isinstance(value, tuple):
            value = [str(v) for v in value]
        elif not isinstance(value, int | float):
            value = str(value)
        values[option.name] = value
    values.setdefault("admin_listen", GENERATED_ADMIN_LISTEN)
    values["rc_fallback"] = [str(deployment.rest_rc.url)] if deployment.rest_rc else []
    values["shard"] = {
        str(n): settings.shard_map.prefixes_of(n) for n in range(deployment.shard_count)
    }
    values["shard_rc"] = {str(n): str(rc.url) for n, rc in enumerate(deployment.shard_rc)}
    return toml_text(values)


# -- the whole set -------------------------------------------------------------------


def generate(
    deployment: Deployment, programs: Programs, *, proxy_toml: str, obscured_pass: str | None
) -> dict[str, str]:
    """Every generated file, by path relative to the output directory.

    ``rclone.conf`` and ``shardproxy.toml`` belong in ``config_dir``; each layout's
    units and compose file are in a folder of their own, to install one of them.
    """
    files = {"rclone.conf": rclone_conf(deployment, obscured_pass), "shardproxy.toml": proxy_toml}
    for layout in Layout:
        folder = layout.value
        files[f"{folder}/{PROXY_UNIT}"] = proxy_unit(deployment, programs)
        for mount in mounts(deployment, layout):
            files[f"{folder}/{mount.unit}"] = rclone_unit(deployment, programs, mount)
        files[f"{folder}/{MERGERFS_UNIT}"] = mergerfs_unit(deployment, programs, layout)
        files[f"{folder}/compose.yaml"] = compose(deployment, programs, layout)
    return files
