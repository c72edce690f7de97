"""``tessera import case`` (a CFPackage file, or a CASE provider) and ``tessera export case``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from gateway.cli_kit import ImportTenant, client_secret_from_env, console, open_store, out, print_apply_result, print_tenant, warn

if TYPE_CHECKING:
    from gateway.store import Store
    from gateway.store.competencies import FrameworkImport

    from .cf_package import CasePackage


def register(adapter: Any, import_app: typer.Typer, export_app: typer.Typer) -> None:
    """``tessera import case`` and ``tessera export case`` (``adapter``: the CaseAdapter)."""

    def report(pkg: CasePackage, done: FrameworkImport, where: str, tenant: str) -> None:
        print_apply_result(done.result, title=f"{pkg.title} ({pkg.identifier}) from {where} -> tenant {tenant}")
        print_tenant(tenant)
        if done.existed:
            prev = done.previous_published_at.isoformat() if done.previous_published_at else "unknown"
            out.print(f"updated in place (stored version's last change: {prev})")
        for kind, n in sorted(done.retired.items()):
            out.print(f"{n} {kind} record(s) no longer in the framework: kept, marked tobedeleted")
        for w in pkg.warnings[:20]:
            warn(str(w))
        if len(pkg.warnings) > 20:
            warn(f"... and {len(pkg.warnings) - 20} more warnings")

    def import_bytes(store: Store, data: bytes, *, name: str, tenant: str, source: str, force: bool, strict: bool) -> None:
        with console.status(f"validating {name} ({len(data) / 1e6:.1f} MB) against the CASE 1.0 schema") as status:
            pkg = adapter.parse_package(data, tenant=tenant, source=source, strict=strict, name=name)
            status.update(f"storing {pkg.title!r}: {len(pkg.competencies)} items, {len(pkg.relations)} associations, "
                          f"{len(pkg.scales)} rubric criteria, in one transaction")
            _, done = adapter.import_package(store, tenant, pkg, source=source, force=force)
        report(pkg, done, name, tenant)

    @import_app.command("case")
    def import_case(
        file: Annotated[Path | None, typer.Argument(exists=True, dir_okay=False, help="a CFPackage JSON file")] = None,
        url: Annotated[str | None, typer.Option("--url", help="a CASE 1.0 provider (site root or .../ims/case/v1p0)")] = None,
        document: Annotated[list[str] | None, typer.Option("--document", help="CFDocument identifier to import (repeatable); "
                                                           "default: every document the provider lists")] = None,
        tenant: ImportTenant = "default",
        source: Annotated[str, typer.Option(help="system name the records are keyed by")] = "case",
        force: Annotated[bool, typer.Option("--force", help="replace a stored framework even when this one is older")] = False,
        strict: Annotated[bool, typer.Option("--strict", help="reject the deviations otherwise accepted with a warning")] = False,
        client_id: Annotated[str | None, typer.Option("--client-id", help="OAuth 2.0 client id, used when the provider asks")] = None,
        client_secret_env: Annotated[str | None, typer.Option("--client-secret-env", metavar="VAR",
                                                              help="environment variable holding the client secret")] = None,
        token_url: Annotated[str | None, typer.Option("--token-url", help="the provider's OAuth 2.0 token endpoint")] = None,
        scope: Annotated[str | None, typer.Option("--scope", help="scope to ask the token endpoint for")] = None,
    ) -> None:
        """Import a CASE framework (CFPackage): from a file, or from a CASE provider (CFDocuments,
        then CFPackages/{id}). Validated first; all or nothing; a newer version updates in place."""
        if (file is None) == (url is None):
            raise typer.BadParameter("give a CFPackage FILE or --url, not both and not neither")
        store = open_store()
        if file is not None:
            if document or client_id or client_secret_env or token_url:
                raise typer.BadParameter("--document and the OAuth options go with --url")
            import_bytes(store, file.read_bytes(), name=file.name, tenant=tenant, source=source, force=force, strict=strict)
            return

        from .client import CaseClient

        secret = client_secret_from_env(client_id, client_secret_env)
        assert url is not None
        with CaseClient(url, client_id=client_id, client_secret=secret, token_url=token_url, scope=scope) as client:
            ids = list(document or [])
            if not ids:
                with console.status(f"listing CFDocuments at {client.base}") as status:
                    def on_page(n: int, total: int | None) -> None:
                        status.update(f"listing CFDocuments at {client.base}: {n}" + (f" of {total}" if total else ""))

                    ids = [d["identifier"] for d in client.documents(on_page=on_page) if isinstance(d, dict) and d.get("identifier")]
                console.print(f"{len(ids)} CFDocument(s) at {client.base}")
            for i, ident in enumerate(ids, start=1):
                with console.status(f"[{i}/{len(ids)}] fetching CFPackages/{ident}"):
                    data = client.package(ident)
                import_bytes(store, data, name=f"CFPackages/{ident}", tenant=tenant, source=source, force=force, strict=strict)

    @export_app.command("case")
    def export_case(
        document: Annotated[str, typer.Option("--document", help="CFDocument identifier of the framework")],
        tenant: Annotated[str, typer.Option(help="tenant to export from")] = "default",
        output: Annotated[Path | None, typer.Option("--output", "-o", help="file to write; default standard output")] = None,
        base: Annotated[str, typer.Option(help="provider base URL for URIs a framework does not carry")] = "",
    ) -> None:
        """Export one framework as a CASE 1.0 CFPackage JSON document."""
        store = open_store()
        with console.status(f"building CFPackage {document}"):
            pkg = adapter.export_package(store, tenant, document, base=base)
        data = orjson.dumps(pkg, option=orjson.OPT_INDENT_2) + b"\n"
        if output:
            output.write_bytes(data)
            console.print(f"wrote {output}: {len(pkg.get('CFItems', []))} items, {len(pkg.get('CFAssociations', []))} associations")
        else:
            sys.stdout.buffer.write(data)
