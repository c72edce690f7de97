"""A OneRoster CSV package in: validated into records (``parse_package``), or validated and
applied in ONE transaction (``import_package``: atomic, any error and nothing changes).

An enrollments.csv above ``STREAM_BYTES`` (~250,000 rows) is read once, batch by batch,
while ``store.records.apply_batches`` writes it: still one transaction, which any problem
found in any row rolls back, but memory stays bounded. Above ``READER_BYTES`` it is read and
prepared in a child process while this one writes (``enrollments``): the same code, the
same records and errors, on a second core.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import Deviations, ErrorDetail, IntegrityError, TesseraError
from gateway.gc_pause import paused_gc
from gateway.model import Record
from gateway.store.records import PreparedBatch

from ..gradebook.apply import apply as apply_gradebook
from ..gradebook.apply import writer as gradebook_writer
from ..settings import KeepCredentials, current_settings
from .columns import FILE_OF_KIND
from .enrollments import enrollment_batches
from .importer import Importer, ImportReport
from .package import Package, read_manifest


@dataclass
class Validation:
    """What ``validate_package`` found: the report (rows per file, deviations) and every
    error, as an import would give them; nothing written."""

    report: ImportReport | None
    errors: list[ErrorDetail]
    detail: str | None = None

    @property
    def valid(self) -> bool:
        return not self.errors and self.detail is None

    def as_dict(self) -> dict[str, Any]:
        r = self.report
        return {
            "valid": self.valid,
            "version": r.version if r else None,
            "files": dict(r.files) if r else {},
            "rows": dict(r.rows) if r else {},
            "records": r.records if r else 0,
            "deleted": dict(r.deleted) if r else {},
            "error": self.detail,
            "errors": [e.as_dict() for e in self.errors],
            "deviations": (r.deviations if r else Deviations()).as_dict(),
        }


def validate_package(path: Path | str | bytes, *, tenant: str, source: str, store: Any = None,
                     strict: bool = False) -> Validation:
    """The dry run of ``import_package``: every file read and checked, against the store when
    one is given (references, bulk absences), and NOTHING written. Errors are returned, not
    raised, beside the report (``tessera validate oneroster``, ``import --dry-run``)."""
    try:
        pkg = Package(path, strict=strict)
    except TesseraError as exc:
        return Validation(None, list(exc.errors) or [ErrorDetail(exc.detail)], exc.detail)
    imp: Importer | None = None
    try:
        manifest = read_manifest(pkg)
        imp = Importer(store, tenant, source, pkg, manifest, None, strict=strict)
        pkg.report_into(imp.devs)
        with gc_paused():
            imp.run()
        return Validation(imp.report, [])
    except TesseraError as exc:
        errors = list(exc.errors) or [ErrorDetail(exc.detail)]
        return Validation(imp.report if imp is not None else None, errors, exc.detail)
    finally:
        pkg.close()


def parse_package(
    path: Path | str | bytes,
    *,
    tenant: str,
    source: str,
    store: Any = None,
    progress: Callable[[str, int], None] | None = None,
    strict: bool = False,
    keep_credentials: KeepCredentials = "drop",
) -> tuple[list[Record], ImportReport]:
    """Validate a package into canonical records (nothing is written). With a ``store``,
    references may point to stored records and bulk files mark absent records tobedeleted.
    ``strict``: refuse every deviation the default, tolerant mode normalises (``tolerance``).
    The records never hold a password; the report counts them as ``import_package`` with
    ``keep_credentials`` would."""
    pkg = Package(path, strict=strict)
    try:
        manifest = read_manifest(pkg)
        imp = Importer(store, tenant, source, pkg, manifest, progress, strict=strict)
        pkg.report_into(imp.devs)
        imp.profiles.keep = keep_credentials
        with gc_paused():
            records = imp.run()
        return records, imp.report
    finally:
        pkg.close()


#: Enrollment files larger than this (uncompressed) are streamed (see ``import_package``).
STREAM_BYTES = 16 * 1024 * 1024
STREAM_BATCH = 20_000


def gc_paused() -> paused_gc:
    """Pause the cyclic garbage collector while an import runs: the import holds hundreds of
    thousands of long-lived, acyclic objects (records, sourcedId sets) that every full
    collection would walk again, which took HALF of a large import's time. Reference
    counting still frees everything; the collector is restored after."""
    return paused_gc()


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
    strict: bool = False,
    keep_credentials: KeepCredentials | None = None,
) -> ImportReport:
    """Validate the whole package, then apply it, in ONE transaction: any error and nothing changes.

    Normally with ``store.records.apply``. A very large enrollments file (``stream``; by
    default when enrollments.csv is over ``STREAM_BYTES``, about 250,000 rows) would not fit
    in memory as one batch: every other file is validated first (``applying`` is called
    then), and the enrollments are then read, validated and converted in ONE pass, batch by
    batch, as ``apply_batches`` writes them (``Importer.streamed_enrollments``): reading a
    million rows twice, once to validate and once to write, cost more than writing them.
    Still one transaction: a problem in any row is reported with all the others and rolls
    every batch back, the gradebook files' objects and records included.

    ``reader_process``: read and prepare the streamed enrollments in a child process while
    this one writes them (``enrollments.EnrollmentReader``); by default when enrollments.csv is at
    least ``READER_BYTES`` and the store can be opened from a second process.

    ``strict``: refuse every deviation from the letter of the spec; by default those with one
    reading are normalised and listed in ``report.deviations`` (``tolerance``).
    ``keep_credentials``: ``"drop"`` (user passwords are never stored) or ``"sealed"`` (kept
    sealed, ``credentials``); by default ``TESSERA_ONEROSTER__KEEP_CREDENTIALS``, else drop."""
    pkg = Package(path, strict=strict)
    try:
        manifest = read_manifest(pkg)
        imp = Importer(store, tenant, source, pkg, manifest, progress, strict=strict)
        pkg.report_into(imp.devs)
        imp.profiles.keep = keep_credentials or current_settings().keep_credentials
        if stream is None:
            stream = manifest.files.get("enrollments", "absent") != "absent" and pkg.size("enrollments.csv") > STREAM_BYTES
        # nothing to stream without an enrollments file
        imp.stream = imp.report.streamed = bool(stream) and manifest.files.get("enrollments", "absent") != "absent"
        if reader_process is None:
            reader_process = imp.stream and pkg.size("enrollments.csv") >= READER_BYTES
        imp.report.reader_process = imp.stream and reader_process and store.streams.can_fork()
        with gc_paused(), enrollment_batches(imp, STREAM_BATCH) as enrollments:
            return _run_import(store, tenant, imp, enrollments, applying)
    finally:
        pkg.close()


def _run_import(store: Any, tenant: str, imp: Importer, enrollments: Iterator[Iterator[Record] | PreparedBatch] | None,
                applying: Callable[[int], None] | None) -> ImportReport:
    records = imp.run()
    report = imp.report
    if applying is not None:
        applying(len(records))
    index = {(r.KIND, r.native_id): i for i, r in enumerate(records)} if records else {}
    vault = imp.profiles.vault_writer()  # sealed credentials: same transaction
    try:
        if enrollments is None:
            if report.gradebook is not None:  # gradebook objects and their evidence: same transaction
                report.result = apply_gradebook(store, report.gradebook, records, also=vault)
            else:
                report.result = store.records.apply(tenant, records, within=vault)
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
                                                        within=_both(gradebook_writer(gradebook) if gradebook is not None else None, vault))
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


def _both(*fns: Callable[[Any], None] | None) -> Callable[[Any], None] | None:
    """One ``within`` callback running each given one in turn (None when none is given)."""
    given = [f for f in fns if f is not None]
    if len(given) <= 1:
        return given[0] if given else None

    def run(conn: Any) -> None:
        for f in given:
            f(conn)

    return run


def _chain(*its: Any) -> Iterator[Any]:
    for it in its:
        yield from it


#: A streamed enrollments.csv at least this large (uncompressed, ~30,000 rows) is read in a
#: child process (``enrollments.EnrollmentReader``). Measured (generated districts, SQLite, whole
#: import): 0.3 MB 0.26 s with the child vs 0.27 s without, 1.2 MB 0.69 vs 0.70 s, 3 MB
#: 1.21 vs 1.49 s. Below ~2 MB the fork, the child's own connection and the pickling
#: (more CPU in all) buy nothing measurable; above, the overlap pays more and more.
READER_BYTES = 2 * 1024 * 1024


def _relocate(e: ErrorDetail, index: dict[tuple[str, str], int]) -> ErrorDetail:
    """The store names a record ``kind source/native_id``; say which CSV file it came from."""
    loc = e.location or ""
    kind, _, rest = loc.partition(" ")
    native = rest.split("/", 1)[-1] if "/" in rest else None
    if kind in FILE_OF_KIND and native is not None and (kind, native) in index:
        return ErrorDetail(e.message, location=f"{FILE_OF_KIND[kind]}.csv sourcedId {native}", field=e.field)
    return e
