"""Engines and column types shared by every table.

SQLite (WAL, foreign keys on) is the embedded default; PostgreSQL through psycopg 3 is
the production store. Both run the same migrations and the same test suite.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from sqlalchemy import DateTime, Engine, LargeBinary, Table, Uuid, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.types import TypeDecorator

from ..model.base import uuid_from_int

#: Execution option that makes a SQLite transaction take the write lock at BEGIN.
#: A deferred transaction that reads, then writes, fails with SQLITE_BUSY at once if
#: another writer committed in between; BEGIN IMMEDIATE waits (busy_timeout) instead.
WRITE = {"tessera_write": True}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware timestamps on both engines.

    PostgreSQL keeps ``timestamptz``. SQLite has no time zones: values are stored as
    naive UTC in SQLAlchemy's fixed-width ISO format, which sorts correctly as text,
    and come back aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UUIDType(TypeDecorator[uuid.UUID]):
    """UUIDs as PostgreSQL's native ``uuid``, and as 16-byte BLOBs on SQLite.

    SQLAlchemy's own ``Uuid`` keeps 32-character hex text on SQLite. Half the bytes
    makes every primary key, foreign id and index entry that holds one half as big,
    which on the bulk import path means fewer B-tree pages to write at each commit.
    Byte order is the UUID's own order on both engines (SQLite compares BLOBs with
    memcmp, PostgreSQL compares uuid bytes the same way), so keyset cursors that
    compare ids behave alike. Python code sees ``uuid.UUID`` either way.
    """

    impl = Uuid
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(LargeBinary(16))
        return dialect.type_descriptor(Uuid())

    def bind_processor(self, dialect: Any) -> Callable[[Any], Any] | None:
        # Overridden whole (not process_bind_param): sqlite3 takes bytes as they are, so
        # the LargeBinary processor's memoryview wrapper would only cost time.
        if dialect.name != "sqlite":
            return self.impl_instance.dialect_impl(dialect).bind_processor(dialect)
        return uuid_to_sqlite

    def result_processor(self, dialect: Any, coltype: Any) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return self.impl_instance.dialect_impl(dialect).result_processor(dialect, coltype)
        return uuid_from_sqlite

    def process_literal_param(self, value: Any, dialect: Any) -> str:
        if dialect.name == "sqlite":
            return f"X'{_as_uuid(value).hex}'"
        return f"'{_as_uuid(value)}'"

    @property
    def python_type(self) -> type:
        return uuid.UUID


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def uuid_to_sqlite(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return value.bytes
    return _as_uuid(value).bytes


def uuid_from_sqlite(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    if isinstance(value, (bytes, memoryview)) and len(value) == 16:
        return uuid_from_int(int.from_bytes(value, "big"))  # the id columns' hot path on SQLite
    return uuid.UUID(value)  # text written by hand (e.g. a test fixture); tolerated


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    """Create the engine for ``url`` with the settings each backend needs."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # LIFO: the connection used last is handed out next. Each pooled SQLite connection
        # has its own page cache, and a commit by another connection empties it; FIFO hands
        # out the connection that has been idle longest, whose cache is the stalest.
        # 20 kept, 20 more on demand: a connection beyond the kept ones is closed when it is
        # returned, and opening one (the pragmas below, reading the schema) cost ~1 ms. With
        # SQLAlchemy's default of 5, sixteen LTI AGS clients made the server open a connection
        # for most requests: 15 % of its CPU. An idle connection costs only what its cache holds.
        in_memory = parsed.database in (None, "", ":memory:")  # one connection per thread: no queue to size
        sizing = {} if in_memory else {"pool_use_lifo": True, "pool_size": max(pool_size, 20), "max_overflow": 20}
        connect_args: dict[str, Any] = {"timeout": 30}
        if not in_memory:
            connect_args["factory"] = _WriterQueueConnection
        engine = create_engine(url, echo=echo, connect_args=connect_args, **sizing)
        _configure_sqlite(engine, in_memory=in_memory)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite:// or postgresql+psycopg://")


#: whether this thread holds the writer queue of ``_WriterQueueConnection``
_queued_here = threading.local()


class _WriterQueueConnection(sqlite3.Connection):
    """A SQLite connection whose write transactions queue on a lock file before BEGIN IMMEDIATE.

    SQLite's own wait for its write lock (``busy_timeout``) polls: the waiter sleeps 1, 2,
    5, 10, 15, 20, 25, 25, ... 100 ms between tries, so when the writer in another process
    (``tessera serve --workers 2``) commits, the lock can sit free for up to tens of
    milliseconds while the next writer sleeps on. ``flock`` on ``<database>-writer`` wakes
    the next writer the moment the lock file is released, after COMMIT or ROLLBACK: the
    write lock passes from writer to writer without idle gaps. Each connection has its own
    open file, so connections of one process queue on it as connections of different
    processes do. SQLite's own lock stays the authority (a writer that does not queue here,
    such as a deferred transaction that starts writing, still takes it as before); the lock
    file only orders the writers that do. Measured on the xAPI ingest (two workers, four
    clients, with ``GroupCommit`` taking its group once the lock is held): 5,431 and 5,650
    statements/s with the lock file, 4,668 and 4,792 without."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._database = os.fsdecode(database)
        self._queue_path = f"{self._database}-writer"
        self._queue_fd: int | None = None
        self._queued = False

    def queue_for_write(self) -> None:
        # A thread already queued through another connection would wait for itself, for
        # ever: that write (which SQLite's busy timeout turns into an error after 30 s, as
        # it did before the queue) skips the queue.
        if getattr(_queued_here, "held", False):
            return
        if self._queue_fd is None:
            self._queue_fd = os.open(self._queue_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._queue_fd, fcntl.LOCK_EX)  # blocks without the GIL
        self._queued = _queued_here.held = True

    def leave_queue(self) -> None:
        if self._queued:
            self._queued = _queued_here.held = False
            fcntl.flock(self._queue_fd, fcntl.LOCK_UN)  # type: ignore[arg-type]

    def commit(self) -> None:
        wrote = self._queued
        try:
            super().commit()
        finally:
            self.leave_queue()
        if wrote:
            checkpointer(self._database).committed()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave_queue()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.leave_queue()
            if self._queue_fd is not None:
                os.close(self._queue_fd)
                self._queue_fd = None


#: WAL frames past which a commit checkpoints itself (SQLite's ``wal_autocheckpoint``): a
#: backstop, should the checkpoint thread fall behind (a reader that never lets go)
CHECKPOINT_BACKSTOP = 16_000


class _Checkpointer:
    """Checkpoints one database's WAL in a thread of this process, off every request's path.

    SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, so that
    committer paid for copying the WAL into the database and fsyncing it, and with the writer
    queue (``_WriterQueueConnection``) still held, every other writer of every process waited
    for it too: on the xAPI ingest those were among the slowest batches (the p99). Here a
    write's commit only wakes this thread, which checkpoints at most every ``INTERVAL``
    seconds while commits keep coming, on a connection of its own opened for it (``mode=rw``:
    a database deleted meanwhile is not created again), and ends after ``IDLE`` seconds
    without a write (the next one starts it again):

    1. PASSIVE checkpoints (they wait for no reader and no writer: writers go on appending to
       the WAL meanwhile) until what is left to copy is under ``LEFT`` frames, at most
       ``PASSES`` times; this is the bulk of the copying and the fsyncs, and nobody waits;
    2. one more, holding the writer queue (queued behind the writers already waiting; when
       that took over ``WAITED`` seconds, what they appended is copied unheld first, and the
       thread queues again), which copies the few frames appended meanwhile:
       the WAL is then wholly in the database, so the next writer starts it again from the
       beginning (a WAL that writers keep appending to while it is checkpointed is never
       wholly copied, and would grow without bound; measured: 250 MiB over 60,000 xAPI
       statements without this step).

    The pause between checkpoints adapts (``SHORTEST`` to ``INTERVAL``) so that each finds
    about ``FRAMES`` frames: hot index pages are still copied once per checkpoint, not once
    per commit, as with the 4,000-frame threshold before."""

    INTERVAL = 1.0  # the longest pause between two checkpoints
    SHORTEST = 0.05  # the shortest
    FRAMES = 4_000  # the WAL frames a checkpoint aims at (the pause adapts to the write rate): fewer copies of hot pages
    IDLE = 5.0
    LEFT = 256  # frames appended during a pass below which the next pass may hold the writer queue
    PASSES = 4
    WAITED = 0.05  # seconds waited for the writer queue past which its holder's frames are copied first, unheld

    def __init__(self, path: str) -> None:
        self.path = path
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._running = False
        self.checkpoints = 0  # how many ran (tests)
        self.frames = 0  # WAL frames the last one found

    def committed(self) -> None:
        self._wake.set()
        if self._running:
            return
        with self._lock:
            if not self._running:
                self._running = True
                try:
                    threading.Thread(target=self._run, name="tessera-sqlite-checkpoint", daemon=True).start()
                except RuntimeError:  # no thread to be had: the commit stands (SQLite's backstop checkpoints), the next one tries again
                    self._running = False

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException:  # whatever ended it, the next commit starts another
            with self._lock:
                self._running = False
            raise

    def _loop(self) -> None:
        pause = self.INTERVAL
        while True:
            if not self._wake.wait(self.IDLE):
                with self._lock:
                    if not self._wake.is_set():
                        self._running = False  # under the lock: a commit now starts a new thread
                        return
            self._wake.clear()
            self.checkpoint()
            # about ``FRAMES`` frames a checkpoint: a shorter pause when the WAL grew faster
            if self.frames > 2 * self.FRAMES:
                pause = max(self.SHORTEST, pause / 2)
            elif self.frames < self.FRAMES // 2:
                pause = min(self.INTERVAL, pause * 2)
            time.sleep(pause)

    def _passes(self, conn: sqlite3.Connection, seen: int) -> tuple[bool, int]:
        """PASSIVE checkpoints until one finds fewer than ``LEFT`` frames it had not seen (at most
        ``PASSES``): (whether another checkpoint was under way, the WAL's frames)."""
        for _ in range(self.PASSES):
            busy, log, _done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if busy or log <= 0:
                return bool(busy), 0
            fresh, seen = log - seen, log
            if fresh < self.LEFT:  # this pass had few frames to copy: the next has fewer
                break
        return False, seen

    def checkpoint(self) -> None:
        """Checkpoint now, in the caller's thread (the class docstring's two steps)."""
        try:
            conn = sqlite3.connect(f"file:{urllib.parse.quote(self.path)}?mode=rw", uri=True, timeout=0, isolation_level=None)
        except sqlite3.Error:
            return  # the database is gone
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            busy, seen = self._passes(conn, 0)
            self.frames = seen
            if not busy and seen > 0:
                queue = os.open(f"{self.path}-writer", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    for attempt in range(3):
                        asked = time.perf_counter()
                        fcntl.flock(queue, fcntl.LOCK_EX)  # behind the writers already queued; blocks without the GIL
                        if time.perf_counter() - asked > self.WAITED and attempt < 2:
                            # a long transaction went first (a merge of the xAPI index tiers): copy what it
                            # appended without holding everyone up, then queue again
                            fcntl.flock(queue, fcntl.LOCK_UN)
                            busy, seen = self._passes(conn, seen)
                            if busy:
                                break
                            continue
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        break
                finally:
                    try:  # let go explicitly: a child forked meanwhile holds a copy of this file, and
                        fcntl.flock(queue, fcntl.LOCK_UN)  # the lock would last while that copy is open
                    finally:
                        os.close(queue)
            self.checkpoints += 1
        except (sqlite3.Error, OSError):
            pass  # busy (another process checkpoints), not in WAL mode, or gone: the next commit wakes it again
        finally:
            conn.close()


_CHECKPOINTERS: dict[str, _Checkpointer] = {}
_CHECKPOINTERS_LOCK = threading.Lock()


def _forgotten_in_child() -> None:
    """A forked process has none of its parent's threads: it starts its own checkpointers (a
    handle copied from the parent would say its thread runs, and no checkpoint would ever run)."""
    global _CHECKPOINTERS_LOCK
    _CHECKPOINTERS.clear()
    _CHECKPOINTERS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forgotten_in_child)


def checkpointer(path: str) -> _Checkpointer:
    """The checkpoint thread's handle of the database file ``path`` in this process."""
    found = _CHECKPOINTERS.get(path)
    if found is None:
        with _CHECKPOINTERS_LOCK:
            found = _CHECKPOINTERS.setdefault(path, _Checkpointer(path))
    return found


def _configure_sqlite(engine: Engine, *, in_memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # 16 KiB pages (SQLite's default is 4 KiB) for a new database; a no-op for an
        # existing one. A record row is ~1 KiB of JSON, so a bulk commit writes several
        # thousand pages: a quarter as many page frames (headers, checksums, WAL index
        # entries) to write and checkpoint, and shallower B-trees.
        cur.execute("PRAGMA page_size=16384")
        if not in_memory:
            cur.execute("PRAGMA journal_mode=WAL")
            # Checkpoints run in a thread of their own (``_Checkpointer``), not in the commit
            # that crosses the threshold: that commit held the writer queue (and so every
            # writer of every process) for the whole copy and fsync, the p99 of the xAPI
            # ingest. What SQLite would do itself stays as a backstop, far above what the
            # thread lets the WAL reach (16,000 frames, 256 MiB; it was 4,000, itself chosen
            # over SQLite's 1,000 because the hot index pages rewritten commit after commit
            # are copied once per checkpoint: 166-188 -> 109-112 us of commit a statement).
            cur.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_BACKSTOP}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        # Each pooled connection has a page cache of its own, and a serving process pools up to
        # 40: at 64 MiB each, the caches of connections that only read filled up over a long
        # ingest (1.6 GB peak RSS over 200,000 xAPI statements, two workers). Clean pages are
        # now kept up to 16 MiB a connection; dirty ones up to 4,096 pages (64 MiB at 16 KiB)
        # before SQLite spills them to the WAL mid-transaction: the number of cached pages
        # must exceed both limits to spill, so a bulk batch still stays in memory until commit.
        cur.execute("PRAGMA cache_size=-16384")
        cur.execute("PRAGMA cache_spill=4096")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if not conn.get_execution_options().get("tessera_write"):
            conn.exec_driver_sql("BEGIN")
            return
        dbapi_conn = conn.connection.dbapi_connection
        if isinstance(dbapi_conn, _WriterQueueConnection):
            dbapi_conn.queue_for_write()
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if isinstance(dbapi_conn, _WriterQueueConnection):
                dbapi_conn.leave_queue()
            raise


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_max_params() -> int:
    """SQLITE_MAX_VARIABLE_NUMBER of the SQLite library Python links (32766 by default since
    3.32, 999 before; distributions often build with more)."""
    try:
        conn = sqlite3.connect(":memory:")
        try:
            return int(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        finally:
            conn.close()
    except (AttributeError, sqlite3.Error):  # pragma: no cover - Python < 3.11
        return 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


#: Most bound parameters one statement may carry: SQLite's limit (see above) and
#: PostgreSQL's protocol limit (65535).
SQLITE_MAX_PARAMS = _sqlite_max_params()
POSTGRES_MAX_PARAMS = 65535


#: keys one ``sqlite_in`` part carries at most: a power of two that leaves room, within
#: SQLite's limit, for the statement's other parameters
SQLITE_IN_KEYS = 1 << (min(4096, SQLITE_MAX_PARAMS - 1).bit_length() - 1)


def sqlite_in(column: str, keys: Sequence[Any], per: int = SQLITE_IN_KEYS) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """``column IN (?, ...)`` over ``keys`` on SQLite, ``per`` keys a part at most, each part
    padded with repeats of its first key to a power of two (at least 16): repeats change
    nothing in IN, and the driver compiles (and caches) few distinct statement texts."""
    for i in range(0, len(keys), per):
        chunk = list(keys[i : i + per])
        size = max(16, 1 << (len(chunk) - 1).bit_length())
        chunk.extend([chunk[0]] * (size - len(chunk)))
        yield f"{column} IN ({', '.join(['?'] * size)})", tuple(chunk)


def max_params(dialect: Any) -> int:
    return SQLITE_MAX_PARAMS if dialect.name == "sqlite" else POSTGRES_MAX_PARAMS


def placeholder(dialect: Any) -> str:
    """The driver's positional placeholder: ``?`` (sqlite3) or ``%s`` (psycopg)."""
    if dialect.paramstyle == "qmark":
        return "?"
    if dialect.paramstyle in ("format", "pyformat"):
        return "%s"
    raise ValueError(f"unsupported DB-API paramstyle {dialect.paramstyle!r}")


def bind_processor(table: Table, column: str, dialect: Any) -> Callable[[Any], Any] | None:
    """The column type's own bind processor: how SQLAlchemy itself would store a value."""
    return table.c[column].type.dialect_impl(dialect).bind_processor(dialect)


def power_of_two_sizes(n: int, top: int) -> list[int]:
    """Split ``n`` rows into statements of ``top`` rows (a power of two), then the binary
    digits of the rest: 10,000 with ``top`` 4096 is 4096, 4096, 1024, 512, 256, 16."""
    sizes = [top] * (n // top)
    n %= top
    size = top >> 1
    while n:
        if n >= size:
            sizes.append(size)
            n -= size
        size >>= 1
    return sizes


class BulkStatement:
    """An INSERT (or upsert) of many rows in a few statements, not one per row.

    SQLAlchemy's Core executemany builds a parameter dict per row through its compiler,
    and a driver executemany runs every row as a statement of its own (sqlite3 also
    releases and re-takes the GIL for each, and a thread that wants the GIL back while
    another runs Python may wait the whole switch interval, 5 ms, every time). On the
    bulk import path both cost more than the database itself. Instead:

    * SQLite: ``INSERT ... VALUES (...), (...), ...`` with up to ``MAX_ROWS`` rows (within
      the library's parameter limit) per statement, so SQLite works on thousands of rows
      per call with the GIL released (``RecordStore.apply_stream`` prepares the next batch
      meanwhile). A statement is compiled once per distinct text and kept in the
      connection's statement cache, and a big one takes milliseconds to compile and MiB
      to keep: so statements only come in power-of-two sizes (``power_of_two_sizes``), at
      most log2(MAX_ROWS) + 1 texts per table however batch sizes vary, each compiled once.
    * PostgreSQL: ``INSERT ... SELECT * FROM unnest(%b::type[], ...)``, one binary array
      parameter per column, so the statement text and its plan are the same for every
      batch and psycopg adapts whole columns at once.

    Both then take ``ON CONFLICT (key) DO UPDATE SET c = excluded.c`` for an upsert.
    ``execute_flat`` takes the rows as ONE flat list, row after row, each in ``columns``
    order, holding values as the driver stores them: run a value through
    ``procs[column]`` (the column type's bind processor; None where there is none) when
    it has one. ``execute`` takes a list of row tuples.
    """

    MAX_ROWS = 4096  # per SQLite statement (a power of two)
    MAX_ROWS_UNNEST = 20000  # per PostgreSQL statement; bounds the size of one message

    def __init__(
        self,
        table: Table,
        columns: Sequence[str],
        dialect: Any,
        *,
        conflict: Sequence[str] = (),
        keep: Sequence[str] = (),
    ) -> None:
        unknown = [c for c in columns if c not in table.c]
        if unknown:
            raise ValueError(f"bulk statement has non-column parameters {sorted(unknown)}")
        quote = dialect.identifier_preparer.quote
        self.columns = list(columns)
        self.width = len(self.columns)
        self.procs = {c: bind_processor(table, c, dialect) for c in columns}
        self._unnest = dialect.name == "postgresql"
        head = f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({', '.join(quote(c) for c in columns)}) "
        tail = ""
        if conflict:
            sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns if c not in conflict and c not in keep)
            tail = f" ON CONFLICT ({', '.join(quote(c) for c in conflict)}) DO UPDATE SET {sets}"
        self._sql: dict[int, str] = {}
        if self._unnest:
            # %b: psycopg sends the arrays in binary, so no element needs quoting or escaping
            arrays = ", ".join(f"%b::{table.c[c].type.compile(dialect=dialect)}[]" for c in columns)
            self._sql[0] = f"{head}SELECT * FROM unnest({arrays}){tail}"
            self.rows_per_statement = self.MAX_ROWS_UNNEST
        else:
            self._head = head + "VALUES "
            self._group = "(" + ", ".join([placeholder(dialect)] * self.width) + ")"
            self._tail = tail
            fit = max(1, min(self.MAX_ROWS, max_params(dialect) // self.width))
            self.rows_per_statement = 1 << (fit.bit_length() - 1)

    def sql(self, n: int) -> str:
        """The statement for ``n`` rows (on SQLite, ``n`` is a power of two)."""
        if self._unnest:
            return self._sql[0]
        text = self._sql.get(n)
        if text is None:
            text = self._sql[n] = self._head + ", ".join([self._group] * n) + self._tail
        return text

    def execute(self, conn: Any, rows: Sequence[tuple[Any, ...]]) -> None:
        self.execute_flat(conn, list(chain.from_iterable(rows)), len(rows))

    def execute_flat(self, conn: Any, values: list[Any], n: int) -> None:
        if not n:
            return
        w = self.width
        if len(values) != n * w:
            raise ValueError(f"{len(values)} values are not {n} rows of {w} columns")
        if self._unnest:
            step = self.rows_per_statement
            for i in range(0, n, step):
                part = values if n <= step else values[i * w : (i + step) * w]
                conn.exec_driver_sql(self._sql[0], tuple([part[c::w] for c in range(w)]))
            return
        i = 0
        for size in power_of_two_sizes(n, self.rows_per_statement):
            conn.exec_driver_sql(self.sql(size), tuple(values) if size == n else tuple(values[i * w : (i + size) * w]))
            i += size
