"""The integrator dashboard, ``/console/admin`` (administrators only; anyone else gets the
403 page): an overview of what needs attention, the imports and their errors, the
tenant's OAuth clients and LRS credentials (create, with the secret shown once; revoke,
after a confirmation), routing (connections and their health, routes and their last run,
the dead-letter queue with replay and discard), and evidence no standard is linked to yet,
with a form to align its activity to a competency.

Every change is a POST carrying the CSRF token (``Console.form``). An admin sees only their
own tenant: every read takes ``viewer.tenant``, and another tenant's ids are not found.
What is read and written lives in ``admin_data``; this module is the pages and the forms.

The secret of a new credential is in the answer to the POST that made it, and nowhere
else: not in a URL, a later page, or a log line (only its hash is stored).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..auth.scopes import SCOPES
from ..errors import NotFound
from . import admin_data as data
from .access import parse_id
from .web import PREFIX, Console, Viewer

ADMIN = f"{PREFIX}/admin"
SECTIONS = [("Overview", ADMIN), ("Imports", f"{ADMIN}/imports"), ("Keys and passwords", f"{ADMIN}/credentials"),
            ("Connections", f"{ADMIN}/routing"), ("Unlinked evidence", f"{ADMIN}/unaligned")]
KINDS = {"oauth": "API client (OAuth 2.0)", "lrs": "LRS credentials (xAPI, HTTP Basic)"}
IMPORTS_PAGE = 50
_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")


def lrs_scopes(request: Request) -> frozenset[str]:
    """The scopes the xAPI adapter declares (the adapter protocol's ``scopes``, found through
    the app's wiring; none when no xAPI adapter is installed)."""
    wiring = getattr(request.app.state, "wiring", None)
    for adapter in wiring or ():
        if adapter.name == "xapi":
            return frozenset(getattr(adapter, "scopes", None) or {})
    return frozenset()


def scope_choices(kind: str, lrs: frozenset[str]) -> list[tuple[str, str]]:
    """(scope, what it allows) offered for a kind of credential."""
    names = sorted(lrs) if kind == "lrs" else sorted(s for s in SCOPES if s not in lrs)
    return [(s, SCOPES.get(s, "")) for s in names]


def when(value: Any) -> str:
    """A time as people read it: ``2026-12-06 23:06 UTC`` (from a datetime or an ISO string)."""
    if not value:
        return "—"
    if isinstance(value, datetime):
        value = value.isoformat()
    text = str(value).replace("T", " ")
    return f"{text[:16]} UTC" if len(text) >= 16 and text[4] == "-" else text


def build(console: Console) -> APIRouter:
    router = APIRouter(prefix=ADMIN, include_in_schema=False)
    store = console.ctx.store
    console.templates.filters["admin_when"] = when

    async def admin(request: Request, viewer: Viewer = Depends(console.signed_in)) -> Viewer:
        console.access.admin(viewer)
        return viewer

    need = Depends(admin)

    def page(request: Request, template: str, title: str, status: int = 200, **context: Any) -> Response:
        return console.render(request, template, status=status, title=title, sections=SECTIONS, **context)

    def back(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})

    # --- overview ---------------------------------------------------------------------------------

    @router.get("")
    def overview(request: Request, viewer: Viewer = need) -> Response:
        ov = data.overview(store, viewer.tenant, lrs_scopes(request))
        return page(request, "admin.html", "Integrations", overview=ov, tenant=data.tenant_info(store, viewer.tenant))

    # --- imports ----------------------------------------------------------------------------------

    @router.get("/imports")
    def imports(request: Request, viewer: Viewer = need) -> Response:
        before = None
        try:
            before = datetime.fromisoformat(request.query_params.get("before", "")) if request.query_params.get("before") else None
        except ValueError:
            raise NotFound("no such page of imports") from None
        if before is not None and before.tzinfo is None:
            raise NotFound("no such page of imports")
        runs = data.imports(store, viewer.tenant, limit=IMPORTS_PAGE + 1, before=before)
        older = runs[IMPORTS_PAGE - 1]["started"].isoformat() if len(runs) > IMPORTS_PAGE else None
        return page(request, "admin_imports.html", "Imports and their errors", runs=runs[:IMPORTS_PAGE], older=older,
                    paged=before is not None)

    # --- credentials ------------------------------------------------------------------------------

    @router.get("/credentials")
    def credentials(request: Request, viewer: Viewer = need) -> Response:
        lrs = lrs_scopes(request)
        clients = data.list_clients(store, viewer.tenant)
        revoked = request.query_params.get("revoked")
        return page(request, "admin_credentials.html", "Keys and passwords", tenant=data.tenant_info(store, viewer.tenant),
                    oauth=[c for c in clients if not data.is_lrs(c, lrs)], lrs=[c for c in clients if data.is_lrs(c, lrs)],
                    has_lrs=bool(lrs), revoked=revoked if revoked and any(c.client_id == revoked for c in clients) else None)

    def new_form(request: Request, kind: str, *, values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                 status: int = 200) -> Response:
        lrs = lrs_scopes(request)
        values = values if values is not None else ({"scope.xapi/all": "on"} if kind == "lrs" else {})
        return page(request, "admin_credential_new.html", f"New {KINDS[kind]}", status=status, kind=kind, kind_label=KINDS[kind],
                    choices=scope_choices(kind, lrs), values=values, errors=errors or {})

    @router.get("/credentials/new")
    def new_credential(request: Request, viewer: Viewer = need) -> Response:
        kind = request.query_params.get("kind", "oauth")
        if kind not in KINDS or (kind == "lrs" and not lrs_scopes(request)):
            raise NotFound("no such kind of credential")
        return new_form(request, kind)

    @router.post("/credentials")
    async def create_credential(request: Request, viewer: Viewer = need) -> Response:
        fields = await console.form(request, viewer)
        kind = fields.get("kind", "")
        if kind not in KINDS or (kind == "lrs" and not lrs_scopes(request)):
            raise NotFound("no such kind of credential")
        allowed = {s for s, _ in scope_choices(kind, lrs_scopes(request))}
        name = fields.get("name", "").strip()
        chosen = [k[len("scope."):] for k, v in fields.items() if k.startswith("scope.") and v]
        errors: dict[str, str] = {}
        if not name:
            errors["name"] = "Give it a name, for example the system that will use it."
        elif not _NAME.match(name):
            errors["name"] = "Use at most 100 characters, without line breaks."
        bad = [s for s in chosen if s not in allowed]
        if bad:
            errors["scopes"] = f"Not a permission this kind of credential can have: {', '.join(sorted(bad))}."
        elif not chosen:
            errors["scopes"] = "Choose at least one permission."
        if errors:
            return new_form(request, kind, values=fields, errors=errors, status=422)
        client, secret = await run_in_threadpool(console.ctx.auth.clients.create, viewer.tenant, chosen, name)
        return page(request, "admin_secret.html", "Copy the secret now", kind=kind, kind_label=KINDS[kind], client=client,
                    secret=secret)

    @router.get("/credentials/{client_id}/revoke")
    def confirm_revoke(request: Request, client_id: str, viewer: Viewer = need) -> Response:
        client = data.tenant_client(store, viewer.tenant, client_id)
        lrs = data.is_lrs(client, lrs_scopes(request))
        return page(request, "admin_revoke.html", f"Revoke {client.name}?", client=client, kind_label=KINDS["lrs" if lrs else "oauth"])

    @router.post("/credentials/{client_id}/revoke")
    async def revoke(request: Request, client_id: str, viewer: Viewer = need) -> Response:
        await console.form(request, viewer)
        client = data.tenant_client(store, viewer.tenant, client_id)
        if client.active:
            await run_in_threadpool(console.ctx.auth.clients.revoke, client.client_id)
        return back(f"{ADMIN}/credentials?revoked={client.client_id}")

    # --- routing ----------------------------------------------------------------------------------

    @router.get("/routing")
    def routing_page(request: Request, viewer: Viewer = need) -> Response:
        q = request.query_params
        done = None
        if q.get("replayed", "").isdigit():
            done = f"Delivery {q['replayed']} is queued again: it will be sent in a moment."
        elif q.get("discarded", "").isdigit():
            done = f"Delivery {q['discarded']} was set aside: it will not be sent again."
        return page(request, "admin_routing.html", "Connections and deliveries", connections=data.connections(store, viewer.tenant),
                    routes=data.routes(store, viewer.tenant), dead=data.dead_letters(store, viewer.tenant), done=done)

    def outbox_id(value: str) -> int:
        if not value.isdigit() or not 1 <= int(value) < 2**63:
            raise NotFound("no such delivery")
        return int(value)

    @router.get("/dead-letters/{dead_id}")
    def dead_letter(request: Request, dead_id: str, viewer: Viewer = need) -> Response:
        item = data.dead_letter(store, viewer.tenant, outbox_id(dead_id))
        return page(request, "admin_dead_letter.html", f"Failed delivery {item['id']}", item=item)

    @router.post("/dead-letters/{dead_id}/{action}")
    async def dead_letter_action(request: Request, dead_id: str, action: str, viewer: Viewer = need) -> Response:
        await console.form(request, viewer)
        if action not in ("replay", "discard"):
            raise NotFound("no such action")
        oid = outbox_id(dead_id)
        item = data.dead_letter(store, viewer.tenant, oid)  # NotFound for another tenant's
        if item["state"] == "dead":
            from ..routing import repository

            fn = repository.replay_dead_letters if action == "replay" else repository.discard_dead_letters
            await run_in_threadpool(fn, store, viewer.tenant, ids=[oid])
        return back(f"{ADMIN}/routing?{'replayed' if action == 'replay' else 'discarded'}={oid}#dead-letters")

    # --- unaligned evidence -----------------------------------------------------------------------

    @router.get("/unaligned")
    def unaligned(request: Request, viewer: Viewer = need) -> Response:
        found = data.unaligned(store, viewer.tenant)
        aligned = request.query_params.get("aligned", "")
        return page(request, "admin_unaligned.html", "Evidence not linked to a standard", found=found,
                    aligned=int(aligned) if aligned.isdigit() else None)

    def align_form(request: Request, viewer: Viewer, system: str, activity: str, framework: str | None, *,
                   errors: dict[str, str] | None = None, chosen: str = "", status: int = 200) -> Response:
        items = data.activity_evidence(store, viewer.tenant, system, activity) if system and activity else []
        if not items and not errors:
            raise NotFound("no unlinked evidence for this activity")
        fws = data.frameworks(store, viewer.tenant)
        fw = next((f for f in fws if f["id"] == framework), fws[0] if fws else None)
        comps = data.competencies(store, viewer.tenant, uuid.UUID(fw["id"])) if fw else []
        title = items[0]["activity"].get("title") if items else ""
        return page(request, "admin_align.html", "Link an activity to a standard", status=status, system=system, activity=activity,
                    activity_title=title or activity, items=items, frameworks=fws, framework=fw, competencies=comps,
                    errors=errors or {}, chosen=chosen)

    @router.get("/unaligned/align")
    def align_page(request: Request, viewer: Viewer = need) -> Response:
        q = request.query_params
        return align_form(request, viewer, q.get("system", ""), q.get("activity", ""), q.get("framework"))

    @router.post("/unaligned/align")
    async def align(request: Request, viewer: Viewer = need) -> Response:
        fields = await console.form(request, viewer)
        system, activity = fields.get("system", ""), fields.get("activity", "")
        chosen = fields.get("competency", "")
        errors: dict[str, str] = {}
        comp = None
        if not chosen:
            errors["competency"] = "Choose the standard this activity shows."
        else:
            try:
                comp = data.competency(store, viewer.tenant, parse_id(chosen, "competency"))
            except NotFound:
                comp = None
            if comp is None:
                errors["competency"] = "That standard is not one of this district's: choose one from the list."
        items = data.activity_evidence(store, viewer.tenant, system, activity) if system and activity else []
        if not items:
            errors["activity"] = "This activity has no unlinked evidence (it may have been linked already)."
        if errors or comp is None:
            framework = comp["framework_id"] if comp else fields.get("framework")
            return align_form(request, viewer, system, activity, framework, errors=errors, chosen=chosen, status=422)
        _, n = await run_in_threadpool(data.align, store, viewer.tenant, system, activity, uuid.UUID(comp["id"]), items)
        return back(f"{ADMIN}/unaligned?aligned={n}")

    return router


__all__ = ["ADMIN", "build", "lrs_scopes", "scope_choices"]
