"""HTTP Basic auth for shardproxy's own listeners (the RC endpoint, the admin listener)."""

from __future__ import annotations

import base64
import hmac

from aiohttp import web


def authorized(request: web.BaseRequest, user: str | None, password: str | None) -> bool:
    """True when no credentials are set, or the request's Basic auth matches them."""
    if user is None and password is None:
        return True
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except ValueError:
        return False
    # Compare the whole "user:pass" in constant time, as the caller's client encoded it.
    expected = f"{user or ''}:{password or ''}".encode()
    return hmac.compare_digest(given, expected)


def unauthorized(realm: str) -> web.Response:
    """The 401 that makes a client (or a browser) ask for the user and password."""
    return web.Response(
        status=401, text="Unauthorized\n", headers={"WWW-Authenticate": f'Basic realm="{realm}"'}
    )
