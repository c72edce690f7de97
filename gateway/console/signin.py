"""Sign-in by LTI launch: a launch from the school's learning system (LMS) opens a console session.

The LTI tool (``adapters/lti``) validates the launch (LTI 1.3 id_token or LTI 1.1 OAuth
signature), records the person and their enrollment as it always has, maps the launch's
LIS roles to a console role and hands over a ``Launched``; ``lti_sign_in`` starts the
session and answers the redirect:

- a **learner** lands on their own profile (``/console/learners/{id}``);
- an **instructor or teaching assistant** on the class the launch came from
  (``/console/classes/{section}``), or their list of classes when the launch has no class
  they teach;
- a **mentor** (a parent or guardian: LIS ``Mentor``, with ``role_scope_mentor`` naming the
  learners they mentor) on the guardian view: the one learner's profile, or the list of their
  children. The roster decides whom a guardian sees (OneRoster ``agentSourcedIds``); the
  launch's ``role_scope_mentor`` only picks where to land among those;
- an **institution administrator** on the console's start page (``/console``), when
  ``TESSERA_CONSOLE__LTI_ADMINS`` allows it (the default).

The console never sees the launch's tokens: the tool keeps them, the session cookie holds
who signed in and how (``web.Viewer``). The gateway does not import the LTI adapter; the
adapter calls this module.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from fastapi.responses import RedirectResponse

from ..errors import NotFound
from .app import home_of
from .web import PREFIX, Console, Role, Viewer

log = logging.getLogger("tessera.console")


@dataclass(frozen=True)
class Launched:
    """What a validated LTI launch tells the console."""

    tenant: str
    role: Role
    person_id: uuid.UUID
    name: str
    #: the class (section) the launch came from, if any
    section_id: uuid.UUID | None = None
    #: a mentor's learners named by the launch (``role_scope_mentor``), as roster people
    mentees: tuple[uuid.UUID, ...] = ()
    #: how: ``lti1.3`` or ``lti1.1``
    via: str = "lti"


def landing(console: Console, viewer: Viewer, launched: Launched) -> str:
    """Where a launch lands (module docstring); always a page the viewer may open."""
    if viewer.role == "learner":
        return f"{PREFIX}/learners/{viewer.person_id}"
    if viewer.role == "teacher" and launched.section_id is not None:
        try:
            return f"{PREFIX}/classes/{console.access.section(viewer, launched.section_id)}"
        except NotFound:  # the launch's class is not one they teach (yet): their list
            pass
    if viewer.role == "guardian" and launched.mentees:
        wards = set(console.access.wards(viewer))
        named = [m for m in launched.mentees if m in wards]
        if len(named) == 1:
            return f"{PREFIX}/learners/{named[0]}"
        if named:
            return f"{PREFIX}/learners"
    if viewer.role == "admin":
        return PREFIX
    return home_of(console, viewer)


def lti_sign_in(console: Console, launched: Launched) -> RedirectResponse:
    """Start the launched person's console session and send them where they belong."""
    viewer = Viewer(tenant=launched.tenant, role=launched.role, person_id=launched.person_id, name=launched.name,
                    via=launched.via)
    target = landing(console, viewer, launched)
    log.info("console sign-in by %s launch: %s %s in tenant %s", launched.via, viewer.role, viewer.person_id, viewer.tenant)
    return console.sign_in(viewer, target)


__all__ = ["Launched", "landing", "lti_sign_in"]
