"""A ``Location`` the backend wrote for itself, shown as the client addressed the proxy.

nginx redirects a folder asked without its trailing slash to an absolute URL built
from the Host header's name and its own port (``http://proxy.lan:8080/content/``); a
client following it would bypass the proxy, or reach nothing. No I/O here.
"""

from __future__ import annotations

from yarl import URL


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
