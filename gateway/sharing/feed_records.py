"""The change feed's de-identified records a chunk at a time, the pseudonyms of their own ids
made meanwhile by a helper process (``pseudonym_helper``), as the bulk export's are.

Under a de-identified grant every per-learner record (evidence, enrollments, mastery states,
learning plans) has an id of its own that becomes a pseudonym: an HMAC a record, never cached
(each id is seen once), about 0.6 us a change of Python calls holding the interpreter's lock,
the largest single part of what the feed does a de-identified change. The ids are known
before the records are decoded (the database gives them beside each record), so they go to
the reader's helper process first; the records are decoded and their learners pseudonymised
(cached) while the helper hashes, and its answer is taken when the id column is written back.
The helper gets the recipient's derived key only and runs on the core the database leaves
free; what it gives is the very text ``Pseudonymizer.records`` gives (a test checks the feed
with and without it).

``RecordHelper`` is one reader's helper, kept across its pages as its de-identifiers are
(``feed.DEID_TTL``), used by one page at a time: a second page of the same reader at the same
time makes its pseudonyms in-process, as does every page when the helper cannot start, fails,
or ``TESSERA_FEED_HELPER=0``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from operator import itemgetter
from typing import Any

from .columns import deidentified_texts
from .deidentify import PERSONAL_REFS, Deidentifier, Pseudonymizer
from .pseudonym_helper import HelperFailed, PseudonymHelper, split_texts

#: "0" turns the feed's pseudonym helper process off (record pseudonyms made in-process)
HELPER_ENV = "TESSERA_FEED_HELPER"
#: a (tenant, kind) of a chunk with at least this many records has its ids' pseudonyms made by the helper
HELPER_FROM = 500


def helper_pays() -> bool:
    """A helper process where a second core can run it, unless ``TESSERA_FEED_HELPER=0``."""
    return os.environ.get(HELPER_ENV, "").strip() != "0" and (os.cpu_count() or 1) >= 2


class RecordHelper:
    """One reader's pseudonym helper process, started when first borrowed, lent to one page at
    a time (``borrowed``); after a failure it is closed and not started again."""

    def __init__(self, pseudonyms: Pseudonymizer) -> None:
        self._pseudonyms = pseudonyms
        #: the process, while it runs (None: not started yet, or ended)
        self.helper: PseudonymHelper | None = None
        self._lock = threading.Lock()
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

    def failed(self) -> None:
        """Called by the borrower whose request failed (the process ended or answered short):
        the process is closed, and the rest of the page and later ones make pseudonyms in-process."""
        self._failed = True
        self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        helper, self.helper = self.helper, None
        if helper is not None:
            helper.close()


def deidentified_records(kind: str, got: Sequence[tuple[str, Any, bool]], deid: Deidentifier,
                         lent: RecordHelper | None) -> tuple[list[bytes], list[Any]]:
    """Each record of ``got`` (id, stored text, retired or voided) as a de-identified grant
    shows it, as JSON text, and its id (a pseudonym where the kind's ids are personal): what
    ``columns.deidentified_texts`` gives, with the pseudonyms of a per-learner kind's own ids
    asked of the ``lent`` helper before the records are decoded (at least ``HELPER_FROM`` of
    them) and taken when the column is written back. The ids the helper hashed are those the
    database gave; a record whose own ``id`` member says otherwise has the chunk's column made
    in-process, from the members, as without a helper; so does every chunk once the helper
    failed."""
    refs = PERSONAL_REFS.get(kind, {})
    row_ids = list(map(itemgetter(0), got))
    later = None
    helper = lent.helper if lent is not None else None
    if lent is not None and helper is not None and refs.get("id") == "record" and len(got) >= HELPER_FROM:
        try:
            later = deid.records_later([row_ids], helper)
        except (HelperFailed, OSError):
            lent.failed()
    helped = partial(_helped, later, asked=row_ids, lent=lent) if later is not None and lent is not None else None
    return deidentified_texts(kind, list(map(itemgetter(1), got)), deid, helped)


def _helped(later: Callable[[], list[Any]], values: list[Any], asked: list[str], lent: RecordHelper) -> list[Any] | None:
    """The helper's pseudonyms of ``asked`` when they are those of ``values`` (the records' own
    ids as decoded); None when they are not, or the helper failed."""
    try:
        got = later()[0]
    except (HelperFailed, OSError):
        lent.failed()
        return None
    if values != asked:
        return None
    return split_texts(got) if isinstance(got, bytes) else list(got)


__all__ = ["HELPER_ENV", "HELPER_FROM", "RecordHelper", "deidentified_records", "helper_pays"]
