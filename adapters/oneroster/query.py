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
* No filter or sort reaches a credential (``password``, ``userProfiles.credentials.password``,
  ``metadata.pin``: ``credentials``): such a field is refused exactly as a field the type
  does not have, whatever the caller's scopes; the secrets an entitled caller reads are
  added to the page after filtering and sorting.
* Without ``sort`` the order is the store's (dateLastModified, then id), which is also what
  makes offset paging stable between requests when nothing changes.

Evaluation: ``dateLastModified``, ``status`` and ``sourcedId`` always become conditions of
the store's roster queries (``gateway.store.roster``: SQL on the record table,
``dateLastModified`` on the indexed ``(tenant, updated_at, id)``), as do the promoted
columns a type has (org ``type``/``parent.sourcedId``, academic session ``type``/
``schoolYear``, class ``course.sourcedId``/``school.sourcedId``, course ``org.sourcedId``,
enrollment ``role``/``user.sourcedId``/``class.sourcedId``); everything else is evaluated in
Python over the wire object. With ``AND`` the SQL part narrows the rows and Python checks the
rest; an ``OR`` is pushed down only when every clause can be. This module maps OneRoster's
field names onto the store's canonical columns; the store owns the SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from gateway.model import Role
from gateway.store.roster import (
    AnyOf,
    Compare,
    Condition,
    ModifiedAt,
    OneOf,
    RefersTo,
    RosterQueries,
    RosterQuery,
    SqlCondition,
)

from .credentials import is_secret_path
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
        if head not in fields or is_secret_path(c.path):  # a credential: exactly as a field the type lacks
            name = head if head not in fields else c.field
            raise InvalidFilterField(f"invalid filter field {c.field!r} at position {c.position}: {wire_type} has no field {name!r}")
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
        if s not in fields or is_secret_path(s.split(".")):  # a credential: exactly as a field the type lacks
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


# --- the part of a filter the store can answer ---------------------------------------------


def _wire_vocab(column: str, version: str) -> tuple[Any, list[str]]:
    """(the mapping vocabulary a promoted column's wire token goes through, every canonical value)."""
    from gateway.model import OrgType, SessionType

    from .vocab import roles, vocabularies

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


#: (canonical kind, wire field) -> the promoted column whose wire token goes through a vocabulary
_VOCAB_COLUMNS = {("org", "type"): "org.type", ("academic_session", "type"): "academic_session.type",
                  ("enrollment", "role"): "enrollment.role"}
#: (canonical kind, dotted wire field) -> (the reference column, the kind it references)
_REF_COLUMNS = {
    ("org", "parent.sourcedId"): ("parent_id", "org"),
    ("course", "org.sourcedId"): ("org_id", "org"),
    ("section", "course.sourcedId"): ("course_id", "course"),
    ("section", "school.sourcedId"): ("org_id", "org"),
    ("enrollment", "user.sourcedId"): ("person_id", "person"),
    ("enrollment", "class.sourcedId"): ("section_id", "section"),
}


def clause_condition(c: Clause, kind: str, version: str = "1.2") -> SqlCondition | None:
    """The clause as a store condition on ``kind``'s records, or None when only Python can
    answer it. sourcedId is the record's native id, dateLastModified its ``updated_at`` (as
    the wire shows it, to the millisecond)."""
    if c.predicate == "~":
        return None
    f = c.field
    if f == "dateLastModified":
        return ModifiedAt(c.predicate, _as_datetime(c.value))  # type: ignore[arg-type]
    if f == "status":
        return Compare("status", c.predicate, c.value)
    if f == "sourcedId":
        return Compare("native_id", c.predicate, c.value)
    if kind == "academic_session" and f == "schoolYear":
        n = _as_number(c.value)
        return Compare("school_year", c.predicate, int(n)) if n is not None and n.is_integer() else None
    if c.predicate not in ("=", "!="):
        return None
    eq = c.predicate == "="
    vocab_col = _VOCAB_COLUMNS.get((kind, f))
    if vocab_col is not None:  # no values: no record shows that token (IS NULL / IS NOT NULL)
        return OneOf(vocab_col.split(".")[1], tuple(canonical_values(vocab_col, c.value, version)), negate=not eq)
    ref = _REF_COLUMNS.get((kind, f))
    if ref is not None and eq:
        return RefersTo(ref[0], ref[1], c.value)
    return None


def split_filter(flt: Filter | None, kind: str, version: str = "1.2") -> tuple[list[SqlCondition], Filter | None]:
    """(store conditions, what is left for Python) of a filter."""
    if flt is None:
        return [], None
    conds = [clause_condition(c, kind, version) for c in flt.clauses]
    if flt.op == "OR":
        if all(s is not None for s in conds):
            return [AnyOf(tuple(conds))], None  # type: ignore[arg-type]
        return [], flt
    pushed = [s for s in conds if s is not None]
    rest = tuple(c for c, s in zip(flt.clauses, conds, strict=True) if s is None)
    return pushed, (Filter("AND", rest) if rest else None)


#: sort fields the store orders by itself -> the column
_SQL_SORT = {"dateLastModified": "updated_at", "sourcedId": "native_id", "status": "status"}


# --- answering a collection request --------------------------------------------------------

#: (raw canonical JSON documents) -> their wire objects, in the same order
ToWire = Callable[[list[str]], list[dict[str, Any]]]


def roster_query(tenant: str, kind: str, q: ListQuery, scope: Sequence[Condition] = ()) -> RosterQuery:
    """The store query of a collection request when SQL answers all of it: what a path fixes
    (``scope``), the pushed-down filter and the sort (also for the benchmark's EXPLAIN)."""
    pushed, _ = split_filter(q.filter, kind, q.version)
    return RosterQuery(tenant, kind, (*scope, *pushed), _SQL_SORT.get(q.sort) if q.sort else None, q.desc)


def collection(roster: RosterQueries, tenant: str, kind: str, q: ListQuery, scope: Sequence[Condition],
               to_wire: ToWire, finish: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
               ) -> tuple[int, list[dict[str, Any]]]:
    """(X-Total-Count, the page's wire objects, fields selected) of a collection request.

    ``scope`` is what the path fixes before the client's own parameters (a subset such as
    students, a membership such as the classes of a user). When the store answers the
    whole filter and sort, it counts and pages; otherwise every row it lets through is
    turned into its wire object once, and Python filters, sorts and pages. ``finish`` then
    completes the page's objects, before fields are selected (the credentials an entitled
    caller reads: added after filtering and sorting, which never see them)."""
    done = finish or (lambda objs: objs)
    pushed, rest = split_filter(q.filter, kind, q.version) if not q.python_only else ([], q.filter)
    where = (*scope, *pushed)
    sql_sort = _SQL_SORT if not q.python_only else {}
    whole = RosterQuery(tenant, kind, where, sql_sort.get(q.sort) if q.sort else None, q.desc)
    if rest is None and whole.sql_only and (q.sort is None or q.sort in sql_sort):
        total, rows = roster.page(whole, limit=q.limit, offset=q.offset)
        return total, ([select_fields(o, q.fields) for o in done(to_wire(rows))] if rows else [])
    sorted_in_sql = q.sort in sql_sort
    rows = roster.documents(RosterQuery(tenant, kind, where, sql_sort[q.sort] if sorted_in_sql else None,  # type: ignore[index]
                                        q.desc if sorted_in_sql or not q.sort else False))
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
    return total, [select_fields(o, q.fields) for o in done(objs[q.offset : q.offset + q.limit])]


__all__ = [
    "TYPE_FIELDS",
    "Clause",
    "Filter",
    "ListQuery",
    "ToWire",
    "check_filter_fields",
    "clause_condition",
    "clause_matches",
    "collection",
    "matches",
    "parse_filter",
    "parse_list_query",
    "roster_query",
    "select_fields",
    "split_filter",
]
