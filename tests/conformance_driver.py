"""The kit tests' view of a run (``run_kit``: the runner's results as {check id: (status,
reason)}); and ``FaultProxy``, an HTTP server on a free port
in front of a real server that injects the faults a test names."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from conformance.kit import Kit, Target
from conformance.runner import run_kit as run_with_runner


def run_kit(kit: Kit, target: Target) -> dict[str, tuple[str, str]]:
    """The kit run by the runner the CLI uses (``conformance.runner``): {check id: (status, reason)}."""
    return {r.check.id: (r.status, r.reason) for r in run_with_runner(kit, target).results}


def failed(results: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {k: reason for k, (status, reason) in results.items() if status == "fail"}


# --------------------------------------------------------------------------- a fault-injecting proxy

@dataclass
class Exchange:
    """What a fault sees and may change: the request (method, path below the proxy, query,
    headers, body) and, after forwarding, the response (status, headers, body)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""


#: a fault: ``before(ex)`` may change the request or answer it itself (return True: no
#: forwarding), ``after(ex)`` may change the answer
@dataclass
class Fault:
    name: str
    before: Callable[[Exchange, httpx.Client], bool] | None = None
    after: Callable[[Exchange], None] | None = None


class _ProxyApp:
    def __init__(self, upstream: str, faults: list[Fault]) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = faults
        self.client = httpx.Client(timeout=30)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            key = k.decode("latin-1").lower()
            if key in ("host", "content-length", "connection", "accept-encoding"):
                continue
            headers[key] = v.decode("latin-1")
        ex = Exchange(scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1"), headers, body)
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(self._handle, ex)
        out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in ex.response_headers.items()
               if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")]
        out.append((b"content-length", str(len(ex.response_body)).encode()))
        await send({"type": "http.response.start", "status": ex.status, "headers": out})
        await send({"type": "http.response.body", "body": ex.response_body if ex.method != "HEAD" else b""})

    def _handle(self, ex: Exchange) -> None:
        for f in self.faults:
            if f.before is not None and f.before(ex, self.client):
                return
        url = self.upstream + ex.path + (f"?{ex.query}" if ex.query else "")
        r = self.client.request(ex.method, url, headers=ex.headers, content=ex.body)
        ex.status = r.status_code
        ex.response_headers = {k: v for k, v in r.headers.items()}
        ex.response_body = r.content
        for f in self.faults:
            if f.after is not None:
                f.after(ex)


@contextmanager
def fault_proxy(upstream: str, faults: list[Fault]) -> Iterator[str]:
    """An HTTP proxy to ``upstream`` on a free port injecting ``faults``; yields its base URL."""
    from tests.conftest import serve

    app = _ProxyApp(upstream, faults)
    try:
        with serve(app) as base:
            yield base
    finally:
        app.client.close()


def skip_unless_sqlite(request: Any) -> None:
    """Fault tests run on one backend (the faults are in the proxy, not the store): called
    from a fixture listed before the server's, so a PostgreSQL run skips before any setup."""
    import pytest

    if getattr(request.node, "callspec", None) is not None and request.node.callspec.params.get("db_url") == "postgresql":
        pytest.skip("the faults are in the proxy, not the store: one backend is enough")
