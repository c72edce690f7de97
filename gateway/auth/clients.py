"""OAuth 2.0 clients: one tenant each, a set of scopes, and only a hash of the secret.

The secret is shown once, when the client is created. What is stored is
``scrypt$N$r$p$salt$hash``; verification is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select, update

from ..errors import NotFound, ValidationError
from ..model import utcnow
from ..store import tables as t
from ..store.db import WRITE
from ..store.tenants import ensure_tenant
from .scopes import SCOPES, normalize, unknown

_N, _R, _P = 2**14, 8, 1


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "$".join(["scrypt", str(_N), str(_R), str(_P), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def verify_secret(secret: str, stored: str) -> bool:
    try:
        algo, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if algo != "scrypt":
            return False
        salt, want = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        got = hashlib.scrypt(secret.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


@dataclass(frozen=True)
class Client:
    client_id: str
    tenant: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    secret_hash: str
    #: a client acting for one person (a learner's, guardian's or teacher's app): the
    #: learner endpoints then show only what that person may see (gateway/api/mastery.py)
    person_id: uuid.UUID | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class ClientStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, tenant: str, scopes: list[str], name: str | None = None, *, person_id: uuid.UUID | None = None) -> tuple[Client, str]:
        """Returns the client and its secret. The secret is not stored and cannot be shown again."""
        scopes = normalize(scopes)
        bad = unknown(scopes)
        if bad:
            raise ValidationError(f"unknown scope(s) {bad}; known: {sorted(SCOPES)}")
        if not scopes:
            raise ValidationError("a client needs at least one scope")
        client_id = "tsr_" + secrets.token_hex(12)
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            ensure_tenant(conn, tenant)
            conn.execute(
                insert(t.oauth_clients).values(
                    client_id=client_id, tenant=tenant, name=name or client_id, secret_hash=hash_secret(secret),
                    scopes=" ".join(scopes), created_at=now, person_id=person_id,
                )
            )
        return self.get(client_id), secret

    def get(self, client_id: str) -> Client:
        with self.engine.connect() as conn:
            r = conn.execute(select(t.oauth_clients).where(t.oauth_clients.c.client_id == client_id)).first()
        if r is None:
            raise NotFound(f"no client {client_id}")
        return Client(r.client_id, r.tenant, r.name, tuple(r.scopes.split()), r.created_at, r.revoked_at, r.secret_hash, r.person_id)

    def authenticate(self, client_id: str, secret: str) -> Client | None:
        try:
            client = self.get(client_id)
        except NotFound:
            verify_secret(secret, _DUMMY_HASH)  # same work for unknown ids: no timing oracle
            return None
        # verify first: a revoked client costs the same work as any other (no timing oracle)
        if not verify_secret(secret, client.secret_hash) or not client.active:
            return None
        return client

    def revoke(self, client_id: str) -> None:
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            n = conn.execute(
                update(t.oauth_clients).where(t.oauth_clients.c.client_id == client_id).values(revoked_at=utcnow())
            ).rowcount
        if not n:
            raise NotFound(f"no client {client_id}")

    def is_revoked(self, client_id: str) -> bool:
        """True when ``client_id`` is a client of this store that has been revoked (an id it
        does not hold, such as an LTI tool's, is not)."""
        with self.engine.connect() as conn:
            r = conn.execute(select(t.oauth_clients.c.revoked_at).where(t.oauth_clients.c.client_id == client_id)).first()
        return r is not None and r.revoked_at is not None

    def list(self, tenant: str | None = None) -> list[Client]:
        q = select(t.oauth_clients).order_by(t.oauth_clients.c.created_at)
        if tenant:
            q = q.where(t.oauth_clients.c.tenant == tenant)
        with self.engine.connect() as conn:
            return [
                Client(r.client_id, r.tenant, r.name, tuple(r.scopes.split()), r.created_at, r.revoked_at, r.secret_hash)
                for r in conn.execute(q)
            ]


_DUMMY_HASH = hash_secret("not-a-secret", salt=b"0" * 16)


class RevocationCheck:
    """Whether the client behind an access token (or LRS Basic credentials) has been revoked,
    asked every time a token is used: ``tessera clients revoke`` stops the tokens a client
    already holds, not only new ones.

    Tokens are self-contained JWTs, so this is the one database read their use costs; its
    answer is kept per client and process for ``ttl_seconds`` (``TESSERA_REVOCATION_CHECK_SECONDS``,
    5 s by default; 0: ask every time), so a revocation takes effect everywhere within that."""

    MAX_ENTRIES = 10_000

    def __init__(self, clients: ClientStore, *, ttl_seconds: float) -> None:
        self.clients = clients
        self.ttl = ttl_seconds
        self._entries: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def revoked(self, client_id: str) -> bool:
        now = time.monotonic()
        entry = self._entries.get(client_id)
        if entry is not None and now < entry[1]:
            return entry[0]
        answer = self.clients.is_revoked(client_id)
        if self.ttl > 0:
            with self._lock:
                if len(self._entries) >= self.MAX_ENTRIES:
                    self._entries.clear()
                self._entries[client_id] = (answer, now + self.ttl)
        return answer
