"""PostgreSQL: the xAPI consumer split by learner (``TESSERA_XAPI__DERIVE_SHARDS``, ``derive_shards.Shards``).

Two consumers (two sessions, as two processes would be) share two shards: each learner's
statements are derived once, by the shard its actor falls in; a voiding statement, whoever
sends it, voids its target's evidence from the target's shard (stored before it, in the same
round, or arriving after it); everything's cursor ends at the last statement; and the states
equal a full recompute.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.xapi.derive import CURSOR, Deriver
from adapters.xapi.evidence import EvidenceMapper
from adapters.xapi.statement_store import StatementStore
from adapters.xapi.statements import complete
from adapters.xapi.tables import xapi_derive_cursor, xapi_statements
from gateway.mastery.attach import engine_of
from gateway.model import Identifier, record_id
from gateway.store import Store
from gateway.store import tables as t
from tests import factories as f

ADL = "http://adlnet.gov/expapi/verbs/"
HOME = "https://sis.example.edu"
CASE = "https://case.example/A"
AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://lrs.example", "name": "test"}}
LEARNERS = 8


def _stmt(learner: int, score: float, sid: str | None = None) -> dict[str, Any]:
    return {"id": sid or str(uuid.uuid4()), "actor": {"objectType": "Agent", "account": {"homePage": HOME, "name": f"u{learner}"}},
            "verb": {"id": ADL + "passed", "display": {"en-US": "passed"}},
            "object": {"objectType": "Activity", "id": f"https://content.example/q{learner}"},
            "result": {"score": {"scaled": score}}, "context": {"contextActivities": {"category": [{"id": CASE}]}}}


def _void(target: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "actor": {"objectType": "Agent", "mbox": "mailto:admin@example.com"},
            "verb": {"id": ADL + "voided", "display": {"en-US": "voided"}}, "object": {"objectType": "StatementRef", "id": target}}


@pytest.fixture
def pg_store(store: Store) -> Store:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("shards are for PostgreSQL (SQLite has one writer)")
    return store


def test_two_consumers_share_the_learners_and_voiding_crosses_shards(pg_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store = pg_store
    school = f.org()
    people = [f.person(f"u{i}", school, identifiers=[Identifier(system="lms", kind="xapi.account", value=f"{HOME}|u{i}")])
              for i in range(LEARNERS)]
    fw = f.framework()
    comp = f.competency("A", fw, identifiers=[Identifier(system="case", kind="case.uri", value=CASE)])
    store.records.apply(f.T, [school, *people, fw, comp])
    mapper = EvidenceMapper(store)
    one = Deriver(store, mapper, batch=7, shards=2)
    two = Deriver(store, EvidenceMapper(store), batch=7, shards=2)
    assert one.shards is not None and two.shards is not None
    for d in (one, two):
        d.notify = lambda: None  # type: ignore[method-assign]  # derived below
    lrs = StatementStore(store, mapper, deriver=one)

    def send(batch: list[dict[str, Any]]) -> None:
        lrs.save(f.T, batch, stored=complete(batch, AUTHORITY, "1.0.3"), authority="t")

    early = [_stmt(i % LEARNERS, 0.1 * (i % 10)) for i in range(24)]
    send(early)
    late_target = str(uuid.uuid4())
    # voided by an admin: one statement of an earlier request, one of the same request, one not sent yet
    same = _stmt(3, 0.95)
    send([_void(early[5]["id"]), same, _void(same["id"]), _void(late_target), *(_stmt(i, 0.5) for i in range(LEARNERS))])
    send([_stmt(6, 0.7, late_target), *(_stmt(i % LEARNERS, 0.8) for i in range(10))])
    evidence_statements = len(early) + 1 + LEARNERS + 1 + 10

    # the first takes both shards while it is alone; the second arrives, the first gives one back
    assert one.shards.elect(force=True) and len(one.shards.held) == 2
    assert not two.shards.elect(force=True)
    one.shards.elect(force=True)
    assert two.shards.elect(force=True)
    assert len(one.shards.held) == len(two.shards.held) == 1 and set(one.shards.held) != set(two.shards.held)

    written: list[uuid.UUID] = []  # evidence ids of every batch a consumer wrote
    apply = store.records.apply

    def counting(tenant: str, batch: Any, **kw: Any) -> Any:
        written.extend(batch.by_id.get("evidence", ()))
        return apply(tenant, batch, **kw)

    monkeypatch.setattr(store.records, "apply", counting)
    derived = {}

    def drain(name: str, d: Deriver) -> None:
        derived[name] = d.drain()

    threads = [threading.Thread(target=drain, args=(n, d)) for n, d in (("one", one), ("two", two))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    try:
        assert derived["one"] and derived["two"]  # both consumed
        assert len(written) == len(set(written)) == evidence_statements  # each once, by one of the two
        voided = {record_id(f.T, "evidence", "xapi", s) for s in (early[5]["id"], same["id"], late_target)}
        ev = t.evidence
        with store.engine.connect() as conn:
            rows = dict(conn.execute(select(ev.c.id, ev.c.voided).where(ev.c.tenant == f.T)).all())
            top = conn.scalar(select(func.max(xapi_statements.c.seq)))
            cursors = dict(conn.execute(select(xapi_derive_cursor.c.name, xapi_derive_cursor.c.seq)).all())
        assert len(rows) == evidence_statements
        assert {i for i, v in rows.items() if v} == voided
        assert cursors[CURSOR] == top and cursors[f"{CURSOR}/0of2"] == cursors[f"{CURSOR}/1of2"] == top
        assert engine_of(store).recompute(f.T).written == 0
        # a shard's learners are its own: every learner's statements fell in one shard
        shards = {one.shards.shard_of(f.T, {"account": {"homePage": HOME, "name": f"u{i}"}}) for i in range(LEARNERS)}
        assert shards == {0, 1}
    finally:
        one.stop()
        two.stop()
