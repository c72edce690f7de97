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
de-identified grant the record and its id go through ``deidentify.Deidentifier`` column by
column (``export.columnize``, as the bulk export does); otherwise the stored JSON passes through.

A version below the oldest kept answers 410 with the oldest available. Every page read
under a grant is written to that grant's access log (who, what, when, how many).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import and_, or_, select

from ..errors import ErrorDetail, Gone, ScopeError, ValidationError
from ..model import RECORD_TYPES
from ..store import Store
from ..store.changefeed import newest_safe, oldest
from ..store.read import MANY_CHUNK
from ..store.tables import RECORD_TABLES, changes
from .deidentify import Deidentifier, Pseudonymizer, StateIds
from .export import columnize, columns_of
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


#: how long a reader's de-identifier (its cache of learners' state ids and pseudonyms) is kept
#: between pages: a sync paging through a district reuses it; a state id added to a learner
#: shows in the pseudonym after at most this long
DEID_TTL = 60.0


class ChangeFeed:
    def __init__(self, store: Store, grants: GrantStore, pseudonym_key: Callable[[], bytes]) -> None:
        self.store, self.grants, self.key = store, grants, pseudonym_key
        self._deids: dict[tuple[str, str], tuple[float, Deidentifier]] = {}
        self._deids_lock = threading.Lock()

    def _deidentifier(self, reader: str, grantor: str) -> Deidentifier:
        """The reader's de-identifier for a grantor, kept ``DEID_TTL`` seconds across pages (each
        learner pseudonymised once, not once a page; its caches are bounded)."""
        now = time.monotonic()
        with self._deids_lock:
            for k in [k for k, (at, _) in self._deids.items() if now - at > DEID_TTL]:
                del self._deids[k]
            found = self._deids.get((reader, grantor))
            if found is None:
                found = self._deids[(reader, grantor)] = (now, Deidentifier(Pseudonymizer(self.key(), reader),
                                                                            StateIds(self.store.engine, grantor)))
            return found[1]

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
            if sources and until > since and conn.dialect.name == "postgresql":
                rows = _pg_change_rows(conn, sources, since, until, limit + 1)
            elif sources and until > since:
                cond = or_(*(and_(changes.c.tenant == t, changes.c.record_kind.in_(sorted(ks))) for t, ks, _ in sources))
                q = (select(changes.c.seq, changes.c.tenant, changes.c.record_kind, changes.c.record_id, changes.c.op, changes.c.at)
                     .where(changes.c.seq > since, changes.c.seq <= until, cond).order_by(changes.c.seq).limit(limit + 1))
                rows = [(seq, t, k, str(rid), op, at) for seq, t, k, rid, op, at in conn.execute(q).all()]
            more = len(rows) > limit
            rows = rows[:limit]
            deids = {t: self._deidentifier(reader.tenant, t) for t, _, g in sources if g is not None and g.deidentified}
            docs = self._records(rows, conn, deids)
        by_tenant = {t: g for t, _, g in sources}
        out: list[dict[str, Any]] = []
        counts: dict[uuid.UUID, int] = defaultdict(int)
        gone = (None, True, None)
        for seq, tenant, kind, record_id, op, at in rows:
            grant = by_tenant.get(tenant) if tenant != reader.tenant or not reader.own else None
            doc, dead, rid = docs.get((kind, record_id), gone)
            if rid is None:  # the record itself is gone: its id as this reader knows it
                rid = record_id
                if (deid := deids.get(tenant)) is not None:
                    rid = deid.learners([rid])[0] if kind == "person" else deid.pseudonyms.record(tenant, rid)
            if grant is not None:
                counts[grant.id] += 1
            dead = dead or op == "deleted"
            out.append({"version": seq, "tenant": tenant, "kind": kind, "id": rid, "op": op, "at": at.isoformat(), "tombstone": dead,
                        "grant": str(grant.id) if grant else None, "record": None if dead else doc})
        next_since = rows[-1][0] if more else until
        self.grants.log_many([(g.id, f"since={since} until={until} kinds={','.join(sorted(wanted & set(g.kinds)))}", counts.get(g.id, 0))
                              for g in reader.grants], client_id=reader.client_id, action="changes")
        return FeedPage(out, since, until, max(next_since, since), more)

    def _records(self, rows: Sequence[Any], conn: Any, deids: dict[str, Deidentifier]
                 ) -> dict[tuple[str, str], tuple[Any, bool, str | None]]:
        """(kind, id) -> (the record, retired or voided, its id as the reader sees it). Records
        of an identified source are their stored JSON text, embedded in the response as it is
        (``orjson.Fragment``), never parsed and written again. Records under a de-identified
        grant go through ``export.columnize`` by (tenant, kind): the very column-wise
        de-identification the bulk export does (each learner once, pseudonyms per column)."""
        wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
        for _seq, tenant, kind, record_id, *_ in rows:
            wanted[(tenant, kind)].add(record_id)
        found: dict[tuple[str, str], tuple[Any, bool, str | None]] = {}
        postgres = conn.dialect.name == "postgresql"
        fragment = orjson.Fragment
        for (tenant, kind), ids in wanted.items():
            tbl = RECORD_TABLES[kind]
            got: list[tuple[str, Any, bool]] = []
            if postgres:
                # the ids as ONE array parameter (= ANY), through the driver's own cursor: one
                # statement for the page's records of a kind, ids as text, no result objects
                voided = ", voided" if kind == "evidence" else ""
                cur = conn.connection.dbapi_connection.cursor()
                try:
                    cur.execute(f'SELECT id::text, data, status{voided} FROM "{tbl.name}" WHERE tenant = %s AND id = ANY(%s::uuid[])',
                                (tenant, list(ids)))
                    got = [(rid, data, status == "tobedeleted" or bool(v and v[0])) for rid, data, status, *v in cur.fetchall()]
                finally:
                    cur.close()
            else:
                cols = [tbl.c.id, tbl.c.data, tbl.c.status] + ([tbl.c.voided] if kind == "evidence" else [])
                wanted_ids = [uuid.UUID(x) for x in ids]
                for i in range(0, len(wanted_ids), MANY_CHUNK):
                    q = select(*cols).where(tbl.c.tenant == tenant, tbl.c.id.in_(wanted_ids[i:i + MANY_CHUNK]))
                    for rid, data, status, *v in conn.execute(q).all():
                        got.append((str(rid), data, status == "tobedeleted" or bool(v and v[0])))
            deid = deids.get(tenant)
            if deid is None:
                for rid, data, dead in got:
                    found[(kind, rid)] = (fragment(data), dead, rid)
                continue
            shown = columns_of(kind, deidentified=True)
            batch = columnize(kind, shown, [data for _, data, _ in got], deid)
            names = [n for n, _ in shown]
            values = [batch.columns[n] if t != "json" else [None if v is None else fragment(v) for v in batch.columns[n]]
                      for n, t in shown]
            for (rid, _, dead), row in zip(got, zip(*values, strict=True), strict=True):
                doc = {n: v for n, v in zip(names, row, strict=True) if v is not None}
                found[(kind, rid)] = (doc, dead, doc["id"])
        return found


def _pg_change_rows(conn: Any, sources: Sequence[tuple[str, set[str], Grant | None]], since: int, until: int,
                    limit: int) -> list[tuple[int, str, str, str, str, Any]]:
    """A page of change rows on PostgreSQL through the driver's own cursor (record ids as
    text): (seq, tenant, kind, record id, op, at), keyset on ``seq``."""
    cond = " OR ".join("(tenant = %s AND record_kind = ANY(%s))" for _ in sources)
    params: list[Any] = [since, until]
    for t, ks, _ in sources:
        params += [t, sorted(ks)]
    cur = conn.connection.dbapi_connection.cursor(binary=True)  # binary: instants decoded in C, no text parsing
    try:
        cur.execute("SET LOCAL TIME ZONE 'UTC'")  # instants come back in UTC: no conversion per row
        cur.execute(f"SELECT seq, tenant, record_kind, record_id::text, op, at FROM changes WHERE seq > %s AND seq <= %s AND ({cond}) "
                    f"ORDER BY seq LIMIT {int(limit)}", params)
        return list(cur.fetchall())
    finally:
        cur.close()


__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "SCOPE", "ChangeFeed", "FeedPage", "Reader"]
