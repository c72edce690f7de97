"""The record repository: ``RecordStore``, the one door through which canonical records enter
and leave the store (DESIGN section 2). A facade over the modules that do the work:

* ``prepare``: records made ready for writing with no database (serialised once, hashed,
  rows built, references collected): ``Prepared``, ``PreparedBatch``, ``REFERENCES``;
* ``write``: the apply transaction (reference check, upserts, identifier index, change log,
  outbox, evidence listeners), one batch or many, pipelined: ``ApplyResult``;
* ``evidence``: the append-only rules of stored evidence, which ``write`` enforces;
* ``read``: one record, several, keyset pages, counts, the change log: ``Page``;
* ``identities``: identity resolution (``lookup`` here; the batch form on ``Store.identities``);
* ``unresolved``: references a record holds to records not stored (yet), and how reads show them.

``Store.records`` is the one instance of an application; its ``evidence_listeners`` (the
list may be replaced: the composition root hands in the store's) are called inside every
writing transaction that changed evidence.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from ..model import Record
from .identities import IdentityStore
from .prepare import REFERENCES, Prepared, PreparedBatch, Preparer, content_hash
from .read import Page, RecordReader
from .state_write import StateWriter
from .unresolved import still_unresolved
from .write import ApplyResult, EvidenceListener, KindCounts, RecordWriter


class RecordStore:
    """Writes and reads canonical records of one database (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.preparer = Preparer(engine.dialect)
        self.writer = RecordWriter(engine, self.preparer, [])
        self._states = StateWriter(engine.dialect)
        self.reader = RecordReader(engine)
        self._identities = IdentityStore(engine)

    @property
    def evidence_listeners(self) -> list[EvidenceListener]:
        """Called inside the writing transaction once evidence has changed (``EvidenceListener``);
        the writer's own list, so adding to it, or replacing it, takes effect at once."""
        return self.writer.evidence_listeners

    @evidence_listeners.setter
    def evidence_listeners(self, listeners: list[EvidenceListener]) -> None:
        self.writer.evidence_listeners = listeners

    # --- preparing (no database) ------------------------------------------------------------

    def prepare(self, tenant: str, records: Iterable[Record]) -> PreparedBatch:
        """Validate batch-level rules, serialise and hash every record, build its row and
        collect its references; touches no database (``Preparer.prepare``)."""
        return self.preparer.prepare(tenant, records)

    def prepare_serialised(self, tenant: str, kind: str, items: Iterable[tuple[Any, str, str]]) -> PreparedBatch:
        """``prepare`` for derived records their producer serialised itself (``Preparer.prepare_serialised``)."""
        return self.preparer.prepare_serialised(tenant, kind, items)

    @staticmethod
    def combine(batches: Sequence[PreparedBatch]) -> PreparedBatch:
        """One batch of several prepared ones of the same tenant (``Preparer.combine``)."""
        return Preparer.combine(batches)

    # --- writing ----------------------------------------------------------------------------

    def apply(self, tenant: str, records: Iterable[Record] | PreparedBatch, *, batch_id: uuid.UUID | None = None,
              within: Callable[[Connection], None] | None = None, conn: Connection | None = None) -> ApplyResult:
        """Apply a batch atomically; raises ValidationError/IntegrityError/Conflict and writes
        nothing on failure. ``within(conn)`` runs in the same transaction after the records
        are written; with ``conn`` (from ``write_transaction``) the batch is written in the
        caller's transaction (``RecordWriter.apply``)."""
        return self.writer.apply(tenant, records, batch_id=batch_id, within=within, conn=conn)

    def write_transaction(self) -> AbstractContextManager[Connection]:
        """A connection in a write transaction (on SQLite it holds the write lock from BEGIN);
        commits on leaving, rolls back on an exception."""
        return self.writer.write_transaction()

    def apply_stream(self, tenant: str, batches: Iterable[Iterable[Record]]) -> Iterator[ApplyResult]:
        """Apply many batches, each atomically, preparing the next while one is written."""
        return self.writer.apply_stream(tenant, batches)

    def apply_batches(self, tenant: str, batches: Iterable[Iterable[Record] | PreparedBatch], *, batch_id: uuid.UUID | None = None,
                      expect: dict[str, int] | None = None, within: Callable[[Connection], None] | None = None) -> ApplyResult:
        """Apply many batches in ONE transaction, pipelined (``RecordWriter.apply_batches``)."""
        return self.writer.apply_batches(tenant, batches, batch_id=batch_id, expect=expect, within=within)

    def apply_in(self, conn: Connection, tenant: str, records: Iterable[Record] | PreparedBatch, *, now: datetime,
                 batch_id: uuid.UUID | None = None, derived: bool = False) -> ApplyResult:
        """Write records inside a transaction the caller holds (``RecordWriter.apply_in``)."""
        return self.writer.apply_in(conn, tenant, records, now=now, batch_id=batch_id, derived=derived)

    def write_states(self, conn: Connection, tenant: str, states: Iterable[tuple[Any, str, str]], stored: dict[uuid.UUID, str], *,
                     now: datetime) -> int:
        """Write derived mastery states, serialised by their producer (``prepare_serialised``'s
        items; ``stored``: id -> stored content hash of every stored one), in the caller's
        transaction: what ``apply_in(conn, tenant, prepare_serialised(...), derived=True)``
        writes, without the generic path's per-record work (``state_write``). The number written."""
        return self._states.write(conn, tenant, states, stored, now)

    # --- reading ----------------------------------------------------------------------------

    def get_json(self, tenant: str, kind: str, rid: uuid.UUID) -> str:
        """The stored JSON of one record; NotFound for unknown ids *and* other tenants' ids."""
        return self.reader.get_json(tenant, kind, rid)

    def get(self, tenant: str, kind: str, rid: uuid.UUID) -> Record:
        return self.reader.get(tenant, kind, rid)

    def get_json_many(self, tenant: str, kind: str, ids: Iterable[uuid.UUID], *, conn: Connection | None = None) -> dict[uuid.UUID, str]:
        """id -> stored JSON of those of ``ids`` the tenant has (``RecordReader.get_json_many``)."""
        return self.reader.get_json_many(tenant, kind, ids, conn=conn)

    def last_updated(self, tenant: str, kinds: Sequence[str], *, conn: Connection | None = None) -> tuple[datetime | None, ...]:
        """When the tenant's records of each of ``kinds`` last changed (``RecordReader.last_updated``)."""
        return self.reader.last_updated(tenant, kinds, conn=conn)

    def page(self, tenant: str, kind: str, *, limit: int = 100, cursor: str | None = None, updated_since: datetime | None = None,
             filters: dict[str, Any] | None = None) -> Page:
        """One keyset page in (updated_at, id) order (``RecordReader.page``)."""
        return self.reader.page(tenant, kind, limit=limit, cursor=cursor, updated_since=updated_since, filters=filters)

    def iter_records(self, tenant: str, kinds: Iterable[str] | None = None, *, batch: int = 1000) -> Iterator[Record]:
        """Every record of the tenant, kind by kind in dependency order."""
        return self.reader.iter_records(tenant, kinds, batch=batch)

    def show_unresolved(self, tenant: str, docs: list[str]) -> list[str]:
        """Stored JSON documents as a read shows them: the references each holds unresolved
        (``extensions["unresolved"]``) that have resolved since are left out
        (``unresolved.still_unresolved``); documents that hold none come back untouched."""
        return still_unresolved(self.engine, tenant, docs)

    def count(self, tenant: str, kind: str) -> int:
        return self.reader.count(tenant, kind)

    def changes_since(self, tenant: str, seq: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        return self.reader.changes_since(tenant, seq, limit)

    def lookup(self, tenant: str, system: str, kind: str, value: str, *, record_kind: str | None = None) -> list[tuple[str, uuid.UUID]]:
        """Identity resolution: which records carry identifier (system, kind, value)? (``IdentityStore.lookup``)"""
        return self._identities.lookup(tenant, system, kind, value, record_kind=record_kind)


__all__ = ["REFERENCES", "ApplyResult", "EvidenceListener", "KindCounts", "Page", "Prepared", "PreparedBatch", "RecordStore", "content_hash"]
