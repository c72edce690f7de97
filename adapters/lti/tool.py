"""Tessera as an LTI 1.3 tool: OIDC login initiation, launch validation, the launched view.

The flow (1EdTech Security Framework 1.0, 5.1.1; LTI 1.3 core 5):

1. ``/lti/login`` (GET or POST): the platform's third-party initiated login. Tessera finds
   the registration by ``iss`` (+ ``client_id``), checks that ``target_link_uri`` is one of
   its own URLs, creates a ``state`` and a ``nonce`` (kept server-side, the state also in a
   cookie) and redirects the browser to the platform's authorization endpoint with an OIDC
   authentication request (``response_mode=form_post``, ``prompt=none``).
2. ``/lti/launch`` (POST ``id_token`` + ``state``): the state must come back with its cookie,
   once; then the id_token is validated as Security Framework 5.1.3 lists: RS256 signature
   against the platform's JWKS (cached; refreshed once when a kid is unknown), ``iss``,
   ``aud`` (and ``azp`` when several audiences), ``exp``/``iat`` with a small skew, the
   ``nonce`` issued at login (then spent: single use), and the LTI claims of core 5.3/5.4:
   ``message_type``, ``version`` 1.3.0, a known ``deployment_id``, ``target_link_uri`` equal
   to the login's, and the claims each message type requires.
3. A valid resource link launch records the learner or teacher: the canonical Person
   (identifier ``lti.sub`` under the platform's issuer; joined to the OneRoster person by the
   LIS ``person_sourcedid`` when the roster has it) and an Enrollment in the section named
   by the LIS ``course_section_sourcedid`` (or, failing that, one made from the context
   claim). The nonce is spent in the same transaction, so a refused launch records nothing.

Every refusal is an ``LtiLaunchError``: an HTML error page, or a redirect to the verified
launch's ``launch_presentation.return_url`` with ``lti_errormsg`` (core 4.4.1). Refusals are
logged with their reason and the issuer, never with the token.
"""

from __future__ import annotations

import html
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import jwt
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection, Engine, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from starlette.concurrency import run_in_threadpool

from gateway.api.problems import register_error_shape
from gateway.errors import NotFound, TesseraError
from gateway.model import (
    Course,
    Enrollment,
    Identifier,
    Org,
    OrgType,
    Person,
    Record,
    Role,
    Section,
    Status,
    utcnow,
)
from gateway.store.db import WRITE

from . import tool_tables as tt
from .pages import form_post_page, page
from .platforms import Platform, PlatformStore, public_base

if TYPE_CHECKING:
    from gateway.api.context import AppContext

log = logging.getLogger("tessera.lti")

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
C_MESSAGE_TYPE = LTI + "message_type"
C_VERSION = LTI + "version"
C_DEPLOYMENT = LTI + "deployment_id"
C_TARGET = LTI + "target_link_uri"
C_RESOURCE_LINK = LTI + "resource_link"
C_ROLES = LTI + "roles"
C_CONTEXT = LTI + "context"
C_LIS = LTI + "lis"
C_CUSTOM = LTI + "custom"
C_PRESENTATION = LTI + "launch_presentation"
C_DL_SETTINGS = DL + "deep_linking_settings"
C_AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
C_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"

RESOURCE_LINK = "LtiResourceLinkRequest"
DEEP_LINKING = "LtiDeepLinkingRequest"
MESSAGE_TYPES = (RESOURCE_LINK, DEEP_LINKING)
#: seconds of clock skew tolerated on exp and iat
SKEW_SECONDS = 60
#: how long a login's state and nonce wait for the launch
STATE_SECONDS = 600
COOKIE_PREFIX = "lti1p3-state-"


class LtiLaunchError(TesseraError):
    """A refused login or launch. ``return_url`` only when it comes from a verified id_token."""

    status = 400
    title = "LTI launch refused"
    type_slug = "lti-launch"

    def __init__(self, detail: str, *, status: int = 400, return_url: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.return_url = return_url


def _refuse(detail: str, *, status: int = 400, return_url: str | None = None) -> LtiLaunchError:
    return LtiLaunchError(detail, status=status, return_url=return_url)


def render_error(request: Request, exc: TesseraError) -> Response:
    """LTI core 4.4.1: back to the platform's return_url with ``lti_errormsg``, else a page."""
    return_url = getattr(exc, "return_url", None)
    if return_url:
        parts = urlsplit(return_url)
        query = "&".join(q for q in (parts.query, urlencode({"lti_errormsg": exc.detail})) if q)
        return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=302)
    details = "".join(f"<li>{html.escape(str(e))}</li>" for e in exc.errors)
    return page(exc.title, f"<p>{html.escape(exc.detail)}</p>" + (f"<ul>{details}</ul>" if details else ""), status=exc.status)


# --- the platform's keys ------------------------------------------------------------------


@dataclass
class _KeySet:
    keys: dict[str, Any]
    fetched: float


class PlatformKeys:
    """Platforms' JWKS, cached per URL. A kid the cache lacks triggers ONE refresh (the
    platform rotated its key); the same unknown kid does not trigger another for
    ``MIN_REFRESH`` seconds, so a stream of tokens naming a made-up kid cannot make Tessera
    hammer the platform."""

    TTL = 3600.0
    MIN_REFRESH = 60.0

    def __init__(self, http: httpx.Client | None = None) -> None:
        self.http = http or httpx.Client(timeout=10)
        self._sets: dict[str, _KeySet] = {}
        self._missed: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def key(self, jwks_url: str, kid: str) -> Any | None:
        now = time.monotonic()
        found = self._sets.get(jwks_url)
        if found is not None and now - found.fetched < self.TTL:
            if kid in found.keys:
                return found.keys[kid]
            if now - self._missed.get((jwks_url, kid), -self.MIN_REFRESH) < self.MIN_REFRESH:
                return None
        with self._lock:
            if len(self._missed) > 10_000:
                self._missed.clear()
            self._missed[(jwks_url, kid)] = now
            found = self._sets[jwks_url] = self._fetch(jwks_url)
        return found.keys.get(kid)

    def _fetch(self, url: str) -> _KeySet:
        try:
            r = self.http.get(url, headers={"Accept": "application/json"})
            doc = orjson.loads(r.content) if r.status_code == 200 else None
        except (httpx.HTTPError, orjson.JSONDecodeError):
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise _refuse("the platform's JWKS could not be fetched", status=502)
        keys: dict[str, Any] = {}
        for jwk in doc["keys"]:
            if isinstance(jwk, dict) and jwk.get("kty") == "RSA" and isinstance(jwk.get("kid"), str) and jwk.get("use", "sig") == "sig":
                try:
                    keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm="RS256").key
                except jwt.PyJWKError:
                    continue
        return _KeySet(keys, time.monotonic())


# --- validation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """A validated launch: the platform and the id_token's claims."""

    platform: Platform
    claims: dict[str, Any]

    @property
    def message_type(self) -> str:
        return self.claims[C_MESSAGE_TYPE]

    @property
    def sub(self) -> str | None:
        return self.claims.get("sub")

    @property
    def roles(self) -> list[str]:
        return self.claims.get(C_ROLES) or []

    def claim(self, name: str) -> dict[str, Any]:
        value = self.claims.get(name)
        return value if isinstance(value, dict) else {}


def _required(claims: dict[str, Any], path: str, want: type, return_url: str | None) -> Any:
    head, _, sub = path.partition("#")
    value = claims.get(head)
    if sub:
        value = value.get(sub) if isinstance(value, dict) else None
    if not isinstance(value, want) or (want is str and not value):
        name = f"{head} (property {sub})" if sub else head
        raise _refuse(f"the id_token lacks the required claim {name}", return_url=return_url)
    return value


def validate_id_token(token: str, platform: Platform, *, nonce: str, target_link_uri: str, keys: PlatformKeys) -> Launch:
    """Security Framework 5.1.3 and LTI core 5.3-5.4; raises ``LtiLaunchError`` naming the rule."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise _refuse("the id_token is not a JWT", status=401) from None
    if header.get("alg") != "RS256":
        raise _refuse("the id_token must be signed with RS256 (Security Framework 5.1.3 step 6)", status=401)
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise _refuse("the id_token's header names no kid", status=401)
    key = keys.key(platform.jwks_url, kid)
    if key is None:
        raise _refuse("the id_token is signed with a key (kid) the platform's JWKS does not hold", status=401)
    try:
        claims = jwt.decode(
            token, key, algorithms=["RS256"], audience=platform.client_id, issuer=platform.issuer, leeway=SKEW_SECONDS,
            options={"require": ["iss", "aud", "exp", "iat", "nonce"]},
        )
    except jwt.InvalidTokenError as exc:  # pyjwt names the claim: exp passed, iat in the future, aud, iss...
        raise _refuse(f"the id_token is not valid: {exc}", status=401) from None
    aud = claims["aud"]
    azp = claims.get("azp")
    if (isinstance(aud, list) and len(aud) > 1 and azp is None) or (azp is not None and azp != platform.client_id):
        raise _refuse("the id_token's azp must be Tessera's client_id (Security Framework 5.1.3 steps 4-5)", status=401)
    if not secrets.compare_digest(str(claims["nonce"]), nonce):
        raise _refuse("the id_token's nonce is not the one issued at login", status=401)
    presentation = claims.get(C_PRESENTATION)
    return_url = presentation.get("return_url") if isinstance(presentation, dict) else None
    _check_lti_claims(claims, platform, target_link_uri, return_url if isinstance(return_url, str) else None)
    return Launch(platform, claims)


def _check_lti_claims(claims: dict[str, Any], platform: Platform, target_link_uri: str, return_url: str | None) -> None:
    message_type = _required(claims, C_MESSAGE_TYPE, str, return_url)
    if message_type not in MESSAGE_TYPES:
        raise _refuse(f"message_type {message_type!r} is not one Tessera accepts ({', '.join(MESSAGE_TYPES)})", return_url=return_url)
    if _required(claims, C_VERSION, str, return_url) != "1.3.0":
        raise _refuse("the version claim must be 1.3.0 (LTI core 5.3.2)", return_url=return_url)
    if _required(claims, C_DEPLOYMENT, str, return_url) not in platform.deployment_ids:
        raise _refuse("the deployment_id is not a known deployment of this platform (LTI core 5.3.3)", return_url=return_url)
    _required(claims, C_ROLES, list, return_url)
    if message_type == RESOURCE_LINK:
        if _required(claims, C_TARGET, str, return_url) != target_link_uri:
            raise _refuse("the target_link_uri claim differs from the login's target_link_uri", return_url=return_url)
        _required(claims, C_RESOURCE_LINK + "#id", str, return_url)
    else:
        _required(claims, C_DL_SETTINGS + "#deep_link_return_url", str, return_url)
        _required(claims, C_DL_SETTINGS + "#accept_types", list, return_url)


# --- login state and nonces -----------------------------------------------------------------


def spend_nonce(conn: Connection, scope: str, nonce: str, ttl_seconds: int) -> bool:
    """Record a nonce as used; False when it already was (a replay). Runs in the caller's
    transaction; a SAVEPOINT keeps a duplicate from aborting it on PostgreSQL."""
    now = utcnow()
    if secrets.randbelow(100) == 0:  # now and then, forget nonces past their window
        conn.execute(delete(tt.nonces).where(tt.nonces.c.expires_at < now))
    try:
        with conn.begin_nested():
            conn.execute(insert(tt.nonces).values(scope=scope[:300], nonce=nonce[:300], expires_at=now + timedelta(seconds=ttl_seconds)))
    except SAIntegrityError:
        return False
    return True


def upsert(conn: Connection, table: Any, row: dict[str, Any], keys: list[str]) -> None:
    """INSERT, or UPDATE the row with the same ``keys`` (both engines speak ON CONFLICT)."""
    ins = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table).values(**row)
    conn.execute(ins.on_conflict_do_update(index_elements=keys, set_={k: ins.excluded[k] for k in row if k not in keys}))


@dataclass(frozen=True)
class LaunchContext:
    """What the latest launch from an LMS context said about its services."""

    platform: Platform
    context_id: str
    section_id: uuid.UUID | None
    ags_lineitems: str | None
    ags_scopes: frozenset[str]
    nrps_url: str | None


def context_row(launch: Launch, section_id: uuid.UUID | None) -> dict[str, Any] | None:
    """The ``lti_tool_contexts`` row a launch leaves (AGS 3.1 and NRPS 3.6.1.1 claims)."""
    context_id = launch.claim(C_CONTEXT).get("id")
    if not isinstance(context_id, str) or not context_id:
        return None
    ags, nrps = launch.claim(C_AGS), launch.claim(C_NRPS)
    scopes = [x for x in ags.get("scope", []) if isinstance(x, str)] if isinstance(ags.get("scope"), list) else []
    lineitems, memberships = ags.get("lineitems"), nrps.get("context_memberships_url")
    return {
        "platform_id": launch.platform.id, "context_id": context_id[:255], "tenant": launch.platform.tenant,
        "section_id": section_id, "ags_lineitems": lineitems if isinstance(lineitems, str) else None,
        "ags_scopes": orjson.dumps(sorted(set(scopes))).decode(),
        "nrps_url": memberships if isinstance(memberships, str) else None, "updated_at": utcnow(),
    }


def launch_context(ctx: AppContext, tenant: str, platform_id: uuid.UUID, context_id: str) -> LaunchContext:
    """The services of a context this tenant's platform launched Tessera from (NotFound else)."""
    platform = PlatformStore(ctx.store.engine).get(tenant, platform_id)
    c = tt.contexts
    with ctx.store.engine.connect() as conn:
        row = conn.execute(select(c).where(c.c.platform_id == platform.id, c.c.context_id == context_id)).first()
    if row is None:
        raise NotFound(f"no launch from context {context_id!r} of this platform yet")
    return LaunchContext(platform, row.context_id, row.section_id, row.ags_lineitems, frozenset(orjson.loads(row.ags_scopes)), row.nrps_url)


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


# --- recording the launch -------------------------------------------------------------------


def sub_system(platform: Platform) -> str:
    """The identifier system of a platform's ``sub`` values: its issuer (LTI core 5.1.2)."""
    return platform.issuer[:128]


def _names(claims: dict[str, Any], sub: str) -> tuple[str, str]:
    full = str(claims.get("name") or "").split()
    given = str(claims.get("given_name") or (full[0] if full else "") or "LTI")
    family = str(claims.get("family_name") or " ".join(full[1:]) or f"user {sub[:12]}")
    return given[:256], family[:256]


def primary_role(roles: list[str]) -> Role:
    """The launch's role in its context: teacher before aide before learner (mappings/lti-roles.yaml)."""
    from .platform import canonical_role

    found = {canonical_role(r) for r in roles if isinstance(r, str)}
    for role in ("teacher", "aide", "administrator", "student", "guardian", "staff"):
        if role in found:
            return Role(role)
    return Role.other


def launch_records(ctx: AppContext, launch: Launch) -> tuple[list[Record], uuid.UUID | None, uuid.UUID | None]:
    """The Person and Enrollment a resource link launch records, with the person's and the
    section's ids. An anonymous launch (no ``sub``, LTI core 5.3.6) records nothing."""
    p, claims, sub = launch.platform, launch.claims, launch.sub
    if not isinstance(sub, str) or not sub:
        return [], None, None
    lis = launch.claim(C_LIS)
    person, records = person_records(ctx, p, sub, claims, lis.get("person_sourcedid"))
    section, made = section_records(ctx, p, lis.get("course_section_sourcedid"), launch.claim(C_CONTEXT))
    records.extend(made)
    if section is not None:
        records.extend(enrollment_records(ctx, p, person, section, sub, launch.roles))
    return records, person.id, section.id if section is not None else None


def person_records(ctx: AppContext, p: Platform, sub: str, claims: dict[str, Any], sourcedid: Any) -> tuple[Person, list[Record]]:
    """The Person a platform's ``sub`` stands for, and what to write for it: the roster's own
    Person when the LIS ``person_sourcedid`` finds it (the sub becomes one more of its
    identifiers), else a Person of the platform's own."""
    sub_id = Identifier(system=sub_system(p), kind="lti.sub", value=sub)
    person = _joined(ctx, p.tenant, p.roster_system, "person", sourcedid)
    if isinstance(person, Person):
        return person, [] if sub_id in person.identifiers else [person.model_copy(update={"identifiers": [*person.identifiers, sub_id]})]
    given, family = _names(claims, sub)
    email = claims.get("email") if isinstance(claims.get("email"), str) and "@" in claims["email"] else None
    person = Person(
        tenant=p.tenant, source=sub_system(p), native_id=sub[:255], given_name=given, family_name=family, email=email,
        identifiers=[sub_id],
    )
    return person, [person]


def section_records(ctx: AppContext, p: Platform, sourcedid: Any, context: dict[str, Any]) -> tuple[Section | None, list[Record]]:
    """The Section of a launch or a membership: the roster's (LIS ``course_section_sourcedid``),
    else one made from the context claim, else none."""
    section = _joined(ctx, p.tenant, p.roster_system, "section", sourcedid)
    if isinstance(section, Section):
        return section, []
    if isinstance(context.get("id"), str) and context["id"]:
        return _context_section(p, context)
    return None, []


def enrollment_records(
    ctx: AppContext, p: Platform, person: Person, section: Section, sub: str, roles: list[str], *, active: bool = True
) -> list[Record]:
    """The platform's Enrollment of a person in a section; none when the roster (another
    source, e.g. the SIS through OneRoster) already enrolls them there: the roster is the
    authority on enrollments, the LMS only confirms them."""
    existing = ctx.store.records.page(p.tenant, "enrollment", limit=10, filters={"person_id": person.id, "section_id": section.id})
    if any(orjson.loads(d)["source"] != sub_system(p) for d in existing.items):
        return []
    return [Enrollment(
        tenant=p.tenant, source=sub_system(p), native_id=f"{section.id}:{sub}"[:255], person_id=person.id, section_id=section.id,
        role=primary_role(roles), status=Status.active if active else Status.tobedeleted,
    )]


def _joined(ctx: AppContext, tenant: str, system: str, kind: str, sourcedid: Any) -> Record | None:
    """The roster's record whose OneRoster sourcedId the LIS claim names (DESIGN 3)."""
    if not isinstance(sourcedid, str) or not sourcedid:
        return None
    found = ctx.store.records.lookup(tenant, system, "oneroster.sourcedId", sourcedid, record_kind=kind)
    return ctx.store.records.get(tenant, kind, found[0][1]) if found else None


def _context_section(p: Platform, context: dict[str, Any]) -> tuple[Section, list[Record]]:
    """A context the roster does not know: an Org for the platform, a Course and a Section."""
    system = sub_system(p)
    title = str(context.get("title") or context.get("label") or context["id"])[:512]
    org = Org(tenant=p.tenant, source=system, native_id="platform", name=p.name, type=OrgType.other)
    course = Course(tenant=p.tenant, source=system, native_id=context["id"][:255], title=title, code=context.get("label"), org_id=org.id)
    section = Section(tenant=p.tenant, source=system, native_id=context["id"][:255], title=title, course_id=course.id, org_id=org.id)
    return section, [org, course, section]


# --- the launched page ------------------------------------------------------------------------


def _rows(ctx: AppContext, tenant: str, kind: str, **filters: Any) -> list[dict[str, Any]]:
    return [orjson.loads(d) for d in ctx.store.records.page(tenant, kind, limit=200, filters=filters).items]


def view(ctx: AppContext, launch: Launch, person_id: uuid.UUID | None, section_id: uuid.UUID | None) -> HTMLResponse:
    """The learner's mastery, or the teacher's class: Tessera's view inside the LMS."""
    tenant = launch.platform.tenant
    custom = launch.claim(C_CUSTOM)
    focus = f"<p>Competency: {html.escape(str(custom['competency']))}</p>" if custom.get("competency") else ""
    if primary_role(launch.roles) in (Role.teacher, Role.aide, Role.administrator) and section_id is not None:
        people = [
            ctx.store.records.get_json(tenant, "person", uuid.UUID(e["person_id"]))
            for e in _rows(ctx, tenant, "enrollment", section_id=section_id) if e["role"] == "student"
        ]
        items = "".join(
            f"<li>{html.escape(d['given_name'])} {html.escape(d['family_name'])}</li>" for d in map(orjson.loads, people)
        )
        return page("Tessera: class mastery", f"{focus}<h2>Learners</h2><ul class=\"learners\">{items}</ul>")
    states = _rows(ctx, tenant, "mastery_state", learner_id=person_id) if person_id else []
    items = "".join(
        f"<li>{html.escape(str(s['competency_id']))}: {html.escape(str(s.get('level') or s.get('value')))}</li>" for s in states
    )
    return page("Tessera: my competencies", f"{focus}<ul class=\"mastery\">{items or '<li>No evidence yet.</li>'}</ul>")


# --- the router -------------------------------------------------------------------------------


async def _params(request: Request) -> dict[str, str]:
    """Query parameters and, for a form POST, the form fields (later wins)."""
    out = dict(request.query_params)
    if request.method == "POST":
        out.update(parse_qsl((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True))
    return out


@dataclass
class ToolService:
    """What the tool's endpoints share: the registrations and the platforms' key cache."""

    ctx: AppContext
    keys: PlatformKeys = field(default_factory=PlatformKeys)

    def __post_init__(self) -> None:
        self.platforms = PlatformStore(self.ctx.store.engine)

    def login(self, request: Request, p: dict[str, str]) -> Response:
        """Security Framework 5.1.1.1-5.1.1.2: check the initiation, answer the auth request."""
        for name in ("iss", "login_hint", "target_link_uri"):
            if not p.get(name):
                raise _refuse(f"the login initiation lacks the parameter {name}")
        platform = self.platforms.find(p["iss"], p.get("client_id"))
        if platform is None:
            raise _refuse("no platform is registered with this iss and client_id", status=401)
        if p.get("lti_deployment_id") and p["lti_deployment_id"] not in platform.deployment_ids:
            raise _refuse("the lti_deployment_id is not a known deployment of this platform")
        if urlsplit(p["target_link_uri"]).netloc != urlsplit(public_base(self.ctx, request)).netloc:
            raise _refuse("the target_link_uri is not a Tessera URL")
        state, ls = begin_login(self.ctx.store.engine, platform, p["target_link_uri"])
        auth = {
            "scope": "openid", "response_type": "id_token", "response_mode": "form_post", "prompt": "none",
            "client_id": platform.client_id, "redirect_uri": f"{public_base(self.ctx, request)}/lti/launch",
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

    def launch(self, request: Request, p: dict[str, str]) -> Launch:
        """Security Framework 5.1.1.3 and 5.1.3: the authentication response."""
        if p.get("error"):
            raise _refuse(f"the platform refused the login: {p['error']} {p.get('error_description', '')}".strip())
        state, token = p.get("state", ""), p.get("id_token", "")
        if not state or not token:
            raise _refuse("the launch lacks the state or the id_token")
        if request.cookies.get(COOKIE_PREFIX + state) != state:
            raise _refuse("the launch's state does not match this browser's login (state cookie)", status=401)
        ls = take_login_state(self.ctx.store.engine, state)
        platform = self.platforms.by_id(ls.platform_id) if ls is not None else None
        if ls is None or platform is None:
            raise _refuse("the launch's state is unknown, used or expired: start again from the platform", status=401)
        return validate_id_token(token, platform, nonce=ls.nonce, target_link_uri=ls.target_link_uri, keys=self.keys)

    def record(self, launch: Launch) -> tuple[uuid.UUID | None, uuid.UUID | None]:
        """Write the launch's Person and Enrollment, spend its nonce and keep its context's
    service URLs, in one transaction."""
        records, person_id, section_id = launch_records(self.ctx, launch)
        scope = f"lti13:{launch.platform.issuer}"
        nonce = str(launch.claims["nonce"])
        context = context_row(launch, section_id)

        def within(conn: Connection) -> None:
            if not spend_nonce(conn, scope, nonce, STATE_SECONDS + 2 * SKEW_SECONDS):
                raise _refuse("the id_token's nonce was already used (replay)", status=401)
            if context is not None:
                upsert(conn, tt.contexts, context, ["platform_id", "context_id"])

        self.ctx.store.records.apply(launch.platform.tenant, records, within=within)
        return person_id, section_id


def _logged(what: str, fn: Callable[[], Response]) -> Response:
    try:
        return fn()
    except LtiLaunchError as exc:
        log.warning("LTI %s refused: %s", what, exc.detail)
        raise


def build_router(ctx: AppContext, *, keys: PlatformKeys | None = None) -> APIRouter:
    from . import ags_client, deep_linking, nrps_client
    from .service_auth import ServiceAuth

    router = APIRouter(tags=["lti"])
    service = ToolService(ctx, keys or PlatformKeys())
    for prefix in ("/lti/login", "/lti/launch", "/lti/deep-linking"):
        register_error_shape(prefix, render_error)

    # two decorators, not api_route(methods=[...]): each method gets its own OpenAPI operation id
    @router.get("/lti/login", summary="OIDC third-party initiated login (LTI 1.3 tool)")
    @router.post("/lti/login", summary="OIDC third-party initiated login (LTI 1.3 tool)")
    async def login(request: Request) -> Response:
        p = await _params(request)
        return await run_in_threadpool(_logged, "login", lambda: service.login(request, p))

    @router.post("/lti/launch", summary="LTI 1.3 launch: the id_token from the platform")
    async def launch(request: Request) -> Response:
        p = await _params(request)

        def run() -> Response:
            result = service.launch(request, p)
            if result.message_type == DEEP_LINKING:
                service.record(result)
                return deep_linking.picker(ctx, result)
            person_id, section_id = service.record(result)
            resp = view(ctx, result, person_id, section_id)
            resp.delete_cookie(COOKIE_PREFIX + p["state"], path="/lti/")
            return resp

        return await run_in_threadpool(_logged, "launch", run)

    router.include_router(deep_linking.build_router(ctx))
    services = ServiceAuth(ctx.auth.keys, httpx.Client(timeout=15))
    router.include_router(ags_client.build_router(ctx, services))
    router.include_router(nrps_client.build_router(ctx, services))
    return router


__all__ = [
    "Launch", "LtiLaunchError", "PlatformKeys", "ToolService", "build_router", "form_post_page", "launch_records",
    "page", "primary_role", "spend_nonce", "validate_id_token",
]
