"""Auth and tenancy: OAuth 2.0 client credentials, RS256 access tokens, scopes, tenants."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from .clients import Client, ClientStore, RevocationCheck
from .keys import KeyStore
from .oauth import TokenEndpoint
from .tokens import Principal, TokenService


@dataclass
class Auth:
    clients: ClientStore
    keys: KeyStore
    tokens: TokenService
    endpoint: TokenEndpoint
    revocations: RevocationCheck

    @classmethod
    def build(cls, engine: Engine, *, issuer: str, token_ttl_seconds: int, revocation_check_seconds: float = 5.0) -> Auth:
        clients = ClientStore(engine)
        keys = KeyStore(engine, token_ttl_seconds=token_ttl_seconds)
        tokens = TokenService(keys, issuer=issuer, ttl_seconds=token_ttl_seconds)
        return cls(clients, keys, tokens, TokenEndpoint(clients, tokens), RevocationCheck(clients, ttl_seconds=revocation_check_seconds))


__all__ = ["Auth", "Client", "ClientStore", "RevocationCheck", "KeyStore", "Principal", "TokenEndpoint", "TokenService"]
