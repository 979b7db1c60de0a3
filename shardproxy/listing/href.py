"""An href of a listing: parsed once into what the policy sees, encoded once when it changes.

Only the part of a path that changes is re-encoded; the raw spelling of the tail it
shares with the backend's path is kept, so an unchanged href stays byte for byte.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, unquote

# An href split into scheme+authority (kept verbatim), path, and query/fragment.
_HREF_PARTS = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*:)?(//[^/?#]*)?([^?#]*)(.*)", re.DOTALL)
_DOT_SEGMENT = re.compile(r"(?:^|/)\.\.?(?:/|$)")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
XML_SPACE: Final = " \t\r\n"
# Characters left unescaped when re-encoding a path: RFC 3986 pchar minus ":" (a colon in
# a first segment would read as a scheme).
_PATH_SAFE: Final = "/!$&'()*+,;=@"


def xml_escape(text: str) -> str:
    """Text as XML character data (a "\\r" as a reference, or a parser reads "\\n")."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    return text


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, for paths."""
    parts = path.split("/")
    kept: list[str] = []
    for segment in parts:
        if segment == "..":
            if len(kept) > 1 or (kept and kept[0]):
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if parts[-1] in (".", ".."):
        kept.append("")  # "/a/b/.." names the folder "/a/"
    return "/".join(kept)


@functools.lru_cache(maxsize=256)
def _quote_path(path: str) -> str:
    # Cached: the heads a listing re-encodes are a shard's few view roots.
    return quote(path, safe=_PATH_SAFE)


@dataclass(frozen=True, slots=True)
class Href:
    """One href, split so that a rewrite keeps what it does not change."""

    lead: str
    """Whitespace before the URL in the element text."""
    prefix: str
    """Scheme and authority, verbatim ("" for a path)."""
    raw_path: str
    """The path as written (percent-encoded), dot segments resolved."""
    rest: str
    """Query and fragment, verbatim."""
    trail: str
    """Whitespace after the URL."""
    decoded: str
    """The percent-decoded path: what the policy sees."""

    def text_for(self, client_path: str) -> str | None:
        """The element text that shows this href as client_path; None if it is unchanged."""
        if client_path == self.decoded:
            return None
        return self.lead + self.prefix + self.encode(client_path) + self.rest + self.trail

    def encode(self, client_path: str) -> str:
        """client_path percent-encoded, keeping the raw form of the longest tail of whole
        segments it shares with this href's path."""
        segments = self.raw_path.split("/")
        head = client_path
        kept = 0
        for raw_segment in reversed(segments[1:]):
            segment = unquote(raw_segment) if "%" in raw_segment else raw_segment
            if not head.endswith("/" + segment):
                break
            head = head[: len(head) - len(segment) - 1]
            kept += 1
        if not kept:
            return _quote_path(head)
        return _quote_path(head) + "/" + "/".join(segments[len(segments) - kept :])


def parse_href(text: str, base_path: str | None) -> Href | None:
    """Split and decode an href's text; None if it cannot be decoded.

    ``base_path`` (percent-encoded) resolves a relative href; without it a relative href
    reaches the policy as the relative decoded path.
    """
    url, lead, trail = text, "", ""
    if text and (text[0] in XML_SPACE or text[-1] in XML_SPACE):
        url = text.strip(XML_SPACE)
        lead = text[: len(text) - len(text.lstrip(XML_SPACE))]
        trail = text[len(lead) + len(url) :]
    match = _HREF_PARTS.fullmatch(url)
    if match is None:  # pragma: no cover - the pattern matches any string
        return None
    scheme, authority = match.group(1, 2)
    raw_path, rest = match.group(3, 4)
    prefix = url[: match.start(3)]
    if authority is not None:
        raw_path = raw_path or "/"  # after an authority the path is absolute
    elif not scheme and not raw_path.startswith("/") and base_path is not None:
        # RFC 3986 section 5.2.2: an empty path is the base itself, else merge.
        base = base_path
        raw_path = base[: base.rfind("/") + 1] + raw_path if raw_path else base
    if _DOT_SEGMENT.search(raw_path):
        # Clients resolve "." and ".." before they look at a path; so must the policy.
        raw_path = remove_dot_segments(raw_path)
    if "%" in raw_path:
        if _BAD_PERCENT.search(raw_path):
            return None
        try:
            decoded = unquote(raw_path, errors="strict")
        except UnicodeDecodeError:
            return None
        if _DOT_SEGMENT.search(decoded):
            return None  # "%2E%2E": some clients would resolve it, some not; trust neither
    else:
        decoded = raw_path
    return Href(lead, prefix, raw_path, rest, trail, decoded)
