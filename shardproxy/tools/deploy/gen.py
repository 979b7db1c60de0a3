"""`shardproxy gen --out DIR`: find the programs, build the files, write them."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

from shardproxy.config.settings import Settings
from shardproxy.tools.deploy.files import generate, obscure, proxy_toml
from shardproxy.tools.deploy.model import Layout, Programs, deployment_from
from shardproxy.tools.deploy.write import read_existing, write_files


def rclone_version(binary: str) -> tuple[int, int]:
    """``(1, 60)`` for rclone v1.60.1-DEV."""
    out = subprocess.run([binary, "version"], capture_output=True, text=True, check=True).stdout
    major, minor = out.split()[1].lstrip("v").split(".")[:2]
    return int(major), int(minor)


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
    settings: Settings, out: Path, programs: Programs, *, force: bool = False
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
        proxy_toml=proxy_toml(settings, deployment),
        obscured_pass=obscured,
    )
    known = [deployment.nzbdav_pass or "", obscured or "", settings.rclone_rc_pass or ""]
    return write_files(out, files, force=force, known_secrets=known)


def next_steps(settings: Settings, out: Path) -> str:
    """What to do with the files, for the terminal."""
    config_dir = settings.config_dir
    layouts = ", ".join(f"{out / layout.value}/" for layout in Layout)
    return (
        f"Copy {out / 'rclone.conf'} and {out / 'shardproxy.toml'} to {config_dir}/, then the\n"
        f"units of one layout ({layouts}) to /etc/systemd/system/ and run\n"
        "  systemctl daemon-reload && systemctl enable --now shardproxy-mergerfs.service\n"
        "or use that layout's compose.yaml. 'links-unchanged' keeps your existing symlinks\n"
        "to <mount_root>/nzbdav/.ids/...; 'shard-links' wants them under .ids-s<N>."
    )
