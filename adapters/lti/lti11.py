"""LTI 1.1: OAuth 1.0a signed launches (tool role) and Basic Outcomes (both roles).

- **Launch, tool role** (LTI 1.1 Implementation Guide 4-5): an LMS POSTs a form signed with
  OAuth 1.0a HMAC-SHA1 under a consumer key and secret shared with Tessera.
  ``gateway.auth.oauth1`` checks the signature, the timestamp window and the single-use
  nonce. The launch is then read as the LTI 1.3 claims it migrates to (``user_id`` ->
  ``sub``, ``lis_*`` -> the LIS claim, ``context_*`` -> the context claim, as the LTI 1.3
  core's migration appendix lays out; role URNs become LIS v2 role URIs), so one piece of code
  (``tool.roster.launch_records``) joins a launch of either version to the roster, and a
  launch opens a web console session the same way (``tool.view.console_sign_in``). The LMS's ``lis_outcome_service_url`` and
  ``lis_result_sourcedid`` are kept so mastery can be sent back.
- **Basic Outcomes, tool role** (LTI Basic Outcomes 1.1): ``OutcomesClient`` sends
  replaceResult / readResult / deleteResult as POX XML, signed with the body hash.
- **Basic Outcomes, consumer role**: ``/lti11/outcomes`` receives a tool's POX calls for the
  ``lis_result_sourcedid`` values Tessera issued; a replaceResult becomes Evidence (a new
  score supersedes the previous one), deleteResult voids it, readResult answers the current
  score. Failures are POX ``failure`` / ``unsupported`` statuses; a bad signature is a 401
  with an OAuth ``WWW-Authenticate`` challenge.

The POX messages themselves are built and parsed in ``lti11_pox``. Keys, sealed secrets and spent nonces live in the gateway's one OAuth 1.0a consumer
store (``gateway.auth.consumers``), shared with OneRoster 1.1.
"""

from __future__ import annotations

import hashlib
import html
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

import typer
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Engine, delete, insert, select, update
from starlette.concurrency import run_in_threadpool

from gateway.auth import Principal, consumers
from gateway.auth.oauth1 import OAuth1Error, SignedRequest
from gateway.errors import (
    NotFound,
    TesseraError,
    UpstreamError,
    ValidationError,
)
from gateway.http import HttpClient, OAuth1Signature, Unreachable
from gateway.model import ActivityRef, Evidence, Provenance, Score, utcnow
from gateway.store.db import WRITE

from .claims import C_CONTEXT, C_CUSTOM, C_LIS, C_ROLE_SCOPE_MENTOR, C_ROLES
from .lti11_pox import POX_TYPE, PoxError, PoxRequest, parse_pox, parse_pox_response, pox_request, pox_response
from .pages import page
from .tool import tables as tt
from .tool.message_launch import Launch
from .tool.platforms import Platform
from .tool.roster import launch_records
from .tool.tables import upsert
from .tool.view import console_sign_in, view

if TYPE_CHECKING:
    from gateway.api.context import AppContext
    from gateway.console.web import Console

log = logging.getLogger("tessera.lti")

ROLES = ("tool", "consumer")


# --- credentials ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Consumer:
    consumer_key: str
    tenant: str
    role: str
    name: str
    roster_system: str


#: what an LTI 1.1 key is for, in the gateway's one OAuth 1.0a consumer store, by role
PURPOSES = {"tool": "lti11.tool", "consumer": "lti11.consumer"}


def _consumer(c: consumers.Consumer) -> Consumer:
    return Consumer(c.consumer_key, c.tenant, c.purpose.removeprefix("lti11."), c.name, str(c.attributes.get("roster_system", "sis")))


class Credentials:
    """LTI 1.1 key/secret pairs, kept in the gateway's OAuth 1.0a consumer store
    (``gateway.auth.consumers``, purpose ``lti11.tool`` or ``lti11.consumer``); the secret
    sealed at rest, opened only to sign or verify."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.consumers = consumers.ConsumerStore(engine)

    def add(self, tenant: str, consumer_key: str, secret: str, *, role: str, name: str | None = None, roster_system: str = "sis") -> Consumer:
        if role not in ROLES:
            raise ValidationError(f"role must be one of {ROLES}")
        if not consumer_key or not secret:
            raise ValidationError("a consumer key and a secret are both required")
        made, _ = self.consumers.add(tenant, PURPOSES[role], consumer_key=consumer_key, secret=secret, name=name,
                                     attributes={"roster_system": roster_system})
        return _consumer(made)

    def get(self, consumer_key: str) -> Consumer | None:
        found = self.consumers.get(consumer_key, PURPOSES.values())
        return _consumer(found) if found is not None else None

    def secret_lookup(self, role: str) -> Callable[[str], str | None]:
        """For ``oauth1.verify`` and signing: the secret of a key of this role, or None."""
        return lambda consumer_key: self.consumers.secret(consumer_key, PURPOSES[role])

    def list(self, tenant: str | None = None) -> list[Consumer]:
        found = self.consumers.list(tenant, PURPOSES.values())
        return [_consumer(c) for c in sorted(found, key=lambda c: (c.tenant, c.consumer_key))]

    def remove(self, tenant: str, consumer_key: str) -> None:
        """Remove a key, and the outcome targets and issued sourcedids kept under it."""

        def forget(conn: Connection) -> None:
            conn.execute(delete(tt.outcome_targets).where(tt.outcome_targets.c.consumer_key == consumer_key))
            conn.execute(delete(tt.results).where(tt.results.c.consumer_key == consumer_key))

        if not self.consumers.remove(tenant, consumer_key, PURPOSES.values(), within=forget):
            raise NotFound(f"no LTI 1.1 consumer key {consumer_key!r}")


def _verify(creds: Credentials, request_url: str, method: str, body: bytes, headers: dict[str, str], role: str) -> SignedRequest:
    signed, _ = creds.consumers.verify(request_url, method, body, headers, purpose=PURPOSES[role], realm="tessera-lti11")
    return signed


def signed_url(ctx: AppContext, request: Request) -> str:
    """The URL the sender signed: the public URL when Tessera sits behind a proxy."""
    url = str(request.url)
    if not ctx.settings.public_url:
        return url
    base = urlsplit(ctx.settings.public_url)
    return urlunsplit(urlsplit(url)._replace(scheme=base.scheme, netloc=base.netloc))


# --- launch, tool role ----------------------------------------------------------------------


LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
#: LTI 1.1 role URN prefixes -> the LTI 1.3 (LIS v2) vocabularies they became
_ROLE_URNS = {"urn:lti:role:ims/lis/": "membership", "urn:lti:instrole:ims/lis/": "institution/person",
              "urn:lti:sysrole:ims/lis/": "system/person"}


def _role_names(roles: str) -> list[str]:
    """LTI 1.1 roles: comma-separated, short ("Instructor") or URN ("urn:lti:role:ims/lis/Learner"),
    read as the LTI 1.3 role URIs they migrate to: a context role URN becomes its ``membership``
    URI (a sub-role, "Instructor/TeachingAssistant", ``membership/Instructor#TeachingAssistant``),
    an institution or system role URN its ``institution/person`` or ``system/person`` URI; a
    short name stays the short context role name LTI 1.3 core A.2.3.1 allows."""
    out = []
    for raw in (r.strip() for r in roles.split(",")):
        if not raw:
            continue
        for prefix, vocab in _ROLE_URNS.items():
            if raw.startswith(prefix):
                role, _, sub = raw[len(prefix):].partition("/")
                out.append(f"{LIS}{vocab}/{role}#{sub}" if sub else f"{LIS}{vocab}#{role}")
                break
        else:
            out.append(f"{LIS}membership/Instructor#TeachingAssistant" if raw == "TeachingAssistant" else raw.rsplit("/", 1)[-1])
    return out


def as_launch(consumer: Consumer, p: dict[str, str]) -> Launch:
    """An LTI 1.1 launch read as LTI 1.3 claims, so ``tool.roster.launch_records`` serves both."""
    platform = Platform(
        id=uuid.uuid5(uuid.NAMESPACE_URL, f"lti11:{consumer.consumer_key}"), tenant=consumer.tenant, name=consumer.name,
        issuer=f"lti11:{consumer.consumer_key}", client_id=consumer.consumer_key, deployment_ids=(), auth_login_url="",
        token_url="", jwks_url="", roster_system=consumer.roster_system,
    )
    claims: dict[str, Any] = {
        "sub": p.get("user_id"),
        "given_name": p.get("lis_person_name_given"), "family_name": p.get("lis_person_name_family"),
        "name": p.get("lis_person_name_full"), "email": p.get("lis_person_contact_email_primary"),
        C_ROLES: _role_names(p.get("roles", "")),
        C_ROLE_SCOPE_MENTOR: [u.strip() for u in p.get("role_scope_mentor", "").split(",") if u.strip()],
        C_LIS: {"person_sourcedid": p.get("lis_person_sourcedid"), "course_section_sourcedid": p.get("lis_course_section_sourcedid")},
        C_CONTEXT: {"id": p.get("context_id"), "label": p.get("context_label"), "title": p.get("context_title")},
    }
    claims[C_CUSTOM] = {k[len("custom_"):]: v for k, v in p.items() if k.startswith("custom_")}
    return Launch(platform, claims)


def _check_launch(p: dict[str, str]) -> None:
    """LTI 1.1 Implementation Guide: the three parameters every basic launch carries."""
    if p.get("lti_message_type") != "basic-lti-launch-request":
        raise ValidationError("lti_message_type must be basic-lti-launch-request")
    if p.get("lti_version") not in ("LTI-1p0", "LTI-1p1"):
        raise ValidationError("lti_version must be LTI-1p0")
    if not p.get("resource_link_id"):
        raise ValidationError("the launch lacks resource_link_id")


def _keep_outcome_target(consumer: Consumer, person_id: uuid.UUID, p: dict[str, str]) -> Callable[[Connection], None] | None:
    url, sourcedid = p.get("lis_outcome_service_url"), p.get("lis_result_sourcedid")
    if not url or not sourcedid:
        return None
    row = {
        "tenant": consumer.tenant, "person_id": person_id, "resource_link_id": p["resource_link_id"][:255],
        "consumer_key": consumer.consumer_key, "service_url": url, "sourcedid": sourcedid, "updated_at": utcnow(),
    }

    def write(conn: Connection) -> None:
        upsert(conn, tt.outcome_targets, row, ["tenant", "person_id", "resource_link_id"])

    return write


class LaunchRefused(ValidationError):
    """An LTI 1.1 launch refused after its signature verified: back to the return URL."""

    def __init__(self, detail: str, return_url: str | None) -> None:
        super().__init__(detail)
        self.return_url = return_url


def launch(ctx: AppContext, creds: Credentials, url: str, body: bytes, headers: dict[str, str], console: Console | None = None) -> Response:
    """A verified launch records the person (and their outcome service), then opens a web
    console session (``tool.view.console_sign_in``) or, without the console, shows the view."""
    signed = _verify(creds, url, "POST", body, headers, "tool")
    p = signed.params
    consumer = creds.get(signed.consumer_key)
    assert consumer is not None  # the signature verified under this key
    try:
        _check_launch(p)
    except ValidationError as exc:
        raise LaunchRefused(exc.detail, p.get("launch_presentation_return_url")) from None
    lt = as_launch(consumer, p)
    records, person_id, section_id = launch_records(ctx, lt)
    within = _keep_outcome_target(consumer, person_id, p) if person_id else None
    ctx.store.records.apply(consumer.tenant, records, within=within)
    return console_sign_in(console, ctx, lt, person_id, section_id, via="lti1.1") or view(ctx, lt, person_id, section_id)


def render_launch_error(exc: Exception) -> Response:
    """LTI 1.1: a refused launch goes back with ``lti_errormsg``; a bad signature is a 401."""
    if isinstance(exc, OAuth1Error):
        resp = page("LTI launch refused", f"<p>{html.escape(exc.detail)}</p>", status=401)
        resp.headers["WWW-Authenticate"] = exc.challenge
        return resp
    detail = getattr(exc, "detail", str(exc))
    return_url = getattr(exc, "return_url", None)
    if return_url:
        parts = urlsplit(return_url)
        query = "&".join(q for q in (parts.query, urlencode({"lti_errormsg": detail})) if q)
        return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=302)
    return page("LTI launch refused", f"<p>{html.escape(detail)}</p>", status=400)


# --- outcomes, consumer role ------------------------------------------------------------------


def issue_sourcedid(
    engine: Engine, tenant: str, consumer_key: str, learner_id: uuid.UUID, activity_id: str, competency_id: uuid.UUID | None = None
) -> str:
    """A ``lis_result_sourcedid`` for a launch of an LTI 1.1 tool: opaque, unguessable, and
    standing for (learner, activity, competency) when the tool's outcomes come back."""
    sourcedid = secrets.token_urlsafe(24)
    with engine.connect().execution_options(**WRITE) as conn, conn.begin():
        conn.execute(insert(tt.results).values(
            sourcedid=sourcedid, tenant=tenant, consumer_key=consumer_key, learner_id=learner_id,
            activity_id=activity_id, competency_id=competency_id, updated_at=utcnow(),
        ))
    return sourcedid


def _evidence(consumer: Consumer, row: Any, req: PoxRequest, body: bytes, previous: uuid.UUID | None) -> Evidence:
    now = utcnow()
    native = f"{req.sourcedid}:{req.message_id or hashlib.sha256(body).hexdigest()[:16]}"[:255]
    return Evidence(
        tenant=consumer.tenant, source=f"lti11:{consumer.consumer_key}"[:128], native_id=native, learner_id=row.learner_id,
        competency_id=row.competency_id, activity=ActivityRef(system=f"lti11:{consumer.consumer_key}"[:128], id=row.activity_id),
        score=Score(raw=req.score, min=0.0, max=1.0, scaled=req.score), observed_at=now, assessor=consumer.name,
        provenance=Provenance(
            standard="lti11-outcomes", version="1.1", system=consumer.consumer_key, native_id=native,
            payload_sha256=hashlib.sha256(body).hexdigest(), received_at=now,
        ),
        supersedes=previous,
    )


def outcomes(ctx: AppContext, creds: Credentials, signed: SignedRequest, body: bytes) -> bytes:
    """Basic Outcomes 1.1 as the consumer: replaceResult -> Evidence, readResult, deleteResult."""
    consumer = creds.get(signed.consumer_key)
    assert consumer is not None
    req = parse_pox(body)
    with ctx.store.engine.connect() as conn:
        row = conn.execute(select(tt.results).where(
            tt.results.c.sourcedid == req.sourcedid, tt.results.c.consumer_key == consumer.consumer_key
        )).first()
    if row is None:  # another key's sourcedid is as unknown as a made-up one
        raise PoxError("unknown sourcedId", message_id=req.message_id, operation=req.operation)
    if req.operation == "readResult":
        return pox_response("readResult", req.message_id, score=row.score, description="the current result")
    if req.operation == "replaceResult":
        ev = _evidence(consumer, row, req, body, row.evidence_id)
        if ev.id == row.evidence_id:  # the tool resent the same message: already stored
            return pox_response("replaceResult", req.message_id, description="replaceResult done")
        update_row: dict[str, Any] = {"score": req.score, "evidence_id": ev.id}
        records = [ev]
    else:
        if row.evidence_id is None:
            return pox_response("deleteResult", req.message_id, description="there was no result")
        stored = ctx.store.records.get(consumer.tenant, "evidence", row.evidence_id)
        records = [stored.model_copy(update={"voided": True})]
        update_row = {"score": None, "evidence_id": None}

    def keep(conn: Connection) -> None:
        conn.execute(update(tt.results).where(tt.results.c.sourcedid == req.sourcedid).values(updated_at=utcnow(), **update_row))

    try:
        ctx.store.records.apply(consumer.tenant, records, within=keep)
    except TesseraError as exc:  # the store refused the evidence: still a POX answer
        raise PoxError(str(exc), message_id=req.message_id, operation=req.operation) from None
    return pox_response(req.operation, req.message_id, description=f"{req.operation} done")


# --- outcomes, tool role ----------------------------------------------------------------------


class OutcomesClient:
    """Sends a learner's result to the LMS that launched Tessera (Basic Outcomes 1.1)."""

    def __init__(self, ctx: AppContext, http: HttpClient | None = None) -> None:
        self.ctx = ctx
        self.creds = Credentials(ctx.store.engine)
        self.http = http or HttpClient(timeout=15)

    def _target(self, tenant: str, person_id: uuid.UUID, resource_link_id: str) -> Any:
        ot = tt.outcome_targets
        with self.ctx.store.engine.connect() as conn:
            row = conn.execute(select(ot).where(
                ot.c.tenant == tenant, ot.c.person_id == person_id, ot.c.resource_link_id == resource_link_id
            )).first()
        if row is None:
            raise NotFound("no LTI 1.1 outcome service is known for this learner and resource link")
        return row

    def call(self, tenant: str, person_id: uuid.UUID, resource_link_id: str, operation: str, score: float | None = None) -> float | None:
        if score is not None and not 0.0 <= score <= 1.0:
            raise ValidationError("an LTI 1.1 outcome is a decimal between 0.0 and 1.0")
        target = self._target(tenant, person_id, resource_link_id)
        secret = self.creds.secret_lookup("tool")(target.consumer_key)
        if secret is None:
            raise NotFound("the consumer key of this outcome service was removed")
        body = pox_request(operation, target.sourcedid, score)
        signer = OAuth1Signature(target.consumer_key, secret, method="HMAC-SHA1", body_hash=True)
        try:
            r = self.http.request("POST", target.service_url, content=body, headers={"Content-Type": POX_TYPE}, auth=signer)
        except Unreachable as exc:
            raise UpstreamError(f"the LMS's outcome service could not be reached ({exc.reason})") from None
        if r.status_code != 200:
            raise UpstreamError(f"the LMS's outcome service answered HTTP {r.status_code}")
        code, description, read = parse_pox_response(r.content)
        if code != "success":
            raise UpstreamError(f"the LMS refused {operation}: {code} {description}".strip())
        return read

    def replace(self, tenant: str, person_id: uuid.UUID, resource_link_id: str, score: float) -> None:
        self.call(tenant, person_id, resource_link_id, "replaceResult", score)

    def read(self, tenant: str, person_id: uuid.UUID, resource_link_id: str) -> float | None:
        return self.call(tenant, person_id, resource_link_id, "readResult")

    def delete(self, tenant: str, person_id: uuid.UUID, resource_link_id: str) -> None:
        self.call(tenant, person_id, resource_link_id, "deleteResult")


# --- router and CLI ---------------------------------------------------------------------------


class ConsumerIn(BaseModel):
    """An LTI 1.1 key as an administrator enters it; without ``secret`` one is generated."""

    model_config = ConfigDict(extra="forbid")

    consumer_key: str = Field(min_length=1, max_length=255)
    role: Literal["tool", "consumer"] = "tool"
    name: str | None = Field(default=None, max_length=256)
    secret: str | None = Field(default=None, min_length=16, max_length=1024)
    roster_system: str = Field(default="sis", min_length=1, max_length=128)


def _consumer_dict(c: Consumer) -> dict[str, str]:
    return {"consumer_key": c.consumer_key, "role": c.role, "name": c.name, "roster_system": c.roster_system}


def build_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(tags=["lti"])
    creds = Credentials(ctx.store.engine)
    admin = Depends(ctx.require("admin"))

    @router.get("/v1/lti/consumers", summary="LTI 1.1 consumer keys of the tenant (never their secrets)")
    def list_consumers(principal: Principal = admin) -> dict[str, Any]:
        return {"consumers": [_consumer_dict(c) for c in creds.list(principal.tenant)]}

    @router.post("/v1/lti/consumers", status_code=201, summary="Add an LTI 1.1 consumer key (the secret is sealed at rest)")
    def add_consumer(body: ConsumerIn, principal: Principal = admin) -> dict[str, Any]:
        secret = body.secret or secrets.token_urlsafe(32)
        made = creds.add(principal.tenant, body.consumer_key, secret, role=body.role, name=body.name, roster_system=body.roster_system)
        return {**_consumer_dict(made), **({} if body.secret else {"secret": secret})}

    @router.delete("/v1/lti/consumers/{consumer_key}", status_code=204, summary="Remove an LTI 1.1 consumer key")
    def remove_consumer(consumer_key: str, principal: Principal = admin) -> Response:
        creds.remove(principal.tenant, consumer_key)
        return Response(status_code=204)

    @router.post("/lti11/launch", summary="LTI 1.1 basic launch (tool role), OAuth 1.0a signed")
    async def launch_route(request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        url = signed_url(ctx, request)
        try:
            return await run_in_threadpool(launch, ctx, creds, url, body, headers, getattr(request.app.state, "console", None))
        except (OAuth1Error, LaunchRefused) as exc:
            log.warning("LTI 1.1 launch refused: %s", exc.detail)
            return render_launch_error(exc)

    @router.post("/lti11/outcomes", summary="LTI 1.1 Basic Outcomes service (consumer role): POX")
    async def outcomes_route(request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        url = signed_url(ctx, request)

        def run() -> Response:
            try:
                signed = _verify(creds, url, "POST", body, headers, "consumer")
            except OAuth1Error as exc:
                log.warning("LTI 1.1 outcome refused: %s", exc.detail)
                answer = pox_response("", "", code="failure", description=exc.detail)
                return Response(answer, status_code=401, media_type=POX_TYPE, headers={"WWW-Authenticate": exc.challenge})
            try:
                return Response(outcomes(ctx, creds, signed, body), media_type=POX_TYPE)
            except PoxError as exc:
                log.warning("LTI 1.1 outcome refused: %s", exc.description)
                answer = pox_response(exc.operation, exc.message_id, code=exc.code, description=exc.description)
                return Response(answer, media_type=POX_TYPE)

        return await run_in_threadpool(run)

    return router


def register_cli(lti_app: typer.Typer) -> None:
    """``tessera lti consumers add|list|remove``: LTI 1.1 keys and secrets."""
    import os

    from rich.table import Table

    from gateway.cli_kit import open_store, out, print_new_credentials

    group = typer.Typer(help="LTI 1.1 consumer keys and secrets (OAuth 1.0a).", no_args_is_help=True)
    lti_app.add_typer(group, name="consumers")

    @group.command("add")
    def add(
        consumer_key: Annotated[str, typer.Argument(help="the oauth_consumer_key")],
        role: Annotated[str, typer.Option(help="tool: an LMS launches Tessera; consumer: Tessera launches an LTI 1.1 tool")] = "tool",
        tenant: Annotated[str, typer.Option(help="tenant the key belongs to")] = "default",
        secret_env: Annotated[str | None, typer.Option("--secret-env", metavar="VAR", help="environment variable holding the secret; "
                                                       "without it a secret is generated and shown once")] = None,
        name: Annotated[str | None, typer.Option(help="a name for people")] = None,
        roster_system: Annotated[str, typer.Option("--roster-system", help="identifier system of LIS sourcedids")] = "sis",
        as_json: Annotated[bool, typer.Option("--json", help="print the new key as one JSON object (for scripts)")] = False,
    ) -> None:
        """Add an LTI 1.1 consumer key; its secret is sealed at rest."""
        secret = os.environ.get(secret_env, "") if secret_env else secrets.token_urlsafe(32)
        if not secret:
            raise typer.BadParameter(f"the environment variable {secret_env} is not set")
        Credentials(open_store().engine).add(tenant, consumer_key, secret, role=role, name=name, roster_system=roster_system)
        fields = {"consumer_key": consumer_key, "role": role, "tenant": tenant}
        if secret_env:
            import orjson

            out.print(orjson.dumps(fields).decode() if as_json else f"added LTI 1.1 key {consumer_key} ({role}) for tenant {tenant}",
                      soft_wrap=True, highlight=False)
        else:  # a generated secret: shown once
            print_new_credentials({**fields, "consumer_secret": secret}, as_json=as_json)

    @group.command("list")
    def list_(tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None) -> None:
        """List LTI 1.1 consumer keys (never their secrets)."""
        table = Table("consumer_key", "tenant", "role", "name")
        for c in Credentials(open_store().engine).list(tenant):
            table.add_row(c.consumer_key, c.tenant, c.role, c.name)
        out.print(table)

    @group.command("remove")
    def remove(consumer_key: str, tenant: Annotated[str, typer.Option(help="the key's tenant")] = "default") -> None:
        """Remove an LTI 1.1 consumer key."""
        Credentials(open_store().engine).remove(tenant, consumer_key)
        out.print(f"removed LTI 1.1 key {consumer_key}")


__all__ = ["Credentials", "OutcomesClient", "as_launch", "build_router", "issue_sourcedid", "register_cli"]
