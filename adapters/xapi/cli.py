"""``tessera lrs credentials create|list|revoke``: HTTP Basic credentials of the LRS.

LRS credentials are gateway OAuth clients whose scopes are xAPI scopes: the key is the
client id, the secret is shown once and stored only as an scrypt hash, and the same pair
can also get an OAuth 2.0 bearer token. Each belongs to one tenant.
"""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.cli_kit import console, open_store, print_credentials, print_new_credentials

from .scopes import XAPI_SCOPES


def lrs_cli() -> typer.Typer:
    """The ``tessera lrs`` group."""
    lrs_app = typer.Typer(help="The xAPI Learning Record Store", no_args_is_help=True)
    credentials = typer.Typer(help="HTTP Basic credentials for the LRS (one tenant each)", no_args_is_help=True)
    lrs_app.add_typer(credentials, name="credentials")

    @credentials.command("create")
    def create(
        tenant: Annotated[str, typer.Option(help="the tenant whose LRS these credentials use (created if new)")],
        scopes: Annotated[list[str] | None, typer.Option("--scopes", "--scope", help=f"xAPI scopes, repeatable or "
                                                         f"space-separated, with or without 'xapi/' (default: all); "
                                                         f"known: {' '.join(XAPI_SCOPES)}")] = None,
        name: Annotated[str | None, typer.Option(help="a name for humans; it is the authority's name in statements")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the new credentials as one JSON object (for scripts)")] = False,
    ) -> None:
        """Create LRS credentials. The secret is printed ONCE; only a hash is stored."""
        from gateway.auth import ClientStore

        flat = [s for item in scopes or ["all"] for s in item.replace(",", " ").split()]
        wanted = [s if s.startswith("xapi/") else "xapi/" + s for s in flat]
        bad = [s for s in wanted if s not in XAPI_SCOPES]
        if bad:
            raise typer.BadParameter(f"unknown xAPI scope(s) {bad}; known: {' '.join(XAPI_SCOPES)}")
        client, secret = ClientStore(open_store().engine).create(tenant, wanted, name or f"lrs-{tenant}")
        print_new_credentials({"key": client.client_id, "secret": secret, "tenant": client.tenant, "scopes": list(client.scopes)},
                              as_json=as_json, notes=["endpoint: /xapi/ (HTTP Basic: key as user name, secret as password)"])

    @credentials.command("list")
    def list_(tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None) -> None:
        """List LRS credentials (never their secrets)."""

        from gateway.auth import ClientStore

        clients = [c for c in ClientStore(open_store().engine).list(tenant) if any(s.startswith("xapi/") for s in c.scopes)]
        print_credentials("key", [(c.client_id, c) for c in clients])

    @credentials.command("revoke")
    def revoke(key: str) -> None:
        """Revoke LRS credentials: a running server refuses them (Basic or their bearer tokens) within 5 s
        (TESSERA_REVOCATION_CHECK_SECONDS)."""
        from gateway.auth import ClientStore

        ClientStore(open_store().engine).revoke(key)
        console.print(f"revoked {key}")

    return lrs_app
