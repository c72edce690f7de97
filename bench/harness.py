"""What the benchmarks share: a free port, waiting for a server subprocess to answer (both
``gateway.devserver``'s, which the tests and scripts use too), and a throwaway PostgreSQL
database. Imported as ``harness`` (each bench runs as a script, so bench/ is ``sys.path[0]``)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)  # this checkout's gateway, not an installed one

from gateway.devserver import free_port, wait_until_answers  # noqa: E402

__all__ = ["free_port", "postgres_url", "wait_up"]


def wait_up(proc: subprocess.Popen[bytes], base: str, name: str = "the server", timeout: float = 60) -> None:
    """Until ``base``/healthz answers 200; ``RuntimeError`` if ``proc`` exits or ``timeout`` passes."""
    wait_until_answers(proc, f"{base}/healthz", what=name, timeout=timeout)


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
