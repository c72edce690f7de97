"""What every router needs: settings, the store, auth, and the scope-checking dependency."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import Request

from ..auth import Auth, Principal
from ..config import Settings
from ..errors import AuthError, ScopeError
from ..store import Store


class VerifiedTokens:
    """Access tokens verified recently, by their exact text.

    Checking an RS256 signature costs more than the rest of a small API request, and a
    client sends the same token with every request until it expires. A token that
    verified is remembered for no longer than the verifying process keeps its signing
    keys cached (``KeyStore.CACHE_SECONDS``; at most ``TTL_SECONDS``), so a key retired or
    cut short in the database stops a token as soon as it did before, and never past the
    token's own ``exp``, so an expired token is refused exactly as before. Only successes
    are remembered: a bad token is checked, and refused, every time. Whether the token's
    client has been revoked is not remembered here: ``AppContext.principal`` asks
    ``Auth.revocations`` on every use (cached a few seconds per client).
    """

    TTL_SECONDS = 30.0
    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if time.time() >= entry[1]:
            self._entries.pop(token, None)
            return None
        return entry[0]

    def put(self, token: str, principal: Principal, *, ttl: float) -> None:
        exp = _expiry(token)
        ttl = min(ttl, self.TTL_SECONDS)
        if exp is None or ttl <= 0:
            return
        until = min(exp, time.time() + ttl)
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                now = time.time()
                self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
                if len(self._entries) >= self.MAX_ENTRIES:
                    self._entries.clear()
            self._entries[token] = (principal, until)


def _expiry(token: str) -> float | None:
    """The ``exp`` claim of a token whose signature has just been verified."""
    try:
        payload = token.split(".")[1]
        exp = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("exp")
    except (IndexError, ValueError, orjson.JSONDecodeError, AttributeError):
        return None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


@dataclass
class AppContext:
    settings: Settings
    store: Store
    auth: Auth
    #: each adapter's settings by adapter name (``gateway.wiring.Wiring.all_settings``)
    adapter_settings: Mapping[str, Any] = field(default_factory=dict)
    verified: VerifiedTokens = field(default_factory=VerifiedTokens)

    def principal(self, request: Request) -> Principal:
        """The caller, from its bearer token; AuthError when there is none or it is bad."""
        cached = getattr(request.state, "principal", None)
        if cached is not None:
            return cached
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("this endpoint needs an access token: Authorization: Bearer <token> (POST /oauth/token)")
        principal = self.verified.get(token)
        if principal is None:
            principal = self.auth.tokens.verify(token)
            self.verified.put(token, principal, ttl=self.auth.keys.CACHE_SECONDS)
        if self.auth.revocations.revoked(principal.client_id):
            raise AuthError("the client this access token was issued to has been revoked")
        request.state.principal = principal
        return principal

    def require(self, *any_of: str) -> Callable[[Request], Awaitable[Principal]]:
        """A FastAPI dependency: the caller must hold at least one of ``any_of``.

        A coroutine, so FastAPI runs it on the event loop instead of handing it to the
        thread pool and back (a verified token is a dictionary lookup away)."""

        async def dependency(request: Request) -> Principal:
            principal = self.principal(request)
            if any_of and not any(principal.has(s) for s in any_of):
                raise ScopeError(f"this operation needs one of the scopes: {' '.join(any_of)}", required=list(any_of))
            return principal

        return dependency
