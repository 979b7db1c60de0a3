"""A ``Location`` the backend wrote for itself, shown as the client addressed the proxy.

nginx redirects a folder asked without its trailing slash to an absolute URL built
from the Host header's name and its own port (``http://proxy.lan:8080/content/``); a
client following it would bypass the proxy, or reach nothing (``client_location``).
And a Location in reply to a shard view's request must not lead out of that view: a
client following ``/.ids-s1`` to ``/.ids/`` would list every shard's prefixes
(``view_location``). No I/O here.
"""

from __future__ import annotations

from urllib.parse import urljoin

from yarl import URL

from shardproxy.core.shards import (
    IDS_NAME,
    Refused,
    ShardMap,
    ShardRoute,
    decode_segments,
    is_ids_root_name,
    route,
    view_name,
    view_path,
)


def client_location(location: str, backend: URL, client_host: str | None, scheme: str) -> str:
    """``location`` with the backend's scheme, host and port replaced by the client's.

    A Location names the backend when it is absolute and has the backend's port, with
    the backend's host or the host the client asked for. Anything else (a relative
    Location, another server) is returned as it is, and so is everything without a Host.
    """
    if not client_host:
        return location
    try:
        url = URL(location, encoded=True)
        port = url.port
    except ValueError:
        return location
    if not url.absolute or url.host is None or port != backend.port:
        return location
    asked = URL.build(scheme=scheme, authority=client_host, encoded=True)
    if url.host.lower() not in {(backend.host or "").lower(), (asked.host or "").lower()}:
        return location
    return str(
        URL.build(
            scheme=scheme,
            authority=client_host,
            path=url.raw_path,
            query_string=url.raw_query_string,
            fragment=url.raw_fragment,
            encoded=True,
        )
    )


def view_location(location: str, shard: int, shard_map: ShardMap, backend_path: str) -> str | None:
    """``location`` as a client of shard ``shard``'s view may follow it; None if it leads out.

    A Location into NzbDav's tree is shown in the view: ``/.ids`` and ``/.ids/`` as the
    view's root, ``/.ids/<h>/...`` when the shard owns ``h``. One already in the view
    stays, and so does one outside the tree and every view (the pass-through paths). A
    Location into another shard's prefix or view, one with dot segments or encoded
    slashes, or one that is not a URL leads out of the view: None. A relative Location
    is read against ``backend_path``, the path the backend was asked for. The authority,
    query and fragment are kept as they are.
    """
    try:
        url = URL(location, encoded=True)
        if not url.absolute and not url.raw_path.startswith("/"):
            url = URL(urljoin(backend_path, location), encoded=True)
    except ValueError:
        return None
    names = decode_segments(url.raw_path or "/")
    if isinstance(names, Refused):
        return None
    names = [name for name in names if name]
    if not names or not is_ids_root_name(names[0]):
        return str(url)  # pass-through space
    if names[0] != IDS_NAME:
        target = route(url.raw_path, shard_map)
        return str(url) if isinstance(target, ShardRoute) and target.shard == shard else None
    if view_path("/" + "/".join(names), shard, shard_map) is None:
        return None
    raw = url.raw_path.split("/")
    first = next(i for i, name in enumerate(raw) if name)
    raw[first] = view_name(shard)
    return _with_raw_path(url, "/".join(raw))


def _with_raw_path(url: URL, raw_path: str) -> str:
    """``url`` with another (encoded) path; its authority, query and fragment kept."""
    if url.absolute:
        return str(
            URL.build(
                scheme=url.scheme,
                authority=url.raw_authority,
                path=raw_path,
                query_string=url.raw_query_string,
                fragment=url.raw_fragment,
                encoded=True,
            )
        )
    query = f"?{url.raw_query_string}" if url.raw_query_string else ""
    fragment = f"#{url.raw_fragment}" if url.raw_fragment else ""
    return f"{raw_path}{query}{fragment}"
