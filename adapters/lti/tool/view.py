"""After a resource link launch (LTI 1.3 or 1.1): a console session, or Tessera's own small page.

With the web console on (``request.app.state.console``), ``console_sign_in`` maps the
launch's LIS roles to a console role (``console_role``: instructor or teaching assistant ->
teacher, institution administrator -> admin, mentor -> guardian, learner -> learner) and
hands over to ``gateway.console.signin``, which opens the session and redirects to the
person's page. Without the console, or for a launch with none of those roles (a content
developer, an anonymous launch), ``view`` shows the learner's mastery or the teacher's
class as before.
"""

from __future__ import annotations

import html
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from fastapi.responses import HTMLResponse, Response

from gateway.console.signin import Launched, lti_sign_in
from gateway.model import Role

from ..claims import C_CUSTOM, C_ROLE_SCOPE_MENTOR
from ..pages import page
from ..roles import canonical_role, primary_role
from .message_launch import Launch
from .roster import sub_system

if TYPE_CHECKING:
    from gateway.api.context import AppContext
    from gateway.console.web import Console

#: the LIS institution role that makes an LMS user a district administrator in the console
INSTITUTION_ADMIN = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator"


def _rows(ctx: AppContext, tenant: str, kind: str, **filters: Any) -> list[dict[str, Any]]:
    return [orjson.loads(d) for d in ctx.store.records.page(tenant, kind, limit=200, filters=filters).items]


def view(ctx: AppContext, launch: Launch, person_id: uuid.UUID | None, section_id: uuid.UUID | None) -> HTMLResponse:
    """The learner's mastery, or the teacher's class: Tessera's view inside the LMS."""
    tenant = launch.platform.tenant
    custom = launch.claim(C_CUSTOM)
    focus = f"<p>Competency: {html.escape(str(custom['competency']))}</p>" if custom.get("competency") else ""
    if primary_role(launch.roles) in (Role.teacher, Role.aide, Role.administrator) and section_id is not None:
        people = [
            ctx.store.records.get_json(tenant, "person", uuid.UUID(e["person_id"]))
            for e in _rows(ctx, tenant, "enrollment", section_id=section_id) if e["role"] == "student"
        ]
        items = "".join(
            f"<li>{html.escape(d['given_name'])} {html.escape(d['family_name'])}</li>" for d in map(orjson.loads, people)
        )
        return page("Tessera: class mastery", f"{focus}<h2>Learners</h2><ul class=\"learners\">{items}</ul>")
    states = _rows(ctx, tenant, "mastery_state", learner_id=person_id) if person_id else []
    items = "".join(
        f"<li>{html.escape(str(s['competency_id']))}: {html.escape(str(s.get('level') or s.get('value')))}</li>" for s in states
    )
    return page("Tessera: my competencies", f"{focus}<ul class=\"mastery\">{items or '<li>No evidence yet.</li>'}</ul>")


def mentor_scope(launch: Launch) -> list[str]:
    """LTI core 5.4.2 ``role_scope_mentor``: the user ids of the learners a mentor mentors."""
    scope = launch.claims.get(C_ROLE_SCOPE_MENTOR)
    return [s for s in scope if isinstance(s, str) and s] if isinstance(scope, list) else []


def console_role(roles: list[str], *, mentees: bool, admins: bool = True) -> str | None:
    """The console role of a launch's LIS roles (mappings/lti-roles.yaml), or None: teaching
    first, then the institution administrator, then a mentor (a Learner who also mentors is
    a guardian only when the launch names whom they mentor), then a learner."""
    found = {canonical_role(r) for r in roles if isinstance(r, str)}
    if found & {"teacher", "aide"}:
        return "teacher"
    if admins and INSTITUTION_ADMIN in roles:
        return "admin"
    if "guardian" in found and (mentees or "student" not in found):
        return "guardian"
    if "student" in found:
        return "learner"
    return None


def console_sign_in(console: Console | None, ctx: AppContext, launch: Launch, person_id: uuid.UUID | None,
                    section_id: uuid.UUID | None, *, via: str) -> Response | None:
    """The console session a launch opens (a 303 to the person's page), or None: no console,
    an anonymous launch, or no role the console serves."""
    if console is None or person_id is None:
        return None
    scope = mentor_scope(launch)
    role = console_role(launch.roles, mentees=bool(scope), admins=console.settings.lti_admins)
    if role is None:
        return None
    tenant = launch.platform.tenant
    mentees: list[uuid.UUID] = []
    for user_id in scope[:100] if role == "guardian" else []:
        mentees.extend(rid for _, rid in ctx.store.records.lookup(tenant, sub_system(launch.platform), "lti.sub", user_id,
                                                                  record_kind="person"))
    person = orjson.loads(ctx.store.records.get_json(tenant, "person", person_id))
    name = f"{person.get('given_name', '')} {person.get('family_name', '')}".strip()
    return lti_sign_in(console, Launched(tenant=tenant, role=role, person_id=person_id, name=name,  # type: ignore[arg-type]
                                         section_id=section_id, mentees=tuple(mentees), via=via))


__all__ = ["INSTITUTION_ADMIN", "console_role", "console_sign_in", "mentor_scope", "view"]
