"""Freed memory handed back to the system during a long ingest (glibc's ``malloc_trim``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any


class Trimmer:
    """Hands the C heap's free pages back to the system every ``every`` statements stored in
    this process (glibc's ``malloc_trim``; nothing elsewhere). Measured (issue 22): a server
    worker's RSS grew 163 -> 500 MiB over 100,000 statements (2 workers, SQLite, inline) while
    its Python objects grew by about 15 MB (tracemalloc, mostly the mastery state names) and
    SQLite's heap stayed at 45-68 MB: the rest was freed memory the allocator kept (request
    bodies, parsed JSON, bulk statements). A trim costs a few ms; docs/xapi-ingest.md "Memory over a long ingest"."""

    def __init__(self, every: int = 1_000) -> None:
        self.every = every
        self._n = 0
        self._lock = threading.Lock()
        self._trim: Any = None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            self._trim = libc.malloc_trim
        except (OSError, AttributeError):
            pass

    def count(self, statements: int) -> None:
        if self._trim is None:
            return
        with self._lock:
            self._n += statements
            if self._n < self.every:
                return
            self._n = 0
        self._trim(0)


#: the process's one trimmer, counted by the statement store
TRIM = Trimmer()

__all__ = ["TRIM", "Trimmer"]
