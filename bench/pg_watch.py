"""What a PostgreSQL server does for a benchmark's server processes while it runs (issue 22):
the CPU of their backends, where those backends wait, and the round trips they answer.

The benchmark starts ``tessera serve`` with ``PGAPPNAME`` set to ``APP`` (``server_env``), so
its connections, and only they, carry that ``application_name``. ``Watch`` samples
``pg_stat_activity`` for them every 50 ms from a connection of its own:

* **backend CPU**: each backend's user + system time from ``/proc/<pid>/stat`` (the database
  runs on this machine), the last value seen less the first (a backend that starts during the
  run counts from 0; one that ends loses at most its last 50 ms);
* **where they are**: of the samples, the share of backends running (``active`` without a
  wait), waiting for a lock (``Lock``/``LWLock`` wait events, by name), for the WAL's flush
  (``IO: WALSync`` / ``WALWrite``), for I/O, or idle inside a transaction (``idle in
  transaction``: the backend waits for the client's next round trip);
* **round trips**: with ``pg_stat_statements`` loaded (``shared_preload_libraries``), the calls
  the database answered during the run, per batch (BEGIN and COMMIT count; the watch's own
  queries are left out by their text).

Not a test: imported by ``bench/xapi_ingest.py``.
"""

from __future__ import annotations

import os
import threading
from collections import Counter

import harness  # noqa: F401  # puts this checkout on sys.path (bench/ is sys.path[0])
from sqlalchemy import create_engine, text

from gateway.sharing.export import process_cpu

APP = f"tessera-bench-ingest-{os.getpid()}"
_WATCH = "tessera-bench-watch"


def server_env(env: dict[str, str]) -> dict[str, str]:
    """The server's environment, naming its PostgreSQL connections ``APP``."""
    return {**env, "PGAPPNAME": APP}


class Watch:
    """Samples the server's backends from ``start()`` to ``finish()`` (PostgreSQL URLs only)."""

    def __init__(self, url: str, every: float = 0.05) -> None:
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"application_name": _WATCH})
        self.every = every
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.states: Counter[str] = Counter()
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.calls0 = self._calls()

    def _calls(self) -> int | None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
                return int(conn.scalar(text(
                    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND query NOT LIKE '%pg_stat_%' AND query NOT LIKE '%pg_extension%'")) or 0)
        except Exception:  # noqa: BLE001 - not loaded: round trips are not counted
            return None

    def start(self) -> Watch:
        self.calls0 = self._calls()
        self.thread.start()
        return self

    def run(self) -> None:
        with self.engine.connect() as conn:
            while not self.stop.wait(self.every):
                rows = conn.execute(text("SELECT pid, state, wait_event_type, wait_event FROM pg_stat_activity "
                                         "WHERE application_name = :app"), {"app": APP}).all()
                self.samples += 1
                for pid, state, wtype, wevent in rows:
                    cpu = process_cpu(pid)
                    self.first.setdefault(pid, 0.0 if self.samples > 1 else cpu)
                    self.last[pid] = cpu
                    if state == "active":
                        self.states["running" if wtype is None else f"{wtype}: {wevent}"] += 1
                    elif state and state.startswith("idle in transaction"):
                        self.states[f"idle in transaction ({wevent or ''})"] += 1

    def finish(self, batches: int, statements: int) -> list[str]:
        self.stop.set()
        self.thread.join()
        calls1 = self._calls()
        self.engine.dispose()
        cpu = sum(self.last[p] - self.first[p] for p in self.last)
        busy = sum(self.states.values())
        lines = [f"database backends' CPU {cpu:.1f} s ({cpu / max(statements, 1) * 1e6:.0f} us per statement); "
                 f"{busy / max(self.samples, 1):.2f} backends busy or in a transaction on average"]
        if busy:
            lines.append("  of those samples: " + ", ".join(f"{k} {v / busy:.0%}" for k, v in self.states.most_common(8)))
        if self.calls0 is not None and calls1 is not None and batches:
            lines.append(f"  statements the database answered: {(calls1 - self.calls0) / batches:.1f} per batch (pg_stat_statements)")
        return lines


__all__ = ["APP", "Watch", "server_env"]
