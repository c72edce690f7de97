"""LTI Names and Role Provisioning Services 2.0, tool side: the platform's roster, canonical.

A context's membership (NRPS 2.0 section 2) is fetched page by page, following the
``Link: <...>; rel="next"`` header (2.4.2), with the membership container media type and
the ``contextmembership.readonly`` scope. Each member becomes the same records a launch
makes (``roster.person_records`` / ``enrollment_records``): the roster's Person when the member's
``lis_person_sourcedid`` finds it, else the platform's own Person keyed by ``user_id`` (the
launches' ``sub``), and an Enrollment in the context's Section with the member's role.
Members whose ``status`` is Inactive or Deleted (2.3.1) keep their enrollment, marked
``tobedeleted``. The whole membership is applied in one transaction: all or nothing.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Depends

from gateway.auth import Principal
from gateway.errors import UpstreamError, ValidationError
from gateway.model import Record
from gateway.store import ApplyResult

from ..claims import C_NRPS
from ..claims import SCOPE_CONTEXT_MEMBERSHIP as SCOPE
from .contexts import launch_context
from .message_launch import Launch
from .platforms import Platform
from .roster import enrollment_records, person_records, section_records
from .service_auth import ServiceAuth

if TYPE_CHECKING:
    from gateway.api.context import AppContext

MEMBERSHIPS = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
MAX_PAGES = 1000


def memberships_url(launch: Launch) -> str:
    """NRPS 3.6.1.1: the launch's names and role service claim."""
    url = launch.claim(C_NRPS).get("context_memberships_url")
    if not isinstance(url, str) or not url:
        raise ValidationError("the launch carries no names and role service claim (context_memberships_url)")
    return url


class NrpsClient:
    def __init__(self, ctx: AppContext, auth: ServiceAuth) -> None:
        self.ctx, self.auth = ctx, auth

    def pages(self, platform: Platform, url: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The context and every member, across pages."""
        context: dict[str, Any] = {}
        members: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            r = self.auth.request(platform, [SCOPE], "GET", url, headers={"Accept": MEMBERSHIPS})
            if r.status_code != 200:
                raise UpstreamError(f"the platform's membership service answered HTTP {r.status_code}")
            try:
                doc = orjson.loads(r.content)
            except orjson.JSONDecodeError:
                raise UpstreamError("the platform's membership service did not answer JSON") from None
            if not isinstance(doc, dict) or not isinstance(doc.get("members"), list):
                raise UpstreamError("the membership container has no members array (NRPS 2.3)")
            context = doc.get("context") if isinstance(doc.get("context"), dict) else context
            members.extend(m for m in doc["members"] if isinstance(m, dict))
            nxt = r.links.get("next", {}).get("url")
            if not nxt:
                return context, members
            url = nxt
        raise UpstreamError(f"the membership container has more than {MAX_PAGES} pages")

    def records(self, platform: Platform, context: dict[str, Any], members: list[dict[str, Any]]) -> list[Record]:
        section, records = section_records(self.ctx, platform, None, context)
        if section is None:
            raise UpstreamError("the membership container names no context id (NRPS 2.3)")
        seen: set[Any] = set()
        for m in members:
            sub = m.get("user_id")
            if not isinstance(sub, str) or not sub:
                raise UpstreamError("a member has no user_id (NRPS 2.3.1)")
            person, made = person_records(self.ctx, platform, sub, m, m.get("lis_person_sourcedid"))
            if person.id not in seen:
                seen.add(person.id)
                records.extend(made)
            roles = [r for r in m.get("roles", []) if isinstance(r, str)]
            records.extend(enrollment_records(self.ctx, platform, person, section, sub, roles, active=m.get("status", "Active") == "Active"))
        return records

    def sync(self, platform: Platform, url: str) -> ApplyResult:
        """Pull the whole membership and apply it in one transaction."""
        context, members = self.pages(platform, url)
        return self.ctx.store.records.apply(platform.tenant, self.records(platform, context, members))


def build_router(ctx: AppContext, auth: ServiceAuth) -> APIRouter:
    router = APIRouter(tags=["lti"])
    admin = Depends(ctx.require("admin"))

    @router.post("/v1/lti/platforms/{platform_id}/contexts/{context_id}/roster-sync",
                 summary="Pull a course's membership from the LMS (LTI NRPS) into people and enrollments")
    def roster_sync(platform_id: uuid.UUID, context_id: str, principal: Principal = admin) -> dict[str, Any]:
        lc = launch_context(ctx, principal.tenant, platform_id, context_id)
        if not lc.nrps_url:
            raise ValidationError("the platform offered no names and role service in this context")
        return NrpsClient(ctx, auth).sync(lc.platform, lc.nrps_url).as_dict()

    return router


__all__ = ["MEMBERSHIPS", "SCOPE", "NrpsClient", "build_router", "memberships_url"]
