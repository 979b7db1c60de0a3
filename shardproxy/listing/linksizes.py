"""Listings of ``/completed-symlinks`` with each ``.rclonelink``'s size as the proxy serves it.

With ``rewrite_rclonelinks`` every ``.rclonelink`` body grows by ``rclonelink.GROWTH``
bytes, and rclone trusts the listed ``getcontentlength``, so the listing must say so.
A link larger than the proxy rewrites is served as it is, so it keeps its listed size
(and is named, for a log line). Only those numbers change: the rest of the body goes out
byte for byte (edits are made on slices of the input, never by re-serialising). Pure:
bytes in, bytes out.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit
from xml.parsers import expat

from shardproxy.core.rclonelink import is_rclonelink
from shardproxy.listing.safexml import ForbiddenXml, new_parser, release

_RESPONSE = "DAV: response"
_HREF = "DAV: href"
_LENGTH = "DAV: getcontentlength"


class LinkListingError(ValueError):
    """The listing is not XML the proxy can edit; the message says where it broke."""


class _Sizes:
    """Finds, per <response>, its href and the byte span of its getcontentlength text."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.parser = new_parser()
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.parser.CharacterDataHandler = self._text
        # (href, span of its getcontentlength text) of each .rclonelink entry
        self.edits: list[tuple[str, int, int]] = []
        self._href: list[str] | None = None
        self._href_text = ""
        self._lengths: list[tuple[int, int]] = []
        self._length_start = -1

    def _start(self, name: str, _attributes: dict[str, str]) -> None:
        if name == _RESPONSE:
            self._href_text, self._lengths = "", []
        elif name == _HREF:
            self._href = []
        elif name == _LENGTH:
            # Text starts after the start tag's '>' (expat points at its '<').
            tag_start = self.parser.CurrentByteIndex
            self._length_start = self.body.index(b">", tag_start) + 1

    def _text(self, data: str) -> None:
        if self._href is not None:
            self._href.append(data)

    def _end(self, name: str) -> None:
        if name == _HREF and self._href is not None:
            self._href_text, self._href = "".join(self._href), None
        elif name == _LENGTH and self._length_start >= 0:
            end = self.parser.CurrentByteIndex
            # An empty element <x/> ends where it starts: nothing to edit.
            if self.body[end : end + 2] == b"</":
                self._lengths.append((self._length_start, end))
            self._length_start = -1
        elif name == _RESPONSE and is_rclonelink(unquote(urlsplit(self._href_text.strip()).path)):
            self.edits.extend((self._href_text.strip(), start, end) for start, end in self._lengths)


@dataclass(frozen=True)
class GrownListing:
    """A listing with its links' sizes grown, and the hrefs of links too big to rewrite."""

    body: bytes
    too_big: tuple[str, ...] = ()


def grow_link_sizes(body: bytes, growth: int, largest: int) -> GrownListing:
    """``body`` with ``growth`` added to the listed size of every ``.rclonelink`` entry.

    Links listed larger than ``largest`` bytes are not rewritten when served, so their
    size stays; their hrefs are returned.
    """
    sizes = _Sizes(body)
    try:
        sizes.parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise LinkListingError(f"listing is not well-formed XML: {exc}") from None
    except ForbiddenXml as exc:
        raise LinkListingError(f"listing refused: {exc}") from None
    finally:
        release(sizes.parser)
    out: list[bytes] = []
    too_big: list[str] = []
    at = 0
    for href, start, end in sizes.edits:
        text = body[start:end].strip()
        if not text.isdigit():
            raise LinkListingError(f"getcontentlength {text[:40]!r} is not a number")
        if len(text) > len(str(largest)) or int(text) > largest:
            too_big.append(href)
            continue
        out.extend((body[at:start], str(int(text) + growth).encode()))
        at = end
    out.append(body[at:])
    return GrownListing(b"".join(out), tuple(too_big))
