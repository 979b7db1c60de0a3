"""Deterministic file content, generated on demand.

Every byte of a stand-in file is a pure function of a per-file seed and its
offset, so a 1 GiB file costs nothing until it is read and any range can be
checked independently of the server. The stream is cut into 64 KiB blocks.
Each file has a 256 KiB page of SHAKE-128 output; block ``k`` is a 64 KiB
window of that page, at an offset drawn from SHAKE-128 of ``seed || k``,
passed through a byte table drawn from the same hash. That runs at several
hundred MB/s in pure Python, and nothing repeats: two positions of a file
(or of two files) agree on a run of bytes only by chance, so reading from a
wrong offset yields different bytes.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from functools import lru_cache

BLOCK_SIZE = 64 * 1024
"""Size of one generated block; also the chunk size NzbDav copies with."""

_SEED_PREFIX = b"nzbdav-standin/v1:"
_PAGE_SIZE = 256 * 1024

_HEX8_4_4_4_12 = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_GUID_FORMS = re.compile(
    rf"{_HEX8_4_4_4_12}|[0-9a-fA-F]{{32}}|\{{{_HEX8_4_4_4_12}\}}|\({_HEX8_4_4_4_12}\)"
)


def parse_guid(text: str) -> str | None:
    """Parse ``text`` the way .NET ``Guid.Parse`` does; return it lowercase or ``None``.

    Accepts the D (dashed), N (32 hex), B (``{...}``) and P (``(...)``) forms,
    any case, surrounded by whitespace.
    """
    match = _GUID_FORMS.fullmatch(text.strip())
    if match is None:
        return None
    return str(uuid.UUID(hex=re.sub(r"[^0-9a-fA-F]", "", match.group(0))))


def content_key(path: str, file_uuid: str | None = None) -> str:
    """Return the key a file's bytes derive from.

    A file with an id (every Usenet file NzbDav serves) is keyed by that id,
    so ``/content/...``, ``/.ids/...`` and any other five-level path to the
    same id serve identical bytes. Other files are keyed by their path.
    """
    if file_uuid is not None:
        return "uuid:" + file_uuid.lower()
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if path.startswith("/.ids/"):
        parsed = parse_guid(last)
        if parsed is not None:
            return "uuid:" + parsed
    return "path:" + path


def seed_for(key: str) -> bytes:
    """Return the 32-byte seed of a content key."""
    return hashlib.sha256(_SEED_PREFIX + key.encode()).digest()


@lru_cache(maxsize=64)
def _page(seed: bytes) -> bytes:
    # At most 16 MiB of pages are kept: enough for every file a test or a
    # benchmark reads at once.
    return hashlib.shake_128(seed + b"/page").digest(_PAGE_SIZE)


def _block(seed: bytes, index: int) -> bytes:
    draw = hashlib.shake_128(seed + index.to_bytes(8, "big")).digest(256 + 8)
    offset = int.from_bytes(draw[256:], "big") % (_PAGE_SIZE - BLOCK_SIZE + 1)
    # The table differs per block, so even a block whose window overlaps
    # another's reads differently.
    return _page(seed)[offset : offset + BLOCK_SIZE].translate(draw[:256])


def iter_generated(seed: bytes, start: int, end_inclusive: int) -> Iterator[bytes]:
    """Yield the bytes ``start..end_inclusive`` of the stream of ``seed``, block by block."""
    if start < 0 or end_inclusive < start:
        return
    position = start
    while position <= end_inclusive:
        index, offset = divmod(position, BLOCK_SIZE)
        stop = min(BLOCK_SIZE, end_inclusive - index * BLOCK_SIZE + 1)
        chunk = _block(seed, index)[offset:stop]
        yield chunk
        position += len(chunk)


def generate(seed: bytes, start: int, end_inclusive: int) -> bytes:
    """Return the bytes ``start..end_inclusive`` of the stream of ``seed``."""
    return b"".join(iter_generated(seed, start, end_inclusive))


def expected_bytes(path: str, size: int, start: int, end_inclusive: int) -> bytes:
    """Return the bytes ``start..end_inclusive`` of a generated file, computed without a server.

    ``path`` is the file's ``/.ids/`` path for a file with an id (a
    ``/content`` file shares its id's bytes: pass ``uuid_path(file.uuid)``),
    or the file's own path otherwise. The end is clamped to ``size - 1``; a
    range starting at or past ``size`` is empty. Files given fixed bytes
    (``Library.add_bytes``) are not generated and cannot be checked this way.
    """
    end = min(end_inclusive, size - 1)
    return generate(seed_for(content_key(path)), start, end)
