"""The stand-in's HTTP face: an aiohttp application that answers like NzbDav.

One catch-all handler plays the part of NzbDav's middleware pipeline:
``/api``, ``/view``, ``/health`` and ``/ws`` are not WebDAV; everything else
goes through Basic authentication (OPTIONS exempt) to NWebDav's method
handlers, with NzbDav's patched GET/HEAD. Every request is recorded in
``app[REQUEST_LOG]`` before anything else happens, and every body sent by
GET in ``app[READ_LOG]``, so tests can check what reached the backend and
how much it had to read.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from nzbdav_standin.auth import CHALLENGE, BasicAuth
from nzbdav_standin.catalog import Library, StandinFile
from nzbdav_standin.davxml import (
    CONTENT_TYPE,
    PropRequest,
    XmlBodyError,
    multistatus,
    parse_lockinfo,
    parse_propfind,
    parse_proppatch,
    render_lock,
    render_proppatch,
    render_response,
    render_status_response,
)
from nzbdav_standin.hrefs import absolute_uri, child_url, request_url
from nzbdav_standin.latency import Latency
from nzbdav_standin.ranges import RangeFormatError, RangePlan, parse_range, plan_range
from nzbdav_standin.store import (
    Collection,
    Entry,
    InvalidGuidError,
    Store,
    content_type,
    http_date,
    properties,
    split_path,
)

WEBDAV_METHODS = (
    "COPY",
    "DELETE",
    "GET",
    "HEAD",
    "LOCK",
    "MKCOL",
    "MOVE",
    "OPTIONS",
    "PROPFIND",
    "PROPPATCH",
    "PUT",
    "UNLOCK",
)
"""NWebDav's handlers, in the order its OPTIONS reply lists them."""

NON_WEBDAV_PREFIXES = ("/api", "/view", "/health", "/ws")
"""Paths NzbDav's WebDAV filter leaves to other endpoints (compared case-insensitively)."""

MAX_REQUEST_BODY = 100 * 1024 * 1024
"""NzbDav's default ``MAX_REQUEST_BODY_SIZE``."""

_INFINITE_DEPTH = 2**31 - 1
_BUFFER_LIMIT = 1024 * 1024
_STREAM_BATCH = 64 * 1024
_DEPTH = re.compile(r"\s*[+-]?[0-9]+\s*")


@dataclass(frozen=True)
class RequestRecord:
    """One request as it reached the stand-in."""

    method: str
    raw_path: str
    """Path and query exactly as sent, still percent-encoded."""
    headers: CIMultiDictProxy[str]
    body: bytes = field(repr=False)

    @property
    def path(self) -> str:
        """The percent-decoded path, without the query."""
        return unquote(self.raw_path.partition("?")[0])


@dataclass(frozen=True)
class ReadRecord:
    """One GET body: how much was promised and how much actually went out."""

    path: str
    start: int
    planned: int
    sent: int
    completed: bool


@dataclass
class _ServerState:
    store: Store
    auth: BasicAuth | None
    latency: Latency
    locks: dict[str, str] = field(default_factory=dict)
    """Lock token → decoded path it locks."""


REQUEST_LOG = web.AppKey("nzbdav_standin.request_log", list[RequestRecord])
"""Every request received, oldest first; clear it between phases of a test."""

READ_LOG = web.AppKey("nzbdav_standin.read_log", list[ReadRecord])
"""Every GET body streamed (or abandoned), appended when it ends."""

_STATE = web.AppKey("nzbdav_standin.state", _ServerState)
_BODY = web.RequestKey("nzbdav_standin.body", bytes)
_SET_COOKIE = web.RequestKey("nzbdav_standin.set_cookie", str)


def make_standin_app(
    library: Library,
    *,
    user: str | None = "admin",
    password: str | None = "secret",
    mount_dir: str = "/mnt/nzbdav",
    enforce_readonly: bool = True,
    latency: Latency | None = None,
) -> web.Application:
    """Build an application serving ``library`` as NzbDav would.

    With ``user`` or ``password`` set to ``None`` authentication is off
    (``DISABLE_WEBDAV_AUTH``). ``mount_dir`` is where rclone mounts NzbDav,
    written into ``.rclonelink`` targets. ``enforce_readonly`` is NzbDav's
    "Enforce Read-Only" setting (on by default): off, DELETE works in
    ``/content``. ``latency`` adds NzbDav's delays (none by default).
    """
    app = web.Application(client_max_size=MAX_REQUEST_BODY, middlewares=[_record_request])
    app[REQUEST_LOG] = []
    app[READ_LOG] = []
    auth = BasicAuth(user, password) if user is not None and password is not None else None
    store = Store(library, mount_dir=mount_dir, enforce_readonly=enforce_readonly)
    app[_STATE] = _ServerState(store, auth, latency or Latency())
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    app.on_response_prepare.append(_decorate_response)
    return app


@web.middleware
async def _record_request(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    headers = CIMultiDictProxy(CIMultiDict(request.headers))
    try:
        body = await request.read() if request.can_read_body else b""
    except web.HTTPRequestEntityTooLarge:
        # Still a request that reached the backend, even if refused.
        request.app[REQUEST_LOG].append(
            RequestRecord(request.method, request.raw_path, headers, b"")
        )
        raise
    request[_BODY] = body
    request.app[REQUEST_LOG].append(RequestRecord(request.method, request.raw_path, headers, body))
    return await handler(request)


async def _decorate_response(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = "Kestrel"
    cookie = request.get(_SET_COOKIE)
    if cookie is not None:
        response.headers.add("Set-Cookie", cookie)


def _empty(status: int, headers: dict[str, str] | None = None) -> web.Response:
    """A reply with no body, like Kestrel's: a zero Content-Length and no Content-Type."""
    return web.Response(status=status, headers=headers)


def _is_non_webdav(path: str) -> bool:
    lowered = path.lower()
    return any(lowered == p or lowered.startswith(p + "/") for p in NON_WEBDAV_PREFIXES)


async def _dispatch(request: web.Request) -> web.StreamResponse:
    if _is_non_webdav(request.path):
        return _non_webdav(request)
    state = request.app[_STATE]
    method = request.method
    if state.auth is not None:
        result = state.auth.authenticate(
            request.headers.getall("Authorization", []), request.cookies
        )
        if result.set_cookie is not None:
            request[_SET_COOKIE] = result.set_cookie
        if method in WEBDAV_METHODS and method != "OPTIONS" and not result.authenticated:
            return _empty(401, {"WWW-Authenticate": CHALLENGE})
    handler = _HANDLERS.get(method)
    if handler is None:
        # No NWebDav handler: the request falls off the end of the pipeline.
        return _empty(404)
    try:
        return await handler(request, state)
    except (InvalidGuidError, RangeFormatError, XmlBodyError):
        # Unhandled exceptions outside a file read: ASP.NET's bare 500.
        return _empty(500)


def _non_webdav(request: web.Request) -> web.StreamResponse:
    lowered = request.path.lower()
    if lowered == "/health" or lowered.startswith("/health/"):
        return web.Response(text="Healthy", content_type="text/plain")
    if lowered == "/ws" or lowered.startswith("/ws/"):
        return _empty(400)
    if request.method not in {"GET", "POST"}:
        return _empty(405)
    return web.json_response({"status": False, "error": "API Key Required"}, status=401)


# -- helpers shared by the handlers ------------------------------------------


def _host(request: web.Request) -> str:
    return request.headers.get("Host") or request.host


def _original_url(request: web.Request) -> str:
    _, question_mark, raw_query = request.raw_path.partition("?")
    return request_url(_host(request), request.path, raw_query if question_mark else None)


def _depth(request: web.Request) -> int:
    header = request.headers.get("Depth")
    if header is None or header == "infinity" or _DEPTH.fullmatch(header) is None:
        return _INFINITE_DEPTH
    value = int(header)
    return value if -(2**31) <= value < 2**31 else _INFINITE_DEPTH


def _walk(store: Store, entry: Entry, original: str, depth: int) -> Iterator[tuple[str, Entry]]:
    yield original, entry
    if isinstance(entry, Collection) and depth > 0:
        for child in store.children(entry):
            child_original = child_url(original, child.name)
            if isinstance(child, Collection):
                yield from _walk(store, child, child_original, depth - 1)
            else:
                yield child_original, child


def _take(pieces: Iterator[str], limit: int) -> tuple[str, bool]:
    """Join pieces until about ``limit`` characters; also say whether ``pieces`` ran out."""
    taken: list[str] = []
    size = 0
    for piece in pieces:
        taken.append(piece)
        size += len(piece)
        if size >= limit:
            return "".join(taken), False
    return "".join(taken), True


async def _send_xml(request: web.Request, pieces: Iterator[str], status: int) -> web.StreamResponse:
    """Send an XML reply: with a Content-Length like NzbDav when small, streamed when huge."""
    first, done = _take(pieces, _BUFFER_LIMIT)
    if done:
        whole = web.Response(status=status, body=first.encode())
        whole.headers["Content-Type"] = CONTENT_TYPE
        return whole
    # An infinite-depth listing of /.ids runs to a million entries; NzbDav
    # would buffer it all, the stand-in streams it and stops when the
    # client leaves.
    response = web.StreamResponse(status=status)
    response.headers["Content-Type"] = CONTENT_TYPE
    await response.prepare(request)
    try:
        await response.write(first.encode())
        while not done:
            batch, done = _take(pieces, _STREAM_BATCH)
            await response.write(batch.encode())
        await response.write_eof()
    except ConnectionError:
        pass
    return response


def _destination(request: web.Request) -> tuple[str, str] | None:
    """Return the Destination header as (original URL string, decoded path)."""
    header = request.headers.get("Destination")
    if header is None:
        return None
    original = f"http://{_host(request)}{header}" if header.startswith("/") else header
    after_scheme = original.partition("://")[2]
    slash = after_scheme.find("/")
    raw_path = after_scheme[slash:] if slash != -1 else "/"
    return original, unquote(raw_path.partition("?")[0].partition("#")[0])


def _same_url(request: web.Request, destination_original: str) -> bool:
    return (
        absolute_uri(_original_url(request)).lower() == absolute_uri(destination_original).lower()
    )


# -- the method handlers -----------------------------------------------------


async def _options(request: web.Request, state: _ServerState) -> web.StreamResponse:
    allowed = ", ".join(WEBDAV_METHODS)
    return _empty(200, {"DAV": "1, 2", "MS-Author-Via": "DAV", "Allow": allowed, "Public": allowed})


async def _propfind(request: web.Request, state: _ServerState) -> web.StreamResponse:
    body = request[_BODY]
    # NWebDav reads the body only when a non-zero Content-Length announces it,
    # and before it looks the path up.
    wanted: PropRequest = parse_propfind(body if request.content_length else b"")
    entry = state.store.resolve(request.path)
    if entry is None:
        return _empty(404)
    depth = _depth(request) if isinstance(entry, Collection) else 0
    await state.latency.before_listing()
    entries = _walk(state.store, entry, _original_url(request), depth)
    responses = (
        render_response(absolute_uri(original), properties(found), wanted)
        for original, found in entries
    )
    return await _send_xml(request, multistatus(responses), 207)


async def _get_or_head(request: web.Request, state: _ServerState) -> web.StreamResponse:
    # NzbDav's patched GET handler parses the range before anything else, so
    # a malformed Range is a 500 even for a missing path.
    requested = parse_range(request.headers.get("Range"), request.headers.get("If-Range"))
    entry = state.store.resolve(request.path)
    if entry is None:
        return _empty(404)
    headers = {"Last-Modified": http_date(entry.last_modified)}
    if isinstance(entry, Collection):
        # A collection's stream is Stream.Null: No Content.
        return _empty(204, headers)
    standin = entry.file
    headers["Content-Type"] = content_type(entry.name)
    headers["Accept-Ranges"] = "bytes"
    plan = plan_range(requested, standin.size)
    if plan.content_range is not None:
        headers["Content-Range"] = plan.content_range
    if plan.status == 416:
        return _empty(416, headers)
    if request.method == "HEAD":
        # HEAD never reads, so files with missing articles look fine.
        head = web.StreamResponse(status=plan.status, headers=headers)
        head.content_length = plan.length
        await head.prepare(request)
        await head.write_eof()
        return head
    if plan.length > 0:
        if standin.broken:
            return _empty(500)
        missing_at = 0 if standin.missing_articles else standin.missing_after
        if missing_at is not None and plan.start >= missing_at:
            # The first read fails before anything is sent: Response.Clear()
            # wipes the headers and the status becomes 404.
            return _empty(404)
        await state.latency.before_first_byte()
    return await _stream_body(request, standin, headers, plan)


async def _stream_body(
    request: web.Request, standin: StandinFile, headers: dict[str, str], plan: RangePlan
) -> web.StreamResponse:
    response = web.StreamResponse(status=plan.status, headers=headers)
    response.content_length = plan.length
    await response.prepare(request)
    cut = standin.missing_after
    if cut is not None and cut > plan.end_inclusive:
        cut = None
    sent = 0
    completed = False
    try:
        # Generated block by block: nothing past what the client still
        # wants is produced, and a client that leaves stops the loop.
        last = plan.end_inclusive if cut is None else cut - 1
        for chunk in standin.chunks(plan.start, last):
            await response.write(chunk)
            sent += len(chunk)
        if cut is not None:
            # Articles missing mid-file, after the headers went out: all
            # Kestrel can do is drop the connection.
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write_eof()
        completed = True
    except ConnectionError:
        pass
    finally:
        request.app[READ_LOG].append(
            ReadRecord(request.path, plan.start, plan.length, sent, completed)
        )
    return response


async def _delete(request: web.Request, state: _ServerState) -> web.StreamResponse:
    return _empty(state.store.delete(request.path))


async def _put(request: web.Request, state: _ServerState) -> web.StreamResponse:
    return _empty(state.store.put(request.path, request[_BODY]))


async def _mkcol(request: web.Request, state: _ServerState) -> web.StreamResponse:
    return _empty(state.store.mkcol(request.path))


async def _refused(request: web.Request, destination_original: str) -> web.StreamResponse:
    """Answer a COPY or MOVE that reached NzbDav's read-only items: 207 with one 403.

    The href is NWebDav's: the destination split into parent URL and
    unescaped name, then combined and encoded again.
    """
    encoded = absolute_uri(destination_original)
    trimmed = encoded[:-1] if encoded.endswith("/") else encoded
    parent_original, _, name = trimmed.rpartition("/")
    href = absolute_uri(child_url(parent_original, unquote(name)))
    return await _send_xml(request, multistatus([render_status_response(href, 403)]), 207)


def _usable_destination(
    request: web.Request, store: Store
) -> tuple[str, Collection | None, str] | web.Response:
    """Check the Destination header as COPY and MOVE do: (URL string, parent, name) or a reply."""
    destination = _destination(request)
    if destination is None:
        return _empty(400)
    original, path = destination
    if _same_url(request, original):
        return _empty(403)
    parent_path, name = split_path(path)
    parent = store.resolve(parent_path) if name else None
    return original, parent if isinstance(parent, Collection) else None, name


async def _copy(request: web.Request, state: _ServerState) -> web.StreamResponse:
    checked = _usable_destination(request, state.store)
    if isinstance(checked, web.Response):
        return checked
    original, parent, _ = checked
    if parent is None:
        return _empty(409)
    if state.store.resolve(request.path) is None:
        return _empty(404)
    # Every NzbDav item refuses to be copied.
    return await _refused(request, original)


async def _move(request: web.Request, state: _ServerState) -> web.StreamResponse:
    store = state.store
    source_parent, source_name = split_path(request.path)
    parent = store.resolve(source_parent) if source_name else None
    if not isinstance(parent, Collection) or store.child(parent, source_name) is None:
        return _empty(404)
    checked = _usable_destination(request, store)
    if isinstance(checked, web.Response):
        return checked
    original, target_parent, name = checked
    if target_parent is None:
        return _empty(404)
    overwrite = request.headers.get("Overwrite", "T").upper() == "T"
    if not overwrite and store.child(target_parent, name) is not None:
        return _empty(412)
    # Every NzbDav folder refuses moves (and creating the target folder).
    return await _refused(request, original)


async def _proppatch(request: web.Request, state: _ServerState) -> web.StreamResponse:
    entry = state.store.resolve(request.path)
    if entry is None:
        return _empty(404)
    try:
        names = parse_proppatch(request[_BODY])
    except XmlBodyError:
        return _empty(400)
    known = {name for name, _ in properties(entry)}
    # No NzbDav property has a setter: known ones conflict, others are unknown.
    results = [(name, 409 if name in known else 404) for name in names]
    href = absolute_uri(_original_url(request))
    return await _send_xml(request, iter([render_proppatch(href, results)]), 207)


_LOCK_TOKEN = re.compile(r"<(?P<token>[^>]+)>")
_IF_TOKEN = re.compile(r"\(<(?P<token>[^>]+)>\)")


async def _lock(request: web.Request, state: _ServerState) -> web.StreamResponse:
    if state.store.resolve(request.path) is None:
        return _empty(412)
    depth = "infinity" if _depth(request) > 0 else "0"
    timeout_header = request.headers.get("Timeout", "")
    timeout = next(
        (t.strip() for t in timeout_header.split(",") if t.strip().startswith("Second-")),
        "Infinite",
    )
    lock_root = absolute_uri(_original_url(request))
    refresh = _IF_TOKEN.fullmatch(request.headers.get("If", "").strip())
    if refresh is not None:
        token = refresh.group("token")
        if state.locks.get(token) != request.path:
            return _empty(412)
        body = render_lock(
            scope="exclusive",
            depth=depth,
            owner="",
            timeout=timeout,
            token=token,
            lock_root=lock_root,
        )
        return await _send_xml(request, iter([body]), 200)
    try:
        wanted = parse_lockinfo(request[_BODY])
    except XmlBodyError:
        return _empty(400)
    token = f"urn:uuid:{uuid.uuid4()}"
    state.locks[token] = request.path
    body = render_lock(
        scope=wanted.scope,
        depth=depth,
        owner=wanted.owner,
        timeout=timeout,
        token=token,
        lock_root=lock_root,
    )
    response = await _send_xml(request, iter([body]), 200)
    response.headers["Lock-Token"] = f"<{token}>"
    return response


async def _unlock(request: web.Request, state: _ServerState) -> web.StreamResponse:
    token_header = _LOCK_TOKEN.fullmatch(request.headers.get("Lock-Token", "").strip())
    if token_header is None:
        return _empty(400)
    if state.store.resolve(request.path) is None:
        return _empty(412)
    token = token_header.group("token")
    if state.locks.get(token) != request.path:
        return _empty(409)
    del state.locks[token]
    return _empty(204)


_Handler = Callable[[web.Request, _ServerState], Awaitable[web.StreamResponse]]

_HANDLERS: dict[str, _Handler] = {
    "COPY": _copy,
    "DELETE": _delete,
    "GET": _get_or_head,
    "HEAD": _get_or_head,
    "LOCK": _lock,
    "MKCOL": _mkcol,
    "MOVE": _move,
    "OPTIONS": _options,
    "PROPFIND": _propfind,
    "PROPPATCH": _proppatch,
    "PUT": _put,
    "UNLOCK": _unlock,
}
