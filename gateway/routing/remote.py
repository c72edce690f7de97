"""What every adapter's routing roles share when they call a remote system over HTTP.

The adapters' ``routing`` modules (``adapters/*/routing.py``) build their HTTP clients and
classify failures here, so every role reads credentials, times out and fails alike:

* ``auth_for(connection)``: the connection's credentials, read from the environment when
  the call is made (``Connection.secret``): OAuth 2.0 client credentials (auth keys
  ``client_id`` + ``client_secret``; option ``token_url``, default ``{base_url}/oauth/token``,
  option ``scope``) or HTTP Basic (``username`` + ``password``). Nothing else is accepted.
* ``http_for(connection)``: a ``gateway.http.HttpClient`` with the connection's ``timeout``
  option and *no* retries of its own: retrying with backoff is the routing engine's policy
  (``gateway.routing.policy``), which needs to see every failure.
* ``call``: one request; a transport failure, a refused token or a non-2xx answer becomes
  the ``DeliveryFailure`` kind the protocol prescribes (``failure_from_response``).
* ``as_failure``: a Tessera error raised by an adapter's existing client (a provider error,
  an authentication error, invalid data) as a ``DeliveryFailure`` kind, for sources.

No secret appears in any failure: messages name URLs without their query and never carry
a credential (``gateway.http.redact``).
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from ..auth.outbound import ClientCredentials
from ..errors import AuthError, ConfigError, NotFound, TesseraError, UpstreamError, ValidationError
from ..http import NO_RETRY, BasicAuth, BearerAuth, HttpClient, RetryLater, Unreachable
from ..http.auth import Auth
from .protocol import EXCERPT, Connection, DeliveryFailure, Reject, Retry, failure_from_response

DEFAULT_TIMEOUT = 30.0


def token_url(connection: Connection, default_path: str = "/oauth/token") -> str:
    url = connection.options.get("token_url")
    if url:
        return str(url)
    if not connection.base_url:
        raise ConfigError(f"connection {connection.name!r}: no base_url, and no token_url option")
    return connection.base_url.rstrip("/") + default_path


def auth_for(connection: Connection, *, default_token_path: str = "/oauth/token") -> Auth | None:
    """The connection's credentials (module docstring); None when it has none."""
    keys = set(connection.auth)
    if {"client_id", "client_secret"} <= keys:
        cid, secret = connection.secret("client_id"), connection.secret("client_secret")
        assert cid is not None and secret is not None
        scope = connection.options.get("scope")
        tokens = ClientCredentials(token_url(connection, default_token_path), cid, secret, str(scope) if scope else None)
        return BearerAuth(tokens)  # type: ignore[arg-type]  # a TokenSource (mypy sees two HttpClient names)
    if {"username", "password"} <= keys:
        user, password = connection.secret("username"), connection.secret("password")
        assert user is not None and password is not None
        return BasicAuth(user, password)
    if keys:
        raise ConfigError(f"connection {connection.name!r}: auth takes client_id + client_secret or username + password "
                          f"(got {sorted(keys)})")
    return None


def timeout_of(connection: Connection) -> float:
    try:
        return float(connection.options.get("timeout", DEFAULT_TIMEOUT))
    except (TypeError, ValueError):
        raise ConfigError(f"connection {connection.name!r}: option timeout must be a number of seconds") from None


def http_for(connection: Connection, *, headers: dict[str, str] | None = None, auth: Auth | None = None,
             transport: httpx.BaseTransport | None = None) -> HttpClient:
    """An HTTP client for one connection, without retries of its own (module docstring)."""
    return HttpClient(auth=auth if auth is not None else auth_for(connection), retry=NO_RETRY, timeout=timeout_of(connection),
                      headers={"User-Agent": "tessera-routing", **(headers or {})}, transport=transport)


class SharedHttp:
    """One connection's HTTP client, made on first use and shared by the engine's threads;
    ``close`` closes its pool (the engine calls a role's ``close`` when it drops the role)."""

    def __init__(self, connection: Connection, *, headers: dict[str, str] | None = None) -> None:
        self.connection, self.headers = connection, {"Accept": "application/json", **(headers or {})}
        self._http: HttpClient | None = None
        self._lock = threading.Lock()

    def __call__(self) -> HttpClient:
        with self._lock:
            if self._http is None:
                self._http = http_for(self.connection, headers=self.headers)
            return self._http

    def close(self) -> None:
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()


def call(http: HttpClient, method: str, url: str, what: str, *, ok: tuple[int, ...] = (), **kw: Any) -> httpx.Response:
    """One request. Returns a 2xx answer (or one whose status is in ``ok``); raises the
    ``DeliveryFailure`` kind otherwise."""
    try:
        r = http.request(method, url, **kw)
    except (Unreachable, RetryLater, AuthError, UpstreamError) as exc:
        raise as_failure(exc, what) from None
    if r.status_code in ok:
        return r
    failure = failure_from_response(r, what)
    if failure is not None:
        raise failure
    return r


def as_failure(exc: BaseException, what: str) -> DeliveryFailure:
    """A Tessera error (or a transport error) as the failure kind the routing policy needs:
    unreachable, asked to wait, a provider's error or 5xx -> ``Retry``; refused credentials,
    a missing resource, invalid data or configuration -> ``Reject``."""
    if isinstance(exc, DeliveryFailure):
        return exc
    detail = str(getattr(exc, "detail", None) or exc)[:EXCERPT]
    if isinstance(exc, RetryLater):
        return Retry(f"{what}: {detail}", retry_after=exc.seconds, status=exc.status)
    if isinstance(exc, ValidationError):
        errors = getattr(exc, "errors", None) or []
        listed = "; ".join(str(e) for e in errors[:10])
        return Reject(f"{what}: {detail}" + (f": {listed}" if listed else ""), response=listed[:EXCERPT] or None)
    if isinstance(exc, (AuthError, NotFound, ConfigError)):
        return Reject(f"{what}: {detail}", status=getattr(exc, "status", None))
    if isinstance(exc, (Unreachable, UpstreamError, httpx.TransportError)):
        return Retry(f"{what}: {detail}")
    if isinstance(exc, TesseraError):
        return Reject(f"{what}: {detail}", status=exc.status)
    return Retry(f"{what}: {type(exc).__name__}")


__all__ = ["SharedHttp", "as_failure", "auth_for", "call", "http_for", "timeout_of", "token_url"]
