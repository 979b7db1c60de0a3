"""`shardproxy gen --out DIR`: find the programs, build the files, write them."""

from __future__ import annotations

import base64
import os
import shutil
import sys
from importlib import resources
from pathlib import Path

from shardproxy.config.settings import Settings
from shardproxy.ops.rclonebin import rclone_version
from shardproxy.tools.deploy.bundle import COMPOSE_FOLDER, generate, generation_warnings
from shardproxy.tools.deploy.compose import Network
from shardproxy.tools.deploy.files import obscure
from shardproxy.tools.deploy.model import Layout, Programs, deployment_from
from shardproxy.tools.deploy.write import read_existing, write_files


def find_programs(rclone: str | None = None) -> Programs:
    """This machine's programs (and its rclone's version) for the units' absolute paths.

    A program that is missing keeps the Debian path, so the files can be made on one
    machine for another.
    """
    default = Programs()
    rclone = rclone or shutil.which("rclone")
    beside = Path(sys.executable).parent / "shardproxy"
    return Programs(
        rclone=rclone or default.rclone,
        rclone_version=rclone_version(rclone) if rclone else default.rclone_version,
        mergerfs=shutil.which("mergerfs") or default.mergerfs,
        fusermount=shutil.which("fusermount3") or default.fusermount,
        mkdir=shutil.which("mkdir") or default.mkdir,
        shardproxy=str(beside) if beside.exists() else shutil.which("shardproxy") or "shardproxy",
    )


def mergerfs_recipe() -> str:
    """The mergerfs image's Dockerfile, shipped with shardproxy (written beside compose.yaml)."""
    return (resources.files(__package__) / "mergerfs.Dockerfile").read_text(encoding="utf-8")


def warnings(settings: Settings, programs: Programs, network: Network) -> list[str]:
    """What the files cannot do here (an old rclone, too many shards for shard links)."""
    installed = shutil.which(programs.rclone) is not None
    return generation_warnings(settings, programs, network, rclone_installed=installed)


def reused_iv(conf_text: str | None, password: str) -> bytes | None:
    """The IV of an obscured ``password`` already in ``conf_text``, to write it the same.

    ``rclone obscure`` picks a random IV, so each run would change ``rclone.conf``; with
    the IV it had, an unchanged password gives unchanged text.
    """
    for line in (conf_text or "").splitlines():
        key, _, value = line.partition("=")
        if key.strip() != "pass":
            continue
        value = value.strip()
        try:
            iv = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))[:16]
            if len(iv) == 16 and obscure(password, iv) == value:
                return iv
        except ValueError:
            continue
    return None


def write_generated(
    settings: Settings,
    out: Path,
    programs: Programs,
    network: Network = Network.COMPOSE,
    *,
    force: bool = False,
) -> list[Path]:
    """Write every generated file under ``out`` (``write.write_files``: mode 600, no link
    followed, nothing a person changed replaced unless ``force``)."""
    deployment = deployment_from(settings)
    obscured = None
    if deployment.nzbdav_pass is not None:
        iv = reused_iv(read_existing(out, "rclone.conf"), deployment.nzbdav_pass)
        obscured = obscure(deployment.nzbdav_pass, iv or os.urandom(16))
    files = generate(
        deployment,
        programs,
        settings,
        obscured_pass=obscured,
        mergerfs_recipe=mergerfs_recipe(),
        network=network,
    )
    secrets = (settings.rclone_rc_pass, settings.rc_pass, settings.admin_pass)
    known = [deployment.nzbdav_pass or "", obscured or "", *(s or "" for s in secrets)]
    return write_files(out, files, force=force, known_secrets=known)


def next_steps(settings: Settings, out: Path) -> str:
    """What to do with the files, for the terminal."""
    config_dir = settings.config_dir
    layouts = ", ".join(f"{out / layout.value}/" for layout in Layout)
    return (
        f"Pick a layout ({layouts}). 'links-unchanged' keeps your existing symlinks to\n"
        "<mount_root>/nzbdav/.ids/...; 'shard-links' wants them under .ids-s<N>.\n"
        f"systemd: copy {out / 'rclone.conf'} and the layout's shardproxy.toml to "
        f"{config_dir}/,\nits units to /etc/systemd/system/ and run\n"
        "  systemctl daemon-reload && systemctl enable --now shardproxy-mergerfs.service\n"
        f"compose: in the layout's {COMPOSE_FOLDER}/ folder, `docker compose build && "
        "docker compose up -d`\n(see the comments at the top of its compose.yaml first)."
    )
