"""What every console page shares: who is signed in (``Viewer``), the signed session cookie
(``SessionCodec``), CSRF tokens, the templates, and the console's error pages.

Sessions: one cookie, ``tessera_console``, signed and timestamped (itsdangerous), HttpOnly,
SameSite=Lax (Strict would drop it on the redirect that ends an LTI launch, a cross-site
form POST), Secure when the gateway is served over https. It holds who signed in and how,
never a secret; what a person may see is decided on every request from the roster
(``gateway.console.access``), so a teacher who leaves a section stops seeing it at once.
Embedded in an LMS iframe, browsers withhold Lax cookies: configure the LTI link to open in
a new window (``document_target`` window), as most LMSs offer.

CSRF: every form carries ``csrf_token``, an HMAC of the session's random id; a POST
without the right token is refused (``Console.form``). Pages carry no inline script or
style (the Content-Security-Policy forbids both).

A page that needs a session and has none (or an expired or altered one, which is then
deleted) answers 303 to ``/console/sign-in?next=<the page>``; after sign-in the person
lands on the page they asked for; after a form POST, on the page the form was on
(``return_to``): the form itself has to be sent again, as its CSRF token was the old
session's. Unknown ids and pages
a role may not see answer the same friendly 404, so ids cannot be probed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from jinja2 import Environment, PackageLoader, select_autoescape

from ..errors import ErrorDetail, NotFound, TesseraError, ValidationError
from .access import Access
from .settings import ConsoleSettings
from .viewer import ROLES, Forbidden, Role, SignInRequired, Viewer

if TYPE_CHECKING:
    from ..api.context import AppContext
    from ..auth.keys import KeyStore

COOKIE = "tessera_console"
PREFIX = "/console"
STATIC = Path(__file__).parent / "static"

#: sent with every console page: no inline script or style, nothing from elsewhere
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class SessionCodec:
    """Signs and reads the session cookie; a cookie older than the session length is void."""

    SALT = "tessera-console-session"

    def __init__(self, secret: bytes, *, max_age_seconds: int) -> None:
        self._s = URLSafeTimedSerializer(secret, salt=self.SALT)
        self.secret = secret
        self.max_age = max_age_seconds

    def dumps(self, viewer: Viewer) -> str:
        return self._s.dumps(viewer.as_claims())

    def loads(self, cookie: str) -> Viewer | None:
        try:
            return Viewer.from_claims(self._s.loads(cookie, max_age=self.max_age))
        except (BadSignature, SignatureExpired, ValueError, KeyError, TypeError):
            return None

    def csrf(self, viewer: Viewer) -> str:
        return hmac.new(self.secret, b"csrf:" + viewer.sid.encode(), hashlib.sha256).hexdigest()


def session_secret(keys: Callable[[], KeyStore], settings: ConsoleSettings) -> bytes:
    """``TESSERA_CONSOLE__SECRET``, else derived from the current token-signing key of
    ``keys()`` (shared by every process of one database; a key rotation ends every session)."""
    if settings.secret is not None:
        return settings.secret.get_secret_value().encode()
    from cryptography.hazmat.primitives import serialization

    key = keys().current()
    pem = key.private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    return hmac.new(pem, b"tessera console session v1 " + key.kid.encode(), hashlib.sha256).digest()


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a console path on this host only (no open redirect)."""
    if not target:
        return PREFIX
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(PREFIX) or "\\" in target:
        return PREFIX
    return target


def return_to(request: Request) -> str:
    """The page to come back to after signing in again: the page asked for; for a form POST
    (its session ran out while the form was open) the page the form was on, which the
    browser names in ``Referer`` (``Referrer-Policy: same-origin`` sends it on this site only)."""
    if request.method in ("GET", "HEAD"):
        return safe_next(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    ref = urlsplit(request.headers.get("referer", ""))
    if ref.netloc and ref.netloc != request.headers.get("host", request.url.netloc):
        return PREFIX
    return safe_next(ref.path + (f"?{ref.query}" if ref.query else ""))


class Console:
    """The console's shared services, built once per app (``gateway.console.app.build_router``)."""

    def __init__(self, ctx: AppContext, settings: ConsoleSettings | None = None) -> None:
        self.ctx = ctx
        self.settings = settings or ConsoleSettings()
        self._codec: SessionCodec | None = None
        secure = self.settings.cookie_secure
        self.cookie_secure = secure if secure is not None else (ctx.settings.public_url or "").startswith("https://")
        self.templates = Environment(loader=PackageLoader("gateway.console", "templates"),
                                     autoescape=select_autoescape(["html", "svg", "xml"]), trim_blocks=True, lstrip_blocks=True)
        self.access = Access(ctx.store)

    @property
    def codec(self) -> SessionCodec:
        """Made on first use: the app may be built before the database is migrated."""
        if self._codec is None:
            self._codec = SessionCodec(session_secret(lambda: self.ctx.auth.keys, self.settings), max_age_seconds=self.settings.session_minutes * 60)
        return self._codec

    # --- sessions ----------------------------------------------------------------------------

    def current(self, request: Request) -> Viewer | None:
        cookie = request.cookies.get(COOKIE)
        return self.codec.loads(cookie) if cookie else None

    async def signed_in(self, request: Request) -> Viewer:
        """A FastAPI dependency: the viewer, or 303 to the sign-in page (``SignInRequired``)."""
        viewer = self.current(request)
        if viewer is None:
            raise SignInRequired("sign in to see this page")
        request.state.viewer = viewer
        return viewer

    def start_session(self, response: Response, viewer: Viewer) -> Response:
        response.set_cookie(COOKIE, self.codec.dumps(viewer), max_age=self.codec.max_age, path=PREFIX, httponly=True,
                            samesite="lax", secure=self.cookie_secure)
        return response

    def sign_in(self, viewer: Viewer, next_url: str | None = None) -> RedirectResponse:
        """The answer to a successful sign-in: the session cookie and a 303 to the page asked for."""
        resp = RedirectResponse(safe_next(next_url), status_code=303, headers={"Cache-Control": "no-store"})
        self.start_session(resp, viewer)
        return resp

    def end_session(self, response: Response) -> Response:
        response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="lax", secure=self.cookie_secure)
        return response

    # --- forms -------------------------------------------------------------------------------

    def csrf(self, viewer: Viewer) -> str:
        return self.codec.csrf(viewer)

    async def form(self, request: Request, viewer: Viewer) -> dict[str, str]:
        """The POSTed form's fields, after checking its CSRF token (403 page when it is wrong)."""
        body = (await request.body()).decode("utf-8", errors="replace")
        fields = dict(parse_qsl(body, keep_blank_values=True))
        token = fields.pop("csrf_token", "")
        if not hmac.compare_digest(token, self.codec.csrf(viewer)):
            raise Forbidden("this form has expired or did not come from this site: open the page again and resubmit")
        return fields

    # --- pages -------------------------------------------------------------------------------

    def render(self, request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        """A page from ``templates/``. Every template gets ``viewer`` (or None), ``csrf_token``,
        ``path`` (this page, for the sign-in ``next``) and ``nav`` (the viewer's menu)."""
        viewer = getattr(request.state, "viewer", None) or self.current(request)
        html = self.templates.get_template(template).render(
            viewer=viewer, csrf_token=self.codec.csrf(viewer) if viewer else "", path=request.url.path,
            nav=nav_for(viewer), **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def error_page(self, request: Request, exc: TesseraError) -> Response:
        """Every console error: sign-in redirect, friendly 404, or a page naming what is wrong."""
        if isinstance(exc, SignInRequired):
            resp = RedirectResponse(f"{PREFIX}/sign-in?next={quote(return_to(request), safe='')}", status_code=303,
                                    headers={"Cache-Control": "no-store"})
            if COOKIE in request.cookies:  # expired or altered: gone, so the sign-in page shows
                self.end_session(resp)
            return resp
        if isinstance(exc, NotFound) or exc.status == 404:
            return self.render(request, "error.html", status=404, title="We could not find that page",
                               message="It may have moved, or your account may not have access to it.", errors=[])
        errors = [str(e) for e in exc.errors]
        title = exc.title if exc.status < 500 else "Something went wrong"
        message = exc.detail if exc.status < 500 else "The error has been logged. Please try again in a moment."
        return self.render(request, "error.html", status=exc.status, title=title, message=message, errors=errors)


def nav_for(viewer: Viewer | None) -> list[tuple[str, str]]:
    """The menu: (label, href) for the viewer's role."""
    if viewer is None:
        return []
    if viewer.role == "admin":
        return [("Schools", f"{PREFIX}/schools"), ("Classes", f"{PREFIX}/classes"), ("Integrations", f"{PREFIX}/admin")]
    if viewer.role == "teacher":
        return [("My classes", f"{PREFIX}/classes")]
    if viewer.role == "guardian":
        return [("My children", f"{PREFIX}/learners")]
    return [("My progress", f"{PREFIX}/learners/{viewer.person_id}")]


def invalid(message: str, **fields: str) -> ValidationError:
    """A form's validation error: ``fields`` maps each wrong field to what is wrong with it."""
    return ValidationError(message, errors=[ErrorDetail(msg, field=name) for name, msg in fields.items()])


__all__ = ["COOKIE", "Console", "Forbidden", "PREFIX", "ROLES", "Role", "SECURITY_HEADERS", "SessionCodec", "SignInRequired",
           "Viewer", "invalid", "nav_for", "return_to", "safe_next", "session_secret"]
