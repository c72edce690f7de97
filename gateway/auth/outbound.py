"""OAuth 2.0 client credentials toward an external system (RFC 6749 4.4, the client
authenticated with HTTP Basic as in 2.3.1): a ``gateway.http`` token source.

Every client Tessera runs against a peer (a CASE or OneRoster provider, another LRS, the
routing layer's destinations later) asks for tokens the same way: this holds the
credentials, keeps the token until shortly before ``expires_in`` runs out, forgets it when
the peer refuses it (``gateway.http.BearerAuth`` then asks for a new one, once), and turns
the token endpoint's failures into errors that never show the secret.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from ..errors import AuthError, ConfigError, UpstreamError
from ..http import Auth, BasicAuth, HttpClient, Unreachable

#: a token is renewed this many seconds before the peer said it expires
EXPIRY_MARGIN = 30
#: lifetime assumed when the token endpoint does not give expires_in
DEFAULT_EXPIRES_IN = 3600


def granted_token(body: Any, endpoint: str) -> tuple[str, int]:
    """(access_token, expires_in) of a successful RFC 6749 token response's JSON ``body``;
    ``endpoint`` names it in the error when the token is missing."""
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise UpstreamError(f"{endpoint} answered without an access_token")
    try:
        expires_in = int(body.get("expires_in") or DEFAULT_EXPIRES_IN)
    except (TypeError, ValueError):
        expires_in = DEFAULT_EXPIRES_IN
    return token, expires_in


def json_or_none(r: httpx.Response) -> Any:
    """The response body as JSON, or None when it is not JSON."""
    try:
        return orjson.loads(r.content)
    except orjson.JSONDecodeError:
        return None


def request_token(http: HttpClient, token_url: str, data: dict[str, str], *, auth: Auth, endpoint: str,
                  refused: Callable[[str], Exception]) -> tuple[str, int]:
    """(access_token, expires_in) from an RFC 6749 token endpoint, for every grant Tessera
    uses (client credentials with a secret, or with an RFC 7523 client assertion). Asking
    twice for a token is harmless, so the request is retried as an idempotent one.
    ``endpoint`` names the endpoint in errors; a refusal becomes ``refused(message)``."""
    try:
        r = http.request("POST", token_url, data=data, headers={"Accept": "application/json"}, auth=auth, idempotent=True)
    except Unreachable as exc:
        raise UpstreamError(f"{endpoint} could not be reached ({exc.reason})") from None
    body = json_or_none(r)
    if r.status_code != 200:
        code = body.get("error", "") if isinstance(body, dict) else ""
        raise refused(f"HTTP {r.status_code} {code}".strip())
    return granted_token(body, endpoint)


class ClientCredentials:
    """A ``gateway.http.TokenSource``: RFC 6749 4.4 tokens, cached until they are nearly expired."""

    def __init__(self, token_url: str | None, client_id: str, client_secret: str, scope: str | None = None) -> None:
        if not token_url:
            raise ConfigError("OAuth 2.0 client credentials need the provider's token URL")
        self.token_url = token_url
        self.client_id = client_id
        self.__secret = client_secret
        self.scope = scope
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ClientCredentials({self.token_url!r}, client_id={self.client_id!r})"

    def current(self) -> str | None:
        """The cached token while it is still valid, else None."""
        return self._token if self._token and time.monotonic() < self._expires else None

    def token(self, http: HttpClient) -> str:
        """A valid token: the cached one, or a new one from the token endpoint."""
        return self.current() or self.fetch(http)

    def invalidate(self) -> None:
        """Forget the token (the peer refused it): the next ``token`` fetches a new one."""
        self._token = None

    def fetch(self, http: HttpClient) -> str:
        """A new token from the token endpoint (asking twice for a token is harmless, so the
        request is retried as an idempotent one)."""
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        with self._lock:
            token, expires_in = request_token(
                http, self.token_url, data, auth=BasicAuth(self.client_id, self.__secret), endpoint=f"the token endpoint {self.token_url}",
                refused=lambda why: AuthError(f"the token endpoint refused the client credentials: {why}"),
            )
            self._token = token
            self._expires = time.monotonic() + max(0, expires_in - EXPIRY_MARGIN)
            return token
