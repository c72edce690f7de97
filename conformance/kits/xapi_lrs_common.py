"""The ``xapi-lrs`` kit's shared parts: the ``KIT`` object, its HTTP client, the statements
it writes and the small assertions every check uses.

The checks themselves are in ``xapi_lrs_statements`` (validation and storage),
``xapi_lrs_queries`` (GET, voiding), ``xapi_lrs_documents`` (State, Activity Profile,
Agent Profile) and ``xapi_lrs_protocol`` (headers, versions, auth, About, Activities,
Agents, attachments, signed statements); ``xapi_lrs`` imports them all.

Target: ``--base-url`` is the LRS endpoint (``https://lrs.example/xapi``), credentials
HTTP Basic (``Target.basic``; an OAuth client id/secret pair is sent as Basic too when no
``basic`` is given). Options: ``version`` (the version the version-independent checks
speak: ``1.0.3`` unless the LRS's About lists only ``2.0.0``).

Every write uses fresh UUIDs and activity IRIs under ``http://conformance.tessera.example/``
with a per-run suffix, so a run never touches anything but its own test data and two runs
against one LRS never see each other's statements.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import httpx

from ..kit import Fail, Kit, Session, Skip, Target

V1 = "1.0.3"
V2 = "2.0.0"
VERSION_HEADER = "X-Experience-API-Version"
CONSISTENT = "X-Experience-API-Consistent-Through"
IRI = "http://conformance.tessera.example/xapi/"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
EXPERIENCED = "http://adlnet.gov/expapi/verbs/experienced"
ATTEMPTED = "http://adlnet.gov/expapi/verbs/attempted"

C103 = "xAPI 1.0.3 Communication"
D103 = "xAPI 1.0.3 Data"
X20 = "xAPI 2.0 (IEEE 9274.1.1)"


def _client(target: Target) -> httpx.Client:
    auth: httpx.Auth | None = None
    if target.basic is not None:
        auth = httpx.BasicAuth(*target.basic)
    elif target.client_id and target.client_secret:
        auth = httpx.BasicAuth(target.client_id, target.client_secret)
    base = target.base_url.rstrip("/") + "/"
    version = target.options.get("version", V1)
    return httpx.Client(base_url=base, auth=auth, headers={VERSION_HEADER: version}, timeout=target.timeout)


def _setup(s: Session) -> None:
    """Reads About (the versions the LRS speaks) and names this run's test data."""
    run = uuid.uuid4().hex[:12]
    s.state["run"] = run
    s.state["versions"] = [V1, V2]
    r = s.get("about")
    if r.status_code == 200:
        try:
            listed = r.json().get("version") or []
        except (ValueError, AttributeError):
            listed = []
        got = [v for v in (V1, V2) if any(str(x).startswith(v[:3]) for x in listed)]
        if got:
            s.state["versions"] = got
    wanted = s.target.options.get("version")
    s.state["default"] = wanted or (V1 if V1 in s.state["versions"] else s.state["versions"][0])
    if s.state["default"] != s.client.headers.get(VERSION_HEADER):
        s.client.headers[VERSION_HEADER] = s.state["default"]


KIT = Kit(
    name="xapi-lrs",
    title="xAPI Learning Record Store",
    spec="xAPI 1.0.3 and xAPI 2.0 (IEEE 9274.1.1)",
    client=_client,
    setup=_setup,
    writes=(
        "writes test statements (and voids some of them), State, Activity Profile and Agent Profile "
        "documents under http://conformance.tessera.example/ with fresh ids, as the ADL LRS test suite does"
    ),
)


# --------------------------------------------------------------------------- test data

def run_id(s: Session) -> str:
    return str(s.state.get("run") or "norun")


def activity(s: Session, name: str = "activity") -> str:
    return f"{IRI}{run_id(s)}/{name}"


def mbox(s: Session, who: str = "learner") -> str:
    return f"mailto:{who}.{run_id(s)}@conformance.tessera.example"


def agent(s: Session, who: str = "learner") -> dict[str, Any]:
    return {"objectType": "Agent", "name": who.title(), "mbox": mbox(s, who)}


def statement(s: Session, **over: Any) -> dict[str, Any]:
    """A valid statement (Data 2.4.s2's example shape) with a fresh id; ``over`` replaces
    properties (``None`` removes one)."""
    st: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "actor": agent(s),
        "verb": {"id": EXPERIENCED, "display": {"en-US": "experienced"}},
        "object": {"objectType": "Activity", "id": activity(s), "definition": {"name": {"en-US": "Conformance activity"}}},
    }
    st.update(over)
    return {k: v for k, v in st.items() if v is not None}


def versions(s: Session) -> list[str]:
    return list(s.state.get("versions") or [V1, V2])


def default_version(s: Session) -> str:
    return str(s.state.get("default") or V1)


def need(s: Session, version: str) -> None:
    if version not in versions(s):
        raise Skip(f"the LRS's About does not list {version}")


def hv(version: str, **extra: str) -> dict[str, str]:
    return {VERSION_HEADER: version, **extra}


# --------------------------------------------------------------------------- requests

def post_statements(s: Session, body: Any, version: str | None = None, **params: str) -> httpx.Response:
    headers = hv(version or default_version(s), **{"Content-Type": "application/json"})
    return s.post("statements", content=json.dumps(body).encode(), headers=headers, params=params or None)


def put_statement(s: Session, st: Mapping[str, Any], statement_id: str | None, version: str | None = None) -> httpx.Response:
    params = {"statementId": statement_id} if statement_id is not None else None
    headers = hv(version or default_version(s), **{"Content-Type": "application/json"})
    return s.put("statements", content=json.dumps(st).encode(), headers=headers, params=params)


def get_statements(s: Session, version: str | None = None, headers: Mapping[str, str] | None = None, **params: Any) -> httpx.Response:
    h = hv(version or default_version(s))
    h.update(headers or {})
    return s.get("statements", params={k: v for k, v in params.items() if v is not None}, headers=h)


def store(s: Session, *sts: Mapping[str, Any], version: str | None = None) -> list[str]:
    """POSTs statements the kit needs stored; a refusal is a failure of the check."""
    r = post_statements(s, list(sts), version)
    expect(r, 200, what="POST /statements of valid statements")
    ids = body_json(r)
    if not isinstance(ids, list) or len(ids) != len(sts):
        raise Fail(f"POST /statements answered {ids!r}, not the array of {len(sts)} ids")
    return [str(i) for i in ids]


def get_one(s: Session, statement_id: str, version: str | None = None, **params: str) -> httpx.Response:
    query: dict[str, Any] = {"statementId": statement_id, **params}
    return get_statements(s, version, **query)


# --------------------------------------------------------------------------- assertions

def excerpt(r: httpx.Response, n: int = 300) -> str:
    text = r.text
    return text if len(text) <= n else text[:n] + "..."


def expect(r: httpx.Response, *codes: int, what: str = "") -> None:
    if r.status_code not in codes:
        want = " or ".join(str(c) for c in codes)
        where = f"{what}: " if what else f"{r.request.method} {r.request.url.path}: "
        raise Fail(f"{where}expected {want}, got {r.status_code} ({excerpt(r)})")


def body_json(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        raise Fail(f"{r.request.method} {r.request.url.path}: the answer is not JSON ({excerpt(r)})") from None


def result_statements(r: httpx.Response) -> list[dict[str, Any]]:
    """The ``statements`` of a StatementResult, checked for shape."""
    expect(r, 200)
    body = body_json(r)
    if not isinstance(body, dict) or not isinstance(body.get("statements"), list):
        raise Fail(f"not a StatementResult (an object with a 'statements' array): {excerpt(r)}")
    return body["statements"]


def ids_of(sts: Iterable[Mapping[str, Any]]) -> list[str]:
    return [str(x.get("id")) for x in sts]


def rejected(s: Session, body: Any, *, only: Iterable[str] | None = None, method: str = "POST") -> None:
    """The LRS refuses ``body`` with 400 in every version it speaks (or ``only`` those)."""
    vs = [v for v in (only or versions(s)) if v in versions(s)]
    if not vs:
        raise Skip("the LRS speaks none of the versions this rule applies to")
    for v in vs:
        if method == "PUT" and isinstance(body, dict):
            r = put_statement(s, body, str(body.get("id") or uuid.uuid4()), v)
        else:
            r = post_statements(s, body, v)
        if r.status_code != 400:
            raise Fail(f"xAPI {v}: the invalid statement was answered {r.status_code}, not 400 ({excerpt(r)})")


def accepted(s: Session, body: Any, *, only: Iterable[str] | None = None) -> list[str]:
    """The LRS stores ``body`` (a statement or a list) in every version it speaks; the ids
    of the last POST."""
    vs = [v for v in (only or versions(s)) if v in versions(s)]
    if not vs:
        raise Skip("the LRS speaks none of the versions this rule applies to")
    ids: list[str] = []
    for v in vs:
        b = body
        if isinstance(body, dict) and "id" in body:
            b = {**body, "id": str(uuid.uuid4())}
        r = post_statements(s, b, v)
        if r.status_code != 200:
            raise Fail(f"xAPI {v}: the valid statement was answered {r.status_code}, not 200 ({excerpt(r)})")
        ids = [str(i) for i in body_json(r)]
    return ids


def header(r: httpx.Response, name: str) -> str | None:
    return r.headers.get(name)


def parse_ts(value: str) -> datetime:
    v = value.strip()
    if v.endswith(("Z", "z")):
        v = v[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise Fail(f"{value!r} is not an ISO 8601 timestamp") from None
    if dt.tzinfo is None:
        raise Fail(f"{value!r} has no time zone")
    return dt


def document_json(r: httpx.Response) -> Any:
    expect(r, 200)
    return body_json(r)
