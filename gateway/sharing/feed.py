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
column (``record_texts.deidentified_records``, as the bulk export does, a part of a chunk's
records at a time; on PostgreSQL in the reader's de-identifying worker process, ``feed_records``
and ``feed_worker``, while this process reads the next chunk and shapes the one before);
otherwise the stored JSON passes through. Either way ``record`` is JSON text (an ``orjson.Fragment``) the response embeds as it is.

A version below the oldest kept answers 410 with the oldest available. Every page read
under a grant is written to that grant's access log (who, what, when, how many).

A page asked for with an explicit ``until`` on PostgreSQL (a sync's) also starts the page
after it, read at the same time on a thread, connection and worker of its own and served if
the reader asks the very same question from where it starts (``feed_ahead``); it is logged
when served, not when read.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import and_, or_, select

from ..errors import ErrorDetail, Gone, ScopeError, ValidationError
from ..gc_pause import paused_gc
from ..model import RECORD_TYPES
from ..store import Store
from ..store.changefeed import newest_safe, oldest
from ..store.pg_arrays import uuid_array_of_bytes
from ..store.read import MANY_CHUNK
from ..store.tables import RECORD_TABLES, changes
from . import feed_ahead
from .columns import prefetched
from .deidentify import Deidentifier, Pseudonymizer, StateIds
from .feed_ahead import ReadAhead, read_ahead_on
from .feed_records import Asked, RecordHelper, deidentified_records, helper_pays
from .grants import Grant, GrantStore
from .switching import prompt_switching

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


#: a reader's worker processes at most: one for the page served, one for each page read ahead
HELPERS_PER_READER = 1 + feed_ahead.DEPTH

#: how long a reader's de-identifier (its cache of learners' state ids and pseudonyms) is kept
#: between pages: a sync paging through a district reuses it; a state id added to a learner
#: shows in the pseudonym after at most this long
DEID_TTL = 60.0


class ChangeFeed:
    def __init__(self, store: Store, grants: GrantStore, pseudonym_key: Callable[[], bytes]) -> None:
        self.store, self.grants, self.key = store, grants, pseudonym_key
        self._deids: dict[tuple[str, str], tuple[float, Deidentifier]] = {}
        self._deids_lock = threading.Lock()
        #: each reader's de-identifying worker process (``feed_records``), kept ``DEID_TTL`` after its last page
        self._helpers: dict[str, tuple[float, list[RecordHelper]]] = {}
        self._ahead = ReadAhead(self)
        #: the newest safe version seen so far: it never goes down (``store.changefeed``), so a
        #: page up to an ``until`` at or below it needs no look-up of it (``max(seq)`` over the
        #: change log's partitions and ``pg_locks``: planned anew each time, ~2-5 ms of the
        #: database's CPU at full size, twice a page with the read-ahead's look-ups)
        self._safe_seen = 0

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

    @contextmanager
    def _lent_helper(self, reader: str) -> Iterator[RecordHelper | None]:
        """A worker of the reader's for one page: one not lent to another page, or a new one
        (its process started when first borrowed) while the reader has fewer than
        ``HELPERS_PER_READER`` and none has failed (a page read ahead while another is served
        has its own, ``feed_ahead``); None when none is free (the page's records made
        in-process). A reader's workers unused for ``DEID_TTL`` are closed."""
        now = time.monotonic()
        with self._deids_lock:
            old = [h for k, (at, _) in list(self._helpers.items()) if now - at > DEID_TTL for h in self._helpers.pop(k)[1]]
            helpers = self._helpers[reader][1] if reader in self._helpers else []
            free = next((h for h in helpers if not h.lent), None)
            if free is None and len(helpers) < HELPERS_PER_READER and not any(h.failed for h in helpers):
                free = RecordHelper()
                helpers.append(free)
            self._helpers[reader] = (now, helpers)
        for h in old:
            h.close()
        if free is None:
            yield None
            return
        with free.borrowed() as lent:
            yield lent

    def close(self) -> None:
        """End the readers' worker processes (they end with this process anyway), once the
        pages read ahead are done (and dropped)."""
        self._ahead.close()
        with self._deids_lock:
            old, self._helpers = list(self._helpers.values()), {}
        for _, helpers in old:
            for h in helpers:
                h.close()

    def reader(self, tenant: str, client_id: str, scopes: frozenset[str], *, grant_id: uuid.UUID | None = None) -> Reader:
        if SCOPE not in scopes:
            raise ScopeError(f"the change feed needs the scope {SCOPE}", required=[SCOPE])
        grants = self.grants.active_for(tenant, SCOPE, grant_id=grant_id)
        if grant_id is not None and not grants:
            raise ScopeError(f"grant {grant_id} is unknown, revoked, expired or does not allow {SCOPE}", required=[SCOPE])
        return Reader(tenant, client_id, own=grant_id is None, grants=grants)

    def available(self) -> dict[str, int]:
        with self.store.engine.connect() as conn:
            return {"oldest": oldest(conn), "newest": self._newest_safe(conn)}

    def _newest_safe(self, conn: Any) -> int:
        """``changefeed.newest_safe``, remembered as the newest seen (a race of two threads may
        keep the lower of two: still a version seen safe)."""
        safe = newest_safe(conn)
        if safe > self._safe_seen:
            self._safe_seen = safe
        return safe

    def page(self, reader: Reader, *, since: int = 0, until: int | None = None, kinds: Sequence[str] = (),
             limit: int = DEFAULT_LIMIT) -> FeedPage:
        bad = [k for k in kinds if k not in RECORD_TYPES]
        if bad:
            raise ValidationError("invalid change query", errors=[ErrorDetail(f"unknown kinds {bad}; kinds: {', '.join(RECORD_TYPES)}",
                                                                          location="query", field="kinds")])
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationError("invalid change query", errors=[ErrorDetail(f"must be 1..{MAX_LIMIT}", location="query", field="limit")])
        if until is not None and self.store.engine.dialect.name == "postgresql" and read_ahead_on():
            return self._ahead.page(reader, since, until, tuple(kinds), limit)
        return self.read(reader, since, until, kinds, limit)[0]

    def _sources(self, reader: Reader, wanted: set[str]) -> list[tuple[str, set[str], Grant | None]]:
        """(tenant, kinds, grant or None for the reader's own) the reader reads ``wanted`` from."""
        sources: list[tuple[str, set[str], Grant | None]] = []
        if reader.own:
            sources.append((reader.tenant, wanted, None))
        return sources + [(g.grantor, wanted & set(g.kinds), g) for g in reader.grants if wanted & set(g.kinds)]

    def log(self, reader: Reader, since: int, until: int, kinds: Sequence[str], counts: Mapping[str, int]) -> None:
        """A page's reads under each of the reader's grants in its access log (``counts``:
        changes read by grantor), in one transaction."""
        wanted = set(kinds) or set(RECORD_TYPES)
        by_tenant = {t: g for t, _, g in self._sources(reader, wanted)}  # the grant each grantor's changes were read under
        self.grants.log_many([(g.id, f"since={since} until={until} kinds={','.join(sorted(wanted & set(g.kinds)))}",
                               counts.get(g.grantor, 0) if by_tenant.get(g.grantor) is g else 0)
                              for g in reader.grants], client_id=reader.client_id, action="changes")

    def read(self, reader: Reader, since: int, until: int | None, kinds: Sequence[str], limit: int, *,
             logged: bool = True, ends: Callable[[int | None], None] | None = None) -> tuple[FeedPage, dict[str, int]]:
        """The page and how many of its changes each grantor had; the access log written here
        unless ``logged`` is False (the read-ahead's: written when the page is served). ``ends``
        (the read-ahead's, PostgreSQL) is told where the page after it starts (None: none) as
        soon as its change rows are read, before its records."""
        with self.store.engine.connect() as conn:
            floor = oldest(conn)
            if since < 0 or since < floor - 1:
                raise Gone(f"version {since} is older than the oldest kept; the oldest available is {floor}: start a full sync "
                           f"(a bulk export) and follow the feed from its version")
            if until is None or until > self._safe_seen:
                safe = self._newest_safe(conn)
                until = safe if until is None else min(until, safe)
            sources = self._sources(reader, set(kinds) or set(RECORD_TYPES))
            seqs: list[int] = []  # the versions read (the change rows themselves go once shaped)
            logged_at: list[bool] = []

            def log(counts: Mapping[str, int]) -> None:
                self.log(reader, since, until, kinds, counts)
                logged_at.append(True)

            deids = {t: self._deidentifier(reader.tenant, t) for t, _, g in sources if g is not None and g.deidentified}
            shape = _Shape(reader, sources, deids)
            # tens of thousands of fresh objects a page: the cyclic collector would walk them over and over; the
            # page keeps none that it tracks (change rows are dropped once shaped, the changes are dicts of text)
            with paused_gc():
                if sources and until > since and conn.dialect.name == "postgresql":
                    with self._lent_helper(reader.tenant) if deids and helper_pays() else nullcontext() as lent:
                        seqs = self._pg_page(conn, sources, since, until, limit, deids, shape, lent, log if logged else None, ends)
                elif sources and until > since:
                    cond = or_(*(and_(changes.c.tenant == t, changes.c.record_kind.in_(sorted(ks))) for t, ks, _ in sources))
                    q = (select(changes.c.seq, changes.c.tenant, changes.c.record_kind, changes.c.record_id, changes.c.op, changes.c.at)
                         .where(changes.c.seq > since, changes.c.seq <= until, cond).order_by(changes.c.seq).limit(limit + 1))
                    rows = [(seq, t, k, str(rid), op, at, None) for seq, t, k, rid, op, at in conn.execute(q).all()]
                    docs: dict[str, dict[str, tuple[Any, bool, str | None]]] = defaultdict(dict)
                    self._sqlite_records(rows[:limit], conn, deids, docs)
                    shape.add(rows[:limit], docs)
                    seqs = [row[0] for row in rows]
                more = len(seqs) > limit
                out = shape.out
        next_since = seqs[limit - 1] if more else until
        counts = shape.counts()
        if logged and not logged_at:
            log(counts)
        return FeedPage(out, since, until, max(next_since, since), more), counts

    def next_since(self, reader: Reader, since: int, until: int, kinds: Sequence[str], limit: int) -> int | None:
        """Where the page after the one from ``since`` starts (that page's ``next_since``), or
        None when that page is the last, or ``until`` is past the newest safe version (a page
        read now could then end before one read later). PostgreSQL: the read-ahead's
        (``feed_ahead``): the change log's index by version walked ``limit`` rows, no record read."""
        sources = self._sources(reader, set(kinds) or set(RECORD_TYPES))
        if not sources:
            return None
        cond, params = _source_cond(sources)
        with self.store.engine.connect() as conn:
            if until > self._safe_seen and until > self._newest_safe(conn):
                return None
            rows = conn.exec_driver_sql(f"SELECT seq FROM changes WHERE seq > %s AND seq <= %s AND ({cond}) "
                                        f"ORDER BY seq OFFSET {int(limit) - 1} LIMIT 2", (since, until, *params)).all()
        return int(rows[0][0]) if len(rows) == 2 else None

    def _pg_page(self, conn: Any, sources: Sequence[tuple[str, set[str], Grant | None]], since: int, until: int, limit: int,
                 deids: dict[str, Deidentifier], shape: _Shape, helper: RecordHelper | None = None,
                 log: Callable[[Mapping[str, int]], None] | None = None, ends: Callable[[int | None], None] | None = None) -> list[int]:
        """A page's versions (``limit + 1`` at most: one more tells there are more), their
        changes as the response shows them added to ``shape`` a chunk at a time. Records of an
        identified source are their stored JSON text, embedded in the response as it is
        (``orjson.Fragment``), never parsed and written again; under a de-identified grant they
        go through ``record_texts.deidentified_records`` (a part of ``record_texts.PART``
        records at a time) by (tenant, kind): the column-wise de-identification the bulk export
        does (each learner once, pseudonyms per column), each record then written as JSON text
        (a ``Fragment`` too) by msgspec; with a ``helper`` in its worker process, the chunk's
        records sent by the reading thread as soon as it has read them and their texts taken
        by this one when it reaches the chunk (``feed_records.RecordHelper``). Where a chunk's
        records of a (tenant, kind) came once each in the order of its changes naming them (a
        batch's records written in id order, read by the range of the index), the changes take
        them in turn (``_Shape.add``'s ``in_order``), without a look-up by id a change.

        The change rows come from a server-side cursor, ``FIRST_CHUNK`` and then growing
        chunks up to ``RECORD_CHUNK`` at a time, and each chunk's records are looked up right after it
        (``_pg_changes_and_records``), all on a thread while this one converts the chunk
        before, records and then changes (the driver releases the GIL while it waits): the
        database's reads and Python's conversion run at the same time, from the page's first
        small chunk to its last. ``log`` (the access log of the page's grants) is written by
        that thread too, once it has read the page's last change row, while this one converts
        the last chunk: its commit's wait no longer follows the conversion."""
        seqs: list[int] = []
        dbapi = conn.connection.dbapi_connection

        def ask(fetched: list[tuple[str, str, list[tuple[str, Any, bool]], bool]]) -> Asked | None:
            return helper.ask([(tenant, kind, got) for tenant, kind, got, _ in fetched], deids) if helper is not None else None

        with prompt_switching():
            for chunk, fetched, asked in prefetched(_pg_changes_and_records(dbapi, sources, since, until, limit, log,
                                                                            ask if deids else None, ends)):
                found: dict[str, dict[str, tuple[Any, bool, str | None]]] = defaultdict(dict)
                in_order: dict[tuple[str, str], Iterator[tuple[Any, bool, str | None]]] = {}
                for at, (tenant, kind, got, in_turn) in enumerate(fetched):
                    answer = helper.answer(asked, at) if asked is not None and helper is not None else None
                    entries = self._entries(kind, got, deids.get(tenant), answer)
                    if in_turn:  # the records in the order of the changes naming them, once each
                        in_order[(tenant, kind)] = iter(entries)
                    else:
                        found[kind].update(zip(map(itemgetter(0), got), entries, strict=True))
                shape.add(chunk[:max(0, limit - len(seqs))], found, in_order)
                seqs += map(itemgetter(0), chunk)
        return seqs

    def _sqlite_records(self, rows: Sequence[Any], conn: Any, deids: dict[str, Deidentifier],
                        found: dict[str, dict[str, tuple[Any, bool, str | None]]]) -> None:
        """``_pg_page``'s records on SQLite: looked up by id, a kind of a tenant at a time."""
        wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
        for _seq, tenant, kind, record_id, *_ in rows:
            wanted[(tenant, kind)].add(record_id)
        for (tenant, kind), ids in wanted.items():
            _, _, got = _sqlite_records(conn, tenant, kind, ids)
            found[kind].update(zip(map(itemgetter(0), got), self._entries(kind, got, deids.get(tenant)), strict=True))

    @staticmethod
    def _entries(kind: str, got: list[tuple[str, Any, bool]], deid: Deidentifier | None,
                 answer: tuple[list[bytes], list[Any]] | None = None) -> list[tuple[Any, bool, str | None]]:
        """Each record of ``got`` (id, stored text, retired or voided) as the page shows it: (the
        record as JSON text, retired or voided, its id as the reader sees it), in ``got``'s order.
        Under a de-identified grant the worker's ``answer`` (texts and ids), else
        ``feed_records.deidentified_records`` in this process."""
        fragment = orjson.Fragment
        if deid is None:
            return list(zip(map(fragment, map(itemgetter(1), got)), map(itemgetter(2), got), map(itemgetter(0), got), strict=True))
        texts, ids = answer if answer is not None else deidentified_records(kind, got, deid)
        return list(zip(map(fragment, texts), map(itemgetter(2), got), ids, strict=True))


#: change rows read at a time, their records looked up while the feed converts the chunk before.
#: A page's first chunk is smaller, so the conversion starts soon after the page does, and each
#: next one ``CHUNK_GROWTH`` times larger up to ``RECORD_CHUNK``: a chunk's reading (the
#: database's part) takes about as long as converting the one before, so neither side waits.
#: The first chunk's reading is the one the conversion waits for, every page: at full size
#: 5.3 ms (median) for 500 change rows and their records, 8.5 ms for 1,000. With the worker
#: process (``feed_worker``) a chunk passes three stages (read here, de-identified there, shaped
#: here), and the page's last chunk passes the last two with nothing beside it: at most 2,000
#: changes, not 5,000 (at full size a page then took 93-103 ms against 116-128, and 5 alternated
#: pairs of 60 pages gave 74,415-89,817 changes/s against 66,506-84,987 with 5,000)
RECORD_CHUNK, FIRST_CHUNK, CHUNK_GROWTH = 2000, 500, 2.5


def _chunks(fetch: Callable[[int], list[Any]], sizes: Iterator[int]) -> Iterator[list[Any]]:
    """The rows ``fetch(n)`` gives (up to n more each call, none at the end), in the order
    given, in chunks of the next of ``sizes`` rows. A chunk may end inside an instant (a
    batch written at one clock reading: 10,000 changes at 20 million evidence items): its
    records are range-read by (instant, id) (``_pg_records``), not by whole instants, so an
    instant split over two chunks has each of its records read by one of them; and a page
    is several chunks however its changes fall into instants, so the reading of the next
    chunk overlaps the conversion of this one from the page's first chunk to its last."""
    for size in sizes:
        got = fetch(size)
        if not got:
            return
        yield got


def _cut(rows: list[Any]) -> Callable[[int], list[Any]]:
    """``fetchmany`` over rows fetched already: the next n of them each call."""
    at = 0

    def take(n: int) -> list[Any]:
        nonlocal at
        at += n
        return rows[at - n:at]

    return take


def _sizes() -> Iterator[int]:
    """``FIRST_CHUNK``, then each ``CHUNK_GROWTH`` times larger up to ``RECORD_CHUNK``."""
    size = min(FIRST_CHUNK, RECORD_CHUNK)
    while True:
        yield size
        size = max(1, min(RECORD_CHUNK, int(size * CHUNK_GROWTH)))


def _source_cond(sources: Sequence[tuple[str, set[str], Grant | None]]) -> tuple[str, list[Any]]:
    """The change log's rows of ``sources`` (tenant, kinds, grant): SQL and its parameters."""
    params: list[Any] = []
    for t, ks, _ in sources:
        params += [t, sorted(ks)]
    return " OR ".join("(tenant = %s AND record_kind = ANY(%s))" for _ in sources), params


def _pg_changes_and_records(dbapi: Any, sources: Sequence[tuple[str, set[str], Grant | None]], since: int, until: int,
                            limit: int, done: Callable[[Mapping[str, int]], None] | None = None,
                            ask: Callable[[list[tuple[str, str, list[tuple[str, Any, bool]], bool]]], Any] | None = None,
                            ends: Callable[[int | None], None] | None = None) -> Iterator[tuple[list[Any], list[tuple[str, str, list[tuple[str, Any, bool]], bool]], Any]]:
    """(change rows, [(tenant, kind, records, in turn)], asked) ``FIRST_CHUNK`` and then up to ``RECORD_CHUNK``
    change rows at a time (``_chunks``): the page's change rows, (seq, tenant, kind, record id, op, at, record id as 16 bytes) keyset on ``seq``, from a
    server-side cursor of the driver (binary: instants decoded in C, as UTC without a zone,
    which Python hashes in a third of the time of an instant with one), and after each
    chunk the current records it names (not those of the row past ``limit``), whether they
    came in turn (once each, in the order of the chunk's changes of that tenant and kind
    naming them: compared here, while both are fresh in the processor's cache), and what
    ``ask`` gave for the chunk's records (sent to the reader's worker as soon as they are
    read: ``feed_records.RecordHelper.ask``). Once the rows are all read, ``done`` is given how many of
    the page's changes each tenant had. With ``ends`` every change row of the page is fetched
    first (one round trip; the chunks are then cut from them) and ``ends`` told where the page
    after it starts (None: this is the last), so a page read ahead after this one can start
    at once (``feed_ahead``) instead of looking that up itself."""
    cond, by_source_params = _source_cond(sources)
    params: list[Any] = [since, until, *by_source_params]
    from psycopg.types.string import ByteaBinaryLoader  # the PostgreSQL driver: there only

    records = dbapi.cursor(binary=True)
    # the stored JSON as its UTF-8 bytes: a binary text value IS those bytes, read as bytes
    # (not ``data::bytea``: that cast parses backslash escapes, and JSON text holds backslashes);
    # through varchar, whose loader alone is swapped, so ids (text) stay str
    records.adapters.register_loader("varchar", ByteaBinaryLoader)
    rows = None
    try:
        rows = dbapi.cursor(name=f"tessera_changes_{uuid.uuid4().hex}", binary=True)
        rows.itersize = RECORD_CHUNK
        rows.adapters.register_loader("uuid", ByteaBinaryLoader)  # the raw record id: its 16 bytes
        rows.execute(f"SELECT seq, tenant, record_kind, record_id::text, op, at AT TIME ZONE 'UTC', record_id FROM changes "
                     f"WHERE seq > %s AND seq <= %s AND ({cond}) "
                     f"ORDER BY seq LIMIT {int(limit) + 1}", params)
        taken = 0
        per_tenant: Counter[str] = Counter()
        by_source, id_at, raw_id, named_id, text_id = itemgetter(1, 2), itemgetter(3, 5), itemgetter(6), itemgetter(3), itemgetter(0)
        fetch = rows.fetchmany
        if ends is not None:
            every = rows.fetchmany(int(limit) + 1)
            ends(every[limit - 1][0] if len(every) > limit else None)
            fetch = _cut(every)
        for chunk in _chunks(fetch, _sizes()):
            # (tenant, kind) -> record id -> the instant of its last change in the chunk, in version order
            # (consecutive changes of one source taken at once: a dict updated from C, not a change at a time)
            wanted: dict[tuple[str, str], dict[str, Any]] = {}
            raws: dict[tuple[str, str], list[bytes]] = {}  # the same ids as 16 bytes each (a change at a time: repeats kept)
            named: dict[tuple[str, str], list[str]] = {}  # and as text
            shown = chunk[:max(0, limit - taken)]
            for source, group in groupby(shown, key=by_source):
                run = list(group)
                per_tenant[source[0]] += len(run)  # counted by runs, not a change at a time
                wanted.setdefault(source, {}).update(map(id_at, run))
                raws.setdefault(source, []).extend(map(raw_id, run))
                named.setdefault(source, []).extend(map(named_id, run))
            taken += len(chunk)
            fetched = []
            for (tenant, kind), ids in wanted.items():
                got = _pg_records(records, tenant, kind, list(ids.items()), raws[(tenant, kind)])
                in_turn = list(map(text_id, got)) == named[(tenant, kind)]
                fetched.append((tenant, kind, got, in_turn))
            yield chunk, fetched, ask(fetched) if ask is not None else None
        if done is not None:
            done(per_tenant)
    finally:
        if rows is not None:
            rows.close()
        records.close()


def _pg_records(cur: Any, tenant: str, kind: str, chunk: list[tuple[str, Any]], raw: Sequence[bytes]) -> list[tuple[str, Any, bool]]:
    """The current records of [(id, instant of its last change)] of one kind of one tenant,
    as (id, stored text as bytes, retired or voided), no result objects. ``raw``: the same
    ids as their 16 bytes (the change rows bring both), sent as ONE binary ``uuid[]``
    (``pg_arrays.uuid_array_of_bytes``): PostgreSQL plans with it as a constant without parsing and casting
    5,000 texts (as ids given as text, split by the database, were: ~7 % of its CPU a change).

    A record's ``updated_at`` is the instant of the change that wrote it (one clock reading
    a batch), and a batch writes its records of a kind in id order (``store.prepare``), so
    the records a chunk of consecutive changes still holds are mostly found by one range scan
    of the ``(tenant, updated_at, id)`` index from the chunk's least (instant, id) to its
    greatest, in the order they were written (their heap order), keeping those whose id is
    asked for (the ids as one constant array: a hash look-up a row); that costs the database
    about 40% less than one descent of the primary key a record. Bounded by ids as well as
    instants, the range of a chunk that ends inside an instant stops at its last id there,
    and the next chunk's starts past it: each record is read once a page, however the
    page's changes fall into chunks. Whatever the range misses (changed again since, or
    written at another instant) is then looked up by id, so the answer never depends on the
    instants or the ids' order matching."""
    tbl = RECORD_TABLES[kind]
    # whether retired or voided worked out by the database: the rows come as the caller uses them
    dead = "status = 'tobedeleted' OR voided" if kind == "evidence" else "status = 'tobedeleted'"
    inner = "id, data, status" + (", voided" if kind == "evidence" else "")
    ids = list(map(itemgetter(0), chunk))
    instants = list(map(itemgetter(1), chunk))
    lo_at, hi_at = min(instants), max(instants)
    if lo_at == hi_at:  # one instant (a batch of 10,000 at full size): the least and greatest id
        lo_id, hi_id = min(ids), max(ids)
    else:  # (instant, id): the index's order (uuids compare as their text)
        keys = list(zip(instants, ids, strict=True))
        (lo_at, lo_id), (hi_at, hi_id) = min(keys), max(keys)
    # not prepared: the ids must reach the planner as a constant (a hashed look-up). The instants'
    # range is also given alone: PostgreSQL estimates a row comparison's rows as a large share of
    # the table (at 20 million rows, half a million: a plan costly enough to be compiled by its
    # JIT, tens of milliseconds a chunk), the plain range as the few thousand rows it holds
    cur.execute(f"SELECT id::text, data::varchar, {dead} FROM (SELECT {inner} FROM \"{tbl.name}\" "
                f"WHERE tenant = %s AND updated_at >= %s::timestamp AT TIME ZONE 'UTC' AND updated_at <= %s::timestamp AT TIME ZONE 'UTC' "
                f"AND (updated_at, id) >= (%s::timestamp AT TIME ZONE 'UTC', %s::uuid) "
                f"AND (updated_at, id) <= (%s::timestamp AT TIME ZONE 'UTC', %s::uuid) OFFSET 0) r WHERE id = ANY(%b)",
                (tenant, lo_at, hi_at, lo_at, lo_id, hi_at, hi_id, uuid_array_of_bytes(raw)), prepare=False)
    got: list[tuple[str, Any, bool]] = cur.fetchall()
    if len(got) < len(ids):
        seen = {row[0] for row in got}
        if missing := [rid for rid in ids if rid not in seen]:
            cur.execute(f'SELECT id::text, data::varchar, {dead} FROM "{tbl.name}" WHERE tenant = %s '
                        f"AND id = ANY(string_to_array(%s, ',')::uuid[])", (tenant, ",".join(missing)))
            got += cur.fetchall()
    return got


def _sqlite_records(conn: Any, tenant: str, kind: str, ids: set[str]) -> tuple[str, str, list[tuple[str, Any, bool]]]:
    tbl = RECORD_TABLES[kind]
    cols = [tbl.c.id, tbl.c.data, tbl.c.status] + ([tbl.c.voided] if kind == "evidence" else [])
    wanted_ids = [uuid.UUID(x) for x in ids]
    got = []
    for i in range(0, len(wanted_ids), MANY_CHUNK):
        q = select(*cols).where(tbl.c.tenant == tenant, tbl.c.id.in_(wanted_ids[i:i + MANY_CHUNK]))
        for rid, data, status, *v in conn.execute(q).all():
            got.append((str(rid), data, status == "tobedeleted" or bool(v and v[0])))
    return tenant, kind, got


def _looked_up(found: dict[str, tuple[Any, bool, str | None]], deid: Deidentifier | None, tenant: str,
               kind: str) -> Callable[[str], tuple[Any, bool, str | None]]:
    """A change's (record, retired or voided, id as shown) by its record id from ``found``; a
    record itself gone is a tombstone under its id as this reader knows it."""
    look = found.get

    def entry(record_id: str) -> tuple[Any, bool, str | None]:
        hit = look(record_id)
        if hit is not None:
            return hit
        rid: str | None = record_id
        if deid is not None:
            rid = deid.learners([record_id])[0] if kind == "person" else deid.pseudonyms.record(tenant, record_id)
        return None, True, rid

    return entry


class _Shape:
    """The page's changes as the response shows them, built a chunk at a time, and how many
    were read from each grantor (its grant's access log). A grant's id is made text once, an
    instant once per distinct value (a batch's changes share theirs)."""

    def __init__(self, reader: Reader, sources: Sequence[tuple[str, set[str], Grant | None]], deids: dict[str, Deidentifier]) -> None:
        self.shown_grant = {t: (str(g.id) if g is not None and (t != reader.tenant or not reader.own) else None) for t, _, g in sources}
        self.deids = deids
        self.out: list[dict[str, Any]] = []
        self.instants: dict[Any, str] = {}
        self._counts: Counter[str] = Counter()  # changes added by tenant, counted a run at a time

    def add(self, rows: Sequence[Any], found: dict[str, dict[str, tuple[Any, bool, str | None]]],
            in_order: Mapping[tuple[str, str], Iterator[tuple[Any, bool, str | None]]] | None = None) -> None:
        """The changes of ``rows`` (change rows in version order: version, tenant, kind, record id,
        op, instant and the id's 16 bytes on PostgreSQL, None on SQLite), each with its record from ``found``
        (kind -> record id -> (record, retired or voided, id as shown)) or a tombstone; a
        (tenant, kind) in ``in_order`` takes its records from there instead, one a change in
        the changes' order (each change's record found, as the page's records were read:
        no look-up a change). What a run of changes of one (tenant, kind) shares is looked up
        once for the run."""
        instants, shown_grant, deids = self.instants, self.shown_grant, self.deids
        # each instant's text made once; a change's instant compared with the change before's (a
        # batch's changes share one), not hashed a change
        for at, _ in groupby(map(itemgetter(5), rows)):
            if at not in instants:  # naive instants are UTC (PostgreSQL's: cheaper to hash)
                instants[at] = at.isoformat() if at.tzinfo is not None else at.isoformat() + "+00:00"
        last = when = None
        out, counts = self.out, self._counts
        add = out.append
        for (tenant, kind), run in groupby(rows, key=itemgetter(1, 2)):
            before = len(out)
            grant = shown_grant.get(tenant)
            records = in_order.get((tenant, kind)) if in_order else None
            group: Iterable[Any] = run if records is not None else list(run)  # noqa: B031 (one or the other: run is read once)
            if records is None:  # each change's record looked up by its id
                records = map(_looked_up(found.get(kind, {}), deids.get(tenant), tenant, kind), map(itemgetter(3), group))
            # the changes first: zip stops at their end without taking a record of ``in_order``'s next run
            for (seq, _tenant, _kind, _record_id, op, at, _raw), (doc, dead, rid) in zip(group, records, strict=False):
                if op == "deleted":
                    dead = True
                if at != last:
                    last, when = at, instants[at]
                add({"version": seq, "tenant": tenant, "kind": kind, "id": rid, "op": op, "at": when, "tombstone": dead,
                     "grant": grant, "record": None if dead else doc})
            counts[tenant] += len(out) - before

    def counts(self) -> dict[str, int]:
        """Changes read by grantor tenant (those read under a grant only)."""
        return {t: n for t, n in self._counts.items() if self.shown_grant.get(t) is not None}


__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "SCOPE", "ChangeFeed", "FeedPage", "Reader"]
