"""Benchmark: the mastery engine's share of the xAPI evidence consumer (issue 22).

Runs ``bench/xapi_derive.py`` with the same arguments and prints, besides its own figures, the
CPU (process time, so load-insensitive) of the engine's incremental update per statement
derived: ``MasteryEngine.on_evidence`` whole, the store's part of it (``prepare_serialised``
and ``apply_in``, which write the states) and the rest, the engine's own (reads, derivation,
serialisation)::

    python bench/xapi_mastery_share.py --statements 20000
    python bench/xapi_mastery_share.py --statements 20000 --database-url postgresql+psycopg://postgres@127.0.0.1:55432/postgres

Not a test: pytest never collects this file.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import xapi_derive  # bench/ is sys.path[0]

from gateway.mastery.engine import MasteryEngine
from gateway.store.records import RecordStore

spent = {"update": 0.0, "store": 0.0}
inside = [False]


def _timed_update(f: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kw: Any) -> Any:
        began, inside[0] = time.process_time(), True
        try:
            return f(*args, **kw)
        finally:
            inside[0] = False
            spent["update"] += time.process_time() - began

    return run


def _timed_store(f: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kw: Any) -> Any:
        if not inside[0]:  # the recompute's writes (--recompute-check) are not the update's
            return f(*args, **kw)
        began = time.process_time()
        try:
            return f(*args, **kw)
        finally:
            spent["store"] += time.process_time() - began

    return run


def main() -> int:
    MasteryEngine.on_evidence = _timed_update(MasteryEngine.on_evidence)  # type: ignore[method-assign]
    RecordStore.prepare_serialised = _timed_store(RecordStore.prepare_serialised)  # type: ignore[method-assign]
    RecordStore.apply_in = _timed_store(RecordStore.apply_in)  # type: ignore[method-assign]
    rc = xapi_derive.main()
    n = next((int(a.split("=", 1)[1]) if "=" in a else int(sys.argv[i + 2]) for i, a in enumerate(sys.argv[1:])
              if a.startswith("--statements")), 20_000)
    update, store = spent["update"] / n * 1e6, spent["store"] / n * 1e6
    print(f"  mastery update (on_evidence): {update:.0f} us CPU per statement; writing the states (store) {store:.0f}, "
          f"the engine's own {update - store:.0f}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
