"""A shard folder's listing checked and rewritten in bulk: the listing rclone asks for most.

Walking a shard view, rclone lists the folders below ``/.ids/<c>`` one after another.
NzbDav answers each with the folder and its sub-folders (or files), every entry the
same response but for its name, which stands in two places: the last segment of its
href and its ``displayname``. The view keeps every entry and moves them all to one view
folder, so the only change is the folder's URL at the start of each href.

Such a body is taken apart at its ``<response>`` start tags (one C call) and each entry
compared whole with the first entry, its name put in (two C calls). What is left to
prove well-formed is the first entry, once per distinct shape, and the folder's own
response, whose displayname alone may differ. Every other byte of the body is then a
copy of a checked byte or a plain name, so the body is what the reference filter reads,
and the output is the same slices with the new folder URL in front.

Anything else — another policy, a folder whose entries the view splits or drops, an
entry that differs in more than its name (files with their sizes and dates), odd hrefs,
several propstats — is left to ``fast`` (None).
"""

from __future__ import annotations

import functools
import re
from typing import Final

from shardproxy.listing.errors import Filtered
from shardproxy.listing.fast import (
    ITEM,
    PLAIN_HREF,
    ROOT_END,
    Names,
    checked_tags,
    plain_characters,
    read_root,
)
from shardproxy.listing.href import parse_href
from shardproxy.listing.policy import ShardListingPolicy

# A text run: what follows a tag's ">" up to the next "<". Taking each out leaves the tags.
_TEXT_RUN: Final = re.compile(rb">[^<]++")


def filter_folder(
    policy: ShardListingPolicy, body: bytes, *, base_path: str | None = None
) -> Filtered | None:
    """What ``filter_reference`` gives for ``body``, or None to ask ``fast`` instead."""
    root = read_root(body)
    if root is None:
        return None
    at, names = root
    close = body.rfind(b"</")
    tail = ROOT_END.fullmatch(body, close)
    if tail is None or tail[1] != names.root:
        return None
    response_open = b"<" + names.dav + b"response>"
    pieces = body[at:close].split(response_open)
    if len(pieces) < 3 or b"<" in pieces[0] or not plain_characters(pieces[0]):
        return None  # no entry, or something before the first response
    entry = _Entry.of(pieces[2], names)
    # The cheap comparisons first: a listing of files (sizes, dates) fails them at once.
    if entry is None or not all(map(entry.matches, pieces[3:])):
        return None
    own_href = _own_href(pieces[1], entry)
    if own_href is None or not entry.is_well_formed(response_open, names):
        return None
    new_prefix = _new_folder_prefix(policy, entry, base_path)
    if new_prefix is None:
        return None
    new_own_href = new_prefix if own_href == entry.prefix else new_prefix[:-1]
    out = [body[:at], pieces[0], response_open, new_own_href, pieces[1][len(own_href) :]]
    skip = len(entry.prefix)
    for piece in pieces[2:]:
        out += (response_open, new_prefix, piece[skip:])
    out.append(body[close:])
    return Filtered(b"".join(out), len(pieces) - 1, len(pieces) - 1, 0)


class _Entry:
    """An entry's response split around its name: prefix, name, middle, name, ending.

    ``prefix`` is the href start tag and the folder's URL with its "/"; ``middle`` runs
    from the href end tag to the displayname start tag; ``ending`` from the displayname
    end tag to the next response.
    """

    __slots__ = ("ending", "folder_url", "middle", "name", "piece", "prefix")

    def __init__(self, piece: bytes, href_open: bytes, href_end: int, middle_end: int) -> None:
        href = piece[len(href_open) : href_end]
        self.folder_url, _slash, self.name = href.rpartition(b"/")
        self.piece = piece
        self.prefix = href_open + self.folder_url + b"/"
        self.middle = piece[href_end:middle_end]
        self.ending = piece[middle_end + len(self.name) :]

    @classmethod
    def of(cls, piece: bytes, names: Names) -> _Entry | None:
        """The first entry (what follows its response start tag), if it has that form."""
        href_open = b"<" + names.dav + b"href>"
        if not piece.startswith(href_open):
            return None
        href_end = piece.find(b"<", len(href_open))
        folder_url, slash, name = piece[len(href_open) : max(href_end, 0)].rpartition(b"/")
        if not (folder_url and slash and _is_plain_name(name)):
            return None
        # The displayname that holds the name, after the href.
        displayname = b"<" + names.dav + b"displayname>"
        at = piece.find(displayname + name + b"</", href_end)
        if at < 0:
            return None
        return cls(piece, href_open, href_end, at + len(displayname))

    def is_well_formed(self, response_open: bytes, names: Names) -> bool:
        """True if the entry is one well-formed response with one propstat."""
        tags = _TEXT_RUN.sub(b">", response_open + self.piece)
        return plain_characters(self.piece) and _is_one_response(tags, names)

    def matches(self, piece: bytes) -> bool:
        """True if ``piece`` is this entry with another plain name in both places."""
        start = len(self.prefix)
        name = piece[start : piece.find(b"<", start)]
        # (The whole comparison first: it fails at once for what is not this entry.)
        return piece == b"".join((self.prefix, name, self.middle, name, self.ending)) and (
            name.replace(b"-", b"").isalnum()
        )


def _own_href(piece: bytes, entry: _Entry) -> bytes | None:
    """How the folder's own response starts (href start tag, folder URL, maybe "/"), if
    it is the entry's shape with its own plain displayname."""
    for href in (entry.prefix, entry.prefix[:-1]):
        head = href + entry.middle
        name = piece[len(head) : len(piece) - len(entry.ending)]
        if piece.startswith(head) and piece.endswith(entry.ending) and _is_plain_name(name):
            return href
    return None


def _new_folder_prefix(
    policy: ShardListingPolicy, entry: _Entry, base_path: str | None
) -> bytes | None:
    """The entry's ``prefix`` with the folder's URL as the view shows it.

    None unless the folder's URL is plain (nothing to decode, escape or resolve: each
    href then changes by the same bytes as its folder) and the policy moves the folder
    and every entry directly in it to one view folder.
    """
    url = entry.prefix[entry.prefix.index(b">") + 1 :]
    if PLAIN_HREF.fullmatch(url) is None:
        return None
    folder = parse_href(url.decode(), base_path)
    view = None if folder is None else policy.folder_view(folder.decoded)
    if folder is None or view is None:
        return None
    text = folder.text_for(view)
    new_url = url if text is None else text.encode()
    return entry.prefix[: len(entry.prefix) - len(url)] + new_url


def _is_plain_name(name: bytes) -> bool:
    """A hex level or a UUID: letters, digits and "-", nothing to escape or decode."""
    return name.replace(b"-", b"").isalnum()


@functools.lru_cache(maxsize=64)
def _is_one_response(tags: bytes, names: Names) -> bool:
    """True if ``tags`` (a response with its text taken out) is one response with one
    propstat by ``fast``'s grammar.

    Cached: a pure function of its arguments, and a backend writes a handful of shapes.
    """
    item = ITEM.fullmatch(tags)
    if item is None or item.start("href") < 0:
        return False
    found = checked_tags(tags, item, names)
    # Several propstats may need reordering (2xx first): the shortcut's work.
    return found is not None and found.count(b"<" + names.dav + b"propstat") == 1
