"""De-identified reports (state pulls): pseudonymous learners and small-cell suppression.

Learner ids become HMAC-SHA256 pseudonyms keyed with a salt from the environment (never
logged, never echoed); names, native ids, org and section titles are left out (the
builder leaves them out when ``Deidentify`` is given); counts are suppressed below
``min_cell`` (default 10) and then complementary cells too, so that a suppressed cell
cannot be recovered by subtracting the published cells from a published or derivable
total (see ``suppress``). Every suppressed cell carries the same mark (null in JSON, ``*``
in CSV): marking the complementary ones differently would tell a reader that they are at
least ``min_cell`` and narrow the small one down.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from .scope import bad

DEFAULT_MIN_CELL = 10
CSV_SUPPRESSED = "*"


class _Suppressed:
    """The value of a suppressed cell: null in JSON, ``*`` in CSV."""

    def __repr__(self) -> str:
        return "SUPPRESSED"


SUPPRESSED = _Suppressed()


@dataclass(frozen=True)
class Deidentify:
    """De-identified output: pseudonymous learner ids and small-cell suppression.

    ``salt`` keys the HMAC; it is needed only by reports with a row per learner."""

    salt: bytes | None = field(default=None, repr=False)
    min_cell: int = DEFAULT_MIN_CELL

    def __post_init__(self) -> None:
        if self.min_cell < 1:
            raise bad("min_cell", "must be at least 1")

    def pseudonym(self, learner: uuid.UUID) -> str:
        """HMAC-SHA256(salt, learner id): stable for one salt, unlinkable without it."""
        if self.salt is None:
            raise ConfigError("a de-identified report with a row per learner needs a salt (--salt-env VAR, or TESSERA_REPORT_SALT on the server)")
        return hmac.new(self.salt, learner.bytes, hashlib.sha256).hexdigest()


def salt_from_env(var: str) -> bytes:
    """The salt held by environment variable ``var``; its value is never put in a message."""
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"the environment variable {var} (the de-identification salt) is not set")
    if len(value) < 16:
        raise ConfigError(f"the salt in {var} is too short: use at least 16 random characters")
    return value.encode()


def suppress(cells: dict[tuple[Any, Any], int], min_cell: int) -> tuple[set[tuple[Any, Any]], set[Any]]:
    """Which cells of a (row, column) -> count table to suppress, and which row totals.

    1. Primary: every count from 1 to ``min_cell - 1``; and every cell of a row whose total
       is below ``min_cell`` (zeros too: a zero next to a small total says where everyone is),
       along with that row's total.
    2. Complementary: the published row totals, and the column totals a reader can get from
       the same report without grouping, would give back a row's or a column's only
       suppressed cell by subtraction. So while some row or column has exactly one
       suppressed cell, the smallest non-zero published cell beside it is suppressed too
       (a zero would protect nothing: it is known to be zero). Repeats until stable.

    Differencing across reports with different filters or groupings is not prevented."""
    totals: Counter[Any] = Counter()
    for (r, _), v in cells.items():
        totals[r] += v
    small_rows = {r for r, v in totals.items() if v < min_cell}
    hidden = {k for k, v in cells.items() if 0 < v < min_cell or k[0] in small_rows}
    changed = True
    while changed:
        changed = False
        for axis in (0, 1):
            lines: dict[Any, list[tuple[Any, Any]]] = defaultdict(list)
            for k in cells:
                lines[k[axis]].append(k)
            for keys in lines.values():
                if sum(1 for k in keys if k in hidden) != 1:
                    continue
                visible = [k for k in keys if k not in hidden and cells[k] > 0]
                if visible:
                    hidden.add(min(visible, key=cells.__getitem__))
                    changed = True
    return hidden, small_rows


__all__ = ["CSV_SUPPRESSED", "DEFAULT_MIN_CELL", "SUPPRESSED", "Deidentify", "salt_from_env", "suppress"]
