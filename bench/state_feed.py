"""Benchmark: only the change feed of ``bench/state.py`` (its loaded database, kept with
``--keep-database``), repeated, with the CPU a change (this process's and PostgreSQL's).

    python bench/state_feed.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:55433/postgres \
        --database statebench [--repeat 2] [--own] [--profile]

Not a test: pytest never collects bench/.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import host_speed  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from state import feed_rate  # noqa: E402

from gateway.store import Store  # noqa: E402
from gateway.wiring import default as default_wiring  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres-url", required=True)
    ap.add_argument("--database", default="statebench", help="the database bench/state.py --keep-database loaded")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--own", action="store_true", help="also a district's own (identified) changes")
    ap.add_argument("--profile", action="store_true", help="cProfile the de-identified feed once, top 25 by own time")
    args = ap.parse_args()
    url = make_url(args.postgres_url).set(database=args.database).render_as_string(hide_password=False)
    store = Store.from_url(url, migrations=default_wiring().migrations)
    print(f"host speed before: {host_speed.measure():.2f} µs")
    for _ in range(args.repeat):
        n, s, c, b = feed_rate(store)
        print(f"change feed, de-identified, every district: {n} changes in {s:.2f} s = {n / s:,.0f} changes/s; "
              f"CPU a change: {c / n * 1e6:.2f} µs here + {b / n * 1e6:.2f} µs the database's", flush=True)
        if args.own:
            n, s, c, b = feed_rate(store, "district-00")
            print(f"change feed, a district's own (identified): {n} changes in {s:.2f} s = {n / s:,.0f} changes/s; "
                  f"CPU a change: {c / n * 1e6:.2f} µs here + {b / n * 1e6:.2f} µs the database's", flush=True)
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        feed_rate(store)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    print(f"host speed after: {host_speed.measure():.2f} µs")
    store.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
