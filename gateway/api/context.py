"""What every router needs: settings, the store, auth, and the scope-checking dependency."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from ..auth import Auth, Principal
from ..config import Settings
from ..errors import AuthError, ScopeError
from ..store import Store


@dataclass
class AppContext:
    settings: Settings
    store: Store
    auth: Auth

    def principal(self, request: Request) -> Principal:
        """The caller, from its bearer token; AuthError when there is none or it is bad."""
        cached = getattr(request.state, "principal", None)
        if cached is not None:
            return cached
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("this endpoint needs an access token: Authorization: Bearer <token> (POST /oauth/token)")
        principal = self.auth.tokens.verify(token.strip())
        request.state.principal = principal
        return principal

    def require(self, *any_of: str) -> Callable[[Request], Principal]:
        """A FastAPI dependency: the caller must hold at least one of ``any_of``."""

        def dependency(request: Request) -> Principal:
            principal = self.principal(request)
            if any_of and not any(principal.has(s) for s in any_of):
                raise ScopeError(f"this operation needs one of the scopes: {' '.join(any_of)}", required=list(any_of))
            return principal

        return dependency
