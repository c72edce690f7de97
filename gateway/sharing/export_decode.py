"""An export file's decoder that learns the values its text columns repeat (``LearnedDecoder``).

**Why.** Most of an export's text columns hold a few values over and over: the kind, the
tenant, the source, the status, the competency, the instant a batch of records was written.
Decoded as ``Any`` (``record_texts.row_decoder``) each row makes a new string of each (an
allocation, a copy, later a free), and Arrow then reads each of those separate strings back
(a cache miss a value). Decoded as a ``Literal`` of the values already seen, msgspec finds the
text in its table and hands back the one string it holds: nothing made a row, and Arrow reads
the same few strings again and again.

**How.** A file's first ``LEARN_ROWS`` records are decoded as ``row_decoder`` decodes them;
each text column (``string``, ``timestamp``, ``date``) whose values there are texts, at most a
quarter as many distinct ones as rows, is decoded from the next record on against them. A
record holding a value not seen yet fails that decoding (msgspec raises at once): that record
alone is decoded as before (``row_decoder``; a record it cannot read raises what it always
raised), its new values are learned, the batch goes on from the next record, and the decoder
is rebuilt with them at once (at most once every ``REBUILD_ROWS`` rows: records with values
not seen meanwhile are decoded as before, each alone). A column past ``LITERAL_MAX`` values,
holding anything but text, or still bringing new values once the builds a file is allowed
are made (``BUILDS_FREE``, then one every ``ROWS_A_BUILD`` rows: a build costs up to ~1 ms),
is decoded as before for the rest of the file. The rows are structs with the same fields and
the same values either way, so the files are the same (a test compares them); only what is
made a row differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from operator import attrgetter
from typing import Any, Literal

import msgspec

from .record_texts import row_decoder

#: the most distinct values a column is decoded against; past them it is decoded as before
LITERAL_MAX = 256
#: the file's first rows, decoded as before, that the columns worth learning are picked from
LEARN_ROWS = 1_000
#: rows decoded at least between two builds of a decoder (a build costs ~0.1-1 ms): a value not
#: seen yet is learned at once, and more within those rows are decoded as before meanwhile
REBUILD_ROWS = 1_000
#: decoders built at most in a file: this many, then one every ``ROWS_A_BUILD`` rows (a column
#: with a new value past them is given up), so learning costs at most ~0.1 µs a row
BUILDS_FREE = 16
ROWS_A_BUILD = 10_000
#: the column types whose values are texts (dates and date-times are decoded as their text)
_TEXTS = ("string", "timestamp", "date")


class LearnedDecoder:
    """Decodes one file's batches of stored records (``__call__``: the stored texts of a batch
    to its rows), the text columns whose values repeat decoded against the values seen."""

    def __init__(self, kind: str, cols: Sequence[tuple[str, str]], deidentified: bool) -> None:
        self.kind = kind
        self.base = row_decoder(kind, tuple(cols), deidentified)
        self.fields = msgspec.structs.fields(self.base.type)  # type: ignore[arg-type]  # a Struct type (``row_decoder``)
        #: positions of the columns that may be learned: texts decoded as ``Any``
        self.candidates = [i for i, ((_, t), f) in enumerate(zip(cols, self.fields, strict=True)) if t in _TEXTS and f.type is Any]
        #: the values seen of each learned column (None: the first batch not decoded yet)
        self.known: dict[int, set[str]] | None = None
        self.fast: msgspec.json.Decoder[Any] | None = None
        #: rows decoded, at the last build of ``fast``; records decoded as before (values not seen)
        self.decoded = self.built = self.misses = self.builds = 0
        #: values learned since ``fast`` was built
        self.stale = False

    def __call__(self, raws: Sequence[Any]) -> list[Any]:
        rows: list[Any] = []
        if self.known is None:  # the file's first records: decoded as before, learned from
            rows = list(map(self.base.decode, raws[:LEARN_ROWS]))
            self._learn(rows)
        rest = islice(raws, len(rows), None)
        while self.fast is not None:
            try:
                rows.extend(map(self.fast.decode, rest))  # the rows decoded before a failure stay in ``rows``
                break
            except msgspec.DecodeError:  # a value not seen yet (or a record the decoder before refuses too)
                row = self.base.decode(raws[len(rows)])
                rows.append(row)
                self.misses += 1
                self.stale = self._add(row, self.decoded + len(rows)) or self.stale
                if self.stale and self.decoded + len(rows) - self.built >= REBUILD_ROWS:
                    self._build(self.decoded + len(rows))
        else:  # no column (left) to learn: as before
            rows.extend(map(self.base.decode, rest))
        self.decoded += len(rows)
        if self.stale:
            self._build(self.decoded)
        return rows

    def _learn(self, rows: list[Any]) -> None:
        self.known = {}
        most = max(1, len(rows) // 4)
        for i in self.candidates:
            values = set(map(attrgetter(f"f{i}"), rows))
            values.discard(None)
            if values and len(values) <= most and all(type(v) is str for v in values):
                self.known[i] = values
        self._build(self.decoded)

    def _add(self, row: Any, decoded: int) -> bool:
        """Learn a row's new values; a column past ``LITERAL_MAX``, holding other than text, or
        with a new value once the builds allowed so far (``BUILDS_FREE``, then one every
        ``ROWS_A_BUILD`` rows) are made, is given up. Whether anything changed."""
        assert self.known is not None
        changed = False
        more = self.builds < BUILDS_FREE + decoded // ROWS_A_BUILD
        for i in list(self.known):
            value = getattr(row, f"f{i}")
            values = self.known[i]
            if value is None or type(value) is str and value in values:
                continue
            changed = True
            if more and type(value) is str and len(values) < LITERAL_MAX:
                values.add(value)
            else:  # past the most values or builds, or not a text (a number, a list, an object)
                del self.known[i]
        return changed

    def _build(self, decoded: int) -> None:
        assert self.known is not None
        self.stale, self.built = False, decoded
        self.builds += 1
        if not self.known:
            self.fast = None
            return
        known = self.known
        fields = [(f.name, Literal[tuple(sorted(known[i]))] | None if i in known else f.type, f.default)
                  for i, f in enumerate(self.fields)]
        row = msgspec.defstruct(f"{self.kind}_learned_row", fields, rename={f.name: f.encode_name for f in self.fields},
                                gc=False, omit_defaults=True)
        self.fast = msgspec.json.Decoder(row)


__all__ = ["LITERAL_MAX", "LearnedDecoder"]
