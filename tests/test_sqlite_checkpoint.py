"""SQLite's WAL is checkpointed by a thread of the process, not inside the commit that crosses
a threshold while every writer waits (``gateway.store.sqlite_writers._Checkpointer``, issue 22)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.store import sqlite_writers as db
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


def test_a_commit_leaves_the_checkpoint_to_the_thread_and_the_wal_starts_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "db.sqlite"
    woken: list[str] = []

    class Thread:  # what a commit calls, recorded: the test runs the checkpoint itself, with no thread racing it
        def __init__(self, where: str) -> None:
            self.where = where

        def committed(self) -> None:
            woken.append(self.where)

    monkeypatch.setattr(db, "checkpointer", Thread)
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == CHECKPOINT_BACKSTOP
            conn.exec_driver_sql("CREATE TABLE t (n INTEGER PRIMARY KEY, pad TEXT)")
            conn.commit()
        assert woken == []  # a transaction that only BEGINs deferred wakes nothing
        _write(engine, 400)
        assert woken == [str(path)]  # the write's commit woke its database's thread
        ckpt = db._Checkpointer(str(path))
        ckpt.checkpoint()  # what the thread does
        assert ckpt.frames > 0 and ckpt.checkpoints == 1
        frames, copied = _wal(path)
        assert frames == ckpt.frames and copied == frames  # the whole WAL is in the database
        _write(engine, 1, start=400)  # so the next writer starts the WAL over from its beginning
        frames, _ = _wal(path)
        assert 0 < frames < ckpt.frames
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 401
    finally:
        engine.dispose()


def test_a_deleted_database_is_not_created_again(tmp_path: Path) -> None:
    path = tmp_path / "gone.sqlite"
    checkpointer(str(path)).checkpoint()
    assert not path.exists()


def test_a_forked_process_starts_its_own_checkpoint_thread(tmp_path: Path) -> None:
    import os

    path = tmp_path / "fork.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE t (n INTEGER PRIMARY KEY, pad TEXT)")
            conn.commit()
        _write(engine, 10)
        assert checkpointer(str(path))._running
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: a fresh handle, whose thread is not running yet
            fresh = checkpointer(str(path))
            os.write(write, b"1" if not fresh._running and fresh.checkpoints == 0 else b"0")
            os._exit(0)
        os.close(write)
        assert os.read(read, 1) == b"1"
        os.waitpid(pid, 0)
    finally:
        engine.dispose()


def test_a_checkpoint_that_cannot_queue_fails_quietly(tmp_path: Path) -> None:
    """A checkpoint that cannot open the writer queue's file (here a folder stands in its place;
    in a benchmark, its temporary folder was removed meanwhile) raises nothing: the thread that
    runs it goes on, and the next commit wakes it again."""
    path = tmp_path / "db.sqlite"
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("PRAGMA journal_mode=WAL").fetchall()
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, pad TEXT)")
        writer.executemany("INSERT INTO t (pad) VALUES (?)", [("x" * 2000,)] * 50)
        (tmp_path / "db.sqlite-writer").mkdir()
        ckpt = db._Checkpointer(str(path))
        ckpt.checkpoint()  # the passes run; opening the queue fails
        assert ckpt.frames > 0 and ckpt.checkpoints == 0
    finally:
        writer.close()


def test_a_process_forked_while_the_checkpoint_holds_the_writer_queue_does_not_keep_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child forked while the checkpoint holds the writer queue (a OneRoster import's producer,
    ``store.streams``) inherits the queue's open file, and a flock lasts while any copy of it is
    open: the checkpoint lets go of the lock itself, not only by closing its copy, or every
    writer would wait for the child to end (and a child waiting on its parent never ends)."""
    import fcntl
    import os
    import threading

    path = tmp_path / "db.sqlite"
    writer = sqlite3.connect(path, isolation_level=None)  # kept open: the WAL stays, with frames to copy
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (n INTEGER)")
    writer.execute("INSERT INTO t VALUES (1)")
    flock, here, children = fcntl.flock, threading.get_ident(), []
    go_r, go_w = os.pipe()

    def fork_while_held(fd: int, op: int) -> None:
        flock(fd, op)
        if op == fcntl.LOCK_EX and threading.get_ident() == here and not children:
            pid = os.fork()
            if pid == 0:  # the child: holds its copy of the queue's file until told to end
                os.read(go_r, 1)
                os._exit(0)
            children.append(pid)

    monkeypatch.setattr(fcntl, "flock", fork_while_held)
    try:
        db._Checkpointer(str(path)).checkpoint()
        monkeypatch.setattr(fcntl, "flock", flock)
        assert children, "the checkpoint never queued"
        queue = os.open(f"{path}-writer", os.O_RDWR)
        try:
            flock(queue, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a writer queues at once: nobody holds the queue
        finally:
            os.close(queue)
    finally:
        os.write(go_w, b"x" * max(1, len(children)))
        for pid in children:
            os.waitpid(pid, 0)
        os.close(go_r)
        os.close(go_w)
        writer.close()


def test_a_commit_that_cannot_start_the_checkpoint_thread_still_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process out of threads (``RuntimeError: can't start new thread``) still commits: the
    write is not reported failed after it committed, and the next commit tries the thread again
    (SQLite's own checkpoint, the backstop, covers the meantime)."""
    import threading

    path = tmp_path / "db.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    started: list[str] = []
    real_start = threading.Thread.start

    def no_thread(self: threading.Thread) -> None:
        if self.name == "tessera-sqlite-checkpoint":
            started.append(self.name)
            raise RuntimeError("can't start new thread")
        real_start(self)

    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE t (n INTEGER PRIMARY KEY, pad TEXT)")
            conn.commit()
        monkeypatch.setattr(threading.Thread, "start", no_thread)
        _write(engine, 1)  # raises nothing
        _write(engine, 1, start=1)
        assert started == ["tessera-sqlite-checkpoint"] * 2  # tried again by the next commit
        monkeypatch.undo()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 2
    finally:
        engine.dispose()
