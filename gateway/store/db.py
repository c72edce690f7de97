"""Engines and column types shared by every table.

SQLite (WAL, foreign keys on) is the embedded default; PostgreSQL through psycopg 3 is
the production store. Both run the same migrations and the same test suite.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from sqlalchemy import DateTime, Engine, Enum, LargeBinary, String, Table, Text, Uuid, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.types import TypeDecorator

from ..model.base import uuid_from_int
from .pg_arrays import text_array, uuid_array
from .sqlite_writers import CHECKPOINT_BACKSTOP, _WriterQueueConnection
from .sqlite_writers import checkpointer as checkpointer  # re-exported: callers name it here

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
            try:
                dbapi_conn.queue_for_write()
            except sqlite3.OperationalError as e:  # as SQLAlchemy reports SQLite's own busy timeout at BEGIN
                raise OperationalError("BEGIN IMMEDIATE", (), e) from e
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
    * PostgreSQL: ``INSERT ... SELECT ... FROM unnest(...)``, one array parameter per
      column, so the statement text and its plan are the same for every batch. psycopg
      adapts a list element by element in Python, so the arrays go in the form that costs
      least to build (``pg_arrays``): a uuid column as ONE pre-built binary ``uuid[]``, a
      short text one (``String``: names, hashes, statuses) as ONE array text
      (``%s::VARCHAR(64)[]``), quoted so that every value arrives as it is; documents
      (``Text``), numbers, booleans and timestamps as a binary list (``%b``). The ``same``
      columns, which the caller promises hold one value in every row (the tenant, the batch
      id, the commit time), are sent once, the first row's, as a scalar.

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
        same: Sequence[str] = (),
    ) -> None:
        unknown = [c for c in columns if c not in table.c]
        if unknown:
            raise ValueError(f"bulk statement has non-column parameters {sorted(unknown)}")
        if not set(same) <= set(columns):
            raise ValueError(f"bulk statement's shared columns {sorted(set(same) - set(columns))} are not among its columns")
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
            self._same = [i for i, c in enumerate(self.columns) if c in same]
            self._arrays: list[tuple[int, Callable[[Sequence[Any]], Any]]] = []
            casts: list[str] = []
            for i, c in enumerate(self.columns):
                if c in same:
                    continue
                kind = _pg_array_kind(table.c[c].type)
                self._arrays.append((i, _PG_ENCODE[kind]))
                casts.append(f"{'%s' if kind == 'text' else '%b'}::{table.c[c].type.compile(dialect=dialect)}[]")
            select = ", ".join(
                f"CAST(%s AS {table.c[c].type.compile(dialect=dialect)})" if c in same else f"u.{quote(c)}" for c in self.columns
            )
            names = ", ".join(quote(c) for c in self.columns if c not in same)
            self._sql[0] = f"{head}SELECT {select} FROM unnest({', '.join(casts)}) AS u({names}){tail}"
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
                params = [part[c] for c in self._same]
                params.extend([encode(part[c::w]) for c, encode in self._arrays])
                conn.exec_driver_sql(self._sql[0], tuple(params))
            return
        i = 0
        for size in power_of_two_sizes(n, self.rows_per_statement):
            conn.exec_driver_sql(self.sql(size), tuple(values) if size == n else tuple(values[i * w : (i + size) * w]))
            i += size


def _pg_array_kind(column_type: Any) -> str:
    """How ``BulkStatement`` sends a column's array on PostgreSQL: ``uuid`` or ``text`` (array
    text, ``pg_arrays``) or ``binary`` (a list psycopg dumps in binary)."""
    if isinstance(column_type, UUIDType):
        return "uuid"
    if isinstance(column_type, String) and not isinstance(column_type, (Text, Enum)):
        return "text"
    return "binary"


def _as_list(values: Sequence[Any]) -> Any:
    return values


_PG_ENCODE: dict[str, Callable[[Sequence[Any]], Any]] = {"uuid": uuid_array, "text": text_array, "binary": _as_list}
