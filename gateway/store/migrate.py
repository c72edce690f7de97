"""Alembic, driven from code: ``tessera migrate`` and the readiness check use it.

The gateway's migration scripts live in ``gateway/store/migrations`` inside the package,
so an installed gateway can migrate its database without an alembic.ini in the working
folder.

Tables kept by anything else (an adapter's LRS statements, LTI registrations) come as an
Alembic *branch* of their own: a ``Branch`` names its folder of revisions and its tables (a
``MetaData`` built with ``gateway.store.types.NAMING``). The branch's first revision has
``down_revision = None``, ``branch_labels = (<name>,)`` and ``depends_on = "0001"`` (the
gateway's base, which creates ``tenants``). The store knows no branch by name: the
composition root (``gateway.wiring``) builds one ``Migrations`` from every adapter the
registry finds and hands it to the ``Store``, so a third-party adapter migrates with
``tessera migrate`` like a built-in one, and no branch's revisions have to be numbered
against another's. Upgrades go to ``heads``: every branch's head.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True)
class Branch:
    """An Alembic branch beside the gateway's: its label, its revisions, its tables."""

    label: str
    folder: Path
    metadata: MetaData | None = None


class Migrations:
    """The gateway's migrations and the branches handed in: what ``upgrade`` runs and what
    a current schema is (``Store.ping``)."""

    def __init__(self, branches: Iterable[Branch] = ()) -> None:
        self.branches: tuple[Branch, ...] = tuple(branches)

    def version_locations(self) -> list[Path]:
        return [MIGRATIONS / "versions", *(Path(b.folder) for b in self.branches)]

    def all_metadata(self) -> list[MetaData]:
        """The gateway's tables and every branch's: what the migrated schema must equal."""
        from .tables import metadata

        return [metadata, *(b.metadata for b in self.branches if b.metadata is not None)]

    def alembic_config(self, engine: Engine | None = None) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("path_separator", "os")
        cfg.set_main_option("version_locations", os.pathsep.join(str(p) for p in self.version_locations()))
        cfg.attributes["metadata"] = self.all_metadata()  # what migrations/env.py compares against
        if engine is not None:
            cfg.attributes["engine"] = engine
        return cfg

    def upgrade(self, engine: Engine, revision: str = "heads") -> None:
        command.upgrade(self.alembic_config(engine), revision)

    def downgrade(self, engine: Engine, revision: str) -> None:
        command.downgrade(self.alembic_config(engine), revision)

    def head_revisions(self) -> set[str]:
        """What ``alembic_version`` holds once every branch is upgraded: every branch's head,
        except a head that another head depends on (``depends_on``, e.g. an adapter revision
        that moves its rows into a newer gateway table): Alembic records only the dependent."""
        script = ScriptDirectory.from_config(self.alembic_config())
        heads = set(script.get_heads())
        below = {r.revision for h in heads for r in script.iterate_revisions(h, "base") if r.revision != h}
        return heads - below

    def is_current(self, engine: Engine) -> bool:
        return current_revisions(engine) == self.head_revisions()


def current_revisions(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())
