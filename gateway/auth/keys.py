"""Signing keys for access tokens: RS256, with a key id, rotated without downtime.

``rotate`` makes a new key current and retires the previous one: a retired key signs
nothing more but still verifies until ``verify_until`` (its retirement plus the longest
token lifetime), so tokens issued just before a rotation stay valid until they expire.
The public halves are served as a JWKS at ``/.well-known/jwks.json``.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import Engine, insert, or_, select, update

from ..model import utcnow
from ..store import tables as t
from ..store.db import WRITE


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Any
    public_key: Any
    public_jwk: dict[str, Any]
    created_at: datetime
    retired_at: datetime | None
    verify_until: datetime | None


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _new_key() -> tuple[str, str, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    kid = uuid.uuid4().hex[:16]
    nums = key.public_key().public_numbers()
    jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": _b64(nums.n), "e": _b64(nums.e)}
    return kid, pem, jwk


class KeyStore:
    """Keys live in the database so that every API process signs and verifies alike."""

    CACHE_SECONDS = 30.0

    def __init__(self, engine: Engine, *, token_ttl_seconds: int) -> None:
        self.engine = engine
        self.token_ttl = timedelta(seconds=token_ttl_seconds)
        self._lock = threading.Lock()
        self._cache: list[SigningKey] = []
        self._cached_at = 0.0

    def _load(self) -> list[SigningKey]:
        now = utcnow()
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.signing_keys).order_by(t.signing_keys.c.created_at.desc())).all()
        # Parsing an RSA key costs tens of milliseconds: reuse the ones already parsed, so
        # that a refresh (e.g. for a token naming an unknown kid) is one small query.
        parsed = {k.kid: k.private_key for k in self._cache}
        keys = []
        for r in rows:
            if r.verify_until is not None and r.verify_until <= now:
                continue
            priv = parsed.get(r.kid) or serialization.load_pem_private_key(r.private_pem.encode(), password=None)
            keys.append(
                SigningKey(r.kid, priv, priv.public_key(), orjson.loads(r.public_jwk), r.created_at, r.retired_at, r.verify_until)
            )
        return keys

    def keys(self, *, refresh: bool = False) -> list[SigningKey]:
        with self._lock:
            if refresh or time.monotonic() - self._cached_at > self.CACHE_SECONDS:
                self._cache = self._load()
                self._cached_at = time.monotonic()
            return list(self._cache)

    def _synced(self) -> list[SigningKey]:
        """The keys, refreshed when the database's set of live keys (or which one is
        current) differs from the cache: a rotation made by another process (``tessera keys
        rotate``) takes effect at once for signing and for the JWKS."""
        sk = t.signing_keys
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(sk.c.kid, sk.c.retired_at).where(or_(sk.c.verify_until.is_(None), sk.c.verify_until > utcnow()))
            ).all()
        keys = self.keys()
        if {k.kid: k.retired_at is None for k in keys} != {r.kid: r.retired_at is None for r in rows}:
            keys = self.keys(refresh=True)
        return keys

    def current(self) -> SigningKey:
        """The key to sign with: never one the database has retired."""
        for k in self._synced():
            if k.retired_at is None:
                return k
        self.rotate()
        return next(k for k in self.keys(refresh=True) if k.retired_at is None)

    def find(self, kid: str) -> SigningKey | None:
        """The key that verifies tokens signed under ``kid``, until its ``verify_until``."""
        now = utcnow()
        for k in self.keys():
            if k.kid == kid and (k.verify_until is None or k.verify_until > now):
                return k
        # an unknown kid may be a key another process just created
        return next((k for k in self.keys(refresh=True) if k.kid == kid), None)

    def rotate(self) -> str:
        """Create a new current key; the previous one keeps verifying until its tokens expire."""
        kid, pem, jwk = _new_key()
        now = utcnow()
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            conn.execute(
                update(t.signing_keys)
                .where(t.signing_keys.c.retired_at.is_(None))
                .values(retired_at=now, verify_until=now + self.token_ttl + timedelta(seconds=60))
            )
            conn.execute(
                insert(t.signing_keys).values(
                    kid=kid, algorithm="RS256", private_pem=pem, public_jwk=orjson.dumps(jwk).decode(), created_at=now
                )
            )
        self.keys(refresh=True)
        return kid

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk for k in self._synced()]}

    def list(self) -> list[dict[str, Any]]:
        return [
            {"kid": k.kid, "created_at": k.created_at, "current": k.retired_at is None, "verify_until": k.verify_until}
            for k in self.keys(refresh=True)
        ]


def public_key_from_jwk(jwk: dict[str, Any]) -> Any:
    return RSAAlgorithm.from_jwk(orjson.dumps(jwk).decode())
