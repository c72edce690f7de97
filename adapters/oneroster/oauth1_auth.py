"""OneRoster 1.1 REST security, provider side: OAuth 1.0a signed requests on ``/ims/oneroster/v1p1/``.

The OneRoster 1.1 REST binding has consumers sign every request with OAuth 1.0a, one-legged
(a consumer key and secret, no token), HMAC-SHA256; 1.2 replaced that with OAuth 2.0
client credentials. This module gives the 1.1 paths both, so a 1.1 SIS or LMS can sign and
a newer consumer can use a bearer token, while the 1.2 paths stay OAuth 2.0 only.

Choices, written down:

* **One principal, two proofs.** A consumer key belongs to one tenant and carries the same
  OneRoster 1.2 scope names a bearer client holds (``roster-core.readonly`` ...
  ``resource.readonly``). A verified signature yields the ``Principal`` a token would
  (tenant, key as client id, scopes with what they imply), which is then handed to
  ``AppContext.require``'s own scope check: tenant isolation and 403s are identical.
* **Signature methods**: HMAC-SHA256 (what 1.1 prescribes) and HMAC-SHA1 (what many 1.1 SIS
  vendors and the LTI 1.1 family of libraries still send; still an HMAC, unlike PLAINTEXT,
  which sends the secret itself and is refused, as are RSA-SHA1 and anything else).
* **Where the oauth_* parameters may be** (RFC 5849 3.5): the ``Authorization: OAuth``
  header, the query string or a form-encoded body. A request counts as signed when it
  carries the header, or has no ``Authorization`` header and an ``oauth_signature``
  parameter in its query or form body; otherwise the bearer token path answers.
* **The URL that was signed** (RFC 5849 3.4.1.2) is the request's own, as the server got it:
  the raw path (not its percent-decoded form) and the raw query; scheme and host are the
  ones uvicorn derived (it honours ``X-Forwarded-Proto`` from trusted proxies), or, when
  ``TESSERA_PUBLIC_URL`` is set, the path goes under that base, as in ``Link`` headers.
* **Where keys live**: in the gateway's one OAuth 1.0a consumer store
  (``gateway.auth.consumers``, shared with LTI 1.1), under the purpose ``oneroster``: a key
  made for anything else does not verify here.
* **Timestamp and nonce**: ``gateway.auth.oauth1`` accepts ``oauth_timestamp`` within
  ``DEFAULT_WINDOW`` seconds of now either way and spends (consumer key, nonce, timestamp)
  once, only after the signature verified, so a refused request leaves no nonce behind.
* **Body**: a form body is signed as parameters; any other body (a 1.1 gradebook ``PUT``
  of JSON) must carry ``oauth_body_hash`` (OAuth Request Body Hash, as LTI 1.1 uses it),
  which the signature covers, so a body cannot be swapped under a valid signature.
* **Refusals** are 401 with ``WWW-Authenticate: OAuth realm="tessera-oneroster",
  oauth_problem="..."`` (OAuth Problem Reporting: ``signature_invalid``,
  ``timestamp_refused``, ``nonce_used``, ``consumer_key_unknown``, ``consumer_key_refused``
  for a revoked key, ``signature_method_rejected``, ``parameter_absent``...) and an
  imsx_StatusInfo body (failure / error / unauthorisedrequest) whose description names
  the problem and never a secret. Insufficient scope stays 403 forbidden, without the
  Bearer challenge a token caller gets. A 401 with no credentials at all offers both
  challenges (Bearer and OAuth).
* **Links**: the oauth_* parameters of a query-signed request are left out of the ``Link``
  header's URLs (``unsigned``): a signature is good for one request only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from gateway.api.problems import register_error_shape
from gateway.auth import Principal, consumers
from gateway.auth import scopes as sc
from gateway.auth.oauth1 import FORM, OAuth1Error
from gateway.errors import (
    AuthError,
    NotFound,
    ScopeError,
    TesseraError,
    ValidationError,
)

from .status_info import render_status_info

if TYPE_CHECKING:
    from gateway.api.context import AppContext

PREFIX_V1P1 = "/ims/oneroster/v1p1/"
REALM = "tessera-oneroster"
#: the scopes a OneRoster consumer key may carry: the OneRoster 1.2 names, nothing of Tessera's own
SCOPES = ("roster-core.readonly", "roster.readonly", "roster-demographics.readonly", "gradebook.readonly",
          "gradebook.createput", "gradebook.delete", "resource.readonly")


#: what a OneRoster 1.1 consumer key is for, in the gateway's one consumer store
PURPOSE = "oneroster"


@dataclass(frozen=True)
class Consumer:
    """A OneRoster 1.1 consumer key (never its secret)."""

    consumer_key: str
    tenant: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None

    def principal(self) -> Principal:
        return Principal(self.tenant, self.consumer_key, sc.expand(self.scopes))


def _consumer(c: consumers.Consumer) -> Consumer:
    return Consumer(c.consumer_key, c.tenant, c.name, c.scopes, c.created_at, c.revoked_at)


class ConsumerStore:
    """OneRoster 1.1 consumer keys, kept in the gateway's consumer store (``gateway.auth.consumers``)
    under the purpose ``oneroster``, with the OneRoster scopes they carry."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.consumers = consumers.ConsumerStore(engine)

    def create(self, tenant: str, scopes: Iterable[str], name: str | None = None) -> tuple[Consumer, str]:
        """A new key and its secret; the secret is returned once and stored only sealed."""
        wanted = sc.normalize(scopes)
        bad = [s for s in wanted if s not in SCOPES]
        if bad:
            raise ValidationError(f"not OneRoster scope(s): {' '.join(bad)}; known: {' '.join(SCOPES)}")
        if not wanted:
            raise ValidationError("a consumer key needs at least one scope")
        made, secret = self.consumers.add(tenant, PURPOSE, name=name, scopes=wanted, key_prefix="or1_")
        return _consumer(made), secret

    def get(self, consumer_key: str) -> Consumer:
        found = self.consumers.get(consumer_key, PURPOSE)
        if found is None:
            raise NotFound(f"no OneRoster consumer key {consumer_key}")
        return _consumer(found)

    def list(self, tenant: str | None = None) -> list[Consumer]:
        return [_consumer(c) for c in self.consumers.list(tenant, PURPOSE)]

    def revoke(self, consumer_key: str) -> None:
        if not self.consumers.revoke(consumer_key, PURPOSE):
            raise NotFound(f"no active OneRoster consumer key {consumer_key}")

    def authenticate(self, url: str, method: str, body: bytes, headers: Mapping[str, str]) -> Principal:
        """Verify one signed request (``gateway.auth.oauth1.verify``) -> the key's principal."""
        _, consumer = self.consumers.verify(url, method, body, headers, purpose=PURPOSE, realm=REALM)
        return _consumer(consumer).principal()


def signed_url(request: Request, public_url: str | None) -> str:
    """The URL the consumer signed: the raw path and query as received, under the public base
    URL when there is one (the same base the ``Link`` headers use)."""
    url = request.url
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    if not public_url:
        return urlunsplit((url.scheme, url.netloc, path, query, ""))
    base = urlsplit(public_url.rstrip("/"))
    return urlunsplit((base.scheme, base.netloc, base.path + path, query, ""))


def _signature_in(params: Iterable[tuple[str, str]]) -> bool:
    return any(k == "oauth_signature" for k, _ in params)


async def _signed(request: Request) -> bool | None:
    """True: OAuth 1.0a; False: the bearer path; None: no credentials at all."""
    scheme = request.headers.get("authorization", "").partition(" ")[0].lower()
    if scheme:
        return scheme == "oauth"
    if _signature_in(request.query_params.multi_items()):
        return True
    if FORM in request.headers.get("content-type", "").lower():
        return _signature_in(parse_qsl((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True)) or None
    return None


def require(ctx: AppContext, version: str, *any_of: str) -> Callable[[Request], Awaitable[Principal]]:
    """The auth dependency of a OneRoster route: ``ctx.require`` on 1.2 (OAuth 2.0 only); on 1.1,
    an OAuth 1.0a signature or a bearer token, then the very same scope check."""
    bearer = ctx.require(*any_of)
    if version != "1.1":
        return bearer
    register()
    store = ConsumerStore(ctx.store.engine)

    async def dependency(request: Request) -> Principal:
        if getattr(request.state, "principal", None) is None:
            signed = await _signed(request)
            if signed is None:
                raise AuthError("this OneRoster 1.1 endpoint needs an OAuth 1.0a signature (Authorization: OAuth ..., "
                                "HMAC-SHA256 or HMAC-SHA1) or an OAuth 2.0 access token (Authorization: Bearer <token>)")
            if signed:
                url = signed_url(request, ctx.settings.public_url)
                body = await request.body()
                request.state.principal = await run_in_threadpool(store.authenticate, url, request.method, body, dict(request.headers))
                request.state.oauth1 = True
        return await bearer(request)  # the principal is cached on the request: this checks the scopes

    return dependency


def unsigned(params: Mapping[str, str]) -> dict[str, str]:
    """Query parameters without the oauth_* ones, for the URLs of a ``Link`` header."""
    return {k: v for k, v in params.items() if not k.startswith("oauth_")}


def render(request: Request, exc: TesseraError) -> Response:
    """imsx_StatusInfo as on every OneRoster path, with the OAuth 1.0a challenge of 1.1."""
    resp = render_status_info(request, exc)
    if isinstance(exc, OAuth1Error):
        resp.headers["WWW-Authenticate"] = exc.challenge
    elif isinstance(exc, AuthError):
        resp.headers.append("WWW-Authenticate", f'OAuth realm="{REALM}"')
    elif isinstance(exc, ScopeError) and getattr(request.state, "oauth1", False):
        del resp.headers["WWW-Authenticate"]  # a Bearer challenge means nothing to a signing consumer
    return resp


_registered = False


def register() -> None:
    """Render errors under /ims/oneroster/v1p1/ with ``render``; idempotent."""
    global _registered
    if not _registered:
        register_error_shape(PREFIX_V1P1, render)
        _registered = True


__all__ = ["PURPOSE", "REALM", "SCOPES", "Consumer", "ConsumerStore", "register", "require", "signed_url", "unsigned"]
