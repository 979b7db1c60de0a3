"""Answer every request with one recorded listing: ``python -m loadtest.replay PORT FILE``.

A 207 with the recorded body (gunzipped if the file is ``.gz``) and its Content-Length,
on 127.0.0.1, keep-alive, until SIGTERM: a backend that costs next to nothing, so the
proxy in front of it is what a benchmark sees.
"""

from __future__ import annotations

import asyncio
import gzip
import signal
import sys
from pathlib import Path


def reply_for(path: Path) -> bytes:
    """The whole HTTP reply: status line, headers and the recorded body."""
    body = path.read_bytes()
    if path.suffix == ".gz":
        body = gzip.decompress(body)
    head = (
        "HTTP/1.1 207 Multi-Status\r\nContent-Type: text/xml; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def serve(port: int, reply: bytes) -> None:
    """Serve until SIGTERM or SIGINT."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    """Parse PORT FILE and serve."""
    if len(sys.argv) != 3 or not sys.argv[1].isdigit():
        raise SystemExit("usage: python -m loadtest.replay PORT FILE")
    asyncio.run(serve(int(sys.argv[1]), reply_for(Path(sys.argv[2]))))


if __name__ == "__main__":
    main()
