"""What a stored batch writes, column by column, on both backends: on PostgreSQL the batch
goes as JSON arrays in one INSERT of statements, ids and index rows (``adapters/xapi/
statement_pg.py``), on SQLite as rows; the same statements must give the same rows, in
the same store order, whatever characters their values hold."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import select

from adapters.xapi.derive import Deriver
from adapters.xapi.evidence import EvidenceMapper
from adapters.xapi.statement_query import MERGED, RECENT, Query
from adapters.xapi.statement_store import StatementStore
from adapters.xapi.statements import complete
from adapters.xapi.tables import xapi_statements
from adapters.xapi.validation import agent_key
from gateway.store import Store
from tests import factories as f

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://lrs.example", "name": "test"}}
# quotes, a backslash, a control character, a separator, a tab and non-ASCII: JSON escapes all but the last
ODD = 'a"b\\c\u001fd\u001ee\tf é 学'


def _stmt(name: str, activity: str, **extra: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "actor": {"objectType": "Agent", "account": {"homePage": "https://sis.example", "name": name}},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"}, "object": {"objectType": "Activity", "id": activity},
            **extra}


def _index_rows(store: Store, seq: int) -> tuple[set[tuple[str, str, str]], set[tuple[str, str]]]:
    agents: set[tuple[str, str, str]] = set()
    acts: set[tuple[str, str]] = set()
    with store.engine.connect() as conn:
        for tier in (RECENT, MERGED):
            ag, ac = tier.agents, tier.activities
            agents |= {(r.agent, r.verb_id, r.role) for r in conn.execute(select(ag.c.agent, ag.c.verb_id, ag.c.role).where(ag.c.seq == seq))}
            acts |= {(r.activity, r.role) for r in conn.execute(select(ac.c.activity, ac.c.role).where(ac.c.seq == seq))}
    return agents, acts


def test_a_batch_is_stored_row_by_row_as_sent_in_its_order(store: Store) -> None:
    mapper = EvidenceMapper(store)
    deriver = Deriver(store, mapper)
    deriver.notify = lambda: None  # type: ignore[method-assign]  # the rows as acknowledged, nothing derived
    lrs = StatementStore(store, mapper, deriver=deriver)
    registration = str(uuid.uuid4())
    first = _stmt(ODD, f"https://content.example/{ODD}",
                  context={"registration": registration, "contextActivities": {"parent": [{"id": "https://content.example/quiz"}],
                                                                              "category": [{"id": "https://case.example/A"}]}})
    second = _stmt("u2", "https://content.example/quiz/q2")
    ref: dict[str, Any] = {"id": str(uuid.uuid4()), "actor": {"objectType": "Agent", "mbox": "mailto:t@example.com"},
           "verb": {"id": "http://adlnet.gov/expapi/verbs/reviewed"}, "object": {"objectType": "StatementRef", "id": first["id"]}}
    batch = [first, second, ref]
    stored = complete(batch, AUTHORITY, "1.0.3")
    lrs.save(f.T, batch, stored=stored, authority="the-authority")
    s = xapi_statements
    with store.engine.connect() as conn:
        rows = {str(r.id): r for r in conn.execute(select(s).where(s.c.tenant == f.T))}
    assert set(rows) == {st["id"] for st in batch}
    seqs = [rows[st["id"]].seq for st in batch]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3  # store order is the batch's order
    for st in batch:
        row = rows[st["id"]]
        assert orjson.loads(row.body) == st  # the body as sent (completed), every character kept
        assert row.stored == stored and row.authority == "the-authority" and row.verb_id == st["verb"]["id"]
        assert row.voided is False and row.voiding is None and row.deferred is True and row.attachments is False
    assert rows[first["id"]].registration == uuid.UUID(registration)
    assert rows[second["id"]].registration is None
    verb = first["verb"]["id"]
    learner = agent_key(first["actor"])
    assert ODD in learner
    target_rows = (
        {("", verb, "p"), (learner, verb, "p"), (agent_key(AUTHORITY), verb, "r")},
        {(f"https://content.example/{ODD}", "p"), ("https://content.example/quiz", "r"), ("https://case.example/A", "r")},
    )
    assert _index_rows(store, rows[first["id"]].seq) == target_rows
    # a StatementRef matches the filters its target matches (Communication 2.1.3.s3): its own rows and its target's
    reviewed = ref["verb"]["id"]
    own = {("", reviewed, "p"), (agent_key(ref["actor"]), reviewed, "p"), (agent_key(AUTHORITY), reviewed, "r")}
    assert _index_rows(store, rows[ref["id"]].seq) == (own | target_rows[0], target_rows[1])
    # read back by the odd agent and activity, through the resource's query: the statement and the one
    # referring to it, newest first
    found = lrs.query(f.T, Query(agent=learner, activity=f"https://content.example/{ODD}", limit=10))
    assert [orjson.loads(body)["id"] for _, _, body in found.rows] == [ref["id"], first["id"]]


def test_a_batch_holding_a_stored_id_is_compared_not_stored_twice(store: Store) -> None:
    lrs = StatementStore(store)
    one = _stmt("u1", "https://content.example/q1")
    lrs.save(f.T, [one], stored=complete([one], AUTHORITY, "1.0.3"), authority="t")
    two = _stmt("u2", "https://content.example/q2")
    again = [dict(one), two]  # the first again, identical, with a new one
    lrs.save(f.T, again, stored=complete(again, AUTHORITY, "1.0.3"), authority="t")
    s = xapi_statements
    with store.engine.connect() as conn:
        ids = sorted(str(r.id) for r in conn.execute(select(s.c.id).where(s.c.tenant == f.T)))
    assert ids == sorted([one["id"], two["id"]])
