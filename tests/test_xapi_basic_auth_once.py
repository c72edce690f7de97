"""HTTP Basic on the LRS (adapters/xapi/http.py ``_basic``): requests that miss the verified-secret
cache while the same credentials are being verified wait for that verification instead of running
scrypt again, and get the same answer; a verification that fails lets the waiters verify again."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from adapters.xapi.http import _basic, _VerifiedSecrets
from gateway.auth.clients import Client
from gateway.errors import AuthError


class _Clients:
    def __init__(self, fail_first: bool = False) -> None:
        self.calls = 0
        self.fail_first = fail_first
        self._lock = threading.Lock()

    def authenticate(self, client_id: str, secret: str) -> Client | None:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        time.sleep(0.2)  # scrypt's cost, by design
        if first and self.fail_first:
            raise RuntimeError("the database went away")
        if secret != "right":
            return None
        return Client(client_id, "district-a", "app", ("xapi/all",), datetime.now(UTC), None, "scrypt$...")


def _ctx(clients: _Clients) -> Any:
    return SimpleNamespace(auth=SimpleNamespace(clients=clients, revocations=SimpleNamespace(revoked=lambda _id: False)),
                           settings=SimpleNamespace(public_url="https://lrs.example"))


def _header(secret: str) -> str:
    return base64.b64encode(f"app-1:{secret}".encode()).decode()


async def _all(ctx: Any, cache: _VerifiedSecrets, secret: str, n: int) -> list[Any]:
    return await asyncio.gather(*(_basic(ctx, cache, _header(secret)) for _ in range(n)), return_exceptions=True)


def test_concurrent_requests_with_the_same_credentials_verify_them_once() -> None:
    clients, cache = _Clients(), _VerifiedSecrets()
    got = asyncio.run(_all(_ctx(clients), cache, "right", 6))
    assert clients.calls == 1
    assert all(p is got[0] for p in got) and got[0].tenant == "district-a" and got[0].client_id == "app-1"
    assert not cache.pending
    asyncio.run(_all(_ctx(clients), cache, "right", 3))  # then from the cache
    assert clients.calls == 1


def test_a_wrong_secret_is_refused_for_every_waiting_request_with_the_usual_message() -> None:
    clients, cache = _Clients(), _VerifiedSecrets()
    got = asyncio.run(_all(_ctx(clients), cache, "wrong", 4))
    assert clients.calls == 1
    assert all(isinstance(e, AuthError) and str(e) == "unknown, revoked or wrong LRS credentials" for e in got)
    assert not cache.pending
    with pytest.raises(AuthError):  # not cached: verified again
        asyncio.run(_basic(_ctx(clients), cache, _header("wrong")))
    assert clients.calls == 2


def test_when_the_verification_fails_the_waiting_requests_verify_for_themselves() -> None:
    clients, cache = _Clients(fail_first=True), _VerifiedSecrets()
    got = asyncio.run(_all(_ctx(clients), cache, "right", 3))
    assert isinstance(got[0], RuntimeError)
    assert [p.client_id for p in got[1:]] == ["app-1", "app-1"]
    assert clients.calls == 2  # the first waiter verified again; the last waited for it
    assert not cache.pending
