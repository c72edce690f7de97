"""Delivering claimed outbox rows: the failure policy applied (DESIGN section 6).

``Deliverer.deliver_rows`` takes rows the caller holds (the embedded dispatcher's lease, or
the Temporal workflow of the row through ``engine.deliver_one``) and for each:

1. skips it when its route is gone or disabled (postponed), or when its connection's
   circuit breaker is open (postponed to when the breaker closes, no attempt counted); a
   half-open breaker lets one trial call through, taken with an update of
   ``connection_health`` so that only one worker makes it;
2. marks it delivered without a call when its record is not of the route's ``orgs``
   (``orgs.OrgScope``), or when the record has changed since (its content hash
   is no longer the stored one): a later outbox row carries the newer content, so the
   destination only ever gets a record's current state, in commit order;
3. calls ``Destination.deliver`` and classifies what happened: delivered; ``Retry`` (and
   transport errors, and any unexpected exception) -> again after a backoff with full
   jitter or the ``Retry-After`` asked for, dead after ``retries``; ``WaitForDependency`` ->
   again later without counting, dead after ``max_wait_for_dependency``; ``Reject`` -> dead
   at once, with the request summary, the response excerpt and the status;
4. writes every row's new state in one transaction, with the connections' breaker state,
   and updates the metrics.

No text a failure carries is stored before the values of the connection's secrets are
scrubbed out of it (``load.scrub``).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
import weakref
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from sqlalchemy import bindparam, insert, select, update

from ..errors import ConfigError
from ..http.retry import RetryLater, Unreachable
from ..model import RECORD_TYPES, utcnow
from ..store.db import WRITE
from ..store.tables import RECORD_TABLES, connection_health, outbox, routes
from . import metrics
from .load import LoadedRoute, RouteCache, scrub, secret_values
from .orgs import ScopeCache
from .outcomes import Outcome
from .policy import Policy
from .protocol import EXCERPT, Connection, Delivery, DeliveryFailure, Reject, Retry, WaitForDependency

if TYPE_CHECKING:
    from ..store import Store
    from ..wiring import Wiring

log = logging.getLogger("tessera.routing")

#: ``last_error`` of a row whose record is not of its route's ``orgs`` (marked delivered, never sent)
OUTSIDE_ORGS = "outside the route's orgs (not sent)"
#: a route that is disabled, or whose destination cannot be built, is looked at again after this
PARKED = timedelta(seconds=60)


def role_object(wiring: Wiring, conn: Connection) -> Any:
    """A new Source/Destination for ``conn`` from the role's factory."""
    found = wiring.routing_roles.get(conn.role)
    if found is None:
        raise ConfigError(f"connection {conn.name!r}: no adapter provides the role {conn.role!r}")
    return found[1](conn)


def _conn_key(conn: Connection) -> tuple[Any, ...]:
    return (conn.id, conn.role, conn.base_url, orjson.dumps(dict(conn.auth), option=orjson.OPT_SORT_KEYS),
            orjson.dumps(dict(conn.options), option=orjson.OPT_SORT_KEYS))


class RoleObjects:
    """Sources/destinations built once per connection (as configured now) and reused: each
    holds its HTTP connection pool. A connection whose configuration changed gets a new one."""

    def __init__(self, wiring: Wiring) -> None:
        self.wiring = wiring
        self._lock = threading.Lock()
        self._built: dict[uuid.UUID, tuple[tuple[Any, ...], Any]] = {}
        self._retired: list[Any] = []

    def get(self, conn: Connection) -> Any:
        key = _conn_key(conn)
        with self._lock:
            hit = self._built.get(conn.id)
            if hit is not None and hit[0] == key:
                return hit[1]
            obj = role_object(self.wiring, conn)  # under the lock: threads share one per connection
            if hit is not None:  # another thread may still be using it: closed with the others
                self._retired.append(hit[1])
            self._built[conn.id] = (key, obj)
            return obj

    def close(self) -> None:
        with self._lock:
            built, self._built = self._built, {}
            retired, self._retired = self._retired, []
        for obj in [o for _, o in built.values()] + retired:
            _close(obj)


def _close(obj: Any) -> None:
    close = getattr(obj, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # closing a pool must never stop the engine
            log.debug("closing %r failed", obj, exc_info=True)


@dataclass
class _Health:
    failures: int
    open_until: datetime | None
    #: this batch: calls that succeeded, failures since the last success
    succeeded: bool = False
    new_failures: int = 0
    last_error: str | None = None
    trial_from: list[datetime] = field(default_factory=list)


@dataclass
class _Ready:
    """A row past the checks, with its ``Delivery``: what ``_send`` sends."""

    row: Mapping[str, Any]
    conn: Connection
    policy: Policy
    h: _Health
    delivery: Delivery


#: by primary key only: with the tenant in the WHERE clause SQLite's planner walks the
#: (tenant, updated_at, id) index over every record of the tenant instead (1.4 s a batch at
#: 50,000 records); the tenant is checked on the rows found
_RECORD_Q = {kind: select(tbl.c.id, tbl.c.tenant, tbl.c.data, tbl.c.content_hash).where(tbl.c.id.in_(bindparam("ids", expanding=True)))
             for kind, tbl in RECORD_TABLES.items()}

_FINISH = (
    update(outbox)
    .where(outbox.c.id == bindparam("row_id"), outbox.c.state == "pending")
    .values(state=bindparam("s_state"), attempts=bindparam("s_attempts"), next_attempt_at=bindparam("s_next"),
            locked_until=None, lease_owner=None, last_error=bindparam("s_error"), last_status=bindparam("s_status"),
            last_request=bindparam("s_request"), last_response=bindparam("s_response"), waiting_on=bindparam("s_waiting"),
            delivered_at=bindparam("s_delivered"), dead_at=bindparam("s_dead"))
)


class Deliverer:
    """Delivers rows the caller holds, applying each connection's policy (module docstring)."""

    def __init__(self, store: Store, wiring: Wiring, *, worker: str, route_cache: RouteCache | None = None,
                 random: Callable[[], float] | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.wiring = wiring
        self.worker = worker
        self.routes = route_cache or RouteCache(store.engine)
        self.objects = RoleObjects(wiring)
        self.random = random
        self.clock = clock
        self.scopes = ScopeCache(store)

    def close(self) -> None:
        self.objects.close()

    # --- the batch --------------------------------------------------------------------------------

    def deliver_rows(self, rows: Sequence[Mapping[str, Any]], *, deadline: float | None = None) -> list[Outcome]:
        """Deliver ``rows`` (outbox rows as mappings, in id order) and store each one's outcome.
        Rows left when ``deadline`` (``time.monotonic``) passes are handed back undelivered.

        The rows of one connection go out together: one request for several rows where its
        destination has ``deliver_batch`` (``batch_size`` of them at most), else one call
        each, in id order; every row still gets its own outcome."""
        loaded = {rid: self.routes.get(rid) for rid in {r["route_id"] for r in rows}}
        health = self._health({lr.route.destination.id for lr in loaded.values() if lr and lr.route.destination})
        records = self._records(rows)
        results: list[tuple[Outcome, dict[str, Any]] | None] = [None] * len(rows)
        ready: dict[uuid.UUID, list[tuple[int, _Ready]]] = {}
        for i, row in enumerate(rows):
            if deadline is not None and time.monotonic() > deadline:
                results[i] = Outcome("skipped"), self._release(row)
                continue
            try:
                got = self._prepare(row, loaded.get(row["route_id"]), health, records)
            except Exception as exc:  # e.g. a stored record this code cannot read: the row is retried, recorded
                results[i] = self._unexpected(row, exc)
                continue
            if isinstance(got, _Ready):
                ready.setdefault(got.conn.id, []).append((i, got))
            else:
                results[i] = got
        for items in ready.values():
            for i, sent in self._send(items, deadline):
                results[i] = sent
        finished: list[dict[str, Any]] = []
        outcomes: list[Outcome] = []
        delivered_rows: list[Mapping[str, Any]] = []
        for row, result in zip(rows, results, strict=True):
            assert result is not None
            outcome, values = result
            if outcome.kind == "delivered" and values.get("s_error") is None:
                delivered_rows.append(row)
            finished.append(values)
            outcomes.append(outcome)
        self._write(finished, health, loaded, delivered_rows)
        return outcomes

    def _unexpected(self, row: Mapping[str, Any], exc: Exception) -> tuple[Outcome, dict[str, Any]]:
        log.warning("delivery of outbox row %s failed before the call", row["id"], exc_info=(type(exc), exc, exc.__traceback__))
        error = f"unexpected {type(exc).__name__}: {exc}"[:EXCERPT]
        later = self.clock() + PARKED
        return Outcome("retry", next_attempt_at=later, error=error), self._values(
            row, state="pending", attempts=row["attempts"] + 1, next_at=later, error=error)

    def _release(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return self._values(row, state="pending", attempts=row["attempts"], next_at=self.clock(),
                            error=row.get("last_error"), keep=row)

    def _values(self, row: Mapping[str, Any], *, state: str, attempts: int, next_at: datetime, error: str | None = None,
                status: int | None = None, request: str | None = None, response: str | None = None,
                waiting: str | None = None, delivered: datetime | None = None, dead: datetime | None = None,
                keep: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if keep is not None:  # leave what the last real attempt recorded
            status, request, response, waiting = keep.get("last_status"), keep.get("last_request"), keep.get("last_response"), keep.get("waiting_on")
        return {"row_id": row["id"], "s_state": state, "s_attempts": attempts, "s_next": next_at, "s_error": error,
                "s_status": status, "s_request": request, "s_response": response, "s_waiting": waiting,
                "s_delivered": delivered, "s_dead": dead}

    # --- one row ------------------------------------------------------------------------------------

    def _prepare(self, row: Mapping[str, Any], lr: LoadedRoute | None, health: dict[uuid.UUID, _Health],
                 records: dict[tuple[str, uuid.UUID], tuple[str, str]]) -> _Ready | tuple[Outcome, dict[str, Any]]:
        """The row's ``Delivery``, ready to send; or its outcome when there is nothing to send
        (route gone or disabled, breaker open, superseded)."""
        now = self.clock()
        if lr is None or lr.route.destination is None:
            msg = "the route no longer exists or has no destination"
            return Outcome("dead", error=msg), self._values(row, state="dead", attempts=row["attempts"], next_at=now,
                                                             error=msg, dead=now)
        route, conn = lr.route, lr.route.destination
        if not lr.enabled:
            later = now + PARKED
            return Outcome("wait", next_attempt_at=later, error="the route is disabled"), self._values(
                row, state="pending", attempts=row["attempts"], next_at=later, error="the route is disabled", keep=row)
        try:
            policy = Policy.from_options(conn.options)
        except ConfigError as exc:
            later = now + PARKED
            return Outcome("wait", next_attempt_at=later, error=str(exc)), self._values(
                row, state="pending", attempts=row["attempts"], next_at=later, error=str(exc), keep=row)
        h = health.setdefault(conn.id, _Health(0, None))
        if policy.breaker_failures and h.open_until is not None:
            if h.open_until > now:
                return self._postpone(row, h.open_until)
            if h.failures >= policy.breaker_failures:  # half-open: one trial call, taken in the database
                trial_until = now + timedelta(seconds=policy.breaker_seconds)
                if not self._take_trial(conn.id, h, trial_until):
                    return self._postpone(row, h.open_until if h.open_until and h.open_until > now else trial_until)
        # the record as stored now; a changed one is carried by a later row
        record = None
        kind = row["record_kind"]
        if kind in RECORD_TYPES:
            found = records.get((kind, row["record_id"]))
            if found is not None:
                data, digest = found
                if digest != row["content_hash"]:
                    return Outcome("skipped"), self._values(row, state="delivered", attempts=row["attempts"], next_at=now,
                                                            error="superseded by a later change of the record", delivered=now)
                record = RECORD_TYPES[kind].model_validate_json(data)
        if route.orgs and not self.scopes.get(route.tenant, route.orgs).admits(kind, record):
            return Outcome("skipped"), self._values(row, state="delivered", attempts=row["attempts"], next_at=now,
                                                    error=OUTSIDE_ORGS, delivered=now)
        delivery = Delivery(route=route, outbox_id=row["id"], record_kind=kind, record_id=row["record_id"],
                            content_hash=row["content_hash"], idempotency_key=row["idempotency_key"], record=record,
                            attempt=row["attempts"] + 1)
        return _Ready(row, conn, policy, h, delivery)

    def _send(self, items: list[tuple[int, _Ready]], deadline: float | None) -> list[tuple[int, tuple[Outcome, dict[str, Any]]]]:
        """Send the ready rows of one connection: in requests of up to ``batch_size`` rows
        where the destination takes several, else one by one; stop sending (postpone) once
        the connection's breaker opens, and hand rows back once ``deadline`` passes."""
        first = items[0][1]
        conn, h, policy = first.conn, first.h, first.policy
        out: list[tuple[int, tuple[Outcome, dict[str, Any]]]] = []
        try:
            destination = self.objects.get(conn)
        except Exception as exc:  # its factory refuses the connection as configured now: retried later, recorded
            return [(i, self._classify(r, exc, count=n == 0)) for n, (i, r) in enumerate(items)]
        batch = getattr(destination, "deliver_batch", None)
        size = max(1, policy.batch_size or int(getattr(destination, "batch_size", 1) or 1)) if callable(batch) else 1
        for at in range(0, len(items), size):
            group = items[at:at + size]
            now = self.clock()
            if deadline is not None and time.monotonic() > deadline:
                out.extend((i, (Outcome("skipped"), self._release(r.row))) for i, r in group)
                continue
            if policy.breaker_failures and h.open_until is not None and h.open_until > now and not h.trial_from:
                out.extend((i, self._postpone(r.row, h.open_until)) for i, r in group)
                continue
            errors: list[BaseException | None]
            if len(group) > 1 and callable(batch):
                try:
                    errors = list(batch(self.store, [r.delivery for _, r in group]))
                except Exception as exc:  # the whole request failed: each row's failure
                    errors = [exc] * len(group)
                if len(errors) != len(group):
                    errors = [RuntimeError(f"deliver_batch returned {len(errors)} results for {len(group)} rows")] * len(group)
            else:
                try:
                    destination.deliver(self.store, group[0][1].delivery)
                    errors = [None]
                except Exception as exc:
                    errors = [exc]
            # one request that failed as a whole is one failed call for the circuit breaker
            counted: set[int] = set()
            for (i, r), err in zip(group, errors, strict=True):
                new_call = err is None or id(err) not in counted
                if err is not None:
                    counted.add(id(err))
                out.append((i, self._classify(r, err, count=new_call)))
        return out

    def _classify(self, ready: _Ready, exc: BaseException | None, *, count: bool = True) -> tuple[Outcome, dict[str, Any]]:
        """What one attempt came to: delivered (``exc`` None) or the failure policy applied;
        ``count``: a failure counts toward the circuit breaker (once per failed request)."""
        row, route, policy, h, conn = ready.row, ready.delivery.route, ready.policy, ready.h, ready.conn
        attempt = ready.delivery.attempt
        now = self.clock()
        if exc is None:
            h.succeeded, h.new_failures, h.open_until, h.failures = True, 0, None, 0
            metrics.DELIVERIES.labels(route=route.name).inc()
            metrics.LAG.labels(route=route.name).observe(max(0.0, (now - row["created_at"]).total_seconds()))
            return Outcome("delivered"), self._values(row, state="delivered", attempts=attempt, next_at=now, delivered=now)
        secrets = secret_values(conn)
        if isinstance(exc, WaitForDependency):
            since = waiting_since(row.get("waiting_on")) or now
            waited = (now - since).total_seconds()
            waiting = f"{scrub(exc.depends_on or exc.message, secrets)} (waiting since {since.isoformat()})"
            kw = self._failure_fields(exc, secrets)
            metrics.FAILURES.labels(route=route.name, outcome="wait").inc()
            if waited >= policy.max_wait_for_dependency:
                msg = f"{kw['error']} (waited {waited:.0f} s for a dependency; the limit is {policy.max_wait_for_dependency:.0f} s)"
                kw["error"] = msg
                return Outcome("dead", error=msg), self._values(row, state="dead", attempts=attempt, next_at=now, waiting=waiting,
                                                                 dead=now, **kw)
            later = now + timedelta(seconds=policy.wait_delay(waited, random=self.random))
            return Outcome("wait", next_attempt_at=later, error=kw["error"]), self._values(
                row, state="pending", attempts=row["attempts"], next_at=later, waiting=waiting, **kw)
        if isinstance(exc, Reject):
            kw = self._failure_fields(exc, secrets)
            metrics.FAILURES.labels(route=route.name, outcome="dead").inc()
            return Outcome("dead", error=kw["error"]), self._values(row, state="dead", attempts=attempt, next_at=now, dead=now, **kw)
        # Retry, transport errors, and anything unexpected: try again later
        kw, retry_after = self._retry_fields(exc, secrets)
        if count:
            self._failed(h, policy, now, kw["error"])
        if policy.exhausted(attempt):
            kw["error"] = f"{kw['error']} (gave up after {attempt} attempt{'s' if attempt > 1 else ''})"
            metrics.FAILURES.labels(route=route.name, outcome="dead").inc()
            return Outcome("dead", error=kw["error"]), self._values(row, state="dead", attempts=attempt, next_at=now,
                                                                     dead=now, **kw)
        later = now + timedelta(seconds=policy.retry_delay(attempt, retry_after, random=self.random))  # from the answer
        metrics.FAILURES.labels(route=route.name, outcome="retry").inc()
        metrics.RETRIES.labels(route=route.name).inc()
        return Outcome("retry", next_attempt_at=later, error=kw["error"]), self._values(
            row, state="pending", attempts=attempt, next_at=later, **kw)

    def _postpone(self, row: Mapping[str, Any], until: datetime) -> tuple[Outcome, dict[str, Any]]:
        return Outcome("wait", next_attempt_at=until, error="circuit breaker open"), self._values(
            row, state="pending", attempts=row["attempts"], next_at=until, error=row.get("last_error"), keep=row)

    def _failed(self, h: _Health, policy: Policy, now: datetime, error: str | None) -> None:
        h.failures += 1
        h.new_failures += 1
        h.last_error = error
        if policy.breaker_failures and h.failures >= policy.breaker_failures:
            h.open_until = now + timedelta(seconds=policy.breaker_seconds)

    @staticmethod
    def _failure_fields(exc: DeliveryFailure, secrets: list[str]) -> dict[str, Any]:
        return {"error": scrub(exc.message, secrets), "status": exc.status, "request": scrub(exc.request, secrets),
                "response": scrub(exc.response[:EXCERPT] if exc.response else exc.response, secrets)}

    def _retry_fields(self, exc: BaseException, secrets: list[str]) -> tuple[dict[str, Any], float | None]:
        if isinstance(exc, Retry):
            return self._failure_fields(exc, secrets), exc.retry_after
        if isinstance(exc, DeliveryFailure):
            return self._failure_fields(exc, secrets), None
        if isinstance(exc, RetryLater):
            return {"error": scrub(str(exc), secrets), "status": exc.status, "request": None, "response": None}, exc.seconds
        if isinstance(exc, (Unreachable, httpx.TransportError)):
            return {"error": scrub(f"{type(exc).__name__}: {exc}", secrets), "status": None, "request": None, "response": None}, None
        log.warning("delivery raised %s", type(exc).__name__, exc_info=True)
        return {"error": scrub(f"unexpected {type(exc).__name__}: {exc}"[:EXCERPT], secrets), "status": None, "request": None,
                "response": None}, None

    # --- reads ------------------------------------------------------------------------------------------

    def _health(self, ids: set[uuid.UUID]) -> dict[uuid.UUID, _Health]:
        if not ids:
            return {}
        q = select(connection_health.c.connection_id, connection_health.c.consecutive_failures, connection_health.c.open_until
                   ).where(connection_health.c.connection_id.in_(list(ids)))
        with self.store.engine.connect() as c:
            return {r.connection_id: _Health(r.consecutive_failures, r.open_until) for r in c.execute(q)}

    def _records(self, rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, uuid.UUID], tuple[str, str]]:
        wanted: dict[tuple[str, str], set[uuid.UUID]] = defaultdict(set)
        for row in rows:
            if row["record_kind"] in _RECORD_Q:
                wanted[(row["tenant"], row["record_kind"])].add(row["record_id"])
        out: dict[tuple[str, uuid.UUID], tuple[str, str]] = {}
        if not wanted:
            return out
        with self.store.engine.connect() as c:
            for (tenant, kind), ids in wanted.items():
                for r in c.execute(_RECORD_Q[kind], {"ids": list(ids)}):
                    if r.tenant == tenant:
                        out[(kind, r.id)] = (r.data, r.content_hash)
        return out

    def _take_trial(self, cid: uuid.UUID, h: _Health, until: datetime) -> bool:
        """Claim the half-open breaker's one trial call: only the worker whose update finds the
        breaker as it read it makes the call; the others see it open until ``until``."""
        cond = connection_health.c.open_until == h.open_until if h.open_until is not None else connection_health.c.open_until.is_(None)
        with self.store.engine.connect().execution_options(**WRITE) as c, c.begin():
            n = c.execute(update(connection_health).where(connection_health.c.connection_id == cid, cond).values(open_until=until)).rowcount
        if n == 1:
            if h.open_until is not None:
                h.trial_from.append(h.open_until)
            h.trial_from.append(until)
        h.open_until = until
        return n == 1

    # --- the write ----------------------------------------------------------------------------------------

    def _write(self, finished: list[dict[str, Any]], health: dict[uuid.UUID, _Health], loaded: Mapping[uuid.UUID, LoadedRoute | None],
               delivered_rows: list[Mapping[str, Any]]) -> None:
        now = self.clock()
        repair = self._superseded_during(delivered_rows)
        with self.store.engine.connect().execution_options(**WRITE) as c, c.begin():
            if finished:
                c.execute(_FINISH, finished)
            for key in repair:  # a newer version went out before this older one landed: send it again
                c.execute(update(outbox).where(outbox.c.idempotency_key == key, outbox.c.state == "delivered")
                          .values(state="pending", next_attempt_at=now, delivered_at=None, attempts=0))
            for cid, h in health.items():
                if not (h.succeeded or h.new_failures or h.trial_from):
                    continue
                tenant = next((lr.route.tenant for lr in loaded.values() if lr and lr.route.destination
                               and lr.route.destination.id == cid), None)
                if tenant is None:
                    continue
                c.execute(_insert_ignore(c, connection_health).values(connection_id=cid, tenant=tenant, consecutive_failures=0))
                values: dict[str, Any] = {}
                if h.succeeded:
                    values.update(consecutive_failures=h.new_failures, open_until=h.open_until, last_success_at=now)
                    if h.trial_from:  # the trial call succeeded: rows postponed while the breaker was open are due now
                        route_ids = [rid for rid, lr in loaded.items() if lr and lr.route.destination and lr.route.destination.id == cid]
                        route_ids += list(c.scalars(select(routes.c.id).where(routes.c.destination_connection_id == cid)))
                        c.execute(update(outbox).where(outbox.c.route_id.in_(set(route_ids)), outbox.c.state == "pending",
                                                       outbox.c.next_attempt_at.in_(h.trial_from)).values(next_attempt_at=now))
                elif h.new_failures:
                    values.update(consecutive_failures=connection_health.c.consecutive_failures + h.new_failures)
                    if h.open_until is not None:
                        values["open_until"] = h.open_until
                if h.new_failures:
                    values.update(last_error=h.last_error, last_failure_at=now)
                if values:
                    c.execute(update(connection_health).where(connection_health.c.connection_id == cid).values(**values))
                metrics.BREAKER_OPEN.labels(connection=_conn_name(loaded, cid)).set(
                    1 if h.open_until is not None and h.open_until > now else 0)

    def _superseded_during(self, delivered: list[Mapping[str, Any]]) -> list[str]:
        """Idempotency keys of the newer versions of records that changed while an older
        version was being delivered (rare): they go out again, after it."""
        if not delivered:
            return []
        current = self._records(delivered)
        keys = []
        for r in delivered:
            found = current.get((r["record_kind"], r["record_id"]))
            if found is not None and found[1] != r["content_hash"]:
                keys.append(f"{r['route_id']}:{r['record_id']}:{found[1]}")
        return keys


_SINCE = re.compile(r"\(waiting since ([^)]+)\)$")


def waiting_since(waiting_on: str | None) -> datetime | None:
    """When the row started waiting for its dependency: ``waiting_on`` ends with it (a
    replay clears ``waiting_on``, so a replayed row gets the whole wait again)."""
    m = _SINCE.search(waiting_on or "")
    if m is None:
        return None
    try:
        return datetime.fromisoformat(m.group(1))
    except ValueError:
        return None


def _conn_name(loaded: Mapping[uuid.UUID, LoadedRoute | None], cid: uuid.UUID) -> str:
    for lr in loaded.values():
        if lr and lr.route.destination and lr.route.destination.id == cid:
            return lr.route.destination.name
    return str(cid)


def _insert_ignore(c: Any, table: Any) -> Any:
    if c.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    if c.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    return insert(table)


__all__ = ["Deliverer", "RoleObjects", "deliverer_for", "role_object"]


_DELIVERERS: weakref.WeakKeyDictionary[Any, dict[tuple[int, str], Deliverer]] = weakref.WeakKeyDictionary()
_DELIVERERS_LOCK = threading.Lock()


def deliverer_for(store: Store, wiring: Wiring, worker: str) -> Deliverer:
    """One ``Deliverer`` per (store, wiring, worker), kept while the store lives: its
    destinations keep their connection pools between calls (``engine.deliver_one``)."""
    with _DELIVERERS_LOCK:
        per_store = _DELIVERERS.setdefault(store, {})
        key = (id(wiring), worker)
        found = per_store.get(key)
        if found is None or found.wiring is not wiring:
            found = per_store[key] = Deliverer(store, wiring, worker=worker)
        return found
