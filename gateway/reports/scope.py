"""A report's parameters: which learners, competencies and date it covers, how it groups
learners, and the error a parameter that cannot be used gives (400, naming it).

``parse_scope`` reads them from text (a query string, a command line); ``Scope`` checks
what does not depend on the database (an unknown org or section is found later, by
``population``, as a 404).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import ErrorDetail, NotFound, ValidationError
from ..model import utcnow

KINDS = ("distribution", "progression", "evidence-volume", "states", "grades")
#: what a report can be grouped by: roster memberships, then a person's grade and demographics
GROUP_BY = ("org", "section", "grade", "sex", "race", "ethnicity", "group")
PERSON_GROUPINGS = frozenset({"grade", "sex", "race", "ethnicity", "group"})


class BadReportRequest(ValidationError):
    """A report parameter that cannot be used as given (400, naming the parameter)."""

    status = 400
    title = "Bad report request"
    type_slug = "bad-report-request"


def bad(param: str, message: str) -> BadReportRequest:
    return BadReportRequest("invalid report request", errors=[ErrorDetail(message, location="query", field=param)])


def report_format(query: Mapping[str, str], allowed: Collection[str], formats: Collection[str],
                  error: type[ValidationError] = BadReportRequest) -> str:
    """The report's ``format`` (default json), after refusing query parameters not in
    ``allowed`` and a format not in ``formats``, each error naming its parameter (``error``:
    what a surface answers for a bad report request)."""
    strange = [ErrorDetail(f"unknown query parameter; allowed: {', '.join(sorted(allowed))}", location="query", field=n)
               for n in query if n not in allowed]
    if strange:
        raise error("invalid report request", errors=strange)
    fmt = query.get("format", "json")
    if fmt not in formats:
        raise error("invalid report request", errors=[ErrorDetail(f"must be one of {', '.join(formats)}", location="query",
                                                                   field="format")])
    return fmt


def unknown(param: str, what: str, rid: uuid.UUID) -> NotFound:
    return NotFound(f"no {what} with id {rid}", errors=[ErrorDetail(f"no {what} with this id in the tenant", location="query", field=param)])


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


__all__ = ["GROUP_BY", "KINDS", "PERSON_GROUPINGS", "BadReportRequest", "Scope", "bad", "parse_scope", "report_format", "unknown"]
