"""`shardproxy demo`: an NzbDav stand-in with sample files, the proxy in front, rclone on top.

The stand-in comes from the separate ``nzbdav_standin`` package (test equipment, not
product code); the demo only wires it up and shows the shard views with the real rclone.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from aiohttp import web
from yarl import URL

from shardproxy.app import make_proxy_server
from shardproxy.config import HostPort, Settings
from shardproxy.server import run_with_uvloop, start_site
from shardproxy.shards import IDS_NAME, ShardMap, ViewPath, view_root

USER, PASSWORD = "admin", "secret"


def rclone_config(
    proxy: URL, shards: int, *, user: str, obscured_password: str, whole: str = "nzbdav"
) -> str:
    """An rclone.conf with a remote `shard<N>` per shard view, and `whole` for the proxy."""
    sections = [(whole, str(proxy))] + [
        (f"shard{n}", f"{proxy}{view_root(n)}") for n in range(shards)
    ]
    return "".join(
        f"[{name}]\ntype = webdav\nurl = {url}\nvendor = other\n"
        f"user = {user}\npass = {obscured_password}\n\n"
        for name, url in sections
    )


async def obscure(rclone: str, password: str) -> str:
    """The password as rclone.conf stores it (`rclone obscure`)."""
    process = await asyncio.create_subprocess_exec(
        rclone, "obscure", password, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{rclone} obscure failed with exit code {process.returncode}")
    return out.decode().strip()


async def show(title: str, argv: list[str], *, as_hex: bool = False) -> None:
    """Run a command and print it with its output, like a terminal session."""
    print(f"\n$ {' '.join(argv)}    # {title}")
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    text = output.hex(" ") if as_hex else output.decode(errors="replace").rstrip()
    lines = text.splitlines()
    for line in lines[:12]:
        print(f"  {line}")
    if len(lines) > 12:
        print(f"  ... ({len(lines) - 12} more lines)")


async def demo(port: int, shards: int, once: bool) -> None:
    """Start the stand-in and the proxy, show the shard views, serve until stopped."""
    from nzbdav_standin import Library, make_standin_app

    library = Library.sample(n_ids=64, seed=2024)
    backend_runner = web.AppRunner(make_standin_app(library, user=USER, password=PASSWORD))
    await backend_runner.setup()
    backend_site = web.TCPSite(backend_runner, "127.0.0.1", 0)
    await backend_site.start()
    backend_port = backend_runner.addresses[0][1]
    settings = Settings(
        backend=URL(f"http://127.0.0.1:{backend_port}"),
        listen=HostPort("127.0.0.1", port),
        shard_map=ShardMap.even(shards),
    )
    proxy_runner = await start_site(make_proxy_server(settings), settings.listen, reuse_port=False)
    proxy = URL(f"http://127.0.0.1:{port}")
    try:
        print(f"NzbDav stand-in  {settings.backend}  (user {USER}, password {PASSWORD})")
        print(f"shardproxy       {proxy}")
        for shard in range(shards):
            chars = settings.shard_map.prefixes_of(shard)
            print(f"  shard {shard}: {proxy}{view_root(shard)}/  (UUIDs starting {chars})")
        await show_with_rclone(library, proxy, settings.shard_map)
        if once:
            return
        print("\nServing until Ctrl-C.")
        await asyncio.Event().wait()
    finally:
        await proxy_runner.cleanup()
        await backend_runner.cleanup()


async def show_with_rclone(library: object, proxy: URL, shard_map: ShardMap) -> None:
    """Run Debian's rclone against each shard view and print what to try by hand."""
    from nzbdav_standin import Library

    assert isinstance(library, Library)
    rclone = shutil.which("rclone")
    uuid = sorted(library.ids)[0]
    owner = shard_map.shard_of(uuid)
    other = (owner + 1) % shard_map.count
    folder = "/".join(ViewPath.of_uuid(uuid, shard_map).levels)
    config_dir = Path(tempfile.mkdtemp(prefix="shardproxy-demo-"))
    config = config_dir / "rclone.conf"
    if rclone is None:
        print("\nrclone is not installed (./scripts/setup.sh installs it); try curl:")
        print(f"  curl -u {USER}:{PASSWORD} -X PROPFIND -H 'Depth: 1' {proxy}{view_root(owner)}/")
        return
    obscured = await obscure(rclone, PASSWORD)
    config.write_text(rclone_config(proxy, shard_map.count, user=USER, obscured_password=obscured))
    base = [rclone, "--config", str(config)]
    print(f"\nrclone remotes written to {config}: shard0..shard{shard_map.count - 1}, nzbdav")
    for shard in range(shard_map.count):
        await show(f"shard {shard} sees only its prefixes", [*base, "lsf", f"shard{shard}:"])
    await show(
        f"{uuid} lives in shard {owner}",
        [*base, "lsf", "--format", "pst", f"shard{owner}:{folder}"],
    )
    await show(
        f"shard {other} does not have it",
        [*base, "lsf", "--low-level-retries", "1", f"shard{other}:{folder}"],
    )
    await show(
        "16 bytes from offset 1000, through the Range contract",
        [*base, "cat", "--offset", "1000", "--count", "16", f"shard{owner}:{folder}/{uuid}"],
        as_hex=True,
    )
    await show("the whole proxy, with the shard folders", [*base, "lsf", "nzbdav:"])
    print("\nTry it yourself:")
    print(f"  rclone --config {config} lsf shard{owner}:{folder}")
    mountpoint = f"/mnt/shards/s{owner}/{IDS_NAME}"
    print(f"  rclone --config {config} mount shard{owner}: {mountpoint} --read-only")
    print(f"  curl -u {USER}:{PASSWORD} -X PROPFIND -H 'Depth: 1' {proxy}{view_root(owner)}/")


def run_demo(*, port: int, shards: int, once: bool) -> int:
    """Entry point of `shardproxy demo`."""
    run_with_uvloop(demo(port, shards, once))
    return 0
