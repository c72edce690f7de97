"""LTI 1.3 message launch, tool side: the platform's id_token validated (Security Framework 5.1.3).

The launch (``/lti/launch``, POST ``id_token`` + ``state``) comes after the OIDC login
(``oidc_login``): the state must come back with its cookie, once; then the id_token is
validated as Security Framework 5.1.3 lists: RS256 signature against the platform's JWKS
(cached; refreshed once when a kid is unknown), ``iss``, ``aud`` (and ``azp`` when several
audiences), ``exp``/``iat`` with a small skew, the ``nonce`` issued at login (then spent:
single use, ``spend_nonce``), and the LTI claims of core 5.3/5.4: ``message_type``,
``version`` 1.3.0, a known ``deployment_id``, ``target_link_uri`` equal to the login's, and
the claims each message type requires.

Every refusal is an ``LtiLaunchError`` (``common``) naming the rule.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import jwt
import orjson
from sqlalchemy import Connection, delete, insert
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from gateway.model import utcnow

from ..claims import (
    C_DEPLOYMENT,
    C_DL_SETTINGS,
    C_MESSAGE_TYPE,
    C_PRESENTATION,
    C_RESOURCE_LINK,
    C_ROLES,
    C_TARGET,
    C_VERSION,
    MESSAGE_TYPES,
    RESOURCE_LINK,
    VERSION,
    object_claim,
)
from . import tables as tt
from .common import refuse
from .platforms import Platform

#: seconds of clock skew tolerated on exp and iat
SKEW_SECONDS = 60


# --- the platform's keys ------------------------------------------------------------------


@dataclass
class _KeySet:
    keys: dict[str, Any]
    fetched: float


class PlatformKeys:
    """Platforms' JWKS, cached per URL. A kid the cache lacks triggers ONE refresh (the
    platform rotated its key); the same unknown kid does not trigger another for
    ``MIN_REFRESH`` seconds, so a stream of tokens naming a made-up kid cannot make Tessera
    hammer the platform."""

    TTL = 3600.0
    MIN_REFRESH = 60.0

    def __init__(self, http: httpx.Client | None = None) -> None:
        self.http = http or httpx.Client(timeout=10)
        self._sets: dict[str, _KeySet] = {}
        self._missed: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def key(self, jwks_url: str, kid: str) -> Any | None:
        now = time.monotonic()
        found = self._sets.get(jwks_url)
        if found is not None and now - found.fetched < self.TTL:
            if kid in found.keys:
                return found.keys[kid]
            if now - self._missed.get((jwks_url, kid), -self.MIN_REFRESH) < self.MIN_REFRESH:
                return None
        with self._lock:
            if len(self._missed) > 10_000:
                self._missed.clear()
            self._missed[(jwks_url, kid)] = now
            found = self._sets[jwks_url] = self._fetch(jwks_url)
        return found.keys.get(kid)

    def _fetch(self, url: str) -> _KeySet:
        try:
            r = self.http.get(url, headers={"Accept": "application/json"})
            doc = orjson.loads(r.content) if r.status_code == 200 else None
        except (httpx.HTTPError, orjson.JSONDecodeError):
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise refuse("the platform's JWKS could not be fetched", status=502)
        keys: dict[str, Any] = {}
        for jwk in doc["keys"]:
            if isinstance(jwk, dict) and jwk.get("kty") == "RSA" and isinstance(jwk.get("kid"), str) and jwk.get("use", "sig") == "sig":
                try:
                    keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm="RS256").key
                except jwt.PyJWKError:
                    continue
        return _KeySet(keys, time.monotonic())


# --- validation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """A validated launch: the platform and the id_token's claims."""

    platform: Platform
    claims: dict[str, Any]

    @property
    def message_type(self) -> str:
        return self.claims[C_MESSAGE_TYPE]

    @property
    def sub(self) -> str | None:
        return self.claims.get("sub")

    @property
    def roles(self) -> list[str]:
        return self.claims.get(C_ROLES) or []

    def claim(self, name: str) -> dict[str, Any]:
        return object_claim(self.claims, name)


def _required(claims: dict[str, Any], path: str, want: type, return_url: str | None) -> Any:
    head, _, sub = path.partition("#")
    value = claims.get(head)
    if sub:
        value = value.get(sub) if isinstance(value, dict) else None
    if not isinstance(value, want) or (want is str and not value):
        name = f"{head} (property {sub})" if sub else head
        raise refuse(f"the id_token lacks the required claim {name}", return_url=return_url)
    return value


def validate_id_token(token: str, platform: Platform, *, nonce: str, target_link_uri: str, keys: PlatformKeys) -> Launch:
    """Security Framework 5.1.3 and LTI core 5.3-5.4; raises ``LtiLaunchError`` naming the rule."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise refuse("the id_token is not a JWT", status=401) from None
    if header.get("alg") != "RS256":
        raise refuse("the id_token must be signed with RS256 (Security Framework 5.1.3 step 6)", status=401)
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise refuse("the id_token's header names no kid", status=401)
    key = keys.key(platform.jwks_url, kid)
    if key is None:
        raise refuse("the id_token is signed with a key (kid) the platform's JWKS does not hold", status=401)
    try:
        claims = jwt.decode(
            token, key, algorithms=["RS256"], audience=platform.client_id, issuer=platform.issuer, leeway=SKEW_SECONDS,
            options={"require": ["iss", "aud", "exp", "iat", "nonce"]},
        )
    except jwt.InvalidTokenError as exc:  # pyjwt names the claim: exp passed, iat in the future, aud, iss...
        raise refuse(f"the id_token is not valid: {exc}", status=401) from None
    aud = claims["aud"]
    azp = claims.get("azp")
    if (isinstance(aud, list) and len(aud) > 1 and azp is None) or (azp is not None and azp != platform.client_id):
        raise refuse("the id_token's azp must be Tessera's client_id (Security Framework 5.1.3 steps 4-5)", status=401)
    if not secrets.compare_digest(str(claims["nonce"]), nonce):
        raise refuse("the id_token's nonce is not the one issued at login", status=401)
    presentation = claims.get(C_PRESENTATION)
    return_url = presentation.get("return_url") if isinstance(presentation, dict) else None
    _check_lti_claims(claims, platform, target_link_uri, return_url if isinstance(return_url, str) else None)
    return Launch(platform, claims)


def _check_lti_claims(claims: dict[str, Any], platform: Platform, target_link_uri: str, return_url: str | None) -> None:
    message_type = _required(claims, C_MESSAGE_TYPE, str, return_url)
    if message_type not in MESSAGE_TYPES:
        raise refuse(f"message_type {message_type!r} is not one Tessera accepts ({', '.join(MESSAGE_TYPES)})", return_url=return_url)
    if _required(claims, C_VERSION, str, return_url) != VERSION:
        raise refuse("the version claim must be 1.3.0 (LTI core 5.3.2)", return_url=return_url)
    if _required(claims, C_DEPLOYMENT, str, return_url) not in platform.deployment_ids:
        raise refuse("the deployment_id is not a known deployment of this platform (LTI core 5.3.3)", return_url=return_url)
    _required(claims, C_ROLES, list, return_url)
    if message_type == RESOURCE_LINK:
        if _required(claims, C_TARGET, str, return_url) != target_link_uri:
            raise refuse("the target_link_uri claim differs from the login's target_link_uri", return_url=return_url)
        _required(claims, C_RESOURCE_LINK + "#id", str, return_url)
    else:
        _required(claims, C_DL_SETTINGS + "#deep_link_return_url", str, return_url)
        _required(claims, C_DL_SETTINGS + "#accept_types", list, return_url)


# --- nonces ---------------------------------------------------------------------------------


def spend_nonce(conn: Connection, scope: str, nonce: str, ttl_seconds: int) -> bool:
    """Record a nonce as used; False when it already was (a replay). Runs in the caller's
    transaction; a SAVEPOINT keeps a duplicate from aborting it on PostgreSQL."""
    now = utcnow()
    if secrets.randbelow(100) == 0:  # now and then, forget nonces past their window
        conn.execute(delete(tt.nonces).where(tt.nonces.c.expires_at < now))
    try:
        with conn.begin_nested():
            conn.execute(insert(tt.nonces).values(scope=scope[:300], nonce=nonce[:300], expires_at=now + timedelta(seconds=ttl_seconds)))
    except SAIntegrityError:
        return False
    return True


__all__ = ["SKEW_SECONDS", "Launch", "PlatformKeys", "spend_nonce", "validate_id_token"]
