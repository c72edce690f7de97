"""Engines and column types shared by every table.

SQLite (WAL, foreign keys on) is the embedded default; PostgreSQL through psycopg 3 is
the production store. Both run the same migrations and the same test suite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.types import TypeDecorator

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


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    """Create the engine for ``url`` with the settings each backend needs."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})
        _configure_sqlite(engine, in_memory=parsed.database in (None, "", ":memory:"))
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
        if not in_memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA cache_size=-65536")  # 64 MiB: a bulk batch stays in memory until commit
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("tessera_write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class BulkStatement:
    """An INSERT (or upsert) run as one driver-level executemany.

    SQLAlchemy's Core executemany builds a parameter dict per row through its compiler;
    on the bulk import path that costs more than SQLite itself. This compiles the
    statement once per dialect, takes each column's own bind processor (so UUIDs and
    timestamps are stored exactly as the Core types store them) and hands the driver
    ready tuples or dicts.
    """

    def __init__(self, stmt: Any, dialect: Any, columns: list[str]) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=columns)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        names = list(compiled.positiontup) if self.positional else list(compiled.binds)
        table = stmt.table
        self.names = [n for n in names if n in table.c]
        unknown = set(names) - set(self.names)
        if unknown:
            raise ValueError(f"bulk statement has non-column parameters {sorted(unknown)}")
        self.procs = [(i, table.c[n].type.dialect_impl(dialect).bind_processor(dialect)) for i, n in enumerate(self.names)]
        self.procs = [(i, _memo(p)) for i, p in self.procs if p is not None]

    def execute(self, conn: Any, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        names, procs = self.names, self.procs
        params: list[Any] = []
        for r in rows:
            vals = [r[n] for n in names]
            for i, p in procs:
                vals[i] = p(vals[i])
            params.append(tuple(vals) if self.positional else dict(zip(names, vals)))
        conn.exec_driver_sql(self.sql, params)


def _memo(proc: Any) -> Any:
    """A bind processor that remembers its last input: a batch stamps every row with the
    same timestamp and batch id, so most calls repeat the previous one."""
    last: list[Any] = [object(), None]

    def run(v: Any) -> Any:
        if v is last[0]:
            return last[1]
        out = proc(v)
        last[0], last[1] = v, out
        return out

    return run
