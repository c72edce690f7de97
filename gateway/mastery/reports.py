"""Reports for schools, districts and states: where learners stand, how they progress, and
how much evidence arrives - counted by the database, exported as CSV, NDJSON or JSON.

Why it is built this way:

- **Counting happens in SQL.** A district report covers tens of thousands of learners and
  hundreds of competencies, so the distribution is a ``GROUP BY competency_id, level`` on
  ``mastery_states``' promoted columns (no state's JSON is ever parsed). Learner groups
  (a school, a section, a grade, a demographic group) are sets of learner ids, sent as one
  array parameter on PostgreSQL and in chunks on SQLite; every state belongs to exactly one
  learner, so counts add up - and a population that is most of the tenant is counted as
  the tenant's totals minus everyone else's (``StoredStates.level_counts``).
- **Who is in a group** comes from the roster: a school's learners are those enrolled (as
  students) in its sections or whose person roles name it as a student; a district's are
  its schools' (the ``parent_id`` tree of orgs). Grades and demographics live only in the
  people's JSON, so they are read once per report, for the learners concerned.
- **As of a past date** the states are not stored: ``MasteryEngine.states_as_of``
  re-derives them from the append-only evidence observed on or before that date, and the
  same counts are made in Python from those rows (``AsOfStates``). The engine is passed
  in, so tests can give a fake one.
- **De-identified** (state pulls): learner ids become HMAC-SHA256 pseudonyms keyed with a
  salt from the environment (never logged, never echoed); names, native ids, org and
  section titles are left out; counts are suppressed below ``min_cell`` (default 10) and
  then complementary cells too, so that a suppressed cell cannot be recovered by
  subtracting the published cells from a published or derivable total (see ``suppress``).
  Every suppressed cell carries the same mark (null in JSON, ``*`` in CSV): marking the
  complementary ones differently would tell a reader that they are at least ``min_cell``
  and narrow the small one down.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import hmac
import io
import os
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
import yaml
from sqlalchemy import (
    ARRAY,
    Connection,
    Engine,
    String,
    Uuid,
    and_,
    any_,
    bindparam,
    column,
    func,
    select,
    text,
)

from .. import PROJECT_ROOT
from ..errors import ConfigError, ErrorDetail, NotFound, ValidationError
from ..model import Status, utcnow
from ..store import Store
from ..store import tables as t
from ..store.db import UUIDType, max_params

ACTIVE = Status.active.value
STUDENT = "student"
KINDS = ("distribution", "progression", "evidence-volume", "states", "grades")
#: what a report can be grouped by: roster memberships, then a person's grade and demographics
GROUP_BY = ("org", "section", "grade", "sex", "race", "ethnicity", "group")
PERSON_GROUPINGS = frozenset({"grade", "sex", "race", "ethnicity", "group"})
STATUSES = ("accelerating", "on_track", "needs_short_term_support", "needs_intensive_support", "no_expected_competencies")
#: orgs whose learners are usually most of a tenant's (see ``Reports._district_ahead``)
WIDE_ORGS = frozenset({"national", "state", "district"})
THRESHOLDS = PROJECT_ROOT / "mappings" / "report-thresholds.yaml"
DEFAULT_MIN_CELL = 10
CSV_SUPPRESSED = "*"


class BadReportRequest(ValidationError):
    """A report parameter that cannot be used as given (400, naming the parameter)."""

    status = 400
    title = "Bad report request"
    type_slug = "bad-report-request"


def bad(param: str, message: str) -> BadReportRequest:
    return BadReportRequest("invalid report request", errors=[ErrorDetail(message, location="query", field=param)])


def unknown(param: str, what: str, rid: uuid.UUID) -> NotFound:
    return NotFound(f"no {what} with id {rid}", errors=[ErrorDetail(f"no {what} with this id in the tenant", location="query", field=param)])


class _Suppressed:
    """The value of a suppressed cell: null in JSON, ``*`` in CSV."""

    def __repr__(self) -> str:
        return "SUPPRESSED"


SUPPRESSED = _Suppressed()


# --- parameters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Which learners, competencies and date a report covers, and how it groups learners."""

    org: uuid.UUID | None = None
    section: uuid.UUID | None = None
    grade: str | None = None
    #: a demographic programme group (Demographics.groups), e.g. "ell"
    group: str | None = None
    competencies: tuple[uuid.UUID, ...] = ()
    framework: uuid.UUID | None = None
    group_by: str | None = None
    as_of: datetime | None = None

    def __post_init__(self) -> None:
        if self.group_by is not None and self.group_by not in GROUP_BY:
            raise bad("group_by", f"must be one of {', '.join(GROUP_BY)}")
        if self.as_of is not None:
            if self.as_of.tzinfo is None:
                object.__setattr__(self, "as_of", self.as_of.replace(tzinfo=UTC))
            if self.as_of > utcnow():
                raise bad("as_of", "must not be in the future")

    def parameters(self) -> dict[str, Any]:
        out = {
            "org": self.org, "section": self.section, "grade": self.grade, "group": self.group,
            "competency": list(self.competencies) or None, "framework": self.framework, "group_by": self.group_by,
            "as_of": self.as_of.isoformat() if self.as_of else None,
        }
        return {k: v for k, v in out.items() if v is not None}


def parse_scope(
    *, org: str | None = None, section: str | None = None, grade: str | None = None, group: str | None = None,
    competency: Sequence[str] = (), framework: str | None = None, group_by: str | None = None, as_of: str | None = None,
) -> Scope:
    """A Scope from text parameters (query string, command line); every problem is named."""
    errors: list[ErrorDetail] = []

    def ident(name: str, v: str) -> uuid.UUID | None:
        try:
            return uuid.UUID(v)
        except ValueError:
            errors.append(ErrorDetail(f"not a UUID: {v[:64]!r}", location="query", field=name))
            return None

    comps = [ident("competency", c) for v in competency for c in v.split(",") if c.strip()]
    when = None
    if as_of:
        try:
            when = datetime.fromisoformat(as_of)
            if "T" not in as_of and " " not in as_of:  # a date: the state at the end of that day (UTC), or now
                when = min(datetime.combine(when.date(), datetime.max.time(), UTC), utcnow())
        except ValueError:
            errors.append(ErrorDetail("must be an ISO 8601 date or date-time, e.g. 2026-09-01T00:00:00Z", location="query", field="as_of"))
    scope_ids = {name: ident(name, v) if v else None for name, v in (("org", org), ("section", section), ("framework", framework))}
    if errors:
        raise BadReportRequest("invalid report request", errors=errors)
    return Scope(org=scope_ids["org"], section=scope_ids["section"], grade=grade or None, group=group or None,
                 competencies=tuple(c for c in comps if c), framework=scope_ids["framework"], group_by=group_by or None, as_of=when)


@dataclass(frozen=True)
class Deidentify:
    """De-identified output: pseudonymous learner ids and small-cell suppression.

    ``salt`` keys the HMAC; it is needed only by reports with a row per learner."""

    salt: bytes | None = field(default=None, repr=False)
    min_cell: int = DEFAULT_MIN_CELL

    def __post_init__(self) -> None:
        if self.min_cell < 1:
            raise bad("min_cell", "must be at least 1")

    def pseudonym(self, learner: uuid.UUID) -> str:
        """HMAC-SHA256(salt, learner id): stable for one salt, unlinkable without it."""
        if self.salt is None:
            raise ConfigError("a de-identified report with a row per learner needs a salt (--salt-env VAR, or TESSERA_REPORT_SALT on the server)")
        return hmac.new(self.salt, learner.bytes, hashlib.sha256).hexdigest()


def salt_from_env(var: str) -> bytes:
    """The salt held by environment variable ``var``; its value is never put in a message."""
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"the environment variable {var} (the de-identification salt) is not set")
    if len(value) < 16:
        raise ConfigError(f"the salt in {var} is too short: use at least 16 random characters")
    return value.encode()


@dataclass(frozen=True)
class Thresholds:
    """Progression status thresholds on the pace (see mappings/report-thresholds.yaml)."""

    accelerating: float = 1.25
    on_track: float = 0.9
    short_term_support: float = 0.6
    min_expected_share: float = 0.1
    expected_share_without_term: float = 1.0

    def __post_init__(self) -> None:
        if not self.accelerating > self.on_track > self.short_term_support >= 0:
            raise ConfigError("progression thresholds must fall strictly: accelerating > on_track > short_term_support >= 0")
        if not 0 < self.min_expected_share <= 1:
            raise ConfigError("min_expected_share must be in (0, 1]")
        if not 0 <= self.expected_share_without_term <= 1:
            raise ConfigError("expected_share_without_term must be in [0, 1]")

    def status(self, mastered: int, expected: int, expected_share: float) -> str:
        if expected == 0:
            return "no_expected_competencies"
        pace = (mastered / expected) / max(expected_share, self.min_expected_share)
        if pace >= self.accelerating:
            return "accelerating"
        if pace >= self.on_track:
            return "on_track"
        if pace >= self.short_term_support:
            return "needs_short_term_support"
        return "needs_intensive_support"


def load_thresholds(path: Path | None = None) -> Thresholds:
    path = path or THRESHOLDS
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        data.pop("version", None)
        return Thresholds(**{k: float(v) for k, v in data.items()})
    except (OSError, yaml.YAMLError, TypeError, ValueError, AttributeError, ConfigError) as exc:
        raise ConfigError(f"{path.name}: {exc}; see the comments at its top") from None


@functools.cache
def default_thresholds() -> Thresholds:
    return load_thresholds()


# --- the report and its formats ----------------------------------------------------------------


@dataclass
class Report:
    kind: str
    columns: tuple[str, ...]
    rows: Iterable[dict[str, Any]]
    parameters: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _json_default(o: Any) -> Any:
    if o is SUPPRESSED:
        return None
    raise TypeError(f"cannot serialise {type(o).__name__}")


def _csv_cell(v: Any) -> Any:
    if v is SUPPRESSED:
        return CSV_SUPPRESSED
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    return v


def to_csv(report: Report, *, batch: int = 1000) -> Iterator[str]:
    """RFC 4180 CSV with a header row, in pieces of ``batch`` rows."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(report.columns)
    for n, row in enumerate(report.rows, 1):
        writer.writerow([_csv_cell(row.get(c)) for c in report.columns])
        if n % batch == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def to_ndjson(report: Report) -> Iterator[bytes]:
    for row in report.rows:
        yield orjson.dumps(row, default=_json_default) + b"\n"


def to_json(report: Report) -> Iterator[bytes]:
    head = {"report": report.kind, "parameters": report.parameters, "notes": report.notes}
    yield orjson.dumps(head, default=_json_default)[:-1] + b',"items":['
    first = True
    for row in report.rows:
        yield (b"" if first else b",") + orjson.dumps(row, default=_json_default)
        first = False
    yield b"]}"


FORMATS: dict[str, tuple[str, Callable[[Report], Iterator[Any]]]] = {
    "csv": ("text/csv; charset=utf-8", to_csv),
    "ndjson": ("application/x-ndjson", to_ndjson),
    "json": ("application/json", to_json),
}


# --- small-cell suppression ----------------------------------------------------------------------


def suppress(cells: dict[tuple[Any, Any], int], min_cell: int) -> tuple[set[tuple[Any, Any]], set[Any]]:
    """Which cells of a (row, column) -> count table to suppress, and which row totals.

    1. Primary: every count from 1 to ``min_cell - 1``; and every cell of a row whose total
       is below ``min_cell`` (zeros too: a zero next to a small total says where everyone is),
       along with that row's total.
    2. Complementary: the published row totals, and the column totals a reader can get from
       the same report without grouping, would give back a row's or a column's only
       suppressed cell by subtraction. So while some row or column has exactly one
       suppressed cell, the smallest non-zero published cell beside it is suppressed too
       (a zero would protect nothing: it is known to be zero). Repeats until stable.

    Differencing across reports with different filters or groupings is not prevented."""
    totals: Counter[Any] = Counter()
    for (r, _), v in cells.items():
        totals[r] += v
    small_rows = {r for r, v in totals.items() if v < min_cell}
    hidden = {k for k, v in cells.items() if 0 < v < min_cell or k[0] in small_rows}
    changed = True
    while changed:
        changed = False
        for axis in (0, 1):
            lines: dict[Any, list[tuple[Any, Any]]] = defaultdict(list)
            for k in cells:
                lines[k[axis]].append(k)
            for keys in lines.values():
                if sum(1 for k in keys if k in hidden) != 1:
                    continue
                visible = [k for k in keys if k not in hidden and cells[k] > 0]
                if visible:
                    hidden.add(min(visible, key=cells.__getitem__))
                    changed = True
    return hidden, small_rows


# --- where the states come from ----------------------------------------------------------------

StateRow = tuple[uuid.UUID, uuid.UUID, str | None, float | None, bool]
#: course -> (its learners, its competencies)
Courses = dict[uuid.UUID, tuple[set[uuid.UUID], list[uuid.UUID]]]
#: ``MasteryEngine.states_as_of``'s signature: (tenant, as_of, competency_ids) -> state rows
AsOf = Callable[[str, datetime, Sequence[uuid.UUID] | None], Iterable[StateRow]]


class StateSource(Protocol):
    def grouped_level_counts(self, groups: dict[str, set[uuid.UUID] | None], competencies: Sequence[uuid.UUID] | None) -> Counter[tuple[str, uuid.UUID, str | None]]: ...
    def level_counts(self, learners: Iterable[uuid.UUID] | None, competencies: Sequence[uuid.UUID] | None) -> Counter[tuple[uuid.UUID, str | None]]: ...
    def mastered_counts(self, learners: Iterable[uuid.UUID], competencies: Sequence[uuid.UUID]) -> Counter[uuid.UUID]: ...
    def mastered_per_course(self, courses: Courses) -> Counter[tuple[uuid.UUID, uuid.UUID]]: ...
    def states(self, learners: Iterable[uuid.UUID] | None, competencies: Sequence[uuid.UUID] | None) -> Iterator[StateRow]: ...


def learner_filters(engine: Engine, column: Any, learners: Iterable[uuid.UUID] | None, reserved: int = 0) -> Iterator[Any]:
    """WHERE clauses that together cover ``learners`` (one None: no filter).

    PostgreSQL takes the whole set as ONE array parameter (``= ANY(:ids)``), so a district
    is one scan, not one per chunk. SQLite has no arrays: chunks of ``IN (...)`` that fit
    its parameter limit (the counts of the chunks add up: a state has one learner)."""
    if learners is None:
        yield None
        return
    ids = sorted(learners)
    if not ids:
        return
    if engine.dialect.name == "postgresql":
        yield column == any_(bindparam("learners", ids, type_=ARRAY(Uuid())))
        return
    size = max(100, max_params(engine.dialect) - reserved - 50)
    for i in range(0, len(ids), size):
        yield column.in_(ids[i : i + size])


def count_by_group(
    engine: Engine, table: Any, groups: dict[str, set[uuid.UUID] | None], where: Sequence[Any], keys: Sequence[Any], reserved: int = 0,
) -> Counter[tuple[Any, ...]]:
    """``count(*)`` of ``table``'s rows per (group, *keys), for learner groups (by the table's
    ``learner_id``; a group of None: every learner).

    On PostgreSQL several groups are ONE scan: the (learner, group) pairs go in as two
    arrays, unnested and joined. Elsewhere, a query per group (and chunk)."""
    out: Counter[tuple[Any, ...]] = Counter()
    learner = table.c.learner_id
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql" and len(groups) > 1 and None not in groups.values():
            pairs = sorted((x, g) for g, learners in groups.items() for x in learners or ())
            members = func.unnest(
                bindparam("members", [x for x, _ in pairs], type_=ARRAY(Uuid())), bindparam("groups", [g for _, g in pairs], type_=ARRAY(String())),
            ).table_valued("learner_id", "grp", name="members").render_derived()
            q = (select(members.c.grp, *keys, func.count()).select_from(table.join(members, learner == members.c.learner_id))
                 .where(*where).group_by(members.c.grp, *keys))
            for g, *k, n in conn.execute(q):
                out[(g, *k)] += n
            return out
        for g, learners in groups.items():
            for only in learner_filters(engine, learner, learners, reserved):
                q = select(*keys, func.count()).where(*where)
                for *k, n in conn.execute((q if only is None else q.where(only)).group_by(*keys)):
                    out[(g, *k)] += n
    return out


class StoredStates:
    """The current states, counted by the database on ``mastery_states``' promoted columns."""

    def __init__(self, engine: Engine, tenant: str) -> None:
        self.engine, self.tenant = engine, tenant
        #: the whole tenant's level counts, when someone has started them already
        self.tenant_counts: Future[Counter[tuple[uuid.UUID, str | None]]] | None = None

    @functools.cached_property
    def people(self) -> set[uuid.UUID]:
        """Every person id of the tenant (whatever their status): all a state can belong to."""
        with self.engine.connect() as conn:
            return set(conn.scalars(select(t.people.c.id).where(t.people.c.tenant == self.tenant)))

    def _select(self, cols: Sequence[Any], competencies: Sequence[uuid.UUID] | None) -> Any:
        return select(*cols).where(*self._where(competencies))

    def level_counts(self, learners: Iterable[uuid.UUID] | None, competencies: Sequence[uuid.UUID] | None) -> Counter[tuple[uuid.UUID, str | None]]:
        """Learners per (competency, level). For a population that is most of the tenant (a
        district that is the whole tenant but its teachers), the tenant's counts minus
        those of everyone else: two cheap queries instead of one filtered scan."""
        if competencies is not None and not competencies:
            return Counter()
        if learners is not None:
            learners = set(learners)
            rest = self.people - learners
            if len(rest) < len(learners):
                total = Counter(self.tenant_counts.result()) if self.tenant_counts else self._level_counts(None, competencies)
                if rest:
                    total.subtract(self._level_counts(rest, competencies))
                return +total
        return self._level_counts(learners, competencies)

    def grouped_level_counts(self, groups: dict[str, set[uuid.UUID] | None], competencies: Sequence[uuid.UUID] | None) -> Counter[tuple[str, uuid.UUID, str | None]]:
        """Learners per (group, competency, level)."""
        if len(groups) <= 1 or (competencies is not None and not competencies):
            return _per_group(self, groups, competencies)
        ms = t.mastery_states
        return count_by_group(self.engine, ms, groups, self._where(competencies), (ms.c.competency_id, ms.c.level), len(competencies or ()))

    def _where(self, competencies: Sequence[uuid.UUID] | None) -> list[Any]:
        ms = t.mastery_states
        where = [ms.c.tenant == self.tenant, ms.c.status == ACTIVE]
        if competencies is not None:
            where.append(ms.c.competency_id.in_(list(competencies)))
        return where

    def _level_counts(self, learners: Iterable[uuid.UUID] | None, competencies: Sequence[uuid.UUID] | None) -> Counter[tuple[uuid.UUID, str | None]]:
        ms = t.mastery_states
        counts = count_by_group(self.engine, ms, {"": learners}, self._where(competencies), (ms.c.competency_id, ms.c.level),
                                len(competencies or ()))
        return Counter({(comp, level): n for (_, comp, level), n in counts.items()})

    def mastered_counts(self, learners: Iterable[uuid.UUID], competencies: Sequence[uuid.UUID]) -> Counter[uuid.UUID]:
        ms = t.mastery_states
        out: Counter[uuid.UUID] = Counter()
        if not competencies:
            return out
        with self.engine.connect() as conn:
            for where in learner_filters(self.engine, ms.c.learner_id, learners, len(competencies)):
                q = self._select((ms.c.learner_id, func.count()), competencies).where(where, ms.c.mastered.is_(True))
                out.update(dict(conn.execute(q.group_by(ms.c.learner_id)).all()))
        return out

    def mastered_per_course(self, courses: Courses) -> Counter[tuple[uuid.UUID, uuid.UUID]]:
        """Mastered competencies per (learner, course). On PostgreSQL every course is one
        scan: the (learner, course) and (course, competency) pairs go in as arrays."""
        if len(courses) <= 1 or self.engine.dialect.name != "postgresql":
            return _per_course(self, courses)
        ms = t.mastery_states
        takes = sorted((x, c) for c, (learners, _) in courses.items() for x in learners)
        covers = sorted((c, k) for c, (_, comps) in courses.items() for k in comps)
        ids = ARRAY(Uuid())
        took = func.unnest(bindparam("took_l", [x for x, _ in takes], ids), bindparam("took_c", [c for _, c in takes], ids)
                           ).table_valued("learner_id", "course_id", name="took").render_derived()
        has = func.unnest(bindparam("has_c", [c for c, _ in covers], ids), bindparam("has_k", [k for _, k in covers], ids)
                          ).table_valued("course_id", "competency_id", name="has").render_derived()
        joined = ms.join(took, ms.c.learner_id == took.c.learner_id).join(
            has, and_(has.c.course_id == took.c.course_id, has.c.competency_id == ms.c.competency_id))
        q = (self._select((took.c.learner_id, took.c.course_id, func.count()), None).select_from(joined)
             .where(ms.c.mastered.is_(True)).group_by(took.c.learner_id, took.c.course_id))
        with self.engine.connect() as conn:
            return Counter({(x, c): n for x, c, n in conn.execute(q)})

    def states(self, learners: Iterable[uuid.UUID] | None, competencies: Sequence[uuid.UUID] | None) -> Iterator[StateRow]:
        ms = t.mastery_states
        cols = (ms.c.learner_id, ms.c.competency_id, ms.c.level, ms.c.value, ms.c.mastered)
        with self.engine.connect() as conn:
            for where in learner_filters(self.engine, ms.c.learner_id, learners, len(competencies or ())):
                q = self._select(cols, competencies)
                q = (q if where is None else q.where(where)).order_by(ms.c.learner_id, ms.c.competency_id)
                for row in conn.execution_options(stream_results=True, yield_per=5000).execute(q):
                    yield row[0], row[1], row[2], row[3], bool(row[4])


class AsOfStates:
    """States at a past date: rows of ``MasteryEngine.states_as_of`` (derived learner by
    learner from the evidence), counted here as they stream by. One pass, read once: only
    the counts are kept, never the tenant's states."""

    def __init__(self, rows: Iterable[StateRow]) -> None:
        self._rows: Iterable[StateRow] | None = rows

    def _once(self, competencies: Sequence[uuid.UUID] | None) -> Iterator[StateRow]:
        rows, self._rows = self._rows, None
        if rows is None:
            raise RuntimeError("as-of states stream once: make a new source for another count")
        keep = set(competencies) if competencies is not None else None
        return (r for r in rows if keep is None or r[1] in keep)

    def grouped_level_counts(self, groups: dict[str, set[uuid.UUID] | None], competencies: Sequence[uuid.UUID] | None) -> Counter[tuple[str, uuid.UUID, str | None]]:
        everyone = [g for g, learners in groups.items() if learners is None]
        member: dict[uuid.UUID, list[str]] = defaultdict(list)
        for g, learners in groups.items():
            for x in learners or ():
                member[x].append(g)
        out: Counter[tuple[str, uuid.UUID, str | None]] = Counter()
        for x, comp, level, _, _ in self._once(competencies):
            for g in (*everyone, *member.get(x, ())):
                out[(g, comp, level)] += 1
        return out

    def level_counts(self, learners: Iterable[uuid.UUID] | None, competencies: Sequence[uuid.UUID] | None) -> Counter[tuple[uuid.UUID, str | None]]:
        counts = self.grouped_level_counts({"": None if learners is None else set(learners)}, competencies)
        return Counter({(comp, level): n for (_, comp, level), n in counts.items()})

    def mastered_per_course(self, courses: Courses) -> Counter[tuple[uuid.UUID, uuid.UUID]]:
        takes: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        for course, (learners, _) in courses.items():
            for x in learners:
                takes[x].append(course)
        covers = {course: set(comps) for course, (_, comps) in courses.items()}
        out: Counter[tuple[uuid.UUID, uuid.UUID]] = Counter()
        for x, comp, _, _, mastered in self._once(None):
            for course in takes.get(x, ()) if mastered else ():
                if comp in covers[course]:
                    out[(x, course)] += 1
        return out

    def mastered_counts(self, learners: Iterable[uuid.UUID], competencies: Sequence[uuid.UUID]) -> Counter[uuid.UUID]:
        one = uuid.UUID(int=0)
        return Counter({x: n for (x, _), n in self.mastered_per_course({one: (set(learners), list(competencies))}).items()})

    def states(self, learners: Iterable[uuid.UUID] | None, competencies: Sequence[uuid.UUID] | None) -> Iterator[StateRow]:
        only = set(learners) if learners is not None else None
        return (r for r in self._once(competencies) if only is None or r[0] in only)


def _per_group(source: StateSource, groups: dict[str, set[uuid.UUID] | None], competencies: Sequence[uuid.UUID] | None) -> Counter[tuple[str, uuid.UUID, str | None]]:
    out: Counter[tuple[str, uuid.UUID, str | None]] = Counter()
    for g, learners in groups.items():
        for (comp, level), n in source.level_counts(learners, competencies).items():
            out[(g, comp, level)] = n
    return out


def _per_course(source: StateSource, courses: Courses) -> Counter[tuple[uuid.UUID, uuid.UUID]]:
    out: Counter[tuple[uuid.UUID, uuid.UUID]] = Counter()
    for course, (learners, comps) in courses.items():
        for x, n in source.mastered_counts(learners, comps).items():
            out[(x, course)] = n
    return out


def engine_as_of(store: Store) -> AsOf:
    """``MasteryEngine(store).states_as_of``, imported when first needed."""

    def states_as_of(tenant: str, as_of: datetime, competency_ids: Sequence[uuid.UUID] | None) -> Iterable[StateRow]:
        from .engine import MasteryEngine

        return MasteryEngine(store).states_as_of(tenant, as_of, competency_ids)

    return states_as_of


# --- who is in the report ----------------------------------------------------------------------


@dataclass
class Population:
    """The learners a report covers (None: every learner of the tenant, no filter), the
    groups they fall into (group key -> learners; one group "all" when ungrouped), a label
    for each group, and each learner's student sections (when asked for)."""

    learners: set[uuid.UUID] | None
    groups: dict[str, set[uuid.UUID] | None]
    labels: dict[str, str] = field(default_factory=dict)
    sections: dict[uuid.UUID, set[uuid.UUID]] = field(default_factory=dict)


def _active(tbl: Any, tenant: str) -> Any:
    return (tbl.c.tenant == tenant) & (tbl.c.status == ACTIVE)


class Roster:
    """Roster look-ups for one report, on one connection."""

    def __init__(self, conn: Connection, tenant: str) -> None:
        self.conn, self.tenant = conn, tenant

    @functools.cached_property
    def orgs(self) -> dict[uuid.UUID, tuple[uuid.UUID | None, str, str]]:
        """org id -> (parent id, name, type); a tenant has few orgs."""
        q = select(t.orgs.c.id, t.orgs.c.parent_id, t.orgs.c.data, t.orgs.c.type).where(_active(t.orgs, self.tenant))
        return {rid: (parent, orjson.loads(data)["name"], kind) for rid, parent, data, kind in self.conn.execute(q)}

    def subtree(self, org: uuid.UUID) -> set[uuid.UUID]:
        """The org and every org below it (a district's schools, their departments...)."""
        if org not in self.orgs:
            raise unknown("org", "org", org)
        children: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        for rid, (parent, *_) in self.orgs.items():
            if parent is not None:
                children[parent].append(rid)
        out, todo = set(), [org]
        while todo:
            o = todo.pop()
            if o not in out:
                out.add(o)
                todo.extend(children[o])
        return out

    def section(self, sid: uuid.UUID) -> dict[str, Any]:
        data = self.conn.scalar(select(t.sections.c.data).where(_active(t.sections, self.tenant), t.sections.c.id == sid))
        if data is None:
            raise unknown("section", "section", sid)
        return orjson.loads(data)

    def enrolled(self, *, orgs: set[uuid.UUID] | None = None, section: uuid.UUID | None = None) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]:
        """(learner, section, section's org) of active student enrollments."""
        e, s = t.enrollments, t.sections
        q = (
            select(e.c.person_id, s.c.id, s.c.org_id)
            .join(s, s.c.id == e.c.section_id)
            .where(_active(e, self.tenant), _active(s, self.tenant), e.c.role == STUDENT)
        )
        if section is not None:
            q = q.where(s.c.id == section)
        if orgs is not None:
            q = q.where(s.c.org_id.in_(sorted(orgs)))
        return self.conn.execute(q).all()  # type: ignore[return-value]

    def people(self, ids: Iterable[uuid.UUID] | None = None) -> dict[uuid.UUID, dict[str, Any]]:
        """People's JSON documents: of ``ids``, or of every person whose primary role is student."""
        p = t.people
        base = select(p.c.id, p.c.data).where(_active(p, self.tenant))
        if ids is None:
            return {rid: orjson.loads(d) for rid, d in self.conn.execute(base.where(p.c.primary_role == STUDENT))}
        out: dict[uuid.UUID, dict[str, Any]] = {}
        for where in learner_filters(self.conn.engine, p.c.id, ids):
            out.update((rid, orjson.loads(d)) for rid, d in self.conn.execute(base.where(where)))
        return out

    def student_roles(self, orgs: set[uuid.UUID] | None) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """(person, org) of every student role a person's record names (in ``orgs``).

        Roles are not a promoted column, so the database reads them from the JSON with its
        own functions (jsonb on PostgreSQL, JSON1 on SQLite): only ids cross the wire."""
        pg = self.conn.engine.dialect.name == "postgresql"
        if pg:
            sql = ("SELECT p.id, r ->> 'org_id' FROM people p CROSS JOIN LATERAL jsonb_array_elements(p.data::jsonb -> 'roles') r "
                   "WHERE p.tenant = :tenant AND p.status = :active AND r ->> 'role' = :student")
        else:
            sql = ("SELECT p.id, json_extract(r.value, '$.org_id') FROM people p, json_each(p.data, '$.roles') r "
                   "WHERE p.tenant = :tenant AND p.status = :active AND json_extract(r.value, '$.role') = :student")
        params: dict[str, Any] = {"tenant": self.tenant, "active": ACTIVE, "student": STUDENT}
        if orgs is not None:
            params["orgs"] = sorted(str(o) for o in orgs)
            sql += " AND r ->> 'org_id' = ANY(:orgs)" if pg else " AND json_extract(r.value, '$.org_id') IN :orgs"
        q = text(sql).columns(column("id", UUIDType()), column("org", String()))
        if not pg and orgs is not None:
            q = q.bindparams(bindparam("orgs", expanding=True))
        orgs_by_text = functools.lru_cache(maxsize=None)(uuid.UUID)  # a few orgs, named by many people
        return [(pid, orgs_by_text(org)) for pid, org in self.conn.execute(q, params).all()]


def _person_groups(doc: dict[str, Any], by: str) -> list[str]:
    """The groups a person falls into by grade or by a demographic (CEDS-style categories)."""
    if by == "grade":
        return list(doc.get("grades") or ["unknown"])
    demo = doc.get("demographics") or {}
    if by == "sex":
        return [demo.get("sex") or "unknown"]
    if by == "race":
        races = demo.get("races") or []
        return [races[0] if len(races) == 1 else "two_or_more_races" if races else "unknown"]
    if by == "ethnicity":
        h = demo.get("hispanic_or_latino")
        return ["unknown" if h is None else "hispanic_or_latino" if h else "not_hispanic_or_latino"]
    return list(demo.get("groups") or ["none"])


def resolve_population(conn: Connection, tenant: str, scope: Scope, *, need_sections: bool = False) -> Population:
    """Which learners ``scope`` covers and how they group (404 naming an unknown org/section)."""
    roster = Roster(conn, tenant)
    org_set = roster.subtree(scope.org) if scope.org is not None else None
    if scope.section is not None:
        roster.section(scope.section)
    by_roster = scope.org is not None or scope.section is not None or scope.group_by in ("org", "section") or need_sections
    by_person = scope.grade is not None or scope.group is not None or scope.group_by in PERSON_GROUPINGS
    if not by_roster and not by_person:
        return Population(None, {"all": None})

    sections: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    orgs_of: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    learners: set[uuid.UUID] | None = None
    docs: dict[uuid.UUID, dict[str, Any]] | None = None
    if by_roster:
        enrolled = roster.enrolled(orgs=org_set, section=scope.section)
        # a person's roles name their school even without enrollments
        named = roster.student_roles(org_set) if scope.section is None else []
        if scope.group_by in ("org", "section") or need_sections:
            for learner, sid, oid in enrolled:
                sections[learner].add(sid)
                orgs_of[learner].add(oid)
            for pid, oid in named:
                orgs_of[pid].add(oid)
        learners = {row[0] for row in enrolled}
        learners.update(pid for pid, _ in named)
    if by_person:
        docs = roster.people(learners)
        if learners is None:
            learners = set(docs)
        learners = {x for x in learners if _person_matches(docs.get(x, {}), scope)}

    assert learners is not None
    groups, labels = _group(scope, learners, sections, orgs_of, docs or {}, roster)
    return Population(learners, groups, labels, {x: sections[x] for x in learners if x in sections} if need_sections else {})


def _person_matches(doc: dict[str, Any], scope: Scope) -> bool:
    if scope.grade is not None and scope.grade not in (doc.get("grades") or ()):
        return False
    return scope.group is None or scope.group in ((doc.get("demographics") or {}).get("groups") or ())


def _group(
    scope: Scope, learners: set[uuid.UUID], sections: dict[uuid.UUID, set[uuid.UUID]], orgs_of: dict[uuid.UUID, set[uuid.UUID]],
    docs: dict[uuid.UUID, dict[str, Any]], roster: Roster,
) -> tuple[dict[str, set[uuid.UUID] | None], dict[str, str]]:
    if scope.group_by is None:
        return {"all": learners}, {}
    groups: dict[str, set[uuid.UUID]] = defaultdict(set)
    for x in learners:
        if scope.group_by == "org":
            keys = [str(o) for o in orgs_of.get(x, ())]
        elif scope.group_by == "section":
            keys = [str(s) for s in sections.get(x, ()) if scope.section is None or s == scope.section]
        else:
            keys = _person_groups(docs.get(x, {}), scope.group_by)
        for k in keys:
            groups[k].add(x)
    labels: dict[str, str] = {}
    if scope.group_by == "org":
        labels = {k: roster.orgs[uuid.UUID(k)][1] for k in groups if uuid.UUID(k) in roster.orgs}
    elif scope.group_by == "section":
        labels = {k: roster.section(uuid.UUID(k)).get("title", "") for k in groups}
    return dict(sorted(groups.items())), labels


def resolve_competencies(conn: Connection, tenant: str, scope: Scope) -> tuple[list[uuid.UUID] | None, dict[uuid.UUID, str | None]]:
    """The competencies a report is limited to (None: all) and every competency's code."""
    c = t.competencies
    codes: dict[uuid.UUID, str | None] = {}
    by_framework: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for cid, code, fw in conn.execute(select(c.c.id, c.c.code, c.c.framework_id).where(_active(c, tenant))):
        codes[cid] = code
        by_framework[fw].append(cid)
    chosen: list[uuid.UUID] | None = None
    for cid in scope.competencies:
        if cid not in codes:
            raise unknown("competency", "competency", cid)
    if scope.competencies:
        chosen = list(dict.fromkeys(scope.competencies))
    if scope.framework is not None:
        exists = conn.scalar(select(t.frameworks.c.id).where(_active(t.frameworks, tenant), t.frameworks.c.id == scope.framework))
        if exists is None:
            raise unknown("framework", "framework", scope.framework)
        in_fw = by_framework.get(scope.framework, [])
        chosen = [x for x in chosen if x in set(in_fw)] if chosen is not None else in_fw
    return chosen, codes


# --- the reports -------------------------------------------------------------------------------


class Reports:
    """Builds every report kind for one store.

    ``as_of`` gives the states at a past date; by default the mastery engine's
    ``states_as_of`` (tests pass a fake). ``thresholds`` are the progression statuses'."""

    def __init__(self, store: Store, *, as_of: AsOf | None = None, thresholds: Thresholds | None = None) -> None:
        self.store = store
        self.as_of = as_of or engine_as_of(store)
        self.thresholds = thresholds or default_thresholds()

    def build(self, kind: str, tenant: str, scope: Scope, deid: Deidentify | None = None, **options: Any) -> Report:
        if kind == "grades":
            from .grades import grade_report

            return grade_report(self, tenant, scope, deid, **options)
        build = {
            "distribution": self.distribution, "progression": self.progression,
            "evidence-volume": self.evidence_volume, "states": self.states,
        }.get(kind)
        if build is None:
            raise bad("kind", f"unknown report; expected one of {', '.join(KINDS)}")
        return build(tenant, scope, deid)

    def source(self, tenant: str, scope: Scope, competencies: Sequence[uuid.UUID] | None) -> StateSource:
        if scope.as_of is None:
            return StoredStates(self.store.engine, tenant)
        return AsOfStates(self.as_of(tenant, scope.as_of, competencies))

    def _resolve(self, tenant: str, scope: Scope, *, need_sections: bool = False) -> tuple[Population, list[uuid.UUID] | None, dict[uuid.UUID, str | None]]:
        with self.store.engine.connect() as conn:
            comps, codes = resolve_competencies(conn, tenant, scope)
            pop = resolve_population(conn, tenant, scope, need_sections=need_sections)
        return pop, comps, codes

    def _district_ahead(self, tenant: str, scope: Scope) -> tuple[Population, list[uuid.UUID] | None, dict[uuid.UUID, str | None], StateSource]:
        """``_resolve`` for a district-wide distribution, with the tenant's counts made in a
        second thread while the roster is read: a district is usually most of its tenant,
        so ``StoredStates.level_counts`` will want them (tenant minus everyone else)."""
        with self.store.engine.connect() as conn:
            comps, codes = resolve_competencies(conn, tenant, scope)
            roster = Roster(conn, tenant)
            if scope.org not in roster.orgs or roster.orgs[scope.org][2] not in WIDE_ORGS:
                pop = resolve_population(conn, tenant, scope)
                return pop, comps, codes, self.source(tenant, scope, comps)
            source = StoredStates(self.store.engine, tenant)
            with ThreadPoolExecutor(1) as pool:
                source.tenant_counts = pool.submit(source.level_counts, None, comps)
                pop = resolve_population(conn, tenant, scope)
                source.tenant_counts.result()  # before the pool closes, and so that its errors surface here
        return pop, comps, codes, source

    @staticmethod
    def _parameters(tenant: str, scope: Scope, deid: Deidentify | None) -> dict[str, Any]:
        out = {"tenant": tenant, **scope.parameters(), "deidentified": deid is not None}
        if deid is not None:
            out["min_cell"] = deid.min_cell
        return out

    @staticmethod
    def _notes(scope: Scope, deid: Deidentify | None) -> list[str]:
        notes = []
        if scope.group_by in ("org", "section", "grade", "group"):
            notes.append(f"a learner in several groups ({scope.group_by}) is counted in each")
        if deid is not None:
            notes.append(f"counts from 1 to {deid.min_cell - 1}, and complementary cells that would reveal them, are "
                         f"suppressed (null in JSON, {CSV_SUPPRESSED} in CSV)")
        return notes

    @staticmethod
    def _group_columns(deid: Deidentify | None) -> tuple[str, ...]:
        return ("group_by", "group") if deid is not None else ("group_by", "group", "group_label")

    def _group_fields(self, scope: Scope, pop: Population, key: str, deid: Deidentify | None) -> dict[str, Any]:
        out = {"group_by": scope.group_by or "", "group": key}
        if deid is None:
            out["group_label"] = pop.labels.get(key, "")
        return out

    def distribution(self, tenant: str, scope: Scope, deid: Deidentify | None = None) -> Report:
        """Learners per competency and level, per group: ``learners`` at the level, of
        ``assessed`` (learners of the group with a state on the competency)."""
        if scope.as_of is None and scope.group_by is None and scope.org is not None:
            pop, comps, codes, source = self._district_ahead(tenant, scope)
        else:
            pop, comps, codes = self._resolve(tenant, scope)
            source = self.source(tenant, scope, comps)
        blocks: dict[uuid.UUID, dict[tuple[str, str | None], int]] = defaultdict(dict)
        for (key, comp, level), n in source.grouped_level_counts(pop.groups, comps).items():
            blocks[comp][(key, level)] = n
        rows: list[dict[str, Any]] = []
        for comp in sorted(blocks, key=lambda c: (codes.get(c) or "", str(c))):
            cells = blocks[comp]
            levels = sorted({lv for _, lv in cells}, key=lambda lv: (lv is None, lv or ""))
            keys = sorted({g for g, _ in cells})
            table = {(g, lv): cells.get((g, lv), 0) for g in keys for lv in levels}
            hidden, small = suppress(table, deid.min_cell) if deid else (set(), set())
            for g in keys:
                assessed = sum(table[(g, lv)] for lv in levels)
                for lv in levels:
                    rows.append({
                        **self._group_fields(scope, pop, g, deid), "competency_id": comp, "competency_code": codes.get(comp),
                        "level": lv, "learners": SUPPRESSED if (g, lv) in hidden else table[(g, lv)],
                        "assessed": SUPPRESSED if g in small else assessed,
                    })
        columns = (*self._group_columns(deid), "competency_id", "competency_code", "level", "learners", "assessed")
        return Report("distribution", columns, rows, self._parameters(tenant, scope, deid), self._notes(scope, deid))

    def progression(self, tenant: str, scope: Scope, deid: Deidentify | None = None) -> Report:
        """Learners per progression status, per group (statuses: mappings/report-thresholds.yaml)."""
        pop, comps, _ = self._resolve(tenant, scope, need_sections=True)
        assert pop.learners is not None
        status = self.learner_statuses(tenant, scope, pop, comps)
        table = {(g, s): 0 for g in pop.groups for s in STATUSES}
        for g, learners in pop.groups.items():
            for x in learners or ():
                table[(g, status[x])] += 1
        hidden, small = suppress(table, deid.min_cell) if deid else (set(), set())
        rows = []
        for g in pop.groups:
            total = sum(table[(g, s)] for s in STATUSES)
            for s in STATUSES:
                rows.append({**self._group_fields(scope, pop, g, deid), "status": s,
                             "learners": SUPPRESSED if (g, s) in hidden else table[(g, s)],
                             "group_learners": SUPPRESSED if g in small else total})
        columns = (*self._group_columns(deid), "status", "learners", "group_learners")
        return Report("progression", columns, rows, self._parameters(tenant, scope, deid), self._notes(scope, deid))

    def learner_statuses(self, tenant: str, scope: Scope, pop: Population, comps: list[uuid.UUID] | None) -> dict[uuid.UUID, str]:
        """Each learner's status: mastered share of the competencies of their courses against
        the elapsed share of their sections' terms (see mappings/report-thresholds.yaml)."""
        assert pop.learners is not None
        at = scope.as_of or utcnow()
        with self.store.engine.connect() as conn:
            plan = _course_plan(conn, tenant, {s for ss in pop.sections.values() for s in ss}, at, self.thresholds)
        keep = set(comps) if comps is not None else None
        mastered: Counter[uuid.UUID] = Counter()
        expected: Counter[uuid.UUID] = Counter()
        paced: dict[uuid.UUID, float] = defaultdict(float)
        source = self.source(tenant, scope, comps)
        by_course: dict[uuid.UUID, dict[uuid.UUID, float]] = defaultdict(dict)  # course -> learner -> elapsed share
        for x, secs in pop.sections.items():
            for s in secs:
                course, elapsed = plan.sections[s]
                by_course[course][x] = max(elapsed, by_course[course].get(x, 0.0))
        courses: dict[uuid.UUID, tuple[set[uuid.UUID], list[uuid.UUID]]] = {}
        for course, learners in by_course.items():
            k = [c for c in plan.competencies.get(course, ()) if keep is None or c in keep]
            if not k:
                continue
            courses[course] = (set(learners), k)
            for x, elapsed in learners.items():
                expected[x] += len(k)
                paced[x] += len(k) * elapsed
        for (x, _), n in source.mastered_per_course(courses).items():
            mastered[x] += n
        return {x: self.thresholds.status(mastered[x], expected[x], paced[x] / expected[x] if expected[x] else 0.0) for x in pop.learners}

    def evidence_volume(self, tenant: str, scope: Scope, deid: Deidentify | None = None) -> Report:
        """Evidence items (not voided) per month observed, source and evidence kind, per group."""
        pop, comps, _ = self._resolve(tenant, scope)
        ev = t.evidence
        engine = self.store.engine
        month = (func.strftime("%Y-%m", ev.c.observed_at) if engine.dialect.name == "sqlite"
                 else func.to_char(func.timezone("UTC", ev.c.observed_at), "YYYY-MM"))
        where = [_active(ev, tenant), ev.c.voided.is_(False)]
        if comps is not None:
            where.append(ev.c.competency_id.in_(comps))
        if scope.as_of is not None:
            where.append(ev.c.observed_at <= scope.as_of)
        blocks: dict[str, dict[tuple[str, tuple[str, str]], int]] = defaultdict(dict)
        for (g, m, src, kind), n in count_by_group(engine, ev, pop.groups, where, (month, ev.c.source, ev.c.evidence_kind), len(comps or ())).items():
            blocks[g][(m, (src, kind))] = n
        rows = []
        for g, cells in blocks.items():
            months = sorted({m for m, _ in cells})
            cols = sorted({c for _, c in cells})
            table = {(m, c): cells.get((m, c), 0) for m in months for c in cols}
            hidden, _ = suppress(table, deid.min_cell) if deid else (set(), set())
            for (m, (src, kind)), n in table.items():
                if n or (m, (src, kind)) in hidden:
                    rows.append({**self._group_fields(scope, pop, g, deid), "month": m, "source": src, "evidence_kind": kind,
                                 "items": SUPPRESSED if (m, (src, kind)) in hidden else n})
        columns = (*self._group_columns(deid), "month", "source", "evidence_kind", "items")
        return Report("evidence-volume", columns, rows, self._parameters(tenant, scope, deid), self._notes(scope, deid))

    def states(self, tenant: str, scope: Scope, deid: Deidentify | None = None) -> Report:
        """One row per learner and competency, streamed; de-identified: pseudonymous learners."""
        if scope.group_by is not None:
            raise bad("group_by", "the states report has a row per learner and competency: it has no groups")
        pop, comps, codes = self._resolve(tenant, scope)
        if deid is not None:
            deid.pseudonym(uuid.UUID(int=0))  # no salt: refuse now, not halfway through the stream
        source = self.source(tenant, scope, comps)
        who = "learner" if deid is not None else "learner_id"

        def rows() -> Iterator[dict[str, Any]]:
            for learner, comp, level, value, mastered in source.states(pop.learners, comps):
                yield {who: deid.pseudonym(learner) if deid else learner, "competency_id": comp,
                       "competency_code": codes.get(comp), "level": level, "value": value, "mastered": mastered}

        columns = (who, "competency_id", "competency_code", "level", "value", "mastered")
        return Report("states", columns, rows(), self._parameters(tenant, scope, deid), [])


@dataclass
class _CoursePlan:
    #: section -> (course, elapsed share of its term at the report date)
    sections: dict[uuid.UUID, tuple[uuid.UUID, float]]
    #: course -> its competencies
    competencies: dict[uuid.UUID, list[uuid.UUID]]


def _course_plan(conn: Connection, tenant: str, section_ids: set[uuid.UUID], at: datetime, th: Thresholds) -> _CoursePlan:
    """Courses and term dates of the given sections, read from their JSON (few per report)."""

    def docs(tbl: Any, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
        ids, out = sorted(ids), {}
        for i in range(0, len(ids), 500):
            q = select(tbl.c.id, tbl.c.data).where(_active(tbl, tenant), tbl.c.id.in_(ids[i : i + 500]))
            out.update((rid, orjson.loads(d)) for rid, d in conn.execute(q))
        return out

    secs = docs(t.sections, section_ids)
    courses = docs(t.courses, {uuid.UUID(s["course_id"]) for s in secs.values()})
    sessions = docs(t.academic_sessions, {uuid.UUID(x) for s in secs.values() for x in s.get("session_ids", ())})
    day = at.date()
    plan = _CoursePlan({}, {cid: [uuid.UUID(c) for c in doc.get("competency_ids", ())] for cid, doc in courses.items()})
    for sid, s in secs.items():
        terms = [sessions[uuid.UUID(x)] for x in s.get("session_ids", ()) if uuid.UUID(x) in sessions]
        elapsed = th.expected_share_without_term
        if terms:
            start = min(date.fromisoformat(x["start_date"]) for x in terms)
            end = max(date.fromisoformat(x["end_date"]) for x in terms)
            span = (end - start).days
            elapsed = 1.0 if span <= 0 else min(1.0, max(0.0, (day - start).days / span))
        plan.sections[sid] = (uuid.UUID(s["course_id"]), elapsed)
    return plan


__all__ = [
    "FORMATS", "GROUP_BY", "KINDS", "STATUSES", "AsOfStates", "BadReportRequest", "Deidentify", "Population", "Report",
    "Reports", "Scope", "StoredStates", "Thresholds", "load_thresholds", "resolve_population", "salt_from_env", "suppress",
    "to_csv", "to_json", "to_ndjson",
]
