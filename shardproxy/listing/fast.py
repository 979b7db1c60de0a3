"""A shortcut for the listings WebDAV servers write, giving what the reference filter gives.

A plain function of the whole body, with no state kept between calls. It takes a body
only when regular expressions prove it well-formed: UTF-8; no comments, CDATA,
processing instructions or character references; elements nested at most a few levels
deep, every end tag matching its start tag; DAV: ``response`` and ``href`` only where a
listing has them, each response starting with its one href. Namespaces are read without
tracking scopes, by rules that make scopes not matter (``_scope``): prefixes
declared on the root, or on every response's start tag (Apache's ``lp1``), and nowhere
else but as repeats that change nothing (Go's ``<D:collection xmlns:D="DAV:"/>``);
attributes on any element, prefixed ones with a declared prefix (lighttpd's ``ns0:dt``);
other names for DAV: never on an element the filter reads. Anything else, including a
listing the policy would clone an entry of, is left to the reference filter (None): the
shortcut never decides that a body is malformed.

Two things make it quick. Responses are matched with the very tags of a response seen
before, its properties in any order (a literal pattern, checked once by the grammar and
the namespace rules); and the
entries of one folder, whose hrefs share the folder's part, reuse how the first of them
was rewritten.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from shardproxy.listing.edits import is_2xx, ordered_ranges, render
from shardproxy.listing.errors import Filtered
from shardproxy.listing.href import Href, parse_href, xml_escape
from shardproxy.listing.policy import ResponsePolicy

_S: Final = rb"[ \t\r\n]"
_END: Final = _S + b"*+>"
_NCNAME: Final = rb"[A-Za-z_][A-Za-z0-9._-]*+"
_NAME: Final = b"(?:" + _NCNAME + b":)?" + _NCNAME
# Attributes: a value holds no "<" (XML's rule) and, here, no ">", so a tag ends at its
# first ">" for every pattern that looks at tags. References in values are checked with
# the text's (plain_characters).
_VALUE: Final = rb"(?:\"[^\"<>]*+\"|'[^'<>]*+')"
_ATTRIBUTES: Final = b"(?:" + _S + b"++" + _NAME + _S + b"*+=" + _S + b"*+" + _VALUE + b")*+"
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
    start = b"<(?P<" + name + b">" + _NAME + b")" + _ATTRIBUTES + _S + b"*+"
    return start + b"(?:/>|>" + content + b"</(?P=" + name + b")" + _END + b")"


# One item of the root: text, then a response (its href's text and what follows the
# href are groups) or another element. Prefixes are checked by _shape_of.
ITEM = re.compile(
    _TEXT
    + b"(?:(?P<response><(?P<rq>(?:"
    + _NCNAME
    + b":)?response)"
    + _ATTRIBUTES
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
_SHAPES: Final = 3
"""Shapes learnt per body at most (a folder and its entries need two): learning a shape
costs more than matching the grammar, so a body of ever new shapes is read by the
grammar, and its names checked once over the whole body."""
# A start tag with attributes, and one attribute of it (name, quoted value).
_ATTRIBUTED_TAG = re.compile(
    rb"<[A-Za-z_][A-Za-z0-9._:-]*+(?:[ \t\r\n]++[^ \t\r\n=<>/]++[ \t\r\n]*+=[ \t\r\n]*+"
    + _VALUE
    + rb")++[ \t\r\n]*+/?>"
)
_ATTRIBUTE = re.compile(rb"[ \t\r\n]++([^ \t\r\n=<>/]++)[ \t\r\n]*+=[ \t\r\n]*+(" + _VALUE + b")")


class Names(NamedTuple):
    """What the root start tag declares."""

    prefixes: frozenset[bytes]
    """Declared prefixes (not the default namespace)."""
    declared: frozenset[tuple[bytes, bytes]]
    """Every declaration, as (prefix, namespace); b"" is the default namespace."""
    aliases: frozenset[bytes]
    """Prefixes bound to DAV: but not used for the root (b"" for the default namespace)."""
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
    scope = _scope(body, at, names)
    if scope is None:
        return None
    root_end = at
    unchecked = False  # a response read by the grammar alone, its names not yet checked
    out: list[bytes] = []
    emitted = 0
    responses_in = responses_out = bad_hrefs = 0
    # The folder whose entries take the quick way, as locals (this loop is the hot one).
    key, key_length, folder_path, folder_client, folder_text = b"\x00", 1, "", "", None
    client_paths = policy.client_paths
    propstat_tag = b"<" + names.dav + b"propstat"
    dav_response, dav_href = names.dav + b"response", names.dav + b"href"
    shape = _NEVER
    shapes_left = _SHAPES
    shape_propstats = False  # several propstats in responses of the shape
    while (item := shape.match(body, at) or ITEM.match(body, at)) is not None:
        at = item.end()
        href_start, href_end = item.span("href")
        if item.re is shape:
            several_propstats = shape_propstats
        elif href_start < 0:
            if not _plain_other(body, item, names):
                return None
            continue  # another element
        else:
            if item["rq"] != dav_response or item["hq"] != dav_href:
                return None
            several_propstats = body.count(propstat_tag, href_end, at) > 1
            if shapes_left:
                if not _names_follow_rules(body, item.start("response"), at, scope, 1):
                    return None
                shapes_left -= 1
                shape, shape_propstats = _shape_of(body, item, names.dav), several_propstats
            else:
                unchecked = True
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
    if unchecked and not _names_follow_rules(body, root_end, end.start(), scope, responses_in):
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


def _names(root: bytes, root_prefix: bytes, declarations: bytes) -> Names | None:
    """What the root start tag declares; None if unusual."""
    declared: dict[bytes, bytes] = {}
    for prefix, double_quoted, single_quoted in _DECLARATION.findall(declarations):
        uri = double_quoted or single_quoted
        if prefix in declared or prefix.lower().startswith(b"xml") or (prefix and not uri):
            return None
        declared[prefix] = uri
    if declared.get(root_prefix) != _DAV:
        return None  # the root in another namespace
    aliases = frozenset(p for p, uri in declared.items() if uri == _DAV and p != root_prefix)
    qualified = root_prefix + b":" if root_prefix else b""
    prefixes = frozenset(declared) - {b""}
    return Names(prefixes, frozenset(declared.items()), aliases, qualified, root)


class _Scope(NamedTuple):
    """The names a body's responses may use, from its root and response start tags."""

    names: Names
    response_open: bytes
    """The start tag every response has."""
    declared: frozenset[tuple[bytes, bytes]]
    """Declarations in scope in every response (the root's and the response tag's)."""
    prefixes: frozenset[bytes]
    """Prefixes declared in every response."""
    aliases: re.Pattern[bytes] | None
    """Finds another name for DAV: on an element the filter reads, if there are any."""


def _scope(body: bytes, at: int, names: Names) -> _Scope | None:
    """The names of ``body``'s responses, from the first response start tag after ``at``
    (the end of the root start tag); None if that tag declares what the shortcut avoids.

    The rules, which make namespace scopes not matter (``_names_follow_rules`` checks
    them): every response start tag is the same; a prefix is declared on the root or on
    that tag, and anywhere else only as a repeat of one of those (which changes
    nothing); the root's prefix for DAV: always means DAV:; every prefix used is
    declared; another name for DAV: never names an element the filter reads; elements
    outside responses use the root's prefixes only (``_plain_other``).
    """
    response = b"<" + names.dav + b"response"
    first = body.find(response, at)
    response_open = response + b">"
    declared = set(names.declared)
    if first >= 0:
        response_open = body[first : body.find(b">", first) + 1]
        attributes = _ATTRIBUTE.findall(response_open)
        on_tag = _checked_declarations(attributes, names.dav[:-1])
        redeclared = {prefix for prefix, _uri in on_tag or ()}
        if on_tag is None or len(redeclared) != len(attributes):
            return None  # odd or repeated declarations, or attributes that are none
        declared = {d for d in declared if d[0] not in redeclared} | set(on_tag)
    prefixes = frozenset(prefix for prefix, _uri in declared if prefix)
    aliases = {p for p, uri in declared if uri == _DAV and p != names.dav[:-1]}
    pattern = None
    if aliases:
        spelt = b"|".join(re.escape(alias) + b":" for alias in sorted(aliases) if alias)
        if b"" in aliases:
            spelt = spelt + b"|" if spelt else b""
        listing = b"(?:multistatus|response|href|propstat|status|prop)[ \t\r\n/>]"
        pattern = re.compile(b"</?(?:" + spelt + b")" + listing)
    return _Scope(names, response_open, frozenset(declared), prefixes, pattern)


def _checked_declarations(
    attributes: list[tuple[bytes, bytes]], root_prefix: bytes
) -> list[tuple[bytes, bytes]] | None:
    """The declarations among a tag's attributes as (prefix, namespace); None if one
    is odd (a reserved prefix, an undeclared one, or the root's DAV: prefix rebound)."""
    found = []
    for name, quoted in attributes:
        if name == b"xmlns" or name.startswith(b"xmlns:"):
            prefix, uri = name[6:], quoted[1:-1]
            if prefix.lower().startswith(b"xml") or (prefix and not uri):
                return None
            if prefix == root_prefix and uri != _DAV:
                return None
            found.append((prefix, uri))
    return found


def _names_follow_rules(body: bytes, start: int, end: int, scope: _Scope, responses: int) -> bool:
    """True if body[start:end], holding ``responses`` whole responses (and what lies
    between them), follows the rules of ``_scope``, and has no response start tag or
    href but the responses' own."""
    dav = scope.names.dav
    if body.count(scope.response_open, start, end) != responses:
        return False
    if body.count(b"<" + dav + b"response", start, end) != responses:
        return False
    if body.count(b"<" + dav + b"href", start, end) != responses:
        return False
    if body.find(b"=", start, end) >= 0:
        for tag in set(_ATTRIBUTED_TAG.findall(body, start, end)):
            if tag == scope.response_open:
                continue
            attributes = _ATTRIBUTE.findall(tag)
            spelt = [name for name, _value in attributes]
            local = [name.rpartition(b":")[2] for name in spelt if b":" in name]
            if len(set(spelt)) != len(spelt) or len(set(local)) != len(local):
                return False  # a repeated attribute (maybe through two prefixes)
            declarations = _checked_declarations(attributes, dav[:-1])
            if declarations is None or not scope.declared.issuperset(declarations):
                return False  # a declaration that could change what a name means
            for name in spelt:
                prefix, colon, _local = name.partition(b":")
                if colon and prefix != b"xmlns" and prefix not in scope.prefixes:
                    return False
    # Each "<" here begins a tag (ITEM made sure of that), end tags match start tags: if
    # every start tag is counted with a declared prefix, no other prefix is used.
    # Unprefixed names (in no namespace, or the default) take the slower search.
    tags = body.count(b"<", start, end) - body.count(b"</", start, end)
    for prefix in scope.prefixes:
        tags -= body.count(b"<" + prefix + b":", start, end)
    if tags:
        declared = b"|".join(re.escape(prefix) for prefix in sorted(scope.prefixes))
        undeclared = re.compile(b"<(?!(?:" + declared + b"):)" + _NCNAME + b":")
        if undeclared.search(body, start, end):
            return False
    return scope.aliases is None or scope.aliases.search(body, start, end) is None


def _plain_other(body: bytes, item: re.Match[bytes], names: Names) -> bool:
    """True if another element at the root's level uses only the root's prefixes and
    has no attributes (the response start tag's declarations are not in scope there)."""
    return (
        b"=" not in body[item.start() : item.end()] and checked_tags(body, item, names) is not None
    )


def checked_tags(body: bytes, item: re.Match[bytes], names: Names) -> list[bytes] | None:
    """The start tags of an item ITEM matched; None if its names are not as they must be.

    ITEM checked the nesting. Here every prefix must be declared on the root; a response
    must be named as the root names DAV:, and DAV: response and href stand nowhere else
    (the reference filter would read them differently).
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


def _shape_of(body: bytes, item: re.Match[bytes], dav: bytes) -> re.Pattern[bytes]:
    """A pattern matching responses with the very tags of this one (a response), but for
    the order of the properties in its one ``<prop>``: some servers (Go's) change it
    from response to response. Any sequence of those properties is well-formed.

    It has the groups of ITEM that filter_fast reads. (re keeps compiled patterns, so a
    shape seen before is not compiled again.)
    """
    tags = _ANY_TAG.findall(body, item.end("href"), item.end())
    # Escaped in one go: tags hold no NUL.
    escaped = re.escape(b"\x00".join(tags)).split(b"\x00")
    pieces = escaped[1:-1]
    prop_open, prop_close = b"<" + dav + b"prop>", b"</" + dav + b"prop>"
    if tags.count(prop_open) == 1:
        first = tags.index(prop_open)
        properties: set[bytes] = set()
        depth, start = 0, first + 1
        for index in range(first + 1, len(tags)):
            tag = tags[index]
            if depth == 0 and tag == prop_close:
                if properties:
                    loop = b"(?:(?:" + b"|".join(sorted(properties)) + b")" + _TEXT + b")*+"
                    pieces[first : index - 1] = [loop]
                break
            depth += -1 if tag.startswith(b"</") else 0 if tag.endswith(b"/>") else 1
            if depth == 0:
                properties.add(_TEXT.join(escaped[start : index + 1]))
                start = index + 1
    head = body[item.start("response") : item.start("href")]
    pattern = (
        _TEXT
        + b"(?P<response>"
        + re.escape(head[: head.index(b">") + 1])
        + _TEXT
        + re.escape(head[head.rindex(b"<") :])
        + b"(?P<href>"
        + _HREF_TEXT
        + b")"
        + escaped[0]
        + b"(?P<children>"
        + _TEXT.join([b"", *pieces, b""])
        + b")"
        + escaped[-1]
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
