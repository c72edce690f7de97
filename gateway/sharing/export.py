"""Bulk export: a tenant's records (or a grantor's, under a grant) to Parquet, NDJSON or
CSV, one file per kind, with a manifest; streamed with bounded memory.

**Consistency.** The export first takes the newest safe change version (``gateway.store.
changefeed``), then reads every record in ONE read transaction (PostgreSQL: REPEATABLE
READ; SQLite: one WAL snapshot), so its files hold every change up to that version
(``consistent_with`` in the manifest) and possibly a few after it. A reader that goes on
with the change feed from ``consistent_with`` re-reads those few, which an idempotent
upsert absorbs. With ``since`` only records changed after that version are exported.

**Columns** come from the canonical model's JSON Schema (``columns``; ``tessera schemas
export``). Under a de-identified grant only the columns ``deidentify.KEEP`` allows exist.

**Parts.** On PostgreSQL a kind of at least two batches may be exported by
``TESSERA_EXPORT_WORKERS`` processes (default: half the cores from 4 cores on, else one
process; see ``export_workers``) at once, each its own range of the tenant's index into its
own file of the kind's file set (``evidence.part-1-of-2.parquet``, ...), all in the export's
one snapshot (``export_parts``); a smaller kind, and every kind on SQLite, is one file
(``evidence.parquet``).

**Speed.** Records are decoded a batch at a time into just the exported columns
(``columns.columnize_with``; the text columns whose values repeat against the values seen,
``export_decode.LearnedDecoder``), the next batch read on a thread meanwhile (PostgreSQL: 2,000 rows a
``FETCH``, the first batch a single one so converting starts at once), the cyclic garbage
collector paused over the loop. Under a de-identified grant the records' own ids go to a
helper process as soon as a batch is decoded (``pseudonym_helper``: their HMACs hold the
interpreter's lock a microsecond a row) and come back as pseudonyms when the batch is
written; ``TESSERA_EXPORT_HELPER=0`` makes them on the converting thread instead.

**Manifest** (``manifest.json``, written last, by rename): schema version, format, tenant,
grant, de-identified or not, kinds, ``since``, ``consistent_with``, and each file's name,
kind, row count, size and SHA-256. A directory without a manifest is not an export.

**Failure** (a full disk, a revoked grant, anything): every file this export wrote is
removed and the error raised; nothing half-written is left looking complete.

A recipient's many grants are exported at once, one read of each kind for all their
districts, by ``export_many`` (which writes each district's files with this module's writers).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ..errors import ErrorDetail, ValidationError
from ..gc_pause import paused_gc
from ..model import RECORD_TYPES
from ..store import Store
from ..store.changefeed import newest_safe
from ..store.read import KIND_ORDER
from . import columns as columnar
from . import export_reads as reads
from .columns import Batch, arrow_schema, columnize_with, columns_of, prefetched
from .deidentify import Deidentifier
from .export_decode import LearnedDecoder
from .export_parts import _PART, _PART_READ, _SNAPSHOT_ID, _Parts, in_snapshot, part_hooks, process_cpu
from .export_reads import read_batches, snapshot
from .pseudonym_helper import PseudonymHelper, arrow_texts

SCHEMA_VERSION = "1"
FORMATS = ("parquet", "ndjson", "csv")


@dataclass
class ExportFile:
    name: str
    kind: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class Manifest:
    schema_version: str
    format: str
    tenant: str
    grant: str | None
    deidentified: bool
    kinds: list[str]
    since: int | None
    consistent_with: int
    created_at: str
    finished_at: str = ""
    files: list[ExportFile] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class ExportFailed(Exception):
    pass


# --- writers -----------------------------------------------------------------------------------------

class _Writer:
    """A file of one kind: ``write`` turns a batch into its bytes' form (``encode``: an Arrow
    table, NDJSON bytes, CSV text) and writes it (``put``). ``lane``: Parquet's writing thread
    (``WriteLane``), where the file set shares one; the text formats write in the caller."""

    def __init__(self, path: Path, cols: list[tuple[str, str]], lane: WriteLane | None = None) -> None:
        self.path, self.cols, self.rows = path, cols, 0

    @staticmethod
    def encode(cols: Sequence[tuple[str, str]], batch: Batch) -> Any:
        raise NotImplementedError

    def put(self, rows: int, payload: Any) -> None:
        raise NotImplementedError

    def write(self, batch: Batch) -> None:
        self.put(len(batch.raws), self.encode(self.cols, batch))

    def close(self) -> None:
        raise NotImplementedError


class WriteLane:
    """The thread that compresses and writes Parquet tables, one table at a time: a writer's
    own, or one shared by the many files of a multi-grant export (``export_many``), so many
    open files cost one thread and at most one table being written."""

    def __init__(self) -> None:
        self.pool: Any = None
        self.pending: Any = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self.wait()
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(1, thread_name_prefix="tessera-export-write")
        self.pending = self.pool.submit(fn, *args)

    def wait(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True)
                self.pool = None


class _Parquet(_Writer):
    def __init__(self, path: Path, cols: list[tuple[str, str]], lane: WriteLane | None = None) -> None:
        import pyarrow.parquet as pq

        super().__init__(path, cols)
        self.schema = arrow_schema(cols)
        # every column dictionary-encoded but the records' ids, one a record: a dictionary of
        # them only costs hashing each (the same values either way; smaller files)
        self.writer = pq.ParquetWriter(str(path), self.schema, compression="zstd", use_dictionary=[n for n, _ in cols if n != "id"])
        self.lane, self.own_lane = lane or WriteLane(), lane is None

    @staticmethod
    def encode(cols: Sequence[tuple[str, str]], batch: Batch) -> Any:
        import pyarrow as pa

        schema = arrow_schema(cols)

        def array(t: str, fld: Any, values: Any) -> Any:
            if isinstance(values, bytes):  # the helper's UUID texts, as they came
                return arrow_texts(values)
            if values and values[0] is None and values.count(None) == len(values):  # a member no record of the batch has
                return pa.nulls(len(values), fld.type)
            if t in ("timestamp", "date"):
                return pa.array(values, pa.string()).cast(fld.type)
            return pa.array(values, fld.type)

        arrays = {name: array(t, fld, batch.columns[name]) for (name, t), fld in zip(cols, schema, strict=True)
                  if name not in batch.pending}  # pending columns (pseudonyms in the making) last
        columns = batch.resolved(texts=True)
        return pa.Table.from_arrays([arrays[name] if name in arrays else array(t, fld, columns[name])
                                     for (name, t), fld in zip(cols, schema, strict=True)], schema=schema)

    def put(self, rows: int, payload: Any) -> None:
        """Compress and write the table on a thread (Arrow releases the GIL meanwhile) while the
        caller converts the next batch; the write before is waited for first, so at most one
        table is being written and a failure (a full disk) is raised here or by ``close``."""
        self.lane.submit(self.writer.write_table, payload)
        self.rows += rows

    def close(self) -> None:
        try:
            if self.own_lane:
                self.lane.close()
            else:
                self.lane.wait()
        finally:
            self.writer.close()


class _Ndjson(_Writer):
    def __init__(self, path: Path, cols: list[tuple[str, str]], lane: WriteLane | None = None) -> None:
        super().__init__(path, cols)
        self.fh = open(path, "wb")  # noqa: SIM115  # closed by close()

    @staticmethod
    def encode(cols: Sequence[tuple[str, str]], batch: Batch) -> Any:
        if batch.as_stored:  # the records as they are stored: no need to write them again
            raws = [r.encode() if isinstance(r, str) else r for r in batch.raws]
            return b"".join(r + b"\n" for r in raws)
        names = [n for n, _ in cols]
        frag = orjson.Fragment
        columns = batch.resolved()
        values = [columns[n] if t != "json" else [None if v is None else frag(v) for v in columns[n]] for n, t in cols]
        dumps = orjson.dumps
        return b"".join(dumps({n: v for n, v in zip(names, row, strict=True) if v is not None}) + b"\n"
                        for row in zip(*values, strict=True))

    def put(self, rows: int, payload: Any) -> None:
        self.fh.write(payload)
        self.rows += rows

    def close(self) -> None:
        self.fh.close()


class _Csv(_Writer):
    def __init__(self, path: Path, cols: list[tuple[str, str]], lane: WriteLane | None = None) -> None:
        super().__init__(path, cols)
        self.fh = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115  # closed by close()
        csv.writer(self.fh).writerow([n for n, _ in cols])

    @staticmethod
    def encode(cols: Sequence[tuple[str, str]], batch: Batch) -> Any:
        values = []
        columns = batch.resolved()
        for n, t in cols:
            column = columns[n]
            if t == "json":
                column = [None if v is None else v.decode() for v in column]
            elif t == "boolean":
                column = [None if v is None else "true" if v else "false" for v in column]
            elif t == "number":
                column = [float(v) if isinstance(v, int) else v for v in column]
            values.append(column)
        text = io.StringIO(newline="")
        csv.writer(text).writerows(zip(*values, strict=True))  # None is written as an empty cell
        return text.getvalue()

    def put(self, rows: int, payload: Any) -> None:
        self.fh.write(payload)
        self.rows += rows

    def close(self) -> None:
        self.fh.close()


WRITERS: dict[str, tuple[type[_Writer], str]] = {"parquet": (_Parquet, "parquet"), "ndjson": (_Ndjson, "ndjson"), "csv": (_Csv, "csv")}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- the export --------------------------------------------------------------------------------------

def validate(fmt: str, kinds: Sequence[str]) -> list[str]:
    errors = []
    if fmt not in FORMATS:
        errors.append(ErrorDetail(f"must be one of {', '.join(FORMATS)}", field="format"))
    bad = [k for k in kinds if k not in RECORD_TYPES]
    if bad:
        errors.append(ErrorDetail(f"unknown kinds {bad}; kinds: {', '.join(RECORD_TYPES)}", field="kinds"))
    if errors:
        raise ValidationError("invalid export request", errors=errors)
    return sorted(set(kinds) or set(RECORD_TYPES), key=KIND_ORDER.__getitem__)


def export(store: Store, out_dir: Path, *, tenant: str, kinds: Sequence[str], fmt: str, since: int | None = None,
           deidentifier: Deidentifier | None = None, grant_id: str | None = None,
           check: Callable[[], None] | None = None, progress: Callable[[str, int], None] | None = None,
           stats: dict[str, float] | None = None) -> Manifest:
    """Export and return the manifest (also written to ``out_dir/manifest.json``).

    ``check`` runs before each batch (a revoked grant raises there and ends the export);
    ``progress(kind, rows)`` after each batch. ``stats`` (for ``bench/state.py``) receives the
    part processes' number, CPU seconds, their database processes' CPU seconds and peak RSS
    (MiB, summed)."""
    kinds = validate(fmt, kinds)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / "manifest.json").exists():
        raise ExportFailed(f"{out_dir} already holds an export (manifest.json); choose an empty folder")
    with store.engine.connect() as conn:
        until = newest_safe(conn)
    manifest = Manifest(SCHEMA_VERSION, fmt, tenant, grant_id, deidentifier is not None, list(kinds), since, until,
                        datetime.now(UTC).isoformat())
    written: list[Path] = []
    ext = WRITERS[fmt][1]
    postgres = store.engine.dialect.name == "postgresql"
    parts = _Parts(store.engine.url.render_as_string(hide_password=False), deidentifier, export_workers() if postgres else 0)
    try:
        with snapshot(store) as conn:
            for kind in kinds:
                cols = columns_of(kind, deidentified=deidentifier is not None)
                if parts.worth_it(conn, tenant, kind, since, until):
                    paths = [out_dir / f"{kind}.part-{k + 1}-of-{parts.workers}.{ext}" for k in range(parts.workers)]
                    written += paths
                    manifest.files += _run_parts(parts, conn, tenant, kind, since, until, cols, fmt, paths, check, progress)
                    continue
                path = out_dir / f"{kind}.{ext}"
                written.append(path)
                manifest.files.append(_export_file(conn.connection.dbapi_connection if postgres else conn, tenant, kind, since,
                                                   until, cols, fmt, path, deidentifier, check, progress))
        write_manifest(out_dir, manifest, written)
    except BaseException:
        parts.close()  # its processes stopped (at their next batch) before their files are removed
        for p in written:
            p.unlink(missing_ok=True)
        raise
    finally:
        parts.close()
        if stats is not None:
            stats.update(parts.stats)
    return manifest


def write_manifest(out_dir: Path, manifest: Manifest | Any, written: list[Path]) -> None:
    """The export's last step: ``manifest.json`` written whole (a temporary file renamed over
    it, also listed in ``written`` so a failure removes it), finished now."""
    manifest.finished_at = datetime.now(UTC).isoformat()
    tmp = out_dir / "manifest.json.tmp"
    written.append(tmp)
    tmp.write_bytes(orjson.dumps(manifest.as_json(), option=orjson.OPT_INDENT_2))
    os.replace(tmp, out_dir / "manifest.json")


def _export_file(conn: Any, tenant: str, kind: str, since: int | None, until: int, cols: list[tuple[str, str]], fmt: str,
                 path: Path, deid: Deidentifier | None, check: Callable[[], None] | None,
                 progress: Callable[[str, int], None] | None, *, span: reads.Span | None = None) -> ExportFile:
    """One file: the records of one kind (or of one part of them: those in ``span``) read
    through ``conn`` (PostgreSQL: the driver's connection, in its transaction's snapshot;
    SQLite: SQLAlchemy's), converted batch by batch, written, and described."""
    writer = WRITERS[fmt][0](path, cols)
    helper: PseudonymHelper | None = None
    helps = columnar.helped(kind, cols)
    decode = LearnedDecoder(kind, cols, deid is not None) if fmt != "ndjson" or deid is not None else None
    try:
        with paused_gc():  # the whole loop: the fetching thread's and the writer's objects too
            for raws in prefetched(read_batches(conn, tenant, kind, since, until, span=span)):
                if check is not None:
                    check()
                started = helper
                if helper is None and deid is not None and len(raws) >= columnar.HELPER_FROM and helps:
                    try:
                        if span is not None or not _helper_pays():
                            raise OSError("no helper process: the pseudonyms are made here")
                        helper = deid.pseudonyms.helper()  # used from the next batch on, by when it has started
                    except OSError:  # none wanted or none to be had: made here, from this batch on
                        helper = started = deid.pseudonyms.in_process()
                writer.write(columnize_with(decode, kind, cols, raws, deid, need_columns=fmt != "ndjson", helper=started))
                if progress is not None:
                    progress(kind, len(raws))
    finally:
        try:
            writer.close()
        finally:
            if helper is not None:
                helper.close()
    return ExportFile(path.name, kind, writer.rows, path.stat().st_size, _sha256(path))


#: "0" turns the pseudonym helper process off (the record pseudonyms made on the converting thread)
HELPER_ENV = "TESSERA_EXPORT_HELPER"


def _helper_pays() -> bool:
    """A pseudonym helper process (``pseudonym_helper``) for a de-identified kind with record
    ids and batches of at least ``HELPER_FROM`` records, where a second core can run it, unless
    ``TESSERA_EXPORT_HELPER=0``."""
    return os.environ.get(HELPER_ENV, "").strip() != "0" and (os.cpu_count() or 1) >= 2


# --- parts in several processes (PostgreSQL) ---------------------------------------------------------

#: processes that export a large kind in parts on PostgreSQL (0 or 1: the exporting process alone)
EXPORT_WORKERS_ENV = "TESSERA_EXPORT_WORKERS"


def export_workers() -> int:
    """``TESSERA_EXPORT_WORKERS``, else half the machine's cores from 4 cores on (up to 4), else
    none: parts pay where cores are left over for them, not on a machine of 2 cores shared by
    the database, the exporting process and its pseudonym helper (``docs/scaling.md``)."""
    value = os.environ.get(EXPORT_WORKERS_ENV)
    if value is not None and value.strip():
        return max(0, int(value))
    cores = os.cpu_count() or 1
    return min(4, cores // 2) if cores >= 4 else 0


def _run_parts(parts: _Parts, conn: Any, tenant: str, kind: str, since: int | None, until: int, cols: list[tuple[str, str]], fmt: str,
               paths: list[Path], check: Callable[[], None] | None, progress: Callable[[str, int], None] | None) -> list[ExportFile]:
    """A large kind exported by ``parts``' processes (``export_parts._Parts``), each its range
    of the tenant's index (``export_reads.spans``) into its own file of the kind's file set."""
    if check is not None:
        check()
    cut = reads.spans(conn, tenant, kind, len(paths), since, until)
    done = parts.run_tasks(conn, kind, [(_export_part, (parts.url, parts.snapshot_of(conn), tenant, kind, since, until, cols, fmt,
                                                       str(path), k, cut[k])) for k, path in enumerate(paths)], check, progress)
    files = []
    for made, (cpu, rss, backend) in done:
        files.append(made)
        parts.stats["worker_cpu_s"] += cpu
        parts.stats["worker_backend_cpu_s"] += backend
        parts.stats["worker_rss_mib"] = max(parts.stats["worker_rss_mib"], rss * len(paths))
    parts.stats["workers"] = len(paths)
    return files


def _export_part(url: str, snapshot: str, tenant: str, kind: str, since: int | None, until: int, cols: list[tuple[str, str]],
                 fmt: str, path: str, part: int, span: reads.Span) -> tuple[ExportFile, tuple[float, float, float]]:
    """One part (number ``part``, the records in ``span``), in a part's process: the export's
    snapshot adopted, then as one file alone. Returns the file and (this process's CPU
    seconds, its peak RSS in MiB, its database backend's CPU seconds where /proc shows it)
    for ``bench/state.py``."""
    if not _SNAPSHOT_ID.match(snapshot):
        raise ExportFailed(f"not a snapshot id: {snapshot!r}")
    check, progress = part_hooks(part)
    with in_snapshot(url, snapshot, _PART_READ) as (dbapi, measured):
        made = _export_file(dbapi, tenant, kind, since, until, cols, fmt, Path(path), _PART["deid"], check, progress, span=span)
    return made, measured()


def read_back(path: Path) -> list[dict[str, Any]]:
    """The rows of one exported file (for tests and ``tessera export verify``-style checks)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_table(str(path)).to_pylist())
    if path.suffix == ".ndjson":
        return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


__all__ = ["EXPORT_WORKERS_ENV", "FORMATS", "HELPER_ENV", "SCHEMA_VERSION", "ExportFailed", "ExportFile", "Manifest", "export",
           "export_workers", "process_cpu", "read_back", "validate"]
