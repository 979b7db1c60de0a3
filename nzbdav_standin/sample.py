"""A realistic sample library: TV and movie jobs, their ids, and a small queue.

The same seed always gives the same ids, names, sizes and dates. Given at least
16 ids, they cover all 16 first hex characters (so every shard owns something).
Names carry the characters that trip up URL encoding: spaces, ``#``, ``&``,
``[ ]``, ``%``, apostrophes and non-ASCII letters.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from nzbdav_standin.catalog import Library

_HEX = "0123456789abcdef"
_BASE_DATE = datetime(2025, 3, 1, 18, 0, 0, tzinfo=UTC)
_MIB = 1024 * 1024

_SHOWS = (
    "The Expanse",
    "Severance",
    "Slow Horses",
    "Shōgun",
    "Law & Order",
    "Mr. Robot",
    "Doctor Who (2023)",
    "Dark",
)
_MOVIES = (
    "Dune Part Two (2024)",
    "Amélie (2001)",
    "Ocean's Eleven (2001)",
    "Number #9 (2009)",
    "[REQ] Heat (1995)",
    "Se7en (1995)",
    "Spirited Away (2001)",
    "100% Wolf (2020)",
)
_NZB_TEMPLATE = """<?xml version="1.0" encoding="utf-8"?>
<nzb xmlns="http://www.newzbin.com/DTD/2003/nzb">
  <head><meta type="name">{name}</meta></head>
  <file poster="poster@example.invalid" date="1740852000"
        subject="&quot;{name}.mkv&quot; yEnc (1/1)">
    <groups><group>alt.binaries.example</group></groups>
    <segments><segment bytes="716800" number="1">{message_id}@example.invalid</segment></segments>
  </file>
</nzb>
"""


def _ids(rng: random.Random, count: int) -> list[str]:
    # The first sixteen ids take each first hex character once, in a shuffled
    # order, so any shard map finds files of its own in a small library.
    firsts = list(_HEX)
    rng.shuffle(firsts)
    ids = []
    for index in range(count):
        text = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if index < len(firsts):
            text = firsts[index] + text[1:]
        ids.append(text)
    return ids


def _dotted(title: str) -> str:
    return title.replace(" ", ".").replace("(", "").replace(")", "")


def build_sample(library: Library, *, n_ids: int, seed: int, big_file_mib: int) -> None:
    """Fill ``library`` with ``n_ids`` Usenet files, maybe a big movie, and three queued NZBs."""
    rng = random.Random(seed)
    ids = _ids(rng, n_ids + (1 if big_file_mib > 0 else 0))
    moment = _BASE_DATE
    placed = 0
    episode_counter: dict[str, int] = {}
    while placed < n_ids:
        moment += timedelta(minutes=rng.randint(3, 240), seconds=rng.randint(0, 59))
        if rng.random() < 0.6:
            show = rng.choice(_SHOWS)
            season = 1 + rng.randrange(3)
            pack = rng.random() < 0.25
            episodes = min(rng.randint(2, 4) if pack else 1, n_ids - placed)
            if pack:
                job = f"/content/tv/{show} S{season:02d} 1080p [WEB-DL]"
            first = episode_counter.get(f"{show}/{season}", 0) + 1
            episode_counter[f"{show}/{season}"] = first + episodes - 1
            for episode in range(first, first + episodes):
                release = f"{_dotted(show)}.S{season:02d}E{episode:02d}.1080p.WEB-DL.H.264-GRP"
                folder = job if pack else f"/content/tv/{release}"
                size = rng.randint(64 * 1024, 2 * _MIB)
                library.add(f"{folder}/{release}.mkv", size, last_modified=moment, uuid=ids[placed])
                placed += 1
        else:
            title = _MOVIES[rng.randrange(len(_MOVIES))]
            job = f"/content/movies/{title} {rng.choice(('1080p', '2160p'))}"
            if library.folder(job) is not None:
                job += f" REPACK{placed}"
            size = rng.randint(256 * 1024, 4 * _MIB)
            file_name = f"{_dotted(title)}.BluRay.x264.mkv"
            library.add(f"{job}/{file_name}", size, last_modified=moment, uuid=ids[placed])
            placed += 1
    if big_file_mib > 0:
        moment += timedelta(minutes=5)
        library.add(
            "/content/movies/Big Buck Bunny (2008) 2160p/Big.Buck.Bunny.2008.2160p.mkv",
            big_file_mib * _MIB,
            last_modified=moment,
            uuid=ids[n_ids],
        )
    for category, name in (
        ("tv", "Slow.Horses.S04E01.1080p.WEB-DL.H.264-GRP"),
        ("movies", "Heat.1995.1080p.BluRay.x264"),
        ("uncategorized", "Some Upload"),
    ):
        moment += timedelta(minutes=1)
        nzb = _NZB_TEMPLATE.format(name=name, message_id=rng.getrandbits(64))
        library.add_bytes(f"/nzbs/{category}/{name}.nzb", nzb.encode(), last_modified=moment)
