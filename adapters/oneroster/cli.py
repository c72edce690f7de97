"""``tessera import oneroster PATH``, ``tessera export oneroster OUT.zip``, ``tessera validate
oneroster PATH`` (the import's dry run: the same report, nothing written) and ``tessera
oneroster consumers create|list|revoke`` (OAuth 1.0a keys of the 1.1 REST paths).

Imports are tolerant by default: a deviation from the letter of the spec that has one reading
is normalised and listed (``csv.tolerance``); ``--strict`` refuses every deviation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from gateway.cli_kit import (
    ImportTenant,
    client_secret_from_env,
    console,
    open_store,
    out,
    print_apply_result,
    print_credentials,
    print_deviations,
    print_new_credentials,
    print_table,
    print_tenant,
    progress_description,
)
from gateway.errors import Deviations, TesseraError

from .oauth1_auth import SCOPES as CONSUMER_SCOPES

if TYPE_CHECKING:
    from .csv.ingest import Validation

STRICT_HELP = ("refuse every deviation from the letter of the spec (by default those with one reading, such as "
               "'Scheduled' for 'scheduled', are normalised and listed as warnings)")


def print_validation(v: Validation, *, as_json: bool, title: str) -> None:
    """The dry run's report: rows per file, errors with their place, deviations; JSON with
    ``as_json`` (``Validation.as_dict``). User data is printed as text, never as markup."""
    if as_json:
        typer.echo(json.dumps(v.as_dict(), indent=2, ensure_ascii=False))
        return
    r = v.report
    if r is not None:
        print_table(["file", "mode", "rows"], [(f"{n}.csv", m, r.rows.get(n, "")) for n, m in sorted(r.files.items()) if m != "absent"],
                    title=title)
        out.print(Text(f"{r.records} record(s) would be written" + ("" if v.valid else " (none is: the package has errors)")))
        print_deviations(r.deviations)
    if v.errors:
        console.print(Text(f"error: {v.detail or 'invalid OneRoster package'} ({len(v.errors)} problem(s))", style="red"))
        for e in v.errors[:50]:
            console.print(Text(f"  - {e}"))
        if len(v.errors) > 50:
            console.print(Text(f"  ... and {len(v.errors) - 50} more (--json lists them all)"))
    else:
        out.print(Text("valid: nothing was written", style="green"))


def register(adapter: Any, import_app: typer.Typer, export_app: typer.Typer, *, validate_app: typer.Typer | None = None) -> None:
    """``tessera import oneroster``, ``tessera export oneroster`` and (given ``validate_app``)
    ``tessera validate oneroster`` (``adapter``: the OneRosterAdapter)."""

    def validate(path: Path, *, tenant: str, source: str, strict: bool, as_json: bool) -> None:
        from .csv.ingest import validate_package

        try:
            store = open_store()
        except TesseraError as exc:  # no database: the package is checked on its own
            console.print(Text(f"note: {exc.detail}; checking the package on its own (every reference must resolve inside it)",
                               style="yellow"))
            store = None
        with console.status(f"validating {path.name}"):
            v = validate_package(path, tenant=tenant, source=source, store=store, strict=strict)
        mode = "strict" if strict else "tolerant"
        version = v.report.version if v.report else "?"
        print_validation(v, as_json=as_json, title=f"OneRoster {version} {path.name} ({mode}; dry run, tenant {tenant}, source {source})")
        if not v.valid:
            raise typer.Exit(1)

    if validate_app is not None:
        @validate_app.command("oneroster")
        def validate_oneroster(
            path: Annotated[Path, typer.Argument(exists=True, help="a OneRoster 1.1/1.2 CSV package: a zip file or a directory")],
            tenant: Annotated[str, typer.Option(help="tenant the import would write to (references may point to its records)")] = "default",
            source: Annotated[str, typer.Option(help="name of the system the package comes from")] = "sis",
            strict: Annotated[bool, typer.Option("--strict", help=STRICT_HELP)] = False,
            as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON (errors and deviations with location "
                                                  "and field, rows per file)")] = False,
        ) -> None:
            """Check a OneRoster CSV package as `tessera import oneroster` would, and write nothing:
            rows per file, every error and every deviation with its file, row and column. Exit
            code 1 when the package has errors."""
            validate(path, tenant=tenant, source=source, strict=strict, as_json=as_json)

    @import_app.command("oneroster")
    def import_oneroster(
        path: Annotated[Path | None, typer.Argument(exists=True, help="a OneRoster 1.1/1.2 CSV package: a zip file or a directory")] = None,
        tenant: ImportTenant = "default",
        source: Annotated[str, typer.Option(help="name of the system the package comes from (keys its records)")] = "sis",
        url: Annotated[str | None, typer.Option("--url", metavar="BASE", help="a OneRoster REST provider (site root or "
                                                ".../ims/oneroster/rostering/v1p2 or .../ims/oneroster/v1p1)")] = None,
        version: Annotated[str, typer.Option("--version", help="OneRoster version of the provider when --url is a site root: 1.2 or 1.1")] = "1.2",
        since: Annotated[str | None, typer.Option("--since", metavar="ISO", help="incremental: only objects changed after "
                                                  "this date-time (the watermark a previous pull printed)")] = None,
        client_id: Annotated[str | None, typer.Option("--client-id", help="OAuth 2.0 client id")] = None,
        client_secret_env: Annotated[str | None, typer.Option("--client-secret-env", metavar="VAR",
                                                              help="environment variable holding the client secret")] = None,
        token_url: Annotated[str | None, typer.Option("--token-url", help="the provider's OAuth 2.0 token endpoint")] = None,
        scope: Annotated[str | None, typer.Option("--scope", help="scope to ask the token endpoint for")] = None,
        oauth1: Annotated[bool, typer.Option("--oauth1", help="sign requests with OAuth 1.0a HMAC-SHA256 (1.1 providers); "
                                             "--client-id is the consumer key")] = False,
        demographics: Annotated[bool, typer.Option("--demographics", help="with --url: also read /demographics onto each "
                                                   "user (the provider must grant roster-demographics.readonly)")] = False,
        strict: Annotated[bool, typer.Option("--strict", help=STRICT_HELP)] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="check the package and print the report; write nothing "
                                              "(as `tessera validate oneroster`)")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="print the summary (or the --dry-run report) as JSON")] = False,
        keep_credentials: Annotated[str | None, typer.Option("--keep-credentials", metavar="drop|sealed",
                                                             help="user passwords in the package: drop them (default, "
                                                             "TESSERA_ONEROSTER__KEEP_CREDENTIALS) or keep them sealed")] = None,
    ) -> None:
        """Import a OneRoster CSV package (bulk and delta files), or pull a tenant from a OneRoster
        REST provider (--url). All or nothing: every problem is reported with where it is."""
        if (path is None) == (url is None):
            raise typer.BadParameter("give a CSV package PATH or --url, not both and not neither")
        if url is not None and dry_run:
            raise typer.BadParameter("--dry-run checks a CSV package PATH, not a --url pull")
        if url is not None:
            pull(url, tenant=tenant, source=source, version=version, since=since, client_id=client_id,
                 client_secret_env=client_secret_env, token_url=token_url, scope=scope, oauth1=oauth1, demographics=demographics,
                 strict=strict)
            return
        if since or client_id or client_secret_env or token_url or scope or oauth1 or demographics:
            raise typer.BadParameter("--since, --demographics and the OAuth options go with --url")
        if keep_credentials not in (None, "drop", "sealed"):
            raise typer.BadParameter("expected drop or sealed", param_hint="--keep-credentials")
        assert path is not None
        if dry_run:
            validate(path, tenant=tenant, source=source, strict=strict, as_json=as_json)
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
        )

        from .csv.package import Package

        pkg = Package(path, strict=True)  # only its sizes: the import reports its deviations
        total = sum(pkg.size(n) for n in pkg.members if n.endswith(".csv") and n != "manifest.csv")
        pkg.close()
        store = open_store()
        with store.imports.track(tenant, "oneroster.csv", str(path)) as run, \
                Progress(progress_description(), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=console,
                         transient=True) as progress:
            task = progress.add_task(f"validating {path.name}", total=total or None)
            current = {"file": ""}

            def on_progress(name: str, n: int) -> None:
                if name != current["file"]:
                    current["file"] = name
                    progress.update(task, description=f"reading {name}")
                progress.advance(task, n)

            def applying(n: int) -> None:
                progress.update(task, description=f"applying {n} records in one transaction", total=None)

            report = adapter.import_package(store, path, tenant=tenant, source=source, progress=on_progress, applying=applying,
                                           strict=strict, keep_credentials=keep_credentials)
            run.done(report.result, deviations=report.deviations)
        if as_json:
            typer.echo(json.dumps(import_summary(report), indent=2, ensure_ascii=False))
            return
        print_apply_result(report.result, title=f"OneRoster {report.version} {path.name} -> tenant {tenant} (source {source})")
        modes = ", ".join(f"{k}={v}" for k, v in sorted(report.files.items()) if v != "absent")
        out.print(f"files: {modes}")
        print_tenant(tenant)
        for kind, n in sorted(report.deleted.items()):
            out.print(f"bulk: {n} {kind} record(s) of source {source} absent from this package's bulk file were marked tobedeleted")
        print_deviations(report.deviations)
        print_credentials_report(report)

    def pull(url: str, *, tenant: str, source: str, version: str, since: str | None, client_id: str | None,
             client_secret_env: str | None, token_url: str | None, scope: str | None, oauth1: bool,
             demographics: bool = False, strict: bool = False) -> None:
        from .client import OneRosterClient

        secret = client_secret_from_env(client_id, client_secret_env)
        store = open_store()
        with store.imports.track(tenant, "oneroster.rest", url) as run, \
                OneRosterClient(url, version=version, client_id=client_id, client_secret=secret, token_url=token_url,
                                scope=scope, oauth1=oauth1) as client, console.status(f"reading {client.base}") as status:
            def on_page(name: str, n: int, total: int | None) -> None:
                status.update(f"reading {name} from {client.base}: {n}" + (f" of {total}" if total else ""))

            summary = client.pull(store, tenant=tenant, source=source, since=since, on_page=on_page, demographics=demographics,
                                  strict=strict)
            run.done(summary.result, deviations=summary.deviations)
        mode = f"changes since {since}" if since else "full"
        print_apply_result(summary.result, title=f"OneRoster {summary.version} {client.base} ({mode}) -> tenant {tenant} (source {source})")
        out.print("read: " + ", ".join(f"{name}={n}" for name, n in summary.counts.items()))
        print_tenant(tenant)
        for kind, n in sorted(summary.retired.items()):
            out.print(f"{n} {kind} record(s) no longer listed by the provider: marked tobedeleted")
        for name, n in sorted(summary.ignored.items()):
            out.print(f"{n} tobedeleted {name} object(s) were never stored: nothing to do")
        print_deviations(summary.deviations)
        print_credentials_report(summary)
        out.print(f"watermark: {summary.next_since or 'none (no dateLastModified seen)'}")

    @export_app.command("oneroster")
    def export_oneroster(
        output: Annotated[Path, typer.Argument(dir_okay=False, help="zip file to write")],
        tenant: Annotated[str, typer.Option(help="tenant to export")] = "default",
        version: Annotated[str, typer.Option(help="OneRoster version: 1.2 or 1.1")] = "1.2",
        source: Annotated[str | None, typer.Option(help="export only records from this source")] = None,
        mastery: Annotated[bool, typer.Option("--mastery", help="write the tenant's mastery instead: OneRoster 1.2 "
                                              "assessmentLineItems / assessmentResults naming each competency's CASE GUID")] = False,
        credentials: Annotated[bool, typer.Option("--credentials", help="also write the user passwords imports kept sealed "
                                                  "(TESSERA_ONEROSTER__KEEP_CREDENTIALS=sealed); left out by default")] = False,
    ) -> None:
        """Write a OneRoster bulk CSV package (manifest.csv and one file per type) that
        re-imports to the same state; with --mastery, mastery written back as 1.2 assessment results."""
        if version not in ("1.1", "1.2"):
            raise typer.BadParameter("expected 1.1 or 1.2", param_hint="--version")
        store = open_store()
        if mastery:
            if version != "1.2" or source is not None:
                raise typer.BadParameter("--mastery writes OneRoster 1.2 and takes no --source")
            from .gradebook.writeback import export_mastery_package

            with console.status(f"writing {output}"):
                counts = export_mastery_package(store, output, tenant=tenant)
            out.print(f"wrote {output}: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
            return
        held = Deviations()
        with console.status(f"writing {output}"):
            counts = adapter.export_package(store, output, tenant=tenant, version=version, source=source, credentials=credentials,
                                           deviations=held)
        out.print(f"wrote {output}: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
        if held:
            console.print(Text(f"warning: {held.total} reference(s) written as sent to records this package does not carry "
                               "(held unresolved since their import); a --strict import of it refuses exactly these", style="yellow"))
            print_deviations(held)


def import_summary(report: Any) -> dict[str, Any]:
    """``tessera import oneroster --json``: what was read and written, and the deviations."""
    result = report.result
    return {
        "version": report.version,
        "files": dict(report.files),
        "rows": dict(report.rows),
        "records": report.records,
        "deleted": dict(report.deleted),
        "result": {"created": result.created, "updated": result.updated, "unchanged": result.unchanged,
                   "counts": {k: {"created": c.created, "updated": c.updated, "unchanged": c.unchanged}
                              for k, c in sorted(result.counts.items())}},
        "deviations": report.deviations.as_dict(),
    }


def print_credentials_report(report: Any) -> None:
    """What an import did with user passwords (``credentials``): per file and column."""
    for key, n in sorted(report.dropped_credentials.items()):
        out.print(f"{key}: {n} row(s) carried a password or credential: dropped, never stored "
                  "(TESSERA_ONEROSTER__KEEP_CREDENTIALS=sealed or --keep-credentials sealed keeps them sealed)", markup=False)
    for key, n in sorted(getattr(report, "sealed_credentials", {}).items()):
        out.print(f"{key}: {n} row(s) carried a password or credential: kept sealed "
                  "(readable only with roster-credentials.readonly)", markup=False)


def oneroster_cli() -> typer.Typer:
    """``tessera oneroster consumers create|list|revoke``: OneRoster 1.1 OAuth 1.0a consumer keys."""
    from .oauth1_auth import ConsumerStore

    oneroster_app = typer.Typer(help="OneRoster REST provider settings.", no_args_is_help=True)
    consumers = typer.Typer(help="OAuth 1.0a consumer keys for the OneRoster 1.1 paths (/ims/oneroster/v1p1/): "
                                 "one tenant each, with OneRoster scopes; secrets sealed at rest.", no_args_is_help=True)
    oneroster_app.add_typer(consumers, name="consumers")

    @consumers.command("create")
    def create(
        tenant: Annotated[str, typer.Option(help="the tenant whose data the key reads (created if new)")],
        scopes: Annotated[list[str], typer.Option("--scope", "--scopes", help=f"OneRoster scopes, repeatable or space-separated; "
                                                  f"known: {' '.join(CONSUMER_SCOPES)}")],
        name: Annotated[str | None, typer.Option(help="a name for humans (the SIS or LMS using the key)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the new key as one JSON object (for scripts)")] = False,
    ) -> None:
        """Create a consumer key. Its secret is printed ONCE; it is stored sealed, never logged.
        The consumer signs each 1.1 request with OAuth 1.0a HMAC-SHA256 (or HMAC-SHA1)."""
        flat = [s for item in scopes for s in item.replace(",", " ").split()]
        consumer, secret = ConsumerStore(open_store().engine).create(tenant, flat, name)
        print_new_credentials({"consumer_key": consumer.consumer_key, "consumer_secret": secret, "tenant": consumer.tenant,
                               "scopes": list(consumer.scopes)},
                              as_json=as_json, notes=["endpoint: /ims/oneroster/v1p1/ (OAuth 1.0a, HMAC-SHA256 or HMAC-SHA1)"])

    @consumers.command("list")
    def list_(tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None) -> None:
        """List consumer keys (never their secrets)."""
        print_credentials("consumer_key", [(c.consumer_key, c) for c in ConsumerStore(open_store().engine).list(tenant)])

    @consumers.command("revoke")
    def revoke(consumer_key: Annotated[str, typer.Argument(help="the key to end")]) -> None:
        """Revoke a consumer key: its signed requests are refused from now on (consumer_key_refused)."""
        ConsumerStore(open_store().engine).revoke(consumer_key)
        console.print(f"revoked {consumer_key}")

    return oneroster_app
