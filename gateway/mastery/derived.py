"""``Derived``: a state as the engine computes it, before it becomes a record.

Its own module because both the engine (which derives it and builds the record) and
``serial`` (which writes its JSON without the record) read it, and neither should import
the other for it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.model import MasteryMethod

from .methods import Rule

#: a Contribution's fields (evidence_id, competency_id, value, weight): a model is built only
#: for a state written as a record (``to_record``); the recompute serialises the tuples
ContributionRow = tuple[uuid.UUID | None, uuid.UUID | None, float, float]


@dataclass
class Derived:
    """A computed state before it becomes a record (``value`` None: too little evidence)."""

    competency: uuid.UUID
    rule: Rule
    method: MasteryMethod
    value: float | None
    level: str | None
    mastered: bool
    contributions: list[ContributionRow]
    evidence_count: int
    first_at: datetime | None
    last_at: datetime | None
    parameters: dict[str, Any]


__all__ = ["ContributionRow", "Derived"]
