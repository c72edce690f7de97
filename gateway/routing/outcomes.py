"""What the routing steps return (``engine.run_pull``: ``SyncRunSummary``; ``engine.deliver_one``:
``Outcome``); ``gateway.routing.engine`` re-exports both."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal


@dataclass
class SyncRunSummary:
    id: uuid.UUID
    route_id: uuid.UUID
    status: str  # succeeded | failed | partial
    read: int = 0
    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    cursor_before: str | None = None
    cursor_after: str | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt came to."""

    kind: Literal["delivered", "retry", "wait", "dead", "skipped"]
    #: retry/wait: when the row is due again
    next_attempt_at: datetime | None = None
    error: str | None = None
