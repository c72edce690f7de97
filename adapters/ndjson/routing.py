"""The ``tessera`` routing role: a Destination that is another Tessera (a district forwarding
to a state instance), fed through that instance's canonical NDJSON import
(``POST /ndjson/records``, ``router``), with OAuth 2.0 client credentials
(``gateway.routing.remote.auth_for``: auth ``client_id`` + ``client_secret``; option
``token_url``, default ``{base_url}/oauth/token``).

* Which tenant: the other instance writes into the tenant of the credentials. Option
  ``remote_tenant`` names it (default: the route's own tenant name): ids are derived per tenant
  (``gateway.model.record_id``), so the record goes without ``tenant`` and with its id as a
  label (``gateway.model.tenancy``), and every reference it holds is rewritten to the id the
  referenced record has in the other tenant (looked up here: kind, source, native id).
* Idempotent by nature: the other store upserts by (tenant, source, native id) and counts
  a repeated delivery unchanged. A tombstone is the record with ``status: tobedeleted``.
  The idempotency key goes as ``Idempotency-Key`` too (on a request of one record).
* Up to ``batch_size`` records (option; default 100) go in one request, in commit order;
  the other instance applies a request atomically, so a refused one is sent again record
  by record and only the refused record waits or is dead-lettered.
* A reference the other instance does not hold yet (422 "neither in the batch nor
  stored", or 409) is ``WaitForDependency``; other 4xx ``Reject``; 5xx/429/transport ``Retry``.
* A record deleted from this store (``record`` None) has nothing left to send.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from gateway.errors import ConfigError, NotFound
from gateway.model import RECORD_TYPES, record_id
from gateway.model.tenancy import relabel
from gateway.routing.protocol import Connection, Delivery, WaitForDependency, each_on_refusal, failure_from_response
from gateway.routing.remote import SharedHttp, call
from gateway.store.prepare import REFERENCES

MEDIA_TYPE = "application/x-ndjson"


class TesseraDestination:
    """``tessera``: see the module docstring."""

    kinds = frozenset(RECORD_TYPES)

    def __init__(self, connection: Connection) -> None:
        if not connection.base_url:
            raise ConfigError(f"connection {connection.name!r}: another Tessera needs base_url")
        self.connection = connection
        self.url = connection.base_url.rstrip("/") + "/ndjson/records"
        self.http = SharedHttp(connection)

    def close(self) -> None:
        self.http.close()

    def line(self, store: Any, delivery: Delivery) -> bytes:
        """The record as one NDJSON line for the other tenant (module docstring)."""
        rec = delivery.record
        assert rec is not None
        tenant = delivery.route.tenant
        remote = str(self.connection.options.get("remote_tenant") or tenant)
        mapping: dict[str, str] = {}
        for target, refs in REFERENCES[rec.kind]:
            for ref in refs.ids(rec):
                if ref is None or str(ref) in mapping:
                    continue
                try:
                    other = store.records.get(tenant, target, ref)
                except NotFound:
                    continue  # held unresolved here: it stays what it is
                mapping[str(ref)] = str(record_id(remote, target, other.source, other.native_id))
        doc = rec.model_dump(mode="json", exclude_none=True)
        doc.pop("tenant", None)
        for stamp in ("created_at", "updated_at"):
            doc.pop(stamp, None)
        doc = relabel(doc, mapping) if mapping else doc
        doc["id"] = str(record_id(remote, rec.kind, rec.source, rec.native_id))
        return orjson.dumps(doc) + b"\n"

    #: records per request (the connection option ``batch_size`` overrides it)
    batch_size = 100

    def deliver(self, store: Any, delivery: Delivery) -> None:
        if delivery.record is None:
            return
        self._post(store, [delivery], f"POST /ndjson/records ({delivery.record_kind} {delivery.record_id})", delivery.idempotency_key)

    def deliver_batch(self, store: Any, deliveries: Sequence[Delivery]) -> list[BaseException | None]:
        """Several records as one NDJSON body: the other Tessera applies it atomically, so a
        refusal (a reference it does not hold yet, a record it rejects) sends each on its
        own (``each_on_refusal``), and only that record waits or is dead-lettered."""
        def send_all(ds: Sequence[Delivery]) -> None:
            todo = [d for d in ds if d.record is not None]
            if todo:
                self._post(store, todo, f"POST /ndjson/records ({len(todo)} records)", None)

        return each_on_refusal(deliveries, send_all, lambda d: self.deliver(store, d))

    def _post(self, store: Any, deliveries: Sequence[Delivery], what: str, key: str | None) -> None:
        headers = {"Content-Type": MEDIA_TYPE}
        if key is not None:
            headers["Idempotency-Key"] = key
        r = call(self.http(), "POST", self.url, what, ok=(422,), content=b"".join(self.line(store, d) for d in deliveries),
                 idempotent=True, headers=headers)
        if r.status_code == 422:
            failure = failure_from_response(r, what)
            assert failure is not None
            if b"neither in the batch nor stored" in r.content or b"integrity" in r.content:
                raise WaitForDependency(f"{what}: the other Tessera does not hold a record it references yet", status=422,
                                        request=failure.request, response=failure.response)
            raise failure


def tessera_role(connection: Connection) -> TesseraDestination:
    return TesseraDestination(connection)


ROLES = {"tessera": tessera_role}

__all__ = ["ROLES", "TesseraDestination"]
