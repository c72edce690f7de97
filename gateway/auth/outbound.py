"""OAuth 2.0 client credentials toward an external system (RFC 6749 4.4, the client
authenticated with HTTP Basic as in 2.3.1).

Every client Tessera runs against a peer (a CASE or OneRoster provider, another LRS, the
routing layer's destinations later) asks for tokens the same way: this holds the
credentials, keeps the token until shortly before ``expires_in`` runs out, renews it once
when the peer answers 401 (``send``), and turns the token endpoint's failures into errors
that never show the secret.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from ..errors import AuthError, ConfigError, UpstreamError

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


class ClientCredentials:
    def __init__(self, token_url: str | None, client_id: str, client_secret: str, scope: str | None = None) -> None:
        if not token_url:
            raise ConfigError("OAuth 2.0 client credentials need the provider's token URL")
        self.token_url = token_url
        self.client_id = client_id
        self.__secret = client_secret
        self.scope = scope
        self._token: str | None = None
        self._expires = 0.0

    def __repr__(self) -> str:
        return f"ClientCredentials({self.token_url!r}, client_id={self.client_id!r})"

    def current(self) -> str | None:
        """The cached token while it is still valid, else None."""
        return self._token if self._token and time.monotonic() < self._expires else None

    def token(self, http: httpx.Client) -> str:
        """A valid token: the cached one, or a new one from the token endpoint."""
        return self.current() or self.fetch(http)

    def invalidate(self) -> None:
        """Forget the token (the peer refused it): the next ``token`` fetches a new one."""
        self._token = None

    def send(self, http: httpx.Client, method: str, url: str, *, lazy: bool = False, **kw: Any) -> httpx.Response:
        """``method url`` with the bearer token; on a 401 the token is renewed and the request
        sent once more (the peer may have revoked or rotated it), and that answer is
        returned, whatever it is. ``lazy``: the first try carries a cached token only, or
        none (a peer whose reads are public asks for one with its 401). Transport errors
        propagate (``httpx.HTTPError``); the token endpoint's are ``fetch``'s."""
        headers = dict(kw.pop("headers", None) or {})
        token = self.current() if lazy else self.token(http)
        for renewed in (False, True):
            if token:
                headers["Authorization"] = f"Bearer {token}"
            r = http.request(method, url, headers=headers, **kw)
            if r.status_code != 401 or renewed:
                return r
            self.invalidate()
            token = self.fetch(http)
        raise AssertionError("unreachable")  # pragma: no cover

    def fetch(self, http: httpx.Client) -> str:
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        try:
            r = http.post(self.token_url, data=data, auth=(self.client_id, self.__secret))
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the token endpoint {self.token_url} could not be reached ({type(exc).__name__})") from None
        body = json_or_none(r)
        if r.status_code != 200:
            code = body.get("error", "") if isinstance(body, dict) else ""
            raise AuthError(f"the token endpoint refused the client credentials: HTTP {r.status_code} {code}".strip())
        token, expires_in = granted_token(body, "the token endpoint")
        self._token = token
        self._expires = time.monotonic() + max(0, expires_in - EXPIRY_MARGIN)
        return token
