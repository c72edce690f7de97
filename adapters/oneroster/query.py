"""The OneRoster 1.2 REST query parameters, and how a collection request is answered.

OneRoster 1.2 Rostering REST/JSON binding, "Pagination", "Sorting", "Filtering" and "Field
selection" (the 1.1 binding defines the same parameters):

* ``limit`` (default 100) and ``offset``. A limit above ``settings.page_size_max`` is
  lowered to it, not refused: the binding lets a provider page with a smaller limit than
  asked, and well-known consumers ask for ``limit=5000``; the Link header and X-Total-Count
  let them follow on;
* ``sort`` (one field) and ``orderBy`` (``asc`` | ``desc``);
* ``fields``: a comma separated list of top-level fields to return;
* ``filter``: ``<field><predicate>'<value>'``, predicates ``= != > >= < <= ~`` (``~`` is
  "contains"), clauses joined by a logical operator ``AND`` or ``OR`` with one space either
  side. One filter uses ONE kind of logical operator (``a='1' AND b='2' AND c='3'`` is fine,
  mixing AND and OR is refused): there are no parentheses, so a mix would be ambiguous.

Spec choices, written down:

* Values are always single-quoted. A quote inside a value is written doubled (``''``);
  the binding says values are quoted and does not spell out an escape, so Tessera takes
  the SQL convention, and ``\\'`` is NOT an escape.
* ``=`` and ``!=`` compare exactly (case-sensitive); ``~`` is case-insensitive "contains".
* Dates and datetimes compare as such: ``dateLastModified>'2015-01-01'`` means after
  2015-01-01T00:00:00Z; values without a zone are UTC. A value that is not a date on a date
  field is 400 invalid_filter_field. Numeric fields (``schoolYear``) compare as numbers.
* Dotted fields: ``metadata.<key>`` (any key), and a path into any object or list member of
  the type (``parent.sourcedId``, ``course.sourcedId``, ``roles.role``, ``userIds.type``...);
  a path through a list matches when ANY element matches. The first segment must be a field
  of the type, otherwise 400 invalid_filter_field.
* A record missing the field matches only ``!=``.
* ``fields`` lists top-level fields only; an unknown one is 400 invalid_selection_field.
* Without ``sort`` the order is the store's (dateLastModified, then id), which is also what
  makes offset paging stable between requests when nothing changes.

Evaluation: ``dateLastModified``, ``status`` and ``sourcedId`` always become SQL on the
record table (``dateLastModified`` on the indexed ``(tenant, updated_at, id)``), as do the
promoted columns a type has (org ``type``/``parent.sourcedId``, academic session ``type``/
``schoolYear``, class ``course.sourcedId``/``school.sourcedId``, course ``org.sourcedId``,
enrollment ``role``/``user.sourcedId``/``class.sourcedId``); everything else is evaluated in
Python over the wire object. With ``AND`` the SQL part narrows the rows and Python checks the
rest; an ``OR`` is pushed down only when every clause can be.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from gateway.model import Role
from gateway.store import tables as t

from .status_info import (
    FilterParseError,
    InvalidData,
    InvalidFilterField,
    InvalidSelectionField,
    InvalidSortField,
)

# --- what each OneRoster type has (OneRoster 1.2 Rostering information model) ---------------

_BASE = ("sourcedId", "status", "dateLastModified", "metadata")
#: wire type -> its fields (1.2; 1.1 names that differ are added so 1.1 clients can filter too)
TYPE_FIELDS: dict[str, frozenset[str]] = {
    "org": frozenset((*_BASE, "name", "type", "identifier", "parent", "children")),
    "academicSession": frozenset((*_BASE, "title", "startDate", "endDate", "type", "parent", "children", "schoolYear")),
    "course": frozenset((*_BASE, "title", "schoolYear", "courseCode", "grades", "subjects", "org", "subjectCodes", "resources")),
    "class": frozenset((*_BASE, "title", "classCode", "classType", "location", "grades", "subjects", "course", "school",
                        "terms", "subjectCodes", "periods", "resources")),
    "user": frozenset((*_BASE, "userMasterIdentifier", "username", "userIds", "enabledUser", "givenName", "familyName",
                       "middleName", "preferredFirstName", "preferredMiddleName", "preferredLastName", "pronouns", "roles",
                       "userProfiles", "identifier", "email", "sms", "phone", "agents", "grades", "password", "primaryOrg",
                       "resources", "demographics",
                       # 1.1
                       "role", "orgs")),
    "enrollment": frozenset((*_BASE, "user", "class", "school", "role", "primary", "beginDate", "endDate")),
    "demographics": frozenset((*_BASE, "birthDate", "sex", "americanIndianOrAlaskaNative", "asian", "blackOrAfricanAmerican",
                               "nativeHawaiianOrOtherPacificIslander", "white", "demographicRaceTwoOrMoreRaces",
                               "hispanicOrLatinoEthnicity", "countryOfBirthCode", "stateOfBirthAbbreviation", "cityOfBirth",
                               "publicSchoolResidenceStatus")),
}
DATETIME_FIELDS = frozenset({"dateLastModified"})
DATE_FIELDS = frozenset({"startDate", "endDate", "beginDate", "birthDate"})
NUMBER_FIELDS = frozenset({"schoolYear"})

PREDICATES = ("!=", ">=", "<=", "=", ">", "<", "~")  # longest first, for the scanner
LOGICAL = ("AND", "OR")

# --- the filter AST and its parser ----------------------------------------------------------


@dataclass(frozen=True)
class Clause:
    field: str
    predicate: str
    value: str
    position: int  # where the clause starts in the filter text

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.field.split("."))


@dataclass(frozen=True)
class Filter:
    op: str  # "AND" | "OR" (a one-clause filter is "AND")
    clauses: tuple[Clause, ...]


_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_:\-]+)*")


def parse_filter(text: str) -> Filter:
    """OneRoster 1.2 REST binding, Filtering: parse ``field<predicate>'value'`` clauses joined by
    ``AND`` or ``OR``. Raises FilterParseError naming the 0-based position where it stopped."""
    clauses: list[Clause] = []
    ops: list[tuple[str, int]] = []
    n = len(text)
    pos = 0

    def skip_spaces(p: int) -> int:
        while p < n and text[p] == " ":
            p += 1
        return p

    if not text.strip():
        raise FilterParseError("the filter is empty", 0, text)
    while True:
        pos = skip_spaces(pos)
        start = pos
        m = _FIELD.match(text, pos)
        if not m:
            raise FilterParseError("expected a field name", pos, text)
        name = m.group()
        pos = skip_spaces(m.end())
        pred = next((p for p in PREDICATES if text.startswith(p, pos)), None)
        if pred is None:
            raise FilterParseError(f"expected a predicate (= != > >= < <= ~) after {name!r}", pos, text)
        pos = skip_spaces(pos + len(pred))
        if pos >= n or text[pos] != "'":
            raise FilterParseError(f"expected a value in single quotes after {name}{pred}", pos, text)
        quote = pos
        pos += 1
        chars: list[str] = []
        while True:
            if pos >= n:
                raise FilterParseError("the quoted value opened here is not closed", quote, text)
            c = text[pos]
            if c == "'":
                if pos + 1 < n and text[pos + 1] == "'":  # '' is a quote inside the value
                    chars.append("'")
                    pos += 2
                    continue
                pos += 1
                break
            chars.append(c)
            pos += 1
        clauses.append(Clause(name, pred, "".join(chars), start))
        after = pos
        pos = skip_spaces(pos)
        if pos >= n:
            break
        if pos == after:
            raise FilterParseError("expected ' AND ' or ' OR ' (with a space either side) after a value", pos, text)
        word = re.match(r"[A-Za-z]+", text[pos:])
        if not word or word.group() not in LOGICAL:
            got = word.group() if word else text[pos]
            hint = " (logical operators are upper case)" if word and word.group().upper() in LOGICAL else ""
            raise FilterParseError(f"expected AND or OR, found {got!r}{hint}", pos, text)
        op_end = pos + len(word.group())
        if op_end >= n or text[op_end] != " ":
            raise FilterParseError(f"expected a space after {word.group()}", op_end, text)
        ops.append((word.group(), pos))
        pos = op_end
    kinds = {o for o, _ in ops}
    if len(kinds) > 1:
        second = next(p for o, p in ops if o != ops[0][0])
        raise FilterParseError("a filter uses one logical operator, AND or OR, not both", second, text)
    return Filter(ops[0][0] if ops else "AND", tuple(clauses))


def check_filter_fields(flt: Filter, wire_type: str) -> None:
    """400 invalid_filter_field for a field the type does not have, or a value that is not a
    date/number on a date/number field."""
    fields = TYPE_FIELDS[wire_type]
    for c in flt.clauses:
        head = c.path[0]
        if head not in fields:
            raise InvalidFilterField(f"invalid filter field {c.field!r} at position {c.position}: {wire_type} has no field {head!r}")
        if len(c.path) == 1 and c.predicate != "~":
            if head in DATETIME_FIELDS or head in DATE_FIELDS:
                if _as_datetime(c.value) is None:
                    raise InvalidFilterField(f"invalid filter value for {c.field!r} at position {c.position}: {c.value!r} is not an ISO 8601 date or datetime")
            elif head in NUMBER_FIELDS and _as_number(c.value) is None:
                raise InvalidFilterField(f"invalid filter value for {c.field!r} at position {c.position}: {c.value!r} is not a number")


def _as_datetime(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=UTC)
    if not isinstance(v, str):
        return None
    s = v.strip()
    try:
        if len(s) == 10:
            d = date.fromisoformat(s)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(str(v))
    except ValueError:
        return None


# --- Python evaluation over the wire object --------------------------------------------------


def _values(obj: Any, path: Sequence[str]) -> list[Any]:
    """Every value at ``path``; lists fan out (any element may match)."""
    cur = [obj]
    for key in path:
        nxt: list[Any] = []
        for c in cur:
            if isinstance(c, list):
                c_items = c
            else:
                c_items = [c]
            for item in c_items:
                if isinstance(item, dict) and key in item and item[key] is not None:
                    v = item[key]
                    nxt.extend(v if isinstance(v, list) else [v])
        cur = nxt
    return [v for v in cur if not isinstance(v, (dict, list))]


def _compare(pred: str, a: Any, b: Any) -> bool:
    if pred == "=":
        return a == b
    if pred == "!=":
        return a != b
    if pred == ">":
        return a > b
    if pred == ">=":
        return a >= b
    if pred == "<":
        return a < b
    return a <= b


def clause_matches(obj: Mapping[str, Any], c: Clause) -> bool:
    values = _values(obj, c.path)
    if not values:
        return c.predicate == "!="
    leaf = c.path[-1] if len(c.path) == 1 else None
    for v in values:
        if c.predicate == "~":
            if c.value.casefold() in _text(v).casefold():
                return True
            continue
        if leaf in DATETIME_FIELDS or leaf in DATE_FIELDS:
            a, b = _as_datetime(v), _as_datetime(c.value)
            if a is not None and b is not None and _compare(c.predicate, a, b):
                return True
            continue
        if leaf in NUMBER_FIELDS or isinstance(v, (int, float)) and not isinstance(v, bool):
            a2, b2 = _as_number(v), _as_number(c.value)
            if a2 is not None and b2 is not None:
                if _compare(c.predicate, a2, b2):
                    return True
                continue
        if _compare(c.predicate, _text(v), c.value):
            return True
    return False


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def matches(obj: Mapping[str, Any], flt: Filter) -> bool:
    results = (clause_matches(obj, c) for c in flt.clauses)
    return all(results) if flt.op == "AND" else any(results)


# --- the other parameters -------------------------------------------------------------------

LIST_PARAMS = frozenset({"limit", "offset", "sort", "orderBy", "filter", "fields"})


@dataclass
class ListQuery:
    limit: int = 100
    offset: int = 0
    sort: str | None = None
    desc: bool = False
    filter: Filter | None = None
    fields: list[str] | None = None
    version: str = "1.2"
    #: no filter or sort goes to SQL (a type whose wire fields no column holds: demographics)
    python_only: bool = False


def page_links(base: str, path: str, params: Mapping[str, str], q: ListQuery, total: int) -> str:
    """The ``Link`` header of one page (1.2 binding, pagination): next, prev, first, last;
    ``base`` is the public site URL, ``params`` the request's query (kept, but limit/offset)."""

    def url(off: int) -> str:
        return f"{base}{path}?{urlencode({**params, 'limit': q.limit, 'offset': off})}"

    out = [f'<{url(0)}>; rel="first"', f'<{url(max(0, (total - 1) // q.limit * q.limit))}>; rel="last"']
    if q.offset + q.limit < total:
        out.insert(0, f'<{url(q.offset + q.limit)}>; rel="next"')
    if q.offset > 0:
        out.insert(0, f'<{url(max(0, q.offset - q.limit))}>; rel="prev"')
    return ", ".join(out)


def parse_list_query(
    params: Mapping[str, str], wire_type: str, *, max_limit: int, default_limit: int = 100, version: str = "1.2"
) -> ListQuery:
    """The collection parameters of a OneRoster read (1.2 binding sections on pagination,
    sorting, filtering and field selection), checked against the type's fields."""
    q = ListQuery(limit=min(default_limit, max_limit), version=version)
    fields = TYPE_FIELDS[wire_type]
    for name, lo in (("limit", 1), ("offset", 0)):
        if name in params:
            raw = params[name]
            try:
                v = int(raw)
                if v < lo:
                    raise ValueError
            except ValueError:
                raise InvalidData(f"{name} must be an integer from {lo}, not {raw!r}") from None
            setattr(q, name, min(v, max_limit) if name == "limit" else v)
    if "orderBy" in params:
        if params["orderBy"] not in ("asc", "desc"):
            raise InvalidData(f"orderBy must be asc or desc, not {params['orderBy']!r}")
        q.desc = params["orderBy"] == "desc"
    if "fields" in params:
        wanted = [f.strip() for f in params["fields"].split(",") if f.strip()]
        bad = [f for f in wanted if f not in fields]
        if bad:
            raise InvalidSelectionField(f"invalid selection field(s) {', '.join(map(repr, bad))}: not fields of {wire_type}")
        q.fields = wanted or None
    if "sort" in params:
        s = params["sort"].strip()
        if s not in fields:
            raise InvalidSortField(f"invalid sort field {s!r}: not a field of {wire_type}")
        q.sort = s
    if "filter" in params:
        q.filter = parse_filter(params["filter"])
        check_filter_fields(q.filter, wire_type)
    return q


def select_fields(obj: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    return obj if not fields else {k: obj[k] for k in fields if k in obj}


def _sort_key(v: Any) -> tuple[int, Any]:
    if v is None:
        return (2, "")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, v)
    if isinstance(v, (dict, list)):
        return (1, orjson.dumps(v).decode().casefold())
    return (1, str(v).casefold())


# --- SQL: the part of a filter the store can answer ------------------------------------------

#: wire type -> canonical record kind
KIND_OF = {"org": "org", "academicSession": "academic_session", "course": "course", "class": "section", "user": "person", "enrollment": "enrollment"}



def _wire_vocab(column: str, version: str) -> tuple[Any, list[str]]:
    """(the mapping vocabulary a promoted column's wire token goes through, every canonical value)."""
    from gateway.model import OrgType, SessionType

    from .mapping import roles, vocabularies

    if column == "org.type":
        return vocabularies()["org_types"], [e.value for e in OrgType]
    if column == "academic_session.type":
        return vocabularies()["session_types"], [e.value for e in SessionType]
    return roles(version), [e.value for e in Role]


def canonical_values(column: str, token: str, version: str) -> list[str]:
    """The canonical values ``to_wire`` writes as ``token``: the SQL twin of ``col = token``
    is ``col IN (these)``, exact even where several canonical values share one wire token
    (1.2 roles staff and other both go out as aide)."""
    vocab, values = _wire_vocab(column, version)
    return sorted(v for v in values if vocab.to_wire(v) == token)


_OPS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "=": lambda c, v: c == v, "!=": lambda c, v: c != v, ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v, "<": lambda c, v: c < v, "<=": lambda c, v: c <= v,
}


def _ref_in(column: Any, target_kind: str, tenant: str, sourced_id: str) -> ColumnElement[bool]:
    """``column`` references a record of ``target_kind`` whose sourcedId (native id) is given."""
    tgt = t.RECORD_TABLES[target_kind]
    return column.in_(select(tgt.c.id).where(tgt.c.tenant == tenant, tgt.c.native_id == sourced_id))


_MS = timedelta(milliseconds=1)
_LAST_US_OF_MS = timedelta(microseconds=999)


def _last_modified_sql(col: Any, pred: str, x: datetime) -> ColumnElement[bool]:
    """``dateLastModified <pred> x`` on ``updated_at``, agreeing exactly with the wire value.

    The wire shows ``updated_at`` truncated to milliseconds (``mapping.format_datetime``), the
    column keeps microseconds. So ``dateLastModified>'...:00.123Z'`` must not return a record
    stored at .123456 (its wire value IS .123Z; a client using the last value it saw as its
    watermark would get it again): ``>`` x is ``updated_at > floor_ms(x) + 999us``, still one
    range on the (tenant, updated_at, id) index, and likewise for the other predicates."""
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
    if floor != x:  # no wire value has sub-millisecond digits
        return col.is_(None) if pred == "=" else col.is_not(None)
    inside = and_(col >= floor, col <= floor + _LAST_US_OF_MS)
    return inside if pred == "=" else ~inside


def clause_sql(c: Clause, kind: str, tenant: str, version: str = "1.2") -> ColumnElement[bool] | None:
    """The clause as a SQL condition on ``kind``'s table, or None when only Python can answer it."""
    if c.predicate == "~":
        return None
    tbl = t.RECORD_TABLES[kind]
    op = _OPS[c.predicate]
    f = c.field
    if f == "dateLastModified":
        return _last_modified_sql(tbl.c.updated_at, c.predicate, _as_datetime(c.value))  # type: ignore[arg-type]
    if f == "status":
        return op(tbl.c.status, c.value)
    if f == "sourcedId":
        return op(tbl.c.native_id, c.value)
    if kind == "academic_session" and f == "schoolYear":
        n = _as_number(c.value)
        return op(tbl.c.school_year, int(n)) if n is not None and n.is_integer() else None
    if c.predicate not in ("=", "!="):
        return None
    eq = c.predicate == "="
    vocab_col = {("org", "type"): "org.type", ("academic_session", "type"): "academic_session.type",
                 ("enrollment", "role"): "enrollment.role"}.get((kind, f))
    if vocab_col is not None:
        column = tbl.c[vocab_col.split(".")[1]]
        values = canonical_values(vocab_col, c.value, version)
        if not values:
            return column.is_(None) if eq else column.is_not(None)  # no record shows that token
        return column.in_(values) if eq else column.not_in(values)
    refs = {
        ("org", "parent.sourcedId"): ("parent_id", "org"),
        ("course", "org.sourcedId"): ("org_id", "org"),
        ("section", "course.sourcedId"): ("course_id", "course"),
        ("section", "school.sourcedId"): ("org_id", "org"),
        ("enrollment", "user.sourcedId"): ("person_id", "person"),
        ("enrollment", "class.sourcedId"): ("section_id", "section"),
    }
    ref = refs.get((kind, f))
    if ref is not None and eq:
        return _ref_in(tbl.c[ref[0]], ref[1], tenant, c.value)
    return None


def split_filter(flt: Filter | None, kind: str, tenant: str, version: str = "1.2") -> tuple[list[ColumnElement[bool]], Filter | None]:
    """(SQL conditions, what is left for Python) of a filter."""
    if flt is None:
        return [], None
    sql = [clause_sql(c, kind, tenant, version) for c in flt.clauses]
    if flt.op == "OR":
        if all(s is not None for s in sql):
            return [or_(*sql)], None  # type: ignore[arg-type]
        return [], flt
    pushed = [s for s in sql if s is not None]
    rest = tuple(c for c, s in zip(flt.clauses, sql, strict=True) if s is None)
    return pushed, (Filter("AND", rest) if rest else None)


#: sort fields the store orders by itself
_SQL_SORT = {"dateLastModified": "updated_at", "sourcedId": "native_id", "status": "status"}


# --- answering a collection request --------------------------------------------------------


@dataclass
class Scope:
    """What a path fixes before the client's own parameters: SQL conditions on the kind's
    table, and a check on the canonical JSON for what no column holds (a person's orgs, a
    class's terms)."""

    where: list[ColumnElement[bool]] = field(default_factory=list)
    doc_check: Callable[[dict[str, Any]], bool] | None = None


#: (raw canonical JSON documents) -> their wire objects, in the same order
ToWire = Callable[[list[str]], list[dict[str, Any]]]


class RosterQueries:
    """The SQL the OneRoster provider needs, in one place: collection pages (count, order,
    offset, limit and the pushed-down filter), single objects by sourcedId, and the
    sourcedIds of referenced records. Read-only; every statement is bounded by tenant."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def find(self, tenant: str, kind: str, sourced_id: str, *, where: Iterable[ColumnElement[bool]] = ()) -> tuple[uuid.UUID, str] | None:
        """(id, canonical JSON) of the record of ``kind`` whose sourcedId is ``sourced_id``.

        sourcedId is the record's native id; two sources of one tenant could share one, and
        then the first by source wins (a tenant normally rosters from one SIS)."""
        tbl = t.RECORD_TABLES[kind]
        q = select(tbl.c.id, tbl.c.data).where(tbl.c.tenant == tenant, tbl.c.native_id == sourced_id, *where).order_by(tbl.c.source).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return (row[0], row[1]) if row else None

    def sourced_ids(self, tenant: str, kind: str, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
        """id -> sourcedId (native id) for records of ``kind``; ids not in the tenant are left out."""
        tbl = t.RECORD_TABLES[kind]
        want = list(dict.fromkeys(ids))
        out: dict[uuid.UUID, str] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(want), 500):
                q = select(tbl.c.id, tbl.c.native_id).where(tbl.c.tenant == tenant, tbl.c.id.in_(want[i : i + 500]))
                out.update({r[0]: r[1] for r in conn.execute(q)})
        return out

    def _base(self, tenant: str, kind: str, where: Sequence[ColumnElement[bool]]) -> Any:
        tbl = t.RECORD_TABLES[kind]
        return tbl, and_(tbl.c.tenant == tenant, *where)

    def statement(self, tenant: str, kind: str, q: ListQuery, scope: Scope) -> Any:
        """The SELECT of one page when SQL can answer all of it (used by ``collection`` and by
        the benchmark's EXPLAIN QUERY PLAN)."""
        pushed, _ = split_filter(q.filter, kind, tenant, q.version)
        tbl, cond = self._base(tenant, kind, [*scope.where, *pushed])
        order = self._order(tbl, q)
        return select(tbl.c.data).where(cond).order_by(*order).limit(q.limit).offset(q.offset)

    def _order(self, tbl: Any, q: ListQuery) -> list[Any]:
        cols = [tbl.c[_SQL_SORT[q.sort]]] if q.sort in _SQL_SORT else []
        cols += [tbl.c.updated_at, tbl.c.id] if q.sort != "dateLastModified" else [tbl.c.id]
        return [c.desc() if q.desc else c.asc() for c in cols]

    def collection(self, tenant: str, kind: str, q: ListQuery, scope: Scope, to_wire: ToWire) -> tuple[int, list[dict[str, Any]]]:
        """(X-Total-Count, the page's wire objects, fields selected)."""
        pushed, rest = split_filter(q.filter, kind, tenant, q.version) if not q.python_only else ([], q.filter)
        tbl, cond = self._base(tenant, kind, [*scope.where, *pushed])
        sql_sort = _SQL_SORT if not q.python_only else {}
        in_sql = rest is None and scope.doc_check is None and (q.sort is None or q.sort in sql_sort)
        with self.engine.connect() as conn:
            if in_sql:
                total = conn.scalar(select(func.count()).select_from(tbl).where(cond)) or 0
                if q.offset >= total:
                    return total, []
                rows = [r[0] for r in conn.execute(
                    select(tbl.c.data).where(cond).order_by(*self._order(tbl, q)).limit(q.limit).offset(q.offset))]
                return total, [select_fields(o, q.fields) for o in to_wire(rows)]
            # Python has a say: every row SQL lets through is turned into its wire object once.
            order = self._order(tbl, ListQuery(sort=q.sort if q.sort in sql_sort else None, desc=q.desc if q.sort in sql_sort or not q.sort else False))
            rows = [r[0] for r in conn.execute(select(tbl.c.data).where(cond).order_by(*order))]
        if scope.doc_check is not None:
            rows = [r for r in rows if scope.doc_check(orjson.loads(r))]
        objs: list[dict[str, Any]] = []
        for i in range(0, len(rows), 1000):
            objs.extend(to_wire(rows[i : i + 1000]))
        if rest is not None:
            objs = [o for o in objs if matches(o, rest)]
        if q.sort and q.sort not in sql_sort:
            key = q.sort
            present = [o for o in objs if o.get(key) is not None]
            absent = [o for o in objs if o.get(key) is None]
            present.sort(key=lambda o: _sort_key(o[key]), reverse=q.desc)  # stable: ties keep store order
            objs = present + absent
        total = len(objs)
        return total, [select_fields(o, q.fields) for o in objs[q.offset : q.offset + q.limit]]


__all__ = [
    "TYPE_FIELDS",
    "Clause",
    "Filter",
    "ListQuery",
    "RosterQueries",
    "Scope",
    "check_filter_fields",
    "clause_matches",
    "clause_sql",
    "matches",
    "parse_filter",
    "parse_list_query",
    "select_fields",
    "split_filter",
]
