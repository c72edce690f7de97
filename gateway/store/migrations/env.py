"""Alembic environment: runs against the engine handed over in ``config.attributes``."""

from __future__ import annotations

from alembic import context

config = context.config


def _core_metadata() -> list:
    """Plain `alembic` CLI use: the gateway's own tables only."""
    from gateway.store.migrate import Migrations

    return Migrations().all_metadata()


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:  # plain `alembic` CLI use: build one from the gateway's settings
        from gateway.config import get_settings
        from gateway.store.db import make_engine

        engine = make_engine(get_settings().database_url)
    from gateway.store.partitions import include_object

    with engine.connect() as connection:
        context.configure(
            include_object=include_object,
            connection=connection,
            target_metadata=config.attributes.get("metadata") or _core_metadata(),
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `tessera migrate`")
run_migrations_online()
