"""How an outbound request proves who sends it: pluggable, one object per scheme.

An ``Auth`` does two things: ``apply`` puts its credentials on a request about to be
sent (each attempt gets a fresh application: a current token, a new OAuth 1.0a nonce
and timestamp), and ``renew`` is asked, once per request, after the peer answered 401:
True when a new credential was obtained and the request is worth sending again.

* ``BasicAuth``: HTTP Basic (RFC 7617). Nothing to renew.
* ``BearerAuth``: an OAuth 2.0 bearer token (RFC 6750 2.1) from a ``TokenSource``.
  ``gateway.auth.outbound.ClientCredentials`` is one (RFC 6749 4.4 with a client secret);
  a source that signs a JWT client assertion (RFC 7523, LTI Advantage) is another: any
  object with ``token``, ``current`` and ``invalidate`` will do. ``lazy``: the first
  attempt carries a cached token only, or none (peers whose reads are public ask for one
  with their 401).
* ``OAuth1Signature``: OAuth 1.0a one-legged signing (RFC 5849 3.4; a consumer key and
  secret, no token), HMAC-SHA1 or HMAC-SHA256 as OneRoster 1.1 (section 2.2) and LTI 1.1
  use it. The signature covers the exact URL with its query and a form body's fields; a
  body that is not a form gets ``oauth_body_hash`` (OAuth Request Body Hash 1.0) when
  ``body_hash`` is set. The signature base string is built here from oauthlib's RFC 5849
  primitives rather than through ``oauthlib.oauth1.Client``, which writes the signature
  into its DEBUG log.

Secrets stay in private attributes and out of every repr.
"""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import httpx
from oauthlib.common import generate_nonce, generate_timestamp
from oauthlib.oauth1.rfc5849 import SIGNATURE_HMAC_SHA1, SIGNATURE_HMAC_SHA256, parameters, signature

from ..auth.oauth1 import FORM, body_hash
from .retry import RetryPolicy


class HttpClient(Protocol):
    """What an ``Auth`` or a ``TokenSource`` may use of ``gateway.http.HttpClient``: sending
    a request of its own (a token request) through the same pool and policy."""

    def request(self, method: str, url: str | httpx.URL, *, params: Any = None, headers: dict[str, str] | None = None,
                json: Any = None, data: Any = None, content: bytes | str | None = None, auth: Auth | None = None,
                idempotent: bool | None = None, retry: RetryPolicy | None = None) -> httpx.Response: ...


class Auth(Protocol):
    def apply(self, request: httpx.Request, http: HttpClient) -> None:
        """Put the credentials on ``request`` (headers; never the URL)."""

    def renew(self, http: HttpClient) -> bool:
        """The peer answered 401: get a new credential; True when a retry may succeed."""


@runtime_checkable
class TokenSource(Protocol):
    """Where bearer tokens come from; caches them as it sees fit."""

    def token(self, http: HttpClient) -> str:
        """A valid token: the cached one, or a new one."""

    def current(self) -> str | None:
        """The cached token while it is valid, else None (never fetches)."""

    def invalidate(self) -> None:
        """Forget the cached token (the peer refused it)."""


class NoAuth:
    """No credentials (explicitly: overrides a client's default auth for one request)."""

    def apply(self, request: httpx.Request, http: HttpClient) -> None:
        return None

    def renew(self, http: HttpClient) -> bool:
        return False

    def __repr__(self) -> str:
        return "NoAuth()"


class BasicAuth:
    """HTTP Basic (RFC 7617)."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.__header = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")

    def apply(self, request: httpx.Request, http: HttpClient) -> None:
        request.headers["Authorization"] = self.__header

    def renew(self, http: HttpClient) -> bool:
        return False

    def __repr__(self) -> str:
        return f"BasicAuth({self.username!r})"


class BearerAuth:
    """RFC 6750 2.1 bearer tokens from ``source``; one renewal per request on a 401."""

    def __init__(self, source: TokenSource, *, lazy: bool = False) -> None:
        self.source = source
        self.lazy = lazy

    def apply(self, request: httpx.Request, http: HttpClient) -> None:
        token = self.source.current() if self.lazy else self.source.token(http)
        if token:
            request.headers["Authorization"] = f"Bearer {token}"

    def renew(self, http: HttpClient) -> bool:
        self.source.invalidate()
        self.source.token(http)
        return True

    def __repr__(self) -> str:
        return f"BearerAuth({self.source!r}, lazy={self.lazy})"


class OAuth1Signature:
    """OAuth 1.0a, one-legged (RFC 5849 3.1-3.5.1): the ``Authorization: OAuth`` header."""

    METHODS = (SIGNATURE_HMAC_SHA1, SIGNATURE_HMAC_SHA256)

    def __init__(self, consumer_key: str, consumer_secret: str, *, method: str = SIGNATURE_HMAC_SHA256,
                 body_hash: bool = False, realm: str | None = None) -> None:
        if method not in self.METHODS:
            raise ValueError(f"OAuth 1.0a signature method must be one of {self.METHODS}")
        self.consumer_key = consumer_key
        self.__secret = consumer_secret
        self.method = method
        self.body_hash = body_hash
        self.realm = realm

    def __repr__(self) -> str:
        return f"OAuth1Signature({self.consumer_key!r}, method={self.method!r})"

    def oauth_params(self, request: httpx.Request, *, nonce: str | None = None, timestamp: str | None = None) -> list[tuple[str, str]]:
        """The protocol parameters (3.1), ``oauth_body_hash`` (Body Hash 3.1) included when due."""
        params = [
            ("oauth_nonce", nonce or generate_nonce()), ("oauth_timestamp", timestamp or generate_timestamp()),
            ("oauth_version", "1.0"), ("oauth_signature_method", self.method), ("oauth_consumer_key", self.consumer_key),
        ]
        if self.body_hash and not _is_form(request):
            params.append(("oauth_body_hash", body_hash(request.content)))
        return params

    def signature(self, request: httpx.Request, oauth_params: list[tuple[str, str]]) -> str:
        """3.4: the signature of the base string (method, base URI, every parameter)."""
        query = request.url.query.decode("ascii", "replace")
        form = request.content.decode("utf-8", "replace") if _is_form(request) and request.content else None
        collected = signature.collect_parameters(uri_query=query, body=form, exclude_oauth_signature=True) + oauth_params
        parts = urlsplit(str(request.url))
        uri = signature.base_string_uri(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))
        # the stubs narrow the method to a Literal and the parameters to a dict; oauthlib takes
        # any method and the (name, value) pairs RFC 5849 3.4.1.3 allows to repeat
        base = signature.signature_base_string(request.method.upper(), uri, signature.normalize_parameters(collected))  # type: ignore[arg-type]
        sign = signature.sign_hmac_sha256_with_client if self.method == SIGNATURE_HMAC_SHA256 else signature.sign_hmac_sha1_with_client
        return sign(base, SimpleNamespace(client_secret=self.__secret, resource_owner_secret=""))

    def apply(self, request: httpx.Request, http: HttpClient) -> None:
        params = self.oauth_params(request)
        signed = [*params, ("oauth_signature", self.signature(request, params))]
        request.headers["Authorization"] = parameters.prepare_headers(signed, realm=self.realm)["Authorization"]

    def renew(self, http: HttpClient) -> bool:
        return False  # a refused signature stays refused


def _is_form(request: httpx.Request) -> bool:
    return FORM in request.headers.get("Content-Type", "").lower()


__all__ = ["Auth", "BasicAuth", "BearerAuth", "NoAuth", "OAuth1Signature", "TokenSource"]
