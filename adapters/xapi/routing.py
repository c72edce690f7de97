"""xAPI's routing roles (``gateway.routing.protocol``): pull statements from another LRS,
forward this LRS's statements to another one. One role name, ``xapi.lrs``, is both.

Pull (Source), with ``client.LrsClient`` (xAPI 1.0.3 Communication 2.1.3):

* ``GET statements?since=...&ascending=true``, then each ``more`` IRL; every page is
  validated as a POST body is and stored through this LRS's own statement store
  (``StatementStore.save`` with the ``EvidenceMapper``), so evidence is derived exactly as
  for a POST, in the same transaction; the remote's ``authority`` is kept on each statement.
* Cursor: JSON ``{"since": "<ISO 8601>"}`` after each committed page: the ``stored`` of
  the page's last statement (pages come oldest first), never later than the peer's
  ``X-Experience-API-Consistent-Through`` (statements stored after it may not show yet);
  after an empty page, that time itself (nothing stored before it is left unread).
  The next pull asks for ``since`` minus ``overlap_seconds`` (option, default 1 s): two
  statements stored in the same millisecond on both sides of a page end are both read;
  what is re-read is stored already, identically, and changes nothing.
* A statement whose id this LRS holds with other content (a 409 for a POST) is counted as
  failed, with its id, and the rest of the page is stored; a page that is not a
  StatementResult, or a peer that fails, is ``Retry`` and the cursor stays.

Forward (Destination), kind ``xapi.statement`` (``routing_kinds``): the store enqueues one
outbox row per statement in the statement store's write transaction (``outbox.enqueue``,
called from ``StatementStore._write``). ``deliver`` reads the statement as stored and PUTs it with
its id (``PUT statements?statementId=``): 204 means stored or already stored identically, so
a retry never duplicates; a voiding statement is forwarded like any other and voids its
target at the destination. A 409 there (the id is stored with other content) is refused
(dead letter); 5xx/429/unreachable ``Retry``. Statements with attachments are sent as JSON
only (their ``fileUrl``, if any); a peer that wants the content refuses them.
Up to ``batch_size`` statements (option; default 50) go in one ``POST statements`` array;
a refused array is sent again statement by statement with ``PUT``, so each statement keeps
its own outcome and only a conflicting one is dead-lettered.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select

from gateway.errors import ConfigError
from gateway.routing.protocol import Connection, Delivery, PageResult, Reject, Route, each_on_refusal
from gateway.routing.remote import SharedHttp, as_failure, call

from .http import VERSION_HEADER
from .outbox import KIND, enqueue
from .partitions import where_ids
from .tables import xapi_statements

OVERLAP_SECONDS = 1.0


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# --- xapi.lrs --------------------------------------------------------------------------------------


class Lrs:
    """``xapi.lrs``: a Source and a Destination (module docstring)."""

    kinds = frozenset({KIND})

    def __init__(self, connection: Connection) -> None:
        if not connection.base_url:
            raise ConfigError(f"connection {connection.name!r}: an LRS needs base_url (its xAPI endpoint, e.g. https://lrs/xapi/)")
        self.connection = connection
        opts = connection.options
        self.version = str(opts.get("version", "1.0.3"))
        try:
            self.overlap = timedelta(seconds=float(opts.get("overlap_seconds", OVERLAP_SECONDS)))
            self.page_size = int(opts.get("page_size", 500))
        except (TypeError, ValueError):
            raise ConfigError(f"connection {connection.name!r}: overlap_seconds and page_size are numbers") from None
        self.endpoint = connection.base_url.rstrip("/") + "/"
        self.http = SharedHttp(connection, headers={VERSION_HEADER: self.version})
        self._lock = threading.Lock()
        self._stores: dict[int, Any] = {}

    # --- pull -----------------------------------------------------------------------------------

    def client(self) -> Any:
        from .client import LrsClient

        c = self.connection
        kw: dict[str, Any] = {}
        if "username" in c.auth:
            kw = {"username": c.secret("username"), "password": c.secret("password")}
        elif "client_id" in c.auth:
            from gateway.routing.remote import token_url

            scope = c.options.get("scope")
            kw = {"client_id": c.secret("client_id"), "client_secret": c.secret("client_secret"), "token_url": token_url(c),
                  "scope": str(scope) if scope else None}
        from gateway.http import NO_RETRY

        return LrsClient(self.endpoint, version=self.version, timeout=float(c.options.get("timeout", 60.0)), retry=NO_RETRY, **kw)

    def statement_store(self, store: Any) -> Any:
        """One statement store per database (it caches actors and activity definitions)."""
        from .evidence import EvidenceMapper
        from .statement_store import StatementStore

        with self._lock:
            got = self._stores.get(id(store))
            if got is None or got.store is not store:
                got = self._stores[id(store)] = StatementStore(store, EvidenceMapper(store, source=self.connection.system))
            return got

    def pull(self, store: Any, route: Route, cursor: str | None) -> Iterator[PageResult]:
        since = self.read_cursor(cursor)
        ask = _iso(since - self.overlap) if since is not None else None
        statements = self.statement_store(store)
        what = f"pull from the LRS {self.connection.name!r}"
        with self.client() as client:
            pages = client.pages(since=ask, limit=self.page_size, ascending="true")
            while True:
                try:
                    page = next(pages)
                except StopIteration:
                    return
                except Exception as exc:  # noqa: BLE001 - every failure becomes a DeliveryFailure kind
                    raise as_failure(exc, what) from None
                result = self.apply(statements, route.tenant, page)
                last = self.last_stored(page)
                ct = client.consistent_through
                mark = last
                if ct:
                    try:
                        through = _parse(ct)
                    except ValueError:
                        pass
                    else:
                        # an empty page (only ever the last): everything stored before ``through`` was seen
                        mark = min(last, through) if last is not None else through
                if mark is not None and (since is None or mark > since):
                    since = mark
                result.cursor = orjson.dumps({"since": _iso(since)}).decode() if since is not None else None
                yield result

    def read_cursor(self, cursor: str | None) -> datetime | None:
        if not cursor:
            return None
        try:
            return _parse(orjson.loads(cursor)["since"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ConfigError(f"the route's cursor is not an xAPI cursor: {cursor[:80]!r}") from None

    @staticmethod
    def last_stored(page: list[Any]) -> datetime | None:
        found = None
        for s in page:
            if isinstance(s, dict) and isinstance(s.get("stored"), str):
                try:
                    dt = _parse(s["stored"])
                except ValueError:
                    continue
                found = dt if found is None or dt > found else found
        return found

    def apply(self, statements: Any, tenant: str, page: list[Any]) -> PageResult:
        """Validate and store one page; returns its counts (cursor set by the caller)."""
        from .http import V1, XapiError
        from .statement_store import same_statement
        from .statements import complete
        from .validation import agent_key
        from .validation import statements as valid

        result = PageResult(read=len(page))
        if not page:
            return result
        try:
            batch = valid(page, V1 if self.version.startswith("1") else "2.0.0")
        except XapiError as exc:
            raise Reject(f"pull from the LRS {self.connection.name!r}: a statement of the page is not valid xAPI: {exc.detail}") from None
        given = [s.get("authority") for s in batch]
        local = {"objectType": "Agent", "account": {"homePage": self.endpoint, "name": self.connection.system}}
        known = statements._bodies(tenant, [s["id"] for s in batch])
        fresh = []
        for s, a in zip(batch, given, strict=True):
            body = known.get(str(s.get("id", "")).lower())
            if body is None:
                fresh.append((s, a))
            elif same_statement(orjson.loads(body), s):
                result.unchanged += 1  # re-read (the overlap): stored already, identically
            else:
                result.failed += 1
                result.errors.append({"message": "this LRS holds a statement with this id and other content; statements are "
                                                 "immutable (not stored)", "location": f"statement {s['id']}"})
        if not fresh:
            return result
        todo = [s for s, _ in fresh]
        stored = complete(todo, local, V1)
        for s, a in fresh:
            if a is not None:
                s["authority"] = a
        try:
            statements.save(tenant, todo, stored=stored, authority=agent_key(local))
            result.written = len(todo)
        except XapiError:
            for s in todo:  # one at a time: which ids conflict
                try:
                    statements.save(tenant, [s], stored=stored, authority=agent_key(local))
                    result.written += 1
                except XapiError as exc:
                    result.failed += 1
                    result.errors.append({"message": exc.detail[:500], "location": f"statement {s['id']}"})
        return result

    # --- forward --------------------------------------------------------------------------------

    def close(self) -> None:
        self.http.close()

    #: statements per request (the connection option ``batch_size`` overrides it)
    batch_size = 50

    def _bodies(self, store: Any, deliveries: Sequence[Delivery]) -> dict[Any, bytes]:
        s = xapi_statements
        tenant = deliveries[0].route.tenant
        with store.engine.connect() as conn:
            rows = conn.execute(select(s.c.id, s.c.body).where(where_ids(conn, tenant, [d.record_id for d in deliveries])))
            return {r.id: r.body.encode() if isinstance(r.body, str) else r.body for r in rows}

    def deliver(self, store: Any, delivery: Delivery) -> None:
        if delivery.record_kind != KIND:
            raise Reject(f"xapi.lrs forwards statements, not {delivery.record_kind}")
        body = self._bodies(store, [delivery]).get(delivery.record_id)
        if body is None:
            return  # not stored (any more): nothing to forward
        sid = str(delivery.record_id)
        what = f"PUT statements?statementId={sid}"
        r = call(self.http(), "PUT", self.endpoint + "statements", what, ok=(409,), params={"statementId": sid},
                 content=body, headers={"Content-Type": "application/json"})
        if r.status_code == 409:
            raise Reject(f"{what}: the LRS holds this statement id with other content (409)", status=409,
                         response=r.content[:2048].decode("utf-8", "replace"))

    def deliver_batch(self, store: Any, deliveries: Sequence[Delivery]) -> list[BaseException | None]:
        """Several statements in one ``POST statements`` (an array, each with its id): a
        2xx stores them all (an id stored identically changes nothing); a refusal (400,
        409: one statement's fault, or an LRS answering 409 to an id it holds) sends each
        by ``PUT`` on its own (``each_on_refusal``), so only a conflicting one is dead-lettered."""
        if any(d.record_kind != KIND for d in deliveries):
            return [None if d.record_kind == KIND else Reject(f"xapi.lrs forwards statements, not {d.record_kind}")
                    for d in deliveries]

        def send_all(ds: Sequence[Delivery]) -> None:
            bodies = self._bodies(store, ds)
            found = [bodies[d.record_id] for d in ds if d.record_id in bodies]
            if len({d.record_id for d in ds}) != len(ds):
                raise Reject("the same statement twice in one batch")  # each on its own instead
            if found:
                call(self.http(), "POST", self.endpoint + "statements", f"POST statements ({len(found)} statements)",
                     content=b"[" + b",".join(found) + b"]", headers={"Content-Type": "application/json"}, idempotent=True)

        return each_on_refusal(deliveries, send_all, lambda d: self.deliver(store, d))


def lrs_role(connection: Connection) -> Lrs:
    return Lrs(connection)


ROLES = {"xapi.lrs": lrs_role}

__all__ = ["KIND", "ROLES", "Lrs", "enqueue"]
