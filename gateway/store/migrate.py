"""Alembic, driven from code: ``tessera migrate`` and the readiness check use it.

The gateway's migration scripts live in ``gateway/store/migrations`` inside the package,
so an installed gateway can migrate its database without an alembic.ini in the working
folder.

Adapters that keep tables of their own (an LRS's statements, LTI registrations) ship their
migrations as an Alembic *branch* of their own: the adapter class names its folder in
``migrations`` and its tables in ``metadata`` (a ``MetaData`` built with
``gateway.store.tables.NAMING``). The branch's first revision has ``down_revision = None``,
``branch_labels = (<adapter name>,)`` and ``depends_on = "0001"`` (the gateway's base, which
creates ``tenants``). Every adapter found in the registry takes part, so a third-party
adapter migrates with ``tessera migrate`` like a built-in one, and no adapter's revisions
have to be numbered against another's. Upgrades go to ``heads``: every branch's head.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@cache
def _adapter_parts() -> tuple[tuple[Path, ...], tuple[MetaData, ...]]:
    from adapters.base import discover  # the registry; gateway never imports an adapter by name

    folders: list[Path] = []
    tables: list[MetaData] = []
    for adapter in discover():
        folder = getattr(adapter, "migrations", None)
        if folder is not None:
            folders.append(Path(folder))
        meta = getattr(adapter, "metadata", None)
        if meta is not None:
            tables.append(meta)
    return tuple(folders), tuple(tables)


def version_locations() -> list[Path]:
    return [MIGRATIONS / "versions", *_adapter_parts()[0]]


def all_metadata() -> list[MetaData]:
    """The gateway's tables and every adapter's: what the migrated schema must equal."""
    from .tables import metadata

    return [metadata, *_adapter_parts()[1]]


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(str(p) for p in version_locations()))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "heads") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def head_revisions() -> set[str]:
    """What ``alembic_version`` holds once every branch is upgraded: every branch's head,
    except a head that another head depends on (``depends_on``, e.g. an adapter revision
    that moves its rows into a newer gateway table): Alembic records only the dependent."""
    script = ScriptDirectory.from_config(alembic_config())
    heads = set(script.get_heads())
    below = {r.revision for h in heads for r in script.iterate_revisions(h, "base") if r.revision != h}
    return heads - below


def current_revisions(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def is_current(engine: Engine) -> bool:
    return current_revisions(engine) == head_revisions()
