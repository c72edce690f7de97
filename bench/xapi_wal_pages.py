"""Benchmark: which b-trees the ingest writes to SQLite's WAL, per statement, at a volume.

Ingests ``--statements`` statements of ``xapi_ingest`` (CASE framework and roster loaded,
so each becomes aligned evidence and updates mastery) in process through the LRS's own
write path with automatic checkpoints off, checkpoints, then ingests ``--probe`` more
batches of 100 and reads the WAL's frame headers: each frame is one page one commit
wrote. Pages are mapped to their table or index with the ``dbstat`` virtual table. Prints
frames per statement (the bytes every commit writes, and a checkpoint copies, are frames x
page size) and distinct pages per statement, by b-tree. Unlike a rate, these counts do not
depend on how loaded the host is.

    python bench/xapi_wal_pages.py --statements 80000

Not a test: pytest never collects this file.
"""

from __future__ import annotations

import argparse
import sqlite3
import struct
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from xapi_ingest import TENANT, load_reference, make_batch  # bench/ is sys.path[0]

from adapters.xapi.evidence import EvidenceMapper
from adapters.xapi.statement_store import StatementStore
from adapters.xapi.statements import complete
from adapters.xapi.validation import statements as valid_statements
from gateway.wiring import open_store

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://tessera.invalid/xapi/credentials", "name": "bench"}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--statements", type=int, default=80_000, help="ingested before the probe")
    ap.add_argument("--probe", type=int, default=10, help="batches of 100 whose WAL frames are counted")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        store = open_store(f"sqlite:///{path}")
        store.migrate()
        load_reference(store)

        @event.listens_for(store.engine, "connect")
        def _no_autocheckpoint(dbapi: Any, _record: Any) -> None:
            dbapi.execute("PRAGMA wal_autocheckpoint=0")

        store.engine.dispose()
        lrs = StatementStore(store, EvidenceMapper(store))

        def ingest(i: int) -> None:
            batch = valid_statements(orjson.loads(make_batch(i)), "1.0.3")
            lrs.save(TENANT, batch, stored=complete(batch, AUTHORITY, "1.0.3"), authority="bench")

        def checkpoint() -> None:
            with store.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()

        first = args.statements // 100
        for i in range(first):
            ingest(i)
            if i % 20 == 19:
                checkpoint()
        checkpoint()
        for i in range(first, first + args.probe):
            ingest(i)
        raw = (path.parent / (path.name + "-wal")).read_bytes()
        page_size = struct.unpack(">I", raw[8:12])[0]
        frames: Counter[int] = Counter()
        for offset in range(32, len(raw) - 23, 24 + page_size):  # a frame: 24-byte header, then the page
            frames[struct.unpack(">I", raw[offset : offset + 4])[0]] += 1
        store.dispose()
        with sqlite3.connect(path) as conn:
            owner = dict(conn.execute("SELECT pageno, name FROM dbstat"))
        by_frames: Counter[str] = Counter()
        by_pages: Counter[str] = Counter()
        for page, n in frames.items():
            by_frames[owner.get(page, "?")] += n
            by_pages[owner.get(page, "?")] += 1
        n = args.probe * 100
        print(f"after {args.statements:,} statements, {n:,} more: {sum(frames.values()) / n:.1f} WAL frames a statement "
              f"({sum(frames.values()) * page_size / n / 1024:.0f} KiB), {len(frames) / n:.2f} distinct pages (page size {page_size})")
        for name, k in by_frames.most_common(20):
            print(f"  {name:50s} frames {k / n:5.2f}  distinct pages {by_pages[name] / n:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
