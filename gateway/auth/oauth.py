"""The OAuth 2.0 token endpoint (RFC 6749 section 4.4, client credentials), on oauthlib.

oauthlib does the protocol: grant type checks, duplicate parameters, client
authentication via HTTP Basic or body parameters, scope parsing and the RFC 6749
section 5.2 error responses. This module supplies what oauthlib leaves to the server:
how clients authenticate, which scopes they may have, and the token itself (a signed
JWT from ``TokenService``).
"""

from __future__ import annotations

import base64
from typing import Any

from oauthlib.common import Request
from oauthlib.oauth2 import BackendApplicationServer, RequestValidator
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from .clients import Client, ClientStore
from .scopes import normalize
from .tokens import TokenService

#: the realm the token endpoint's HTTP Basic challenge names
REALM = "tessera"


class _Validator(RequestValidator):
    def __init__(self, clients: ClientStore) -> None:
        self.clients = clients

    def client_authentication_required(self, request: Request, *args: Any, **kwargs: Any) -> bool:
        return True

    def authenticate_client(self, request: Request, *args: Any, **kwargs: Any) -> bool:
        client_id, secret = _basic_credentials(request)
        if client_id is None:  # RFC 6749 2.3.1 also allows the credentials in the body
            client_id, secret = request.client_id, getattr(request, "client_secret", None)
        if not client_id or secret is None:
            return False
        client = self.clients.authenticate(client_id, secret)
        if client is None:
            return False
        request.client = client
        request.client_id = client.client_id
        return True

    def authenticate_client_id(self, client_id: str, request: Request, *args: Any, **kwargs: Any) -> bool:
        return False  # public clients may not use client credentials

    def validate_grant_type(self, client_id: str, grant_type: str, client: Any, request: Request, *args: Any, **kwargs: Any) -> bool:
        return grant_type == "client_credentials"

    def get_default_scopes(self, client_id: str, request: Request, *args: Any, **kwargs: Any) -> list[str]:
        return list(_client(request).scopes)

    def validate_scopes(self, client_id: str, scopes: list[str], client: Any, request: Request, *args: Any, **kwargs: Any) -> bool:
        wanted = normalize(scopes)
        if not set(wanted) <= set(client.scopes):
            return False
        # the token response names the scopes as asked (a CASE or OneRoster URI stays a URI,
        # RFC 6749 5.1); the token itself carries their short names (``generate``)
        request.scopes = list(dict.fromkeys(scopes))
        return True

    def save_bearer_token(self, token: Any, request: Request, *args: Any, **kwargs: Any) -> None:
        """Tokens are self-contained JWTs: nothing to store."""


def _client(request: Request) -> Client:
    """The client ``authenticate_client`` put on the request (oauthlib types it loosely)."""
    client = request.client
    if not isinstance(client, Client):
        raise TypeError("the request carries no authenticated client")
    return client


def _basic_credentials(request: Request) -> tuple[str | None, str | None]:
    auth = request.headers.get("Authorization", "")
    if not auth.lower().startswith("basic "):
        return None, None
    try:
        raw = base64.b64decode(auth[6:].strip(), validate=True).decode()
        client_id, _, secret = raw.partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    from urllib.parse import unquote

    # RFC 6749 2.3.1: the id and secret are form-urlencoded before Basic encoding
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


class TokenEndpoint:
    def __init__(self, clients: ClientStore, tokens: TokenService) -> None:
        self.tokens = tokens

        def generate(request: Request) -> str:
            client = _client(request)
            return tokens.issue(client_id=client.client_id, tenant=client.tenant, scopes=normalize(request.scopes or ()),
                                person_id=client.person_id)

        self.server = BackendApplicationServer(_Validator(clients), token_generator=generate, token_expires_in=tokens.ttl)

    def respond(self, uri: str, body: str, headers: dict[str, str]) -> tuple[dict[str, str], str, int]:
        try:
            resp_headers, resp_body, status = self.server.create_token_response(uri, http_method="POST", body=body, headers=headers)
        except OAuth2Error as exc:
            # oauthlib returns most errors but raises some (a query string on the POST, where
            # credentials do not belong): answer those in the same RFC 6749 5.2 shape, not 500.
            resp_headers = {"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache", **exc.headers}
            resp_body, status = exc.json, exc.status_code
        resp_headers = dict(resp_headers)
        if status == 401:
            status = _client_authentication_challenge(resp_headers, body, headers)
        return resp_headers, resp_body, status


def _client_authentication_challenge(resp_headers: dict[str, str], body: str, headers: dict[str, str]) -> int:
    """RFC 6749 5.2 ``invalid_client``: oauthlib challenges with ``Bearer`` (RFC 6750, the
    resource server's scheme), but the token endpoint authenticates clients, and the answer
    must name the scheme the client used. Fixes ``resp_headers`` and returns the status:

    - HTTP Basic (or no credentials, or another scheme): 401 with ``WWW-Authenticate: Basic
      realm="tessera"``, the scheme this endpoint takes in the header;
    - credentials in the body (``client_secret_post``, no Authorization header): 400, and no
      challenge, since no HTTP authentication scheme was attempted."""
    from urllib.parse import parse_qs

    resp_headers.pop("WWW-Authenticate", None)
    if not headers.get("Authorization"):
        form = parse_qs(body, keep_blank_values=True)
        if "client_id" in form or "client_secret" in form:
            return 400
    resp_headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    return 401
