"""The change feed's read-ahead: a reader's next pages read while this one is served.

A sync pages the feed one page after another, each from the ``next_since`` of the one before,
up to the ``until`` it took from ``/v1/changes/available`` when it began. Which page it asks
for next is known as soon as it asks for this one: the page that starts where this one ends.
So when a reader asks for a page with an explicit ``until`` (on PostgreSQL), the feed starts
reading the next ``DEPTH`` pages too (2: the page after it, and the one after that), each on a
thread of its own with its own connection and its own de-identifying worker
(``feed.HELPERS_PER_READER``), while this one is read or taken from an earlier read-ahead.
The pages' reading, de-identifying and shaping fill each other's waits and use both cores,
where one page alone waits for its first chunk and for its last (``feed._pg_page``). A reader
that asks for the next page at once finds it ready or well under way. (At full size, 200
pages alternated on the bench machine: 2 pages ahead 110,273-122,340 changes/s against
93,931-104,090 with 1, 3 pairs; 3 pages ahead, each with its worker, won 1 of 3 pairs against 2.)

Where a page read ahead starts is where the page before it ends: a page read ahead fetches
its change rows first and tells that at once (``ChangeFeed.read``'s ``ends``), before reading
its records, so the page after it starts a few milliseconds into it; after a page read as
asked it is looked up (``ChangeFeed.next_since``: the change log's index walked ``limit`` rows,
no record read). Past the last page nothing is read.

**Served only for the very same question.** A page read ahead is served for the same reader
(tenant, client, own changes or not), the same grants (id, grantor, kinds, de-identified: a
grant revoked, expired or changed since makes the reader's grants differ, so the page is
dropped and read afresh, and revoking still stops access at once), the same ``until``, kinds
and limit, and a ``since`` where it starts. Anything else is read afresh. Its records are as
they were when it was read, a moment before it is served, as a page read at that moment shows
them: a later change of a record is a later version, past ``until`` or on a later page.

**The access log** gets a page read ahead when it is served, under the grants of the request
that serves it, never when it is read: a page nobody asked for was disclosed to nobody. It is
dropped after ``TTL`` seconds unasked, or when the reader asks for another page instead.

**Bounds.** ``DEPTH`` pages read ahead a reader (and its question), ``MAX_JOBS`` in a process at
once (past that none is started: with that many readers the cores are busy anyway), each at
most ``feed.MAX_LIMIT`` changes. ``TESSERA_FEED_READ_AHEAD=0`` turns it off. It costs ``DEPTH`` pages
read for nothing when a sync stops early, and every page when each next request of a reader
reaches another API process (several behind a balancer that spreads one client's requests).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: "0" turns the read-ahead off
READ_AHEAD_ENV = "TESSERA_FEED_READ_AHEAD"
#: pages read ahead (being read, or read and not yet asked for) in a process at once, at most
MAX_JOBS = 4
#: pages read ahead a reader (and question): the next, or the next and the one after it...
DEPTH = 2
#: seconds a page read ahead is kept unasked
TTL = 30.0


class Pages(Protocol):
    """What the read-ahead needs of ``feed.ChangeFeed`` (its reader and page are ``feed``'s
    ``Reader`` and ``FeedPage``: this module is imported by it, not the other way)."""

    def read(self, reader: Any, since: int, until: int | None, kinds: Sequence[str], limit: int, *,
             logged: bool = True, ends: Callable[[int | None], None] | None = None) -> tuple[Any, dict[str, int]]: ...

    def next_since(self, reader: Any, since: int, until: int, kinds: Sequence[str], limit: int) -> int | None: ...

    def log(self, reader: Any, since: int, until: int, kinds: Sequence[str], counts: Mapping[str, int]) -> None: ...


def read_ahead_on() -> bool:
    """Pages read ahead where a second core can read them, unless ``TESSERA_FEED_READ_AHEAD=0``."""
    return os.environ.get(READ_AHEAD_ENV, "").strip() != "0" and (os.cpu_count() or 1) >= 2


def _question(reader: Any, until: int, kinds: Sequence[str], limit: int) -> tuple[Any, ...]:
    """What a page read ahead may be served for, but its ``since``."""
    grants = tuple((str(g.id), g.grantor, tuple(sorted(g.kinds)), g.deidentified) for g in reader.grants)
    return reader.tenant, reader.client_id, reader.own, grants, until, tuple(sorted(set(kinds))), limit


class _Job:
    """The page after the one from ``after`` (a version, or where another job's page
    starts), read on a thread of its own."""

    __slots__ = ("after", "done_at", "dropped", "end", "ended", "known", "result", "since", "told")

    def __init__(self, after: int | _Job | None) -> None:
        self.after = after
        #: where it starts, once looked up (None: the page from ``after`` is the last)
        self.since: int | None = None
        self.known = threading.Event()  # ``since`` looked up (or the look-up failed)
        #: where the page after it starts (None: none after it), once ``told`` by its reading;
        #: ``ended`` is set when told, or when the job is done without telling (not read, or failed)
        self.end: int | None = None
        self.told = False
        self.ended = threading.Event()
        #: (the page, its changes by grantor) or None (no page after, or dropped before reading)
        self.result: Future[tuple[Any, dict[str, int]] | None] = Future()
        self.dropped = False
        self.done_at: float | None = None


class ReadAhead:
    """The pages read ahead of one ``feed.ChangeFeed``, by question."""

    def __init__(self, feed: Pages) -> None:
        self.feed = feed
        self._jobs: dict[tuple[Any, ...], list[_Job]] = {}
        self._lock = threading.Lock()

    def page(self, reader: Any, since: int, until: int, kinds: Sequence[str], limit: int) -> Any:
        """The page from ``since``: the one read ahead for it if there is one (waited for if
        still being read), else read now; either way the page after it is started."""
        question = _question(reader, until, kinds, limit)
        job = self._take(question, since)
        self._start(question, reader, job if job is not None else since, until, kinds, limit)
        got = None
        if job is not None:
            try:
                got = job.result.result()
            except Exception:  # read afresh below: an error that lasts is then the page's own
                log.debug("a page read ahead failed; read again", exc_info=True)
        if got is None:
            return self.feed.read(reader, since, until, kinds, limit)[0]
        page, counts = got
        self.feed.log(reader, since, page.until, kinds, counts)
        return page

    def _take(self, question: tuple[Any, ...], since: int) -> _Job | None:
        """The job read ahead for ``question`` if it starts at ``since`` (taken out, those after
        it kept); otherwise the question's jobs are dropped, as are those unasked for ``TTL``."""
        now = time.monotonic()
        with self._lock:
            chain = self._jobs.pop(question, [])
            for q in [q for q, js in self._jobs.items() if js[0].done_at is not None and now - js[0].done_at > TTL]:
                for j in self._jobs.pop(q):
                    j.dropped = True
        if not chain:
            return None
        job = chain[0]
        job.known.wait()  # the look-up of where it starts: milliseconds
        if job.since != since:
            for j in chain:
                j.dropped = True
            return None
        if len(chain) > 1:
            with self._lock:
                self._jobs.setdefault(question, chain[1:])
        return job

    def _start(self, question: tuple[Any, ...], reader: Any, since: int | _Job, until: int, kinds: Sequence[str], limit: int) -> None:
        """The question's next ``DEPTH`` pages after the one from ``since`` (a version, or the
        job that read that page) read ahead, those not started yet started (while fewer than
        ``MAX_JOBS`` are in the process)."""
        started = []
        with self._lock:
            chain = self._jobs.setdefault(question, [])
            room = MAX_JOBS - sum(map(len, self._jobs.values()))
            while len(chain) < DEPTH and room > 0:
                chain.append(_Job(chain[-1] if chain else since))
                started.append(chain[-1])
                room -= 1
            if not chain:
                del self._jobs[question]
        for job in started:
            threading.Thread(target=self._run, args=(job, reader, until, kinds, limit), name="tessera-feed-ahead", daemon=True).start()

    def _run(self, job: _Job, reader: Any, until: int, kinds: Sequence[str], limit: int) -> None:
        try:
            try:
                before = job.after
                job.after = None  # not the job before any more: a sync's pages are not kept alive one by the next
                if not isinstance(before, _Job):
                    job.since = None if before is None else self.feed.next_since(reader, before, until, kinds, limit)
                else:  # the page after a page read ahead: where its reading says it ends, else looked up
                    before.ended.wait()
                    if before.told:
                        job.since = before.end
                    else:
                        before.known.wait()
                        job.since = None if before.since is None else self.feed.next_since(reader, before.since, until, kinds, limit)
            finally:
                job.known.set()
            if job.since is None or job.dropped:
                job.result.set_result(None)
            else:
                job.result.set_result(self.feed.read(reader, job.since, until, kinds, limit, logged=False,
                                                     ends=lambda end: self._ends(job, end)))
        except BaseException as exc:  # handed to whoever takes it (who reads afresh)
            job.result.set_exception(exc)
        finally:
            job.done_at = time.monotonic()
            job.ended.set()

    @staticmethod
    def _ends(job: _Job, end: int | None) -> None:
        job.end, job.told = end, True
        job.ended.set()

    def close(self) -> None:
        """Drop every page read ahead, once those being read are done."""
        with self._lock:
            jobs, self._jobs = [j for js in self._jobs.values() for j in js], {}
        for job in jobs:
            job.dropped = True
            try:
                job.result.result()
            except Exception:  # dropped: nobody reads it
                log.debug("a dropped page read ahead failed", exc_info=True)


__all__ = ["DEPTH", "MAX_JOBS", "READ_AHEAD_ENV", "TTL", "Pages", "ReadAhead", "read_ahead_on"]
