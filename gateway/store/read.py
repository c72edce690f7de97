"""Reading records: one by id, several by id, keyset pages, every record of a tenant, counts
and the change log (DESIGN section 4: what the canonical API and the standards' APIs serve).

A record is read as the JSON text the store keeps (``data``), byte for byte what the API
serves; ``get`` validates it into its model when a caller needs one. Pages are keyset
pages in (updated_at, id) order, with an opaque cursor (``encode_cursor``).

Methods that an adapter calls while it holds a connection of its own (the xAPI ingest reads
what it resolves in one connection) take ``conn``; without it they open one.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Integer, bindparam, func, select, tuple_, type_coerce
from sqlalchemy.types import NullType

from ..errors import ErrorDetail, NotFound, ValidationError
from ..model import RECORD_TYPES, Record
from .prepare import KIND_ORDER
from .tables import RECORD_TABLES, changes

#: ids per IN (...) of ``get_json_many``
MANY_CHUNK = 400
#: page() filter suffixes: ``{"competency_id__null": True}`` lists unaligned evidence
NULL_FILTER, NOT_NULL_FILTER = "__null", "__notnull"


@dataclass
class Page:
    """One page of raw JSON documents and the cursor of the next page (None at the end)."""

    items: list[str]
    next_cursor: str | None


def encode_cursor(updated_at: datetime, rid: uuid.UUID) -> str:
    raw = f"{updated_at.isoformat()}|{rid}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, rid = raw.split("|", 1)
        return datetime.fromisoformat(ts), uuid.UUID(rid)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError(
            "invalid cursor", errors=[ErrorDetail("not a cursor this API issued", location="query", field="cursor")]
        ) from None


def reading(engine: Engine, conn: Connection | None) -> AbstractContextManager[Connection]:
    """``conn`` as it is (the caller's, left open), or a new connection of ``engine``, closed
    after use: how a repository method reads in its caller's connection or in its own."""
    return nullcontext(conn) if conn is not None else engine.connect()


class RecordReader:
    """Reads the records of one database; ``RecordStore`` is its facade."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect
        # the result processors that decode a page's last (updated_at, id)
        self._cursor_procs = {
            kind: (
                tbl.c.updated_at.type.dialect_impl(dialect).result_processor(dialect, None),
                tbl.c.id.type.dialect_impl(dialect).result_processor(dialect, None),
            )
            for kind, tbl in RECORD_TABLES.items()
        }
        self._page_queries: dict[tuple[Any, ...], Any] = {}

    def get_json(self, tenant: str, kind: str, rid: uuid.UUID) -> str:
        """The stored JSON of one record; NotFound for unknown ids *and* other tenants' ids."""
        tbl = RECORD_TABLES[kind]
        with self.engine.connect() as conn:
            data = conn.scalar(select(tbl.c.data).where(tbl.c.tenant == tenant, tbl.c.id == rid))
        if data is None:
            raise NotFound(f"no {kind} with id {rid}")
        return data

    def get(self, tenant: str, kind: str, rid: uuid.UUID) -> Record:
        return RECORD_TYPES[kind].model_validate_json(self.get_json(tenant, kind, rid))

    def get_json_many(self, tenant: str, kind: str, ids: Iterable[uuid.UUID], *, conn: Connection | None = None) -> dict[uuid.UUID, str]:
        """id -> stored JSON of those of ``ids`` the tenant has (the others are left out), in
        one query per ``MANY_CHUNK`` ids."""
        tbl = RECORD_TABLES[kind]
        wanted = list(ids)
        out: dict[uuid.UUID, str] = {}
        with reading(self.engine, conn) as c:
            for i in range(0, len(wanted), MANY_CHUNK):
                q = select(tbl.c.id, tbl.c.data).where(tbl.c.tenant == tenant, tbl.c.id.in_(wanted[i : i + MANY_CHUNK]))
                out.update((row.id, row.data) for row in c.execute(q))
        return out

    def last_updated(self, tenant: str, kinds: Sequence[str], *, conn: Connection | None = None) -> tuple[datetime | None, ...]:
        """When the tenant's records of each of ``kinds`` last changed (None: it has none), in
        one statement of one probe of each table's (tenant, updated_at) index. Any write of
        those records moves it (an import, a retirement, a new identifier), so a cache of what
        they resolve to stays valid while it stays the same."""
        tables = [RECORD_TABLES[k] for k in kinds]
        q = select(*(select(func.max(tbl.c.updated_at)).where(tbl.c.tenant == tenant).scalar_subquery() for tbl in tables))
        with reading(self.engine, conn) as c:
            return tuple(c.execute(q).one())

    def page(
        self,
        tenant: str,
        kind: str,
        *,
        limit: int = 100,
        cursor: str | None = None,
        updated_since: datetime | None = None,
        filters: dict[str, Any] | None = None,
    ) -> Page:
        """Keyset pagination in (updated_at, id) order: stable while records change, and
        exactly what an incremental consumer needs (``updated_since`` + follow the cursor).

        The cursor condition is a row-value comparison, ``(updated_at, id) > (?, ?)``,
        which both engines answer with one range scan of the (tenant, updated_at, id)
        index, however deep the page (an OR of the two cases makes SQLite scan every row
        of the cursor's ``updated_at``, and one bulk commit gives thousands the same)."""
        params: dict[str, Any] = {"tenant": tenant, "limit": limit + 1}
        if updated_since is not None:
            params["since"] = updated_since
        shape = []
        for col, value in (filters or {}).items():
            if col.endswith(NULL_FILTER):  # "<column>__null": True -> IS NULL, False -> IS NOT NULL
                shape.append(f"{col[: -len(NULL_FILTER)]}{NULL_FILTER if value else NOT_NULL_FILTER}")
                continue
            shape.append(col)
            params[f"f_{col}"] = value
        if cursor:
            params["cu"], params["cid"] = decode_cursor(cursor)
        q = self._page_query(kind, tuple(shape), since=updated_since is not None, after=bool(cursor))
        with self.engine.connect() as conn:
            rows = conn.execute(q, params).all()
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = None
        if more:
            to_time, to_id = self._cursor_procs[kind]
            last = rows[-1]
            nxt = encode_cursor(to_time(last[1]) if to_time else last[1], to_id(last[2]) if to_id else last[2])  # type: ignore[arg-type]  # never NULL
        return Page([r[0] for r in rows], nxt)

    def _page_query(self, kind: str, filters: tuple[str, ...], *, since: bool, after: bool) -> Any:
        """The page statement for one shape of query, built once: values go in as parameters,
        and ``updated_at``/``id`` come back as the driver gives them (only the last row's
        are ever decoded, for the next cursor)."""
        key = (kind, filters, since, after)
        q = self._page_queries.get(key)
        if q is not None:
            return q
        tbl = RECORD_TABLES[kind]
        ts, rid = tbl.c.updated_at, tbl.c.id
        q = select(tbl.c.data, type_coerce(ts, NullType()), type_coerce(rid, NullType())).where(tbl.c.tenant == bindparam("tenant"))
        if since:
            q = q.where(ts > bindparam("since", type_=ts.type))
        for col in filters:
            if col.endswith(NULL_FILTER):
                q = q.where(tbl.c[col[: -len(NULL_FILTER)]].is_(None))
            elif col.endswith(NOT_NULL_FILTER):
                q = q.where(tbl.c[col[: -len(NOT_NULL_FILTER)]].is_not(None))
            else:
                q = q.where(tbl.c[col] == bindparam(f"f_{col}", type_=tbl.c[col].type))
        if after:
            q = q.where(tuple_(ts, rid) > tuple_(bindparam("cu", type_=ts.type), bindparam("cid", type_=rid.type)))
        q = q.order_by(ts, rid).limit(bindparam("limit", type_=Integer()))
        if len(self._page_queries) < 512:  # shapes are few (kinds x filter sets); bound it anyway
            self._page_queries[key] = q
        return q

    def iter_records(self, tenant: str, kinds: Iterable[str] | None = None, *, batch: int = 1000) -> Iterator[Record]:
        """Every record of the tenant, kind by kind in dependency order (so a re-import of the
        output never references a record it has not yet seen)."""
        for kind in sorted(kinds or RECORD_TYPES, key=KIND_ORDER.__getitem__):
            cls = RECORD_TYPES[kind]
            cursor = None
            while True:
                pg = self.page(tenant, kind, limit=batch, cursor=cursor)
                for data in pg.items:
                    yield cls.model_validate_json(data)
                if pg.next_cursor is None:
                    break
                cursor = pg.next_cursor

    def count(self, tenant: str, kind: str) -> int:
        tbl = RECORD_TABLES[kind]
        with self.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(tbl).where(tbl.c.tenant == tenant)) or 0

    def changes_since(self, tenant: str, seq: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        q = (
            select(changes)
            .where(changes.c.tenant == tenant, changes.c.seq > seq)
            .order_by(changes.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]



__all__ = ["NOT_NULL_FILTER", "NULL_FILTER", "Page", "RecordReader", "decode_cursor", "encode_cursor", "reading"]
