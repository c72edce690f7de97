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
from gateway.auth.outbound import EXPIRY_MARGIN, granted_token, json_or_none
from gateway.errors import UpstreamError
from gateway.model import utcnow

from .platforms import Platform

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_SECONDS = 300


class ServiceAuth:
    """One token cache for every platform Tessera calls as a tool."""

    def __init__(self, keys: KeyStore, http: httpx.Client) -> None:
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

    def token(self, platform: Platform, scopes: Iterable[str]) -> str:
        """A valid access token for ``scopes``: the cached one, or a new one."""
        cache_key = (str(platform.id), " ".join(sorted(set(scopes))))
        cached = self._tokens.get(cache_key)
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        with self._lock:
            token, expires_in = self._fetch(platform, cache_key[1])
            self._tokens[cache_key] = (token, time.monotonic() + max(0, expires_in - EXPIRY_MARGIN))
        return token

    def invalidate(self, platform: Platform, scopes: Iterable[str]) -> None:
        """Forget a token the platform refused: the next call fetches a new one."""
        self._tokens.pop((str(platform.id), " ".join(sorted(set(scopes)))), None)

    def request(self, platform: Platform, scopes: Iterable[str], method: str, url: str, **kw: Any) -> httpx.Response:
        """A service call with a bearer token; a 401 (the platform revoked or forgot the token)
        fetches a new token and tries once more."""
        scopes = list(scopes)
        headers = dict(kw.pop("headers", {}))

        def send() -> httpx.Response:
            try:
                return self.http.request(method, url, headers={**headers, "Authorization": f"Bearer {self.token(platform, scopes)}"}, **kw)
            except httpx.HTTPError as exc:
                raise UpstreamError(f"the platform's service {url} could not be reached ({type(exc).__name__})") from None

        r = send()
        if r.status_code == 401:
            self.invalidate(platform, scopes)
            r = send()
        return r

    def _fetch(self, platform: Platform, scope: str) -> tuple[str, int]:
        data = {
            "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(platform), "scope": scope,
        }
        try:
            r = self.http.post(platform.token_url, data=data, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the platform's token endpoint could not be reached ({type(exc).__name__})") from None
        body = json_or_none(r)
        if r.status_code != 200:
            code = body.get("error", "") if isinstance(body, dict) else ""
            # 502, not 401: the caller's credentials are fine, the platform refused Tessera's
            raise UpstreamError(f"the platform's token endpoint refused Tessera's client assertion: HTTP {r.status_code} {code}".strip())
        return granted_token(body, "the platform's token endpoint")


__all__ = ["ASSERTION_TYPE", "ServiceAuth"]
