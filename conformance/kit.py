"""What a kit is: checks with ids and requirements, run against a ``Target``.

A check is a function of a ``Session`` (the target, an HTTP client already carrying the
kit's credentials, and a ``state`` dict the kit's checks share). It passes by returning,
fails by raising ``Fail(reason)`` (or by an ``assert``), and is skipped by raising
``Skip(reason)``. Every request a check makes through ``Session`` is recorded, so the
report shows the request and an excerpt of the response behind each failure without the
check doing anything for it. Any other exception is a failure whose reason names it: a
broken or hanging server never crashes the runner.

Ids are stable and unique in a kit (``OR-ROS-PAGING-003``); ``requirement`` is the spec
section the check enforces and ``requirement_ids`` the published requirement ids where one
exists (the ADL suite's ``XAPI-00123``). ``required=False`` marks a check whose failure is
reported but does not fail the run (a SHOULD of the spec).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

Status = Literal["pass", "fail", "skip"]

#: the most of a body kept in a report for one exchange
EXCERPT = 2048


class Fail(Exception):
    """The check's requirement is not met; the message says how."""


class Skip(Exception):
    """The check cannot run here (the target does not offer what it needs); the message says why."""


@dataclass(frozen=True)
class Target:
    """Where a kit runs and with what credentials (each optional; a kit says which it needs)."""

    base_url: str
    #: OAuth 2.0 client credentials and the token endpoint (default: ``{base_url}/oauth/token``)
    client_id: str | None = None
    client_secret: str | None = None
    token_url: str | None = None
    #: HTTP Basic (xAPI)
    basic: tuple[str, str] | None = None
    #: LTI: the PEM private key the kit signs with when it plays a platform or a tool
    tool_key_file: str | None = None
    #: ``--option KEY=VALUE``: kit-specific settings (e.g. an LTI tool's login URL, a CSV package path)
    options: Mapping[str, str] = field(default_factory=dict)
    #: seconds per request
    timeout: float = 10.0

    def __repr__(self) -> str:  # never a secret
        return f"Target({self.base_url!r})"


@dataclass
class Exchange:
    """One request and its answer, as a report shows it."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    status: int | None
    response_headers: dict[str, str]
    response_body: str
    error: str | None = None


@dataclass
class Check:
    id: str
    #: spec section, e.g. "OneRoster 1.2 Rostering REST binding 3.4.1"
    requirement: str
    description: str
    run: Callable[[Session], None]
    requirement_ids: tuple[str, ...] = ()
    required: bool = True
    tags: tuple[str, ...] = ()


@dataclass
class Result:
    check: Check
    status: Status
    reason: str = ""
    seconds: float = 0.0
    exchanges: list[Exchange] = field(default_factory=list)


class Session:
    """What a check gets: the target, an HTTP client and the kit's shared ``state``.

    ``request`` (and ``get``/``post``/``put``/``delete``) record every exchange on the
    current check's result; a transport error becomes ``Fail`` with its reason."""

    def __init__(self, target: Target, client: httpx.Client, state: dict[str, Any]) -> None:
        self.target = target
        self.client = client
        self.state = state
        self.exchanges: list[Exchange] = []

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        try:
            response = self.client.request(method, url, **kw)
        except httpx.HTTPError as exc:
            request = getattr(exc, "_request", None)
            self.exchanges.append(Exchange(method, str(request.url) if request is not None else url, {}, "", None, {}, "", error=f"{type(exc).__name__}: {exc}"))
            raise Fail(f"{method} {url}: no answer ({type(exc).__name__}: {exc})") from exc
        self.exchanges.append(_exchange(response))
        return response

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("PUT", url, **kw)

    def delete(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", url, **kw)


_HIDDEN = {"authorization", "cookie", "set-cookie", "proxy-authorization"}


def _exchange(r: httpx.Response) -> Exchange:
    req = r.request
    body = req.content[:EXCERPT].decode("utf-8", "replace") if req.content else ""
    return Exchange(
        req.method, str(req.url),
        {k: ("(hidden)" if k.lower() in _HIDDEN else v) for k, v in req.headers.items()}, body,
        r.status_code, {k: ("(hidden)" if k.lower() in _HIDDEN else v) for k, v in r.headers.items()},
        r.content[:EXCERPT].decode("utf-8", "replace"),
    )


@dataclass
class Kit:
    name: str
    title: str
    #: the standard and version, e.g. "OneRoster 1.2"
    spec: str
    checks: list[Check] = field(default_factory=list)
    #: builds the kit's HTTP client (credentials, version headers); default: plain httpx
    client: Callable[[Target], httpx.Client] | None = None
    #: runs once before the checks (may raise ``Skip``/``Fail``: every check then reports it)
    setup: Callable[[Session], None] | None = None
    teardown: Callable[[Session], None] | None = None
    #: printed before a run: what the kit writes to the target
    writes: str = ""

    def check(self, id: str, requirement: str, description: str, *, requirement_ids: tuple[str, ...] = (),
              required: bool = True, tags: tuple[str, ...] = ()) -> Callable[[Callable[[Session], None]], Callable[[Session], None]]:
        """Decorator: ``@KIT.check("OR-ROS-001", "3.4", "GET /orgs answers 200 with orgs")``."""
        if any(c.id == id for c in self.checks):
            raise ValueError(f"kit {self.name}: duplicate check id {id}")

        def add(fn: Callable[[Session], None]) -> Callable[[Session], None]:
            self.checks.append(Check(id, requirement, description, fn, requirement_ids, required, tags))
            return fn

        return add
