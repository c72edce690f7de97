"""Records as columns: the column set of each kind from the canonical model's JSON Schema,
and stored records (JSON text) turned into those columns a batch at a time, de-identified
column by column under a de-identified grant. Shared by the bulk export (``export``) and the
change feed (``feed``), and split from ``export`` so each module holds one concern.

**Columns** are strings, integers, numbers and booleans as themselves, ``date-time`` as UTC
timestamps (microseconds), ``date`` as dates, and nested values (lists, objects) as their
JSON text. Under a de-identified grant only the columns ``deidentify.KEEP`` allows exist.

**Speed.** Records are decoded with msgspec into structs of just the wanted columns
(``record_texts.row_decoder``: members not wanted are skipped, JSON members kept as their stored text),
columns are drawn from a whole batch, and the personal ones replaced a column at a time
(``deidentify``; the export's record pseudonyms by a helper process, left pending in the
batch until the writer needs them); ``prefetched`` reads the next batch on a thread meanwhile.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, TypeVar

import orjson
from msgspec.structs import astuple

from ..gc_pause import paused_gc
from ..model import RECORD_TYPES
from .deidentify import KEEP, PERSONAL_REFS, Deidentifier
from .pseudonym_helper import PseudonymHelper, split_texts
from .record_texts import SUBSETS, row_decoder

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


@functools.cache
def _columns(kind: str, deidentified: bool) -> tuple[tuple[str, str], ...]:
    return tuple(columns(kind, deidentified=deidentified))


def columns_of(kind: str, *, deidentified: bool) -> list[tuple[str, str]]:
    """``columns``, worked out once per kind (a JSON Schema is not cheap to build)."""
    return list(_columns(kind, deidentified))


def arrow_schema(cols: Sequence[tuple[str, str]]) -> Any:
    import pyarrow as pa

    types = {"string": pa.string(), "json": pa.string(), "integer": pa.int64(), "number": pa.float64(),
             "boolean": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC"), "date": pa.date32()}
    return pa.schema([pa.field(n, types[t]) for n, t in cols])


#: a batch of at least this many records has its record pseudonyms made by the helper process
HELPER_FROM = 1_000

@dataclass
class Batch:
    """One batch of one kind: the stored JSON texts and the columns drawn from them. Column
    values are Python scalars, JSON members as JSON text (bytes), date-times and dates as the
    ISO text the records hold (Arrow parses a whole column at once)."""

    raws: Sequence[Any]
    columns: dict[str, Sequence[Any]]
    #: the records are the stored ones, unchanged (NDJSON writes ``raws`` as they are)
    as_stored: bool
    #: columns still being made (record pseudonyms in the helper process): ``resolved`` waits
    pending: tuple[str, ...] = ()
    later: Callable[[], list[Any]] | None = None

    def resolved(self, *, texts: bool = False) -> dict[str, Any]:
        """``columns``, the pending ones waited for first. With ``texts`` a column of UUID
        texts from the helper may stay the bytes it came as (``pseudonym_helper.arrow_texts``
        makes its Arrow array); else every column is a sequence of values."""
        if self.later is not None:
            later, self.later = self.later, None
            self.columns.update(zip(self.pending, later(), strict=True))
            self.pending = ()
        if not texts:
            for name, values in self.columns.items():
                if isinstance(values, bytes):
                    self.columns[name] = split_texts(values)
        return self.columns


def _json_texts(values: Sequence[Any]) -> list[Any]:
    dumps = orjson.dumps
    return [None if v is None else dumps(v) for v in values]


def _raw_texts(values: Sequence[Any]) -> list[Any]:
    """JSON members decoded as ``msgspec.Raw``: their stored text as it is (no parse, no
    re-serialisation); a member that is absent or null is None."""
    out = list(map(bytes, values))
    if b"null" not in out and b"" not in out:  # the usual column: each member present (compared in C)
        return out
    return [None if b == b"null" or not b else b for b in out]


def _kept_text(keys: tuple[str, ...], values: tuple[Any, ...]) -> bytes:
    return orjson.dumps({k: x for k, x in zip(keys, values, strict=True) if x is not None})


def _subset_texts(values: Sequence[Any], keys: tuple[str, ...]) -> list[Any]:
    """Only ``keys`` of each object (decoded as a frozen struct of just those keys), as JSON
    text; the few distinct results are made once."""
    try:
        distinct: dict[Any, Any] = dict.fromkeys(values)  # hashed in C
    except TypeError:  # a member holding a list or an object (unhashable): row by row, below
        pass
    else:
        for v in distinct:
            distinct[v] = None if v is None else _kept_text(keys, astuple(v))
        return list(map(distinct.__getitem__, values))
    made: dict[Any, bytes] = {}
    out: list[Any] = []
    add = out.append
    for v in values:
        if v is None:
            add(None)
            continue
        try:
            text = made.get(v)
        except TypeError:  # a member holding a list or an object (unhashable): made for this row alone
            add(_kept_text(keys, astuple(v)))
            continue
        if text is None:
            text = made[v] = _kept_text(keys, astuple(v))
        add(text)
    return out


@functools.cache
def _helped_columns(kind: str, cols: tuple[tuple[str, str], ...]) -> tuple[tuple[int, str], ...]:
    """(position, name) of the column of the records' own ids where a de-identified export
    pseudonymises them: one a record, so the helper process's work (the references to other
    records, mostly absent, are cheap in-process)."""
    refs = PERSONAL_REFS.get(kind, {})
    return tuple((i, name) for i, (name, t) in enumerate(cols) if name == "id" and refs.get(name) == "record" and t == "string")


def helped(kind: str, cols: Sequence[tuple[str, str]]) -> bool:
    """Whether a de-identified export of ``kind`` has record ids for the helper process."""
    return bool(_helped_columns(kind, tuple(cols)))


def columnize(kind: str, cols: Sequence[tuple[str, str]], raws: Sequence[Any], deid: Deidentifier | None, *,
              need_columns: bool = True, helper: PseudonymHelper | None = None) -> Batch:
    """Decode a batch of stored records once (msgspec, into structs of just the exported
    columns, with the cyclic garbage collector paused) and draw each column from the whole
    batch; under ``deid`` the per-learner columns are replaced column by column
    (``deidentify``: pseudonyms, kept keys), never record by record. Without ``need_columns``
    (an identified NDJSON export writes the stored texts) nothing is decoded.

    With a ``helper`` (a batch of at least ``HELPER_FROM`` records) the record-id columns'
    pseudonyms are asked of the helper process as soon as the batch is decoded and are left
    pending in the batch (``Batch.resolved``): the writer converts the other columns first."""
    return columnize_with(None, kind, cols, raws, deid, need_columns=need_columns, helper=helper)


def columnize_with(decode: Callable[[Sequence[Any]], list[Any]] | None, kind: str, cols: Sequence[tuple[str, str]],
                   raws: Sequence[Any], deid: Deidentifier | None, *, need_columns: bool = True,
                   helper: PseudonymHelper | None = None) -> Batch:
    """``columnize``, the batch's records decoded by ``decode`` (its stored texts to rows with
    the fields of ``record_texts.row_decoder``'s struct, e.g. the export's ``export_decode.LearnedDecoder``;
    None: ``record_texts.row_decoder``'s own, record by record)."""
    if not need_columns and deid is None:
        return Batch(raws, {}, as_stored=True)
    with paused_gc():
        rows = decode(raws) if decode is not None else list(map(row_decoder(kind, tuple(cols), deid is not None).decode, raws))
        refs = PERSONAL_REFS.get(kind, {}) if deid is not None else {}
        pending: tuple[str, ...] = ()
        later = None
        sent = _helped_columns(kind, tuple(cols)) if helper is not None and deid is not None and len(rows) >= HELPER_FROM else ()
        if sent:
            assert helper is not None and deid is not None
            pending = tuple(name for _, name in sent)
            later = deid.records_later([list(map(attrgetter(f"f{i}"), rows)) for i, _ in sent], helper)
        drawn = list(zip(*map(astuple, rows), strict=True)) if rows else [() for _ in cols]
        out: dict[str, Sequence[Any]] = {}
        for (name, t), values in zip(cols, drawn, strict=True):
            if name in pending:
                continue
            subset = SUBSETS.get((kind, name)) if deid is not None else None
            if subset is not None:
                out[name] = _subset_texts(values, subset)
                continue
            if deid is not None and (what := refs.get(name)) is not None:
                changed = deid.learners(list(values)) if what == "learner" else deid.records(list(values))
                out[name] = _json_texts(changed) if t == "json" else changed
            elif deid is not None and kind == "mastery_state" and name == "contributions":
                out[name] = _json_texts([deid.contributions(v) for v in values])
            elif t == "json":
                out[name] = _raw_texts(values)
            else:
                out[name] = values
        return Batch(raws, out, as_stored=deid is None, pending=pending, later=later)


_DONE = object()
_T = TypeVar("_T")


def prefetched(batches: Iterator[_T]) -> Iterator[_T]:
    """The same batches, the next one fetched on a thread while the caller converts this one
    (the drivers release the GIL while they wait on the database): the database and Python
    work at the same time. At most three batches exist at once (converting, waiting, being
    fetched); the thread closes the batches' cursor and is joined before this returns, also
    when the caller stops early, so the connection is never used by two threads at once."""
    handoff: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the caller, raised there
            put(exc)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=run, name="tessera-export-fetch", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


__all__ = ["HELPER_FROM", "Batch", "arrow_schema", "columnize", "columnize_with", "columns", "columns_of", "helped", "prefetched"]
