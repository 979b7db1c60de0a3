"""The compose folder of `shardproxy gen`: compose.yaml, .env and the files it mounts.

Pure: the settings, the deployment (``model``) and a layout go in, file texts come out.
``compose.yaml`` is YAML in the order a person reads it, with a comment on each service;
secrets (the rclones' RC password) are in ``.env`` beside it, which compose reads itself.

Two networks. ``COMPOSE`` (the default) is the sidecar shape: NzbDav, shardproxy and the
rclones share the compose network and call each other by service name (NzbDav at
``http://nzbdav:3000``, shardproxy's RC endpoint at ``http://shardproxy:5575``, shard N's
rclone at ``http://rclone-shardN:5572``). ``HOST`` puts every service on the host's
network with the units' addresses, for NzbDav running outside compose. In both, the FUSE
mounts reach the host (and Plex) through ``rshared`` binds of the mount root.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import shlex
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath

import yaml
from yarl import URL

from shardproxy.config.settings import ConfigError, HostPort, Settings
from shardproxy.core.failover import LOOPBACK_NETWORKS
from shardproxy.tools.deploy.files import proxy_toml, rclone_conf
from shardproxy.tools.deploy.model import (
    Deployment,
    Layout,
    Mount,
    Programs,
    RcEndpoint,
    mergerfs_argv,
    mount_argv,
    mounts,
    proxy_argv,
)


class Network(enum.Enum):
    """Where the services of the compose file talk to each other."""

    COMPOSE = "compose"  # the sidecar shape: a compose network, services by name
    HOST = "host"  # the host's network and the units' addresses (NzbDav outside compose)


# rclone's image is pinned: a mount's flags (--vfs-links, --vfs-cache-min-free-space)
# depend on its version, and `latest` would change under a running library.
RCLONE_IMAGE = "docker.io/rclone/rclone:1.75.2"
RCLONE_IMAGE_VERSION = (1, 75)
NZBDAV_IMAGE = "docker.io/nzbdav/nzbdav:latest"
PROXY_IMAGE = "shardproxy:latest"  # `docker build -t shardproxy .` in the repository
MERGERFS_IMAGE = "shardproxy-mergerfs:latest"  # built by compose from ./mergerfs

NZBDAV_URL = URL("http://nzbdav:3000")
NZBDAV_UI_PORT = 3000
RCLONE_RC_PORT = 5572  # rclone's own default; every rclone has its own container
PROXY_RC_PORT = 5575
CONFIG_IN_CONTAINERS = PurePosixPath("/etc/shardproxy")
STATE_DIR = "/var/lib/shardproxy"  # the shardproxy image's STATE_DIRECTORY
MERGERFS_RECIPE = "mergerfs/Dockerfile"

# Program paths inside the images the compose file names.
IN_IMAGES = Programs(
    rclone="rclone",
    rclone_version=RCLONE_IMAGE_VERSION,
    mergerfs="mergerfs",
    shardproxy="shardproxy",
)

FUSE = {
    "devices": ["/dev/fuse:/dev/fuse"],
    "cap_add": ["SYS_ADMIN"],
    "security_opt": ["apparmor:unconfined"],
}


def service_name(mount: Mount) -> str:
    """The compose service of one rclone mount: ``rclone-shard0`` .. ``rclone-rest``."""
    return f"rclone-{mount.name}"


# -- addresses ------------------------------------------------------------------------


def compose_deployment(deployment: Deployment, settings: Settings, network: Network) -> Deployment:
    """The deployment as the containers see it: configs in /etc/shardproxy, and on the
    compose network every address a service name."""
    inside = dataclasses.replace(deployment, config_dir=CONFIG_IN_CONTAINERS)
    if network is Network.HOST:
        return inside

    def by_name(name: str, endpoint: RcEndpoint) -> RcEndpoint:
        return RcEndpoint(
            HostPort(f"rclone-{name}", RCLONE_RC_PORT),
            endpoint.user,
            endpoint.password,
            listen=HostPort("", RCLONE_RC_PORT),
        )

    assert deployment.rest_rc is not None
    return dataclasses.replace(
        inside,
        proxy_url=URL(f"http://shardproxy:{settings.listen.port}"),
        shard_rc=tuple(by_name(f"shard{n}", rc) for n, rc in enumerate(deployment.shard_rc)),
        rest_rc=by_name("rest", deployment.rest_rc),
    )


# Where Docker and podman take compose networks from.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fd00::/8")
)


def compose_settings(settings: Settings, network: Network) -> Settings:
    """shardproxy's own settings in its container.

    On the compose network it listens on all of its interfaces and finds NzbDav by name.
    Its RC endpoint, which NzbDav calls, needs rc_user/rc_pass there (without them it is
    left off and ``compose_warnings`` says so). The admin listener stays on the
    container's loopback (the health check's) unless it has a user and password, in
    which case it is published on the host's loopback.
    """
    if network is Network.HOST:
        return settings
    trusted = settings.mount_header_from
    if trusted == LOOPBACK_NETWORKS:
        # The rest rclone reaches the proxy from its own container, at an address the
        # engine picks on the compose network: believe its header from the private
        # ranges those networks come from. The header only counts and reports fail-over
        # reads, so a neighbour that lies can only make the counter wrong.
        trusted = (*LOOPBACK_NETWORKS, *PRIVATE_NETWORKS)
    admin = settings.admin_listen or HostPort("127.0.0.1", 8766)
    rc_port = settings.rc_listen.port if settings.rc_listen else PROXY_RC_PORT
    return dataclasses.replace(
        settings,
        backend=NZBDAV_URL,
        mount_header_from=trusted,
        listen=HostPort("0.0.0.0", settings.listen.port),
        rc_listen=HostPort("0.0.0.0", rc_port) if _rc_protected(settings) else None,
        admin_listen=HostPort("0.0.0.0" if _admin_protected(settings) else "127.0.0.1", admin.port),
    )


def _rc_protected(settings: Settings) -> bool:
    return settings.rc_user is not None and settings.rc_pass is not None


def _admin_protected(settings: Settings) -> bool:
    return settings.admin_user is not None and settings.admin_pass is not None


def compose_warnings(settings: Settings, network: Network) -> list[str]:
    """What the compose files leave out because the settings do, with what to set."""
    if network is Network.COMPOSE and not _rc_protected(settings):
        return [
            "warning: compose: no rc_user/rc_pass, so shardproxy's RC endpoint is off on the "
            f"compose network and NzbDav's forgets reach no rclone; set --rc-user and "
            f"--rc-pass and give NzbDav http://shardproxy:{PROXY_RC_PORT} with them"
        ]
    return []


# -- .env -----------------------------------------------------------------------------


def rc_password_variables(deployment: Deployment, layout: Layout) -> dict[str, str]:
    """``{mount name: variable}`` holding each rclone's RC password in ``.env``.

    One variable when every rclone has the same password (gen's default), else one each.
    """
    found = mounts(deployment, layout)
    if len({mount.rc.password for mount in found}) == 1:
        return {mount.name: "RCLONE_RC_PASS" for mount in found}
    return {mount.name: f"RCLONE_RC_PASS_{mount.name.upper()}" for mount in found}


def env_file(values: Mapping[str, str]) -> str:
    """``.env`` text: single-quoted values, which docker compose and podman-compose both
    take literally (no ``$`` expansion, no escapes)."""
    lines = [
        "# Secrets of compose.yaml, written by `shardproxy gen`; compose reads this file",
        "# itself. Readable by its owner only: keep it that way.",
    ]
    for name, value in values.items():
        if "'" in value or "\n" in value or "\r" in value:
            raise ConfigError(
                f"{name}: a password with a quote or a line break cannot be written to .env "
                "for compose; choose one without (rclone_rc_pass / shard_rc / rc_fallback)"
            )
        lines.append(f"{name}='{value}'")
    return "\n".join(lines) + "\n"


# -- compose.yaml -----------------------------------------------------------------------


def _dollars(text: str) -> str:
    """``text`` with ``$`` escaped from compose's variable interpolation."""
    return text.replace("$", "$$")


def _clear_then_exec(mountpoint: PurePosixPath, program: str) -> list[str]:
    """An entrypoint that clears a stale mount at ``mountpoint``, then runs ``program``.

    A killed FUSE process leaves "Transport endpoint is not connected" behind (in every
    namespace the mount propagated to), and mounting there again fails until it is
    cleared: the units' ExecStartPre, done in the container.
    """
    point = _dollars(shlex.quote(str(mountpoint)))
    script = f'fusermount3 -uz {point} 2>/dev/null; mkdir -p {point} && exec {program} "$$@"'
    return ["/bin/sh", "-c", script, program]


def _binds(*pairs: tuple[str, str], mode: str = "") -> list[str]:
    return [f"{source}:{target}{':' + mode if mode else ''}" for source, target in pairs]


def services(
    deployment: Deployment,
    settings: Settings,
    layout: Layout,
    network: Network,
) -> list[tuple[str, str, dict[str, object]]]:
    """``(name, comment, service)`` in the order a person reads them.

    ``deployment`` is the host's: its mount root and cache directories are bound into
    the containers at the same paths, so every path in a command is a host path too.
    """
    inside = compose_deployment(deployment, settings, network)
    proxy_settings = compose_settings(settings, network)
    sidecar = network is Network.COMPOSE
    placement: dict[str, object] = {} if sidecar else {"network_mode": "host"}
    shared_root = f"{deployment.mount_root}:{deployment.mount_root}:rshared"
    conf = CONFIG_IN_CONTAINERS
    found: list[tuple[str, str, dict[str, object]]] = []
    if sidecar:
        found.append(
            (
                "nzbdav",
                "NzbDav. In its settings: WebDAV user and password as in rclone.conf, rclone\n"
                f"mount directory {deployment.merged}, rclone RC URL "
                f"http://shardproxy:{PROXY_RC_PORT} with\nshardproxy's rc_user/rc_pass.",
                {
                    "image": NZBDAV_IMAGE,
                    "restart": "unless-stopped",
                    "ports": [f"{NZBDAV_UI_PORT}:{NZBDAV_UI_PORT}"],
                    "volumes": ["./nzbdav-config:/config"],
                },
            )
        )
    healthcheck = ["CMD", "shardproxy", "healthcheck", "--config", f"{conf}/shardproxy.toml"]
    proxy: dict[str, object] = {
        "image": PROXY_IMAGE,
        "restart": "unless-stopped",
        **placement,
        # The generated files are readable by root only (they hold passwords).
        "user": "0:0",
        "command": [
            *proxy_argv(inside, IN_IMAGES)[1:],
            "--rc-pending-file",
            f"{STATE_DIR}/shardproxy-rc-pending.sqlite3",
        ],
        "volumes": [
            f"./shardproxy.toml:{conf}/shardproxy.toml:ro",
            f"shardproxy-state:{STATE_DIR}",
        ],
        # No ulimits: the proxy raises its own soft open-file limit to what its
        # connection caps need, under the engine's hard limit (Docker's is 1048576);
        # asking for more than the engine may give stops the container from starting.
        "healthcheck": {
            "test": healthcheck,
            "interval": "10s",
            "timeout": "5s",
            "retries": 3,
            "start_period": "10s",
        },
    }
    if sidecar:
        proxy["depends_on"] = ["nzbdav"]
        admin = proxy_settings.admin_listen
        if admin is not None and _admin_protected(settings):
            proxy["ports"] = [f"127.0.0.1:{admin.port}:{admin.port}"]
    status = proxy_settings.admin_listen
    where = (
        f"its status page is\nhttp://127.0.0.1:{status.port}/ on the host"
        if status is not None and (not sidecar or "ports" in proxy)
        else "its status page\nstays in the container (set admin_user/admin_pass to publish it)"
    )
    found.append(
        (
            "shardproxy",
            "shardproxy: the shard views of NzbDav for the rclones below. Its RC retry\n"
            f"queue is kept in the shardproxy-state volume; {where}.",
            proxy,
        )
    )
    passwords = rc_password_variables(deployment, layout)
    rclone_names = []
    for mount in mounts(inside, layout):
        name = service_name(mount)
        rclone_names.append(name)
        argv = mount_argv(inside, IN_IMAGES, mount)[1:]
        argv[argv.index("--rc-pass") + 1] = "${" + passwords[mount.name] + "}"
        binds = [("./rclone.conf", f"{conf}/rclone.conf:ro")]
        found.append(
            (
                name,
                _rclone_comment(mount),
                {
                    "image": RCLONE_IMAGE,
                    "restart": "unless-stopped",
                    **placement,
                    "depends_on": {"shardproxy": {"condition": "service_healthy"}},
                    "entrypoint": _clear_then_exec(mount.mountpoint, "rclone"),
                    "command": [_dollars(word) if "${" not in word else word for word in argv],
                    "volumes": [
                        *_binds(*binds),
                        shared_root,
                        f"{mount.cache_dir}:{mount.cache_dir}",
                    ],
                    **FUSE,
                },
            )
        )
    found.append(
        (
            "mergerfs",
            f"mergerfs joins the shard mounts and rest at {deployment.merged}: the path Plex\n"
            "and the *arr apps bind. It starts after the rclones but needs none of them: a\n"
            "shard that is late or down is read through rest, uncached.",
            {
                "build": "./mergerfs",
                "image": MERGERFS_IMAGE,
                "restart": "unless-stopped",
                "network_mode": "none",
                "depends_on": {name: {"condition": "service_started"} for name in rclone_names},
                "command": [_dollars(word) for word in mergerfs_argv(inside, IN_IMAGES)[1:]],
                "volumes": [shared_root],
                **FUSE,
            },
        )
    )
    return found


def _rclone_comment(mount: Mount) -> str:
    if mount.name == "rest":
        return (
            "rclone of the rest of NzbDav (the fail-over branch, last in mergerfs): caches no\n"
            "file data, shows /completed-symlinks' links as symlinks (--vfs-links)."
        )
    shard = mount.name.removeprefix("shard")
    return (
        f"rclone of shard {shard}: caches shard {shard}'s files in {mount.cache_dir}, "
        f"mounted\nat {mount.mountpoint}. Starts once shardproxy is healthy."
    )


# Comments on keys a reader may wonder about, put above the key in every service.
KEY_NOTES = {
    "entrypoint": "Clears the mount point a killed rclone left stale, then runs rclone.",
    "devices": "FUSE in a container: /dev/fuse, SYS_ADMIN, and an rshared bind of the mount\n"
    "root so the mount reaches the host.",
}


def _scalar(word: str) -> str:
    """One string as an item of a YAML flow list, quoted only when YAML needs it."""
    return yaml.safe_dump([word], default_flow_style=True, width=1 << 16).strip()[1:-1]


def _argv_lines(argv: Sequence[str], indent: str) -> list[str]:
    """A command as a flow list: the leading words, then each ``--flag value`` and each
    later word on a line of its own."""
    groups: list[list[str]] = [[]]
    flagged = False  # the current line holds a flag, and maybe its value
    for word in argv:
        if groups[-1] and (word.startswith("-") or (flagged and len(groups[-1]) == 2)):
            groups.append([])
            flagged = False
        flagged = flagged or word.startswith("-")
        groups[-1].append(_scalar(word))
    lines = [", ".join(group) for group in groups]
    return [
        f"{indent}{'[' if n == 0 else '  '}{line}{']' if n == len(lines) - 1 else ','}"
        for n, line in enumerate(lines)
    ]


def _block(name: str, comment: str, body: Mapping[str, object]) -> str:
    """One service: its comment, then its keys in order, ``KEY_NOTES`` above theirs."""
    lines = [f"  # {line}" for line in comment.splitlines()]
    lines.append(f"  {name}:")
    for key, value in body.items():
        lines += [f"    # {note}" for note in KEY_NOTES.get(key, "").splitlines()]
        if key == "command" and isinstance(value, list):
            lines.append(f"    {key}:")
            lines += _argv_lines([str(word) for word in value], "      ")
            continue
        if key == "entrypoint" and isinstance(value, list):
            lines.append(f"    {key}: [{', '.join(_scalar(str(word)) for word in value)}]")
            continue
        flow = None if isinstance(value, list | dict) else False
        dumped = yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=flow, width=200)
        lines += [f"    {line}" for line in dumped.splitlines()]
    return "\n".join(lines) + "\n"


def compose_yaml(
    deployment: Deployment, settings: Settings, layout: Layout, network: Network
) -> str:
    """The compose file of one layout, commented."""
    root = deployment.mount_root
    shape = (
        "NzbDav, shardproxy and the rclones share the compose network and call each other\n"
        "# by service name."
        if network is Network.COMPOSE
        else "Every service uses the host's network (NzbDav runs outside compose), with the\n"
        "# addresses of the systemd units."
    )
    header = (
        f"# Generated by `shardproxy gen` for the {layout.value} layout.\n# {shape}\n"
        "#\n"
        "# Before `docker compose up -d`, on the host:\n"
        f"#   - {root} must be a shared mount point, so the FUSE mounts made in the\n"
        "#     containers reach the host and Plex:\n"
        f"#       mkdir -p {root} && mount --bind {root} {root} && mount --make-rshared {root}\n"
        "#   - /dev/fuse must exist (modprobe fuse), and the cache directories below too;\n"
        "#   - the shardproxy image: `docker build -t shardproxy .` in its repository;\n"
        "#     `docker compose build` makes the mergerfs image from ./mergerfs.\n"
        "# Secrets are in .env beside this file.\n"
    )
    blocks = [_block(*service) for service in services(deployment, settings, layout, network)]
    return (
        header
        + "\nname: shardproxy\n\nservices:\n"
        + "\n".join(blocks)
        + "\nvolumes:\n  shardproxy-state: {}\n"
    )


def compose_files(
    deployment: Deployment,
    settings: Settings,
    layout: Layout,
    network: Network,
    *,
    obscured_pass: str | None,
    mergerfs_recipe: str,
) -> dict[str, str]:
    """The compose folder of one layout, by path inside it."""
    inside = compose_deployment(deployment, settings, network)
    passwords = rc_password_variables(deployment, layout)
    secrets = {
        variable: next(m.rc.password for m in mounts(deployment, layout) if m.name == name)
        for name, variable in passwords.items()
    }
    return {
        "compose.yaml": compose_yaml(deployment, settings, layout, network),
        ".env": env_file(secrets),
        "rclone.conf": rclone_conf(inside, obscured_pass),
        "shardproxy.toml": proxy_toml(compose_settings(settings, network), inside, layout),
        MERGERFS_RECIPE: mergerfs_recipe,
    }
