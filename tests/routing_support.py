"""Shared by the adapters' routing tests (tests/test_routing_<adapter>.py): a second Tessera
on a real port (its own SQLite database), a fault-injecting proxy in front of it, and
builders of the routing protocol's Connection / Route / Delivery.

The Tessera under test is the ``store`` fixture (SQLite and PostgreSQL); the peer is always
a fresh SQLite file copied from the migrated template, so each backend run pays one copy."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.auth import ClientStore
from gateway.config import Settings
from gateway.routing.protocol import Connection, Delivery, PageResult, Route
from gateway.store import Store
from gateway.store.prepare import content_hash
from gateway.wiring import open_store

from .conftest import serve


@dataclass
class Peer:
    """A second Tessera: its store and its base URL."""

    base_url: str
    store: Store

    def credentials(self, tenant: str, scopes: list[str]) -> tuple[str, str]:
        client, secret = ClientStore(self.store.engine).create(tenant, scopes)
        return client.client_id, secret

    def auth_client(self, tenant: str, scopes: list[str]) -> httpx.Client:
        cid, secret = self.credentials(tenant, scopes)
        r = httpx.post(f"{self.base_url}/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
        assert r.status_code == 200, r.text
        return httpx.Client(base_url=self.base_url, timeout=30, headers={"Authorization": f"Bearer {r.json()['access_token']}"})


@contextmanager
def run_peer(template: Path, tmp_path: Path, name: str = "peer", **settings: Any) -> Iterator[Peer]:
    from gateway.api.app import create_app

    path = tmp_path / f"{name}.db"
    shutil.copy(template, path)
    store = open_store(f"sqlite:///{path}")
    try:
        with serve(create_app(Settings(database_url=f"sqlite:///{path}", **settings), store=store)) as base:
            yield Peer(base, store)
    finally:
        store.dispose()


@pytest.fixture(name="make_peer")
def make_peer_fixture(_sqlite_template: Path, tmp_path: Path) -> Iterator[Callable[..., Peer]]:
    with ExitStack() as stack:
        n = iter(range(100))

        def start(**settings: Any) -> Peer:
            return stack.enter_context(run_peer(_sqlite_template, tmp_path, f"peer{next(n)}", **settings))

        yield start


@pytest.fixture(name="peer")
def peer_fixture(make_peer: Callable[..., Peer]) -> Peer:
    return make_peer()


# --- a proxy that can break what the peer answers -------------------------------------------------


class FaultProxy:
    """An ASGI app forwarding every request to ``target``; ``fault(request, response)`` may
    return another ``(status, headers, body)`` for it. ``seen`` keeps each request's path and query."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.fault: Callable[[httpx.Request, httpx.Response], tuple[int, dict[str, str], bytes] | None] | None = None
        self.seen: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        qs = scope.get("query_string", b"").decode()
        url = self.target + scope["path"] + (f"?{qs}" if qs else "")
        self.seen.append(scope["path"] + (f"?{qs}" if qs else ""))
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k.lower() not in (b"host", b"content-length")]
        async with httpx.AsyncClient() as client:
            r = await client.request(scope["method"], url, headers=headers, content=body)
        status, out_headers, content = r.status_code, dict(r.headers), r.content
        if self.fault is not None:
            got = self.fault(r.request, r)
            if got is not None:
                status, out_headers, content = got
        out_headers = {k: v for k, v in out_headers.items() if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")}
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in out_headers.items()] + [(b"content-length", str(len(content)).encode())]})
        await send({"type": "http.response.body", "body": content})


@contextmanager
def fault_proxy(target: str) -> Iterator[tuple[str, FaultProxy]]:
    proxy = FaultProxy(target)
    with serve(proxy) as base:
        yield base, proxy


# --- protocol builders -------------------------------------------------------------------------------


def connection(name: str, adapter: str, role: str, base_url: str | None, *, tenant: str = "t1", system: str | None = None,
               auth: dict[str, str] | None = None, **options: Any) -> Connection:
    return Connection(id=uuid.uuid4(), tenant=tenant, name=name, adapter=adapter, role=role, system=system or name,
                      base_url=base_url, auth=auth or {}, options=options)


def credentials_env(monkeypatch: pytest.MonkeyPatch, prefix: str, client_id: str, secret: str) -> dict[str, str]:
    """Put the credentials in the environment; the connection's auth references them."""
    monkeypatch.setenv(f"{prefix}_ID", client_id)
    monkeypatch.setenv(f"{prefix}_SECRET", secret)
    return {"client_id": f"env:{prefix}_ID", "client_secret": f"env:{prefix}_SECRET"}


def pull_route(source: Connection, kinds: tuple[str, ...] = (), tenant: str = "t1") -> Route:
    return Route(id=uuid.uuid4(), tenant=tenant, name=f"pull-{source.name}", mode="pull", kinds=kinds, source=source, destination=None)


def push_route(destination: Connection, kinds: tuple[str, ...], tenant: str = "t1") -> Route:
    return Route(id=uuid.uuid4(), tenant=tenant, name=f"push-{destination.name}", mode="push", kinds=kinds, source=None,
                 destination=destination)


def pull_all(source: Any, store: Store, route: Route, cursor: str | None) -> tuple[list[PageResult], str | None]:
    """Drive ``Source.pull`` as the engine does: keep each page's cursor once it is yielded."""
    pages = []
    for page in source.pull(store, route, cursor):
        pages.append(page)
        if page.cursor is not None:
            cursor = page.cursor
    return pages, cursor


def delivery(route: Route, record: Any, *, kind: str | None = None, record_id: uuid.UUID | None = None, attempt: int = 1,
             outbox_id: int = 1) -> Delivery:
    rid = record_id or record.id
    digest = content_hash(record.model_dump(mode="json")) if record is not None and hasattr(record, "model_dump") else "x"
    return Delivery(route=route, outbox_id=outbox_id, record_kind=kind or record.kind, record_id=rid, content_hash=digest,
                    idempotency_key=f"{route.id}:{rid}:{digest}", record=record, attempt=attempt)


def total(pages: list[PageResult], field: str) -> int:
    return sum(getattr(p, field) for p in pages)


def oneroster_roster(n_people: int = 3, tenant: str = "t1") -> list[Any]:
    """``factories.roster`` as a OneRoster provider can serve it: with a term on the class
    and the school on each enrollment (both required on the wire)."""
    from datetime import date

    from gateway.model import AcademicSession, Enrollment, Section

    from . import factories as f

    school = f.org(tenant=tenant)
    term = AcademicSession(tenant=tenant, source="sis", native_id="y1", title="2026-2027", type="school_year",
                           start_date=date(2026, 8, 1), end_date=date(2027, 6, 30), school_year=2027)
    crs = f.course("c1", school, tenant)
    sec = Section(tenant=tenant, source="sis", native_id="s1", title="Section s1", course_id=crs.id, org_id=school.id,
                  session_ids=[term.id])
    people = [f.person(f"u{i}", school, tenant, username=f"user{i}") for i in range(n_people)]
    enr = [Enrollment(tenant=tenant, source="sis", native_id=f"s1:{p.native_id}", person_id=p.id, section_id=sec.id,
                      org_id=school.id, role="student") for p in people]
    return [school, term, crs, sec, *people, *enr]


def register_push_route(store: Store, destination: Connection, kinds: list[str]) -> Route:
    """Store a push route (and its destination connection) as the routing tables hold them,
    so the store enqueues outbox rows for it; returns the protocol's Route."""
    import orjson
    from sqlalchemy import insert

    from gateway.model import utcnow
    from gateway.store.tables import connections, routes
    from gateway.store.tenants import ensure_tenant

    rid = uuid.uuid4()
    with store.engine.begin() as conn:
        ensure_tenant(conn, destination.tenant)
        conn.execute(insert(connections).values(
            id=destination.id, tenant=destination.tenant, name=destination.name, adapter=destination.adapter, role=destination.role,
            system=destination.system, base_url=destination.base_url, auth=orjson.dumps(dict(destination.auth)).decode(),
            options=orjson.dumps(dict(destination.options)).decode(), created_at=utcnow()))
        conn.execute(insert(routes).values(
            id=rid, tenant=destination.tenant, name=f"push-{destination.name}", source_connection_id=None,
            destination_connection_id=destination.id, kinds=orjson.dumps(sorted(kinds)).decode(), mode="push", enabled=True,
            created_at=utcnow()))
    return Route(id=rid, tenant=destination.tenant, name=f"push-{destination.name}", mode="push", kinds=tuple(kinds), source=None,
                 destination=destination)


def pending_deliveries(store: Store, route: Route) -> list[Delivery]:
    """The route's pending outbox rows as the engine hands them to a destination (the
    canonical record loaded; None for an adapter's own kinds)."""
    from gateway.errors import NotFound
    from gateway.model import RECORD_TYPES
    from gateway.store.outbox import RoutingStore

    out = []
    for row in RoutingStore(store.engine).pending(route.tenant, route.id):
        rec = None
        if row["record_kind"] in RECORD_TYPES:
            try:
                rec = store.records.get(route.tenant, row["record_kind"], row["record_id"])
            except NotFound:
                rec = None
        out.append(Delivery(route=route, outbox_id=row["id"], record_kind=row["record_kind"], record_id=row["record_id"],
                            content_hash=row["content_hash"], idempotency_key=row["idempotency_key"], record=rec,
                            attempt=row["attempts"] + 1))
    return out
