"""What an export reads: the query of one tenant's records of one kind (or of those changed
since a version), streamed batch by batch (``_batches``), and the settings of the export's
transaction on PostgreSQL (``READ_SETTINGS``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, literal, select, tuple_

from ..store.tables import RECORD_TABLES, changes

#: rows per Parquet row group / per batch converted at once
BATCH_ROWS = 20_000
#: rows per ``FETCH`` from PostgreSQL's cursor: a batch is read in a few of them, each result
#: small enough to stay in the processor's cache (measured reading alone: 0.6 instead of
#: 0.7-0.9 µs of CPU a row, and the exporting process's peak RSS 300 instead of 330 MiB)
FETCH_ROWS = 2_000


#: The export's transaction on PostgreSQL. A scan of one tenant's records gains nothing from
#: compiling its plan (JIT: tens of ms a query). And it reads the tenant's rows through the
#: tenant's index (a bitmap heap scan: the pages holding them, in the table's order), never
#: the whole table: every tenant's rows share one table, and for a tenant with a tenth of
#: them PostgreSQL's estimate prefers a sequential scan of all of it. At 20 million evidence
#: items (10 districts, each loaded in turn) that read 2.2 million pages (17 GB, 48.7 s) for
#: 2 million rows where the index's bitmap read 224,000 (4.0 s). Where districts' rows are
#: interleaved page by page, the bitmap reads about every page, as the sequential scan did.
#:
#: Its pages are read in the table's order, so the operating system's own read-ahead (which
#: follows a file read forward) brings the next ones in; PostgreSQL's prefetching of a bitmap
#: heap scan (``effective_io_concurrency`` pages ahead, 1 by default) adds a ``posix_fadvise``
#: call for every page not in its shared buffers, i.e. nearly every page of a table larger
#: than them, cached by the operating system or not, each a read request of one page of its
#: own when it is not. Measured on the full-size export (20 million evidence items, 26 GB on a
#: 24 GB machine, ``bench/state.py --exports manyparts``, alternated, 2026-12-07): the
#: database's CPU a row 1.41 and 1.44 µs with it off against 1.74 and 1.90 with the default,
#: 245,123 and 239,898 rows/s against 223,855 and 202,617; ``perf`` had the calls at 3 % of
#: the machine's CPU (the request to the virtual disk, one a page, the largest part). So an
#: export turns it off (0) for its transaction; ``TESSERA_EXPORT_IO_CONCURRENCY`` sets another
#: value (storage whose reads are slow and parallel, where rows of many tenants interleave and
#: the pages read are far apart, may gain from prefetching), or, empty, leaves the server's.
IO_CONCURRENCY_ENV = "TESSERA_EXPORT_IO_CONCURRENCY"


def _read_settings() -> tuple[str, ...]:
    io = os.environ.get(IO_CONCURRENCY_ENV, "0").strip()
    if io and not io.isdigit():
        raise ValueError(f"{IO_CONCURRENCY_ENV} must be a whole number of pages (or empty: the server's setting), not {io!r}")
    return ("SET LOCAL jit = off", "SET LOCAL enable_seqscan = off", *([f"SET LOCAL effective_io_concurrency = {int(io)}"] if io else []))


READ_SETTINGS = _read_settings()


@contextmanager
def snapshot(store: Any) -> Iterator[Any]:
    """The export's one transaction: on PostgreSQL REPEATABLE READ (every kind, every district
    read in one snapshot) with ``READ_SETTINGS``; on SQLite a transaction (one writer at a time)."""
    postgres = store.engine.dialect.name == "postgresql"
    options: dict[str, Any] = {"isolation_level": "REPEATABLE READ"} if postgres else {}
    with store.engine.connect().execution_options(**options) as conn, conn.begin():
        if postgres:
            for setting in READ_SETTINGS:
                conn.exec_driver_sql(setting)
        yield conn


#: a part's records: those whose (updated_at, id) is at or after the first bound and before
#: the second (None: no bound on that side); ``spans`` cuts a tenant's records into such parts
Span = tuple[tuple[datetime, uuid.UUID] | None, tuple[datetime, uuid.UUID] | None]


def export_query(tenant: str, kind: str, since: int | None, until: int, *, span: Span | None = None) -> Any:
    tbl = RECORD_TABLES[kind]
    q = select(tbl.c.data).where(tbl.c.tenant == tenant)
    if since is not None:
        changed = select(changes.c.record_id).where(changes.c.tenant == tenant, changes.c.record_kind == kind,
                                                    changes.c.seq > since, changes.c.seq <= until)
        q = q.where(tbl.c.id.in_(changed))
    if span is not None:  # a range of the (tenant, updated_at, id) index: the database reads this part's rows only
        key = tuple_(tbl.c.updated_at, tbl.c.id)
        lo, hi = span
        if lo is not None:
            q = q.where(key >= tuple_(literal(lo[0], tbl.c.updated_at.type), literal(lo[1], tbl.c.id.type)))
        if hi is not None:
            q = q.where(key < tuple_(literal(hi[0], tbl.c.updated_at.type), literal(hi[1], tbl.c.id.type)))
    return q


def spans(conn: Any, tenant: str, kind: str, parts: int, since: int | None = None, until: int = 0) -> list[Span]:
    """A tenant's records of one kind cut into ``parts`` ranges of the ``(tenant, updated_at,
    id)`` index, which together hold every record once: the bounds split the tenant's
    ``updated_at`` range evenly (two probes of the index: its oldest and newest), and within
    an instant the ids (uuids, spread evenly) at the same fractions, so records all written at
    one instant are still split. Each part's query reads its own index range and the pages it
    points at, not every record of the tenant. With ``since``, the range is that of the
    records changed in (since, until], so a delta is split as evenly as a whole export. Parts
    hold about as many records where records are written at an even pace; elsewhere some
    hold more (each still only its own)."""
    tbl = RECORD_TABLES[kind]
    oldest, newest = conn.execute(export_query(tenant, kind, since, until).with_only_columns(
        func.min(tbl.c.updated_at), func.max(tbl.c.updated_at))).one()
    if oldest is None:  # no record: any bounds hold them all (none)
        oldest = newest = datetime(2000, 1, 1, tzinfo=UTC)
    bounds: list[tuple[datetime, uuid.UUID] | None] = [None]
    for k in range(1, parts):
        bounds.append((oldest + (newest - oldest) * k / parts, uuid.UUID(int=(1 << 128) * k // parts)))
    bounds.append(None)
    return [(bounds[k], bounds[k + 1]) for k in range(parts)]


def read_batches(conn: Any, tenant: str, kind: str, since: int | None, until: int, *,
                 span: Span | None = None) -> Iterator[list[Any]]:
    """The stored JSON texts of a tenant's records of one kind, ``BATCH_ROWS`` at a time,
    streamed (PostgreSQL: a server-side cursor; SQLite: one lazily stepped statement), so
    memory holds one batch whatever the table's size. With ``since``, only the records changed
    in (since, until]: the database picks them with a semi-join on the change log, so no list
    of ids is ever held here, and each record comes once however often it changed.

    ``conn`` is, on PostgreSQL, the driver's own connection (in the snapshot's transaction):
    a named (server-side) cursor of the driver itself, so the rows go from the wire to a list
    of texts without SQLAlchemy's per-row result objects (half the cost of a fetched row); on
    SQLite, SQLAlchemy's connection."""
    q = export_query(tenant, kind, since, until, span=span)
    if not hasattr(conn, "dialect"):  # PostgreSQL (psycopg); heap order
        from psycopg.rows import scalar_row  # the PostgreSQL driver: there only

        yield from _cursor_batches(conn, q, scalar_row)
        return
    q = q.order_by(RECORD_TABLES[kind].c.id)  # a stable order for free (the primary key's index)
    result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(q)
    yield from result.scalars().partitions(BATCH_ROWS)


def _cursor_batches(conn: Any, q: Any, row_factory: Any) -> Iterator[list[Any]]:
    """``q``'s rows through a named (server-side) cursor of the driver's connection ``conn``,
    in batches growing from one ``FETCH`` to ``BATCH_ROWS``; texts arrive as their UTF-8 bytes."""
    from psycopg.types.string import ByteaBinaryLoader
    from sqlalchemy.dialects import postgresql

    compiled = q.compile(dialect=postgresql.dialect())
    # binary: the stored text arrives as its UTF-8 bytes, handed on as bytes (the decoder
    # reads bytes; no text object made a row)
    cur = conn.cursor(name=f"tessera_export_{uuid.uuid4().hex}", row_factory=row_factory, binary=True)
    cur.adapters.register_loader("text", ByteaBinaryLoader)
    cur.adapters.register_loader("varchar", ByteaBinaryLoader)
    try:
        cur.itersize = FETCH_ROWS
        cur.execute(str(compiled), compiled.params)
        size = min(FETCH_ROWS, BATCH_ROWS)  # the first batch one FETCH: converting starts at once
        while True:
            rows: list[Any] = []
            while len(rows) < size and (more := cur.fetchmany(min(FETCH_ROWS, size - len(rows)))):
                rows += more
            if not rows:
                break
            yield rows
            size = min(BATCH_ROWS, 4 * size)
    finally:
        cur.close()


def many_query(tenants: Sequence[str], kind: str, since: int | None, until: int) -> Any:
    """The records of one kind of several tenants at once, each row (tenant, stored text):
    ``tenant = ANY(array)`` (one scan of the table for them all), with ``since`` the records
    of those tenants changed in (since, until] (record ids are unique across tenants)."""
    from sqlalchemy import String, any_, bindparam
    from sqlalchemy.dialects.postgresql import ARRAY

    tbl = RECORD_TABLES[kind]
    names = bindparam("tenants", list(tenants), type_=ARRAY(String()))
    q = select(tbl.c.tenant, tbl.c.data).where(tbl.c.tenant == any_(names))
    if since is not None:
        changed = select(changes.c.record_id).where(changes.c.tenant == any_(names), changes.c.record_kind == kind,
                                                    changes.c.seq > since, changes.c.seq <= until)
        q = q.where(tbl.c.id.in_(changed))
    return q


def read_many_batches(conn: Any, tenants: Sequence[str], kind: str, since: int | None, until: int) -> Iterator[list[Any]]:
    """``many_query``'s rows, (tenant bytes, stored text bytes) tuples, streamed as
    ``read_batches`` streams one tenant's (PostgreSQL only: ``conn`` is the driver's connection)."""
    from psycopg.rows import tuple_row

    yield from _cursor_batches(conn, many_query(tenants, kind, since, until), tuple_row)


def tenant_share(conn: Any, kind: str, tenants: Sequence[str]) -> float:
    """The share of a kind's rows (all its partitions') that ``tenants``' rows make up, by the
    planner's statistics: each table's (or partition's) row estimate times its most common
    tenants' frequencies (``pg_stats``). 0 where nothing has been analysed yet."""
    rows = conn.execute(
        "SELECT c.reltuples, s.most_common_vals::text::text[], s.most_common_freqs FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = 'tenant' AND NOT s.inherited"
        " WHERE c.relkind = 'r'"  # the tables holding rows: a partitioned table's own estimate counts its partitions again
        " AND (c.oid = to_regclass(%s) OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(%s)))",
        (RECORD_TABLES[kind].name, RECORD_TABLES[kind].name)).fetchall()
    wanted = set(tenants)
    total = mine = 0.0
    for reltuples, values, freqs in rows:
        if reltuples is None or reltuples <= 0:
            continue
        total += reltuples
        for v, f in zip(values or (), freqs or (), strict=False):
            if (v.decode() if isinstance(v, bytes) else v) in wanted:
                mine += f * reltuples
    return mine / total if total else 0.0
