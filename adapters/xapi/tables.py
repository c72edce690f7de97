"""The LRS's own tables: statements as stored (immutable), and the indexes their queries need.

``xapi_statements`` keeps each statement exactly as the LRS stored it (``body``, JSON text,
served byte for byte by ``format=exact``) and promotes what the Statement Resource filters
on (Communication 2.1.3) to indexed columns. ``seq`` is the insertion order: the LRS sets
``stored`` from its clock as it inserts, so ordering by ``seq`` is ordering by ``stored``,
and ``seq`` is what a ``more`` link resumes after.

The agent and activity filters match several places in a statement (actor or object; with
``related_agents`` / ``related_activities`` also authority, instructor, team, context
activities, a SubStatement's parts). One row per (statement, agent) or (statement,
activity) in ``xapi_statement_agents`` / ``xapi_statement_activities`` turns each filter
into one index range scan; the agent rows carry the verb, so the commonest query
(a learner's statements with one verb) reads index entries only.

On SQLite the index rows of new statements first go to ``xapi_recent_agents`` /
``xapi_recent_activities``, keyed by ``seq`` first, so that writing them appends at the end
of a small table; every few thousand statements (``StatementStore``, "merge") they are
moved, sorted, into the tables above in one go. Written one commit at a time, each index
row landed in its own leaf page (one insertion point per activity, per agent and verb), and
the commit wrote each of those pages out again: the activity rows alone were a third of a
statement's write cost on the ingest benchmark. All of a statement's index rows are in the
same tier, and every seq in the recent tier is above every seq in the merged one (a merge
step runs under the write lock and moves the oldest statements' rows: ``index_tiers``), so a query reads the recent tier,
then the merged one (newest first; the other way round for ``ascending``). PostgreSQL writes
concurrently, where no such split holds, and writes the merged tables directly.

On SQLite the merged tables' key leads with a generation of seqs, ``gen = seq >> GEN_BITS``
(16,384 statements; migration xapi_0007), listed in ``xapi_index_gens``. Keyed by agent or
activity first, a merge step's rows scattered over the whole b-tree and the step wrote most of
its leaf pages (2,623 WAL frames a step of 4,096 statements at 150,000 stored); keyed by
generation first, they land in the newest one or two generations' key ranges (318 frames;
bounded by a generation's pages whatever the store holds). A query walks the generations newest first, one key range each
(``statement_query``). PostgreSQL's ``gen`` is 0.

On PostgreSQL the statements and their index rows are range-partitioned by month on
``stored`` (migration xapi_0005; ``adapters/xapi/partitions.py``): the index rows carry their
statement's ``stored`` (null on SQLite), and ``xapi_statement_ids`` keeps each statement id
unique per tenant (a partitioned table takes no unique index without its partition key).

On SQLite statement ids are tiered as the index rows are (migration xapi_0006): a new
statement's id goes to ``xapi_recent_ids`` (primary key ``(tenant, id)``, a small b-tree) and
is moved with its index rows, sorted, into ``xapi_statement_ids``. Random ids inserted one
commit at a time into one unique index over every statement landed each in its own leaf
page: at 150,000 statements 94 of the 127 pages a commit of 100 statements wrote to the WAL.
An id is unique per tenant across both tiers: the recent tier's key, and the writer's look-up
in the merged one under the write lock (``StatementStore._write``); a read by id reads both
(``partitions.where_ids``).

``xapi_activities`` is the LRS's canonical definition of each activity (the Activities
resource, ``format=canonical``), merged from the statements that define it.
``xapi_attachments`` keeps attachment content once per SHA-2 (Communication 2.1.4).
``xapi_derive_cursor`` is how far evidence derived behind the acknowledgement has come
(``derive``; ``deferred`` marks the statements it derives).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from gateway.store.types import NAMING, BigId, UTCDateTime, UUIDType

metadata = MetaData(naming_convention=NAMING)

xapi_statements = Table(
    "xapi_statements",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("tenant", String(63), nullable=False),
    Column("id", UUIDType(), nullable=False),
    Column("stored", UTCDateTime(), nullable=False),
    Column("verb_id", Text(), nullable=False),
    Column("registration", UUIDType()),
    Column("voiding", UUIDType()),  # the statement this one voids (a voiding statement)
    Column("voided", Boolean(), nullable=False),
    Column("authority", Text(), nullable=False),  # agent key of the credentials (statements/read/mine)
    Column("attachments", Boolean(), nullable=False),
    Column("body", Text(), nullable=False),
    # true: its evidence is derived behind the acknowledgement (``derive``); null: in its own transaction
    Column("deferred", Boolean()),
    # (tenant, id) is unique: in xapi_statement_ids and, on SQLite, xapi_recent_ids (module docstring)
    Index("ix_xapi_statements_tenant_stored", "tenant", "stored"),
    # few statements void another: index only those
    Index("ix_xapi_statements_tenant_voiding", "tenant", "voiding",
          sqlite_where=text("voiding IS NOT NULL"), postgresql_where=text("voiding IS NOT NULL")),
    Index("ix_xapi_statements_tenant_registration", "tenant", "registration"),
)

#: SQLite: the merged index rows' key leads with a generation of seqs, ``seq >> GEN_BITS`` (16,384
#: statements, a merge cycle; module docstring): a merge step appends into the newest one or two
#: generations' key ranges; a query reads a key range a generation (61 over a million
#: statements). 12 (4,096 statements) made the steps write half as much again as this does but the
#: queries over a million statements up to twice as slow: each generation is a leaf page or two to
#: read. Must not grow on an existing store without rebuilding the tables (a row's generation
#: must not decrease as seq grows); may shrink.
GEN_BITS = 14

#: role: "a" actor, "o" object, "r" anywhere else (related_agents)
xapi_statement_agents = Table(
    "xapi_statement_agents",
    metadata,
    # SQLite: seq >> GEN_BITS, the key's first column; PostgreSQL: 0, its default (its key, a unique index, has none)
    Column("gen", Integer(), primary_key=True, autoincrement=False),
    Column("tenant", String(63), primary_key=True),
    Column("agent", Text(), primary_key=True),
    Column("verb_id", Text(), primary_key=True),
    Column("seq", BigId, primary_key=True, autoincrement=False),
    Column("role", String(1), primary_key=True),
    Column("stored", UTCDateTime()),  # PostgreSQL: the statement's, the partition key; null on SQLite
    sqlite_with_rowid=False,
)

#: role: "o" object, "r" anywhere else (related_activities)
xapi_statement_activities = Table(
    "xapi_statement_activities",
    metadata,
    Column("gen", Integer(), primary_key=True, autoincrement=False),  # as in xapi_statement_agents
    Column("tenant", String(63), primary_key=True),
    Column("activity", Text(), primary_key=True),
    Column("seq", BigId, primary_key=True, autoincrement=False),
    Column("role", String(1), primary_key=True),
    Column("stored", UTCDateTime()),  # as in xapi_statement_agents
    sqlite_with_rowid=False,
)

#: SQLite: the generations the merged index rows fill (``gen``, one row each, added by the merge
#: step that first writes one), which a query walks newest first (``statement_query``); empty on PostgreSQL
xapi_index_gens = Table(
    "xapi_index_gens",
    metadata,
    Column("gen", Integer(), primary_key=True, autoincrement=False),
)

#: where each statement id is stored (``adapters/xapi/partitions.py``); PostgreSQL: not
#: partitioned, so its primary key keeps an id unique per tenant across the months; SQLite: the
#: merged tier of the ids (``xapi_recent_ids``)
xapi_statement_ids = Table(
    "xapi_statement_ids",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("id", UUIDType(), primary_key=True),
    Column("seq", BigInteger(), nullable=False),
    Column("stored", UTCDateTime(), nullable=False),
    sqlite_with_rowid=False,  # one b-tree (migration xapi_0006)
)

#: SQLite: the recent tier of ``xapi_statement_ids`` (see the module docstring; empty on PostgreSQL)
xapi_recent_ids = Table(
    "xapi_recent_ids",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("id", UUIDType(), primary_key=True),
    Column("seq", BigInteger(), nullable=False),
    sqlite_with_rowid=False,
)

#: the recent tier of ``xapi_statement_agents`` (SQLite; see the module docstring)
xapi_recent_agents = Table(
    "xapi_recent_agents",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=False),
    Column("tenant", String(63), primary_key=True),
    Column("agent", Text(), primary_key=True),
    Column("verb_id", Text(), primary_key=True),
    Column("role", String(1), primary_key=True),
    sqlite_with_rowid=False,
)

#: the recent tier of ``xapi_statement_activities``
xapi_recent_activities = Table(
    "xapi_recent_activities",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=False),
    Column("tenant", String(63), primary_key=True),
    Column("activity", Text(), primary_key=True),
    Column("role", String(1), primary_key=True),
    sqlite_with_rowid=False,
)

#: how far the evidence of deferred statements is derived (``derive``): one row, "evidence",
#: whose ``seq`` is the last statement seq done; advanced in the transaction that writes the evidence
xapi_derive_cursor = Table(
    "xapi_derive_cursor",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("seq", BigInteger(), nullable=False),
    Column("updated", UTCDateTime(), nullable=False),
)

xapi_activities = Table(
    "xapi_activities",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("id", Text(), primary_key=True),
    Column("definition", Text(), nullable=False),  # JSON object
    Column("updated", UTCDateTime(), nullable=False),
)

xapi_attachments = Table(
    "xapi_attachments",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("sha2", String(128), primary_key=True),
    Column("content_type", String(255), nullable=False),
    Column("length", Integer(), nullable=False),
    Column("content", LargeBinary(), nullable=False),
)
