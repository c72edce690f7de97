"""The change feed across tenants: ``GET /v1/changes`` and ``/v1/changes/available``.

A reader sees its own tenant's changes (scope ``changes.readonly``) and those of every
district whose active grant to it includes ``changes.readonly``, each change tagged with
its tenant (and the grant it was read under). Versions are the change log's ``seq``; a
reader pages with ``since`` (exclusive) up to ``until`` (inclusive), and ``until`` defaults
to the newest *safe* version at the time of the call (``gateway.store.changefeed``), so a
reader that takes ``newest`` from ``/available`` at the start of a sync and pages up to it
never misses or repeats a change, however writes go on. The next sync starts from that
``newest``.

Each change carries the record as it is now (as Ed-Fi's change queries do: a record changed
twice appears twice with its current content), or a tombstone when the change deleted or
retired it (``status`` tobedeleted, evidence voided, or the record is gone). Under a
de-identified grant the record and its id go through ``deidentify.Deidentifier``.

A version below the oldest kept answers 410 with the oldest available. Every page read
under a grant is written to that grant's access log (who, what, when, how many).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import ARRAY, and_, any_, bindparam, or_, select
from sqlalchemy.dialects.postgresql import UUID as PG_UUID

from ..errors import ErrorDetail, Gone, ScopeError, ValidationError
from ..model import RECORD_TYPES
from ..store import Store
from ..store.changefeed import newest_safe, oldest
from ..store.read import MANY_CHUNK
from ..store.tables import RECORD_TABLES, changes
from .deidentify import Deidentifier, Pseudonymizer, StateIds
from .grants import Grant, GrantStore

SCOPE = "changes.readonly"
DEFAULT_LIMIT, MAX_LIMIT = 1000, 10_000


@dataclass
class Reader:
    """Who reads, and from which tenants under which grants."""

    tenant: str
    client_id: str
    own: bool  # the reader's own tenant is included (its client holds the scope)
    grants: list[Grant] = field(default_factory=list)


@dataclass
class FeedPage:
    changes: list[dict[str, Any]]
    since: int
    until: int
    #: pass as ``since`` for the next page (equal to ``until`` when the range is done)
    next_since: int
    more: bool


class ChangeFeed:
    def __init__(self, store: Store, grants: GrantStore, pseudonym_key: Callable[[], bytes]) -> None:
        self.store, self.grants, self.key = store, grants, pseudonym_key

    def reader(self, tenant: str, client_id: str, scopes: frozenset[str], *, grant_id: uuid.UUID | None = None) -> Reader:
        if SCOPE not in scopes:
            raise ScopeError(f"the change feed needs the scope {SCOPE}", required=[SCOPE])
        grants = self.grants.active_for(tenant, SCOPE, grant_id=grant_id)
        if grant_id is not None and not grants:
            raise ScopeError(f"grant {grant_id} is unknown, revoked, expired or does not allow {SCOPE}", required=[SCOPE])
        return Reader(tenant, client_id, own=grant_id is None, grants=grants)

    def available(self) -> dict[str, int]:
        with self.store.engine.connect() as conn:
            return {"oldest": oldest(conn), "newest": newest_safe(conn)}

    def page(self, reader: Reader, *, since: int = 0, until: int | None = None, kinds: Sequence[str] = (),
             limit: int = DEFAULT_LIMIT) -> FeedPage:
        bad = [k for k in kinds if k not in RECORD_TYPES]
        if bad:
            raise ValidationError("invalid change query", errors=[ErrorDetail(f"unknown kinds {bad}; kinds: {', '.join(RECORD_TYPES)}",
                                                                          location="query", field="kinds")])
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationError("invalid change query", errors=[ErrorDetail(f"must be 1..{MAX_LIMIT}", location="query", field="limit")])
        with self.store.engine.connect() as conn:
            floor, safe = oldest(conn), newest_safe(conn)
            if since < 0 or since < floor - 1:
                raise Gone(f"version {since} is older than the oldest kept; the oldest available is {floor}: start a full sync "
                           f"(a bulk export) and follow the feed from its version")
            until = safe if until is None else min(until, safe)
            wanted = set(kinds) or set(RECORD_TYPES)
            sources: list[tuple[str, set[str], Grant | None]] = []
            if reader.own:
                sources.append((reader.tenant, wanted, None))
            sources += [(g.grantor, wanted & set(g.kinds), g) for g in reader.grants if wanted & set(g.kinds)]
            rows: list[Any] = []
            if sources and until > since:
                cond = or_(*(and_(changes.c.tenant == t, changes.c.record_kind.in_(sorted(ks))) for t, ks, _ in sources))
                q = (select(changes.c.seq, changes.c.tenant, changes.c.record_kind, changes.c.record_id, changes.c.op,
                            changes.c.content_hash, changes.c.at)
                     .where(changes.c.seq > since, changes.c.seq <= until, cond).order_by(changes.c.seq).limit(limit + 1))
                rows = list(conn.execute(q).all())
            more = len(rows) > limit
            rows = rows[:limit]
            deidentified = {t for t, _, g in sources if g is not None and g.deidentified}
            docs = self._records(rows, conn, deidentified)
        by_tenant = {t: g for t, _, g in sources}
        deids: dict[str, Deidentifier] = {}
        for t in deidentified:  # one look-up of the state ids a page's learners have, per tenant
            deids[t] = Deidentifier(Pseudonymizer(self.key(), reader.tenant), StateIds(self.store.engine, t))
            deids[t].prepare([d for d, _ in docs.values() if isinstance(d, dict) and d.get("tenant") == t])
        out: list[dict[str, Any]] = []
        counts: dict[uuid.UUID, int] = defaultdict(int)
        for r in rows:
            grant = by_tenant.get(r.tenant) if r.tenant != reader.tenant or not reader.own else None
            doc, dead = docs.get((r.record_kind, r.record_id), (None, True))
            dead = dead or r.op == "deleted"
            rid = str(r.record_id)
            if r.tenant in deids:
                deid = deids[r.tenant]
                if doc is not None:
                    doc = deid.record(doc)
                    rid = doc["id"]
                else:
                    rid = deid.pseudonyms.record(r.tenant, rid)
            if grant is not None:
                counts[grant.id] += 1
            out.append({"version": r.seq, "tenant": r.tenant, "kind": r.record_kind, "id": rid, "op": r.op,
                        "at": r.at.isoformat(), "tombstone": dead, "grant": str(grant.id) if grant else None,
                        "record": None if dead else doc})
        next_since = rows[-1].seq if more else until
        self.grants.log_many([(g.id, f"since={since} until={until} kinds={','.join(sorted(wanted & set(g.kinds)))}", counts.get(g.id, 0))
                              for g in reader.grants], client_id=reader.client_id, action="changes")
        return FeedPage(out, since, until, max(next_since, since), more)

    def _records(self, rows: Sequence[Any], conn: Any, parse: set[str]) -> dict[tuple[str, uuid.UUID], tuple[Any, bool]]:
        """(kind, id) -> (the record, retired or voided). Records of a tenant in ``parse`` come
        as dicts (they are de-identified next); the others as their stored JSON text, which
        the response embeds as it is (``orjson.Fragment``) instead of parsing and writing it again."""
        wanted: dict[tuple[str, str], set[uuid.UUID]] = defaultdict(set)
        for r in rows:
            wanted[(r.tenant, r.record_kind)].add(r.record_id)
        found: dict[tuple[str, uuid.UUID], tuple[Any, bool]] = {}
        postgres = conn.dialect.name == "postgresql"
        loads, fragment = orjson.loads, orjson.Fragment
        for (tenant, kind), ids in wanted.items():
            tbl = RECORD_TABLES[kind]
            cols = [tbl.c.id, tbl.c.data, tbl.c.status] + ([tbl.c.voided] if kind == "evidence" else [])
            wanted_ids = list(ids)
            # PostgreSQL: the ids as ONE array parameter (= ANY): one statement shape, compiled
            # once, instead of an IN list of hundreds of parameters parsed on every page
            step = len(wanted_ids) or 1 if postgres else MANY_CHUNK
            for i in range(0, len(wanted_ids), step):
                chunk = wanted_ids[i:i + step]
                match = tbl.c.id == any_(bindparam("ids", chunk, type_=ARRAY(PG_UUID(as_uuid=True)))) if postgres else tbl.c.id.in_(chunk)
                q = select(*cols).where(tbl.c.tenant == tenant, match)
                parsed = tenant in parse
                for row in conn.execute(q):
                    dead = row.status == "tobedeleted" or (kind == "evidence" and bool(row.voided))
                    found[(kind, row.id)] = (loads(row.data) if parsed else fragment(row.data), dead)
        return found


__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "SCOPE", "ChangeFeed", "FeedPage", "Reader"]
