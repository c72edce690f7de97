"""Group commit (gateway/store/group_commit.py): jobs committed together, each answered alone."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import Column, Connection, MetaData, String, Table, insert, select

from gateway.errors import IntegrityError
from gateway.store.group_commit import GroupCommit

from . import factories as f

rows = Table("group_commit_probe", MetaData(), Column("id", String(64), primary_key=True))


@pytest.fixture
def people(store):
    # not one of the store's tables: made for the test and dropped after it, so that the
    # session's database still matches the migrations (test_migrations compares them)
    rows.create(store.engine, checkfirst=True)
    school = f.org()
    store.records.apply(f.T, [school])
    yield school
    rows.drop(store.engine, checkfirst=True)


def _write(name: str):
    def write(conn: Connection) -> None:
        conn.execute(insert(rows).values(id=name))

    return write


def _run_together(group: GroupCommit, jobs: list[tuple[list, object]]) -> list[BaseException | None]:
    """Submit every job from its own thread, all released at once."""
    out: list[BaseException | None] = [None] * len(jobs)
    gate = threading.Barrier(len(jobs))

    def run(i: int) -> None:
        gate.wait()
        try:
            group.submit(f.T, *jobs[i])
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def _stored_rows(store) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.scalars(select(rows.c.id)))


def test_concurrent_jobs_all_commit_with_their_own_rows(store, people) -> None:
    group = GroupCommit(store.records)
    calls = []
    apply = store.records.apply
    store.records.apply = lambda *a, **kw: calls.append(1) or apply(*a, **kw)  # type: ignore[method-assign]
    learners = [f.person(f"u{i}", people) for i in range(12)]
    first = threading.Lock()

    def held(name: str):
        """The first write to run holds its transaction until the other 11 jobs are queued
        (on a busy machine the threads may otherwise come one after another)."""
        plain = _write(name)

        def write(conn: Connection) -> None:
            if first.acquire(blocking=False):
                deadline = time.monotonic() + 10
                while len(group._queue) < 11 and time.monotonic() < deadline:
                    time.sleep(0.005)
            plain(conn)

        return write

    errors = _run_together(group, [([p], held(f"row-{i}")) for i, p in enumerate(learners)])
    assert errors == [None] * 12
    assert len(calls) < 12  # the jobs that queued behind the first were committed together
    assert store.records.count(f.T, "person") == 12
    assert _stored_rows(store) == {f"row-{i}" for i in range(12)}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL writers wait for no one write lock
def test_jobs_that_queue_while_the_leader_waits_for_the_write_lock_join_its_group(store, people) -> None:
    """The group is taken once the leader holds the write lock: here another writer holds
    it while four jobs arrive, and they commit in one transaction."""
    group = GroupCommit(store.records)
    calls = []
    apply = store.records.apply
    store.records.apply = lambda *a, **kw: calls.append(1) or apply(*a, **kw)  # type: ignore[method-assign]
    learners = [f.person(f"w{i}", people) for i in range(4)]
    errors: list[BaseException] = []

    def submit(i: int) -> None:
        try:
            group.submit(f.T, [learners[i]], _write(f"row-{i}"))
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(4)]
    with store.records.write_transaction():  # another writer holds the lock
        threads[0].start()
        deadline = time.monotonic() + 10
        while not group._leading and time.monotonic() < deadline:
            time.sleep(0.005)
        for t in threads[1:]:
            t.start()
        while len(group._queue) < 4 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(group._queue) == 4  # the leader's own job is still queued: it waits for the lock
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(calls) == 1
    assert _stored_rows(store) == {f"row-{i}" for i in range(4)}


def test_a_failing_job_fails_alone_and_leaves_nothing_of_its_own(store, people) -> None:
    """One job references an unknown learner: its evidence and its row are refused, the
    others of the same group commit."""
    group = GroupCommit(store.records)
    learners = [f.person(f"u{i}", people) for i in range(6)]
    store.records.apply(f.T, learners)
    ghost = f.person("ghost", people)  # never stored
    jobs = [([f.evidence(f"e{i}", p)], _write(f"row-{i}")) for i, p in enumerate(learners)]
    jobs.append(([f.evidence("e-ghost", ghost)], _write("row-ghost")))
    errors = _run_together(group, jobs)
    assert errors[:6] == [None] * 6
    assert isinstance(errors[6], IntegrityError)
    assert store.records.count(f.T, "evidence") == 6
    assert _stored_rows(store) == {f"row-{i}" for i in range(6)}


def test_the_same_record_in_two_jobs_is_applied_one_job_at_a_time(store, people) -> None:
    """A re-delivery racing its original: both succeed, the record is stored once."""
    group = GroupCommit(store.records)
    learner = f.person("u1", people)
    store.records.apply(f.T, [learner])
    ev = f.evidence("same", learner)
    errors = _run_together(group, [([ev], _write("a")), ([ev], _write("b"))])
    assert errors == [None, None]
    assert store.records.count(f.T, "evidence") == 1
    assert _stored_rows(store) == {"a", "b"}


def test_a_write_that_raises_rolls_its_records_back(store, people) -> None:
    group = GroupCommit(store.records)
    learner = f.person(f"u-{uuid.uuid4().hex[:6]}", people)

    def boom(conn: Connection) -> None:
        raise RuntimeError("adapter write failed")

    with pytest.raises(RuntimeError, match="adapter write failed"):
        group.submit(f.T, [learner], boom)
    assert store.records.count(f.T, "person") == 0


def test_a_leader_answers_once_its_own_job_is_committed(store, people) -> None:
    """A leader hands the lead to a job queued meanwhile instead of committing it too: its
    own request is answered while the next group is still being written."""
    group = GroupCommit(store.records)
    queued = threading.Event()
    release_b = threading.Event()
    a_returned = threading.Event()
    errors: list[BaseException] = []

    def b_write(conn: Connection) -> None:
        conn.execute(insert(rows).values(id="b"))
        release_b.wait(30)  # B's group holds its transaction until the test lets it go

    def submit_b() -> None:
        try:
            group.submit(f.T, [], b_write)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    b = threading.Thread(target=submit_b)

    def a_write(conn: Connection) -> None:
        conn.execute(insert(rows).values(id="a"))
        b.start()  # B queues while A's group is being written
        deadline = time.monotonic() + 10
        while not group._queue and time.monotonic() < deadline:
            time.sleep(0.001)
        queued.set()

    def submit_a() -> None:
        try:
            group.submit(f.T, [], a_write)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)
        a_returned.set()

    a = threading.Thread(target=submit_a)
    a.start()
    try:
        assert queued.wait(10)
        assert a_returned.wait(10), "the leader went on to commit the next group before answering its own request"
        assert "a" in _stored_rows(store)
    finally:
        release_b.set()
        a.join(30)
        b.join(30)
    assert not errors
    assert _stored_rows(store) >= {"a", "b"}


def test_a_leader_stopped_by_a_base_exception_answers_its_group_and_passes_the_lead(store, people) -> None:
    """SystemExit (or KeyboardInterrupt) raised while a leader writes is not an error of the
    jobs: the jobs of its group are answered with it, and a job queued meanwhile is still
    committed by the next leader instead of waiting for ever."""
    group = GroupCommit(store.records)
    queued = threading.Event()
    outcome: dict[str, BaseException | None] = {}

    def b_submit() -> None:
        try:
            group.submit(f.T, [], _write("b"))
            outcome["b"] = None
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["b"] = exc

    b = threading.Thread(target=b_submit)

    def a_write(conn: Connection) -> None:
        b.start()  # B queues while A's group is being written
        deadline = time.monotonic() + 10
        while not group._queue and time.monotonic() < deadline:
            time.sleep(0.001)
        queued.set()
        raise SystemExit("stopping")

    def a_submit() -> None:
        try:
            group.submit(f.T, [], a_write)
            outcome["a"] = None
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["a"] = exc

    a = threading.Thread(target=a_submit)
    a.start()
    a.join(30)
    b.join(30)
    assert queued.is_set() and not a.is_alive() and not b.is_alive()
    assert isinstance(outcome["a"], SystemExit) and outcome["b"] is None
    assert _stored_rows(store) == {"b"}
    assert not group._leading and not group._queue
