"""The Temporal workflows of the ``temporal`` delivery engine (``temporal_engine``), and the
plain data they take.

Kept in a module of their own that imports nothing but the standard library and
``temporalio``: Temporal's sandbox imports a workflow's module afresh for each run and checks
that the workflow only does deterministic things. So the workflows here call activities
(by name: ``tessera.deliver``, ``tessera.deliver_batch``, ``tessera.dead_letter``,
``tessera.pull``, defined with every read, write and HTTP call in ``temporal_engine``) and
sleep on Temporal timers; nothing else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

DELIVERY_WORKFLOW = "tessera.delivery"
PULL_WORKFLOW = "tessera.pull"
BATCH_WORKFLOW = "tessera.delivery_batch"
#: the failure policy's defaults (gateway.routing.policy; a connection's ``options``
#: ``retries``, ``backoff``, ``max_backoff``, ``timeout`` override them)
DEFAULT_RETRIES = 8
DEFAULT_BACKOFF = 1.0
DEFAULT_BACKOFF_MAX = 300.0
DEFAULT_TIMEOUT = 30.0


# --- what travels through Temporal (plain data: the workflow's input and results) ------------


@dataclass
class DeliveryJob:
    outbox_id: int
    key: str
    route: str
    #: the failure policy, fixed when the workflow starts
    max_attempts: int = DEFAULT_RETRIES + 1
    backoff_seconds: float = DEFAULT_BACKOFF
    backoff_max_seconds: float = DEFAULT_BACKOFF_MAX
    #: one attempt's limit (the connection's timeout plus a margin): a worker that dies
    #: mid-call is noticed after this, and the attempt runs again on another worker
    attempt_seconds: float = DEFAULT_TIMEOUT + 15
    waits: int = 0
    #: run the call as a local activity (in the workflow task's worker: fewer round trips
    #: to the Temporal service; a dead worker's attempt is retried after the workflow task
    #: times out). Off by default.
    local: bool = False


@dataclass
class BatchJob:
    """Several outbox rows of one connection (its ``batch_size`` > 1) delivered by one
    workflow. ``tag`` is the workflow id and the rows' ``lease_owner`` while the batch holds
    them: a hash of the rows' idempotency keys, attempts and due times, so a relay that
    retries the start names the same workflow (refused), while the same rows due again
    after a retry are a new batch."""

    ids: list[int]
    tag: str
    #: one attempt's limit: a worker that dies mid-batch is noticed after this, and the
    #: activity runs again (same rows, same keys) on another worker
    attempt_seconds: float = 2 * DEFAULT_TIMEOUT + 15


@dataclass
class PullJob:
    route: str
    trigger: str = "schedule"


def job_for(outbox_id: int, key: str, route: uuid.UUID | str, options: dict[str, Any] | None,
            attempt_seconds: float | None = None, local: bool = False) -> DeliveryJob:
    """The workflow input of one outbox row, with its connection's failure policy."""
    o = options or {}
    retries = int(o.get("retries", DEFAULT_RETRIES))
    timeout = float(o.get("timeout", DEFAULT_TIMEOUT))
    return DeliveryJob(
        outbox_id=outbox_id, key=key, route=str(route), max_attempts=max(1, retries + 1),
        backoff_seconds=float(o.get("backoff", DEFAULT_BACKOFF)),
        backoff_max_seconds=float(o.get("max_backoff", DEFAULT_BACKOFF_MAX)),
        attempt_seconds=attempt_seconds if attempt_seconds is not None else timeout + 15, local=local,
    )


# --- workflows (deterministic: activities and timers only) -----------------------------------


@workflow.defn(name=DELIVERY_WORKFLOW)
class DeliveryWorkflow:
    @workflow.run
    async def run(self, job: DeliveryJob) -> str:
        policy = RetryPolicy(
            initial_interval=timedelta(seconds=job.backoff_seconds), backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=job.backoff_max_seconds), maximum_attempts=job.max_attempts,
            non_retryable_error_types=["Reject"],
        )
        waits = job.waits
        while True:
            try:
                call = workflow.execute_local_activity if job.local else workflow.execute_activity
                result: dict[str, Any] = await call(
                    "tessera.deliver", job.outbox_id, start_to_close_timeout=timedelta(seconds=job.attempt_seconds),
                    retry_policy=policy, result_type=dict,
                )
            except ActivityError as e:
                cause = e.cause
                reason = str(cause.message if isinstance(cause, ApplicationError) else (cause or e))
                if not (isinstance(cause, ApplicationError) and cause.type == "Reject"):
                    # attempts exhausted (or an attempt kept failing outside deliver_one)
                    await workflow.execute_activity(
                        "tessera.dead_letter", args=[job.outbox_id, reason], start_to_close_timeout=timedelta(seconds=60),
                        retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
                    )
                raise ApplicationError(f"dead-lettered: {reason}", type="DeadLetter", non_retryable=True) from None
            if result["kind"] != "wait":
                return str(result["kind"])  # delivered | skipped (no longer pending)
            # 409 / unknown reference: a durable timer, then a fresh activity (not an attempt)
            waits += 1
            await workflow.sleep(timedelta(seconds=max(0.1, float(result.get("delay") or job.backoff_seconds))))
            if waits % 100 == 0:  # keep the history short on a long wait
                job.waits = waits
                workflow.continue_as_new(job)


@workflow.defn(name=BATCH_WORKFLOW)
class BatchWorkflow:
    @workflow.run
    async def run(self, job: BatchJob) -> dict:
        # every row's outcome (delivered, retry at a time, wait, dead letter) is written to the
        # outbox by the activity, as the embedded engine does; a row due again goes out in a
        # later batch. Temporal retries only the activity itself (a dead worker, the database
        # away), with the same rows and so the same idempotency keys.
        result: dict = await workflow.execute_activity(
            "tessera.deliver_batch", args=[job.ids, job.tag], start_to_close_timeout=timedelta(seconds=job.attempt_seconds),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                                     maximum_attempts=20),
            result_type=dict,
        )
        return result


@workflow.defn(name=PULL_WORKFLOW)
class PullWorkflow:
    @workflow.run
    async def run(self, job: PullJob) -> dict:
        # a pull that fails is recorded by run_pull; the next scheduled pull starts from the
        # stored cursor, so an attempt is not repeated here (heartbeats notice a dead worker)
        result: dict = await workflow.execute_activity(
            "tessera.pull", job, start_to_close_timeout=timedelta(hours=6), heartbeat_timeout=timedelta(seconds=120),
            retry_policy=RetryPolicy(maximum_attempts=1), result_type=dict,
        )
        return result
