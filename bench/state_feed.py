"""Benchmark: only the change feed of ``bench/state.py`` (its loaded database, kept with
``--keep-database``), repeated, with the CPU a change (this process's and PostgreSQL's).

    python bench/state_feed.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:55433/postgres \
        --database statebench [--repeat 2] [--own] [--profile]
    python bench/state_feed.py ... --database statebig --pages 100 --since 11000000   # a short run

``--pages`` and ``--seconds`` stop a run early (a database larger than the machine's memory
takes minutes to page through whole); ``--since`` starts it at a version (the middle of a
district's evidence, say). With ``--stats`` the run also prints what the database read for
it (``pg_stat_database``: blocks found in its buffers and read from the operating system;
counted for the whole database, so another program reading it meanwhile adds to them) and
how many learners the de-identifiers pseudonymised (each a state-id look-up and an HMAC).
``--read-ahead both`` alternates runs with the feed's read-ahead (``feed_ahead``: the page
after the one asked for read at the same time, the default) and without
(``TESSERA_FEED_READ_AHEAD=0``), each repeat one of each; ``on``/``off`` runs one only.

Not a test: pytest never collects bench/.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import os
import pstats
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import host_speed  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from state import KEY, _own_connections, _own_peak_mib, backend_cpu  # noqa: E402

from gateway.sharing import deidentify  # noqa: E402
from gateway.sharing.feed import ChangeFeed  # noqa: E402
from gateway.sharing.feed_ahead import READ_AHEAD_ENV  # noqa: E402
from gateway.sharing.grants import GrantStore  # noqa: E402
from gateway.store import Store  # noqa: E402
from gateway.wiring import default as default_wiring  # noqa: E402


class _Counted:
    """Counts the learners ``Pseudonymizer.learner`` pseudonymises (the de-identifiers' cache misses)."""

    def __init__(self) -> None:
        self.n = 0
        self._orig = deidentify.Pseudonymizer.learner

    def __enter__(self) -> _Counted:
        orig, counter = self._orig, self

        def learner(pz: Any, tenant: str, person_id: str, state_id: str | None) -> str:
            counter.n += 1
            return orig(pz, tenant, person_id, state_id)

        deidentify.Pseudonymizer.learner = learner  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        deidentify.Pseudonymizer.learner = self._orig  # type: ignore[method-assign]


def _children_cpu() -> float:
    """CPU seconds of this process's children that ended and were waited for (the helpers)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _blocks(store: Store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        hit, read = conn.execute(text("SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()")).one()
    return int(hit), int(read)


def feed_run(store: Store, tenant: str, *, since: int = 0, pages: int | None = None, seconds: float | None = None,
             stats: bool = False) -> tuple[int, float, float, float, dict[str, int]]:
    """Page through the changes ``tenant`` may read from ``since``, at most ``pages`` pages or
    about ``seconds`` seconds: (changes, seconds, client CPU s, database CPU s, extra counts).
    The client's CPU is this process's and its de-identifying worker process's
    (``feed_records``; ended and waited for at the end of the run), the latter also in the
    extra counts (ms)."""
    ch0 = _children_cpu()
    feed = ChangeFeed(store, GrantStore(store.engine), lambda: KEY)
    reader = feed.reader(tenant, "bench", frozenset({"changes.readonly"}))
    until = feed.available()["newest"]
    n = done = 0
    extra: dict[str, int] = {}
    if stats:
        time.sleep(0.6)  # pg_stat_database is flushed about every 0.5 s
        h0, r0 = _blocks(store)
    with _Counted() as counted:
        b0, c0, t0 = backend_cpu(store), time.process_time(), time.perf_counter()
        while True:
            page = feed.page(reader, since=since, until=until, limit=10_000)
            n += len(page.changes)
            since, done = page.next_since, done + 1
            if not page.more or (pages is not None and done >= pages) or (seconds is not None and time.perf_counter() - t0 >= seconds):
                break
        s, c, b = time.perf_counter() - t0, time.process_time() - c0, backend_cpu(store) - b0
    feed.close()
    helper = _children_cpu() - ch0
    c += helper
    if stats:
        time.sleep(0.6)
        h1, r1 = _blocks(store)
        extra = {"pages": done, "blocks hit": h1 - h0, "blocks read": r1 - r0, "learners pseudonymised": counted.n}
    return n, s, c, b, {**extra, "worker process CPU ms": round(helper * 1000)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres-url", required=True)
    ap.add_argument("--database", default="statebench", help="the database bench/state.py --keep-database loaded")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--own", action="store_true", help="also a district's own (identified) changes")
    ap.add_argument("--profile", action="store_true", help="cProfile the de-identified feed once, top 25 by own time")
    ap.add_argument("--since", type=int, default=0, help="the version to start from (default: the first)")
    ap.add_argument("--pages", type=int, default=None, help="stop after this many pages of 10,000 changes")
    ap.add_argument("--seconds", type=float, default=None, help="stop after the page that ends past this many seconds")
    ap.add_argument("--read-ahead", choices=["on", "off", "both"], default="on",
                    help="the feed's read-ahead on (default), off (TESSERA_FEED_READ_AHEAD=0), or both, alternated")
    ap.add_argument("--stats", action="store_true", help="also the database's blocks hit/read and the learners pseudonymised")
    args = ap.parse_args()
    _own_connections()
    url = make_url(args.postgres_url).set(database=args.database).render_as_string(hide_password=False)
    store = Store.from_url(url, migrations=default_wiring().migrations)
    bounds = {"since": args.since, "pages": args.pages, "seconds": args.seconds, "stats": args.stats}
    print(f"host speed before: {host_speed.measure():.2f} µs")
    backend_cpu(store)  # the pool's connection made before measuring
    aheads = {"on": ["1"], "off": ["0"], "both": ["1", "0"]}[args.read_ahead]
    for _ in range(args.repeat):
        for (what, tenant), ahead in itertools.product(
                [("de-identified, every district", "state")] + ([("a district's own (identified)", "district-00")] if args.own else []),
                aheads):
            os.environ[READ_AHEAD_ENV] = ahead
            if len(aheads) > 1:
                what += ", read ahead" if ahead == "1" else ", not read ahead"
            n, s, c, b, extra = feed_run(store, tenant, **bounds)
            if not n:
                print(f"change feed, {what}: no change after version {args.since}", flush=True)
                continue
            worker = extra["worker process CPU ms"] / 1000
            more = "".join(f"; {k}: {v:,}" for k, v in extra.items())
            print(f"change feed, {what}: {n} changes in {s:.2f} s = {n / s:,.0f} changes/s; "
                  f"CPU a change: {c / n * 1e6:.2f} µs here (this process {(c - worker) / n * 1e6:.2f}, its worker "
                  f"{worker / n * 1e6:.2f}) + {b / n * 1e6:.2f} µs the database's{more}", flush=True)
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        feed_run(store, "state", **bounds)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    print(f"peak RSS of this process: {_own_peak_mib():,.0f} MiB")
    print(f"host speed after: {host_speed.measure():.2f} µs")
    store.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
