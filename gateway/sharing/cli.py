"""``tessera grants ...`` and ``tessera export bulk``: data sharing from the command line.

The commands run on the server's own database, as its operator: ``grants create`` names the
granting district with ``--grantor``, and ``grants revoke`` needs no tenant (the API lets
only the grantor revoke). ``export bulk`` writes into a folder and prints the manifest's
summary; under ``--grant`` it exports the grantor's data as the grantee would see it
(de-identified when the grant says so) and logs the export in the grant's access log.
Under several ``--grant`` (or ``--grantee STATE``: every active grant to it) it exports all
those districts at once, one read of each kind (``export_many``), into ``OUT/<district>/``.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from ..cli_kit import check_tenant, console, open_store, print_table, settings
from ..errors import ConfigError
from ..model import RECORD_TYPES
from .deidentify import Deidentifier, Pseudonymizer, StateIds, pseudonym_key
from .export import FORMATS, Manifest, export
from .export_many import ManyManifest, export_many, granted, sources_of, still_granted
from .grants import GRANT_SCOPES, GrantStore, parse_when
from .jobs import JobRunner

grants_app = typer.Typer(help="Data-sharing grants: a district lets a state or research tenant read some of its data.",
                         no_args_is_help=True)


def _split(values: list[str] | None) -> list[str]:
    return [v for item in values or [] for v in item.split(",") if v]


@grants_app.command("create")
def grants_create(
    grantor: Annotated[str, typer.Option(help="the district tenant that shares")],
    grantee: Annotated[str, typer.Option(help="the tenant that reads (a state agency, a research partner)")],
    purpose: Annotated[str, typer.Option(help="what the data is for, and the agreement it falls under")],
    starts: Annotated[str, typer.Option("--from", help="first day (YYYY-MM-DD, UTC) or an ISO 8601 date-time")],
    ends: Annotated[str, typer.Option("--to", help="access ends at this day (exclusive) or date-time")],
    scopes: Annotated[list[str], typer.Option("--scope", help=f"repeatable: {', '.join(GRANT_SCOPES)}")],
    kinds: Annotated[list[str], typer.Option("--kind", help="repeatable (or comma-separated) record kinds")],
    identified: Annotated[bool, typer.Option("--identified", help="share identified data (default: de-identified)")] = False,
) -> None:
    """Create a grant (de-identified unless --identified)."""
    g = GrantStore(open_store().engine).create(
        check_tenant(grantor, option="--grantor"), grantee, purpose=purpose, starts_at=parse_when(starts, "--from"),
        ends_at=parse_when(ends, "--to"), scopes=_split(scopes), kinds=_split(kinds), deidentified=not identified, created_by="cli")
    print(g.id)
    console.print(f"grant {g.id}: {g.grantor} -> {g.grantee}, {', '.join(g.scopes)} on {', '.join(g.kinds)}, "
                  f"{'de-identified' if g.deidentified else 'IDENTIFIED'}, {g.starts_at:%Y-%m-%d} to {g.ends_at:%Y-%m-%d}")


@grants_app.command("list")
def grants_list(tenant: Annotated[str | None, typer.Option(help="only grants this tenant gave or received")] = None) -> None:
    """List grants."""
    rows = [(str(g.id), g.grantor, g.grantee, ",".join(g.scopes), ",".join(g.kinds), "yes" if g.deidentified else "no",
             str(g.as_json()["status"]), f"{g.starts_at:%Y-%m-%d}..{g.ends_at:%Y-%m-%d}", g.purpose)
            for g in GrantStore(open_store().engine).find(tenant)]
    print_table(["id", "grantor", "grantee", "scopes", "kinds", "de-identified", "status", "dates", "purpose"], rows, title="grants")


@grants_app.command("revoke")
def grants_revoke(grant_id: uuid.UUID) -> None:
    """Revoke a grant at once: the next read under it is refused."""
    g = GrantStore(open_store().engine).revoke(grant_id, grantor=None, by="cli")
    console.print(f"grant {g.id} revoked at {g.revoked_at}")


@grants_app.command("log")
def grants_log(grant_id: uuid.UUID, limit: Annotated[int, typer.Option(min=1, max=100_000)] = 1000) -> None:
    """Every read under a grant: who, what, when, how many records."""
    rows = GrantStore(open_store().engine).access_log(grant_id, grantor=None, limit=limit)
    print_table(["at", "client", "action", "records", "detail"],
                [(str(r["at"]), str(r["client_id"]), str(r["action"]), str(r["records"]), str(r["detail"])) for r in rows],
                title=f"access log of grant {grant_id}")


def register(export_app: typer.Typer) -> None:
    @export_app.command("bulk")
    def export_bulk(
        out: Annotated[Path, typer.Argument(file_okay=False, help="an empty (or new) folder")],
        fmt: Annotated[str, typer.Option("--format", help=", ".join(FORMATS))] = "parquet",
        kinds: Annotated[list[str] | None, typer.Option("--kind", help="repeatable or comma-separated (default: every kind)")] = None,
        since: Annotated[int | None, typer.Option(help="only records changed after this change version")] = None,
        tenant: Annotated[str | None, typer.Option(help="export this tenant's data")] = None,
        grant_ids: Annotated[list[uuid.UUID] | None, typer.Option(
            "--grant", help="export a grantor's data as this grant shows it; repeatable: several districts' grants to one "
                            "recipient in one read of each kind (OUT/<district>/<kind>.<ext>)")] = None,
        grantee: Annotated[str | None, typer.Option(
            help="export under every active grant to this tenant that allows exports and a kind asked (OUT/<district>/...)")] = None,
    ) -> None:
        """Bulk export to Parquet, NDJSON or CSV: one file per kind and a manifest.json."""
        grant_ids = grant_ids or []
        if (tenant is not None) + bool(grant_ids or grantee) != 1:
            raise typer.BadParameter("give exactly one of --tenant and --grant/--grantee", param_hint="--tenant/--grant/--grantee")
        if grantee is not None or len(grant_ids) > 1:
            _export_many(out, fmt, _split(kinds), since, grant_ids, grantee)
            return
        grant = grant_ids[0] if grant_ids else None
        store = open_store()
        grants = GrantStore(store.engine)
        deid = None
        source = tenant
        g = None
        if grant is not None:
            g = grants.get(grant)
            if not g.allows("exports"):
                raise ConfigError(f"grant {grant} is revoked, expired, not yet started or does not allow exports")
            source = g.grantor
            kinds = [k for k in (_split(kinds) or list(RECORD_TYPES)) if k in g.kinds]
            if g.deidentified:
                deid = Deidentifier(Pseudonymizer(pseudonym_key(settings().database_url), g.grantee), StateIds(store.engine, g.grantor))
        assert source is not None
        key = functools.partial(pseudonym_key, settings().database_url)
        runner = JobRunner(store, grants, Path(settings().export_dir), key)
        try:
            with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console, transient=True) as bar:
                task = bar.add_task("exporting", total=None)

                def run(renew: Callable[[], None]) -> Manifest:
                    return export(store, out, tenant=source, kinds=_split(kinds), fmt=fmt, since=since, deidentifier=deid,
                                  grant_id=str(grant) if grant else None, check=renew,
                                  progress=lambda kind, n: bar.update(task, advance=n, description=f"exporting {kind}"))

                # held like an API job: one export per grant (or tenant) at a time, whatever asks
                manifest = runner.run_here(tenant=g.grantee if g else source, client_id="cli", fmt=fmt,
                                           kinds=_split(kinds) or list(RECORD_TYPES), since=since, grant=g, run=run)
        finally:
            runner.close()
        if grant is not None:
            for f in manifest.files:
                grants.log(grant, client_id="cli", action="export", detail=f"folder={out} kind={f.kind} format={fmt}", records=f.rows)
        print_table(["file", "rows", "bytes", "sha256"], [(f.name, str(f.rows), str(f.bytes), f.sha256) for f in manifest.files],
                    title=f"export of {source}, consistent with change version {manifest.consistent_with}")


def _export_many(out: Path, fmt: str, kinds: list[str], since: int | None, grant_ids: list[uuid.UUID], grantee: str | None) -> None:
    """``export bulk`` under several grants (or every grant to ``--grantee``): ``export_many``."""
    store = open_store()
    grants = GrantStore(store.engine)
    recipient, chosen = granted(grants, recipient=grantee, grant_ids=grant_ids, kinds=kinds, refused=ConfigError)
    sources = sources_of(chosen, key=pseudonym_key(settings().database_url), engine=store.engine)
    held = [g.id for g in chosen]
    runner = JobRunner(store, grants, Path(settings().export_dir), functools.partial(pseudonym_key, settings().database_url))
    try:
        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("exporting", total=None)

            def run(renew: Callable[[], None]) -> ManyManifest:
                def check() -> None:
                    renew()
                    still_granted(grants, recipient, held)

                return export_many(store, out, recipient=recipient, sources=sources, kinds=kinds, fmt=fmt, since=since, check=check,
                                   progress=lambda kind, n: bar.update(task, advance=n, description=f"exporting {kind}"))

            manifest = runner.run_here(tenant=recipient, client_id="cli", fmt=fmt, kinds=kinds or list(RECORD_TYPES), since=since,
                                       grant=None, run=run, many=chosen)
    finally:
        runner.close()
    grants.log_many([(uuid.UUID(f.grant), f"folder={out} tenant={f.tenant} kind={f.kind} format={fmt}", f.rows)
                     for f in manifest.files if f.grant], client_id="cli", action="export")
    print_table(["file", "rows", "bytes", "sha256"], [(f.name, str(f.rows), str(f.bytes), f.sha256) for f in manifest.files],
                title=f"export of {len(sources)} districts for {recipient}, consistent with change version {manifest.consistent_with}")


__all__ = ["grants_app", "register"]
