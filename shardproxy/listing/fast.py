"""A shortcut for the listings NzbDav writes, giving what the reference filter gives.

A plain function of the whole body, with no state kept between calls. It takes a body
only when regular expressions prove it well-formed: UTF-8; no comments, CDATA,
processing instructions or character references; no attributes but the root's
namespace declarations, with one prefix (or the default namespace) for DAV:; elements
nested at most a few levels deep, every end tag matching its start tag and every prefix
declared; DAV: ``response`` and ``href`` only where a listing has them, each response
starting with its one href. Anything else, including a listing the policy would clone
an entry of, is left to the reference filter (None): the shortcut never decides that a
body is malformed.

Two things make it quick. Responses are matched with the very tags of the response
before when they have them (a literal pattern, checked once by the grammar); and the
entries of one folder, whose hrefs share the folder's part, reuse how the first of them
was rewritten.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final, NamedTuple

from shardproxy.listing.edits import is_2xx, ordered_ranges, render
from shardproxy.listing.errors import Filtered
from shardproxy.listing.href import Href, parse_href, xml_escape
from shardproxy.listing.policy import ResponsePolicy

_S: Final = rb"[ \t\r\n]"
_END: Final = _S + b"*+>"
_NCNAME: Final = rb"[A-Za-z_][A-Za-z0-9._-]*+"
_NAME: Final = b"(?:" + _NCNAME + b":)?" + _NCNAME
# Character data without markup. What else it must be (only the five named entities, no
# bytes XML forbids, UTF-8) is checked once for the whole body by plain_characters.
_TEXT: Final = rb"[^<]*+"
_HREF_TEXT: Final = rb"[^<\r]*+"  # expat would read "\r" as "\n"
_ENTITIES: Final = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"))
_NESTING: Final = 8  # levels below a <response>: propstat, prop, supportedlock, ...
_DAV: Final = b"DAV:"

_ODD_REFERENCE = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos);)")
_FORBIDDEN_BYTES: Final = bytes(b for b in range(0x20) if b not in b"\t\n\r")
# Bytes that need no second look: ASCII that XML allows, but "&" and "]" (of "]]>").
_PLAIN_BYTES: Final = bytes(b for b in range(0x80) if b not in _FORBIDDEN_BYTES + b"&]")

_PROLOG = re.compile(
    rb"(?:<\?xml" + _S + rb"+version" + _S + rb"*=" + _S + rb"*(?:\"1\.0\"|'1\.0')"
    rb"(?:"
    + _S
    + rb"+encoding"
    + _S
    + rb"*="
    + _S
    + rb"*(?:\"(?i:utf-8)\"|'(?i:utf-8)'))?"
    + _S
    + rb"*\?>)?"
    + _S
    + rb"*+"
)
_ROOT = re.compile(
    rb"<((?:("
    + _NCNAME
    + rb"):)?multistatus)((?:"
    + _S
    + rb"+xmlns(?::"
    + _NCNAME
    + rb")?"
    + _S
    + rb"*="
    + _S
    + rb"*(?:\"[^\"<&\t\r\n]*\"|'[^'<&\t\r\n]*'))*+)"
    + _END
)
_DECLARATION = re.compile(
    rb"xmlns(?::(" + _NCNAME + rb"))?" + _S + rb"*=" + _S + rb"*(?:\"([^\"]*)\"|'([^']*)')"
)
ROOT_END = re.compile(_TEXT + b"</(" + _NAME + b")" + _END + _S + b"*+")


def _element(group: str, depth: int) -> bytes:
    """A pattern for one element nested at most ``depth`` deep, its end tag checked."""
    name = f"{group}{depth}".encode()
    content = _TEXT
    if depth > 1:
        content = _TEXT + b"(?:" + _element(group, depth - 1) + _TEXT + b")*+"
    start = b"<(?P<" + name + b">" + _NAME + b")" + _S + b"*+"
    return start + b"(?:/>|>" + content + b"</(?P=" + name + b")" + _END + b")"


# One item of the root: text, then a response (its href's text and what follows the
# href are groups) or another element. Prefixes are checked by _shape_of.
ITEM = re.compile(
    _TEXT
    + b"(?:(?P<response><(?P<rq>(?:"
    + _NCNAME
    + b":)?response)"
    + _END
    + _TEXT
    + b"<(?P<hq>(?:"
    + _NCNAME
    + b":)?href)"
    + _END
    + b"(?P<href>"
    + _HREF_TEXT
    + b")</(?P=hq)"
    + _END
    + b"(?P<children>"
    + _TEXT
    + b"(?:"
    + _element("c", _NESTING)
    + _TEXT
    + b")*+)</(?P=rq)"
    + _END
    + b")|(?P<other>"
    + _element("o", _NESTING + 1)
    + b"))"
)
# A child element of a response (or of a propstat); group c8 is its name.
_CHILD = re.compile(_TEXT + b"(?P<child>" + _element("c", _NESTING) + b")")
_START_TAG = re.compile(rb"<" + _NAME)
_ANY_TAG = re.compile(rb"<[^>]*+>")
# An href that needs no decoding, resolving or escaping, split into scheme and authority,
# folder path (up to its last "/") and last segment.
_PLAIN_SEGMENT: Final = rb"[^/?#%&<>\x00-\x20\x7f-\xff]*+"
PLAIN_HREF = re.compile(
    rb"(?!//)((?:https?://" + _PLAIN_SEGMENT + rb")?)"
    rb"((?:/(?!\.\.?(?:/|\Z))" + _PLAIN_SEGMENT + rb")*/)((?!\.\.?\Z)" + _PLAIN_SEGMENT + rb")"
)
_NEVER = re.compile(b"(?!)")


@dataclass(frozen=True, slots=True)
class Names:
    """What the root start tag declares."""

    prefixes: frozenset[bytes]
    """Declared prefixes (not the default namespace)."""
    dav: bytes
    """How DAV: names are written: b"D:" for xmlns:D="DAV:", b"" for the default."""
    root: bytes
    """The root's name as written."""


class _Folder(NamedTuple):
    """How the plain hrefs of one folder's entries are rewritten: by swapping its part."""

    key: bytes
    """The href text up to the last "/"."""
    path: str
    """The folder's decoded path, ending in "/"."""
    client: str
    """Its client path, ending in "/"."""
    text: bytes | None
    """Its new href text, XML-escaped; None if unchanged."""


def filter_fast(
    policy: ResponsePolicy, body: bytes, *, base_path: str | None = None
) -> Filtered | None:
    """What ``filter_reference`` gives for ``body``, or None to ask it instead."""
    head = _read_head(body)
    if head is None:
        return None
    at, names = head
    out: list[bytes] = []
    emitted = 0
    responses_in = responses_out = bad_hrefs = 0
    # The folder whose entries take the quick way, as locals (this loop is the hot one).
    key, key_length, folder_path, folder_client, folder_text = b"\x00", 1, "", "", None
    client_paths = policy.client_paths
    propstat_tag = b"<" + names.dav + b"propstat"
    shape = _NEVER
    several_propstats = False  # in responses of the shape
    while (item := shape.match(body, at) or ITEM.match(body, at)) is not None:
        at = item.end()
        href_start, href_end = item.span("href")
        if item.re is not shape:
            tags = checked_tags(body, item, names)
            if tags is None:
                return None
            if href_start < 0:
                continue  # another element
            shape = _shape_of(body, item, tags)
            several_propstats = tags.count(propstat_tag) > 1
        responses_in += 1
        raw = body[href_start:href_end]
        leaf_bytes = raw[key_length:]
        # A hex level or a UUID: letters, digits and "-" need no escaping or decoding.
        if raw.startswith(key) and leaf_bytes.replace(b"-", b"").isalnum():
            leaf = leaf_bytes.decode()
            paths = client_paths(folder_path + leaf)
            if len(paths) == 1 and paths[0] == folder_client + leaf and not several_propstats:
                responses_out += 1
                if folder_text is not None:
                    out += (body[emitted:href_start], folder_text, leaf_bytes)
                    emitted = href_end
                continue
        href = parse_href(_text(raw), base_path)
        paths = () if href is None else client_paths(href.decoded)
        if isinstance(paths, str) or len(paths) > 1:
            return None  # a TypeError, or clones: left to the reference filter
        start = item.start("response")
        if href is None or not paths:
            bad_hrefs += href is None
            out.append(body[emitted:start])
            emitted = at
            continue
        responses_out += 1
        learnt = _learn_folder(raw, href, paths[0])
        if learnt is not None:
            key, folder_path, folder_client, folder_text = learnt
            key_length = len(key)
            new = None if folder_text is None else folder_text + raw[key_length:]
        else:
            text = href.text_for(paths[0])
            new = None if text is None else xml_escape(text).encode()
        if several_propstats:
            propstats = _propstats(body, *item.span("children"), names.dav)
            if propstats is None:
                return None
            out.append(body[emitted:start])
            edits = [] if new is None else [(href_start, href_end, new)]
            render(out, body, ordered_ranges(start, at, propstats), edits)
            emitted = at
        elif new is not None:
            out.append(body[emitted:href_start])
            out.append(new)
            emitted = href_end
    end = ROOT_END.fullmatch(body, at)
    if end is None or end[1] != names.root:
        return None
    out.append(body[emitted:])
    return Filtered(b"".join(out), responses_in, responses_out, bad_hrefs)


def _read_head(body: bytes) -> tuple[int, Names] | None:
    """Where the root start tag ends and what it declares, if the shortcut can read the body.

    None unless the prolog and root start tag are as the shortcut expects and every
    character of the body is one it need not look at again.
    """
    root = read_root(body)
    if root is None or not plain_characters(body):
        return None
    return root


def read_root(body: bytes) -> tuple[int, Names] | None:
    """``_read_head`` without looking at the characters after the root start tag."""
    prolog = _PROLOG.match(body)
    assert prolog is not None  # the pattern matches the empty string
    root = _ROOT.match(body, prolog.end())
    if root is None or not plain_characters(body[: root.end()]):
        return None
    names = _names(root[1], root[2] or b"", root[3])
    return None if names is None else (root.end(), names)


def plain_characters(body: bytes) -> bool:
    """UTF-8 with only characters XML allows, no "]]>", and no references but the five
    named entities (a character reference may name a character XML forbids)."""
    odd = body.translate(None, _PLAIN_BYTES)
    if not odd:
        return True
    if odd.translate(None, _FORBIDDEN_BYTES) != odd or b"]]>" in body:
        return False
    if b"&" in odd and _ODD_REFERENCE.search(body):
        return False
    if odd.isascii():
        return True
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return b"\xef\xbf\xbe" not in body and b"\xef\xbf\xbf" not in body  # U+FFFE, U+FFFF


@functools.lru_cache(maxsize=16)
def _names(root: bytes, root_prefix: bytes, declarations: bytes) -> Names | None:
    """What the root start tag declares; None if unusual.

    Cached: a pure function of the tag's bytes, which every listing of a backend repeats.
    """
    declared: dict[bytes, bytes] = {}
    for declaration in _DECLARATION.finditer(declarations):
        prefix = declaration[1] or b""
        uri = declaration[2] if declaration[2] is not None else declaration[3]
        if prefix in declared or prefix.lower().startswith(b"xml") or (prefix and not uri):
            return None
        declared[prefix] = uri
    dav = [prefix for prefix, uri in declared.items() if uri == _DAV]
    if dav != [root_prefix]:
        return None  # DAV: under several names, or the root in another namespace
    qualified = root_prefix + b":" if root_prefix else b""
    return Names(frozenset(declared) - {b""}, qualified, root)


def checked_tags(body: bytes, item: re.Match[bytes], names: Names) -> list[bytes] | None:
    """The start tags of an item ITEM matched; None if its names are not as they must be.

    ITEM checked the nesting. Here every prefix must be declared; a response must be
    named as the root names DAV:, and DAV: response and href stand nowhere else (the
    reference filter would read them differently).
    """
    dav = names.dav
    if item.start("href") >= 0 and (item["rq"] != dav + b"response" or item["hq"] != dav + b"href"):
        return None
    tags = _START_TAG.findall(
        body, item.start("children" if item.start("href") >= 0 else 0), item.end()
    )
    listing_tags = (b"<" + dav + b"response", b"<" + dav + b"href")
    for tag in tags:
        prefix, colon, _local = tag[1:].partition(b":")
        if (colon and prefix not in names.prefixes) or tag in listing_tags:
            return None
    return tags


def _shape_of(body: bytes, item: re.Match[bytes], tags: list[bytes]) -> re.Pattern[bytes]:
    """A pattern matching responses with the very tags of this one (a response).

    It has the groups of ITEM that filter_fast reads. (re keeps compiled patterns, so a
    shape seen before is not compiled again.)
    """
    # Tags hold name characters, spaces, "<", "/" and ">": of those only "." means
    # something in a pattern.
    after_href = _ANY_TAG.findall(body, item.end("href"), item.end())
    literal = b"\x00".join(after_href).replace(b".", b"\\.").split(b"\x00")
    response_start = item.start("response")
    head = body[response_start : item.start("href")].replace(b".", b"\\.")
    pattern = (
        _TEXT
        + b"(?P<response>"
        + head[: head.index(b">") + 1]
        + _TEXT
        + head[head.rindex(b"<") :]
        + b"(?P<href>"
        + _HREF_TEXT
        + b")"
        + literal[0]
        + b"(?P<children>"
        + _TEXT.join([b"", *literal[1:-1], b""])
        + b")"
        + literal[-1]
        + b")"
    )
    return re.compile(pattern)


def _text(data: bytes) -> str:
    text = data.decode()
    if "&" in text:
        for entity, char in _ENTITIES:
            text = text.replace(entity, char)
        text = text.replace("&amp;", "&")
    return text


def _learn_folder(raw: bytes, href: Href, client: str) -> _Folder | None:
    """How the folder of a plain href is shown, if its client path keeps the last segment."""
    plain = PLAIN_HREF.fullmatch(raw)
    if plain is None:
        return None
    leaf = plain[3].decode()
    client_folder = client[: len(client) - len(leaf)]
    if not client.endswith(leaf) or not client_folder.endswith("/"):
        return None
    # The tail a plain path shares with its client path is the tail its folder shares
    # with the client folder, plus the leaf: encoding the folder alone gives the same.
    folder_path = href.decoded[: len(href.decoded) - len(leaf)]
    folder = Href("", href.prefix, folder_path, "", "", folder_path)
    text = folder.text_for(client_folder)
    key = raw[: plain.end(2)]
    return _Folder(
        key, folder_path, client_folder, None if text is None else xml_escape(text).encode()
    )


def _propstats(body: bytes, start: int, end: int, dav: bytes) -> list[tuple[int, int, bool]] | None:
    """(start, end, status is 2xx) of each propstat among a response's children.

    start..end is what follows the response's href, up to its end tag; None if a status
    holds markup (left to the reference filter).
    """
    found: list[tuple[int, int, bool]] = []
    child_name = "c" + str(_NESTING)
    at = start
    while (child := _CHILD.match(body, at, end)) is not None:
        at = child.end()
        if child[child_name] != dav + b"propstat":
            continue
        ok = False
        content_start = body.index(b">", child.start("child")) + 1
        if body[content_start - 2] != 0x2F:  # not <propstat/>
            content_end = body.rindex(b"</", content_start, at)
            inner = content_start
            while (grandchild := _CHILD.match(body, inner, content_end)) is not None:
                inner = grandchild.end()
                if grandchild[child_name] != dav + b"status":
                    continue
                status_start = body.index(b">", grandchild.start("child")) + 1
                status = body[status_start : body.rindex(b"</", status_start, inner)]
                if b"<" in status:
                    return None
                ok = is_2xx(_text(status))
        found.append((child.start("child"), child.end("child"), ok))
    return found
