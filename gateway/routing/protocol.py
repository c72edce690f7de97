"""What the routing layer asks of an adapter's client side (DESIGN section 6).

The routing layer knows no standard. An adapter that can talk to a remote system of its
standard declares *roles* (``routing_roles()`` in ``adapters/base.py``): a role name such
as ``oneroster.rest.client`` maps to a factory that takes a ``Connection`` and returns a
``Source`` (pull routes read from it into this Tessera's store) or a ``Destination`` (push
routes deliver the store's changes to it), or an object that is both.

* A ``Source`` applies what it reads to the store itself, through the adapter's own import
  path (the one ``tessera import`` uses), in dependency order, and yields one
  ``PageResult`` after each page is *committed*. The engine stores ``PageResult.cursor``
  only after that, so a crash between the two re-reads one page, which the idempotent
  store counts as unchanged.
* A ``Destination`` delivers one outbox row at a time (``Delivery``) with the destination
  standard's own idempotent form (xAPI statement id, OneRoster PUT by sourcedId, AGS score
  timestamp; the idempotency key as a header otherwise). It returns on success and raises
  one of the ``DeliveryFailure`` kinds otherwise; ``failure_from_response`` turns an HTTP
  answer into the right kind, so every destination classifies alike.
* A ``Destination`` may also take several rows in one request: ``deliver_batch(store,
  deliveries)`` returns one result per delivery (None: delivered; an exception: that
  delivery's failure), and ``batch_size`` says how many it takes by default (the
  connection option ``batch_size`` overrides it). Each record keeps its own idempotent
  form, outcome, retries and dead letter: ``each_on_refusal`` is the usual shape (one
  request for all; a refusal that may be one record's sends each on its own).

Secrets: a connection's ``auth`` holds references (``env:NAME``), never values;
``Connection.secret`` reads the variable when the call is made, and no failure, sync run or
dead letter carries a value (``gateway.http.redact``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ConfigError

if TYPE_CHECKING:
    import httpx

    from ..model import Record
    from ..store import Store

#: the order a pull applies kinds in, and the order deliveries of one batch go out
DEPENDENCY_ORDER: tuple[str, ...] = (
    "org", "academic_session", "course", "section", "person", "enrollment",
    "framework", "competency", "relation", "alignment", "proficiency_scale",
    "evidence", "mastery_rule", "mastery_state", "learning_plan",
)

#: the most of a response body a failure, a sync run or a dead letter keeps
EXCERPT = 2048


def env_ref(ref: str) -> str:
    """``env:NAME`` -> ``NAME``; anything else is refused (a secret must never be inline)."""
    if not (isinstance(ref, str) and ref.startswith("env:") and len(ref) > 4):
        raise ConfigError(f"a secret must be referenced as 'env:NAME', not given inline (got a {type(ref).__name__})")
    return ref[4:]


@dataclass(frozen=True)
class Connection:
    """An external system (DESIGN section 6): adapter + role, base URL, auth by reference, options."""

    id: uuid.UUID
    tenant: str
    name: str
    adapter: str
    role: str
    #: the source system name records from it carry (and that push routes never echo back to)
    system: str
    base_url: str | None = None
    #: key -> ``env:NAME`` (e.g. ``client_id``, ``client_secret``, ``username``, ``password``)
    auth: Mapping[str, str] = field(default_factory=dict)
    #: adapter options plus the failure policy (``timeout``, ``retries``, ``breaker_failures``,
    #: ``breaker_seconds``; see ``gateway.routing.policy``)
    options: Mapping[str, Any] = field(default_factory=dict)

    def secret(self, key: str, *, required: bool = True) -> str | None:
        """The value of the environment variable ``auth[key]`` names, read now."""
        ref = self.auth.get(key)
        if ref is None:
            if required:
                raise ConfigError(f"connection {self.name!r}: auth {key!r} is not configured")
            return None
        name = env_ref(ref)
        value = os.environ.get(name)
        if value is None and required:
            raise ConfigError(f"connection {self.name!r}: environment variable {name} (auth {key!r}) is not set")
        return value

    def __repr__(self) -> str:  # auth holds references only, but keep reprs short and safe
        return f"Connection({self.name!r}, {self.adapter}/{self.role}, {self.base_url!r})"


@dataclass(frozen=True)
class Route:
    id: uuid.UUID
    tenant: str
    name: str
    mode: str  # pull | push
    kinds: tuple[str, ...]
    #: pull: the remote system read from; push: None
    source: Connection | None
    #: push: the remote system delivered to; pull: None (this Tessera's store)
    destination: Connection | None
    #: org filter (sourcedIds); empty: every org
    orgs: tuple[str, ...] = ()
    mapping: str | None = None
    schedule_seconds: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class PageResult:
    """One committed page of a pull. Counts are of records; ``cursor`` is the opaque cursor
    that covers everything committed so far (None: leave the stored cursor as it is)."""

    cursor: str | None = None
    read: int = 0
    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    #: ``{"message": ..., "location": ...}``: what could not be applied, with its place
    errors: list[dict[str, str]] = field(default_factory=list)


@runtime_checkable
class Source(Protocol):
    def pull(self, store: Store, route: Route, cursor: str | None) -> Iterator[PageResult]:
        """Read the route's kinds from the connection (since ``cursor``; None: a full pull,
        which also retires what the source no longer lists), apply each page to the store
        under ``route.tenant`` and yield after it is committed. Raises ``DeliveryFailure``
        kinds for the remote's failures (the run records them)."""
        ...


@dataclass(frozen=True)
class Delivery:
    """One outbox row, with the record it names as the store holds it now."""

    route: Route
    outbox_id: int
    record_kind: str
    record_id: uuid.UUID
    content_hash: str
    #: ``{route}:{record}:{content_hash}``: send it where the destination takes one
    #: (``Idempotency-Key`` header for webhooks)
    idempotency_key: str
    #: the canonical record; ``record.status == "tobedeleted"`` (or ``voided`` evidence)
    #: is a tombstone to the destination. None: the record is gone from the store, or the
    #: kind is an adapter's own (``routing_kinds``, e.g. ``xapi.statement``), which its
    #: destination reads itself by ``record_id``.
    record: Record | None
    #: 1 for the first attempt
    attempt: int


@runtime_checkable
class Destination(Protocol):
    #: the record kinds it can deliver; a push route asking for another kind is refused by
    #: ``tessera config check``
    kinds: frozenset[str]

    def deliver(self, store: Store, delivery: Delivery) -> None:
        """Deliver one record (idempotently). Return on success, raise a ``DeliveryFailure`` kind."""
        ...


@runtime_checkable
class BatchDestination(Destination, Protocol):
    #: how many deliveries one request takes by default
    batch_size: int

    def deliver_batch(self, store: Store, deliveries: Sequence[Delivery]) -> list[BaseException | None]:
        """Deliver several records, idempotently each: one result per delivery, in order."""
        ...


def each_on_refusal(deliveries: Sequence[Delivery], send_all: Callable[[Sequence[Delivery]], None],
                    send_one: Callable[[Delivery], None]) -> list[BaseException | None]:
    """A ``deliver_batch``: ``send_all`` in one request; when the destination refuses it as a
    whole for what may be one record's fault (``Reject``, ``WaitForDependency``: a 4xx),
    ``send_one`` each delivery so that only the culprit fails (dead letter, or a wait).
    A ``Retry`` (5xx, 429, unreachable) is every delivery's and is raised as it is."""
    try:
        send_all(deliveries)
        return [None] * len(deliveries)
    except (Reject, WaitForDependency):
        pass
    out: list[BaseException | None] = []
    for d in deliveries:
        try:
            send_one(d)
            out.append(None)
        except Exception as exc:  # noqa: BLE001 - each delivery's own failure, classified by the engine
            out.append(exc)
    return out


#: role name -> factory(connection) -> Source | Destination
RoleFactory = Callable[[Connection], Any]


class DeliveryFailure(Exception):
    """A remote call that did not succeed. ``request`` is a redacted summary (method, URL
    without secrets, body excerpt), ``response`` an excerpt of at most ``EXCERPT`` bytes."""

    def __init__(self, message: str, *, status: int | None = None, request: str | None = None, response: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.request = request
        self.response = response


class Retry(DeliveryFailure):
    """Try again later with backoff: connection errors, timeouts, TLS errors, 429, 5xx."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class WaitForDependency(DeliveryFailure):
    """409 or an "unknown reference": wait for the record it depends on to be delivered,
    without counting toward the dead-letter limit. ``depends_on`` names it where known."""

    def __init__(self, message: str, *, depends_on: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.depends_on = depends_on


class Reject(DeliveryFailure):
    """Any other 4xx: the destination refuses this record. Dead-lettered at once."""


def request_summary(request: httpx.Request) -> str:
    """Method, redacted URL and a body excerpt, for a dead letter."""
    from ..http.redact import url as redacted_url

    body = request.content[:EXCERPT].decode("utf-8", "replace") if request.content else ""
    return f"{request.method} {redacted_url(request.url)}" + (f"\n\n{body}" if body else "")


def failure_from_response(response: httpx.Response, what: str) -> DeliveryFailure | None:
    """None for a 2xx; otherwise the failure kind the routing policy prescribes."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    from ..http.retry import retry_after

    kw: dict[str, Any] = {
        "status": status,
        "request": request_summary(response.request),
        "response": response.content[:EXCERPT].decode("utf-8", "replace"),
    }
    message = f"{what}: the destination answered {status}"
    if status == 429 or status >= 500:
        return Retry(message, retry_after=retry_after(response.headers.get("Retry-After")), **kw)
    if status == 409:
        return WaitForDependency(message, **kw)
    return Reject(message, **kw)
