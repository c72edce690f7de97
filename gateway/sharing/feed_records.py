"""The change feed's de-identified records a chunk at a time: made by the reader's worker
process (``feed_worker``) while the page's process reads the next chunk and shapes the one
before, or in-process (``deidentified_records``) where no worker runs.

Under a de-identified grant each record is decoded, its learners and its own id made
pseudonyms, and written back as JSON text (``record_texts``): about half of what the page's
process did a de-identified change, and all of it holding the interpreter's lock. The page's
reading thread hands a chunk's records of every de-identified (tenant, kind) to the worker
as soon as it has read them (``RecordHelper.ask``: their stored bytes, in one request), and
the converting thread takes the texts and ids back when it reaches that chunk
(``RecordHelper.answer``). The worker's texts are those the in-process path makes, byte for
byte (the same ``record_texts`` code on the same state ids and key; a test compares whole
pages).

``RecordHelper`` is one reader's worker, kept across its pages as its de-identifiers are
(``feed.DEID_TTL``), used by one page at a time: a second page of the same reader at the same
time makes its records in-process, as does every page when the worker cannot start, and
every chunk once it has failed (it is killed and not started again; the chunks whose answers
were lost are made in-process, so the page is still right), or with ``TESSERA_FEED_HELPER=0``.

**Two requests out at most.** The reading thread may be a chunk or two ahead of the
converting one; it sends a request while the one before is still out (so the worker goes
from one to the next without waiting), but before a third it takes the oldest answer itself
(kept for its chunk). So the worker never has more than two answers to write: it never
waits on a full pipe for long, and the reading thread never waits on one the worker does not
read. Requests are written by a thread of their own (``_send_all``), so the reading thread
hands a chunk over and goes back to the database at once; answers are read, in order, by
whichever of the page's threads needs one first (``_receive`` held).
"""

from __future__ import annotations

import os
import pickle
import queue
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

import msgspec

from . import record_texts
from .columns import columns_of
from .deidentify import Deidentifier
from .feed_worker import FeedWorker, WorkerFailed

#: "0" turns the feed's worker process off (records de-identified in-process)
HELPER_ENV = "TESSERA_FEED_HELPER"
#: a chunk with at least this many de-identified records has them made by the worker
HELPER_FROM = 500
#: requests out at once at most (the oldest answer taken before another is sent)
OUTSTANDING = 2
#: seconds a chunk waits for a worker still starting (0: made in-process until it has started)
READY_WAIT = 0.0
_FAILURES = (OSError, WorkerFailed, msgspec.DecodeError, ValueError, TypeError)


def helper_pays() -> bool:
    """A worker process where a second core can run it, unless ``TESSERA_FEED_HELPER=0``."""
    return os.environ.get(HELPER_ENV, "").strip() != "0" and (os.cpu_count() or 1) >= 2


class Asked:
    """One chunk's records asked of the worker (``RecordHelper.ask``): which of the chunk's
    groups went, how many records each, and (once collected by whichever thread reads the
    worker next) the answer of each of the chunk's groups."""

    __slots__ = ("answers", "counts", "done", "groups", "sent")

    def __init__(self, groups: int, sent: list[int], counts: list[int]) -> None:
        self.groups, self.sent, self.counts = groups, sent, counts
        #: per group of the chunk: (texts, ids) or None (made in-process); None until collected
        self.answers: list[Any] | None = None
        self.done = False


class RecordHelper:
    """One reader's worker process, started when first borrowed, lent to one page at a time
    (``borrowed``); after a failure it is killed and not started again. Within a page the
    reading thread asks (``ask``) and the converting thread takes the answers (``answer``).
    It remembers which de-identifier of each grantor, and which kinds' columns, the worker
    has, and sends the others with the request that first needs them."""

    def __init__(self) -> None:
        #: the process, while it runs (None: not started yet, or ended)
        self.worker: FeedWorker | None = None
        self._lock = threading.Lock()  # lent to one page at a time
        #: requests to write, in the order asked (None: stop), written by ``_sender``
        self._to_send: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._receive = threading.Lock()  # held while answers are read (in the order asked)
        self._out: deque[Asked] = deque()
        #: grantor -> the de-identifier whose key and state ids the worker has (False: too many state ids to send)
        self._sent: dict[str, tuple[Deidentifier, bool]] = {}
        self._kinds: set[str] = set()
        self._failed = False
        #: records the worker de-identified
        self.rows = 0

    @property
    def lent(self) -> bool:
        """Lent to a page now."""
        return self._lock.locked()

    @property
    def failed(self) -> bool:
        """Its process failed (killed, not started again)."""
        return self._failed

    @contextmanager
    def borrowed(self) -> Iterator[RecordHelper | None]:
        """This worker for one page, its process started; None when another page has it, or
        its process failed or cannot start."""
        if not self._lock.acquire(blocking=False):
            yield None
            return
        try:
            if self.worker is None and not self._failed:
                try:
                    self.worker = FeedWorker()
                except OSError:
                    self._failed = True
                else:
                    self._sender = threading.Thread(target=self._send_all, args=(self.worker,), name="tessera-feed-worker-send",
                                                    daemon=True)
                    self._sender.start()
            yield self if self.worker is not None and not self._failed else None
        finally:
            if self._failed:  # killed during the page: its pipes closed and the process waited for
                self._close()
            self._lock.release()

    def ask(self, groups: Sequence[tuple[str, str, Sequence[tuple[str, Any, bool]]]],
            deids: Mapping[str, Deidentifier]) -> Asked | None:
        """Send the records of a chunk's groups (tenant, kind, [(id, stored text, retired)])
        of de-identified grantors (``deids``) to the worker, in one request, and go on; None
        when it does not pay (fewer than ``HELPER_FROM``), the worker is not started yet, or
        has failed (the caller makes them in-process). A grantor's state ids are read here
        (this is the page's reading thread) when its de-identifier is new to the worker."""
        worker = self.worker
        picked = [i for i, (tenant, _kind, _got) in enumerate(groups) if tenant in deids]
        if worker is None or self._failed or sum(len(groups[i][2]) for i in picked) < HELPER_FROM:
            return None
        try:
            with self._receive:
                if not worker.ready(READY_WAIT):
                    return None
        except _FAILURES:
            self._fail()
            return None
        setups: dict[str, tuple[Deidentifier, dict[str, str]]] = {}
        kinds: dict[str, list[tuple[str, str]]] = {}
        sent: list[int] = []
        for i in picked:
            tenant, kind, _got = groups[i]
            deid = deids[tenant]
            known = self._sent.get(tenant)
            if tenant not in setups and (known is None or known[0] is not deid):
                every = deid.state_ids.every()
                if every is None:  # more than a de-identifier holds: looked up in-process, as before
                    self._sent[tenant] = (deid, False)
                    continue
                setups[tenant] = (deid, every)
            elif tenant not in setups and known is not None and not known[1]:
                continue
            if kind not in self._kinds:
                kinds[kind] = columns_of(kind, deidentified=True)
            sent.append(i)
        if not sent:
            return None
        payload = msgspec.msgpack.encode([
            [(tenant, pickle.dumps(deid.pseudonyms), every) for tenant, (deid, every) in setups.items()], kinds,
            [(groups[i][0], groups[i][1], list(map(itemgetter(1), groups[i][2]))) for i in sent]])
        asked = Asked(len(groups), sent, [len(groups[i][2]) for i in sent])
        try:
            while len(self._out) >= OUTSTANDING and not self._failed:
                with self._receive:
                    if len(self._out) >= OUTSTANDING:
                        self._collect()
            if self._failed:
                return None
            self._out.append(asked)
            self._to_send.put(payload)
        except _FAILURES:
            self._fail()
            return None
        self._sent.update((tenant, (deid, True)) for tenant, (deid, _) in setups.items())
        self._kinds.update(kinds)
        return asked

    def _send_all(self, worker: FeedWorker) -> None:
        """The sending thread: each request written as it comes, so the reading thread goes
        on to the next chunk at once instead of waiting, its request half down a full pipe,
        for the worker to finish the one before (the database idle meanwhile)."""
        while (payload := self._to_send.get()) is not None:
            try:
                worker.send(payload)
            except _FAILURES:
                self._fail()
                return

    def answer(self, asked: Asked, group: int) -> tuple[list[bytes], list[Any]] | None:
        """The texts and ids of the chunk's ``group`` that ``ask`` sent, waited for if need be;
        None when it was not sent or the worker failed before answering it (made in-process)."""
        if not asked.done:
            with self._receive:
                try:
                    while not asked.done and not self._failed:
                        self._collect()
                except _FAILURES:
                    self._fail()
        answers = asked.answers
        return None if answers is None else answers[group]

    def _collect(self) -> None:
        """The oldest request's answer read and kept for its chunk (``_receive`` held)."""
        worker = self.worker
        if worker is None:
            raise WorkerFailed("the feed's worker process is closed")
        asked = self._out[0]
        got = msgspec.msgpack.decode(worker.receive())
        if not isinstance(got, list) or len(got) != len(asked.sent):
            raise WorkerFailed("the feed's worker process answered for other groups than asked")
        answers: list[Any] = [None] * asked.groups
        for at, n, answer in zip(asked.sent, asked.counts, got, strict=True):
            if answer is not None:
                texts, ids = answer
                if len(texts) != n or len(ids) != n:
                    raise WorkerFailed(f"the feed's worker process answered {len(texts)} records of {n}")
                answers[at] = (texts, ids)
                self.rows += n
        self._out.popleft()
        asked.answers, asked.done = answers, True

    def _fail(self) -> None:
        """The worker failed (ended, answered short or garbled, or a pipe broke): killed, so
        a thread waiting on it goes on; the rest of the page and later ones in-process. Its
        pipes are closed and the process waited for when the page is done (``borrowed``)."""
        self._failed = True
        worker = self.worker
        if worker is not None:
            worker.kill()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        worker, self.worker = self.worker, None
        sender, self._sender = self._sender, None
        if worker is not None and self._out:  # answers nobody will read: the worker may be waiting to write one
            worker.kill()
        self._to_send.put(None)
        if sender is not None:
            sender.join()
        self._to_send = queue.SimpleQueue()
        self._out.clear()
        self._sent.clear()
        self._kinds.clear()
        if worker is not None:
            worker.close()


def deidentified_records(kind: str, got: Sequence[tuple[str, Any, bool]], deid: Deidentifier) -> tuple[list[bytes], list[Any]]:
    """Each record of ``got`` (id, stored text, retired or voided) as a de-identified grant
    shows it, as JSON text, and its id (a pseudonym where the kind's ids are personal), made
    in this process: what the worker gives for them (``record_texts.deidentified_records``)."""
    return record_texts.deidentified_records(kind, columns_of(kind, deidentified=True), list(map(itemgetter(1), got)), deid)


__all__ = ["HELPER_ENV", "HELPER_FROM", "OUTSTANDING", "READY_WAIT", "Asked", "RecordHelper", "deidentified_records", "helper_pays"]
