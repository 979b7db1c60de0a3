"""Bodies streamed through the proxy: the client's request body out, the backend's reply back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from shardproxy.backend.reply import BackendReply
from shardproxy.core.ranges import BodyCut


class ClientStalled(Exception):
    """The client stopped sending its request body for longer than ``body_timeout``."""


async def client_body(
    request: web.BaseRequest, first: bytes, stall_limit: float
) -> AsyncIterator[bytes]:
    """The client's request body as it arrives; ClientStalled if it pauses too long.

    Nothing is held here while the next piece is awaited: a client that stalls mid-body
    leaves only what aiohttp reads ahead (``listener.READ_BUFSIZE``) and what the
    backend's socket has not taken yet.
    """
    if first:
        yield first
    del first
    content = request.content
    while True:
        try:
            async with asyncio.timeout(stall_limit):
                data = await content.readany()
        except TimeoutError:
            raise ClientStalled(
                f"request body: nothing arrived for {stall_limit:g}s (body_timeout)"
            ) from None
        if not data:
            return
        yield data
        del data


async def copy_body(
    upstream: BackendReply,
    response: web.StreamResponse,
    cut: BodyCut,
    on_sent: Callable[[int, bool], None],
) -> None:
    """Copy the answer's part of the backend's body to the client (``cut``).

    ``write`` waits while the client is slow; ``on_sent(count, False)`` is told each
    chunk's size once it is written. Past the cut the rest is left unread at the backend.
    """
    while data := await upstream.read():
        data = cut.take(data)
        await response.write(data)
        on_sent(len(data), False)
        if cut.complete:
            return


def abort_client(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Close the client connection without finishing the reply, so it looks incomplete."""
    response.force_close()
    if request.transport is not None:
        request.transport.close()
