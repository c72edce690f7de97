"""Storage: SQLAlchemy tables, repositories and Alembic migrations (DESIGN section 5)."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy import Engine, text

from .alignments import AlignmentStore
from .db import make_engine
from .identities import IdentityStore
from .imports import ImportRuns
from .memberships import MembershipRepository
from .migrate import Branch, Migrations
from .outbox import RoutingStore
from .records import ApplyResult, EvidenceListener, Page, RecordStore
from .roster import RosterQueries
from .streams import PreparedStreams


class Store:
    """The gateway's one seam to its database: every repository hangs off it.

    The store knows no listener and no adapter by name: ``migrations`` (the gateway's and
    every adapter's Alembic branches) and the evidence listeners (the mastery engine) are
    handed in by the composition root, ``gateway.wiring.open_store``. A store built here
    directly migrates and checks the gateway's own schema only and derives nothing from
    evidence."""

    def __init__(self, engine: Engine, *, migrations: Migrations | None = None) -> None:
        self.engine = engine
        self.migrations = migrations or Migrations()

    @classmethod
    def from_url(cls, url: str, *, migrations: Migrations | None = None) -> Store:
        return cls(make_engine(url), migrations=migrations)

    def add_evidence_listener(self, listener: EvidenceListener) -> None:
        """Call ``listener`` in the transaction of every batch that stores evidence (once)."""
        if listener not in self.records.evidence_listeners:
            self.records.evidence_listeners.append(listener)

    @property
    def evidence_listeners(self) -> list[EvidenceListener]:
        """The listeners ``records`` calls (its own list)."""
        return self.records.evidence_listeners

    @cached_property
    def records(self) -> RecordStore:
        return RecordStore(self.engine)

    streams = cached_property(PreparedStreams)  # batches streamed, optionally from a child process

    @cached_property
    def routing(self) -> RoutingStore:
        return RoutingStore(self.engine)

    @cached_property
    def roster(self) -> RosterQueries:
        return RosterQueries(self.engine)

    @cached_property
    def memberships(self) -> MembershipRepository:
        return MembershipRepository(self.engine)

    @cached_property
    def identities(self) -> IdentityStore:
        return IdentityStore(self.engine)

    @cached_property
    def imports(self) -> ImportRuns:
        return ImportRuns(self.engine)

    @cached_property
    def alignments(self) -> AlignmentStore:
        return AlignmentStore(self.engine)

    def migrate(self) -> None:
        self.migrations.upgrade(self.engine)

    def ping(self) -> bool:
        """True when the database answers and its schema is the one this code expects."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return self.migrations.is_current(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


__all__ = [
    "AlignmentStore", "ApplyResult", "Branch", "EvidenceListener", "IdentityStore", "Migrations", "Page", "RecordStore",
    "RoutingStore", "Store", "make_engine",
]
