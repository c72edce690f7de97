"""The fast path of a streamed enrollments.csv: the common, valid row, straight from the csv
module's list of fields to its record (``EnrollmentRows``).

A million rows through the general path (a REST-shaped dict per row, the reference checks,
``to_canonical``) cost a quarter of a large import's CPU time; this path reads, checks and
converts a row in 60 % of the time.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Protocol

from gateway.model import Record, Role, Status

from ..mapping import enrollment_record, ref_record_id
from ..values import parse_date
from ..vocab import roles
from .tolerance import parse_zoned


class Reading(Protocol):
    """What the fast path reads and counts of the importer reading the package
    (``importer.Importer``)."""

    tenant: str
    source: str
    version: str
    #: kind -> sourcedId -> row number, for the records of the import
    seen: dict[str, dict[str, int]]
    #: (kind, sourcedId) -> found stored, for the references looked up so far
    stored_cache: dict[tuple[str, str], bool]
    #: rows of enrollments.csv read so far
    enrollment_rows: int
    report: Any

    def mode(self, name: str) -> str: ...


#: "not well-formed", as ``EnrollmentRows.parsed`` says it (None is a valid, empty value)
_BAD = object()
#: the spellings of ``primary`` the fast path takes ("TRUE" and such go the general way)
_PRIMARY = {"": False, "true": True, "false": False}


class EnrollmentRows:
    """The fast path of a streamed enrollments.csv: the common, valid row, straight from the
    csv module's list of fields to its record.

    A million rows through the general path (a REST-shaped dict per row, the reference
    checks, ``to_canonical``) cost a quarter of a large import's CPU time; this path reads,
    checks and converts a row in 60 % of the time (the rest is mostly building the record
    and its uuid5 id, which both paths share). It takes a row only when the general one
    would accept it unchanged: no ``metadata.*`` columns, a new sourcedId, references to
    records already read (or found stored), a known status and role, a well-formed
    ``primary`` and dates in order, and not a delta deletion (which needs the stored
    record); no deviation either (``tolerance``: surrounding spaces, a dateLastModified
    without its zone, a token in another case all miss its lookups). For anything else ``record`` returns None and the row takes the general
    path, which reports every problem as before. The record is the one
    ``mapping.enrollment_record`` builds for ``mapping._enrollment_fast``, the general
    path's own shortcut: the same values, byte for byte (``test_oneroster_csv_fast``)."""

    #: distinct date / date-time strings kept parsed (a file repeats a few terms' dates)
    MEMO = 4096

    def __init__(self, imp: Reading, cols: list[tuple[str, str, str]]) -> None:
        self.imp = imp
        self.usable = bool(cols) and all(t != "meta" for _, _, t in cols)
        at = {f: i for i, (_, f, _) in enumerate(cols)}
        width = len(cols)  # an absent optional column reads the "" appended to each row
        self.pick = operator.itemgetter(*(at.get(f, width) for f in (
            "sourcedId", "status", "dateLastModified", "user", "class", "school", "role", "primary", "beginDate", "endDate")))
        self.statuses = {"": Status.active, "active": Status.active}
        if imp.mode("enrollments") != "delta":
            self.statuses["tobedeleted"] = Status.tobedeleted
        self.roles = {token: Role(value) for token, value in roles(imp.version).inbound.items()}
        self.dates: dict[str, date | None] = {"": None}
        self.stamps: dict[str, datetime | None] = {"": None}
        #: kind -> sourcedId -> record id, for the references found valid so far
        self.ids: dict[str, dict[str, uuid.UUID]] = {"person": {}, "section": {}, "org": {}}

    def record(self, row: list[str], n: int) -> Record | None:
        """The record of data row ``n``, counted and registered, or None (nothing done)."""
        if not self.usable:
            return None
        imp = self.imp
        row.append("")
        # not stripped: a value with surrounding spaces is a deviation (``tolerance``), which
        # the general path reports; here it misses the lookups below (and ``parsed``)
        sid, status, modified, user, klass, school, role, primary, begin, end = self.pick(row)
        del row[-1]
        enrolled = imp.seen["enrollment"]
        if not sid or len(sid) > 255 or sid in enrolled or sid[0].isspace() or sid[-1].isspace():
            return None
        state = self.statuses.get(status)
        canonical = self.roles.get(role)
        flag = _PRIMARY.get(primary)
        ids = self.ids
        person = ids["person"].get(user) or self.ref("person", user)
        section = ids["section"].get(klass) or self.ref("section", klass)
        org = ids["org"].get(school) or self.ref("org", school)
        if state is None or canonical is None or flag is None or person is None or section is None or org is None:
            return None
        dates = self.dates
        starts = dates[begin] if begin in dates else self.parsed(dates, begin, parse_date)
        ends = dates[end] if end in dates else self.parsed(dates, end, parse_date)
        stamp = self.stamps[modified] if modified in self.stamps else self.parsed(self.stamps, modified, parse_zoned)
        if starts is _BAD or ends is _BAD or stamp is _BAD or (starts and ends and ends < starts):
            return None
        enrolled[sid] = n
        imp.enrollment_rows += 1
        imp.report.records += 1
        return enrollment_record(imp.tenant, imp.source, sid, state, stamp, person, section, org, canonical, flag, starts, ends)

    def ref(self, kind: str, sid: str) -> uuid.UUID | None:
        """The id of a reference in this import, or found stored by an earlier reference check
        (``resolve_refs``); None for any other (the general path checks it)."""
        imp = self.imp
        if not sid or (sid not in imp.seen[kind] and imp.stored_cache.get((kind, sid)) is not True):
            return None
        self.ids[kind][sid] = ref_record_id(imp.tenant, kind, imp.source, sid)
        return self.ids[kind][sid]

    def parsed(self, memo: dict[str, Any], text: str, parse: Callable[[str], Any]) -> Any:
        """``parse(text)``, kept in ``memo``; ``_BAD`` when it is not well-formed or has
        surrounding spaces."""
        if text != text.strip():
            return _BAD
        try:
            got = parse(text)
        except ValueError:
            return _BAD
        if len(memo) > self.MEMO:
            memo.clear()
            memo[""] = None
        memo[text] = got
        return got
