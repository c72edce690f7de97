"""The Statement Resource, and the About, Activities and Agents resources (Communication 2.1,
2.4, 2.5, 2.8). Thin: parse and check the request, call ``StatementStore``, answer.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from gateway.api.context import AppContext
from gateway.model import utcnow
from gateway.store.evidence import add_consistency

from .attachments import check_attachments, multipart_response, parse_multipart
from .derive import Deriver, XapiConsistency, register_metrics
from .evidence import EvidenceMapper
from .formats import accept_languages, canonical, ids_only
from .http import (
    SUPPORTED,
    V2,
    Caller,
    LrsPrincipal,
    Version,
    XapiError,
    iso,
    json_response,
    parse_json,
)
from .parameters import parse_agent_param, parse_timestamp, require_iri, require_uuid
from .settings import settings_of
from .statement_query import Query
from .statement_store import StatementStore
from .validation import agent_key
from .validation import statements as valid_statements

#: the most statements one GET page holds (a larger or zero ``limit`` gets this many)
MAX_LIMIT = 500
_DIGITS = re.compile(r"[0-9]+")
_SINGLE_PARAMS = {"statementId", "voidedStatementId", "format", "attachments"}
_QUERY_PARAMS = {
    "agent", "verb", "activity", "registration", "related_activities", "related_agents", "since", "until", "limit",
    "format", "attachments", "ascending", "cursor",
}


def build_router(ctx: AppContext) -> APIRouter:
    router = APIRouter()
    settings = settings_of(ctx)
    mapper = EvidenceMapper(ctx.store)  # one mapper per app: it caches actors
    deriver = Deriver(ctx.store, mapper, batch=settings.derive_batch, shards=settings.derive_shards,
                      consume=settings.derive_in_server) if settings.derive == "async" else None
    statements = StatementStore(ctx.store, mapper, merge_every=settings.merge_every, deriver=deriver,
                                max_lag=settings.derive_max_lag, lag_wait=settings.derive_lag_wait_seconds)
    add_consistency(ctx.store, "xapi", XapiConsistency(ctx.store, deriver, wait_seconds=settings.derive_wait_seconds))
    # the consumer runs in every server process (one of them consumes, the others stand by),
    # unless TESSERA_XAPI__DERIVE_IN_SERVER=false leaves it to `tessera worker`
    if deriver is not None:
        register_metrics()
        router.on_startup.append(deriver.start)
        router.on_shutdown.append(deriver.stop)

    @router.api_route("/about", methods=["GET", "HEAD"])
    async def about() -> Response:
        """Communication 2.8: no authentication, no version header needed."""
        return json_response({"version": list(SUPPORTED), "extensions": {}})

    @router.put("/statements")
    async def put_statement(request: Request, who: Caller, version: Version) -> Response:
        """Communication 2.1.1: store one statement under ``statementId``; 204."""
        who.require("statements/write")
        params = _params(request, {"statementId"})
        sid = require_uuid(params.get("statementId"), "statementId")
        data, parts = await _body(request)
        if isinstance(data, list):
            raise XapiError(400, "PUT stores one statement; POST an array instead")
        if isinstance(data, dict) and "id" in data and isinstance(data["id"], str) and data["id"].lower() != sid:
            raise XapiError(400, f"statement.id {data['id']} does not match the statementId parameter {sid}")
        if isinstance(data, dict):
            data.setdefault("id", sid)
        await _store(statements, who, version, data, parts)
        return Response(status_code=204)

    @router.post("/statements")
    async def post_statements(request: Request, who: Caller, version: Version) -> Response:
        """Communication 2.1.2: store one statement or a batch; the ids, in order."""
        who.require("statements/write")
        _params(request, set())
        data, parts = await _body(request)
        ids = await _store(statements, who, version, data, parts)
        return json_response(ids)

    @router.api_route("/statements", methods=["GET", "HEAD"])
    async def get_statements(request: Request, who: Caller, version: Version) -> Response:
        """Communication 2.1.3: one statement by (voided)StatementId, or a filtered page."""
        mine = _read_scope(who)
        qp = request.query_params
        if "statementId" in qp or "voidedStatementId" in qp:
            return await _get_one(request, statements, who, mine)
        params = _params(request, _QUERY_PARAMS)
        q = _query(params)
        if mine:
            q.authority = agent_key(who.authority)
        fmt, with_attachments = _format(params)
        page = await run_in_threadpool(statements.query, who.tenant, q)
        bodies = [b for _, _, b in page.rows]
        more = ""
        if page.more is not None:
            keep = [(k, val) for k, val in request.query_params.multi_items() if k != "cursor"]
            more = f"{request.scope.get('root_path', '')}/statements?{urlencode([*keep, ('cursor', str(page.more))])}"
        rendered = await _render(request, statements, who.tenant, bodies, fmt)
        body = b'{"statements":[' + b",".join(rendered) + b'],"more":' + orjson.dumps(more) + b"}"
        headers: dict[str, str] = {}
        if page.rows:
            headers["Last-Modified"] = _http_date(max(r[1] for r in page.rows))
        if with_attachments:
            return await _with_attachments(statements, who.tenant, body, bodies, headers)
        return Response(body, media_type="application/json", headers=headers)

    @router.api_route("/activities", methods=["GET", "HEAD"])
    async def get_activity(request: Request, who: Caller, version: Version) -> Response:
        """Communication 2.5: the LRS's canonical definition of an activity (an Activity
        object even when the LRS knows nothing of it)."""
        who.require("all/read", "statements/read", "statements/read/mine", "state", "profile", "define")
        params = _params(request, {"activityId"})
        aid = require_iri(params.get("activityId"), "activityId")
        definition = await run_in_threadpool(statements.activity, who.tenant, aid)
        out: dict[str, Any] = {"objectType": "Activity", "id": aid}
        if definition:
            out["definition"] = definition
        return json_response(out)

    @router.api_route("/agents", methods=["GET", "HEAD"])
    async def get_agent(request: Request, who: Caller, version: Version) -> Response:
        """Communication 2.4: the Person object: every identifier and name the LRS has seen
        for this agent in its statements."""
        who.require("all/read", "statements/read", "statements/read/mine", "state", "profile", "define")
        params = _params(request, {"agent"})
        agent = parse_agent_param(params.get("agent"))
        assert agent is not None
        if agent.get("objectType") == "Group":
            raise XapiError(400, "agent parameter: the Agents resource takes an Agent, not a Group")
        bodies = await run_in_threadpool(statements.agent_statements, who.tenant, agent_key(agent))
        return json_response(_person(agent, bodies))

    return router


# --------------------------------------------------------------------------- requests

def _params(request: Request, allowed: set[str]) -> dict[str, str]:
    """Communication 2.0.s1: parameters the LRS does not recognise are a 400; so is a
    parameter given twice."""
    out: dict[str, str] = {}
    for k, val in request.query_params.multi_items():
        if k not in allowed:
            raise XapiError(400, f"the parameter {k!r} is not recognised here" + (f"; allowed: {', '.join(sorted(allowed))}" if allowed else ""))
        if k in out:
            raise XapiError(400, f"the parameter {k!r} is given twice")
        out[k] = val
    return out


def _bool_param(params: dict[str, str], name: str) -> bool:
    value = params.get(name)
    if value is None:
        return False
    if value not in ("true", "false"):
        raise XapiError(400, f"the {name} parameter must be true or false")
    return value == "true"


def _read_scope(who: LrsPrincipal) -> bool:
    """Whether the caller may only read its own statements (scope statements/read/mine)."""
    if who.has("statements/read") or who.has("all/read"):
        return False
    who.require("statements/read/mine")
    return True


def _format(params: dict[str, str]) -> tuple[str, bool]:
    fmt = params.get("format", "exact")
    if fmt not in ("ids", "exact", "canonical"):
        raise XapiError(400, "the format parameter must be ids, exact or canonical")
    return fmt, _bool_param(params, "attachments")


def _query(params: dict[str, str]) -> Query:
    q = Query()
    if "agent" in params:
        agent = parse_agent_param(params["agent"])
        assert agent is not None
        q.agent = agent_key(agent)
    if "verb" in params:
        q.verb = require_iri(params["verb"], "verb")
    if "activity" in params:
        q.activity = require_iri(params["activity"], "activity")
    if "registration" in params:
        q.registration = require_uuid(params["registration"], "registration")
    q.related_agents = _bool_param(params, "related_agents")
    q.related_activities = _bool_param(params, "related_activities")
    q.ascending = _bool_param(params, "ascending")
    for name in ("since", "until"):
        if name in params:
            setattr(q, name, parse_timestamp(params[name], f"{name} parameter"))
    limit = params.get("limit", "0")
    if not _DIGITS.fullmatch(limit):
        raise XapiError(400, "the limit parameter must be a non-negative integer")
    q.limit = min(int(limit), MAX_LIMIT) or MAX_LIMIT
    if "cursor" in params:
        # a seq: a 64-bit integer (ASCII digits only: str.isdigit also takes "²")
        if not _DIGITS.fullmatch(params["cursor"]) or int(params["cursor"]) >= 2**63:
            raise XapiError(400, "the cursor parameter of a more link was altered")
        q.after = int(params["cursor"])
    return q


async def _body(request: Request) -> tuple[Any, dict[str, tuple[str, bytes]] | None]:
    """The statements (parsed JSON) and, for multipart/mixed, the attachment parts by SHA-2
    (Communication 1.5)."""
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";")[0].strip().lower()
    raw = await request.body()
    if media == "multipart/mixed":
        first, parts = parse_multipart(ctype, raw)
        return parse_json(first, "the statements part"), parts
    if media != "application/json":
        raise XapiError(400, "statements are sent as application/json or multipart/mixed")
    return parse_json(raw, "the request body"), None


async def _store(store: StatementStore, who: LrsPrincipal, version: str, data: Any,
                 parts: dict[str, tuple[str, bytes]] | None) -> list[str]:
    """Validate, complete (id, stored, authority, timestamp, version: Data 2.4) and store."""
    batch = valid_statements(data, version)
    originals = [dict(s) for s in batch] if parts else []
    stored = complete(batch, who.authority, version)
    attachments = check_attachments(batch, originals, parts)
    await run_in_threadpool(store.save, who.tenant, batch, stored=stored, authority=agent_key(who.authority),
                            attachments=attachments, define=who.has("define"))
    return [s["id"] for s in batch]


def complete(batch: list[dict[str, Any]], authority: dict[str, Any], version: str) -> datetime:
    """Data 2.4: the LRS sets id (when absent), stored, authority, timestamp (when absent)
    and version (when absent); ids must be distinct within a batch (Communication 2.1.2).
    Returns ``stored``."""
    stored = utcnow()
    stored = stored.replace(microsecond=stored.microsecond // 1000 * 1000)  # as precise as its text (Data 4.5)
    now = iso(stored)
    seen: set[str] = set()
    for s in batch:
        sid = s["id"] = s["id"].lower() if "id" in s else str(uuid.uuid4())
        if sid in seen:
            raise XapiError(400, f"statement id {sid} appears twice in the batch")
        seen.add(sid)
        s["stored"] = now
        s["authority"] = authority
        if "timestamp" not in s:
            s["timestamp"] = now
        elif version == V2:
            s["timestamp"] = _rfc3339(s["timestamp"])
        s.setdefault("version", "2.0.0" if version == V2 else "1.0.0")
    return stored


def _rfc3339(value: str) -> str:
    """2.0: an RFC 3339 timestamp with a space or lower-case t/z is normalised, not rejected."""
    if " " in value or "t" in value or "z" in value:
        return iso(parse_timestamp(value, "timestamp"))
    return value


async def _get_one(request: Request, store: StatementStore, who: LrsPrincipal, mine: bool) -> Response:
    params = _params(request, _SINGLE_PARAMS)
    if "statementId" in params and "voidedStatementId" in params:
        raise XapiError(400, "give statementId or voidedStatementId, not both")
    voided = "voidedStatementId" in params
    sid = require_uuid(params.get("voidedStatementId" if voided else "statementId"), "voidedStatementId" if voided else "statementId")
    fmt, with_attachments = _format(params)
    authority = agent_key(who.authority) if mine else None
    found = await run_in_threadpool(store.get, who.tenant, sid, voided=voided, authority=authority)
    if found is None:
        raise XapiError(404, f"no {'voided ' if voided else ''}statement {sid}")
    stored, body = found
    rendered = (await _render(request, store, who.tenant, [body], fmt))[0]
    headers = {"Last-Modified": _http_date(stored)}
    if with_attachments:
        return await _with_attachments(store, who.tenant, rendered, [body], headers)
    return Response(rendered, media_type="application/json", headers=headers)


async def _render(request: Request, store: StatementStore, tenant: str, bodies: list[str], fmt: str) -> list[bytes]:
    """Communication 2.1.3 ``format``: exact (as stored, byte for byte), ids, canonical."""
    if fmt == "exact":
        return [b.encode() for b in bodies]
    docs = [orjson.loads(b) for b in bodies]
    if fmt == "ids":
        return [orjson.dumps(ids_only(d)) for d in docs]
    langs = accept_languages(request.headers.get("accept-language"))
    ids = sorted({a for d in docs for a in _activity_ids(d)})
    definitions = await run_in_threadpool(store.definitions, tenant, ids)
    return [orjson.dumps(canonical(d, definitions, langs)) for d in docs]


def _activity_ids(s: dict[str, Any]) -> Iterable[str]:
    obj = s["object"]
    if obj.get("objectType", "Activity") == "Activity":
        yield obj["id"]
    elif obj.get("objectType") == "SubStatement":
        yield from _activity_ids(obj)
    for group in ((s.get("context") or {}).get("contextActivities") or {}).values():
        for a in group if isinstance(group, list) else [group]:
            yield a["id"]


async def _with_attachments(store: StatementStore, tenant: str, body: bytes, bodies: list[str],
                            headers: dict[str, str]) -> Response:
    sha2s = sorted({a["sha2"] for b in bodies for a in orjson.loads(b).get("attachments", ()) if "sha2" in a})
    content = await run_in_threadpool(store.attachments, tenant, sha2s)
    payload, ctype = multipart_response(body, content)
    return Response(payload, media_type=ctype, headers=headers)


def _person(agent: dict[str, Any], bodies: list[str]) -> dict[str, Any]:
    """Communication 2.4.s4: a Person lists every name and identifier, each as an array."""
    person: dict[str, Any] = {"objectType": "Person"}
    key = agent_key(agent)
    seen = [agent]
    for b in bodies:
        s = orjson.loads(b)
        for a in (s.get("actor"), s.get("object")):
            if isinstance(a, dict) and a.get("objectType", "Agent") == "Agent" and "id" not in a and agent_key(a) == key:
                seen.append(a)
    for a in seen:
        for prop in ("name", "mbox", "mbox_sha1sum", "openid", "account"):
            if prop in a and a[prop] not in person.setdefault(prop, []):
                person[prop].append(a[prop])
    return {k: val for k, val in person.items() if val}


def _http_date(dt: datetime) -> str:
    return format_datetime(dt, usegmt=True)
