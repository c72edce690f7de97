"""The ``temporal`` delivery engine: Temporal runs the routing layer's deliveries and pulls.

Tessera does not schedule, queue or cluster anything itself on this path; Temporal does
(DESIGN section 5). What maps to what:

* **a delivery** (one outbox row) is a workflow, ``tessera.delivery``, whose workflow id is
  the row's idempotency key (``{route}:{record}:{content hash}``). The id-reuse policy
  ``ALLOW_DUPLICATE_FAILED_ONLY`` makes Temporal refuse a second start of a key that is
  running or was delivered: that is the exactly-once *start*. A dead-lettered delivery
  ends its workflow as failed, so a replayed dead letter may start it again.
* **the destination call** is an activity, ``tessera.deliver``, which runs the shared step
  ``gateway.routing.engine.deliver_one`` (it records the attempt on the outbox row). Its
  retry policy mirrors the connection's failure policy: exponential backoff (the delay of
  each retry is the one ``deliver_one`` chose, jitter included, handed to Temporal as the
  error's ``next_retry_delay``), at most ``retries + 1`` attempts, and ``Reject`` (any
  other 4xx) non-retryable: the row is dead-lettered and the workflow fails. A 409 or an
  unknown reference ("wait for the dependency") is a durable timer in the workflow, then a
  fresh activity: waiting does not count toward the attempts.
* **a batch**: the rows of a connection whose ``batch_size`` option is above 1 are relayed
  in chunks of that many (one connection, id order), each a workflow
  ``tessera.delivery_batch`` whose id is the batch's tag (``batch_tag``: a hash of the rows'
  keys, attempts and due times), also the rows' ``lease_owner`` while the batch holds them.
  Its one activity, ``tessera.deliver_batch``, runs the embedded engine's
  ``Deliverer.deliver_rows`` on the rows still pending and still tagged: one request per
  batch, each row's own outcome written to the outbox (retries and waits are due again
  there and go out in a later batch; dead letters; the breaker counts a failed request
  once). Temporal retries the activity itself (a dead worker): same rows, same keys.
* **the outbox relay** (a loop in each worker) claims committed pending rows (a short
  claim on ``lease_owner``/``locked_until``; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
  any number of workers relay side by side), starts their workflows, and marks them relayed
  (``lease_owner = 'temporal'``, ``locked_until`` = now + ``relay_lease``). A relay that
  dies between the start and the mark leaves a claim that expires; the next relay's start
  of the same key is refused, and it marks the row. A row still pending when its relay
  lease runs out is offered again (refused while its workflow runs).
* **a pull route** with ``schedule_seconds`` is a Temporal Schedule
  (``{task_queue}/pull/{route id}``, overlap policy *skip*) starting ``tessera.pull``,
  whose activity runs the shared step ``run_pull`` and heartbeats after each page. The
  relay brings schedules in line with the routes table every ``schedule_sync`` seconds.

Workflows are deterministic (``temporal_workflows``, a module that imports only the standard
library and ``temporalio``, run in Temporal's sandbox): they only call activities and sleep on
timers; every read and write of the store and every HTTP call happens in the activities here
(sync functions on a thread pool).

The shared steps are those of the module ``gateway.routing.engine`` (``steps``; looked up by
name, as ``engine_for`` imports this module, and read on the module at each call, so a step
replaced there is the one that runs).

Do not run the embedded engine and this one on the same database: both would deliver.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import asdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import and_, or_, select, update
from temporalio import activity
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from ..model import utcnow
from ..store.db import WRITE
from ..store.tables import connections, outbox, routes
from .protocol import PageResult
from .temporal_workflows import (
    BATCH_WORKFLOW,
    DEFAULT_BACKOFF,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_TIMEOUT,
    DELIVERY_WORKFLOW,
    PULL_WORKFLOW,
    BatchJob,
    BatchWorkflow,
    DeliveryJob,
    DeliveryWorkflow,
    PullJob,
    PullWorkflow,
    job_for,
)

if TYPE_CHECKING:
    from types import ModuleType

    from temporalio.client import Client
    from temporalio.worker import Worker

    from ..store import Store
    from ..wiring import Wiring

log = logging.getLogger("tessera.routing.temporal")

#: a relayed row's ``lease_owner``
RELAYED = "temporal"


# --- activities (all IO) ---------------------------------------------------------------------


class Activities:
    def __init__(self, store: Store, wiring: Wiring, worker: str, steps: ModuleType) -> None:
        self.store, self.wiring, self.worker, self.steps = store, wiring, worker, steps

    @activity.defn(name="tessera.deliver")
    def deliver(self, outbox_id: int) -> dict[str, Any]:
        outcome = self.steps.deliver_one(self.store, self.wiring, outbox_id, worker=self.worker)
        now = utcnow()
        delay = max(0.0, (outcome.next_attempt_at - now).total_seconds()) if outcome.next_attempt_at else None
        if outcome.kind == "retry":
            if delay is None:  # full jitter on the Temporal attempt number
                delay = random.uniform(0, min(DEFAULT_BACKOFF_MAX, DEFAULT_BACKOFF * 2 ** activity.info().attempt))
            # expected failures: recorded on the row and in the metrics by deliver_one, so
            # BENIGN (Temporal logs them at DEBUG, not a traceback per retry)
            raise ApplicationError(outcome.error or "retry", type="Retry", next_retry_delay=timedelta(seconds=delay),
                                   category=ApplicationErrorCategory.BENIGN)
        if outcome.kind == "dead":  # deliver_one has dead-lettered the row
            raise ApplicationError(outcome.error or "rejected", type="Reject", non_retryable=True,
                                   category=ApplicationErrorCategory.BENIGN)
        return {"kind": outcome.kind, "delay": delay, "error": outcome.error}

    @activity.defn(name="tessera.deliver_batch")
    def deliver_batch(self, ids: list[int], tag: str) -> dict[str, int]:
        """Deliver the batch's rows that are still pending and still held by this batch
        (``lease_owner`` = ``tag``) through the embedded engine's ``Deliverer.deliver_rows``:
        one request per ``batch_size`` rows, each row's own outcome written to the outbox.
        Run again after a dead worker, it takes the rows whose outcome was not written yet:
        the same rows, the same idempotency keys."""
        from .delivery import deliverer_for

        with self.store.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(
                select(outbox).where(outbox.c.id.in_(ids), outbox.c.state == "pending", outbox.c.lease_owner == tag)
                .order_by(outbox.c.id)).mappings()]
        counts = {"rows": len(ids), "taken": len(rows)}
        if not rows:
            return counts
        # rows not reached before the attempt's limit are handed back (pending, due now)
        limit = activity.info().start_to_close_timeout
        left = limit.total_seconds() - min(10.0, limit.total_seconds() / 3) if limit else 60.0
        outcomes = deliverer_for(self.store, self.wiring, self.worker).deliver_rows(rows, deadline=time.monotonic() + left)
        for o in outcomes:
            counts[o.kind] = counts.get(o.kind, 0) + 1
        return counts

    @activity.defn(name="tessera.dead_letter")
    def dead_letter(self, outbox_id: int, reason: str) -> None:
        """Temporal ran out of attempts before ``deliver_one`` dead-lettered the row."""
        now = utcnow()
        with self.store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            conn.execute(
                update(outbox).where(outbox.c.id == outbox_id, outbox.c.state == "pending")
                .values(state="dead", dead_at=now, last_error=reason[:2048], lease_owner=None, locked_until=None)
            )

    @activity.defn(name="tessera.pull")
    def pull(self, job: PullJob) -> dict[str, Any]:
        def beat(page: PageResult) -> None:
            activity.heartbeat(page.read)

        summary = self.steps.run_pull(self.store, self.wiring, uuid.UUID(job.route), trigger=job.trigger, engine="temporal", progress=beat)
        out = asdict(summary)
        out["id"], out["route_id"] = str(summary.id), str(summary.route_id)
        return out


def batch_size(options: dict[str, Any]) -> int:
    """The connection option ``batch_size`` (0 or 1: one workflow per row)."""
    try:
        return int(options.get("batch_size") or 0)
    except (TypeError, ValueError):
        return 0


def batch_tag(rows: list[Any]) -> str:
    """A batch's workflow id and lease owner: a hash of its rows' idempotency keys, attempts
    and due times (the same claim gives the same tag; the same rows due again, another)."""
    h = hashlib.sha256()
    for r in sorted(rows, key=lambda r: r.id):
        h.update(f"{r.id}|{r.idempotency_key}|{r.attempts}|{r.next_attempt_at.isoformat()}\n".encode())
    return f"batch:{h.hexdigest()[:48]}"


def summary_from(steps: ModuleType, data: dict[str, Any]) -> Any:
    """``steps.SyncRunSummary`` from what the pull activity returned."""
    data = dict(data)
    data["id"], data["route_id"] = uuid.UUID(data["id"]), uuid.UUID(data["route_id"])
    return steps.SyncRunSummary(**data)


# --- the engine ------------------------------------------------------------------------------


class TemporalEngine:
    """``DeliveryEngine`` on Temporal (see the module docstring). ``start()`` runs a worker and
    the outbox relay in a background thread with its own event loop; ``stop()`` ends both."""

    name = "temporal"

    def __init__(self, store: Store, wiring: Wiring, *, steps: ModuleType | None = None, address: str | None = None, namespace: str | None = None,
                 task_queue: str | None = None, worker_id: str | None = None, concurrency: int = 32,
                 relay_interval: float = 0.2, relay_batch: int = 500, relay_lease: float = 600.0, claim_seconds: float = 30.0,
                 schedule_sync: float = 30.0, attempt_seconds: float | None = None, pollers: int = 10, eager: bool = True,
                 local_activities: bool = False, start_concurrency: int = 16, **other: object) -> None:
        if steps is None:  # the shared steps, looked up by name (engine.py imports this module)
            import importlib

            steps = importlib.import_module(".engine", __package__)
        self.store, self.wiring, self.steps = store, wiring, steps
        # ``temporal_*`` spellings too (the CLI's option names); other options are the embedded engine's
        address = address or other.get("temporal_address")  # type: ignore[assignment]
        namespace = namespace or other.get("temporal_namespace")  # type: ignore[assignment]
        task_queue = task_queue or other.get("temporal_task_queue")  # type: ignore[assignment]
        self.address = str(address or os.environ.get("TESSERA_TEMPORAL_ADDRESS") or "127.0.0.1:7233")
        self.namespace = str(namespace or os.environ.get("TESSERA_TEMPORAL_NAMESPACE") or "default")
        self.task_queue = str(task_queue or os.environ.get("TESSERA_TEMPORAL_TASK_QUEUE") or "tessera")
        self.worker_id = str(worker_id or f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}")[:64]
        self.concurrency = int(concurrency)
        self.relay_interval, self.relay_batch = float(relay_interval), int(relay_batch)
        self.relay_lease, self.claim_seconds = float(relay_lease), float(claim_seconds)
        self.schedule_sync, self.attempt_seconds = float(schedule_sync), attempt_seconds
        self.pollers, self.eager, self.local_activities = int(pollers), bool(eager), bool(local_activities)
        self.start_concurrency = max(1, int(start_concurrency))
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._client: Client | None = None

    # --- DeliveryEngine ----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._ready.clear()
        self._thread = threading.Thread(target=self._thread_main, name=f"tessera-temporal-{self.worker_id}", daemon=True)
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            error, self._thread = self._error, None
            raise RuntimeError(f"the Temporal worker did not start ({self.address}): {error}") from error

    def stop(self) -> None:
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        thread.join(60)
        self._thread = None

    def sync_once(self, route_id: uuid.UUID, *, progress: Callable[[PageResult], None] | None = None) -> Any:
        summary = self._run(self._sync_once(route_id))
        if progress is not None:
            progress(PageResult(cursor=summary.cursor_after, read=summary.read, written=summary.written, unchanged=summary.unchanged,
                                deleted=summary.deleted, failed=summary.failed, errors=summary.errors))
        return summary

    def drain(self, *, route_id: uuid.UUID | None = None, timeout: float = 60.0) -> int:
        return self._run(self._drain(route_id, timeout))

    # --- the background worker ---------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # noqa: BLE001 (reported to start(), or logged)
            self._error = e
            log.exception("the Temporal worker stopped")
        finally:
            self._ready.set()
            self._loop = None

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        client = await self._connect()
        self._client = client
        stopping = asyncio.create_task(self._stopping.wait())
        relay = asyncio.create_task(self._relay_loop(client))
        with ThreadPoolExecutor(max_workers=self.concurrency + 2, thread_name_prefix="tessera-activity") as pool:
            while True:
                # a Temporal worker that fails (its polls refused for good, a fatal error) is
                # started again rather than leaving this process relaying with nobody polling
                worker = self._worker(client, pool)
                running = asyncio.create_task(worker.run())
                if not self._ready.is_set():
                    self._ready.set()
                    log.info("temporal worker %s on %s/%s, task queue %s", self.worker_id, self.address, self.namespace, self.task_queue)
                await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stopping.done():
                    break
                log.error("the Temporal worker stopped (%s); starting it again", running.exception() or "no error")
                await asyncio.sleep(1.0)
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
            if not running.done():
                await worker.shutdown()
        self._client = None

    async def _connect(self) -> Client:
        from temporalio.client import Client

        return await Client.connect(self.address, namespace=self.namespace)

    def _worker(self, client: Client, pool: ThreadPoolExecutor) -> Worker:
        from temporalio.worker import Worker
        from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

        acts = Activities(self.store, self.wiring, f"{RELAYED}:{self.worker_id}"[:64], self.steps)
        # The workflows' module imports only the standard library and temporalio, so the
        # sandbox re-imports it for each run and checks it, passing nothing of the gateway
        # through. Only the package ``gateway`` itself, which the sandbox imports on the way,
        # resolves its own file's path (PROJECT_ROOT): that one call is allowed.
        default = SandboxRestrictions.default
        runner = SandboxedWorkflowRunner(restrictions=dataclasses.replace(
            default, invalid_module_members=default.invalid_module_members.with_child_unrestricted("pathlib", "Path", "resolve")))
        return Worker(
            client, task_queue=self.task_queue, workflows=[DeliveryWorkflow, BatchWorkflow, PullWorkflow],
            activities=[acts.deliver, acts.deliver_batch, acts.dead_letter, acts.pull], activity_executor=pool,
            max_concurrent_activities=self.concurrency, workflow_runner=runner,
            max_concurrent_workflow_task_polls=self.pollers, max_concurrent_activity_task_polls=self.pollers,
            nonsticky_to_sticky_poll_ratio=0.5,
        )

    def _run(self, coro: Any) -> Any:
        """Run a coroutine on the worker's loop when this process runs one, else on a
        temporary worker of its own (``tessera sync --once`` with no worker running)."""
        loop, thread = self._loop, self._thread
        if thread is not None and loop is not None and self._client is not None:
            return self._wait(asyncio.run_coroutine_threadsafe(coro, loop), thread)

        async def standalone() -> Any:
            client = await self._connect()
            self._client = client
            try:
                with ThreadPoolExecutor(max_workers=self.concurrency + 2) as pool:
                    async with self._worker(client, pool):
                        return await coro
            finally:
                self._client = None

        return asyncio.run(standalone())

    @staticmethod
    def _wait(future: Any, thread: threading.Thread, poll: float = 1.0) -> Any:
        """The result of a coroutine sent to the worker's loop. A loop whose thread has ended
        (the worker failed for good, or was stopped meanwhile) never runs it, and a bare
        ``result()`` would wait for ever: its thread is checked every ``poll`` seconds and its
        end is an error naming what happened instead. A long sync is not cut short: while the
        worker runs, the wait goes on."""
        while True:
            try:
                return future.result(timeout=poll)
            except FuturesTimeout:
                if not thread.is_alive():
                    future.cancel()
                    raise RuntimeError("the Temporal worker of this process stopped before the sync ended; "
                                       "nothing more was done for it (see the log for why the worker stopped)") from None

    # --- relay ---------------------------------------------------------------------------------

    async def _relay_loop(self, client: Client) -> None:
        next_schedules = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                if loop.time() >= next_schedules:
                    await self.sync_schedules(client)
                    next_schedules = loop.time() + self.schedule_sync
                if await self.relay_once(client) >= self.relay_batch:
                    continue  # more is waiting
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 (the database or Temporal is away: try again)
                log.exception("outbox relay")
                await asyncio.sleep(1.0)
            await asyncio.sleep(self.relay_interval)

    def _claim(self, route_id: uuid.UUID | None = None) -> list[DeliveryJob | BatchJob]:
        """Claim up to ``relay_batch`` due pending rows not relayed (or whose relay lease ran out).
        A row whose destination connection has ``batch_size`` > 1 goes into a ``BatchJob`` of
        up to that many rows of the connection (in id order), the batch's tag set as the rows'
        ``lease_owner`` in the same transaction; any other row is a ``DeliveryJob`` of its own."""
        now = utcnow()
        due = select(outbox.c.id).where(
            outbox.c.state == "pending", outbox.c.next_attempt_at <= now,
            or_(outbox.c.locked_until.is_(None), outbox.c.locked_until < now),
        )
        if route_id is not None:
            due = due.where(outbox.c.route_id == route_id)
        due = due.order_by(outbox.c.id).limit(self.relay_batch).with_for_update(skip_locked=True)
        until = now + timedelta(seconds=self.claim_seconds)
        jobs: list[DeliveryJob | BatchJob] = []
        with self.store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            ids = [r.id for r in conn.execute(due)]
            if not ids:
                return []
            rows = conn.execute(
                select(outbox.c.id, outbox.c.idempotency_key, outbox.c.route_id, outbox.c.attempts, outbox.c.next_attempt_at,
                       connections.c.id.label("conn_id"), connections.c.options)
                .select_from(outbox.join(routes, routes.c.id == outbox.c.route_id)
                             .outerjoin(connections, connections.c.id == routes.c.destination_connection_id))
                .where(outbox.c.id.in_(ids)).order_by(outbox.c.id)
            ).all()
            single: list[int] = []
            grouped: dict[Any, tuple[int, dict[str, Any], list[Any]]] = {}
            for r in rows:
                options = orjson.loads(r.options) if r.options else {}
                size = batch_size(options)
                if size > 1 and r.conn_id is not None:
                    grouped.setdefault(r.conn_id, (size, options, []))[2].append(r)
                else:
                    single.append(r.id)
                    jobs.append(job_for(r.id, r.idempotency_key, r.route_id, options, self.attempt_seconds, self.local_activities))
            if single:
                conn.execute(update(outbox).where(outbox.c.id.in_(single)).values(lease_owner=self.worker_id, locked_until=until))
            for size, options, members in grouped.values():
                timeout = float(options.get("timeout", DEFAULT_TIMEOUT))
                for at in range(0, len(members), size):
                    chunk = members[at:at + size]
                    job = BatchJob(ids=[r.id for r in chunk], tag=batch_tag(chunk),
                                   attempt_seconds=self.attempt_seconds if self.attempt_seconds is not None else 2 * timeout + 15)
                    conn.execute(update(outbox).where(outbox.c.id.in_(job.ids)).values(lease_owner=job.tag, locked_until=until))
                    jobs.append(job)
        return jobs

    def _mark_relayed(self, ids: list[int]) -> None:
        if not ids:
            return
        until = utcnow() + timedelta(seconds=self.relay_lease)
        with self.store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            conn.execute(update(outbox).where(
                outbox.c.id.in_(ids), outbox.c.state == "pending",
                or_(outbox.c.lease_owner == self.worker_id, outbox.c.lease_owner.is_(None)),
            ).values(lease_owner=RELAYED, locked_until=until))

    def _mark_batch_relayed(self, job: BatchJob) -> None:
        """The batch's rows keep its tag, leased for ``relay_lease`` (those whose outcome the
        batch has already written are no longer held by it and are left alone)."""
        until = utcnow() + timedelta(seconds=self.relay_lease)
        with self.store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            conn.execute(update(outbox).where(outbox.c.id.in_(job.ids), outbox.c.state == "pending",
                                              outbox.c.lease_owner == job.tag).values(locked_until=until))

    async def start_batch(self, client: Client, job: BatchJob) -> bool:
        """Start the batch's workflow; False when Temporal refuses its id (already running or done)."""
        return await self._start(client, BATCH_WORKFLOW, job, job.tag)

    async def start_delivery(self, client: Client, job: DeliveryJob) -> bool:
        """Start the row's workflow; False when Temporal refuses the key (already running or delivered)."""
        return await self._start(client, DELIVERY_WORKFLOW, job, job.key)

    async def _start(self, client: Client, workflow: str, job: Any, workflow_id: str) -> bool:
        from temporalio.exceptions import WorkflowAlreadyStartedError

        try:
            await client.start_workflow(
                workflow, job, id=workflow_id, task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                request_eager_start=self.eager and self._thread is not None, rpc_timeout=timedelta(seconds=30),
            )
        except WorkflowAlreadyStartedError:
            return False
        return True

    async def relay_once(self, client: Client, route_id: uuid.UUID | None = None) -> int:
        """Move one batch of committed pending rows into workflows; returns how many rows it took."""
        jobs = await asyncio.to_thread(self._claim, route_id)
        if not jobs:
            return 0
        gate = asyncio.Semaphore(self.start_concurrency)  # a relay does not swamp the Temporal frontend

        async def start(job: DeliveryJob | BatchJob) -> bool:
            async with gate:
                if isinstance(job, BatchJob):
                    started = await self.start_batch(client, job)
                    await asyncio.to_thread(self._mark_batch_relayed, job)
                    return started
                return await self.start_delivery(client, job)

        results = await asyncio.gather(*(start(j) for j in jobs), return_exceptions=True)
        relayed = [j.outbox_id for j, r in zip(jobs, results, strict=True)
                   if isinstance(j, DeliveryJob) and not isinstance(r, BaseException)]
        for j, r in zip(jobs, results, strict=True):
            if isinstance(r, BaseException):  # the claim expires and another relay tries again
                what = f"outbox row {j.outbox_id}" if isinstance(j, DeliveryJob) else f"batch {j.tag} (rows {j.ids})"
                log.warning("could not start the delivery of %s: %s", what, r)
        await asyncio.to_thread(self._mark_relayed, relayed)
        return sum(len(j.ids) if isinstance(j, BatchJob) else 1 for j in jobs)

    # --- schedules -----------------------------------------------------------------------------

    def schedule_id(self, route_id: uuid.UUID | str) -> str:
        return f"{self.task_queue}/pull/{route_id}"

    def _pull_routes(self) -> dict[str, int]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(routes.c.id, routes.c.schedule_seconds).where(and_(
                routes.c.mode == "pull", routes.c.enabled.is_(True), routes.c.schedule_seconds.is_not(None),
                routes.c.schedule_seconds > 0)))
            return {str(r.id): int(r.schedule_seconds) for r in rows}

    async def sync_schedules(self, client: Client) -> None:
        """One Temporal Schedule per enabled pull route with ``schedule_seconds``; schedules of
        routes gone, disabled or unscheduled are deleted."""
        from temporalio.client import (
            Schedule,
            ScheduleActionStartWorkflow,
            ScheduleAlreadyRunningError,
            ScheduleIntervalSpec,
            ScheduleOverlapPolicy,
            SchedulePolicy,
            ScheduleSpec,
            ScheduleUpdate,
            ScheduleUpdateInput,
        )

        wanted = await asyncio.to_thread(self._pull_routes)
        prefix = self.schedule_id("")
        for route, seconds in wanted.items():
            sid = self.schedule_id(route)
            schedule = Schedule(
                action=ScheduleActionStartWorkflow(PULL_WORKFLOW, PullJob(route, "schedule"), id=sid, task_queue=self.task_queue),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=seconds))]),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            )
            try:
                await client.create_schedule(sid, schedule)
                log.info("schedule %s: every %s s", sid, seconds)
            except ScheduleAlreadyRunningError:
                handle = client.get_schedule_handle(sid)
                current = await handle.describe()
                intervals = current.schedule.spec.intervals
                if len(intervals) != 1 or intervals[0].every != timedelta(seconds=seconds):

                    def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                        return ScheduleUpdate(schedule=new)

                    await handle.update(replace)
        async for listed in await client.list_schedules():
            if listed.id.startswith(prefix) and listed.id[len(prefix):] not in wanted:
                try:
                    await client.get_schedule_handle(listed.id).delete()
                except Exception:  # noqa: BLE001 (another worker deleted it first)
                    pass

    # --- sync_once / drain ---------------------------------------------------------------------

    async def _sync_once(self, route_id: uuid.UUID) -> Any:
        assert self._client is not None
        result = await self._client.execute_workflow(
            PULL_WORKFLOW, PullJob(str(route_id), "manual"), id=f"{self.schedule_id(route_id)}/manual-{uuid.uuid4().hex[:8]}",
            task_queue=self.task_queue, result_type=dict,
        )
        return summary_from(self.steps, result)

    def _due(self, route_id: uuid.UUID | None) -> list[int]:
        q = select(outbox.c.id).where(outbox.c.state == "pending", outbox.c.next_attempt_at <= utcnow())
        if route_id is not None:
            q = q.where(outbox.c.route_id == route_id)
        with self.store.engine.connect() as conn:
            return list(conn.scalars(q))

    def _states(self, ids: list[int]) -> dict[int, str]:
        with self.store.engine.connect() as conn:
            return {r.id: r.state for r in conn.execute(select(outbox.c.id, outbox.c.state).where(outbox.c.id.in_(ids)))}

    async def _drain(self, route_id: uuid.UUID | None, timeout: float) -> int:
        """Relay what is due now and wait (up to ``timeout``) until those rows are delivered or dead."""
        assert self._client is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        ids = await asyncio.to_thread(self._due, route_id)
        while loop.time() < deadline and await self.relay_once(self._client, route_id) > 0:
            pass
        states: dict[int, str] = {}
        while ids and loop.time() < deadline:
            states = await asyncio.to_thread(self._states, ids)
            if all(s != "pending" for s in states.values()):
                break
            await asyncio.sleep(0.1)
        return sum(1 for s in states.values() if s == "delivered")
