"""A client of another LRS (``gateway.http``): pull statements from it, forward statements to it.

Pulling (xAPI 1.0.3 Communication 2.1.3): ``GET statements`` with ``since`` (and any other
filter), then the ``more`` IRL of each StatementResult until it is empty. ``more`` is
relative to the LRS's server root (2.1.3.s1, StatementResult), so it is resolved against the
endpoint's scheme and host, not its path. The peer's ``X-Experience-API-Consistent-Through``
is kept (``consistent_through``): the safe watermark for the next pull.

Forwarding (2.1.1, 2.1.2): statements go out in batches with their ids, so a retry can
never duplicate them at the destination. A batch POST is all-or-nothing at the peer: when
it answers 409 (some id is already stored there with other content), each statement of
that batch is PUT on its own (``PUT statements?statementId=``), where 204 means stored or
already stored identically, and 409 marks only that statement as a conflict.

Authentication: HTTP Basic, or OAuth 2.0 client credentials (``gateway.auth.outbound``)
whose token is fetched on first use and renewed once when the peer answers 401. Every
request carries ``X-Experience-API-Version`` (3.3). Secrets never appear in an error, a
log line or a repr. Transport failures, 429 and 5xx are retried with backoff
(``gateway.http.retry``): GETs and PUTs as idempotent methods, and the batch POST too,
because every statement in it carries its id (a repeated batch stores nothing twice).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from gateway.auth.outbound import ClientCredentials, json_or_none
from gateway.errors import AuthError, ConfigError, UpstreamError
from gateway.http import BasicAuth, BearerAuth, HttpClient, RetryLater, RetryPolicy, Unreachable, UsesHttp

from .http import CONSISTENT_THROUGH, VERSION_HEADER


class LrsError(UpstreamError):
    """The peer LRS answered with an error, or with something that is not xAPI (502)."""


@dataclass
class SendResult:
    """What forwarding did: ids the peer holds now, and ids it holds with other content."""

    stored: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


class LrsClient(UsesHttp):
    def __init__(
        self,
        endpoint: str,
        *,
        version: str = "1.0.3",
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_url: str | None = None,
        scope: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ConfigError("give both a Basic username and its password, or neither")
        if (client_id is None) != (client_secret is None):
            raise ConfigError("give both an OAuth 2.0 client id and its secret, or neither")
        if username is not None and client_id is not None:
            raise ConfigError("give HTTP Basic credentials or OAuth 2.0 client credentials, not both")
        #: the LRS's base endpoint, e.g. https://lrs.example/xapi/
        self.endpoint = endpoint.rstrip("/") + "/"
        self.version = version
        self.consistent_through: str | None = None
        self._who = username or client_id
        self._oauth = (
            ClientCredentials(token_url, client_id, client_secret, scope) if client_id is not None and client_secret is not None else None
        )
        auth = (BasicAuth(username, password) if username is not None and password is not None
                else BearerAuth(self._oauth) if self._oauth is not None else None)
        self.http = HttpClient(
            timeout=timeout, transport=transport, auth=auth, retry=retry,
            headers={VERSION_HEADER: version, "Accept": "application/json", "User-Agent": "tessera-xapi-client"},
        )

    def __repr__(self) -> str:
        return f"LrsClient({self.endpoint!r}, user={self._who!r})"

    # --- HTTP --------------------------------------------------------------------------------

    def _request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        """One request (retried, and the OAuth token renewed once on a 401, by ``gateway.http``)."""
        try:
            r = self.http.request(method, url, **kw)
        except Unreachable as exc:
            raise LrsError(f"the LRS at {self.endpoint} could not be reached ({exc.reason})") from None
        except RetryLater as exc:
            raise LrsError(f"the LRS at {self.endpoint} asks to retry in {exc.seconds:.0f} s (HTTP {exc.status})") from None
        if r.status_code == 401:
            raise AuthError(f"the LRS at {self.endpoint} refused the credentials ({method} {_path(url)})")
        return r

    def _fail(self, r: httpx.Response, what: str) -> LrsError:
        body = json_or_none(r)
        message = body.get("message") if isinstance(body, dict) else None
        return LrsError(f"the LRS answered HTTP {r.status_code} to {what}: {str(message or r.reason_phrase)[:300]}")

    # --- pulling -------------------------------------------------------------------------------

    def statements(self, *, since: str | None = None, limit: int | None = None, **filters: str) -> Iterator[dict[str, Any]]:
        """Every statement matching the filters (GET statements, then each ``more`` IRL)."""
        for page in self.pages(since=since, limit=limit, **filters):
            yield from page

    def pages(self, *, since: str | None = None, limit: int | None = None, **filters: str) -> Iterator[list[dict[str, Any]]]:
        """The same, one StatementResult page at a time (``consistent_through`` is the
        header of the last page read)."""
        params: dict[str, Any] = dict(filters)
        if since is not None:
            params["since"] = since
        if limit is not None:
            params["limit"] = limit
        url: str | None = urljoin(self.endpoint, "statements")
        query: dict[str, Any] | None = params
        while url:
            r = self._request("GET", url, params=query)
            if r.status_code != 200:
                raise self._fail(r, "GET statements")
            self.consistent_through = r.headers.get(CONSISTENT_THROUGH, self.consistent_through)
            body = json_or_none(r)
            if not isinstance(body, dict) or not isinstance(body.get("statements"), list):
                raise LrsError("the LRS's GET statements answer is not a StatementResult")
            yield body["statements"]
            more = body.get("more") or ""
            url, query = (self._more(more), None) if more else (None, None)

    def _more(self, more: str) -> str:
        """The ``more`` IRL, resolved against the server root (an absolute one is kept)."""
        parts = urlsplit(self.endpoint)
        return urljoin(f"{parts.scheme}://{parts.netloc}/", more)

    # --- forwarding -----------------------------------------------------------------------------

    def send(self, statements: Iterable[dict[str, Any]], *, batch_size: int = 100) -> SendResult:
        """Forward ``statements`` in batches, idempotently (module docstring)."""
        result = SendResult()
        batch: list[dict[str, Any]] = []
        for stmt in statements:
            batch.append(stmt if "id" in stmt else {**stmt, "id": str(uuid.uuid4())})
            if len(batch) >= batch_size:
                self._send_batch(batch, result)
                batch = []
        if batch:
            self._send_batch(batch, result)
        return result

    def _send_batch(self, batch: list[dict[str, Any]], result: SendResult) -> None:
        # every statement carries its id: sending the batch twice stores nothing twice
        r = self._request("POST", urljoin(self.endpoint, "statements"), json=batch, idempotent=True)
        if r.status_code in (200, 204):
            result.stored.extend(s["id"] for s in batch)
            return
        if r.status_code != 409:
            raise self._fail(r, f"POST statements (a batch of {len(batch)})")
        for stmt in batch:  # the batch was refused whole: find which ids conflict
            one = self._request("PUT", urljoin(self.endpoint, "statements"), params={"statementId": stmt["id"]}, json=stmt)
            if one.status_code == 204:
                result.stored.append(stmt["id"])
            elif one.status_code == 409:
                result.conflicts.append(stmt["id"])
            else:
                raise self._fail(one, f"PUT statements?statementId={stmt['id']}")


def _path(url: str) -> str:
    return urlsplit(url).path


__all__ = ["LrsClient", "LrsError", "SendResult"]
