"""The importer: a package's rostering files read, checked and converted into canonical
records, with every problem named by file, row and column (OneRoster 1.1 CSV Tables
section 2-4, 1.2 CSV Binding section 2-5).

* headers: every column the spec marks required must be present; columns may come in any
  order; a column the spec does not define is an error, except the ``metadata.<name>``
  extension columns, which are kept (in ``extensions["oneroster"]["metadata"]``), and, in
  the tolerant mode (the default), any other column, kept the same way.
* deviations with one reading (``tolerance``: enumeration case, OneRoster 1.0 ``inactive``,
  boolean spellings, ...) are normalised and listed in ``report.deviations``; with
  ``strict`` they are errors.
* rows are numbered as a spreadsheet shows them: the header is row 1, the first data row
  row 2. Every problem is reported with file, row and column, up to 1000 of them.
* bulk: a ``bulk`` file replaces that type for the import's source: records of its kind
  from this source that are stored but absent from the file become ``tobedeleted``.
* delta: rows carry their own ``status`` and ``dateLastModified``; a ``tobedeleted`` row for
  a record that is neither stored nor in the import deletes nothing: skipped with a
  ``nothing-to-delete`` warning (``--strict``: an error naming the row).
* references to records in neither the package nor the store (a class whose course file is
  absent, an org whose parent is another district's): the record is kept and holds the
  reference unresolved (``gateway.store.unresolved``), which resolves by itself when a later
  package brings the target; one ``unresolved-reference`` warning per target, at the first
  row naming it (``--strict``: an error there, as before). ``hold_references``.
* 1.2 ``roles.csv`` rows become the user's ``roles``; ``demographics.csv`` rows (keyed by
  the user's sourcedId) become ``Person.demographics``; ``userProfiles.csv`` rows become the
  user's ``userProfiles`` (``profiles``).
* passwords: every row passes ``profiles.UserProfiles.take_secrets`` first; no password or
  other credential reaches a record (dropped and counted, or kept sealed: ``credentials``).
* the gradebook and resources files are read after the rostering files with the same
  checks, by ``gradebook.csv_files.CsvGradebook``.
* a streamed import (``ingest.import_package``) reads enrollments.csv once, while it is
  written: ``Importer.streamed_enrollments``, whose common, valid rows take the fast path
  (``fast_rows.EnrollmentRows``).

Over 600 lines because ``Importer`` is one class whose checks share one state (the
sourcedIds read so far, the references pending, the store lookups cached): split, each part
would reach into the others'. What could leave it has: value deviations (``tolerance``),
references outside the package (``outside``), enrollment fast rows (``fast_rows``).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.errors import Deviations, ErrorCollector, ErrorDetail, NotFound, ValidationError
from gateway.model import Person, Record, Status, record_id
from gateway.store.unresolved import hold

from ..demographics import demographics_to_canonical
from ..gradebook.csv_files import CsvGradebook
from ..mapping import to_canonical
from ..to_wire import to_wire
from ..values import parse_date, parse_datetime, ref_id
from ..vocab import KIND_COLLECTIONS, WIRE_KINDS, roles
from .columns import COLUMNS, FILE_OF_KIND, ORDER, REF_KINDS, row_object
from .fast_rows import EnrollmentRows
from .outside import Outside
from .package import Manifest, Package
from .profiles import UserProfiles
from .tolerance import RowCheck, Tolerance


@dataclass
class ImportReport:
    """What an import read, and (``ingest.import_package``) what it wrote."""

    version: str
    files: dict[str, str]
    rows: dict[str, int] = field(default_factory=dict)
    #: kind -> records a bulk file marked tobedeleted
    deleted: dict[str, int] = field(default_factory=dict)
    result: Any = None
    records: int = 0
    #: True when enrollments were read while applied in batches, one transaction (see import_package)
    streamed: bool = False
    #: True when those enrollments were read and prepared in a child process (``enrollments.EnrollmentReader``)
    reader_process: bool = False
    #: False only when a streamed import was applied in several transactions
    atomic: bool = True
    #: the gradebook / resources objects to write with the records (``gradebook.prepare.Plan``)
    gradebook: Any = None
    #: what the tolerant mode normalised, by kind and place (``tolerance``); empty in strict mode
    deviations: Deviations = field(default_factory=Deviations)
    #: target kind -> targets in neither the package nor the store, held unresolved
    unresolved: dict[str, int] = field(default_factory=dict)
    #: "file.csv column" -> rows whose user password / credential was dropped (``credentials``;
    #: a policy, in strict mode too) or kept sealed (``keep_credentials="sealed"``)
    dropped_credentials: dict[str, int] = field(default_factory=dict)
    sealed_credentials: dict[str, int] = field(default_factory=dict)


class Importer(Outside):
    """One package's files read in ``columns.ORDER``, each row checked and converted into
    its record (``run``); enrollments.csv read while it is written when ``stream`` is set
    (``streamed_enrollments``). Problems are collected and raised together."""

    def __init__(self, store: Any, tenant: str, source: str, pkg: Package, manifest: Manifest,
                 progress: Callable[[str, int], None] | None, *, strict: bool = False) -> None:
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
        #: deviations normalised (tolerant) or refused (``strict``, errors in ``errors``): ``tolerance``
        self.devs = self.report.deviations = Deviations(strict=strict, errors=self.errors)
        self.tol = Tolerance(self.devs, self.errors, self.version)
        #: the data row being read, as read (a duplicate is compared with its first: ``tolerance``)
        self._raw: list[str] | None = None
        self._loc = ""  # of that row (``_padded``)
        #: target kind -> id -> sourcedId of the references held unresolved (``unresolved_reference``)
        self.held: dict[str, dict[Any, str]] = {}
        self.stored_cache: dict[tuple[str, str], bool] = {}
        self._columns: dict[tuple[str, str], str] = {}
        self._checks: dict[str, RowCheck] = {}
        #: stream enrollments: read them in one pass while they are written (``streamed_enrollments``)
        self.stream = False
        #: (kind, sourcedId) references ``resolve_refs`` has checked
        self._resolved: set[tuple[str, str]] = set()
        #: rows of a streamed enrollments.csv read so far
        self.enrollment_rows = 0
        #: called once the files that enrollments reference (orgs, classes, users) are read,
        #: before the others (where a streamed import starts its enrollment reader process)
        self.references_read: Callable[[], None] | None = None
        #: userProfiles.csv and the import's credentials (``profiles.UserProfiles``)
        self.profiles = UserProfiles(self)

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
                fast = EnrollmentRows(self, cols).record
            item: tuple[int, list[str]] | None = first
            n = 0
            while item is not None:
                num, row = item
                rec = fast(row, num)
                if rec is not None:
                    if not errors:
                        yield rec
                else:  # anything unusual: the general path, which reports what is wrong
                    loc = f"enrollments.csv row {num}"
                    ok = self.enrollment_row(loc, self.row_object("enrollments", cols, row, loc), scratch)
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
        self.report.rows["enrollments"] = self.enrollment_rows
        self.tol.settle_duplicates(self.pkg)
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
        self.enrollment_rows += 1
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
            if self.held:
                sink[-1] = hold(sink[-1], self.held)
        return len(self.errors.errors) == before

    # ---- helpers

    def stored(self, kind: str, sid: str) -> bool:
        key = (kind, sid)
        if key not in self.stored_cache:
            found = False
            if self.store is not None:
                try:
                    self.store.records.get_json(self.tenant, kind, record_id(self.tenant, kind, self.source, sid))
                    found = True
                except NotFound:
                    found = False
            self.stored_cache[key] = found
        return self.stored_cache[key]

    def rows(self, name: str) -> Iterator[tuple[str, dict[str, Any], int]]:
        """(location, REST-shaped dict, row number) for each data row of ``name``.csv."""
        fname = f"{name}.csv"
        cols: list[tuple[str, str, str]] = []
        for n, row in self.raw_rows(name, cols):
            loc = f"{fname} row {n}"
            obj = self.row_object(name, cols, row, loc)
            self.profiles.take_secrets(name, obj, loc)  # no password goes further
            yield loc, obj, n

    def row_object(self, name: str, cols: list[tuple[str, str, str]], row: list[str], loc: str) -> dict[str, Any]:
        """``columns.row_object``, with the deviations of its values normalised or refused
        (``tolerance.RowCheck``); the row is kept as read for the duplicate check."""
        checks = self._checks.get(name)
        if checks is None:
            checks = self._checks[name] = self.tol.row_check(name, {f for _, f, _ in cols})
        self._raw = row
        self._loc = loc
        obj = row_object(cols, row, self._padded)
        if checks.checks or checks.grades:
            checks(obj, loc)
        return obj

    def _padded(self, c: str) -> None:
        self.devs.tolerate("whitespace", f"value of {c!r} has surrounding spaces: stripped", location=self._loc, field=c)

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
                reader = fh.reader()  # records bounded (csv.limits)
                header = next(reader, None)
                if header is None:
                    self.errors.add("file is empty: the header row is required", location=f"{fname} row 1")
                    return
                header, dropped = self.tol.header(fname, header, spec)
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
                    elif (kept := self.tol.unknown_column(fname, h, header)) is not None:
                        found.append((h, kept, "meta"))
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
                        if not self.tol.wide_row(fname, n, row, width, dropped):
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
            if self.tol.duplicate(f"{FILE_OF_KIND[kind]}.csv", sid, location, first, self._raw):
                return True  # tolerant: an exact repetition is dropped, another row an error (settle_duplicates)
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
            elif name == "userProfiles":
                for loc, obj, _ in self.rows(name):
                    count += 1
                    self.profiles.read(obj, loc)
            elif name == "demographics":
                demo_seen: dict[str, str] = {}
                for loc, obj, _ in self.rows(name):
                    count += 1
                    sid = obj.get("sourcedId")
                    if not sid:
                        self.errors.add("sourcedId is required", location=loc, field="sourcedId")
                        continue
                    if sid in demo_seen:
                        if not self.tol.duplicate("demographics.csv", sid, loc, int(demo_seen[sid].rsplit(" ", 1)[1]), self._raw):
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
        self.profiles.apply()
        self.apply_demographics()
        self.read_gradebook()
        self.resolve_refs()
        self.tol.settle_duplicates(self.pkg)
        self.errors.raise_if_any("invalid OneRoster package")
        self.hold_references()
        self.mark_bulk_absent()
        self.report.records = len(self.records)
        return self.records

    def read_gradebook(self) -> None:
        """The gradebook and resources files (``gradebook.CsvGradebook``): validated against
        this package's rostering records and the store; their problems join the import's."""
        def resolve(kind: str, sids: list[str]) -> dict[str, Any]:
            return {s: record_id(self.tenant, kind, self.source, s) for s in sids if s in self.seen[kind] or self.stored(kind, s)}

        gb = CsvGradebook(self.store, self.tenant, self.source, self.version, self.rows, self.mode, resolve, devs=self.devs,
                          people=list(self.seen["person"]))
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
                        for r in obj["roles"]:  # a stored role's org may still be unresolved: checked again
                            self.check_refs("roles", r, loc)
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
            if stored is None:  # reported by resolve_refs (userSourcedId); tolerant: not kept
                if not self.devs.strict:
                    self.orphan_row(f"roles of user {sid!r}, which is neither in users.csv nor stored", f"roles.csv (user {sid})",
                                    "userSourcedId")
                continue
            obj = to_wire(stored, sourced_id=self._sourced_id_of_store, use_source_date=True)
            obj["roles"] = rl
            self.convert("users", obj, f"roles.csv (user {sid})")
        self.user_roles = {}

    def _sourced_id_of_store(self, kind: str, rid: Any) -> str | None:
        try:
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
                self.nothing_to_delete(kind, sid, loc)
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
                    self.orphan_row(f"demographics for user {sid!r}, which is neither in users.csv nor stored", loc, "sourcedId")
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
                self.unresolved_reference(kind, sid, loc, col)
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
