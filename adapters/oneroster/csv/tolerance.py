"""What a OneRoster CSV package may get wrong and still mean one thing: the deviations the
importer normalises in its tolerant mode (the default), each reported through
``gateway.errors.Deviations.tolerate`` with its file, row and column, and refused in strict
mode (``--strict``). What has more than one reading (two different rows under one
sourcedId, a malformed date, a missing required value) is an error in both modes.

Headers (``Tolerance.header``), once per file:

* ``whitespace``: a header name with surrounding spaces (RFC 4180, which the CSV binding
  names: "spaces are considered part of a field");
* ``header-case``: a column name in another letter case (``SourcedId``), when exactly one
  column of the file has that name case-insensitively; the binding says header names are
  case-sensitive (OneRoster 1.1 CSV Tables section 2.1, 1.2 CSV Binding section 3);
* ``header-spelling``: a misspelling that vendors' own documentation prints, from the
  closed list ``HEADER_ALIASES`` (each with where it was seen);
* ``unknown-column``: a column the spec does not define, kept as if it were
  ``metadata.<name>`` (so an export writes it back as ``metadata.<name>``), warned once
  per file and column;
* ``trailing-empty-columns``: nameless columns at the end of the header, empty in every
  row (a spreadsheet's), and data rows with extra empty fields at their end.

Values (``RowCheck``), on the general path only (the enrollments' fast path takes no row
with a deviation, see ``fast_rows``):

* ``enum-case``: an enumeration token in another letter case (``Scheduled``);
* ``legacy-value``: the OneRoster 1.0 status ``inactive``, read as ``tobedeleted`` as
  OneRoster 1.1 says: "In v1.1 the enumeration value of 'inactive' was removed and so
  for backwards compatibility all such marked objects should be interpreted as
  'tobedeleted'" (the OneRoster 1.1 specification on ``status``, as quoted by
  https://help.incidentiq.com/hc/en-us/articles/4457042547479); 1.2 keeps the 1.1 values;
* ``boolean-spelling``: ``TRUE``/``True``/``Y``/``Yes``/``1`` (and the false ones) where
  the spec says ``true``/``false`` ("values of '0', '1', 'True' ... are not permitted",
  https://support.imsglobal.org/support/solutions/folders/48000346663);
* ``grade-padding``: ``9`` for the CEDS Entry Grade Level code ``09``;
* ``date-without-zone``: a dateLastModified without a time zone (read as UTC: "The 'Z'
  character denotes the UTC time-zone i.e. the Date/Time MUST use this as the reference
  time-zone", https://support.imsglobal.org/support/solutions/articles/48001167275), or a
  bare date (midnight UTC of that day);
* ``whitespace``: a value with surrounding spaces, or a list with spaces around its items
  (``"t1, t2"``, as Quaver's OneRoster guidelines write one); ``columns.row_object`` strips them.

The gradebook and resources files (``gradebook.csv_files``) get the same value checks:
``status`` and ``dateLastModified`` as above, ``scoreStatus`` (results, assessmentResults)
and ``importance`` (resources) ``enum-case``, the 1.2 result flags (``inProgress``,
``incomplete``, ``late``, ``missing``) ``boolean-spelling``, and ``assignDate``, ``dueDate``
and ``scoreDate`` ``date-without-zone`` when they are date-times without a zone (a bare
date is what the binding's Date type is). Their scores must be plain decimal numbers
(``gradebook.normalize.number``), an error in both modes otherwise.

Rows: ``duplicate-object``: a row repeating an earlier row of the file exactly (same
sourcedId, same content) is dropped; a different row under the same sourcedId stays an
error in both modes (``Importer.duplicate``, then ``Tolerance.settle_duplicates``).

In strict mode a deviation the importer refused before this module existed keeps its old
error and message (an enumeration in another case: "'Scheduled' is not a OneRoster class
type; expected ..."); one it used to accept without a word (surrounding spaces, a date
without a zone, ``TRUE``) is now an error worded as the warning is.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from typing import Any

from gateway.errors import Deviations, ErrorCollector

from ..gradebook.types import IMPORTANCE, SCORE_STATUS, SCORE_STATUS_ALT
from ..values import format_datetime, parse_datetime
from ..vocab import Vocab, roles, vocabularies
from .package import Package

#: Header misspellings seen in the documentation of real producers and consumers (lower case
#: -> the spec's column). Used only when the file lacks the spec's column.
HEADER_ALIASES: dict[str, str] = {
    # PowerSchool Naviance's demographics import (https://ps.powerschool-docs.com/naviance/
    # latest/oneroster-demogrphics-import-fields), 1EdTech's own CSV best practices
    # (https://support.imsglobal.org/support/solutions/articles/48000490972) and ClassTag's
    # users.csv guide (https://help.classtag.com/en/articles/6393158) write "sourceId"/"sourceID"
    "sourceid": "sourcedId",
    "orgsourceid": "orgSourcedId",
    # Naviance again: "demogrphicRaceTwoOrMoreRaces"
    "demogrphicracetwoormoreraces": "demographicRaceTwoOrMoreRaces",
    # ManageBac's OneRoster 1.2 CSV specification, demographics.csv
    # (https://guide.fariaedu.com/managebac-oneroster-custom-specification/csv_files/demographics)
    "datemodified": "dateLastModified",
}

#: CEDS Entry Grade Level codes written without their leading zero
GRADE_PADDING = {str(n): f"0{n}" for n in range(1, 10)}
_TRUE, _FALSE = frozenset(("true",)), frozenset(("false",))
_BOOL_SPELLINGS = {"true": "true", "false": "false", "y": "true", "yes": "true", "1": "true",
                   "n": "false", "no": "false", "0": "false"}
#: the spellings parse_bool accepted before the tolerant mode (another case of true/false)
_BOOL_SILENT = frozenset(("true", "false"))
#: the gradebook files' booleans and dates (values kept as text, checked as the rostering files' are)
RESULT_FLAGS = ("inProgress", "incomplete", "late", "missing")
GRADEBOOK_DATES = {"lineItems": ("assignDate", "dueDate"), "results": ("scoreDate",), "assessmentResults": ("scoreDate",)}
RACE_FLAGS = ("americanIndianOrAlaskaNative", "asian", "blackOrAfricanAmerican", "nativeHawaiianOrOtherPacificIslander",
              "white", "demographicRaceTwoOrMoreRaces", "hispanicOrLatinoEthnicity")


def has_zone(text: str) -> bool:
    """Whether an ISO 8601 date-time names its zone (``Z`` or an offset after the time)."""
    time = text[10:]
    return bool(time) and (time[-1] in ("Z", "z") or "+" in time or "-" in time)


def parse_zoned(text: str) -> Any:
    """``values.parse_datetime`` of a date-time that names its zone; ValueError otherwise
    (the fast path's parser: a zone-less stamp takes the general path, which reports it)."""
    if text != text.strip() or not has_zone(text):
        raise ValueError(text)
    return parse_datetime(text)


class Tolerance:
    """The deviations of one import: header and row-width checks of ``Importer.raw_rows``,
    duplicate rows, and the per-file value checks (``row_check``)."""

    def __init__(self, devs: Deviations, errors: ErrorCollector, version: str) -> None:
        self.devs = devs
        self.errors = errors
        self.version = version
        #: file -> [(sourcedId, location, row number of the first, the row as read)] to settle
        self.dups: dict[str, list[tuple[str, str, int, list[str]]]] = {}
        self._clashes: set[str] = set()

    @property
    def strict(self) -> bool:
        return self.devs.strict

    # ---- headers

    def header(self, fname: str, header: list[str], spec: list[tuple[str, str, str, bool]]) -> tuple[list[str], int]:
        """The header's names as the spec writes them, and how many trailing nameless columns
        were dropped. A name left as it is will be reported by the caller (unknown column)."""
        loc = f"{fname} row 1"
        names = list(header)
        for i, h in enumerate(names):
            s = h.strip()
            if s != h:
                self.devs.tolerate("whitespace", f"column name {h!r} has surrounding spaces; read as {s!r}", location=loc, field=s)
                names[i] = s  # strict: reported above; read stripped so as not to report it twice
        dropped = 0
        while len(names) > 1 and names[-1] == "":
            names.pop()
            dropped += 1
        if dropped and (self.strict or not self.devs.tolerate(
                "trailing-empty-columns", f"{dropped} nameless column(s) at the end of the header: dropped (their cells must be empty)",
                location=loc)):
            names += [""] * dropped  # strict: the old "unknown column ''" error follows
            dropped = 0
        known = {c for c, _, _, _ in spec}
        folded: dict[str, list[str]] = {}
        for c in known:
            folded.setdefault(c.lower(), []).append(c)
        present = set(names)
        #: names that differ from a spec column only in case but could not be read as it
        self._clashes = {h for h in names if h not in known and h.lower() in folded}
        for i, h in enumerate(names):
            if h in known or h.startswith("metadata.") or not h or self.strict:
                continue  # strict: the old "unknown column" error follows
            same = folded.get(h.lower(), [])
            alias = HEADER_ALIASES.get(h.lower())
            if len(same) == 1 and same[0] not in present:
                if self.devs.tolerate("header-case", f"column {h!r} is written {same[0]!r} by the spec", location=loc, field=h):
                    names[i] = same[0]
                    present.add(same[0])
                    self._clashes.discard(h)
            elif alias in known and alias not in present:
                if self.devs.tolerate("header-spelling", f"column {h!r} read as the spec's {alias!r}", location=loc, field=h):
                    names[i] = alias
                    present.add(alias)
        return names, dropped

    def unknown_column(self, fname: str, h: str, names: list[str]) -> str | None:
        """The ``metadata.<name>`` an unknown column is kept as (tolerant mode), or None (an
        error: strict mode, a nameless column, or a name ``metadata.<name>`` already has)."""
        if self.strict or not h or f"metadata.{h}" in names or h in self._clashes:
            return None  # ``SourcedId`` beside ``sourcedId``: two readings
        self.devs.tolerate("unknown-column", f"column {h!r} is not defined for OneRoster {self.version} {fname}: kept as metadata.{h}",
                           location=f"{fname} row 1", field=h)
        return f"metadata.{h}"

    def wide_row(self, fname: str, n: int, row: list[str], width: int, dropped: int) -> bool:
        """A data row longer than the header: True when the extra fields are all empty and the
        row was cut to the header's width (tolerant mode). Up to ``dropped`` of them are the
        nameless columns the header's warning covers."""
        if len(row) <= width or any(c.strip() for c in row[width:]):
            return False
        if self.strict:
            return False  # the old "expected N fields" error
        if len(row) <= width + dropped:
            del row[width:]
            return True
        self.devs.tolerate("trailing-empty-columns", f"{len(row) - width} empty field(s) after the header's {width} columns: dropped",
                           location=f"{fname} row {n}")
        del row[width:]
        return True

    # ---- duplicates

    def duplicate(self, fname: str, sid: str, location: str, first: int, row: list[str] | None) -> bool:
        """A second row under ``sid``: held to compare with the first (True), or, in strict
        mode or without the row, left to the caller's error (False)."""
        if self.strict or row is None:
            return False
        self.dups.setdefault(fname, []).append((sid, location, first, list(row)))
        return True

    def settle_duplicates(self, pkg: Package) -> None:
        """Compare each held duplicate with the first row under its sourcedId (one more pass
        over each file that has any): identical -> a ``duplicate-object`` warning, the row
        dropped; different -> the error the strict mode gives."""
        for fname, held in self.dups.items():
            wanted = {first for _, _, first, _ in held}
            firsts = _rows_numbered(pkg, fname, wanted)
            for sid, loc, first, row in held:
                if _trimmed(firsts.get(first)) == _trimmed(row):
                    self.devs.tolerate("duplicate-object", f"row repeats {fname} row {first} exactly (sourcedId {sid!r}): dropped",
                                       location=loc, field="sourcedId")
                else:
                    self.errors.add(f"duplicate sourcedId {sid!r} (first at {fname} row {first})", location=loc, field="sourcedId")
        self.dups = {}

    # ---- values

    def row_check(self, name: str, fields: set[str]) -> RowCheck:
        return RowCheck(self, name, fields)


def _trimmed(row: list[str] | None) -> list[str] | None:
    if row is None:
        return None
    out = [c.strip() for c in row]
    while out and not out[-1]:
        out.pop()
    return out


def _rows_numbered(pkg: Package, fname: str, wanted: set[int]) -> dict[int, list[str]]:
    """The data rows of ``fname`` whose spreadsheet numbers are in ``wanted`` (header = 1)."""
    out: dict[int, list[str]] = {}
    if not wanted:
        return out
    last = max(wanted)
    with pkg.open_text(fname) as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for n, row in enumerate(reader, start=2):
            if n in wanted:
                out[n] = row
            if n >= last:
                break
    return out


def _fold(vocab_tokens: list[str]) -> dict[str, str]:
    """lower case -> token, for the tokens no other token shares a lower case with."""
    seen: dict[str, list[str]] = {}
    for t in vocab_tokens:
        seen.setdefault(t.lower(), []).append(t)
    return {k: v[0] for k, v in seen.items() if len(v) == 1}


class RowCheck:
    """The value checks of one file's rows (REST-shaped dicts from ``columns.row_object``):
    each field's value is looked up in the set of valid values first, so a valid row costs
    a dictionary lookup per checked field."""

    def __init__(self, tol: Tolerance, name: str, fields: set[str]) -> None:
        self.tol = tol
        self.name = name
        self.fname = f"{name}.csv"
        v = vocabularies()
        enums: dict[str, Vocab | list[str]] = {}
        if name == "orgs":
            enums["type"] = v["org_types"]
        elif name == "academicSessions":
            enums["type"] = v["session_types"]
        elif name == "classes":
            enums["classType"] = v["class_types"]
        elif (name == "users" and tol.version == "1.1") or name == "enrollments":
            enums["role"] = roles(tol.version)
        elif name == "roles":
            enums["role"] = roles(tol.version)
            enums["roleType"] = ["primary", "secondary"]
        elif name == "demographics":
            enums["sex"] = v["sexes"]
        elif name in ("results", "assessmentResults"):
            enums["scoreStatus"] = list(SCORE_STATUS + SCORE_STATUS_ALT)
        elif name == "resources":
            enums["importance"] = list(IMPORTANCE)
        bools = {"users": ["enabledUser"], "enrollments": ["primary"], "demographics": list(RACE_FLAGS),
                 "results": list(RESULT_FLAGS), "assessmentResults": list(RESULT_FLAGS)}.get(name, [])
        #: (field, the values that need no check, the check of the others)
        self.checks: list[tuple[str, frozenset[str], Callable[[str], tuple[str, str, str, bool] | None]]] = []
        self.checks.append(("status", frozenset(("active", "tobedeleted")), self._status))
        self.checks.append(("dateLastModified", frozenset(), self._stamp))
        for f, vocab in enums.items():
            tokens = vocab.tokens if isinstance(vocab, Vocab) else vocab
            self.checks.append((f, frozenset(tokens), self._enum(frozenset(tokens), _fold(tokens))))
        for f in bools:
            self.checks.append((f, _TRUE | _FALSE, self._bool))
        for f in GRADEBOOK_DATES.get(name, ()):
            self.checks.append((f, frozenset(), self._date))
        self.checks = [c for c in self.checks if c[0] in fields]
        self.grades = "grades" in fields and name in ("users", "courses", "classes")

    def __call__(self, obj: dict[str, Any], loc: str) -> None:
        get = obj.get
        for f, fine, fix in self.checks:
            v = get(f)
            if v is None or v in fine:
                continue
            got = fix(v)
            if got is None:
                continue
            kind, message, new, silent_before = got
            if self.tol.strict and not silent_before:
                continue  # refused before the tolerant mode: its old error follows, word for word
            if self.tol.devs.tolerate(kind, message, location=loc, field=f):
                obj[f] = new
        if self.grades:
            grades = obj.get("grades")
            if grades and not GRADE_PADDING.keys().isdisjoint(grades):
                padded = [GRADE_PADDING.get(g, g) for g in grades]
                for g in grades:
                    if g in GRADE_PADDING and self.tol.devs.tolerate(
                            "grade-padding", f"grade {g!r} is the CEDS code {GRADE_PADDING[g]!r}", location=loc, field="grades"):
                        obj["grades"] = padded

    @staticmethod
    def _status(v: str) -> tuple[str, str, str, bool] | None:
        if v in ("active", "tobedeleted"):
            return None
        low = v.lower()
        if low == "inactive":
            # OneRoster 1.1: "In v1.1 the enumeration value of 'inactive' was removed and so for
            # backwards compatibility all such marked objects should be interpreted as
            # 'tobedeleted'" (quoted by https://help.incidentiq.com/hc/en-us/articles/4457042547479)
            return ("legacy-value", f"status {v!r} is OneRoster 1.0's; read as 'tobedeleted' as OneRoster 1.1 says", "tobedeleted", False)
        if low in ("active", "tobedeleted"):
            return ("enum-case", f"{v!r} is written {low!r} by the spec", low, False)
        return None

    @staticmethod
    def _enum(valid: frozenset[str], folded: dict[str, str]) -> Callable[[str], tuple[str, str, str, bool] | None]:
        def fix(v: str) -> tuple[str, str, str, bool] | None:
            if v in valid:
                return None
            token = folded.get(v.lower())
            if token is None:
                return None
            return ("enum-case", f"{v!r} is written {token!r} by the spec", token, False)
        return fix

    @staticmethod
    def _bool(v: str) -> tuple[str, str, str, bool] | None:
        if v in _TRUE or v in _FALSE:
            return None
        low = v.lower()
        token = _BOOL_SPELLINGS.get(low)
        if token is None:
            return None
        return ("boolean-spelling", f"{v!r} read as {token!r} (the spec's booleans are true and false)", token, low in _BOOL_SILENT)

    @staticmethod
    def _date(v: str) -> tuple[str, str, str, bool] | None:
        """A gradebook date (assignDate, dueDate, scoreDate): a date, or a date-time naming
        its zone; a date-time without one is read as UTC, as dateLastModified is."""
        if len(v) == 10 or has_zone(v):
            return None
        return RowCheck._stamp(v)

    @staticmethod
    def _stamp(v: str) -> tuple[str, str, str, bool] | None:
        if has_zone(v):
            return None
        try:
            dt = parse_datetime(v)
        except ValueError:
            return None  # malformed: the error follows in both modes
        fixed = format_datetime(dt) or v
        what = "a date without a time" if len(v.strip()) == 10 else "a date-time without a time zone"
        return ("date-without-zone", f"{v!r} is {what}; read as UTC, {fixed!r} (OneRoster date-times are UTC)", fixed, True)


__all__ = ["HEADER_ALIASES", "RowCheck", "Tolerance", "has_zone", "parse_zoned"]
