"""An export's part processes (PostgreSQL): a large kind (``export``) or a multi-grant
export's districts (``export_many``) exported by several processes at once, all in the
export's one snapshot (``_Parts``), sharing with the exporting process only a stop flag and
their row counts, without a lock (``_Shared``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from . import export_reads as reads
from .deidentify import Deidentifier
from .export_reads import READ_SETTINGS, export_query

_SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9]+)?$")


class _Parts:
    """A large kind exported by ``workers`` processes at once, each its own part of the
    records into its own file of the kind's file set, ALL in the export's one snapshot: the
    exporting transaction exports its snapshot (``pg_export_snapshot()``) and each process's
    transaction adopts it (``SET TRANSACTION SNAPSHOT``), so the parts together hold exactly
    what one reader would have read, each record once. A part is a range of the tenant's
    ``(tenant, updated_at, id)`` index (``export_reads.spans``): each process's database
    process reads that range and the pages it points at, not every record of the tenant.
    Each process streams with bounded memory, as one does alone.

    The processes come from a fork server (clean processes that never inherit this one's
    threads or connections; the calling program's main module must be import-safe, as for
    any ``multiprocessing`` program), get the export's de-identifier (the recipient's key and
    the database's address: they look state ids up through their own connection), and are
    stopped when the export ends, however it ends: ``check`` runs here while they work, and a
    failure anywhere (a revoked grant, a full disk in one of them, a part's process killed)
    stops the others at their next batch before the export removes every file. What they
    share with this process (``_Shared``: the stop flag, each part's count of rows done) is
    plain shared memory without a lock, so a process killed at any moment leaves nothing
    held that another would wait for. Only kinds with at least ``2 * BATCH_ROWS`` records
    are split (a small export never starts a process)."""

    def __init__(self, url: str, deid: Deidentifier | None, workers: int) -> None:
        self.url, self.deid, self.workers = url, deid, workers if workers >= 2 else 0
        self.pool: Any = None
        self.snapshot: str | None = None
        self.shared: _Shared | None = None
        self.stats: dict[str, float] = {"workers": 0, "worker_cpu_s": 0.0, "worker_rss_mib": 0.0, "worker_backend_cpu_s": 0.0}

    def worth_it(self, conn: Any, tenant: str, kind: str, since: int | None, until: int) -> bool:
        if not self.workers:
            return False
        some = export_query(tenant, kind, since, until).limit(2 * reads.BATCH_ROWS).subquery()
        return bool(conn.scalar(select(func.count()).select_from(some)) >= 2 * reads.BATCH_ROWS)

    def snapshot_of(self, conn: Any) -> str:
        """The export's snapshot, exported by its transaction once (the parts adopt it)."""
        if self.snapshot is None:
            self.snapshot = str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar())
        return self.snapshot

    def run_tasks(self, conn: Any, kind: str, tasks: list[tuple[Callable[..., Any], tuple[Any, ...]]],
                  check: Callable[[], None] | None, progress: Callable[[str, int], None] | None) -> list[Any]:
        """Run at most ``workers`` tasks (a function of a part's process and its arguments: the
        k-th task counts its rows as part k) at once, ``check`` run here while they work and
        ``progress`` told of their rows; return their results in order, or raise the first
        failure (the others stopped by ``close``)."""
        from concurrent.futures import FIRST_EXCEPTION, wait

        pool, shared = self._start()
        futures = [pool.submit(fn, *args) for fn, args in tasks]
        reported = 0
        while True:
            finished, running = wait(futures, timeout=0.25, return_when=FIRST_EXCEPTION)
            if check is not None:
                check()
            if progress is not None and (now := shared.done()) > reported:
                progress(kind, now - reported)
                reported = now
            if any(f.exception() is not None for f in finished) or not running:
                break
        results = [f.result() for f in futures]  # raises the first part's failure
        if progress is not None and shared.done() > reported:
            progress(kind, shared.done() - reported)
        shared.reset()
        return results

    def _start(self) -> tuple[Any, _Shared]:
        if self.pool is None or self.shared is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("forkserver")
            # what a part's process needs, imported once in the fork server, not in each process
            ctx.set_forkserver_preload([__name__, f"{__package__}.export", "pyarrow", "pyarrow.compute", "pyarrow.parquet", "psycopg", "sqlalchemy.dialects.postgresql"])
            self.shared = _Shared(ctx, self.workers)
            self.pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_part_init,
                                            initargs=(self.deid, self.shared, os.getpid()))
        return self.pool, self.shared

    def close(self) -> None:
        if self.pool is not None:
            if self.shared is not None:
                self.shared.stop()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class _Shared:
    """What the export's part processes share with the exporting process, without a lock: a
    stop flag (set by the exporting process, read by the parts before each batch) and one
    count of rows done a part, each written by its part alone (``add``) and summed by the
    exporting process (``done``). A lock here (as ``multiprocessing.Value`` has) would be held
    for a moment at each batch, and a part's process killed in that moment would leave it held
    for ever: every other part, and the exporting process, would wait on it. Aligned 8-byte
    words are read and written whole, so a reader sees a count before or after a write."""

    def __init__(self, ctx: Any, parts: int) -> None:
        self.flag = ctx.RawValue("q", 0)
        self.counts = ctx.RawArray("q", parts)

    def stop(self) -> None:
        self.flag.value = 1

    def stopped(self) -> bool:
        return bool(self.flag.value)

    def add(self, part: int, rows: int) -> None:
        self.counts[part] += rows  # this part's own word: no other process writes it

    def done(self) -> int:
        return sum(self.counts[:])

    def reset(self) -> None:
        for k in range(len(self.counts)):
            self.counts[k] = 0


class ExportStopped(Exception):
    """A part's process was told to stop (another part failed, or the export was stopped), or
    the exporting process is gone."""


_PART: dict[str, Any] = {}
#: a part reads its range of the (tenant, updated_at, id) index, never the tenant's whole
#: bitmap (which the planner picks for a range it guesses large, then filters: every part
#: would read every page of the tenant)
_PART_READ = "SET LOCAL enable_bitmapscan = off"


def _part_init(deid: Deidentifier | None, shared: _Shared, owner: int) -> None:
    _PART.update(deid=deid, shared=shared, owner=owner)


def _gone(pid: int) -> bool:
    """Whether the process ``pid`` has ended (a signal 0 finds no such process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # there, under another user
        return False
    return False


def part_hooks(part: int) -> tuple[Callable[[], None], Callable[[str, int], None]]:
    """A part's ``check`` (raises ``ExportStopped`` once the export is stopping, or once the
    exporting process has ended without saying so: killed, its parts are children of the fork
    server, not its own, and would otherwise read and write to the end of their range for an
    export nobody finishes) and its ``progress`` (counts its rows in its own word of
    ``_Shared``), in a part's process."""
    shared: _Shared = _PART["shared"]
    owner: int = _PART["owner"]

    def check() -> None:
        if shared.stopped():
            raise ExportStopped("export stopped")
        if _gone(owner):
            raise ExportStopped(f"the exporting process {owner} has ended")

    def progress(_kind: str, rows: int) -> None:
        shared.add(part, rows)

    return check, progress


@contextmanager
def in_snapshot(url: str, snapshot: str, *settings: str) -> Iterator[tuple[Any, Callable[[], tuple[float, float, float]]]]:
    """In a part's process: the driver's connection in a read-only transaction that adopted
    the export's ``snapshot``, with ``READ_SETTINGS`` and ``settings``; and a function giving
    (this process's CPU seconds since, its peak RSS in MiB, its database process's CPU
    seconds) for ``bench/state.py``."""
    import resource
    import time

    import psycopg
    from sqlalchemy.engine import make_url

    if not _SNAPSHOT_ID.match(snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    cpu0 = time.process_time()
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as dbapi:
        dbapi.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        dbapi.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        for setting in (*READ_SETTINGS, *settings):
            dbapi.execute(setting)
        backend = dbapi.info.backend_pid

        def measured() -> tuple[float, float, float]:
            return (time.process_time() - cpu0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, process_cpu(backend))

        yield dbapi, measured
        dbapi.execute("COMMIT")


def process_cpu(pid: int) -> float:
    """CPU seconds of a process on this machine (/proc), 0 where that cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


__all__ = ["ExportStopped", "in_snapshot", "part_hooks", "process_cpu"]
