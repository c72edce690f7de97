"""Alembic migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from gateway.store import Store
from gateway.store.migrate import current_revisions
from gateway.wiring import open_store


def test_migrated_schema_matches_the_table_definitions(store: Store) -> None:
    assert store.migrations.is_current(store.engine)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), store.migrations.all_metadata())
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
