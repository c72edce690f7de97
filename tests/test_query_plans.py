"""Hot-path queries probe the index they were written for.

SQLite has no statistics unless ANALYZE runs, so its planner picks an index from the shape
of the WHERE clause alone; one redundant range (``competency_id IS NOT NULL``) was enough to
turn the mastery engine's per-transaction read into a walk over every aligned evidence item
of the tenant. These tests catch the cost regression, not just a wrong answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, event

from gateway.mastery.reads import evidence_pairs, state_rows
from gateway.store import Store
from gateway.wiring import open_store


def _plans(store: Store, run: Callable[[Connection], object]) -> list[str]:
    """The query plans of the statements ``run`` executes."""
    plans: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def explain(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if not statement.startswith("EXPLAIN"):
            rows = cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            if rows:  # (BEGIN has no plan)
                plans.append(" | ".join(r[3] for r in rows))

    with store.engine.connect() as conn:
        run(conn)
    event.remove(store.engine, "before_cursor_execute", explain)
    return plans


def _plan_of(store: Store, query: object, params: dict[str, object]) -> str:
    return _plans(store, lambda conn: conn.execute(query, params).fetchall())[-1]  # type: ignore[call-overload]


def test_incremental_mastery_reads_probe_exact_keys(tmp_path: Path) -> None:
    """The evidence of each (learner, competency) pair through the pair's prefix of its index,
    driven by the pairs (not every learner x competency combination, not a learner's rows
    whole: both grew with the evidence already stored), and the states by primary key."""
    store = open_store(f"sqlite:///{tmp_path / 'plans.db'}")
    store.migrate()
    try:
        learners, competencies = [uuid.uuid4() for _ in range(6)], [uuid.uuid4(), uuid.uuid4()]
        pairs = [(i % 2,) for i in range(len(learners))]
        (evidence,) = _plans(store, lambda conn: evidence_pairs(conn, "t", learners, pairs, competencies))
        assert "ix_evidence_tenant_learner_id_competency_id (tenant=? AND learner_id=? AND competency_id=?)" in evidence
        assert "SCAN evidence" not in evidence
        (states,) = _plans(store, lambda conn: state_rows(conn, [uuid.uuid4().int for _ in learners for _ in competencies]))
        assert "SEARCH mastery_states USING INDEX sqlite_autoindex_mastery_states_1 (id=?)" in states
        assert "SCAN mastery_states" not in states
    finally:
        store.dispose()


def test_an_ags_score_checks_membership_by_person_and_section(tmp_path: Path) -> None:
    """The line item, the user's result on record and whether the user is an active member
    of the context come in one query per score; the membership probe names the person and
    the section, not every enrollment of the section."""
    from types import SimpleNamespace

    from adapters.lti.platform.assignments_grades import LineItems

    store = open_store(f"sqlite:///{tmp_path / 'plans.db'}")
    store.migrate()
    try:
        items = LineItems(SimpleNamespace(store=store))  # type: ignore[arg-type]
        params = {"lid": uuid.uuid4(), "tenant": "t", "client_id": "c", "context_id": uuid.uuid4(), "user_id": "u",
                  "person": uuid.uuid4()}
        plan = _plan_of(store, items._target_query, params)
        assert "ix_enrollments_tenant_person_id_section_id (tenant=? AND person_id=? AND section_id=?)" in plan
    finally:
        store.dispose()


def test_statement_queries_fetch_the_statements_their_index_rows_name(tmp_path: Path) -> None:
    """GET /xapi/statements with agent, verb or activity, in both tiers of the index
    (adapters/xapi/tables.py): the statements are reached by seq from the index rows, never
    by walking every statement of the tenant (what a tenant condition on the statements
    table let the planner do: 60-80 ms a query over a million statements)."""
    from adapters.xapi.statement_query import MERGED, RECENT, Query
    from adapters.xapi.statement_store import StatementStore

    store = open_store(f"sqlite:///{tmp_path / 'plans.db'}")
    store.migrate()
    try:
        statements = StatementStore(store)
        agent = "mbox:mailto:learner@example.com"
        queries = [Query(agent=agent, verb="http://adlnet.gov/expapi/verbs/passed", limit=25),
                   Query(agent=agent, limit=25),
                   Query(verb="http://adlnet.gov/expapi/verbs/passed", limit=25, ascending=True),
                   Query(activity="http://example.com/a", related_activities=True, limit=25),
                   Query(agent=agent, activity="http://example.com/a", limit=25)]
        for q in queries:
            for tier in (MERGED, RECENT):
                plan = _plan_of(store, statements.statement("t", q, tier), {})
                assert "SEARCH xapi_statements USING INTEGER PRIMARY KEY (rowid=?)" in plan, (q, plan)
                assert "ix_xapi_statements_tenant" not in plan, (q, plan)
    finally:
        store.dispose()
