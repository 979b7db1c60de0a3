"""Every file `shardproxy gen` writes, by path, and what it has to warn about.

``rclone.conf`` (the units' remotes, the same for both layouts) at the top; a folder per
layout with its ``shardproxy.toml``, its systemd units and its ``compose/`` folder. A
person installs one layout: ``rclone.conf`` and that layout's ``shardproxy.toml`` in
``config_dir`` and its units, or runs its compose folder.
"""

from __future__ import annotations

from shardproxy.config.settings import Settings
from shardproxy.core.rclonelink import old_rclone_warning
from shardproxy.tools.deploy.compose import (
    RCLONE_IMAGE,
    Network,
    compose_files,
    compose_warnings,
)
from shardproxy.tools.deploy.files import (
    MERGERFS_UNIT,
    PROXY_UNIT,
    mergerfs_unit,
    proxy_toml,
    proxy_unit,
    rclone_conf,
    rclone_unit,
    rewrites_links,
)
from shardproxy.tools.deploy.model import Deployment, Layout, Programs, mounts

COMPOSE_FOLDER = "compose"


def generate(
    deployment: Deployment,
    programs: Programs,
    settings: Settings,
    *,
    obscured_pass: str | None,
    mergerfs_recipe: str,
    network: Network = Network.COMPOSE,
) -> dict[str, str]:
    """Every generated file, by path relative to the output directory (``mergerfs_recipe``
    is the mergerfs image's Dockerfile, shipped with shardproxy)."""
    files = {"rclone.conf": rclone_conf(deployment, obscured_pass)}
    for layout in Layout:
        folder = layout.value
        files[f"{folder}/shardproxy.toml"] = proxy_toml(settings, deployment, layout)
        files[f"{folder}/{PROXY_UNIT}"] = proxy_unit(deployment, programs)
        for mount in mounts(deployment, layout):
            files[f"{folder}/{mount.unit}"] = rclone_unit(deployment, programs, mount)
        files[f"{folder}/{MERGERFS_UNIT}"] = mergerfs_unit(deployment, programs, layout)
        composed = compose_files(
            deployment,
            settings,
            layout,
            network,
            obscured_pass=obscured_pass,
            mergerfs_recipe=mergerfs_recipe,
        )
        for name, text in composed.items():
            files[f"{folder}/{COMPOSE_FOLDER}/{name}"] = text
    return files


def generation_warnings(
    settings: Settings, programs: Programs, network: Network, *, rclone_installed: bool
) -> list[str]:
    """What the generated files cannot do with these settings and this machine's rclone."""
    found = []
    if not rclone_installed:
        found.append(
            f"warning: no rclone found here: the units assume {programs.rclone} "
            f"{'.'.join(map(str, programs.rclone_version))} (Debian 12's), which shows "
            "NzbDav's links as files, not symlinks; install rclone 1.69 or later and run gen "
            f"again for the units (the compose files use {RCLONE_IMAGE})"
        )
    else:
        warning = old_rclone_warning(
            programs.rclone,
            programs.rclone_version,
            f"the units' rest mount; the compose files use {RCLONE_IMAGE}",
        )
        if warning:
            found.append(warning)
    if not rewrites_links(settings.shard_map):
        found.append(
            f"warning: shard-links: {settings.shard_map.count} shards are more than "
            "rewrite_rclonelinks allows (10), so new imports point into .ids and are read "
            "through rest, uncached; run `shardproxy relink` on the library now and then"
        )
    found += compose_warnings(settings, network)
    return found
