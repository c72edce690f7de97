"""The interpreter's thread switch interval shortened while the change feed reads pages
(``prompt_switching``), for the whole process, counted across the pages read at once."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: the interpreter's switch interval while a page is read (seconds; None: left as it is)
SWITCH_INTERVAL: float | None = 0.001
_switching: dict[str, Any] = {"readers": 0, "saved": None}
_switching_lock = threading.Lock()


@contextmanager
def prompt_switching() -> Iterator[None]:
    """While pages are read, the interpreter's switch interval is ``SWITCH_INTERVAL`` instead
    of its default 5 ms: the reading thread needs the GIL back each time the database answers
    (a few times a chunk) while the converting thread runs Python on the chunk before, and
    would otherwise wait up to 5 ms each time, the database idle meanwhile. Never raised (a
    shorter interval is left as it is); put back when the last concurrent reader is done.
    A setting of the whole process, for the time pages are read: threads that compute at
    the same time switch a little more often."""
    wanted = SWITCH_INTERVAL
    if wanted is None:
        yield
        return
    with _switching_lock:
        if _switching["readers"] == 0 and (now := sys.getswitchinterval()) > wanted:  # never raised
            _switching["saved"] = now
            sys.setswitchinterval(wanted)
        _switching["readers"] += 1
    try:
        yield
    finally:
        with _switching_lock:
            _switching["readers"] -= 1
            if _switching["readers"] == 0 and _switching["saved"] is not None:
                sys.setswitchinterval(_switching["saved"])
                _switching["saved"] = None


__all__ = ["SWITCH_INTERVAL", "prompt_switching"]
