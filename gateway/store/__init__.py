"""Storage: SQLAlchemy tables, repositories and Alembic migrations (DESIGN section 5)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text

from .alignments import AlignmentStore
from .db import make_engine
from .identities import IdentityStore
from .migrate import is_current, upgrade
from .outbox import RoutingStore
from .records import ApplyResult, Page, RecordStore

if TYPE_CHECKING:
    from ..mastery.engine import MasteryEngine


class Store:
    """The gateway's one seam to its database: every repository hangs off it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str) -> Store:
        return cls(make_engine(url))

    @cached_property
    def records(self) -> RecordStore:
        records = RecordStore(self.engine)
        # Mastery states are derived in the transaction of the evidence they come from.
        records.evidence_listeners.append(self.mastery.on_evidence)
        return records

    @cached_property
    def mastery(self) -> MasteryEngine:
        from ..mastery.engine import MasteryEngine

        return MasteryEngine(self)

    @cached_property
    def routing(self) -> RoutingStore:
        return RoutingStore(self.engine)

    @cached_property
    def identities(self) -> IdentityStore:
        return IdentityStore(self.engine)

    @cached_property
    def alignments(self) -> AlignmentStore:
        return AlignmentStore(self.engine)

    def migrate(self) -> None:
        upgrade(self.engine)

    def ping(self) -> bool:
        """True when the database answers and its schema is the one this code expects."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return is_current(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


__all__ = ["AlignmentStore", "ApplyResult", "IdentityStore", "Page", "RecordStore", "RoutingStore", "Store", "make_engine"]
