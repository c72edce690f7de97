"""LTI Deep Linking 2.0, tool side: a teacher places Tessera competency views in a course.

A ``LtiDeepLinkingRequest`` launch (validated by ``message_launch``) shows the tenant's competencies.
The teacher picks some; Tessera answers with a ``LtiDeepLinkingResponse`` (Deep Linking 2.0
section 4.2): a JWT signed with the gateway's current key (its JWKS is
``/.well-known/jwks.json``, the ``jwks_uri`` Tessera registers with), ``iss`` = the client_id
the platform gave Tessera, ``aud`` = the platform's issuer, echoing the request's ``data``,
and one ``ltiResourceLink`` content item per competency (section 3.1): its launch URL, the
CASE identifier in ``custom`` (so each later launch knows which competency it is about), and a
``lineItem`` whose ``resourceId`` is that CASE identifier and whose ``tag`` marks it as a
Tessera competency, so the gradebook column the platform creates is the competency's. The
JWT goes back in an auto-submitted form field ``JWT`` to ``deep_link_return_url`` (4.5).

Between the picker page and the response, the launch's settings travel in a short-lived
token signed by the gateway (``session``), so the response can only answer a request a
platform really made, and no server-side session is needed.
"""

from __future__ import annotations

import html
import secrets
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import jwt
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from gateway.model import utcnow

from ..claims import (
    C_DEPLOYMENT,
    C_DL_CONTENT_ITEMS,
    C_DL_DATA,
    C_DL_SETTINGS,
    C_MESSAGE_TYPE,
    C_VERSION,
    DEEP_LINKING_RESPONSE,
    VERSION,
)
from ..pages import form_post_page, page
from .assignments_grades import COMPETENCY_TAG, MASTERY_POINTS, competency_label, competency_ref
from .common import LtiLaunchError, public_base
from .message_launch import Launch
from .platforms import PlatformStore

if TYPE_CHECKING:
    from gateway.api.context import AppContext

SESSION_AUDIENCE = "tessera:lti-deep-linking"
SESSION_SECONDS = 900
RESPONSE_SECONDS = 300
RESOURCE_LINK = "ltiResourceLink"


def _sign(ctx: AppContext, claims: dict[str, Any]) -> str:
    key = ctx.auth.keys.current()
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, "typ": "JWT"})


def picker(ctx: AppContext, launch: Launch) -> HTMLResponse:
    """The page a teacher picks competencies on (the deep linking request was validated)."""
    settings = launch.claim(C_DL_SETTINGS)
    now = utcnow()
    session = _sign(ctx, {
        "iss": ctx.settings.issuer, "aud": SESSION_AUDIENCE, "iat": now, "exp": now + timedelta(seconds=SESSION_SECONDS),
        "platform": str(launch.platform.id), "tenant": launch.platform.tenant,
        "deployment_id": launch.claims[C_DEPLOYMENT], "settings": settings,
    })
    docs = [orjson.loads(d) for d in ctx.store.records.page(launch.platform.tenant, "competency", limit=500).items]
    kind = "checkbox" if settings.get("accept_multiple", True) else "radio"
    options = "".join(
        f'<li><label><input type="{kind}" name="competency" value="{html.escape(d["id"])}"> '
        f'{html.escape(d.get("code") or "")} {html.escape(d["statement"][:200])}</label></li>'
        for d in docs
    )
    body = (
        f'<form method="post" action="/lti/deep-linking"><input type="hidden" name="session" value="{html.escape(session)}">'
        f'<ul class="competencies">{options}</ul><button type="submit">Add to course</button></form>'
    )
    return page("Tessera: place competency views", body)


def content_item(doc: dict[str, Any], launch_url: str) -> dict[str, Any]:
    """Deep Linking 2.0 3.1: one ltiResourceLink for a competency, with its gradebook column."""
    ref, title = competency_ref(doc), competency_label(doc)
    return {
        "type": RESOURCE_LINK,
        "title": title,
        "text": doc["statement"],
        "url": launch_url,
        "custom": {"competency": ref, "competency_id": doc["id"]},
        "lineItem": {"label": title, "scoreMaximum": MASTERY_POINTS, "resourceId": ref, "tag": COMPETENCY_TAG},
    }


def response_jwt(ctx: AppContext, session: dict[str, Any], client_id: str, issuer: str, items: list[dict[str, Any]]) -> str:
    """Deep Linking 2.0 4.2: the signed LtiDeepLinkingResponse message."""
    now = utcnow()
    claims: dict[str, Any] = {
        "iss": client_id, "aud": issuer, "iat": now, "exp": now + timedelta(seconds=RESPONSE_SECONDS),
        "nonce": secrets.token_urlsafe(16),
        C_MESSAGE_TYPE: DEEP_LINKING_RESPONSE,
        C_VERSION: VERSION,
        C_DEPLOYMENT: session["deployment_id"],
        C_DL_CONTENT_ITEMS: items,
    }
    data = session["settings"].get("data")
    if data is not None:
        claims[C_DL_DATA] = data
    return _sign(ctx, claims)


def _session(ctx: AppContext, token: str) -> dict[str, Any]:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = ctx.auth.keys.find(kid) if isinstance(kid, str) else None
        if key is None:
            raise LtiLaunchError("the deep linking session is not this gateway's", status=401)
        return jwt.decode(token, key.public_key, algorithms=["RS256"], audience=SESSION_AUDIENCE, issuer=ctx.settings.issuer)
    except jwt.InvalidTokenError:
        raise LtiLaunchError("the deep linking session expired or is not valid: start again from the platform", status=401) from None


def respond(ctx: AppContext, base: str, form: list[tuple[str, str]]) -> HTMLResponse:
    fields = dict(form)
    session = _session(ctx, fields.get("session", ""))
    settings = session["settings"]
    platform = PlatformStore(ctx.store.engine).get(session["tenant"], uuid.UUID(session["platform"]))
    return_url = settings["deep_link_return_url"]
    if RESOURCE_LINK not in settings.get("accept_types", []):
        raise LtiLaunchError("the platform does not accept ltiResourceLink items here", return_url=return_url)
    chosen = [v for k, v in form if k == "competency"]
    if len(chosen) > 1 and settings.get("accept_multiple") is False:
        raise LtiLaunchError("the platform accepts one item here; pick one competency", return_url=return_url)
    try:
        ids = [uuid.UUID(c) for c in chosen]
    except ValueError:
        raise LtiLaunchError("a chosen competency is not a competency id") from None
    docs = [orjson.loads(ctx.store.records.get_json(platform.tenant, "competency", i)) for i in ids]
    items = [content_item(d, f"{base}/lti/launch") for d in docs]
    token = response_jwt(ctx, session, platform.client_id, platform.issuer, items)
    return form_post_page(return_url, {"JWT": token})


def build_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(tags=["lti"])

    @router.post("/lti/deep-linking", summary="LTI Deep Linking 2.0 response (tool): place competency views")
    async def deep_linking(request: Request) -> Response:
        form = parse_qsl((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True)
        return await run_in_threadpool(respond, ctx, public_base(ctx, request), form)

    return router


__all__ = ["content_item", "picker", "respond", "response_jwt"]
