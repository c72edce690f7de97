"""PostgreSQL: a batch of statements written in two round trips (issue 22).

The statement writer's transaction used to send its statements one by one through
SQLAlchemy: BEGIN, the deriver's floor lock, the seqs, the id table, the statements, their
agent and activity index rows, the tenant lock, the statements an earlier voiding statement
targets, the tenant's push routes, COMMIT: eleven round trips a batch, each waited for while
the transaction stayed open, and each column of each INSERT adapted element by element by
psycopg's array dumper in Python (about 1 us an element, ~6,000 elements a batch of 100).
Here, with psycopg's pipeline mode:

1. **one round trip** sends BEGIN, the floor lock (``derive``: the consumer reads no seq of a
   transaction still open), the tenant lock (shared; exclusive for a batch with voiding
   statements, ``StatementStore._tenant_lock``), the seqs, the batch's statements that an
   earlier voiding statement targets, and the tenant's push routes, and reads all of their
   answers at once;
2. **one round trip** sends ONE statement that inserts the statements, their ids and their
   index rows (data-modifying CTEs), and the COMMIT. Each column goes as one JSON array
   (``orjson``: microseconds a batch) that the server unpacks with
   ``json_array_elements_text``; values every row shares (tenant, stored, authority) go once.

What is rare takes more round trips, through SQLAlchemy on the same connection and in the same
transaction, after the INSERT: marking statements voided (and, inline, their evidence),
attachments, the outbox rows of push routes and activity definitions the process has not seen.

The order of the locks is the one every statement transaction takes: the tenant's before any
row is written and before any activity's (``_merge_definitions``) or learner's (inline
evidence) lock, so a batch that waits for the tenant lock holds nothing another batch waits for.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import orjson
import psycopg
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError as DbIntegrityError

from gateway.store.outbox import _ROUTES, RouteMatch

from .derive import FLOOR_LOCK, FLOOR_PARAMS
from .outbox import KIND

#: ``derive.Deriver.guard``'s floor lock: a shared lock whose key carries the sequence's current value
_TENANT = "SELECT pg_advisory_xact_lock{}(hashtextextended(%(t)s, 1))"
_SEQS = "SELECT nextval('xapi_statements_seq_seq') FROM generate_series(1, %(n)s)"
#: Data 2.3.2.s2.b3: of the batch's ids, those an earlier voiding statement targets
_VOIDED_EARLIER = ("SELECT voiding FROM xapi_statements WHERE tenant = %(t)s "
                   "AND voiding = ANY(ARRAY(SELECT CAST(i AS uuid) FROM json_array_elements_text(CAST(%(ids)s AS json)) AS i))")
_ROUTES_COMPILED = _ROUTES.compile(dialect=postgresql.dialect(paramstyle="pyformat"))
_ROUTES_SQL = str(_ROUTES_COMPILED)
_ROUTES_PARAMS = {k: v for k, v in _ROUTES_COMPILED.params.items() if k != "tenant"}  # its literals ("push")


def _cols(*names: str) -> str:
    return ", ".join(f"json_array_elements_text(CAST(%({n})s AS json))" for n in names)


_INSERT = f"""
WITH s AS (
    INSERT INTO xapi_statements (seq, tenant, id, stored, verb_id, registration, voiding, voided, authority, attachments,
                                 deferred, body)
    SELECT CAST(q AS bigint), %(tenant)s, CAST(i AS uuid), %(stored)s, v, CAST(r AS uuid), CAST(o AS uuid), false,
           %(authority)s, CAST(a AS boolean), %(deferred)s, b
    FROM ROWS FROM ({_cols("seq", "id", "verb", "registration", "voiding", "attachments")},
                    unnest(CAST(%(body)b AS text[]))) AS u(q, i, v, r, o, a, b)
), ids AS (
    INSERT INTO xapi_statement_ids (tenant, id, seq, stored)
    SELECT %(tenant)s, CAST(i AS uuid), CAST(q AS bigint), %(stored)s FROM ROWS FROM ({_cols("id", "seq")}) AS u(i, q)
), agents AS (
    INSERT INTO xapi_statement_agents (tenant, agent, verb_id, seq, role, stored)
    SELECT %(tenant)s, g, v, CAST(q AS bigint), r, %(stored)s
    FROM ROWS FROM ({_cols("agent", "agent_verb", "agent_seq", "agent_role")}) AS u(g, v, q, r)
)
INSERT INTO xapi_statement_activities (tenant, activity, seq, role, stored)
SELECT %(tenant)s, c, CAST(q AS bigint), r, %(stored)s
FROM ROWS FROM ({_cols("activity", "activity_seq", "activity_role")}) AS u(c, q, r)
"""


class Batch:
    """A batch's rows as columns, built before its transaction opens (``StatementStore._plan_pg``),
    but for the seqs, which the first round trip brings."""

    def __init__(self, tenant: str, stored: Any, authority: str, deferred: bool) -> None:
        self.tenant, self.stored, self.authority, self.deferred = tenant, stored, authority, True if deferred else None
        self.ids: list[str] = []
        self.verbs: list[str] = []
        self.registrations: list[str | None] = []
        self.voiding: list[str | None] = []
        self.attachments: list[bool] = []
        self.bodies: list[str] = []
        self.agents: list[str] = []
        self.agent_verbs: list[str] = []
        self.agent_roles: list[str] = []
        self.agent_of: list[int] = []  # the batch position of each agent row's statement
        self.activities: list[str] = []
        self.activity_roles: list[str] = []
        self.activity_of: list[int] = []
        self.definitions: dict[str, dict[str, Any]] = {}  # those that may change what the LRS holds

    def params(self, seqs: list[int]) -> dict[str, Any]:
        d = orjson.dumps
        return {
            "tenant": self.tenant, "stored": self.stored, "authority": self.authority, "deferred": self.deferred,
            "seq": d(seqs).decode(), "id": d(self.ids).decode(), "verb": d(self.verbs).decode(),
            "registration": d(self.registrations).decode(), "voiding": d(self.voiding).decode(),
            "attachments": d(self.attachments).decode(), "body": self.bodies,
            "agent": d(self.agents).decode(), "agent_verb": d(self.agent_verbs).decode(),
            "agent_seq": d([seqs[i] for i in self.agent_of]).decode(), "agent_role": d(self.agent_roles).decode(),
            "activity": d(self.activities).decode(), "activity_seq": d([seqs[i] for i in self.activity_of]).decode(),
            "activity_role": d(self.activity_roles).decode(),
        }


class Written:
    """What the two round trips found: the seqs, the statements of the batch an earlier voiding
    statement targets, and the tenant's push routes that carry statements."""

    def __init__(self, seqs: list[int], voided_earlier: list[uuid.UUID], routes: list[RouteMatch]) -> None:
        self.seqs, self.voided_earlier, self.routes = seqs, voided_earlier, routes


def write(conn: Connection, batch: Batch, *, guard: bool, exclusive: bool, commit: bool,
          rest: Any = None) -> Written:
    """Write ``batch`` in ``conn``'s transaction (PostgreSQL; begun by the caller, which on this
    driver sends nothing: psycopg sends BEGIN with the first statement). ``guard``: take the deriver's floor
    lock first (async mode). ``exclusive``: the batch voids statements (the tenant lock taken
    exclusive). ``rest(written)`` says whether more must be written after the INSERT (through
    ``conn``, in this transaction): if not and ``commit``, the COMMIT goes with the INSERT.
    A stored id raises SQLAlchemy's ``IntegrityError``, as the INSERT through SQLAlchemy did."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    t = batch.tenant
    try:
        with raw.pipeline() as pipe:
            cur = raw.cursor()
            if guard:
                cur.execute(FLOOR_LOCK, FLOOR_PARAMS)
            cur.execute(_TENANT.format("" if exclusive else "_shared"), {"t": t})
            seqs_cur = raw.cursor()
            seqs_cur.execute(_SEQS, {"n": len(batch.ids)})
            voided_cur = raw.cursor()
            voided_cur.execute(_VOIDED_EARLIER, {"t": t, "ids": orjson.dumps(batch.ids).decode()})
            routes_cur = raw.cursor()
            routes_cur.execute(_ROUTES_SQL, {**_ROUTES_PARAMS, "tenant": t})
            pipe.sync()
            seqs = sorted(r[0] for r in seqs_cur.fetchall())
            routes = [RouteMatch(r[0], frozenset(orjson.loads(r[1])), r[2]) for r in routes_cur.fetchall()]
            written = Written(seqs, [r[0] for r in voided_cur.fetchall()], [r for r in routes if KIND in r.kinds])
            cur.execute(_INSERT, batch.params(seqs))
            more = rest(written) if rest is not None else False
            if commit and not more:
                conn.commit()  # in the pipeline: the COMMIT goes with the INSERT, one round trip
    except BaseException as exc:
        # out of the pipeline: a failed statement left the transaction aborted (INERROR); roll
        # it back here, so that the connection goes back to its pool idle whatever the caller's
        # SQLAlchemy transaction thought of it (its own rollback then finds nothing to do)
        with contextlib.suppress(psycopg.Error):
            raw.rollback()
        if isinstance(exc, psycopg.IntegrityError):
            raise DbIntegrityError(_INSERT, None, exc) from exc
        raise
    return written


__all__ = ["Batch", "Written", "write"]
