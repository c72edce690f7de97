"""``tessera import ndjson`` and ``tessera export ndjson``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.cli_kit import ImportTenant, console, open_store, print_apply_result, print_tenant, progress_description
from gateway.model import RECORD_TYPES


def register(adapter: Any, import_app: typer.Typer, export_app: typer.Typer) -> None:
    """``adapter``: the NdjsonAdapter (its ``parse_named`` and ``emit``)."""

    @import_app.command("ndjson")
    def import_ndjson(
        file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="canonical NDJSON file")],
        tenant: ImportTenant = "default",
    ) -> None:
        """Import canonical records, one JSON object per line. All or nothing. A record without
        "tenant" goes to --tenant (its "id", if any, a label the file's references use); a record
        naming another tenant is refused (the rule of POST /v1/batches)."""
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        store = open_store()
        with store.imports.track(tenant, "ndjson", str(file)) as run:
            with Progress(progress_description(), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                          console=console, transient=True) as progress:
                task = progress.add_task(f"validating {file.name}", total=file.stat().st_size)

                def lines():
                    with file.open("rb") as fh:
                        for line in fh:
                            progress.advance(task, len(line))
                            yield line

                records = adapter.parse_named(lines(), name=file.name, tenant=tenant)
            with console.status(f"applying {len(records)} records in one transaction"):
                result = store.records.apply(tenant, records)
            run.done(result)
        print_apply_result(result, title=f"{file.name} -> tenant {tenant}")
        print_tenant(tenant)

    @export_app.command("ndjson")
    def export_ndjson(
        tenant: Annotated[str, typer.Option(help="tenant to export")] = "default",
        kind: Annotated[list[str] | None, typer.Option(help=f"record kinds (repeatable); default all: {', '.join(RECORD_TYPES)}")] = None,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="file to write; default standard output")] = None,
    ) -> None:
        """Export the tenant's records as canonical NDJSON (re-imports to the same state)."""
        bad = [k for k in kind or [] if k not in RECORD_TYPES]
        if bad:
            raise typer.BadParameter(f"unknown kind(s) {bad}; known: {sorted(RECORD_TYPES)}", param_hint="--kind")
        store = open_store()
        out = output.open("wb") if output else sys.stdout.buffer
        n = 0
        try:
            for chunk in adapter.emit(store.records.iter_records(tenant, kind or None)):
                out.write(chunk)
                n += 1
        finally:
            if output:
                out.close()
        if output:
            console.print(f"wrote {n} records to {output}")
