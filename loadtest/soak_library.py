"""The library of the soak run, built the same in the stand-in and in the load users.

The sample library (small episodes and movies under ``/content``) plus one big file per
first hex character, so every shard has files worth 128 MiB reads. Content is generated
from each file's id, so a load user knows every byte the proxy must return.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from urllib.parse import unquote

from aiohttp import web

from nzbdav_standin import Library, make_standin_app
from nzbdav_standin.catalog import StandinFile, uuid_path

SEED = 7
SAMPLE_IDS = 64
BIG_MIB = 384
HEX = "0123456789abcdef"


def big_uuid(first: str) -> str:
    """The id of the big file whose first character is ``first``."""
    return f"{first}{first}0ad000-50a4-4000-8000-{HEX.index(first):012d}"


def soak_library() -> Library:
    """The sample library plus sixteen big files, one per first hex character."""
    library = Library.sample(SAMPLE_IDS, seed=SEED)
    for first in HEX:
        library.add(
            f"/content/movies/Soak {first} (2026)/Soak.{first}.2026.2160p.mkv",
            BIG_MIB << 20,
            uuid=big_uuid(first),
        )
    return library


def file_at(library: Library, url_path: str) -> StandinFile | None:
    """The file a proxy path names: ``/.ids-s<N>/.../<uuid>``, ``/.ids/...`` or ``/content/...``."""
    path = unquote(url_path)
    if path.startswith("/.ids"):
        return library.by_uuid(path.rstrip("/").rsplit("/", 1)[-1])
    return library.file(path)


def shard_files(library: Library, first_chars: str) -> list[StandinFile]:
    """Files with an id whose first character is one of ``first_chars``."""
    return [f for u, f in library.ids.items() if u[0] in first_chars]


def view_path(file: StandinFile, shard: int) -> str:
    """The file's path under ``/.ids-s<shard>``."""
    assert file.uuid is not None
    return uuid_path(file.uuid).replace("/.ids/", f"/.ids-s{shard}/", 1)


async def _serve(port: int) -> None:
    runner = web.AppRunner(make_standin_app(soak_library(), user=None, password=None))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    """Serve the soak library as an NzbDav stand-in (no auth) until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m loadtest.soak_library")
    parser.add_argument("port", type=int)
    asyncio.run(_serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
