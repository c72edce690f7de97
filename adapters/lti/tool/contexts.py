"""The LMS contexts Tessera was launched from, and the services each one offers.

AGS 3.1 and NRPS 3.6.1.1 give a tool its service URLs only inside a launch. So each
resource link launch leaves one ``lti_tool_contexts`` row per (platform, LMS context): the
AGS line items URL and the scopes its claim granted, the NRPS memberships URL, and the
canonical Section the context maps to. Mastery is posted (``assignments_grades``) and
rosters are pulled (``names_roles``) later, outside any launch, from that row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select

from gateway.errors import NotFound
from gateway.model import utcnow

from ..claims import C_AGS, C_CONTEXT, C_NRPS
from . import tables as tt
from .message_launch import Launch
from .platforms import Platform, PlatformStore

if TYPE_CHECKING:
    from gateway.api.context import AppContext


@dataclass(frozen=True)
class LaunchContext:
    """What the latest launch from an LMS context said about its services."""

    platform: Platform
    context_id: str
    section_id: uuid.UUID | None
    ags_lineitems: str | None
    ags_scopes: frozenset[str]
    nrps_url: str | None


def context_row(launch: Launch, section_id: uuid.UUID | None) -> dict[str, Any] | None:
    """The ``lti_tool_contexts`` row a launch leaves (AGS 3.1 and NRPS 3.6.1.1 claims)."""
    context_id = launch.claim(C_CONTEXT).get("id")
    if not isinstance(context_id, str) or not context_id:
        return None
    ags, nrps = launch.claim(C_AGS), launch.claim(C_NRPS)
    scopes = [x for x in ags.get("scope", []) if isinstance(x, str)] if isinstance(ags.get("scope"), list) else []
    lineitems, memberships = ags.get("lineitems"), nrps.get("context_memberships_url")
    return {
        "platform_id": launch.platform.id, "context_id": context_id[:255], "tenant": launch.platform.tenant,
        "section_id": section_id, "ags_lineitems": lineitems if isinstance(lineitems, str) else None,
        "ags_scopes": orjson.dumps(sorted(set(scopes))).decode(),
        "nrps_url": memberships if isinstance(memberships, str) else None, "updated_at": utcnow(),
    }


def launch_context(ctx: AppContext, tenant: str, platform_id: uuid.UUID, context_id: str) -> LaunchContext:
    """The services of a context this tenant's platform launched Tessera from (NotFound else)."""
    platform = PlatformStore(ctx.store.engine).get(tenant, platform_id)
    c = tt.contexts
    with ctx.store.engine.connect() as conn:
        row = conn.execute(select(c).where(c.c.platform_id == platform.id, c.c.context_id == context_id)).first()
    if row is None:
        raise NotFound(f"no launch from context {context_id!r} of this platform yet")
    return LaunchContext(platform, row.context_id, row.section_id, row.ags_lineitems, frozenset(orjson.loads(row.ags_scopes)), row.nrps_url)


__all__ = ["LaunchContext", "context_row", "launch_context"]
