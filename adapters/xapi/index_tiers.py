"""SQLite: when and how the recent tier of the statement index is merged into the queried one
(``tables``: new statements' index rows are appended to ``xapi_recent_agents`` /
``xapi_recent_activities``, keyed by seq, and moved in bulk, sorted, into
``xapi_statement_agents`` / ``xapi_statement_activities``; their ids likewise go to
``xapi_recent_ids`` and move into ``xapi_statement_ids``).

A merge moves the index rows of the *oldest* statements of the recent tier, so the tiers stay
split by seq (every seq of the recent tier above every seq of the merged one) and a query that
reads both in one snapshot (``statement_query``) sees each row once, whatever was moved when.
It runs in a writer's transaction, under SQLite's write lock, while every writer of every
process waits: so once due it moves a step (the oldest quarter of the tier) a write, until the
tier is drained, instead of the whole tier at once. Measured in process (16,384 statements
over 48,000): the whole merge 350-400 ms under the lock; in steps of 4,096 the longest 183 ms,
for about 45 % more of the merge's CPU (a step writes each leaf page of the merged tables it
touches once, and most steps touch most of them); through a 40,000-statement ingest in
process, eight steps of 38-137 ms against two merges of 193-218 ms, about 2 us more CPU a
statement. Since the merged tables are keyed by a generation of seqs first (``tables.GEN_BITS``,
migration xapi_0007), a step writes only the newest generations' pages, not most of the
tables': at 150,000 statements 577 WAL frames a step against 2,878, 77 ms of CPU against 118-126.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from .statement_query import MERGED, RECENT
from .tables import GEN_BITS, xapi_index_gens, xapi_recent_agents, xapi_recent_ids, xapi_statement_ids, xapi_statements

#: statements whose index rows wait in the recent tier before it is merged (the setting
#: ``TESSERA_XAPI__MERGE_EVERY``). A merge writes each leaf page it touches once, so the more it
#: takes the less it costs per statement; a query scans the whole recent tier, ~8 rows a
#: statement. Measured on the ingest benchmark (200,000 statements, two workers): every 4,096
#: statements 5,130-5,650 statements/s, 8,192 5,522, 16,384 5,996; GET agent+verb over a million
#: statements, p50 2.3 ms with 4,000 statements in the recent tier, 3.0 ms with 10,000 (at this setting).
MERGE_EVERY = 16_384
#: a due merge moves the oldest ``MERGE_EVERY // MERGE_STEPS`` statements a write (``TierMerge.due``)
MERGE_STEPS = 4


class TierMerge:
    """When the recent tier is merged, a step at a time, and the statements that move it. One
    per ``StatementStore``; what it remembers (whether this process is draining the tier) is a
    hint only: each step is decided and taken from what the database holds, under the write lock."""

    def __init__(self, every: int = MERGE_EVERY, gen_bits: int = GEN_BITS) -> None:
        self.every = every
        #: statements a step moves (at least: never fewer than the write added, so the tier drains)
        self.slice = max(1, every // MERGE_STEPS)
        self._draining = False
        self._oldest = f"SELECT min(seq) FROM {xapi_recent_agents.name}"
        # the generations a step writes, before its rows (every statement has a row in the recent
        # agents: its verb's)
        self.gen_bits = gen_bits
        self._span = f"SELECT min(seq), max(seq) FROM {xapi_recent_agents.name} WHERE seq < ?"
        self._gens = f"INSERT OR IGNORE INTO {xapi_index_gens.name} (gen) VALUES (?)"
        self._sql = [_merge_sql(recent, merged, gen_bits) for recent, merged in
                     ((RECENT.agents, MERGED.agents), (RECENT.activities, MERGED.activities))]
        # the ids: by a range of the id's first byte, not by seq (``_id_range``)
        # (with their statement's stored, which the recent tier does not keep: looked up in seq
        # order, so that each page of the statements is read once, not once an id)
        self._ids_sql = (f"WITH m AS MATERIALIZED (SELECT tenant, id, seq FROM {xapi_recent_ids.name} "
                         "WHERE id >= ? AND id < ? ORDER BY seq) "
                         f"INSERT INTO {xapi_statement_ids.name} (tenant, id, seq, stored) SELECT m.tenant, m.id, m.seq, s.stored "
                         f"FROM m CROSS JOIN {xapi_statements.name} s ON s.seq = m.seq ORDER BY m.tenant, m.id",
                         f"DELETE FROM {xapi_recent_ids.name} WHERE id >= ? AND id < ?")

    def due(self, conn: Connection, last: int, written: int) -> int | None:
        """After a write whose last seq is ``last`` (``written`` statements): the seq below which a
        merge step moves the index rows now, or None. A step is due once the tier spans
        ``every`` statements (every statement has a row in ``xapi_recent_agents``: its verb's),
        and after that at every write of this process until the tier is drained (under
        ``slice`` statements were left). Another process's writes in between take no step unless
        the tier spans ``every`` (a step moves the same rows whoever takes it)."""
        oldest = conn.exec_driver_sql(self._oldest).scalar()  # under the write lock: no SQLAlchemy compile
        if oldest is None:
            self._draining = False
            return None
        span = last - oldest + 1
        if span >= self.every or self._draining and span >= self.slice:
            self._draining = span > self.slice  # after this step, more is left to move
            return int(oldest) + max(self.slice, written)
        self._draining = False
        return None

    def merge(self, conn: Connection, below: int | None = None) -> None:
        """Move the index rows and ids of the statements below seq ``below`` (all of them: None)
        from the recent tier into the merged tables, in the merged tables' key order, so that each leaf
        page of theirs is written once for all the rows it receives. In the caller's write
        transaction (SQLite: nothing else writes meanwhile)."""
        bound = (1 << 62) if below is None else below
        lo, hi = conn.exec_driver_sql(self._span, (bound,)).one()
        if lo is not None:
            for gen in range(lo >> self.gen_bits, (hi >> self.gen_bits) + 1):  # one or two, as a rule
                conn.exec_driver_sql(self._gens, (gen,))
        for copy, clear in self._sql:
            conn.exec_driver_sql(copy, (bound,))
            conn.exec_driver_sql(clear, (bound,))
        lo, hi = _id_range(None if below is None else below // self.slice)
        for sql in self._ids_sql:
            conn.exec_driver_sql(sql, (lo, hi))


def _id_range(step: int | None) -> tuple[bytes, bytes]:
    """The statement ids (16 bytes each, as SQLite stores them) a merge step moves from the recent
    tier of the ids to the merged one: a quarter of the id space, the next quarter at the next
    step (``step``: the step's ordinal; None: all ids). Not the ids of the statements whose index
    rows the step moves: ids are random, so a step that moved the oldest ids wrote most leaf pages
    of ``xapi_statement_ids`` (one id in most pages), four times a tier; a quarter of the id space
    is a quarter of its pages, each receiving four times the ids. Whatever moves when, each id is
    in one tier, and a writer or a read looks in both (``StatementStore._write``, ``where_ids``)."""
    if step is None:
        return b"", b"\xff" * 17
    q = step % MERGE_STEPS
    lo = bytes([q * 256 // MERGE_STEPS]) if q else b""
    hi = bytes([(q + 1) * 256 // MERGE_STEPS]) if q < MERGE_STEPS - 1 else b"\xff" * 17
    return lo, hi


def _merge_sql(recent: Any, merged: Any, gen_bits: int) -> tuple[str, str]:
    """The two statements of a step: the recent rows below a seq copied into the merged table in
    its key order (its generation, ``seq >> gen_bits``, first), then deleted (driver texts:
    compiled once per connection, not by SQLAlchemy under the write lock)."""
    cols = [c.name for c in merged.primary_key.columns]  # the merged table's key order, gen first
    assert cols[0] == "gen"
    picked = ", ".join([f"seq >> {int(gen_bits)}", *cols[1:]])
    return (f"INSERT INTO {merged.name} ({', '.join(cols)}) SELECT {picked} FROM {recent.name} WHERE seq < ? "
            f"ORDER BY {', '.join(str(i + 1) for i in range(len(cols)))}",
            f"DELETE FROM {recent.name} WHERE seq < ?")


__all__ = ["MERGE_EVERY", "MERGE_STEPS", "TierMerge"]
