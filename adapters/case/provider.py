"""The CASE 1.0 provider API: ``/ims/case/v1p0/...`` (1EdTech CASE Service 1.0 REST/JSON binding;
endpoints, parameters and error payloads as in its OpenAPI file, shared/standards/case/).

Thin: parse and check the request, authorise, ask the competency repository, rebuild CASE JSON
with ``emit.Emitter``, answer. Errors on these paths are ``imsx_StatusInfo`` documents
(``render_status_info``), registered once with ``gateway.api.problems.register_error_shape``.

Authorisation: the CASE 1.0 REST binding defines no OAuth scopes (its frameworks are often
public). Tessera serves a tenant's frameworks only to that tenant's clients, with the scope that
reads competencies everywhere else: ``competencies.readonly``. The CASE Network's scope URIs
that CASE consumers ask for (``http://purl.imsglobal.org/casenetwork/case/v1p0/scope/core.readonly``
and ``.../all.readonly``) are that scope's other names (``CaseAdapter.scope_uris``).

Definitions (CFConcepts, CFSubjects, CFLicenses, CFItemTypes, CFAssociationGroupings) and
rubric skeletons live in each Framework's ``extensions["case"]``; their endpoints scan the
tenant's frameworks, which is fine for the tens of frameworks a district holds.
"""

from __future__ import annotations

import re
import threading
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.background import BackgroundTask

from gateway.api.problems import register_error_shape
from gateway.auth import Principal
from gateway.errors import AuthError, ErrorDetail, NotFound, ScopeError, TesseraError, ValidationError
from gateway.store.competencies import CompetencyRepository

from .emit import Emitter
from .fields import DEFINITION_KINDS, DOCUMENT_FIELDS

if TYPE_CHECKING:
    from gateway.api.context import AppContext

PREFIX = "/ims/case/v1p0"
#: the CASE 1.0 binding defines no scopes; see the module docstring.
READ_SCOPE = "competencies.readonly"
#: CFDocument members a client may sort, filter and select on (CFDocument.Type).
DOCUMENT_MEMBERS = (*DOCUMENT_FIELDS, "CFPackageURI")


class InvalidUuid(NotFound):
    """CASE 1.0 REST binding: an identifier that is not a UUID is a 404 with codeMinor invaliduuid."""


class InvalidSortField(ValidationError):
    pass


# --- imsx_StatusInfo ---------------------------------------------------------------------------


def status_info(exc: TesseraError) -> tuple[int, dict[str, Any]]:
    """(HTTP status, imsx_StatusInfo.Type) for an error: codeMajor failure, severity error, and
    the codeMinor the binding names for that status."""
    if isinstance(exc, AuthError):
        status, minor = 401, "unauthorisedrequest"
    elif isinstance(exc, ScopeError):
        status, minor = 403, "forbidden"
    elif isinstance(exc, InvalidUuid):
        status, minor = 404, "invaliduuid"
    elif isinstance(exc, NotFound):
        status, minor = 404, "unknownobject"
    elif isinstance(exc, InvalidSortField):
        status, minor = 400, "invalid_sort_field"
    elif isinstance(exc, ValidationError):
        status, minor = 400, "invalid_selection_field"
    elif exc.status == 429:
        status, minor = 429, "server_busy"
    elif exc.status >= 500:
        status, minor = exc.status, "internal_server_error"
    else:
        status, minor = exc.status, None
    description = exc.detail
    if exc.errors:
        description += ": " + "; ".join(str(e) for e in exc.errors[:20])
    body: dict[str, Any] = {"imsx_codeMajor": "failure", "imsx_severity": "error", "imsx_description": description}
    if minor:
        body["imsx_codeMinor"] = {"imsx_codeMinorField": [{"imsx_codeMinorFieldName": "TargetEndSystem", "imsx_codeMinorFieldValue": minor}]}
    return status, body


_NOT_QDTEXT = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')


def render_status_info(request: Request, exc: TesseraError) -> Response:
    status, body = status_info(exc)
    headers = {}
    if isinstance(exc, AuthError):
        headers["WWW-Authenticate"] = f'Bearer realm="tessera", error="invalid_token", error_description="{_NOT_QDTEXT.sub("", exc.detail)}"'
    elif isinstance(exc, ScopeError):
        headers["WWW-Authenticate"] = f'Bearer realm="tessera", error="insufficient_scope", scope="{READ_SCOPE}"'
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers or None)


_registered = False


def _register_shape() -> None:
    global _registered
    if not _registered:
        register_error_shape("/ims/case/", render_status_info)
        _registered = True


# --- query parameters of getAllCFDocuments --------------------------------------------------

_CLAUSE = re.compile(r"\s*([A-Za-z][A-Za-z0-9_]*)\s*(!=|>=|<=|=|>|<|~)\s*'((?:[^']|'')*)'\s*")
_LOGIC = re.compile(r"\s+(AND|OR)\s+")


def parse_filter(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """``field<predicate>'value'`` clauses joined by one logical operator, ``AND`` or ``OR``
    (predicates ``= != > >= < <= ~``, ``~`` meaning "contains"), as in the CASE 1.0 REST
    binding. Returns (operator, [(field, predicate, value)])."""
    clauses: list[tuple[str, str, str]] = []
    ops: set[str] = set()
    pos = 0
    while True:
        m = _CLAUSE.match(text, pos)
        if not m:
            raise ValidationError("invalid filter", errors=[ErrorDetail(
                "expected field<predicate>'value' (predicates = != > >= < <= ~), clauses joined by AND or OR", location="query", field="filter")])
        field_, pred, value = m.group(1), m.group(2), m.group(3).replace("''", "'")
        if field_ not in DOCUMENT_MEMBERS:
            raise ValidationError("invalid filter", errors=[ErrorDetail(f"{field_!r} is not a CFDocument field", location="query", field="filter")])
        clauses.append((field_, pred, value))
        pos = m.end()
        if pos >= len(text):
            break
        lm = _LOGIC.match(text, pos - 1 if text[pos - 1].isspace() else pos)
        if not lm:
            raise ValidationError("invalid filter", errors=[ErrorDetail("clauses are joined by AND or OR", location="query", field="filter")])
        ops.add(lm.group(1))
        pos = lm.end()
    if len(ops) > 1:
        raise ValidationError("invalid filter", errors=[ErrorDetail("use either AND or OR in one filter, not both", location="query", field="filter")])
    return (ops.pop() if ops else "AND"), clauses


def _scalar(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, dict):
        return str(v.get("uri") or v.get("title") or "")
    return str(v)


def _match(obj: dict[str, Any], field_: str, pred: str, value: str) -> bool:
    raw = obj.get(field_)
    values = [_scalar(x) for x in raw] if isinstance(raw, list) else [_scalar(raw)]
    for v in values:
        if v is None:
            if pred == "!=":
                return True
            continue
        if (pred == "=" and v == value) or (pred == "!=" and v != value) or (pred == "~" and value.lower() in v.lower()) \
                or (pred == ">" and v > value) or (pred == ">=" and v >= value) or (pred == "<" and v < value) or (pred == "<=" and v <= value):
            return True
    return False


def _sort_key(v: Any) -> str:
    """Values sort as text, case-insensitively (titles, dates in ISO 8601, URIs)."""
    return (",".join(str(_scalar(x)) for x in v) if isinstance(v, list) else str(_scalar(v))).casefold()


LIST_PARAMS = {"limit", "offset", "sort", "orderBy", "filter", "fields"}


def _list_query(request: Request, max_limit: int) -> dict[str, Any]:
    q = request.query_params
    errors = [ErrorDetail(f"unknown query parameter; getAllCFDocuments takes {', '.join(sorted(LIST_PARAMS))}", location="query", field=n)
              for n in q if n not in LIST_PARAMS]
    out: dict[str, Any] = {"limit": 100, "offset": 0, "sort": None, "desc": False, "filter": None, "fields": None}
    for name, lo, hi in (("limit", 1, max_limit), ("offset", 0, None)):
        if name in q:
            try:
                out[name] = int(q[name])
                if out[name] < lo or (hi is not None and out[name] > hi):
                    raise ValueError
            except ValueError:
                errors.append(ErrorDetail(f"must be an integer from {lo}" + (f" to {hi}" if hi else ""), location="query", field=name))
    if "orderBy" in q:
        if q["orderBy"] not in ("asc", "desc"):
            errors.append(ErrorDetail("must be asc or desc", location="query", field="orderBy"))
        out["desc"] = q["orderBy"] == "desc"
    if "fields" in q:
        fields = [f.strip() for f in q["fields"].split(",") if f.strip()]
        bad = [f for f in fields if f not in DOCUMENT_MEMBERS]
        errors += [ErrorDetail(f"{f!r} is not a CFDocument field", location="query", field="fields") for f in bad]
        out["fields"] = fields
    if errors:
        raise ValidationError("invalid request", errors=errors)
    if "sort" in q:
        if q["sort"] not in DOCUMENT_MEMBERS:
            raise InvalidSortField("invalid sort field", errors=[ErrorDetail(f"{q['sort']!r} is not a CFDocument field", location="query", field="sort")])
        out["sort"] = q["sort"]
    if "filter" in q:
        out["filter"] = parse_filter(q["filter"])
    return out


def _page_links(request: Request, base: str, offset: int, limit: int, total: int) -> str:
    params = dict(request.query_params)

    def url(off: int) -> str:
        return f"{base}{request.url.path}?{urlencode({**params, 'limit': limit, 'offset': off})}"

    links = [f'<{url(0)}>; rel="first"', f'<{url(max(0, (total - 1) // limit * limit))}>; rel="last"']
    if offset + limit < total:
        links.insert(0, f'<{url(offset + limit)}>; rel="next"')
    if offset > 0:
        links.insert(0, f'<{url(max(0, offset - limit))}>; rel="prev"')
    return ", ".join(links)


# --- the router -------------------------------------------------------------------------------


class PackageCache:
    """Serialised CFPackages, per process, valid while the tenant's change-log head has not moved
    (``CompetencyRepository.version``): consumers poll CFPackages, and rebuilding 60,000 records
    takes most of a second. Bounded by total bytes; least recently used out first."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: dict[tuple[str, str, str], tuple[int, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str], version: int) -> bytes | None:
        with self._lock:
            hit = self._items.pop(key, None)
            if hit is None or hit[0] != version:
                return None
            self._items[key] = hit  # most recently used last
            return hit[1]

    def put(self, key: tuple[str, str, str], version: int, body: bytes) -> None:
        if len(body) > self.max_bytes:
            return
        with self._lock:
            self._items.pop(key, None)
            self._items[key] = (version, body)
            total = sum(len(b) for _, b in self._items.values())
            while total > self.max_bytes:
                old = next(iter(self._items))
                total -= len(self._items.pop(old)[1])



def _uuid_param(v: str) -> uuid.UUID:
    try:
        return uuid.UUID(v)
    except ValueError:
        raise InvalidUuid(f"{v!r} is not a UUID (CASE sourcedIds are UUIDs)") from None


def _json(obj: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(obj), media_type="application/json", headers=headers)


def build_router(adapter: Any, ctx: AppContext) -> APIRouter:
    _register_shape()
    router = APIRouter(prefix=PREFIX, tags=["case"])
    need = Depends(ctx.require(READ_SCOPE))
    repo = CompetencyRepository.of(ctx.store)
    packages = PackageCache()

    def site(request: Request) -> str:
        return ctx.settings.public_url.rstrip("/") if ctx.settings.public_url else str(request.base_url).rstrip("/")

    def emitter(request: Request) -> Emitter:
        return Emitter(site(request) + PREFIX)

    def framework_of(tenant: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        fid = doc.get("framework_id")
        if not fid:
            return None
        try:
            return orjson.loads(ctx.store.records.get_json(tenant, "framework", uuid.UUID(fid)))
        except NotFound:
            return None

    def definition(tenant: str, kind: str, ident: uuid.UUID) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(the definition, the definitions of that kind in the framework that holds it: hierarchy
        codes only mean something within one framework's set)."""
        want = str(ident)
        for fw in repo.frameworks(tenant):
            defs = Emitter.definitions_of(fw)
            pool = [d for d in ((defs.get(kind) or []) if isinstance(defs, dict) else []) if isinstance(d, dict)]
            found = next((d for d in pool if str(d.get("identifier", "")).lower() == want), None)
            if found is not None:
                return found, pool
        raise NotFound(f"no {kind[:-1]} with identifier {ident}")

    def with_children(found: dict[str, Any], pool: list[dict[str, Any]]) -> list[dict[str, Any]]:
        code = found.get("hierarchyCode")
        kids = [d for d in pool if code and d is not found and str(d.get("hierarchyCode", "")).startswith(f"{code}.")]
        return [found, *sorted(kids, key=lambda d: str(d.get("hierarchyCode")))]

    @router.get("/CFDocuments", summary="getAllCFDocuments: the tenant's frameworks (limit, offset, sort, orderBy, filter, fields)")
    def get_all_documents(request: Request, principal: Principal = need) -> Response:
        q = _list_query(request, ctx.settings.page_size_max)
        em = emitter(request)
        docs = [em.document(fw, standalone=True) for fw in repo.frameworks(principal.tenant)]
        if q["filter"]:
            op, clauses = q["filter"]
            combine = all if op == "AND" else any
            docs = [d for d in docs if combine(_match(d, f, p, v) for f, p, v in clauses)]
        if q["sort"]:
            key = q["sort"]
            present = [d for d in docs if d.get(key) is not None]
            absent = [d for d in docs if d.get(key) is None]
            present.sort(key=lambda d: (_sort_key(d[key]), d["identifier"]), reverse=q["desc"])
            docs = present + absent
        elif q["desc"]:
            docs.reverse()
        total = len(docs)
        page = docs[q["offset"] : q["offset"] + q["limit"]]
        if q["fields"]:
            page = [{k: d[k] for k in q["fields"] if k in d} for d in page]
        headers = {"X-Total-Count": str(total), "Link": _page_links(request, site(request), q["offset"], q["limit"], total)}
        return _json({"CFDocuments": page}, headers)

    @router.get("/CFDocuments/{sourcedId}", summary="getCFDocument")
    def get_document(sourcedId: str, request: Request, principal: Principal = need) -> Response:
        fw = repo.framework_by_guid(principal.tenant, _uuid_param(sourcedId))
        return _json(emitter(request).document(fw, standalone=True))

    @router.get("/CFPackages/{sourcedId}", summary="getCFPackage: a framework with its items, associations, definitions and rubrics")
    def get_package(sourcedId: str, request: Request, principal: Principal = need) -> Response:
        from gateway.gc_pause import paused_gc

        guid = _uuid_param(sourcedId)
        key = (principal.tenant, str(guid), site(request))
        version = repo.version(principal.tenant)
        cached = packages.get(key, version)
        if cached is not None:
            return Response(cached, media_type="application/json")
        # A large framework is a million short-lived objects: the cyclic collector stays off while
        # they live (see adapters.case.paused_gc), and they are freed after the answer is sent,
        # where freeing them no longer delays it (a quarter of the request's time at 60,000 records).
        pause = paused_gc().start()
        try:
            fw = repo.framework_by_guid(principal.tenant, guid)
            parts = repo.framework_contents(principal.tenant, uuid.UUID(fw["id"]))
            pkg = emitter(request).package(fw, *parts)
            body = orjson.dumps(pkg)
        except BaseException:
            pause.resume()
            raise
        packages.put(key, version, body)
        garbage = [parts, pkg]
        del parts, pkg

        def release() -> None:
            garbage.clear()
            pause.resume()

        return Response(body, media_type="application/json", background=BackgroundTask(release))

    @router.get("/CFItems/{sourcedId}", summary="getCFItem")
    def get_item(sourcedId: str, request: Request, principal: Principal = need) -> Response:
        c = repo.competency_by_guid(principal.tenant, _uuid_param(sourcedId))
        return _json(emitter(request).item(c, framework_of(principal.tenant, c), standalone=True))

    @router.get("/CFAssociations/{sourcedId}", summary="getCFAssociation")
    def get_association(sourcedId: str, request: Request, principal: Principal = need) -> Response:
        r = repo.relation_by_native_id(principal.tenant, str(_uuid_param(sourcedId)))
        return _json(emitter(request).association(r, framework_of(principal.tenant, r), standalone=True))

    @router.get("/CFItemAssociations/{sourcedId}", summary="getCFItemAssociations: an item and every association it is an end of")
    def get_item_associations(sourcedId: str, request: Request, principal: Principal = need) -> Response:
        c = repo.competency_by_guid(principal.tenant, _uuid_param(sourcedId))
        em = emitter(request)
        rels = repo.relations_of_competency(principal.tenant, c)
        return _json({"CFItem": em.item(c, framework_of(principal.tenant, c), standalone=True),
                      "CFAssociations": [em.association(r) for r in rels]})

    @router.get("/CFRubrics/{sourcedId}", summary="getCFRubric")
    def get_rubric(sourcedId: str, request: Request, principal: Principal = need) -> Response:
        want = str(_uuid_param(sourcedId))
        for fw in repo.frameworks(principal.tenant):
            if any(str(sk.get("identifier", "")).lower() == want for sk in Emitter.rubric_skeletons(fw)):
                scales = repo.framework_contents(principal.tenant, uuid.UUID(fw["id"]), kinds=("proficiency_scale",))[2]
                for r in emitter(request).rubrics(fw, scales):
                    if str(r.get("identifier", "")).lower() == want:
                        return _json(r)
        raise NotFound(f"no CFRubric with identifier {want}")

    def add_definition(path: str, kind: str, with_set: bool) -> None:
        def get_definition(sourcedId: str, principal: Principal = need) -> Response:
            found, pool = definition(principal.tenant, kind, _uuid_param(sourcedId))
            return _json({kind: with_children(found, pool)} if with_set else found)

        router.add_api_route(f"/{path}/{{sourcedId}}", get_definition, methods=["GET"], name=f"get_{path}",
                             summary=f"get{path[:-1]}" + (" and its children (hierarchyCode)" if with_set else ""))

    for path, kind, with_set in (
        ("CFAssociationGroupings", "CFAssociationGroupings", False),
        ("CFConcepts", "CFConcepts", True),
        ("CFItemTypes", "CFItemTypes", True),
        ("CFLicenses", "CFLicenses", False),
        ("CFSubjects", "CFSubjects", True),
    ):
        add_definition(path, kind, with_set)
    assert set(DEFINITION_KINDS) == {"CFAssociationGroupings", "CFConcepts", "CFItemTypes", "CFLicenses", "CFSubjects"}
    return router


__all__ = ["PREFIX", "READ_SCOPE", "build_router", "parse_filter", "render_status_info", "status_info"]
