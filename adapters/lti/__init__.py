"""LTI 1.3 Advantage (tool and platform) and LTI 1.1: launches, grades and rosters as evidence.

Two sub-packages, one per role, each with a module per LTI service (pylti1p3's layout):

- ``tool``: Tessera as a tool of an LMS: ``platforms`` it trusts, ``oidc_login``,
  ``message_launch``, ``deep_link``, and the service clients ``assignments_grades`` (AGS) and
  ``names_roles`` (NRPS) with ``service_auth`` (JWT client assertion).
- ``platform``: Tessera as a platform launching tools: ``registrations`` of tools,
  ``message_launch`` (login initiation, authorization endpoint, signed id_tokens),
  ``token_endpoint``, and the services ``assignments_grades`` and ``names_roles``.
- ``lti11``: OAuth 1.0a launches and the Basic Outcomes service (POX).

Shared by both roles, and the only thing they share: ``claims`` (claim URIs, message
types, scopes), ``roles`` (LIS role vocabulary), ``pages`` (HTML pages), ``metadata`` (the
tables' MetaData). ``cli`` is the ``tessera lti`` command group.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .metadata import metadata as lti_metadata
from .platform import tables as _platform_tables  # noqa: F401 - registers its tables on ``metadata``
from .tool import tables as _tool_tables  # noqa: F401 - registers its tables on ``metadata``

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from gateway.api.context import AppContext


class LtiAdapter:
    name = "lti"
    title = "LTI 1.3 Advantage and LTI 1.1"
    metadata = lti_metadata
    migrations = Path(__file__).resolve().parent / "migrations" / "versions"

    # no parse/emit: LTI has no file form (both are optional in adapters.base)

    def routers(self, ctx: AppContext) -> list[APIRouter]:
        """The platform side (registrations, launches, token endpoint, AGS, NRPS), then the
        tool side, LTI 1.1 and the platforms the tool trusts."""
        from gateway.api.problems import register_error_shape

        from .lti11 import build_router as lti11_router
        from .platform import assignments_grades, message_launch, names_roles, registrations, token_endpoint
        from .platform.common import render_service_error
        from .tool import platforms
        from .tool.router import build_router as tool_router

        for prefix in ("/lti/platform/ags/", "/lti/platform/nrps/"):
            register_error_shape(prefix, render_service_error)
        return [
            registrations.build_router(ctx), message_launch.build_router(ctx), token_endpoint.build_router(ctx),
            assignments_grades.build_router(ctx), names_roles.build_router(ctx),
            tool_router(ctx), lti11_router(ctx), platforms.build_router(ctx),
        ]

    def routing_roles(self) -> Mapping[str, Any]:
        """``lti.ags`` (mastery as scores in the LMS gradebook) and ``lti.nrps`` (the course
        membership, diffed): ``routing``."""
        from .routing import ROLES

        return ROLES

    def cli_groups(self) -> Mapping[str, typer.Typer]:
        """``tessera lti platforms|consumers|tools ...`` (``cli``)."""
        from .cli import lti_cli

        return {"lti": lti_cli()}


__all__ = ["LtiAdapter"]
