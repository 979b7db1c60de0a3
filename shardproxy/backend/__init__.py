"""Our own HTTP/1.1 client to NzbDav (the backend): the keep-alive pool, one connection,
one reply, and splice(2) for film-sized bodies.

asyncio.Protocol + httptools; owns every socket to the backend. May import ``core``.
"""
