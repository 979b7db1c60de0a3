"""A faithful stand-in for NzbDav's WebDAV server, for tests, demos and benchmarks.

It serves a ``Library`` of deterministic files the way NzbDav does, quirks
included: full-URL hrefs built from the Host header, virtual ``/.ids``
levels, 404 propstats first, the suffix-range bug, 200 with Content-Range
for whole-file ranges, Basic auth with a login cookie.
"""

from nzbdav_standin.catalog import Library, StandinFile, uuid_path
from nzbdav_standin.content import expected_bytes
from nzbdav_standin.server import READ_LOG, REQUEST_LOG, ReadRecord, RequestRecord, make_standin_app

__all__ = [
    "READ_LOG",
    "REQUEST_LOG",
    "Library",
    "ReadRecord",
    "RequestRecord",
    "StandinFile",
    "expected_bytes",
    "make_standin_app",
    "uuid_path",
]
