"""What the benchmarks share: a free port, waiting for a server subprocess to answer, and
a throwaway PostgreSQL database. Imported as ``harness`` (each bench runs as a script, so
bench/ is ``sys.path[0]``)."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(proc: subprocess.Popen[bytes], base: str, name: str = "the server", timeout: float = 60) -> None:
    """Until ``base``/healthz answers 200; fails if ``proc`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not come up")


@contextmanager
def postgres_url(url: str) -> Iterator[str]:
    """A fresh database next to the one in ``url``, dropped afterwards."""
    name = f"tessera_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
