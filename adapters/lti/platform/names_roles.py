"""LTI Names and Role Provisioning Services 2.0, platform side: a context's memberships,
read from the canonical roster (Section -> Enrollments -> People).

NRPS 2.0 rules applied here: the container (media type
``application/vnd.ims.lti-nrps.v2.membershipcontainer+json``) has ``id``, ``context`` and
``members``; each member has ``user_id`` (the same ``sub`` the id_token carries: the
canonical Person id), ``roles`` (LIS URIs from mappings/lti-roles.yaml), ``status``
(Active / Inactive / Deleted) and, as the platform's privacy settings allow, names,
email and ``lis_person_sourcedid``; ``role`` filters by a role URI; ``limit`` pages, and
the next page is announced with ``Link: <...>; rel="next"`` (section 2.4.2).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from gateway.api.context import AppContext
from gateway.errors import ErrorDetail, ValidationError
from gateway.model import Person

from ..claims import SCOPE_CONTEXT_MEMBERSHIP
from ..roles import canonical_role, lis_roles
from .common import platform_issuer

MEMBERSHIP_CONTAINER = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
MAX_LIMIT = 1000


def _status(enrollment: dict[str, Any]) -> str:
    if enrollment.get("status") == "tobedeleted":
        return "Deleted"
    end = enrollment.get("end_date")
    if end and date.fromisoformat(end) < date.today():
        return "Inactive"
    return "Active"


def _member(person: Person, enrollment: dict[str, Any]) -> dict[str, Any]:
    sourced = next((i.value for i in person.identifiers if i.kind == "oneroster.sourcedId"), person.native_id)
    member: dict[str, Any] = {
        "status": _status(enrollment),
        "user_id": str(person.id),
        "roles": lis_roles(enrollment["role"]),
        "name": f"{person.given_name} {person.family_name}",
        "given_name": person.given_name,
        "family_name": person.family_name,
        "lis_person_sourcedid": sourced,
    }
    if person.email:
        member["email"] = person.email
    return member


def memberships(ctx: AppContext, tenant: str, context_id: uuid.UUID, *, role: str | None, limit: int, cursor: str | None) -> tuple[dict[str, Any], str | None]:
    """One page of the context's memberships and the cursor of the next page."""
    section = orjson.loads(ctx.store.records.get_json(tenant, "section", context_id))
    filters: dict[str, Any] = {"section_id": context_id}
    if role:
        filters["role"] = canonical_role(role)
    page = ctx.store.records.page(tenant, "enrollment", limit=limit, cursor=cursor, filters=filters)
    enrollments = [orjson.loads(doc) for doc in page.items]
    people = ctx.store.memberships.people(tenant, {uuid.UUID(e["person_id"]) for e in enrollments})
    members = [_member(people[uuid.UUID(e["person_id"])], e) for e in enrollments if uuid.UUID(e["person_id"]) in people]
    context = {"id": str(context_id), "title": section["title"], "label": section.get("code") or section["title"]}
    return {"context": context, "members": members}, page.next_cursor


def build_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(tags=["lti nrps"])
    read = ctx.require(SCOPE_CONTEXT_MEMBERSHIP)

    @router.get("/lti/platform/nrps/contexts/{context_id}/memberships", summary="NRPS 2.0 membership container")
    async def get_memberships(context_id: uuid.UUID, request: Request) -> Response:
        principal = await read(request)
        q = request.query_params
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationError("bad paging", errors=[ErrorDetail(f"limit must be an integer 1..{MAX_LIMIT}", location="query", field="limit")])
        body, nxt = await run_in_threadpool(
            lambda: memberships(ctx, principal.tenant, context_id, role=q.get("role"), limit=limit, cursor=q.get("cursor"))
        )
        url = f"{platform_issuer(ctx, request)}/lti/platform/nrps/contexts/{context_id}/memberships"
        headers = {}
        if nxt is not None:
            params = {k: v for k, v in q.items() if k != "cursor"}
            headers["Link"] = f'<{request.url.replace_query_params(**params, cursor=nxt)}>; rel="next"'
        return Response(orjson.dumps({"id": url, **body}), media_type=MEMBERSHIP_CONTAINER, headers=headers)

    return router
