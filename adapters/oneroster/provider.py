"""The OneRoster rostering provider API: ``/ims/oneroster/rostering/v1p2/...`` (OneRoster 1.2
Rostering Service REST/JSON binding) and the same reads under ``/ims/oneroster/v1p1/...``
(OneRoster 1.1 REST binding).

Thin: check the request (``query.parse_list_query``), authorise, ask the store's roster
queries (``store.roster``, through ``query.collection``) for the page, rebuild OneRoster JSON
with ``to_wire.to_wire``, answer with the binding's
envelope (``{"users": [...]}``, ``{"user": {...}}``), ``X-Total-Count`` and a ``Link`` header
(first/last/next/prev). Errors on these paths are imsx_StatusInfo (``status_info``).

Spec choices, written down:

* sourcedId is the record's native id; a sourcedId of another tenant, or of an object of
  another type (a district under ``/schools/{id}``, a teacher under ``/students/{id}``), is
  404 unknownobject.
* ``schools`` are orgs of type school; ``terms`` and ``gradingPeriods`` are academic sessions
  of those types; ``students`` and ``teachers`` are users whose PRIMARY role is student /
  teacher (the indexed ``people.primary_role``). ``schools/{id}/students`` are students
  with a role at that school; ``classes/{id}/students`` are users enrolled in the class as
  students; ``users/{id}/classes`` are the classes the user is enrolled in (any role).
* Scopes (1.2 binding, Security): rostering reads need ``roster-core.readonly`` or
  ``roster.readonly``; ``demographics`` needs ``roster-demographics.readonly`` (implied by
  ``roster.readonly``). The full URI scope form is folded by ``gateway.auth.scopes``.
* User passwords (``credentials``): a user object carries its ``password``, credential
  ``metadata`` and ``userProfiles`` passwords only for a token granted
  ``roster-credentials.readonly`` (Tessera's own scope; no OneRoster scope implies it), and
  only those an import kept sealed. No filter or sort reaches them (``query``).
* 1.1: the same collections with 1.1 objects (``role``/``orgs`` on users, string
  booleans). 1.1 requires OAuth 1.0a request signing: the 1.1 routes accept a signed request
  (``oauth1_auth``) or a bearer token of Tessera's OAuth 2.0 token endpoint; 1.2 takes tokens only.
"""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from gateway.auth import Principal
from gateway.model import RECORD_TYPES
from gateway.store.roster import (
    Compare,
    Condition,
    EnrollmentAtOrg,
    PersonEnrolledIn,
    PersonWithDemographics,
    PersonWithRoleAt,
    RosterQueries,
    SectionEnrolling,
    SectionInSession,
    SessionOfOrg,
)

from .credentials import SCOPE as CREDENTIALS_SCOPE
from .credentials import CredentialVault, reveal
from .demographics import demographics_to_wire
from .oauth1_auth import require, unsigned
from .query import ListQuery, collection, page_links, parse_list_query
from .status_info import UnknownObject, register
from .to_wire import to_wire
from .values import format_datetime

if TYPE_CHECKING:
    from gateway.api.context import AppContext

PREFIX_V1P2 = "/ims/oneroster/rostering/v1p2"
PREFIX_V1P1 = "/ims/oneroster/v1p1"
CORE_SCOPES = ("roster-core.readonly", "roster.readonly")
DEMOGRAPHICS_SCOPES = ("roster-demographics.readonly", "roster.readonly")

#: wire type -> (canonical kind, collection envelope, single-object envelope)
TYPES: dict[str, tuple[str, str, str]] = {
    "org": ("org", "orgs", "org"),
    "academicSession": ("academic_session", "academicSessions", "academicSession"),
    "course": ("course", "courses", "course"),
    "class": ("section", "classes", "class"),
    "user": ("person", "users", "user"),
    "enrollment": ("enrollment", "enrollments", "enrollment"),
    "demographics": ("person", "demographics", "demographics"),
}


@dataclass(frozen=True)
class Subset:
    """A named subset of a type (``schools`` of orgs, ``students`` of users): a column's value."""

    wire_type: str
    column: str | None = None
    value: str | None = None

    def where(self) -> list[Compare]:
        if self.column is None:
            return []
        return [Compare(self.column, "=", self.value)]


#: path segment -> the subset it serves
COLLECTIONS: dict[str, Subset] = {
    "orgs": Subset("org"),
    "schools": Subset("org", "type", "school"),
    "academicSessions": Subset("academicSession"),
    "terms": Subset("academicSession", "type", "term"),
    "gradingPeriods": Subset("academicSession", "type", "grading_period"),
    "courses": Subset("course"),
    "classes": Subset("class"),
    "users": Subset("user"),
    "students": Subset("user", "primary_role", "student"),
    "teachers": Subset("user", "primary_role", "teacher"),
    "enrollments": Subset("enrollment"),
}


def _json(obj: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(obj), media_type="application/json", headers=headers)


class WireWriter:
    """Canonical JSON rows -> OneRoster objects, resolving every referenced sourcedId with one
    small query per referenced kind and page (not one per reference)."""

    def __init__(self, roster: RosterQueries, tenant: str, kind: str, version: str, *, demographics: bool = False,
                 vault: CredentialVault | None = None) -> None:
        self.roster, self.tenant, self.kind, self.version, self.demographics = roster, tenant, kind, version, demographics
        self.cls = RECORD_TYPES[kind]
        #: the caller may read users' sealed credentials (``credentials``): ``reveal`` adds them
        self.vault = vault if kind == "person" and not demographics else None
        self.ids: dict[str, uuid.UUID] = {}

    def __call__(self, rows: list[str]) -> list[dict[str, Any]]:
        records = [self.cls.model_validate_json(r) for r in rows]
        if self.demographics:
            return [d for d in (rest_demographics(r, self.version) for r in records) if d is not None]  # type: ignore[arg-type]
        known = self.roster.referenced_native_ids(self.tenant, self.kind, records)

        def sourced_id(k: str, rid: uuid.UUID) -> str | None:
            key = (k, rid)
            if key not in known:  # a reference the store does not list for the kind: look it up alone
                known[key] = self.roster.native_ids(self.tenant, k, [rid]).get(rid)
            return known[key]

        if self.vault is not None:
            self.ids.update((r.native_id, r.id) for r in records if r.id)
        return [to_wire(r, version=self.version, sourced_id=sourced_id) for r in records]

    def reveal(self, objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The page's users with their sealed credentials (for a caller holding the scope)."""
        if self.vault is None or not objs:
            return objs
        secrets = self.vault.read(self.tenant, [self.ids[o["sourcedId"]] for o in objs if o.get("sourcedId") in self.ids])
        return [reveal(o, secrets.get(self.ids.get(o.get("sourcedId", ""), uuid.UUID(int=0)), {})) for o in objs]


def rest_demographics(person: Any, version: str) -> dict[str, Any] | None:
    """A demographics object as the REST binding answers it: status and dateLastModified are
    required of every 1.2 object, so where the source sent none (a bulk CSV leaves them
    empty) they are the user record's."""
    d = demographics_to_wire(person, version=version)
    if d is not None:
        d.setdefault("status", person.status.value)
        d.setdefault("dateLastModified", format_datetime(person.updated_at or person.source_updated_at))
    return d


def build_router(adapter: Any, ctx: AppContext) -> APIRouter:
    """The rostering read endpoints of OneRoster 1.2 (and 1.1) for ``OneRosterAdapter.routers``."""
    register()
    router = APIRouter(tags=["oneroster"])
    roster = ctx.store.roster
    vault = CredentialVault(ctx.store.engine)

    def vault_for(principal: Principal) -> CredentialVault | None:
        """The sealed credentials, for a caller granted ``roster-credentials.readonly`` by name."""
        return vault if principal.has(CREDENTIALS_SCOPE) else None

    def site(request: Request) -> str:
        return ctx.settings.public_url.rstrip("/") if ctx.settings.public_url else str(request.base_url).rstrip("/")

    def links(request: Request, q: ListQuery, total: int) -> str:
        return page_links(site(request), request.url.path, unsigned(request.query_params), q, total)

    def one(tenant: str, subset: Subset, sid: str, what: str) -> uuid.UUID:
        """The id of the object ``sid`` of a subset, or 404 unknownobject."""
        found = roster.find(tenant, TYPES[subset.wire_type][0], sid, where=subset.where())
        if found is None:
            raise UnknownObject(f"no {what} with sourcedId {sid!r}")
        return found[0]

    def listing(request: Request, principal: Principal, version: str, wire_type: str, scope: Sequence[Condition], *,
                demographics: bool = False) -> Response:
        kind, envelope, _ = TYPES[wire_type]
        q = parse_list_query(request.query_params, wire_type, max_limit=ctx.settings.page_size_max, version=version)
        # demographics' dateLastModified is the source's, kept in the record: Python compares it
        q.python_only = demographics
        writer = WireWriter(roster, principal.tenant, kind, version, demographics=demographics, vault=vault_for(principal))
        total, items = collection(roster, principal.tenant, kind, q, scope, writer, writer.reveal)
        return _json({envelope: items}, {"X-Total-Count": str(total), "Link": links(request, q, total)})

    def add(version: str, prefix: str) -> None:
        core = Depends(require(ctx, version, *CORE_SCOPES))
        demo = Depends(require(ctx, version, *DEMOGRAPHICS_SCOPES))

        def route(path: str, endpoint: Callable[..., Response], summary: str) -> None:
            router.add_api_route(prefix + path, endpoint, methods=["GET"], summary=summary,
                                 name=f"oneroster_{version}_{path}".replace("/", "_").replace("{", "").replace("}", ""))

        # --- collections and single objects -------------------------------------------------
        def collection_routes(segment: str, subset: Subset) -> None:
            kind, _, single = TYPES[subset.wire_type]

            def get_all(request: Request, principal: Principal = core) -> Response:
                return listing(request, principal, version, subset.wire_type, [*subset.where()])

            def get_one(sourcedId: str, principal: Principal = core) -> Response:
                found = roster.find(principal.tenant, kind, sourcedId, where=subset.where())
                if found is None:
                    raise UnknownObject(f"no {segment[:-1]} with sourcedId {sourcedId!r}")
                writer = WireWriter(roster, principal.tenant, kind, version, vault=vault_for(principal))
                return _json({single: writer.reveal(writer([found[1]]))[0]})

            route(f"/{segment}", get_all, f"getAll{segment[0].upper()}{segment[1:]}")
            route(f"/{segment}/{{sourcedId}}", get_one, f"get{subset.wire_type[0].upper()}{subset.wire_type[1:]} ({segment})")

        for segment, subset in COLLECTIONS.items():
            collection_routes(segment, subset)

        # --- nested collections -----------------------------------------------------------------
        def nested(path: str, wire_type: str, summary: str, make: Callable[[Principal, dict[str, str]], Sequence[Condition]]) -> None:
            def endpoint(request: Request, principal: Principal = core, **ids: str) -> Response:
                return listing(request, principal, version, wire_type, make(principal, ids))

            # the path's sourcedIds as declared parameters, so OpenAPI lists them
            base = [p for p in inspect.signature(endpoint).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
            names = re.findall(r"{(\w+)}", path)
            endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
                [*base, *(inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=str) for n in names)])
            route(path, endpoint, summary)

        school = COLLECTIONS["schools"]
        nested("/schools/{schoolSourcedId}/classes", "class", "getClassesForSchool",
               lambda p, a: [Compare("org_id", "=", one(p.tenant, school, a["schoolSourcedId"], "school"))])
        nested("/schools/{schoolSourcedId}/courses", "course", "getCoursesForSchool",
               lambda p, a: [Compare("org_id", "=", one(p.tenant, school, a["schoolSourcedId"], "school"))])
        nested("/schools/{schoolSourcedId}/enrollments", "enrollment", "getEnrollmentsForSchool",
               lambda p, a: [EnrollmentAtOrg(one(p.tenant, school, a["schoolSourcedId"], "school"))])
        def class_in_school(p: Principal, a: dict[str, str]) -> uuid.UUID:
            """The class of the path, which must be a class of the path's school (else 404)."""
            sid = one(p.tenant, school, a["schoolSourcedId"], "school")
            cid = one(p.tenant, COLLECTIONS["classes"], a["classSourcedId"], "class")
            if roster.find(p.tenant, "section", a["classSourcedId"], where=[Compare("id", "=", cid), Compare("org_id", "=", sid)]) is None:
                raise UnknownObject(f"class {a['classSourcedId']!r} is not a class of school {a['schoolSourcedId']!r}")
            return cid

        nested("/schools/{schoolSourcedId}/classes/{classSourcedId}/enrollments", "enrollment", "getEnrollmentsForClassInSchool",
               lambda p, a: [Compare("section_id", "=", class_in_school(p, a))])
        for role, plural in (("student", "students"), ("teacher", "teachers")):
            def of_school(p: Principal, a: dict[str, str], role: str = role) -> list[Condition]:
                return [Compare("primary_role", "=", role), PersonWithRoleAt(one(p.tenant, school, a["schoolSourcedId"], "school"), role)]

            nested(f"/schools/{{schoolSourcedId}}/{plural}", "user", f"get{plural.title()}ForSchool", of_school)
            nested(f"/classes/{{classSourcedId}}/{plural}", "user", f"get{plural.title()}ForClass",
                   lambda p, a, role=role: [PersonEnrolledIn(one(p.tenant, COLLECTIONS["classes"], a["classSourcedId"], "class"), role)])

            def in_school(p: Principal, a: dict[str, str], role: str = role) -> list[Condition]:
                return [PersonEnrolledIn(class_in_school(p, a), role)]

            nested(f"/schools/{{schoolSourcedId}}/classes/{{classSourcedId}}/{plural}", "user", f"get{plural.title()}ForClassInSchool", in_school)
        nested("/courses/{courseSourcedId}/classes", "class", "getClassesForCourse",
               lambda p, a: [Compare("course_id", "=", one(p.tenant, COLLECTIONS["courses"], a["courseSourcedId"], "course"))])
        for segment in ("users", "students", "teachers"):
            nested(f"/{segment}/{{userSourcedId}}/classes", "class", f"getClassesFor{segment[:-1].title()}",
                   lambda p, a, segment=segment: [SectionEnrolling(one(p.tenant, COLLECTIONS[segment], a["userSourcedId"], segment[:-1]))])

        def term_classes(p: Principal, a: dict[str, str]) -> list[Condition]:
            return [SectionInSession(one(p.tenant, COLLECTIONS["terms"], a["termSourcedId"], "term"))]

        nested("/terms/{termSourcedId}/classes", "class", "getClassesForTerm", term_classes)

        def school_terms(p: Principal, a: dict[str, str]) -> list[Condition]:
            return [Compare("type", "=", "term"), SessionOfOrg(one(p.tenant, school, a["schoolSourcedId"], "school"))]

        nested("/schools/{schoolSourcedId}/terms", "academicSession", "getTermsForSchool", school_terms)

        def term_periods(p: Principal, a: dict[str, str]) -> list[Condition]:
            tid = one(p.tenant, COLLECTIONS["terms"], a["termSourcedId"], "term")
            return [Compare("type", "=", "grading_period"), Compare("parent_id", "=", tid)]

        nested("/terms/{termSourcedId}/gradingPeriods", "academicSession", "getGradingPeriodsForTerm", term_periods)

        # --- demographics (1.2: roster-demographics.readonly; 1.1 has the same two reads) --------
        def get_all_demographics(request: Request, principal: Principal = demo) -> Response:
            return listing(request, principal, version, "demographics", [PersonWithDemographics()], demographics=True)

        def get_demographics(sourcedId: str, principal: Principal = demo) -> Response:
            found = roster.find(principal.tenant, "person", sourcedId)
            obj = WireWriter(roster, principal.tenant, "person", version, demographics=True)([found[1]]) if found else []
            if not obj:
                raise UnknownObject(f"no demographics with sourcedId {sourcedId!r}")
            return _json({"demographics": obj[0]})

        route("/demographics", get_all_demographics, "getAllDemographics")
        route("/demographics/{sourcedId}", get_demographics, "getDemographics")

    add("1.2", PREFIX_V1P2)
    add("1.1", PREFIX_V1P1)
    return router


__all__ = ["COLLECTIONS", "CORE_SCOPES", "DEMOGRAPHICS_SCOPES", "PREFIX_V1P1", "PREFIX_V1P2", "TYPES", "WireWriter", "build_router"]
