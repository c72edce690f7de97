"""PostgreSQL: raw statements partitioned by month (issue "State agencies", item 5).

Raw statements are the bulk of what a state's LRS stores (~22 TB a month at 2 KB a statement,
``docs/scaling.md``) and the one thing a retention policy drops: evidence is derived from them
and kept. On PostgreSQL (migration xapi_0005) ``xapi_statements`` is range-partitioned by
month on ``stored``, primary key ``(seq, stored)``, its other indexes per partition, made
ahead by ``tessera migrate`` / ``tessera partitions ensure`` and dropped a month at a time by
``tessera partitions retain --table xapi_statements --months N`` (``gateway.store.partitions``
does the months; this module registers the tables there). SQLite keeps one table each.

**Statement ids.** A statement id is unique per LRS (Data 2.4.1), and a statement sent twice
must be found and compared (Data 2.3.1.s9: 204 when the same, 409 when not). PostgreSQL
refuses a unique index on a partitioned table without the partition key, and ``(tenant, id,
stored)`` would not stop an id arriving again a month later. So ``xapi_statement_ids``, not
partitioned, maps ``(tenant, id)`` to ``(seq, stored)``: ``StatementIds.record`` inserts a
batch's ids in the batch's transaction, and its primary key raises the unique violation the
statement store already takes for "an id is known: compare" (``StatementStore.save``). A read
by id (``where_ids``) looks the ids up there first and then reads the statements by ``(seq,
stored)`` with both as literals, so the planner keeps only the partitions of those months
(pruning at plan time; ``tests/test_partitions_xapi.py`` asserts the plan). It costs about
what the unique index it replaces did: one B-tree entry of the same key a statement. SQLite
keeps the ids in ``xapi_statement_ids`` too, behind a recent tier (``xapi_recent_ids``,
migration xapi_0006, ``tables``), and ``where_ids`` reads both.

**Index rows.** ``xapi_statement_agents`` / ``..._activities`` name their statement by ``seq``
and are partitioned by the same months, on their statement's ``stored``, which they carry (8
bytes a row). The plan in the first version of ``docs/scaling.md`` was to partition them by
``seq`` ranges aligned with the months; but a month's partitions are made ahead, before its
first ``seq`` is known, and on PostgreSQL a statement stored in the last millisecond of a month
may take its ``seq`` after one of the next month's, so no ``seq`` boundary matches the months
exactly. Partitioned by ``stored``, the index rows of a month are exactly its statements', and
retention drops them with the month (``FOLLOWERS``) by the same ``DROP TABLE``. The queries
join an index row to its statement on ``seq`` and ``stored`` (one partition probed per row)
and bound the index rows by ``since`` / ``until`` too (``statement_query``).

**Retention and voiding.** Dropping a month drops its statements, their index rows and their
ids (``_forget_ids``, from the detached partition before it is dropped). Afterwards:

* a GET by ``statementId`` or ``voidedStatementId`` of a dropped statement answers 404, and
  no query returns it;
* its id is free again in the LRS (which refuses a reused id for as long as it keeps the
  statement: the deployment's retention bounds the promise of Data 2.4.1 that an id is never
  reused); but the evidence derived from it is kept and append-only, and a statement sent
  again under its id would change that evidence (its provenance at least: when it was
  received), so it is refused with 409 ("evidence is append-only") whenever the dropped one
  made evidence: in practice only ids of statements that made no evidence are reusable;
* a voiding statement whose target was dropped is stored like one whose target the LRS never
  had (Data 2.3.2 lets it: nothing is marked voided); a voiding statement that is kept while
  its dropped target is gone stays a statement of its own (returned by queries as before);
* a kept statement voided by a dropped voiding statement stays voided (``voided`` is a column
  of the kept row): retention never brings back a statement that was voided;
* evidence derived from dropped statements stays (evidence is never dropped), and a
  StatementRef to a dropped statement no longer matches its target's filters for statements
  stored after the drop (the index rows are copied from the target when the reference is
  stored; those already stored keep theirs).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, false, select, text, union_all
from sqlalchemy.sql.elements import ColumnElement

from gateway.store import partitions
from gateway.store.db import BulkStatement

from .tables import xapi_recent_ids, xapi_statement_ids, xapi_statements

#: the index row tables, partitioned by the months of their statements
FOLLOWERS = ("xapi_statement_agents", "xapi_statement_activities")


def _forget_ids(conn: Connection, partition: str) -> None:
    """Retention: before the detached month ``partition`` of ``xapi_statements`` is dropped,
    the ids of its statements (one probe of the id table's key a statement)."""
    conn.execute(text(f'DELETE FROM xapi_statement_ids i USING "{partition}" s '
                      "WHERE i.tenant = s.tenant AND i.id = s.id AND i.seq = s.seq"))


partitions.register("xapi_statements", "stored", retainable=True, followers=FOLLOWERS, before_drop=_forget_ids)
# on PostgreSQL the index rows have a unique index with the partition key for a primary key
# (migration xapi_0005)
partitions.PARTITIONED_ONLY_INDEXES.update({"ix_xapi_statement_agents_key", "ix_xapi_statement_activities_key"})


def partitioned(conn_or_dialect: Any) -> bool:
    """Whether statements are partitioned here: on PostgreSQL, always (migration xapi_0005)."""
    dialect = getattr(conn_or_dialect, "dialect", conn_or_dialect)
    return bool(dialect.name == "postgresql")


class StatementIds:
    """PostgreSQL: ``xapi_statement_ids``, written with each batch and read for reads by id."""

    def __init__(self, dialect: Any) -> None:
        self._insert = BulkStatement(xapi_statement_ids, ["tenant", "id", "seq", "stored"], dialect)

    def record(self, conn: Connection, seqs: Sequence[int], rows: Sequence[Sequence[Any]]) -> None:
        """The ids of a batch being written (``rows``: its statement rows, tenant, id and
        stored first, as the driver stores them); a known id raises the unique violation."""
        self._insert.execute(conn, [(row[0], row[1], seq, row[2]) for seq, row in zip(seqs, rows, strict=True)])


def where_ids(conn: Connection, tenant: str, ids: Iterable[uuid.UUID]) -> ColumnElement[bool]:
    """The condition on ``xapi_statements`` that selects the statements of ``tenant`` with
    these ids: found in the id table first, then named by ``seq`` (the primary key).
    SQLite: in both tiers of the ids (``xapi_recent_ids``, then ``xapi_statement_ids``), in the
    same statement (one snapshot: an id is in exactly one of them). PostgreSQL: in the id table,
    then by ``stored`` too (the partition key, so only their months' partitions are read)."""
    s = xapi_statements
    ids = list(ids)
    if not ids:
        return false()
    i = xapi_statement_ids
    if not partitioned(conn):
        r = xapi_recent_ids
        seqs = union_all(select(r.c.seq).where(r.c.tenant == tenant, r.c.id.in_(ids)),
                         select(i.c.seq).where(i.c.tenant == tenant, i.c.id.in_(ids)))
        return and_(s.c.seq.in_(seqs), s.c.tenant == tenant)
    found = conn.execute(select(i.c.seq, i.c.stored).where(i.c.tenant == tenant, i.c.id.in_(ids))).all()
    if not found:
        return false()
    stored: list[datetime] = sorted({r.stored for r in found})
    return and_(s.c.seq.in_(sorted(r.seq for r in found)), s.c.stored.in_(stored), s.c.tenant == tenant)


__all__ = ["FOLLOWERS", "StatementIds", "partitioned", "where_ids"]
