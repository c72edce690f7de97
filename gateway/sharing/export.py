"""Bulk export: a tenant's records (or a grantor's, under a grant) to Parquet, NDJSON or
CSV, one file per kind, with a manifest; streamed with bounded memory.

**Consistency.** The export first takes the newest safe change version (``gateway.store.
changefeed``), then reads every record in ONE read transaction (PostgreSQL: REPEATABLE
READ; SQLite: one WAL snapshot), so its files hold every change up to that version
(``consistent_with`` in the manifest) and possibly a few after it. A reader that goes on
with the change feed from ``consistent_with`` re-reads those few, which an idempotent
upsert absorbs. With ``since`` only records changed after that version are exported.

**Columns** come from the canonical model's JSON Schema (``tessera schemas export``):
strings, integers, numbers and booleans as themselves, ``date-time`` as UTC timestamps
(microseconds), ``date`` as dates, and nested values (lists, objects) as their JSON text.
Under a de-identified grant only the columns ``deidentify.KEEP`` allows exist at all.

**Manifest** (``manifest.json``, written last, by rename): schema version, format, tenant,
grant, de-identified or not, kinds, ``since``, ``consistent_with``, and each file's name,
kind, row count, size and SHA-256. A directory without a manifest is not an export.

**Failure** (a full disk, a revoked grant, anything): every file this export wrote is
removed and the error raised; nothing half-written is left looking complete.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from ..errors import ErrorDetail, ValidationError
from ..model import RECORD_TYPES
from ..store import Store
from ..store.changefeed import newest_safe
from ..store.read import KIND_ORDER
from ..store.tables import RECORD_TABLES, changes
from .deidentify import KEEP, Deidentifier

SCHEMA_VERSION = "1"
FORMATS = ("parquet", "ndjson", "csv")
#: rows per Parquet row group / per read from the database
BATCH_ROWS = 20_000
#: ids per IN (...) when exporting ``since`` a version
ID_CHUNK = 500


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


# --- columns from the canonical JSON Schemas ---------------------------------------------------------

def _column_type(prop: dict[str, Any]) -> str:
    """One of: string, integer, number, boolean, timestamp, date, json."""
    options = prop.get("anyOf") or [prop]
    types = [o for o in options if o.get("type") != "null"]
    if len(types) != 1:
        return "json"
    t = types[0]
    if "$ref" in t or "enum" in t:
        return "string" if "enum" in t or t.get("type") == "string" else "json_or_string"
    kind = t.get("type")
    if kind == "string":
        return {"date-time": "timestamp", "date": "date"}.get(t.get("format", ""), "string")
    if kind in ("integer", "number", "boolean"):
        return str(kind)
    return "json"


def columns(kind: str, *, deidentified: bool) -> list[tuple[str, str]]:
    schema = RECORD_TYPES[kind].model_json_schema()
    defs = schema.get("$defs", {})
    out = []
    for name, prop in schema["properties"].items():
        if deidentified and kind in KEEP and name not in KEEP[kind]:
            continue
        t = _column_type(prop)
        if t == "json_or_string":  # a $ref: an enum is a string, anything else is nested
            ref = (prop.get("anyOf") or [prop])[0].get("$ref", "") if prop.get("anyOf") else prop.get("$ref", "")
            target = defs.get(ref.rsplit("/", 1)[-1], {})
            t = "string" if "enum" in target or target.get("type") == "string" else "json"
        out.append((name, t))
    return out


def _arrow_schema(cols: Sequence[tuple[str, str]]) -> Any:
    import pyarrow as pa

    types = {"string": pa.string(), "json": pa.string(), "integer": pa.int64(), "number": pa.float64(),
             "boolean": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC"), "date": pa.date32()}
    return pa.schema([pa.field(n, types[t]) for n, t in cols])


def _cell(value: Any, t: str) -> Any:
    if value is None:
        return None
    if t == "json":
        return orjson.dumps(value).decode()
    if t == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# --- writers -----------------------------------------------------------------------------------------

class _Writer:
    def __init__(self, path: Path, cols: list[tuple[str, str]]) -> None:
        self.path, self.cols, self.rows = path, cols, 0

    def write(self, docs: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Parquet(_Writer):
    def __init__(self, path: Path, cols: list[tuple[str, str]]) -> None:
        import pyarrow.parquet as pq

        super().__init__(path, cols)
        self.schema = _arrow_schema(cols)
        self.writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")

    def write(self, docs: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        arrays = []
        for (name, t), fld in zip(self.cols, self.schema, strict=True):
            values = [_cell(d.get(name), t) for d in docs]
            if t in ("timestamp", "date"):
                arrays.append(pa.array(values, pa.string()).cast(fld.type))
            else:
                arrays.append(pa.array(values, fld.type))
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows += len(docs)

    def close(self) -> None:
        self.writer.close()


class _Ndjson(_Writer):
    def __init__(self, path: Path, cols: list[tuple[str, str]]) -> None:
        super().__init__(path, cols)
        self.fh = open(path, "wb")  # noqa: SIM115  # closed by close()

    def write(self, docs: list[dict[str, Any]]) -> None:
        self.fh.write(b"".join(orjson.dumps(d) + b"\n" for d in docs))
        self.rows += len(docs)

    def close(self) -> None:
        self.fh.close()


class _Csv(_Writer):
    def __init__(self, path: Path, cols: list[tuple[str, str]]) -> None:
        super().__init__(path, cols)
        self.fh = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115  # closed by close()
        self.out = csv.writer(self.fh)
        self.out.writerow([n for n, _ in cols])

    def write(self, docs: list[dict[str, Any]]) -> None:
        cols = self.cols
        self.out.writerows([["" if (v := _cell(d.get(n), t)) is None else ("true" if v is True else "false" if v is False else v)
                             for n, t in cols] for d in docs])
        self.rows += len(docs)

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
           check: Callable[[], None] | None = None, progress: Callable[[str, int], None] | None = None) -> Manifest:
    """Export and return the manifest (also written to ``out_dir/manifest.json``).

    ``check`` runs before each batch (a revoked grant raises there and ends the export);
    ``progress(kind, rows)`` after each batch."""
    kinds = validate(fmt, kinds)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / "manifest.json").exists():
        raise ExportFailed(f"{out_dir} already holds an export (manifest.json); choose an empty folder")
    with store.engine.connect() as conn:
        until = newest_safe(conn)
    manifest = Manifest(SCHEMA_VERSION, fmt, tenant, grant_id, deidentifier is not None, list(kinds), since, until,
                        datetime.now(UTC).isoformat())
    written: list[Path] = []
    cls, ext = WRITERS[fmt]
    try:
        options: dict[str, Any] = {"isolation_level": "REPEATABLE READ"} if store.engine.dialect.name == "postgresql" else {}
        with store.engine.connect().execution_options(**options) as conn, conn.begin():
            for kind in kinds:
                path = out_dir / f"{kind}.{ext}"
                written.append(path)
                writer = cls(path, columns(kind, deidentified=deidentifier is not None))
                try:
                    for docs in _batches(conn, tenant, kind, since, until):
                        if check is not None:
                            check()
                        if deidentifier is not None:
                            deidentifier.prepare(docs)
                            docs = [deidentifier.record(d) for d in docs]
                        writer.write(docs)
                        if progress is not None:
                            progress(kind, len(docs))
                finally:
                    writer.close()
                manifest.files.append(ExportFile(path.name, kind, writer.rows, path.stat().st_size, _sha256(path)))
        manifest.finished_at = datetime.now(UTC).isoformat()
        tmp = out_dir / "manifest.json.tmp"
        written.append(tmp)
        tmp.write_bytes(orjson.dumps(manifest.as_json(), option=orjson.OPT_INDENT_2))
        os.replace(tmp, out_dir / "manifest.json")
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return manifest


def _batches(conn: Any, tenant: str, kind: str, since: int | None, until: int) -> Iterator[list[dict[str, Any]]]:
    tbl = RECORD_TABLES[kind]
    if since is None:
        q = select(tbl.c.data).where(tbl.c.tenant == tenant).order_by(tbl.c.id)
        result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(q)
        for part in result.partitions(BATCH_ROWS):
            yield [orjson.loads(r[0]) for r in part]
        return
    ids = sorted({r[0] for r in conn.execute(
        select(changes.c.record_id).where(changes.c.tenant == tenant, changes.c.record_kind == kind,
                                          changes.c.seq > since, changes.c.seq <= until).distinct())})
    batch: list[dict[str, Any]] = []
    for i in range(0, len(ids), ID_CHUNK):
        q = select(tbl.c.data).where(tbl.c.tenant == tenant, tbl.c.id.in_(ids[i:i + ID_CHUNK]))
        batch.extend(orjson.loads(r[0]) for r in conn.execute(q))
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def read_back(path: Path) -> list[dict[str, Any]]:
    """The rows of one exported file (for tests and ``tessera export verify``-style checks)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_table(str(path)).to_pylist())
    if path.suffix == ".ndjson":
        return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


__all__ = ["FORMATS", "SCHEMA_VERSION", "ExportFailed", "ExportFile", "Manifest", "columns", "export", "read_back", "validate"]
