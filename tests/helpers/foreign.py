"""Listings as WebDAV servers other than NzbDav write them, and their recordings.

``foreign_listings`` draws listings in the spellings the six recorded servers use, mixed
at random: namespaces declared on every response (Apache's ``lp1``, ``lp2``), repeats of
the root's declaration on inner elements (Go's ``<D:collection xmlns:D="DAV:"/>``),
prefixed attributes (lighttpd's ``ns0:dt``), properties in another order in each
response (Go's), folders with a trailing "/", 404 propstats first. With ``hostile`` one
thing a shortcut could misread is put in somewhere (``HOSTILE``, ``HOSTILE_IN_RESPONSE``).
"""

from __future__ import annotations

import gzip
from pathlib import Path

from hypothesis import strategies as st

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "listings"
HEX = "0123456789abcdef"
APACHE = 'xmlns:lp1="DAV:" xmlns:lp2="http://apache.org/dav/props/"'
LIGHTTPD = 'xmlns:ns0="urn:uuid:c2f41010-65b3-11d1-a29f-00aa00c14882/"'
# Each breaks one rule of the shortcut's; the reference reads them differently from a
# naive reading, or refuses them. Inserted in a response's <prop>.
HOSTILE = [
    '<D:x xmlns:D="urn:other"><D:href>/.ids/5</D:href></D:x>',  # DAV:'s prefix rebound
    "<lp1:href>/.ids/6</lp1:href>",  # another name for DAV: on an href
    "<lp1:propstat><D:status>HTTP/1.1 404 x</D:status></lp1:propstat>",
    '<D:x q:a="1"/>',  # an undeclared attribute prefix
    '<D:x a="1" a="2"/>',  # a repeated attribute
    '<D:x lp1:a="1" D:a="2"/>',  # the same attribute through two prefixes
    '<D:x xmlns:q=""/>',  # a prefix undeclared
    '<D:x xmlns:xml="urn:x"/>',  # a reserved prefix
    '<q:x xmlns:q="urn:q"/>',  # a declaration on an inner element only
    '<D:x a="1>"/>',  # ">" in a value
    '<D:x xmlns="DAV:"><href>/.ids/5</href></D:x>',  # the default namespace as DAV:
]
# The same, put in a response after its propstats.
HOSTILE_IN_RESPONSE = [
    "<D:href>/.ids/5</D:href>",  # a second href
    "<D:response><D:href>/.ids/5</D:href></D:response>",  # a response in a response
    "<lp1:href>/.ids/5</lp1:href>",
]


def recorded(name: str) -> bytes:
    """A recorded listing (``tests/fixtures/listings``), gunzipped if it is gzipped."""
    data = (FIXTURES / name).read_bytes()
    return gzip.decompress(data) if name.endswith(".gz") else data


def recordings() -> list[str]:
    """The names of every recorded listing."""
    return sorted(path.name for path in FIXTURES.iterdir())


@st.composite
def foreign_listings(draw: st.DrawFn, *, hostile: bool = False) -> bytes:
    """A Depth-1 listing of a /.ids folder in foreign servers' spellings (module doc)."""
    apache = draw(st.booleans())
    lighttpd = draw(st.booleans())
    shuffled = draw(st.booleans())
    space = draw(st.sampled_from(["", "\n"]))
    host = draw(st.sampled_from(["", "http://127.0.0.1:8080"]))
    levels = draw(st.lists(st.sampled_from(HEX), min_size=1, max_size=4))
    levels[0] = draw(st.sampled_from("4567" if draw(st.booleans()) else HEX))
    folder = "/.ids/" + "/".join(levels) + "/"
    names = draw(st.lists(st.one_of(st.sampled_from(HEX), st.uuids().map(str)), max_size=6))
    entries = [(folder, True)] + [(folder + name + "/", True) for name in names[:2]]
    entries += [(folder + name, False) for name in names[2:]]
    dav = "lp1" if apache else "D"
    date = f"<{dav}:getlastmodified{' ns0:dt=' + chr(34) + 'x' + chr(34) if lighttpd else ''}>"
    date += f"Fri, 04 Dec 2026 17:00:15 GMT</{dav}:getlastmodified>"
    responses = []
    for path, is_folder in entries:
        props = [
            f"<D:displayname>{path.rstrip('/').rpartition('/')[2]}</D:displayname>",
            date,
            '<D:resourcetype><D:collection xmlns:D="DAV:"/></D:resourcetype>'
            if is_folder
            else "<D:resourcetype></D:resourcetype><D:getcontentlength>9</D:getcontentlength>",
            '<D:supportedlock><D:lockentry xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
            "</D:lockscope></D:lockentry></D:supportedlock>",
        ]
        if apache:
            props.append("<lp2:executable>F</lp2:executable>")
        if shuffled:
            props = draw(st.permutations(props))
        first = ""
        if draw(st.integers(0, 4)) == 0:
            first = "<D:propstat><D:prop><D:getetag/></D:prop>"
            first += "<D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>"
        responses.append(
            f"<D:response{' ' + APACHE if apache else ''}>{space}<D:href>{host}{path}</D:href>"
            f"{first}<D:propstat><D:prop>{space.join(props)}</D:prop>"
            f"<D:status>HTTP/1.1 200 OK</D:status></D:propstat>{space}</D:response>{space}"
        )
    if hostile and responses:
        at = draw(st.integers(0, len(responses) - 1))
        if draw(st.booleans()):
            bad = draw(st.sampled_from(HOSTILE))
            responses[at] = responses[at].replace("<D:prop>", "<D:prop>" + bad, 1)
        else:
            bad = draw(st.sampled_from(HOSTILE_IN_RESPONSE))
            responses[at] = responses[at].replace("</D:response>", bad + "</D:response>", 1)
    root = f'<D:multistatus xmlns:D="DAV:"{" " + LIGHTTPD if lighttpd else ""}>'
    text = f'<?xml version="1.0" encoding="utf-8"?>{space}{root}{space}'
    return (text + "".join(responses) + "</D:multistatus>\n").encode()
