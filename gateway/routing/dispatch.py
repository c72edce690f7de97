"""The embedded delivery engine: threads inside ``tessera serve`` / ``tessera worker``.

* **Delivery**: one claimer thread per process claims due outbox rows (``batch`` at a time
  while there is a backlog: 128 by default; measured on PostgreSQL with 4 workers, 64 rows
  a claim gave 1,021 rows/s, 256 gave 1,516 and 512 gave 1,781, with a p99 delay at half
  that rate of 91, 120 and 645 ms) and hands them in chunks to the delivery threads
  (``delivery.Deliverer``). A claim is one statement: ``UPDATE outbox SET lease ... WHERE id
  IN (SELECT id ... WHERE state = 'pending' AND next_attempt_at <= now ORDER BY
  next_attempt_at LIMIT n FOR UPDATE SKIP LOCKED) RETURNING *``. The lease moves the row's
  ``next_attempt_at`` to when the lease ends (``locked_until``, ``lease_owner`` say whose it
  is), so a row a crashed process held becomes due again by itself once the lease runs out,
  and a claim never looks at leased rows. On PostgreSQL any number of processes share the
  outbox this way (SKIP LOCKED: two claims never wait for nor take the same row); on SQLite
  the claim is a write transaction (BEGIN IMMEDIATE), and one process per database file
  dispatches (a lock file, ``<database>-dispatcher``), the others stand by and take over
  when it exits. The rows of one record in a claim go to one thread, in id (commit) order; a
  row whose record changed since is skipped for the later row that carries the change.
* **The scheduler** starts due pull routes (``routes.next_run_at``, ``schedule_seconds``):
  on PostgreSQL under a transaction-scoped advisory lock (one scheduler decides at a time),
  on SQLite in the dispatching process. A started route's ``next_run_at`` is pushed past
  ``pull_lease`` first, so no other process starts it again while it runs (or for that long
  after a crash); when it ends, ``next_run_at`` = end + ``schedule_seconds``.
* **Wake-ups**: the claimer polls (``poll`` seconds when idle, at once after a full batch),
  and is woken when a transaction of this process that wrote outbox rows commits (an engine
  event on ``INSERT INTO outbox``; ``notify_all`` by hand), so a change made through this
  process's API goes out without waiting for the poll.

``tessera serve`` starts it in the app's lifespan (``gateway.routing.serve.install``) unless
``TESSERA_ROUTING__ENGINE=off``; ``python -m gateway.routing.dispatch`` runs one worker
process (what ``tessera worker`` runs).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, bindparam, event, select, text, update

from ..model import utcnow
from ..store.db import WRITE, is_sqlite
from ..store.filelock import FileLock
from ..store.tables import outbox, routes
from .delivery import Deliverer
from .load import RouteCache
from .outcomes import SyncRunSummary
from .protocol import PageResult
from .pull import pull

if TYPE_CHECKING:
    from ..store import Store
    from ..wiring import Wiring

log = logging.getLogger("tessera.routing")

#: the advisory lock key of the scheduler (PostgreSQL): "tessera-scheduler"
SCHEDULER_LOCK = 0x7E55E4A5C4ED

_ENGINES: weakref.WeakSet[EmbeddedEngine] = weakref.WeakSet()


def notify_all() -> None:
    """Wake every embedded engine of this process (outbox rows were just committed)."""
    for engine in list(_ENGINES):
        engine.notify()


_WATCHED: weakref.WeakSet[Engine] = weakref.WeakSet()
_WATCH_LOCK = threading.Lock()


def _watch_outbox_writes(engine: Engine) -> None:
    """Wake this process's engines when one of its transactions that wrote outbox rows
    commits (the store writes them in the change's transaction), instead of at the next poll."""
    with _WATCH_LOCK:
        if engine in _WATCHED:
            return
        _WATCHED.add(engine)

    def after_cursor_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO outbox"):
            conn.info["tessera_outbox_written"] = True

    def commit(conn: Any) -> None:
        if conn.info.pop("tessera_outbox_written", False):
            notify_all()

    def rollback(conn: Any) -> None:
        conn.info.pop("tessera_outbox_written", None)

    event.listen(engine, "after_cursor_execute", after_cursor_execute)
    event.listen(engine, "commit", commit)
    event.listen(engine, "rollback", rollback)


def _claim_statement(engine: Engine, route_filter: bool) -> Any:
    due = (select(outbox.c.id)
           .where(outbox.c.state == "pending", outbox.c.next_attempt_at <= bindparam("now"))
           .order_by(outbox.c.next_attempt_at)
           .limit(bindparam("n")))
    if route_filter:
        due = due.where(outbox.c.route_id == bindparam("route"))
    if not is_sqlite(engine):
        due = due.with_for_update(skip_locked=True)
    return (update(outbox)
            .where(outbox.c.id.in_(due.scalar_subquery()))
            .values(locked_until=bindparam("until"), lease_owner=bindparam("owner"), next_attempt_at=bindparam("until"))
            .returning(*outbox.c))


def _chunks(rows: list[dict[str, Any]], n: int) -> list[list[dict[str, Any]]]:
    """``rows`` (id order) in at most ``n`` chunks of about equal size, the rows of one
    (route, record) in one chunk, in id order."""
    groups: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["route_id"], r["record_id"]), []).append(r)
    size = max(1, -(-len(rows) // n))
    chunks: list[list[dict[str, Any]]] = [[]]
    for group in groups.values():
        if len(chunks[-1]) >= size:
            chunks.append([])
        chunks[-1].extend(group)
    for c in chunks:
        c.sort(key=lambda r: r["id"])
    return [c for c in chunks if c]


class EmbeddedEngine:
    """``DeliveryEngine`` with threads in this process (module docstring)."""

    name = "embedded"

    def __init__(self, store: Store, wiring: Wiring, *, worker_id: str | None = None, threads: int = 4, batch: int = 128,
                 poll: float = 0.25, lease_seconds: float = 60.0, scheduler: bool = True, scheduler_poll: float = 1.0,
                 pull_lease: float = 900.0, max_pulls: int = 2, random: Callable[[], float] | None = None) -> None:
        self.store = store
        self.wiring = wiring
        self.worker_id = worker_id or f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.threads = max(1, int(threads))
        self.batch = max(1, int(batch))
        self.poll = float(poll)
        self.lease = timedelta(seconds=float(lease_seconds))
        self.scheduler = scheduler
        self.scheduler_poll = float(scheduler_poll)
        self.pull_lease = timedelta(seconds=float(pull_lease))
        self.max_pulls = max(1, int(max_pulls))
        self.sqlite = is_sqlite(store.engine)
        self.deliverer = Deliverer(store, wiring, worker=self.worker_id, route_cache=RouteCache(store.engine), random=random)
        self._claim = _claim_statement(store.engine, False)
        self._claim_route = _claim_statement(store.engine, True)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._work: queue.Queue[tuple[list[dict[str, Any]], float] | None] = queue.Queue()
        self._cond = threading.Condition()
        self._idle = 0  # delivery threads waiting for work
        self._running: list[threading.Thread] = []
        self._pulls: ThreadPoolExecutor | None = None
        self._pulling: dict[uuid.UUID, Future[SyncRunSummary | None]] = {}
        self._file_lock = FileLock(f"{store.engine.url.database}-dispatcher") if self.sqlite and store.engine.url.database not in (None, "", ":memory:") else None
        self._active = threading.Event()  # this process dispatches (always on PostgreSQL)
        _ENGINES.add(self)

    # --- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._running:
            return
        self._stop.clear()
        self._pulls = ThreadPoolExecutor(self.max_pulls, thread_name_prefix="tessera-pull")
        self._spawn(self._standby, "tessera-dispatch-lock")
        for i in range(self.threads):
            self._spawn(self._deliver_loop, f"tessera-deliver-{i}")
        self._spawn(self._claim_loop, "tessera-claim")
        if self.scheduler:
            self._spawn(self._schedule_loop, "tessera-scheduler")
        _watch_outbox_writes(self.store.engine)
        log.info("embedded routing engine %s started (%d delivery threads)", self.worker_id, self.threads)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._running.append(t)

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()  # a claimer waiting for a free thread
        deadline = time.monotonic() + timeout
        claimer = next((t for t in self._running if t.name == "tessera-claim"), None)
        if claimer is not None:  # first: it queues no more rows
            claimer.join(timeout=max(0.0, deadline - time.monotonic()))
        unclaimed: list[dict[str, Any]] = []
        while True:  # rows claimed but not started: back to the queue at once
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                unclaimed.extend(item[0])
        for _ in range(self.threads):
            self._work.put(None)
        for t in self._running:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        self._running.clear()
        if unclaimed:
            self._release(unclaimed)
        while not self._work.empty():
            self._work.get_nowait()
        self._idle = 0
        if self._pulls is not None:
            self._pulls.shutdown(wait=False, cancel_futures=True)
            self._pulls = None
        if self._file_lock is not None:
            self._file_lock.release()
        self._active.clear()
        self.deliverer.close()

    def notify(self) -> None:
        self._wake.set()

    def _standby(self) -> None:
        """Become the dispatching process: at once on PostgreSQL; on SQLite when the lock
        file is ours (checked twice a second, so a standby takes over from one that exited)."""
        while not self._stop.is_set():
            if self._file_lock is None or self._file_lock.acquire():
                self._active.set()
                self._wake.set()
                return
            self._stop.wait(0.5)

    # --- delivering ---------------------------------------------------------------------------------------

    def claim(self, limit: int, *, route_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        """Lease up to ``limit`` due rows to this worker (id order)."""
        now = utcnow()
        params = {"now": now, "n": limit, "until": now + self.lease, "owner": self.worker_id}
        stmt = self._claim
        if route_id is not None:
            stmt, params["route"] = self._claim_route, route_id
        with self.store.engine.connect().execution_options(**WRITE) as c, c.begin():
            rows = [dict(r) for r in c.execute(stmt, params).mappings()]
        rows.sort(key=lambda r: r["id"])
        return rows

    def _release(self, rows: list[dict[str, Any]]) -> None:
        """Give leased rows back, due now (this process is stopping)."""
        with self.store.engine.connect().execution_options(**WRITE) as c, c.begin():
            c.execute(update(outbox).where(outbox.c.id.in_([r["id"] for r in rows]), outbox.c.lease_owner == self.worker_id,
                                           outbox.c.state == "pending").values(next_attempt_at=utcnow(), locked_until=None, lease_owner=None))

    def run_batch(self, *, route_id: uuid.UUID | None = None, limit: int | None = None) -> tuple[int, int]:
        """Claim one batch (at most ``limit`` rows, default ``batch``) and deliver it: (rows claimed, rows delivered)."""
        rows = self.claim(limit or self.batch, route_id=route_id)
        if not rows:
            return 0, 0
        deadline = time.monotonic() + self.lease.total_seconds() * 0.75
        outcomes = self.deliverer.deliver_rows(rows, deadline=deadline)
        return len(rows), sum(1 for o in outcomes if o.kind == "delivered")

    def _claim_loop(self) -> None:
        """The process's one claimer: claims due rows (a full batch while there is a backlog)
        and hands them to the delivery threads in chunks, the rows of one record always in
        the same chunk and in id order. It claims again only when a thread is free to take
        the rows, so a lease is not held by rows waiting in this process."""
        while not self._stop.is_set():
            if not self._active.is_set():
                self._active.wait(0.5)
                continue
            with self._cond:  # a delivery thread is free and nothing is queued
                if not self._cond.wait_for(lambda: self._stop.is_set() or (self._idle > 0 and self._work.empty()), timeout=1.0):
                    continue
            if self._stop.is_set():
                break
            try:
                rows = self.claim(self.batch)
            except Exception:  # the database went away for a moment...: log, wait, go on
                log.warning("routing claim failed", exc_info=True)
                self._stop.wait(max(self.poll, 1.0))
                continue
            if rows:
                deadline = time.monotonic() + self.lease.total_seconds() * 0.75
                for chunk in _chunks(rows, self.threads):
                    self._work.put((chunk, deadline))
            if len(rows) < self.batch and self._wake.wait(self.poll):
                self._wake.clear()
                time.sleep(0.003)  # woken at COMMIT: let it finish before claiming

    def _deliver_loop(self) -> None:
        while True:
            with self._cond:
                self._idle += 1
                self._cond.notify_all()
            item = self._work.get()
            with self._cond:
                self._idle -= 1
            if item is None:
                return
            rows, deadline = item
            try:
                self.deliverer.deliver_rows(rows, deadline=deadline)
            except Exception:  # their leases run out and they come back; log and go on
                log.warning("routing delivery batch failed", exc_info=True)

    def drain(self, *, route_id: uuid.UUID | None = None, timeout: float = 60.0) -> int:
        """Deliver what is due now (every route, or one) in this thread; rows delivered."""
        deadline = time.monotonic() + timeout
        delivered = 0
        while time.monotonic() < deadline:
            claimed, n = self.run_batch(route_id=route_id)
            delivered += n
            if claimed == 0:
                break
        return delivered

    # --- pulls ---------------------------------------------------------------------------------------------

    def sync_once(self, route_id: uuid.UUID, *, progress: Callable[[PageResult], None] | None = None) -> SyncRunSummary:
        return pull(self.store, self.wiring, route_id, trigger="manual", engine=self.name, progress=progress)

    def due_routes(self) -> list[uuid.UUID]:
        """Take the pull routes due now (``next_run_at`` pushed past the pull lease), under
        the scheduler lock; empty when another process holds it."""
        now = utcnow()
        with self.store.engine.connect().execution_options(**WRITE) as c, c.begin():
            if not self.sqlite and not c.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SCHEDULER_LOCK}):
                return []
            q = select(routes.c.id).where(
                routes.c.enabled.is_(True), routes.c.mode == "pull", routes.c.schedule_seconds.is_not(None),
                routes.c.schedule_seconds > 0, (routes.c.next_run_at.is_(None)) | (routes.c.next_run_at <= now))
            ids = [rid for rid in c.scalars(q) if rid not in self._pulling]
            if ids:
                c.execute(update(routes).where(routes.c.id.in_(ids)).values(next_run_at=now + self.pull_lease))
        return ids

    def _schedule_loop(self) -> None:
        while not self._stop.is_set():
            if self._active.is_set():
                try:
                    self._pulling = {rid: f for rid, f in self._pulling.items() if not f.done()}
                    for rid in self.due_routes():
                        if self._pulls is not None:
                            self._pulling[rid] = self._pulls.submit(self._scheduled_pull, rid)
                except Exception:
                    log.warning("routing scheduler tick failed", exc_info=True)
            self._stop.wait(self.scheduler_poll)

    def _scheduled_pull(self, route_id: uuid.UUID) -> SyncRunSummary | None:
        try:
            return pull(self.store, self.wiring, route_id, trigger="schedule", engine=self.name)
        except Exception:
            log.warning("scheduled pull of route %s failed", route_id, exc_info=True)
            return None
        finally:
            with self.store.engine.connect().execution_options(**WRITE) as c, c.begin():
                every = c.scalar(select(routes.c.schedule_seconds).where(routes.c.id == route_id))
                if every:
                    c.execute(update(routes).where(routes.c.id == route_id).values(next_run_at=utcnow() + timedelta(seconds=every)))


# --- one worker process (python -m gateway.routing.dispatch) ----------------------------------------------------


def run_worker(url: str, *, stop: threading.Event | None = None, **options: Any) -> None:
    """Run the embedded engine on the database ``url`` until SIGTERM/SIGINT (or ``stop``)."""
    from ..wiring import open_store

    store = open_store(url)
    engine = EmbeddedEngine(store, _default_wiring(), **options)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    engine.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        engine.stop()
        store.dispose()


def _default_wiring() -> Wiring:
    from ..wiring import default

    return default()


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m gateway.routing.dispatch", description="one embedded routing worker")
    p.add_argument("--database-url", default=os.environ.get("TESSERA_DATABASE_URL", "sqlite:///./tessera.db"))
    p.add_argument("--worker-id")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--poll", type=float, default=0.25)
    p.add_argument("--lease", type=float, default=60.0)
    p.add_argument("--no-scheduler", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    run_worker(a.database_url, worker_id=a.worker_id, threads=a.threads, batch=a.batch, poll=a.poll, lease_seconds=a.lease,
               scheduler=not a.no_scheduler)


if __name__ == "__main__":
    main()
