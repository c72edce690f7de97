"""How fast this host is right now: one fixed micro-benchmark (``record_id``, a uuid5 of a
record's name), to print next to any benchmark figure.

The team's VM shares its cores: the same code measured 0.90 us here in a fast phase and
1.45 us in a slow one, which moves every benchmark by as much. Compare figures taken in the
same phase, or say which phase each was taken in.

    python bench/host_speed.py

Not a test: pytest never collects bench/.
"""

from __future__ import annotations

import timeit

from gateway.model.base import record_id

N = 200_000


def measure() -> float:
    """Microseconds per ``record_id``: the best of three rounds."""
    best = min(timeit.repeat(lambda: record_id("t", "Person", "src", "abc123"), number=N, repeat=3))
    return best / N * 1e6


if __name__ == "__main__":
    print(f"record_id {measure():.2f} us")
