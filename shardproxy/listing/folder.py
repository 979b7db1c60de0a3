"""A shard folder's listing checked and rewritten in bulk: the listing rclone asks for most.

Walking a shard view, rclone lists the folders below ``/.ids/<c>`` one after another.
NzbDav answers each with the folder and its sub-folders or files, every entry the same
response but for its texts, every href the folder's URL and a name. The view keeps every
entry and moves them all to one view folder, so the only change is the folder's URL at
the start of each href.

Such a body is taken apart at its ``<response>`` start tags (one C call), and the
entries are proved to be copies of the first in what matters:

- sub-folders differ in their name only (href and displayname): each is compared whole
  with the first entry with its name put in;
- files differ in sizes and dates too: with every text run taken out, the entries must
  be the first entry's tags repeated, their characters ones XML allows (one pass each);

then the first entry and the folder's own response are proved well-formed by ``fast``'s
grammar. Every response is then
well-formed, and the output is the same slices with the new folder URL in front.

Anything else — another policy, a folder whose entries the view splits or drops, odd
hrefs or names, several propstats — is left to ``fast`` (None).
"""

from __future__ import annotations

import re
from typing import Final

from shardproxy.listing.errors import Filtered
from shardproxy.listing.fast import (
    ITEM,
    PLAIN_HREF,
    ROOT_END,
    Names,
    plain_characters,
    read_root,
)
from shardproxy.listing.href import Href
from shardproxy.listing.policy import ShardListingPolicy

# A text run: what follows a tag's ">" up to the next "<". Taking each out leaves the tags.
_TEXT_RUN: Final = re.compile(rb">[^<]++")
# A path that percent-encoding and XML escaping leave as it is.
_UNRESERVED: Final = re.compile(r"[A-Za-z0-9._~/-]*+")


def filter_folder(
    policy: ShardListingPolicy, body: bytes, *, base_path: str | None = None
) -> Filtered | None:
    """What ``filter_reference`` gives for ``body``, or None to ask ``fast`` instead.

    (``base_path`` resolves nothing here: the hrefs taken are URLs or absolute paths.)
    """
    root = read_root(body)
    if root is None or root[1].aliases:
        return None  # other names for DAV: are fast's business
    at, names = root
    close = body.rfind(b"</")
    tail = ROOT_END.fullmatch(body, close)
    if tail is None or tail[1] != names.root:
        return None
    response_open = b"<" + names.dav + b"response>"
    pieces = body[at:close].split(response_open)
    if len(pieces) < 3 or b"<" in pieces[0] or not plain_characters(pieces[0]):
        return None  # no entry, or something before the first response
    own, entries = pieces[1], pieces[2:]
    entry = _Entry.of(entries[0], names)
    # Attributes (and namespace declarations among them) are fast's business.
    if entry is None or b"=" in entry.tags:
        return None
    # Sub-folders differ in their names only: each is compared whole with the first. Files
    # differ in sizes and dates too: their tags are compared, and their text checked.
    first_entry = at + len(pieces[0]) + len(response_open) + len(own)
    segment = body[first_entry:close]  # every entry, each from its response start tag
    if not (entry.copies(segment, entries) or entry.tags_match(segment, entries)):
        return None
    own_href = entry.own_href(own)
    if own_href is None:
        return None
    own_tags = _TEXT_RUN.sub(b">", response_open + own)
    if b"=" in own_tags:
        return None
    # The folder's own response, when it has its entries' tags, is as well-formed as they.
    if not plain_characters(own) or not (
        own_tags == entry.tags or _is_one_response(own_tags, names)
    ):
        return None
    if not (plain_characters(entry.piece) and _is_one_response(entry.tags, names)):
        return None
    new_prefix = _new_folder_prefix(policy, entry)
    if new_prefix is None:
        return None
    new_own_href = new_prefix if own_href == entry.prefix else new_prefix[:-1]
    skip = len(entry.prefix)
    entry_start = response_open + new_prefix
    out = [body[:at], pieces[0], response_open, new_own_href, own[len(own_href) :], entry_start]
    out += (entry_start.join([piece[skip:] for piece in entries]), body[close:])
    return Filtered(b"".join(out), len(pieces) - 1, len(pieces) - 1, 0)


class _Entry:
    """The first entry of a folder: its response after the start tag, taken apart.

    ``prefix`` is the href start tag and the folder's URL with its "/"; the rest of the
    href is the entry's name. When its displayname holds the name too, the entry is also
    ``prefix``, name, ``middle``, name, ``ending``: how every sub-folder looks.
    """

    __slots__ = ("ending", "middle", "piece", "prefix", "response_open", "tags")

    def __init__(self, piece: bytes, names: Names, href_end: int, prefix: bytes) -> None:
        self.piece = piece
        self.prefix = prefix
        self.response_open = b"<" + names.dav + b"response>"
        self.tags = _TEXT_RUN.sub(b">", self.response_open + piece)
        # The displayname that holds the name, after the href.
        name = piece[len(prefix) : href_end]
        displayname = b"<" + names.dav + b"displayname>"
        at = piece.find(displayname + name + b"</", href_end)
        self.middle = piece[href_end : at + len(displayname)] if at >= 0 else None
        self.ending = piece[at + len(displayname) + len(name) :] if at >= 0 else b""

    @classmethod
    def of(cls, piece: bytes, names: Names) -> _Entry | None:
        """The first entry (what follows its response start tag), if it has that form."""
        href_open = b"<" + names.dav + b"href>"
        href_end = piece.find(b"<", len(href_open))
        if not piece.startswith(href_open) or href_end < 0:
            return None
        folder_url, slash, name = piece[len(href_open) : href_end].rpartition(b"/")
        if not (folder_url and slash and _is_plain_name(name)):
            return None
        return cls(piece, names, href_end, href_open + folder_url + b"/")

    def names_of(self, pieces: list[bytes]) -> list[bytes] | None:
        """The name (the href after the folder's URL) of each entry, if all are plain.

        Where the folder's URL is, is taken on trust: each caller proves it.
        """
        start = len(self.prefix)
        names = [piece[start : piece.find(b"<", start)] for piece in pieces]
        # (An empty name is the folder itself again: the same prefix swap holds for it.)
        joined = b"".join(names).replace(b"-", b"")
        return names if not joined or joined.isalnum() else None

    def copies(self, segment: bytes, pieces: list[bytes]) -> bool:
        """True if the entries (``segment``, which ``pieces`` are the split of) are this
        entry with their own plain names in both places, and nothing else."""
        middle = self.middle
        names = None if middle is None else self.names_of(pieces)
        if middle is None or names is None:
            return False
        # What the entries would be, built in one join and compared in one go.
        response_open, prefix, ending = self.response_open, self.prefix, self.ending
        expected: list[bytes] = []
        for name in names:
            expected += (response_open, prefix, name, middle, name, ending)
        return segment == b"".join(expected)

    def tags_match(self, segment: bytes, pieces: list[bytes]) -> bool:
        """True if the entries (``segment``, which ``pieces`` are the split of) have this
        entry's tags, characters XML allows, hrefs in this folder and plain names."""
        # The last entry first: a server that orders each response's properties anew
        # (Go's) is told apart without reading the whole segment.
        if _TEXT_RUN.sub(b">", self.response_open + pieces[-1]) != self.tags:
            return False
        tags = _TEXT_RUN.sub(b">", segment)
        if tags != self.tags * len(pieces) or not plain_characters(segment):
            return False
        # The tags hold a response start tag only where each piece starts.
        in_folder = segment.count(self.response_open + self.prefix) == len(pieces)
        return in_folder and self.names_of(pieces) is not None

    def own_href(self, piece: bytes) -> bytes | None:
        """How the folder's own response starts: href start tag, folder URL, maybe "/"."""
        for href in (self.prefix, self.prefix[:-1]):
            if piece.startswith(href) and piece[len(href) : len(href) + 1] == b"<":
                return href
        return None


def _new_folder_prefix(policy: ShardListingPolicy, entry: _Entry) -> bytes | None:
    """The entry's ``prefix`` with the folder's URL as the view shows it.

    None unless the folder's URL is plain (nothing to decode, escape or resolve: each
    href then changes by the same bytes as its folder) and the policy moves the folder
    and every entry directly in it to one view folder.
    """
    url = entry.prefix[entry.prefix.index(b">") + 1 :]
    plain = PLAIN_HREF.fullmatch(url)
    if plain is None:
        return None
    # A plain path is its own decoding, and no base resolves it: it starts with "/".
    path = url[plain.end(1) :].decode()
    view = policy.folder_view(path)
    if view is None:
        return None
    if _UNRESERVED.fullmatch(view):
        # What Href.text_for gives when encoding changes nothing: scheme, host, view.
        new_url = plain[1] + view.encode()
    else:
        text = Href("", plain[1].decode(), path, "", "", path).text_for(view)
        new_url = url if text is None else text.encode()
    return entry.prefix[: len(entry.prefix) - len(url)] + new_url


def _is_plain_name(name: bytes) -> bool:
    """A hex level or a UUID: letters, digits and "-", nothing to escape or decode."""
    return name.replace(b"-", b"").isalnum()


def _is_one_response(tags: bytes, names: Names) -> bool:
    """True if ``tags`` (a response with its text taken out) is one response with one
    propstat by ``fast``'s grammar, every element named with a prefix the root declares."""
    item = ITEM.fullmatch(tags)
    if item is None or item.start("href") < 0:
        return False
    dav = names.dav
    if item["rq"] != dav + b"response" or item["hq"] != dav + b"href":
        return False
    # DAV: response and href nowhere else; several propstats may need reordering (2xx
    # first): fast's work.
    for name, count in ((b"response", 1), (b"href", 1), (b"propstat", 1)):
        if tags.count(b"<" + dav + name) != count:
            return False
    # Every "<" begins a tag and end tags match start tags (ITEM): if every start tag is
    # counted with a declared prefix, none has another.
    starts = tags.count(b"<") - tags.count(b"</")
    for prefix in names.prefixes:
        starts -= tags.count(b"<" + prefix + b":")
    return starts == 0
