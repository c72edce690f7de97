"""Statement ids on SQLite in two tiers (adapters/xapi/tables.py, migration xapi_0006): a new
id waits in ``xapi_recent_ids`` and moves with its index rows into ``xapi_statement_ids``.
Wherever an id is, it is unique per tenant (an identical re-post changes nothing, a different
one is refused with 409: Data 2.3.1.s9), found by statementId and voidedStatementId, and voided."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.xapi import tables as t
from adapters.xapi import validation as v
from adapters.xapi.http import XapiError
from adapters.xapi.statement_store import StatementStore
from adapters.xapi.statements import complete
from gateway.wiring import open_store

TENANT, OTHER = "district-a", "district-b"
AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://lrs.example.org", "name": "ids"}}
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def _sid(k: int) -> str:
    """Statement k's id: its first byte spread over the id space (a merge step moves a range of it)."""
    return str(uuid.UUID(int=(k * 37 % 256) << 120 | (k + 1)))


def _k(sid: str) -> int:
    return (uuid.UUID(sid).int & ((1 << 120) - 1)) - 1


def _statement(k: int, verb: str = "http://adlnet.gov/expapi/verbs/passed") -> dict:
    return {"id": _sid(k), "actor": {"mbox": f"mailto:learner{k % 3}@example.com"},
            "verb": {"id": verb}, "object": {"id": f"http://example.com/activities/a{k % 4}"}}


def _save(store: StatementStore, raw: list[dict], tenant: str = TENANT) -> None:
    batch = v.statements([dict(s) for s in raw], "1.0.3")
    store.save(tenant, batch, stored=complete(batch, AUTHORITY, "1.0.3"), authority=v.agent_key(AUTHORITY))


def _tiers(store: StatementStore) -> tuple[set[str], set[str]]:
    with store.engine.connect() as conn:
        merged = {str(i) for i in conn.execute(select(t.xapi_statement_ids.c.id)).scalars()}
        recent = {str(i) for i in conn.execute(select(t.xapi_recent_ids.c.id)).scalars()}
    return merged, recent


def _count(store: StatementStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.xapi_statements)).scalar_one())


@pytest.fixture
def store(_sqlite_template: Path, tmp_path: Path):
    path = tmp_path / "ids.db"
    shutil.copy(_sqlite_template, path)
    made = StatementStore(open_store(f"sqlite:///{path}"), merge_every=8)  # steps of 2
    yield made
    made.store.dispose()


def test_ids_move_with_their_index_rows_and_stay_unique_in_either_tier(store: StatementStore) -> None:
    for k in range(0, 30, 3):
        _save(store, [_statement(k), _statement(k + 1), _statement(k + 2)])
        merged, recent = _tiers(store)
        assert not merged & recent and len(merged | recent) == k + 3  # each id in one tier, once
        with store.engine.connect() as conn:  # the merged ids keep their statement's seq and stored
            assert conn.execute(select(func.count()).select_from(t.xapi_statement_ids.join(
                t.xapi_statements, (t.xapi_statements.c.seq == t.xapi_statement_ids.c.seq)
                & (t.xapi_statements.c.id == t.xapi_statement_ids.c.id)
                & (t.xapi_statements.c.stored == t.xapi_statement_ids.c.stored)))).scalar_one() == len(merged)
    merged, recent = _tiers(store)
    assert merged and recent
    old, new = sorted(merged)[0], sorted(recent)[0]
    for sid in (old, new):
        assert store.get(TENANT, sid, voided=False) is not None
        assert store.get(OTHER, sid, voided=False) is None
    # identical re-posts of ids in either tier, with a new statement: only the new one is stored
    k_old, k_new = _k(old), _k(new)
    _save(store, [_statement(k_old), _statement(100), _statement(k_new)])
    assert _count(store) == 31
    # a different statement under a stored id, in either tier: 409, nothing of the batch stored
    for k in (k_old, k_new):
        changed = {**_statement(k), "verb": {"id": "http://adlnet.gov/expapi/verbs/failed"}}
        with pytest.raises(XapiError) as err:
            _save(store, [_statement(101), changed])
        assert err.value.status == 409
    assert _count(store) == 31
    # the same id twice in one batch is refused as before (the recent tier's key)
    with pytest.raises(XapiError):
        _save(store, [_statement(102), {**_statement(102), "verb": {"id": "http://adlnet.gov/expapi/verbs/failed"}}])
    # another tenant may use the same ids
    _save(store, [_statement(k_old), _statement(k_new)], tenant=OTHER)
    assert _count(store) == 33


def test_a_statement_whose_id_is_merged_is_voided_and_found_by_voided_statement_id(store: StatementStore) -> None:
    _save(store, [_statement(k) for k in range(20)])
    merged, _ = _tiers(store)
    target = sorted(merged)[0]
    voider = {"id": str(uuid.UUID(int=999)), "actor": {"mbox": "mailto:admin@example.com"}, "verb": {"id": VOIDED},
              "object": {"objectType": "StatementRef", "id": target}}
    _save(store, [voider])
    assert store.get(TENANT, target, voided=False) is None
    assert store.get(TENANT, target, voided=True) is not None
    # a statement stored after its voiding statement is stored voided (Data 2.3.2.s2.b3)
    late = str(uuid.UUID(int=5000))
    _save(store, [{**voider, "id": str(uuid.UUID(int=998)), "object": {"objectType": "StatementRef", "id": late}}])
    _save(store, [{**_statement(4999), "id": late}])
    assert store.get(TENANT, late, voided=True) is not None


def test_migration_moves_the_ids_of_an_existing_store(store: StatementStore) -> None:
    """A store written before xapi_0006 (its ids in the unique index on the statements) upgrades
    to ids in xapi_statement_ids: found, and still unique."""
    _save(store, [_statement(k) for k in range(12)])
    migrations = store.store.migrations
    migrations.downgrade(store.engine, "xapi_0005")
    with store.engine.connect() as conn:
        indexes = {r[1] for r in conn.exec_driver_sql("PRAGMA index_list(xapi_statements)")}
        assert "ix_xapi_statements_tenant_id" in indexes
        assert conn.execute(select(func.count()).select_from(t.xapi_statement_ids)).scalar_one() == 0
    store.store.migrate()
    merged, recent = _tiers(store)
    assert len(merged) == 12 and not recent
    with store.engine.connect() as conn:
        indexes = {r[1] for r in conn.exec_driver_sql("PRAGMA index_list(xapi_statements)")}
    assert "ix_xapi_statements_tenant_id" not in indexes
    assert store.get(TENANT, _sid(4), voided=False) is not None
    with pytest.raises(XapiError) as err:
        _save(store, [{**_statement(4), "verb": {"id": "http://adlnet.gov/expapi/verbs/failed"}}])
    assert err.value.status == 409
    _save(store, [_statement(4), _statement(12)])
    assert _count(store) == 13
