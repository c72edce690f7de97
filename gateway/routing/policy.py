"""The failure policy of one connection (DESIGN section 6): timeouts, retries with backoff
and full jitter, ``Retry-After``, waiting for a dependency, and the circuit breaker.

A connection's ``options`` carry it (``gateway.yaml`` or ``/v1/connections``); every key is
optional and the defaults below apply:

===========================  =========  ===============================================
option                       default    meaning
===========================  =========  ===============================================
``timeout``                  30         seconds per HTTP call to the connection
``retries``                  8          retries after the first attempt; the attempt
                                        after the last retry fails -> dead letter
``backoff``                  1          the first retry waits up to this many seconds,
                                        each next one up to twice as long (full jitter)
``max_backoff``              300        no backoff wait is longer than this
``max_wait_for_dependency``  3600       how long (seconds since the first 409 / unknown
                                        reference) a missing dependency is waited out
                                        before the row is dead-lettered
``breaker_failures``         5          consecutive failed calls that open the breaker
                                        (0: no breaker)
``breaker_seconds``          30         how long the breaker stays open; then one trial
                                        call (half-open) decides
``batch_size``               0          records per request to a destination that takes
                                        several in one (``deliver_batch``); 0: the
                                        role's own default (``batch_size`` attribute),
                                        1: one request per record
===========================  =========  ===============================================

``Retry-After`` from the destination replaces the backoff wait (capped at
``MAX_RETRY_AFTER``). A ``WaitForDependency`` does not count toward ``retries``.
Unknown keys are left to the adapter (its own options live in the same mapping).
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..errors import ConfigError
from ..http.retry import RetryPolicy

#: the longest ``Retry-After`` honoured as asked (seconds); a longer one waits this long
MAX_RETRY_AFTER = 3600.0


@dataclass(frozen=True)
class Policy:
    timeout: float = 30.0
    retries: int = 8
    backoff: float = 1.0
    max_backoff: float = 300.0
    max_wait_for_dependency: float = 3600.0
    breaker_failures: int = 5
    breaker_seconds: float = 30.0
    batch_size: int = 0

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> Policy:
        """The policy ``options`` describe; ``ConfigError`` names a key whose value is unusable."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if not options or f.name not in options or options[f.name] is None:
                continue
            raw = options[f.name]
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise ConfigError(f"connection option {f.name!r} must be a number, not {type(raw).__name__}")
            if f.type in ("int", int) and (not float(raw).is_integer()):
                raise ConfigError(f"connection option {f.name!r} must be a whole number (got {raw})")
            values[f.name] = int(raw) if f.type in ("int", int) else float(raw)
        policy = cls(**values)
        policy.validate()
        return policy

    def validate(self) -> None:
        if not 0 < self.timeout <= 600:
            raise ConfigError(f"connection option 'timeout' must be in (0, 600] seconds (got {self.timeout})")
        if not 0 <= self.retries <= 1000:
            raise ConfigError(f"connection option 'retries' must be in [0, 1000] (got {self.retries})")
        if not 0 < self.backoff <= 3600:
            raise ConfigError(f"connection option 'backoff' must be in (0, 3600] seconds (got {self.backoff})")
        if not self.backoff <= self.max_backoff <= 86400:
            raise ConfigError(f"connection option 'max_backoff' must be in [backoff, 86400] seconds (got {self.max_backoff})")
        if not 0 <= self.max_wait_for_dependency <= 30 * 86400:
            raise ConfigError(f"connection option 'max_wait_for_dependency' must be in [0, 2592000] seconds "
                              f"(got {self.max_wait_for_dependency})")
        if not 0 <= self.breaker_failures <= 10000:
            raise ConfigError(f"connection option 'breaker_failures' must be in [0, 10000] (got {self.breaker_failures})")
        if not 0 < self.breaker_seconds <= 86400:
            raise ConfigError(f"connection option 'breaker_seconds' must be in (0, 86400] (got {self.breaker_seconds})")
        if not 0 <= self.batch_size <= 1000:
            raise ConfigError(f"connection option 'batch_size' must be in [0, 1000] (got {self.batch_size})")

    # --- schedules ------------------------------------------------------------------------------

    def retry_delay(self, attempts: int, retry_after: float | None = None, *,
                    random: Callable[[], float] | None = None) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones (1 for the first):
        ``Retry-After`` when the destination gave one, else full jitter (``RetryPolicy.backoff_for``)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        return RetryPolicy(backoff=self.backoff, max_backoff=self.max_backoff, random=random).backoff_for(max(attempts - 1, 0))

    def wait_delay(self, waited: float, *, random: Callable[[], float] | None = None) -> float:
        """Seconds before asking again about a missing dependency, ``waited`` seconds after
        the change: a quarter of the time waited so far, between ``backoff`` and
        ``max_backoff``, with +-50 % jitter so waiting rows spread out."""
        base = min(self.max_backoff, max(self.backoff, waited / 4))
        return base * (0.5 + (random or _random.random)())

    def exhausted(self, attempts: int) -> bool:
        """True when ``attempts`` failed attempts use up the retries: the row is dead."""
        return attempts > self.retries


#: the option names the policy reads (``tessera config check`` may list them)
POLICY_OPTIONS = frozenset(f.name for f in fields(Policy))

__all__ = ["MAX_RETRY_AFTER", "POLICY_OPTIONS", "Policy"]
