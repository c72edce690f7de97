"""OneRoster 1.1 / 1.2 CSV binding: bulk and delta import, bulk export.

A package is a zip file or a directory holding ``manifest.csv`` and one CSV file per
OneRoster type. Spec choices (OneRoster 1.1 CSV Tables section 2-4, 1.2 CSV Binding
section 2-5):

* ``manifest.csv`` has the header ``propertyName,value``; ``manifest.version`` must be
  1.0, ``oneroster.version`` 1.1 or 1.2, and each ``file.<name>`` is ``bulk``, ``delta`` or
  ``absent``. A file listed bulk/delta must be present; a CSV file present but not listed
  (or listed absent) is an error, as is a ``file.<name>`` the version does not define.
* files are UTF-8, with or without a byte-order mark; CRLF or LF; RFC 4180 quoting. Each
  is streamed through the ``csv`` module, never read whole.
* headers: every column the spec marks required must be present; columns may come in any
  order; a column the spec does not define is an error, except the ``metadata.<name>``
  extension columns, which are kept (in ``extensions["oneroster"]["metadata"]``).
* rows are numbered as a spreadsheet shows them: the header is row 1, the first data row
  row 2. Every problem is reported with file, row and column, up to 1000 of them.
* bulk: a ``bulk`` file replaces that type for the import's source: records of its kind
  from this source that are stored but absent from the file become ``tobedeleted``.
* delta: rows carry their own ``status`` and ``dateLastModified``; a ``tobedeleted`` row for
  a record that is neither stored nor in the import is an error naming the row.
* 1.2 ``roles.csv`` rows become the user's ``roles``; ``demographics.csv`` rows (keyed by
  the user's sourcedId) become ``Person.demographics``.
* the gradebook and resources files (categories, lineItems, results, scoreScales,
  assessmentLineItems, assessmentResults, the ``*LearningObjectiveIds`` / ``*ScoreScales``
  join files, resources and their class / course / user links) are read after the
  rostering files with the same checks, by ``gradebook.CsvGradebook``; their objects and the
  evidence and alignments made from them are written with the rostering records.
* the whole package is applied in ONE transaction (atomic: any error, and nothing
  changes). An enrollments.csv above ``STREAM_BYTES`` (~250,000 rows) is read once, batch
  by batch, while ``store.records.apply_batches`` writes it: still one transaction, which
  any problem found in any row rolls back, but memory stays bounded (see ``import_package``).
  Its common, valid rows go from the csv module's fields straight to their records
  (``_EnrollmentRows``); any other row takes the general path, which reports its problems.
  Above ``READER_BYTES`` it is read and prepared in a child process while this one writes
  (``_EnrollmentReader``): the same code, the same records and errors, on a second core.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import hashlib
import io
import multiprocessing
import operator
import os
import pickle
import queue
import threading
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from gateway.errors import (
    ErrorCollector,
    ErrorDetail,
    IntegrityError,
    MalformedInput,
    NotFound,
    ValidationError,
)
from gateway.model import Enrollment, Person, Record, Role, Status, record_id
from gateway.store import Store
from gateway.store.db import uuid_from_sqlite
from gateway.store.records import Prepared, PreparedBatch, RecordStore

from .gradebook import CSV_COLUMNS, CsvGradebook, csv_rows
from .gradebook import apply as apply_gradebook
from .gradebook import writer as gradebook_writer
from .mapping import (
    KIND_COLLECTIONS,
    WIRE_KINDS,
    demographics_to_canonical,
    demographics_to_wire,
    enrollment_record,
    normalize_version,
    parse_date,
    parse_datetime,
    ref_id,
    ref_record_id,
    roles,
    to_canonical,
    to_wire,
)

MODES = ("bulk", "delta", "absent")

# Column tables: (CSV column, REST field, conversion, required).
# conversion: "s" string, "ref" one GUIDRef, "refs" GUIDRef list, "list" string list.
S, REF, REFS, LIST = "s", "ref", "refs", "list"

_BASE = [("sourcedId", "sourcedId", S, True), ("status", "status", S, False), ("dateLastModified", "dateLastModified", S, False)]

COLUMNS: dict[str, dict[str, list[tuple[str, str, str, bool]]]] = {
    "1.1": {
        "academicSessions": _BASE + [
            ("title", "title", S, True), ("type", "type", S, True), ("startDate", "startDate", S, True),
            ("endDate", "endDate", S, True), ("parentSourcedId", "parent", REF, False), ("schoolYear", "schoolYear", S, True),
        ],
        "orgs": _BASE + [
            ("name", "name", S, True), ("type", "type", S, True), ("identifier", "identifier", S, False),
            ("parentSourcedId", "parent", REF, False),
        ],
        "courses": _BASE + [
            ("schoolYearSourcedId", "schoolYear", REF, False), ("title", "title", S, True), ("courseCode", "courseCode", S, False),
            ("grades", "grades", LIST, False), ("orgSourcedId", "org", REF, True), ("subjects", "subjects", LIST, False),
            ("subjectCodes", "subjectCodes", LIST, False),
        ],
        "classes": _BASE + [
            ("title", "title", S, True), ("grades", "grades", LIST, False), ("courseSourcedId", "course", REF, True),
            ("classCode", "classCode", S, False), ("classType", "classType", S, True), ("location", "location", S, False),
            ("schoolSourcedId", "school", REF, True), ("termSourcedIds", "terms", REFS, True), ("subjects", "subjects", LIST, False),
            ("subjectCodes", "subjectCodes", LIST, False), ("periods", "periods", LIST, False),
        ],
        "users": _BASE + [
            ("enabledUser", "enabledUser", S, True), ("orgSourcedIds", "orgs", REFS, True), ("role", "role", S, True),
            ("username", "username", S, True), ("userIds", "userIds", S, False), ("givenName", "givenName", S, True),
            ("familyName", "familyName", S, True), ("middleName", "middleName", S, False), ("identifier", "identifier", S, False),
            ("email", "email", S, False), ("sms", "sms", S, False), ("phone", "phone", S, False),
            ("agentSourcedIds", "agents", REFS, False), ("grades", "grades", LIST, False), ("password", "password", S, False),
        ],
        "enrollments": _BASE + [
            ("classSourcedId", "class", REF, True), ("schoolSourcedId", "school", REF, True), ("userSourcedId", "user", REF, True),
            ("role", "role", S, True), ("primary", "primary", S, False), ("beginDate", "beginDate", S, False),
            ("endDate", "endDate", S, False),
        ],
        "demographics": _BASE + [
            ("birthDate", "birthDate", S, False), ("sex", "sex", S, False),
            ("americanIndianOrAlaskaNative", "americanIndianOrAlaskaNative", S, False), ("asian", "asian", S, False),
            ("blackOrAfricanAmerican", "blackOrAfricanAmerican", S, False),
            ("nativeHawaiianOrOtherPacificIslander", "nativeHawaiianOrOtherPacificIslander", S, False), ("white", "white", S, False),
            ("demographicRaceTwoOrMoreRaces", "demographicRaceTwoOrMoreRaces", S, False),
            ("hispanicOrLatinoEthnicity", "hispanicOrLatinoEthnicity", S, False), ("countryOfBirthCode", "countryOfBirthCode", S, False),
            ("stateOfBirthAbbreviation", "stateOfBirthAbbreviation", S, False), ("cityOfBirth", "cityOfBirth", S, False),
            ("publicSchoolResidenceStatus", "publicSchoolResidenceStatus", S, False),
        ],
    },
}
_v12 = {k: list(v) for k, v in COLUMNS["1.1"].items()}
# 1.2 users.csv: no role/orgSourcedIds (they moved to roles.csv), new identity and preferred-name columns.
_v12["users"] = [c for c in _v12["users"] if c[0] not in ("orgSourcedIds", "role")] + [
    ("userMasterIdentifier", "userMasterIdentifier", S, False), ("resourceSourcedIds", "resources", REFS, False),
    ("preferredGivenName", "preferredFirstName", S, False), ("preferredMiddleName", "preferredMiddleName", S, False),
    ("preferredFamilyName", "preferredLastName", S, False), ("primaryOrgSourcedId", "primaryOrg", REF, False),
    ("pronouns", "pronouns", S, False),
]
_v12["users"] = [(c, f, t, r if c != "username" else False) for c, f, t, r in _v12["users"]]
_v12["roles"] = _BASE + [
    ("userSourcedId", "user", REF, True), ("roleType", "roleType", S, True), ("role", "role", S, True),
    ("beginDate", "beginDate", S, False), ("endDate", "endDate", S, False), ("orgSourcedId", "org", REF, True),
    ("userProfileSourcedId", "userProfile", S, False),
]
COLUMNS["1.2"] = _v12
# the gradebook and resources files (``gradebook``), read with the same header and row checks
for _version, _files in CSV_COLUMNS.items():
    COLUMNS[_version].update(_files)

#: Files each version defines (manifest ``file.<name>``); those this importer reads are COLUMNS'.
KNOWN_FILES = {
    "1.1": ["academicSessions", "categories", "classes", "classResources", "courses", "courseResources", "demographics",
            "enrollments", "lineItems", "orgs", "resources", "results", "users"],
    "1.2": ["academicSessions", "assessmentLineItems", "assessmentResults", "categories", "classes", "classResources",
            "courses", "courseResources", "demographics", "enrollments", "lineItemLearningObjectiveIds", "lineItems",
            "assessmentLineItemLearningObjectiveIds", "assessmentResultLearningObjectiveIds",
            "lineItemScoreScales", "orgs", "resources", "results", "resultLearningObjectiveIds", "resultScoreScales",
            "roles", "scoreScales", "userProfiles", "userResources", "users"],
}
#: Reading order: every reference points to a file read earlier (or the same file).
ORDER = ["orgs", "academicSessions", "courses", "classes", "users", "roles", "demographics", "enrollments"]
#: GUIDRef REST field -> referenced canonical kind, per file.
REF_KINDS: dict[str, dict[str, str]] = {
    "orgs": {"parent": "org"},
    "academicSessions": {"parent": "academic_session"},
    "courses": {"schoolYear": "academic_session", "org": "org"},
    "classes": {"course": "course", "school": "org", "terms": "academic_session"},
    "users": {"orgs": "org", "agents": "person", "primaryOrg": "org"},
    "roles": {"user": "person", "org": "org"},
    "demographics": {},
    "enrollments": {"class": "section", "school": "org", "user": "person"},
}
FILE_OF_KIND = {v: k for k, v in WIRE_KINDS.items()}


# --------------------------------------------------------------------------- package access


class _CountingRaw(io.RawIOBase):
    """Counts the bytes read from an underlying binary stream (for the progress bar)."""

    def __init__(self, raw: Any, on_read: Callable[[int], None] | None) -> None:
        self.raw = raw
        self.on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        if self.on_read and n:
            self.on_read(n)
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class Package:
    """A OneRoster CSV package: a zip file or a directory."""

    def __init__(self, path: Path | str | bytes) -> None:
        #: what it was opened from (a second process opens it again: ``_EnrollmentReader``)
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        self.dir: Path | None = None
        if isinstance(path, bytes):
            self.name = "package.zip"
            self.zip = self._open_zip(io.BytesIO(path))
        else:
            path = Path(path)
            self.name = path.name
            if path.is_dir():
                self.dir = path
            elif path.is_file():
                self.zip = self._open_zip(path)
            else:
                raise MalformedInput(f"{path} is neither a zip file nor a directory")
        self.members: dict[str, str] = {}  # file name (no directory) -> member path
        if self.zip is not None:
            for info in self.zip.infolist():
                if not info.is_dir():
                    base = info.filename.rsplit("/", 1)[-1]
                    if base and not base.startswith("."):
                        self.members.setdefault(base, info.filename)
        else:
            assert self.dir is not None
            for p in sorted(self.dir.iterdir()):
                if p.is_file() and not p.name.startswith("."):
                    self.members[p.name] = str(p)

    @staticmethod
    def _open_zip(src: Any) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(src)
        except zipfile.BadZipFile:
            raise MalformedInput("not a zip file (a OneRoster CSV package is a zip or a directory)") from None

    def size(self, name: str) -> int:
        member = self.members[name]
        if self.zip is not None:
            return self.zip.getinfo(member).file_size
        return Path(member).stat().st_size

    def open_text(self, name: str, on_read: Callable[[int], None] | None = None) -> io.TextIOWrapper:
        member = self.members[name]
        raw = self.zip.open(member) if self.zip is not None else open(member, "rb")  # noqa: SIM115
        buffered = io.BufferedReader(_CountingRaw(raw, on_read), buffer_size=1 << 16)
        # utf-8-sig drops a byte-order mark; newline="" lets csv handle CRLF and LF alike
        return io.TextIOWrapper(buffered, encoding="utf-8-sig", newline="")

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


@dataclass
class Manifest:
    version: str
    files: dict[str, str]  # file name (no .csv) -> bulk | delta | absent
    properties: dict[str, str]


def read_manifest(pkg: Package) -> Manifest:
    """OneRoster CSV 1.1 section 2.2 / 1.2 section 3.1: manifest.csv, ``propertyName,value``."""
    if "manifest.csv" not in pkg.members:
        raise MalformedInput(
            "not a OneRoster CSV package: manifest.csv is missing",
            errors=[ErrorDetail("manifest.csv is required (propertyName,value rows)", location="manifest.csv")],
        )
    errors = ErrorCollector()
    props: dict[str, str] = {}
    try:
        with pkg.open_text("manifest.csv") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            if header[:2] != ["propertyName", "value"]:
                errors.add(f"header must be propertyName,value, not {','.join(header)!r}", location="manifest.csv row 1")
            for n, row in enumerate(reader, start=2):
                if not row or not any(c.strip() for c in row):
                    continue
                if len(row) < 2:
                    errors.add("expected propertyName,value", location=f"manifest.csv row {n}")
                    continue
                key, value = row[0].strip(), row[1].strip()
                if key in props:
                    errors.add(f"property {key!r} appears twice", location=f"manifest.csv row {n}", field="propertyName")
                props[key] = value
    except (UnicodeDecodeError, csv.Error) as exc:
        raise MalformedInput("manifest.csv is not readable UTF-8 CSV", errors=[ErrorDetail(str(exc), location="manifest.csv")]) from None
    if props.get("manifest.version") not in ("1.0",):
        errors.add(f"manifest.version must be 1.0, not {props.get('manifest.version')!r}", location="manifest.csv", field="manifest.version")
    try:
        version = normalize_version(props.get("oneroster.version", ""))
    except ValidationError:
        errors.add(f"oneroster.version must be 1.1 or 1.2, not {props.get('oneroster.version')!r}", location="manifest.csv", field="oneroster.version")
        version = "1.2"
    files: dict[str, str] = {}
    for key, value in props.items():
        if not key.startswith("file."):
            continue
        name = key[len("file."):]
        if name not in KNOWN_FILES[version]:
            errors.add(f"OneRoster {version} defines no file {name!r}", location="manifest.csv", field=key)
            continue
        if value not in MODES:
            errors.add(f"{value!r} is not bulk, delta or absent", location="manifest.csv", field=key)
            continue
        files[name] = value
    for name, mode in files.items():
        if mode != "absent" and f"{name}.csv" not in pkg.members:
            errors.add(f"manifest says {name}.csv is {mode}, but the package has no {name}.csv", location="manifest.csv", field=f"file.{name}")
    for member in pkg.members:
        if member == "manifest.csv":
            continue
        stem = member[:-4] if member.endswith(".csv") else None
        if stem is None or files.get(stem, "absent") == "absent":
            errors.add(f"{member} is not listed in manifest.csv as bulk or delta", location=member)
    for name, mode in files.items():
        if mode != "absent" and name not in COLUMNS[version]:
            errors.add(f"{name}.csv is not supported by this importer yet", location=f"{name}.csv")
    errors.raise_if_any("invalid OneRoster package", MalformedInput)
    return Manifest(version=version, files=files, properties=props)


# --------------------------------------------------------------------------- import


@dataclass
class ImportReport:
    version: str
    files: dict[str, str]
    rows: dict[str, int] = field(default_factory=dict)
    #: kind -> records a bulk file marked tobedeleted
    deleted: dict[str, int] = field(default_factory=dict)
    result: Any = None
    records: int = 0
    #: True when enrollments were read while applied in batches, one transaction (see import_package)
    streamed: bool = False
    #: True when those enrollments were read and prepared in a child process (``_EnrollmentReader``)
    reader_process: bool = False
    #: False only when a streamed import was applied in several transactions
    atomic: bool = True
    #: the gradebook / resources objects to write with the records (``gradebook.Plan``)
    gradebook: Any = None


def _row_object(cols: list[tuple[str, str, str]], row: list[str]) -> dict[str, Any]:
    """One CSV row as its REST-shaped object: empty cells left out, GUIDRefs as
    ``{"sourcedId": ...}``, lists split on commas, ``metadata.*`` columns in ``metadata``."""
    obj: dict[str, Any] = {}
    meta: dict[str, str] = {}
    for (_c, f, t), v in zip(cols, row, strict=True):
        v = v.strip()
        if not v:
            continue
        if t == S:
            obj[f] = v
        elif t == REF:
            obj[f] = {"sourcedId": v}
        elif t == REFS:
            obj[f] = [{"sourcedId": p.strip()} for p in v.split(",") if p.strip()]
        elif t == LIST:
            obj[f] = [p.strip() for p in v.split(",") if p.strip()]
        else:
            meta[f[9:]] = v
    if meta:
        obj["metadata"] = meta
    return obj


class _Importer:
    def __init__(self, store: Any, tenant: str, source: str, pkg: Package, manifest: Manifest,
                 progress: Callable[[str, int], None] | None) -> None:
        self.store = store
        self.tenant = tenant
        self.source = source
        self.pkg = pkg
        self.m = manifest
        self.version = manifest.version
        self.progress = progress
        self.errors = ErrorCollector()
        self.records: list[Record] = []
        #: kind -> sourcedId -> (location) for records in this import
        #: kind -> sourcedId -> row number, for records in this import (a row number, not its
        #: location string: a million enrollments)
        self.seen: dict[str, dict[str, int]] = {k: {} for k in KIND_COLLECTIONS}
        #: (kind, sourcedId) -> first (location, column) referencing it, not in the import
        self.pending: dict[tuple[str, str], tuple[str, str]] = {}
        #: same-file refs to check at the end: (kind, sid, location, column)
        self.late: list[tuple[str, str, str, str]] = []
        self.users: dict[str, tuple[dict[str, Any], str]] = {}
        self.user_roles: dict[str, list[dict[str, Any]]] = {}
        self.demographics: dict[str, tuple[dict[str, Any], str]] = {}
        self.report = ImportReport(version=self.version, files=dict(manifest.files))
        self._stored_cache: dict[tuple[str, str], bool] = {}
        self._columns: dict[tuple[str, str], str] = {}
        #: stream enrollments: read them in one pass while they are written (``streamed_enrollments``)
        self.stream = False
        #: (kind, sourcedId) references ``resolve_refs`` has checked
        self._resolved: set[tuple[str, str]] = set()
        #: rows of a streamed enrollments.csv read so far
        self._enrollment_rows = 0
        #: called once the files that enrollments reference (orgs, classes, users) are read,
        #: before the others (where a streamed import starts its enrollment reader process)
        self.references_read: Callable[[], None] | None = None

    def streamed_enrollments(self, batch: int) -> Iterator[Iterator[Record]]:
        """The one pass over enrollments.csv of a streamed import, as lazy batches, read while
        the transaction that writes them is open (``apply_batches``): the store prepares
        batch n+1 in its own thread while batch n is written, so reading, validating and
        converting these rows overlaps the database's writes. Each batch is consumed whole
        before the next is asked for.

        Every row gets the checks ``run`` gives the other files (duplicates, values, and
        references, resolved here against the import and the store). Only the records of
        rows without problems are handed on, and none after the first problem; every row
        is still read, so the report lists them all, and then the errors are raised,
        which rolls the whole transaction back: nothing of the package is committed."""
        cols: list[tuple[str, str, str]] = []
        rows = self.raw_rows("enrollments", cols)
        scratch: list[Record] = []
        fast: Callable[[list[str], int], Record | None] | None = None
        errors = self.errors.errors

        def one(first: tuple[int, list[str]]) -> Iterator[Record]:
            nonlocal fast
            if fast is None:  # the header is read now
                fast = _EnrollmentRows(self, cols).record
            item: tuple[int, list[str]] | None = first
            n = 0
            while item is not None:
                num, row = item
                rec = fast(row, num)
                if rec is not None:
                    if not errors:
                        yield rec
                else:  # anything unusual: the general path, which reports what is wrong
                    ok = self.enrollment_row(f"enrollments.csv row {num}", _row_object(cols, row), scratch)
                    if ok and scratch and not errors:
                        yield scratch[0]
                    scratch.clear()
                n += 1
                item = next(rows, None) if n < batch else None

        while True:
            first = next(rows, None)
            if first is None:
                break
            yield one(first)
        self.report.rows["enrollments"] = self._enrollment_rows
        if not self.errors:
            absent = self.bulk_absent("enrollments")
            self.report.records += len(absent)
            for i in range(0, len(absent), batch):
                yield iter(absent[i:i + batch])
        self.errors.raise_if_any("invalid OneRoster package")

    def expected_enrollments(self) -> int:
        """About how many rows enrollments.csv holds, at least (a typical row is 60-80 bytes)."""
        return self.pkg.size("enrollments.csv") // 80

    def enrollment_row(self, loc: str, obj: dict[str, Any], sink: list[Record]) -> bool:
        """Check and convert one enrollments.csv row of a streamed import into ``sink``;
        False when the row has a problem (it is then reported)."""
        self._enrollment_rows += 1
        before = len(self.errors.errors)
        sid = obj.get("sourcedId")
        if sid and self.duplicate("enrollment", sid, loc):
            return False
        pending = len(self.pending)
        self.check_refs("enrollments", obj, loc)
        if len(self.pending) != pending:
            self.resolve_refs()
        self.convert("enrollments", obj, loc, sink)
        if sink:
            self.report.records += 1
        return len(self.errors.errors) == before

    # ---- helpers

    def stored(self, kind: str, sid: str) -> bool:
        key = (kind, sid)
        if key not in self._stored_cache:
            found = False
            if self.store is not None:
                try:
                    self.store.records.get_json(self.tenant, kind, record_id(self.tenant, kind, self.source, sid))
                    found = True
                except NotFound:
                    found = False
            self._stored_cache[key] = found
        return self._stored_cache[key]

    def rows(self, name: str) -> Iterator[tuple[str, dict[str, Any], int]]:
        """(location, REST-shaped dict, row number) for each data row of ``name``.csv."""
        fname = f"{name}.csv"
        cols: list[tuple[str, str, str]] = []
        for n, row in self.raw_rows(name, cols):
            yield f"{fname} row {n}", _row_object(cols, row), n

    def raw_rows(self, name: str, cols: list[tuple[str, str, str]]) -> Iterator[tuple[int, list[str]]]:
        """(row number, fields as read) for each data row of ``name``.csv, once its header is
        checked; ``cols`` is then filled with each column's (CSV column, REST field,
        conversion). Rows of the wrong width are reported (not yielded), blank lines skipped."""
        fname = f"{name}.csv"
        spec = COLUMNS[self.version][name]
        by_col = {c: (f, t) for c, f, t, _ in spec}
        on_read = (lambda n: self.progress(fname, n)) if self.progress else None
        try:
            with self.pkg.open_text(fname, on_read) as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                if header is None:
                    self.errors.add("file is empty: the header row is required", location=f"{fname} row 1")
                    return
                header = [h.strip() for h in header]
                bad = False
                for c, _, _, required in spec:
                    if required and c not in header:
                        self.errors.add(f"required column {c!r} is missing", location=f"{fname} row 1", field=c)
                        bad = True
                found: list[tuple[str, str, str] | None] = []
                seen_cols: set[str] = set()
                for h in header:
                    if h in seen_cols:
                        self.errors.add(f"column {h!r} appears twice", location=f"{fname} row 1", field=h)
                        bad = True
                    seen_cols.add(h)
                    if h in by_col:
                        found.append((h, *by_col[h]))
                    elif h.startswith("metadata.") and len(h) > 9:
                        found.append((h, h, "meta"))
                    else:
                        self.errors.add(f"unknown column {h!r} for OneRoster {self.version} {fname}", location=f"{fname} row 1", field=h)
                        found.append(None)
                        bad = True
                if bad:
                    return
                cols.extend(found)  # type: ignore[arg-type]  # no None left: bad otherwise
                width = len(cols)
                for n, row in enumerate(reader, start=2):
                    if len(row) != width:
                        if not row or (len(row) == 1 and not row[0].strip()):
                            continue  # blank line
                        self.errors.add(f"expected {width} fields, found {len(row)}", location=f"{fname} row {n}")
                        continue
                    yield n, row
        except UnicodeDecodeError as exc:
            self.errors.add(f"not UTF-8: {exc.reason} at byte {exc.start}", location=fname)
        except csv.Error as exc:
            self.errors.add(f"not valid CSV: {exc}", location=fname)

    def column(self, name: str, rest_field: str | None) -> str | None:
        """CSV column of a REST field name (error details use the CSV's own names)."""
        if not rest_field:
            return None
        key = (name, rest_field)
        got = self._columns.get(key)
        if got is None:
            got = self._columns[key] = self._column(name, rest_field) or rest_field
        return got

    def _column(self, name: str, rest_field: str) -> str | None:
        head = rest_field.split("[", 1)[0].split(".", 1)[0]
        for c, f, _, _ in COLUMNS[self.version][name]:
            if f == head:
                return c
        if name == "users" and head == "roles":
            return "roles.csv"
        return rest_field

    def add_errors(self, name: str, exc: ValidationError, location: str) -> None:
        for e in exc.errors or [ErrorDetail(str(exc))]:
            self.errors.add(e.message, location=e.location or location, field=self.column(name, e.field))

    def check_refs(self, name: str, obj: dict[str, Any], location: str) -> None:
        for rest_field, kind in REF_KINDS[name].items():
            v = obj.get(rest_field)
            if v is None:
                continue
            sids = [ref_id(x) for x in v] if isinstance(v, list) else [ref_id(v)]
            col = self.column(name, rest_field) or rest_field
            for sid in sids:
                if not sid:
                    continue
                if FILE_OF_KIND[kind] == name or (name == "roles" and kind == "person") or (name == "users" and kind == "person"):
                    self.late.append((kind, sid, location, col))
                elif sid not in self.seen[kind]:
                    self.pending.setdefault((kind, sid), (location, col))

    def duplicate(self, kind: str, sid: str, location: str) -> bool:
        first = self.seen[kind].get(sid)
        if first is not None:
            self.errors.add(f"duplicate sourcedId {sid!r} (first at {FILE_OF_KIND[kind]}.csv row {first})", location=location, field="sourcedId")
            return True
        self.seen[kind][sid] = int(location.rsplit(" ", 1)[1])
        return False

    def mode(self, name: str) -> str:
        return self.m.files.get(name, "absent")

    # ---- the import

    def run(self) -> list[Record]:
        for name in ORDER:
            if name == "roles" and self.references_read is not None:  # orgs, classes and users are read
                self.references_read()
            mode = self.mode(name)
            if mode == "absent" or name not in COLUMNS[self.version]:
                continue
            count = 0
            if name == "users":
                for loc, obj, _ in self.rows(name):
                    count += 1
                    sid = obj.get("sourcedId")
                    if sid and not self.duplicate("person", sid, loc):
                        self.users[sid] = (obj, loc)
                    self.check_refs(name, obj, loc)
            elif name == "roles":
                for loc, obj, _ in self.rows(name):
                    count += 1
                    self.read_role(obj, loc)
            elif name == "demographics":
                demo_seen: dict[str, str] = {}
                for loc, obj, _ in self.rows(name):
                    count += 1
                    sid = obj.get("sourcedId")
                    if not sid:
                        self.errors.add("sourcedId is required", location=loc, field="sourcedId")
                        continue
                    if sid in demo_seen:
                        self.errors.add(f"duplicate sourcedId {sid!r} (first at {demo_seen[sid]})", location=loc, field="sourcedId")
                        continue
                    demo_seen[sid] = loc
                    self.demographics[sid] = (obj, loc)
            elif name == "enrollments" and self.stream:
                continue  # read once, while being written: streamed_enrollments
            else:
                kind = WIRE_KINDS[name]
                for loc, obj, _ in self.rows(name):
                    count += 1
                    sid = obj.get("sourcedId")
                    if sid and self.duplicate(kind, sid, loc):
                        continue
                    self.check_refs(name, obj, loc)
                    self.convert(name, obj, loc)
            self.report.rows[name] = count
        self.build_users()
        self.apply_demographics()
        self.read_gradebook()
        self.resolve_refs()
        self.errors.raise_if_any("invalid OneRoster package")
        self.mark_bulk_absent()
        self.report.records = len(self.records)
        return self.records

    def read_gradebook(self) -> None:
        """The gradebook and resources files (``gradebook.CsvGradebook``): validated against
        this package's rostering records and the store; their problems join the import's."""
        def resolve(kind: str, sids: list[str]) -> dict[str, Any]:
            return {s: record_id(self.tenant, kind, self.source, s) for s in sids if s in self.seen[kind] or self.stored(kind, s)}

        gb = CsvGradebook(self.store, self.tenant, self.source, self.version, self.rows, self.mode, resolve)
        self.report.gradebook = gb.read()
        for e in gb.errors:
            self.errors.add(e.message, location=e.location, field=e.field)
        self.report.rows.update(gb.counts)
        self.report.deleted.update(gb.deleted)

    def read_role(self, obj: dict[str, Any], loc: str) -> None:
        """1.2 roles.csv: validate the row here so errors name roles.csv, then hold it for its user."""
        user = ref_id(obj.get("user"))
        if not user:
            self.errors.add("userSourcedId is required", location=loc, field="userSourcedId")
            return
        rv = roles(self.version)
        if obj.get("role") and rv.to_canonical(obj["role"]) is None:
            self.errors.add(f"{obj['role']!r} is not a OneRoster 1.2 role; expected one of {rv.tokens}", location=loc, field="role")
        if obj.get("roleType") not in ("primary", "secondary"):
            self.errors.add(f"{obj.get('roleType')!r} is not a roleType; expected primary or secondary", location=loc, field="roleType")
        for col, f in (("beginDate", "beginDate"), ("endDate", "endDate")):
            if obj.get(f):
                try:
                    parse_date(obj[f])
                except ValueError as exc:
                    self.errors.add(str(exc), location=loc, field=col)
        for req in ("role", "org"):
            if not obj.get(req):
                self.errors.add(f"{self.column('roles', req)} is required", location=loc, field=self.column("roles", req))
        if obj.get("status") == "tobedeleted":
            return  # a deleted role assignment is simply not among the user's roles
        self.check_refs("roles", obj, loc)
        item = {k: v for k, v in obj.items() if k != "user"}
        self.user_roles.setdefault(user, []).append(item)

    def build_users(self) -> None:
        for sid, (obj, loc) in self.users.items():
            if self.version == "1.2":
                rl = self.user_roles.pop(sid, None)
                if rl is None and obj.get("status") == "tobedeleted" and self.mode("users") == "delta":
                    pass  # a deletion row: convert() checks the user exists
                elif rl is None:
                    stored = self.stored_person(sid)
                    if stored is not None:
                        obj["roles"] = to_wire(stored, sourced_id=self._sourced_id_of_store, use_source_date=True).get("roles", [])
                    else:
                        self.errors.add("user has no role: 1.2 users need at least one roles.csv row", location=loc, field="sourcedId")
                        continue
                else:
                    obj["roles"] = rl
            self.convert("users", obj, loc)
        self.users = {}
        # roles.csv rows (delta) for users not in users.csv: replace a stored user's roles
        for sid, rl in self.user_roles.items():
            stored = self.stored_person(sid)
            if stored is None:
                continue  # reported by resolve_refs (userSourcedId)
            obj = to_wire(stored, sourced_id=self._sourced_id_of_store, use_source_date=True)
            obj["roles"] = rl
            self.convert("users", obj, f"roles.csv (user {sid})")
        self.user_roles = {}

    def _sourced_id_of_store(self, kind: str, rid: Any) -> str | None:
        try:
            import orjson

            return orjson.loads(self.store.records.get_json(self.tenant, kind, rid))["native_id"]
        except NotFound:
            return None

    def stored_person(self, sid: str) -> Person | None:
        if self.store is None:
            return None
        try:
            rec = self.store.records.get(self.tenant, "person", record_id(self.tenant, "person", self.source, sid))
        except NotFound:
            return None
        return rec  # type: ignore[return-value]

    def convert(self, name: str, obj: dict[str, Any], loc: str, sink: list[Record] | None = None) -> None:
        """Validate one row into its record, kept in ``sink`` (default: the import's records;
        a list thrown away when enrollments are streamed: validated now, re-read to apply)."""
        kind = WIRE_KINDS[name]
        status = obj.get("status")
        if self.mode(name) == "delta" and status == "tobedeleted":
            sid = obj.get("sourcedId", "")
            stored = self.stored(kind, sid)
            if not stored:
                self.errors.add(f"row deletes {FILE_OF_KIND[kind][:-1] if kind != 'section' else 'class'} {sid!r}, "
                                "which is neither stored nor in this import", location=loc, field="status")
                return
        try:
            rec = to_canonical(name, obj, tenant=self.tenant, source=self.source, version=self.version, location=loc)
        except ValidationError as exc:
            if self.mode(name) == "delta" and status == "tobedeleted":
                # a delta deletion row may carry only sourcedId/status/dateLastModified
                rec = self._stored_deleted(kind, obj, loc)
                if rec is None:
                    self.add_errors(name, exc, loc)
                    return
            else:
                self.add_errors(name, exc, loc)
                return
        (self.records if sink is None else sink).append(rec)

    def _stored_deleted(self, kind: str, obj: dict[str, Any], loc: str) -> Record | None:
        try:
            rec = self.store.records.get(self.tenant, kind, record_id(self.tenant, kind, self.source, obj["sourcedId"]))
        except (NotFound, AttributeError):
            return None
        upd: dict[str, Any] = {"status": Status.tobedeleted, "updated_at": None}
        if obj.get("dateLastModified"):
            try:
                upd["source_updated_at"] = parse_datetime(obj["dateLastModified"])
            except ValueError as exc:
                self.errors.add(str(exc), location=loc, field="dateLastModified")
        return rec.model_copy(update=upd)

    def apply_demographics(self) -> None:
        if not self.demographics:
            return
        people = {r.native_id: i for i, r in enumerate(self.records) if isinstance(r, Person)}
        for sid, (obj, loc) in self.demographics.items():
            try:
                demo = demographics_to_canonical(obj, location=loc) if obj.get("status") != "tobedeleted" else None
            except ValidationError as exc:
                self.add_errors("demographics", exc, loc)
                continue
            keep = {k: v for k, v in obj.items() if k in ("cityOfBirth", "metadata", "dateLastModified") and v}
            if obj.get("status"):
                keep["status"] = obj["status"]
            i = people.get(sid)
            if i is not None:
                person = self.records[i]
            else:
                stored = self.stored_person(sid)
                if stored is None:
                    self.errors.add(f"demographics for user {sid!r}, which is neither in users.csv nor stored", location=loc, field="sourcedId")
                    continue
                person = stored.model_copy(update={"updated_at": None})
            ext = dict(person.extensions)
            if keep:
                ext["oneroster_demographics"] = keep
            else:
                ext.pop("oneroster_demographics", None)
            updated = person.model_copy(update={"demographics": demo, "extensions": ext})
            if i is not None:
                self.records[i] = updated
            else:
                self.records.append(updated)
                people[sid] = len(self.records) - 1

    def resolve_refs(self) -> None:
        """Report the references pending so far that neither the import nor the store holds,
        each at the first row naming it (a streamed import calls this again for its enrollments)."""
        for kind, sid, loc, col in self.late:
            if sid not in self.seen[kind]:
                self.pending.setdefault((kind, sid), (loc, col))
        self.late = []
        for (kind, sid), (loc, col) in self.pending.items():
            if (kind, sid) in self._resolved:
                continue
            self._resolved.add((kind, sid))
            if not self.stored(kind, sid):
                wire = FILE_OF_KIND[kind]
                self.errors.add(f"{col} {sid!r}: no such {wire[:-1] if kind != 'section' else 'class'} in {wire}.csv or the store",
                                location=loc, field=col)
        self.pending = {}

    def mark_bulk_absent(self) -> None:
        """Bulk: stored records of a bulk file's kind, from this source, absent from it, become
        tobedeleted (streamed enrollments: at the end of ``streamed_enrollments``)."""
        for name in ORDER:
            if name in WIRE_KINDS and not (name == "enrollments" and self.stream):
                self.records.extend(self.bulk_absent(name))

    def bulk_absent(self, name: str) -> list[Record]:
        """The stored records of ``name``'s kind that its bulk file leaves out, made tobedeleted."""
        if self.store is None or self.mode(name) != "bulk":
            return []
        kind = WIRE_KINDS[name]
        present = self.seen[kind]
        out = [
            rec.model_copy(update={"status": Status.tobedeleted, "updated_at": None})
            for rec in self.store.records.iter_records(self.tenant, [kind])
            if rec.source == self.source and rec.native_id not in present and rec.status != Status.tobedeleted
        ]
        if out:
            self.report.deleted[kind] = len(out)
        return out


#: "not well-formed", as ``_EnrollmentRows.parsed`` says it (None is a valid, empty value)
_BAD = object()
#: the spellings of ``primary`` the fast path takes ("TRUE" and such go the general way)
_PRIMARY = {"": False, "true": True, "false": False}


class _EnrollmentRows:
    """The fast path of a streamed enrollments.csv: the common, valid row, straight from the
    csv module's list of fields to its record.

    A million rows through the general path (a REST-shaped dict per row, the reference
    checks, ``to_canonical``) cost a quarter of a large import's CPU time; this path reads,
    checks and converts a row in 60 % of the time (the rest is mostly building the record
    and its uuid5 id, which both paths share). It takes a row only when the general one
    would accept it unchanged: no ``metadata.*`` columns, a new sourcedId, references to
    records already read (or found stored), a known status and role, a well-formed
    ``primary`` and dates in order, and not a delta deletion (which needs the stored
    record). For anything else ``record`` returns None and the row takes the general
    path, which reports every problem as before. The record is the one
    ``mapping.enrollment_record`` builds for ``mapping._enrollment_fast``, the general
    path's own shortcut: the same values, byte for byte (``test_oneroster_csv_fast``)."""

    #: distinct date / date-time strings kept parsed (a file repeats a few terms' dates)
    MEMO = 4096

    def __init__(self, imp: _Importer, cols: list[tuple[str, str, str]]) -> None:
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
        sid, status, modified, user, klass, school, role, primary, begin, end = map(str.strip, self.pick(row))
        del row[-1]
        enrolled = imp.seen["enrollment"]
        if not sid or len(sid) > 255 or sid in enrolled:
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
        stamp = self.stamps[modified] if modified in self.stamps else self.parsed(self.stamps, modified, parse_datetime)
        if starts is _BAD or ends is _BAD or stamp is _BAD or (starts and ends and ends < starts):
            return None
        enrolled[sid] = n
        imp._enrollment_rows += 1
        imp.report.records += 1
        return enrollment_record(imp.tenant, imp.source, sid, state, stamp, person, section, org, canonical, flag, starts, ends)

    def ref(self, kind: str, sid: str) -> uuid.UUID | None:
        """The id of a reference in this import, or found stored by an earlier reference check
        (``resolve_refs``); None for any other (the general path checks it)."""
        imp = self.imp
        if not sid or (sid not in imp.seen[kind] and imp._stored_cache.get((kind, sid)) is not True):
            return None
        self.ids[kind][sid] = ref_record_id(imp.tenant, kind, imp.source, sid)
        return self.ids[kind][sid]

    def parsed(self, memo: dict[str, Any], text: str, parse: Callable[[str], Any]) -> Any:
        """``parse(text)``, kept in ``memo``; ``_BAD`` when it is not well-formed."""
        try:
            got = parse(text)
        except ValueError:
            return _BAD
        if len(memo) > self.MEMO:
            memo.clear()
            memo[""] = None
        memo[text] = got
        return got


def parse_package(
    path: Path | str | bytes,
    *,
    tenant: str,
    source: str,
    store: Any = None,
    progress: Callable[[str, int], None] | None = None,
) -> tuple[list[Record], ImportReport]:
    """Validate a package into canonical records (nothing is written). With a ``store``,
    references may point to stored records and bulk files mark absent records tobedeleted."""
    pkg = Package(path)
    try:
        manifest = read_manifest(pkg)
        imp = _Importer(store, tenant, source, pkg, manifest, progress)
        with _gc_paused():
            records = imp.run()
        return records, imp.report
    finally:
        pkg.close()


#: Enrollment files larger than this (uncompressed) are streamed (see ``import_package``).
STREAM_BYTES = 16 * 1024 * 1024
STREAM_BATCH = 20_000


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while an import runs: the import holds hundreds of
    thousands of long-lived, acyclic objects (records, sourcedId sets) that every full
    collection would walk again, which took HALF of a large import's time. Reference
    counting still frees everything; the collector is restored after."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def import_package(
    store: Any,
    path: Path | str | bytes,
    *,
    tenant: str,
    source: str = "sis",
    progress: Callable[[str, int], None] | None = None,
    applying: Callable[[int], None] | None = None,
    stream: bool | None = None,
    reader_process: bool | None = None,
) -> ImportReport:
    """Validate the whole package, then apply it, in ONE transaction: any error and nothing changes.

    Normally with ``store.records.apply``. A very large enrollments file (``stream``; by
    default when enrollments.csv is over ``STREAM_BYTES``, about 250,000 rows) would not fit
    in memory as one batch: every other file is validated first (``applying`` is called
    then), and the enrollments are then read, validated and converted in ONE pass, batch by
    batch, as ``apply_batches`` writes them (``_Importer.streamed_enrollments``): reading a
    million rows twice, once to validate and once to write, cost more than writing them.
    Still one transaction: a problem in any row is reported with all the others and rolls
    every batch back, the gradebook files' objects and records included.

    ``reader_process``: read and prepare the streamed enrollments in a child process while
    this one writes them (``_EnrollmentReader``); by default when enrollments.csv is at
    least ``READER_BYTES`` and the store can be opened from a second process."""
    pkg = Package(path)
    try:
        manifest = read_manifest(pkg)
        imp = _Importer(store, tenant, source, pkg, manifest, progress)
        if stream is None:
            stream = manifest.files.get("enrollments", "absent") != "absent" and pkg.size("enrollments.csv") > STREAM_BYTES
        # nothing to stream without an enrollments file
        imp.stream = imp.report.streamed = bool(stream) and manifest.files.get("enrollments", "absent") != "absent"
        if reader_process is None:
            reader_process = imp.stream and pkg.size("enrollments.csv") >= READER_BYTES
        imp.report.reader_process = imp.stream and reader_process and _reader_can_open(store)
        with _gc_paused(), _enrollment_batches(imp) as enrollments:
            return _run_import(store, tenant, imp, enrollments, applying)
    finally:
        pkg.close()


def _run_import(store: Any, tenant: str, imp: _Importer, enrollments: Iterator[Iterator[Record] | PreparedBatch] | None,
                applying: Callable[[int], None] | None) -> ImportReport:
    records = imp.run()
    report = imp.report
    if applying is not None:
        applying(len(records))
    index = {(r.KIND, r.native_id): i for i, r in enumerate(records)} if records else {}
    try:
        if enrollments is None:
            if report.gradebook is not None:  # gradebook objects and their evidence: same transaction
                report.result = apply_gradebook(store, report.gradebook, records)
            else:
                report.result = store.records.apply(tenant, records)
        else:
            gradebook = report.gradebook
            extra = gradebook.records if gradebook is not None else []
            batches = _chain(_ordered_chunks(records, STREAM_BATCH), enrollments,
                             (extra[i:i + STREAM_BATCH] for i in range(0, len(extra), STREAM_BATCH)))
            # Many batches in ONE transaction: memory bounded by a batch, still all or nothing
            # (streamed_enrollments raises the errors of its rows at its end: a rollback); the
            # gradebook's records come last and its own objects are written in the same
            # transaction (``within``).
            report.result = store.records.apply_batches(tenant, batches, expect={"enrollment": imp.expected_enrollments()},
                                                        within=gradebook_writer(gradebook) if gradebook is not None else None)
            report.atomic = True
    except IntegrityError as exc:
        raise IntegrityError("invalid OneRoster package", errors=[_relocate(e, index) for e in exc.errors]) from None
    return report


_KIND_ORDER = {k: i for i, k in enumerate(["org", "academic_session", "course", "section", "person", "enrollment"])}


def _ordered_chunks(records: list[Record], size: int) -> Iterator[list[Record]]:
    """Records in batches that only reference earlier batches (or the store): kinds in
    dependency order, and people naming agents after the people without."""
    def key(r: Record) -> tuple[int, int]:
        return _KIND_ORDER.get(r.KIND, 9), 1 if getattr(r, "agent_ids", None) else 0

    ordered = sorted(records, key=key)
    for i in range(0, len(ordered), size):
        yield ordered[i:i + size]


def _chain(*its: Any) -> Iterator[Any]:
    for it in its:
        yield from it


#: A streamed enrollments.csv at least this large (uncompressed, ~30,000 rows) is read in a
#: child process (``_EnrollmentReader``). Measured (generated districts, SQLite, whole
#: import): 0.3 MB 0.26 s with the child vs 0.27 s without, 1.2 MB 0.69 vs 0.70 s, 3 MB
#: 1.21 vs 1.49 s. Below ~2 MB the fork, the child's own connection and the pickling
#: (more CPU in all) buy nothing measurable; above, the overlap pays more and more.
READER_BYTES = 2 * 1024 * 1024


def _reader_can_open(store: Store) -> bool:
    """Whether a forked child can read ``store`` through connections of its own: a fork is
    needed (the child inherits the importer's state), and an in-memory SQLite database
    exists only in this process."""
    url = store.engine.url
    in_memory = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
    return "fork" in multiprocessing.get_all_start_methods() and not in_memory


@contextlib.contextmanager
def _enrollment_batches(imp: _Importer) -> Iterator[Iterator[Iterator[Record] | PreparedBatch] | None]:
    """The enrollment batches of a streamed import (None for another): read in this process
    (lazy record batches, which the store prepares in its pipeline thread), or read and
    prepared in a child process (``_EnrollmentReader``), which ``imp.run`` starts once the
    files that enrollments reference are read: enter it before ``imp.run``."""
    if not imp.stream:
        yield None
    elif not imp.report.reader_process:
        yield imp.streamed_enrollments(STREAM_BATCH)
    else:
        reader = _EnrollmentReader(imp, STREAM_BATCH)
        imp.references_read = reader.start
        try:
            yield reader.batches()
        finally:
            reader.close()


def _send_all(ready: queue.Queue[bytes | None], conn: Any) -> None:
    """The reader process's sender thread: writes each pickled message to the pipe (without
    the GIL) while the main thread reads and prepares the next batches. A broken pipe means
    the importing process is gone or gave up: the reader ends at once."""
    try:
        while (data := ready.get()) is not None:
            conn.send_bytes(data)
    except OSError:
        os._exit(1)


class _EnrollmentReader:
    """``_Importer.streamed_enrollments`` run in a forked child process, each batch prepared
    there (``_prepared_enrollments``: serialised, hashed, its rows built) and sent back
    ready to write, while this process writes.

    Why: a streamed import was one process's Python work, about 20 us per enrollment, of
    which reading, checking, converting and preparing a row took 15; the database's own
    work (inserts, index builds, the commit) runs without the GIL, so the second core sat
    half idle. Threads would only take turns; a child process runs in parallel. (A million
    enrollments: 32 s before, 23-25 s with it; see bench/oneroster_csv.py.)

    The child is forked once the files enrollments reference are read (orgs, classes,
    users: ``_Importer.references_read``), while this process goes on with the roles,
    demographics and gradebook files and builds the users. It inherits the importer as it
    stands: the sourcedIds of the package, the references found stored so far
    (``_stored_cache``), the manifest. It runs the very code of the in-process path (the
    same fast and general paths, duplicate and reference checks, errors in the same order,
    records) and prepares them as ``RecordStore.prepare`` does, byte for byte. What it
    leaves alone:

    * the other files' references still to resolve (``pending``, ``late``): this process
      resolves them, and any problem in them fails the import here, which stops the child;
    * this process's connections and open package: a forked connection shares its socket
      or file locks, and a shared zip file its read offset. The child opens its own (it
      sees what is committed, as the in-process path's lookups do from their own pooled
      connections).

    Messages (pickled, (tag, bytes of enrollments.csv read, payload)):

    * ``batch``: one batch's rows as plain values (``_ship``);
    * ``end``: the report's counts (rows read, records added, enrollments made tobedeleted);
    * ``raise``: what the in-process path would raise (the rows' errors, all of them, at
      the end), raised here in turn, which rolls the transaction back.

    The child reads up to ``AHEAD`` batches ahead of the writer (which first writes the
    other files' records), no more: memory stays bounded. The store does not check the
    enrollments' references again (the batches carry none): the importer checked each
    against the package and the store, and the store deletes no record (a deletion is
    ``tobedeleted``)."""

    #: pickled batches the child holds ready beyond the pipe's (~12 MB each at 20,000 rows)
    AHEAD = 8

    def __init__(self, imp: _Importer, batch: int) -> None:
        self.imp = imp
        self.batch = batch
        self._proc: Any = None
        self._recv: Any = None

    def start(self) -> None:
        """Fork the child (``_Importer.references_read``)."""
        ctx = multiprocessing.get_context("fork")
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=self._child, args=(send,), name="tessera-enrollments", daemon=True)
        self._proc.start()
        send.close()  # the child's end: EOF here once the child is gone

    def _child(self, conn: Any) -> None:
        imp = self.imp
        imp.store = Store.from_url(imp.store.engine.url.render_as_string(hide_password=False))
        imp.pkg = Package(imp.pkg.path)
        imp.pending, imp.late = {}, []
        records_before = imp.report.records
        read = 0

        def count(_name: str, n: int) -> None:
            nonlocal read
            read += n

        imp.progress = count
        ready: queue.Queue[bytes | None] = queue.Queue(self.AHEAD)
        sender = threading.Thread(target=_send_all, args=(ready, conn), daemon=True)
        sender.start()

        def put(tag: str, payload: Any) -> None:
            nonlocal read
            ready.put(pickle.dumps((tag, read, payload), protocol=pickle.HIGHEST_PROTOCOL))
            read = 0

        try:
            for records in imp.streamed_enrollments(self.batch):
                put("batch", _ship(_prepared_enrollments(imp.store.records, imp.tenant, records)))
            report = imp.report
            put("end", (report.rows["enrollments"], report.records - records_before, report.deleted.get("enrollment")))
        except BaseException as exc:  # noqa: BLE001  # every failure goes to the parent, which raises it
            try:
                put("raise", exc)
            except (pickle.PicklingError, TypeError, AttributeError):  # not picklable: its traceback, then
                put("raise", RuntimeError(f"reading enrollments.csv failed:\n{traceback.format_exc()}"))
        ready.put(None)
        sender.join()
        imp.store.dispose()

    def batches(self) -> Iterator[PreparedBatch]:
        """The child's batches, prepared, in order; then its counts join the report."""
        imp = self.imp
        while True:
            try:
                tag, read, payload = pickle.loads(self._recv.recv_bytes())
            except EOFError:
                raise RuntimeError(f"the enrollment reader process ended unexpectedly (exit code {self._proc.exitcode})") from None
            if read and imp.progress is not None:
                imp.progress("enrollments.csv", read)
            if tag == "raise":
                raise payload
            if tag == "end":
                imp.report.rows["enrollments"], added, deleted = payload
                imp.report.records += added
                if deleted:
                    imp.report.deleted["enrollment"] = deleted
                return
            yield _unship(imp.tenant, payload)

    def close(self) -> None:
        """Stop the child (still running only when the import failed) and reap it."""
        if self._proc is None:
            return
        self._recv.close()
        if self._proc.is_alive():
            self._proc.kill()
        self._proc.join()


def _prepared_enrollments(records: RecordStore, tenant: str, batch: Iterable[Record]) -> list[Prepared]:
    """``RecordStore.prepare(tenant, batch).by_kind["enrollment"]`` for a batch of enrollments,
    at half the cost: a plain enrollment (no identifiers, no extensions: every fast-path row)
    is serialised and hashed here (``_plain_digest``) and handed to ``prepare_serialised``,
    which builds the same row; any other goes through ``prepare``. The references are not
    collected (the importer checked them, see ``_EnrollmentReader``)."""
    plain: list[tuple[Record, str, str]] = []
    other: list[Record] = []
    for rec in batch:
        if type(rec) is Enrollment and not rec.identifiers and not rec.extensions and rec.updated_at is None:
            plain.append((rec, *_plain_digest(rec)))
        else:
            other.append(rec)
    items = records.prepare_serialised(tenant, "enrollment", plain).by_kind.get("enrollment", [])
    if not other:
        return items
    # in id order, as prepare orders them (a stored key's order is its UUID's on both engines)
    return sorted([*items, *records.prepare(tenant, other).by_kind.get("enrollment", [])], key=operator.attrgetter("key"))


def _plain_digest(rec: Record) -> tuple[str, str]:
    """(content hash, JSON body without its closing brace) of a plain enrollment, byte for
    byte what ``RecordStore.prepare`` makes of it: pydantic's JSON of the fields that are
    not None, in field order, hashed as it is (its only free-form dict, ``extensions``, is
    empty). orjson writes these field types (UUIDs, strings, enums, booleans, dates, UTC
    datetimes with ``Z``, an empty list and dict) exactly as pydantic does, in a third of
    the time; ``test_oneroster_csv_fast`` compares the two."""
    raw = orjson.dumps({k: v for k, v in rec.__dict__.items() if v is not None}, option=orjson.OPT_UTC_Z)
    return hashlib.sha256(raw).hexdigest(), raw[:-1].decode()


#: one batch's enrollments as plain values: keys, hashes, rows, bodies, identifier rows
_Shipped = tuple[list[Any], list[str], list[tuple[Any, ...]], list[str], list[tuple[Any, ...]]]


def _ship(items: list[Prepared]) -> _Shipped:
    """Prepared enrollments as plain values to pickle (strings, bytes, tuples; UUIDs on
    PostgreSQL), not their records: unpickling a million pydantic models would cost the
    writing process more than preparing them did."""
    return ([p.key for p in items], [p.digest for p in items], [p.head for p in items],
            [p.body for p in items], [p.idents for p in items])  # type: ignore[misc]


def _unship(tenant: str, shipped: _Shipped) -> PreparedBatch:
    """The ``PreparedBatch`` of what ``_ship`` sent, a ``_ShippedRecord`` standing in for each
    record. ``by_id`` stays empty: the writer reads it only for kinds that records reference
    (``REFERENCED_KINDS``), which enrollments are not."""
    items = [Prepared(_ShippedRecord(head), key, digest, head, body, None, idents)  # type: ignore[arg-type]
             for key, digest, head, body, idents in zip(*shipped, strict=True)]
    return PreparedBatch(tenant, {"enrollment": items} if items else {}, len(items))


class _ShippedRecord:
    """``Prepared.rec`` of a record prepared in the reader process: what the writer reads of
    it, from its row (``Prepared.head``: id, tenant, source, native_id, status, ...): its
    status (to log an update as a deletion) and, for an outbox route, its id and source."""

    __slots__ = ("head",)

    def __init__(self, head: tuple[Any, ...]) -> None:
        self.head = head

    @property
    def id(self) -> uuid.UUID:
        key = self.head[0]  # a UUID on PostgreSQL, its 16 bytes on SQLite
        return key if isinstance(key, uuid.UUID) else uuid_from_sqlite(key)  # type: ignore[return-value]

    @property
    def source(self) -> str:
        return self.head[2]  # type: ignore[no-any-return]

    @property
    def status(self) -> Status:
        return Status(self.head[4])


def _relocate(e: ErrorDetail, index: dict[tuple[str, str], int]) -> ErrorDetail:
    """The store names a record ``kind source/native_id``; say which CSV file it came from."""
    loc = e.location or ""
    kind, _, rest = loc.partition(" ")
    native = rest.split("/", 1)[-1] if "/" in rest else None
    if kind in FILE_OF_KIND and native is not None and (kind, native) in index:
        return ErrorDetail(e.message, location=f"{FILE_OF_KIND[kind]}.csv sourcedId {native}", field=e.field)
    return e


# --------------------------------------------------------------------------- export


EXPORT_ORDER = ["orgs", "academicSessions", "courses", "classes", "users", "roles", "demographics", "enrollments",
                *CSV_COLUMNS["1.2"]]


def export_package(
    store: Any,
    out: Path | str | io.BytesIO,
    *,
    tenant: str,
    version: str = "1.2",
    source: str | None = None,
) -> dict[str, int]:
    """Write a bulk package (manifest.csv and one CSV per type) of the tenant's rostering
    records (of ``source`` only, when given). ``dateLastModified`` is the source's own
    (``source_updated_at``) where known, so the package re-imports to the same state."""
    version = normalize_version(version)
    kinds = list(KIND_COLLECTIONS)
    records: dict[str, list[Record]] = {k: [] for k in kinds}
    names: dict[tuple[str, Any], str] = {}
    for rec in store.records.iter_records(tenant, kinds):
        if source is not None and rec.source != source:
            continue
        records[rec.KIND].append(rec)
        names[(rec.KIND, rec.id)] = rec.native_id
    clash: dict[tuple[str, str], str] = {}
    for kind, recs in records.items():
        for r in recs:
            other = clash.setdefault((kind, r.native_id), r.source)
            if other != r.source:
                raise ValidationError(f"{kind} sourcedId {r.native_id!r} exists in sources {other!r} and {r.source!r}; "
                                      "export one source at a time (--source)")

    def sourced_id(kind: str, rid: Any) -> str | None:
        sid = names.get((kind, rid))
        if sid is None and store is not None:
            try:
                import orjson

                sid = orjson.loads(store.records.get_json(tenant, kind, rid))["native_id"]
            except NotFound:
                return None
            names[(kind, rid)] = sid
        return sid

    counts: dict[str, int] = {}
    cols = COLUMNS[version]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        written: dict[str, str] = {}
        for name in EXPORT_ORDER:
            if name not in cols:
                continue
            rows = _rows_for(name, records, version, sourced_id)
            if rows is None and name in CSV_COLUMNS[version]:
                found = csv_rows(store, tenant, name, version, source)
                rows = iter(found) if found else None
            if rows is None:
                continue
            spec = cols[name]
            extra_meta: list[str] = []
            rows = list(rows)
            for r in rows:
                for k in (r.get("metadata") or {}):
                    if f"metadata.{k}" not in extra_meta:
                        extra_meta.append(f"metadata.{k}")
            with zf.open(f"{name}.csv", "w") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
                w = csv.writer(fh, lineterminator="\r\n")
                w.writerow([c for c, _, _, _ in spec] + extra_meta)
                for r in rows:
                    w.writerow([_cell(r.get(f), t) for _, f, t, _ in spec]
                               + [str((r.get("metadata") or {}).get(m[9:], "")) for m in extra_meta])
            counts[name] = len(rows)
            written[name] = "bulk"
        with zf.open("manifest.csv", "w") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\r\n")
            w.writerow(["propertyName", "value"])
            w.writerow(["manifest.version", "1.0"])
            w.writerow(["oneroster.version", version])
            for name in KNOWN_FILES[version]:
                w.writerow([f"file.{name}", written.get(name, "absent")])
            w.writerow(["source.systemName", "Tessera"])
            w.writerow(["source.systemCode", source or tenant])
    return counts


def _rows_for(name: str, records: dict[str, list[Record]], version: str, sourced_id: Callable[[str, Any], str | None]) -> Iterator[dict[str, Any]] | None:
    if name in WIRE_KINDS:
        recs = records[WIRE_KINDS[name]]
        return (_flatten(to_wire(r, version=version, sourced_id=sourced_id, use_source_date=True)) for r in recs)
    if name == "roles":
        def gen() -> Iterator[dict[str, Any]]:
            for p in records["person"]:
                wire = to_wire(p, version=version, sourced_id=sourced_id, use_source_date=True)
                for i, role in enumerate(wire.get("roles", [])):
                    row = dict(role)
                    row.setdefault("sourcedId", f"{p.native_id}-role-{i + 1}")
                    row["user"] = {"sourcedId": p.native_id}
                    yield _flatten(row)
        return gen()
    if name == "demographics":
        people = [p for p in records["person"] if isinstance(p, Person) and p.demographics is not None]
        return (_flatten(demographics_to_wire(p, version=version) or {}) for p in people)
    return None


def _flatten(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    if isinstance(out.get("enabledUser"), bool):
        out["enabledUser"] = "true" if out["enabledUser"] else "false"
    if isinstance(out.get("primary"), bool):
        out["primary"] = "true" if out["primary"] else "false"
    ids = out.get("userIds")
    if isinstance(ids, list):
        out["userIds"] = ",".join(f"{{{u['type']}:{u['identifier']}}}" for u in ids)
    return out


def _cell(v: Any, t: str) -> str:
    if v is None:
        return ""
    if t == REF:
        return ref_id(v) or ""
    if t == REFS:
        return ",".join(s for s in (ref_id(x) for x in v) if s)
    if t == LIST:
        return ",".join(str(x) for x in v) if isinstance(v, list) else str(v)
    return str(v)


__all__ = ["COLUMNS", "ImportReport", "Manifest", "Package", "export_package", "import_package", "parse_package", "read_manifest"]
