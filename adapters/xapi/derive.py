"""Evidence derived just behind the acknowledgement (issue 22; ``TESSERA_XAPI__DERIVE=async``).

In ``inline`` mode (the default) a statement's evidence and the mastery states it moves are
written in the statements' own transaction. In ``async`` mode the LRS acknowledges once the
statements, their index rows, voiding, activity definitions and attachments are durable
(everything the xAPI resources answer from), and marks them ``deferred``; a ``Deriver``, a
consumer of the statement log running in every server process, makes their evidence and
mastery states just behind.

Guarantees:

- **in order, exactly once**: the consumer reads deferred statements in ``seq`` order past a
  durable cursor (``xapi_derive_cursor``) and writes their evidence, the mastery update and
  the cursor's new position in ONE transaction, which moves the cursor only from the
  position it read (compare and set): a batch is derived once whatever the number of
  consumers, and a crash loses nothing (the next consumer starts at the cursor).
- **one consumer at a time**: on SQLite the process holding a lock file next to the
  database (``<database>-xapi-derive``), on PostgreSQL the session holding an advisory lock;
  the other processes stand by and take over when it ends. A database in memory has one
  process anyway.
- **no statement skipped on PostgreSQL**: seqs come from a sequence and transactions commit
  in another order, so the consumer reads only up to a safe seq: every statement writer takes
  a shared transaction-level advisory lock whose key is the sequence's value before its own
  seqs (``guard``), and the consumer stops below the smallest such floor
  (as ``gateway.store.changefeed`` does for the change log).
- **voiding**: a voiding statement voids its target's evidence when it is derived (the
  target's, derived earlier or in the same batch); a statement already voided when it is
  derived gets its evidence voided. Either order ends with the evidence voided.
- **a statement whose evidence the store refuses** (it would change stored evidence, say) is
  retried alone, then logged and passed over (``tessera_xapi_derive_failures_total``) so that
  it never holds back the statements after it. Inline, the LRS refused such a batch. Any
  other failure (the database unreachable or locked) moves nothing: the round is tried
  again a second later.

Rounds: ``batch`` statements (``TESSERA_XAPI__DERIVE_BATCH``) while the consumer keeps up;
while it is behind, doubling up to ``max_batch`` as long as a round is quick
(``Deriver._next_size``): a bigger round costs less a statement, so a consumer that fell
behind catches up sooner, and one that keeps up answers as quickly as before.

Backpressure, when asked for (``TESSERA_XAPI__DERIVE_MAX_LAG``): a request waits before
storing while more statements than that wait for their evidence (``admit``), so that under a
load the consumer cannot follow the LRS slows its acknowledgements instead of letting the
lag grow without bound.

How far it has come: ``/metrics`` (``tessera_xapi_derive_lag_statements``,
``tessera_xapi_derive_lag_seconds``), the ``X-Tessera-Consistent-Through`` header of the
evidence and mastery-state lists, and their ``consistent_through=`` parameter (a time or a
statement id), which waits up to ``TESSERA_XAPI__DERIVE_WAIT_SECONDS`` (``XapiConsistency``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from gateway.errors import TesseraError
from gateway.mastery.engine import paused_collection
from gateway.model import ensure_aware, utcnow
from gateway.routing.metrics import REGISTRY
from gateway.store.db import uuid_from_sqlite
from gateway.store.filelock import FileLock

from .derive_shards import Shards
from .evidence import EvidenceMapper, MappedBatch
from .partitions import where_ids
from .tables import xapi_derive_cursor, xapi_statements

log = logging.getLogger(__name__)

CURSOR = "evidence"
#: statements derived in one transaction while the consumer keeps up (``Deriver.batch``)
BATCH = 250
#: statements derived in one transaction at most while it is behind (``Deriver.max_batch``)
BATCH_MAX = 1000
#: a round that took longer than this (wall seconds) does not grow the next one, and one that
#: took twice as long halves it: a statement waits about two rounds at most
ROUND_SECONDS = 0.5
#: PostgreSQL: the advisory namespace of the statement writers' floors (two-key form: BASE + (floor >> 31), floor & LOW)
FLOOR_BASE = 1_720_000_000
_LOW = (1 << 31) - 1
#: the floor lock a statement writer takes before its seqs (PostgreSQL; the driver's own SQL, as
#: the pipelined writer ``statement_pg`` sends it too), shared, on the sequence's last value
FLOOR_LOCK = ("SELECT pg_advisory_xact_lock_shared(CAST(%(base)s + (v >> 31) AS integer), CAST(v & %(low)s AS integer)) "
              "FROM (SELECT last_value AS v FROM xapi_statements_seq_seq) AS s")
FLOOR_PARAMS = {"base": FLOOR_BASE, "low": _LOW}
#: PostgreSQL: the session advisory lock of the one consumer ("xapi-derive")
CONSUMER_LOCK = 7_244_502_201

FAILURES = Counter("tessera_xapi_derive_failures_total", "Deferred xAPI statements whose evidence could not be written (logged, passed over)",
                   registry=REGISTRY)

_DERIVERS: weakref.WeakSet[Deriver] = weakref.WeakSet()


#: what the store raises for records it refuses (the statement's fault, not the database's)
_REFUSED = (TesseraError, ValueError)


class _Stale(Exception):
    """Another consumer moved the cursor since it was read."""


@dataclass
class _Row:
    seq: int
    tenant: str
    id: str
    body: str
    voided: bool
    deferred: bool
    doc: Any = None  # the body parsed, when a shard parsed it to find its actor


class Deriver:
    """The consumer of one store's deferred statements (module docstring). ``start`` runs it in
    a thread of this process; ``drain`` derives everything committed so far, in the caller's
    thread (tests, the benchmark)."""

    _batch: int
    _size: int

    def __init__(self, store: Any, mapper: EvidenceMapper, *, batch: int = BATCH, poll: float = 0.05, shards: int = 1,
                 consume: bool = True, max_batch: int | None = None) -> None:
        """``consume=False``: this process never derives (``TESSERA_XAPI__DERIVE_IN_SERVER=false`` in
        a server: ``tessera worker`` does); its writers still guard their seqs and wait for the lag.
        ``batch``: statements a round while the consumer keeps up; ``max_batch`` (default the
        larger of ``batch`` and ``BATCH_MAX``): at most, while it is behind (``_next_size``)."""
        self.store = store
        self.consume = consume
        self.engine = store.engine
        self.mapper = mapper
        self.batch = max(1, int(batch))
        self.max_batch = max_batch
        self.poll = poll
        self.postgres = self.engine.dialect.name == "postgresql"
        mark = "%s" if self.postgres else "?"
        self._rows_sql = (f"SELECT seq, tenant, id, body, voided, deferred FROM {xapi_statements.name} "
                          f"WHERE seq > {mark} AND seq <= {mark} ORDER BY seq LIMIT {mark}")
        #: PostgreSQL: consumers split by learner (``derive_shards``); SQLite has one writer anyway
        self.shards = Shards(self, shards, CURSOR) if self.postgres and shards > 1 else None
        database = self.engine.url.database
        self._file_lock = FileLock(f"{database}-xapi-derive") if not self.postgres and database not in (None, "", ":memory:") else None
        self._session: Connection | None = None  # PostgreSQL: holds the consumer lock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._one = threading.Lock()  # one round at a time in this process
        self._started = threading.Lock()
        self._thread: threading.Thread | None = None
        self._waiting_at, self._waiting_n = -1.0, 0
        _DERIVERS.add(self)

    # --- the writers' side ----------------------------------------------------------------------

    def guard(self, conn: Connection) -> None:
        """In a statement writer's transaction, before it takes seqs (PostgreSQL; nothing on SQLite)."""
        if self.postgres:
            conn.exec_driver_sql(FLOOR_LOCK, FLOOR_PARAMS)

    def admit(self, max_lag: int, timeout: float) -> None:
        """Backpressure (``TESSERA_XAPI__DERIVE_MAX_LAG``): before a writer stores more, wait
        while more than ``max_lag`` statements wait for their evidence, at most ``timeout``
        seconds; then go on anyway (a stopped consumer never stops the LRS)."""
        if max_lag <= 0:
            return
        deadline = time.monotonic() + timeout
        while self._waiting() > max_lag and time.monotonic() < deadline:
            self.notify()
            time.sleep(0.02)

    def _waiting(self) -> int:
        """Statements stored past the cursor, read at most every 50 ms (shared by the request threads)."""
        now = time.monotonic()
        if now - self._waiting_at > 0.05:
            with self.engine.connect() as conn:
                self._waiting_n = int(conn.scalar(select(func.max(xapi_statements.c.seq))) or 0) - self._cursor(conn)
            self._waiting_at = now
        return self._waiting_n

    def notify(self) -> None:
        """Statements were committed: derive now (starting the consumer on first use)."""
        if self._thread is None and self.consume:
            self.start()
        self._wake.set()

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        if not self.consume:
            return
        with self._started:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="tessera-xapi-derive", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._thread = None
        self._resign()

    def _elected(self) -> bool:
        if self.shards is not None:
            return self.shards.elect()
        if self._file_lock is not None:
            return self._file_lock.acquire()
        if not self.postgres:
            return True
        if self._session is None:
            conn = self.engine.connect()
            try:
                got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": CONSUMER_LOCK}))
                conn.commit()  # the session lock outlives the transaction
            except Exception:
                conn.close()
                raise
            if not got:
                conn.close()
                return False
            self._session = conn
        return True

    def _resign(self) -> None:
        if self.shards is not None:
            self.shards.resign()
        if self._file_lock is not None:
            self._file_lock.release()
        if self._session is not None:
            try:
                self._session.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": CONSUMER_LOCK})
                self._session.commit()
            except Exception:  # noqa: BLE001 - the lock goes with the connection anyway
                pass
            self._session.close()
            self._session = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self._elected():
                    self._stop.wait(0.5)  # standing by
                    continue
                if self.derive_once():
                    continue
            except Exception:  # noqa: BLE001 - a consumer keeps consuming; the error is logged
                log.exception("deriving evidence of xAPI statements failed; retrying in a second")
                self._resign()
                self._stop.wait(1.0)
                continue
            self._wake.wait(self.poll)
            self._wake.clear()

    # --- deriving ----------------------------------------------------------------------------------

    def drain(self, timeout: float = 60.0) -> int:
        """Derive every statement committed so far, in this thread; the statements looked at."""
        deadline = time.monotonic() + timeout
        total = 0
        while (n := self.derive_once()) and time.monotonic() < deadline:
            total += n
        return total

    def derive_once(self) -> int:
        """One round: the next deferred statements past the cursor, derived and the cursor
        moved in one transaction. The statements it passed (0: caught up). With shards, one
        round of each shard this process holds (taking its share first if it holds none)."""
        if self.shards is not None:
            return self.shards.derive_once()
        return self._derive_from(CURSOR, None)

    def _derive_from(self, name: str, shard: int | None) -> int:
        """A round past cursor ``name``: of every deferred statement, or of those of ``shard``."""
        # the collector waits for the whole round (statements, evidence, states), as the
        # mastery update alone does (``paused_collection``): a fifth of the consumer's CPU
        with self._one, paused_collection():
            began = time.perf_counter()
            size = self._size = max(self.batch, min(self._size, self._ceiling()))
            with self.engine.connect() as conn:
                cursor = self._cursor(conn, name)
                # a shard reads K batches' worth, of which about one batch is its own
                limit = size * (self.shards.count if self.shards is not None and shard is not None else 1)
                safe = self._safe(conn)
                if safe <= cursor:
                    return 0
                # driver SQL, fetched at once: SQLAlchemy's row by row fetch and conversions cost
                # more than the query (ids: 16 bytes on SQLite, a UUID on PostgreSQL)
                rows = [
                    _Row(seq, tenant, str(uuid_from_sqlite(sid) if isinstance(sid, bytes) else sid), body,
                         bool(voided), bool(deferred))
                    for seq, tenant, sid, body, voided, deferred in conn.exec_driver_sql(self._rows_sql, (cursor, safe, limit)).all()
                ]
            upto = rows[-1].seq if len(rows) == limit else safe
            if shard is not None:
                assert self.shards is not None
                rows = self.shards.mine(rows, shard)  # parsed once: the bodies stay on the rows
            try:
                self._write(cursor, upto, self._map(rows), name)
            except _Stale:
                return 1  # another consumer went first: read again
            except _REFUSED:  # a statement's records were refused: find which, statement by statement
                log.warning("deriving %d xAPI statements together failed; deriving them one by one", len(rows), exc_info=True)
                self._one_by_one(cursor, rows, name)
            # anything else (the database unreachable, locked...) propagates: nothing moved, the round is tried again
            self._size = self._next_size(size, behind=upto < safe, took=time.perf_counter() - began)
            return max(1, len(rows))

    @property
    def batch(self) -> int:
        """Statements a round while the consumer keeps up; setting it (a test's smaller rounds)
        also starts the next round from it."""
        return self._batch

    @batch.setter
    def batch(self, n: int) -> None:
        self._batch = n
        self._size = n  # this round's batch (``_next_size``)

    def _ceiling(self) -> int:
        return max(self.batch, self.max_batch if self.max_batch is not None else BATCH_MAX)

    def _next_size(self, size: int, *, behind: bool, took: float) -> int:
        """The next round's batch. Caught up: ``batch``, so that a statement waits no longer
        than a small round takes. Behind (the round left statements waiting): twice this
        one, up to ``max_batch``, while a round takes under ``ROUND_SECONDS``; halved when
        one took twice that. A bigger batch costs less a statement (the reads, the
        transaction and the statements of a round are shared by more of them: measured, about
        a sixth less CPU a statement at 1,000 than at 250), so a consumer that fell behind
        catches up faster, while one that keeps up answers as quickly as before."""
        if not behind:
            return self.batch
        if took > 2 * ROUND_SECONDS:
            return max(self.batch, size // 2)
        if took < ROUND_SECONDS:
            return min(self._ceiling(), size * 2)
        return size

    def _one_by_one(self, cursor: int, rows: list[_Row], name: str = CURSOR) -> None:
        for row in rows:
            try:
                self._write(cursor, row.seq, self._map([row]), name)
            except _Stale:
                return
            except _REFUSED:  # logged, counted and passed over (module docstring)
                log.exception("the evidence of xAPI statement %s (tenant %s) could not be written; passed over", row.id, row.tenant)
                FAILURES.inc()
                self._write(cursor, row.seq, [], name)
            cursor = row.seq

    def _map(self, rows: list[_Row]) -> list[tuple[str, Any, MappedBatch]]:
        """Per tenant, in order of first appearance: the prepared records and the mapper's own rows."""
        by_tenant: dict[str, list[_Row]] = {}
        for r in rows:
            if r.deferred:
                by_tenant.setdefault(r.tenant, []).append(r)
        out = []
        for tenant, mine in by_tenant.items():
            mapped = self.mapper.map(tenant, [r.doc if r.doc is not None else orjson.loads(r.body) for r in mine],
                                     voided=[r.id for r in mine if r.voided])
            out.append((tenant, self.store.records.prepare(tenant, mapped.records), mapped))
        return out

    def _write(self, cursor: int, upto: int, work: list[tuple[str, Any, MappedBatch]], name: str = CURSOR) -> None:
        c = xapi_derive_cursor
        with self.store.records.write_transaction() as conn:
            moved = conn.execute(update(c).where(c.c.name == name, c.c.seq == cursor).values(seq=upto, updated=utcnow()))
            if moved.rowcount != 1:
                raise _Stale
            for tenant, prepared, mapped in work:
                self.store.records.apply(tenant, prepared, within=mapped.write, conn=conn)

    def _cursor(self, conn: Connection, name: str = CURSOR) -> int:
        """How far cursor ``name`` has come. ``CURSOR`` is everything's: with shards, the
        lowest of theirs (``derive_shards.Shards.summarise``)."""
        c = xapi_derive_cursor
        found = conn.scalar(select(c.c.seq).where(c.c.name == name))
        if found is None:
            # No row (emptied tables): from the start. Only deferred statements are derived,
            # and deriving one twice changes nothing (its evidence id is its statement's).
            # A shard's row starts where everything's is (``Shards.elect`` makes them all).
            start = 0 if name == CURSOR else self._cursor(conn, CURSOR)
            with self.store.records.write_transaction() as w:
                upsert = postgresql.insert if self.postgres else sqlite.insert
                w.execute(upsert(c).values(name=name, seq=start, updated=utcnow()).on_conflict_do_nothing(index_elements=["name"]))
            if name == CURSOR:
                return 0
            with self.engine.connect() as fresh:  # another process may have made it first
                return int(fresh.scalar(select(c.c.seq).where(c.c.name == name)) or 0)
        return int(found)

    def _safe(self, conn: Connection) -> int:
        """The highest seq every statement at or below which is committed (or rolled back)."""
        newest = int(conn.scalar(select(func.max(xapi_statements.c.seq))) or 0)
        if not self.postgres:
            return newest
        floor = conn.scalar(text(
            "SELECT min(((l.classid::bigint - :base) << 31) | l.objid::bigint) FROM pg_locks AS l "
            "WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted "
            "AND l.classid::bigint >= :base AND l.classid::bigint < :base + 1000000 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ), {"base": FLOOR_BASE})
        return newest if floor is None else min(newest, int(floor))

    # --- how far ------------------------------------------------------------------------------------

    def lag(self) -> tuple[int, float]:
        """(statements committed past the cursor, seconds since the oldest of them was stored)."""
        s = xapi_statements
        with self.engine.connect() as conn:
            cursor = self._cursor(conn)
            newest = int(conn.scalar(select(func.max(s.c.seq))) or 0)
            oldest = conn.scalar(select(s.c.stored).where(s.c.seq > cursor).order_by(s.c.seq).limit(1))
        if oldest is None:
            return 0, 0.0
        return max(0, newest - cursor), max(0.0, (utcnow() - _aware(oldest)).total_seconds())


def _aware(value: datetime) -> datetime:
    aware = ensure_aware(value)
    assert aware is not None
    return aware


class XapiConsistency:
    """``gateway.store.evidence.Consistency`` of the LRS: how far the evidence of its statements
    is derived (always complete inline, ``deriver`` None)."""

    def __init__(self, store: Any, deriver: Deriver | None, *, wait_seconds: float = 5.0, poll: float = 0.02) -> None:
        self.engine = store.engine
        self.deriver = deriver
        self.wait_seconds = wait_seconds
        self.poll = poll

    def consistent_through(self, tenant: str) -> datetime | None:
        with self.engine.connect() as conn:
            return self._through(conn, tenant)

    def _through(self, conn: Connection, tenant: str) -> datetime | None:
        """Just before the oldest statement still waiting; with none, the newest stored."""
        s = xapi_statements
        if self.deriver is not None:
            cursor = self.deriver._cursor(conn)
            oldest = conn.scalar(select(func.min(s.c.stored)).where(s.c.seq > cursor, s.c.tenant == tenant, s.c.deferred.is_(True)))
            if oldest is not None:
                return _aware(oldest) - timedelta(milliseconds=1)  # stored is to the millisecond
        newest = conn.scalar(select(func.max(s.c.stored)).where(s.c.tenant == tenant))
        return _aware(newest) if newest is not None else None

    def wait(self, tenant: str, target: str) -> tuple[bool, datetime | None]:
        check = self._check(tenant, target)
        deadline = time.monotonic() + self.wait_seconds
        while True:
            with self.engine.connect() as conn:
                done = check(conn)
                if done or time.monotonic() >= deadline:
                    return done, self._through(conn, tenant)
            if self.deriver is not None:
                self.deriver.notify()
            time.sleep(self.poll)

    def _check(self, tenant: str, target: str) -> Any:
        """A test ``conn -> bool`` for a target: a statement id, or a time (ISO 8601)."""
        s = xapi_statements
        try:
            sid: uuid.UUID | None = uuid.UUID(target)
        except ValueError:
            sid = None
        if sid is not None:
            with self.engine.connect() as conn:
                row = conn.execute(select(s.c.seq, s.c.deferred).where(where_ids(conn, tenant, [sid]))).first()
            if row is None:
                raise ValueError(f"no statement {target} is stored")
            seq, deferred = int(row.seq), bool(row.deferred)
            return lambda conn: not deferred or self.deriver is None or self.deriver._cursor(conn) >= seq
        try:
            at = ensure_aware(datetime.fromisoformat(target.replace("Z", "+00:00")))
        except ValueError:
            raise ValueError("must be a statement id or an ISO 8601 date-time, e.g. 2026-09-01T00:00:00Z") from None
        if self.deriver is None:
            return lambda conn: True

        def reached(conn: Connection) -> bool:
            cursor = self.deriver._cursor(conn)  # type: ignore[union-attr]
            return conn.execute(select(s.c.seq).where(s.c.seq > cursor, s.c.tenant == tenant, s.c.deferred.is_(True),
                                                      s.c.stored <= at).limit(1)).first() is None

        return reached


class _LagCollector:
    """``/metrics``: the lag of this process's derivers (the largest), read from the store at each scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        statements = GaugeMetricFamily("tessera_xapi_derive_lag_statements",
                                       "xAPI statements acknowledged whose evidence is not derived yet (TESSERA_XAPI__DERIVE=async)")
        seconds = GaugeMetricFamily("tessera_xapi_derive_lag_seconds",
                                    "Seconds since the oldest xAPI statement whose evidence is not derived yet was stored")
        worst = (0, 0.0)
        for d in _live():
            try:
                n, age = d.lag()
            except Exception:  # noqa: BLE001 - a scrape never fails for one store
                continue
            worst = (max(worst[0], n), max(worst[1], age))
        statements.add_metric([], worst[0])
        seconds.add_metric([], worst[1])
        yield statements
        yield seconds

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


def derivers_of(store: Any) -> list[Deriver]:
    """The derivers built for ``store`` in this process (tests drain and stop them)."""
    return [d for d in list(_DERIVERS) if d.store is store]


def _live() -> list[Deriver]:
    return list(_DERIVERS)


_COLLECTOR_LOCK = threading.Lock()
_collector: _LagCollector | None = None


def register_metrics() -> None:
    """Register the lag gauges on the routing registry (``/metrics``), once per process."""
    global _collector
    with _COLLECTOR_LOCK:
        if _collector is None:
            _collector = _LagCollector()
            REGISTRY.register(_collector)


__all__ = ["BATCH", "Deriver", "XapiConsistency", "derivers_of", "register_metrics"]
