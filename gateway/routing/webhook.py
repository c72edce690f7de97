"""The built-in ``webhook`` destination: JSON change events, signed, timestamped and
replay-protected (docs/webhooks.md).

A push route whose destination connection has the role ``webhook`` POSTs one event per
outbox row to the connection's ``base_url``::

    {"id": "<idempotency key>", "type": "tessera.record.changed", "tenant": "t1",
     "route": "to-lms", "kind": "person", "record_id": "<uuid>", "op": "upsert",
     "content_hash": "<sha256>", "attempt": 1, "record": {...canonical record...}}

``op`` is ``upsert`` (``record`` is the canonical record) or ``delete`` (``tombstone`` names
the record: id, kind, source, native_id, status ``tobedeleted``). Headers:

* ``Idempotency-Key``: the event id (route, record, content hash): the same change always
  has the same id, however often it is retried;
* ``X-Tessera-Timestamp``: Unix seconds when this attempt was signed;
* ``X-Tessera-Signature``: ``sha256=`` + hex HMAC-SHA256 of ``timestamp + "." + body``,
  keyed with the connection's ``signing_secret`` (``auth: {signing_secret: env:NAME}``).

With the connection option ``batch_size`` above 1, one signed POST carries up to that many
events: ``{"id": "batch:<sha256 of the event ids>", "type": "tessera.record.batch",
"events": [event, ...]}`` (``Idempotency-Key`` is that id; ``events_of`` gives the events
either way). A 2xx delivers them all; 429/5xx/timeouts retry them all; a 409 or another
4xx sends each event again on its own (``protocol.each_on_refusal``), so only the refused
one waits or is dead-lettered. The default stays one event per request.

A receiver checks both with ``verify`` (or its own ten lines, docs/webhooks.md): the
signature proves the sender, the timestamp (within ``tolerance`` seconds) bounds how long a
captured request can be replayed, and remembering event ids inside that window refuses the
replays left. Answers: 2xx delivered; 409 wait for a dependency; 429/5xx/timeouts retried
with backoff; any other 4xx dead-lettered.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Container, Mapping, MutableSet, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ConfigError
from ..http.client import HttpClient
from ..http.retry import NO_RETRY, RetryLater, Unreachable
from ..model import RECORD_TYPES, Status
from .policy import Policy
from .protocol import Connection, Delivery, Retry, each_on_refusal, failure_from_response

if TYPE_CHECKING:
    from ..store import Store

SIGNATURE = "X-Tessera-Signature"
TIMESTAMP = "X-Tessera-Timestamp"
IDEMPOTENCY_KEY = "Idempotency-Key"
EVENT_TYPE = "tessera.record.changed"
BATCH_TYPE = "tessera.record.batch"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def event(delivery: Delivery) -> dict[str, Any]:
    """The JSON change event of one delivery."""
    rec = delivery.record
    deleted = rec is None or rec.status == Status.tobedeleted
    ev: dict[str, Any] = {
        "id": delivery.idempotency_key,
        "type": EVENT_TYPE,
        "tenant": delivery.route.tenant,
        "route": delivery.route.name,
        "kind": delivery.record_kind,
        "record_id": str(delivery.record_id),
        "op": "delete" if deleted else "upsert",
        "content_hash": delivery.content_hash,
        "attempt": delivery.attempt,
    }
    if not deleted:
        ev["record"] = rec.model_dump(mode="json") if rec is not None else None
    elif rec is not None:
        ev["tombstone"] = {"id": str(rec.id), "kind": rec.kind, "source": rec.source, "native_id": rec.native_id,
                           "status": Status.tobedeleted.value}
    else:
        ev["tombstone"] = {"id": str(delivery.record_id), "kind": delivery.record_kind, "status": Status.tobedeleted.value}
    return ev


class WebhookDestination:
    """Role ``webhook``: POST each change as a signed JSON event to ``base_url``."""

    kinds: frozenset[str] = frozenset(RECORD_TYPES)

    def __init__(self, connection: Connection, *, clock: Callable[[], float] = time.time) -> None:
        if not connection.base_url or not connection.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"connection {connection.name!r}: a webhook needs an http(s) base_url")
        if "signing_secret" not in connection.auth:
            raise ConfigError(f"connection {connection.name!r}: a webhook needs auth signing_secret: env:NAME")
        self.connection = connection
        self.clock = clock
        self.policy = Policy.from_options(connection.options)
        # the routing engine retries (with its policy and the breaker): one attempt per call here
        self.http = HttpClient(retry=NO_RETRY, timeout=self.policy.timeout, follow_redirects=False)

    #: one event per request unless the connection's ``batch_size`` option says more
    batch_size = 1

    def deliver(self, store: Store, delivery: Delivery) -> None:
        self._post(orjson.dumps(event(delivery)), delivery.idempotency_key)

    def deliver_batch(self, store: Store, deliveries: Sequence[Delivery]) -> list[BaseException | None]:
        """Several events in one signed request (module docstring)."""
        return each_on_refusal(deliveries, self._post_batch, lambda d: self.deliver(store, d))

    def _post_batch(self, deliveries: Sequence[Delivery]) -> None:
        events = [event(d) for d in deliveries]
        batch_id = "batch:" + hashlib.sha256("\n".join(e["id"] for e in events).encode()).hexdigest()
        self._post(orjson.dumps({"id": batch_id, "type": BATCH_TYPE, "events": events}), batch_id)

    def _post(self, body: bytes, key: str) -> None:
        secret = self.connection.secret("signing_secret")
        assert secret is not None
        timestamp = str(int(self.clock()))
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_KEY: key,
            TIMESTAMP: timestamp,
            SIGNATURE: sign(secret, timestamp, body),
        }
        url = self.connection.base_url or ""
        try:
            response = self.http.post(url, content=body, headers=headers, idempotent=True)
        except Unreachable as exc:
            raise Retry(str(exc)) from None
        except RetryLater as exc:
            raise Retry(str(exc), retry_after=exc.seconds, status=exc.status) from None
        failure = failure_from_response(response, f"webhook {self.connection.name}")
        if failure is not None:
            raise failure

    def close(self) -> None:
        self.http.close()


#: the gateway's own connection roles (``Wiring.routing_roles`` starts from these)
BUILTIN_ROLES: dict[str, Callable[[Connection], Any]] = {"webhook": WebhookDestination}


# --- the receiver's side --------------------------------------------------------------------------


class WebhookVerificationError(ValueError):
    """The request is not a valid, fresh, first delivery of a Tessera event."""


class DuplicateEvent(WebhookVerificationError):
    """A valid event whose id was already received: a retry of a delivery whose answer was
    lost, or a replay. Answer it 2xx without applying it again (a 4xx would dead-letter it)."""

    def __init__(self, message: str, event: dict[str, Any]) -> None:
        super().__init__(message)
        self.event = event


def verify(body: bytes, headers: Mapping[str, str], secret: str | list[str], tolerance: int = 300, *,
           now: float | None = None, seen: Container[str] | None = None) -> dict[str, Any]:
    """Check a received webhook and return its event.

    * ``body``: the raw request body, exactly as received (bytes, before any JSON parsing);
    * ``headers``: the request headers (any case);
    * ``secret``: the signing secret, or several while rotating it (any one may match);
    * ``tolerance``: how many seconds the timestamp may differ from ``now``;
    * ``seen``: event ids already processed (a set, or a store's container); a repeat is
      refused with ``DuplicateEvent`` (answer it 2xx: Tessera retries a delivery whose
      answer it did not get), and when ``seen`` is a mutable set the id is added to it.

    Raises ``WebhookVerificationError`` saying which check failed."""
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get(TIMESTAMP.lower())
    signature = lower.get(SIGNATURE.lower())
    if not timestamp or not signature:
        raise WebhookVerificationError(f"missing {TIMESTAMP} or {SIGNATURE}")
    try:
        sent = int(timestamp)
    except ValueError:
        raise WebhookVerificationError(f"{TIMESTAMP} is not a Unix time in seconds") from None
    if abs((time.time() if now is None else now) - sent) > tolerance:
        raise WebhookVerificationError(f"the timestamp is more than {tolerance} s away from now: a stale or replayed request")
    given = [s.strip() for s in signature.split(",") if s.strip()]
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not any(hmac.compare_digest(sign(s, timestamp, body), g) for s in secrets for g in given):
        raise WebhookVerificationError("the signature does not match the body and timestamp")
    try:
        ev = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise WebhookVerificationError("the body is not JSON") from None
    if not isinstance(ev, dict) or not isinstance(ev.get("id"), str):
        raise WebhookVerificationError("the body is not a Tessera event")
    if lower.get(IDEMPOTENCY_KEY.lower(), ev["id"]) != ev["id"]:
        raise WebhookVerificationError(f"{IDEMPOTENCY_KEY} and the event id differ")
    if seen is not None:
        if ev["id"] in seen:
            raise DuplicateEvent(f"event {ev['id']} was already received", ev)
        if isinstance(seen, MutableSet):
            seen.add(ev["id"])
    return ev


def events_of(received: dict[str, Any]) -> list[dict[str, Any]]:
    """The events a verified request carries: the batch's ``events``, or the one event."""
    if received.get("type") == BATCH_TYPE and isinstance(received.get("events"), list):
        return [e for e in received["events"] if isinstance(e, dict)]
    return [received]


__all__ = ["BATCH_TYPE", "BUILTIN_ROLES", "EVENT_TYPE", "events_of", "DuplicateEvent", "WebhookDestination", "WebhookVerificationError", "event", "sign", "verify"]
