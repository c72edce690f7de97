"""``HttpClient``: the one way Tessera calls another system over HTTP (httpx, sync).

Every outbound client (CASE, OneRoster, xAPI, the LTI services, the routing layer's
destinations) holds one ``HttpClient`` per peer, and with it one ``httpx.Client``: one
connection pool, closed with the client (``close`` or ``with``). Per request it does, in
this order, on every attempt:

1. builds the request (the client's base headers, the caller's, ``X-Request-ID``), and lets
   the ``Auth`` put its credentials on it (``auth.py``);
2. sends it; a transport failure or a retryable answer is tried again as ``RetryPolicy``
   says (``retry.py``: backoff with full jitter, ``Retry-After``, idempotent requests only);
3. on a 401, asks the ``Auth`` to renew its credential, once per request, and sends again;
   a second 401 is returned to the caller, as is every other answer.

``X-Request-ID``: one id per request (the caller's, when it set the header), the same on
each of its attempts, so the peer's logs and Tessera's show one request; the log lines
also carry the id of the inbound request being served (``gateway.logs``). Logging goes to
``tessera.http``: each attempt at DEBUG (method, URL and headers redacted by
``redact.py``), each retry and renewal at INFO; httpx's own request line is redacted the
same way (``_HttpxUrls``). Bodies are never logged.

Synchronous only: every caller runs in a worker thread or the CLI. An async twin would
wrap ``httpx.AsyncClient`` the same way when a caller needs one.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Self

import httpx

from .auth import Auth, NoAuth
from .redact import headers as redacted_headers
from .redact import url as redacted_url
from .retry import RetryLater, RetryPolicy, Unreachable, never_sent, retry_after

log = logging.getLogger("tessera.http")


class _HttpxUrls(logging.Filter):
    """httpx logs every request's full URL at INFO ("HTTP Request: GET <url> ..."): the
    same URL, redacted, so a query-string secret never reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(redacted_url(a) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


if not any(isinstance(f, _HttpxUrls) for f in logging.getLogger("httpx").filters):
    logging.getLogger("httpx").addFilter(_HttpxUrls())

REQUEST_ID = "X-Request-ID"
DEFAULT_TIMEOUT = 60.0


class HttpClient:
    """One peer's connection pool, auth, retry policy and default headers."""

    def __init__(
        self,
        *,
        base_url: str = "",
        auth: Auth | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        headers: dict[str, str] | None = None,
        follow_redirects: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.auth: Auth = auth or NoAuth()
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=headers, follow_redirects=follow_redirects,
                                  transport=transport)

    def __repr__(self) -> str:
        return f"HttpClient({str(self._http.base_url)!r}, auth={self.auth!r})"

    # --- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        params: Any = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        data: Any = None,
        content: bytes | str | None = None,
        auth: Auth | None = None,
        idempotent: bool | None = None,
        retry: RetryPolicy | None = None,
    ) -> httpx.Response:
        """Send one request (module docstring) and return the peer's answer, whatever its
        status. ``auth`` overrides the client's for this request (``NoAuth()``: none);
        ``idempotent=True`` marks a request of a non-idempotent method safe to send twice,
        ``False`` forbids repeating even a GET. Raises ``Unreachable`` when every attempt
        failed in transport, ``RetryLater`` when the peer asks for a wait beyond the cap,
        and whatever the auth's token source raises."""
        method = method.upper()
        policy = retry or self.retry
        use = auth or self.auth
        given = {k: v for k, v in (headers or {}).items() if k.lower() != REQUEST_ID.lower()}
        rid = next((v for k, v in (headers or {}).items() if k.lower() == REQUEST_ID.lower() and v), None) or uuid.uuid4().hex
        repeatable = policy.may_repeat(method, idempotent)
        renewed = False
        retries = 0
        attempt = 0
        while True:
            attempt += 1
            req = self._http.build_request(method, url, params=params, headers={**given, REQUEST_ID: rid},
                                           json=json, data=data, content=content)
            use.apply(req, self)
            started = time.perf_counter()
            try:
                r = self._http.send(req)
            except httpx.TransportError as exc:
                what = type(exc).__name__
                log.debug("%s %s failed: %s (attempt %d, request id %s)", method, redacted_url(req.url), what, attempt, rid)
                if retries >= policy.retries or not (repeatable or never_sent(exc)):
                    raise Unreachable(f"{redacted_url(req.url.copy_with(query=None))} could not be reached ({what}, "
                                      f"{attempt} attempt{'s' if attempt > 1 else ''})", reason=what, attempts=attempt) from None
                wait = policy.backoff_for(retries)
                log.info("%s %s failed (%s); retry %d in %.2f s (request id %s)", method, redacted_url(req.url), what, retries + 1,
                         wait, rid)
                retries += 1
                policy.wait(wait)
                continue
            log.debug("%s %s -> %d in %.0f ms (attempt %d, request id %s, headers %s)", method, redacted_url(req.url), r.status_code,
                      (time.perf_counter() - started) * 1000, attempt, rid, redacted_headers(req.headers))
            if r.status_code == 401 and not renewed:
                renewed = True
                if use.renew(self):
                    log.info("%s %s -> 401: credential renewed, sending again (request id %s)", method, redacted_url(req.url), rid)
                    r.close()
                    continue
                return r
            if r.status_code in policy.statuses and repeatable and retries < policy.retries:
                asked = retry_after(r.headers.get("Retry-After"))
                if asked is not None and asked > policy.retry_after_cap:
                    raise RetryLater(f"{redacted_url(req.url.copy_with(query=None))} asks to retry in {asked:.0f} s "
                                     f"(HTTP {r.status_code})", seconds=asked, status=r.status_code)
                wait = asked if asked is not None else policy.backoff_for(retries)
                log.info("%s %s -> %d; retry %d in %.2f s (request id %s)", method, redacted_url(req.url), r.status_code, retries + 1,
                         wait, rid)
                r.close()
                retries += 1
                policy.wait(wait)
                continue
            return r

    def get(self, url: str | httpx.URL, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str | httpx.URL, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def put(self, url: str | httpx.URL, **kw: Any) -> httpx.Response:
        return self.request("PUT", url, **kw)

    def delete(self, url: str | httpx.URL, **kw: Any) -> httpx.Response:
        return self.request("DELETE", url, **kw)


class UsesHttp:
    """For a peer's client class that owns an ``HttpClient`` as ``self.http``: closing it, and
    the ``with`` block, in one place."""

    http: HttpClient

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["DEFAULT_TIMEOUT", "REQUEST_ID", "HttpClient", "UsesHttp"]
