"""OIDC third-party initiated login, tool side (1EdTech Security Framework 1.0, 5.1.1).

``/lti/login`` (GET or POST): the platform's third-party initiated login. Tessera finds the
registration by ``iss`` (+ ``client_id``), checks that ``target_link_uri`` is one of its own
URLs, creates a ``state`` and a ``nonce`` (kept server-side, the state also in a cookie) and
redirects the browser to the platform's authorization endpoint with an OIDC authentication
request (``response_mode=form_post``, ``prompt=none``). The launch (``message_launch``)
must present the state it was given exactly once (``take_login_state``).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Engine, delete, insert, select

from gateway.model import utcnow
from gateway.store.db import WRITE

from . import tables as tt
from .common import public_base, refuse
from .platforms import Platform, PlatformStore

if TYPE_CHECKING:
    from gateway.api.context import AppContext

#: how long a login's state and nonce wait for the launch
STATE_SECONDS = 600
COOKIE_PREFIX = "lti1p3-state-"


@dataclass(frozen=True)
class LoginState:
    platform_id: uuid.UUID
    nonce: str
    target_link_uri: str


def begin_login(engine: Engine, platform: Platform, target_link_uri: str) -> tuple[str, LoginState]:
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with engine.connect().execution_options(**WRITE) as conn, conn.begin():
        conn.execute(
            insert(tt.login_states).values(
                state=state, platform_id=platform.id, nonce=nonce, target_link_uri=target_link_uri,
                expires_at=utcnow() + timedelta(seconds=STATE_SECONDS),
            )
        )
    return state, LoginState(platform.id, nonce, target_link_uri)


def take_login_state(engine: Engine, state: str) -> LoginState | None:
    """The login's state, removed as it is read: a state launches once."""
    ls = tt.login_states
    with engine.connect().execution_options(**WRITE) as conn, conn.begin():
        row = conn.execute(select(ls).where(ls.c.state == state)).first()
        if row is None or conn.execute(delete(ls).where(ls.c.state == state)).rowcount != 1:
            return None
    if row.expires_at <= utcnow():
        return None
    return LoginState(row.platform_id, row.nonce, row.target_link_uri)



def login(ctx: AppContext, platforms: PlatformStore, request: Request, p: dict[str, str]) -> Response:
    """Security Framework 5.1.1.1-5.1.1.2: check the initiation, answer the auth request."""
    for name in ("iss", "login_hint", "target_link_uri"):
        if not p.get(name):
            raise refuse(f"the login initiation lacks the parameter {name}")
    platform = platforms.find(p["iss"], p.get("client_id"))
    if platform is None:
        raise refuse("no platform is registered with this iss and client_id", status=401)
    if p.get("lti_deployment_id") and p["lti_deployment_id"] not in platform.deployment_ids:
        raise refuse("the lti_deployment_id is not a known deployment of this platform")
    if urlsplit(p["target_link_uri"]).netloc != urlsplit(public_base(ctx, request)).netloc:
        raise refuse("the target_link_uri is not a Tessera URL")
    state, ls = begin_login(ctx.store.engine, platform, p["target_link_uri"])
    auth = {
        "scope": "openid", "response_type": "id_token", "response_mode": "form_post", "prompt": "none",
        "client_id": platform.client_id, "redirect_uri": f"{public_base(ctx, request)}/lti/launch",
        "login_hint": p["login_hint"], "state": state, "nonce": ls.nonce,
    }
    if p.get("lti_message_hint"):
        auth["lti_message_hint"] = p["lti_message_hint"]
    sep = "&" if "?" in platform.auth_login_url else "?"
    resp = RedirectResponse(f"{platform.auth_login_url}{sep}{urlencode(auth)}", status_code=302)
    secure = request.url.scheme == "https"
    # The launch is a cross-site form POST: only SameSite=None cookies come with it, and
    # browsers take those over https only. On plain http (a development box) Lax is the
    # best there is.
    resp.set_cookie(
        COOKIE_PREFIX + state, state, max_age=STATE_SECONDS, path="/lti/", httponly=True,
        secure=secure, samesite="none" if secure else "lax",
    )
    return resp


__all__ = ["COOKIE_PREFIX", "STATE_SECONDS", "LoginState", "begin_login", "login", "take_login_state"]
