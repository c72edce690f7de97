"""``tessera lti platforms ...``: the platforms Tessera is a tool of, from the command line."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlsplit

import typer
from pydantic import ValidationError as PydanticValidationError

from .platforms import PlatformIn, PlatformStore, invitation


def register_cli(lti_app: typer.Typer) -> None:
    """``tessera lti platforms add|list|remove|invite``."""
    from rich.table import Table

    from gateway.cli_kit import open_store, out

    group = typer.Typer(help="LTI 1.3 platforms Tessera is a tool of.", no_args_is_help=True)
    lti_app.add_typer(group, name="platforms")

    @group.command("add")
    def add(
        issuer: Annotated[str, typer.Option(help="the platform's issuer (iss)")],
        client_id: Annotated[str, typer.Option("--client-id", help="the client_id the platform gave Tessera")],
        deployment_id: Annotated[list[str], typer.Option("--deployment-id", help="a deployment id (repeatable)")],
        auth_login_url: Annotated[str, typer.Option("--auth-login-url", help="the platform's OIDC authorization endpoint")],
        token_url: Annotated[str, typer.Option("--token-url", help="the platform's OAuth 2.0 token endpoint")],
        jwks_url: Annotated[str, typer.Option("--jwks-url", help="the platform's JWKS URL")],
        tenant: Annotated[str, typer.Option(help="tenant the platform's launches belong to")] = "default",
        name: Annotated[str | None, typer.Option(help="a name for people")] = None,
        roster_system: Annotated[str, typer.Option("--roster-system", help="identifier system of LIS sourcedids")] = "sis",
    ) -> None:
        """Register an LTI 1.3 platform (an LMS) that launches Tessera."""
        try:
            reg = PlatformIn(
                name=name or urlsplit(issuer).netloc or issuer, issuer=issuer, client_id=client_id, deployment_ids=deployment_id,
                auth_login_url=auth_login_url, token_url=token_url, jwks_url=jwks_url, roster_system=roster_system,
            )
        except PydanticValidationError as exc:  # its message names the option
            raise typer.BadParameter(str(exc)) from None
        p = PlatformStore(open_store().engine).add(tenant, reg)
        out.print(f"registered platform {p.id} ({p.issuer}, client_id {p.client_id}) for tenant {tenant}")

    @group.command("add-deployment")
    def add_deployment(
        platform_id: uuid.UUID, deployment_id: str, tenant: Annotated[str, typer.Option(help="the platform's tenant")] = "default"
    ) -> None:
        """Accept launches from one more deployment of a registered platform."""
        store = PlatformStore(open_store().engine)
        p = store.add_deployment(store.get(tenant, platform_id), deployment_id)
        out.print(f"platform {p.id} deployments: {', '.join(p.deployment_ids)}")

    @group.command("list")
    def list_(tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None) -> None:
        """List registered platforms."""
        table = Table("id", "tenant", "name", "issuer", "client_id", "deployments")
        for p in PlatformStore(open_store().engine).list(tenant):
            table.add_row(str(p.id), p.tenant, p.name, p.issuer, p.client_id, ", ".join(p.deployment_ids))
        out.print(table)

    @group.command("remove")
    def remove(platform_id: uuid.UUID, tenant: Annotated[str, typer.Option(help="the platform's tenant")] = "default") -> None:
        """Remove a platform registration."""
        PlatformStore(open_store().engine).remove(tenant, platform_id)
        out.print(f"removed platform {platform_id}")

    @group.command("invite")
    def invite(
        base_url: Annotated[str, typer.Option("--base-url", help="Tessera's public URL")],
        tenant: Annotated[str, typer.Option(help="tenant the platform will belong to")] = "default",
    ) -> None:
        """Print a Dynamic Registration URL to give a platform administrator (valid one day)."""
        from gateway.api.context import AppContext
        from gateway.auth import Auth
        from gateway.cli_kit import settings

        s = settings()
        store = open_store()
        ctx = AppContext(settings=s, store=store, auth=Auth.build(store.engine, issuer=s.issuer, token_ttl_seconds=s.token_ttl_seconds))
        out.print(invitation(ctx, tenant, base_url.rstrip("/")), soft_wrap=True)


__all__ = ["register_cli"]
