"""The change feed's de-identified records a chunk at a time, the pseudonyms of their own ids
made meanwhile by a helper process (``pseudonym_helper``), as the bulk export's are.

Under a de-identified grant every per-learner record (evidence, enrollments, mastery states,
learning plans) has an id of its own that becomes a pseudonym: an HMAC a record, never cached
(each id is seen once), about 0.6 us a change of Python calls holding the interpreter's lock,
the largest single part of what the feed does a de-identified change. The ids are known
before the records are decoded (the database gives them beside each record), so they go to
the reader's helper process first; the records are decoded and their learners pseudonymised
(cached) while the helper hashes, and its answer is taken when the id column is written back.
The ids are asked for by the page's reading thread as soon as it has read a chunk's records
(``RecordHelper.ask``), so the helper hashes them while the converting thread is still on the
chunk before, and their answer is ready when the conversion reaches them. The helper gets the recipient's derived key only and runs on the core the database leaves
free; what it gives is the very text ``Pseudonymizer.records`` gives (a test checks the feed
with and without it).

``RecordHelper`` is one reader's helper, kept across its pages as its de-identifiers are
(``feed.DEID_TTL``), used by one page at a time: a second page of the same reader at the same
time makes its pseudonyms in-process, as does every page when the helper cannot start, fails,
or ``TESSERA_FEED_HELPER=0``.

**Parts.** A chunk's records of one (tenant, kind) are decoded, de-identified and written
back ``PART`` at a time (``deidentified_records``), not all at once: the objects a part's
records decode into (a struct and a dozen and a half values each) are freed before the next
part is decoded, so the same memory is reused while it is still in the processor's cache,
instead of 5,000 records' worth (several MB) being built, walked column by column and freed
from main memory. The records and their order are those of one conversion of the whole
chunk; measured on the same chunks, 6.3 µs a change of the converting thread's CPU against
4.0 (``docs/scaling.md``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

from .columns import deidentified_texts
from .deidentify import PERSONAL_REFS, READ_ALL_FROM, Deidentifier, Pseudonymizer
from .pseudonym_helper import HelperFailed, PseudonymHelper, split_texts

#: "0" turns the feed's pseudonym helper process off (record pseudonyms made in-process)
HELPER_ENV = "TESSERA_FEED_HELPER"
#: a (tenant, kind) of a chunk with at least this many records has its ids' pseudonyms made by the helper
HELPER_FROM = 500
#: records decoded, de-identified and written back at a time (a part's objects stay in the processor's cache)
PART = 500


def helper_pays() -> bool:
    """A helper process where a second core can run it, unless ``TESSERA_FEED_HELPER=0``."""
    return os.environ.get(HELPER_ENV, "").strip() != "0" and (os.cpu_count() or 1) >= 2


class Asked:
    """The pseudonyms of one chunk's record ids asked of a helper (``RecordHelper.ask``):
    collected by whichever thread uses the helper next (the converting thread when it reaches
    them, or the reading thread before it asks for the next chunk's)."""

    __slots__ = ("ids", "later", "texts")

    def __init__(self, ids: list[str], later: Callable[[], list[Any]]) -> None:
        self.ids, self.later = ids, later
        #: the answer once collected (None: not yet, or the helper failed)
        self.texts: list[Any] | None = None


class RecordHelper:
    """One reader's pseudonym helper process, started when first borrowed, lent to one page at
    a time (``borrowed``); after a failure it is closed and not started again. Within a page
    the reading thread asks (``ask``) and the converting thread takes the answers
    (``answer``), one request out at a time (``pseudonym_helper``): a new request first
    collects the one still out, so neither side waits on a full pipe the other is not reading."""

    def __init__(self, pseudonyms: Pseudonymizer) -> None:
        self._pseudonyms = pseudonyms
        #: the process, while it runs (None: not started yet, or ended)
        self.helper: PseudonymHelper | None = None
        self._lock = threading.Lock()
        #: held while the process is written to or read from (the page's two threads use it)
        self._io = threading.Lock()
        #: the request still out (its answer not collected yet)
        self._out: Asked | None = None
        self._failed = False

    @contextmanager
    def borrowed(self) -> Iterator[RecordHelper | None]:
        """This helper for one page, its process started; None when another page has it, or
        its process failed or cannot start."""
        if not self._lock.acquire(blocking=False):
            yield None
            return
        try:
            if self.helper is None and not self._failed:
                try:
                    self.helper = self._pseudonyms.helper()
                except OSError:
                    self._failed = True
            yield self if self.helper is not None else None
        finally:
            self._lock.release()

    def ask(self, deid: Deidentifier, ids: list[str]) -> Asked | None:
        """Ask the helper for the pseudonyms of ``ids`` (record ids of ``deid``'s tenant) and go
        on; None when the helper failed (the caller makes them in-process)."""
        with self._io:
            helper = self.helper
            if helper is None:
                return None
            try:
                self._collect()
                asked = Asked(ids, deid.records_later([ids], helper))
            except (HelperFailed, OSError):
                self._fail()
                return None
            self._out = asked
            return asked

    def answer(self, asked: Asked) -> list[Any] | None:
        """The pseudonyms ``ask`` asked for, waited for if need be; None when the helper failed."""
        with self._io:
            if asked.texts is None and self._out is asked:
                try:
                    self._collect()
                except (HelperFailed, OSError):
                    self._fail()
            return asked.texts

    def _collect(self) -> None:
        out, self._out = self._out, None
        if out is not None:
            got = out.later()[0]
            out.texts = split_texts(got) if isinstance(got, bytes) else list(got)

    def failed(self) -> None:
        """Called by the borrower whose request failed (the process ended or answered short):
        the process is closed, and the rest of the page and later ones make pseudonyms in-process."""
        with self._io:
            self._fail()

    def _fail(self) -> None:
        self._failed = True
        self._out = None
        self._close()

    def close(self) -> None:
        with self._lock, self._io:
            self._out = None
            self._close()

    def _close(self) -> None:
        helper, self.helper = self.helper, None
        if helper is not None:
            helper.close()


def ask(kind: str, got: Sequence[tuple[str, Any, bool]], deid: Deidentifier, lent: RecordHelper | None) -> Asked | None:
    """The pseudonyms of the records' own ids asked of the ``lent`` helper (on the page's
    reading thread, as soon as the records are read) where the kind's ids are personal and
    there are at least ``HELPER_FROM`` records; None otherwise."""
    if lent is None or len(got) < HELPER_FROM or PERSONAL_REFS.get(kind, {}).get("id") != "record":
        return None
    return lent.ask(deid, list(map(itemgetter(0), got)))


def deidentified_records(kind: str, got: Sequence[tuple[str, Any, bool]], deid: Deidentifier,
                         lent: RecordHelper | None, asked: Asked | None = None) -> tuple[list[bytes], list[Any]]:
    """Each record of ``got`` (id, stored text, retired or voided) as a de-identified grant
    shows it, as JSON text, and its id (a pseudonym where the kind's ids are personal): what
    ``columns.deidentified_texts`` gives for them all, made ``PART`` records at a time, with
    the pseudonyms of a per-learner kind's own ids ``asked`` of the ``lent`` helper (``ask``;
    asked here when not yet) taken when a part's id column is written back. The ids the helper
    hashed are those the database gave; a part whose records' own ``id`` members say otherwise
    has its column made in-process, from the members, as without a helper; so does every part
    once the helper failed."""
    if asked is None:
        asked = ask(kind, got, deid, lent)
    raws = list(map(itemgetter(1), got))
    if len(raws) >= READ_ALL_FROM:  # the state ids all read at once, as one look-up of the whole chunk would
        deid.state_ids.load()
    texts: list[bytes] = []
    ids: list[Any] = []
    for at in range(0, len(raws), PART):
        part_texts, part_ids = deidentified_texts(kind, raws[at:at + PART], deid, partial_ids(asked, lent, at, at + PART))
        texts += part_texts
        ids += part_ids
    return texts, ids


def partial_ids(asked: Asked | None, lent: RecordHelper | None, start: int, end: int) -> Callable[[list[Any]], list[Any] | None] | None:
    """``deidentified_texts``'s ``helped_ids`` for the records ``start:end`` of a chunk whose ids
    were ``asked``: the helper's pseudonyms of those ids when they are the records' own ids as
    decoded; None (made in-process) when they are not, or the helper failed."""
    if asked is None or lent is None:
        return None

    def helped(values: list[Any]) -> list[Any] | None:
        texts = lent.answer(asked)
        if texts is None or values != asked.ids[start:end]:
            return None
        return texts[start:end]

    return helped


__all__ = ["HELPER_ENV", "HELPER_FROM", "PART", "Asked", "RecordHelper", "ask", "deidentified_records", "helper_pays"]
