"""Diagnosis: how the SQLite acknowledgement path's cost grows with the store, and where.

Stores ``--statements`` of ``xapi_ingest``'s statements in process the way the LRS does in
``TESSERA_XAPI__DERIVE=async`` mode (as ``bench/xapi_ack_latency.py``), and at each of
``--at`` (statements stored) prints, for the ``--window`` statements before it (by default one
cycle of merges of the recent index tier, so that each window holds the same merge work):

* the process's CPU a statement (every thread: the checkpoint thread too), and the merge steps'
  share of it;
* then ``--probe`` batches with checkpoints and merges held: their CPU a statement, the WAL
  frames (pages) a commit of 100 statements wrote, by b-tree (``dbstat``);
* then one merge step on its own: its CPU and WAL frames, by b-tree, of how many pages each has.

    python bench/xapi_ack_growth.py --statements 150000 --at 20000,150000

Not a test: pytest never collects bench/.
"""

from __future__ import annotations

import argparse
import gc
import sqlite3
import struct
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from host_speed import measure as host_speed
from xapi_ack_latency import ack_only_store
from xapi_ingest import BATCH, TENANT, make_batch  # bench/ is sys.path[0]

from adapters.xapi.index_tiers import MERGE_EVERY
from adapters.xapi.statements import complete
from gateway.store.sqlite_writers import checkpointer

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://lrs.example", "name": "bench"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--statements", type=int, default=150_000)
    ap.add_argument("--at", default="20000,150000", help="store sizes at which to measure, comma-separated")
    ap.add_argument("--window", type=int, default=MERGE_EVERY, help="statements measured before each size")
    ap.add_argument("--probe", type=int, default=10, help="batches whose WAL frames are counted")
    args = ap.parse_args()
    print(f"host speed: record_id {host_speed():.2f} us (bench/host_speed.py; lower is faster)")
    with tempfile.TemporaryDirectory() as tmp:
        run(Path(tmp) / "growth.db", args)
    print(f"host speed: record_id {host_speed():.2f} us")


def run(path: Path, args: argparse.Namespace) -> None:
    store, lrs = ack_only_store(f"sqlite:///{path}")
    merging = [0.0]
    merge = lrs.merge

    def timed_merge(conn: Any, below: int | None = None) -> None:
        c0 = time.process_time()
        merge(conn, below)
        merging[0] += time.process_time() - c0

    lrs.merge = timed_merge  # type: ignore[method-assign]
    gc.collect()
    gc.freeze()  # as the server does (gateway/api/app.py)
    gc.set_threshold(50_000, 20, 100)
    done = 0

    def save() -> None:
        nonlocal done
        body = orjson.loads(make_batch(done // BATCH))
        lrs.save(TENANT, body, stored=complete(body, AUTHORITY, "1.0.3"), authority="bench")
        done += BATCH

    for size in sorted(int(x) for x in args.at.split(",")):
        while done < size - args.window:
            save()
        c0, merging[0], first = time.process_time(), 0.0, done
        while done < size:
            save()
        n = done - first
        cpu = time.process_time() - c0
        print(f"statements {first:,}-{done:,}: {cpu / n * 1e6:.1f} us of CPU a statement, "
              f"{merging[0] / n * 1e6:.1f} of it merge steps")
        held = checkpointer(str(path))
        committed = held.committed
        held.committed = lambda: None  # type: ignore[method-assign]  # no checkpoint: every frame stays in the WAL
        try:
            _checkpoint(store)
            lrs.merge = lambda conn, below=None: None  # type: ignore[method-assign]
            c0 = time.process_time()
            for _ in range(args.probe):
                save()
            cpu = time.process_time() - c0
            lrs.merge = timed_merge  # type: ignore[method-assign]
            frames, owner, pages = _wal(path)
            print(f"  {args.probe} batches, no merge, no checkpoint: {cpu / (args.probe * BATCH) * 1e6:.1f} us of CPU a statement, "
                  f"{sum(frames.values()) / args.probe:.1f} WAL frames a commit of {BATCH}")
            for name, k in _by_tree(frames, owner).most_common(8):
                print(f"    {name:45s} {k / args.probe:6.1f} frames a commit")
            _checkpoint(store)
            with store.engine.begin() as conn:
                oldest = conn.exec_driver_sql("SELECT min(seq) FROM xapi_recent_agents").scalar()
                c0 = time.process_time()
                merge(conn, int(oldest or 0) + lrs.merge_slice)
                cpu = time.process_time() - c0
            frames, owner, pages = _wal(path)
            print(f"  one merge step ({lrs.merge_slice:,} statements): {cpu * 1e3:.0f} ms of CPU, {sum(frames.values()):,} WAL frames")
            for name, k in _by_tree(frames, owner).most_common(6):
                print(f"    {name:45s} {k:6d} frames, of {pages[name]:,} pages")
        finally:
            held.committed = committed  # type: ignore[method-assign]
    store.dispose()


def _checkpoint(store: Any) -> None:
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()


def _wal(path: Path) -> tuple[Counter[int], dict[int, str], Counter[str]]:
    """The WAL's frames by page number, each page's b-tree, and each b-tree's pages."""
    raw = (path.parent / (path.name + "-wal")).read_bytes()
    frames: Counter[int] = Counter()
    if len(raw) > 32:
        size = struct.unpack(">I", raw[8:12])[0]
        for offset in range(32, len(raw) - 23, 24 + size):  # a frame: 24-byte header, then the page
            frames[struct.unpack(">I", raw[offset : offset + 4])[0]] += 1
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT pageno, name FROM dbstat").fetchall()
    return frames, dict(rows), Counter(name for _, name in rows)


def _by_tree(frames: Counter[int], owner: dict[int, str]) -> Counter[str]:
    out: Counter[str] = Counter()
    for page, k in frames.items():
        out[owner.get(page, "(free)")] += k
    return out


if __name__ == "__main__":
    main()
