"""The launched view: Tessera's page inside the LMS after a resource link launch (LTI 1.3 or 1.1):
the learner's mastery, or the teacher's class."""

from __future__ import annotations

import html
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from fastapi.responses import HTMLResponse

from gateway.model import Role

from ..claims import C_CUSTOM
from ..pages import page
from ..roles import primary_role
from .message_launch import Launch

if TYPE_CHECKING:
    from gateway.api.context import AppContext


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


__all__ = ["view"]
