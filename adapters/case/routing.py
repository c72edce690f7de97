"""CASE's routing role (``gateway.routing.protocol``): ``case.client``, a Source that pulls
the frameworks a CASE 1.0 provider changed since the route's cursor.

* The provider's CFDocuments are listed (``client.CaseClient.documents``: getAllCFDocuments,
  paged). A document is fetched (getCFPackage) when its ``lastChangeDateTime`` differs from
  the one the cursor recorded for it, or the cursor does not know it; in the order they
  changed, oldest first. Each is imported through the CASE importer
  (``CaseAdapter.import_package``: validated against the CASE schema, stored in ONE
  transaction, a newer version updating the stored one in place, items it no longer has
  retired as ``tobedeleted``).
* Cursor: JSON ``{"since": "<latest lastChangeDateTime seen>", "documents": {identifier:
  lastChangeDateTime}}``. ``lastChangeDateTime`` is the *publisher's* clock, not the
  provider's: a framework loaded onto the provider today may carry a date years old, so a
  bare "changed after since" would never see it, and no overlap window would help. The
  per-document map is small (a provider holds tens or hundreds of frameworks) and exact: a
  new document, or one whose date moved either way, is pulled; nothing else is fetched.
* One ``PageResult`` per imported package, after its commit, with the cursor covering it
  and every package before it. A document without a ``lastChangeDateTime`` is imported on
  every pull (nothing says it did not change).
* Failures: an unreachable provider, a 5xx, an answer that is not CASE or JSON cut short ->
  ``Retry``; a package that fails validation -> ``Reject`` (the run fails, the cursor stays
  at the last package committed); an older version than the one stored is counted failed,
  reported, and recorded so that it is not fetched again until it changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.errors import ConfigError, Conflict
from gateway.routing.protocol import Connection, PageResult, Retry, Route
from gateway.routing.remote import as_failure


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _text(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CaseSource:
    """``case.client``: see the module docstring."""

    def __init__(self, connection: Connection, adapter: Any) -> None:
        #: the ``CaseAdapter``: its ``import_package`` is the CASE importer
        self.adapter = adapter
        if not connection.base_url:
            raise ConfigError(f"connection {connection.name!r}: a CASE provider needs base_url")
        self.connection = connection
        self.strict = bool(connection.options.get("strict", False))

    def client(self) -> Any:
        from gateway.http import NO_RETRY

        from .client import CaseClient

        c = self.connection
        kw: dict[str, Any] = {}
        if "client_id" in c.auth:
            from gateway.routing.remote import token_url

            scope = c.options.get("scope")
            kw = {"client_id": c.secret("client_id"), "client_secret": c.secret("client_secret"), "token_url": token_url(c),
                  "scope": str(scope) if scope else None}
        return CaseClient(str(c.base_url), timeout=float(c.options.get("timeout", 60.0)), retry=NO_RETRY, **kw)

    def pull(self, store: Any, route: Route, cursor: str | None) -> Iterator[PageResult]:
        from gateway.errors import MalformedInput

        since, known = self.read_cursor(cursor)
        what = f"pull from the CASE provider {self.connection.name!r}"
        adapter = self.adapter
        with self.client() as client:
            try:
                docs = [d for d in client.documents() if isinstance(d, dict) and d.get("identifier")]
            except Exception as exc:  # noqa: BLE001 - every failure becomes a DeliveryFailure kind
                raise as_failure(exc, what) from None
            changed = []
            for d in docs:
                ident, stamp = str(d["identifier"]), d.get("lastChangeDateTime")
                if not stamp or known.get(ident) != stamp:
                    changed.append((_when(stamp), ident, stamp))
            changed.sort(key=lambda x: (x[0] is None, x[0] or datetime.min.replace(tzinfo=UTC), x[1]))
            for at, ident, stamp in changed:
                page = PageResult(read=1)
                try:
                    data = client.package(ident)
                    _, done = adapter.import_package(store, route.tenant, data, source=self.connection.system, strict=self.strict,
                                                     name=f"CFPackages/{ident}")
                except Conflict as exc:  # an older version than the one stored: skipped, said
                    page.failed = 1
                    page.errors.append({"message": exc.detail[:500], "location": f"CFPackages/{ident}"})
                except MalformedInput as exc:  # not JSON: cut short on the way, most likely
                    raise Retry(f"{what}, CFPackages/{ident}: {exc.detail[:300]}") from None
                except Exception as exc:  # noqa: BLE001
                    raise as_failure(exc, f"{what}, CFPackages/{ident}") from None
                else:
                    page.read = sum(c.created + c.updated + c.unchanged for c in done.result.counts.values())
                    page.written = done.result.created + done.result.updated
                    page.unchanged = done.result.unchanged
                    page.deleted = sum(done.retired.values())
                if stamp:
                    known[ident] = stamp
                if at is not None and (since is None or at > since):
                    since = at
                page.cursor = orjson.dumps({"since": _text(since) if since else None, "documents": known}).decode()
                yield page

    def read_cursor(self, cursor: str | None) -> tuple[datetime | None, dict[str, str]]:
        if not cursor:
            return None, {}
        try:
            doc = orjson.loads(cursor)
            docs = doc.get("documents") or {}
            if not isinstance(docs, dict):
                raise TypeError
            return _when(doc.get("since")), {str(k): str(v) for k, v in docs.items()}
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            raise ConfigError(f"the route's cursor is not a CASE cursor: {cursor[:80]!r}") from None


def roles(adapter: Any) -> dict[str, Any]:
    """The role factories, bound to the adapter whose importer they use."""
    return {"case.client": lambda connection: CaseSource(connection, adapter)}


__all__ = ["CaseSource", "roles"]
