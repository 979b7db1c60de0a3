"""HTTP Basic authentication as NzbDav's WebDAV does it, login cookie included.

NWebDav's Basic handler first looks for its cache cookie
(``nzb-webdav-backend``); a valid, unexpired one is enough, whatever the
``Authorization`` header says. Otherwise each ``Authorization: Basic`` value
is tried (the scheme name is case-sensitive) and a success sets a fresh
cookie valid for an hour. NzbDav encrypts the cookie with ASP.NET data
protection; here it is an HMAC-signed expiry, which behaves the same to a
client.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from nzbdav_standin.store import http_date

COOKIE_NAME = "nzb-webdav-backend"
COOKIE_LIFETIME_SECONDS = 3600
REALM = "WebDAV"
CHALLENGE = f'Basic realm="{REALM}"'

_AUTH_HEADER = re.compile(r"\s*(?P<scheme>[!#$%&'*+\-.^_`|~0-9A-Za-z]+)(?:\s+(?P<param>\S.*?))?\s*")
_MAC_BYTES = 16


@dataclass(frozen=True)
class AuthResult:
    """Whether a request is authenticated, and the ``Set-Cookie`` value to send if any."""

    authenticated: bool
    set_cookie: str | None = None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class BasicAuth:
    """Checks credentials and login cookies for one configured user."""

    def __init__(
        self,
        user: str,
        password: str,
        *,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Accept ``user``/``password``; cookies are signed with ``secret`` (random by default)."""
        self._user = user
        self._password = password
        self._secret = secret or secrets.token_bytes(32)
        self._clock = clock

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def _cookie_is_valid(self, value: str) -> bool:
        try:
            raw = _unb64url(value)
        except (binascii.Error, ValueError):
            return False
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(payload) < 8 or not hmac.compare_digest(mac, self._mac(payload)):
            return False
        return self._clock() < int.from_bytes(payload[:8], "big")

    def _new_cookie(self, user: str) -> str:
        expiry = int(self._clock()) + COOKIE_LIFETIME_SECONDS
        payload = expiry.to_bytes(8, "big") + user.encode()
        value = _b64url(payload + self._mac(payload))
        expires = http_date(datetime.fromtimestamp(expiry, UTC))
        # The attribute spelling ASP.NET Core's cookie writer uses.
        return f"{COOKIE_NAME}={value}; expires={expires}; path=/; httponly"

    def _credentials_match(self, header: str) -> str | None:
        match = _AUTH_HEADER.fullmatch(header)
        if match is None or match.group("scheme") != "Basic" or not match.group("param"):
            return None
        try:
            decoded = base64.b64decode(match.group("param"), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, separator, password = decoded.decode("utf-8", errors="replace").partition(":")
        # NWebDav wants a non-empty user name before the colon.
        if not separator or not user:
            return None
        ok = hmac.compare_digest(user.encode(), self._user.encode()) and hmac.compare_digest(
            password.encode(), self._password.encode()
        )
        return user if ok else None

    def authenticate(self, authorization: Iterable[str], cookies: Mapping[str, str]) -> AuthResult:
        """Authenticate from the ``Authorization`` header values and the request cookies."""
        cookie = cookies.get(COOKIE_NAME)
        if cookie is not None and self._cookie_is_valid(cookie):
            return AuthResult(True)
        for header in authorization:
            user = self._credentials_match(header)
            if user is not None:
                return AuthResult(True, self._new_cookie(user))
        return AuthResult(False)
