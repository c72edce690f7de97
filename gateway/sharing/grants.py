"""Data-sharing grants: a district (the grantor) lets another tenant (the grantee) read
some of its data, for a purpose, for a time, and every read is logged.

A grant names:

* ``purpose``: free text the district writes (what the data is for, the agreement it falls under);
* ``starts_at`` / ``ends_at``: access is allowed in ``[starts_at, ends_at)`` only;
* ``scopes``: what the grantee may do under it: ``changes.readonly`` (the change feed) and
  ``exports`` (bulk export); the grantee's own client must hold the scope too;
* ``kinds``: the record kinds it covers (a change or export of another kind is not shown);
* ``deidentified``: learners appear only under a pseudonym for this grantee, and personal
  fields are dropped (``deidentify``).

A grant is created and revoked by the grantor only (scope ``admin`` on the granting side,
or ``tessera grants`` on the server). Revoking sets ``revoked_at``; every read checks the
grant anew, so a revoked grant stops the next page of a feed or an export already running.
Grants are never deleted: the access log refers to them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import Engine, insert, select, update

from ..errors import ErrorDetail, NotFound, ValidationError
from ..model import RECORD_TYPES, utcnow
from ..store.db import WRITE
from ..store.tables import grant_access_log, grants
from ..store.tenants import ensure_tenant

#: what a grant may allow its grantee
GRANT_SCOPES = {
    "changes.readonly": "read the grantor's changes through the change feed (/v1/changes)",
    "exports": "bulk-export the grantor's data (tessera export bulk, /v1/exports)",
    "reports": "read the grantor's aggregate mastery reports, de-identified, small cells suppressed (/v1/reports/granted/...)",
}


@dataclass(frozen=True)
class Grant:
    id: uuid.UUID
    grantor: str
    grantee: str
    purpose: str
    starts_at: datetime
    ends_at: datetime
    scopes: tuple[str, ...]
    kinds: tuple[str, ...]
    deidentified: bool
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    def active(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        return self.revoked_at is None and self.starts_at <= now < self.ends_at

    def allows(self, scope: str, now: datetime | None = None) -> bool:
        return scope in self.scopes and self.active(now)

    def as_json(self) -> dict[str, object]:
        return {
            "id": str(self.id), "grantor": self.grantor, "grantee": self.grantee, "purpose": self.purpose,
            "starts_at": self.starts_at.isoformat(), "ends_at": self.ends_at.isoformat(),
            "scopes": list(self.scopes), "kinds": list(self.kinds), "deidentified": self.deidentified,
            "created_at": self.created_at.isoformat(), "created_by": self.created_by,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None, "revoked_by": self.revoked_by,
            "status": "revoked" if self.revoked_at else ("active" if self.active() else
                                                         ("expired" if utcnow() >= self.ends_at else "not yet started")),
        }


def _grant(row: object) -> Grant:
    r = row._mapping  # type: ignore[attr-defined]
    return Grant(r["id"], r["grantor"], r["grantee"], r["purpose"], r["starts_at"], r["ends_at"],
                 tuple(orjson.loads(r["scopes"])), tuple(orjson.loads(r["kinds"])), bool(r["deidentified"]),
                 r["created_at"], r["created_by"], r["revoked_at"], r["revoked_by"])


class GrantStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, grantor: str, grantee: str, *, purpose: str, starts_at: datetime, ends_at: datetime,
               scopes: Iterable[str], kinds: Iterable[str], deidentified: bool, created_by: str) -> Grant:
        scopes, kinds = sorted(set(scopes)), sorted(set(kinds))
        errors = []
        if not purpose.strip():
            errors.append(ErrorDetail("a grant needs a purpose", field="purpose"))
        if grantee == grantor:
            errors.append(ErrorDetail("a tenant needs no grant to read its own data", field="grantee"))
        if not grantee.strip():
            errors.append(ErrorDetail("a grant needs a grantee tenant", field="grantee"))
        if ends_at <= starts_at:
            errors.append(ErrorDetail("must be after starts_at", field="ends_at"))
        bad = [s for s in scopes if s not in GRANT_SCOPES]
        if bad or not scopes:
            errors.append(ErrorDetail(f"each must be one of {', '.join(GRANT_SCOPES)} (got {', '.join(bad) or 'none'})", field="scopes"))
        unknown = [k for k in kinds if k not in RECORD_TYPES]
        if unknown or not kinds:
            errors.append(ErrorDetail(f"each must be a record kind: {', '.join(RECORD_TYPES)} (got {', '.join(unknown) or 'none'})", field="kinds"))
        if errors:
            raise ValidationError("invalid grant", errors=errors)
        gid, now = uuid.uuid4(), utcnow()
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            ensure_tenant(conn, grantor)
            conn.execute(insert(grants).values(
                id=gid, grantor=grantor, grantee=grantee, purpose=purpose.strip(), starts_at=starts_at, ends_at=ends_at,
                scopes=orjson.dumps(scopes).decode(), kinds=orjson.dumps(kinds).decode(), deidentified=deidentified,
                created_at=now, created_by=created_by))
        return self.get(gid)

    def get(self, grant_id: uuid.UUID, *, tenant: str | None = None) -> Grant:
        """The grant; with ``tenant``, only if that tenant is its grantor or grantee (else NotFound)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(grants).where(grants.c.id == grant_id)).first()
        if row is None or (tenant is not None and tenant not in (row.grantor, row.grantee)):
            raise NotFound(f"no grant {grant_id}")
        return _grant(row)

    def find(self, tenant: str | None = None, *, role: str = "any") -> list[Grant]:
        """Grants ``tenant`` gave (role ``grantor``), received (``grantee``) or either; all with no tenant."""
        q = select(grants).order_by(grants.c.created_at, grants.c.id)
        if tenant is not None:
            if role == "grantor":
                q = q.where(grants.c.grantor == tenant)
            elif role == "grantee":
                q = q.where(grants.c.grantee == tenant)
            else:
                q = q.where((grants.c.grantor == tenant) | (grants.c.grantee == tenant))
        with self.engine.connect() as conn:
            return [_grant(r) for r in conn.execute(q)]

    def revoke(self, grant_id: uuid.UUID, *, grantor: str | None, by: str) -> Grant:
        """Revoke at once. Only the grantor may (``grantor=None``: the server's own CLI)."""
        g = self.get(grant_id)
        if grantor is not None and g.grantor != grantor:
            raise NotFound(f"no grant {grant_id}")
        if g.revoked_at is None:
            with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
                conn.execute(update(grants).where(grants.c.id == grant_id, grants.c.revoked_at.is_(None))
                             .values(revoked_at=utcnow(), revoked_by=by))
        return self.get(grant_id)

    def active_for(self, grantee: str, scope: str, *, grant_id: uuid.UUID | None = None) -> list[Grant]:
        """The grants ``grantee`` may use for ``scope`` now (one, when ``grant_id`` is given)."""
        now = utcnow()
        q = select(grants).where(grants.c.grantee == grantee, grants.c.revoked_at.is_(None))
        if grant_id is not None:
            q = q.where(grants.c.id == grant_id)
        with self.engine.connect() as conn:
            return [g for g in (_grant(r) for r in conn.execute(q)) if g.allows(scope, now)]

    def log(self, grant_id: uuid.UUID, *, client_id: str, action: str, detail: str, records: int) -> None:
        self.log_many([(grant_id, detail, records)], client_id=client_id, action=action)

    def log_many(self, entries: Iterable[tuple[uuid.UUID, str, int]], *, client_id: str, action: str) -> None:
        """Log reads under several grants (grant, detail, records) in one transaction: a page of
        the feed read under ten districts' grants writes one batch, not ten commits."""
        now = utcnow()
        rows = [{"grant_id": g, "client_id": client_id, "action": action, "detail": d, "records": n, "at": now} for g, d, n in entries]
        if rows:
            with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
                conn.execute(insert(grant_access_log), rows)

    def access_log(self, grant_id: uuid.UUID, *, grantor: str | None, limit: int = 1000, after: int = 0) -> list[dict[str, object]]:
        """The reads under a grant, oldest first; readable by its grantor only."""
        g = self.get(grant_id)
        if grantor is not None and g.grantor != grantor:
            raise NotFound(f"no grant {grant_id}")
        q = (select(grant_access_log).where(grant_access_log.c.grant_id == grant_id, grant_access_log.c.id > after)
             .order_by(grant_access_log.c.id).limit(limit))
        with self.engine.connect() as conn:
            return [{"id": r.id, "client_id": r.client_id, "action": r.action, "detail": r.detail, "records": r.records,
                     "at": r.at.isoformat()} for r in conn.execute(q)]


def parse_when(value: str, field: str) -> datetime:
    """A date (``2026-09-01``, midnight UTC) or an ISO 8601 date-time with a zone."""
    from datetime import UTC, date

    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError("invalid grant", errors=[ErrorDetail("must be a date (YYYY-MM-DD) or an ISO 8601 date-time", field=field)]) from None
    if dt.tzinfo is None:
        raise ValidationError("invalid grant", errors=[ErrorDetail("a date-time needs a zone (e.g. Z)", field=field)])
    return dt.astimezone(UTC)


__all__ = ["GRANT_SCOPES", "Grant", "GrantStore", "parse_when"]
