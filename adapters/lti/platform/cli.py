"""``tessera lti tools ...``: the tools registered with Tessera-as-platform, from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from pydantic import ValidationError as PydanticError

from .registrations import ToolRegistration, ToolRegistry


def tools_cli() -> typer.Typer:
    """``tessera lti tools add|list|remove``."""
    from gateway.cli_kit import open_store, out

    app = typer.Typer(help="LTI 1.3 tools registered with Tessera as a platform.", no_args_is_help=True)

    @app.command("add")
    def add(
        name: Annotated[str, typer.Option(help="the tool's name")],
        login_url: Annotated[str, typer.Option("--login-url", help="the tool's OIDC login initiation URL")],
        redirect_uri: Annotated[list[str], typer.Option("--redirect-uri", help="a launch/redirect URL (repeatable)")],
        target_link_uri: Annotated[str | None, typer.Option("--target-link-uri", help="default launch URL (default: the first redirect URI)")] = None,
        jwks_url: Annotated[str | None, typer.Option("--jwks-url", help="the tool's JWKS URL")] = None,
        public_key: Annotated[Path | None, typer.Option("--public-key", exists=True, help="a PEM or JWK file, when the tool has no JWKS URL")] = None,
        deep_link_url: Annotated[str | None, typer.Option("--deep-link-url", help="the tool's Deep Linking URL")] = None,
        deployment: Annotated[list[str] | None, typer.Option("--deployment", help="a deployment id (repeatable; default: one is made)")] = None,
        custom: Annotated[list[str] | None, typer.Option("--custom", help="a custom parameter name=value (repeatable)")] = None,
        tenant: Annotated[str, typer.Option(help="tenant the tool belongs to")] = "default",
        as_json: Annotated[bool, typer.Option("--json", help="print the new tool as one JSON object (for scripts)")] = False,
    ) -> None:
        """Register a tool; prints its client_id and deployment ids."""
        pairs = [c.partition("=") for c in custom or []]
        if any(not sep or not k for k, sep, _ in pairs):
            raise typer.BadParameter("--custom takes name=value")
        try:
            reg = ToolRegistration(
                name=name, login_url=login_url, redirect_uris=redirect_uri, target_link_uri=target_link_uri or redirect_uri[0],
                jwks_url=jwks_url, public_jwk=_read_public_key(public_key) if public_key else None, deep_link_url=deep_link_url,
                custom={k: v for k, _, v in pairs}, deployments=deployment or [],
            )
        except PydanticError as exc:
            raise typer.BadParameter("; ".join(e["msg"] for e in exc.errors())) from None
        tool = ToolRegistry(open_store().engine).add(tenant, reg)
        if as_json:
            out.print(orjson.dumps({"client_id": tool.client_id, "tenant": tool.tenant, "deployments": list(tool.deployments)}).decode(),
                      soft_wrap=True, highlight=False)
            return
        out.print(f"client_id: {tool.client_id}", soft_wrap=True, highlight=False)
        out.print(f"deployments: {' '.join(tool.deployments)}", soft_wrap=True, highlight=False)

    @app.command("list")
    def list_(tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None) -> None:
        """The registered tools."""
        for t in ToolRegistry(open_store().engine).list(tenant):
            out.print(f"{t.client_id}  {t.tenant}  {t.name}  login={t.login_url}  deployments={','.join(t.deployments)}")

    @app.command("remove")
    def remove(client_id: str) -> None:
        """Remove a tool with its deployments, line items and results (its evidence stays)."""
        ToolRegistry(open_store().engine).remove(None, client_id)
        out.print(f"removed {client_id}")

    return app


def _read_public_key(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8").strip()
    if text.startswith("{"):
        return orjson.loads(text)
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from jwt.algorithms import RSAAlgorithm

    return orjson.loads(RSAAlgorithm.to_jwk(load_pem_public_key(text.encode())))


__all__ = ["tools_cli"]
