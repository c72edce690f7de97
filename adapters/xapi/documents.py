"""The xAPI document resources: State, Activity Profile, Agent Profile (xAPI 1.0.3
Communication 2.2, 2.3, 2.6, 2.7 and 3.1; xAPI 2.0 the same, with State under concurrency
control too).

A document is arbitrary bytes with a Content-Type, addressed by its resource, an activity
id and/or an agent, for State a registration, and its id (stateId / profileId). Rules kept
here, each from the spec:

- GET answers the stored bytes with their Content-Type, an ETag (the SHA-1 hex of the
  content, quoted: 3.1.s4.b2, b4) and Last-Modified (2.2.s6); without a document id, the
  ids in that scope, filtered by ``since`` (exclusive, 2.3.s4).
- POST of a JSON object onto a JSON object merges their top-level properties (2.2.s7);
  either side not a JSON object is a 400 that changes nothing (2.2.s8.b1).
- If-Match / If-None-Match are honoured on PUT, POST and DELETE (3.1.s4.b5-b8): a failed
  precondition is 412 and changes nothing. A PUT without either header onto an existing
  document is a 409 (3.1.s4.b13) for the profile resources, and in 2.0 for State too (the
  1.0.3 State resource "will permit PUT, POST and DELETE requests without concurrency
  headers", 3.1.s3; 2.0 and its conformance suite put State under the same rule).
- DELETE of State without a stateId deletes the whole scope (2.3.s5); without a
  registration, every registration's documents (as for the id list), the way the ADL LRS
  reads "Activity + Agent [+ registration if specified]".
- A parameter the resource does not define is a 400 (3.2.s3.b7).

Every read-check-write runs in one transaction holding a lock on the document's address
(SQLite: the write lock; PostgreSQL: a transaction advisory lock on its key), so two
concurrent conditional requests cannot both pass their precondition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import Connection, Engine, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from starlette.concurrency import run_in_threadpool

from gateway.api.context import AppContext
from gateway.model import utcnow
from gateway.store.db import WRITE

from .document_tables import xapi_documents as docs
from .http import V2, LrsPrincipal, XapiError, json_response, principal, xapi_version
from .parameters import parse_agent_param, parse_timestamp, require_iri, require_uuid
from .validation import agent_key

JSON = "application/json"
OCTETS = "application/octet-stream"
Who = Annotated[LrsPrincipal, Depends(principal)]
Version = Annotated[str, Depends(xapi_version)]


@dataclass(frozen=True)
class Resource:
    """One document resource and the parameters that address its documents."""

    name: str  # the value of the ``resource`` column
    path: str
    id_param: str  # stateId | profileId
    activity: bool
    agent: bool
    registration: bool
    #: the profiles: a PUT MUST carry If-Match or If-None-Match (3.1.s3.b1), in both versions
    #: (State only in 2.0, and only onto an existing document)
    profile: bool

    def headers_rule(self, version: str) -> str:
        """What a PUT without concurrency headers gets: "required" (409 onto an existing
        document, 400 otherwise: the client broke 3.1.s3.b1, as the ADL conformance suite
        checks for 1.0.3), "existing" (409 onto an existing document), "optional"."""
        if self.profile:
            return "required"
        return "existing" if version == V2 else "optional"

    def params(self, method: str) -> frozenset[str]:
        """The query parameters this resource defines for ``method`` (3.2.s3.b7)."""
        names = {self.id_param}
        if self.activity:
            names.add("activityId")
        if self.agent:
            names.add("agent")
        if self.registration:
            names.add("registration")
        if method in ("GET", "HEAD"):  # a single-document GET may carry it too; it is ignored there
            names.add("since")
        return frozenset(names)


STATE = Resource("state", "/activities/state", "stateId", True, True, True, False)
ACTIVITY_PROFILE = Resource("activity_profile", "/activities/profile", "profileId", True, False, False, True)
AGENT_PROFILE = Resource("agent_profile", "/agents/profile", "profileId", False, True, False, True)


@dataclass(frozen=True)
class Address:
    """Where documents live: the scope, and for State the registration ("" for none)."""

    resource: Resource
    activity_id: str | None
    agent: str | None  # validation.agent_key of the agent
    registration: str | None  # None: not given (lists and deletes span every registration)

    @property
    def scope(self) -> str:
        raw = "\x1f".join((self.resource.name, self.activity_id or "", self.agent or ""))
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class Document:
    content: bytes
    content_type: str
    etag: str
    updated: datetime

    @property
    def is_json(self) -> bool:
        return _is_json(self.content_type)


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == JSON


def _doc_key(doc_id: str) -> str:
    return hashlib.sha256(doc_id.encode()).hexdigest()


def _etag_value(tag: str) -> str:
    """An entity tag as compared: without W/, quotes, case (clients send upper-case hex too)."""
    tag = tag.strip()
    tag = tag.removeprefix("W/")
    return tag.strip('"').lower()


# --- the parameters --------------------------------------------------------------------------


def parse_address(resource: Resource, query: Mapping[str, str], method: str, *, single: bool) -> Address:
    """Validate the query of a request to ``resource``: a 400 names each bad parameter."""
    unknown = sorted(set(query) - resource.params(method))
    if unknown:
        raise XapiError(400, f"parameter(s) {', '.join(unknown)} are not defined for {resource.path} {method}")
    activity = require_iri(query.get("activityId"), "activityId") if resource.activity else None
    agent = None
    if resource.agent:
        agent = agent_key(parse_agent_param(query.get("agent")))  # type: ignore[arg-type]
    registration = None
    if resource.registration:
        registration = require_uuid(query["registration"], "registration") if "registration" in query else (
            "" if single else None
        )
    return Address(resource, activity, agent, registration)


def _doc_id(resource: Resource, query: Mapping[str, str], *, required: bool) -> str | None:
    value = query.get(resource.id_param)
    if value is None or value == "":
        if required:
            raise XapiError(400, f"the {resource.id_param} parameter is required")
        return None
    return value


# --- storage ---------------------------------------------------------------------------------


class Precondition:
    """The request's If-Match / If-None-Match, judged against the stored document (3.1)."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.if_match = headers.get("if-match")
        self.if_none_match = headers.get("if-none-match")

    @property
    def given(self) -> bool:
        return self.if_match is not None or self.if_none_match is not None

    def check(self, current: Document | None) -> None:
        """412 when a precondition fails (3.1.s4.b9, b11)."""
        if self.if_match is not None and not self._matches(self.if_match, current):
            raise XapiError(412, "If-Match does not match the document's current ETag; GET it again and retry")
        if self.if_none_match is not None and self._matches(self.if_none_match, current):
            raise XapiError(412, "If-None-Match matched: the document exists (or has that ETag) already")

    @staticmethod
    def _matches(header: str, current: Document | None) -> bool:
        if current is None:
            return False
        if header.strip() == "*":
            return True
        return current.etag in {_etag_value(t) for t in header.split(",")}


class DocumentStore:
    """The document rows: every write is one transaction that locks the document's address."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._postgres else sqlite.insert

    def _where(self, tenant: str, addr: Address, doc_id: str | None = None) -> list[Any]:
        conds = [docs.c.tenant == tenant, docs.c.scope == addr.scope]
        if addr.registration is not None:
            conds.append(docs.c.registration == addr.registration)
        if doc_id is not None:
            conds.append(docs.c.doc_key == _doc_key(doc_id))
        return conds

    def _lock(self, conn: Connection, tenant: str, addr: Address, doc_id: str | None) -> None:
        """Serialise writers of one scope (SQLite's write transaction does it already)."""
        if self._postgres:
            key = int.from_bytes(hashlib.sha256(f"{tenant}\x1f{addr.scope}".encode()).digest()[:8], "big", signed=True)
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    def _read(self, conn: Connection, tenant: str, addr: Address, doc_id: str) -> Document | None:
        row = conn.execute(
            select(docs.c.content, docs.c.content_type, docs.c.etag, docs.c.updated).where(*self._where(tenant, addr, doc_id))
        ).first()
        return Document(bytes(row.content), row.content_type, row.etag, row.updated) if row else None

    def get(self, tenant: str, addr: Address, doc_id: str) -> Document | None:
        with self.engine.connect() as conn:
            return self._read(conn, tenant, addr, doc_id)

    def ids(self, tenant: str, addr: Address, since: datetime | None) -> tuple[list[str], datetime | None]:
        """The document ids of a scope (changed after ``since``), and the latest change."""
        q = select(docs.c.doc_id, docs.c.updated).where(*self._where(tenant, addr))
        if since is not None:
            q = q.where(docs.c.updated > since)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(docs.c.updated, docs.c.doc_id)).all()
        return list(dict.fromkeys(r.doc_id for r in rows)), (rows[-1].updated if rows else None)

    def write(
        self, tenant: str, addr: Address, doc_id: str, content: bytes, content_type: str, *,
        merge: bool, pre: Precondition, headers_rule: str = "optional",
    ) -> None:
        """PUT (``merge`` False) or POST (True) one document, atomically; ``headers_rule``
        (``Resource.headers_rule``) applies to a PUT without If-Match / If-None-Match."""
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            self._lock(conn, tenant, addr, doc_id)
            current = self._read(conn, tenant, addr, doc_id)
            pre.check(current)
            if not merge and not pre.given and headers_rule != "optional":
                if current is not None:
                    raise XapiError(
                        409,
                        "the document exists: check its current state (GET) and send If-Match with its ETag "
                        "(or If-None-Match: * to create only)",
                    )
                if headers_rule == "required":
                    raise XapiError(400, "a PUT to this resource needs an If-Match or If-None-Match header (Communication 3.1)")
            if merge and current is not None:
                content, content_type = _merged(current, content, content_type)
            etag = hashlib.sha1(content).hexdigest()
            row = {
                "tenant": tenant, "scope": addr.scope, "registration": addr.registration or "", "doc_key": _doc_key(doc_id),
                "resource": addr.resource.name, "activity_id": addr.activity_id, "agent": addr.agent, "doc_id": doc_id,
                "content": content, "content_type": content_type, "etag": etag, "updated": utcnow(),
            }
            ins = self._insert(docs).values(**row)
            keep = ("content", "content_type", "etag", "updated")
            conn.execute(ins.on_conflict_do_update(
                index_elements=["tenant", "scope", "registration", "doc_key"], set_={k: ins.excluded[k] for k in keep}))

    def delete(self, tenant: str, addr: Address, doc_id: str | None, pre: Precondition) -> None:
        """DELETE one document (preconditions apply) or, without ``doc_id``, the scope."""
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            self._lock(conn, tenant, addr, doc_id)
            if doc_id is not None:
                pre.check(self._read(conn, tenant, addr, doc_id))
            conn.execute(delete(docs).where(*self._where(tenant, addr, doc_id)))


def _json_object(content: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        value = None
    if type(value) is not dict:
        raise XapiError(400, f"{what} is not a JSON object, so the two cannot be merged (Communication 2.2)")
    return value


def _merged(current: Document, content: bytes, content_type: str) -> tuple[bytes, str]:
    """2.2.s7: the posted object's top-level properties replace the stored object's."""
    if not current.is_json or not _is_json(content_type):
        raise XapiError(400, "POST merges JSON documents only: both the stored and the posted document must be application/json")
    merged = _json_object(current.content, "the stored document")
    merged.update(_json_object(content, "the posted document"))
    return orjson.dumps(merged), JSON


# --- HTTP --------------------------------------------------------------------------------------


def _http_date(at: datetime) -> str:
    return format_datetime(at, usegmt=True)


def _document_response(doc: Document, head: bool) -> Response:
    headers = {"ETag": f'"{doc.etag}"', "Last-Modified": _http_date(doc.updated)}
    return Response(b"" if head else doc.content, media_type=doc.content_type, headers=headers)


def _ids_response(ids: list[str], latest: datetime | None, head: bool) -> Response:
    body = orjson.dumps(ids)
    headers = {"ETag": f'"{hashlib.sha1(body).hexdigest()}"'}
    if latest is not None:
        headers["Last-Modified"] = _http_date(latest)
    return json_response(b"" if head else body, headers=headers)


def _no_content() -> Response:
    return Response(status_code=204)


def _scopes(resource: Resource) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(read, write) scopes in the spec's words (Communication 4.2 OAuth scopes)."""
    own = "state" if resource is STATE else "profile"
    return (own, "all/read"), (own,)


def _add_routes(router: APIRouter, store: DocumentStore, resource: Resource) -> None:
    read_scopes, write_scopes = _scopes(resource)

    @router.api_route(resource.path, methods=["GET", "HEAD"], name=f"xapi {resource.name} get")
    async def get(request: Request, who: Who, version: Version) -> Response:
        who.require(*read_scopes)
        query = dict(request.query_params)
        head = request.method == "HEAD"
        doc_id = _doc_id(resource, query, required=False)
        addr = parse_address(resource, query, "GET", single=doc_id is not None)
        if doc_id is not None:
            doc = await run_in_threadpool(store.get, who.tenant, addr, doc_id)
            if doc is None:
                raise XapiError(404, f"no document with {resource.id_param} {doc_id!r} here")
            return _document_response(doc, head)
        since = parse_timestamp(query["since"], "since parameter") if "since" in query else None
        ids, latest = await run_in_threadpool(store.ids, who.tenant, addr, since)
        return _ids_response(ids, latest, head)

    async def write(request: Request, who: LrsPrincipal, version: str, *, merge: bool) -> Response:
        who.require(*write_scopes)
        query = dict(request.query_params)
        method = "POST" if merge else "PUT"
        doc_id = _doc_id(resource, query, required=True)
        addr = parse_address(resource, query, method, single=True)
        content = await request.body()
        content_type = request.headers.get("content-type") or OCTETS
        if merge and _is_json(content_type):
            _json_object(content, "the posted document")
        await run_in_threadpool(
            store.write, who.tenant, addr, doc_id, content, content_type, merge=merge, pre=Precondition(request.headers),
            headers_rule=resource.headers_rule(version),
        )
        return _no_content()

    @router.put(resource.path, name=f"xapi {resource.name} put")
    async def put(request: Request, who: Who, version: Version) -> Response:
        return await write(request, who, version, merge=False)

    @router.post(resource.path, name=f"xapi {resource.name} post")
    async def post(request: Request, who: Who, version: Version) -> Response:
        return await write(request, who, version, merge=True)

    @router.delete(resource.path, name=f"xapi {resource.name} delete")
    async def remove(request: Request, who: Who, version: Version) -> Response:
        who.require(*write_scopes)
        query = dict(request.query_params)
        # only State deletes a whole scope (2.3.s5); the profiles need their profileId
        doc_id = _doc_id(resource, query, required=resource is not STATE)
        addr = parse_address(resource, query, "DELETE", single=doc_id is not None)
        await run_in_threadpool(store.delete, who.tenant, addr, doc_id, Precondition(request.headers))
        return _no_content()


def build_router(ctx: AppContext) -> APIRouter:
    """The three document resources, with paths relative to the LRS's base (/xapi)."""
    router = APIRouter()
    store = DocumentStore(ctx.store.engine)
    for resource in (STATE, ACTIVITY_PROFILE, AGENT_PROFILE):
        _add_routes(router, store, resource)
    return router


__all__ = ["ACTIVITY_PROFILE", "AGENT_PROFILE", "STATE", "DocumentStore", "build_router"]
