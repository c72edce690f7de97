"""LTI 1.3 Advantage (tool and platform) and LTI 1.1: launches, grades and rosters as evidence.

Modules are named after the spec's services:

- ``registrations``: platforms and tools Tessera knows (CLI, /v1 API, Dynamic Registration).
- ``platform``: Tessera as a platform: login initiation, authorization endpoint, signed
  id_tokens, token endpoint for tools; ``ags_server`` and ``nrps_server`` behind it.
- ``tool``: Tessera as a tool: OIDC login, launch validation, Deep Linking; ``ags_client``
  and ``nrps_client`` for service calls with a JWT client assertion.
- ``lti11``: OAuth 1.0a launches and the Basic Outcomes service (POX).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import tables, tool_tables  # noqa: F401 - both register their tables on ``tables.metadata``

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from gateway.api.context import AppContext


class LtiAdapter:
    name = "lti"
    title = "LTI 1.3 Advantage and LTI 1.1"
    metadata = tables.metadata
    migrations = Path(__file__).resolve().parent / "migrations" / "versions"

    # no parse/emit: LTI has no file form (both are optional in adapters.base)

    def routers(self, ctx: AppContext) -> list[APIRouter]:
        """The platform side (registrations, launches, token endpoint, AGS, NRPS), then the
        tool side and LTI 1.1 when those modules are present."""
        from gateway.api.problems import register_error_shape

        from . import ags_server, nrps_server, platform, registrations
        from .platform import render_service_error

        for prefix in ("/lti/platform/ags/", "/lti/platform/nrps/"):
            register_error_shape(prefix, render_service_error)
        routers = [registrations.build_router(ctx), platform.build_router(ctx), ags_server.build_router(ctx), nrps_server.build_router(ctx)]
        for module in ("tool", "lti11", "platforms"):
            built = _optional(module)
            if built is not None:
                routers.append(built.build_router(ctx))
        return routers

    def register_cli(self, import_app: typer.Typer, export_app: typer.Typer) -> None:
        """``tessera lti tools ...`` (and the tool side's ``lti platforms|consumers ...``)."""
        import typer

        from gateway.cli_kit import app

        from .registrations import tools_cli

        platforms = _optional("platforms")
        if platforms is not None:
            platforms.register_cli()
            group = platforms.lti_cli()
        else:
            group = typer.Typer(help="LTI 1.3: tools and platforms Tessera is registered with.", no_args_is_help=True)
            app.add_typer(group, name="lti")
        group.add_typer(tools_cli(), name="tools")


def _optional(name: str) -> Any:
    """A sibling module that may not be installed yet; any other import error propagates."""
    import importlib

    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        return None


__all__ = ["LtiAdapter"]
