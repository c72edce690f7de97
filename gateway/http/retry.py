"""When an outbound request is tried again, and how long Tessera waits first.

* **What is retried**: a request that never reached the peer (``httpx.ConnectError``,
  ``ConnectTimeout``: nothing was sent, so nothing can be duplicated) whatever its method;
  any other transport failure (a read timeout, a dropped connection), HTTP 429 and the
  transient 5xx (500, 502, 503, 504) only when repeating the request is harmless: an
  idempotent method (RFC 9110 9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE), or a request
  the caller marked ``idempotent=True`` (an xAPI POST of statements that all carry their
  ids, a POST with an idempotency key).
* **How long**: exponential backoff with full jitter (a uniform wait between 0 and
  ``backoff * 2**retry``, at most ``max_backoff``), so clients that failed together do not
  come back together. A ``Retry-After`` header (RFC 9110 10.2.3: delay-seconds or an
  HTTP-date) replaces that wait exactly; one longer than ``retry_after_cap`` is not waited
  out: ``RetryLater`` tells the caller to come back later.
* **Injected clock**: ``sleep`` and ``random`` are parameters, so tests check the schedule
  without waiting (the default ``sleep`` is looked up at call time: ``time.sleep``).
"""

from __future__ import annotations

import email.utils
import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from ..errors import UpstreamError

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class Unreachable(UpstreamError):
    """The peer could not be reached, after every attempt the policy allowed (502)."""

    def __init__(self, detail: str, *, reason: str, attempts: int) -> None:
        super().__init__(detail)
        #: the last transport error's class name (``ConnectError``, ``ReadTimeout``...)
        self.reason = reason
        self.attempts = attempts


class RetryLater(UpstreamError):
    """The peer asked (``Retry-After``) for a longer wait than the policy's cap (502)."""

    def __init__(self, detail: str, *, seconds: float, status: int) -> None:
        super().__init__(detail)
        self.seconds = seconds
        self.status = status


@dataclass(frozen=True)
class RetryPolicy:
    #: retries after the first attempt (0: never retry)
    retries: int = 3
    #: the first retry waits up to this many seconds, each next one up to twice as long
    backoff: float = 0.5
    #: no backoff wait is longer than this (seconds)
    max_backoff: float = 30.0
    #: the longest Retry-After waited out (seconds); a longer one raises RetryLater
    retry_after_cap: float = 120.0
    statuses: frozenset[int] = RETRY_STATUSES
    #: ``time.sleep`` unless given (looked up when called, so a patched ``time.sleep`` counts)
    sleep: Callable[[float], None] | None = field(default=None, compare=False)
    #: a float in [0, 1): ``random.random`` unless given (e.g. ``random.Random(7).random``)
    random: Callable[[], float] | None = field(default=None, compare=False)

    def backoff_for(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(max_backoff, backoff * 2**retry)); ``retry`` counts from 0."""
        ceiling = min(self.max_backoff, self.backoff * (2 ** retry))
        return ceiling * (self.random or _random.random)()

    def wait(self, seconds: float) -> None:
        if seconds > 0:
            (self.sleep or time.sleep)(seconds)

    def may_repeat(self, method: str, idempotent: bool | None) -> bool:
        """Whether a request that may have reached the peer can be sent again."""
        return idempotent if idempotent is not None else method.upper() in IDEMPOTENT_METHODS


#: a policy that never retries (the caller handles every failure itself)
NO_RETRY = RetryPolicy(retries=0)


def never_sent(exc: httpx.TransportError) -> bool:
    """True when the request cannot have reached the peer (no connection was made)."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (RFC 9110 10.2.3: delay-seconds or an
    HTTP-date), or None when there is none or it cannot be read. A date in the past is 0."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


__all__ = ["IDEMPOTENT_METHODS", "NO_RETRY", "RETRY_STATUSES", "RetryLater", "RetryPolicy", "Unreachable", "never_sent", "retry_after"]
