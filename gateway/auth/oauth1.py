"""OAuth 1.0a request validation (RFC 5849 3.2) for LTI 1.1 and OneRoster 1.1.

LTI 1.1 launches and Basic Outcomes calls, and OneRoster 1.1 REST calls, are signed
OAuth 1.0a requests with a consumer key and secret and no token ("two-legged"). oauthlib's
``SignatureOnlyEndpoint`` computes and compares the signature; this module adds what the
standards and Tessera need around it:

* the consumer's secret comes from a callable (the adapter's sealed credentials),
* the timestamp must lie within a window, and the nonce is single use within it
  (RFC 5849 3.3): a replay is refused. The nonce is recorded only AFTER the signature
  checks out, so a forged request cannot burn a legitimate client's nonce, and a
  refused request records nothing. The nonce store is a callable because the table it
  writes belongs to the adapter that uses it (gateway tables live in ``gateway/store``),
* the body hash (OAuth Request Body Hash 1.0, used by LTI 1.1 Basic Outcomes for its
  XML bodies): a request whose body is not form-encoded must carry ``oauth_body_hash`` =
  base64(SHA-1(body)), which the signature covers,
* every refusal is an ``OAuth1Error`` (401) naming an OAuth Problem Reporting
  ``oauth_problem`` for the ``WWW-Authenticate: OAuth`` challenge; no secret in it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from oauthlib.oauth1 import RequestValidator, SignatureOnlyEndpoint
from oauthlib.oauth1.rfc5849 import SIGNATURE_HMAC_SHA1, SIGNATURE_HMAC_SHA256, errors

from ..errors import AuthError

#: seconds either side of now within which oauth_timestamp is accepted (and nonces kept)
DEFAULT_WINDOW = 300
FORM = "application/x-www-form-urlencoded"

#: consumer key -> its secret in clear, or None when the key is unknown
SecretLookup = Callable[[str], "str | None"]
#: (consumer key, nonce, timestamp, seconds to keep it) -> True when first seen (and now recorded)
NonceStore = Callable[[str, str, int, int], bool]


class OAuth1Error(AuthError):
    """A refused OAuth 1.0a request. ``problem`` is the OAuth Problem Reporting code."""

    def __init__(self, detail: str, *, problem: str, realm: str = "tessera") -> None:
        super().__init__(detail)
        self.problem = problem
        self.realm = realm

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value (RFC 5849 3.5.1 realm; Problem Reporting 3)."""
        return f'OAuth realm="{self.realm}", oauth_problem="{self.problem}"'


@dataclass(frozen=True)
class SignedRequest:
    """A request whose signature, timestamp, nonce and body hash all checked out."""

    consumer_key: str
    params: dict[str, str]  # every parameter (query, form body, oauth_*), signature excluded


class _Validator(RequestValidator):
    """Two-legged HMAC: only a consumer key and secret; no tokens, no realms."""

    DUMMY = "tessera-unknown-consumer"

    def __init__(self, secret_for: SecretLookup, window: int) -> None:
        super().__init__()
        self._secret_for = secret_for
        self._window = window
        self.found: dict[str, str] = {}

    @property
    def enforce_ssl(self) -> bool:
        # TLS ends at the proxy in front of Tessera; the signed URL is the public one.
        return False

    @property
    def allowed_signature_methods(self) -> tuple[str, ...]:
        return (SIGNATURE_HMAC_SHA1, SIGNATURE_HMAC_SHA256)

    @property
    def timestamp_lifetime(self) -> int:
        return self._window

    @property
    def dummy_client(self) -> str:
        return self.DUMMY

    # LMSs use any printable consumer key and nonce, not RFC 5849's suggested alphabet.
    def check_client_key(self, client_key: str) -> bool:
        return 0 < len(client_key) <= 255 and client_key.isprintable()

    def check_nonce(self, nonce: str) -> bool:
        return 0 < len(nonce) <= 255 and nonce.isprintable()

    def validate_timestamp_and_nonce(self, client_key: str, timestamp: str, nonce: str, request: Any, **kw: Any) -> bool:  # type: ignore[override]
        return True  # the nonce is recorded after the signature verified (see module docstring)

    def validate_client_key(self, client_key: str, request: Any) -> bool:
        secret = self._secret_for(client_key) if client_key != self.DUMMY else None
        if secret is None:
            return False
        self.found[client_key] = secret
        return True

    def get_client_secret(self, client_key: str, request: Any) -> str:
        return self.found.get(client_key, "dummy-secret-for-constant-time")


def body_hash(body: bytes) -> str:
    """OAuth Request Body Hash 3.1: base64 of the SHA-1 of the exact body bytes."""
    return base64.b64encode(hashlib.sha1(body).digest()).decode("ascii")


def verify(
    uri: str,
    method: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    secret_for: SecretLookup,
    use_nonce: NonceStore,
    window: int = DEFAULT_WINDOW,
    realm: str = "tessera",
) -> SignedRequest:
    """Check one signed request (RFC 5849 3.2); raise ``OAuth1Error`` when it fails."""
    validator = _Validator(secret_for, window)
    # SignatureOnlyEndpoint.validate_request answers a bare False; its steps, called one by
    # one, say which rule failed (the oauth_problem) and let the nonce wait for the signature.
    endpoint = SignatureOnlyEndpoint(validator)
    hdrs = {k.title(): v for k, v in headers.items()}
    form = FORM in hdrs.get("Content-Type", "").lower()
    text = body.decode("utf-8", errors="replace") if form else ""
    try:
        # oauthlib's own steps of SignatureOnlyEndpoint.validate_request, taken one by one
        # (its stubs do not declare these underscore methods)
        request = endpoint._create_request(uri, method, text, hdrs)  # type: ignore[attr-defined]
        endpoint._check_mandatory_parameters(request)  # type: ignore[attr-defined]
    except errors.OAuth1Error as exc:
        raise OAuth1Error(f"OAuth 1.0a request refused: {exc.description}", problem=_problem(exc.description), realm=realm) from None
    except ValueError:  # oauthlib's urldecode: a query or form body that is not strictly percent-encoded
        raise OAuth1Error("OAuth 1.0a request refused: the query string or form body is not percent-encoded (RFC 5849 3.6)",
                          problem="parameter_rejected", realm=realm) from None
    known = validator.validate_client_key(request.client_key, request)
    if not known:
        request.client_key = validator.dummy_client
    signed = endpoint._check_signature(request)  # type: ignore[attr-defined]  # computed even for an unknown key: constant time
    if not known:
        raise OAuth1Error("OAuth 1.0a request refused: unknown oauth_consumer_key", problem="consumer_key_unknown", realm=realm)
    if not signed:
        raise OAuth1Error("OAuth 1.0a request refused: the signature does not verify", problem="signature_invalid", realm=realm)
    _check_body_hash(body, form, request.oauth_params.get("oauth_body_hash"), realm)
    if not use_nonce(request.client_key, request.nonce, int(request.timestamp), 2 * window):
        raise OAuth1Error("OAuth 1.0a request refused: oauth_nonce was already used", problem="nonce_used", realm=realm)
    params = {k: v for k, v in request.params}
    params.update(request.oauth_params)
    params.pop("oauth_signature", None)
    return SignedRequest(request.client_key, params)


def _check_body_hash(body: bytes, form: bool, given: str | None, realm: str) -> None:
    """Body Hash 3.2: required (and checked) for a non-form body; absent for a form body."""
    if form:
        if given is not None:
            raise OAuth1Error("oauth_body_hash must not be sent with a form-encoded body", problem="parameter_rejected", realm=realm)
        return
    if not body:
        return
    if given is None:
        raise OAuth1Error("a non-form body needs oauth_body_hash (OAuth Request Body Hash)", problem="parameter_absent", realm=realm)
    if not hmac.compare_digest(given, body_hash(body)):
        raise OAuth1Error("oauth_body_hash does not match the body", problem="signature_invalid", realm=realm)


def _problem(description: str) -> str:
    d = description.lower()
    if "timestamp given is invalid" in d:
        return "timestamp_refused"
    if d.startswith("invalid signature,"):
        return "signature_method_rejected"
    if "missing" in d:
        return "parameter_absent"
    return "parameter_rejected"


__all__ = ["DEFAULT_WINDOW", "NonceStore", "OAuth1Error", "SecretLookup", "SignedRequest", "body_hash", "verify"]
