"""The answers the WebDAV front gives itself: short errors, 416, close-after-send."""

from __future__ import annotations

from aiohttp import web

from shardproxy.core import ranges

# Replies up to this size are read whole and sent in one write.
SMALL_REPLY_LIMIT = 1 << 16


def plain_error(status: int, message: str, *, close: bool = False) -> web.Response:
    """A short plain-text error the proxy answers itself."""
    response = web.Response(status=status, text=message.rstrip() + "\n")
    if close:
        response.force_close()
    return response


def unsatisfiable(verdict: ranges.Unsatisfiable) -> web.Response:
    """The 416 for a range past the end, saying how long the file is."""
    return web.Response(status=416, headers={"Content-Range": verdict.header()})


def error_kind(exc: BaseException) -> str:
    """How metrics name a backend failure seen mid-reply."""
    return "timeout" if isinstance(exc, TimeoutError) else "broke_off"


async def answer_and_close(
    request: web.BaseRequest, response: web.StreamResponse
) -> web.StreamResponse:
    """Send ``response`` whole, then close the client connection."""
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()
    return response
