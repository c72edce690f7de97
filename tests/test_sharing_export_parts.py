"""The export's part processes (``export_parts._Parts``): each reads its own range of the tenant's
``(tenant, updated_at, id)`` index (``export_reads.spans``), and what they share with the
exporting process holds no lock, so a part killed at any moment blocks nobody."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select, text

from gateway.sharing import export as export_mod
from gateway.sharing import export_parts, export_reads
from gateway.sharing.deidentify import Deidentifier, Pseudonymizer, StateIds
from gateway.sharing.export import export, read_back
from gateway.store.tables import RECORD_TABLES

from .test_sharing import KEY, district


def _count_for_ever(shared: export_parts._Shared) -> None:
    while True:
        shared.add(0, 1)


def _count_once(shared: export_parts._Shared) -> None:
    shared.add(1, 5)
    if shared.stopped():
        raise SystemExit(3)


def _check_until_stopped(shared: export_parts._Shared, owner: int) -> None:
    """A part's loop of checks, as between its batches: exit 4 once told to stop."""
    export_parts._part_init(None, shared, owner)
    check, _progress = export_parts.part_hooks(0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            check()
        except export_parts.ExportStopped:
            raise SystemExit(4) from None
        time.sleep(0.01)


def test_a_part_stops_at_its_next_batch_once_the_exporting_process_is_killed():
    """Parts are children of the fork server, not of the exporting process: killed (no stop
    flag set), the exporting process must not leave them reading and writing to the end of
    their range. A part checking between batches stops once its exporting process is gone,
    and goes on while it lives."""
    ctx = multiprocessing.get_context("forkserver")
    shared = export_parts._Shared(ctx, 1)
    owner = ctx.Process(target=time.sleep, args=(600,))
    owner.start()
    part = ctx.Process(target=_check_until_stopped, args=(shared, owner.pid))
    part.start()
    try:
        time.sleep(0.5)
        assert part.is_alive() and not shared.stopped()
        os.kill(owner.pid, signal.SIGKILL)
        owner.join()
        part.join(timeout=10)
        assert part.exitcode == 4
    finally:
        for p in (owner, part):
            if p.is_alive():
                p.kill()
                p.join()


def test_a_part_killed_at_any_moment_leaves_the_others_and_the_export_free():
    """A part's process killed while it counts its rows (as often as it can: with a lock, it
    would be holding it) leaves the other parts and the exporting process to count, read the
    total and stop the parts without waiting."""
    ctx = multiprocessing.get_context("forkserver")
    shared = export_parts._Shared(ctx, 2)
    busy = ctx.Process(target=_count_for_ever, args=(shared,))
    busy.start()
    try:
        deadline = time.monotonic() + 30
        while shared.done() < 100_000 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert shared.done() >= 100_000
    finally:
        os.kill(busy.pid, signal.SIGKILL)
        busy.join()
    counted = shared.done()
    other = ctx.Process(target=_count_once, args=(shared,))
    other.start()
    other.join(timeout=30)
    assert other.exitcode == 0
    assert shared.done() == counted + 5
    shared.stop()
    last = ctx.Process(target=_count_once, args=(shared,))
    last.start()
    last.join(timeout=30)
    assert last.exitcode == 3 and shared.stopped()
    shared.reset()
    assert shared.done() == 0


def test_spans_cut_a_tenants_records_into_parts_holding_each_once(store):
    """Records written at one instant (one apply) or over time: the parts' ranges hold every
    record once between them and each part some."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("parts in several processes: PostgreSQL only")
    district(store, "d1", n=40)
    tbl = RECORD_TABLES["person"]
    with store.engine.connect() as conn:
        every = set(conn.scalars(select(tbl.c.data).where(tbl.c.tenant == "d1")))
        for parts in (2, 3):
            cut = export_reads.spans(conn, "d1", "person", parts)
            got = [list(conn.scalars(export_reads.export_query("d1", "person", None, 10**12, span=s))) for s in cut]
            assert sorted(r for g in got for r in g) == sorted(every) and len(every) == 40
            assert all(got), [len(g) for g in got]
    with store.engine.begin() as conn:  # the same records spread over an hour
        ids = list(conn.scalars(select(tbl.c.id).where(tbl.c.tenant == "d1").order_by(tbl.c.id)))
        start = datetime(2026, 1, 5, tzinfo=UTC)
        for i, rid in enumerate(ids):
            conn.execute(tbl.update().where(tbl.c.id == rid).values(updated_at=start + timedelta(minutes=90 * i / len(ids))))
    with store.engine.connect() as conn:
        cut = export_reads.spans(conn, "d1", "person", 2)
        got = [list(conn.scalars(export_reads.export_query("d1", "person", None, 10**12, span=s))) for s in cut]
        assert sorted(r for g in got for r in g) == sorted(every)
        assert 10 <= len(got[0]) <= 30


def test_an_export_whose_part_process_is_killed_fails_and_removes_every_file(store, tmp_path, monkeypatch, db_url):
    """The parts are held at their first read (a table lock asked meanwhile queues them), one
    is killed: the export fails at once, removes every file and leaves no process behind."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("parts in several processes: PostgreSQL only")
    district(store, "d1", n=12)
    deid = Deidentifier(Pseudonymizer(KEY, "state"), StateIds(store.engine, "d1"))
    monkeypatch.setattr(export_reads, "BATCH_ROWS", 2)
    monkeypatch.setenv(export_mod.EXPORT_WORKERS_ENV, "2")
    pools = []
    real_start = export_parts._Parts._start

    def start(self):
        made = real_start(self)
        pools.append(made[0])
        return made

    monkeypatch.setattr(export_parts._Parts, "_start", start)
    locker = create_engine(db_url)
    held = threading.Event()

    def lock_the_table() -> None:  # queued behind the export's own read: the parts' reads queue behind it
        with locker.connect() as conn, conn.begin():
            conn.execute(text("SET LOCAL lock_timeout = '20s'"))
            held.set()
            try:
                conn.execute(text("LOCK TABLE people IN ACCESS EXCLUSIVE MODE"))
            except Exception:  # noqa: BLE001  # the lock is given up when the test ends (timeout)
                pass

    killed: list[int] = []

    def check() -> None:
        if not held.is_set():
            threading.Thread(target=lock_the_table, daemon=True).start()
            held.wait(10)
            with store.engine.connect() as conn:
                for _ in range(100):
                    if conn.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted AND mode = 'AccessExclusiveLock'")):
                        return
                    time.sleep(0.05)
            return
        procs = pools[-1]._processes if pools else {}
        if procs and not killed:
            pid = next(iter(procs))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    t0 = time.monotonic()
    with pytest.raises(Exception) as failed:
        export(store, tmp_path / "out", tenant="d1", kinds=["person"], fmt="parquet", deidentifier=deid, check=check)
    assert time.monotonic() - t0 < 15 and killed, failed.value
    assert "terminated abruptly" in str(failed.value) or "BrokenProcessPool" in type(failed.value).__name__
    assert list((tmp_path / "out").iterdir()) == []
    with store.engine.connect() as conn:  # the lock asked is given up, the parts' connections ended
        conn.execute(text("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LOCK TABLE people%'"))
    locker.dispose()


def test_an_export_since_a_version_in_parts_holds_what_one_process_holds(store, tmp_path, monkeypatch):
    """Only the records changed since the version, each in one part: the parts' ranges and
    the change log's semi-join together."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("parts in several processes: PostgreSQL only")
    from gateway.store.changefeed import newest_safe

    records = district(store, "d1", n=20)
    with store.engine.connect() as conn:
        since = newest_safe(conn)
    people = [r for r in records if getattr(r, "kind", "") == "person"]
    store.records.apply("d1", [p.model_copy(update={"given_name": f"Changed{i}"}) for i, p in enumerate(people[:9])])
    deid = Deidentifier(Pseudonymizer(KEY, "state"), StateIds(store.engine, "d1"))
    monkeypatch.setattr(export_reads, "BATCH_ROWS", 2)
    monkeypatch.setenv(export_mod.EXPORT_WORKERS_ENV, "0")
    alone = export(store, tmp_path / "alone", tenant="d1", kinds=["person"], fmt="ndjson", since=since, deidentifier=deid)
    monkeypatch.setenv(export_mod.EXPORT_WORKERS_ENV, "2")
    split = export(store, tmp_path / "split", tenant="d1", kinds=["person"], fmt="ndjson", since=since, deidentifier=deid)
    assert [f.name for f in split.files] == ["person.part-1-of-2.ndjson", "person.part-2-of-2.ndjson"]
    rows = [r for f in split.files for r in read_back(tmp_path / "split" / f.name)]
    assert sorted(rows, key=lambda r: r["id"]) == sorted(read_back(tmp_path / "alone" / "person.ndjson"), key=lambda r: r["id"])
    assert len(rows) == 9 == alone.files[0].rows
    assert all(f.rows > 0 for f in split.files)  # the changed records' range cut, not the tenant's
