"""What the OneRoster conformance tests share: Tessera on a free port with the demo district
and an OAuth client, behind ``Faulty``, an ASGI wrapper that breaks one thing at a time (drops
a header, ignores a parameter, rewrites a status or a code minor, skips the auth check...);
one server serves every fault, switched between kit runs."""

from __future__ import annotations

import io
import shutil
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import orjson
import pytest

from conformance.kit import Kit, Target
from conformance.kits import kits
from conformance.runner import Run, run_kit

from .conftest import serve

SCOPES = ["roster.readonly", "roster-core.readonly", "roster-demographics.readonly", "gradebook.readonly", "gradebook.createput",
          "gradebook.delete"]

# --- a faulty Tessera ----------------------------------------------------------------------


@dataclass
class Exchange:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None

    def set_json(self, data: Any) -> None:
        self.body = orjson.dumps(data)
        self.headers["content-type"] = "application/json"


@dataclass
class Fault:
    """``request`` may change the request, or answer it (return an Answer); ``response`` may change the answer."""

    request: Callable[[Exchange], Answer | None] | None = None
    response: Callable[[Exchange, Answer], None] | None = None


class Faulty:
    """Tessera's ASGI app with one fault switched on (``fault``), or none."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.fault: Fault | None = None
        self.token = ""  # a token holding every scope, for faults that skip the auth check

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.fault is None:
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        ex = Exchange(scope["method"], scope["path"], parse_qsl(scope["query_string"].decode(), keep_blank_values=True),
                      {k.decode().lower(): v.decode() for k, v in scope["headers"]}, body)
        fault = self.fault
        answer = fault.request(ex) if fault.request else None
        if answer is None:
            scope = {**scope, "path": ex.path, "raw_path": ex.path.encode(), "query_string": urlencode(ex.query).encode(),
                     "headers": [(k.encode(), v.encode()) for k, v in ex.headers.items() if k != "content-length"]
                     + [(b"content-length", str(len(ex.body)).encode())]}
            sent = False

            async def replay() -> dict[str, Any]:
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": ex.body, "more_body": False}

            parts: dict[str, Any] = {"body": b""}

            async def capture(msg: dict[str, Any]) -> None:
                if msg["type"] == "http.response.start":
                    parts["status"] = msg["status"]
                    parts["headers"] = {k.decode().lower(): v.decode() for k, v in msg.get("headers", [])}
                elif msg["type"] == "http.response.body":
                    parts["body"] += msg.get("body", b"")

            await self.app(scope, replay, capture)
            answer = Answer(parts["status"], parts["headers"], parts["body"])
        if fault.response:
            fault.response(ex, answer)
        headers = [(k.encode(), v.encode()) for k, v in answer.headers.items() if k != "content-length"]
        headers.append((b"content-length", str(len(answer.body)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})


@dataclass
class Env:
    base: str
    client_id: str
    secret: str
    faulty: Faulty
    db_url: str

    def target(self, **options: str) -> Target:
        return Target(self.base, client_id=self.client_id, client_secret=self.secret, options=options, timeout=10)


def _package(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


TERMS = _package({
    "manifest.csv": "propertyName,value\nmanifest.version,1.0\noneroster.version,1.2\nfile.academicSessions,delta\n",
    "academicSessions.csv": "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear\n"
                            "term-2027-t1,active,2026-08-01T00:00:00.000Z,Term 1,term,2026-08-17,2026-10-30,as-2027,2027\n"
                            "gp-2027-t1-1,active,2026-08-01T00:00:00.000Z,Term 1 period 1,gradingPeriod,2026-08-17,2026-09-25,"
                            "term-2027-t1,2027\n",
})


@pytest.fixture(scope="module")
def tessera(_sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from adapters.oneroster import OneRosterAdapter
    from gateway.api.app import create_app
    from gateway.auth import ClientStore
    from gateway.config import Settings
    from gateway.wiring import open_store

    path = tmp_path_factory.mktemp("conformance") / "tessera.db"
    shutil.copy(_sqlite_template, path)
    url = f"sqlite:///{path}"
    store = open_store(url)
    adapter = OneRosterAdapter()
    adapter.load_demo(store, "demo")
    # the demo district has semesters only: a term and its grading period, so the term checks run
    adapter.import_package(store, TERMS, tenant="demo", source="oneroster-sis")
    client, secret = ClientStore(store.engine).create("demo", SCOPES)
    faulty = Faulty(create_app(Settings(database_url=url), store=store))
    # the server runs in a thread of this process: hand the GIL over quickly between the
    # kit's requests and the server's answers (the default 5 ms makes each exchange wait)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    with serve(faulty) as base:
        tok = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, secret))
        faulty.token = tok.json()["access_token"]
        yield Env(base, client.client_id, secret, faulty, url)
    sys.setswitchinterval(interval)
    store.dispose()



def on(path_end: str | None = None, method: str = "GET") -> Callable[[Exchange], bool]:
    def match(ex: Exchange) -> bool:
        return ex.method == method and ex.path.startswith("/ims/oneroster/") and (path_end is None or ex.path.endswith(path_end))
    return match


def drop_header(name: str, when: Callable[[Exchange], bool]) -> Fault:
    def response(ex: Exchange, a: Answer) -> None:
        if when(ex):
            a.headers.pop(name, None)
    return Fault(response=response)


def drop_param(name: str, when: Callable[[Exchange], bool] = on()) -> Fault:
    def request(ex: Exchange) -> None:
        if when(ex):
            ex.query = [(k, v) for k, v in ex.query if k != name]
    return Fault(request=request)


def rewrite_body(old: bytes, new: bytes) -> Fault:
    def response(ex: Exchange, a: Answer) -> None:
        if ex.path.startswith("/ims/oneroster/"):
            a.body = a.body.replace(old, new)
    return Fault(response=response)


def no_auth_check(env: Env) -> Fault:
    """A request without a token is served as if it carried one holding every scope."""
    def request(ex: Exchange) -> None:
        if ex.path.startswith("/ims/oneroster/") and "authorization" not in ex.headers:
            ex.headers["authorization"] = f"Bearer {env.faulty.token}"
    return Fault(request=request)


def scopes_not_enforced(env: Env) -> Fault:
    """Any valid token is served as if it held every scope."""
    def request(ex: Exchange) -> None:
        if ex.path.startswith("/ims/oneroster/") and ex.headers.get("authorization", "").startswith("Bearer ey"):
            ex.headers["authorization"] = f"Bearer {env.faulty.token}"
    return Fault(request=request)


def errors_plain(ex: Exchange, a: Answer) -> None:
    if a.status >= 400 and ex.path.startswith("/ims/oneroster/"):
        a.set_json({"error": "something went wrong"})


def unknown_is_200(ex: Exchange, a: Answer) -> None:
    if ex.method == "GET" and a.status == 404 and ex.path.startswith("/ims/oneroster/"):
        a.status = 200
        a.set_json({"object": {"sourcedId": ex.path.rsplit("/", 1)[-1], "status": "active"}})


def kit(name: str) -> Kit:
    return kits()[name]


def failed(run: Run) -> set[str]:
    return {r.check.id for r in run.results if r.status == "fail"}


def run_with(env: Env, name: str, fault: Fault | None, **options: str) -> Run:
    env.faulty.fault = fault
    try:
        return run_kit(kit(name), env.target(**options))
    finally:
        env.faulty.fault = None


def assert_fails_exactly(run: Run, expected: set[str]) -> None:
    got = failed(run)
    assert sorted(got) == sorted(expected), {r.check.id: r.reason[:200] for r in run.results if r.check.id in got ^ expected}
