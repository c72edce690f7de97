"""A tiny adapter with routing roles, for the routing layer's own tests (wired with
``Wiring.of(FakeRoutingAdapter())``): ``fake.source`` reads (a ``Source``), ``fake.sink``
delivers people and orgs (a ``Destination``), ``fake.both`` does both; ``fake.thing`` is an
adapter-own kind (``routing_kinds``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gateway.errors import ConfigError
from gateway.routing.protocol import Connection, Delivery, PageResult, Route


class FakeSource:
    def __init__(self, connection: Connection) -> None:
        if connection.options.get("refuse"):
            raise ConfigError("option refuse is set")
        self.connection = connection

    def pull(self, store: Any, route: Route, cursor: str | None) -> Iterator[PageResult]:
        yield PageResult(cursor="page-1", read=2, written=2)
        yield PageResult(cursor="page-2", read=1, unchanged=1)


class FakeSink:
    kinds = frozenset({"person", "org", "fake.thing"})
    #: how many were built and closed (a check must close what it builds)
    built = closed = 0

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        FakeSink.built += 1

    def close(self) -> None:
        FakeSink.closed += 1

    def deliver(self, store: Any, delivery: Delivery) -> None:
        return None


class FakeBoth(FakeSource, FakeSink):
    pass


class FakeRoutingAdapter:
    name = "fake"
    title = "A fake adapter with routing roles (tests only)"
    routing_kinds = ("fake.thing",)

    def routing_roles(self) -> dict[str, Any]:
        return {"fake.source": FakeSource, "fake.sink": FakeSink, "fake.both": FakeBoth}


def fake_wiring(*, installed: bool = True) -> Any:
    """The installed adapters and the fake one (``installed=False``: the fake one alone, for
    messages that list every role or kind)."""
    from gateway.wiring import Wiring

    return Wiring.of(FakeRoutingAdapter(), installed=installed)
