"""A library of any size, shaped like a real one: what a Plex scan benchmark walks.

``build_generated(library, items, seed=...)`` adds ``items`` Usenet files: seven in
ten are episodes (shows of a few seasons, each season a job of its own, as season
packs are grabbed), the rest films (one job each). Every file gets a UUID, so it shows up
under ``/content/<category>/<job>/``, ``/.ids/h/h/h/h/h/<uuid>`` and
``/completed-symlinks`` (its ``.rclonelink``), like everything NzbDav imports. The same
seed gives the same library. Sizes are drawn from ``sizes`` (bytes, both ends included):
content is generated as it is read, so large sizes cost nothing until someone reads.

Each item's ``library_path`` is where Sonarr or Radarr would put its symlink in a Plex
library (``tv/<show>/Season NN/<file>``, ``movies/<film>/<file>``).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from nzbdav_standin.catalog import Library

_BASE_DATE = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
_EPISODE_SHARE = 0.7
_SEASONS = (1, 6)
_EPISODES = (6, 13)
_WORDS = (
    "Blue", "Night", "River", "Iron", "Glass", "North", "Silent", "Golden", "Broken",
    "Hidden", "Last", "Wild", "Paper", "Stone", "Winter", "Crimson", "Lost", "Bright",
)  # fmt: skip


@dataclass(frozen=True)
class GeneratedItem:
    """One file of a generated library."""

    content_path: str
    """``/content/<category>/<job>/<file>``."""
    uuid: str
    library_path: str
    """Where its symlink lives in a Plex library, relative to the library's root."""


def parse_kib_range(text: str) -> tuple[int, int]:
    """``"64-512"`` (KiB) as a (min, max) size range in bytes; ValueError if malformed."""
    low, _, high = text.partition("-")
    high = high or low
    if not low.isdigit() or not high.isdigit() or int(high) < int(low):
        raise ValueError(f"want MIN-MAX in KiB, got {text!r}")
    return int(low) * 1024, int(high) * 1024


def _title(rng: random.Random, number: int) -> str:
    return f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} {number:04d}"


def build_generated(
    library: Library, items: int, *, seed: int = 0, sizes: tuple[int, int] = (65536, 1 << 20)
) -> list[GeneratedItem]:
    """Add ``items`` episodes and films to ``library``; return them in the order added."""
    if items < 0 or sizes[0] < 0 or sizes[1] < sizes[0]:
        raise ValueError(f"need items >= 0 and 0 <= min size <= max size, got {items}, {sizes}")
    rng = random.Random(seed)
    added: list[GeneratedItem] = []
    moment = _BASE_DATE
    number = 0
    episodes_added = 0

    def add(category: str, job: str, name: str, library_path: str) -> None:
        nonlocal moment
        moment += timedelta(seconds=rng.randint(30, 900))
        file_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        path = f"/content/{category}/{job}/{name}"
        library.add(path, rng.randint(*sizes), last_modified=moment, uuid=file_uuid)
        added.append(GeneratedItem(path, file_uuid, library_path))

    while len(added) < items:
        number += 1
        title = _title(rng, number)
        dotted = title.replace(" ", ".")
        if not added or episodes_added < _EPISODE_SHARE * len(added):
            for season in range(1, rng.randint(*_SEASONS) + 1):
                job = f"{dotted}.S{season:02d}.1080p.WEB-DL.H.264-GRP"
                for episode in range(1, rng.randint(*_EPISODES) + 1):
                    if len(added) == items:
                        break
                    name = f"{dotted}.S{season:02d}E{episode:02d}.1080p.WEB-DL.H.264-GRP.mkv"
                    shown = f"{title} - S{season:02d}E{episode:02d}.mkv"
                    add("tv", job, name, f"tv/{title}/Season {season:02d}/{shown}")
                    episodes_added += 1
        else:
            year = 1950 + rng.randrange(75)
            job = f"{dotted}.{year}.2160p.BluRay.x265-GRP"
            add("movies", job, f"{job}.mkv", f"movies/{title} ({year})/{title} ({year}).mkv")
    return added
