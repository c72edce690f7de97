"""The OneRoster Gradebook service: ``/ims/oneroster/gradebook/v1p2/...`` (OneRoster 1.2
Gradebook Service REST/JSON binding) and the gradebook paths of the 1.1 REST binding under
``/ims/oneroster/v1p1/...``.

Thin, like the rostering provider: parse the request (``query.parse_list_query``, the same
grammar), authorise, read or write through ``gradebook`` (which validates, keeps the object
and derives evidence / alignments in one transaction), answer in the binding's envelope.

Spec choices, written down:

* Scopes (1.2 binding, Security): reads need ``gradebook.readonly``; ``PUT`` and ``POST``
  need ``gradebook.createput``; ``DELETE`` needs ``gradebook.delete``. The 1.1 paths also
  accept OAuth 1.0a signed requests of a consumer key holding those scopes (``oauth1_auth``).
* ``PUT /<collection>/{sourcedId}`` creates (201) or replaces (200) the object with that
  sourcedId and answers with it; a body whose sourcedId differs from the path is 400.
* ``DELETE`` is the soft delete OneRoster uses everywhere: the object's status becomes
  ``tobedeleted`` (its evidence is voided, its alignments retired) and stays readable, so
  a delta consumer sees the deletion; 204. Deleting an unknown or already deleted object
  is 404 unknownobject.
* ``POST`` (1.2 only) creates objects whose sourcedId the client supplies (Tessera does not
  allocate others): 201 with ``sourcedIdPairs`` (supplied = allocated). A sourcedId that
  already exists is 400 invaliddata (``PUT`` is the way to replace).
* nested paths answer 404 unknownobject when the class / school / student / line item in
  the path does not exist in the caller's tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from gateway.auth import Principal
from gateway.store.roster import RefersTo, RosterQuery

from .gradebook.apply import put_objects
from .gradebook.prepare import Item
from .gradebook.storage import ObjectStore, Stored, find_roster
from .gradebook.types import COLLECTIONS, FIELDS, ROSTER_REFS, fields_of
from .gradebook.wire import to_wire
from .oauth1_auth import require, unsigned
from .query import TYPE_FIELDS, ListQuery, matches, page_links, parse_list_query, select_fields
from .status_info import InvalidData, UnknownObject, register
from .tables import objects
from .to_wire import UNRESOLVED_METADATA

if TYPE_CHECKING:
    from gateway.api.context import AppContext

PREFIX_V1P2 = "/ims/oneroster/gradebook/v1p2"
PREFIX_V1P1 = "/ims/oneroster/v1p1"
READ, WRITE, DELETE = ("gradebook.readonly",), ("gradebook.createput",), ("gradebook.delete",)
#: source of objects first written over REST (an object keeps the source that created it)
REST_SOURCE = "oneroster-api"
GRADEBOOK_TYPES = ("category", "lineItem", "result", "scoreScale", "assessmentLineItem", "assessmentResult")
V11_TYPES = ("category", "lineItem", "result")

# the query grammar knows the rostering types; the gradebook and resources types join its table
for _ty in FIELDS:
    TYPE_FIELDS.setdefault(_ty, fields_of(_ty))


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json", headers=headers)


class Lister:
    """Answers collection reads of stored objects: the query grammar, X-Total-Count and Link."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.objects = ObjectStore(ctx.store.engine)

    def site(self, request: Request) -> str:
        s = self.ctx.settings
        return s.public_url.rstrip("/") if s.public_url else str(request.base_url).rstrip("/")

    def links(self, request: Request, q: ListQuery, total: int) -> str:
        return page_links(self.site(request), request.url.path, unsigned(request.query_params), q, total)

    def answer(self, request: Request, tenant: str, obj_type: str, version: str, conds: list[Any],
               keep: Callable[[Stored], bool] | None = None) -> Response:
        q = parse_list_query(request.query_params, obj_type, max_limit=self.ctx.settings.page_size_max, version=version)
        rows = [s for s in self.objects.where(tenant, obj_type, *conds) if keep is None or keep(s)]
        objs = self.wire(tenant, rows, version)
        if q.filter is not None:
            objs = [o for o in objs if matches(o, q.filter)]
        if q.sort:
            key = q.sort
            present = sorted((o for o in objs if o.get(key) is not None), key=lambda o: _sort_key(o[key]), reverse=q.desc)
            objs = present + [o for o in objs if o.get(key) is None]
        elif q.desc:
            objs.reverse()
        total = len(objs)
        page = [select_fields(o, q.fields) for o in objs[q.offset:q.offset + q.limit]]
        return _json({COLLECTIONS[obj_type]: page}, headers={"X-Total-Count": str(total), "Link": self.links(request, q, total)})

    def wire(self, tenant: str, rows: list[Stored], version: str) -> list[dict[str, Any]]:
        """``to_wire`` of each, with ``metadata["tessera.unresolved"]`` naming the fields whose
        reference is held unresolved (``derived["unresolved"]``, a tolerant CSV import) and
        still names nothing stored, as rostering reads show it (docs/oneroster-references.md).
        Looked up on each read (one query per target type, whatever the number of objects),
        so a target stored since shows as resolved; a page holding nothing costs nothing more."""
        stored = self.stored_now(tenant, [h for s in rows for h in s.derived.get("unresolved") or ()])
        out = []
        for s in rows:
            obj = to_wire(s, version=version)
            held = s.derived.get("unresolved")
            if held:
                fields = [h["field"] for h in held if (h["type"], h["sourcedId"]) not in stored]
                sent = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
                meta = {k: v for k, v in sent.items() if k != UNRESOLVED_METADATA}  # only Tessera says it
                if fields:
                    obj["metadata"] = {**meta, UNRESOLVED_METADATA: list(dict.fromkeys(fields))}
                elif UNRESOLVED_METADATA in sent:
                    obj["metadata"] = meta or None
            out.append(obj)
        return out

    def stored_now(self, tenant: str, held: list[dict[str, str]]) -> set[tuple[str, str]]:
        """(type, sourcedId) of the held targets stored now (active, for gradebook objects)."""
        by_type: dict[str, set[str]] = {}
        for h in held:
            by_type.setdefault(h["type"], set()).add(h["sourcedId"])
        found: set[tuple[str, str]] = set()
        for target, sids in by_type.items():
            if target in ROSTER_REFS:
                got: Iterable[str] = find_roster(self.ctx.store.engine, tenant, ROSTER_REFS[target], sorted(sids))
            else:
                got = [sid for sid, o in self.objects.get(tenant, target, sorted(sids)).items() if o.data.get("status") == "active"]
            found.update((target, sid) for sid in got)
        return found

    def one(self, tenant: str, obj_type: str, sid: str) -> Stored:
        got = self.objects.get(tenant, obj_type, [sid]).get(sid)
        if got is None:
            raise UnknownObject(f"no {obj_type} with sourcedId {sid!r}")
        return got


def _sort_key(v: Any) -> tuple[int, Any]:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, v)
    if isinstance(v, (dict, list)):
        return (1, orjson.dumps(v).decode().casefold())
    return (1, str(v).casefold())


def roster_exists(ctx: AppContext, tenant: str, kind: str, sid: str, what: str) -> uuid.UUID:
    """The canonical id of the rostering object in a path, or 404 unknownobject."""
    found = find_roster(ctx.store.engine, tenant, kind, [sid])
    if sid not in found:
        raise UnknownObject(f"{what} {sid!r} not found")
    return found[sid]


async def _body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise InvalidData(f"the request body is not JSON: {exc}") from None


def build_router(ctx: AppContext) -> APIRouter:
    register()
    router = APIRouter(tags=["oneroster-gradebook"])
    lister = Lister(ctx)

    def auth(version: str) -> tuple[Any, ...]:
        """The read, write and delete dependencies of one version's routes."""
        return tuple(Depends(require(ctx, version, *s)) for s in (READ, WRITE, DELETE))

    def route(path: str, endpoint: Callable[..., Any], methods: list[str], name: str, status: int | None = None) -> None:
        router.add_api_route(path, endpoint, methods=methods, name=name, status_code=status)

    def write_one(principal: Principal, obj_type: str, obj: Any, version: str, where: str, sid: str | None = None) -> bool:
        """Validate and store one object; True when it was created."""
        if not isinstance(obj, dict):
            raise InvalidData(f"{where}: expected a {obj_type} object")
        if sid is not None:
            if obj.get("sourcedId") not in (None, sid):
                raise InvalidData(f"the body's sourcedId {obj.get('sourcedId')!r} is not the path's {sid!r}")
            obj = {**obj, "sourcedId": sid}
        plan = put_objects(ctx.store, principal.tenant, REST_SOURCE, [Item(obj_type, obj, where)], version=version)
        return plan.outcome.get((obj_type, obj["sourcedId"]), False)

    def create_many(principal: Principal, obj_type: str, objs: list[Any], version: str, where: str,
                    fixed: dict[str, Any]) -> Response:
        """1.2 POST: create objects with client-supplied sourcedIds; 201 with sourcedIdPairs."""
        items = []
        for i, o in enumerate(objs):
            if not isinstance(o, dict) or not o.get("sourcedId"):
                raise InvalidData(f"{where}[{i}]: a {obj_type} with its sourcedId is required")
            items.append(Item(obj_type, {**o, **fixed}, f"{where}[{i}]"))
        sids = [it.obj["sourcedId"] for it in items]
        existing = lister.objects.get(principal.tenant, obj_type, sids)
        if existing:
            raise InvalidData(f"{obj_type} {', '.join(sorted(existing))} already exist(s): use PUT to replace")
        put_objects(ctx.store, principal.tenant, REST_SOURCE, items, version=version)
        pairs = [{"suppliedSourcedId": s, "allocatedSourcedId": s} for s in sids]
        return _json({"sourcedIdPairs": pairs[0] if len(pairs) == 1 else pairs}, status=201)

    def add(version: str, prefix: str, types: tuple[str, ...]) -> None:
        read, write, remove = auth(version)
        for obj_type in types:
            coll = COLLECTIONS[obj_type]

            def get_all(request: Request, principal: Principal = read, obj_type: str = obj_type) -> Response:
                return lister.answer(request, principal.tenant, obj_type, version, [])

            def get_one(sourcedId: str, principal: Principal = read, obj_type: str = obj_type) -> Response:
                return _json({obj_type: lister.wire(principal.tenant, [lister.one(principal.tenant, obj_type, sourcedId)], version)[0]})

            async def put_one(sourcedId: str, request: Request, principal: Principal = write, obj_type: str = obj_type) -> Response:
                body = await _body(request)
                obj = body.get(obj_type) if isinstance(body, dict) else None
                if obj is None:
                    raise InvalidData(f"the body must be {{{obj_type!r}: {{...}}}}")
                created = write_one(principal, obj_type, obj, version, f"{COLLECTIONS[obj_type]}/{sourcedId}", sourcedId)
                stored = lister.one(principal.tenant, obj_type, sourcedId)
                return _json({obj_type: to_wire(stored, version=version)}, status=201 if created else 200)

            def delete_one(sourcedId: str, principal: Principal = remove, obj_type: str = obj_type) -> Response:
                stored = lister.one(principal.tenant, obj_type, sourcedId)
                if stored.data.get("status") == "tobedeleted":
                    raise UnknownObject(f"{obj_type} {sourcedId!r} is already deleted")
                put_objects(ctx.store, principal.tenant, stored.source,
                            [Item(obj_type, {**stored.data, "status": "tobedeleted"}, f"{COLLECTIONS[obj_type]}/{sourcedId}")],
                            version=version)
                return Response(status_code=204)

            route(f"{prefix}/{coll}", get_all, ["GET"], f"or{version}_getAll_{coll}")
            route(f"{prefix}/{coll}/{{sourcedId}}", get_one, ["GET"], f"or{version}_get_{obj_type}")
            route(f"{prefix}/{coll}/{{sourcedId}}", put_one, ["PUT"], f"or{version}_put_{obj_type}")
            route(f"{prefix}/{coll}/{{sourcedId}}", delete_one, ["DELETE"], f"or{version}_delete_{obj_type}", 204)
            if version == "1.2":
                async def post_one(request: Request, principal: Principal = write, obj_type: str = obj_type) -> Response:
                    body = await _body(request)
                    obj = body.get(obj_type) if isinstance(body, dict) else None
                    return create_many(principal, obj_type, [obj], version, COLLECTIONS[obj_type], {})

                route(f"{prefix}/{coll}", post_one, ["POST"], f"or{version}_post_{obj_type}", 201)

        nested(version, prefix)

    def nested(version: str, prefix: str) -> None:
        read, write, _ = auth(version)

        def cls(p: Principal, sid: str) -> str:
            roster_exists(ctx, p.tenant, "section", sid, "class")
            return sid

        def class_lists(obj_type: str, col: str) -> Callable[..., Response]:
            def endpoint(classSourcedId: str, request: Request, principal: Principal = read) -> Response:
                return lister.answer(request, principal.tenant, obj_type, version,
                                     [objects.c[col] == cls(principal, classSourcedId)])
            return endpoint

        route(f"{prefix}/classes/{{classSourcedId}}/lineItems", class_lists("lineItem", "class_sid"), ["GET"], f"or{version}_getLineItemsForClass")
        route(f"{prefix}/classes/{{classSourcedId}}/results", class_lists("result", "class_sid"), ["GET"], f"or{version}_getResultsForClass")

        def results_for_line_item_for_class(classSourcedId: str, lineItemSourcedId: str, request: Request, principal: Principal = read) -> Response:
            li = lister.one(principal.tenant, "lineItem", lineItemSourcedId)
            if (li.data.get("class") or {}).get("sourcedId") != cls(principal, classSourcedId):
                raise UnknownObject(f"line item {lineItemSourcedId!r} is not a line item of class {classSourcedId!r}")
            return lister.answer(request, principal.tenant, "result", version, [objects.c.line_item_sid == lineItemSourcedId])

        def results_for_student_for_class(classSourcedId: str, studentSourcedId: str, request: Request, principal: Principal = read) -> Response:
            roster_exists(ctx, principal.tenant, "person", studentSourcedId, "student")
            return lister.answer(request, principal.tenant, "result", version,
                                 [objects.c.class_sid == cls(principal, classSourcedId), objects.c.user_sid == studentSourcedId])

        route(f"{prefix}/classes/{{classSourcedId}}/lineItems/{{lineItemSourcedId}}/results", results_for_line_item_for_class,
              ["GET"], f"or{version}_getResultsForLineItemForClass")
        route(f"{prefix}/classes/{{classSourcedId}}/students/{{studentSourcedId}}/results", results_for_student_for_class,
              ["GET"], f"or{version}_getResultsForStudentForClass")
        if version != "1.2":
            return

        def categories_for_class(classSourcedId: str, request: Request, principal: Principal = read) -> Response:
            used = {(s.data.get("category") or {}).get("sourcedId")
                    for s in lister.objects.where(principal.tenant, "lineItem", objects.c.class_sid == cls(principal, classSourcedId))}
            return lister.answer(request, principal.tenant, "category", version, [objects.c.sourced_id.in_(sorted(x for x in used if x))])

        route(f"{prefix}/classes/{{classSourcedId}}/categories", categories_for_class, ["GET"], "or1.2_getCategoriesForClass")
        route(f"{prefix}/classes/{{classSourcedId}}/scoreScales", class_lists("scoreScale", "class_sid"), ["GET"], "or1.2_getScoreScalesForClass")

        def results_for_line_item(sourcedId: str, request: Request, principal: Principal = read) -> Response:
            lister.one(principal.tenant, "lineItem", sourcedId)
            return lister.answer(request, principal.tenant, "result", version, [objects.c.line_item_sid == sourcedId])

        route(f"{prefix}/lineItems/{{sourcedId}}/results", results_for_line_item, ["GET"], "or1.2_getResultsForLineItem")

        def school_lists(obj_type: str) -> Callable[..., Response]:
            def endpoint(schoolSourcedId: str, request: Request, principal: Principal = read) -> Response:
                roster_exists(ctx, principal.tenant, "org", schoolSourcedId, "school")
                classes = _classes_of_school(ctx, principal.tenant, schoolSourcedId)
                conds = [objects.c.class_sid.in_(classes)] if obj_type == "scoreScale" else \
                    [(objects.c.school_sid == schoolSourcedId) | objects.c.class_sid.in_(classes)]
                return lister.answer(request, principal.tenant, obj_type, version, conds)
            return endpoint

        route(f"{prefix}/schools/{{schoolSourcedId}}/lineItems", school_lists("lineItem"), ["GET"], "or1.2_getLineItemsForSchool")
        route(f"{prefix}/schools/{{schoolSourcedId}}/scoreScales", school_lists("scoreScale"), ["GET"], "or1.2_getScoreScalesForSchool")

        async def post_line_items_for_class(classSourcedId: str, request: Request, principal: Principal = write) -> Response:
            cls(principal, classSourcedId)
            body = await _body(request)
            items = body.get("lineItems") if isinstance(body, dict) else None
            if not isinstance(items, list) or not items:
                raise InvalidData("the body must be {\"lineItems\": [...]}")
            return create_many(principal, "lineItem", items, version, "lineItems", {"class": {"sourcedId": classSourcedId}})

        async def post_results_for_line_item(sourcedId: str, request: Request, principal: Principal = write) -> Response:
            lister.one(principal.tenant, "lineItem", sourcedId)
            body = await _body(request)
            items = body.get("results") if isinstance(body, dict) else None
            if not isinstance(items, list) or not items:
                raise InvalidData("the body must be {\"results\": [...]}")
            return create_many(principal, "result", items, version, "results", {"lineItem": {"sourcedId": sourcedId}})

        def for_session(collection: str, obj_type: str, fixed: Callable[[str, str], dict[str, Any]]) -> Callable[..., Any]:
            async def endpoint(classSourcedId: str, academicSessionSourcedId: str, request: Request, principal: Principal = write) -> Response:
                cls(principal, classSourcedId)
                roster_exists(ctx, principal.tenant, "academic_session", academicSessionSourcedId, "academic session")
                body = await _body(request)
                items = body.get(collection) if isinstance(body, dict) else None
                if not isinstance(items, list) or not items:
                    raise InvalidData(f"the body must be {{{collection!r}: [...]}}")
                return create_many(principal, obj_type, items, version, collection, fixed(classSourcedId, academicSessionSourcedId))
            return endpoint

        route(f"{prefix}/classes/{{classSourcedId}}/lineItems", post_line_items_for_class, ["POST"], "or1.2_postLineItemsForClass", 201)
        route(f"{prefix}/classes/{{classSourcedId}}/academicSessions/{{academicSessionSourcedId}}/lineItems",
              for_session("lineItems", "lineItem", lambda c, a: {"class": {"sourcedId": c}, "academicSession": {"sourcedId": a}}),
              ["POST"], "or1.2_postLineItemsForAcademicSessionForClass", 201)
        route(f"{prefix}/classes/{{classSourcedId}}/academicSessions/{{academicSessionSourcedId}}/results",
              for_session("results", "result", lambda c, a: {"class": {"sourcedId": c}}),
              ["POST"], "or1.2_postResultsForAcademicSessionForClass", 201)
        route(f"{prefix}/lineItems/{{sourcedId}}/results", post_results_for_line_item, ["POST"], "or1.2_postResultsForLineItem", 201)

    add("1.2", PREFIX_V1P2, GRADEBOOK_TYPES)
    add("1.1", PREFIX_V1P1, V11_TYPES)
    return router


def _classes_of_school(ctx: AppContext, tenant: str, school_sid: str) -> list[str]:
    """The sourcedIds of the classes of the school ``school_sid``."""
    return ctx.store.roster.native_ids_of(RosterQuery(tenant, "section", (RefersTo("org_id", "org", school_sid),)))


__all__ = ["GRADEBOOK_TYPES", "PREFIX_V1P1", "PREFIX_V1P2", "Lister", "build_router", "roster_exists"]
