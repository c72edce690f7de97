"""``tessera export report KIND OUT``: the reports of ``gateway.reports`` as files.

``gateway/cli.py`` wires it with ``register(export_app)``; the console and the store come
from the CLI kit (``gateway.cli_kit``), so this module does not import the CLI (which
imports it). The de-identification salt is read from the environment variable named
by ``--salt-env`` (never from the command line, where it would land in shell history and
process lists), and is never printed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..cli_kit import console, open_store
from .builder import Reports
from .deidentify import DEFAULT_MIN_CELL, Deidentify, salt_from_env
from .formats import FORMATS
from .grades import load_grade_mapping
from .progression import load_thresholds
from .scope import KINDS, parse_scope

SUFFIXES = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "json"}


def _format(out: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise typer.BadParameter(f"must be one of {', '.join(FORMATS)}", param_hint="--format")
        return fmt
    found = SUFFIXES.get(out.suffix.lower())
    if found is None:
        raise typer.BadParameter(f"cannot tell the format from {out.name!r}: name it .csv, .ndjson or .json, or give --format",
                                 param_hint="--format")
    return found


def register(export_app: typer.Typer) -> None:
    """Add ``report`` to ``export_app``; ``console`` takes the summary line, ``open_store()``
    opens the configured store (and refuses one whose schema is not current)."""

    @export_app.command("report")
    def export_report(
        kind: Annotated[str, typer.Argument(help=f"one of: {', '.join(KINDS)}")],
        out: Annotated[Path, typer.Argument(dir_okay=False, help="file to write (.csv, .ndjson or .json); - for standard output")],
        tenant: Annotated[str, typer.Option(help="tenant to report on")] = "default",
        org: Annotated[str | None, typer.Option(help="org id: a school, or a district (its schools)")] = None,
        section: Annotated[str | None, typer.Option(help="section id (required by the grades report)")] = None,
        grade: Annotated[str | None, typer.Option(help="only learners in this grade (CEDS code, e.g. 05)")] = None,
        group: Annotated[str | None, typer.Option(help="only learners in this demographic group, e.g. ell")] = None,
        competency: Annotated[list[str] | None, typer.Option(help="only these competency ids (repeatable)")] = None,
        framework: Annotated[str | None, typer.Option(help="only the competencies of this framework id")] = None,
        group_by: Annotated[str | None, typer.Option("--group-by", help="org, section, grade, sex, race, ethnicity or group")] = None,
        as_of: Annotated[str | None, typer.Option("--as-of", help="the state at this past date (ISO 8601)")] = None,
        fmt: Annotated[str | None, typer.Option("--format", help="csv, ndjson or json (default: from OUT's suffix)")] = None,
        deidentified: Annotated[bool, typer.Option("--deidentified", help="pseudonymous learners, small counts suppressed")] = False,
        salt_env: Annotated[str | None, typer.Option("--salt-env", metavar="VAR", help="environment variable holding the salt")] = None,
        min_cell: Annotated[int, typer.Option("--min-cell", help="suppress counts below this (de-identified)")] = DEFAULT_MIN_CELL,
        thresholds: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="progression thresholds YAML")] = None,
        mapping: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="grade mapping YAML (grades report)")] = None,
    ) -> None:
        """Write a mastery report: distribution, progression, evidence-volume, states or grades."""
        if kind not in KINDS:
            raise typer.BadParameter(f"must be one of {', '.join(KINDS)}", param_hint="KIND")
        to_stdout = str(out) == "-"
        fmt = _format(out, fmt) if not to_stdout else (fmt or "csv")
        if fmt not in FORMATS:
            raise typer.BadParameter(f"must be one of {', '.join(FORMATS)}", param_hint="--format")
        if not deidentified and (salt_env or min_cell != DEFAULT_MIN_CELL):
            raise typer.BadParameter("--salt-env and --min-cell go with --deidentified")
        scope = parse_scope(org=org, section=section, grade=grade, group=group, competency=competency or (),
                            framework=framework, group_by=group_by, as_of=as_of)
        deid = Deidentify(salt=salt_from_env(salt_env) if salt_env else None, min_cell=min_cell) if deidentified else None
        options = {}
        if mapping is not None:
            if kind != "grades":
                raise typer.BadParameter("--mapping goes with the grades report")
            options["mapping"] = load_grade_mapping(mapping)
        store = open_store()
        try:
            reports = Reports(store, thresholds=load_thresholds(thresholds) if thresholds else None)
            report = reports.build(kind, tenant, scope, deid, **options)
            _, render = FORMATS[fmt]
            rows = _write(render(report), out, to_stdout)
        finally:
            store.dispose()
        if not to_stdout:
            console.print(f"wrote {kind} report ({fmt}, {rows} lines) to {out}")


def _write(chunks: object, out: Path, to_stdout: bool) -> int:
    """Stream the rendered chunks to ``out`` (or stdout); the number of lines written."""
    lines = 0
    if to_stdout:
        for chunk in chunks:  # type: ignore[attr-defined]
            text = chunk.decode() if isinstance(chunk, bytes) else chunk
            sys.stdout.write(text)
            lines += text.count("\n")
        sys.stdout.flush()
        return lines
    with out.open("wb") as fh:
        for chunk in chunks:  # type: ignore[attr-defined]
            data = chunk.encode() if isinstance(chunk, str) else chunk
            fh.write(data)
            lines += data.count(b"\n")
    return lines


__all__ = ["register"]
