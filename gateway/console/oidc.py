"""Staff sign-in by OpenID Connect against the district's identity provider (authlib + joserfc).

``/console/sign-in/oidc?next=...`` reads the provider's discovery document
(``{issuer}/.well-known/openid-configuration``, OpenID Connect Discovery 1.0 section 4) and
sends the browser to its authorization endpoint: the authorization code flow (OpenID
Connect Core 1.0 section 3.1) with PKCE S256 (RFC 7636), a fresh ``state`` and ``nonce``.
The state, the nonce, the PKCE verifier and the page asked for travel in a short-lived
signed cookie (``tessera_console_oidc``, 10 minutes, HttpOnly, SameSite=Lax, path
``/console/sign-in/oidc``), never in the URL except the state itself.

``/console/sign-in/oidc/callback`` checks the state against the cookie, exchanges the code
(with the verifier; client_secret_basic, or client_secret_post where the provider only
offers that, or no secret for a public client), and verifies the id_token: its signature
against the provider's JWKS (refetched once for an unknown kid), ``iss`` = the configured
issuer, ``aud`` = this client, ``azp`` when several audiences, ``exp``/``iat`` (60 s of
skew), the ``nonce`` from the cookie, and ``at_hash`` when present.

Then the person: in the roster of ``TESSERA_CONSOLE__OIDC_TENANT``, by an identifier
(system = the issuer, kind ``oidc.sub``, value = ``sub``), else by the id_token's ``email``
(the OneRoster email, compared without case; not when the provider says
``email_verified: false``). Only staff get in: a roster teacher or aide signs in as a
teacher, an administrator (or district administrator) as an admin; anyone else, an unknown
person, a disabled or inactive account, two roster people sharing the email: a clear
"we could not sign you in" page (403), logged with the reason and the issuer, never with a
token, a code or an email address.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import orjson
from authlib.common.security import generate_token  # type: ignore[import-untyped]  # authlib ships no type information
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri  # type: ignore[import-untyped]  # authlib ships no type information
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]  # authlib ships no type information
from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]  # authlib ships no type information
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from sqlalchemy import func, select

from ..http import BasicAuth, HttpClient, RetryLater, Unreachable
from ..model import Status
from ..store import tables as t
from .web import PREFIX, Console, Role, Viewer, safe_next

if TYPE_CHECKING:
    from .settings import ConsoleSettings

log = logging.getLogger("tessera.console")

COOKIE = "tessera_console_oidc"
START = f"{PREFIX}/sign-in/oidc"
CALLBACK = f"{START}/callback"
#: how long a sign-in may take at the provider
FLOW_SECONDS = 600
SKEW_SECONDS = 60
#: roster roles that get in, and as what
STAFF: dict[str, Role] = {"teacher": "teacher", "aide": "teacher", "administrator": "admin", "district_administrator": "admin"}


class SignInRefused(Exception):
    """A refused sign-in: ``reason`` for the log, ``message`` for the person."""

    def __init__(self, reason: str, message: str, *, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.status = status


_TRY_AGAIN = "Please go back to the sign-in page and try again."


@dataclass
class _Cached:
    value: Any
    at: float


class Provider:
    """The identity provider's discovery document and keys, cached for an hour."""

    TTL = 3600.0

    def __init__(self, issuer: str, http: HttpClient) -> None:
        self.issuer = issuer.rstrip("/")
        self.http = http
        self._meta: _Cached | None = None
        self._keys: _Cached | None = None
        self._lock = threading.Lock()

    def _get(self, url: str, what: str) -> dict[str, Any]:
        try:
            r = self.http.get(url, headers={"Accept": "application/json"})
            doc = orjson.loads(r.content) if r.status_code == 200 else None
        except (httpx.HTTPError, Unreachable, RetryLater, orjson.JSONDecodeError):
            doc = None
        if not isinstance(doc, dict):
            raise SignInRefused(f"the identity provider's {what} could not be read ({url})",
                                "Your district's sign-in service did not answer. Please try again in a few minutes.", status=502)
        return doc

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._meta is None or time.monotonic() - self._meta.at > self.TTL:
                doc = self._get(f"{self.issuer}/.well-known/openid-configuration", "discovery document")
                missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not isinstance(doc.get(k), str)]
                if missing or doc.get("issuer", "").rstrip("/") != self.issuer:
                    raise SignInRefused(f"the discovery document is not this issuer's or lacks {', '.join(missing) or 'nothing'}",
                                        "Your district's sign-in service is not set up correctly. Please tell your administrator.",
                                        status=502)
                self._meta = _Cached(doc, time.monotonic())
            return dict(self._meta.value)

    def keys(self, *, refresh: bool = False) -> KeySet:
        with self._lock:
            cached = self._keys
        if refresh or cached is None or time.monotonic() - cached.at > self.TTL:
            doc = self._get(self.metadata()["jwks_uri"], "JWKS")
            try:
                keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError):
                raise SignInRefused("the provider's JWKS holds no usable key", "Your district's sign-in service is not set up "
                                    "correctly. Please tell your administrator.", status=502) from None
            cached = _Cached(keys, time.monotonic())
            with self._lock:
                self._keys = cached
        keyset: KeySet = cached.value
        return keyset


class OidcSignIn:
    """The two endpoints of staff sign-in (module docstring)."""

    def __init__(self, console: Console, http: HttpClient | None = None) -> None:
        self.console = console
        self.settings: ConsoleSettings = console.settings
        # the gateway's one outbound client: retries of the GETs, request ids, redacted logs
        self.http = http or HttpClient(timeout=10, follow_redirects=False)
        self.provider = Provider(self.settings.oidc_issuer or "", self.http)
        self._flows: URLSafeTimedSerializer | None = None

    @property
    def configured(self) -> bool:
        s = self.settings
        return bool(s.oidc_issuer and s.oidc_client_id and s.oidc_tenant)

    @property
    def flows(self) -> URLSafeTimedSerializer:
        if self._flows is None:
            # the session secret (another salt): one key signs both cookies
            self._flows = URLSafeTimedSerializer(self.console.codec.secret, salt="tessera-console-oidc-flow")
        return self._flows

    def redirect_uri(self, request: Request) -> str:
        base = (self.console.ctx.settings.public_url or str(request.base_url)).rstrip("/")
        return base + CALLBACK

    # --- 1. to the provider ------------------------------------------------------------------

    def start(self, request: Request, next_url: str | None) -> Response:
        meta = self.provider.metadata()
        methods = meta.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            raise SignInRefused("the provider does not support PKCE S256",
                                "Your district's sign-in service is not set up correctly. Please tell your administrator.",
                                status=502)
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        url = prepare_grant_uri(
            meta["authorization_endpoint"], self.settings.oidc_client_id, "code", self.redirect_uri(request),
            self.settings.oidc_scopes, state, nonce=nonce, code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256")
        resp = RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
        flow = self.flows.dumps({"state": state, "nonce": nonce, "verifier": verifier, "next": safe_next(next_url)})
        resp.set_cookie(COOKIE, flow, max_age=FLOW_SECONDS, path=START, httponly=True, samesite="lax",
                        secure=self.console.cookie_secure)
        return resp

    # --- 2. back from the provider -----------------------------------------------------------

    def _flow(self, request: Request) -> dict[str, str]:
        raw = request.cookies.get(COOKIE, "")
        try:
            flow = self.flows.loads(raw, max_age=FLOW_SECONDS) if raw else None
        except BadSignature:
            flow = None
        if not isinstance(flow, dict):
            raise SignInRefused("no sign-in in progress in this browser (flow cookie missing, expired or altered)",
                                "The sign-in took too long or was started in another browser. " + _TRY_AGAIN, status=400)
        return flow

    def finish(self, request: Request) -> tuple[Viewer, str]:
        """The viewer the provider's answer signs in, and the page they asked for."""
        q = request.query_params
        flow = self._flow(request)
        if not hmac.compare_digest(q.get("state", ""), flow["state"]):
            raise SignInRefused("the state does not match this browser's sign-in", "This sign-in link is not the one this "
                                "browser started. " + _TRY_AGAIN, status=400)
        if q.get("error"):
            raise SignInRefused(f"the provider answered {q.get('error')}", "Your district's sign-in service did not sign you "
                                "in. " + _TRY_AGAIN)
        if not q.get("code"):
            raise SignInRefused("the provider's answer has no code", "Your district's sign-in service sent an incomplete "
                                "answer. " + _TRY_AGAIN, status=400)
        tokens = self._exchange(request, q["code"], flow["verifier"])
        claims = self._verify(tokens, flow["nonce"])
        return self._viewer(claims), flow["next"]

    def _exchange(self, request: Request, code: str, verifier: str) -> dict[str, Any]:
        meta = self.provider.metadata()
        s = self.settings
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri(request),
                "code_verifier": verifier}
        auth: BasicAuth | None = None  # client_secret_basic; None: the client's own (none)
        secret = s.oidc_client_secret.get_secret_value() if s.oidc_client_secret else None
        methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if secret and ("client_secret_basic" in methods or "client_secret_post" not in methods):
            auth = BasicAuth(quote(s.oidc_client_id or "", safe=""), quote(secret, safe=""))  # RFC 6749 2.3.1: form-encoded
        else:
            form["client_id"] = s.oidc_client_id or ""
            if secret:
                form["client_secret"] = secret
        try:
            r = self.http.post(meta["token_endpoint"], data=form, auth=auth, headers={"Accept": "application/json"})
            body = orjson.loads(r.content)
        except (httpx.HTTPError, Unreachable, RetryLater, orjson.JSONDecodeError):
            r, body = None, None
        if r is None or r.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
            error = body.get("error") if isinstance(body, dict) else None
            raise SignInRefused(f"the code exchange failed: HTTP {r.status_code if r else 'unreachable'} {error or ''}".strip(),
                                "Your district's sign-in service did not confirm the sign-in. " + _TRY_AGAIN, status=502)
        return body

    def _verify(self, tokens: dict[str, Any], nonce: str) -> dict[str, Any]:
        meta = self.provider.metadata()
        algs = [a for a in meta.get("id_token_signing_alg_values_supported") or ["RS256"] if a != "none"]
        bad = "Your district's sign-in service sent an answer we could not check. " + _TRY_AGAIN
        try:
            try:
                token = jwt.decode(tokens["id_token"], self.provider.keys(), algorithms=algs)
            except InvalidKeyIdError:  # the provider rotated its key: fetch the set again, once
                token = jwt.decode(tokens["id_token"], self.provider.keys(refresh=True), algorithms=algs)
            options: dict[str, Any] = {"iss": {"essential": True, "value": self.provider.issuer},
                                       "aud": {"essential": True, "value": self.settings.oidc_client_id},
                                       "exp": {"essential": True}, "sub": {"essential": True}}
            claims = CodeIDToken(token.claims, token.header, options,
                                 {"nonce": nonce, "client_id": self.settings.oidc_client_id,
                                  "access_token": tokens.get("access_token")})
            claims.validate(leeway=SKEW_SECONDS)
        except JoseError as exc:
            raise SignInRefused(f"the id_token is not valid: {type(exc).__name__} {getattr(exc, 'description', '')}".strip(),
                                bad, status=401) from None
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):  # CodeIDToken checks it too: belt and braces
            raise SignInRefused("the id_token's nonce is not this sign-in's", bad, status=401)
        return dict(claims)

    # --- 3. who it is ------------------------------------------------------------------------

    def _viewer(self, claims: dict[str, Any]) -> Viewer:
        tenant = self.settings.oidc_tenant or ""
        person = self._match(tenant, claims)
        roles = [r.get("role") for r in person.get("roles") or [] if isinstance(r, dict)]
        granted = [STAFF[r] for r in roles if r in STAFF]
        if person.get("status", "active") != Status.active.value or person.get("enabled") is False:
            raise SignInRefused(f"roster person {person['id']} is not active", "Your account is not active in your district's "
                                "records. Please ask your school's office.")
        if not granted:
            raise SignInRefused(f"roster person {person['id']} is not staff (roles: {', '.join(map(str, roles)) or 'none'})",
                                "This sign-in is for teachers and district staff. Students and families open Tessera from "
                                "their school's learning system.")
        role: Role = "admin" if "admin" in granted else "teacher"
        name = f"{person.get('given_name', '')} {person.get('family_name', '')}".strip()
        log.info("console sign-in by OpenID Connect: %s %s in tenant %s", role, person["id"], tenant)
        return Viewer(tenant=tenant, role=role, person_id=uuid.UUID(person["id"]), name=name, via="oidc")

    def _match(self, tenant: str, claims: dict[str, Any]) -> dict[str, Any]:
        """The roster person the id_token names: by ``oidc.sub`` identifier, else by email."""
        store = self.console.ctx.store
        unknown = ("We could not find you in your district's records. Please ask your district's administrator to check "
                   "that your account and email address are in the school system.")
        found = store.records.lookup(tenant, self.provider.issuer[:128], "oidc.sub", str(claims["sub"]), record_kind="person")
        if found:
            return dict(orjson.loads(store.records.get_json(tenant, "person", found[0][1])))
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email or claims.get("email_verified") is False:
            raise SignInRefused("no roster person has this sub, and the id_token has no usable email", unknown)
        wanted = email.strip().lower()
        p = t.people
        with store.engine.connect() as conn:
            # the email lives in the record's JSON: a text filter narrows, the parsed JSON decides
            rows = conn.execute(select(p.c.data).where(
                p.c.tenant == tenant, func.lower(p.c.data).contains(wanted, autoescape=True)).limit(50)).all()
        people = [d for d in (orjson.loads(r[0]) for r in rows) if str(d.get("email") or "").strip().lower() == wanted]
        if not people:
            raise SignInRefused("no roster person has this sub or this email", unknown)
        staff = [d for d in people if any(r.get("role") in STAFF for r in d.get("roles") or [] if isinstance(r, dict))]
        if len(people) > 1 and len(staff) != 1:
            raise SignInRefused(f"{len(people)} roster people share this email", "More than one person in your district's "
                                "records has your email address, so we cannot tell which one is you. Please ask your "
                                "district's administrator.")
        return dict(staff[0] if len(people) > 1 else people[0])


def build(console: Console) -> APIRouter:
    """``/console/sign-in/oidc`` and its callback (404 when OpenID Connect is not configured)."""
    from ..errors import NotFound

    oidc = OidcSignIn(console)
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    def refused(request: Request, exc: SignInRefused) -> Response:
        log.warning("console OpenID Connect sign-in refused: %s (issuer %s)", exc.reason, oidc.provider.issuer)
        resp = console.render(request, "sign_in_refused.html", status=exc.status, title="We could not sign you in",
                              message=exc.message)
        resp.delete_cookie(COOKIE, path=START, httponly=True, samesite="lax", secure=console.cookie_secure)
        return resp

    @router.get("/sign-in/oidc")
    def start(request: Request) -> Response:
        if not oidc.configured:
            raise NotFound("OpenID Connect sign-in is not set up")
        try:
            return oidc.start(request, request.query_params.get("next"))
        except SignInRefused as exc:
            return refused(request, exc)

    @router.get("/sign-in/oidc/callback")
    def callback(request: Request) -> Response:
        if not oidc.configured:
            raise NotFound("OpenID Connect sign-in is not set up")
        try:
            viewer, next_url = oidc.finish(request)
        except SignInRefused as exc:
            return refused(request, exc)
        resp = console.sign_in(viewer, next_url)
        resp.delete_cookie(COOKIE, path=START, httponly=True, samesite="lax", secure=console.cookie_secure)
        return resp

    return router


__all__ = ["CALLBACK", "COOKIE", "OidcSignIn", "Provider", "STAFF", "SignInRefused", "build"]
