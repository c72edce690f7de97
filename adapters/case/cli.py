"""``tessera import case`` (a CFPackage file, or a CASE provider), ``tessera export case`` and
``tessera validate case`` (what an import would report, writing nothing)."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.text import Text

from gateway.cli_kit import (
    ImportTenant,
    client_secret_from_env,
    console,
    open_store,
    out,
    print_apply_result,
    print_deviations,
    print_table,
    print_tenant,
)
from gateway.errors import Deviations, ErrorDetail, TesseraError

if TYPE_CHECKING:
    from gateway.store import Store
    from gateway.store.competencies import FrameworkImport

    from .cf_package import CasePackage


def contents(pkg: CasePackage) -> dict[str, int]:
    """Record kind -> how many the package holds (after collapsing exact duplicates)."""
    return {"framework": 1, "competency": len(pkg.competencies), "relation": len(pkg.relations), "proficiency_scale": len(pkg.scales)}


def print_errors(errors: list[ErrorDetail], *, shown: int = 50) -> None:
    """Each problem on its own line, as text (a message may hold brackets: never console markup)."""
    for e in errors[:shown]:
        console.print(Text.assemble(("error: ", "red"), (str(e), "")))
    if len(errors) > shown:
        console.print(Text(f"... and {len(errors) - shown} more errors (--json lists them all)", style="red"))


def print_notes(pkg: CasePackage) -> None:
    """What is legal CASE but worth knowing (a precedes cycle): never refused, nothing changed."""
    for n in pkg.notes:
        console.print(Text.assemble(("note: ", "cyan"), (f"[{n.kind}] {n}", "")))


def register(adapter: Any, import_app: typer.Typer, export_app: typer.Typer, validate_app: typer.Typer | None = None) -> None:
    """``tessera import case``, ``tessera export case`` and, given ``validate_app``, ``tessera
    validate case`` (``adapter``: the CaseAdapter)."""

    def report(pkg: CasePackage, done: FrameworkImport, where: str, tenant: str) -> None:
        print_apply_result(done.result, title=f"{pkg.title} ({pkg.identifier}) from {where} -> tenant {tenant}")
        print_tenant(tenant)
        if done.existed:
            prev = done.previous_published_at.isoformat() if done.previous_published_at else "unknown"
            out.print(f"updated in place (stored version's last change: {prev})")
        for kind, n in sorted(done.retired.items()):
            out.print(f"{n} {kind} record(s) no longer in the framework: kept, marked tobedeleted")
        print_deviations(pkg.deviations)
        print_notes(pkg)

    def dry_report(pkg: CasePackage, where: str, tenant: str) -> None:
        print_table(["kind", "in the package"], sorted(contents(pkg).items()),
                    title=f"{pkg.title} ({pkg.identifier}) from {where} -> tenant {tenant}: valid, nothing written")
        print_deviations(pkg.deviations)
        print_notes(pkg)

    def import_bytes(store: Store, data: bytes, *, name: str, tenant: str, source: str, force: bool, strict: bool,
                     dry_run: bool = False) -> None:
        tracked = nullcontext() if dry_run else store.imports.track(tenant, "case", name)
        with tracked as run, console.status(Text(f"validating {name} ({len(data) / 1e6:.1f} MB) against the CASE 1.0 schema")) as status:
            pkg = adapter.parse_package(data, tenant=tenant, source=source, strict=strict, name=name)
            if dry_run:
                adapter.check_package(store, tenant, pkg, name=name)
                status.stop()
                dry_report(pkg, name, tenant)
                return
            status.update(Text(f"storing {pkg.title!r}: {len(pkg.competencies)} items, {len(pkg.relations)} associations, "
                               f"{len(pkg.scales)} rubric criteria, in one transaction"))
            _, done = adapter.import_package(store, tenant, pkg, source=source, force=force, name=name)
            if run is not None:
                run.done(done.result, deviations=pkg.deviations)
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
        dry_run: Annotated[bool, typer.Option("--dry-run", help="check everything an import checks and report it; write nothing")] = False,
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
            import_bytes(store, file.read_bytes(), name=file.name, tenant=tenant, source=source, force=force, strict=strict,
                         dry_run=dry_run)
            return

        from .client import CaseClient

        secret = client_secret_from_env(client_id, client_secret_env)
        assert url is not None
        with CaseClient(url, client_id=client_id, client_secret=secret, token_url=token_url, scope=scope) as client:
            ids = list(document or [])
            if not ids:
                with console.status(Text(f"listing CFDocuments at {client.base}")) as status:
                    def on_page(n: int, total: int | None) -> None:
                        status.update(Text(f"listing CFDocuments at {client.base}: {n}" + (f" of {total}" if total else "")))

                    ids = [d["identifier"] for d in client.documents(on_page=on_page) if isinstance(d, dict) and d.get("identifier")]
                console.print(Text(f"{len(ids)} CFDocument(s) at {client.base}"))
            for i, ident in enumerate(ids, start=1):
                with console.status(Text(f"[{i}/{len(ids)}] fetching CFPackages/{ident}")):
                    data = client.package(ident)
                import_bytes(store, data, name=f"CFPackages/{ident}", tenant=tenant, source=source, force=force, strict=strict,
                             dry_run=dry_run)

    @export_app.command("case")
    def export_case(
        document: Annotated[str, typer.Option("--document", help="CFDocument identifier of the framework")],
        tenant: Annotated[str, typer.Option(help="tenant to export from")] = "default",
        output: Annotated[Path | None, typer.Option("--output", "-o", help="file to write; default standard output")] = None,
        base: Annotated[str, typer.Option(help="provider base URL for URIs a framework does not carry")] = "",
    ) -> None:
        """Export one framework as a CASE 1.0 CFPackage JSON document."""
        store = open_store()
        with console.status(Text(f"building CFPackage {document}")):
            pkg = adapter.export_package(store, tenant, document, base=base)
        data = orjson.dumps(pkg, option=orjson.OPT_INDENT_2) + b"\n"
        if output:
            output.write_bytes(data)
            console.print(Text(f"wrote {output}: {len(pkg.get('CFItems', []))} items, {len(pkg.get('CFAssociations', []))} associations"))
        else:
            sys.stdout.buffer.write(data)

    if validate_app is None:
        return

    @validate_app.command("case")
    def validate_case(
        file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a CFPackage JSON file")],
        tenant: Annotated[str, typer.Option(help="tenant whose stored frameworks an isChildOf may point into")] = "default",
        source: Annotated[str, typer.Option(help="system name the records would be keyed by")] = "case",
        strict: Annotated[bool, typer.Option("--strict", help="report the tolerated deviations as errors")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="one JSON document on standard output, for scripts")] = False,
    ) -> None:
        """Check a CFPackage as `tessera import case` would, writing nothing.

        The same report as the import (schema, identifiers, isChildOf trees against the tenant's
        stored frameworks, deviations by kind); exit status 1 when the import would refuse it."""
        store = open_store()
        devs = Deviations(strict=strict)
        pkg: CasePackage | None = None
        errors: list[ErrorDetail] = []
        try:
            pkg = adapter.check_package(store, tenant, file.read_bytes(), source=source, strict=strict, devs=devs)
        except TesseraError as exc:  # MalformedInput, ValidationError: what the import would refuse
            errors = exc.errors or [ErrorDetail(exc.detail)]
        if as_json:
            doc: dict[str, Any] = {
                "file": str(file), "tenant": tenant, "strict": strict, "valid": not errors,
                "framework": {"identifier": pkg.identifier, "title": pkg.title} if pkg else None,
                "contents": contents(pkg) if pkg else None,
                "errors": [e.as_dict() for e in errors], "deviations": devs.as_dict(),
                "notes": [n.as_dict() for n in pkg.notes] if pkg else [],
            }
            sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        elif pkg is not None:
            dry_report(pkg, file.name, tenant)
        else:
            print_errors(errors)
            print_deviations(devs)
            console.print(Text(f"{file.name}: {len(errors)} error(s); `tessera import case` would refuse it and store nothing",
                               style="red"))
        if errors:
            raise typer.Exit(1)
