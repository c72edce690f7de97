"""Roster queries: pages of rostering records (orgs, academic sessions, courses, sections,
people, enrollments) for a standard's provider API (DESIGN section 4), and the look-ups
around them (one record by native id, the native ids of referenced records).

A query is described without any standard's vocabulary: a record kind, a tenant, ANDed
conditions over the kind's columns and memberships, and an order. What a standard calls
a field, and how its filter grammar is parsed, is the adapter's; the adapter turns what it
can of a filter into these conditions and checks the rest itself over its wire objects.

Conditions:

* on the kind's own table: ``Compare`` (a column against a value), ``OneOf`` (a column in a
  list of values), ``RefersTo`` (a reference column names the record of a kind with a given
  native id), ``ModifiedAt`` (``updated_at`` as seen at millisecond precision), ``AnyOf``
  (an OR of these);
* memberships answered in SQL: ``PersonEnrolledIn`` (people enrolled in a section with a
  role), ``SectionEnrolling`` (sections a person is enrolled in), ``EnrollmentAtOrg``
  (enrollments in the sections of an org);
* memberships no column holds, checked over each record's canonical JSON:
  ``PersonWithRoleAt`` (a role at an org), ``SectionInSession``, ``SessionOfOrg``,
  ``PersonWithDemographics``. A query with one of these cannot be counted or paged in SQL
  (``RosterQuery.sql_only`` is False): ``documents`` returns every match instead.

Every statement is bounded by tenant; ``updated_at`` filters and the default order run on the
``(tenant, updated_at, id)`` index of each record table (tests/test_query_plans.py and
tests/test_oneroster_query.py check the plan).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, Select, Table, and_, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from . import tables as t
from .native_ids import ids_by_native_id
from .prepare import REFERENCES

#: the columns a query may be ordered by (then by updated_at and id, which keeps offset paging stable)
SORT_COLUMNS = frozenset({"updated_at", "native_id", "status"})
#: what ``Compare`` understands
OPERATORS = ("=", "!=", ">", ">=", "<", "<=")

_OPS: dict[str, Any] = {
    "=": lambda c, v: c == v, "!=": lambda c, v: c != v, ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v, "<": lambda c, v: c < v, "<=": lambda c, v: c <= v,
}



class SqlCondition:
    """A condition SQL answers: ``sql`` renders it on the kind's table."""

    def sql(self, tbl: Table, tenant: str) -> ColumnElement[bool]:
        raise NotImplementedError


class DocumentCondition:
    """A condition no column holds: ``holds`` checks it over a record's canonical JSON."""

    def holds(self, doc: dict[str, Any]) -> bool:
        raise NotImplementedError


Condition = SqlCondition | DocumentCondition

# --- conditions on the kind's table ----------------------------------------------------------


@dataclass(frozen=True)
class Compare(SqlCondition):
    """``column <op> value`` on the kind's table (a promoted column, ``status``, ``native_id``, ``id``)."""

    column: str
    op: str
    value: Any

    def sql(self, tbl: Table, tenant: str) -> ColumnElement[bool]:
        return _OPS[self.op](tbl.c[self.column], self.value)


@dataclass(frozen=True)
class OneOf(SqlCondition):
    """``column IN values`` (``NOT IN`` when ``negate``). With no values nothing can match
    but a missing value: ``IS NULL`` (``IS NOT NULL`` when ``negate``)."""

    column: str
    values: tuple[Any, ...]
    negate: bool = False

    def sql(self, tbl: Table, tenant: str) -> ColumnElement[bool]:
        column = tbl.c[self.column]
        if not self.values:
            return column.is_not(None) if self.negate else column.is_(None)
        return column.not_in(list(self.values)) if self.negate else column.in_(list(self.values))


@dataclass(frozen=True)
class RefersTo(SqlCondition):
    """The reference ``column`` holds the id of the record of ``kind`` whose native id is ``native_id``."""

    column: str
    kind: str
    native_id: str

    def sql(self, tbl: Table, tenant: str) -> ColumnElement[bool]:
        tgt = t.RECORD_TABLES[self.kind]
        return tbl.c[self.column].in_(select(tgt.c.id).where(tgt.c.tenant == tenant, tgt.c.native_id == self.native_id))


_MS = timedelta(milliseconds=1)
_LAST_US_OF_MS = timedelta(microseconds=999)


@dataclass(frozen=True)
class ModifiedAt(SqlCondition):
    """``updated_at <op> at``, with ``updated_at`` as seen at millisecond precision.

    An API shows ``updated_at`` truncated to milliseconds while the column keeps
    microseconds. So ``> ...:00.123`` must not return a record stored at .123456 (its shown
    value IS .123; a client using the last value it saw as its watermark would get it
    again): ``>`` x is ``updated_at > floor_ms(x) + 999us``, still one range on the
    (tenant, updated_at, id) index, and likewise for the other operators."""

    op: str
    at: datetime

    def sql(self, tbl: Table, tenant: str) -> ColumnElement[bool]:
        return self.on(tbl.c.updated_at)

    def on(self, col: Any) -> ColumnElement[bool]:
        """The condition on any datetime column ``col``."""
        pred, x = self.op, self.at
        floor = x - timedelta(microseconds=x.microsecond % 1000)
        ceil = floor if floor == x else floor + _MS
        if pred == ">":
            return col > floor + _LAST_US_OF_MS
        if pred == ">=":
            return col >= ceil
        if pred == "<":
            return col < ceil
        if pred == "<=":
            return col <= floor + _LAST_US_OF_MS
        if floor != x:  # no shown value has sub-millisecond digits
            return col.is_(None) if pred == "=" else col.is_not(None)
        inside = and_(col >= floor, col <= floor + _LAST_US_OF_MS)
        return inside if pred == "=" else ~inside


@dataclass(frozen=True)
class AnyOf(SqlCondition):
    """An OR of conditions on the kind's table."""

    conditions: tuple[SqlCondition, ...]

    def sql(self, tbl: Table, tenant: str) -> ColumnElement[bool]:
        return or_(*(c.sql(tbl, tenant) for c in self.conditions))


# --- memberships -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonEnrolledIn(SqlCondition):
    """people: enrolled in the section ``section_id`` with ``role``."""

    section_id: uuid.UUID
    role: str

    def sql(self, tbl: Table, tenant: str) -> ColumnElement[bool]:
        enr = t.enrollments
        return tbl.c.id.in_(select(enr.c.person_id).where(enr.c.tenant == tenant, enr.c.section_id == self.section_id,
                                                          enr.c.role == self.role))


@dataclass(frozen=True)
class SectionEnrolling(SqlCondition):
    """sections: the person ``person_id`` is enrolled in (any role)."""

    person_id: uuid.UUID

    def sql(self, tbl: Table, tenant: str) -> ColumnElement[bool]:
        enr = t.enrollments
        return tbl.c.id.in_(select(enr.c.section_id).where(enr.c.tenant == tenant, enr.c.person_id == self.person_id))


@dataclass(frozen=True)
class EnrollmentAtOrg(SqlCondition):
    """enrollments: in a section of the org ``org_id``."""

    org_id: uuid.UUID

    def sql(self, tbl: Table, tenant: str) -> ColumnElement[bool]:
        sec = t.sections
        return tbl.c.section_id.in_(select(sec.c.id).where(sec.c.tenant == tenant, sec.c.org_id == self.org_id))


@dataclass(frozen=True)
class PersonWithRoleAt(DocumentCondition):
    """people: one of the person's roles is ``role`` at the org ``org_id`` (canonical JSON ``roles``)."""

    org_id: uuid.UUID
    role: str

    def holds(self, doc: dict[str, Any]) -> bool:
        want = str(self.org_id)
        return any(r.get("org_id") == want and r.get("role") == self.role for r in doc.get("roles") or [])


@dataclass(frozen=True)
class SectionInSession(DocumentCondition):
    """sections: taught in the academic session ``session_id`` (canonical JSON ``session_ids``)."""

    session_id: uuid.UUID

    def holds(self, doc: dict[str, Any]) -> bool:
        return str(self.session_id) in (doc.get("session_ids") or [])


@dataclass(frozen=True)
class SessionOfOrg(DocumentCondition):
    """academic sessions: of the org ``org_id`` (canonical JSON ``org_id``)."""

    org_id: uuid.UUID

    def holds(self, doc: dict[str, Any]) -> bool:
        return doc.get("org_id") == str(self.org_id)


@dataclass(frozen=True)
class PersonWithDemographics(DocumentCondition):
    """people: the record carries demographics."""

    def holds(self, doc: dict[str, Any]) -> bool:
        return bool(doc.get("demographics"))


def sql_condition(kind: str, tenant: str, condition: Condition) -> ColumnElement[bool] | None:
    """The SQL of one condition on ``kind``'s table; None for one checked over the JSON."""
    return condition.sql(t.RECORD_TABLES[kind], tenant) if isinstance(condition, SqlCondition) else None


# --- the query -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterQuery:
    """Records of ``kind`` in ``tenant`` matching every condition of ``where``, ordered by
    ``order_by`` (one of SORT_COLUMNS, or None for the store's order), then ``updated_at``
    and ``id``; ``descending`` turns the whole order round."""

    tenant: str
    kind: str
    where: tuple[Condition, ...] = ()
    order_by: str | None = None
    descending: bool = False

    @property
    def sql_only(self) -> bool:
        """True when SQL answers every condition (``page`` and ``native_ids_of`` may be used)."""
        return all(isinstance(c, SqlCondition) for c in self.where)


def _chunks(seq: Sequence[Any], n: int = 500) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class RosterQueries:
    """The reads of rostering records a provider API needs, in one place: collection pages
    (count, order, offset, limit), every match of a query, one record by native id, ids by
    native id and back, and the native ids of referenced records. Read-only; every statement
    is bounded by tenant. ``Store.roster`` is the one instance."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- single records and references ---------------------------------------------------------

    def find(self, tenant: str, kind: str, native_id: str, *, where: Iterable[SqlCondition] = ()) -> tuple[uuid.UUID, str] | None:
        """(id, canonical JSON) of the record of ``kind`` whose native id is ``native_id`` and
        that meets ``where``.

        Two sources of one tenant could share a native id; then the first by source wins (a
        tenant normally rosters from one system)."""
        tbl = t.RECORD_TABLES[kind]
        conds = [c.sql(tbl, tenant) for c in where]
        q = select(tbl.c.id, tbl.c.data).where(tbl.c.tenant == tenant, tbl.c.native_id == native_id, *conds).order_by(tbl.c.source).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return (row[0], row[1]) if row else None

    def native_ids(self, tenant: str, kind: str, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
        """id -> native id for records of ``kind``; ids not in the tenant are left out."""
        tbl = t.RECORD_TABLES[kind]
        want = list(dict.fromkeys(ids))
        out: dict[uuid.UUID, str] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(want):
                q = select(tbl.c.id, tbl.c.native_id).where(tbl.c.tenant == tenant, tbl.c.id.in_(chunk))
                out.update({r[0]: r[1] for r in conn.execute(q)})
        return out

    def ids_by_native_id(self, tenant: str, kind: str, native_ids: Iterable[str], *, prefer: str | None = None) -> dict[str, uuid.UUID]:
        """native id -> id of the records of ``kind`` with those native ids (any source; where
        two sources share a native id, ``prefer``'s record first); unknown ones are left out."""
        return ids_by_native_id(self.engine, tenant, kind, native_ids, prefer)

    def referenced_native_ids(self, tenant: str, kind: str, records: Sequence[Any]) -> dict[tuple[str, uuid.UUID], str | None]:
        """(target kind, id) -> native id (None when not in the tenant) of every record the
        canonical ``records`` of ``kind`` reference: one query per referenced kind, not one
        per reference."""
        wanted: dict[str, set[uuid.UUID]] = {}
        for target, refs in REFERENCES[kind]:
            ids = wanted.setdefault(target, set())
            for r in records:
                ids.update(refs.ids(r))
        known: dict[tuple[str, uuid.UUID], str | None] = {}
        for target, ids in wanted.items():
            if ids:
                found = self.native_ids(tenant, target, ids)
                known.update({(target, i): found.get(i) for i in ids})
        return known

    def native_ids_of(self, query: RosterQuery) -> list[str]:
        """The native ids of every record matching an all-SQL ``query`` (in no particular order)."""
        if not query.sql_only:
            raise ValueError("native_ids_of() answers queries SQL can answer whole")
        tbl, cond = self._base(query.tenant, query.kind, query.where)
        with self.engine.connect() as conn:
            return list(conn.scalars(select(tbl.c.native_id).where(cond)))

    # --- collections ---------------------------------------------------------------------------

    def _base(self, tenant: str, kind: str, where: Sequence[Condition]) -> tuple[Table, ColumnElement[bool]]:
        tbl = t.RECORD_TABLES[kind]
        return tbl, and_(tbl.c.tenant == tenant, *(c.sql(tbl, tenant) for c in where if isinstance(c, SqlCondition)))

    def _order(self, tbl: Table, query: RosterQuery) -> list[Any]:
        cols = [tbl.c[query.order_by]] if query.order_by is not None else []
        cols += [tbl.c.updated_at, tbl.c.id] if query.order_by != "updated_at" else [tbl.c.id]
        return [c.desc() if query.descending else c.asc() for c in cols]

    def statement(self, query: RosterQuery, *, limit: int, offset: int = 0) -> Select[Any]:
        """The SELECT of one page (what ``page`` runs; for EXPLAIN). JSON conditions are left out."""
        tbl, cond = self._base(query.tenant, query.kind, query.where)
        return select(tbl.c.data).where(cond).order_by(*self._order(tbl, query)).limit(limit).offset(offset)

    def page(self, query: RosterQuery, *, limit: int, offset: int = 0) -> tuple[int, list[str]]:
        """(how many records match, the canonical JSON of the page's records) of an all-SQL query."""
        if not query.sql_only:
            raise ValueError("page() answers queries SQL can answer whole; use documents()")
        tbl, cond = self._base(query.tenant, query.kind, query.where)
        with self.engine.connect() as conn:
            total = conn.scalar(select(func.count()).select_from(tbl).where(cond)) or 0
            if offset >= total:
                return total, []
            rows = [r[0] for r in conn.execute(
                select(tbl.c.data).where(cond).order_by(*self._order(tbl, query)).limit(limit).offset(offset))]
        return total, rows

    def documents(self, query: RosterQuery) -> list[str]:
        """The canonical JSON of every record matching ``query``, in its order: SQL narrows the
        rows, the JSON conditions check what it let through."""
        sql = tuple(c for c in query.where if isinstance(c, SqlCondition))
        checks = [c for c in query.where if isinstance(c, DocumentCondition)]
        tbl, cond = self._base(query.tenant, query.kind, sql)
        with self.engine.connect() as conn:
            rows = [r[0] for r in conn.execute(select(tbl.c.data).where(cond).order_by(*self._order(tbl, query)))]
        if checks:
            rows = [r for r in rows if _all_hold(checks, orjson.loads(r))]
        return rows


def _all_hold(checks: Sequence[DocumentCondition], doc: dict[str, Any]) -> bool:
    return all(c.holds(doc) for c in checks)


__all__ = [
    "OPERATORS",
    "SORT_COLUMNS",
    "AnyOf",
    "Compare",
    "Condition",
    "DocumentCondition",
    "EnrollmentAtOrg",
    "ModifiedAt",
    "OneOf",
    "PersonEnrolledIn",
    "PersonWithDemographics",
    "PersonWithRoleAt",
    "RefersTo",
    "RosterQueries",
    "RosterQuery",
    "SectionEnrolling",
    "SectionInSession",
    "SessionOfOrg",
    "SqlCondition",
    "sql_condition",
]
