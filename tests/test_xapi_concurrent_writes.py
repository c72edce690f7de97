"""PostgreSQL: two statement batches written at once, each in its own transaction, in the two
cases that a review suspected of losing a write:

- two batches carrying different definitions of one activity (Data 2.4.4.1.s4.b3: the LRS
  updates its stored definition; here, the latest statement's definition with the language
  maps merged, ``StatementStore._merge_definitions``): the merge of neither may be lost, and
  neither batch may fail;
- a voiding statement committed while the transaction writing its target is still open
  (Data 2.3.2.s2.b3: a statement is voided if and only if the LRS holds a voiding statement that
  targets it; b5: "the LRS SHOULD NOT reject [it] on the grounds of the Object of that voiding
  Statement not being present"): the target, once committed, is voided, and so is its evidence
  (also without a race, on both backends: a target stored after its voiding statement).

Deterministic, without sleeps: the first batch is held inside its transaction by a hook on
the connection (after its upsert, or just before its commit) while the second runs; the
second either finishes or waits on a lock the first holds (seen in ``pg_stat_activity``),
and only then is the first let go.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import event, select, text

from adapters.xapi.derive import Deriver
from adapters.xapi.evidence import EvidenceMapper
from adapters.xapi.statement_store import StatementStore
from adapters.xapi.statements import complete
from adapters.xapi.tables import xapi_activities, xapi_statements
from gateway.model import Identifier, record_id
from gateway.store import Store
from gateway.store import tables as t
from tests import factories as f

ADL = "http://adlnet.gov/expapi/verbs/"
HOME = "https://sis.example.edu"
CASE = "https://case.example/A"
AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://lrs.example", "name": "test"}}
ACTIVITY = "https://content.example/quiz-1"
WAIT = 60.0  # seconds: only a broken test waits this long


@pytest.fixture
def pg_store(store: Store) -> Store:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes one transaction at a time (and one process's batches in one group commit)")
    return store


def _stmt(*, definition: dict[str, Any] | None = None, learner: str = "u1", score: float = 0.8) -> dict[str, Any]:
    obj: dict[str, Any] = {"objectType": "Activity", "id": ACTIVITY}
    if definition is not None:
        obj["definition"] = definition
    return {"id": str(uuid.uuid4()), "actor": {"objectType": "Agent", "account": {"homePage": HOME, "name": learner}},
            "verb": {"id": ADL + "passed", "display": {"en-US": "passed"}}, "object": obj,
            "result": {"score": {"scaled": score}}, "context": {"contextActivities": {"category": [{"id": CASE}]}}}


def _void(target: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "actor": {"objectType": "Agent", "mbox": "mailto:admin@example.com"},
            "verb": {"id": ADL + "voided", "display": {"en-US": "voided"}}, "object": {"objectType": "StatementRef", "id": target}}


def _save(lrs: StatementStore, batch: list[dict[str, Any]]) -> None:
    lrs.save(f.T, batch, stored=complete(batch, AUTHORITY, "1.0.3"), authority="t")


class _Held:
    """Holds the transaction of the thread that runs ``first`` at the first SQL statement
    that ``at`` picks (``"commit"``: just before its commit) until ``release``."""

    def __init__(self, store: Store, at: Callable[[str], bool] | str) -> None:
        self.store, self.at = store, at
        self.reached, self.released = threading.Event(), threading.Event()
        self.thread: threading.Thread | None = None
        self.errors: list[BaseException] = []

    def _hold(self) -> None:
        if threading.current_thread() is self.thread and not self.reached.is_set():
            self.reached.set()
            assert self.released.wait(WAIT), "never released"

    def _on_sql(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if callable(self.at) and self.at(statement):
            self._hold()

    def _on_commit(self, conn: Any) -> None:
        if self.at == "commit":
            self._hold()

    def run(self, first: Callable[[], None], second: Callable[[], None]) -> list[BaseException]:
        """``first`` in a thread, held; then ``second`` in another until it ends or waits on a
        lock; then ``first`` let go. Returns the exceptions either raised."""
        engine = self.store.engine
        event.listen(engine, "after_cursor_execute", self._on_sql)
        event.listen(engine, "commit", self._on_commit)
        try:
            self.thread = threading.Thread(target=self._guarded(first))
            self.thread.start()
            assert self.reached.wait(WAIT), "the first batch never reached its hold"
            other = threading.Thread(target=self._guarded(second))
            other.start()
            _until_ended_or_waiting(engine, other)
            self.released.set()
            self.thread.join(WAIT)
            other.join(WAIT)
            assert not self.thread.is_alive() and not other.is_alive()
        finally:
            self.released.set()
            event.remove(engine, "after_cursor_execute", self._on_sql)
            event.remove(engine, "commit", self._on_commit)
        return self.errors

    def _guarded(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported by ``run``
                self.errors.append(e)
        return run


def _until_ended_or_waiting(engine: Any, thread: threading.Thread) -> None:
    """Until ``thread`` ends or a session of this database waits on a lock the held one may
    hold: a row's (``transactionid``, ``tuple``) or an advisory lock (not, say, a table's extension)."""
    with engine.connect() as conn:
        db = conn.scalar(text("SELECT current_database()"))
        for _ in range(int(WAIT / 0.01)):
            thread.join(0.01)
            if not thread.is_alive():
                return
            waiting = conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND wait_event_type = 'Lock' "
                                       "AND wait_event IN ('transactionid', 'tuple', 'advisory')"),
                                  {"db": db})
            conn.rollback()  # a fresh snapshot for the next look
            if waiting:
                return
    raise AssertionError("the second batch neither ended nor waited on a lock")


def _definition(store: Store) -> dict[str, Any]:
    a = xapi_activities
    with store.engine.connect() as conn:
        found: dict[str, Any] = orjson.loads(conn.scalar(select(a.c.definition).where(a.c.tenant == f.T, a.c.id == ACTIVITY)) or "null")
    return found


@pytest.mark.parametrize("known", [True, False], ids=["stored-before", "new-activity"])
def test_two_batches_defining_one_activity_at_once_both_merge_into_its_definition(pg_store: Store, known: bool) -> None:
    store = pg_store
    lrs = StatementStore(store)  # one process's store: its definitions cache is shared by both requests
    if known:
        _save(lrs, [_stmt(definition={"name": {"en-US": "Quiz 1"}, "type": "http://adlnet.gov/expapi/activities/assessment"})])
    fr = _stmt(definition={"name": {"fr": "Quiz 1 (fr)"}, "description": {"fr": "un quiz"}})
    de = _stmt(definition={"name": {"de": "Quiz 1 (de)"}, "moreInfo": "https://content.example/quiz-1/about"})
    held = _Held(store, lambda sql: sql.lstrip().upper().startswith("INSERT INTO XAPI_ACTIVITIES"))
    errors = held.run(lambda: _save(lrs, [fr]), lambda: _save(lrs, [de]))
    assert errors == []  # neither batch fails (no integrity error on the activity's row)
    stored = _definition(store)
    names = {"fr": "Quiz 1 (fr)", "de": "Quiz 1 (de)", **({"en-US": "Quiz 1"} if known else {})}
    assert stored["name"] == names  # the language maps of both batches, and of what was stored before
    assert stored["description"] == {"fr": "un quiz"} and stored["moreInfo"] == "https://content.example/quiz-1/about"
    if known:
        assert stored["type"] == "http://adlnet.gov/expapi/activities/assessment"
    # a third batch repeating the first's definition leaves what both merged (the cache agrees with the row)
    _save(lrs, [_stmt(definition={"name": {"fr": "Quiz 1 (fr)"}, "description": {"fr": "un quiz"}})])
    assert _definition(store) == stored


@pytest.fixture(params=["inline", "async"])
def aligned(store: Store, request: pytest.FixtureRequest) -> Iterator[tuple[Store, StatementStore]]:
    """A learner (``u1``) and a competency the CASE category aligns: a statement makes evidence,
    in its own transaction (``inline``) or by the consumer of the statement log (``async``,
    drained by ``_voided``)."""
    school = f.org()
    learner = f.person("u1", school, identifiers=[Identifier(system="lms", kind="xapi.account", value=f"{HOME}|u1")])
    fw = f.framework()
    comp = f.competency("A", fw, identifiers=[Identifier(system="case", kind="case.uri", value=CASE)])
    store.records.apply(f.T, [school, learner, fw, comp])
    mapper = EvidenceMapper(store)
    deriver = None
    if request.param == "async":
        deriver = Deriver(store, mapper)
        deriver.notify = lambda: None  # type: ignore[method-assign]  # drained by _voided
    yield store, StatementStore(store, mapper, deriver=deriver)


def _voided(lrs: StatementStore, sid: str) -> tuple[bool, bool]:
    """(the statement's voided flag, its evidence's), everything derived"""
    if lrs.deriver is not None:
        lrs.deriver.drain()
    store, s, ev = lrs.store, xapi_statements, t.evidence
    with store.engine.connect() as conn:
        flag = conn.scalar(select(s.c.voided).where(s.c.tenant == f.T, s.c.id == uuid.UUID(sid)))
        evidence = conn.scalar(select(ev.c.voided).where(ev.c.tenant == f.T, ev.c.id == record_id(f.T, "evidence", "xapi", sid)))
    return bool(flag), bool(evidence)


@pytest.mark.parametrize("open_first", ["target", "voiding"])
def test_a_voiding_statement_committed_while_its_target_is_being_written_voids_it(
        aligned: tuple[Store, StatementStore], open_first: str) -> None:
    """``target``: the target's transaction is open (written, not committed) while the voiding
    statement is stored and committed; ``voiding``: the other way round."""
    store, lrs = aligned
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes one transaction at a time (and one process's batches in one group commit)")
    target = _stmt()
    voiding = _void(target["id"])
    first, second = (target, voiding) if open_first == "target" else (voiding, target)
    held = _Held(store, "commit")
    errors = held.run(lambda: _save(lrs, [first]), lambda: _save(lrs, [second]))
    assert errors == []
    assert _voided(lrs, target["id"]) == (True, True)  # the statement voided, and its evidence
    assert _voided(lrs, voiding["id"])[0] is False  # a voiding statement is never voided


def test_a_target_stored_after_its_voiding_statement_is_voided_with_its_evidence(aligned: tuple[Store, StatementStore]) -> None:
    """The same, one after the other (inline: the target's evidence was stored unvoided)."""
    _, lrs = aligned
    target = _stmt()
    _save(lrs, [_void(target["id"])])
    _save(lrs, [target])
    assert _voided(lrs, target["id"]) == (True, True)


def test_a_voiding_statement_and_a_learners_next_statement_queued_behind_its_target_do_not_deadlock(
        aligned: tuple[Store, StatementStore]) -> None:
    """Inline evidence: the target's transaction is open (it holds the tenant's shared lock and
    its learner's lock); a voiding statement waits for the tenant lock, exclusive; the learner's
    next statement waits for the learner's lock. When the target commits, the next statement
    gets the learner's lock and the voiding statement the tenant's: the voiding statement, now
    seeing the target's evidence, must void it (its learner's lock), and the next statement
    must go on to the tenant lock. Taken in that order, each waited for the other (PostgreSQL
    aborted one: DeadlockDetected); the tenant lock comes first in every statement transaction."""
    store, lrs = aligned
    if store.engine.dialect.name != "postgresql" or lrs.deriver is not None:
        pytest.skip("PostgreSQL with evidence made in the statements' own transaction")
    _save(lrs, [_stmt(score=0.5)])  # the learner is known, its state exists
    target, nxt = _stmt(score=0.9), _stmt(score=0.7)
    voiding = _void(target["id"])
    held = _Held(store, "commit")
    engine = store.engine
    event.listen(engine, "commit", held._on_commit)
    threads: list[threading.Thread] = []
    try:
        held.thread = threading.Thread(target=held._guarded(lambda: _save(lrs, [target])))
        held.thread.start()
        assert held.reached.wait(WAIT), "the target never reached its commit"
        for batch in ([voiding], [nxt]):
            th = threading.Thread(target=held._guarded(lambda b=batch: _save(lrs, b)))
            th.start()
            threads.append(th)
            _until_ended_or_waiting(engine, th)
            _until_waiting(engine, len(threads))
    finally:
        held.released.set()
        for th in [held.thread, *threads]:
            if th is not None:
                th.join(WAIT)
        event.remove(engine, "commit", held._on_commit)
    assert held.errors == []
    assert _voided(lrs, target["id"]) == (True, True)
    assert _voided(lrs, nxt["id"]) == (False, False)


def _until_waiting(engine: Any, n: int) -> None:
    """Until ``n`` sessions of this database wait on a lock."""
    with engine.connect() as conn:
        db = conn.scalar(text("SELECT current_database()"))
        for _ in range(int(WAIT / 0.01)):
            waiting = conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND wait_event_type = 'Lock'"),
                                  {"db": db})
            conn.rollback()
            if waiting >= n:
                return
            threading.Event().wait(0.01)
    raise AssertionError(f"fewer than {n} sessions ever waited on a lock")
