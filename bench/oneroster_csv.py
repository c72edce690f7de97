"""Benchmark: import a large OneRoster 1.2 CSV bulk package.

Generates (deterministically, with ``adapters/oneroster/samples/make_samples.py``) a
district of 50,000 students, 3,000 teachers, 100 schools, 20,000 classes and 1,000,000
enrollments (``--scale`` multiplies every count, e.g. 0.1), writes it as a zip, then imports
it with ``adapters.oneroster.csv.ingest.import_package`` into a fresh SQLite database (or a
throwaway PostgreSQL database with ``--postgres-url``) and prints seconds (parse and
validate / apply / total), rows/s, CPU seconds and peak memory. Generation is not timed.
Target at full scale: <= 30 s and < 1.5 GB. A streamed import (the default at full scale) reads
enrollments.csv while writing it: "parse+validate" is then the other files, and the
enrollments' parsing is part of "apply". A large streamed enrollments.csv is read in a child
process (``csv.enrollments.EnrollmentReader``; ``--no-reader`` keeps it in this one): CPU and peak
RSS are then given for both processes, and the peak of their proportional set size (PSS:
pages they share counted half to each) is their real memory together.

    python bench/oneroster_csv.py --scale 0.1
    python bench/oneroster_csv.py                      # full scale

Not a test: pytest never collects bench/.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.oneroster.csv.ingest import import_package  # noqa: E402 - after the sys.path line above
from gateway.wiring import open_store  # noqa: E402


def load_generator():
    spec = importlib.util.spec_from_file_location("make_samples", ROOT / "adapters" / "oneroster" / "samples" / "make_samples.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def pss_mb() -> float:
    """This process's and its children's proportional set size now (Linux)."""
    me = os.getpid()
    pids = [me]
    for task in os.listdir(f"/proc/{me}/task"):
        try:
            pids += [int(c) for c in Path(f"/proc/{me}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    total = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue  # just ended
        total += sum(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return total / 1024


class PeakPss:
    """Samples ``pss_mb`` every 0.2 s in a thread (a process's peak PSS is not recorded anywhere)."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, pss_mb())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--postgres-url", default=None)
    ap.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                    help="force (or forbid) streaming the enrollments; default: by file size")
    ap.add_argument("--reader", action=argparse.BooleanOptionalAction, default=None,
                    help="force (or forbid) reading streamed enrollments in a child process; default: by file size")
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
    store = open_store(url)
    store.migrate()
    marks: dict[str, float] = {}
    try:
        pss = PeakPss()
        t1, c1 = time.perf_counter(), time.process_time()
        report = import_package(store, work / "district.zip", tenant="bench", source="sis", stream=args.stream,
                                reader_process=args.reader, applying=lambda n: marks.setdefault("parsed", time.perf_counter()))
        t2, c2 = time.perf_counter(), time.process_time()
        peak_pss = pss.stop()
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
        if report.reader_process:
            child = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = child.ru_utime + child.ru_stime
            print(f"CPU of the enrollment reader process: {cpu:.1f} s; both: {c2 - c1 + cpu:.1f} s "
                  f"({(c2 - c1 + cpu) / (t2 - t1):.2f} cores)")
            print(f"peak RSS: {peak_rss_mb():.0f} MB, reader process {peak_rss_mb(resource.RUSAGE_CHILDREN):.0f} MB "
                  f"(counting the pages it shares with this one)")
        else:
            print(f"peak RSS: {peak_rss_mb():.0f} MB")
        print(f"peak PSS, sampled every 0.2 s: {peak_pss:.0f} MB in all; backend {url.split(':', 1)[0]}")
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
