"""ASGI middleware: request ids, the access log, and the request body size limit.

Written as plain ASGI (not BaseHTTPMiddleware) so that it adds microseconds, not
milliseconds, to every request and never buffers a streamed response.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import MutableMapping
from typing import Any

from starlette.requests import Request

from ..errors import PayloadTooLarge, TesseraError
from ..logs import request_id
from .problems import render

log = logging.getLogger("tessera.access")
error_log = logging.getLogger("tessera.api")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    """Gives each request an id (kept from a sane incoming X-Request-ID), echoes it in the
    response, logs one access line (method, path, status, duration; never the query string,
    which may carry names or emails), enforces the body size limit, and answers an
    unhandled error with a 500 problem that carries the id it was logged with."""

    def __init__(self, app: Any, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        length = None
        for k, v in scope.get("headers", []):
            if k == b"x-request-id":
                incoming = v.decode("latin-1")
            elif k == b"content-length":
                try:
                    length = int(v)
                except ValueError:
                    length = None
        rid = incoming if incoming and _SAFE_ID.match(incoming) else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status_holder = [500]
        response_started = False
        limit = self.max_body

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_holder[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", rid.encode())]
            await send(message)

        received = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"the request body exceeds the limit of {limit} bytes")
            return message

        try:
            if length is not None and length > limit:
                await _too_large(scope, receive, send_with_id, limit)
            else:
                await self.app(scope, limited_receive, send_with_id)
        except Exception:
            # Starlette answers unhandled errors outside this middleware, i.e. after the
            # request id is gone and without the X-Request-ID header: answer here instead.
            if response_started:
                raise  # too late for an answer: the server closes the connection
            error_log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            err = TesseraError("an internal error occurred; it has been logged with this request's id")
            await render(Request(scope), err)(scope, receive, send_with_id)
        finally:
            if log.isEnabledFor(logging.INFO):  # the line's fields are not even built when it is off
                _access(scope, status_holder[0], started)
            request_id.reset(token)


def _access(scope: dict[str, Any], status: int, started: float) -> None:
    """The access line of a request (``RequestContextMiddleware``)."""
    log.info(
        "%s %s %s",
        scope["method"],
        scope["path"],
        status,
        extra={
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )


async def _too_large(scope: dict[str, Any], receive: Any, send: Any, limit: int) -> None:
    """413 before reading the body, in the error shape of the path's standard (``render``:
    a problem document, or e.g. the xAPI error with its version header)."""
    response = render(Request(scope), PayloadTooLarge(f"the request body exceeds the limit of {limit} bytes"))
    response.headers["connection"] = "close"
    await response(scope, receive, send)


class ConnectionRecycler:
    """Closes a keep-alive connection once it has been open ``max_age`` seconds, by
    answering its next request with ``Connection: close`` (what nginx's ``keepalive_time``
    and Apache's ``MaxKeepAliveRequests`` are for).

    With several worker processes on one listening socket, a connection belongs for its
    whole life to the worker that accepted it, and a burst of new connections is accepted
    by whichever worker wakes first: measured with ``tessera serve --workers 2`` and four
    keep-alive clients, half the runs put three connections on one worker, which then did
    three quarters of the work while the other idled (xAPI ingest 2,900 instead of 3,600
    statements/s). A client told to reconnect is accepted by a worker that is waiting in
    its event loop, i.e. the less busy one, so the load evens out within ``max_age``.

    The connection is known by its peer address (host, port), unique while it is open; a
    port reused later inherits an old entry and is recycled once early, which costs a
    reconnect."""

    def __init__(self, app: Any, *, max_age: float, clock: Any = time.monotonic) -> None:
        self.app = app
        self.max_age = max_age
        self.clock = clock
        self._opened: dict[Any, float] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        peer = scope.get("client")
        if scope["type"] != "http" or not peer:
            await self.app(scope, receive, send)
            return
        peer = tuple(peer)
        now = self.clock()
        opened = self._opened.setdefault(peer, now)
        if now - opened < self.max_age:
            await self.app(scope, receive, send)
            return
        del self._opened[peer]
        if len(self._opened) > 10_000:  # peers that went away by themselves
            self._opened = {p: t for p, t in self._opened.items() if now - t < self.max_age}

        async def closing(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, closing)
