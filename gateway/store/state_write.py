"""Derived mastery states written in the caller's transaction, the lean way (the incremental
update's; ``RecordStore.write_states``).

The mastery engine's states are most of the rows an evidence transaction writes (the xAPI
consumer writes about four a statement), and it has them serialised and hashed already
(``gateway.mastery.serial.state_json``). Through the generic path each still became a
``Prepared`` (its promoted columns read through a getter and a bind processor each), then a
plan of the batch, then rows: a fifth of the consumer's CPU. Here the rows are built in one
loop, each learner's and competency's stored key converted once, and written with the same
statements the generic path uses, so the table, the change log and the outbox get exactly
what ``RecordWriter.apply_in(..., derived=True)`` of ``Preparer.prepare_serialised``'s batch
would write:

* only states whose content hash differs from the stored one (``stored``: id -> stored hash,
  holding every stored state of the batch's ids) are written, in id order, duplicates
  folded (the last wins), with ``created_at`` kept on update;
* a change row each (``created``, ``updated``, or ``deleted`` for a retired state), under one
  new batch id, after ``changefeed.guard``;
* the statements are ``BulkStatement``'s; on PostgreSQL (``unnest`` of an array a column) the
  columns every row shares (the tenant, the timestamps, the change rows' batch and kind) are
  sent once (``same``), the uuid columns as one binary array and the short text columns as
  array text (``pg_arrays``): psycopg dumps a list element by element in Python, which for the
  four states and four change rows of a statement cost about a tenth of the consumer's CPU;
* the identifier index of an updated state emptied (a state carries no identifiers);
* an outbox delivery for every enabled push route that wants mastery states.

No reference check, as ``derived=True``: a state's learner and competency are those of the
evidence it was derived from, checked when that evidence was written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import insert as core_insert

from ..model import Status
from . import changefeed
from .db import BulkStatement, bind_processor, sqlite_in
from .outbox import matching_routes, outbox_rows
from .pg_arrays import uuid_array
from .prepare import PROMOTED
from .tables import RECORD_TABLES, identifiers, outbox
from .tables import changes as change_log

KIND = "mastery_state"
_COLUMNS = ["id", "tenant", "source", "native_id", "status", "content_hash", *PROMOTED[KIND], "created_at", "updated_at", "data"]
_DELETED = Status.tobedeleted


class StateWriter:
    """Writes serialised mastery states (``serial.StateHead``, content hash, body without its
    closing brace) to one database; holds no connection."""

    def __init__(self, dialect: Any) -> None:
        table = RECORD_TABLES[KIND]
        if list(PROMOTED[KIND]) != ["learner_id", "competency_id", "level", "value", "mastered"]:
            raise AssertionError("StateHead's promoted fields no longer match PROMOTED['mastery_state']")
        self._postgres = dialect.name == "postgresql"
        self._upsert = BulkStatement(table, _COLUMNS, dialect, conflict=["id"], keep=["created_at"],
                                     same=["tenant", "created_at", "updated_at"])
        self._changes = BulkStatement(change_log, ["tenant", "batch_id", "record_kind", "record_id", "op", "content_hash", "at"], dialect,
                                      same=["tenant", "batch_id", "record_kind", "at"])
        self._key = bind_processor(table, "id", dialect)
        self._stamp = bind_processor(change_log, "at", dialect)
        self._value = bind_processor(table, "value", dialect)
        self._mastered = bind_processor(table, "mastered", dialect)
        self._level = bind_processor(table, "level", dialect)
        quote = dialect.identifier_preparer.quote
        self._delete_identifiers = f"DELETE FROM {dialect.identifier_preparer.format_table(identifiers)} WHERE "
        self._record_id = quote("record_id")

    def write(self, conn: Connection, tenant: str, items: Iterable[tuple[Any, str, str]], stored: dict[uuid.UUID, str],
              now: datetime) -> int:
        """Write the states of ``items`` whose content changed; the number written."""
        # ids as ints throughout: UUID.__hash__ is a Python call, and this loop hashed four ids a state
        bucket = {item[0].id.int: item for item in items}
        if not bucket:
            return 0
        routes = matching_routes(conn, tenant)
        collect = any(KIND in r.kinds for r in routes)
        key, value_b, mastered_b, level_b = self._key, self._value, self._mastered, self._level
        keys: dict[int, Any] = {}  # learner and competency ids, converted once each
        known = keys.get
        before = {k.int: h for k, h in stored.items()}
        now_b = self._stamp(now) if self._stamp is not None else now
        batch_id = uuid.uuid4()
        batch_b = key(batch_id) if key is not None else batch_id
        suffix = ',"updated_at":"' + now.isoformat() + '"}'
        rows: list[Any] = []
        changes: list[Any] = []
        updated: list[Any] = []
        written: list[tuple[uuid.UUID, str, str]] = []
        add_row, add_change, get = rows.extend, changes.extend, before.get
        n = 0
        for sid in sorted(bucket):
            head, digest, body = bucket[sid]
            old = get(sid)
            if old == digest:
                continue
            rid = key(head.id) if key is not None else head.id
            level, value, mastered, learner, competency = head.level, head.value, head.mastered, head.learner_id, head.competency_id
            if (lk := known(learner.int)) is None:
                lk = keys[learner.int] = key(learner) if key is not None else learner
            if (ck := known(competency.int)) is None:
                ck = keys[competency.int] = key(competency) if key is not None else competency
            add_row((rid, tenant, head.source, head.native_id, head.status.value, digest, lk, ck,
                     level if level_b is None or level is None else level_b(level),
                     value if value_b is None or value is None else value_b(value),
                     mastered if mastered_b is None or mastered is None else mastered_b(mastered),
                     now_b, now_b, body + suffix))
            if old is None:
                op = "created"
            else:
                op = "deleted" if head.status is _DELETED else "updated"
                updated.append(rid)
            add_change((tenant, batch_b, KIND, rid, op, digest, now_b))
            if collect:
                written.append((head.id, digest, head.source))
            n += 1
        if not n:
            return 0
        self._upsert.execute_flat(conn, rows, n)
        if updated:
            if self._postgres:
                conn.exec_driver_sql(self._delete_identifiers + f"{self._record_id} = ANY(%s::uuid[])", (uuid_array(updated),))
            else:
                for cond, params in sqlite_in(self._record_id, updated, 4096):
                    conn.exec_driver_sql(self._delete_identifiers + cond, params)
        changefeed.guard(conn)  # before the change rows: the feed's safe version (changefeed.py)
        self._changes.execute_flat(conn, changes, n)
        if written:
            out = outbox_rows(routes, tenant, KIND, written, now)
            if out:
                conn.execute(core_insert(outbox), out)
        return n


__all__ = ["StateWriter"]
