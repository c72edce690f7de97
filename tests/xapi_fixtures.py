"""The ``lrs`` fixture of the xAPI LRS tests (a plugin: ``pytest_plugins = ["tests.xapi_fixtures"]``):
an HTTP client of ``/xapi`` on a real server, with HTTP Basic credentials of one tenant."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest


@pytest.fixture
def lrs(api: Any) -> Iterator[Callable[..., httpx.Client]]:
    """``lrs(tenant="t1", scopes=["xapi/all"], version="1.0.3")``: a client of ``/xapi``."""
    clients: list[httpx.Client] = []

    def make(tenant: str = "t1", scopes: list[str] | None = None, version: str | None = "1.0.3") -> httpx.Client:
        cid, secret = api.credentials(tenant, scopes or ["xapi/all"])
        headers = {"X-Experience-API-Version": version} if version else {}
        c = httpx.Client(base_url=api.base_url + "/xapi", auth=httpx.BasicAuth(cid, secret), headers=headers, timeout=30)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
