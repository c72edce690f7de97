"""Who is signed in to the console (``Viewer``) and the two ways a page refuses them:
``SignInRequired`` (303 to the sign-in page) and ``Forbidden`` (a page of another role: 403)."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..errors import AuthError, ScopeError

Role = Literal["learner", "guardian", "teacher", "admin"]
ROLES: tuple[Role, ...] = ("learner", "guardian", "teacher", "admin")


@dataclass(frozen=True)
class Viewer:
    """The person signed in to the console.

    ``role`` decides the pages: a learner sees their own profile, a guardian their wards'
    (OneRoster ``agentSourcedIds``: the learner lists the guardian among its agents), a
    teacher the sections they teach and those sections' learners, an admin the whole
    tenant. ``person_id`` is the roster person (None for an administrator known only to the
    identity provider). ``via`` is how they signed in (``lti``, ``oidc``)."""

    tenant: str
    role: Role
    person_id: uuid.UUID | None
    name: str
    via: str
    #: random per session: CSRF tokens are bound to it
    sid: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    issued_at: float = field(default_factory=time.time)

    def as_claims(self) -> dict[str, Any]:
        d = asdict(self)
        d["person_id"] = str(self.person_id) if self.person_id else None
        return d

    @classmethod
    def from_claims(cls, d: dict[str, Any]) -> Viewer:
        if d.get("role") not in ROLES or not isinstance(d.get("tenant"), str):
            raise ValueError("not a console session")
        return cls(tenant=d["tenant"], role=d["role"], person_id=uuid.UUID(d["person_id"]) if d.get("person_id") else None,
                   name=str(d.get("name") or ""), via=str(d.get("via") or ""), sid=str(d["sid"]), issued_at=float(d["issued_at"]))


class SignInRequired(AuthError):
    """No session, or it expired: the console answers 303 to the sign-in page."""

    title = "Sign-in needed"


class Forbidden(ScopeError):
    """Signed in, but this page is for another role (admin pages): a 403 page."""

    title = "Not for this account"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, required=[])


__all__ = ["ROLES", "Forbidden", "Role", "SignInRequired", "Viewer"]
