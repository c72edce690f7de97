"""Crash proof of the embedded engine on PostgreSQL: three worker processes (what
``tessera worker`` runs: ``python -m gateway.routing.dispatch``) share the outbox; one is
killed with SIGKILL in the middle of its deliveries. Every change is delivered, none is
lost, and the sink, which applies each idempotency key once, applies none twice. And a
destination that is down for a while: the backlog drains once it is back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.store import Store
from gateway.store.tables import outbox
from tests.conftest import free_port
from tests.factories import org
from tests.routing_sink import Answer, Sink, run_sink

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)]

SECRET = "whsec-crash-4Hq8"
T = "t1"
ROOT = Path(__file__).resolve().parent.parent


def hook(store: Store, url: str) -> None:
    cid = store.routing.create_connection(
        T, "hook", adapter="webhook", role="webhook", system="lms", base_url=url, auth={"signing_secret": "env:CRASH_HOOK_SECRET"},
        options={"timeout": 5, "retries": 100, "backoff": 0.1, "max_backoff": 0.5, "breaker_failures": 3, "breaker_seconds": 1})
    store.routing.create_route(T, "to-lms", destination=cid, kinds=["org"])


class Workers:
    def __init__(self, url: str) -> None:
        self.url = url
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        env = {**os.environ, "CRASH_HOOK_SECRET": SECRET, "PYTHONPATH": str(ROOT)}
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "gateway.routing.dispatch", "--database-url", self.url, "--worker-id", name, "--threads", "2",
             "--batch", "8", "--lease", "3", "--poll", "0.05", "--no-scheduler"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def workers(_pg_database: str) -> Iterator[Workers]:
    """Three workers for the module (starting a process is most of these tests' time): they
    deliver whatever route each test creates in the (truncated) database."""
    w = Workers(_pg_database)
    for name in ("w0", "w1", "w2"):
        w.start(name)
    yield w
    w.stop()


def leased_to(store: Store, worker: str) -> int:
    with store.engine.connect() as c:
        return int(c.scalar(select(func.count()).select_from(outbox).where(outbox.c.lease_owner == worker, outbox.c.state == "pending")) or 0)


def states(store: Store) -> dict[str, int]:
    with store.engine.connect() as c:
        return dict(c.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all())  # type: ignore[arg-type]


def wait_for(pred: Any, timeout: float, what: str, workers: Workers | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            errs = {n: p.stderr.read(4000) if p.poll() is not None and p.stderr else b"" for n, p in (workers.procs.items() if workers else [])}
            raise AssertionError(f"timed out waiting for {what}; exited workers' stderr: {errs}")
        time.sleep(0.05)


def test_sigkill_of_one_worker_of_three_loses_nothing_and_applies_nothing_twice(workers: Workers, store: Store) -> None:
    n = 120

    def slow(sink: Sink, ev: dict[str, Any]) -> Answer:
        return Answer(200, delay=0.02)

    with run_sink(SECRET, slow) as sink:
        hook(store, sink.url)
        store.records.apply(T, [org(f"a{i}") for i in range(n // 2)])
        # the first worker seen holding leases is killed (waiting for one named worker failed on
        # a loaded machine: the other two had claimed and delivered every row before it polled)
        victim: list[str] = []

        def one_holds_leases() -> bool:
            victim[:] = [name for name, p in workers.procs.items() if p.poll() is None and leased_to(store, name) > 0][:1]
            return bool(victim)

        wait_for(one_holds_leases, 30, "a worker to hold leases", workers)
        workers.procs[victim[0]].send_signal(signal.SIGKILL)
        workers.procs[victim[0]].wait(timeout=5)
        # it died mid-delivery: rows it had claimed and not finished are still leased to it
        held = leased_to(store, victim[0])
        # changes keep coming while a worker is dead
        store.records.apply(T, [org(f"b{i}") for i in range(n // 2)])
        wait_for(lambda: states(store).get("delivered", 0) == n, 40, "every change delivered")
        time.sleep(0.3)
    assert held and held > 0, f"{victim[0]} held no lease when it was killed"
    assert states(store) == {"delivered": n}
    with store.engine.connect() as c:
        keys = set(c.scalars(select(outbox.c.idempotency_key)))
    assert set(sink.applied) == keys  # nothing lost
    # at-least-once on the wire: only what w0 had in flight may have been sent twice; the sink
    # applied each key once (it counts the repeats it refused to apply again)
    repeats = len(sink.received) - len(set(e["id"] for e in sink.received))
    assert sink.duplicates == repeats and repeats <= held, (sink.duplicates, repeats, held)
    assert not sink.refused


def test_a_destination_down_for_a_while_then_the_backlog_drains(workers: Workers, store: Store) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    n = 120
    hook(store, url)
    if any(p.poll() is not None for p in workers.procs.values()):  # one killed by the test above: a new third worker
        workers.start("w3")
    store.records.apply(T, [org(f"c{i}") for i in range(n)])
    # down: calls fail, the breaker opens, nothing is delivered, nothing dead-lettered
    wait_for(lambda: any(r > 0 for r in _attempts(store)), 30, "the first failed attempts")
    time.sleep(2.0)
    assert states(store) == {"pending": n}
    assert sum(_attempts(store)) < n  # the breaker held most rows back instead of hammering
    with run_sink(SECRET, port=port) as sink:
        wait_for(lambda: states(store).get("delivered", 0) == n, 40, "the backlog to drain")
        time.sleep(0.2)
    assert len(sink.applied) == n and sink.duplicates == 0


def _attempts(store: Store) -> list[int]:
    with store.engine.connect() as c:
        return list(c.scalars(select(outbox.c.attempts)))
