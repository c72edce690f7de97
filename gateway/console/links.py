"""Sign-in links: how the first administrator (or anyone, on a machine without an LMS or an
identity provider, such as ``tessera demo``) gets into the console.

``tessera console link --tenant T --role admin`` prints a URL that signs its holder in once
opened, for a few minutes (15 by default, at most a day). It is signed with the console's
session secret (a different salt: a link is no session cookie, and a cookie no link) and
names the tenant, the role, the person (for a learner, guardian or teacher: their roster id)
and where to land. Whoever holds the link can use it until it expires, like a password
reset link: print it on the server's own terminal and hand it over the way you would a
password. Opening it shows a page with one button; the session starts on the POST, so a
mail scanner or link preview that fetches the URL signs nobody in.
"""

from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ..errors import ErrorDetail, ValidationError
from .viewer import ROLES, Role, Viewer
from .web import PREFIX, Console, safe_next

SALT = "tessera-console-sign-in-link"
MAX_MINUTES = 24 * 60
PATH = f"{PREFIX}/sign-in/link"


def make_token(secret: bytes, *, tenant: str, role: Role, person_id: uuid.UUID | None, name: str, minutes: int = 15,
               next_url: str | None = None) -> str:
    """A signed sign-in token (``link_url`` puts it in a URL)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role != "admin" and person_id is None:
        raise ValueError(f"a {role} needs their roster person id (--person)")
    if not 1 <= minutes <= MAX_MINUTES:
        raise ValueError(f"minutes must be between 1 and {MAX_MINUTES}")
    claims = {"tenant": tenant, "role": role, "person_id": str(person_id) if person_id else None, "name": name,
              "next": safe_next(next_url), "until": time.time() + minutes * 60}
    return URLSafeTimedSerializer(secret, salt=SALT).dumps(claims)


def read_token(secret: bytes, token: str) -> tuple[Viewer, str]:
    """The viewer a token signs in and where they land; ValidationError when it is not valid."""
    try:
        claims = URLSafeTimedSerializer(secret, salt=SALT).loads(token, max_age=MAX_MINUTES * 60)
        if time.time() > float(claims["until"]):
            raise SignatureExpired("expired")
        viewer = Viewer(tenant=claims["tenant"], role=claims["role"], person_id=uuid.UUID(claims["person_id"])
                        if claims.get("person_id") else None, name=str(claims.get("name") or ""), via="link")
        if viewer.role not in ROLES:
            raise ValueError("role")
    except (BadSignature, SignatureExpired, ValueError, KeyError, TypeError):
        raise ValidationError("this sign-in link is not valid or has expired: ask for a new one",
                              errors=[ErrorDetail("not valid or expired", field="token")]) from None
    return viewer, safe_next(claims.get("next"))


def build(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    @router.get("/sign-in/link")
    def confirm(request: Request) -> Response:
        token = request.query_params.get("token", "")
        viewer, _ = read_token(console.codec.secret, token)
        return console.render(request, "sign_in_link.html", title="Sign in", who=viewer, token=token)

    @router.post("/sign-in/link")
    async def use(request: Request) -> Response:
        fields = dict(parse_qsl((await request.body()).decode("utf-8", errors="replace")))
        viewer, next_url = read_token(console.codec.secret, fields.get("token", ""))
        return console.sign_in(viewer, next_url)

    return router


__all__ = ["PATH", "build", "make_token", "read_token"]
