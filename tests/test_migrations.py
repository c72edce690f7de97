"""Alembic migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from gateway.store import Store
from gateway.store.migrate import current_revisions
from gateway.store.partitions import include_object
from gateway.wiring import open_store


def test_migrated_schema_matches_the_table_definitions(store: Store) -> None:
    assert store.migrations.is_current(store.engine)
    with store.engine.connect() as conn:
        opts = {"compare_type": True, "include_object": include_object}  # monthly partitions are not tables of their own
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), store.migrations.all_metadata())
    assert diff == [], f"migrations and the declared tables (gateway/store/tables.py and adapters') disagree: {diff}"


def test_downgrade_to_base_and_upgrade_again(store: Store) -> None:
    store.migrations.downgrade(store.engine, "base")
    assert current_revisions(store.engine) == set()
    assert "people" not in inspect(store.engine).get_table_names()
    store.migrate()
    assert current_revisions(store.engine) == store.migrations.head_revisions()
    declared = {name for meta in store.migrations.all_metadata() for name in meta.tables}
    assert declared <= set(inspect(store.engine).get_table_names())


def test_a_fresh_sqlite_database_is_wal_with_foreign_keys(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    assert store.ping() is False  # reachable, but not migrated: /readyz answers 503
    store.migrate()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert store.ping()
    store.dispose()


def test_0007_stored_decaying_average_rules_become_weighted_average(store: Store) -> None:
    from sqlalchemy import select

    from gateway.model import EvidenceKind, MasteryMethod, MasteryRule
    from gateway.store import tables as t

    from . import factories as f

    fw = f.framework("state")
    plain = MasteryRule(tenant=f.T, source="admin", native_id="plain", name="d", method=MasteryMethod.decaying_average, decay_weight=0.7)
    weighted = MasteryRule(tenant=f.T, source="admin", native_id="kinds", name="d2", method=MasteryMethod.decaying_average, decay_weight=0.4,
                           framework_id=fw.id, kind_weights={EvidenceKind.completion: 0.5}, extensions={"x": {"method": "decaying_average"}})
    other = MasteryRule(tenant=f.T, source="admin", native_id="mean", name="m", method=MasteryMethod.mean, competency_id=f.competency("A", fw).id)
    store.records.apply(f.T, [fw, f.competency("A", fw), plain, weighted, other])
    store.migrations.downgrade(store.engine, "0006")  # nothing is weighted_average yet: the rules stay as written before 0007
    store.migrate()
    for rule in (plain, weighted):
        now = store.records.get(f.T, "mastery_rule", rule.id)
        assert now.method is MasteryMethod.weighted_average and now.decay_weight == rule.decay_weight
        assert now.extensions == rule.extensions  # only the rule's own method changed
        # the hash is the store's: writing the same rule again changes nothing
        assert store.records.apply(f.T, [rule.model_copy(update={"method": MasteryMethod.weighted_average})]).updated == 0
    assert store.records.get(f.T, "mastery_rule", other.id).method is MasteryMethod.mean
    with store.engine.connect() as conn:
        ops = conn.execute(select(t.changes.c.record_id, t.changes.c.op).where(t.changes.c.record_kind == "mastery_rule")).all()
    assert ops.count((plain.id, "updated")) == 1 and (other.id, "updated") not in ops
    store.migrations.downgrade(store.engine, "0006")
    with store.engine.connect() as conn:
        data = dict(conn.execute(select(t.mastery_rules.c.id, t.mastery_rules.c.data)).all())
    assert '"method":"decaying_average"' in data[plain.id] and '"method":"mean"' in data[other.id]
    store.migrate()
