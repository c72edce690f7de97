"""The OneRoster Resources service: ``/ims/oneroster/resources/v1p2/...`` (OneRoster 1.2
Resources Service REST/JSON binding) and the resource reads of the 1.1 REST binding under
``/ims/oneroster/v1p1/...``.

Resources are kept with the gradebook objects (``tables.objects``), as are the links that
give a class, a course or a user its resources (the CSV binding's classResources.csv,
courseResources.csv and 1.2 userResources.csv). ``classes/{id}/resources`` lists the
resources of the class's ACTIVE links; an unknown class / course / user is 404
unknownobject. Every read needs the scope ``resource.readonly`` (on 1.1, from a bearer token
or an OAuth 1.0a signed request, ``oauth1_auth``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from gateway.auth import Principal

from .gradebook.wire import to_wire
from .gradebook_provider import Lister, _json, roster_exists
from .oauth1_auth import require
from .status_info import UnknownObject, register
from .tables import objects

if TYPE_CHECKING:
    from gateway.api.context import AppContext

PREFIX_V1P2 = "/ims/oneroster/resources/v1p2"
PREFIX_V1P1 = "/ims/oneroster/v1p1"
SCOPES = ("resource.readonly",)
#: path segment -> (link type, its column, canonical kind of the owner, what to call it)
OWNERS = {
    "classes": ("classResource", "class_sid", "section", "class"),
    "courses": ("courseResource", "course_sid", "course", "course"),
    "users": ("userResource", "user_sid", "person", "user"),
}


def build_router(ctx: AppContext) -> APIRouter:
    register()
    router = APIRouter(tags=["oneroster-resources"])
    lister = Lister(ctx)

    def add(version: str, prefix: str) -> None:
        read = Depends(require(ctx, version, *SCOPES))

        def get_all(request: Request, principal: Principal = read) -> Response:
            return lister.answer(request, principal.tenant, "resource", version, [])

        def get_one(sourcedId: str, principal: Principal = read) -> Response:
            return _json({"resource": to_wire(lister.one(principal.tenant, "resource", sourcedId), version=version)})

        router.add_api_route(f"{prefix}/resources", get_all, methods=["GET"], name=f"or{version}_getAllResources")
        router.add_api_route(f"{prefix}/resources/{{sourcedId}}", get_one, methods=["GET"], name=f"or{version}_getResource")
        for segment, (link, col, kind, what) in OWNERS.items():
            if version == "1.1" and segment == "users":
                continue  # 1.1 has no user resources

            def for_owner(sourcedId: str, request: Request, principal: Principal = read,
                          link: str = link, col: str = col, kind: str = kind, what: str = what) -> Response:
                roster_exists(ctx, principal.tenant, kind, sourcedId, what)
                linked = {s.data["resource"]["sourcedId"] for s in lister.objects.where(principal.tenant, link, objects.c[col] == sourcedId)
                          if s.data.get("status") == "active"}
                return lister.answer(request, principal.tenant, "resource", version, [objects.c.sourced_id.in_(sorted(linked))])

            router.add_api_route(f"{prefix}/{segment}/{{sourcedId}}/resources", for_owner, methods=["GET"],
                                 name=f"or{version}_getResourcesFor{what.title()}")

    add("1.2", PREFIX_V1P2)
    add("1.1", PREFIX_V1P1)
    return router


__all__ = ["PREFIX_V1P1", "PREFIX_V1P2", "SCOPES", "UnknownObject", "build_router"]
