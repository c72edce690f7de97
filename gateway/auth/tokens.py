"""Access tokens: RS256 JWTs carrying tenant, client and scopes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt

from ..errors import AuthError
from ..model import utcnow
from .keys import KeyStore
from .scopes import expand

AUDIENCE = "tessera-api"
LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class Principal:
    """Who is calling: a client of one tenant, with the scopes its token grants."""

    tenant: str
    client_id: str
    scopes: frozenset[str]
    #: set when the client acts for one person (see ClientStore.create)
    person_id: uuid.UUID | None = None

    def has(self, scope: str) -> bool:
        return scope in self.scopes


class TokenService:
    def __init__(self, keys: KeyStore, *, issuer: str, ttl_seconds: int) -> None:
        self.keys = keys
        self.issuer = issuer
        self.ttl = ttl_seconds

    def issue(self, *, client_id: str, tenant: str, scopes: list[str], ttl_seconds: int | None = None,
              person_id: uuid.UUID | None = None) -> str:
        key = self.keys.current()
        now = utcnow()
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": client_id,
            "client_id": client_id,
            "tenant": tenant,
            "scope": " ".join(scopes),
            "iat": now,
            "nbf": now,
            "exp": now + timedelta(seconds=ttl_seconds or self.ttl),
            "jti": uuid.uuid4().hex,
        }
        if person_id is not None:
            claims["person"] = str(person_id)
        return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})

    def verify(self, token: str) -> Principal:
        """Raises AuthError naming what is wrong, never echoing the token."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthError("the access token is not a well-formed JWT") from None
        if header.get("alg") != "RS256":
            raise AuthError("the access token is not signed with RS256")
        kid = header.get("kid")
        key = self.keys.find(kid) if isinstance(kid, str) else None
        if key is None:
            raise AuthError("the access token was signed by an unknown or expired key")
        try:
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=["RS256"],
                audience=AUDIENCE,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "tenant"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the access token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("the access token is not valid yet") from None
        except jwt.InvalidSignatureError:
            raise AuthError("the access token's signature does not verify") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"the access token is invalid: {exc}") from None
        person = claims.get("person")
        return Principal(claims["tenant"], claims["sub"], expand(str(claims.get("scope", "")).split()),
                         uuid.UUID(person) if isinstance(person, str) else None)
