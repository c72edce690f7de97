"""ConnectionRecycler: keep-alive connections are asked to reconnect after ``max_age``, so
that the worker processes of ``tessera serve --workers N`` share the load (gateway/api/middleware.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gateway.api.middleware import ConnectionRecycler
from tests.conftest import serve


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _call(app: ConnectionRecycler, peer: tuple[str, int]) -> list[tuple[bytes, bytes]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "client": peer}, None, send))
    return sent[0]["headers"]


def test_a_connection_is_closed_on_its_first_request_after_max_age() -> None:
    clock = _Clock()
    app = ConnectionRecycler(_hello, max_age=5.0, clock=clock)
    a, b = ("127.0.0.1", 50001), ("127.0.0.1", 50002)
    assert (b"connection", b"close") not in _call(app, a)
    clock.now += 3
    assert (b"connection", b"close") not in _call(app, b)
    clock.now += 2.5  # a: 5.5 s old, b: 2.5 s
    assert (b"connection", b"close") in _call(app, a)
    assert (b"connection", b"close") not in _call(app, b)
    # the peer address comes back as a new connection: its age starts again
    assert (b"connection", b"close") not in _call(app, a)


def test_requests_without_a_peer_address_pass_untouched() -> None:
    app = ConnectionRecycler(_hello, max_age=0.0)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http"}, None, send))
    assert sent[0]["headers"] == [(b"content-type", b"text/plain")]


@pytest.mark.parametrize("max_age, closes", [(1000.0, False), (1e-9, True)])
def test_uvicorn_closes_the_connection_and_the_client_reconnects(max_age: float, closes: bool) -> None:
    """Over real HTTP: the response says Connection: close, uvicorn closes the socket, and a
    keep-alive client's next request arrives on a new connection (a new peer port). With a
    tiny max_age each connection serves two requests: its first, which starts its clock, and
    the next, which is answered and closed."""
    seen: list[tuple[str, int]] = []

    async def echo_peer(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(tuple(scope["client"]))
        await _hello(scope, receive, send)

    with serve(ConnectionRecycler(echo_peer, max_age=max_age)) as base, httpx.Client(base_url=base) as client:
        closed = []
        for _ in range(4):
            r = client.get("/")
            assert r.status_code == 200 and r.text == "hello"
            closed.append(r.headers.get("connection") == "close")
    if closes:
        assert closed == [False, True, False, True]
        assert seen[0] == seen[1] != seen[2] == seen[3]
    else:
        assert closed == [False] * 4 and len(set(seen)) == 1
