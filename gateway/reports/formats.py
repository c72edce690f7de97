"""A built report and its formats: CSV (RFC 4180, a header row), NDJSON and JSON, each
streamed in pieces so that a district's rows are never held as one string.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson

from .deidentify import CSV_SUPPRESSED, SUPPRESSED


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


__all__ = ["FORMATS", "Report", "to_csv", "to_json", "to_ndjson"]
