"""The read side of the statement storage: GET /statements filters (``Query``), pages of
statements (``Page``), and the SQL that reads statements, activity definitions and
attachments (``StatementReads``, which ``statement_store.StatementStore`` inherits: one
object per app reads and writes). Statements are found through the index tables (see
``tables``): on SQLite new index rows wait in a recent tier until they are merged, so a
read goes through both tiers (``Tier``) in one snapshot.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, Row, Select, Table, and_, exists, false, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.selectable import Join

from .partitions import partitioned, where_ids
from .tables import (
    xapi_activities,
    xapi_attachments,
    xapi_index_gens,
    xapi_recent_activities,
    xapi_recent_agents,
    xapi_statement_activities,
    xapi_statement_agents,
    xapi_statements,
)


@dataclass(frozen=True)
class Tier:
    """The index tables a query reads: the merged tier or the recent one."""

    agents: Table
    activities: Table


MERGED = Tier(xapi_statement_agents, xapi_statement_activities)
RECENT = Tier(xapi_recent_agents, xapi_recent_activities)


@dataclass
class Query:
    """GET /statements filters (Communication 2.1.3), already validated."""

    agent: str | None = None
    verb: str | None = None
    activity: str | None = None
    registration: str | None = None
    related_activities: bool = False
    related_agents: bool = False
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 0
    ascending: bool = False
    after: int | None = None  # the seq a ``more`` link resumes after
    authority: str | None = None  # statements/read/mine: only these credentials' statements


@dataclass
class Page:
    rows: list[tuple[int, datetime, str]]  # (seq, stored, body)
    more: int | None  # the seq to resume after, when there is more


class StatementReads:
    """The reads of ``StatementStore``: one statement, a page of them, activity definitions,
    attachment content, an agent's recent statements."""

    engine: Engine
    #: SQLite: new index rows go to the recent tier (see ``StatementStore``)
    _tiered: bool

    def get(self, tenant: str, statement_id: str, *, voided: bool, authority: str | None = None) -> tuple[datetime, str] | None:
        """One statement by id: ``voided=False`` finds it only if it is not voided
        (statementId), ``voided=True`` only if it is (voidedStatementId) (Communication 2.1.4)."""
        s = xapi_statements
        with self.engine.connect() as conn:
            q = select(s.c.stored, s.c.body).where(where_ids(conn, tenant, [uuid.UUID(statement_id)]), s.c.voided == voided)
            if authority is not None:
                q = q.where(s.c.authority == authority)
            r = conn.execute(q).first()
        return (r.stored, r.body) if r else None

    def query(self, tenant: str, q: Query) -> Page:
        """A page of statements, newest first unless ``q.ascending``; ``more`` when there
        are further rows."""
        indexed = q.agent is not None or q.verb is not None or q.activity is not None
        tiers = self._tiers(q.ascending) if indexed else [MERGED]  # unindexed: the tier is not read
        rows = self._in_tiers(tiers, lambda tier, n: self.statement(tenant, q, tier, n), q.limit + 1)
        more = rows[q.limit - 1][0] if len(rows) > q.limit else None
        return Page([(r.seq, r.stored, r.body) for r in rows[: q.limit]], more)

    def _tiers(self, ascending: bool) -> list[Tier]:
        """The tiers of the index in seq order: newest first, the recent tier (SQLite), then
        the merged one; the other way round when ``ascending``."""
        if not self._tiered:
            return [MERGED]
        return [MERGED, RECENT] if ascending else [RECENT, MERGED]

    def _in_tiers(self, tiers: list[Tier], build: Callable[[Tier, int], Select[Any]], limit: int) -> list[Row[Any]]:
        """Up to ``limit`` rows of a query read tier by tier (``_tiers``). The reads share one
        transaction, hence one snapshot: a merge in between cannot move rows out of sight or
        show them twice."""
        rows: list[Row[Any]] = []
        with self.engine.connect() as conn:
            for tier in tiers:
                rows += conn.execute(build(tier, limit - len(rows))).all()
                if len(rows) >= limit:
                    break
        return rows

    def statement(self, tenant: str, q: Query, tier: Tier = MERGED, limit: int | None = None) -> Select[Any]:
        """The SELECT of ``query`` in one tier of the index tables (``limit`` rows, by default
        one more than ``q.limit``, to tell if there is more).

        One index table drives the query in seq order, so a page reads ``limit`` index
        entries however many statements match: the agent rows when a verb is given (one row
        per agent, verb and statement: agent "" stands for the verb alone), else the
        activity rows when an activity is; any other filter is a semi-join. SQLite's merged
        tier is read a generation at a time (``_by_generation``), and with both an agent or
        verb and an activity the list of one index table's rows that the other has too drives."""
        s, ag, ac = xapi_statements, tier.agents, tier.activities
        conds = [s.c.voided == false()]
        agent_conds = [ag.c.tenant == tenant, ag.c.agent == (q.agent if q.agent is not None else "")]
        if q.verb is not None:
            agent_conds.append(ag.c.verb_id == q.verb)
        if q.agent is not None and not q.related_agents:
            agent_conds.append(ag.c.role == "p")
        activity_conds = [ac.c.tenant == tenant, ac.c.activity == q.activity]
        if not q.related_activities:
            activity_conds.append(ac.c.role == "p")
        partitioned_ = partitioned(self.engine)
        if partitioned_:  # PostgreSQL: the index rows' months are bounded too
            agent_conds += _months(ag, q)
            activity_conds += _months(ac, q)
        # The recent tier is small and keyed by seq: it is read whole, as semi-joins, and the
        # statements it names are fetched by seq. (Joined, without statistics SQLite drove
        # the query from the statements of the tenant: 0.5 s over a million.)
        drive = tier is MERGED
        # SQLite: the merged tier is keyed by generation first (``tables.GEN_BITS``): read one key
        # range a generation, newest first (``_by_generation``)
        gens = drive and self._tiered
        driver = (ag if q.verb is not None else ac if q.activity is not None else None) if drive else None
        if gens and driver is not None and q.activity is not None and (q.verb is not None or q.agent is not None):
            # SQLite's merged tier, both index tables filtering: the seqs of the other one's rows
            # that the driver's key has too (one search of it a row: same seq, same generation)
            # drive, as one list. Driven by generation as above, SQLite probed the driver's key
            # with every seq of the list at each generation (an agent's 200 statements at each of
            # the generations), or with the list of that generation's rows, made again at each
            # generation (twice the time of one list over all of them, 244 generations).
            other, other_conds = (ac, activity_conds) if driver is ag else (ag, agent_conds)
            probe = exists().where(driver.c.gen == other.c.gen, driver.c.seq == other.c.seq,
                                   *(agent_conds if driver is ag else activity_conds))
            conds.append(s.c.seq.in_(_semi(other, [*other_conds, probe], gens)))
            driver = None
        elif driver is ag:
            conds += [*agent_conds, ag.c.seq == s.c.seq]
            if q.activity is not None:
                conds.append(s.c.seq.in_(_semi(ac, activity_conds, gens)))
        elif driver is ac:
            conds += [*activity_conds, ac.c.seq == s.c.seq]
            if q.agent is not None:
                conds.append(s.c.seq.in_(_semi(ag, agent_conds, gens)))
        else:
            if q.verb is not None or q.agent is not None:
                conds.append(s.c.seq.in_(_semi(ag, agent_conds, gens)))
            if q.activity is not None:
                conds.append(s.c.seq.in_(_semi(ac, activity_conds, gens)))
        if q.agent is None and q.verb is None and q.activity is None:
            conds.append(s.c.tenant == tenant)
        # else the index rows, all of the tenant, name the statements by seq; a condition on
        # the statements' tenant too would let SQLite's planner (no statistics) walk every
        # statement of the tenant and test each against the index rows: 60-80 ms over a
        # million, where fetching the named statements by seq takes well under 1 ms
        if q.registration is not None:
            conds.append(s.c.registration == uuid.UUID(q.registration))
        if q.since is not None:
            conds.append(s.c.stored > q.since)
        if q.until is not None:
            conds.append(s.c.stored <= q.until)
        if q.authority is not None:
            conds.append(s.c.authority == q.authority)
        if driver is not None and partitioned_:  # an index row names its statement's partition too
            conds.append(driver.c.stored == s.c.stored)
        order_col = driver.c.seq if driver is not None else s.c.seq
        if q.after is not None:
            conds.append(order_col > q.after if q.ascending else order_col < q.after)
        stmt = select(s.c.seq, s.c.stored, s.c.body).where(and_(*conds))
        order = [order_col]
        if driver is not None and gens:
            stmt, order = _by_generation(stmt, driver, s)
        return stmt.order_by(*(c.asc() if q.ascending else c.desc() for c in order)).limit(q.limit + 1 if limit is None else limit)

    def activity(self, tenant: str, activity_id: str) -> dict[str, Any] | None:
        a = xapi_activities
        with self.engine.connect() as conn:
            r = conn.execute(select(a.c.definition).where(a.c.tenant == tenant, a.c.id == activity_id)).first()
        return orjson.loads(r.definition) if r else None

    def definitions(self, tenant: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        a = xapi_activities
        with self.engine.connect() as conn:
            return {r.id: orjson.loads(r.definition) for r in conn.execute(
                select(a.c.id, a.c.definition).where(a.c.tenant == tenant, a.c.id.in_(ids)))}

    def attachments(self, tenant: str, sha2s: list[str]) -> dict[str, tuple[str, bytes]]:
        if not sha2s:
            return {}
        a = xapi_attachments
        with self.engine.connect() as conn:
            return {r.sha2: (r.content_type, r.content) for r in conn.execute(
                select(a.c.sha2, a.c.content_type, a.c.content).where(a.c.tenant == tenant, a.c.sha2.in_(sha2s)))}

    def agent_statements(self, tenant: str, key: str, limit: int = 200) -> list[str]:
        """Bodies of recent statements whose actor or object is the agent ``key`` (for the
        Agents resource's Person object)."""
        s = xapi_statements

        def newest(tier: Tier, n: int) -> Select[Any]:
            ag = tier.agents
            month = [ag.c.stored == s.c.stored] if partitioned(self.engine) else []
            stmt = select(s.c.body).where(ag.c.tenant == tenant, ag.c.agent == key, ag.c.role == "p", s.c.seq == ag.c.seq,
                                          s.c.tenant == tenant, *month)
            order = [ag.c.seq]
            if tier is MERGED and self._tiered:
                stmt, order = _by_generation(stmt, ag, s)
            return stmt.order_by(*(c.desc() for c in order)).limit(n)

        return [r.body for r in self._in_tiers(self._tiers(False), newest, limit)]


class _CrossJoin(Join):
    """``left CROSS JOIN right ON ...``: SQLite's planner keeps the left table the outer loop."""

    inherit_cache = True


@compiles(_CrossJoin)
def _compile_cross_join(join: _CrossJoin, compiler: Any, asfrom: bool = False, from_linter: Any = None, **kw: Any) -> str:
    if from_linter:  # as ``visit_join``: the two sides are joined
        from_linter.edges.update(itertools.product(join.left._from_objects, join.right._from_objects))
    return (join.left._compiler_dispatch(compiler, asfrom=True, from_linter=from_linter, **kw) + " CROSS JOIN "
            + join.right._compiler_dispatch(compiler, asfrom=True, from_linter=from_linter, **kw)
            + " ON " + join.onclause._compiler_dispatch(compiler, from_linter=from_linter, **kw))


def _by_generation(stmt: Select[Any], index: Table, s: Table) -> tuple[Select[Any], list[Any]]:
    """SQLite, the merged tier driving a query (``statement``): its key leads with the
    generation (``tables.GEN_BITS``), so its rows are read one key range a generation, in
    ``xapi_index_gens`` order (a generation's seqs are all above the previous one's), the index
    table's key order within each, and the statements by seq: a nested loop that reads rows in
    seq order and stops at the limit, which SQLite chooses only when told the order of the loops
    (``CROSS JOIN``). The columns to order by, newest first or oldest first."""
    g = xapi_index_gens
    joined = _CrossJoin(_CrossJoin(g, index, index.c.gen == g.c.gen), s, s.c.seq == index.c.seq)
    return stmt.select_from(joined), [g.c.gen, index.c.seq]


def _semi(index: Table, conds: list[Any], gens: bool) -> Select[Any]:
    """The seqs of an index table's rows that match ``conds`` (a semi-join of ``statement``);
    SQLite's merged tier: one key range a generation (``_by_generation``)."""
    if not gens:
        return select(index.c.seq).where(*conds)
    g = xapi_index_gens.alias()
    return select(index.c.seq).select_from(_CrossJoin(g, index, index.c.gen == g.c.gen)).where(*conds)


def _months(index: Table, q: Query) -> list[Any]:
    """PostgreSQL (``partitions``): ``since`` / ``until`` on the index rows, which carry their
    statement's ``stored``, so that only those months' partitions of the index are read (and
    joined on ``seq`` and ``stored``, an index row probes one partition of the statements)."""
    conds: list[Any] = []
    if q.since is not None:
        conds.append(index.c.stored > q.since)
    if q.until is not None:
        conds.append(index.c.stored <= q.until)
    return conds


__all__ = ["MERGED", "RECENT", "Page", "Query", "StatementReads", "Tier"]
