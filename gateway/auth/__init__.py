"""Auth and tenancy: OAuth 2.0 client credentials, RS256 access tokens, scopes, tenants."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from .clients import Client, ClientStore
from .keys import KeyStore
from .oauth import TokenEndpoint
from .tokens import Principal, TokenService


@dataclass
class Auth:
    clients: ClientStore
    keys: KeyStore
    tokens: TokenService
    endpoint: TokenEndpoint

    @classmethod
    def build(cls, engine: Engine, *, issuer: str, token_ttl_seconds: int) -> Auth:
        clients = ClientStore(engine)
        keys = KeyStore(engine, token_ttl_seconds=token_ttl_seconds)
        tokens = TokenService(keys, issuer=issuer, ttl_seconds=token_ttl_seconds)
        return cls(clients, keys, tokens, TokenEndpoint(clients, tokens))


__all__ = ["Auth", "Client", "ClientStore", "KeyStore", "Principal", "TokenEndpoint", "TokenService"]
