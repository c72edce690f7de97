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
statement.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from .statement_query import MERGED, RECENT
from .tables import xapi_recent_agents, xapi_recent_ids, xapi_statement_ids, xapi_statements

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

    def __init__(self, every: int = MERGE_EVERY) -> None:
        self.every = every
        #: statements a step moves (at least: never fewer than the write added, so the tier drains)
        self.slice = max(1, every // MERGE_STEPS)
        self._draining = False
        self._oldest = f"SELECT min(seq) FROM {xapi_recent_agents.name}"
        self._sql = [_merge_sql(recent, merged) for recent, merged in
                     ((RECENT.agents, MERGED.agents), (RECENT.activities, MERGED.activities))]
        # the ids of the same statements, with their statement's stored (the recent tier keeps none)
        self._sql.append((f"INSERT INTO {xapi_statement_ids.name} (tenant, id, seq, stored) SELECT r.tenant, r.id, r.seq, s.stored "
                          f"FROM {xapi_recent_ids.name} r JOIN {xapi_statements.name} s ON s.seq = r.seq "
                          "WHERE r.seq < ? ORDER BY r.tenant, r.id",
                          f"DELETE FROM {xapi_recent_ids.name} WHERE seq < ?"))

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
        for copy, clear in self._sql:
            conn.exec_driver_sql(copy, (bound,))
            conn.exec_driver_sql(clear, (bound,))


def _merge_sql(recent: Any, merged: Any) -> tuple[str, str]:
    """The two statements of a step: the recent rows below a seq copied into the merged table in
    its key order, then deleted (driver texts: compiled once per connection, not by SQLAlchemy
    under the write lock)."""
    cols = ", ".join(c.name for c in merged.primary_key.columns)  # the merged table's key order
    return (f"INSERT INTO {merged.name} ({cols}) SELECT {cols} FROM {recent.name} WHERE seq < ? ORDER BY {cols}",
            f"DELETE FROM {recent.name} WHERE seq < ?")


__all__ = ["MERGE_EVERY", "MERGE_STEPS", "TierMerge"]
