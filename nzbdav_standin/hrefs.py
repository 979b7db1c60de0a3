"""URLs as NzbDav writes them into hrefs: .NET ``Uri`` and ASP.NET Core rules.

NWebDav builds every href from the request URL: the first one is the
request's ``GetEncodedUrl()``, each child is the parent's *original* string
with one trailing slash cut, then ``/`` and the child's raw, unescaped name.
The string is parsed as a .NET ``Uri`` and written as ``AbsoluteUri`` with
``#``, ``[`` and ``]`` replaced by escapes. So a raw ``?`` in a name starts a
query and stays literal, ``%`` followed by two hex digits is taken as an
existing escape, the host is lowercased and ``:80`` dropped.
"""

from __future__ import annotations

import re
import string

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_SUB_DELIMS = frozenset("!$&'()*+,;=")
_PATH_SAFE = _UNRESERVED | _SUB_DELIMS | frozenset(":@/")
# .NET leaves brackets alone in a path (NWebDav escapes them afterwards) and
# keeps '?' literal once inside the query or the fragment.
_URI_PATH_SAFE = _PATH_SAFE | frozenset("[]")
_URI_QUERY_SAFE = _URI_PATH_SAFE | frozenset("?")
_HEX_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def _escape(text: str, safe: frozenset[str]) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "%" and _HEX_ESCAPE.match(text, index):
            # Taken as an escape already present, as both .NET and ASP.NET do.
            out.append(text[index : index + 3].upper())
            index += 3
            continue
        if char in safe:
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode())
        index += 1
    return "".join(out)


def normalize_authority(host: str) -> str:
    """Lowercase the host and drop the default port, as ``Uri.AbsoluteUri`` does."""
    lowered = host.lower()
    if lowered.endswith(":80"):
        lowered = lowered[:-3]
    return lowered


def request_url(host: str, decoded_path: str, raw_query: str | None) -> str:
    """Return ASP.NET Core's ``GetEncodedUrl()`` for a request (the first href's origin).

    ``decoded_path`` is the percent-decoded request path; it is re-escaped the
    way ``PathString.ToUriComponent`` does. ``raw_query`` is the query as sent
    (without ``?``), or ``None`` when the URL had no ``?``.
    """
    url = f"http://{host}{_escape(decoded_path or '/', _PATH_SAFE)}"
    if raw_query is not None:
        url += "?" + raw_query
    return url


def child_url(parent_original: str, name: str) -> str:
    """Return NWebDav's ``UriHelper.Combine``: one trailing slash cut, then ``/name`` raw."""
    if parent_original.endswith("/"):
        parent_original = parent_original[:-1]
    return f"{parent_original}/{name}"


def absolute_uri(original: str) -> str:
    """Return ``UriHelper.ToEncodedString(new Uri(original))`` for an ``http://`` URL string."""
    scheme, _, rest = original.partition("://")
    split_at = len(rest)
    for marker in "/?#":
        found = rest.find(marker)
        if found != -1:
            split_at = min(split_at, found)
    authority, rest = rest[:split_at], rest[split_at:]
    rest, hash_mark, fragment = rest.partition("#")
    path, question_mark, query = rest.partition("?")
    # Backslashes are path separators to .NET for http URLs.
    path = path.replace("\\", "/") or "/"
    encoded = f"{scheme.lower()}://{normalize_authority(authority)}{_escape(path, _URI_PATH_SAFE)}"
    if question_mark:
        encoded += "?" + _escape(query, _URI_QUERY_SAFE)
    if hash_mark:
        encoded += "#" + _escape(fragment, _URI_QUERY_SAFE)
    return encoded.replace("#", "%23").replace("[", "%5B").replace("]", "%5D")
