"""OAuth 1.0a consumers: the one store of keys, sealed secrets and spent nonces behind every
signed request Tessera verifies (OneRoster 1.1 REST, LTI 1.1 launches and Basic Outcomes).

A consumer is a key of one tenant, shared with one peer for one ``purpose``, a name the
adapter that made it chooses ("oneroster", "lti11.tool", "lti11.consumer"): a key verifies
only where its purpose is asked for, so a OneRoster 1.1 client cannot launch an LTI tool
and an LMS's LTI key cannot read the roster API. Each consumer keeps:

- its secret, sealed (``gateway.auth.sealed``): HMAC signs with the secret itself, so it
  cannot be hashed; it is opened only to verify or to sign;
- scopes (the OneRoster 1.2 names a bearer client of the same reach would hold), or none;
- ``attributes``: a small JSON object the adapter keeps with it (LTI 1.1: ``roster_system``);
- ``revoked_at``: a revoked key is refused with ``consumer_key_refused``, not ``unknown``.

Nonces (RFC 5849 3.3): (key, nonce, timestamp) is spent once, only after the signature
verified (``gateway.auth.oauth1.verify``), and kept until its timestamp would be refused
anyway; expired rows are deleted as new nonces are spent.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ..errors import Conflict, ValidationError
from ..model import utcnow
from ..store.db import WRITE
from ..store.tables import oauth1_consumers as consumers_t
from ..store.tables import oauth1_nonces as nonces_t
from ..store.tenants import ensure_tenant
from .oauth1 import DEFAULT_WINDOW, OAuth1Error, SignedRequest, verify
from .sealed import Sealer, sealer_for


@dataclass(frozen=True)
class Consumer:
    """An OAuth 1.0a consumer key (never its secret)."""

    consumer_key: str
    tenant: str
    purpose: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    attributes: Mapping[str, Any] = field(default_factory=dict)


def _consumer(r: Any) -> Consumer:
    return Consumer(r.consumer_key, r.tenant, r.purpose, r.name, tuple(r.scopes.split()), r.created_at, r.revoked_at,
                    orjson.loads(r.attributes) if r.attributes else {})


def _purposes(purpose: str | Iterable[str]) -> tuple[str, ...]:
    return (purpose,) if isinstance(purpose, str) else tuple(purpose)


class ConsumerStore:
    """Consumer keys with their sealed secrets, and the nonces they have spent."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def sealer(self) -> Sealer:
        """Looked up when a secret is sealed or opened, so merely starting the app makes no key file."""
        return sealer_for(self.engine.url.render_as_string(hide_password=False))

    # --- keys ----------------------------------------------------------------------------------

    def add(
        self,
        tenant: str,
        purpose: str,
        *,
        consumer_key: str | None = None,
        secret: str | None = None,
        name: str | None = None,
        scopes: Iterable[str] = (),
        attributes: Mapping[str, Any] | None = None,
        key_prefix: str = "",
    ) -> tuple[Consumer, str]:
        """Record a consumer; without ``consumer_key`` or ``secret`` they are generated
        (``key_prefix`` + 24 hex digits; 32 random bytes). Returns the consumer and the secret,
        which is stored only sealed. A key already in use, for any purpose, is a Conflict."""
        key = consumer_key or key_prefix + secrets.token_hex(12)
        secret = secret or secrets.token_urlsafe(32)
        if not key or not secret:
            raise ValidationError("a consumer key and a secret are both required")
        try:
            with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
                ensure_tenant(conn, tenant)
                conn.execute(insert(consumers_t).values(
                    consumer_key=key, tenant=tenant, purpose=purpose, name=name or key, secret_sealed=self.sealer.seal(secret),
                    scopes=" ".join(scopes), attributes=orjson.dumps(dict(attributes or {})).decode(), created_at=utcnow(),
                ))
        except SAIntegrityError:
            raise Conflict(f"the consumer key {key!r} is already in use") from None
        found = self.get(key)
        assert found is not None
        return found, secret

    def get(self, consumer_key: str, purpose: str | Iterable[str] | None = None) -> Consumer | None:
        """The consumer of this key (of one of these purposes, when given), revoked or not; or None."""
        q = select(consumers_t).where(consumers_t.c.consumer_key == consumer_key)
        if purpose is not None:
            q = q.where(consumers_t.c.purpose.in_(_purposes(purpose)))
        with self.engine.connect() as conn:
            r = conn.execute(q).first()
        return _consumer(r) if r is not None else None

    def list(self, tenant: str | None = None, purpose: str | Iterable[str] | None = None) -> list[Consumer]:
        """Consumers, oldest first."""
        q = select(consumers_t).order_by(consumers_t.c.created_at, consumers_t.c.consumer_key)
        if tenant is not None:
            q = q.where(consumers_t.c.tenant == tenant)
        if purpose is not None:
            q = q.where(consumers_t.c.purpose.in_(_purposes(purpose)))
        with self.engine.connect() as conn:
            return [_consumer(r) for r in conn.execute(q)]

    def revoke(self, consumer_key: str, purpose: str | Iterable[str]) -> bool:
        """End a key for good (kept, so its signatures are refused as revoked); False when
        there is no active key of this purpose."""
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            n = conn.execute(update(consumers_t).where(
                consumers_t.c.consumer_key == consumer_key, consumers_t.c.purpose.in_(_purposes(purpose)),
                consumers_t.c.revoked_at.is_(None),
            ).values(revoked_at=utcnow())).rowcount
        return bool(n)

    def remove(self, tenant: str, consumer_key: str, purpose: str | Iterable[str], *,
               within: Callable[[Connection], None] | None = None) -> bool:
        """Delete a key of this tenant and purpose; ``within`` runs in the same transaction
        (the adapter deletes what it kept under the key). False when there was none."""
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            n = conn.execute(delete(consumers_t).where(
                consumers_t.c.tenant == tenant, consumers_t.c.consumer_key == consumer_key,
                consumers_t.c.purpose.in_(_purposes(purpose)),
            )).rowcount
            if n and within is not None:
                within(conn)
        return bool(n)

    def secret(self, consumer_key: str, purpose: str | Iterable[str]) -> str | None:
        """The secret in clear of an active key of this purpose (to sign or verify), or None."""
        with self.engine.connect() as conn:
            r = conn.execute(select(consumers_t.c.secret_sealed).where(
                consumers_t.c.consumer_key == consumer_key, consumers_t.c.purpose.in_(_purposes(purpose)),
                consumers_t.c.revoked_at.is_(None),
            )).first()
        return self.sealer.open(r.secret_sealed) if r is not None else None

    # --- nonces and verification -------------------------------------------------------------------

    def spend_nonce(self, consumer_key: str, nonce: str, timestamp: int, ttl: int) -> bool:
        """``oauth1.NonceStore``: record (key, nonce, timestamp); False when it was already used.
        Nonces past their window are forgotten in the same transaction."""
        now = utcnow()
        dialect_insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        row = {"consumer_key": consumer_key, "nonce": nonce, "timestamp": timestamp, "expires_at": now + timedelta(seconds=ttl)}
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            conn.execute(delete(nonces_t).where(nonces_t.c.expires_at < now))
            ins = dialect_insert(nonces_t).values(**row).on_conflict_do_nothing().returning(nonces_t.c.nonce)
            return conn.execute(ins).first() is not None  # no row back: the nonce was there already

    def verify(self, url: str, method: str, body: bytes, headers: Mapping[str, str], *, purpose: str | Iterable[str],
               realm: str = "tessera", window: int = DEFAULT_WINDOW) -> tuple[SignedRequest, Consumer]:
        """Verify one signed request (``oauth1.verify``) with a key of this purpose -> the signed
        parameters and the consumer. A revoked key is ``consumer_key_refused``."""
        seen: dict[str, Consumer | None] = {}

        def secret_for(consumer_key: str) -> str | None:
            with self.engine.connect() as conn:
                r = conn.execute(select(consumers_t).where(
                    consumers_t.c.consumer_key == consumer_key, consumers_t.c.purpose.in_(_purposes(purpose)),
                )).first()
            seen["consumer"] = _consumer(r) if r is not None else None
            return self.sealer.open(r.secret_sealed) if r is not None and r.revoked_at is None else None

        try:
            signed = verify(url, method, body, headers, secret_for=secret_for, use_nonce=self.spend_nonce, window=window, realm=realm)
        except OAuth1Error as exc:
            if exc.problem == "consumer_key_unknown" and seen.get("consumer") is not None:
                raise OAuth1Error("OAuth 1.0a request refused: this oauth_consumer_key was revoked",
                                  problem="consumer_key_refused", realm=realm) from None
            raise
        consumer = seen["consumer"]
        assert consumer is not None  # the signature verified under this key
        return signed, consumer


__all__ = ["Consumer", "ConsumerStore"]
