"""What an outbound request looks like in a log line: no credential, token or signature.

Log lines name the method, the URL, the status, the attempt and the request id. Before
any of it is written, the values that authenticate are masked: the ``Authorization``,
``Proxy-Authorization``, ``Cookie`` and API-key headers whole (an OAuth 1.0a header
carries its signature there), and query or form parameters whose name says they are a
secret (``client_secret``, ``client_assertion``, ``access_token``, ``oauth_signature``,
``password``...). ``gateway.logs.RedactingFilter`` stays the last line of defence; this
is the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode

import httpx

MASK = "[redacted]"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"})
SECRET_FIELDS = frozenset({
    "client_secret", "client_assertion", "assertion", "access_token", "refresh_token", "id_token", "token", "code",
    "password", "passwd", "secret", "api_key", "apikey", "key", "oauth_signature", "oauth_token_secret", "private_key",
})


def secret_field(name: str) -> bool:
    n = name.lower()
    return n in SECRET_FIELDS or n.endswith(("_secret", "_token", "_password"))


def fields(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, MASK if secret_field(k) else v) for k, v in pairs]


def url(u: httpx.URL | str) -> str:
    """The URL with secret query parameters (and any user:password) masked."""
    u = httpx.URL(str(u))
    if u.userinfo:
        u = u.copy_with(username=MASK, password=None)
    if not u.query:
        return str(u)
    query = urlencode(fields(parse_qsl(u.query.decode("ascii", "replace"), keep_blank_values=True)), safe="[]")
    return str(u.copy_with(query=query.encode("ascii")))


def headers(h: Mapping[str, str] | httpx.Headers) -> dict[str, str]:
    return {k: (MASK if k.lower() in SECRET_HEADERS else v) for k, v in h.items()}


def form(body: bytes) -> str:
    """A form-encoded body, its secret fields masked."""
    return urlencode(fields(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)), safe="[]")


__all__ = ["MASK", "SECRET_FIELDS", "SECRET_HEADERS", "fields", "form", "headers", "secret_field", "url"]
