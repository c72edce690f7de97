"""Access tokens for LTI Advantage service calls: client_credentials with a JWT client assertion.

LTI Advantage services (AGS, NRPS) are OAuth 2.0 protected. The tool authenticates to the
platform's token endpoint with no shared secret: it signs a short JWT (RFC 7523 2.2;
1EdTech Security Framework 4.1) with its own private key, and the platform checks it with
the tool's public key (the ``jwks_uri`` Tessera registered, ``/.well-known/jwks.json``).
The signing key is the gateway's current ``KeyStore`` key, so a key rotation (``tessera
keys rotate``) rotates the tool's key too, with no second key store.

The assertion: ``iss`` and ``sub`` = the client_id the platform gave Tessera, ``aud`` = the
token endpoint URL (what the major platforms expect; the Security Framework allows the
authorization server's identifier as well), ``iat``, ``exp`` five minutes later and a
unique ``jti``. Tokens are cached per (registration, scopes) until shortly before
``expires_in`` runs out (the same margin as ``gateway.auth.outbound``).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import httpx
import jwt

from gateway.auth.keys import KeyStore
from gateway.auth.outbound import EXPIRY_MARGIN, request_token
from gateway.errors import UpstreamError
from gateway.http import BearerAuth, HttpClient, NoAuth, Unreachable
from gateway.model import utcnow

from .platforms import Platform

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_SECONDS = 300


class AssertionGrant:
    """A ``gateway.http.TokenSource``: client_credentials with an RFC 7523 client assertion,
    for one platform and one set of scopes; the cache is the ``ServiceAuth``'s."""

    def __init__(self, auth: ServiceAuth, platform: Platform, scope: str) -> None:
        self.auth, self.platform, self.scope = auth, platform, scope
        self.key = (str(platform.id), scope)

    def __repr__(self) -> str:
        return f"AssertionGrant({self.platform.token_url!r}, scope={self.scope!r})"

    def current(self) -> str | None:
        cached = self.auth._tokens.get(self.key)
        return cached[0] if cached is not None and time.monotonic() < cached[1] else None

    def token(self, http: HttpClient) -> str:
        return self.current() or self.fetch(http)

    def invalidate(self) -> None:
        self.auth._tokens.pop(self.key, None)

    def fetch(self, http: HttpClient) -> str:
        data = {
            "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.auth.assertion(self.platform), "scope": self.scope,
        }
        with self.auth._lock:
            # a refusal is a 502, not a 401: the caller's credentials are fine, the platform refused Tessera's
            token, expires_in = request_token(
                http, self.platform.token_url, data, auth=NoAuth(), endpoint="the platform's token endpoint",
                refused=lambda why: UpstreamError(f"the platform's token endpoint refused Tessera's client assertion: {why}"),
            )
            self.auth._tokens[self.key] = (token, time.monotonic() + max(0, expires_in - EXPIRY_MARGIN))
            return token


class ServiceAuth:
    """One token cache for every platform Tessera calls as a tool."""

    def __init__(self, keys: KeyStore, http: HttpClient) -> None:
        self.keys = keys
        self.http = http
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def assertion(self, platform: Platform) -> str:
        """RFC 7523 2.2: the signed client assertion."""
        key = self.keys.current()
        now = utcnow()
        claims: dict[str, Any] = {
            "iss": platform.client_id, "sub": platform.client_id, "aud": platform.token_url,
            "iat": now, "exp": now + timedelta(seconds=ASSERTION_SECONDS), "jti": secrets.token_urlsafe(16),
        }
        return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})

    def source(self, platform: Platform, scopes: Iterable[str]) -> AssertionGrant:
        return AssertionGrant(self, platform, " ".join(sorted(set(scopes))))

    def token(self, platform: Platform, scopes: Iterable[str]) -> str:
        """A valid access token for ``scopes``: the cached one, or a new one."""
        return self.source(platform, scopes).token(self.http)

    def invalidate(self, platform: Platform, scopes: Iterable[str]) -> None:
        """Forget a token the platform refused: the next call fetches a new one."""
        self.source(platform, scopes).invalidate()

    def request(self, platform: Platform, scopes: Iterable[str], method: str, url: str, *, idempotent: bool | None = None,
                **kw: Any) -> httpx.Response:
        """A service call with a bearer token (``gateway.http``: retried when safe; a 401 fetches
        a new token and tries once more)."""
        try:
            return self.http.request(method, url, auth=BearerAuth(self.source(platform, scopes)), idempotent=idempotent, **kw)
        except Unreachable as exc:
            raise UpstreamError(f"the platform's service {url} could not be reached ({exc.reason})") from None


__all__ = ["ASSERTION_TYPE", "ServiceAuth"]
