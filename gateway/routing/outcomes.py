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
    """What one delivery attempt came to (the row's new state is already stored):

    * ``delivered``: the destination took it;
    * ``retry``: a failed attempt (counted); due again at ``next_attempt_at``;
    * ``wait``: not attempted or not counted: a missing dependency (409), the connection's
      circuit breaker open, the route disabled or its connection misconfigured; due again
      at ``next_attempt_at``;
    * ``dead``: dead-lettered (rejected, retries used up, waited too long, route gone);
    * ``skipped``: nothing to do: the row is gone or no longer pending, or superseded by a
      later change of its record (marked delivered), or handed back undelivered (the
      dispatcher's batch ran out of lease time: due again at once).
    """

    kind: Literal["delivered", "retry", "wait", "dead", "skipped"]
    #: retry/wait: when the row is due again
    next_attempt_at: datetime | None = None
    error: str | None = None
