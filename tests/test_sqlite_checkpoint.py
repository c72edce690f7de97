"""SQLite's WAL is checkpointed by a thread of the process, not inside the commit that crosses
a threshold while every writer waits (``gateway.store.db._Checkpointer``, issue 22)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text

from gateway.store.db import CHECKPOINT_BACKSTOP, WRITE, checkpointer, make_engine


def _wal(path: Path) -> tuple[int, int]:
    """(frames in the WAL, frames of them copied into the database), as a PASSIVE checkpoint reports
    them (nothing else writes meanwhile, so it has nothing left to copy after ``checkpoint``)."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1:]
    finally:
        conn.close()


def _write(engine, rows: int, start: int = 0) -> None:
    with engine.connect().execution_options(**WRITE) as conn, conn.begin():
        conn.execute(text("INSERT INTO t (n, pad) VALUES (:n, :pad)"), [{"n": start + i, "pad": "x" * 2000} for i in range(rows)])


def test_a_commit_leaves_the_checkpoint_to_the_thread_and_the_wal_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == CHECKPOINT_BACKSTOP
            conn.exec_driver_sql("CREATE TABLE t (n INTEGER PRIMARY KEY, pad TEXT)")
            conn.commit()
        ckpt = checkpointer(str(path))
        _write(engine, 400)
        assert ckpt._running  # the commit woke the thread (it ends by itself once idle)
        ckpt.checkpoint()  # what the thread does, here in the test's thread
        frames, copied = _wal(path)
        assert frames > 0 and copied == frames  # the whole WAL is in the database
        before = frames
        _write(engine, 1, start=400)  # the next writer starts the WAL over from its beginning
        frames, _ = _wal(path)
        assert 0 < frames < before
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 401
    finally:
        engine.dispose()


def test_a_deleted_database_is_not_created_again(tmp_path: Path) -> None:
    path = tmp_path / "gone.sqlite"
    checkpointer(str(path)).checkpoint()
    assert not path.exists()
