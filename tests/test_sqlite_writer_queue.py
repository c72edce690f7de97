"""The SQLite writer queue's deadline (gateway/store/sqlite_writers.py ``_WriterQueueConnection``,
issue 22): a write transaction waits for the queue's lock file at most the connection's busy
timeout, as it waited for SQLite's own lock before the queue, and then fails with a clear error
instead of waiting for a stuck writer for ever."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc, text

from gateway.store.db import WRITE
from gateway.wiring import open_store


def _begin_write(store: Any, busy_ms: int) -> Any:
    conn = store.engine.connect().execution_options(**WRITE)
    conn.connection.dbapi_connection.execute(f"PRAGMA busy_timeout={busy_ms}")
    return conn


def test_a_writer_queued_behind_a_stuck_one_fails_after_the_busy_timeout_and_leaves_the_queue_free(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'stuck.db'}")
    store.migrate()
    queue_file = f"{tmp_path / 'stuck.db'}-writer"
    stuck = os.open(queue_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(stuck, fcntl.LOCK_EX)  # a writer (of any process) that never lets go
        conn = _begin_write(store, 300)
        t0 = time.monotonic()
        with pytest.raises(exc.OperationalError, match="database is locked") as raised:
            conn.begin()
        waited = time.monotonic() - t0
        assert 0.29 <= waited < 5
        assert "writer queue" in str(raised.value) and queue_file in str(raised.value)
        conn.close()

        # a second writer meets the same deadline (nothing of the first wait is held for it)
        again = _begin_write(store, 200)
        with pytest.raises(exc.OperationalError, match="database is locked"):
            again.begin()
        again.close()

        # once the stuck writer lets go, the abandoned waits let the lock go too: the next
        # writer goes in at once, and after its commit nobody holds the queue
        fcntl.flock(stuck, fcntl.LOCK_UN)
        writer = _begin_write(store, 5000)
        t0 = time.monotonic()
        with writer.begin():
            writer.execute(text("SELECT 1"))
        assert time.monotonic() - t0 < 2
        writer.close()
        deadline = time.monotonic() + 5
        while True:  # the waiting threads may still be letting go: at most a moment
            try:
                fcntl.flock(stuck, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "an abandoned wait kept the writer queue"
                time.sleep(0.01)
        fcntl.flock(stuck, fcntl.LOCK_UN)
    finally:
        os.close(stuck)
        store.dispose()


def test_a_writer_that_waits_within_the_busy_timeout_goes_on_when_the_holder_commits(tmp_path: Path) -> None:
    """Contended, not stuck: the wait ends the moment the holder commits, well inside the deadline."""
    store = open_store(f"sqlite:///{tmp_path / 'busy.db'}")
    store.migrate()
    try:
        waited: list[float] = []
        failed: list[BaseException] = []

        def second() -> None:
            t0 = time.monotonic()
            try:
                with _begin_write(store, 10_000) as conn, conn.begin():
                    waited.append(time.monotonic() - t0)
            except BaseException as e:  # reported below
                failed.append(e)

        with _begin_write(store, 10_000) as first, first.begin():
            first.execute(text("SELECT 1"))
            other = threading.Thread(target=second)
            other.start()
            time.sleep(0.3)
            assert waited == []
        other.join(10)
        assert not failed
        assert len(waited) == 1 and 0.3 <= waited[0] < 5
    finally:
        store.dispose()


def test_an_error_of_flock_itself_reaches_the_waiting_writer_at_once(tmp_path: Path) -> None:
    """The thread that waits in ``flock`` for a writer hands an error of ``flock`` (not a timeout)
    back to it at once, and leaves the file to its connection."""
    from gateway.store.sqlite_writers import _FLOCKS, _QueueWait

    path = tmp_path / "lockfile"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)  # a closed descriptor: flock fails with EBADF
    wait = _QueueWait(fd)
    _FLOCKS.run(wait.block)
    t0 = time.monotonic()
    with pytest.raises(OSError):
        wait.wait(10)
    assert time.monotonic() - t0 < 5
