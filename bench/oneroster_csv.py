"""Benchmark: import a large OneRoster 1.2 CSV bulk package.

Generates (deterministically, with ``adapters/oneroster/samples/make_samples.py``) a
district of 50,000 students, 3,000 teachers, 100 schools, 20,000 classes and 1,000,000
enrollments (``--scale`` multiplies every count, e.g. 0.1), writes it as a zip, then imports
it with ``adapters.oneroster.csv_bulk.import_package`` into a fresh SQLite database (or a
throwaway PostgreSQL database with ``--postgres-url``) and prints seconds (parse and
validate / apply / total), rows/s, CPU seconds and peak RSS. Generation is not timed.
Target at full scale: <= 30 s and < 1.5 GB. A streamed import (the default at full scale) reads
enrollments.csv while writing it: "parse+validate" is then the other files, and the
enrollments' parsing is part of "apply".

    python bench/oneroster_csv.py --scale 0.1
    python bench/oneroster_csv.py                      # full scale

Not a test: pytest never collects bench/.
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.oneroster.csv_bulk import import_package
from gateway.store import Store


def load_generator():
    spec = importlib.util.spec_from_file_location("make_samples", ROOT / "adapters" / "oneroster" / "samples" / "make_samples.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--postgres-url", default=None)
    ap.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                    help="force (or forbid) streaming the enrollments; default: by file size")
    ap.add_argument("--keep", action="store_true", help="keep the generated package and database")
    args = ap.parse_args()
    s = args.scale
    sizes = {"schools": max(3, round(100 * s)), "students": round(50_000 * s), "teachers": round(3_000 * s),
                 "classes": round(20_000 * s), "enrollments": round(1_000_000 * s), "guardians": 0}
    work = Path(tempfile.mkdtemp(prefix="oneroster-bench-"))
    gen = load_generator()
    t0 = time.perf_counter()
    counts = gen.write_package(work / "district.zip", **sizes)
    rows = sum(counts.values())
    print(f"generated {work / 'district.zip'} in {time.perf_counter() - t0:.1f} s: {counts} ({rows:,} rows, "
          f"{(work / 'district.zip').stat().st_size / 1e6:.1f} MB zipped)")
    print(f"RSS before import: {peak_rss_mb():.0f} MB")

    if args.postgres_url:
        from sqlalchemy import create_engine, text

        name = f"tessera_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = args.postgres_url.rsplit("/", 1)[0] + f"/{name}"
    else:
        url = f"sqlite:///{work / 'bench.db'}"
    store = Store.from_url(url)
    store.migrate()
    marks: dict[str, float] = {}
    try:
        t1, c1 = time.perf_counter(), time.process_time()
        report = import_package(store, work / "district.zip", tenant="bench", source="sis", stream=args.stream,
                                applying=lambda n: marks.setdefault("parsed", time.perf_counter()))
        t2, c2 = time.perf_counter(), time.process_time()
        parsed = marks.get("parsed", t2)
        # streamed: the other files are validated first; enrollments.csv is read, validated
        # and converted in the same pass that writes it, so its parsing counts under "apply"
        mode = "one transaction; enrollments read while written" if report.streamed else "one transaction"
        print(f"import ({mode}): parse+validate {parsed - t1:.1f} s, apply {t2 - parsed:.1f} s, "
              f"total {t2 - t1:.1f} s; {rows / (t2 - t1):,.0f} rows/s; {report.records:,} records "
              f"(created {report.result.created:,})")
        # on a shared host, wall time is CPU time over the cores the import got: both tell
        # whether a change made less work or only met a quieter machine
        print(f"CPU: {c2 - c1:.1f} s in all threads ({(c2 - c1) / (t2 - t1):.2f} cores busy on average)")
        print(f"peak RSS: {peak_rss_mb():.0f} MB; backend {url.split(':', 1)[0]}")
    finally:
        store.dispose()
        if args.postgres_url:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
