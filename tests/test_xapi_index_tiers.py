"""The two tiers of the statement index on SQLite (adapters/xapi/tables.py): index rows of new
statements wait in the recent tier and are merged in bulk. Whatever the merge interval, every
filter of Communication 2.1.3 must return the same statements in the same order, page by
page in both directions, as a store that merges after every write and one that never does."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from adapters.xapi import tables as t
from adapters.xapi import validation as v
from adapters.xapi.statement_query import Query
from adapters.xapi.statement_store import StatementStore
from adapters.xapi.statements import complete
from gateway.wiring import open_store

TENANT = "district-a"
AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://lrs.example.org", "name": "tiers"}}
AGENTS = [{"mbox": f"mailto:learner{i}@example.com"} for i in range(3)]
VERBS = ["http://adlnet.gov/expapi/verbs/passed", "http://adlnet.gov/expapi/verbs/experienced"]
ACTIVITIES = [f"http://example.com/activities/a{i}" for i in range(4)]
PARENTS = ["http://example.com/courses/c0", "http://example.com/courses/c1"]


def _statements(n: int) -> list[dict]:
    out = []
    for k in range(n):
        obj = ({"objectType": "Agent", **AGENTS[(k + 1) % 3]} if k % 7 == 3
               else {"id": ACTIVITIES[k % 4], "definition": {"name": {"en-US": f"Activity {k % 4}"}}})
        ctx: dict[str, Any] = {"contextActivities": {"parent": [{"id": PARENTS[k % 2]}]}}
        if k % 5 == 0:
            ctx["instructor"] = AGENTS[(k + 2) % 3]
        out.append({"id": str(uuid.UUID(int=k + 1)), "actor": AGENTS[k % 3], "verb": {"id": VERBS[k % 2]}, "object": obj, "context": ctx})
    return out


#: stores with tiny generations of the merged tier (``tables.GEN_BITS``): merged every 7
#: statements into generations of 2, every 12 into generations of 4 (a query crosses 16-31)
TINY_GENS = {-7: (7, 1), -12: (12, 2)}


@pytest.fixture
def stores(_sqlite_template: Path, tmp_path: Path) -> Iterator[dict[int, StatementStore]]:
    """The same 61 statements, in batches of 1 to 9, in six stores: merged after every
    write, merged every 7 and every 12 statements (in steps of 1 and 3 statements), never merged,
    and merged every 7 and 12 into tiny generations (``TINY_GENS``, keys -7 and -12)."""
    made: dict[int, StatementStore] = {}
    for every in (1, 7, 12, 10**9, *TINY_GENS):
        path = tmp_path / f"every-{every}.db"
        shutil.copy(_sqlite_template, path)
        merge_every, bits = TINY_GENS.get(every, (every, t.GEN_BITS))
        made[every] = StatementStore(open_store(f"sqlite:///{path}"), merge_every=merge_every, gen_bits=bits)
    pending = _statements(61)
    size = 1
    while pending:
        raw, pending = pending[:size], pending[size:]
        for store in made.values():
            batch = v.statements([dict(s) for s in raw], "1.0.3")
            stored = complete(batch, AUTHORITY, "1.0.3")
            store.save(TENANT, batch, stored=stored, authority=v.agent_key(AUTHORITY))
        size = size % 9 + 1
    yield made
    for store in made.values():
        store.store.dispose()


def _tier_sizes(store: StatementStore) -> tuple[int, int]:
    with store.engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(t.xapi_statement_agents)).scalar_one(),
                conn.execute(select(func.count()).select_from(t.xapi_recent_agents)).scalar_one())


def _all_pages(store: StatementStore, **filters: object) -> list[str]:
    """Every statement the query matches, following ``more`` three at a time."""
    ids: list[str] = []
    after = None
    while True:
        page = store.query(TENANT, Query(limit=3, after=after, **filters))  # type: ignore[arg-type]
        ids += [_id(body) for _, _, body in page.rows]
        if page.more is None:
            return ids
        after = page.more


def _id(body: str) -> str:
    return orjson.loads(body)["id"]


def test_the_split_store_has_rows_in_both_tiers_and_the_others_in_one(stores) -> None:
    merged, recent = _tier_sizes(stores[7])
    assert merged > 0 and recent > 0
    assert _tier_sizes(stores[1])[1] == 0
    assert _tier_sizes(stores[10**9])[0] == 0


FILTERS: list[dict[str, Any]] = [
    {"agent": v.agent_key(AGENTS[0])},
    {"agent": v.agent_key(AGENTS[1]), "related_agents": True},
    {"verb": VERBS[0]},
    {"agent": v.agent_key(AGENTS[2]), "verb": VERBS[1]},
    {"activity": ACTIVITIES[1]},
    {"activity": PARENTS[0], "related_activities": True},
    {"agent": v.agent_key(AGENTS[0]), "activity": ACTIVITIES[0]},
    {"verb": VERBS[1], "activity": PARENTS[1], "related_activities": True},
    {},
]


@pytest.mark.parametrize("ascending", [False, True])
@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: "+".join(f) or "none")
def test_every_filter_pages_the_same_whatever_the_merge_interval(stores, filters, ascending) -> None:
    found = {every: _all_pages(store, ascending=ascending, **filters) for every, store in stores.items()}
    assert found[1], "the filter should match some statements"
    assert found[7] == found[1] == found[12] == found[10**9] == found[-7] == found[-12]
    assert len(set(found[7])) == len(found[7])


def test_a_verb_filter_returns_exactly_its_statements_newest_first(stores) -> None:
    """Against the statements themselves: every second one has VERBS[0]."""
    everything = _all_pages(stores[7])  # no filter: the statements table alone, newest first
    assert len(everything) == 61
    expected = [sid for k, sid in enumerate(reversed(everything)) if k % 2 == 0][::-1]
    assert _all_pages(stores[7], verb=VERBS[0]) == expected


def test_the_agents_resource_reads_both_tiers(stores) -> None:
    key = v.agent_key(AGENTS[0])
    bodies = {every: [_id(b) for b in store.agent_statements(TENANT, key, limit=10)] for every, store in stores.items()}
    assert len(bodies[7]) == 10
    assert bodies[7] == bodies[1] == bodies[12] == bodies[10**9] == bodies[-7] == bodies[-12]


def test_tiny_generations_are_listed_and_each_row_is_in_its_own(stores) -> None:
    """The merged rows of a store with generations of 2 and 4 statements: each row's ``gen`` is
    its seq's, and ``xapi_index_gens`` lists exactly the generations the merged rows fill."""
    for key, (_, bits) in TINY_GENS.items():
        with stores[key].engine.connect() as conn:
            for table in (t.xapi_statement_agents, t.xapi_statement_activities):
                assert conn.execute(select(func.count()).where(table.c.gen != table.c.seq.op(">>")(bits))).scalar_one() == 0
            listed = set(conn.execute(select(t.xapi_index_gens.c.gen)).scalars())
            filled = set(conn.execute(select(t.xapi_statement_agents.c.gen).distinct()).scalars())
        assert listed == filled and len(listed) >= 61 // 2**bits - 2


@pytest.mark.parametrize("gen_bits", [t.GEN_BITS, 1])
def test_a_due_merge_moves_the_oldest_statements_in_steps_and_keeps_the_tiers_split_by_seq(_sqlite_template: Path,
                                                                                             tmp_path: Path, gen_bits: int) -> None:
    """Merged every 12 statements in steps of 3: once the recent tier spans 12 statements, each
    write moves the index rows of the oldest 3 (at least as many as it added) until the tier is
    drained; after every write each statement's rows are in exactly one tier, every seq of the
    recent tier is above every seq of the merged one, and the recent tier never spans much more
    than 12 statements."""
    path = tmp_path / "steps.db"
    shutil.copy(_sqlite_template, path)
    store = StatementStore(open_store(f"sqlite:///{path}"), merge_every=12, gen_bits=gen_bits)
    assert store.merge_slice == 3
    pending, size, seen_steps = _statements(80), 1, 0
    verb_rows = (t.xapi_statement_agents.c.agent == "", t.xapi_recent_agents.c.agent == "")
    try:
        while pending:
            raw, pending = pending[:size], pending[size:]
            batch = v.statements([dict(s) for s in raw], "1.0.3")
            merged_before = _tier_sizes(store)[0]
            store.save(TENANT, batch, stored=complete(batch, AUTHORITY, "1.0.3"), authority=v.agent_key(AUTHORITY))
            size = size % 4 + 1
            with store.engine.connect() as conn:
                top_merged = conn.execute(select(func.max(t.xapi_statement_agents.c.seq))).scalar()
                low_recent, high_recent = conn.execute(select(func.min(t.xapi_recent_agents.c.seq),
                                                              func.max(t.xapi_recent_agents.c.seq))).one()
                statements = conn.execute(select(func.count()).select_from(t.xapi_statements)).scalar_one()
                verb_merged = conn.execute(select(func.count()).where(verb_rows[0])).scalar_one()
                verb_recent = conn.execute(select(func.count()).where(verb_rows[1])).scalar_one()
            assert verb_merged + verb_recent == statements  # each statement's verb row in one tier, once
            if top_merged is not None and low_recent is not None:
                assert top_merged < low_recent
            if low_recent is not None:
                assert high_recent - low_recent + 1 < 12 + 4  # at most one batch past the threshold
            if _tier_sizes(store)[0] > merged_before:
                seen_steps += 1
        assert seen_steps > 80 // 12  # more steps than whole merges would have been
        for filters in FILTERS:
            assert _all_pages(store, **filters) == _all_pages(store, **filters, ascending=True)[::-1]
    finally:
        store.store.dispose()


def test_migration_keys_the_merged_rows_of_an_existing_store_by_generation(_sqlite_template: Path, tmp_path: Path) -> None:
    """xapi_0007 on a store written before it (its merged rows keyed without a generation), whose
    statements span two generations of ``tables.GEN_BITS`` (a statement of another tenant took the
    seqs below): every filter answers as before, page by page both ways, each merged row is in its
    seq's generation, those are listed; a downgrade to xapi_0006 and an upgrade again, too."""
    path = tmp_path / "migrated.db"
    shutil.copy(_sqlite_template, path)
    store = StatementStore(open_store(f"sqlite:///{path}"), merge_every=7)
    first = (1 << t.GEN_BITS) - 30
    with store.engine.begin() as conn:  # the first seqs: another tenant's statement
        conn.execute(t.xapi_statements.insert().values(
            seq=first - 1, tenant="other", id=uuid.uuid4(), stored=complete([], AUTHORITY, "1.0.3"), verb_id=VERBS[0],
            voided=False, authority="x", attachments=False, body="{}"))
    pending, size = _statements(61), 1
    while pending:
        raw, pending = pending[:size], pending[size:]
        batch = v.statements([dict(s) for s in raw], "1.0.3")
        store.save(TENANT, batch, stored=complete(batch, AUTHORITY, "1.0.3"), authority=v.agent_key(AUTHORITY))
        size = size % 9 + 1
    before = {(i, asc): _all_pages(store, ascending=asc, **f) for i, f in enumerate(FILTERS) for asc in (False, True)}
    migrations = store.store.migrations
    try:
        for _ in range(2):
            migrations.downgrade(store.engine, "xapi_0006")
            with store.engine.connect() as conn:
                key = [r[1] for r in sorted(conn.exec_driver_sql("PRAGMA table_info(xapi_statement_agents)"), key=lambda r: r[5]) if r[5]]
                assert key == ["tenant", "agent", "verb_id", "seq", "role"]
                assert "xapi_index_gens" not in {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
            store.store.migrate()
            with store.engine.connect() as conn:
                for table in (t.xapi_statement_agents, t.xapi_statement_activities):
                    gens = conn.execute(select(table.c.gen, func.min(table.c.seq), func.max(table.c.seq)).group_by(table.c.gen)).all()
                    assert [g for g, _, _ in gens] == [0, 1]
                    assert all(lo >> t.GEN_BITS == g == hi >> t.GEN_BITS for g, lo, hi in gens)
                assert list(conn.execute(select(t.xapi_index_gens.c.gen).order_by(t.xapi_index_gens.c.gen)).scalars()) == [0, 1]
            after = {(i, asc): _all_pages(store, ascending=asc, **f) for i, f in enumerate(FILTERS) for asc in (False, True)}
            assert after == before
    finally:
        store.store.dispose()
