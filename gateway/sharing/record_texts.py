"""Stored records decoded into structs of just the wanted columns (``row_decoder``), and the
change feed's de-identified records written back as JSON text (``deidentified_records``).

Split from ``columns`` so that what the feed's de-identifying worker process
(``feed_worker``) runs needs msgspec and the standard library only: ``columns`` derives
each kind's columns from the canonical model's JSON Schemas (pydantic), which the worker
is sent instead of importing (~0.9 s of CPU and ~90 MiB a process). The bulk export decodes
with the same ``row_decoder`` (``columns.columnize``), the feed's in-process path and its
worker with the same ``deidentified_records``: one code for every path, so the texts are the
same bytes whichever process made them (a test compares whole pages).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import msgspec

from ..gc_pause import paused_gc
from .deidentify import PERSONAL_REFS, READ_ALL_FROM, Deidentifier

#: per-learner JSON members a de-identified export keeps only some keys of
SUBSETS: dict[tuple[str, str], tuple[str, ...]] = {("evidence", "activity"): ("system", "id"),
                                                   ("evidence", "provenance"): ("standard", "version")}

#: records decoded, de-identified and written back at a time (a part's objects stay in the processor's cache)
PART = 500


@functools.cache
def row_decoder(kind: str, cols: tuple[tuple[str, str], ...], deidentified: bool) -> msgspec.json.Decoder[Any]:
    """A decoder of one stored record into a struct of just the exported columns (msgspec:
    the members not exported are skipped, not built). JSON members that go out as they are
    stay their stored text (``msgspec.Raw``); members a de-identified export changes are
    decoded to Python values; the kept keys of a per-learner member (``SUBSETS``) decode
    into a small frozen struct of those keys (hashable: each distinct one is written once)."""
    refs = PERSONAL_REFS.get(kind, {}) if deidentified else {}
    fields: list[tuple[str, Any, Any]] = []
    for i, (name, t) in enumerate(cols):
        subset = SUBSETS.get((kind, name)) if deidentified else None
        if subset is not None:
            kept = msgspec.defstruct(f"{kind}_{name}_kept", [(f"k{j}", Any, None) for j in range(len(subset))],
                                     rename={f"k{j}": k for j, k in enumerate(subset)}, frozen=True, gc=False,
                                     omit_defaults=True)
            fields.append((f"f{i}", kept | None, None))
        elif t == "json" and name not in refs and not (deidentified and kind == "mastery_state" and name == "contributions"):
            fields.append((f"f{i}", msgspec.Raw, msgspec.Raw()))
        else:
            fields.append((f"f{i}", Any, None))
    # gc=False: decoded JSON holds no reference cycles, so the collector need not track rows;
    # omit_defaults: written back as JSON (``deidentified_texts``) absent members stay absent
    row = msgspec.defstruct(f"{kind}_row", fields, rename={f"f{i}": n for i, (n, _) in enumerate(cols)}, gc=False,
                            omit_defaults=True)
    return msgspec.json.Decoder(row)


_ENCODER = msgspec.json.Encoder()


def deidentified_texts(kind: str, cols: Sequence[tuple[str, str]], raws: Sequence[Any], deid: Deidentifier) -> tuple[list[bytes], list[Any]]:
    """Each stored record as a de-identified grant shows it, as JSON text, and its id (a
    pseudonym where the kind's ids are personal): what ``columns.columnize`` gives column by
    column, made record by record for the change feed. ``cols`` are the kind's de-identified
    columns (``columns.columns_of(kind, deidentified=True)``). The records decode into
    structs of just the kept members (``row_decoder``), the personal references are replaced
    a column at a time, and each struct is written back as JSON by msgspec: members absent or
    None stay out, nested members as stored (or their kept keys), in the schema's order."""
    with paused_gc():
        rows = list(map(row_decoder(kind, tuple(cols), True).decode, raws))
        refs = PERSONAL_REFS.get(kind, {})
        ids: list[Any] = []
        for i, (name, _t) in enumerate(cols):
            what = refs.get(name)
            attr = f"f{i}"
            if what is None and not (kind == "mastery_state" and name == "contributions"):
                if name == "id":
                    ids = list(map(attrgetter(attr), rows))
                continue
            values = list(map(attrgetter(attr), rows))
            if what == "learner":
                changed = deid.learners(values)
            elif what == "record":
                changed = deid.records(values)
            else:
                changed = [deid.contributions(v) for v in values]
            if name == "id":
                ids = changed
            if changed != values:
                for r, v in zip(rows, changed, strict=True):
                    setattr(r, attr, v)
        return list(map(_ENCODER.encode, rows)), ids


def deidentified_records(kind: str, cols: Sequence[tuple[str, str]], raws: Sequence[Any],
                         deid: Deidentifier) -> tuple[list[bytes], list[Any]]:
    """``deidentified_texts`` of a chunk's records of one (tenant, kind), made ``PART``
    records at a time, not all at once: the objects a part's records decode into (a struct
    and a dozen and a half values each) are freed before the next part is decoded, so the
    same memory is reused while it is still in the processor's cache, instead of 5,000
    records' worth (several MB) being built, walked column by column and freed from main
    memory. The records and their order are those of one conversion of the whole chunk;
    measured on the same chunks, 6.3 µs a change of the converting thread's CPU against 4.0
    (``docs/scaling.md``)."""
    if len(raws) >= READ_ALL_FROM:  # the state ids all read at once, as one look-up of the whole chunk would
        deid.state_ids.load()
    texts: list[bytes] = []
    ids: list[Any] = []
    for at in range(0, len(raws), PART):
        part_texts, part_ids = deidentified_texts(kind, cols, raws[at:at + PART], deid)
        texts += part_texts
        ids += part_ids
    return texts, ids


__all__ = ["PART", "SUBSETS", "deidentified_records", "deidentified_texts", "row_decoder"]
