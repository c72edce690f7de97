"""``tessera import oneroster PATH`` and ``tessera export oneroster OUT.zip``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from . import OneRosterAdapter


def register(adapter: OneRosterAdapter, import_app: typer.Typer, export_app: typer.Typer) -> None:
    from gateway.cli import console, open_store, out, print_apply_result

    @import_app.command("oneroster")
    def import_oneroster(
        path: Annotated[Path, typer.Argument(exists=True, help="a OneRoster 1.1/1.2 CSV package: a zip file or a directory")],
        tenant: Annotated[str, typer.Option(help="tenant the records belong to")] = "default",
        source: Annotated[str, typer.Option(help="name of the system the package comes from (keys its records)")] = "sis",
    ) -> None:
        """Import a OneRoster CSV package (bulk and delta files). All or nothing: every problem
        is reported with its file, row and column."""
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        from .csv_bulk import Package

        pkg = Package(path)
        total = sum(pkg.size(n) for n in pkg.members if n.endswith(".csv") and n != "manifest.csv")
        pkg.close()
        store = open_store()
        with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), DownloadColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as progress:
            task = progress.add_task(f"validating {path.name}", total=total or None)
            current = {"file": ""}

            def on_progress(name: str, n: int) -> None:
                if name != current["file"]:
                    current["file"] = name
                    progress.update(task, description=f"reading {name}")
                progress.advance(task, n)

            def applying(n: int) -> None:
                progress.update(task, description=f"applying {n} records in one transaction", total=None)

            report = adapter.import_package(store, path, tenant=tenant, source=source, progress=on_progress, applying=applying)
        print_apply_result(report.result, title=f"OneRoster {report.version} {path.name} -> tenant {tenant} (source {source})")
        modes = ", ".join(f"{k}={v}" for k, v in sorted(report.files.items()) if v != "absent")
        out.print(f"files: {modes}")
        for kind, n in sorted(report.deleted.items()):
            out.print(f"{n} {kind} record(s) absent from a bulk file: marked tobedeleted")

    @export_app.command("oneroster")
    def export_oneroster(
        output: Annotated[Path, typer.Argument(dir_okay=False, help="zip file to write")],
        tenant: Annotated[str, typer.Option(help="tenant to export")] = "default",
        version: Annotated[str, typer.Option(help="OneRoster version: 1.2 or 1.1")] = "1.2",
        source: Annotated[str | None, typer.Option(help="export only records from this source")] = None,
    ) -> None:
        """Write a OneRoster bulk CSV package (manifest.csv and one file per type) that
        re-imports to the same state."""
        if version not in ("1.1", "1.2"):
            raise typer.BadParameter("expected 1.1 or 1.2", param_hint="--version")
        store = open_store()
        with console.status(f"writing {output}"):
            counts = adapter.export_package(store, output, tenant=tenant, version=version, source=source)
        out.print(f"wrote {output}: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
